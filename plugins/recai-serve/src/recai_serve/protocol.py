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

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from recai.errors import RecaiError
from recai.types import Completion, Message, Usage

__all__ = [
    "APIError",
    "ChatRequest",
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
)
"""Chat parameters that go to the backend (as ``max_tokens``, ``temperature``, ``stop``,
``seed``, ``json_schema``)."""

_HARMLESS = ("model", "messages", "stream", "stream_options", "n", "user", "metadata", "store")
# accepted and without effect on the answer (or at their only supported value)

NEUTRAL: dict[str, Any] = {
    "top_p": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
    "top_logprobs": 0,
    "logit_bias": {},
    "tools": [],
    "tool_choice": "none",
    "parallel_tool_calls": True,
}
"""Parameters accepted at the value that changes nothing (many clients send these defaults) and
refused at any other."""


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


def chat_request(body: Mapping[str, Any]) -> ChatRequest:
    """Check a chat request body; an :class:`APIError` (400) names the first bad parameter."""
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
            f"unsupported parameter {unknown[0]!r}: recai serve passes only "
            f"{', '.join(PASSED_OPTIONS)} to the backend (and accepts "
            f"{', '.join(f'{k}={v!r}' for k, v in NEUTRAL.items())}, which change nothing)",
            param=unknown[0],
            code="unsupported_parameter",
        )
    if body.get("n", 1) not in (1, None):
        raise APIError(400, "recai serve answers one choice per request (n = 1)", param="n")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise APIError(400, f"model must be a string, got {model!r}", param="model")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise APIError(400, "stream_options must be an object", param="stream_options")
    return ChatRequest(
        model=model,
        messages=_messages(body.get("messages")),
        options=_options(body),
        stream=bool(body.get("stream")),
        include_usage=bool(stream_options.get("include_usage")),
    )


def score_prompts(body: Mapping[str, Any]) -> list[str]:
    """The prompts of a ``/v1/completions`` scoring request (``echo: true`` with ``logprobs``)."""
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
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": completion.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(completion.usage),
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


def _messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise APIError(
            400, "messages must be a non-empty list of {role, content} objects", param="messages"
        )
    out = []
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
                        f"messages[{i}]: only text content is supported, got {kind!r}",
                        param=f"messages[{i}].content",
                    )
                parts.append(str(part.get("text", "")))
            content = "".join(parts)
        role = "system" if m.get("role") == "developer" else m.get("role")
        try:
            out.append(
                Message.from_dict(
                    {**m, "role": role, "content": "" if content is None else content}
                )
            )
        except (ValueError, TypeError) as e:
            raise APIError(400, f"messages[{i}]: {e}", param=f"messages[{i}]") from None
    return out


def _options(body: Mapping[str, Any]) -> dict[str, Any]:
    """The backend's ``chat`` options from an OpenAI request body (only those given)."""
    out: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise APIError(
                400,
                f"max_tokens must be a positive integer, got {max_tokens!r}",
                param="max_tokens",
            )
        out["max_tokens"] = max_tokens
    if body.get("temperature") is not None:
        t = body["temperature"]
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 <= t <= 2:
            raise APIError(
                400, f"temperature must be a number from 0 to 2, got {t!r}", param="temperature"
            )
        out["temperature"] = float(t)
    stop = body.get("stop")
    if stop is not None:
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise APIError(400, "stop must be a string or a list of strings", param="stop")
        out["stop"] = stop
    if body.get("seed") is not None:
        if not isinstance(body["seed"], int) or isinstance(body["seed"], bool):
            raise APIError(400, f"seed must be an integer, got {body['seed']!r}", param="seed")
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
            raise APIError(400, f"unknown response_format type {kind!r}", param="response_format")
    return out
