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

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from recai.roles import LLMBackend

from .app import MAX_BODY_BYTES, create_app
from .requestlog import ServerStats

__all__ = ["LLMServer"]


class _Uvicorn(uvicorn.Server):
    """uvicorn's server without its signal handling: whoever runs it decides what a signal
    does (uvicorn's own handlers re-raise the signal after shutting down, which would end
    ``recai serve`` with the signal's status instead of 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


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
        shutdown_timeout: float = 10.0,
    ):
        self.stats = ServerStats()
        self.log = log
        self.max_concurrency = max_concurrency
        self.app = create_app(
            backends,
            model=model,
            api_key=api_key,
            max_concurrency=max_concurrency,
            queue_timeout=queue_timeout,
            max_body_bytes=max_body_bytes,
            stats=self.stats,
            log=log,
            middleware=middleware,
        )
        self.backends: dict[str, LLMBackend] = self.app.state.backends
        self._socket = _bind(host, port)
        self._address = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            self.app,
            log_config=None,  # leave the process's logging alone
            access_log=False,  # the request log is ours (RequestLog)
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=shutdown_timeout,  # type: ignore[arg-type]
        )
        self._server = _Uvicorn(config)
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

    def stop(self, *, force: bool = False) -> None:
        """Stop accepting, close idle connections, let requests in flight finish (``force``:
        do not wait for them), and release the port. Safe to call from a signal handler."""
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
