"""An OpenAI-compatible HTTP server for any recai LLM backend (``recai serve``).

:class:`LLMServer` answers the OpenAI chat API for one or more :class:`~recai.roles.LLMBackend`
components, so any OpenAI client (``recai-openai``, the ``openai`` package, curl, another tool)
can talk to a local model, and so client code is tested against a real server:

- ``POST /v1/chat/completions``: messages in, a ``chat.completion`` out, with ``usage``; with
  ``"stream": true`` server-sent events of ``chat.completion.chunk`` objects, a usage chunk when
  ``stream_options.include_usage`` is set, and ``data: [DONE]``. ``max_tokens`` (or
  ``max_completion_tokens``), ``temperature``, ``stop``, ``seed`` and ``response_format``
  (``json_object``, ``json_schema``) go to the backend; a parameter it cannot honour is refused
  with a 400 naming it, never ignored (sampling knobs at their neutral values, such as
  ``top_p: 1``, which many clients send, are accepted).
- ``POST /v1/completions`` with ``echo: true`` and ``logprobs``: log-probabilities of the prompt's
  tokens, for scoring continuations, when the backend has a ``prompt_logprobs(text)`` method
  returning ``[(token_text, logprob or None), ...]``; otherwise a 400 that says so.
- ``GET /v1/models`` lists the served names; ``GET /health`` answers ``{"status": "ok"}``.
- Azure OpenAI paths (``/openai/deployments/{name}/chat/completions?api-version=...``) are served
  too, the deployment naming the model, so Azure clients can be tested the same way.

Errors have OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``. With
``api_key`` set, requests need ``Authorization: Bearer <key>`` (or Azure's ``api-key`` header).

**Fault injection** (for tests): :attr:`LLMServer.faults` is a queue of :class:`Fault` s; each
completion request takes the next one and the server really does it over the socket: answer
with a status (429 with ``Retry-After``, 500, ...), wait before answering (to run past a client's
timeout), send a 200 whose JSON body is cut off, close the connection without answering or in the
middle of a stream, or answer 401 echoing the credentials it was sent. :attr:`LLMServer.stats`
counts requests, and the most that were in flight at once.

The server is the standard library's threaded HTTP server (one thread per connection, HTTP/1.1
keep-alive), which is all a loopback server for one machine needs; it binds ``127.0.0.1`` by
default and has no TLS.

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
import http.server
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from .errors import RecaiError
from .roles import LLMBackend
from .types import Completion, Message

__all__ = ["LLMServer", "Fault", "FaultPlan", "ServerStats", "parse_fault", "FAULT_KINDS"]

#: What a fault can do: answer with an HTTP ``status``, ``delay`` the answer, send a
#: ``malformed`` JSON body, ``drop`` the connection (before answering, or mid-stream), or answer
#: 401 echoing the credentials (``auth-echo``, to test that clients redact keys).
FAULT_KINDS = ("status", "delay", "malformed", "drop", "auth-echo")

_MAX_BODY = 32 * 1024 * 1024
_PASSED_OPTIONS = (
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "stop",
    "seed",
    "response_format",
)
# accepted and without effect on the answer (or at their only supported value)
_HARMLESS = ("model", "messages", "stream", "stream_options", "n", "user", "metadata", "store")
# accepted at the value that changes nothing (many clients send these defaults), refused otherwise
_NEUTRAL: dict[str, Any] = {
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


# -- faults ----------------------------------------------------------------------------------------
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
    """A :class:`Fault` from its command-line form ``KIND[:key=value,...]``.

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
    fields: dict[str, Any] = {}
    if kind.isdigit():
        fields = {"kind": "status", "status": int(kind)}
    elif kind in FAULT_KINDS and kind != "status":
        fields = {"kind": kind}
    else:
        raise ValueError(
            f"fault {text!r}: the kind must be an HTTP status (429, 500, ...) or one of "
            "delay, malformed, drop, auth-echo"
        )
    keys = {
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

    >>> plan = FaultPlan()
    >>> plan.add("500", times=2).add("drop")
    FaultPlan(3 pending)
    >>> [plan.take().kind for _ in range(4)]
    ['status', 'status', 'drop', None]
    """

    def __init__(self, faults: Sequence[Fault | str] = ()):
        self._lock = threading.Lock()
        self._queue: list[Fault] = []
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

    def take(self) -> Fault | _NoFault:
        with self._lock:
            return self._queue.pop(0) if self._queue else _NO_FAULT

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def __repr__(self) -> str:
        return f"FaultPlan({self.pending} pending)"


class _NoFault:
    kind = None

    def __bool__(self) -> bool:
        return False


_NO_FAULT = _NoFault()


# -- statistics ------------------------------------------------------------------------------------
class ServerStats:
    """What the server has seen: completion ``requests``, the most ``max_in_flight`` at once,
    ``by_path`` counts, ``faults`` injected. Thread-safe; :meth:`reset` starts again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero the counters (requests still in flight stay counted in ``in_flight``)."""
        with self._lock:
            self.requests = 0
            self.in_flight = getattr(self, "in_flight", 0)
            self.max_in_flight = self.in_flight
            self.faults = 0
            self.by_path: Counter[str] = Counter()

    def _enter(self, path: str) -> None:
        with self._lock:
            self.requests += 1
            self.by_path[path] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def __repr__(self) -> str:
        return (
            f"ServerStats(requests={self.requests}, max_in_flight={self.max_in_flight}, "
            f"faults={self.faults})"
        )


# -- errors ----------------------------------------------------------------------------------------
class _HTTPError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}
        self.headers = dict(headers or {})


class _Dropped(Exception):
    """The connection was closed on purpose (a ``drop`` fault)."""


# -- the server ------------------------------------------------------------------------------------
class LLMServer:
    """Serves LLM backends over the OpenAI chat API on ``host:port`` (port 0: any free port).

    ``backends`` is one backend (served as ``model``) or a mapping from model names to backends.
    ``max_concurrency`` bounds how many requests reach the backends at once (None: no bound;
    requests beyond it wait). ``api_key`` makes the server require that key. ``log`` receives one
    line per request (None: silent).

    Use it as a context manager, or :meth:`start` (a background thread) and :meth:`stop`; or
    :meth:`serve_forever` in the calling thread, as ``recai serve`` does.
    """

    def __init__(
        self,
        backends: LLMBackend | Mapping[str, LLMBackend],
        *,
        model: str = "recai",
        host: str = "127.0.0.1",
        port: int = 0,
        max_concurrency: int | None = None,
        api_key: str | None = None,
        faults: Sequence[Fault | str] = (),
        log: Callable[[str], None] | None = None,
    ):
        served = {model: backends} if isinstance(backends, LLMBackend) else dict(backends)
        if not served:
            raise RecaiError("LLMServer needs at least one backend to serve")
        for name, backend in served.items():
            if not isinstance(backend, LLMBackend):
                raise RecaiError(
                    f"model {name!r}: {type(backend).__name__} is not an LLM backend "
                    "(recai.LLMBackend)"
                )
        if max_concurrency is not None and max_concurrency < 1:
            raise RecaiError(f"max_concurrency must be at least 1 (or None), got {max_concurrency}")
        self.backends: dict[str, LLMBackend] = served
        self.faults = FaultPlan(faults)
        self.stats = ServerStats()
        self.log = log
        self._api_key = api_key
        self._gate = threading.BoundedSemaphore(max_concurrency) if max_concurrency else None
        self.max_concurrency = max_concurrency
        self._httpd = _ThreadingServer((host, port), _Handler)
        self._httpd.app = self
        self._thread: threading.Thread | None = None

    # -- life cycle --------------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """``http://host:port`` (no path)."""
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL: ``http://host:port/v1``."""
        return self.url + "/v1"

    def start(self) -> LLMServer:
        """Serve in a background (daemon) thread; returns at once."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                daemon=True,
                name="recai-serve",
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` is called from another or an exception."""
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._close()

    def stop(self) -> None:
        """Stop accepting, close open connections, and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._close()

    def _close(self) -> None:
        self._httpd.close_connections()
        self._httpd.server_close()

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LLMServer({', '.join(self.backends)} at {self.base_url})"

    # -- request handling --------------------------------------------------------------------------
    def _check_auth(self, headers: Any) -> None:
        if self._api_key is None:
            return
        given = headers.get("api-key")
        auth = headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given != self._api_key:
            raise _HTTPError(
                401,
                "Incorrect API key provided."
                if given
                else "Missing API key: send Authorization: Bearer <key>.",
                code="invalid_api_key",
            )

    def _backend(self, name: str | None) -> tuple[str, LLMBackend]:
        if name is None and len(self.backends) == 1:
            return next(iter(self.backends.items()))
        if name in self.backends:
            return name, self.backends[name]
        served = ", ".join(self.backends)
        raise _HTTPError(
            404,
            f"The model {name!r} does not exist on this server; it serves: {served}",
            param="model",
            code="model_not_found",
        )

    def _gated(self) -> contextlib.AbstractContextManager[Any]:
        return self._gate if self._gate is not None else contextlib.nullcontext()


class _ThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    app: LLMServer

    def __init__(self, *args: Any, **kwargs: Any):
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that went away (reset, timed out): nothing to report
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Close kept-alive connections, so that no handler thread outlives the server."""
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "recai-serve"
    sys_version = ""
    timeout = 120  # an idle kept-alive connection is closed after this many seconds
    disable_nagle_algorithm = True  # else a kept-alive client waits ~40 ms for delayed ACKs
    server: _ThreadingServer

    # -- plumbing ----------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log = self.server.app.log
        if log is not None:
            log(f"{self.address_string()} {format % args}")

    def _send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, err: _HTTPError) -> None:
        self._send_json(err.status, err.body, err.headers)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        raise _Dropped

    def _read_json(self) -> dict[str, Any]:
        length = self.headers.get("Content-Length")
        if length is None:
            raise _HTTPError(411, "send the request body with a Content-Length header")
        n = int(length)
        if n > _MAX_BODY:
            self.close_connection = True
            raise _HTTPError(413, f"request body of {n} bytes is larger than {_MAX_BODY}")
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise _HTTPError(400, f"the request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise _HTTPError(400, "the request body must be a JSON object")
        return body

    # -- routes ------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        path = urlsplit(self.path).path.rstrip("/")
        app = self.server.app
        try:
            if path in ("/v1/models", "/models", "/openai/models"):
                app._check_auth(self.headers)
                data = [
                    {"id": name, "object": "model", "created": 0, "owned_by": "recai"}
                    for name in app.backends
                ]
                self._send_json(200, {"object": "list", "data": data})
            elif path == "/health":
                self._send_json(200, {"status": "ok"})
            else:
                raise _HTTPError(404, f"no route GET {path}; try GET /v1/models", code="not_found")
        except _HTTPError as e:
            self._send_error(e)

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        path = urlsplit(self.path).path.rstrip("/")
        app = self.server.app
        deployment = None
        if path.startswith("/openai/deployments/"):
            deployment, _, rest = path[len("/openai/deployments/") :].partition("/")
            path = "/v1/" + rest
        if path not in ("/v1/chat/completions", "/v1/completions"):
            with contextlib.suppress(_HTTPError):
                self._read_json()  # keep the connection usable
            self._send_error(
                _HTTPError(
                    404, f"no route POST {path}; try POST /v1/chat/completions", code="not_found"
                )
            )
            return
        app.stats._enter(path)
        try:
            body = self._read_json()
            fault = app.faults.take()
            if fault:
                with app.stats._lock:
                    app.stats.faults += 1
            if fault.kind == "auth-echo":
                sent = self.headers.get("authorization") or self.headers.get("api-key") or "(none)"
                raise _HTTPError(401, f"Incorrect API key provided: {sent}", code="invalid_api_key")
            app._check_auth(self.headers)
            if fault.kind == "status":
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                kind = "rate_limit_error" if fault.status == 429 else "server_error"
                raise _HTTPError(
                    fault.status, f"injected fault: HTTP {fault.status}", type=kind, headers=headers
                )
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            if fault.kind == "drop" and not body.get("stream"):
                self._drop()
            model = deployment if deployment is not None else body.get("model")
            name, backend = app._backend(model)
            if path == "/v1/completions":
                self._completions(name, backend, body, fault)
            else:
                self._chat(name, backend, body, fault)
        except _HTTPError as e:
            self._send_error(e)
        except _Dropped:
            pass
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (e.g. it timed out)
        finally:
            app.stats._leave()

    # -- chat --------------------------------------------------------------------------------------
    def _chat(
        self, name: str, backend: LLMBackend, body: dict[str, Any], fault: Fault | _NoFault
    ) -> None:
        unknown = sorted(
            k
            for k, v in body.items()
            if k not in _PASSED_OPTIONS
            and k not in _HARMLESS
            and not (k in _NEUTRAL and (v is None or v == _NEUTRAL[k]))
        )
        if unknown:
            raise _HTTPError(
                400,
                f"unsupported parameter {unknown[0]!r}: recai serve passes only "
                f"{', '.join(_PASSED_OPTIONS)} to the backend (and accepts "
                f"{', '.join(f'{k}={v!r}' for k, v in _NEUTRAL.items())}, which change nothing)",
                param=unknown[0],
                code="unsupported_parameter",
            )
        if body.get("n", 1) != 1:
            raise _HTTPError(400, "recai serve answers one choice per request (n = 1)", param="n")
        messages = _messages(body.get("messages"))
        options = _options(body)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._chat_stream(name, backend, messages, options, include_usage, fault)
            return
        started = time.perf_counter()
        with self.server.app._gated():
            completion = _call(backend.chat, messages, **options)
        if fault.kind == "malformed":
            data = b'{"id": "chatcmpl-broken", "object": "chat.completion", '
            data += b'"choices": [{"index": 0, "message": {"content": "'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        usage = completion.usage
        self._send_json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": completion.text},
                        "finish_reason": completion.finish_reason or "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                },
            },
            {"x-recai-backend-ms": f"{(time.perf_counter() - started) * 1000:.3f}"},
        )

    def _chat_stream(
        self,
        name: str,
        backend: LLMBackend,
        messages: list[Message],
        options: dict[str, Any],
        include_usage: bool,
        fault: Fault | _NoFault,
    ) -> None:
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            choices = [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": name,
                "choices": choices,
                **extra,
            }

        with self.server.app._gated():
            completion: Completion | None = None
            if type(backend).stream is LLMBackend.stream:  # no streaming of its own: one piece,
                completion = _call(backend.chat, messages, **options)  # with usage and finish
                pieces: Iterator[str] = iter([completion.text])
            else:
                pieces = iter(_call(backend.stream, messages, **options))
                first = _call(next, pieces, None)  # errors before the first byte are HTTP errors
                pieces = iter(()) if first is None else _chain(first, pieces)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._event(chunk({"role": "assistant", "content": ""}))
            sent = 0
            try:
                for piece in pieces:
                    if fault.kind == "drop" and sent >= fault.after:
                        self._drop()
                    self._event(chunk({"content": piece}))
                    sent += 1
            except _Dropped:
                raise
            except Exception as e:  # noqa: BLE001 - headers are gone: report in the stream
                self._event(
                    {
                        "error": {
                            "message": f"{type(e).__name__}: {e}",
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    }
                )
                self._end_chunks()
                return
            if fault.kind == "drop":
                self._drop()
        finish = (completion.finish_reason if completion is not None else "stop") or "stop"
        self._event(chunk({}, finish))
        if include_usage:
            u = completion.usage if completion is not None else None
            usage = {
                "prompt_tokens": u.prompt_tokens if u else 0,
                "completion_tokens": u.completion_tokens if u else 0,
                "total_tokens": u.total_tokens if u else 0,
            }
            self._event(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": name,
                    "choices": [],
                    "usage": usage,
                }
            )
        self._write_chunk(b"data: [DONE]\n\n")
        self._end_chunks()

    def _event(self, obj: Any) -> None:
        self._write_chunk(b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- prompt scoring ----------------------------------------------------------------------------
    def _completions(
        self, name: str, backend: LLMBackend, body: dict[str, Any], fault: Fault | _NoFault
    ) -> None:
        scorer = getattr(backend, "prompt_logprobs", None)
        if not body.get("echo") or body.get("logprobs") is None:
            raise _HTTPError(
                400,
                "recai serve answers /v1/completions only to score prompts (echo: true with "
                "logprobs); for text use /v1/chat/completions",
                param="echo",
                code="unsupported_parameter",
            )
        if not callable(scorer):
            raise _HTTPError(
                400,
                f"the backend of model {name!r} ({type(backend).__name__}) cannot score prompts: "
                "it has no prompt_logprobs(text) method",
                param="logprobs",
                code="unsupported_parameter",
            )
        prompts = body.get("prompt")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if (
            not isinstance(prompts, list)
            or not prompts
            or not all(isinstance(p, str) for p in prompts)
        ):
            raise _HTTPError(
                400, "prompt must be a string or a non-empty list of strings", param="prompt"
            )
        choices = []
        total = 0
        with self.server.app._gated():
            for i, prompt in enumerate(prompts):
                tokens = list(_call(scorer, prompt))
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
                            "token_logprobs": [
                                None if lp is None else float(lp) for _, lp in tokens
                            ],
                            "text_offset": offsets,
                            "top_logprobs": None,
                        },
                    }
                )
        if fault.kind == "malformed":
            data = b'{"id": "cmpl-broken", "choices": [{"index": 0, "logprobs": {"tokens": ['
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._send_json(
            200,
            {
                "id": f"cmpl-{uuid.uuid4().hex[:24]}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": name,
                "choices": choices,
                "usage": {"prompt_tokens": total, "completion_tokens": 0, "total_tokens": total},
            },
        )


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call into a backend; its errors become OpenAI-shaped HTTP errors."""
    try:
        return fn(*args, **kwargs)
    except (_HTTPError, _Dropped):
        raise
    except NotImplementedError as e:
        raise _HTTPError(400, f"not supported by this backend: {e}", code="unsupported") from e
    except (RecaiError, ValueError, TypeError) as e:
        raise _HTTPError(400, f"{type(e).__name__}: {e}") from e
    except Exception as e:  # noqa: BLE001 - the client gets the reason, the server keeps running
        raise _HTTPError(
            500, f"the backend failed: {type(e).__name__}: {e}", type="server_error"
        ) from e


def _messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise _HTTPError(
            400, "messages must be a non-empty list of {role, content} objects", param="messages"
        )
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise _HTTPError(400, f"messages[{i}] must be an object", param=f"messages[{i}]")
        content = m.get("content")
        if isinstance(content, list):  # content parts: only text is served
            parts = []
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text":
                    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                    raise _HTTPError(
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
        except ValueError as e:
            raise _HTTPError(400, f"messages[{i}]: {e}", param=f"messages[{i}]") from None
    return out


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """The backend's ``chat`` options from an OpenAI request body (only those given)."""
    out: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _HTTPError(
                400,
                f"max_tokens must be a positive integer, got {max_tokens!r}",
                param="max_tokens",
            )
        out["max_tokens"] = max_tokens
    if body.get("temperature") is not None:
        t = body["temperature"]
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 <= t <= 2:
            raise _HTTPError(
                400, f"temperature must be a number from 0 to 2, got {t!r}", param="temperature"
            )
        out["temperature"] = float(t)
    stop = body.get("stop")
    if stop is not None:
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _HTTPError(400, "stop must be a string or a list of strings", param="stop")
        out["stop"] = stop
    if body.get("seed") is not None:
        if not isinstance(body["seed"], int) or isinstance(body["seed"], bool):
            raise _HTTPError(400, f"seed must be an integer, got {body['seed']!r}", param="seed")
        out["seed"] = body["seed"]
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_object":
            out["json_schema"] = {}
        elif kind == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema")
            if not isinstance(schema, dict):
                raise _HTTPError(
                    400,
                    "response_format.json_schema.schema must be an object",
                    param="response_format",
                )
            out["json_schema"] = schema
        elif kind != "text":
            raise _HTTPError(400, f"unknown response_format type {kind!r}", param="response_format")
    return out
