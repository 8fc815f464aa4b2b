"""``knowledge-recency.v1``: notes on what is recent, for the user and in the log.

- the user's most recent items, most recent first;
- the user's recent focus: the values of the catalog's categorical and multi-valued fields
  (genres, tags, brand) that their last ``recent`` items show more often than their earlier
  history does ("genres of the last 5 items: Sci-Fi 4, Action 3 (earlier: Sci-Fi 12%)");
- the candidates that share that focus;
- trending candidates: those that got at least ``trend_ratio`` times the log's share of their
  training interactions in the last ``trend_days`` days of the training log (when it has times).

Everything is read from the user's history as given and from ``split.train``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from recai.data import Split

from .attributes import value_fields
from .base import Fact, FactPrompter, KnowledgeParams, recent

__all__ = ["RecencyKnowledge", "RecencyParams"]

_DAY = 86_400.0


class RecencyParams(KnowledgeParams):
    """``knowledge-recency.v1``."""

    recent: int = Field(5, ge=1, le=1_000, description="the user's last items told and compared")
    fields: Sequence[str] | None = Field(
        None,
        max_length=100,
        description="categorical or multi-valued catalog fields compared (default: all of them)",
    )
    min_lift: float = Field(
        0.2,
        ge=0,
        le=1,
        description="a value is a recent focus when its share of the last items exceeds its "
        "share of the earlier history by at least this much",
    )
    trend_days: float = Field(
        30.0, gt=0, le=36_500, description="the window at the end of the log that 'trending' reads"
    )
    trend_ratio: float = Field(
        2.0,
        ge=1,
        le=1_000,
        description="trending: the item's share of interactions in the window is at least this "
        "many times the log's share",
    )
    min_trend_count: int = Field(
        3,
        ge=1,
        le=1_000_000,
        description="fewest interactions in the window to call an item trending",
    )
    max_facts: int = Field(8, ge=1, le=10_000)


class RecencyKnowledge(FactPrompter):
    """``knowledge-recency.v1`` (see the module docstring)."""

    Params = RecencyParams
    name = "knowledge-recency.v1"
    default_header = "Recency notes:"
    params: RecencyParams

    def _fit(self, split: Split) -> None:
        names = self._chosen_fields(split, self.params.fields)
        self._fields = value_fields(self.catalog, names)
        train = split.train
        self.trend_share: np.ndarray | None = None
        self._log_share = 0.0
        self.window_counts = np.zeros(self.n_items, dtype=np.int64)
        if train.timestamps is not None and len(train):
            ts = np.asarray(train.timestamps)
            if np.issubdtype(ts.dtype, np.datetime64):
                ts = ts.astype("datetime64[s]").astype(np.int64)
            ts = ts.astype(np.float64)
            inside = ts > ts.max() - self.params.trend_days * _DAY
            all_counts = np.bincount(train.items, minlength=self.n_items)
            self.window_counts = np.bincount(train.items[inside], minlength=self.n_items)
            with np.errstate(invalid="ignore", divide="ignore"):
                self.trend_share = np.where(
                    all_counts > 0, self.window_counts / np.maximum(all_counts, 1), 0.0
                )
            self._log_share = float(inside.mean())

    def _saved_fields(self) -> list[str]:
        return list(self._fields)

    def _state(self) -> dict[str, Any]:
        return {
            "fields": list(self._fields),
            "trend_share": self.trend_share,
            "log_share": self._log_share,
            "window_counts": self.window_counts,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self._fields = [str(f) for f in state["fields"]]
        share = state["trend_share"]
        self.trend_share = None if share is None else np.asarray(share, dtype=np.float64)
        self._log_share = float(state["log_share"])
        self.window_counts = np.asarray(state["window_counts"], dtype=np.int64)

    def _facts(self, history: np.ndarray, candidates: np.ndarray, query: str | None) -> list[Fact]:
        p = self.params
        facts: list[Fact] = []
        last = recent(history, p.recent)
        if len(last):
            titles = "; ".join(self.title(i) for i in last.tolist())
            facts.append(Fact(f"this user's last items, most recent first: {titles}", 1.0))
            focus = self._focus(history, last)
            for name, said, values in focus:
                facts.append(Fact(said, 0.8))
                matching = [
                    int(c)
                    for c in candidates.tolist()
                    if set(_values(self.catalog.fields[name][c])) & set(values)
                ]
                if matching:
                    listed = "; ".join(self.title(c) for c in matching[:10])
                    facts.append(
                        Fact(
                            f"candidates with these recent {name} ({', '.join(values)}): {listed}",
                            0.7,
                            tuple(matching),
                        )
                    )
        if self.trend_share is not None and len(candidates) and self._log_share > 0:
            days = f"{p.trend_days:g}"
            for c in candidates.tolist():
                share = float(self.trend_share[c])
                if (
                    self.window_counts[c] >= p.min_trend_count
                    and share >= p.trend_ratio * self._log_share
                ):
                    facts.append(
                        Fact(
                            f"{self.title(c)} is trending: {100 * share:.0f}% of its interactions "
                            f"came in the last {days} days of the log (all items: "
                            f"{100 * self._log_share:.0f}%)",
                            0.5,
                            (int(c),),
                        )
                    )
        return facts

    def _focus(self, history: np.ndarray, last: np.ndarray) -> list[tuple[str, str, list[str]]]:
        """Per field, the values the last items show more than the earlier history."""
        out = []
        earlier = history[: max(len(history) - len(last), 0)]
        for name in self._fields:
            col = self.catalog.fields[name]
            now = _counts(col, last)
            before = _counts(col, earlier)
            lifted = []
            for value, k in sorted(now.items(), key=lambda kv: (-kv[1], kv[0])):
                share_now = k / len(last)
                share_before = before.get(value, 0) / len(earlier) if len(earlier) else 0.0
                if k >= 2 and share_now - share_before >= self.params.min_lift:
                    lifted.append((value, k, share_before))
            if not lifted:
                continue
            said = ", ".join(f"{v} {k}" for v, k, _ in lifted[:4])
            if len(earlier):
                was = ", ".join(f"{v} {100 * b:.0f}%" for v, _, b in lifted[:4])
                said += f" (earlier history: {was})"
            text = f"{name} of the last {len(last)} items: {said}"
            out.append((name, text, [v for v, _, _ in lifted[:4]]))
        return out


def _values(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (tuple, list)):
        return tuple(str(v) for v in value)
    return (str(value),)


def _counts(col: np.ndarray, items: np.ndarray) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items.tolist():
        for v in set(_values(col[i])):
            out[v] = out.get(v, 0) + 1
    return out
