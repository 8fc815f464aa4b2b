"""The ASGI application: recai LLM backends behind the OpenAI API, on Starlette.

:func:`create_app` returns a Starlette app (run it with any ASGI server; :class:`~recai_serve.
server.LLMServer` runs it with uvicorn):

- ``POST /v1/chat/completions``: messages in, a ``chat.completion`` out, with ``usage``; with
  ``"stream": true`` server-sent events of ``chat.completion.chunk`` objects, a usage chunk when
  ``stream_options.include_usage`` is set, and ``data: [DONE]``. Options the backend cannot
  honour are refused with a 400 naming them (:mod:`recai_serve.protocol`).
- ``POST /v1/completions`` with ``echo: true`` and ``logprobs``: log-probabilities of the
  prompt's tokens, when the backend has ``prompt_logprobs(text)``.
- ``GET /v1/models``, ``GET /health``; Azure's ``/openai/deployments/{name}/...`` paths, the
  deployment naming the model.

Errors have OpenAI's shape. Backend calls are blocking: each runs in a worker thread, at most
``max_concurrency`` at once (the rest wait, up to ``queue_timeout`` seconds, then get a 503 with
``Retry-After``), so the event loop stays free for ``/health`` and new connections. Bodies are
JSON (another ``Content-Type`` is refused with a 415, so a web page cannot post a form to it) of
at most ``max_body_bytes`` (413).

>>> from recai.types import Completion
>>> class Hello(LLMBackend):
...     def chat(self, messages, **options):
...         return Completion("hello")
>>> app = create_app(Hello(), model="hello")
>>> [r.path for r in app.routes][:3]
['/health', '/v1/models', '/models']
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from recai.errors import RecaiError
from recai.roles import LLMBackend
from recai.types import Completion

from .protocol import (
    APIError,
    ChatRequest,
    ChunkMaker,
    call_backend,
    chat_completion,
    chat_request,
    score_prompts,
    stream_error,
    text_completion,
)
from .requestlog import RequestLog, ServerStats

__all__ = ["create_app", "MAX_BODY_BYTES", "THREADS"]

MAX_BODY_BYTES = 32 * 1024 * 1024
"""The largest request body accepted by default (larger: 413)."""

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
    stats: ServerStats | None = None,
    log: Callable[[str], None] | None = None,
    middleware: Sequence[Callable[[ASGIApp], ASGIApp]] = (),
) -> Starlette:
    """The ASGI app serving ``backends`` over the OpenAI API.

    ``backends`` is one backend (served as ``model``) or a mapping from model names to backends.
    ``api_key`` makes every route but ``/health`` require it (``Authorization: Bearer <key>``
    or Azure's ``api-key`` header). ``max_concurrency`` bounds the backend calls running at once
    (None: up to :data:`THREADS`); ``queue_timeout`` bounds how long a request waits for one
    (None: as long as it takes). ``stats`` counts completion requests (``app.state.stats``);
    ``log`` receives one line per request. ``middleware`` are ASGI middleware factories
    (``factory(app) -> app``) put between the counters and the routes, first outermost: the
    place for :meth:`recai.testing.faults.FaultPlan.middleware` in tests.
    """
    service = _Service(
        backends,
        model=model,
        api_key=api_key,
        max_concurrency=max_concurrency,
        queue_timeout=queue_timeout,
        max_body_bytes=max_body_bytes,
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
            *(Middleware(m) for m in middleware),  # type: ignore[arg-type]
        ],
        exception_handlers={
            APIError: _api_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.stats = stats
    app.state.backends = service.backends
    return app


_MODEL_PATHS = ("/v1/models", "/models", "/openai/models")


# -- error answers ---------------------------------------------------------------------------------
async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
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
    ):
        served = {model: backends} if isinstance(backends, LLMBackend) else dict(backends)
        if not served:
            raise RecaiError("recai serve needs at least one backend to serve")
        for name, backend in served.items():
            if not isinstance(backend, LLMBackend):
                raise RecaiError(
                    f"model {name!r}: {type(backend).__name__} is not an LLM backend "
                    "(recai.LLMBackend)"
                )
        if max_concurrency is not None and max_concurrency < 1:
            raise RecaiError(f"max_concurrency must be at least 1 (or None), got {max_concurrency}")
        if queue_timeout is not None and not queue_timeout > 0:
            raise RecaiError(
                f"queue_timeout must be positive seconds (or None), got {queue_timeout}"
            )
        if max_body_bytes < 1:
            raise RecaiError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
        self.backends: dict[str, LLMBackend] = served
        self.api_key = api_key
        self.queue_timeout = queue_timeout
        self.max_body_bytes = max_body_bytes
        self.gate = anyio.Semaphore(max_concurrency) if max_concurrency else None
        self.threads = anyio.CapacityLimiter(max_concurrency or THREADS)

    # -- plumbing ----------------------------------------------------------------------------------
    def check_auth(self, request: Request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("api-key")
        auth = request.headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise APIError(
                401,
                "Incorrect API key provided."
                if given
                else "Missing API key: send Authorization: Bearer <key>.",
                code="invalid_api_key",
            )

    async def json_body(self, request: Request) -> dict[str, Any]:
        """The request's JSON object, within the size limit; 400/413/415 otherwise."""
        ctype = request.headers.get("content-type")
        if ctype is not None:
            media = ctype.split(";")[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                raise APIError(
                    415,
                    f"the request body must be JSON (Content-Type: application/json), "
                    f"not {media or 'empty'!r}",
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
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_big
                chunks.append(chunk)
        except ClientDisconnect:
            raise APIError(400, "the client went away before sending the whole body") from None
        try:
            body = json.loads(b"".join(chunks))
        except RecursionError:
            raise APIError(400, "the request body is not valid JSON: nested too deeply") from None
        except ValueError as e:
            raise APIError(400, f"the request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise APIError(400, "the request body must be a JSON object")
        return body

    def backend(self, name: str | None) -> tuple[str, LLMBackend]:
        if name is None and len(self.backends) == 1:
            return next(iter(self.backends.items()))
        if name is not None and name in self.backends:
            return name, self.backends[name]
        served = ", ".join(self.backends)
        if name is None:
            raise APIError(400, f"name the model: this server serves {served}", param="model")
        raise APIError(
            404,
            f"The model {name!r} does not exist on this server; it serves: {served}",
            param="model",
            code="model_not_found",
        )

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``max_concurrency`` backend slots (waiting up to ``queue_timeout``)."""
        if self.gate is None:
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
        try:
            yield
        finally:
            self.gate.release()

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker thread; backend errors become APIErrors."""
        call = functools.partial(call_backend, fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=self.threads)

    # -- routes ------------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def models(self, request: Request) -> Response:
        self.check_auth(request)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "recai"}
            for name in self.backends
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(self, request: Request) -> Response:
        self.check_auth(request)
        req = chat_request(await self.json_body(request))
        name, backend = self.backend(request.path_params.get("deployment", req.model))
        if req.stream:
            return _ChatStream(self, name, backend, req)
        started = time.perf_counter()
        async with self.slot():
            completion = await self.run(backend.chat, req.messages, **req.options)
        if not isinstance(completion, Completion):
            raise APIError(
                500,
                f"the backend's chat returned {type(completion).__name__}, not a Completion",
                type="server_error",
            )
        return JSONResponse(
            chat_completion(name, completion),
            headers={"x-recai-backend-ms": f"{(time.perf_counter() - started) * 1000:.3f}"},
        )

    async def completions(self, request: Request) -> Response:
        self.check_auth(request)
        body = await self.json_body(request)
        prompts = score_prompts(body)
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
        async with self.slot():
            scored = [await self.run(lambda p=p: list(scorer(p))) for p in prompts]
        return JSONResponse(text_completion(name, prompts, scored))


class _ChatStream(Response):
    """A streamed chat answer: server-sent ``chat.completion.chunk`` events.

    The backend slot is held from the first backend call to the last event. An error before the
    first piece is an ordinary error answer (the status line is not sent yet); a later one is
    an error event, and the stream ends without ``[DONE]``. When the client goes away,
    Starlette cancels the stream and the backend's generator is closed.
    """

    def __init__(self, service: _Service, model: str, backend: LLMBackend, req: ChatRequest):
        self.service = service
        self.model = model
        self.backend = backend
        self.req = req

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service, backend, req = self.service, self.backend, self.req
        async with service.slot():
            completion: Completion | None = None
            pieces: Iterator[str]
            if type(backend).stream is LLMBackend.stream:  # no streaming of its own: one piece,
                completion = await service.run(backend.chat, req.messages, **req.options)
                pieces = iter([completion.text])  # with its usage and finish reason
            else:
                pieces = await service.run(
                    lambda: iter(backend.stream(req.messages, **req.options))
                )
            try:
                first = await service.run(next, pieces, _END)  # errors here are HTTP errors
                events = self._events(first, pieces, completion)
                response = StreamingResponse(
                    events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
                )
                await response(scope, receive, send)
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                        await anyio.to_thread.run_sync(close, limiter=service.threads)

    async def _events(
        self, first: Any, pieces: Iterator[str], completion: Completion | None
    ) -> AsyncIterator[bytes]:
        chunks = ChunkMaker(self.model)
        yield _sse(chunks.delta({"role": "assistant", "content": ""}))
        piece = first
        while piece is not _END:
            yield _sse(chunks.delta({"content": piece}))
            try:
                piece = await self.service.run(next, pieces, _END)
            except APIError as e:  # the headers are gone: report it in the stream
                yield _sse(stream_error(e))
                return
        finish = (completion.finish_reason if completion is not None else "stop") or "stop"
        yield _sse(chunks.delta({}, finish))
        if self.req.include_usage:
            yield _sse(chunks.usage(completion.usage if completion is not None else None))
        yield b"data: [DONE]\n\n"


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n"
