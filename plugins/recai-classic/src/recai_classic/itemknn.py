"""ItemKNN: item-item cosine similarity of co-occurrence, pruned to each item's nearest neighbours.

With ``n_i`` the number of training users of item ``i`` and ``c_ij`` the number who have both
``i`` and ``j``, the similarity is ``c_ij / (sqrt(n_i * n_j) + shrink)``. Each item keeps its
``neighbors`` most similar items (ties to the lower index). A user's score for item ``j`` is the
sum of ``sim(i, j)`` over the distinct items ``i`` of their history, where the pruning decides
which pairs count (``prune_by``):

- ``"history"`` (default): pair ``(i, j)`` counts when ``j`` is among ``i``'s neighbours — each
  history item spreads its score to its own nearest items;
- ``"candidate"``: pair ``(i, j)`` counts when ``i`` is among ``j``'s neighbours — each candidate
  collects score only from its own nearest items (Deshpande & Karypis' item-based top-N, and
  RecBole's ``ItemKNN``).

**Public internals** (for explainers, knowledge prompters and soft filters):
:attr:`ItemKNN.similarity` (the pruned CSR matrix), :meth:`ItemKNN.similarity_row` and
:meth:`ItemKNN.similar_items`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

import recai
from recai.data import Split
from recai.types import ItemList, Query

from ._common import FittedState, as_index_array, check_items, history_matrix

__all__ = ["ItemKNN", "cosine_neighbours"]

_BLOCK_CELLS = 1 << 22  # dense cells per block of rows while pruning (32 MiB of float64)


def cosine_neighbours(user_items: Any, neighbors: int, shrink: float = 0.0) -> Any:
    """The pruned item-item similarity matrix (CSR, ``n_items x n_items``) of a binary
    user x item matrix: row ``i`` holds item ``i``'s ``neighbors`` most similar items (positive
    similarities only; among equal similarities the lower item index wins)."""
    from scipy import sparse

    x = sparse.csr_matrix(user_items, dtype=np.float64)
    n_items = x.shape[1]
    co = (x.T @ x).tocsr()
    n = np.asarray(x.sum(axis=0)).ravel()
    k = min(neighbors, n_items)
    block = max(1, _BLOCK_CELLS // max(1, n_items))
    parts_r, parts_c, parts_v = [], [], []
    for a in range(0, n_items, block):
        b = min(a + block, n_items)
        c = co[a:b].toarray()
        c[np.arange(b - a), np.arange(a, b)] = 0.0  # an item is not its own neighbour
        denom = np.sqrt(n[a:b, None] * n[None, :]) + shrink
        sim = np.divide(c, denom, out=np.zeros_like(c), where=c > 0)
        keep = sim > 0
        if k < n_items:
            kth = -np.partition(-sim, k - 1, axis=1)[:, k - 1 : k]  # k-th largest per row
            above = sim > kth
            tied = sim == kth
            room = k - above.sum(axis=1, keepdims=True)
            keep &= above | (tied & (np.cumsum(tied, axis=1) <= room))
        rows, cols = np.nonzero(keep)
        parts_r.append(rows + a)
        parts_c.append(cols)
        parts_v.append(sim[rows, cols])
    rows = np.concatenate(parts_r) if parts_r else np.zeros(0, dtype=np.int64)
    cols = np.concatenate(parts_c) if parts_c else np.zeros(0, dtype=np.int64)
    vals = np.concatenate(parts_v) if parts_v else np.zeros(0)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n_items, n_items))


class ItemKNN(FittedState, recai.Ranker, recai.Retriever):
    """Item-based collaborative filtering with co-occurrence cosine similarity.

    As a retriever, a query's seed items (or, for ``Query(user=...)``, the user's training
    history) pick the items most similar to them, seeds excluded; only items with a positive
    similarity are returned, so the list can be shorter than ``k``.

    >>> from recai.data import synthetic_dataset, leave_one_out
    >>> model = ItemKNN(neighbors=20)
    >>> model.fit(leave_one_out(synthetic_dataset(seed=1)))
    >>> model.score([np.array([0, 1])]).shape
    (1, 40)
    """

    component = "itemknn.v1"

    def __init__(
        self,
        neighbors: Annotated[
            int,
            Field(ge=1, le=100_000, description="how many most similar items each item keeps"),
        ] = 100,
        shrink: Annotated[
            float,
            Field(ge=0, le=1e12, description="added to the cosine's denominator; damps rare pairs"),
        ] = 0.0,
        prune_by: Annotated[
            Literal["history", "candidate"],
            Field(
                description="whose neighbour lists decide which pairs score: each history "
                "item's ('history') or each candidate item's ('candidate', RecBole's ItemKNN)"
            ),
        ] = "history",
    ) -> None:
        if neighbors < 1:
            raise ValueError(f"neighbors must be at least 1, got {neighbors}")
        if shrink < 0:
            raise ValueError(f"shrink must not be negative, got {shrink}")
        self.neighbors = int(neighbors)
        self.shrink = float(shrink)
        if prune_by not in ("history", "candidate"):
            raise ValueError(f"prune_by must be 'history' or 'candidate', got {prune_by!r}")
        self.prune_by = prune_by
        self.similarity: Any = None  # scipy.sparse CSR, n_items x n_items
        self._weights: Any = None  # what a history row multiplies: similarity or its transpose
        self.user_items: Any = None  # training histories (binary CSR), for Query(user=...)

    # -- FittedState ------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {"neighbors": self.neighbors, "shrink": self.shrink, "prune_by": self.prune_by}

    def state(self) -> dict[str, np.ndarray]:
        self.require_fitted()
        w, x = self.similarity, self.user_items
        return {
            "sim_data": w.data,
            "sim_indices": w.indices,
            "sim_indptr": w.indptr,
            "user_indices": x.indices,
            "user_indptr": x.indptr,
        }

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        from scipy import sparse

        n = len(arrays["sim_indptr"]) - 1
        self.similarity = sparse.csr_matrix(
            (arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]), shape=(n, n)
        )
        ui = arrays["user_indices"]
        self.user_items = sparse.csr_matrix(
            (np.ones(len(ui)), ui, arrays["user_indptr"]), shape=(len(arrays["user_indptr"]) - 1, n)
        )
        self._set_weights()

    def _set_weights(self) -> None:
        w = self.similarity
        self._weights = w if self.prune_by == "history" else w.T.tocsr()

    # -- learning ---------------------------------------------------------------------------------
    def fit(self, split: Split) -> None:
        train = split.train
        n_items = split.dataset.n_items
        self.user_items = history_matrix(train.histories(), n_items, self.component)
        self.similarity = cosine_neighbours(self.user_items, self.neighbors, self.shrink)
        self._set_weights()
        self.remember(split)

    # -- Ranker -----------------------------------------------------------------------------------
    def score(
        self,
        histories: Sequence[np.ndarray],
        items: np.ndarray | None = None,
        *,
        users: np.ndarray | None = None,
    ) -> np.ndarray:
        n_items = self.require_fitted()
        h = history_matrix(histories, n_items, self.component)
        if items is None:
            return (h @ self._weights).toarray()
        cand = np.asarray(items, dtype=np.int64)
        check_items(cand.reshape(-1), n_items, self.component)
        if cand.ndim == 1:
            return (h @ self._weights[:, cand]).toarray()
        if cand.shape[0] != len(histories):
            raise ValueError(
                f"per-user candidates have {cand.shape[0]} rows for {len(histories)} users"
            )
        return np.take_along_axis((h @ self._weights).toarray(), cand, axis=1)

    # -- public internals -------------------------------------------------------------------------
    def similarity_row(self, item: int) -> np.ndarray:
        """Row ``item`` of the pruned similarity matrix as a dense vector (``n_items``): the
        similarity of ``item`` to each of its kept neighbours, 0 elsewhere."""
        n_items = self.require_fitted()
        check_items(np.array([item]), n_items, self.component)
        return self.similarity[int(item)].toarray().ravel()

    def similar_items(self, item: int, k: int = 10) -> ItemList:
        """``item``'s ``k`` most similar kept neighbours, best first (ties to the lower index);
        shorter than ``k`` when it has fewer neighbours with a positive similarity."""
        n_items = self.require_fitted()
        check_items(np.array([item]), n_items, self.component)
        row = self.similarity[int(item)]
        return ItemList(row.indices.astype(np.int64), row.data.astype(np.float64)).top(k)

    # -- Retriever --------------------------------------------------------------------------------
    def _seeds(self, query: Query) -> np.ndarray:
        if query.items is not None:
            return as_index_array(query.items)
        if query.user is not None:
            x = self.user_items
            if not 0 <= query.user < x.shape[0]:
                raise ValueError(
                    f"{self.component} knows users 0..{x.shape[0] - 1}, not {query.user}"
                )
            return x.indices[x.indptr[query.user] : x.indptr[query.user + 1]].astype(np.int64)
        raise ValueError(f"{self.component} retrieves by seed items or a user, not by text alone")

    def retrieve(
        self, query: Query, k: int = 10, *, candidates: ItemList | None = None
    ) -> ItemList:
        n_items = self.require_fitted()
        seeds = self._seeds(query)
        scores = (history_matrix([seeds], n_items, self.component) @ self._weights).toarray()[0]
        related = np.flatnonzero(scores > 0)
        if candidates is not None:
            pool = np.unique(as_index_array(candidates))
            check_items(pool, n_items, self.component)
            related = np.intersect1d(related, pool, assume_unique=True)
        related = related[~np.isin(related, seeds)]
        return ItemList(related, scores[related]).top(k)

    def __repr__(self) -> str:
        fitted = f"fitted on {self.n_items} items" if self.n_items is not None else "not fitted"
        return (
            f"ItemKNN(neighbors={self.neighbors}, shrink={self.shrink}, "
            f"prune_by={self.prune_by!r}, {fitted})"
        )
