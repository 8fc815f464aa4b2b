"""Tool calling for chat models that have none of their own: the tools become a JSON schema.

OpenAI's ``tools`` (function specs) are answered by a model that decodes JSON under a schema
(the ``"json_schema"`` capability: ``hf.v1`` constrains every token to it, ``openai.v1`` asks
and checks): the schema has one branch per function, ``{"name": <const>, "arguments": <its
parameters>}``, plus ``{"content": <text>}`` when the model may answer without a tool, and the
JSON it writes is read back into :class:`~recai.types.ToolCall` s. Earlier calls and their
results are written into the conversation as text (:func:`render_tool_messages`).

Two users: ``recai serve`` (its ``/v1/chat/completions`` answers ``tools`` this way for such a
backend) and :class:`SchemaToolCalling`, which gives any such backend the ``"tools"``
capability in-process, so code written for native tool calling (an agent's tool mode) runs on
the embedded model:

>>> from recai.types import Completion, Message, function_tool
>>> class Brain(LLMBackend):
...     capabilities = frozenset({"json_schema"})
...     def chat(self, messages, **options):
...         return Completion('{"name": "map", "arguments": {}}')
>>> llm = SchemaToolCalling(Brain())
>>> "tools" in llm.capabilities
True
>>> c = llm.chat([Message.user("titles")], tools=[function_tool("map")])
>>> c.finish_reason, c.tool_calls[0].name
('tool_calls', 'map')

This module imports only the standard library and recai's types and roles.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .roles import LLMBackend
from .types import Completion, Message, ToolCall, check_tools, tool_choice_name

__all__ = [
    "ToolPlan",
    "ToolCallError",
    "SchemaToolCalling",
    "tool_plan",
    "render_tool_messages",
    "with_system",
    "MAX_TOOL_CALLS",
]

MAX_TOOL_CALLS = 8
"""Calls one answer may hold under ``parallel_tool_calls: true`` (the schema's ``maxItems``)."""


class ToolCallError(RuntimeError):
    """The model answered no tool call although ``tool_choice`` asked for one (``"required"``
    or a named function). Not a user error: the model's."""


def tool_plan(
    tools: Any,
    tool_choice: Any = None,
    parallel_tool_calls: Any = None,
    *,
    max_calls: int = MAX_TOOL_CALLS,
) -> ToolPlan | None:
    """The :class:`ToolPlan` of a request's ``tools``, ``tool_choice`` and
    ``parallel_tool_calls``; None when it offers no tools or ``tool_choice`` is ``"none"``. A
    ValueError names the first bad field by its path (``tools[1].function.name``,
    ``tool_choice``, ``parallel_tool_calls``).

    >>> tool_plan([{"type": "function", "function": {"name": "f"}}], "required").choice
    'required'
    >>> tool_plan([], "auto") is None
    True
    """
    if parallel_tool_calls is not None and not isinstance(parallel_tool_calls, bool):
        raise ValueError(
            f"parallel_tool_calls must be true or false, got {parallel_tool_calls!r:.40}"
        )
    checked = check_tools(tools if tools is not None else [])
    names = [t["function"]["name"] for t in checked]
    name = None if tool_choice is None else tool_choice_name(tool_choice, names)
    mode = "function" if name is not None else (tool_choice or "auto")
    if not checked:
        if mode in ("required", "function"):
            raise ValueError(f"tool_choice is {tool_choice!r:.60} but no tools are given")
        return None
    if mode == "none":
        return None
    return ToolPlan(checked, mode, name, parallel=parallel_tool_calls, max_calls=max_calls)


@dataclass(frozen=True)
class ToolPlan:
    """The tools of a chat request and how a backend without native tool calling answers them:
    JSON under :meth:`schema`, one branch per function (``{"name": <const>, "arguments": <its
    parameters>}``, keys the parameters do not declare closed off), plus ``{"content": <text>}``
    for ``"auto"``; with ``parallel`` (the request's ``parallel_tool_calls: true``) the calls
    come as ``{"tool_calls": [<call>, ...]}``, at most ``max_calls``. :meth:`answer` reads the
    JSON back into OpenAI's ``tool_calls``.

    >>> plan = ToolPlan([{"type": "function", "function": {"name": "f", "parameters":
    ...     {"type": "object", "properties": {"x": {"type": "integer"}}}}}], "auto")
    >>> [list(b["properties"]) for b in plan.schema()["anyOf"]]
    [['name', 'arguments'], ['content']]
    >>> c = plan.answer(Completion('{"name": "f", "arguments": {"x": 3}}'))
    >>> c.finish_reason, c.tool_calls[0].name, c.tool_calls[0].arguments
    ('tool_calls', 'f', '{"x": 3}')
    >>> plan.answer(Completion('{"content": "Hello"}')).text
    'Hello'
    >>> both = ToolPlan(plan.tools, "required", parallel=True)
    >>> [c.arguments for c in both.answer(Completion(
    ...     '{"tool_calls": [{"name": "f", "arguments": {"x": 1}}, '
    ...     '{"name": "f", "arguments": {"x": 2}}]}')).tool_calls]
    ['{"x": 1}', '{"x": 2}']
    """

    tools: list[dict[str, Any]]
    """The checked function specs (:func:`recai.types.check_tools`)."""
    choice: str = "auto"
    """``"auto"``, ``"required"`` or ``"function"`` (then ``name`` is the one to call)."""
    name: str | None = None
    parallel: bool | None = None
    """The request's ``parallel_tool_calls`` (None: not given): several calls in one answer
    when true (never for a named function: that is one call)."""
    max_calls: int = 8

    @property
    def names(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools]

    @property
    def several(self) -> bool:
        """Whether the answer's calls come as a list (``{"tool_calls": [...]}``)."""
        return self.parallel is True and self.choice != "function"

    def native(self) -> dict[str, Any]:
        """The ``tools`` and ``tool_choice`` options of a backend with native tool calling
        (and ``parallel_tool_calls`` when the request gave it)."""
        choice: Any = self.choice
        if self.choice == "function":
            choice = {"type": "function", "function": {"name": self.name}}
        options = {"tools": self.tools, "tool_choice": choice}
        if self.parallel is not None:
            options["parallel_tool_calls"] = self.parallel
        return options

    def schema(self) -> dict[str, Any]:
        """The JSON schema of an answer: the call(s), or (``"auto"``) a text answer.

        Parameters that use ``$ref`` (pydantic writes ``$defs`` and ``#/$defs/...``) are moved
        under the answer schema's ``$defs`` as ``fn_<name>`` with their local references
        rewritten, so that they still resolve inside the larger schema."""
        defs: dict[str, Any] = {}
        calls: list[dict[str, Any]] = []
        for t in self.tools:
            name = t["function"]["name"]
            if self.choice == "function" and name != self.name:
                continue
            arguments = _closed(t["function"]["parameters"])
            if _has_ref(arguments):
                defs[f"fn_{name}"] = _rebase(arguments, f"#/$defs/fn_{name}")
                arguments = {"$ref": f"#/$defs/fn_{name}"}
            calls.append(
                {
                    "type": "object",
                    "properties": {"name": {"const": name}, "arguments": arguments},
                    "required": ["name", "arguments"],
                    "additionalProperties": False,
                }
            )
        branches = calls
        if self.several:
            items = calls[0] if len(calls) == 1 else {"anyOf": calls}
            listed = {"type": "array", "items": items, "minItems": 1, "maxItems": self.max_calls}
            branches = [
                {
                    "type": "object",
                    "properties": {"tool_calls": listed},
                    "required": ["tool_calls"],
                    "additionalProperties": False,
                }
            ]
        if self.choice == "auto":
            branches = [
                *branches,
                {
                    "type": "object",
                    "properties": {"content": {"type": "string"}},
                    "required": ["content"],
                    "additionalProperties": False,
                },
            ]
        answer: dict[str, Any] = dict(branches[0]) if len(branches) == 1 else {"anyOf": branches}
        if defs:
            answer["$defs"] = defs
        return answer

    def instruction(self) -> str:
        """The system text that offers the tools (the backend adds the schema itself)."""
        lines = ["You can call these tools (functions):"]
        for t in self.tools:
            fn = t["function"]
            if self.choice == "function" and fn["name"] != self.name:
                continue
            about = " ".join(str(fn.get("description") or "").split())
            lines.append(f"- {fn['name']}" + (f": {about}" if about else ""))
        one = '{"name": <tool name>, "arguments": {...}}'
        call = f"To call a tool, reply with {one}"
        if self.several:
            call = (
                f'To call tools, reply with {{"tool_calls": [{one}, ...]}} (up to '
                f"{self.max_calls} calls, run in order)"
            )
        if self.choice == "function":
            lines.append(
                f'Call {self.name}: reply with {{"name": "{self.name}", "arguments": '
                "{...}} and nothing else."
            )
        elif self.choice == "required":
            lines.append(f"{call} and nothing else.")
        else:
            lines.append(
                f'{call}. To answer the user without a tool, reply with {{"content": <your '
                "answer>}. Reply with one JSON object and nothing else."
            )
        return "\n".join(lines)

    def _call(self, value: Any) -> ToolCall | None:
        if not isinstance(value, dict):
            return None
        name, arguments = value.get("name"), value.get("arguments", {})
        wanted = self.choice != "function" or name == self.name
        if name not in self.names or not isinstance(arguments, dict) or not wanted:
            return None
        return ToolCall(
            f"call_{uuid.uuid4().hex[:24]}", str(name), json.dumps(arguments, ensure_ascii=False)
        )

    def answer(self, completion: Completion) -> Completion:
        """``completion`` (the backend's JSON) as an OpenAI answer: the call(s) in
        ``tool_calls`` with ``finish_reason`` ``"tool_calls"``, or the text of a ``{"content"}``
        answer. Anything else is the text itself under ``"auto"``, and a :class:`ToolCallError`
        naming what came back under ``"required"`` or a named function."""
        if completion.tool_calls:  # a backend that answers calls itself
            return completion
        try:
            value = json.loads(completion.text)
        except (json.JSONDecodeError, RecursionError):
            value = None
        if isinstance(value, dict):
            listed = value.get("tool_calls")
            if isinstance(listed, list) and set(value) == {"tool_calls"}:
                found = [self._call(v) for v in listed[: self.max_calls]]
                calls = [c for c in found if c is not None]
            else:
                one = self._call(value)
                calls = [] if one is None else [one]
            if calls:
                return replace(completion, text="", finish_reason="tool_calls", tool_calls=calls)
            content = value.get("content")
            if self.choice == "auto" and isinstance(content, str) and set(value) == {"content"}:
                return replace(completion, text=content)
        if self.choice == "auto":
            return completion
        cut = " (cut off by max_tokens: raise it)" if completion.finish_reason == "length" else ""
        shown = completion.text if len(completion.text) <= 120 else completion.text[:117] + "..."
        raise ToolCallError(
            f"the model answered no call to {self.name or 'one of the tools'} although "
            f"tool_choice asks for one{cut}; it answered {shown!r}"
        )


def _closed(parameters: dict[str, Any]) -> dict[str, Any]:
    """A function's parameters without keys it does not declare: a schema listing
    ``properties`` and silent on ``additionalProperties`` gets ``false`` (what OpenAI's strict
    mode does), so that a small model decoding under it cannot pad its call with invented
    keys (SmolLM2-135M wrote ``{"city": ..., "type": "string", "maxLength": 40}`` before)."""
    if "properties" in parameters and "additionalProperties" not in parameters:
        return {**parameters, "additionalProperties": False}
    return parameters


_DATA_KEYS = frozenset({"enum", "const", "default", "examples"})  # values, not schemas


def _has_ref(schema: Any) -> bool:
    if isinstance(schema, dict):
        return "$ref" in schema or any(
            _has_ref(v) for k, v in schema.items() if k not in _DATA_KEYS
        )
    if isinstance(schema, list):
        return any(_has_ref(v) for v in schema)
    return False


def _rebase(schema: Any, base: str) -> Any:
    """``schema`` with each local ``$ref`` (``#...``) made relative to ``base``, the place the
    schema is moved to (``#/$defs/Genre`` -> ``<base>/$defs/Genre``, ``#`` -> ``base``)."""
    if isinstance(schema, dict):
        out = {}
        for k, v in schema.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#"):
                out[k] = base + v[1:]
            elif k in _DATA_KEYS:
                out[k] = v
            else:
                out[k] = _rebase(v, base)
        return out
    if isinstance(schema, list):
        return [_rebase(v, base) for v in schema]
    return schema


def render_tool_messages(messages: Sequence[Message], *, listed: bool = False) -> list[Message]:
    """Messages for a backend without native tool calling: an assistant message's calls are
    written into its text as the JSON it is asked for (``{"name": ..., "arguments": ...}``, one
    per line; with ``listed``, as one ``{"tool_calls": [...]}``), and tool results (consecutive
    ones together) become a user message naming the call each answers.

    >>> call = ToolCall("c1", "lookup", '{"sql": "SELECT 1"}')
    >>> out = render_tool_messages([Message.user("hi"), Message.assistant("", [call]),
    ...                             Message.tool("1 row", "c1")])
    >>> [m.role for m in out]
    ['user', 'assistant', 'user']
    >>> out[1].content
    '{"name": "lookup", "arguments": {"sql": "SELECT 1"}}'
    >>> out[2].content.splitlines()
    ['Result of lookup (call c1):', '1 row']
    """
    names: dict[str, str] = {}
    out: list[Message] = []
    results: list[str] = []
    for m in [*messages, None]:
        if m is not None and m.role == "tool":
            call = m.tool_call_id or "?"
            name = m.name or names.get(call, "a tool")
            results.append(f"Result of {name} (call {call}):\n{m.content}")
            continue
        if results:
            out.append(Message("user", "\n\n".join(results)))
            results = []
        if m is None:
            break
        if m.tool_calls:
            lines = [m.content] if m.content else []
            calls = []
            for c in m.tool_calls:
                names[c.id] = c.name
                try:
                    arguments = c.args()
                except ValueError:
                    arguments = c.arguments
                calls.append({"name": c.name, "arguments": arguments})
            if listed:
                lines.append(json.dumps({"tool_calls": calls}, ensure_ascii=False))
            else:
                lines += [json.dumps(c, ensure_ascii=False) for c in calls]
            out.append(Message("assistant", "\n".join(lines), name=m.name))
        elif m.tool_call_id is not None:
            out.append(Message(m.role, m.content, name=m.name))
        else:
            out.append(m)
    return out


def with_system(messages: list[Message], text: str) -> list[Message]:
    """``text`` added to the first system message (or as a new first message): some chat
    templates refuse a system message anywhere but first."""
    if messages and messages[0].role == "system":
        first = messages[0]
        return [Message("system", f"{first.content.rstrip()}\n\n{text}", first.name), *messages[1:]]
    return [Message("system", text), *messages]


class SchemaToolCalling(LLMBackend):
    """``backend`` (one that decodes JSON under a schema) with the ``"tools"`` capability: its
    ``chat`` takes ``tools=``, ``tool_choice=`` and ``parallel_tool_calls=`` as a backend with
    native tool calling does (:class:`~recai.roles.LLMBackend`), asks ``backend`` for JSON under
    the tools' schema with the tools listed in the system message, and returns the calls in
    ``Completion.tool_calls``. Conversations holding earlier calls and ``tool`` results are
    written as text for ``backend``, with or without tools. Other attributes (``count_tokens``,
    ``context_length``, ``close``, ...) are ``backend``'s; its capabilities are kept
    (``"cancel"`` is passed on).
    """

    def __init__(self, backend: LLMBackend, *, max_calls: int = MAX_TOOL_CALLS):
        capabilities = frozenset(getattr(backend, "capabilities", ()))
        if "json_schema" not in capabilities:
            raise TypeError(
                f"{type(backend).__name__} cannot decode JSON under a schema (no "
                '"json_schema" capability), so it cannot answer tool calls'
            )
        self.backend = backend
        self.max_calls = max_calls
        # per instance: the wrapped backend's capabilities and "tools"
        setattr(self, "capabilities", capabilities | {"tools"})  # noqa: B010

    def __getattr__(self, name: str) -> Any:
        if name == "backend":  # not set yet (half-built object)
            raise AttributeError(name)
        return getattr(self.backend, name)

    def __repr__(self) -> str:
        return f"SchemaToolCalling({self.backend!r})"

    def prepare(
        self,
        messages: Sequence[Message],
        tools: Any = None,
        tool_choice: Any = None,
        parallel_tool_calls: Any = None,
    ) -> tuple[list[Message], dict[str, Any], ToolPlan | None]:
        """The messages and options ``backend`` gets, and the plan that reads its answer."""
        plan = tool_plan(tools, tool_choice, parallel_tool_calls, max_calls=self.max_calls)
        msgs = render_tool_messages(messages, listed=plan is not None and plan.several)
        if plan is None:
            return msgs, {}, None
        return with_system(msgs, plan.instruction()), {"json_schema": plan.schema()}, plan

    def chat(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
        **options: Any,
    ) -> Completion:
        """Complete one conversation; with ``tools``, the model's call(s) in ``tool_calls``
        (:class:`ToolCallError` when ``tool_choice`` forces a call and none came)."""
        msgs, extra, plan = self.prepare(messages, tools, tool_choice, parallel_tool_calls)
        if plan is not None and options.get("json_schema") is not None:
            raise ValueError(
                "json_schema cannot be combined with tools for a backend without native tool "
                "calling (its tool calls are already JSON)"
            )
        completion = self.backend.chat(msgs, **{**options, **extra})
        return plan.answer(completion) if plan is not None else completion

    def chat_batch(
        self, conversations: Sequence[Sequence[Message]], **options: Any
    ) -> list[Completion]:
        return [self.chat(c, **options) for c in conversations]

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[str]:
        """The backend's stream of text; with ``tools``, the answer whole (a call is JSON that
        is read whole; its text is empty)."""
        if options.get("tools") is not None:
            yield self.chat(messages, **options).text
            return
        for key in ("tool_choice", "parallel_tool_calls"):
            options.pop(key, None)
        yield from self.backend.stream(render_tool_messages(messages), **options)

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        return self.backend.score_continuations(render_tool_messages(messages), continuations)
