"""Collaborative knowledge: global co-occurrence, history-based I2I and a recommender's U2I.

All three read the training interactions only. Co-occurrence counts come from one sparse
product: with ``X`` the users x items 0/1 matrix of ``split.train`` (a user who interacted with
an item twice counts once), ``C = X^T X`` holds ``c_ij``, the users who interacted with both
``i`` and ``j``, and its diagonal ``n_i``, the users of ``i``. The normalised cosine is
``c_ij / sqrt(n_i n_j)``.

- ``knowledge-cooccurrence.v1``: for each candidate, the items its users most often also chose
  ("41% of the 452 users of Toy Story (1995) also chose Star Wars (1977)"), marking the ones in
  this user's history; a fact is more useful the closer the candidate is to the user's recent
  items (the sum of cosines).
- ``knowledge-i2i.v1``: for each of the user's most recent items, its top co-occurring items,
  among the candidates (``scope = "candidates"``) or over the whole catalog (``"all"``), by
  count, cosine, the scores of a ranker given that one item as a history (``"ranker"``: a
  sequential model's next-item scores, or a factorisation model's item-item affinity), or the
  cosine of a fitted model's item embeddings (``"embedding"``: BPR's factors, SASRec's item
  vectors; any ranker with ``item_embeddings()``, read once at fit time, the model fitted on
  the training split).
- ``knowledge-u2i.v1``: a ranker's (e.g. SASRec's) preferred candidates for this user's history,
  the top ``top`` of them in its order.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

import recai
from recai.data import Interactions, Split
from recai.errors import DataError

from .base import Fact, FactPrompter, KnowledgeParams, recent, scaled

__all__ = [
    "CoOccurrence",
    "CooccurrenceKnowledge",
    "I2IKnowledge",
    "U2IKnowledge",
    "CooccurrenceParams",
    "I2IParams",
    "U2IParams",
]


class CoOccurrence:
    """``c_ij`` and ``n_i`` of one training log, with the top neighbours of every item.

    >>> from recai.data import Interactions
    >>> log = Interactions([0, 0, 1, 1, 2], [0, 1, 0, 1, 2], n_users=3, n_items=3)
    >>> co = CoOccurrence(log)
    >>> co.users.tolist(), co.counts(np.array([0]), np.array([1, 2])).tolist()
    ([2, 2, 1], [[2.0, 0.0]])
    >>> co.cosine(np.array([0]), np.array([1])).tolist()
    [[1.0]]
    """

    def __init__(self, train: Interactions):
        import scipy.sparse as sp

        n_users, n_items = int(train.n_users), int(train.n_items)
        x = sp.csr_matrix(
            (np.ones(len(train), dtype=np.float32), (train.users, train.items)),
            shape=(n_users, n_items),
        )
        x.sum_duplicates()
        x.data[:] = 1.0  # a user who chose an item twice counts once
        c = (x.T @ x).tocsr()
        #: ``n_i``: the users of each item.
        self.users = np.asarray(c.diagonal(), dtype=np.int64)
        c.setdiag(0)
        c.eliminate_zeros()
        c.sort_indices()
        #: ``c_ij`` with a zero diagonal (sparse, float32 counts).
        self.matrix = c
        self.n_items = n_items

    def arrays(self) -> dict[str, np.ndarray]:
        """The counts as plain arrays (for a saved fit): CSR parts and ``n_i``."""
        m = self.matrix
        return {
            "co_data": m.data,
            "co_indices": m.indices,
            "co_indptr": m.indptr,
            "co_users": self.users,
        }

    @classmethod
    def from_arrays(cls, state: dict[str, Any]) -> CoOccurrence:
        """The counts :meth:`arrays` wrote, back (same matrix, same neighbour order)."""
        import scipy.sparse as sp

        users = np.asarray(state["co_users"], dtype=np.int64)
        n = len(users)
        indptr = np.asarray(state["co_indptr"])
        if len(indptr) != n + 1:
            raise ValueError(f"co-occurrence rows: {len(indptr) - 1} for {n} items")
        out = cls.__new__(cls)
        out.matrix = sp.csr_matrix(
            (np.asarray(state["co_data"]), np.asarray(state["co_indices"]), indptr), shape=(n, n)
        )
        out.matrix.has_sorted_indices = True  # saved sorted
        out.users = users
        out.n_items = n
        return out

    def counts(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``c_ij`` for ``rows`` x ``cols`` (dense)."""
        if not len(rows) or not len(cols):
            return np.zeros((len(rows), len(cols)), dtype=np.float64)
        return np.asarray(self.matrix[rows][:, cols].toarray(), dtype=np.float64)

    def cosine(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``c_ij / sqrt(n_i n_j)`` for ``rows`` x ``cols`` (0 where an item has no users)."""
        counts = self.counts(rows, cols)
        norm = np.sqrt(np.outer(self.users[rows], self.users[cols]).astype(np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(norm > 0, counts / np.where(norm > 0, norm, 1.0), 0.0)

    def similarity(self, rows: np.ndarray, cols: np.ndarray, measure: str) -> np.ndarray:
        return self.cosine(rows, cols) if measure == "cosine" else self.counts(rows, cols)

    def top_neighbours(
        self, item: int, k: int, measure: str, min_count: int, exclude: set[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``k`` items most co-occurring with ``item`` (by ``measure``; at least
        ``min_count`` shared users; ties: the lower index), their values and shared users."""
        m = self.matrix
        start, end = m.indptr[item], m.indptr[item + 1]
        cols = m.indices[start:end].astype(np.int64)
        counts = m.data[start:end].astype(np.float64)
        keep = counts >= min_count
        if exclude:
            keep &= ~np.isin(cols, np.fromiter(exclude, dtype=np.int64, count=len(exclude)))
        cols, counts = cols[keep], counts[keep]
        if measure == "cosine":
            values = counts / np.sqrt(float(self.users[item]) * self.users[cols])
        else:
            values = counts
        pick = np.argsort(-values, kind="stable")[:k]  # cols are sorted: ties, the lower index
        return cols[pick], values[pick], counts[pick]


Measure = Literal["count", "cosine"]


class CooccurrenceParams(KnowledgeParams):
    """``knowledge-cooccurrence.v1``."""

    neighbours: int = Field(3, ge=1, le=50, description="co-occurring items named per candidate")
    measure: Measure = Field(
        "cosine",
        description="how neighbours are chosen: 'count' (the most shared users) or 'cosine' "
        "(c_ij / sqrt(n_i n_j), which discounts items everyone chose)",
    )
    min_count: int = Field(
        3, ge=1, le=1_000_000, description="fewest shared users for a co-occurrence to be told"
    )
    recent: int = Field(
        10, ge=1, le=10_000, description="recent history items the usefulness is measured on"
    )
    max_facts: int = Field(10, ge=1, le=10_000, description="most candidates described")


class CooccurrenceKnowledge(FactPrompter):
    """``knowledge-cooccurrence.v1``: what each candidate's users also chose (module docstring)."""

    Params = CooccurrenceParams
    name = "knowledge-cooccurrence.v1"
    default_header = "What other users chose together (from the interaction log):"
    params: CooccurrenceParams

    def _fit(self, split: Split) -> None:
        p = self.params
        self.co = CoOccurrence(split.train)
        # every item's neighbours, once: a request only gathers rows
        k = p.neighbours
        self.table = np.full((self.n_items, k), -1, dtype=np.int64)
        self.shared = np.zeros((self.n_items, k), dtype=np.int64)
        for item in np.flatnonzero(self.co.users > 0).tolist():
            items, _, shared = self.co.top_neighbours(item, k, p.measure, p.min_count)
            self.table[item, : len(items)] = items
            self.shared[item, : len(items)] = shared

    def _state(self) -> dict[str, Any]:
        return {**self.co.arrays(), "table": self.table, "shared": self.shared}

    def _restore(self, state: dict[str, Any]) -> None:
        self.co = CoOccurrence.from_arrays(state)
        self.table = np.asarray(state["table"], dtype=np.int64)
        self.shared = np.asarray(state["shared"], dtype=np.int64)
        if self.table.shape != (self.n_items, self.params.neighbours):
            raise ValueError(
                f"the neighbour table is {self.table.shape}, the params ask for "
                f"({self.n_items}, {self.params.neighbours})"
            )

    def _facts(self, history: np.ndarray, candidates: np.ndarray, query: str | None) -> list[Fact]:
        p = self.params
        if not len(candidates):
            return []
        rec = recent(history, p.recent)
        affinity = self.co.cosine(rec, candidates).sum(axis=0) if len(rec) else None
        utility = scaled(affinity) if affinity is not None else np.full(len(candidates), 0.5)
        seen = set(history.tolist())
        facts = []
        for pos, cand in enumerate(candidates.tolist()):
            users = int(self.co.users[cand])
            row = self.table[cand]
            if not users or row[0] < 0:
                continue
            parts = []
            for item, count in zip(row.tolist(), self.shared[cand].tolist(), strict=True):
                if item < 0:
                    break
                mark = " (this user chose it)" if item in seen else ""
                parts.append(f"{100 * count / users:.0f}% {self.title(item)}{mark}")
            text = (
                f"{self.title(cand)}: {users} user{'s' if users != 1 else ''} chose it; of them, "
                + ", ".join(parts)
                + " also chose"
                + (" those" if len(parts) > 1 else " that")
            )
            facts.append(Fact(text, float(utility[pos]), (int(cand),)))
        return facts


class I2IParams(KnowledgeParams):
    """``knowledge-i2i.v1``."""

    recent: int = Field(5, ge=1, le=1_000, description="most recent history items described")
    neighbours: int = Field(3, ge=1, le=100, description="top co-occurring items per item")
    scope: Literal["candidates", "all"] = Field(
        "candidates",
        description="where neighbours are looked for: among the candidates, or over the whole "
        "catalog (items in the user's history left out)",
    )
    measure: Literal["count", "cosine", "ranker", "embedding"] = Field(
        "cosine",
        description="how items are related: shared users ('count'), c_ij / sqrt(n_i n_j) "
        "('cosine'), the scores of `ranker` given the one item as a history ('ranker'), or "
        "the cosine of `ranker`'s learned item vectors ('embedding': its item_embeddings(), "
        "as bpr.v1 and sasrec.v1 have)",
    )
    ranker: recai.Ranker | None = Field(
        None,
        description="the model measure='ranker' reads the scores of, or measure='embedding' "
        "the item vectors of (fitted on the training split)",
    )
    min_similarity: float | None = Field(
        None,
        ge=0,
        le=1,
        description="measure='embedding': neighbours with a lower cosine are not told "
        "(default: any positive cosine)",
    )
    min_count: int = Field(
        2, ge=1, le=1_000_000, description="fewest shared users for 'count' and 'cosine'"
    )
    max_facts: int = Field(5, ge=1, le=10_000, description="most history items described")

    @model_validator(mode="after")
    def _ranker_fits_measure(self) -> I2IParams:
        if self.measure == "ranker" and self.ranker is None:
            raise ValueError(
                "ranker: measure = 'ranker' reads a ranker's item-to-item scores; name a ranker "
                "(e.g. a sasrec.v1 component), or set measure to 'cosine' or 'count'"
            )
        if self.measure == "embedding" and self.ranker is None:
            raise ValueError(
                "ranker: measure = 'embedding' reads a fitted model's item vectors; name a "
                "ranker with item_embeddings() (e.g. a bpr.v1 or sasrec.v1 component), or set "
                "measure to 'cosine' or 'count'"
            )
        ranker = self.ranker
        if (
            self.measure == "embedding"
            and not isinstance(ranker, recai.roles.PendingRef)  # a recipe checked, not built
            and not callable(getattr(ranker, "item_embeddings", None))
        ):
            raise ValueError(
                f"ranker: measure = 'embedding' reads the ranker's item vectors, and "
                f"{_label(ranker)} has no item_embeddings() (bpr.v1 and sasrec.v1 have); use "
                "measure = 'ranker' to read its scores instead"
            )
        if self.measure not in ("ranker", "embedding") and self.ranker is not None:
            raise ValueError(
                f"ranker: measure = {self.measure!r} does not read a ranker; leave ranker out, "
                "or set measure = 'ranker' or 'embedding'"
            )
        if self.measure != "embedding" and self.min_similarity is not None:
            raise ValueError(
                "min_similarity: applies to measure = 'embedding' (for 'count' and 'cosine' "
                "the evidence bar is min_count)"
            )
        return self


def _label(component: Any) -> str:
    """A component's registered name (or class) for messages."""
    name = recai.roles.describe_component(component)
    if isinstance(name, dict):
        return str(name.get("use") or str(name.get("class", "")).rsplit(".", 1)[-1])
    return str(name)


class I2IKnowledge(FactPrompter):
    """``knowledge-i2i.v1``: the items most related to each recent history item."""

    Params = I2IParams
    name = "knowledge-i2i.v1"
    default_header = "Items related to this user's most recent ones (from the interaction log):"
    params: I2IParams

    def _fit(self, split: Split) -> None:
        self.co = CoOccurrence(split.train)
        self.vectors: np.ndarray | None = None
        if self.params.ranker is not None:
            recai.ensure_fitted(self.params.ranker, split)
        if self.params.measure == "embedding":
            self.vectors = self._unit_vectors(split)

    def _state(self) -> dict[str, Any]:
        return {**self.co.arrays(), "vectors": self.vectors}

    def _restore(self, state: dict[str, Any]) -> None:
        self.co = CoOccurrence.from_arrays(state)
        vectors = state["vectors"]
        self.vectors = None if vectors is None else np.asarray(vectors, dtype=np.float64)
        if self.params.measure == "embedding" and self.vectors is None:
            raise ValueError("measure = 'embedding' and no item vectors were saved")

    def _unit_vectors(self, split: Split) -> np.ndarray:
        """The ranker's item vectors (``item_embeddings()``, fitted on ``split``), each scaled to
        length 1 (a zero vector stays zero: no similarity to anything)."""
        ranker = self.params.ranker
        label = _label(ranker)
        read = getattr(ranker, "item_embeddings", None)
        if not callable(read):
            raise DataError(
                f"{self.name}: ranker: measure = 'embedding' reads the ranker's item vectors, "
                f"and {label} has no item_embeddings() (bpr.v1 and sasrec.v1 have); use "
                "measure = 'ranker' to read its scores instead"
            )
        vectors = np.asarray(read(), dtype=np.float64)
        if vectors.ndim != 2 or len(vectors) != self.n_items:
            raise DataError(
                f"{self.name}: ranker: {label}'s item_embeddings() has shape {vectors.shape}; "
                f"expected one row per catalog item ({self.n_items}, dimensions)"
            )
        if not np.isfinite(vectors).all():
            raise DataError(f"{self.name}: ranker: {label}'s item_embeddings() holds NaN or inf")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)

    def _facts(self, history: np.ndarray, candidates: np.ndarray, query: str | None) -> list[Fact]:
        p = self.params
        rec = recent(history, p.recent)
        if not len(rec) or (p.scope == "candidates" and not len(candidates)):
            return []
        seen = set(history.tolist())
        if p.scope == "candidates":
            cols = np.array([c for c in candidates.tolist() if c not in seen], dtype=np.int64)
        else:
            cols = np.setdiff1d(np.arange(self.n_items), history)
        if not len(cols):
            return []
        values = self._values(rec, cols)
        if p.measure in ("count", "cosine"):  # too few shared users: no evidence
            values = np.where(self.co.counts(rec, cols) >= p.min_count, values, 0.0)
        facts = []
        top_value = float(values.max()) if values.size else 0.0
        for pos, item in enumerate(rec.tolist()):
            row = values[pos]
            order = np.argsort(-row, kind="stable")[: p.neighbours]
            if p.measure == "embedding":
                order = order[(row[order] > 0) & (row[order] >= (p.min_similarity or 0.0))]
            elif p.measure != "ranker":
                order = order[row[order] > 0]
            if not len(order):
                continue
            parts = [f"{self.title(cols[j])} ({self._say(row[j])})" for j in order.tolist()]
            if p.measure == "ranker":
                text = f"after {self.title(item)}, the model expects: " + "; ".join(parts)
            elif p.measure == "embedding":
                text = (
                    f"closest to {self.title(item)} in a recommender's learned item space: "
                    + "; ".join(parts)
                )
            else:
                text = f"users who chose {self.title(item)} also chose: " + "; ".join(parts)
            strength = float(row[order[0]]) / top_value if top_value > 0 else 0.5
            utility = strength / (1.0 + 0.25 * pos)  # the most recent items matter most
            items = (int(item),) + tuple(int(cols[j]) for j in order.tolist())
            facts.append(Fact(text, float(np.clip(utility, 0.0, 1.0)), items))
        return facts

    def _values(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        p = self.params
        if p.measure == "embedding":
            assert self.vectors is not None
            return np.asarray(self.vectors[rows] @ self.vectors[cols].T, dtype=np.float64)
        if p.measure != "ranker":
            return self.co.similarity(rows, cols, p.measure)
        assert p.ranker is not None
        scores = p.ranker.score([np.array([r]) for r in rows.tolist()], cols)
        scores = np.asarray(scores, dtype=np.float64)
        # softmax over the columns: the model's share of next-item belief, comparable across rows
        scores = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        return np.asarray(probs / probs.sum(axis=1, keepdims=True), dtype=np.float64)

    def _say(self, value: float) -> str:
        m = self.params.measure
        if m == "count":
            return f"{int(value)} users"
        if m == "cosine":
            return f"similarity {value:.2f}"
        if m == "embedding":
            return f"cosine {value:.2f}"
        return f"{100 * value:.0f}%"


class U2IParams(KnowledgeParams):
    """``knowledge-u2i.v1``."""

    ranker: recai.Ranker = Field(
        description="the recommender whose preference is told (e.g. sasrec.v1, a sequential "
        "model trained on the interaction log)"
    )
    top: int = Field(5, ge=1, le=1_000, description="candidates told, in the ranker's order")
    label: str = Field(
        "A recommender trained on past interactions",
        min_length=1,
        max_length=200,
        description="how the prompt names the ranker",
    )
    max_facts: int = Field(5, ge=1, le=10_000, description="most candidates told")


class U2IKnowledge(FactPrompter):
    """``knowledge-u2i.v1``: a recommender's favourite candidates for this user."""

    Params = U2IParams
    name = "knowledge-u2i.v1"
    params: U2IParams

    @property
    def default_header(self) -> str:  # type: ignore[override]
        return f"{self.params.label} ranks these candidates highest for this user:"

    def _fit(self, split: Split) -> None:
        recai.ensure_fitted(self.params.ranker, split)

    def _facts(self, history: np.ndarray, candidates: np.ndarray, query: str | None) -> list[Fact]:
        p = self.params
        if not len(candidates):
            return []
        scores = np.asarray(p.ranker.score([history], candidates), dtype=np.float64)[0]
        order = np.argsort(-scores, kind="stable")[: p.top]
        n = len(candidates)
        facts = []
        for rank, j in enumerate(order.tolist(), 1):
            item = int(candidates[j])
            utility = 1.0 - (rank - 1) / max(p.top, 1)
            facts.append(Fact(f"rank {rank} of {n}: {self.title(item)}", utility, (item,)))
        return facts

    def describe(self) -> dict[str, Any]:
        return {"ranker": recai.roles.describe_component(self.params.ranker)}
