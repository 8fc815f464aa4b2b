"""The agent's tools: thin adapters over role components and the catalog's read-only SQL mirror.

Five tools act on one :class:`~recai_agent.bus.CandidateBus` (InteRecAgent's tool set):

- ``lookup``: SQL over the whole catalog (``CatalogDB.query``: read-only, bounded), the rows cut
  to a token budget; for questions about items ("when was Heat released?");
- ``hard_filter``: a condition over ``items`` columns (``CatalogDB.where``) or a structured
  filter (genres, excluded genres, a year range, any field's values), restricted to the bus;
- ``soft_filter``: the items most similar to seed items (any :class:`recai.Retriever`, or an
  item-similarity source with ``similarity_row``/``similar_items`` such as ItemKNN) or to a text
  (a text retriever, else fuzzy matching of titles and text fields);
- ``ranking``: by popularity, by similarity, or by preference (the :class:`recai.Ranker` scoring
  the user's liked items as a history, its head optionally re-ranked by the brain in scoring
  mode: :class:`~recai_agent.rerank.LLMReranker`); accuracy or diversity mode; prefer and
  unwanted lists;
- ``map``: the head of the bus as titles for the reply; the bus is cleared.

Every call appends a :class:`TraceStep` (tool, input, output size, seconds, error, note and, for
a re-ranking, its ``detail``) to the turn's state. Tools never raise on bad input: an error becomes the step's ``error`` and the turn goes on
with the bus unchanged.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from recai.errors import RecaiError
from recai.types import ItemList, Query

from .bus import CandidateBus, Evidence
from .describe import ColumnInfo, columns_of, genre_column, year_column

if TYPE_CHECKING:
    from recai.data import Catalog
    from recai.data.grounding import Grounder
    from recai.data.sql import CatalogDB
    from recai.roles import Ranker, Retriever

    from .rerank import LLMReranker

__all__ = [
    "HardFilterTool",
    "LookupTool",
    "MapTool",
    "RankingTool",
    "SoftFilterTool",
    "Tool",
    "ToolError",
    "ToolResult",
    "TraceStep",
    "TurnState",
    "default_tools",
]

#: Characters per token assumed when a lookup result is cut to its token budget.
CHARS_PER_TOKEN = 4
#: Titles in a tool input are grounded to a catalog item at this fuzzy score or above.
TITLE_THRESHOLD = 0.5


class ToolError(RecaiError):
    """A tool input that cannot be run (recorded in the trace; the turn goes on)."""


@dataclass
class TraceStep:
    """One tool call: the tool, its input, the size of its output (items on the bus after it, or
    rows for a look-up), the seconds it took and its error (None when it ran)."""

    tool: str
    input: Any
    out_size: int
    seconds: float
    error: str | None = None
    note: str = ""
    detail: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "tool": self.tool,
            "input": self.input,
            "out_size": self.out_size,
            "seconds": round(self.seconds, 6),
            "error": self.error,
            "note": self.note,
        }
        if self.detail is not None:
            out["detail"] = self.detail
        return out


@dataclass
class ToolResult:
    """What a tool call gives back: whether it ran, the size of its output, a text the reply
    writer may read (look-up rows, mapped titles), the error, a note and a ``detail`` record for
    the trace (the ranking's re-ranking: :meth:`~recai_agent.rerank.RerankOutcome.to_dict`)."""

    ok: bool
    out_size: int
    text: str = ""
    error: str | None = None
    note: str = ""
    detail: dict[str, Any] | None = None


@dataclass
class TurnState:
    """What the tools of one turn share: the catalog and its grounding, the user's profile
    (``liked``/``disliked`` item indices, ``history`` in time order), how many items to list
    (``k``), items not to recommend again (``exclude``: shown earlier in the dialogue), the
    items the caller restricts the turn to (``candidates``; None: the whole catalog), the items
    the map tool picked (with their evidence), look-up texts and the trace; ``request`` (the
    user's message, which a re-ranking brain reads) and the LLM calls and seconds tools spent
    (``llm_calls``, ``llm_seconds``: the re-ranking's, for the turn's totals)."""

    catalog: Catalog
    grounder: Grounder
    liked: list[int] = field(default_factory=list)
    disliked: list[int] = field(default_factory=list)
    history: list[int] = field(default_factory=list)
    k: int = 5
    exclude: list[int] = field(default_factory=list)
    candidates: list[int] | None = None
    mapped: list[Evidence] = field(default_factory=list)
    looked_up: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    trace: list[TraceStep] = field(default_factory=list)
    request: str = ""
    llm_calls: int = 0
    llm_seconds: float = 0.0

    def profile_history(self) -> np.ndarray:
        """The items a ranker reads as the user's history: the history, then liked items not
        in it (most recent last), without disliked ones."""
        seq = [i for i in self.history if i not in self.disliked]
        seq += [i for i in self.liked if i not in seq and i not in self.disliked]
        return np.asarray(seq, dtype=np.int64)


@runtime_checkable
class Tool(Protocol):
    name: str
    description: str

    def run(self, bus: CandidateBus, arg: Any, state: TurnState) -> ToolResult: ...


class BaseTool:
    """Times a call, turns any failure into an error entry, and appends the trace step."""

    name = "tool"
    description = ""

    def run(self, bus: CandidateBus, arg: Any, state: TurnState) -> ToolResult:
        start = time.perf_counter()
        try:
            result = self._run(bus, arg, state)
        except (RecaiError, ValueError, TypeError, KeyError, IndexError) as exc:
            result = ToolResult(False, len(bus), error=_one_line(exc))
        except Exception as exc:  # a component failing must not end the turn
            result = ToolResult(False, len(bus), error=f"{type(exc).__name__}: {_one_line(exc)}")
        state.trace.append(
            TraceStep(
                self.name,
                _jsonable(arg),
                result.out_size,
                time.perf_counter() - start,
                result.error,
                result.note,
                result.detail,
            )
        )
        return result

    def _run(self, bus: CandidateBus, arg: Any, state: TurnState) -> ToolResult:
        raise NotImplementedError

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of this tool's input (what a plan step's ``input`` holds)."""
        return {"type": "object", "properties": {}, "additionalProperties": False}


# -- look-up ---------------------------------------------------------------------------------------
class LookupTool(BaseTool):
    """SQL over the whole catalog (read-only, bounded), rows cut to ``max_tokens``."""

    name = "lookup"
    description = (
        "Answer a question about items from the catalog with one SQLite SELECT over the items "
        'table. Input: {"sql": "SELECT title, year FROM items WHERE ..."}. Read-only.'
    )

    def __init__(
        self,
        db: CatalogDB,
        *,
        max_tokens: int = 300,
        max_rows: int = 20,
        ground: Callable[[str], tuple[str, list[str]]] | None = None,
    ):
        self.db = db
        self.max_tokens = int(max_tokens)
        self.max_rows = int(max_rows)
        self.ground = ground

    def input_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"sql": {"type": "string", "minLength": 8, "maxLength": 400}},
            "required": ["sql"],
            "additionalProperties": False,
        }

    def _run(self, bus: CandidateBus, arg: Any, state: TurnState) -> ToolResult:
        sql = _text_arg(arg, "sql")
        notes: list[str] = []
        if self.ground is not None:
            sql, notes = self.ground(sql)
        budget = self.max_tokens * CHARS_PER_TOKEN
        res = self.db.query(sql, max_rows=self.max_rows, max_bytes=max(64, 4 * budget))
        lines = [" | ".join(res.columns)]
        used = len(lines[0])
        shown = 0
        for row in res.rows:
            line = " | ".join(_cell(v) for v in row)
            if used + len(line) + 1 > budget:
                break
            lines.append(line)
            used += len(line) + 1
            shown += 1
        cut = shown < len(res.rows) or res.truncated
        if cut:
            lines.append(f"... (more rows; {shown} shown)")
        if "item" in res.columns:
            col = res.columns.index("item")
            found = [r[col] for r in res.rows[:shown] if isinstance(r[col], int)]
        elif "title" in res.columns:
            col = res.columns.index("title")
            titles = {str(t): i for i, t in enumerate(state.catalog.titles)}
            found = [titles[r[col]] for r in res.rows[:shown] if r[col] in titles]
        else:
            found = []
        state.looked_up.extend(i for i in found if i not in state.looked_up)
        text = "\n".join(lines) if res.rows else "(no rows)"
        state.notes.append(text)
        return ToolResult(True, shown, text, note="; ".join(notes))


# -- hard filter -----------------------------------------------------------------------------------
class HardFilterTool(BaseTool):
    """Keeps the bus items that satisfy a condition over the ``items`` columns.

    Input: ``{"sql": "<condition>"}`` or a structured filter: ``genres`` (any of them),
    ``not_genres``, ``year_min``/``year_max``, ``<field>`` (a value or a list of values of a
    categorical field), ``<field>_min``/``<field>_max`` (numeric fields).
    """

    name = "hard_filter"
    description = (
        "Keep only candidates meeting hard conditions. Input: "
        '{"genres": [...], "not_genres": [...], "year_min": N, "year_max": N} '
        'or {"sql": "<SQLite condition over items columns>"}.'
    )

    def __init__(
        self,
        db: CatalogDB,
        *,
        ground: Callable[[str], tuple[str, list[str]]] | None = None,
        ground_value: Callable[[ColumnInfo, str], str | None] | None = None,
    ):
        self.db = db
        self.ground = ground
        self.ground_value = ground_value
        self.columns = columns_of(db)
        self._by_name = {c.name.lower(): c for c in self.columns}
        self._genre = genre_column(self.columns)
        self._year = year_column(self.columns)

    def input_schema(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        if self._genre is not None:
            values: dict[str, Any] = {"type": "string", "maxLength": 60}
            if len(self._genre.values) <= 300:
                values = {"enum": list(self._genre.values)}
            for key in ("genres", "not_genres"):
                props[key] = {"type": "array", "items": values, "maxItems": 3}
        if self._year is not None:
            col = self._year[0]
            year: dict[str, Any] = {"type": "integer"}
            if isinstance(col.low, float) and isinstance(col.high, float):
                year |= {"minimum": int(col.low), "maximum": int(col.high)}
            elif isinstance(col.low, str) and isinstance(col.high, str):
                year |= {"minimum": int(col.low[:4]), "maximum": int(col.high[:4])}
            props["year_min"] = year
            props["year_max"] = year
        return {"type": "object", "properties": props, "additionalProperties": False}

    def condition(self, arg: dict[str, Any]) -> tuple[str, list[Any], list[str]]:
        """A structured filter as ``(condition, params, notes)``; unknown keys are errors."""
        parts: list[str] = []
        params: list[Any] = []
        notes: list[str] = []
        for key, value in arg.items():
            if value is None or value == [] or value == "":
                continue
            k = key.lower()
            if k in ("genres", "genre", "not_genres", "not_genre"):
                if self._genre is None:
                    raise ToolError("the catalog has no genre or category field")
                neg = k.startswith("not_")
                self._values(self._genre, value, neg, parts, params, notes)
            elif k in ("year_min", "year_max"):
                if self._year is None:
                    raise ToolError("the catalog has no year or date field")
                expr = self._year[1]
                parts.append(f"{expr} {'>=' if k == 'year_min' else '<='} ?")
                params.append(_number(value, key))
            elif k.endswith(("_min", "_max")) and k[:-4] in self._by_name:
                col = self._by_name[k[:-4]]
                if col.kind not in ("number", "date"):
                    raise ToolError(f"{key!r}: {col.name} is not a numeric or date field")
                op = ">=" if k.endswith("_min") else "<="
                parts.append(f"{col.name} {op} ?")
                params.append(_number(value, key) if col.kind == "number" else str(value))
            elif k in self._by_name and self._by_name[k].categorical:
                self._values(self._by_name[k], value, False, parts, params, notes)
            else:
                known = ["genres", "not_genres", "year_min", "year_max", "sql"]
                known += [c.name for c in self.columns if c.categorical]
                raise ToolError(f"hard_filter has no key {key!r} (keys: {', '.join(known)})")
        return " AND ".join(parts), params, notes

    def _values(
        self,
        col: ColumnInfo,
        value: Any,
        negate: bool,
        parts: list[str],
        params: list[Any],
        notes: list[str],
    ) -> None:
        wanted = [value] if isinstance(value, str) else list(value)
        real = []
        for v in wanted:
            v = str(v)
            exact = next((x for x in col.values if x.lower() == v.lower()), None)
            got = exact or (self.ground_value(col, v) if self.ground_value else None)
            if got is None:
                notes.append(f"{col.name} {v!r}: no such value, ignored")
                continue
            if got != v:
                notes.append(f"{col.name} {v!r} -> {got!r}")
            real.append(got)
        if not real:
            return
        marks = ", ".join("?" for _ in real)
        if col.kind == "multi" and col.side_table:
            test = f"item IN (SELECT item FROM {col.side_table} WHERE value IN ({marks}))"
        else:
            test = f"{col.name} IN ({marks})"
        parts.append(f"NOT ({test})" if negate else test)
        params.extend(real)

    def _run(self, bus: CandidateBus, arg: Any, state: TurnState) -> ToolResult:
        notes: list[str] = []
        params: list[Any] = []
        if isinstance(arg, str) or (isinstance(arg, dict) and "sql" in arg):
            cond = _text_arg(arg, "sql")
            extra = {k: v for k, v in arg.items() if k != "sql"} if isinstance(arg, dict) else {}
            if self.ground is not None:
                cond, notes = self.ground(cond)
            if extra:
                more, params, more_notes = self.condition(extra)
                notes += more_notes
                if more:
                    cond = f"({cond}) AND {more}"
            label = cond
        elif isinstance(arg, dict):
            cond, params, notes = self.condition(arg)
            label = _describe_structured(arg)
        else:
            raise ToolError('hard_filter takes {"sql": ...} or a structured filter object')
        if not cond:
            return ToolResult(True, len(bus), note="; ".join(notes + ["nothing to filter"]))
        hits = self.db.where(cond, tuple(params))
        ids = bus.ids
        kept = ids[np.isin(ids, hits)]
        bus.keep(kept, f"hard_filter: {label}")
        return ToolResult(True, len(bus), note="; ".join(notes))


# -- soft filter -----------------------------------------------------------------------------------
class SoftFilterTool(BaseTool):
    """Keeps the ``keep`` bus items most similar to seed items or to a text.

    ``similarity``: a :class:`recai.Retriever` (``Query(items=seeds)``) or any object with
    ``similarity_row(item)`` (ItemKNN, EASE); ``text_retriever``: a retriever for text queries
    (e.g. ``embedding.v1``). Without one, text is matched against titles and text fields.
    """

    name = "soft_filter"
    description = (
        "Keep candidates similar to given items or to a description. Input: "
        '{"seeds": ["<title>", ...]} or {"text": "<what the items are like>"}.'
    )

    def __init__(
        self,
        similarity: Any = None,
        text_retriever: Retriever | None = None,
        *,
        keep: int = 100,
    ):
        self.similarity = similarity
        self.text_retriever = text_retriever
        self.keep = int(keep)

    def input_schema(self) -> dict[str, Any]:
        title = {"type": "string", "minLength": 2, "maxLength": 100}
        return {
            "type": "object",
            "properties": {
                "seeds": {"type": "array", "items": title, "minItems": 1, "maxItems": 3},
                "text": {"type": "string", "minLength": 2, "maxLength": 200},
            },
            "additionalProperties": False,
        }

    def _run(self, bus: CandidateBus, arg: Any, state: TurnState) -> ToolResult:
        if isinstance(arg, str):
            arg = {"text": arg}
        if not isinstance(arg, dict):
            raise ToolError('soft_filter takes {"seeds": [titles]} or {"text": "..."}')
        seeds_in = arg.get("seeds") or []
        if isinstance(seeds_in, str):
            seeds_in = [seeds_in]
        if seeds_in:
            seeds, notes = ground_titles(seeds_in, state)
            if not seeds:
                raise ToolError("no seed title matched a catalog item: " + "; ".join(notes))
            kept, scores, by_seed = self._by_seeds(bus, seeds)
            label = "soft_filter: similar to " + ", ".join(
                str(state.catalog.titles[s]) for s in seeds
            )
        elif arg.get("text"):
            text = str(arg["text"])[:500]
            kept, scores = self._by_text(bus, text, state)
            by_seed, notes = {}, []
            label = f"soft_filter: like {text!r}"
        else:
            raise ToolError('soft_filter needs "seeds" (titles) or "text"')
        bus.keep(kept, label, seeds=by_seed)
        for i, s in zip(kept.tolist(), scores.tolist(), strict=True):
            bus.evidence(i).score = float(s)
        return ToolResult(True, len(bus), note="; ".join(notes))

    def _by_seeds(
        self, bus: CandidateBus, seeds: list[int]
    ) -> tuple[np.ndarray, np.ndarray, dict[int, list[int]]]:
        if self.similarity is None:
            raise ToolError("no similarity source is configured")
        ids = bus.ids
        n = bus.n_items
        if hasattr(self.similarity, "similarity_row"):
            rows = np.stack(
                [np.asarray(self.similarity.similarity_row(s), dtype=np.float64) for s in seeds]
            )
            total = rows.sum(axis=0)
            cand = ids[~np.isin(ids, seeds)]
            cand = cand[total[cand] > 0]
            order = np.lexsort((cand, -total[cand]))[: self.keep]
            kept = cand[order]
            scores = total[kept]
            by_seed = {
                int(i): [s for r, s in enumerate(seeds) if rows[r, i] > 0] for i in kept.tolist()
            }
            return kept, scores, by_seed
        found = self.similarity.retrieve(
            Query(items=ItemList(np.asarray(seeds, dtype=np.int64))),
            min(self.keep, n),
            candidates=bus.candidates(),
        )
        keep_mask = ~np.isin(found.ids, seeds)
        kept = found.ids[keep_mask]
        scores = (
            found.scores[keep_mask]
            if found.scores is not None
            else np.linspace(1.0, 0.0, len(kept), endpoint=False)
        )
        return kept, scores, {int(i): list(seeds) for i in kept.tolist()}

    def _by_text(
        self, bus: CandidateBus, text: str, state: TurnState
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.text_retriever is not None:
            found = self.text_retriever.retrieve(
                Query(text=text), min(self.keep, bus.n_items), candidates=bus.candidates()
            )
            scores = found.scores if found.scores is not None else np.zeros(len(found))
            return found.ids, np.asarray(scores, dtype=np.float64)
        # no text retriever: titles matching the text come first, nothing is dropped (fuzzy
        # title matching cannot tell that an item is unlike a description)
        scores = state.grounder.titles.scores(text)
        ids = bus.ids
        order = np.lexsort((np.arange(len(ids)), -scores[ids]))[: max(self.keep, 1)]
        return ids[order], scores[ids[order]]


# -- ranking ---------------------------------------------------------------------------------------
class RankingTool(BaseTool):
    """Orders the bus by preference, popularity or similarity.

    ``ranker``: a :class:`recai.Ranker` scoring the user's profile (liked items after the
    history) as a history; ``popularity``: interaction counts per item; ``similarity``: as for the
    soft filter. ``keep``: how many ranked items stay on the bus. Diversity mode re-ranks
    greedily, penalising items whose genres overlap those already chosen (maximal marginal
    relevance with weight ``diversity``). ``reranker``: an
    :class:`~recai_agent.rerank.LLMReranker` that re-orders the head of a ranking by preference
    with the brain's scores (after the ranker, before ``prefer`` goes first and diversity); what
    it did is the step's note and ``detail``, and the ranker's order stays when it cannot.
    """

    name = "ranking"
    description = (
        "Order candidates. Input: "
        '{"by": "preference"|"popularity"|"similarity", "mode": "accuracy"|"diversity", '
        '"prefer": [titles], "unwanted": [titles]}.'
    )

    def __init__(
        self,
        ranker: Ranker | None = None,
        popularity: np.ndarray | None = None,
        similarity: Any = None,
        *,
        columns: Sequence[ColumnInfo] = (),
        keep: int = 50,
        diversity: float = 0.5,
        reranker: LLMReranker | None = None,
    ):
        self.ranker = ranker
        self.popularity = None if popularity is None else np.asarray(popularity, np.float64)
        self.similarity = similarity
        self.keep = int(keep)
        self.diversity = float(diversity)
        self.reranker = reranker
        self._genre = genre_column(list(columns)) if columns else None

    def input_schema(self) -> dict[str, Any]:
        titles = {"type": "array", "items": {"type": "string", "maxLength": 100}, "maxItems": 3}
        return {
            "type": "object",
            "properties": {
                "by": {"enum": ["preference", "popularity", "similarity"]},
                "mode": {"enum": ["accuracy", "diversity"]},
                "prefer": titles,
                "unwanted": titles,
            },
            "required": ["by"],
            "additionalProperties": False,
        }

    def _run(self, bus: CandidateBus, arg: Any, state: TurnState) -> ToolResult:
        if isinstance(arg, str):
            arg = {"by": arg}
        if arg is None:
            arg = {}
        if not isinstance(arg, dict):
            raise ToolError('ranking takes {"by": ..., "mode": ..., "prefer": [...], ...}')
        by = str(arg.get("by") or "preference").lower()
        mode = str(arg.get("mode") or "accuracy").lower()
        if by not in ("preference", "popularity", "similarity"):
            raise ToolError(
                f"ranking 'by' must be preference, popularity or similarity, not {by!r}"
            )
        if mode not in ("accuracy", "diversity"):
            raise ToolError(f"ranking 'mode' must be accuracy or diversity, not {mode!r}")
        notes: list[str] = []
        prefer, n1 = ground_titles(_as_list(arg.get("prefer")), state)
        unwanted, n2 = ground_titles(_as_list(arg.get("unwanted")), state)
        notes += n1 + n2
        drop = set(unwanted) | set(state.disliked) | set(state.liked) | set(state.history)
        drop |= set(state.exclude)
        ids = bus.ids
        ids = ids[~np.isin(ids, np.asarray(sorted(drop), dtype=np.int64))]
        history = state.profile_history()
        scores: np.ndarray | None = None
        used = by
        if by == "preference":
            if self.ranker is not None and len(history):
                scores = np.asarray(self.ranker.score([history], ids)[0], dtype=np.float64).reshape(
                    -1
                )
            else:
                used = "popularity"
                notes.append("no liked items yet: ranked by popularity")
        if by == "similarity":
            prior = np.array(
                [
                    bus.evidence(i).score if bus.evidence(i).score is not None else np.nan
                    for i in ids.tolist()
                ]
            )
            if len(ids) and np.isfinite(prior).any():  # a soft filter scored the bus
                scores = np.nan_to_num(prior, nan=-np.inf)
            elif (
                self.similarity is not None
                and len(history)
                and hasattr(self.similarity, "similarity_row")
            ):
                rows = [np.asarray(self.similarity.similarity_row(int(s))) for s in history[-20:]]
                scores = np.sum(rows, axis=0)[ids]
            else:
                used = "popularity"
                notes.append("nothing to be similar to: ranked by popularity")
        if scores is None:
            if self.popularity is None:
                scores = np.zeros(len(ids))
                notes.append("no popularity counts: catalog order")
            else:
                scores = self.popularity[ids]
        scores = np.where(np.isfinite(scores), scores, -np.inf)
        order = np.lexsort((ids, -scores))
        ids, scores = ids[order], scores[order]
        detail: dict[str, Any] | None = None
        if self.reranker is not None and by == "preference" and len(ids) > 1:
            outcome = self.reranker.rerank(ids, state)
            state.llm_calls += outcome.calls
            state.llm_seconds += outcome.seconds
            notes.append(outcome.note)
            detail = {"rerank": outcome.to_dict()}
            if outcome.applied:
                n = len(outcome.ids)
                where = {int(i): p for p, i in enumerate(ids[:n].tolist())}
                perm = np.asarray([where[i] for i in outcome.ids], dtype=np.int64)
                ids = np.concatenate([ids[:n][perm], ids[n:]])
                scores = np.concatenate([scores[:n][perm], scores[n:]])
                used += ", re-ranked by the brain"
        if prefer:
            front = np.isin(ids, prefer)
            ids = np.concatenate([ids[front], ids[~front]])
            scores = np.concatenate([scores[front], scores[~front]])
        if mode == "diversity" and len(ids) > 1:
            # re-rank the head that matters: twice what the map shows, chosen from five times it
            ids, scores = self._diversify(ids, scores, state, min(len(ids), max(10, 2 * state.k)))
        ids, scores = ids[: self.keep], scores[: self.keep]
        bus.order(ids, np.where(np.isfinite(scores), scores, np.nan), f"ranking: {used}, {mode}")
        return ToolResult(True, len(bus), note="; ".join(notes), detail=detail)

    def _diversify(
        self, ids: np.ndarray, scores: np.ndarray, state: TurnState, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        col = self._genre
        if col is None or col.field is None:
            return ids, scores
        pool = min(len(ids), 5 * k)
        values = state.catalog.fields[col.field]
        sets = [set(values[i]) if col.kind == "multi" else {values[i]} for i in ids[:pool].tolist()]
        rel = scores[:pool].astype(np.float64)
        finite = rel[np.isfinite(rel)]
        lo, hi = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
        rel = np.where(np.isfinite(rel), (rel - lo) / ((hi - lo) or 1.0), 0.0)
        chosen: list[int] = []
        left = list(range(pool))
        while left and len(chosen) < k:
            best, best_val = left[0], -math.inf
            for j in left:
                overlap = max(
                    (len(sets[j] & sets[c]) / (len(sets[j] | sets[c]) or 1) for c in chosen),
                    default=0.0,
                )
                val = (1 - self.diversity) * rel[j] - self.diversity * overlap
                if val > best_val:
                    best, best_val = j, val
            chosen.append(best)
            left.remove(best)
        idx = np.asarray(chosen + left + list(range(pool, len(ids))), dtype=np.int64)
        return ids[idx], scores[idx]


# -- map -------------------------------------------------------------------------------------------
class MapTool(BaseTool):
    """The first ``k`` bus items as titles (for the reply), with their evidence; clears the bus."""

    name = "map"
    description = "Turn the top candidates into titles for the answer. Input: {}."

    def __init__(self, k: int = 5):
        self.k = int(k)

    def _run(self, bus: CandidateBus, arg: Any, state: TurnState) -> ToolResult:
        k = self.k
        if isinstance(arg, dict) and arg.get("k") is not None:
            k = max(1, min(int(_number(arg["k"], "k")), 50))
        k = min(k, state.k) if state.k else k
        skip = set(state.exclude) | set(state.disliked)
        head = [i for i in bus.head(k + len(skip)) if i not in skip][:k]
        state.mapped = [bus.evidence(i) for i in head]
        for ev in state.mapped:
            ev.item = int(ev.item)
        titles = [f"{n}. {state.catalog.titles[i]}" for n, i in enumerate(head, 1)]
        bus.clear()
        return ToolResult(True, len(head), "\n".join(titles))


def default_tools(
    db: CatalogDB,
    *,
    ranker: Ranker | None = None,
    similarity: Any = None,
    text_retriever: Retriever | None = None,
    popularity: np.ndarray | None = None,
    grounder: Grounder | None = None,
    k: int = 5,
    lookup_tokens: int = 300,
    reranker: LLMReranker | None = None,
) -> dict[str, BaseTool]:
    """The five tools over ``db``, with SQL and values grounded through ``grounder``; a
    ``reranker`` re-orders the head of the ranking tool's preference rankings."""
    ground_sql = ground_cond = None
    ground_value = None
    if grounder is not None:
        from .sqlground import SQLGrounder

        sg = SQLGrounder(db, grounder)
        ground_sql, ground_cond, ground_value = sg.ground_query, sg.ground_condition, sg.value
    columns = columns_of(db)
    return {
        "lookup": LookupTool(db, max_tokens=lookup_tokens, ground=ground_sql),
        "hard_filter": HardFilterTool(db, ground=ground_cond, ground_value=ground_value),
        "soft_filter": SoftFilterTool(similarity, text_retriever),
        "ranking": RankingTool(ranker, popularity, similarity, columns=columns, reranker=reranker),
        "map": MapTool(k),
    }


# -- helpers ---------------------------------------------------------------------------------------
def ground_titles(values: Sequence[Any], state: TurnState) -> tuple[list[int], list[str]]:
    """Titles (or item indices) to catalog indices through the fuzzy matcher; notes say what
    was mapped or dropped."""
    out: list[int] = []
    notes: list[str] = []
    n = state.catalog.n_items
    for v in list(values)[:50]:
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            if 0 <= v < n:
                out.append(v)
            continue
        text = str(v)[:300]
        item = state.grounder.item(text, threshold=TITLE_THRESHOLD)
        if item is None:
            notes.append(f"title {text!r}: no catalog match, ignored")
            continue
        title = str(state.catalog.titles[item])
        if title != text:
            notes.append(f"title {text!r} -> {title!r}")
        if item not in out:
            out.append(item)
    return out, notes


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | int):
        return [value]
    return list(value) if isinstance(value, list | tuple) else []


def _text_arg(arg: Any, key: str) -> str:
    if isinstance(arg, dict):
        arg = arg.get(key)
    if not isinstance(arg, str) or not arg.strip():
        raise ToolError(f"the tool needs {key!r} as a non-empty string")
    return arg


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise ToolError(f"{key!r} must be a number, not {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ToolError(f"{key!r} must be a number, not {value!r}") from None
    if not math.isfinite(out):
        raise ToolError(f"{key!r} must be a finite number, not {value!r}")
    return int(out) if out.is_integer() else out


def _describe_structured(arg: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in arg.items() if v not in (None, [], ""))


def _cell(v: Any) -> str:
    s = "NULL" if v is None else str(v)
    return s if len(s) <= 200 else s[:197] + "..."


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] or type(exc).__name__


def _jsonable(arg: Any) -> Any:
    try:
        text = json.dumps(arg, default=str)
    except (TypeError, ValueError):
        return repr(arg)[:2000]
    return arg if len(text) <= 2000 else text[:2000]
