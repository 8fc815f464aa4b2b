"""Popularity: every item scored by how often it occurs in the training interactions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import recai
from recai.data import Split
from recai.types import ItemList, Query

from ._common import FittedState, as_index_array, check_items

__all__ = ["Popularity"]


class Popularity(FittedState, recai.Ranker, recai.Retriever):
    """Scores items by their number of training interactions; the same list for every user.

    As a retriever it returns the most popular items, leaving out the query's seed items and
    keeping only ``candidates`` when given. Ties go to the lower item index.

    >>> from recai.data import synthetic_dataset, leave_one_out
    >>> model = Popularity()
    >>> model.fit(leave_one_out(synthetic_dataset(seed=1)))
    >>> len(model.rank([], k=3))
    3
    """

    component = "popularity.v1"

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    # -- FittedState ------------------------------------------------------------------------------
    def params(self) -> dict[str, object]:
        return {}

    def state(self) -> dict[str, np.ndarray]:
        return {"counts": self._counts()}

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.counts = np.asarray(arrays["counts"], dtype=np.float64)

    # -- learning ---------------------------------------------------------------------------------
    def fit(self, split: Split) -> None:
        train = split.train
        self.counts = np.bincount(train.items, minlength=split.dataset.n_items).astype(np.float64)
        self.remember(split)

    def _counts(self) -> np.ndarray:
        self.require_fitted()
        assert self.counts is not None
        return self.counts

    # -- Ranker -----------------------------------------------------------------------------------
    def score(
        self,
        histories: Sequence[np.ndarray],
        items: np.ndarray | None = None,
        *,
        users: np.ndarray | None = None,
    ) -> np.ndarray:
        counts = self._counts()
        if items is None:
            return np.tile(counts, (len(histories), 1))
        cand = np.asarray(items, dtype=np.int64)
        check_items(cand.reshape(-1), len(counts), self.component)
        if cand.ndim == 1:
            return np.tile(counts[cand], (len(histories), 1))
        if cand.shape[0] != len(histories):
            raise ValueError(
                f"per-user candidates have {cand.shape[0]} rows for {len(histories)} users"
            )
        return counts[cand]

    # -- Retriever --------------------------------------------------------------------------------
    def retrieve(
        self, query: Query, k: int = 10, *, candidates: ItemList | None = None
    ) -> ItemList:
        counts = self._counts()
        seeds = as_index_array(query.items) if query.items is not None else None
        pool = None if candidates is None else np.unique(as_index_array(candidates))
        if pool is not None:
            check_items(pool, len(counts), self.component)
        return ItemList.from_scores(counts, k, exclude=seeds, candidates=pool)

    def __repr__(self) -> str:
        fitted = f"fitted on {self.n_items} items" if self.n_items is not None else "not fitted"
        return f"Popularity({fitted})"
