"""Sampled candidate sets: each held-out event with ``n_negatives`` items the user never touched.

The candidate protocols of the literature (RecAI's 1 + 19, SASRec's 1 + 99) rank the positive
against sampled negatives. :func:`sample_candidates` draws them deterministically: the negatives
of an event depend only on ``seed``, the user, the positive item (and which repeat of that pair it
is), never on which other users are in the call or in what order, so any batching gives the same
candidates. Draws are vectorised rejection sampling on a counter-based hash (splitmix64), with an
exact per-row fallback for the few users who know almost every item.

>>> from recai.data import leave_one_out, synthetic_dataset
>>> split = leave_one_out(synthetic_dataset(n_users=30, n_items=200))
>>> cands = sample_candidates(split, n_negatives=19, seed=0)
>>> cands.items.shape, bool((cands.items[:, 0] == split.test.items[cands.rows]).all())
((30, 20), True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import DataError
from .split import Split

__all__ = ["Candidates", "sample_candidates"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MAX_ROUNDS = 48


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (vectorised): a well-mixed 64-bit hash of each value."""
    x = np.asarray(x).astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def _uniform(h: np.ndarray) -> np.ndarray:
    """Floats in ``[0, 1)`` from 64-bit hashes."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


@dataclass
class Candidates:
    """Candidate sets for a candidate-ranking protocol.

    ``users[r]`` is the user of row ``r``; ``items[r, 0]`` the held-out positive and
    ``items[r, 1:]`` its negatives; ``rows[r]`` the position of that event in the target part
    (``split.test`` or ``split.valid``). ``protocol`` describes how they were drawn (for reports).
    """

    users: np.ndarray
    items: np.ndarray
    rows: np.ndarray
    protocol: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.users)


def sample_candidates(
    split: Split,
    *,
    n_negatives: int = 99,
    strategy: Literal["uniform", "popularity"] = "uniform",
    seed: int = 0,
    target: Literal["test", "valid"] = "test",
    users: np.ndarray | None = None,
    short: Literal["raise", "drop"] = "raise",
) -> Candidates:
    """For each held-out event, the positive plus ``n_negatives`` sampled negatives.

    Negatives are distinct items the user has no event with in the training part, the
    validation part or (for ``target="test"``) the test part, so neither a known item nor
    another held-out item of the user is counted as a negative. ``strategy="uniform"`` draws
    them uniformly; ``"popularity"`` in proportion to their number of training events (items
    never seen in training are never drawn). ``users`` restricts the rows to those users; the
    rows of a user are the same whatever else is asked. A user with fewer than ``n_negatives``
    items left to draw raises :class:`~recai.errors.DataError` (``short="raise"``) or is left
    out and counted in ``protocol["dropped_rows"]`` (``short="drop"``).
    """
    if n_negatives < 0:
        raise ValueError("n_negatives must be at least 0")
    if strategy not in ("uniform", "popularity"):
        raise ValueError(f"strategy must be 'uniform' or 'popularity', not {strategy!r}")
    if target not in ("test", "valid"):
        raise ValueError(f"target must be 'test' or 'valid', not {target!r}")
    if short not in ("raise", "drop"):
        raise ValueError(f"short must be 'raise' or 'drop', not {short!r}")
    part = split.test if target == "test" else split.valid
    if part is None or not len(part):
        raise DataError(f"split {split.describe()} has no {target} events to sample for")
    n_items = split.train.n_items
    known_parts = [p for p in (split.train, split.valid, split.test) if p is not None]
    if target == "valid":
        known_parts = [p for p in (split.train, split.valid) if p is not None]
    known = np.unique(
        np.concatenate([p.users * n_items + p.items for p in known_parts]).astype(np.int64)
    )

    rows = np.arange(len(part))
    if users is not None:
        rows = rows[np.isin(part.users, np.asarray(users, dtype=np.int64))]
    row_users = part.users[rows]
    row_pos = part.items[rows]
    # which repeat of the same (user, item) pair this event is (in file order): part of its key
    pair = part.users * n_items + part.items
    order = np.lexsort((np.arange(len(part)), pair))
    first = np.searchsorted(pair[order], pair[order], side="left")
    repeat = np.empty(len(part), dtype=np.int64)
    repeat[order] = np.arange(len(part)) - first
    row_keys = _mix(_mix(_mix(np.uint64(seed) ^ _mix(row_users)) ^ row_pos.astype(np.uint64)))
    row_keys = _mix(row_keys ^ repeat[rows].astype(np.uint64))

    if strategy == "popularity":
        weights = np.bincount(split.train.items, minlength=n_items).astype(np.float64)
    else:
        weights = np.ones(n_items)
    drawable = weights > 0
    # items a user may still get: drawable items minus the drawable items they know
    known_users, known_items = known // n_items, known % n_items
    known_drawable = np.bincount(known_users[drawable[known_items]], minlength=split.train.n_users)
    available = int(drawable.sum()) - known_drawable[row_users]
    lacking = available < n_negatives
    dropped = int(lacking.sum())
    if dropped and short == "raise":
        r = int(np.flatnonzero(lacking)[0])
        raise DataError(
            f"user {int(row_users[r])} has only {int(available[r])} items left to draw "
            f"{n_negatives} {strategy} negatives from ({dropped} of {len(rows)} rows lack enough); "
            "ask for fewer negatives or pass short='drop' to leave such rows out"
        )
    keep = ~lacking
    rows, row_users, row_pos, row_keys = rows[keep], row_users[keep], row_pos[keep], row_keys[keep]

    negs = _draw(row_users, row_keys, known, n_items, n_negatives, weights, drawable)
    items = np.concatenate([row_pos[:, None], negs], axis=1)
    protocol = {
        "protocol": "sampled",
        "target": target,
        "negatives": int(n_negatives),
        "strategy": strategy,
        "weights": "training events per item" if strategy == "popularity" else "uniform",
        "seed": int(seed),
        "exclude": "items the user has events with in train, valid"
        + (" and test" if target == "test" else ""),
        "rows": int(len(rows)),
        "dropped_rows": dropped,
        "split": split.describe(),
    }
    return Candidates(row_users, items, rows, protocol)


def _draw(
    users: np.ndarray,
    keys: np.ndarray,
    known: np.ndarray,
    n_items: int,
    n: int,
    weights: np.ndarray,
    drawable: np.ndarray,
) -> np.ndarray:
    """``n`` distinct drawable items per row, none known to the row's user."""
    out = np.full((len(users), n), -1, dtype=np.int64)
    if n == 0 or not len(users):
        return out
    cdf = np.cumsum(weights)
    total = cdf[-1]
    uniform = bool(np.all(weights == weights[0]))
    slots = np.arange(n, dtype=np.uint64)
    for rnd in range(_MAX_ROUNDS):
        ri, si = np.nonzero(out < 0)
        if not len(ri):
            return out
        counter = (np.uint64(rnd) * np.uint64(n) + slots[si] + np.uint64(1)) * _GOLDEN
        u = _uniform(_mix(keys[ri] ^ counter))
        if uniform:
            cand = np.minimum((u * n_items).astype(np.int64), n_items - 1)
        else:
            cand = np.minimum(np.searchsorted(cdf, u * total, side="right"), n_items - 1)
        ok = drawable[cand] & ~_member(users[ri] * n_items + cand, known)
        # not already chosen for this row, and first among this round's draws of the same item
        key = ri.astype(np.int64) * n_items + cand
        fr, fs = np.nonzero(out >= 0)
        chosen = np.sort(fr.astype(np.int64) * n_items + out[fr, fs])
        ok &= ~_member(key, chosen)
        order = np.lexsort((si, ~ok, key))  # per (row, item): accepted draws first, lowest slot
        sorted_key = key[order]
        dup = np.zeros(len(order), dtype=bool)
        dup[1:] = sorted_key[1:] == sorted_key[:-1]
        first = np.zeros(len(order), dtype=bool)
        first[order] = ~dup
        ok &= first
        out[ri[ok], si[ok]] = cand[ok]
    # rows still short after many rounds know nearly everything: draw exactly from what is left
    for r in np.flatnonzero((out < 0).any(axis=1)):
        _fill_exact(out[r], users[r], keys[r], known, n_items, weights, drawable)
    return out


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(sorted_set, values)
    pos = np.minimum(pos, len(sorted_set) - 1)
    return sorted_set[pos] == values if len(sorted_set) else np.zeros(len(values), dtype=bool)


def _fill_exact(
    row: np.ndarray,
    user: int,
    key: np.uint64,
    known: np.ndarray,
    n_items: int,
    weights: np.ndarray,
    drawable: np.ndarray,
) -> None:
    """Fill the empty slots of ``row`` by weighted sampling without replacement over the items
    the user may still get (Efraimidis-Spirakis keys from the same hash)."""
    lo, hi = np.searchsorted(known, [user * n_items, (user + 1) * n_items])
    mask = drawable.copy()
    mask[known[lo:hi] - user * n_items] = False
    mask[row[row >= 0]] = False
    pool = np.flatnonzero(mask)
    need = int((row < 0).sum())
    u = _uniform(_mix(np.uint64(key) ^ _mix(pool.astype(np.uint64) + _GOLDEN)))
    score = np.log(np.maximum(u, 1e-300)) / weights[pool]  # larger is better
    chosen = pool[np.argsort(-score, kind="stable")[:need]]
    row[row < 0] = chosen
