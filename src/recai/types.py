"""Shared data types: the currency that components of different plugins exchange.

- :class:`ItemList` — item indices with optional scores; what retrievers return, rankers rank and
  evaluators score.
- :class:`Message`, :class:`Completion`, :class:`Usage` — chat with LLM backends;
  :class:`ToolCall` — a function call a model asks for (OpenAI's ``tools``), and
  :func:`check_tools` / :func:`function_tool` for the function specs offered to it.
- :class:`Query` — what a retriever is asked (text, seed items or a user's history).
- :class:`Explanation` — what an explainer returns.
- :class:`Report` — what an evaluator returns: a table of metrics per system, plus the facts
  needed to read it (dataset, protocol, sample count, seeds).

Item identifiers inside these types are **catalog indices**: contiguous integers ``0..n_items-1``
assigned by the dataset's catalog. The catalog maps them to external ids and titles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "ItemList",
    "Message",
    "Completion",
    "Usage",
    "ToolCall",
    "check_tools",
    "tool_choice_name",
    "function_tool",
    "Query",
    "Explanation",
    "Report",
    "AgentTurn",
]


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
class ToolCall:
    """One function call a model asks for, in OpenAI's shape: ``arguments`` is JSON *text*
    (as the model wrote it; :meth:`args` parses it).

    >>> call = ToolCall("call_1", "hard_filter", '{"genres": ["Comedy"]}')
    >>> call.args()
    {'genres': ['Comedy']}
    >>> call.to_dict()["function"]
    {'name': 'hard_filter', 'arguments': '{"genres": ["Comedy"]}'}
    >>> ToolCall.from_dict(call.to_dict()) == call
    True
    """

    id: str
    name: str
    arguments: str = "{}"

    def __post_init__(self) -> None:
        for key in ("id", "name", "arguments"):
            if not isinstance(getattr(self, key), str):
                raise TypeError(
                    f"ToolCall.{key} must be a string, got {type(getattr(self, key)).__name__}"
                )

    def args(self) -> Any:
        """The arguments as a JSON value; a ValueError naming the call when they are no JSON."""
        try:
            return json.loads(self.arguments) if self.arguments.strip() else {}
        except json.JSONDecodeError as e:
            raise ValueError(
                f"the arguments of the call {self.id!r} to {self.name!r} are not valid JSON "
                f"({e.msg} at character {e.pos}): {self.arguments[:80]!r}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's ``tool_calls`` entry: ``{"id", "type": "function", "function": {...}}``."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ToolCall:
        """From OpenAI's shape, or the flat ``{"id", "name", "arguments"}``; arguments given as
        an object are written as JSON text."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a tool call must be an object, got {type(d).__name__}")
        fn = d.get("function", d)
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise ValueError(f"a tool call needs function.name (a string): {dict(d)!r:.120}")
        arguments = fn.get("arguments", "{}")
        if arguments is None:
            arguments = "{}"
        elif not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        call_id = d.get("id")
        return cls(
            id=str(call_id) if call_id is not None else "", name=fn["name"], arguments=arguments
        )


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message, in the shape OpenAI-compatible servers use.

    An assistant message may carry the ``tool_calls`` the model asked for; the answer to one is
    a ``tool`` message with that call's ``tool_call_id`` (:meth:`tool`).

    >>> call = ToolCall("call_1", "lookup", "{}")
    >>> Message("assistant", "", tool_calls=[call]).to_dict()["tool_calls"][0]["id"]
    'call_1'
    >>> Message.tool("3 films", "call_1").to_dict()
    {'role': 'tool', 'content': '3 films', 'tool_call_id': 'call_1'}
    """

    role: Role
    content: str
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tool_calls, tuple):  # a list given: kept hashable
            object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        if not all(isinstance(c, ToolCall) for c in self.tool_calls):
            raise TypeError("Message.tool_calls must hold ToolCall objects")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            d["name"] = self.name
        if self.tool_calls:
            d["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            d["tool_call_id"] = self.tool_call_id
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Message:
        try:
            role = d["role"]
        except KeyError as e:
            raise ValueError(f"chat message lacks the key {e.args[0]!r}: {dict(d)!r}") from None
        raw_calls = d.get("tool_calls") or ()
        if "content" not in d and not raw_calls:
            raise ValueError(f"chat message lacks the key 'content': {dict(d)!r}")
        if role not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"chat message has unknown role {role!r}")
        if not isinstance(raw_calls, (list, tuple)):
            raise ValueError(f"chat message's tool_calls must be a list, got {raw_calls!r:.80}")
        content = d.get("content")
        call_id = d.get("tool_call_id")
        return cls(
            role=role,
            content="" if content is None else str(content),
            name=d.get("name"),
            tool_calls=tuple(ToolCall.from_dict(c) for c in raw_calls),
            tool_call_id=None if call_id is None else str(call_id),
        )

    @staticmethod
    def system(content: str) -> Message:
        return Message("system", content)

    @staticmethod
    def user(content: str) -> Message:
        return Message("user", content)

    @staticmethod
    def assistant(content: str, tool_calls: Sequence[ToolCall] = ()) -> Message:
        return Message("assistant", content, tool_calls=tuple(tool_calls))

    @staticmethod
    def tool(content: str, tool_call_id: str, name: str | None = None) -> Message:
        """The result of the call ``tool_call_id``, sent back to the model."""
        return Message("tool", content, name=name, tool_call_id=tool_call_id)


_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TOOL_CHOICES = ("auto", "none", "required")


def function_tool(
    name: str, parameters: Mapping[str, Any] | None = None, description: str = ""
) -> dict[str, Any]:
    """An OpenAI function spec (an entry of ``tools=``), checked by :func:`check_tools`.

    >>> function_tool("lookup", {"type": "object", "properties": {"sql": {"type": "string"}}},
    ...               "SQL over the catalog")["function"]["name"]
    'lookup'
    """
    fn: dict[str, Any] = {
        "name": name,
        "parameters": dict(parameters or {"type": "object", "properties": {}}),  # no arguments
    }
    if description:
        fn["description"] = description
    spec = {"type": "function", "function": fn}
    check_tools([spec])
    return spec


def check_tools(tools: Any, tool_choice: Any = None) -> list[dict[str, Any]]:
    """OpenAI's ``tools`` (function specs) and ``tool_choice``, checked; the specs normalised
    (``parameters`` defaults to any object). A ValueError names the first bad field by its
    path (``tools[1].function.name``), as an API's 400 would.

    ``tool_choice`` is ``"auto"``, ``"none"``, ``"required"`` or
    ``{"type": "function", "function": {"name": ...}}`` naming one of the tools.

    >>> check_tools([{"type": "function", "function": {"name": "map"}}])[0]["function"]
    {'name': 'map', 'parameters': {'type': 'object', 'properties': {}}}
    >>> check_tools([{"type": "function", "function": {"name": "bad name"}}])
    Traceback (most recent call last):
    ...
    ValueError: tools[0].function.name must be 1 to 64 letters, digits, _ or -, got 'bad name'
    """
    if not isinstance(tools, (list, tuple)):
        raise ValueError(f"tools must be a list of function specs, got {type(tools).__name__}")
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, spec in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where} must be an object, got {type(spec).__name__}")
        if spec.get("type", "function") != "function":
            raise ValueError(f"{where}.type must be 'function', got {spec.get('type')!r:.60}")
        fn = spec.get("function")
        if not isinstance(fn, Mapping):
            raise ValueError(f"{where}.function must be an object with a name")
        name = fn.get("name")
        if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
            raise ValueError(
                f"{where}.function.name must be 1 to 64 letters, digits, _ or -, got {name!r:.60}"
            )
        if name in names:
            raise ValueError(f"{where}.function.name {name!r} is given twice")
        names.add(name)
        description = fn.get("description")
        if description is not None and not isinstance(description, str):
            raise ValueError(f"{where}.function.description must be a string")
        params = fn.get("parameters")
        if params is None:
            params = {"type": "object", "properties": {}}
        if not isinstance(params, Mapping):
            raise ValueError(
                f"{where}.function.parameters must be a JSON schema object, got "
                f"{type(params).__name__}"
            )
        if params.get("type", "object") != "object":
            raise ValueError(
                f"{where}.function.parameters must describe an object (type 'object'), got "
                f"type {params.get('type')!r:.60}"
            )
        strict = fn.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise ValueError(f"{where}.function.strict must be true or false")
        clean: dict[str, Any] = {"name": name}
        if description:
            clean["description"] = description
        clean["parameters"] = dict(params)
        if strict is not None:
            clean["strict"] = strict
        out.append({"type": "function", "function": clean})
    if tool_choice is not None:
        tool_choice_name(tool_choice, names)
    return out


def tool_choice_name(tool_choice: Any, names: set[str] | Sequence[str]) -> str | None:
    """The function ``tool_choice`` names (None for ``"auto"``, ``"none"``, ``"required"``);
    a ValueError for anything else or a name not among ``names``."""
    if isinstance(tool_choice, str):
        if tool_choice not in TOOL_CHOICES:
            raise ValueError(
                f"tool_choice must be 'auto', 'none', 'required' or a function, got "
                f"{tool_choice!r:.60}"
            )
        return None
    fn = tool_choice.get("function") if isinstance(tool_choice, Mapping) else None
    name = fn.get("name") if isinstance(fn, Mapping) else None
    if not isinstance(name, str) or tool_choice.get("type", "function") != "function":
        raise ValueError(
            "tool_choice must be 'auto', 'none', 'required' or "
            '{"type": "function", "function": {"name": ...}}'
        )
    if name not in names:
        raise ValueError(f"tool_choice names the function {name!r:.60}, which is not in tools")
    return name


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
    """What an LLM backend returns for one chat request.

    ``finish_reason`` is ``"stop"``, ``"length"``, ``"tool_calls"`` (the model asks for the
    calls in ``tool_calls``; backends with the ``"tools"`` capability), or ``"cancelled"``.
    """

    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    model: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)

    def as_message(self) -> Message:
        """The assistant message to append to the conversation (with its tool calls)."""
        return Message("assistant", self.text, tool_calls=tuple(self.tool_calls))


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
class AgentTurn:
    """One turn of an :class:`~recai.roles.Agent` as :meth:`~recai.roles.Agent.respond` returns it:
    the reply's ``text`` and what a caller (a server, a page, an evaluator) shows or keeps with it.

    ``items``: the recommended items in order, ``{"id": external id, "title": title}`` each (an
    agent may add ``"index"``, the catalog index, and ``"evidence"``, why the item is there);
    ``trace``: what the turn did, one entry per step (dicts, or objects with ``to_dict()``);
    ``plan``: the plan that ran, if the agent plans; ``llm_calls`` and ``seconds``: the turn's
    cost; ``profile``: the user as the agent now sees them (e.g. ``{"liked": [...], "disliked":
    [...]}``, each ``{"id", "title"}``).

    >>> AgentTurn("Try Heat (1995).", [{"id": "7", "title": "Heat (1995)"}]).to_dict()["items"]
    [{'id': '7', 'title': 'Heat (1995)'}]
    """

    text: str
    items: list[dict[str, Any]] = field(default_factory=list)
    trace: list[Any] = field(default_factory=list)
    plan: dict[str, Any] | None = None
    llm_calls: int = 0
    seconds: float = 0.0
    profile: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the turn (trace steps through their ``to_dict()``)."""
        return {
            "text": self.text,
            "items": self.items,
            "trace": [s.to_dict() if hasattr(s, "to_dict") else s for s in self.trace],
            "plan": self.plan,
            "llm_calls": self.llm_calls,
            "seconds": round(self.seconds, 4),
            "profile": self.profile,
        }


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
