"""The OpenAI API's shapes, framework-free: request bodies in, backend calls and answers out.

Everything here is plain Python on dicts, so it is tested without a server: which parameters a
chat request may carry (those passed to the backend, those accepted without effect, those
accepted only at their neutral value), how messages and options become a backend's ``chat``
arguments, and the JSON of answers, stream chunks and errors.

>>> req = chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}], "top_p": 1})
>>> req.messages[0].content, req.options, req.stream
('hi', {}, False)
>>> try:
...     chat_request({"messages": [{"role": "user", "content": "hi"}], "top_p": 0.5})
... except APIError as e:
...     print(e.status, e.body["error"]["param"])
400 top_p
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from recai.errors import RecaiError
from recai.toolcalls import ToolPlan, render_tool_messages, tool_plan, with_system
from recai.types import Completion, Message, ToolCall, Usage

__all__ = [
    "APIError",
    "Limits",
    "ChatRequest",
    "ToolPlan",
    "prepare_tools",
    "check_depth",
    "chat_request",
    "score_prompts",
    "call_backend",
    "chat_completion",
    "ChunkMaker",
    "text_completion",
    "stream_error",
    "PASSED_OPTIONS",
    "NEUTRAL",
]

PASSED_OPTIONS = (
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "stop",
    "seed",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
)
"""Chat parameters that go to the backend (as ``max_tokens``, ``temperature``, ``stop``,
``seed``, ``json_schema``; ``tools`` and ``tool_choice`` natively to a backend with the
``"tools"`` capability, else as a JSON schema: :class:`ToolPlan`)."""

_HARMLESS = ("model", "messages", "stream", "stream_options", "n", "user", "metadata", "store")
# accepted and without effect on the answer (or at their only supported value)

NEUTRAL: dict[str, Any] = {
    "top_p": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
    "top_logprobs": 0,
    "logit_bias": {},
}
"""Parameters accepted at the value that changes nothing (many clients send these defaults) and
refused at any other."""


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond any of these it gets a 400 naming the field and the
    limit, before it waits for the backend. The backend's context (when it tells it, see
    :func:`recai_serve.app.create_app`) bounds prompt tokens and ``max_tokens`` as well.

    >>> Limits().max_stop
    16
    """

    max_messages: int = 1024
    """Messages in one chat request (content parts count as their message)."""
    max_prompt_chars: int = 1_000_000
    """Characters of all messages' contents and names together (of all prompts of a scoring
    request). Against a backend that tells its context, also at most :data:`CHARS_PER_TOKEN`
    characters per token of it, so that no huge prompt is ever tokenized."""
    max_prompt_tokens: int | None = None
    """Prompt tokens, counted with the backend's tokenizer (None: the backend's context)."""
    max_tokens: int | None = None
    """The largest ``max_tokens`` (None: only the backend's context bounds it)."""
    max_stop: int = 16
    """Stop strings of one request."""
    max_stop_chars: int = 256
    """Characters of one stop string."""
    max_prompts: int = 64
    """Prompts of one ``/v1/completions`` scoring request."""
    max_json_depth: int = 64
    """Nesting of arrays and objects in a request body."""
    max_json_values: int = 100_000
    """Values (array items and object members, at any depth) in a request body."""
    max_tools: int = 128
    """Function specs in ``tools`` (OpenAI's own limit)."""
    max_tool_calls: int = 8
    """Calls in one answer when a request asks for ``parallel_tool_calls: true`` from a backend
    without native tool calling (the decoding schema allows this many)."""
    max_tool_chars: int = 100_000
    """Characters of the ``tools`` specs together, as compact JSON (they become a prompt and a
    grammar the backend compiles)."""
    refusal_delay_ms: int = 250
    """While the backend is generating, a refused request (400, 401, 408, 413, 415) is answered
    after this many milliseconds: a client that sends refused requests back to back then costs
    the server a few requests a second, not hundreds, and cannot take the model's CPU. Refusals
    are answered at once while the backend is idle."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise RecaiError(f"Limits.{name} must be a positive integer, got {value!r}")


CHARS_PER_TOKEN = 8
"""A prompt of more than ``CHARS_PER_TOKEN * context`` characters is refused without being
tokenized. Ordinary text runs 3 to 5 characters a token (SmolLM2: English prose 4.3, code
about 3.5); only long runs of one character (spaces, dashes) pack more. Tokenizing costs about
a millisecond per kilobyte of CPU, so this bounds what a refused prompt costs the server."""


class APIError(Exception):
    """An error answer in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

    >>> APIError(404, "no such model", param="model", code="model_not_found").body["error"]["code"]
    'model_not_found'
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",  # noqa: A002 - OpenAI's field name
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {
            "error": {"message": message, "type": type, "param": param, "code": code}
        }
        self.headers = dict(headers or {})


@dataclass
class ChatRequest:
    """A checked ``/v1/chat/completions`` body: what the backend's ``chat`` gets, and how to
    answer."""

    model: str | None
    messages: list[Message]
    options: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    tools: ToolPlan | None = None
    """The tools offered (None: none, or ``tool_choice: "none"``)."""


def prepare_tools(req: ChatRequest, *, native: bool, json_schema: bool) -> ChatRequest:
    """``req`` as a backend gets it: with its own tool calling (``native``: ``tools`` and
    ``tool_choice`` options, the messages as they came), or else with the tools as a system
    instruction and a ``json_schema`` option (a backend that decodes JSON), the calls and tool
    results of earlier turns written as text. A backend with neither gets a 400 when tools are
    offered."""
    plan = req.tools
    if native:
        if plan is None:
            return req
        return replace(req, options={**req.options, **plan.native()})
    messages = render_tool_messages(req.messages, listed=plan is not None and plan.several)
    if plan is None:
        return replace(req, messages=messages)
    if not json_schema:
        raise APIError(
            400,
            "this model cannot call tools: its backend has neither native tool calling (the "
            '"tools" capability) nor decoding under a JSON schema ("json_schema")',
            param="tools",
            code="unsupported_parameter",
        )
    if "json_schema" in req.options:
        raise APIError(
            400,
            "response_format cannot be combined with tools for this model (its backend has no "
            "native tool calling; its tool calls are already JSON)",
            param="response_format",
            code="unsupported_parameter",
        )
    messages = with_system(messages, plan.instruction())
    return replace(req, messages=messages, options={**req.options, "json_schema": plan.schema()})


def _tools(body: Mapping[str, Any], limits: Limits) -> ToolPlan | None:
    """The request's tools (None when it offers none or ``tool_choice`` is ``"none"``)."""
    tools = body.get("tools")
    if isinstance(tools, list) and len(tools) > limits.max_tools:  # before looking at each
        raise _too_many("too many tools", len(tools), limits.max_tools, "tools")
    if tools is not None:
        chars = len(json.dumps(tools, ensure_ascii=False, separators=(",", ":")))
        if chars > limits.max_tool_chars:
            raise _too_many(
                "the tools are too long (characters of their JSON)",
                chars,
                limits.max_tool_chars,
                "tools",
            )
    try:
        return tool_plan(
            tools,
            body.get("tool_choice"),
            body.get("parallel_tool_calls"),
            max_calls=limits.max_tool_calls,
        )
    except ValueError as e:
        field_path = str(e).split(" ", 1)[0]  # "tools[2].function.name", "tool_choice", ...
        known = field_path.startswith(("tools", "tool_choice", "parallel_tool_calls"))
        raise APIError(400, str(e), param=field_path if known else "tools") from None


def check_depth(body: Any, limit: int, max_values: int | None = None) -> None:
    """Refuse (400) a parsed JSON value nested deeper than ``limit`` arrays and objects, or
    holding more than ``max_values`` values in all (the walk stops there, so it costs at most
    that many steps).

    Iterative, so a deep value costs no recursion; ``json.loads`` itself stops at about 1000.

    >>> check_depth({"a": [[1]]}, 3)
    >>> try:
    ...     check_depth({"a": [[[1]]]}, 3)
    ... except APIError as e:
    ...     print(e.status, e)
    400 the request body is nested deeper than 3 levels of arrays and objects
    """
    stack: list[tuple[Any, int]] = [(body, 1)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        seen += len(children)
        if max_values is not None and seen > max_values:
            raise APIError(
                400,
                f"the request body holds more than {max_values:,} JSON values (this server's "
                "limit)",
                code="json_too_large",
            )
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    raise APIError(
                        400,
                        f"the request body is nested deeper than {limit} levels of arrays and "
                        "objects",
                        code="json_too_deep",
                    )
                stack.append((child, depth + 1))


def _too_many(what: str, got: int, limit: int, param: str) -> APIError:
    return APIError(
        400,
        f"{what}: {got:,} given, this server accepts at most {limit:,}",
        param=param,
        code="limit_exceeded",
    )


def chat_request(body: Mapping[str, Any], limits: Limits | None = None) -> ChatRequest:
    """Check a chat request body; an :class:`APIError` (400) names the first bad parameter.

    ``limits`` (default :class:`Limits`) bounds messages, their characters, stop strings and
    ``max_tokens``; the backend's context is checked later, where the backend is known.
    """
    limits = limits or Limits()
    unknown = sorted(
        k
        for k, v in body.items()
        if k not in PASSED_OPTIONS
        and k not in _HARMLESS
        and not (k in NEUTRAL and (v is None or v == NEUTRAL[k]))
    )
    if unknown:
        raise APIError(
            400,
            f"unsupported parameter {_short(unknown[0])}: recai serve passes only "
            f"{', '.join(PASSED_OPTIONS)} to the backend (and accepts "
            f"{', '.join(f'{k}={v!r}' for k, v in NEUTRAL.items())}, which change nothing)",
            param=unknown[0][:60],
            code="unsupported_parameter",
        )
    n = body.get("n", 1)
    if n is not None and (type(n) is not int or n != 1):
        raise APIError(400, "recai serve answers one choice per request (n = 1)", param="n")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise APIError(400, f"model must be a string, got {_short(model)}", param="model")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise APIError(400, "stream_options must be an object", param="stream_options")
    return ChatRequest(
        model=model,
        messages=_messages(body.get("messages"), limits),
        options=_options(body, limits),
        stream=bool(body.get("stream")),
        include_usage=bool(stream_options.get("include_usage")),
        tools=_tools(body, limits),
    )


def score_prompts(body: Mapping[str, Any], limits: Limits | None = None) -> list[str]:
    """The prompts of a ``/v1/completions`` scoring request (``echo: true`` with ``logprobs``),
    at most ``limits.max_prompts`` of at most ``limits.max_prompt_chars`` characters together."""
    limits = limits or Limits()
    if not body.get("echo") or body.get("logprobs") is None:
        raise APIError(
            400,
            "recai serve answers /v1/completions only to score prompts (echo: true with "
            "logprobs); for text use /v1/chat/completions",
            param="echo",
            code="unsupported_parameter",
        )
    prompts = body.get("prompt")
    prompts = [prompts] if isinstance(prompts, str) else prompts
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise APIError(
            400, "prompt must be a string or a non-empty list of strings", param="prompt"
        )
    if len(prompts) > limits.max_prompts:
        raise _too_many("too many prompts", len(prompts), limits.max_prompts, "prompt")
    chars = sum(len(p) for p in prompts)
    if chars > limits.max_prompt_chars:
        raise _too_many(
            "the prompts are too long (characters)", chars, limits.max_prompt_chars, "prompt"
        )
    return prompts


def call_backend(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call into a backend; its errors become :class:`APIError` s (the reason is sent to the
    client: 400 for what the request asked wrongly, 500 for a backend failure)."""
    try:
        return fn(*args, **kwargs)
    except APIError:
        raise
    except NotImplementedError as e:
        raise APIError(400, f"not supported by this backend: {e}", code="unsupported") from e
    except (RecaiError, ValueError, TypeError) as e:
        raise APIError(400, f"{type(e).__name__}: {e}") from e
    except Exception as e:  # noqa: BLE001 - the client gets the reason, the server keeps running
        raise APIError(
            500, f"the backend failed: {type(e).__name__}: {e}", type="server_error"
        ) from e


def _usage(u: Usage | None) -> dict[str, int]:
    return {
        "prompt_tokens": u.prompt_tokens if u else 0,
        "completion_tokens": u.completion_tokens if u else 0,
        "total_tokens": u.total_tokens if u else 0,
    }


def chat_completion(model: str, completion: Completion) -> dict[str, Any]:
    """The ``chat.completion`` object answering with ``completion``."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": _message(completion),
                "finish_reason": completion.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(completion.usage),
    }


def _message(completion: Completion) -> dict[str, Any]:
    if not completion.tool_calls:
        return {"role": "assistant", "content": completion.text}
    return {
        "role": "assistant",
        "content": completion.text or None,
        "tool_calls": [c.to_dict() for c in completion.tool_calls],
    }


class ChunkMaker:
    """The ``chat.completion.chunk`` objects of one streamed answer (one id, one timestamp).

    >>> chunks = ChunkMaker("m")
    >>> chunks.delta({"content": "hi"})["choices"][0]["delta"]
    {'content': 'hi'}
    >>> chunks.usage(None)["choices"], chunks.usage(None)["usage"]["total_tokens"]
    ([], 0)
    """

    def __init__(self, model: str):
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def delta(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        """A chunk carrying ``delta`` (and ``finish_reason`` when given)."""
        return self._chunk(
            [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        )

    def tool_calls(self, calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
        """The chunks of ``calls`` as OpenAI streams them: for each, one delta opening it (id,
        type, name, empty arguments), then one with its arguments."""
        out = []
        for i, c in enumerate(calls):
            head = {
                "index": i,
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": ""},
            }
            out.append(self.delta({"tool_calls": [head]}))
            out.append(
                self.delta({"tool_calls": [{"index": i, "function": {"arguments": c.arguments}}]})
            )
        return out

    def usage(self, usage: Usage | None) -> dict[str, Any]:
        """The last chunk when the client asked for usage: no choices, the token counts."""
        return self._chunk([], usage=_usage(usage))


def stream_error(e: BaseException) -> dict[str, Any]:
    """The event sent in a stream whose backend failed after the headers went out."""
    message = str(e) if isinstance(e, APIError) else f"{type(e).__name__}: {e}"
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}


def text_completion(model: str, prompts: list[str], scored: list[list[Any]]) -> dict[str, Any]:
    """The ``text_completion`` object of prompt scoring: for each prompt its tokens,
    log-probabilities (None for the first) and offsets, as OpenAI's ``echo`` answers them."""
    choices = []
    total = 0
    for i, (prompt, tokens) in enumerate(zip(prompts, scored, strict=True)):
        offsets, pos = [], 0
        for tok, _ in tokens:
            offsets.append(pos)
            pos += len(tok)
        total += len(tokens)
        choices.append(
            {
                "index": i,
                "text": prompt,
                "finish_reason": "length",
                "logprobs": {
                    "tokens": [t for t, _ in tokens],
                    "token_logprobs": [None if lp is None else float(lp) for _, lp in tokens],
                    "text_offset": offsets,
                    "top_logprobs": None,
                },
            }
        )
    return {
        "id": f"cmpl-{uuid.uuid4().hex[:24]}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": total, "completion_tokens": 0, "total_tokens": total},
    }


_ROLES = ("system", "user", "assistant", "tool")


def _messages(raw: Any, limits: Limits) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise APIError(
            400, "messages must be a non-empty list of {role, content} objects", param="messages"
        )
    if len(raw) > limits.max_messages:
        raise _too_many("too many messages", len(raw), limits.max_messages, "messages")
    out = []
    chars = 0
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise APIError(400, f"messages[{i}] must be an object", param=f"messages[{i}]")
        content = m.get("content")
        if isinstance(content, list):  # content parts: only text is served
            parts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text":
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise APIError(
                        400,
                        f"messages[{i}]: only text content is supported, got {_short(kind)}",
                        param=f"messages[{i}].content",
                    )
                text = part.get("text", "")
                if not isinstance(text, str):
                    raise APIError(
                        400,
                        f"messages[{i}]: a text part's text must be a string",
                        param=f"messages[{i}].content",
                    )
                parts.append(text)
            content = "".join(parts)
        elif content is not None and not isinstance(content, str):
            raise APIError(
                400,
                f"messages[{i}].content must be a string, a list of text parts or null, "
                f"not {type(content).__name__}",
                param=f"messages[{i}].content",
            )
        name = m.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 256):
            raise APIError(
                400,
                f"messages[{i}].name must be a string of at most 256 characters",
                param=f"messages[{i}].name",
            )
        for field_name, text in (("content", content), ("name", name)):
            if text and not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise APIError(
                        400,
                        f"messages[{i}].{field_name} is not valid Unicode (a lone surrogate "
                        "escape such as \\ud800)",
                        param=f"messages[{i}].{field_name}",
                    ) from None
        calls = m.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise APIError(
                400, f"messages[{i}].tool_calls must be a list", param=f"messages[{i}].tool_calls"
            )
        chars += len(content or "") + len(name or "")
        for call in calls or ():
            fn = call.get("function") if isinstance(call, dict) else None
            args = fn.get("arguments") if isinstance(fn, dict) else None
            chars += len(args) if isinstance(args, str) else 0
        if chars > limits.max_prompt_chars:
            raise APIError(
                400,
                f"the messages are too long: more than {limits.max_prompt_chars:,} characters "
                f"by messages[{i}] (this server's limit)",
                param="messages",
                code="limit_exceeded",
            )
        role = "system" if m.get("role") == "developer" else m.get("role")
        if role not in _ROLES:
            raise APIError(
                400,
                f"messages[{i}] has unknown role {_short(role)}: use system, developer, user, "
                "assistant or tool",
                param=f"messages[{i}].role",
            )
        try:
            out.append(
                Message.from_dict(
                    {**m, "role": role, "content": "" if content is None else content}
                )
            )
        except (ValueError, TypeError) as e:
            raise APIError(400, f"messages[{i}]: {e}", param=f"messages[{i}]") from None
    return out


def _options(body: Mapping[str, Any], limits: Limits) -> dict[str, Any]:
    """The backend's ``chat`` options from an OpenAI request body (only those given)."""
    out: dict[str, Any] = {}
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = body.get(key)
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise APIError(
                400,
                f"{key} must be a positive integer, got {_short(max_tokens)}",
                param=key,
            )
        if limits.max_tokens is not None and max_tokens > limits.max_tokens:
            raise _too_many(f"{key} is too large", max_tokens, limits.max_tokens, key)
        out["max_tokens"] = max_tokens
    if body.get("temperature") is not None:
        t = body["temperature"]
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 <= t <= 2:
            raise APIError(
                400,
                f"temperature must be a number from 0 to 2, got {_short(t)}",
                param="temperature",
            )
        out["temperature"] = float(t)
    stop = body.get("stop")
    if stop is not None:
        stop = [stop] if isinstance(stop, str) else stop
        if isinstance(stop, list) and len(stop) > limits.max_stop:  # before looking at each
            raise _too_many("too many stop strings", len(stop), limits.max_stop, "stop")
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise APIError(400, "stop must be a string or a list of strings", param="stop")
        longest = max((len(s) for s in stop), default=0)
        if longest > limits.max_stop_chars:
            raise _too_many(
                "a stop string is too long (characters)", longest, limits.max_stop_chars, "stop"
            )
        out["stop"] = stop
    if body.get("seed") is not None:
        seed = body["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool) or not -(2**63) <= seed < 2**64:
            raise APIError(
                400,
                f"seed must be an integer that fits 64 bits, got {_short(seed)}",
                param="seed",
            )
        out["seed"] = body["seed"]
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_object":
            out["json_schema"] = {}
        elif kind == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            if not isinstance(schema, dict):
                raise APIError(
                    400,
                    "response_format.json_schema.schema must be an object",
                    param="response_format",
                )
            out["json_schema"] = schema
        elif kind != "text":
            raise APIError(
                400, f"unknown response_format type {_short(kind)}", param="response_format"
            )
    return out


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error message never echoes a huge value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
