"""``knowledge-attributes.v1``: what the catalog says about each item, and how the log saw it.

One fact per item (the candidates by default): its catalog fields (genres, year, tags, brand,
price: every field, or those named) and, from the training interactions, how many users chose
it and their mean rating::

    Toy Story (1995): genres Animation, Children's, Comedy; year 1995; chosen by 452 users
    (top 2%), mean rating 3.88

A fact is more useful the more the item's values (of its multi-valued and categorical fields)
are shared by the user's history: a candidate in the genres this user keeps choosing comes
first when the budget is short.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from recai.data import Split

from .base import Fact, FactPrompter, KnowledgeParams, recent, scaled, value_text

__all__ = ["AttributesKnowledge", "AttributesParams", "value_fields"]


class AttributesParams(KnowledgeParams):
    """``knowledge-attributes.v1``."""

    fields: Sequence[str] | None = Field(
        None, max_length=100, description="catalog fields told (default: every field)"
    )
    items: Literal["candidates", "history", "both"] = Field(
        "candidates", description="whose attributes are told"
    )
    max_values: int = Field(
        6, ge=1, le=100, description="most values told of a multi-valued field (tags, genres)"
    )
    stats: bool = Field(
        True,
        description="also tell how many users chose the item in the training log (with its "
        "popularity percentile) and their mean rating",
    )
    recent: int = Field(
        50, ge=1, le=100_000, description="recent history items the usefulness is measured on"
    )
    max_facts: int = Field(20, ge=1, le=10_000, description="most items described")


def value_fields(catalog: object, names: Sequence[str]) -> list[str]:
    """The multi-valued and categorical ones among ``names`` (object columns)."""
    fields = getattr(catalog, "fields", {})
    return [n for n in names if np.asarray(fields[n]).dtype == object]


class AttributesKnowledge(FactPrompter):
    """``knowledge-attributes.v1`` (see the module docstring)."""

    Params = AttributesParams
    name = "knowledge-attributes.v1"
    default_header = "About these items:"
    params: AttributesParams

    def _fit(self, split: Split) -> None:
        names = self._chosen_fields(split, self.params.fields)
        self._fields = names
        self._value_fields = value_fields(self.catalog, names)
        train = split.train
        self.users = np.bincount(
            np.unique(train.users * self.n_items + train.items) % self.n_items,
            minlength=self.n_items,
        )
        ranked = np.sort(self.users)
        # share of items chosen by at least as many users: "top 2%"
        self.top_share = 1.0 - np.searchsorted(ranked, self.users, side="left") / max(
            self.n_items, 1
        )
        self.mean_rating: np.ndarray | None = None
        if train.ratings is not None and len(train):
            sums = np.bincount(train.items, weights=train.ratings, minlength=self.n_items)
            counts = np.bincount(train.items, minlength=self.n_items)
            with np.errstate(invalid="ignore", divide="ignore"):
                self.mean_rating = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def _saved_fields(self) -> list[str]:
        return list(self._fields)

    def _state(self) -> dict[str, Any]:
        return {
            "fields": list(self._fields),
            "value_fields": list(self._value_fields),
            "users": self.users,
            "top_share": self.top_share,
            "mean_rating": self.mean_rating,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self._fields = [str(f) for f in state["fields"]]
        self._value_fields = [str(f) for f in state["value_fields"]]
        self.users = np.asarray(state["users"], dtype=np.int64)
        self.top_share = np.asarray(state["top_share"], dtype=np.float64)
        rating = state["mean_rating"]
        self.mean_rating = None if rating is None else np.asarray(rating, dtype=np.float64)

    def _facts(self, history: np.ndarray, candidates: np.ndarray, query: str | None) -> list[Fact]:
        which = self.params.items
        items: list[int] = []
        if which in ("history", "both"):
            items += recent(history, self.params.max_facts).tolist()[::-1]
        if which in ("candidates", "both"):
            items += [c for c in candidates.tolist() if c not in items]
        if not items:
            return []
        utility = self._utility(history, np.asarray(items, dtype=np.int64))
        return [
            Fact(self.describe_item(item), float(u), (int(item),))
            for item, u in zip(items, utility.tolist(), strict=True)
        ]

    def describe_item(self, item: int) -> str:
        parts = []
        for name in self._fields:
            value = self.catalog.fields[name][item]
            if isinstance(value, (tuple, list)) and len(value) > self.params.max_values:
                value = tuple(value[: self.params.max_values])
            text = value_text(value)
            if text is not None:
                parts.append(f"{name} {text}")
        if self.params.stats:
            users = int(self.users[item])
            stat = f"chosen by {users} user{'s' if users != 1 else ''} in the log"
            share = float(self.top_share[item])
            if users and share <= 0.5:
                stat += f" (top {max(share * 100, 1):.0f}%)"
            if self.mean_rating is not None and np.isfinite(self.mean_rating[item]):
                stat += f", mean rating {self.mean_rating[item]:.2f}"
            parts.append(stat)
        body = "; ".join(parts) if parts else "no attributes known"
        return f"{self.title(item)}: {body}"

    def _utility(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Per item: the mean over value fields of the history share of its best value."""
        rec = recent(history, self.params.recent)
        if not len(rec) or not self._value_fields:
            return np.full(len(items), 0.5)
        total = np.zeros(len(items))
        for name in self._value_fields:
            col = self.catalog.fields[name]
            profile: dict[str, int] = {}
            for h in rec.tolist():
                for v in _values(col[h]):
                    profile[v] = profile.get(v, 0) + 1
            total += np.array(
                [max((profile.get(v, 0) for v in _values(col[i])), default=0) for i in items],
                dtype=np.float64,
            ) / len(rec)
        return 0.2 + 0.8 * scaled(total)


def _values(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (tuple, list)):
        return tuple(str(v) for v in value)
    return (str(value),)
