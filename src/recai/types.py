"""Shared data types: the currency that components of different plugins exchange.

- :class:`ItemList` — item indices with optional scores; what retrievers return, rankers rank and
  evaluators score.
- :class:`Message`, :class:`Completion`, :class:`Usage` — chat with LLM backends.
- :class:`Query` — what a retriever is asked (text, seed items or a user's history).
- :class:`Explanation` — what an explainer returns.
- :class:`Report` — what an evaluator returns: a table of metrics per system, plus the facts
  needed to read it (dataset, protocol, sample count, seeds).

Item identifiers inside these types are **catalog indices**: contiguous integers ``0..n_items-1``
assigned by the dataset's catalog. The catalog maps them to external ids and titles.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["ItemList", "Message", "Completion", "Usage", "Query", "Explanation", "Report"]


class ItemList:
    """Item indices with optional scores.

    >>> items = ItemList([4, 1, 7], scores=[0.2, 0.9, 0.5])
    >>> items.sorted().ids.tolist()
    [1, 7, 4]
    >>> ItemList.from_scores([0.1, 0.3, 0.2, 0.0], k=2).ids.tolist()
    [1, 2]
    """

    __slots__ = ("_ids", "_scores")

    def __init__(
        self, ids: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray | None = None
    ):
        ids_arr = np.asarray(ids)
        if ids_arr.size == 0:
            ids_arr = ids_arr.astype(np.int64)
        if ids_arr.ndim != 1:
            raise ValueError(f"ItemList ids must be one-dimensional, got shape {ids_arr.shape}")
        if not np.issubdtype(ids_arr.dtype, np.integer):
            raise TypeError(
                f"ItemList ids must be integer catalog indices, got dtype {ids_arr.dtype}"
            )
        self._ids = ids_arr.astype(np.int64, copy=False)
        if scores is None:
            self._scores = None
        else:
            sc = np.asarray(scores)
            if not np.issubdtype(sc.dtype, np.floating):
                sc = sc.astype(np.float64)
            if sc.shape != self._ids.shape:
                raise ValueError(
                    f"ItemList scores must have the same shape as ids: {sc.shape} != {self._ids.shape}"
                )
            self._scores = sc

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_scores(
        cls,
        scores: Sequence[float] | np.ndarray,
        k: int | None = None,
        *,
        exclude: Sequence[int] | np.ndarray | None = None,
        candidates: Sequence[int] | np.ndarray | None = None,
    ) -> ItemList:
        """Top-``k`` items of a dense score vector over the catalog, best first.

        ``exclude`` removes items (e.g. a user's history); ``candidates`` restricts to a subset.
        Ties are broken by the lower index, so results are deterministic.
        """
        sc = np.asarray(scores)
        if sc.ndim != 1:
            raise ValueError("from_scores expects a one-dimensional score vector")
        if candidates is not None:
            idx = np.asarray(candidates, dtype=np.int64)
            if exclude is not None and len(exclude):
                idx = idx[~np.isin(idx, np.asarray(exclude, dtype=np.int64))]
            return cls(idx, sc[idx]).top(k)
        if exclude is not None and len(exclude):
            keep = np.ones(len(sc), dtype=bool)
            keep[np.asarray(exclude, dtype=np.int64)] = False
            idx = np.flatnonzero(keep)
            return cls(idx, sc[idx]).top(k)
        return cls(np.arange(len(sc), dtype=np.int64), sc).top(k)

    # -- access -----------------------------------------------------------------------------------
    @property
    def ids(self) -> np.ndarray:
        return self._ids

    @property
    def scores(self) -> np.ndarray | None:
        return self._scores

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids.tolist())

    def __getitem__(self, key: slice | np.ndarray | Sequence[int]) -> ItemList:
        if isinstance(key, (int, np.integer)):
            raise TypeError("index an ItemList with a slice or mask; use .ids[i] for a single item")
        return ItemList(self._ids[key], None if self._scores is None else self._scores[key])

    def __repr__(self) -> str:
        head = self._ids[:5].tolist()
        more = ", ..." if len(self) > 5 else ""
        sc = "" if self._scores is None else ", scored"
        return f"ItemList({len(self)} items: {head}{more}{sc})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ItemList):
            return NotImplemented
        if not np.array_equal(self._ids, other._ids):
            return False
        if self._scores is None or other._scores is None:
            return self._scores is None and other._scores is None
        return bool(np.allclose(self._scores, other._scores, equal_nan=True))

    __hash__ = None  # type: ignore[assignment]

    # -- operations -------------------------------------------------------------------------------
    def sorted(self) -> ItemList:
        """Best score first; ties by lower index. An unscored list is returned unchanged."""
        if self._scores is None:
            return self
        order = np.lexsort((self._ids, -self._scores.astype(np.float64)))
        return ItemList(self._ids[order], self._scores[order])

    def top(self, k: int | None) -> ItemList:
        """The ``k`` best items, best first (all items when ``k`` is None)."""
        if self._scores is None:
            return self if k is None else self[:k]
        if k is None or k >= len(self):
            return self.sorted()
        if k <= 0:
            return ItemList(np.empty(0, dtype=np.int64), np.empty(0, dtype=self._scores.dtype))
        # argpartition on (-score) then sort the head; widen to keep ties deterministic
        part = np.argpartition(-self._scores, k - 1)[:k]
        kth = self._scores[part].min()
        tied = np.flatnonzero(self._scores >= kth)
        return self[tied].sorted()[:k]

    def filter(self, mask: np.ndarray) -> ItemList:
        """Keep the items where the boolean ``mask`` is true."""
        return self[np.asarray(mask, dtype=bool)]

    def restrict(self, allowed: Sequence[int] | np.ndarray) -> ItemList:
        """Keep only items that are in ``allowed`` (order preserved)."""
        return self.filter(np.isin(self._ids, np.asarray(allowed, dtype=np.int64)))

    def exclude(self, banned: Sequence[int] | np.ndarray) -> ItemList:
        """Drop items that are in ``banned`` (order preserved)."""
        return self.filter(~np.isin(self._ids, np.asarray(banned, dtype=np.int64)))

    def to_list(self) -> list[tuple[int, float | None]]:
        """``[(item, score), ...]`` as plain Python values."""
        if self._scores is None:
            return [(int(i), None) for i in self._ids]
        return [(int(i), float(s)) for i, s in zip(self._ids, self._scores, strict=True)]


Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message, in the shape OpenAI-compatible servers use."""

    role: Role
    content: str
    name: str | None = None

    def to_dict(self) -> dict[str, str]:
        d = {"role": self.role, "content": self.content}
        if self.name is not None:
            d["name"] = self.name
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Message:
        try:
            role, content = d["role"], d["content"]
        except KeyError as e:
            raise ValueError(f"chat message lacks the key {e.args[0]!r}: {dict(d)!r}") from None
        if role not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"chat message has unknown role {role!r}")
        return cls(role=role, content=str(content), name=d.get("name"))

    @staticmethod
    def system(content: str) -> Message:
        return Message("system", content)

    @staticmethod
    def user(content: str) -> Message:
        return Message("user", content)

    @staticmethod
    def assistant(content: str) -> Message:
        return Message("assistant", content)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call (zeros where a backend cannot count)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True, slots=True)
class Completion:
    """What an LLM backend returns for one chat request."""

    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    model: str = ""

    def as_message(self) -> Message:
        return Message("assistant", self.text)


@dataclass(frozen=True, slots=True)
class Query:
    """A retrieval request: free text, seed items (a history or an item), or both."""

    text: str | None = None
    items: ItemList | None = None
    user: int | None = None

    def __post_init__(self) -> None:
        if self.text is None and self.items is None and self.user is None:
            raise ValueError("a Query needs text, items or a user")


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why ``item`` was (or would be) recommended, as text plus the evidence used."""

    item: int
    text: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    explainer: str = ""


@dataclass
class Report:
    """An evaluator's result: ``metrics[system][metric] = value``, plus how it was measured.

    ``info`` must say what a reader needs to trust a number: dataset, split protocol, number of
    samples, seeds. ``intervals`` holds confidence intervals ``(low, high)`` where computed.
    """

    evaluator: str
    metrics: dict[str, dict[str, float]]
    info: dict[str, Any] = field(default_factory=dict)
    intervals: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "evaluator": self.evaluator,
            "metrics": self.metrics,
            "intervals": {
                s: {m: list(v) for m, v in ms.items()} for s, ms in self.intervals.items()
            },
            "info": self.info,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Report:
        return cls(
            evaluator=d["evaluator"],
            metrics={s: dict(m) for s, m in d["metrics"].items()},
            info=dict(d.get("info", {})),
            intervals={
                s: {m: (float(v[0]), float(v[1])) for m, v in ms.items()}
                for s, ms in d.get("intervals", {}).items()
            },
            notes=list(d.get("notes", [])),
        )

    def to_markdown(self, digits: int = 4) -> str:
        """A Markdown section: the info lines, then a table with one row per system."""
        lines = [f"## {self.evaluator}", ""]
        for k, v in self.info.items():
            if isinstance(v, (list, tuple, dict)) and len(v) > 8:
                v = f"{len(v)} entries (listed in metrics.json)"
            lines.append(f"- **{k}**: {v}")
        if self.info:
            lines.append("")
        columns: list[str] = []
        for ms in self.metrics.values():
            columns += [m for m in ms if m not in columns]
        if columns:
            lines.append("| system | " + " | ".join(columns) + " |")
            lines.append("|---|" + "---:|" * len(columns))
            for system, ms in self.metrics.items():
                cells = []
                for c in columns:
                    v = ms.get(c)
                    if v is None:
                        cells.append("")
                        continue
                    cell = f"{v:.{digits}f}" if isinstance(v, float) else str(v)
                    ci = self.intervals.get(system, {}).get(c)
                    if ci is not None:
                        cell += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
                    cells.append(cell)
                lines.append(f"| {system} | " + " | ".join(cells) + " |")
            lines.append("")
        for note in self.notes:
            lines.append(f"> {note}")
        if self.notes:
            lines.append("")
        return "\n".join(lines)
