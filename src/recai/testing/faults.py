"""Fault injection for OpenAI-compatible servers under test: an ASGI middleware, no framework.

Client code (recai-openai's retries, timeouts, stream handling, key redaction) is tested against
a real server that misbehaves on purpose. A :class:`FaultPlan` is a queue of :class:`Fault` s;
:meth:`FaultPlan.middleware` wraps any ASGI application (the ``recai serve`` app, say), and each
completion request (a ``POST`` to a path ending in ``/completions``) takes the next fault. The
fault really happens on the connection, so the client sees what it would see from a bad server:

- ``status``: an HTTP error (``429`` with ``Retry-After``, ``500``, ``503``, ...) in OpenAI's
  error shape, its message saying ``injected fault``;
- ``delay``: the answer comes ``seconds`` late (to run past a client's timeout);
- ``malformed``: a ``200`` whose JSON body is cut off (it begins ``{"id": "chatcmpl-broken"``);
- ``drop``: the connection is closed without an answer; in a stream, after ``after`` content
  chunks (before the finish chunk and ``data: [DONE]``);
- ``auth-echo``: a ``401`` repeating the ``Authorization`` / ``api-key`` header it was sent (a
  careless server; clients must not log what comes back).

It is pure ASGI (no Starlette, no uvicorn imported), so importing :mod:`recai.testing` stays light.
Waits use :func:`asyncio.sleep`: run it under an asyncio server (uvicorn).

>>> plan = FaultPlan()
>>> plan.add("500", times=2).add("drop")
FaultPlan(3 pending)
>>> [plan.take().kind for _ in range(3)], plan.take(), plan.injected
(['status', 'status', 'drop'], None, 3)

With ``recai serve``'s server (the recai-serve plugin)::

    faults = FaultPlan()
    with LLMServer(backend, middleware=[faults.middleware]) as server:
        faults.add("429:retry-after=1")   # the next completion request gets a 429
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Fault", "FaultPlan", "parse_fault", "FAULT_KINDS"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: What a fault can do: answer with an HTTP ``status``, ``delay`` the answer, send a
#: ``malformed`` JSON body, ``drop`` the connection (before answering, or mid-stream), or answer
#: 401 echoing the credentials (``auth-echo``, to test that clients redact keys).
FAULT_KINDS = ("status", "delay", "malformed", "drop", "auth-echo")

# the cut-off bodies of ``malformed``, by the kind of request
_BROKEN_CHAT = (
    b'{"id": "chatcmpl-broken", "object": "chat.completion", '
    b'"choices": [{"index": 0, "message": {"content": "'
)
_BROKEN_COMPLETION = b'{"id": "cmpl-broken", "choices": [{"index": 0, "logprobs": {"tokens": ['


@dataclass(frozen=True)
class Fault:
    """One injected failure. ``kind`` is one of :data:`FAULT_KINDS`.

    - ``status``: answer ``status`` (default 500) with an OpenAI error body, and a
      ``Retry-After: retry_after`` header when ``retry_after`` is set;
    - ``delay``: wait ``seconds`` and then answer normally;
    - ``malformed``: answer 200 with a JSON body cut off in the middle;
    - ``drop``: close the connection without an answer; in a stream, after ``after`` content
      chunks (and before the finish chunk and ``[DONE]``);
    - ``auth-echo``: answer 401 with the ``Authorization``/``api-key`` header it received in the
      message (what a careless server might do).

    ``times`` is how many consecutive requests get it.
    """

    kind: str
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    after: int = 1
    times: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; choose one of: {', '.join(FAULT_KINDS)}"
            )
        if self.times < 1:
            raise ValueError(f"a fault needs times >= 1, got {self.times}")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"a status fault needs a 4xx or 5xx status, got {self.status}")


def parse_fault(text: str) -> Fault:
    """A :class:`Fault` from its text form ``KIND[:key=value,...]``.

    ``KIND`` is an HTTP status (``429``, ``500``, ``503``) or one of ``delay``, ``malformed``,
    ``drop``, ``auth-echo``; keys are ``retry-after`` (seconds), ``seconds``, ``after`` and
    ``times``.

    >>> parse_fault("429:retry-after=1.5,times=2")
    Fault(kind='status', status=429, retry_after=1.5, seconds=0.0, after=1, times=2)
    >>> parse_fault("delay:seconds=3").seconds
    3.0
    """
    head, _, rest = text.strip().partition(":")
    kind = head.strip().lower()
    fields: dict[str, Any]
    if kind.isdigit():
        fields = {"kind": "status", "status": int(kind)}
    elif kind in FAULT_KINDS and kind != "status":
        fields = {"kind": kind}
    else:
        raise ValueError(
            f"fault {text!r}: the kind must be an HTTP status (429, 500, ...) or one of "
            "delay, malformed, drop, auth-echo"
        )
    keys: dict[str, tuple[str, Callable[[str], Any]]] = {
        "retry-after": ("retry_after", float),
        "seconds": ("seconds", float),
        "after": ("after", int),
        "times": ("times", int),
    }
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip().lower().replace("_", "-")
        if not sep or key not in keys:
            raise ValueError(
                f"fault {text!r}: expected key=value with a key among {', '.join(keys)}; "
                f"got {part!r}"
            )
        name, conv = keys[key]
        try:
            fields[name] = conv(value.strip())
        except ValueError:
            raise ValueError(
                f"fault {text!r}: {key} must be a number, got {value.strip()!r}"
            ) from None
    return Fault(**fields)


class FaultPlan:
    """The faults still to inject, in order; thread-safe. Each completion request takes one.

    :attr:`injected` counts the faults taken so far. :meth:`middleware` is the ASGI middleware
    that injects them.
    """

    def __init__(self, faults: Sequence[Fault | str] = ()):
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
        self.injected = 0
        for f in faults:
            self.add(f)

    def add(self, fault: Fault | str, *, times: int | None = None) -> FaultPlan:
        """Queue ``fault`` (a :class:`Fault` or its text form) for the next ``times`` requests."""
        f = parse_fault(fault) if isinstance(fault, str) else fault
        if times is not None:
            f = replace(f, times=times)
        with self._lock:
            self._queue.extend([replace(f, times=1)] * f.times)
        return self

    def take(self) -> Fault | None:
        """The next fault (counted in :attr:`injected`), or None when none is left."""
        with self._lock:
            if not self._queue:
                return None
            self.injected += 1
            return self._queue.pop(0)

    def clear(self) -> None:
        """Forget the faults not yet taken (and zero :attr:`injected`)."""
        with self._lock:
            self._queue.clear()
            self.injected = 0

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def __repr__(self) -> str:
        return f"FaultPlan({self.pending} pending)"

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind this plan: completion requests take the next fault first."""

        async def faulty(scope: Scope, receive: Receive, send: Send) -> None:
            if not _takes_faults(scope):
                await app(scope, receive, send)
                return
            fault = self.take()
            if fault is None:
                await app(scope, receive, send)
                return
            await _inject(fault, app, scope, receive, send)

        return faulty


def _takes_faults(scope: Scope) -> bool:
    return (
        scope.get("type") == "http"
        and scope.get("method") == "POST"
        and str(scope.get("path", "")).rstrip("/").endswith("/completions")
    )


async def _inject(fault: Fault, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    if fault.kind == "delay":
        await asyncio.sleep(fault.seconds)
        await app(scope, receive, send)
        return
    if fault.kind == "drop":
        try:
            await app(scope, receive, _Dropper(send, fault.after))
        except* _Dropped:
            pass  # the response was started and is never completed: the server closes it
        return
    await _read_body(receive)  # read the request, so that the connection stays usable
    if fault.kind == "auth-echo":
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        sent = headers.get("authorization") or headers.get("api-key") or "(none)"
        await _answer(send, 401, _error(f"Incorrect API key provided: {sent}", "invalid_api_key"))
    elif fault.kind == "status":
        extra = {}
        if fault.retry_after is not None:
            extra["retry-after"] = f"{fault.retry_after:g}"
        kind = "rate_limit_error" if fault.status == 429 else "server_error"
        message = f"injected fault: HTTP {fault.status}"
        await _answer(send, fault.status, _error(message, None, kind), extra)
    elif fault.kind == "malformed":
        path = str(scope.get("path", "")).rstrip("/")
        broken = _BROKEN_CHAT if path.endswith("/chat/completions") else _BROKEN_COMPLETION
        await _answer(send, 200, broken)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _error(message: str, code: str | None, kind: str = "invalid_request_error") -> bytes:
    err = {"message": message, "type": kind, "param": None, "code": code}
    return json.dumps({"error": err}).encode()


async def _answer(
    send: Send, status: int, body: bytes, extra: dict[str, str] | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Dropped(Exception):
    """Raised into the application when its connection is dropped on purpose."""


class _Dropper:
    """A ``send`` that drops the connection: before the status line of an ordinary answer, or
    after ``after`` content chunks of a server-sent event stream.

    "Before the status line": the response start goes out with a header value that an HTTP
    server must refuse to write (a NUL byte). uvicorn (both its h11 and httptools protocols)
    marks the response as started, refuses, and closes the connection, so the client sees the
    connection close with no answer at all, as from a server that died. The application gets
    an exception from ``send``, as when a client goes away.
    """

    def __init__(self, send: Send, after: int):
        self.send = send
        self.after = after
        self.stream = False
        self.sent = 0
        self.pending = b""

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = {k.lower(): v for k, v in message.get("headers", [])}
            self.stream = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            if not self.stream:
                with contextlib.suppress(Exception):  # the server refuses it, as intended
                    await self.send({**message, "headers": [(b"x-recai-drop", b"\x00")]})
                raise _Dropped("connection dropped by an injected fault")
            await self.send(message)
            return
        if message["type"] != "http.response.body" or not self.stream:
            await self.send(message)
            return
        # pass whole events while they are the role chunk or among the first `after` contents
        self.pending += message.get("body", b"")
        while b"\n\n" in self.pending:
            event, self.pending = self.pending.split(b"\n\n", 1)
            if not self._passes(event):
                raise _Dropped("stream dropped by an injected fault")
            await self.send(
                {"type": "http.response.body", "body": event + b"\n\n", "more_body": True}
            )

    def _passes(self, event: bytes) -> bool:
        payload = event.removeprefix(b"data: ")
        try:
            delta = json.loads(payload)["choices"][0]["delta"]
        except (ValueError, KeyError, IndexError, TypeError):
            return False  # [DONE], the usage chunk, an error event
        if "role" in delta:
            return True
        if delta.get("content") and self.sent < self.after:
            self.sent += 1
            return True
        return False
