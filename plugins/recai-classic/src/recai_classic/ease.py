"""EASE: Embarrassingly Shallow Autoencoder (Steck, 2019), a closed-form item-item model.

With ``X`` the binary user x item training matrix, EASE solves
``min_B ||X - X B||^2 + l2 ||B||^2`` subject to ``diag(B) = 0``. With ``P = (X^T X + l2 I)^-1``
the solution is ``B_ij = -P_ij / P_jj`` (``i != j``), ``B_jj = 0``. A user's score for item ``j``
is ``sum_i B_ij`` over the distinct items ``i`` of their history.

**The dense limit.** ``B`` is a dense ``n_items x n_items`` matrix: fitting holds the Gram matrix
and its inverse in float64 (``2 x n_items^2 x 8`` bytes at the peak: 45 MB for 1,682 items,
6.4 GB for 20,000) and the fitted model keeps ``B`` in float32 (``n_items^2 x 4`` bytes: 11 MB for
1,682 items, 1.6 GB for 20,000). Inverting costs ``O(n_items^3)``. ``fit`` refuses catalogs above
``max_items`` (20,000 by default) with an error that says so; for larger catalogs use
``itemknn.v1`` (sparse) or raise ``max_items`` on a machine with the memory.

**Public internals**: :attr:`EASE.weights` (``B``), :meth:`EASE.similarity_row` (row ``i`` of
``B``: how much having item ``i`` adds to every item's score) and :meth:`EASE.similar_items`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import Field

import recai
from recai.data import Split
from recai.errors import RecaiError
from recai.types import ItemList, Query

from ._common import (
    FittedState,
    as_index_array,
    check_candidates,
    check_items,
    history_matrix,
    take_candidates,
)

__all__ = ["EASE", "ease_weights", "dense_fit_bytes"]


MAX_ITEMS = 100_000
"""Largest max_items: fitting needs :func:`dense_fit_bytes` of it (160 GB)."""


def dense_fit_bytes(n_items: int) -> int:
    """Peak bytes of the dense arrays while fitting EASE on ``n_items`` items (two float64
    ``n_items x n_items`` matrices).

    >>> dense_fit_bytes(20_000) / 1e9
    6.4
    """
    return 2 * n_items * n_items * 8


def ease_weights(user_items: Any, l2: float) -> np.ndarray:
    """The EASE weight matrix ``B`` (float64, ``n_items x n_items``, zero diagonal) of a binary
    user x item matrix (dense or scipy.sparse).

    >>> x = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1]])
    >>> b = ease_weights(x, l2=1.0)
    >>> np.allclose(np.diag(b), 0), b.shape
    (True, (3, 3))
    """
    from scipy import linalg, sparse
    from scipy.linalg import lapack

    x = sparse.csr_matrix(user_items, dtype=np.float64)
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += l2
    # X^T X + l2 I is symmetric positive definite: invert through its Cholesky factor, in place
    # (about half the work of an LU inverse), then mirror the upper triangle LAPACK fills.
    factor, info = lapack.dpotrf(gram, lower=0, overwrite_a=1, clean=1)
    if info == 0:
        p, info = lapack.dpotri(factor, lower=0, overwrite_c=1)
    if info != 0:  # not positive definite in floating point: fall back to LU
        gram = np.asarray((x.T @ x).toarray(), dtype=np.float64)
        gram[np.diag_indices_from(gram)] += l2
        p = linalg.inv(gram, overwrite_a=True, check_finite=False)
    else:
        upper = np.triu_indices_from(p, 1)
        p.T[upper] = p[upper]
    del gram
    p /= -np.diag(p)[None, :]
    p[np.diag_indices_from(p)] = 0.0
    return p


class EASE(FittedState, recai.Ranker, recai.Retriever):
    """EASE (closed-form ridge regression of each item on all others).

    As a retriever, a query's seed items (or, for ``Query(user=...)``, the user's training
    history) are the history, and the items with the highest scores are returned, seeds
    excluded.

    >>> from recai.data import synthetic_dataset, leave_one_out
    >>> model = EASE(l2=10.0)
    >>> model.fit(leave_one_out(synthetic_dataset(seed=1)))
    >>> model.score([np.array([0, 1])]).shape
    (1, 40)
    >>> model.similar_items(0, 3).ids.shape
    (3,)
    """

    component = "ease.v1"

    def __init__(
        self,
        l2: Annotated[
            float, Field(gt=0, le=1e12, description="ridge penalty on the item-item weights")
        ] = 500.0,
        max_items: Annotated[
            int,
            Field(
                ge=1,
                le=MAX_ITEMS,
                description="refuse catalogs larger than this (dense n_items^2 matrix; at most "
                f"{MAX_ITEMS:,}: {dense_fit_bytes(MAX_ITEMS) / 1e9:.0f} GB)",
            ),
        ] = 20_000,
    ) -> None:
        if l2 <= 0:
            raise ValueError(f"l2 must be positive, got {l2}")
        self.l2 = float(l2)
        self.max_items = int(max_items)
        self.weights: np.ndarray | None = None
        """``B``, float32 ``(n_items, n_items)``: the score of item ``j`` is ``sum_i B[i, j]``
        over the user's items ``i``."""
        self.user_items: Any = None  # training histories (binary CSR), for Query(user=...)

    # -- FittedState ------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {"l2": self.l2, "max_items": self.max_items}

    def state(self) -> dict[str, np.ndarray]:
        self.require_fitted()
        x = self.user_items
        return {"weights": self.weights, "user_indices": x.indices, "user_indptr": x.indptr}

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        from scipy import sparse

        w = np.asarray(arrays["weights"], dtype=np.float32)
        if w.ndim != 2 or w.shape[0] != w.shape[1]:
            raise ValueError(f"EASE weights must be square, got shape {w.shape}")
        self.weights = w
        ui = arrays["user_indices"]
        n_users = len(arrays["user_indptr"]) - 1
        self.user_items = sparse.csr_matrix(
            (np.ones(len(ui)), ui, arrays["user_indptr"]), shape=(n_users, w.shape[0])
        )

    # -- learning ---------------------------------------------------------------------------------
    def fit(self, split: Split) -> None:
        n_items = split.dataset.n_items
        if n_items > self.max_items:
            need = dense_fit_bytes(n_items) / 1e9
            raise RecaiError(
                f"{self.component} keeps a dense {n_items:,} x {n_items:,} item-item matrix: "
                f"fitting needs about {need:,.1f} GB, above the limit max_items={self.max_items:,}. "
                "Use itemknn.v1 (sparse) for a catalog this large, or raise max_items if the "
                "machine has the memory."
            )
        self.user_items = history_matrix(split.train.histories(), n_items, self.component)
        self.weights = ease_weights(self.user_items, self.l2).astype(np.float32)
        self.remember(split)

    def _weights(self) -> np.ndarray:
        self.require_fitted()
        assert self.weights is not None
        return self.weights

    # -- Ranker -----------------------------------------------------------------------------------
    def score(
        self,
        histories: Sequence[np.ndarray],
        items: np.ndarray | None = None,
        *,
        users: np.ndarray | None = None,
    ) -> np.ndarray:
        n_items = self.require_fitted()
        w = self._weights()
        cand = (
            None
            if items is None
            else check_candidates(items, len(histories), n_items, self.component)
        )
        h = history_matrix(histories, n_items, self.component)
        if cand is not None and cand.ndim == 1:
            return np.asarray(h @ w[:, cand], dtype=np.float64)
        return take_candidates(np.asarray(h @ w, dtype=np.float64), cand)

    # -- public internals -------------------------------------------------------------------------
    def similarity_row(self, item: int) -> np.ndarray:
        """Row ``item`` of ``B`` (float32, ``n_items``): what having ``item`` in a history adds
        to every item's score. Entries can be negative (items that substitute for each other)."""
        w = self._weights()
        check_items(np.array([item]), len(w), self.component)
        return w[int(item)].copy()

    def similar_items(self, item: int, k: int = 10) -> ItemList:
        """The ``k`` items with the largest weight in :meth:`similarity_row`, best first (only
        positive weights: the list can be shorter than ``k``)."""
        row = self.similarity_row(item).astype(np.float64)
        related = np.flatnonzero(row > 0)
        return ItemList(related, row[related]).top(k)

    # -- Retriever --------------------------------------------------------------------------------
    def retrieve(
        self, query: Query, k: int = 10, *, candidates: ItemList | None = None
    ) -> ItemList:
        n_items = self.require_fitted()
        if query.items is not None:
            seeds = as_index_array(query.items)
        elif query.user is not None:
            x = self.user_items
            if not 0 <= query.user < x.shape[0]:
                raise ValueError(
                    f"{self.component} knows users 0..{x.shape[0] - 1}, not {query.user}"
                )
            seeds = x.indices[x.indptr[query.user] : x.indptr[query.user + 1]].astype(np.int64)
        else:
            raise ValueError(
                f"{self.component} retrieves by seed items or a user, not by text alone"
            )
        scores = self.score([seeds])[0]
        pool = None if candidates is None else np.unique(as_index_array(candidates))
        if pool is not None:
            check_items(pool, n_items, self.component)
        return ItemList.from_scores(scores, k, exclude=seeds, candidates=pool)

    def __repr__(self) -> str:
        fitted = f"fitted on {self.n_items} items" if self.n_items is not None else "not fitted"
        return f"EASE(l2={self.l2}, {fitted})"
