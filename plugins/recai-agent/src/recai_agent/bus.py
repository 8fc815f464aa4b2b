"""The candidate bus: the items that pass from one tool to the next, with why each is there.

A turn starts with the bus holding the whole catalog (nothing materialised: ``whole`` is true).
Each tool narrows or orders it — a hard filter keeps the items satisfying a condition, a soft
filter keeps those similar to seeds, the ranking orders them — and every item carries an
:class:`Evidence` record: the steps that kept it, the seeds it is similar to and its last score.
The map tool reads the head of the bus and clears it.

>>> bus = CandidateBus(5)
>>> bus.whole, len(bus)
(True, 5)
>>> bus.keep([3, 1], "hard_filter: year >= 1990")
>>> bus.ids.tolist(), bus.evidence(3).kept_by
([3, 1], ['hard_filter: year >= 1990'])
>>> bus.order([1, 3], [0.9, 0.2], "ranking: popularity")
>>> bus.ids.tolist(), bus.evidence(1).score
([1, 3], 0.9)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recai.types import ItemList

__all__ = ["CandidateBus", "Evidence"]


@dataclass
class Evidence:
    """Why an item is on the bus: the steps that kept it (``"hard_filter: year >= 1990"``), the
    items it is similar to (``seeds``, catalog indices) and its last ranking score."""

    item: int
    kept_by: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    score: float | None = None

    def to_dict(self, titles: Sequence[Any] | None = None) -> dict[str, Any]:
        """A JSON-able record; with ``titles`` (the catalog's), the seeds are named too."""
        out: dict[str, Any] = {
            "kept_by": list(self.kept_by),
            "seeds": [int(s) for s in self.seeds],
            "score": None
            if self.score is None or not math.isfinite(self.score)
            else round(float(self.score), 6),
        }
        if titles is not None:
            out["seed_titles"] = [str(titles[s]) for s in self.seeds]
        return out


class CandidateBus:
    """The items between tools: an ordered set of catalog indices plus their evidence.

    ``n_items`` is the catalog's size; the bus starts as the whole catalog, in index order.
    """

    def __init__(self, n_items: int):
        if n_items < 0:
            raise ValueError("n_items must be at least 0")
        self.n_items = int(n_items)
        self._ids: np.ndarray | None = None  # None: the whole catalog
        self._scores: np.ndarray | None = None
        self._evidence: dict[int, Evidence] = {}

    # -- reading ----------------------------------------------------------------------------------
    @property
    def whole(self) -> bool:
        """True while no tool has narrowed the bus (it stands for the whole catalog)."""
        return self._ids is None

    @property
    def ids(self) -> np.ndarray:
        """The items on the bus, in bus order (the whole catalog as ``arange`` while ``whole``)."""
        if self._ids is None:
            return np.arange(self.n_items, dtype=np.int64)
        return self._ids

    @property
    def scores(self) -> np.ndarray | None:
        """The last ranking's scores, aligned with :attr:`ids` (None before any ranking)."""
        return self._scores

    def items(self) -> ItemList:
        """The bus as an :class:`~recai.types.ItemList` (scores where a ranking set them)."""
        return ItemList(self.ids, self._scores)

    def candidates(self) -> ItemList | None:
        """The bus as candidates for a retriever or ranker: None while it is the whole catalog."""
        return None if self._ids is None else ItemList(self._ids)

    def __len__(self) -> int:
        return self.n_items if self._ids is None else len(self._ids)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int | np.integer):
            return False
        if self._ids is None:
            return 0 <= int(item) < self.n_items
        return bool(np.any(self._ids == int(item)))

    def evidence(self, item: int) -> Evidence:
        """The evidence of ``item`` (an empty record for an item no step has touched)."""
        found = self._evidence.get(int(item))
        return found if found is not None else Evidence(int(item))

    def head(self, k: int) -> list[int]:
        """The first ``k`` items, in bus order."""
        return [int(i) for i in self.ids[: max(0, int(k))]]

    # -- changing ---------------------------------------------------------------------------------
    def _checked(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(arr) and (arr.min() < 0 or arr.max() >= self.n_items):
            bad = arr[(arr < 0) | (arr >= self.n_items)][0]
            raise ValueError(f"item {int(bad)} is not in the catalog (0..{self.n_items - 1})")
        _, first = np.unique(arr, return_index=True)
        return arr[np.sort(first)]  # each item once, first occurrence kept

    def _note(self, ids: np.ndarray, step: str, seeds: dict[int, list[int]] | None) -> None:
        for i in ids.tolist():
            ev = self._evidence.get(i)
            if ev is None:
                ev = self._evidence[i] = Evidence(i)
            if step and (not ev.kept_by or ev.kept_by[-1] != step):
                ev.kept_by.append(step)
            for s in (seeds or {}).get(i, ()):
                if s not in ev.seeds:
                    ev.seeds.append(int(s))

    def keep(
        self,
        ids: Sequence[int] | np.ndarray,
        step: str,
        *,
        seeds: dict[int, list[int]] | None = None,
    ) -> None:
        """Replace the bus with ``ids`` (in that order), recording ``step`` (and per-item
        ``seeds``) as the reason each was kept. Scores of a previous ranking are dropped."""
        arr = self._checked(ids)
        self._ids = arr
        self._scores = None
        self._note(arr, step, seeds)

    def order(
        self,
        ids: Sequence[int] | np.ndarray,
        scores: Sequence[float] | np.ndarray,
        step: str,
    ) -> None:
        """Replace the bus with ``ids`` ordered by a ranking with ``scores`` (aligned)."""
        arr = self._checked(ids)
        sc = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(sc) != len(np.asarray(ids).reshape(-1)):
            raise ValueError("scores must align with ids")
        if len(arr) != len(sc):  # duplicates were dropped: keep each item's first score
            first: dict[int, float] = {}
            for i, s in zip(np.asarray(ids, dtype=np.int64).tolist(), sc.tolist(), strict=True):
                first.setdefault(i, s)
            sc = np.array([first[i] for i in arr.tolist()], dtype=np.float64)
        self._ids = arr
        self._scores = sc
        self._note(arr, step, None)
        for i, s in zip(arr.tolist(), sc.tolist(), strict=True):
            self._evidence[i].score = float(s)

    def clear(self) -> None:
        """Back to the whole catalog, evidence forgotten (what the map tool does after reading)."""
        self._ids = None
        self._scores = None
        self._evidence = {}

    def __repr__(self) -> str:
        what = "whole catalog" if self.whole else f"{len(self)} items"
        return f"CandidateBus({what} of {self.n_items})"
