""":class:`LLMServer`: the app of :mod:`recai_serve.app` on uvicorn, started from Python.

uvicorn does the HTTP (parsing, keep-alive, chunked streaming, graceful shutdown); this class
binds the socket itself (so ``port=0`` gives a known free port before serving starts, and a busy
port fails at once with an ``OSError``), then serves on that socket in a background thread
(:meth:`LLMServer.start`, a context manager) or in the calling thread
(:meth:`LLMServer.serve_forever`, as ``recai serve`` does), until :meth:`LLMServer.stop`.

>>> from recai.types import Completion, Usage
>>> class Hello(LLMBackend):
...     def chat(self, messages, **options):
...         return Completion("hello", usage=Usage(3, 1))
>>> with LLMServer(Hello(), model="hello") as server:
...     server.base_url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from recai.errors import RecaiError
from recai.roles import Agent, LLMBackend

from .agentapp import REQUEST_TIMEOUT, create_agent_app
from .app import BODY_TIMEOUT, MAX_BODY_BYTES, create_app
from .metrics import Metrics
from .protocol import Limits
from .requestlog import ServerStats
from .served import Served
from .sessions import SessionStore

__all__ = ["LLMServer", "AgentServer", "HEADER_TIMEOUT", "CANCEL_GRACE"]

HEADER_TIMEOUT = 10.0
"""Seconds a connection may take to send a request's line and headers by default (slower: a
408 and the connection is closed), so that slow clients cannot hold connections for ever."""

CANCEL_GRACE = 5.0
"""Seconds that backend calls cancelled at shutdown get to stop (one token, for a backend that
takes ``cancel=``) before the server stops waiting for them."""


class _Uvicorn(uvicorn.Server):
    """uvicorn's server without its signal handling: whoever runs it decides what a signal
    does (uvicorn's own handlers re-raise the signal after shutting down, which would end
    ``recai serve`` with the signal's status instead of 0).

    Its shutdown cancels what is in flight through the app's service: requests still waiting
    for a backend slot at once, requests being generated after ``grace`` seconds (or at once
    after :meth:`LLMServer.stop` with ``force``); they get a 503. It returns when the backend
    calls in worker threads have ended (at most :data:`CANCEL_GRACE` seconds after they were
    cancelled), so that no thread is left generating while the interpreter exits.
    """

    def __init__(self, config: uvicorn.Config, service: Any, grace: float):
        super().__init__(config)
        self.service = service
        self.grace = grace

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        service = self.service
        service.begin_shutdown()
        loop = asyncio.get_running_loop()
        cancelled = asyncio.Event()

        async def deadline() -> None:
            end = loop.time() + self.grace
            while service.tickets and not self.force_exit and loop.time() < end:
                await asyncio.sleep(0.02)
            service.cancel_all()
            cancelled.set()

        watch = loop.create_task(deadline())
        try:
            await super().shutdown(sockets)
            await cancelled.wait()
            end = loop.time() + CANCEL_GRACE
            while service.calls and loop.time() < end:
                await asyncio.sleep(0.02)
        finally:
            watch.cancel()


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head: a connection that has
    not sent a complete request line and headers ``header_timeout`` seconds after it opened
    (or after its first byte following an answer) gets a 408 and is closed."""

    header_timeout = HEADER_TIMEOUT
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_head()  # the next request of a kept-alive connection begins
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # its head is complete
            self._disarm_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head()
        super().connection_lost(exc)

    def _arm_head(self) -> None:
        self._disarm_head()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _disarm_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or (
            self.cycle is not None and not self.cycle.response_complete
        ):
            return
        body = (
            b'{"error": {"message": "the request line and headers did not arrive within '
            + f"{self.header_timeout:g}".encode()
            + b' s", "type": "invalid_request_error", "param": null, "code": "request_timeout"}}'
        )
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()


class LLMServer:
    """Serves LLM backends over the OpenAI API on ``host:port`` (port 0: any free port).

    ``backends`` is one backend (served as ``model``) or a mapping from model names to backends.
    ``max_concurrency`` bounds how many backend calls run at once (None: up to
    :data:`recai_serve.app.THREADS`; requests beyond it wait, up to ``queue_timeout`` seconds
    when set, then get a 503). ``api_key`` makes the server require that key. ``log`` receives
    one line per request (None: silent). ``middleware`` wraps the routes (see
    :func:`~recai_serve.app.create_app`). ``shutdown_timeout``: how long :meth:`stop` lets
    requests in flight finish before cancelling them.

    :attr:`stats` counts completion requests; :attr:`app` is the ASGI app.
    """

    def __init__(
        self,
        backends: LLMBackend | Mapping[str, LLMBackend],
        *,
        model: str = "recai",
        host: str = "127.0.0.1",
        port: int = 0,
        max_concurrency: int | None = None,
        queue_timeout: float | None = None,
        api_key: str | None = None,
        log: Callable[[str], None] | None = None,
        middleware: Sequence[Callable[[ASGIApp], ASGIApp]] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
        body_timeout: float | None = BODY_TIMEOUT,
        header_timeout: float = HEADER_TIMEOUT,
        limits: Limits | None = None,
        shutdown_timeout: float = 10.0,
    ):
        _check_timeouts(header_timeout, shutdown_timeout)
        self.stats = ServerStats()
        self.log = log
        self.max_concurrency = max_concurrency
        app = create_app(
            backends,
            model=model,
            api_key=api_key,
            max_concurrency=max_concurrency,
            queue_timeout=queue_timeout,
            max_body_bytes=max_body_bytes,
            body_timeout=body_timeout,
            limits=limits,
            stats=self.stats,
            log=log,
            middleware=middleware,
        )
        self._setup(app, host, port, header_timeout, shutdown_timeout)

    def _setup(
        self, app: Any, host: str, port: int, header_timeout: float, shutdown_timeout: float
    ) -> None:
        """Bind the socket and make the uvicorn server of ``app`` (not started)."""
        self.app = app
        self.backends: dict[str, LLMBackend] = self.app.state.backends
        self._service = self.app.state.service
        protocol = type("_Protocol", (_Protocol,), {"header_timeout": float(header_timeout)})
        self._socket = _bind(host, port)
        self._address = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            self.app,
            http=protocol,
            log_config=None,  # leave the process's logging alone
            access_log=False,  # the request log is ours (RequestLog)
            lifespan="off",
            server_header=False,
            # ours cancels at shutdown_timeout (503s); uvicorn's is only the last resort
            timeout_graceful_shutdown=math.ceil(shutdown_timeout + CANCEL_GRACE),
        )
        self._server = _Uvicorn(config, self._service, float(shutdown_timeout))
        self._thread: threading.Thread | None = None
        self._serving = False
        self._done = threading.Event()

    # -- addresses ---------------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        host, port = self._address
        return str(host), int(port)

    @property
    def url(self) -> str:
        """``http://host:port`` (no path)."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL: ``http://host:port/v1``."""
        return self.url + "/v1"

    # -- life cycle --------------------------------------------------------------------------------
    def start(self) -> LLMServer:
        """Serve in a background (daemon) thread; returns once the server accepts connections."""
        if self._thread is None:
            errors: list[BaseException] = []

            def serve() -> None:
                try:
                    self.serve_forever()
                except BaseException as e:  # noqa: BLE001 - reported by start()
                    errors.append(e)
                    self._done.set()

            self._thread = threading.Thread(target=serve, daemon=True, name="recai-serve")
            self._thread.start()
            while not self._server.started and not self._done.wait(0.005):
                pass
            if errors:
                self._thread = None
                raise errors[0]
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` (from another thread or a signal
        handler). Requests in flight then get ``shutdown_timeout`` seconds to finish."""
        self._serving = True
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._done.set()
            self._socket.close()

    @property
    def backend_calls(self) -> int:
        """Backend calls running now in worker threads (after :meth:`stop`: those that did
        not stop when cancelled, as a backend without ``cancel=`` cannot be interrupted)."""
        return int(self._service.calls)

    def stop(self, *, force: bool = False) -> None:
        """Stop accepting, close idle connections, let requests in flight finish for
        ``shutdown_timeout`` seconds, then cancel them (``force``: cancel them at once), and
        release the port. Safe to call from a signal handler."""
        if force:
            self._server.force_exit = True
        self._server.should_exit = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
            self._thread = None
        if self._thread is None and not self._serving:
            self._socket.close()  # never served: release the port

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LLMServer({', '.join(self.backends)} at {self.base_url})"


def _check_timeouts(header_timeout: float, shutdown_timeout: float) -> None:
    for option, value in (
        ("header_timeout", header_timeout),
        ("shutdown_timeout", shutdown_timeout),
    ):
        if not (0 < value < math.inf):
            raise RecaiError(f"{option} must be positive seconds, got {value}")


class AgentServer(LLMServer):
    """Serves a recipe's agents (and its LLM backends, rankers, retrievers and explainers) on
    ``host:port``: the app of :func:`recai_serve.agentapp.create_agent_app` on uvicorn, with
    :class:`LLMServer`'s life cycle (``start``/``stop``, a context manager, graceful shutdown).

    ``served`` is a :class:`~recai_serve.served.Served` (or a mapping of agent names to agents);
    ``sessions`` a session store (default: in memory); ``cors_origins`` the origins allowed to
    call it from a browser (none by default); ``request_timeout`` the seconds an agent turn may
    take; ``max_queue`` the turns that may wait for a slot (more: 429). :attr:`sessions` is the store; :attr:`metrics` the per-route counters.

    >>> from recai.roles import Agent
    >>> from recai.types import Message
    >>> class Echo(Agent):
    ...     def reply(self, conversation):
    ...         return Message.assistant(conversation[-1].content)
    >>> with AgentServer({"echo": Echo()}) as server:
    ...     server.base_url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(
        self,
        served: Served | Mapping[str, Agent],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_concurrency: int | None = None,
        queue_timeout: float | None = None,
        max_queue: int | None = None,
        request_timeout: float | None = REQUEST_TIMEOUT,
        api_key: str | None = None,
        sessions: SessionStore | None = None,
        cors_origins: Sequence[str] = (),
        log: Callable[[str], None] | None = None,
        middleware: Sequence[Callable[[ASGIApp], ASGIApp]] = (),
        max_body_bytes: int = MAX_BODY_BYTES,
        body_timeout: float | None = BODY_TIMEOUT,
        header_timeout: float = HEADER_TIMEOUT,
        limits: Limits | None = None,
        shutdown_timeout: float = 10.0,
        page: bool = True,
    ):
        _check_timeouts(header_timeout, shutdown_timeout)
        if not isinstance(served, Served):
            served = Served(agents=dict(served))
        self.served = served
        self.stats = ServerStats()
        self.log = log
        self.max_concurrency = max_concurrency
        app = create_agent_app(
            served,
            api_key=api_key,
            max_concurrency=max_concurrency,
            queue_timeout=queue_timeout,
            max_queue=max_queue,
            request_timeout=request_timeout,
            max_body_bytes=max_body_bytes,
            body_timeout=body_timeout,
            limits=limits,
            sessions=sessions,
            cors_origins=cors_origins,
            stats=self.stats,
            log=log,
            middleware=middleware,
            page=page,
        )
        self.sessions: SessionStore = app.state.sessions
        self.metrics: Metrics = app.state.metrics
        self._setup(app, host, port, header_timeout, shutdown_timeout)

    def serve_forever(self) -> None:
        try:
            super().serve_forever()
        finally:
            self.sessions.close()

    def __repr__(self) -> str:
        return f"AgentServer({', '.join(self.served.agents)} at {self.base_url})"


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``OSError`` when it cannot be had)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # connections wait in the backlog until uvicorn serves
    except OSError:
        sock.close()
        raise
    return sock
