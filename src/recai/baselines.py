"""The kernel's built-in components: a random baseline and a synthetic dataset source."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from .data import Dataset, Split, synthetic_dataset
from .errors import DataError
from .roles import DatasetSource, Ranker, Retriever
from .types import ItemList, Query

__all__ = ["RandomRecommender", "SyntheticDataset"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-distributed integer hash (vectorised)."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


class RandomRecommender(Ranker, Retriever):
    """Uniformly random scores: the chance level every model must beat.

    The score of an item for a user is a hash of ``seed``, the user (their index, or else their
    history) and the item, so it does not depend on batching or on which candidates are scored.

    >>> r = RandomRecommender(seed=1, n_items=5)
    >>> r.score([np.array([0, 1])]).shape
    (1, 5)
    """

    def __init__(self, seed: int = 0, n_items: int | None = None):
        self.seed = seed
        self.n_items = n_items

    def fit(self, split: Split) -> None:
        self.n_items = split.dataset.n_items

    def _all_items(self) -> np.ndarray:
        if self.n_items is None:
            raise RuntimeError("random.v1 does not know the catalog size: call fit() or pass n_items")
        return np.arange(self.n_items, dtype=np.int64)

    def _key(self, data: bytes) -> np.uint64:
        digest = hashlib.blake2b(data, digest_size=8, key=str(self.seed).encode()).digest()
        return np.frombuffer(digest, dtype=np.uint64)[0]

    def _scores(self, key: np.uint64, items: np.ndarray) -> np.ndarray:
        h = _mix(np.asarray(items, dtype=np.int64).astype(np.uint64) ^ key)
        return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)

    def score(
        self,
        histories: Sequence[np.ndarray],
        items: np.ndarray | None = None,
        *,
        users: np.ndarray | None = None,
    ) -> np.ndarray:
        cand = self._all_items() if items is None else np.asarray(items, dtype=np.int64)
        if items is not None and cand.size and (cand.min() < 0 or (self.n_items is not None and cand.max() >= self.n_items)):
            raise DataError(f"random.v1: item indices must lie in 0..{(self.n_items or 0) - 1}")
        out = np.empty((len(histories), cand.shape[-1]), dtype=np.float64)
        for b, hist in enumerate(histories):
            who = b"u%d" % int(users[b]) if users is not None else np.asarray(hist, dtype=np.int64).tobytes()
            out[b] = self._scores(self._key(who), cand if cand.ndim == 1 else cand[b])
        return out

    def retrieve(self, query: Query, k: int = 10, *, candidates: ItemList | None = None) -> ItemList:
        parts = [query.text or "", "" if query.items is None else query.items.ids.tobytes().hex()]
        pool = candidates.ids if candidates is not None else self._all_items()
        return ItemList(pool, self._scores(self._key("|".join(parts).encode()), pool)).top(k)


class SyntheticDataset(DatasetSource):
    """A seeded synthetic dataset (see :func:`recai.data.synthetic_dataset`)."""

    def __init__(self, n_users: int = 60, n_items: int = 40, mean_length: int = 12, seed: int = 0):
        self.n_users, self.n_items, self.mean_length, self.seed = n_users, n_items, mean_length, seed

    def load(self) -> Dataset:
        return synthetic_dataset(self.n_users, self.n_items, self.mean_length, seed=self.seed)
