"""User-item events as numpy arrays, with a CSR view of user histories in time order."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import DataError

__all__ = ["Interactions"]


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
        self.ratings = None if ratings is None else np.asarray(ratings, dtype=np.float32)
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
