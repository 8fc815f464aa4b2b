"""Splits of a dataset into train / validation / test, and the protocols that make them.

- :func:`leave_one_out`: per user in time order, the last event is test, the one before valid
  (``ties="recbole"`` orders events as RecBole 1.2.1 does, to reproduce its split exactly);
- :func:`temporal_split`: one global time line; events before the first cut train, between the
  cuts validate, from the second cut on test (cuts from time quantiles or given);
- :func:`random_split`: seeded random hold-out of events, over all events or within each user.

Every split records its protocol and parameters in ``Split.protocol`` / ``Split.details`` so a
reported number can say how it was measured.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import DataError
from .dataset import Dataset
from .interactions import Interactions

__all__ = ["Split", "leave_one_out", "temporal_split", "random_split", "recbole_time_keys"]


@dataclass(eq=False)
class Split:
    """Train / validation / test interactions of one dataset, and the protocol that made them.

    ``protocol`` is a short name (``leave_one_out``) and ``details`` its parameters, so every
    reported number can say how it was measured.
    """

    dataset: Dataset
    train: Interactions
    test: Interactions | None
    valid: Interactions | None = None
    protocol: str = "custom"
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def full(cls, dataset: Dataset) -> Split:
        """Everything is training data (for serving a model, not for measuring it)."""
        return cls(dataset, dataset.interactions, None, None, "full", {})

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.details.items())
        return f"{self.protocol}({extra})" if extra else self.protocol

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.dataset.fingerprint().encode())
        h.update(self.describe().encode())
        for part in (self.train, self.valid, self.test):
            h.update((part.fingerprint() if part is not None else "-").encode())
        return h.hexdigest()[:16]


def recbole_time_keys(timestamps: np.ndarray) -> np.ndarray:
    """The sort keys RecBole 1.2.1 uses for time: min-max normalised in float64, then float32.

    Distinct timestamps can share a key (float32 keeps about 7 significant digits); RecBole's
    stable sort then keeps file order among them.

    >>> recbole_time_keys(np.array([0, 1_000_000_000, 1_000_000_001, 2_000_000_000])).tolist()
    [0.0, 0.5, 0.5, 1.0]
    """
    ts = np.asarray(timestamps)
    if np.issubdtype(ts.dtype, np.datetime64):
        ts = ts.astype("datetime64[s]").astype(np.int64)
    ts = ts.astype(np.float64)
    if not len(ts):
        return ts.astype(np.float32)
    lo, hi = ts.min(), ts.max()
    if hi == lo:  # RecBole sets the whole column to 1.0
        return np.ones(len(ts), dtype=np.float32)
    return ((ts - lo) / (hi - lo)).astype(np.float32)


def leave_one_out(dataset: Dataset, *, ties: Literal["file", "recbole"] = "file") -> Split:
    """Per user in time order: last event -> test, second-to-last -> valid, the rest -> train.

    Users with two events give one to train and one to test; users with one event keep it in
    train. ``ties`` says how events are ordered in time: ``"file"`` (the default) by timestamp,
    equal timestamps keeping the order of the source file; ``"recbole"`` by RecBole 1.2.1's keys
    (:func:`recbole_time_keys`), which also puts distinct timestamps that collide in float32 in file
    order — use it to hold out exactly the events RecBole holds out. The held-out events differ
    only for users whose last events collide that way. (Histories in each part stay ordered by
    timestamp.)

    >>> from recai.data import synthetic_dataset
    >>> split = leave_one_out(synthetic_dataset(n_users=20, n_items=15))
    >>> split.describe(), len(split.test) == 20
    ('leave_one_out(order=time, ties=file)', True)
    """
    if ties not in ("file", "recbole"):
        raise DataError(f"ties must be 'file' or 'recbole', not {ties!r}")
    inter = dataset.interactions
    indptr, _, order = inter.csr()
    if ties == "recbole" and inter.timestamps is not None:
        keys = recbole_time_keys(inter.timestamps)
        order = np.lexsort((np.arange(len(inter)), keys, inter.users))
    counts = np.diff(indptr)
    role = np.zeros(len(inter), dtype=np.int8)  # 0 train, 1 valid, 2 test
    last = indptr[1:] - 1
    has_test = counts >= 2
    role[order[last[has_test]]] = 2
    has_valid = counts >= 3
    role[order[last[has_valid] - 1]] = 1
    details: dict[str, Any] = {"order": "time" if inter.timestamps is not None else "file"}
    if inter.timestamps is not None:
        details["ties"] = ties
    return Split(
        dataset,
        train=inter.select(role == 0),
        valid=inter.select(role == 1),
        test=inter.select(role == 2),
        protocol="leave_one_out",
        details=details,
    )


def _as_time(value: Any, like: np.ndarray) -> Any:
    """A cut point comparable with ``like`` (numbers, or datetime64 timestamps); a value that is
    neither a number nor a date is a :class:`DataError` naming it."""
    try:
        if np.issubdtype(like.dtype, np.datetime64):
            when = np.datetime64(value) if not isinstance(value, np.datetime64) else value
            if np.isnat(when):
                raise ValueError("not a time")
            return when
        if isinstance(value, str | _dt.date | np.datetime64):
            when = np.datetime64(value, "s") if not isinstance(value, np.datetime64) else value
            if np.isnat(when):
                raise ValueError("not a time")
            return int(when.astype("datetime64[s]").astype(np.int64))  # Unix seconds
        if isinstance(value, bool) or not np.isfinite(float(value)):
            raise ValueError("not a finite number")
    except (ValueError, TypeError, OverflowError) as e:
        raise DataError(
            f"cuts: {value!r} is not a time (a number in the data's unit, or a date such as "
            f'"1998-03-01"): {e}'
        ) from None
    return value


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a numpy scalar (for ``Split.details``)."""
    if isinstance(value, np.datetime64):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _parts(
    inter: Interactions, role: np.ndarray
) -> tuple[Interactions, Interactions, Interactions]:
    return inter.select(role == 0), inter.select(role == 1), inter.select(role == 2)


def _check_fractions(valid: float, test: float) -> None:
    if not (0.0 <= valid < 1.0 and 0.0 < test < 1.0 and valid + test < 1.0):
        raise DataError(
            f"valid and test are fractions with 0 <= valid, 0 < test and valid + test < 1 "
            f"(got valid={valid}, test={test})"
        )


def temporal_split(
    dataset: Dataset,
    *,
    valid: float = 0.1,
    test: float = 0.1,
    cuts: tuple[Any, Any] | None = None,
) -> Split:
    """One global time line: train before the first cut, valid up to the second, test after.

    Cut points are the time quantiles ``1 - valid - test`` and ``1 - test`` of all events, or
    ``cuts = (valid_from, test_from)`` given as timestamps (numbers in the data's unit, or dates
    such as ``"1998-03-01"``, read as Unix seconds for numeric timestamps). An event at time ``t``
    is train if ``t < valid_from``, valid if ``valid_from <= t < test_from``, test otherwise, so
    events at one time never straddle a cut and the fractions are approximate (``details`` has
    the real counts). Every valid and test event comes after every train event: no peeking at
    the future. Users and items first seen after a cut are counted in ``details``
    (``cold_test_users`` and ``cold_test_items``), not removed.

    >>> from recai.data import synthetic_dataset
    >>> split = temporal_split(synthetic_dataset(n_users=40, n_items=20), valid=0.1, test=0.2)
    >>> train, valid, test = split.train.timestamps, split.valid.timestamps, split.test.timestamps
    >>> bool(train.max() < valid.min() <= test.min())
    True
    """
    inter = dataset.interactions
    if inter.timestamps is None:
        raise DataError(f"dataset {dataset.name}: a temporal split needs timestamps")
    if not len(inter):
        raise DataError(f"dataset {dataset.name}: there are no interactions to split")
    ts = inter.timestamps
    if cuts is None:
        _check_fractions(valid, test)
        ordered = np.sort(ts, kind="stable")
        n = len(ordered)
        valid_from = ordered[min(n - 1, int(np.floor(n * (1.0 - valid - test))))]
        test_from = ordered[min(n - 1, int(np.floor(n * (1.0 - test))))]
        how: dict[str, Any] = {"cut": "quantile", "valid": valid, "test": test}
    else:
        if isinstance(cuts, str | bytes) or len(cuts) != 2:
            raise DataError(f"cuts must be (valid_from, test_from), got {cuts!r}")
        valid_from, test_from = (_as_time(c, ts) for c in cuts)
        if valid_from > test_from:
            raise DataError(f"cuts must be in time order, got {cuts}")
        how = {"cut": "given"}
    role = np.where(ts < valid_from, 0, np.where(ts < test_from, 1, 2)).astype(np.int8)
    train, val, tst = _parts(inter, role)
    if not len(train):
        raise DataError(
            f"dataset {dataset.name}: no event comes before the first cut ({_plain(valid_from)}); "
            "move the cuts later"
        )
    seen_users = np.bincount(train.users, minlength=inter.n_users) > 0
    seen_items = np.bincount(train.items, minlength=inter.n_items) > 0
    details = {
        **how,
        "valid_from": _plain(valid_from),
        "test_from": _plain(test_from),
        "events": [len(train), len(val), len(tst)],
        "cold_test_users": int(np.count_nonzero(~seen_users[np.unique(tst.users)])),
        "cold_test_items": int(np.count_nonzero(~seen_items[np.unique(tst.items)])),
    }
    return Split(dataset, train=train, valid=val, test=tst, protocol="temporal", details=details)


def random_split(
    dataset: Dataset,
    *,
    valid: float = 0.1,
    test: float = 0.1,
    by: Literal["interaction", "user"] = "interaction",
    seed: int = 0,
) -> Split:
    """Seeded random hold-out, ignoring time.

    ``by="interaction"``: ``round(n * test)`` events drawn at random over all events go to test
    and ``round(n * valid)`` to valid. ``by="user"``: within each user, ``round(n_u * test)``
    random events go to test and ``round(n_u * valid)`` to valid (halves round up), always
    leaving at least one event in train; users with one event keep it in train. The same
    ``seed`` gives the same split. A random split lets training see events that come after test
    events; use :func:`leave_one_out` or :func:`temporal_split` when time matters.

    >>> from recai.data import synthetic_dataset
    >>> data = synthetic_dataset(n_users=30, n_items=20)
    >>> split = random_split(data, test=0.2, by="user", seed=3)
    >>> split.describe()
    'random(by=user, valid=0.1, test=0.2, seed=3)'
    >>> len(split.train) + len(split.valid) + len(split.test) == len(data.interactions)
    True
    """
    _check_fractions(valid, test)
    if by not in ("interaction", "user"):
        raise DataError(f"by must be 'interaction' or 'user', not {by!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DataError(f"seed must be a whole number from 0, got {seed!r}")
    inter = dataset.interactions
    n = len(inter)
    rng = np.random.default_rng(seed)
    role = np.zeros(n, dtype=np.int8)
    if by == "interaction":
        perm = rng.permutation(n)
        n_test = int(np.floor(n * test + 0.5))
        n_valid = int(np.floor(n * valid + 0.5))
        role[perm[:n_test]] = 2
        role[perm[n_test : n_test + n_valid]] = 1
    else:
        keys = rng.random(n)
        order = np.lexsort((keys, inter.users))  # each user's events in random order
        counts = np.bincount(inter.users, minlength=inter.n_users)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        pos = np.arange(n) - np.repeat(starts, counts)  # rank within the user
        n_test = np.minimum(np.floor(counts * test + 0.5), np.maximum(counts - 1, 0))
        n_valid = np.minimum(np.floor(counts * valid + 0.5), np.maximum(counts - 1 - n_test, 0))
        users_sorted = inter.users[order]
        t, v = n_test[users_sorted], n_valid[users_sorted]
        role[order[pos < t]] = 2
        role[order[(pos >= t) & (pos < t + v)]] = 1
    train, val, tst = _parts(inter, role)
    details = {"by": by, "valid": valid, "test": test, "seed": seed}
    return Split(dataset, train=train, valid=val, test=tst, protocol="random", details=details)
