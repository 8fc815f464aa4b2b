"""What the server has seen: request counters (:class:`ServerStats`) and the request log.

:class:`RequestLog` is the outermost ASGI middleware of the app: it counts every completion
request (a ``POST`` to a path ending in ``/completions``, Azure's deployment paths counted under
the ``/v1/...`` path they mirror) before anything can answer it, and, given a ``log`` callable,
writes one line per request when its answer is complete::

    127.0.0.1:50412 "POST /v1/chat/completions HTTP/1.1" 200 3.1 ms
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ServerStats", "RequestLog", "completion_path"]


def completion_path(scope: Scope) -> str | None:
    """The ``/v1/...`` path of a completion request (Azure's deployment paths mapped onto it),
    or None for any other request.

    >>> completion_path({"type": "http", "method": "POST", "path": "/openai/deployments/d/completions"})
    '/v1/completions'
    >>> completion_path({"type": "http", "method": "GET", "path": "/v1/models"}) is None
    True
    """
    if scope.get("type") != "http" or scope.get("method") != "POST":
        return None
    path = str(scope.get("path", "")).rstrip("/")
    if not path.endswith("/completions"):
        return None
    if path.startswith("/openai/deployments/"):
        rest = path[len("/openai/deployments/") :].partition("/")[2]
        return "/v1/" + rest
    return path


class ServerStats:
    """Completion ``requests`` seen, the most ``max_in_flight`` at once, ``by_path`` counts.
    Thread-safe; :meth:`reset` starts again.

    >>> stats = ServerStats()
    >>> stats.enter("/v1/chat/completions"); stats.enter("/v1/completions"); stats.leave()
    >>> stats
    ServerStats(requests=2, in_flight=1, max_in_flight=2)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Zero the counters (requests still in flight stay counted in ``in_flight``)."""
        with self._lock:
            self.requests = 0
            self.max_in_flight = self.in_flight
            self.by_path: Counter[str] = Counter()

    def enter(self, path: str) -> None:
        """A completion request to ``path`` arrived."""
        with self._lock:
            self.requests += 1
            self.by_path[path] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        """A completion request is answered (or its connection is gone)."""
        with self._lock:
            self.in_flight -= 1

    def __repr__(self) -> str:
        return (
            f"ServerStats(requests={self.requests}, in_flight={self.in_flight}, "
            f"max_in_flight={self.max_in_flight})"
        )


class RequestLog:
    """ASGI middleware: counts completion requests in ``stats``; logs one line per request to
    ``log`` (None: no log)."""

    def __init__(
        self, app: ASGIApp, stats: ServerStats, log: Callable[[str], None] | None = None
    ) -> None:
        self.app = app
        self.stats = stats
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = completion_path(scope)
        if path is not None:
            self.stats.enter(path)
        if self.log is None:
            try:
                await self.app(scope, receive, send)
            finally:
                if path is not None:
                    self.stats.leave()
            return
        started = time.perf_counter()
        status = [0]

        async def logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, logged)
        finally:
            if path is not None:
                self.stats.leave()
            client = scope.get("client")
            who = f"{client[0]}:{client[1]}" if client else "-"
            target = scope["path"]  # no query string: it may carry what belongs in no log
            ms = (time.perf_counter() - started) * 1000
            self.log(
                f'{who} "{scope["method"]} {target} HTTP/{scope.get("http_version", "1.1")}" '
                f"{status[0] or '-'} {ms:.1f} ms"
            )
