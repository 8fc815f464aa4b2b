"""User-item events as numpy arrays, with a CSR view of user histories in time order.

Timestamps are Unix seconds (any numeric type) or ``datetime64`` values, and must be plausible:
from 1970-01-01 (inclusive) to 2100-01-01 UTC (exclusive), see :data:`TIME_RANGE`. A value
outside is almost always a unit mistake (milliseconds read as seconds) or a damaged file, and it
would silently reorder histories and stretch every time-based split, so it is refused.
Ratings must lie within ``±``:data:`RATING_LIMIT` (``NaN`` is an event without a rating). :func:`implausible_times` and
:func:`implausible_ratings` are the checks; dataset loaders use the same ones.

>>> implausible_times(np.array([0, 1.5e9, -1, 1e30, np.nan])).tolist()
[False, False, True, True, True]
>>> implausible_ratings(np.array([4.5, np.nan, -1e12, np.inf])).tolist()
[False, False, True, True]
>>> why_implausible_time(1588687728923)
'after 2100-01-01 (it looks like Unix milliseconds, not seconds)'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import DataError

__all__ = [
    "Interactions",
    "TIME_RANGE",
    "RATING_LIMIT",
    "implausible_times",
    "implausible_ratings",
    "why_implausible_time",
]

TIME_RANGE: tuple[int, int] = (0, 4_102_444_800)
"""Plausible timestamps in Unix seconds: ``lo <= t < hi``, from 1970-01-01 00:00 to 2100-01-01
00:00 UTC. Data from before 1970 cannot be told from a sign mistake, and a time after 2100 from
milliseconds or microseconds read as seconds."""

RATING_LIMIT = 1e9
"""Ratings (stars, counts, play times) must lie within ``-RATING_LIMIT ..
RATING_LIMIT``; anything beyond is a unit or parsing mistake (and not exact as ``float32``)."""

_LOW_DAY, _HIGH_DAY = "1970-01-01", "2100-01-01"


def _seconds(timestamps: np.ndarray) -> np.ndarray:
    """Numeric or datetime64 timestamps as float64 Unix seconds (``NaN`` for ``NaT``)."""
    if np.issubdtype(timestamps.dtype, np.datetime64):
        out = timestamps.astype("datetime64[s]").astype(np.int64).astype(np.float64)
        out[np.isnat(timestamps)] = np.nan
        return out
    return timestamps.astype(np.float64, copy=False)


def implausible_times(timestamps: np.ndarray) -> np.ndarray:
    """A boolean mask of the timestamps (Unix seconds or ``datetime64``) that are not a
    plausible time: ``NaN``/``NaT``, infinite, or outside :data:`TIME_RANGE`."""
    ts = np.asarray(timestamps)
    if ts.dtype.kind in "iu":  # integers: no NaN, compared without a float copy
        return (ts < TIME_RANGE[0]) | (ts >= TIME_RANGE[1])
    seconds = _seconds(ts)
    with np.errstate(invalid="ignore"):
        ok = (seconds >= TIME_RANGE[0]) & (seconds < TIME_RANGE[1])  # False for NaN
    return ~ok


def implausible_ratings(ratings: np.ndarray) -> np.ndarray:
    """A boolean mask of the ratings that are infinite or beyond ``±RATING_LIMIT`` (``NaN`` is
    not: it marks an event without a rating)."""
    r = np.asarray(ratings, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.abs(r) > RATING_LIMIT


_UNITS = {"s": (1.0, "seconds"), "ms": (1e3, "milliseconds"), "us": (1e6, "microseconds")}
_UNITS["ns"] = (1e9, "nanoseconds")


def why_implausible_time(value: float | int | np.generic, unit: str = "s") -> str:
    """Why one timestamp is not plausible, for error messages: ``value`` is a Unix time in
    ``unit`` (``"s"``, ``"ms"``, ``"us"``, ``"ns"``) or a ``datetime64``; when it would be
    plausible in another unit, the message says so.

    >>> why_implausible_time(1e30, "ms"), why_implausible_time(1588687728923000, "ms")
    ('after 2100-01-01', 'after 2100-01-01 (it looks like Unix microseconds, not milliseconds)')
    """
    arr = np.asarray([value])
    per_second, unit_name = _UNITS[unit]
    x = float(_seconds(arr)[0])
    if np.isnan(x):
        return "missing (NaT)" if arr.dtype.kind == "M" else "not a number"
    if np.isinf(x):
        return "infinite"
    if arr.dtype.kind != "M":
        x /= per_second
    lo, hi = TIME_RANGE
    if x < lo:
        return f"before {_LOW_DAY}" + ("" if arr.dtype.kind == "M" else " (negative)")
    if arr.dtype.kind != "M":
        for other, (scale, name) in _UNITS.items():
            if other != unit and lo <= x * per_second / scale < hi:
                return f"after {_HIGH_DAY} (it looks like Unix {name}, not {unit_name})"
    return f"after {_HIGH_DAY}"


def _check_values(timestamps: np.ndarray | None, ratings: np.ndarray | None, n: int) -> None:
    """Refuse timestamps and ratings that are not plausible, naming the first such row."""
    if timestamps is not None:
        kind = timestamps.dtype.kind
        if kind not in "iufM" or timestamps.ndim != 1:
            raise DataError(
                "interactions: timestamps must be a 1-D array of Unix seconds (numbers) or "
                f"datetime64 values, got {timestamps.dtype} with shape {timestamps.shape}"
            )
        bad = np.flatnonzero(implausible_times(timestamps))
        if len(bad):
            row = int(bad[0])
            value = timestamps[row]
            raise DataError(
                f"interactions: timestamp {value!s} at row {row} is not a plausible time: "
                f"{why_implausible_time(value)}; {len(bad):,} of {n:,} timestamps lie outside "
                f"{_LOW_DAY} .. {_HIGH_DAY} UTC (recai.data.interactions.TIME_RANGE)"
            )
    if ratings is not None:
        bad = np.flatnonzero(implausible_ratings(ratings))
        if len(bad):
            row = int(bad[0])
            raise DataError(
                f"interactions: rating {float(ratings[row])!r} at row {row} is not a plausible rating "
                f"(infinite, or beyond ±{RATING_LIMIT:g}); {len(bad):,} of {n:,} ratings "
                "are not (recai.data.interactions.RATING_LIMIT)"
            )


class Interactions:
    """User-item events as numpy arrays, with a CSR view of user histories in time order."""

    def __init__(
        self,
        users: Sequence[int] | np.ndarray,
        items: Sequence[int] | np.ndarray,
        *,
        n_users: int,
        n_items: int,
        timestamps: Sequence[float] | np.ndarray | None = None,
        ratings: Sequence[float] | np.ndarray | None = None,
    ):
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.timestamps = None if timestamps is None else np.asarray(timestamps)
        if ratings is not None:
            with np.errstate(over="ignore"):  # beyond float32: inf, refused below
                self.ratings: np.ndarray | None = np.asarray(ratings, dtype=np.float32)
        else:
            self.ratings = None
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        n = len(self.users)
        for name, arr in (
            ("items", self.items),
            ("timestamps", self.timestamps),
            ("ratings", self.ratings),
        ):
            if arr is not None and len(arr) != n:
                raise DataError(f"interactions: {name} has {len(arr)} entries, users has {n}")
        if n:
            if self.users.min() < 0 or self.users.max() >= self.n_users:
                raise DataError(f"interactions: user index out of range 0..{self.n_users - 1}")
            if self.items.min() < 0 or self.items.max() >= self.n_items:
                raise DataError(f"interactions: item index out of range 0..{self.n_items - 1}")
        _check_values(self.timestamps, self.ratings, n)
        self._csr: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.users)

    def __repr__(self) -> str:
        return f"Interactions({len(self)} events, {self.n_users} users, {self.n_items} items)"

    def order(self) -> np.ndarray:
        """Permutation sorting events by user, then time; ties keep their original order."""
        if self.timestamps is None:
            return np.argsort(self.users, kind="stable")
        return np.lexsort((np.arange(len(self)), self.timestamps, self.users))

    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(indptr, items, positions)``: user ``u``'s items are ``items[indptr[u]:indptr[u+1]]``
        in time order; ``positions`` maps them back to rows of this object."""
        if self._csr is None:
            order = self.order()
            counts = np.bincount(self.users, minlength=self.n_users)
            indptr = np.zeros(self.n_users + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            self._csr = (indptr, self.items[order], order)
        return self._csr

    def history(self, user: int) -> np.ndarray:
        indptr, items, _ = self.csr()
        return items[indptr[user] : indptr[user + 1]]

    def histories(self, users: Iterable[int] | None = None) -> list[np.ndarray]:
        indptr, items, _ = self.csr()
        us = range(self.n_users) if users is None else users
        return [items[indptr[u] : indptr[u + 1]] for u in us]

    def user_counts(self) -> np.ndarray:
        return np.bincount(self.users, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.n_items)

    def select(self, rows: np.ndarray) -> Interactions:
        """A new object with the given rows (boolean mask or indices)."""
        return Interactions(
            self.users[rows],
            self.items[rows],
            n_users=self.n_users,
            n_items=self.n_items,
            timestamps=None if self.timestamps is None else self.timestamps[rows],
            ratings=None if self.ratings is None else self.ratings[rows],
        )

    def fingerprint(self) -> str:
        """A short hash of the arrays (computed once: treat the arrays as read-only)."""
        if self._fingerprint is not None:
            return self._fingerprint
        h = hashlib.sha256()
        h.update(f"{self.n_users},{self.n_items},{len(self)}".encode())
        for arr in (self.users, self.items, self.timestamps, self.ratings):
            if arr is not None:
                h.update(np.ascontiguousarray(arr).tobytes())
        self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint
