"""The ASGI application: recai LLM backends behind the OpenAI API, on Starlette.

:func:`create_app` returns a Starlette app (run it with any ASGI server; :class:`~recai_serve.
server.LLMServer` runs it with uvicorn):

- ``POST /v1/chat/completions``: messages in, a ``chat.completion`` out, with ``usage``; with
  ``"stream": true`` server-sent events of ``chat.completion.chunk`` objects, a usage chunk when
  ``stream_options.include_usage`` is set, and ``data: [DONE]``. Options the backend cannot
  honour are refused with a 400 naming them (:mod:`recai_serve.protocol`). ``tools`` are
  answered with ``tool_calls``: natively by a backend with the ``"tools"`` capability, else
  decoded as JSON under a schema (:mod:`recai.toolcalls`).
- ``POST /v1/completions`` with ``echo: true`` and ``logprobs``: log-probabilities of the
  prompt's tokens, when the backend has ``prompt_logprobs(text)``.
- ``GET /v1/models``, ``GET /health``; Azure's ``/openai/deployments/{name}/...`` paths, the
  deployment naming the model.

Errors have OpenAI's shape. Backend calls are blocking: each runs in a worker thread, at most
``max_concurrency`` at once (the rest wait, up to ``queue_timeout`` seconds, then get a 503 with
``Retry-After``), so the event loop stays free for ``/health`` and new connections. Bodies are
JSON (another ``Content-Type`` is refused with a 415, so a web page cannot post a form to it) of
at most ``max_body_bytes`` (413), nested at most ``limits.max_json_depth`` deep; what a request
asks is capped (:class:`~recai_serve.protocol.Limits`: messages, characters, prompt tokens
against the backend's context, ``max_tokens``, stop strings) before it waits for a slot. A
request whose client leaves is cancelled, waiting or generating.

>>> from recai.types import Completion
>>> class Hello(LLMBackend):
...     def chat(self, messages, **options):
...         return Completion("hello")
>>> app = create_app(Hello(), model="hello")
>>> [r.path for r in app.routes][:3]
['/health', '/v1/models', '/models']
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import gc
import hmac
import json
import math
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from recai.errors import RecaiError
from recai.roles import LLMBackend
from recai.toolcalls import ToolCallError
from recai.types import Completion, Message

from .protocol import (
    CHARS_PER_TOKEN,
    APIError,
    ChatRequest,
    ChunkMaker,
    Limits,
    call_backend,
    chat_completion,
    chat_request,
    check_depth,
    prepare_tools,
    score_prompts,
    stream_error,
    text_completion,
)
from .requestlog import RequestLog, ServerStats

__all__ = [
    "create_app",
    "Limits",
    "KeyGuard",
    "given_key",
    "BASIC_CHALLENGE",
    "MAX_BODY_BYTES",
    "BODY_TIMEOUT",
    "THREADS",
]

MAX_BODY_BYTES = 2 * 1024 * 1024
"""The largest request body accepted by default (larger: 413): twice the default
:attr:`~recai_serve.protocol.Limits.max_prompt_chars` of ASCII text. Parsing JSON holds the
interpreter's lock, so this also bounds how long one body can delay ``/health`` (tens of ms)."""

BODY_TIMEOUT = 30.0
"""Seconds a request body may take to arrive by default (slower: 408)."""

SEND_TIMEOUT = 30.0
"""Seconds a streamed event may wait for a client that does not read (then the stream is
cancelled as if the client had left)."""

CHECK_THREADS = 4
"""Worker threads for parsing bodies and counting prompt tokens (apart from the backend's)."""

THREADS = 64
"""Worker threads for backend calls when ``max_concurrency`` is None."""

_END = object()  # the end of a backend's stream


def create_app(
    backends: LLMBackend | Mapping[str, LLMBackend],
    *,
    model: str = "recai",
    api_key: str | None = None,
    max_concurrency: int | None = None,
    queue_timeout: float | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout: float | None = BODY_TIMEOUT,
    limits: Limits | None = None,
    stats: ServerStats | None = None,
    log: Callable[[str], None] | None = None,
    middleware: Sequence[Callable[[ASGIApp], ASGIApp]] = (),
) -> Starlette:
    """The ASGI app serving ``backends`` over the OpenAI API.

    ``backends`` is one backend (served as ``model``) or a mapping from model names to backends.
    ``api_key`` makes every request require it, ``/health`` and unknown paths too
    (``Authorization: Bearer <key>``, HTTP Basic with the key as the password, or Azure's
    ``api-key`` header; :class:`KeyGuard`). ``max_concurrency`` bounds the backend calls running at once
    (None: up to :data:`THREADS`); ``queue_timeout`` bounds how long a request waits for one
    (None: as long as it takes). ``stats`` counts completion requests (``app.state.stats``);
    ``log`` receives one line per request. ``middleware`` are ASGI middleware factories
    (``factory(app) -> app``) put between the counters and the routes, first outermost: the
    place for :meth:`recai.testing.faults.FaultPlan.middleware` in tests.

    What one client may ask is bounded before it waits for a backend slot: bodies of at most
    ``max_body_bytes`` (413) that arrive within ``body_timeout`` seconds (408), and the
    :class:`~recai_serve.protocol.Limits` of ``limits`` (400 naming the field and the limit).
    A backend that has ``context_length`` (an int) and ``count_tokens(messages)`` also gets
    prompts beyond its context, and ``max_tokens`` beyond what the prompt leaves, refused. A
    request whose client disconnects is cancelled while it waits and, for a backend whose
    ``capabilities`` include ``"cancel"`` (its calls then take ``cancel=``, a
    :class:`threading.Event` to watch), while it generates.
    """
    service = _Service(
        backends,
        model=model,
        api_key=api_key,
        max_concurrency=max_concurrency,
        queue_timeout=queue_timeout,
        max_body_bytes=max_body_bytes,
        body_timeout=body_timeout,
        limits=limits if limits is not None else Limits(),
    )
    stats = stats if stats is not None else ServerStats()
    routes = [
        Route("/health", service.health, methods=["GET"]),
        *(Route(p, service.models, methods=["GET"]) for p in _MODEL_PATHS),
        Route("/v1/chat/completions", service.chat, methods=["POST"]),
        Route("/openai/deployments/{deployment}/chat/completions", service.chat, methods=["POST"]),
        Route("/v1/completions", service.completions, methods=["POST"]),
        Route(
            "/openai/deployments/{deployment}/completions", service.completions, methods=["POST"]
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestLog, stats=stats, log=log),
            Middleware(KeyGuard, service=service),
            *(Middleware(m) for m in middleware),  # type: ignore[arg-type]
        ],
        exception_handlers={
            APIError: _api_error,
            _ClientGone: _client_gone,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.stats = stats
    app.state.backends = service.backends
    app.state.service = service  # LLMServer's shutdown cancels through it
    return app


_MODEL_PATHS = ("/v1/models", "/models", "/openai/models")


# -- the API key -----------------------------------------------------------------------------------
BASIC_CHALLENGE = 'Basic realm="recai", charset="UTF-8"'
"""The ``WWW-Authenticate`` challenge of every 401 for a missing or wrong key (RFC 7617): a
browser that opens a page of the server asks for a user name and password natively (any user
name, the key as the password); OpenAI clients ignore it."""


def given_key(headers: Mapping[str, str]) -> bytes | None:
    """The key a request carries, as bytes (None: none; compared with the key's UTF-8):
    ``Authorization: Bearer <key>`` (OpenAI clients), ``Authorization: Basic
    base64(user:key)`` (a browser after its login prompt, UTF-8 as the challenge says; the user
    name is ignored), or Azure's ``api-key`` header. ``headers`` are Starlette's (decoded as
    Latin-1, so encoding them back gives the bytes sent). A malformed Basic credential gives
    ``b""``, which matches no key."""
    auth = headers.get("authorization") or ""
    scheme, _, value = auth.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip().encode("latin-1", "replace")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return b""
        user, colon, password = decoded.partition(b":")
        return password if colon else b""
    given = headers.get("api-key")
    return None if given is None else given.strip().encode("latin-1", "replace")


class KeyGuard:
    """ASGI middleware: with an API key, every HTTP request must carry it (see
    :func:`given_key`), whatever its path or method: every API route, ``/health``, ``/metrics``,
    ``/docs``, ``/openapi.json``, the chat page and its script and style, and unknown paths
    (the 401 comes before routing, so that a 404 or 405 tells nobody without the key which
    routes exist). The 401 has OpenAI's error shape and the Basic challenge
    (:data:`BASIC_CHALLENGE`), the same for every path. A websocket without the key is closed
    before it opens (the server answers 403). CORS preflights, which carry no credentials by
    the Fetch standard, are answered before this by the CORS middleware, where origins are
    allowed."""

    def __init__(self, app: ASGIApp, service: _Service):
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.service.api_key is not None and scope["type"] in ("http", "websocket"):
            request = Request(scope, receive)
            try:
                self.service.check_auth(request)
            except APIError as e:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008, "reason": ""})
                    return
                response = await _api_error(request, e)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- error answers ---------------------------------------------------------------------------------
_TARPIT = frozenset({400, 401, 408, 413, 415})  # refusals a misbehaving client repeats


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    service = getattr(request.app.state, "service", None)
    if exc.status in _TARPIT and service is not None and service.calls > 0:
        # the model is generating: answer the refusal later, so that a client sending refused
        # requests back to back (20,000 stop strings, 120 KB prompts, bad keys) is slowed to a
        # few a second; each costs the event loop a millisecond or two of the interpreter's lock
        await anyio.sleep(service.limits.refusal_delay_ms / 1000)
    return JSONResponse(exc.body, exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    method, path = request.method, request.url.path
    if exc.status_code == 404:
        err = APIError(
            404,
            f"no route {method} {path}; try POST /v1/chat/completions or GET /v1/models",
            code="not_found",
        )
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "?")
        err = APIError(
            405,
            f"{path} does not answer {method}; it answers {allowed}",
            code="method_not_allowed",
            headers=exc.headers,
        )
    else:
        err = APIError(exc.status_code, str(exc.detail), headers=exc.headers)
    return await _api_error(request, err)


async def _internal_error(request: Request, exc: Exception) -> Response:
    err = APIError(
        500, f"internal error of recai serve: {type(exc).__name__}: {exc}", type="server_error"
    )
    return await _api_error(request, err)


# -- the routes ------------------------------------------------------------------------------------
class _ClientGone(Exception):
    """The client left before its answer: there is no one to answer (logged as 499)."""


async def _client_gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # nginx's "client closed request"; nobody reads it


class _Ticket:
    """One completion request from the time its body is read: its cancellation, for the
    backend (``cancel``, a :class:`threading.Event`) and for the event loop (``scope``), and why
    it was cancelled (``reason``: ``"client"`` left or the server is ``"shutdown"``)."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.scope = anyio.CancelScope()
        self.reason: str | None = None
        self.running = False  # holds a backend slot
        self.answered = False  # the status line went out: no other answer can follow
        self.told = False  # a streamed answer carried the shutdown's error event

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.cancel.set()
        self.scope.cancel()


class _Service:
    """The backends and the rules for reaching them (key, body limits, concurrency)."""

    def __init__(
        self,
        backends: LLMBackend | Mapping[str, LLMBackend],
        *,
        model: str,
        api_key: str | None,
        max_concurrency: int | None,
        queue_timeout: float | None,
        max_body_bytes: int,
        body_timeout: float | None,
        limits: Limits,
        require_backend: bool = True,
    ):
        served = {model: backends} if isinstance(backends, LLMBackend) else dict(backends)
        if not served and require_backend:
            raise RecaiError("recai serve needs at least one backend to serve")
        for name, backend in served.items():
            if not isinstance(backend, LLMBackend):
                raise RecaiError(
                    f"model {name!r}: {type(backend).__name__} is not an LLM backend "
                    "(recai.LLMBackend)"
                )
        if max_concurrency is not None and max_concurrency < 1:
            raise RecaiError(f"max_concurrency must be at least 1 (or None), got {max_concurrency}")
        for option, value in (("queue_timeout", queue_timeout), ("body_timeout", body_timeout)):
            if value is not None and not (0 < value < math.inf):
                raise RecaiError(f"{option} must be positive seconds (or None), got {value}")
        if max_body_bytes < 1:
            raise RecaiError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
        self.backends: dict[str, LLMBackend] = served
        self.api_key = api_key
        self.queue_timeout = queue_timeout
        self.body_timeout = body_timeout
        self.max_body_bytes = max_body_bytes
        self.limits = limits
        self.gate = anyio.Semaphore(max_concurrency) if max_concurrency else None
        self.threads = anyio.CapacityLimiter(max_concurrency or THREADS)
        # parsing bodies and counting tokens: never behind the backend's own threads
        self.checks = anyio.CapacityLimiter(CHECK_THREADS)
        self.tickets: set[_Ticket] = set()
        self.closing = False
        self._calls = 0  # backend calls running in worker threads (even after cancellation)
        self._calls_lock = threading.Lock()
        self._contexts: dict[str, int | None] = {}

    # -- plumbing ----------------------------------------------------------------------------------
    def check_auth(self, request: Request) -> None:
        """With a key, the request must carry it (401 otherwise): see :func:`given_key`."""
        if self.api_key is None:
            return
        given = given_key(request.headers)
        if given is None or not hmac.compare_digest(given, self.api_key.encode("utf-8")):
            raise APIError(
                401,
                "Incorrect API key provided."
                if given
                else "Missing API key: send Authorization: Bearer <key> (a browser: log in "
                "with any user name and the key as the password).",
                code="invalid_api_key",
                headers={"WWW-Authenticate": BASIC_CHALLENGE},
            )

    async def json_body(self, request: Request) -> dict[str, Any]:
        """The request's JSON object, within the size, time and depth limits; 400/408/413/415
        otherwise."""
        if self.closing:
            raise _shutting_down()
        ctype = request.headers.get("content-type")
        if ctype is not None:
            media = ctype.split(";")[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                raise APIError(
                    415,
                    f"the request body must be JSON (Content-Type: application/json), "
                    f"not {media[:60] or 'empty'!r}",
                    code="unsupported_media_type",
                )
        limit = self.max_body_bytes
        too_big = APIError(
            413,
            f"the request body is larger than {limit} bytes",
            code="request_too_large",
            headers={"Connection": "close"},
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_big
        chunks, size = [], 0
        try:
            with anyio.fail_after(self.body_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise too_big
                    chunks.append(chunk)
        except ClientDisconnect:
            raise APIError(400, "the client went away before sending the whole body") from None
        except TimeoutError:
            raise APIError(
                408,
                f"the request body did not arrive within {self.body_timeout:g} s",
                code="request_timeout",
                headers={"Connection": "close"},
            ) from None
        data = b"".join(chunks)
        return await anyio.to_thread.run_sync(self._parse, data, limiter=self.checks)

    def _parse(self, data: bytes) -> dict[str, Any]:
        collecting = gc.isenabled()
        try:
            # A body of many small values is many objects: the cyclic collector, run while
            # json.loads holds the interpreter's lock, took 3/4 of its time (130 ms for 2 MB of
            # empty lists, 35 ms without), and the event loop waits for the lock.
            gc.disable()
            body = json.loads(data)
        except RecursionError:
            raise APIError(
                400, "the request body is not valid JSON: nested too deeply", code="json_too_deep"
            ) from None
        except ValueError as e:
            raise APIError(400, f"the request body is not valid JSON: {e}") from None
        finally:
            if collecting:
                gc.enable()
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object")
        limits = self.limits
        if data.count(b",") + 1 > limits.max_json_values or (
            data.count(b"[") + data.count(b"{") > limits.max_json_depth
        ):  # else it is small and shallow: no walk
            check_depth(body, limits.max_json_depth, limits.max_json_values)
        return body

    def backend(self, name: str | None) -> tuple[str, LLMBackend]:
        if name is None and len(self.backends) == 1:
            return next(iter(self.backends.items()))
        if name is not None and name in self.backends:
            return name, self.backends[name]
        served = ", ".join(self.backends)
        if name is None:
            raise APIError(400, f"name the model: this server serves {served}", param="model")
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise APIError(
            404,
            f"The model {shown!r} does not exist on this server; it serves: {served}",
            param="model",
            code="model_not_found",
        )

    # -- the budget of a request -------------------------------------------------------------------
    async def check_budget(self, name: str, backend: LLMBackend, req: ChatRequest) -> None:
        """Refuse (400) a prompt beyond the backend's context or ``limits.max_prompt_tokens``,
        and a ``max_tokens`` beyond what the context leaves: counted with the backend's own
        tokenizer (``count_tokens``) in a worker thread, after a bound on characters that keeps
        a huge prompt from ever being tokenized."""
        context = await self.context_length(name, backend)
        limit = self.limits.max_prompt_tokens
        if context is not None:
            limit = context if limit is None else min(limit, context)
        if limit is None:
            return
        what = (
            f"the model {name!r} reads at most {context:,} tokens (its context)"
            if limit == context
            else f"this server accepts at most {limit:,} prompt tokens"
        )
        chars = sum(len(m.content) + len(m.name or "") for m in req.messages)
        if chars > CHARS_PER_TOKEN * limit:
            raise APIError(
                400,
                f"the messages are too long: {chars:,} characters cannot fit {limit:,} tokens; "
                f"{what}",
                param="messages",
                code="context_length_exceeded",
            )
        counter = getattr(backend, "count_tokens", None)
        if not callable(counter):
            return
        prompt = await anyio.to_thread.run_sync(
            functools.partial(call_backend, counter, req.messages), limiter=self.checks
        )
        if not isinstance(prompt, int):
            return
        if prompt > limit:
            raise APIError(
                400,
                f"the messages are {prompt:,} tokens long; {what}",
                param="messages",
                code="context_length_exceeded",
            )
        max_tokens = req.options.get("max_tokens")
        if context is not None and max_tokens is not None and prompt + max_tokens > context:
            raise APIError(
                400,
                f"max_tokens is {max_tokens:,}, but the {prompt:,} prompt tokens leave "
                f"{max(context - prompt, 0):,} of the model {name!r}'s {context:,}-token context",
                param="max_tokens",
                code="context_length_exceeded",
            )

    async def context_length(self, name: str, backend: LLMBackend) -> int | None:
        """The backend's ``context_length`` (None when it has none), read once in a worker
        thread (reading it may load the model)."""
        if name not in self._contexts:
            value = await anyio.to_thread.run_sync(
                functools.partial(call_backend, getattr, backend, "context_length", None),
                limiter=self.checks,
            )
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
            self._contexts[name] = value if ok else None
        return self._contexts[name]

    # -- cancellation ------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def watched(self, receive: Receive) -> AsyncIterator[_Ticket]:
        """A ticket for a request whose body is read: cancelled when the client disconnects
        (the ASGI ``http.disconnect`` event) or the server shuts down. Code inside is cancelled
        then (a backend call in a worker thread ends first: its ``cancel`` event asks it to
        stop early); afterwards a client that left gets no answer (:class:`_ClientGone`) and a
        shutdown a 503, unless the answer had begun."""
        if self.closing:
            raise _shutting_down()
        ticket = _Ticket()
        self.tickets.add(ticket)
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch, receive, ticket)
                try:
                    with ticket.scope:
                        yield ticket
                except Exception as e:  # raised below, outside the task group (not wrapped)
                    failure = e
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self.tickets.discard(ticket)
        if ticket.reason is not None and not ticket.answered:
            if ticket.reason == "shutdown":
                raise _shutting_down()
            raise _ClientGone()
        if failure is not None:
            raise failure

    async def _watch(self, receive: Receive, ticket: _Ticket) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                ticket.stop("client")
                return

    @contextlib.asynccontextmanager
    async def slot(self, ticket: _Ticket | None = None) -> AsyncIterator[None]:
        """Hold one of the ``max_concurrency`` backend slots (waiting up to ``queue_timeout``)."""
        if self.gate is None:
            if ticket is not None:
                ticket.running = True
            yield
            return
        with anyio.move_on_after(self.queue_timeout) as waited:
            await self.gate.acquire()
        if waited.cancelled_caught:
            raise APIError(
                503,
                f"the server is busy: no backend slot came free within {self.queue_timeout:g} s; "
                "try again",
                type="server_error",
                code="server_busy",
                headers={"Retry-After": "1"},
            )
        if ticket is not None:
            ticket.running = True
        try:
            yield
        finally:
            self.gate.release()

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker thread; backend errors become APIErrors."""
        with self._calls_lock:
            self._calls += 1

        def call() -> Any:
            try:
                return call_backend(fn, *args, **kwargs)
            finally:
                with self._calls_lock:
                    self._calls -= 1

        return await anyio.to_thread.run_sync(call, limiter=self.threads)

    @property
    def calls(self) -> int:
        """Backend calls running now in worker threads."""
        return self._calls

    def begin_shutdown(self) -> None:
        """Refuse new requests (503) and cancel the ones still waiting for a slot. In the
        event loop's thread."""
        self.closing = True
        for ticket in list(self.tickets):
            if not ticket.running:
                ticket.stop("shutdown")

    def cancel_all(self) -> None:
        """Cancel every request in flight (503 where the answer has not begun; the backend
        is asked to stop). In the event loop's thread."""
        self.closing = True
        for ticket in list(self.tickets):
            ticket.stop("shutdown")

    # -- routes ------------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        self.check_auth(request)  # with a key, every route wants it (a prober sends it too)
        return JSONResponse({"status": "ok"})

    async def models(self, request: Request) -> Response:
        self.check_auth(request)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "recai"}
            for name in self.backends
        ]
        return JSONResponse({"object": "list", "data": data})

    def options(self, backend: LLMBackend, req: ChatRequest, ticket: _Ticket) -> dict[str, Any]:
        """The backend's options, with the ticket's cancellation when the backend takes one."""
        if "cancel" in getattr(backend, "capabilities", ()):
            return {**req.options, "cancel": ticket.cancel}
        return req.options

    async def chat(self, request: Request) -> Response:
        self.check_auth(request)
        return await self.chat_body(request, await self.json_body(request))

    async def chat_body(self, request: Request, body: dict[str, Any]) -> Response:
        """The answer to a chat request whose JSON ``body`` was read (by :meth:`chat`, or by an
        app that serves agents beside the backends and looked at its ``model`` first)."""
        req = chat_request(body, self.limits)
        name, backend = self.backend(request.path_params.get("deployment", req.model))
        capabilities = getattr(backend, "capabilities", ())
        req = prepare_tools(
            req, native="tools" in capabilities, json_schema="json_schema" in capabilities
        )
        if req.stream:
            return _ChatStream(self, name, backend, req)
        started = time.perf_counter()
        async with self.watched(request.receive) as ticket:
            await self.check_budget(name, backend, req)
            async with self.slot(ticket):
                completion = await self.run(
                    backend.chat, req.messages, **self.options(backend, req, ticket)
                )
        completion = _answer(req, completion)
        return JSONResponse(
            chat_completion(name, completion),
            headers={"x-recai-backend-ms": f"{(time.perf_counter() - started) * 1000:.3f}"},
        )

    async def completions(self, request: Request) -> Response:
        self.check_auth(request)
        body = await self.json_body(request)
        prompts = score_prompts(body, self.limits)
        deployment = request.path_params.get("deployment")
        name, backend = self.backend(deployment if deployment is not None else body.get("model"))
        scorer = getattr(backend, "prompt_logprobs", None)
        if not callable(scorer):
            raise APIError(
                400,
                f"the backend of model {name!r} ({type(backend).__name__}) cannot score prompts: "
                "it has no prompt_logprobs(text) method",
                param="logprobs",
                code="unsupported_parameter",
            )
        async with self.watched(request.receive) as ticket:
            for prompt in prompts:
                one = ChatRequest(model=name, messages=[Message.user(prompt)])
                await self.check_budget(name, backend, one)
            async with self.slot(ticket):
                scored = [await self.run(lambda p=p: list(scorer(p))) for p in prompts]
        return JSONResponse(text_completion(name, prompts, scored))


def _answer(req: ChatRequest, completion: Any) -> Completion:
    """The backend's answer, checked, with a tool call read out of its JSON where the server
    offered the tools as a schema (:class:`~recai_serve.protocol.ToolPlan`)."""
    if not isinstance(completion, Completion):
        raise APIError(
            500,
            f"the backend's chat returned {type(completion).__name__}, not a Completion",
            type="server_error",
        )
    if req.tools is None:
        return completion
    try:
        return req.tools.answer(completion)
    except ToolCallError as e:
        raise APIError(500, str(e), type="server_error", code="tool_call_failed") from None


def _shutting_down() -> APIError:
    return APIError(
        503,
        "the server is shutting down: the request was not completed; send it again to a "
        "running server",
        type="server_error",
        code="server_shutting_down",
        headers={"Retry-After": "1", "Connection": "close"},
    )


class _ChatStream(Response):
    """A streamed chat answer: server-sent ``chat.completion.chunk`` events.

    The backend slot is held from the first backend call to the last event. An error before the
    first piece is an ordinary error answer (the status line is not sent yet); a later one is
    an error event, and the stream ends without ``[DONE]``. When the client goes away (or the
    server shuts down), the backend is asked to stop and its generator is closed.
    """

    def __init__(self, service: _Service, model: str, backend: LLMBackend, req: ChatRequest):
        self.service = service
        self.model = model
        self.backend = backend
        self.req = req

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service, backend, req = self.service, self.backend, self.req
        async with service.watched(receive) as ticket:
            await service.check_budget(self.model, backend, req)
            options = service.options(backend, req, ticket)
            async with service.slot(ticket):
                completion: Completion | None = None
                pieces: Iterator[str]
                # no streaming of its own, or tools (a call is known whole): one piece, with
                # its usage, finish reason and tool calls
                if req.tools is not None or type(backend).stream is LLMBackend.stream:
                    completion = _answer(
                        req, await service.run(backend.chat, req.messages, **options)
                    )
                    pieces = iter([] if completion.tool_calls else [completion.text])
                else:
                    pieces = await service.run(
                        lambda: iter(backend.stream(req.messages, **options))
                    )
                try:
                    first = await service.run(next, pieces, _END)  # errors here are HTTP errors
                    await self._send(ticket, send, first, pieces, completion)
                finally:
                    close = getattr(pieces, "close", None)
                    if close is not None:
                        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                            await anyio.to_thread.run_sync(close, limiter=service.threads)

    async def _send(
        self,
        ticket: _Ticket,
        send: Send,
        first: Any,
        pieces: Iterator[str],
        completion: Completion | None,
    ) -> None:
        ticket.answered = True
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        try:
            events_of = self._events(ticket, first, pieces, completion)
            async with contextlib.aclosing(events_of) as events:
                async for event in events:
                    # a client that stops reading holds the backend slot: not for long
                    with anyio.move_on_after(SEND_TIMEOUT) as sending:
                        await send({"type": "http.response.body", "body": event, "more_body": True})
                    if sending.cancelled_caught:
                        ticket.stop("client")
                        return
        except anyio.get_cancelled_exc_class():
            if ticket.reason == "shutdown" and not ticket.told:  # the client is still there
                ticket.told = True  # tell it why it ends, once
                with anyio.CancelScope(shield=True):
                    event = _sse(stream_error(_shutting_down()))
                    await send({"type": "http.response.body", "body": event, "more_body": False})
            raise
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _events(
        self, ticket: _Ticket, first: Any, pieces: Iterator[str], completion: Completion | None
    ) -> AsyncGenerator[bytes, None]:
        chunks = ChunkMaker(self.model)
        calls = completion.tool_calls if completion is not None else []
        yield _sse(chunks.delta({"role": "assistant", "content": None if calls else ""}))
        for chunk in chunks.tool_calls(calls):
            yield _sse(chunk)
        piece = first
        while piece is not _END:
            yield _sse(chunks.delta({"content": piece}))
            try:
                piece = await self.service.run(next, pieces, _END)
            except APIError as e:  # the headers are gone: report it in the stream
                yield _sse(stream_error(e))
                return
            if ticket.reason is not None:
                # stopped, and the backend saw it first (it ended its pieces early) before the
                # loop's cancellation arrived: this is no finished answer, so no [DONE]
                if ticket.reason == "shutdown" and not ticket.told:
                    ticket.told = True
                    yield _sse(stream_error(_shutting_down()))
                return
        finish = (completion.finish_reason if completion is not None else "stop") or "stop"
        yield _sse(chunks.delta({}, finish))
        if self.req.include_usage:
            yield _sse(chunks.usage(completion.usage if completion is not None else None))
        yield b"data: [DONE]\n\n"


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n"
