"""The kernel's built-in components: a random baseline, a synthetic dataset source and a filter
over another dataset source."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field, ValidationInfo

from .data import Dataset, Split, apply_filters, synthetic_dataset
from .errors import DataError
from .roles import DatasetSource, Ranker, Retriever
from .specs import Seed
from .types import ItemList, Query

__all__ = [
    "RandomRecommender",
    "SyntheticDataset",
    "FilteredDataset",
    "MAX_USERS",
    "MAX_ITEMS",
    "MAX_EVENTS",
]

MAX_USERS = 10_000_000
"""Most users of a synthetic dataset."""
MAX_ITEMS = 10_000_000
"""Most items of a synthetic dataset or of random.v1's catalog (every item has a title and a
score row entry)."""
MAX_EVENTS = 100_000_000
"""Most interactions of a synthetic dataset (``n_users * mean_length``): a few GB of arrays."""


def _events_fit(mean_length: int, info: ValidationInfo) -> int:
    """``mean_length`` such that ``n_users * mean_length`` stays within :data:`MAX_EVENTS`."""
    n_users = info.data.get("n_users")
    if isinstance(n_users, int) and n_users * mean_length > MAX_EVENTS:
        raise ValueError(
            f"n_users * mean_length = {n_users * mean_length:,} interactions is more than "
            f"{MAX_EVENTS:,}; lower n_users or mean_length"
        )
    return mean_length


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

    def __init__(
        self,
        seed: Seed = 0,
        n_items: Annotated[
            int | None,
            Field(ge=1, le=MAX_ITEMS, description="catalog size before fit() (fit sets it)"),
        ] = None,
    ):
        self.seed = seed
        self.n_items = n_items

    def fit(self, split: Split) -> None:
        self.n_items = split.dataset.n_items

    def _all_items(self) -> np.ndarray:
        if self.n_items is None:
            raise RuntimeError(
                "random.v1 does not know the catalog size: call fit() or pass n_items"
            )
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
        if (
            items is not None
            and cand.size
            and (cand.min() < 0 or (self.n_items is not None and cand.max() >= self.n_items))
        ):
            raise DataError(f"random.v1: item indices must lie in 0..{(self.n_items or 0) - 1}")
        out = np.empty((len(histories), cand.shape[-1]), dtype=np.float64)
        for b, hist in enumerate(histories):
            who = (
                b"u%d" % int(users[b])
                if users is not None
                else np.asarray(hist, dtype=np.int64).tobytes()
            )
            out[b] = self._scores(self._key(who), cand if cand.ndim == 1 else cand[b])
        return out

    def retrieve(
        self, query: Query, k: int = 10, *, candidates: ItemList | None = None
    ) -> ItemList:
        parts = [query.text or "", "" if query.items is None else query.items.ids.tobytes().hex()]
        pool = candidates.ids if candidates is not None else self._all_items()
        return ItemList(pool, self._scores(self._key("|".join(parts).encode()), pool)).top(k)


class SyntheticDataset(DatasetSource):
    """A seeded synthetic dataset with popularity and sequential structure, of any size.

    See :func:`recai.data.synthetic_dataset` for what each parameter shapes.

    >>> SyntheticDataset(n_users=10, n_items=8, mean_length=5).dataset().stats()["interactions"]
    50
    """

    def __init__(
        self,
        n_users: Annotated[
            int, Field(ge=1, le=MAX_USERS, description=f"number of users (at most {MAX_USERS:,})")
        ] = 60,
        n_items: Annotated[
            int, Field(ge=1, le=MAX_ITEMS, description=f"number of items (at most {MAX_ITEMS:,})")
        ] = 40,
        mean_length: Annotated[
            int,
            Field(
                ge=1,
                le=100_000,
                description="events per user on average (n_users * mean_length in all, at most "
                f"{MAX_EVENTS:,})",
            ),
            AfterValidator(_events_fit),
        ] = 12,
        seed: Seed = 0,
        p_follow: Annotated[
            float,
            Field(ge=0, le=1, description="chance that the next event follows the item chain"),
        ] = 0.8,
        cluster_size: Annotated[
            int, Field(ge=1, le=MAX_ITEMS, description="items per latent cluster")
        ] = 20,
        popularity_exponent: Annotated[
            float,
            Field(gt=0, le=100, description="item popularity: rank r weighs about r**-exponent"),
        ] = 1.0,
        activity_exponent: Annotated[
            float,
            Field(
                ge=0.1,  # smaller overflows float64 weights: (1 - u) ** (-1 / exponent)
                le=100,
                description="Pareto tail index of user activity (smaller: more skewed), 0.1 .. 100",
            ),
        ] = 1.2,
        ratings: Annotated[bool, Field(description="add 1-5 ratings")] = False,
    ):
        self.n_users, self.n_items, self.mean_length, self.seed = (
            n_users,
            n_items,
            mean_length,
            seed,
        )
        self.p_follow, self.cluster_size = p_follow, cluster_size
        self.popularity_exponent, self.activity_exponent = popularity_exponent, activity_exponent
        self.ratings = ratings

    def load(self) -> Dataset:
        return synthetic_dataset(
            self.n_users,
            self.n_items,
            self.mean_length,
            seed=self.seed,
            p_follow=self.p_follow,
            cluster_size=self.cluster_size,
            popularity_exponent=self.popularity_exponent,
            activity_exponent=self.activity_exponent,
            ratings=self.ratings,
        )


class FilteredDataset(DatasetSource):
    """Another dataset component with filters applied, in this order: duplicates of a (user, item)
    pair (``dedup``: keep the ``"first"`` event, the ``"last"``, or ``"none"`` removed), ratings
    below ``min_rating``, then users and items with fewer than ``k_core`` events (repeated until
    none is left; indices re-numbered). What each step removed is in ``dataset.info["filters"]``,
    and the dataset's name says which filters made it (``movielens-100k|dedup=first,5-core``).

    >>> from recai.data import synthetic_dataset
    >>> data = FilteredDataset(DatasetSource.of(synthetic_dataset()), k_core=5).dataset()
    >>> [step["name"] for step in data.info["filters"]]
    ['deduplicate', 'k_core']
    """

    def __init__(
        self,
        source: Annotated[DatasetSource, Field(description="the dataset component to filter")],
        min_rating: Annotated[
            float | None, Field(description="keep events rated at least this (None: keep all)")
        ] = None,
        k_core: Annotated[
            int | None,
            Field(
                ge=1,
                le=1_000_000,
                description="minimum events per user and per item (None: no k-core)",
            ),
        ] = None,
        dedup: Annotated[
            Literal["first", "last", "none"],
            Field(description="which event of a repeated (user, item) pair to keep"),
        ] = "first",
    ):
        self.source, self.min_rating, self.k_core, self.dedup = source, min_rating, k_core, dedup

    def load(self) -> Dataset:
        data, _ = apply_filters(
            self.source.dataset(), dedup=self.dedup, min_rating=self.min_rating, k_core=self.k_core
        )
        return data

    def __repr__(self) -> str:
        return (
            f"FilteredDataset({self.source!r}, min_rating={self.min_rating}, "
            f"k_core={self.k_core}, dedup={self.dedup!r})"
        )
