"""The ASGI app that serves a recipe's agents (and its LLM backends and models) over HTTP.

:func:`create_agent_app` returns a Starlette app:

- ``POST /v1/chat/completions``: the ``model`` is an agent (or an LLM backend, answered as
  :mod:`recai_serve.app` does). The conversation is the ``messages`` (stateless: any OpenAI
  client), or, with ``"session": "new"`` or a session id, kept on the server (the client sends
  only its new message; :mod:`recai_serve.sessions`). ``user`` (OpenAI's field) names the
  user: the server puts the ``recai_context`` message (their id, and their history when the
  dataset knows them) before the conversation. The answer is a ``chat.completion`` (streamed:
  ``chat.completion.chunk`` events as the agent writes) with a top-level ``"recai"`` object
  that OpenAI clients ignore: the session, the items (id, title, evidence, catalog attributes),
  the trace of tool calls, the plan, LLM calls, seconds and the user's profile.
- ``POST /v1/feedback``: a like or dislike of an item, into the agent's profile of the user.
- the REST API (:mod:`recai_serve.rest`): recommend, similar items, search, explain, items.
- ``GET /health``, ``GET /metrics`` (request counts and latency percentiles per route),
  ``GET /openapi.json`` and ``GET /docs``; the chat page at ``/`` where
  :mod:`recai_serve.page` is installed.

Agent turns are blocking: each runs in a worker thread, holding one of ``max_concurrency``
slots (the rest wait, up to ``queue_timeout``, then a 503). A turn whose client leaves, or that
runs past ``request_timeout``, is stopped at the next piece of text it writes (its
``on_text`` raises), and the server's shutdown finishes or cancels it as for LLM requests.
With ``api_key`` every request needs the key, whatever its path: the API, ``/health``,
``/metrics``, ``/docs``, the chat page and its files, unknown paths (a 401 before any 404, so
nothing tells a client without the key which routes exist). API clients send it as
``Authorization: Bearer <key>``; a browser opening the page gets a Basic challenge and asks for
it natively (any user name, the key as the password), then sends those credentials with the
page's own API calls (:class:`recai_serve.app.KeyGuard`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from recai.data.context import CONTEXT_NAME, context_message
from recai.errors import RecaiError
from recai.roles import Agent
from recai.runtime import json_default
from recai.types import Message

from . import rest
from .app import (
    BODY_TIMEOUT,
    MAX_BODY_BYTES,
    SEND_TIMEOUT,
    KeyGuard,
    _api_error,
    _client_gone,
    _ClientGone,
    _http_error,
    _internal_error,
    _Service,
    _shutting_down,
    _sse,
    _Ticket,
)
from .metrics import Metrics, MetricsMiddleware
from .protocol import APIError, ChatRequest, ChunkMaker, Limits, chat_request, stream_error
from .requestlog import RequestLog, ServerStats
from .served import Served
from .sessions import TURN_KEY, MemorySessions, Session, SessionStore

__all__ = ["create_agent_app", "REQUEST_TIMEOUT", "MAX_USER_CHARS"]

REQUEST_TIMEOUT = 300.0
"""Seconds an agent turn may run by default (then it is stopped at its next piece of text and
answered 504)."""

MAX_USER_CHARS = 256
"""Characters of a ``user`` id (OpenAI's own limit for the field)."""

REST_THREADS = 4
"""Worker threads for REST calls (recommend, similar, search, explain, feedback), apart from
the agents' slots, so that a quick ``/v1/recommend`` never waits behind a long chat turn."""


def create_agent_app(
    served: Served,
    *,
    api_key: str | None = None,
    max_concurrency: int | None = None,
    queue_timeout: float | None = None,
    max_queue: int | None = None,
    request_timeout: float | None = REQUEST_TIMEOUT,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout: float | None = BODY_TIMEOUT,
    limits: Limits | None = None,
    sessions: SessionStore | None = None,
    cors_origins: Sequence[str] = (),
    stats: ServerStats | None = None,
    log: Callable[[str], None] | None = None,
    middleware: Sequence[Callable[[ASGIApp], ASGIApp]] = (),
    page: bool = True,
) -> Starlette:
    """The ASGI app serving ``served`` (agents, LLM backends, rankers, retrievers, explainers
    and their dataset): see the module's text. ``sessions`` keeps conversations (default: in
    memory, a day's expiry); ``max_queue`` bounds the turns waiting for a slot (beyond it a
    429 at once; None: no bound); ``cors_origins`` allows those origins (none by default: a web page
    of another origin cannot call the server); the other options are
    :func:`recai_serve.app.create_app` 's."""
    if not served.agents:
        raise RecaiError("recai serve: no agent to serve (create_agent_app needs at least one)")
    if request_timeout is not None and not (0 < request_timeout < math.inf):
        raise RecaiError(
            f"request_timeout must be positive seconds (or None), got {request_timeout}"
        )
    service = _Service(
        served.backends,
        model="recai",
        api_key=api_key,
        max_concurrency=max_concurrency,
        queue_timeout=queue_timeout,
        max_body_bytes=max_body_bytes,
        body_timeout=body_timeout,
        limits=limits if limits is not None else Limits(),
        require_backend=False,
    )
    if max_queue is not None and max_queue < 0:
        raise RecaiError(f"max_queue must be 0 or more (or None), got {max_queue}")
    stats = stats if stats is not None else ServerStats()
    metrics = Metrics()
    agents = _AgentService(
        service,
        served,
        sessions if sessions is not None else MemorySessions(),
        request_timeout,
        max_queue,
        metrics,
    )
    api = rest.RestAPI(service, served, agents, metrics)
    routes: list[BaseRoute] = [
        Route("/health", agents.health, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        *(Route(p, agents.models, methods=["GET"]) for p in ("/v1/models", "/models")),
        Route("/v1/chat/completions", agents.chat, methods=["POST"]),
        Route("/openai/deployments/{deployment}/chat/completions", agents.chat, methods=["POST"]),
        Route("/v1/feedback", agents.feedback, methods=["POST"]),
        Route("/v1/sessions/{session_id}", agents.session, methods=["GET", "DELETE"]),
        *api.routes(),
    ]
    if served.backends:  # prompt scoring, for the LLM backends served beside the agents
        routes.append(Route("/v1/completions", service.completions, methods=["POST"]))
    if page:
        with contextlib.suppress(ImportError):  # the chat page, where it is installed
            from .page import page_routes

            routes.extend(page_routes())
    routes.extend(rest.openapi_routes(routes, served))
    stack = [
        Middleware(RequestLog, stats=stats, log=log),
        Middleware(MetricsMiddleware, metrics=metrics, routes=routes),
    ]
    if cors_origins:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["authorization", "api-key", "content-type"],
                max_age=600,
            )
        )
    stack.append(Middleware(KeyGuard, service=service))
    stack.extend(Middleware(m) for m in middleware)  # type: ignore[arg-type]
    app = Starlette(
        routes=routes,
        middleware=stack,
        exception_handlers={
            APIError: _api_error,
            _ClientGone: _client_gone,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.stats = stats
    app.state.metrics = metrics
    app.state.backends = service.backends
    app.state.agents = served.agents
    app.state.sessions = agents.sessions
    app.state.service = service  # the server's shutdown cancels through it
    return app


class TurnStopped(BaseException):
    """Raised by ``on_text`` inside an agent's turn to stop it: its client left, the server
    shuts down, or it ran out of time. A BaseException, so that an agent's own ``except
    Exception`` around its writing does not swallow it."""


def json_bytes(obj: Any) -> bytes:
    """``obj`` as UTF-8 JSON; numpy values and tuples as JSON values."""
    return json.dumps(obj, ensure_ascii=False, default=json_default).encode("utf-8")


def json_response(
    obj: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json_bytes(obj), status, headers=dict(headers or {}), media_type="application/json"
    )


class _Turn:
    """One agent turn being answered: the conversation the agent gets, the session it
    continues (or None), and what the client sent this time."""

    def __init__(
        self,
        name: str,
        agent: Agent,
        req: ChatRequest,
        conversation: list[Message],
        new: list[Message],
        session: Session | None,
        user: str | None,
    ):
        self.name = name
        self.agent = agent
        self.req = req
        self.conversation = conversation
        self.new = new
        self.session = session
        self.user = user


class _AgentService:
    """The agents, their sessions and the rules for a turn (on top of the LLM app's service:
    its key, body limits, slots, cancellation and shutdown)."""

    def __init__(
        self,
        service: _Service,
        served: Served,
        sessions: SessionStore,
        request_timeout: float | None,
        max_queue: int | None = None,
        metrics: Metrics | None = None,
    ):
        self.metrics = metrics if metrics is not None else Metrics()
        self.service = service
        self.served = served
        self.agents = served.agents
        self.sessions = sessions
        self.request_timeout = request_timeout
        self.max_queue = max_queue
        self.waiting = 0  # turns waiting for a slot (event loop thread only)
        self.busy: set[str] = set()  # sessions with a turn in flight (event loop thread only)
        self.rest_threads = anyio.CapacityLimiter(REST_THREADS)
        self._takes_on_text: dict[str, bool] = {}
        self._context_lock = threading.Lock()

    # -- plumbing ----------------------------------------------------------------------------------
    def agent(self, name: str | None) -> tuple[str, Agent]:
        if name is None and len(self.agents) == 1:
            return next(iter(self.agents.items()))
        if name is not None and name in self.agents:
            return name, self.agents[name]
        listing = ", ".join(self.agents)
        if name is None:
            raise APIError(400, f"name the agent, model: one of {listing}", param="model")
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise APIError(
            404,
            f"The model {shown!r} is not an agent of this server; agents: {listing}",
            param="model",
            code="model_not_found",
        )

    async def thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a REST worker thread (not an agent slot)."""
        return await anyio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=self.rest_threads
        )

    def takes_on_text(self, name: str, agent: Agent) -> bool:
        if name not in self._takes_on_text:
            respond = getattr(agent, "respond", None)
            ok = False
            if callable(respond):
                with contextlib.suppress(TypeError, ValueError):
                    ok = "on_text" in inspect.signature(respond).parameters
            self._takes_on_text[name] = ok
        return self._takes_on_text[name]

    def context(self, user: str | None) -> list[Message]:
        """The ``recai_context`` message for ``user`` (with their history when the dataset
        knows them); none without a user."""
        if user is None:
            return []
        dataset = self.served.dataset
        if dataset is None:
            return [Message("system", json.dumps({"user": user, "history": []}), name=CONTEXT_NAME)]
        index = rest.user_index(dataset, user)
        with self._context_lock:  # the first call sorts the interactions (csr)
            history = [] if index is None else dataset.interactions.history(index).tolist()
        return [context_message(user, history, dataset.catalog)]

    # -- routes ------------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return json_response(
            {
                "status": "closing" if self.service.closing else "ok",
                "agents": list(self.agents),
                "models": list(self.service.backends),
                "sessions": await self.thread(len, self.sessions),
                "in_flight": self.service.calls,
            }
        )

    async def models(self, request: Request) -> Response:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "recai", "recai": kind}
            for kind, names in (("agent", self.agents), ("llm_backend", self.service.backends))
            for name in names
        ]
        return json_response({"object": "list", "data": data})

    async def chat(self, request: Request) -> Response:
        body = await self.service.json_body(request)
        model = request.path_params.get("deployment", body.get("model"))
        if isinstance(model, str) and model in self.service.backends:
            if "session" in body:
                raise APIError(
                    400,
                    f"model {model!r} is an LLM backend: sessions are kept for agents only "
                    f"({', '.join(self.agents)})",
                    param="session",
                )
            return await self.service.chat_body(request, body)
        if model is not None and not isinstance(model, str):
            raise APIError(400, "model must be a string", param="model")
        name, agent = self.agent(model)
        turn = await self.begin(name, agent, body)
        if turn.req.stream:
            return _AgentStream(self, turn)  # it releases the session
        try:
            started = time.perf_counter()
            async with self.service.watched(request.receive) as ticket, self.slot(ticket):
                result = await self.respond(turn, ticket, None)
            answer = await self.finish(turn, result)
        finally:
            self.release(turn)
        completion = ChunkMaker(name)
        body_out = {
            "id": completion.id,
            "object": "chat.completion",
            "created": completion.created,
            "model": name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer["text"]},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "recai": answer["recai"],
        }
        return json_response(
            body_out, headers={"x-recai-agent-ms": f"{(time.perf_counter() - started) * 1000:.3f}"}
        )

    async def begin(self, name: str, agent: Agent, body: dict[str, Any]) -> _Turn:
        """A checked turn: the request's fields, its session (404 when unknown) and the
        conversation the agent gets, with the user's context message first."""
        fields = dict(body)
        session_id = fields.pop("session", None)
        req = chat_request(fields, self.service.limits)
        if req.tools is not None or "tools" in fields:
            raise APIError(
                400,
                f"model {name!r} is an agent: it calls its own tools; send no tools",
                param="tools",
                code="unsupported_parameter",
            )
        fmt = fields.get("response_format")
        if fmt is not None and fmt != {"type": "text"}:
            raise APIError(
                400,
                f"model {name!r} is an agent: it answers text (response_format "
                '{"type": "text"} only)',
                param="response_format",
                code="unsupported_parameter",
            )
        user = _user(fields.get("user"))
        for i, m in enumerate(req.messages):
            if m.name == CONTEXT_NAME:
                raise APIError(
                    400,
                    f"messages[{i}] is a {CONTEXT_NAME!r} message: the server writes it; name "
                    'the user with the request\'s "user" field',
                    param=f"messages[{i}].name",
                )
        if not req.messages or req.messages[-1].role != "user":
            raise APIError(
                400,
                "the messages must end with a user message (the turn the agent answers)",
                param="messages",
            )
        session: Session | None = None
        if session_id is not None:
            if not isinstance(session_id, str) or not 1 <= len(session_id) <= 64:
                raise APIError(
                    400,
                    'session must be "new" or a session id (a string the server gave)',
                    param="session",
                )
            if session_id == "new":
                session = self.sessions.create(user)
            else:
                self.hold(session_id)  # before reading it: no turn saves it meanwhile
                try:
                    session = await self.thread(self.sessions.get, session_id)
                except BaseException:
                    self.busy.discard(session_id)
                    raise
                if session is None:
                    self.busy.discard(session_id)
                    raise APIError(
                        404,
                        f"no session {session_id!r} on this server (it expired, or never was); "
                        'start one with "session": "new"',
                        param="session",
                        code="session_not_found",
                    )
                if user is not None and session.user is not None and user != session.user:
                    self.busy.discard(session_id)
                    raise APIError(
                        400,
                        f"session {session_id!r} belongs to another user than {user!r}",
                        param="user",
                    )
                if session.user is None:  # a session started without a user takes one
                    session.user = user
                user = session.user if user is None else user
        try:
            earlier = [] if session is None else [Message.from_dict(m) for m in session.messages]
            context = await self.thread(self.context, user)
        except BaseException:
            if session is not None:
                self.busy.discard(session.id)
            raise
        conversation = [*context, *earlier, *req.messages]
        return _Turn(name, agent, req, conversation, list(req.messages), session, user)

    @contextlib.asynccontextmanager
    async def slot(self, ticket: _Ticket) -> AsyncIterator[None]:
        """An agent slot (the service's), with at most ``max_queue`` turns waiting for one:
        beyond that a 429 at once (OpenAI's clients retry it after ``Retry-After``)."""
        gate = self.service.gate
        full = gate is not None and gate.value == 0
        if full and self.max_queue is not None and self.waiting >= self.max_queue:
            raise APIError(
                429,
                f"too many requests: {self.waiting} turns are waiting for the agents' "
                f"{self.service.threads.total_tokens:g} slots (--max-queue {self.max_queue}); "
                "try again shortly",
                type="requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        self.waiting += 1
        waiting = True
        try:
            async with self.service.slot(ticket):
                self.waiting -= 1
                waiting = False
                yield
        finally:
            if waiting:
                self.waiting -= 1

    def hold(self, session_id: str) -> None:
        """One turn at a time per session: a second one meanwhile gets a 409 (released by
        :meth:`release` when the turn is answered)."""
        if session_id in self.busy:
            raise APIError(
                409,
                f"session {session_id!r} is answering another message; send this one when that "
                "answer is complete",
                param="session",
                code="session_busy",
            )
        self.busy.add(session_id)

    def release(self, turn: _Turn) -> None:
        if turn.session is not None:
            self.busy.discard(turn.session.id)

    async def respond(
        self, turn: _Turn, ticket: _Ticket, sink: Callable[[str], None] | None
    ) -> Any:
        """The agent's turn in a worker thread (holding the caller's slot). ``sink`` gets the
        text as it is written; the turn stops at its next piece once the ticket is cancelled
        or ``request_timeout`` passes (then a 504)."""
        deadline = None if self.request_timeout is None else time.monotonic() + self.request_timeout
        timed_out = threading.Event()

        def on_text(piece: str) -> None:
            if ticket.cancel.is_set():
                raise TurnStopped()
            if deadline is not None and time.monotonic() > deadline:
                timed_out.set()
                raise TurnStopped()
            if sink is not None:
                sink(piece)

        agent = turn.agent

        def call() -> Any:
            try:
                if self.takes_on_text(turn.name, agent):
                    return agent.respond(turn.conversation, on_text=on_text)
                respond = getattr(agent, "respond", None)
                if callable(respond):
                    return respond(turn.conversation)
                return agent.reply(turn.conversation)
            except TurnStopped:
                return None

        try:
            result = await self.service.run(call)
        except APIError as e:
            raise APIError(
                e.status,
                f"the agent {turn.name!r} failed: {e}",
                type=e.body["error"]["type"],
                code=e.body["error"]["code"],
            ) from None
        if result is None and ticket.cancel.is_set() and not timed_out.is_set():
            # stopped at a piece before the loop's cancellation arrived: no answer
            if ticket.reason == "shutdown":
                raise _shutting_down()
            raise _ClientGone()
        if timed_out.is_set():
            raise APIError(
                504,
                f"the agent {turn.name!r} did not answer within {self.request_timeout:g} s "
                "(--request-timeout); it was stopped",
                type="server_error",
                code="timeout",
            )
        return result

    async def finish(self, turn: _Turn, result: Any) -> dict[str, Any]:
        """The answer's text and ``recai`` object; the session (if any) is saved with the
        turn first, so a client that has the answer finds its session up to date."""
        if isinstance(result, Message):  # an agent with reply() only
            data: dict[str, Any] = {"text": result.content}
        elif hasattr(result, "to_dict"):
            data = dict(result.to_dict())
        else:
            raise APIError(
                500,
                f"the agent {turn.name!r} answered {type(result).__name__}, not an AgentTurn",
                type="server_error",
            )
        text = str(data.get("text") or "")
        session = turn.session
        items = [self.item(entry) for entry in data.get("items") or []]
        shown = json.loads(
            json_bytes(
                {
                    "items": items,
                    "trace": data.get("trace") or [],
                    "plan": data.get("plan"),
                    "llm_calls": data.get("llm_calls", 0),
                    "seconds": data.get("seconds", 0.0),
                    "profile": data.get("profile") or {},
                }
            )
        )
        if session is not None:
            session.messages.extend(m.to_dict() for m in turn.new)
            # the turn's items, plan and trace stay with its text: a page opened later on the
            # session shows the turn as it was answered (GET /v1/sessions/{id})
            kept = {"model": turn.name, "user": turn.user, **shown}
            session.messages.append({**Message.assistant(text).to_dict(), TURN_KEY: kept})
            try:
                await self.thread(self.sessions.save, session)
            except Exception as e:  # noqa: BLE001 - the store failed: say so, keep serving
                raise APIError(
                    500,
                    f"the session store failed: {type(e).__name__}: {e}",
                    type="server_error",
                    code="session_store_failed",
                ) from None
        calls = data.get("llm_calls", 0)
        self.metrics.record_turn(
            turn.name,
            calls if isinstance(calls, int) else 0,
            float(data.get("seconds") or 0.0),
            len(items),
        )
        recai = {"session": session.id if session is not None else None, "user": turn.user, **shown}
        return {"text": text, "recai": recai}

    def item(self, entry: Any) -> dict[str, Any]:
        """An agent's item with the catalog's attributes of it (genres, year, ...)."""
        out = dict(entry) if isinstance(entry, Mapping) else {"id": entry}
        dataset = self.served.dataset
        if dataset is not None and "attributes" not in out:
            index = rest.item_index(dataset.catalog, out.get("id"))
            if index is not None:
                out.setdefault("title", dataset.catalog.title(index))
                out["attributes"] = rest.attributes(dataset.catalog, index)
        out.setdefault("evidence", {})
        out.setdefault("attributes", {})
        return out

    async def session(self, request: Request) -> Response:
        """``GET``: a kept session's user and messages, oldest first, each agent message with
        its turn's items (with their attributes), plan, trace, LLM calls, seconds and profile
        under ``"recai"``, and the user's profile as the agent keeps it now (feedback given
        since the last turn included; ``{}`` without a user or a profile): the chat page
        restores a conversation from it. ``DELETE``: forget it. An unknown (or expired) id is a
        404 in OpenAI's error shape."""
        session_id = request.path_params["session_id"]
        if request.method == "DELETE":
            if session_id in self.busy:
                raise APIError(
                    409,
                    f"session {session_id!r} is answering a message; delete it afterwards",
                    param="session_id",
                    code="session_busy",
                )
            if await self.thread(self.sessions.delete, session_id):
                return json_response({"id": session_id, "deleted": True})
            session = None
        else:
            session = await self.thread(self.sessions.get, session_id)
        if session is None:
            raise APIError(
                404,
                f"no session {session_id[:80]!r} on this server (it expired, or never was)",
                param="session_id",
                code="session_not_found",
            )
        profile = await self.thread(self.profile_of, session)
        return json_response(
            {
                "id": session.id,
                "user": session.user,
                "messages": session.messages,
                "created": session.created,
                "updated": session.updated,
                "profile": profile,
            }
        )

    def profile_of(self, session: Session) -> dict[str, Any]:
        """The profile of the session's user kept by the agent that answered its last turn
        (``Agent.remember`` with no feedback: unchanged); ``{}`` without a user, or when that
        agent keeps none or is no longer served."""
        if session.user is None:
            return {}
        last: dict[str, Any] = next(
            (m[TURN_KEY] for m in reversed(session.messages) if isinstance(m.get(TURN_KEY), dict)),
            {},
        )
        name = last.get("model")
        agent = self.agents.get(name) if isinstance(name, str) else None
        if agent is None and len(self.agents) == 1:
            agent = next(iter(self.agents.values()))
        if agent is None:
            return {}
        try:
            profile = agent.remember(session.user)
        except (NotImplementedError, RecaiError, ValueError, KeyError):
            return {}
        return dict(json.loads(json_bytes(profile))) if isinstance(profile, Mapping) else {}

    async def feedback(self, request: Request) -> Response:
        body = rest.parse(rest.FeedbackBody, await self.service.json_body(request))
        name, agent = self.agent(body.model)
        user = _user(body.user)
        if body.session is not None:
            session = await self.thread(self.sessions.get, body.session)
            if session is None:
                raise APIError(
                    404,
                    f"no session {body.session!r} on this server",
                    param="session",
                    code="session_not_found",
                )
            if user is not None and session.user is not None and session.user != user:
                raise APIError(
                    400, f"session {body.session!r} belongs to another user", param="user"
                )
            user = user if user is not None else session.user
        if user is None:
            raise APIError(
                400,
                "whose feedback is it? give user, or a session that was started with one",
                param="user",
            )
        item = body.item
        dataset = self.served.dataset
        if dataset is not None:
            index = rest.item_index(dataset.catalog, item)
            if index is None:
                raise rest.unknown_item(dataset, item, "item")
            item = rest.plain(dataset.catalog.ids[index])
        liked = [str(item)] if body.value == "like" else []
        disliked = [str(item)] if body.value == "dislike" else []
        try:
            profile = await self.thread(agent.remember, user, liked=liked, disliked=disliked)
        except NotImplementedError as e:
            raise APIError(
                400,
                f"the agent {name!r} keeps no user profile, so it cannot take feedback ({e})",
                param="model",
                code="unsupported",
            ) from None
        except (RecaiError, ValueError, KeyError) as e:
            raise APIError(
                400, f"the agent {name!r} refused the feedback: {e}", param="item"
            ) from None
        return json_response({"profile": profile})


def _user(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise APIError(400, "user must be a string (the user's id)", param="user")
    text = str(value)
    if not 1 <= len(text) <= MAX_USER_CHARS or not text.isprintable():
        raise APIError(
            400,
            f"user must be 1 to {MAX_USER_CHARS} printable characters",
            param="user",
        )
    return text


class _AgentStream(Response):
    """A streamed agent turn: ``chat.completion.chunk`` events with the text as the agent
    writes it, then a chunk with ``finish_reason`` and the ``recai`` object, then ``[DONE]``.

    An error before the first piece is an ordinary error answer; a later one is an error event
    and no ``[DONE]``. A client that leaves (or stops reading for ``SEND_TIMEOUT`` seconds)
    stops the turn at its next piece."""

    def __init__(self, owner: _AgentService, turn: _Turn):
        self.owner = owner
        self.turn = turn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        owner, service = self.owner, self.owner.service
        try:
            async with service.watched(receive) as ticket, owner.slot(ticket):
                await self._run(ticket, send)
        finally:
            owner.release(self.turn)

    async def _run(self, ticket: _Ticket, send: Send) -> None:
        owner = self.owner
        pieces_in, pieces_out = anyio.create_memory_object_stream[str](math.inf)
        outcome: dict[str, Any] = {}

        def sink(piece: str) -> None:
            if piece:
                with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                    anyio.from_thread.run_sync(pieces_in.send_nowait, piece)

        async def work() -> None:
            try:
                result = await owner.respond(self.turn, ticket, sink)
                outcome["answer"] = await owner.finish(self.turn, result)
            except Exception as e:  # noqa: BLE001 - answered below, as an error or an event
                outcome["error"] = e
            finally:
                pieces_in.close()

        chunks = ChunkMaker(self.turn.name)
        streamed: list[str] = []
        started = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(work)
                async with pieces_out:
                    async for piece in pieces_out:
                        if not started:
                            started = await self._start(ticket, send, chunks)
                        streamed.append(piece)
                        if not await self._event(ticket, send, chunks.delta({"content": piece})):
                            tg.cancel_scope.cancel()
                            return
        except anyio.get_cancelled_exc_class():
            if started and ticket.reason == "shutdown" and not ticket.told:
                ticket.told = True  # the client is still there: tell it why it ends, once
                with anyio.CancelScope(shield=True):
                    await self._end(send, _sse(stream_error(_shutting_down())))
            raise
        error = outcome.get("error")
        if error is not None and not started:
            raise error
        if not started:
            await self._start(ticket, send, chunks)
        if error is not None:
            await self._end(send, _sse(stream_error(error)))
            return
        answer = outcome["answer"]
        text = answer["text"]
        said = "".join(streamed)
        if text != said:  # an agent that wrote no pieces (or other ones): the rest of its text
            rest_text = (
                text[len(said) :] if text.startswith(said) else ("\n" + text if said else text)
            )
            if rest_text and not await self._event(
                ticket, send, chunks.delta({"content": rest_text})
            ):
                return
        final = chunks.delta({}, "stop")
        final["recai"] = answer["recai"]
        if not await self._event(ticket, send, final):
            return
        if self.turn.req.include_usage and not await self._event(ticket, send, chunks.usage(None)):
            return
        await self._end(send, b"data: [DONE]\n\n")

    async def _start(self, ticket: _Ticket, send: Send, chunks: ChunkMaker) -> bool:
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
        await self._event(ticket, send, chunks.delta({"role": "assistant", "content": ""}))
        return True

    async def _event(self, ticket: _Ticket, send: Send, obj: Any) -> bool:
        """Send one event; False when the client does not read it in time (the turn stops)."""
        try:
            with anyio.move_on_after(SEND_TIMEOUT) as sending:
                await send(
                    {
                        "type": "http.response.body",
                        "body": b"data: " + json_bytes(obj) + b"\n\n",
                        "more_body": True,
                    }
                )
        except anyio.get_cancelled_exc_class():
            if ticket.reason == "shutdown" and not ticket.told:
                ticket.told = True
                with anyio.CancelScope(shield=True):
                    await self._end(send, _sse(stream_error(_shutting_down())))
            raise
        if sending.cancelled_caught:
            ticket.stop("client")
            return False
        return True

    async def _end(self, send: Send, last: bytes) -> None:
        await send({"type": "http.response.body", "body": last, "more_body": False})
