"""Asking components many questions: through the cache, in chunks, with bounded concurrency.

A :class:`Caller` says how to ask one kind of component (an :class:`~recai.LLMBackend` with
messages, an :class:`~recai.Agent` with a conversation, an :class:`~recai.Explainer` with a
history and an item). :class:`Runner` takes a list of requests and

1. answers those already in the :class:`~.cache.AnswerCache` without calling anything;
2. asks each distinct remaining request once: backends that batch natively (those overriding
   ``chat_batch``) get chunks of ``batch_size`` requests, one chunk at a time; everything else is
   called from a thread pool of at most ``concurrency`` workers;
3. stores every answer in the cache as soon as it arrives, so an interrupted run resumes where it
   stopped;
4. turns exceptions into failed :class:`Answer` objects (after ``retries`` more tries), never
   dropping a request: when a whole native batch fails, its requests are asked one by one so a
   single bad request fails alone. The error text has the component's key (read from the
   environment variable its ``api_key_env`` names) and anything shaped like a key redacted
   (:func:`recai.secrets.redact`), and says whether the failure is the user's (see
   :func:`is_user_error`).

Failed answers are not cached: a rerun asks them again.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import recai
from recai.errors import RecaiError
from recai.roles import LLMBackend, describe_component
from recai.secrets import redact
from recai.types import Completion, ItemList, Message

from .cache import AnswerCache, request_key

__all__ = [
    "Answer",
    "Caller",
    "LLMCaller",
    "AgentCaller",
    "ExplainerCaller",
    "Runner",
    "caller_for",
    "error_text",
    "is_user_error",
    "secrets_of",
]

_MAX_ERROR = 300


@dataclass(frozen=True)
class Answer:
    """One answer: its text, or the error that stopped it (``text`` is then ``None``).

    ``user_error`` marks an error that the user can fix (a wrong key, an unknown model): see
    :func:`is_user_error`.
    """

    text: str | None
    error: str | None = None
    cached: bool = False
    user_error: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def error_text(exc: BaseException, secrets: Sequence[str | None] = ()) -> str:
    """``Type: message`` on one line, at most 300 characters, ``secrets`` and anything shaped
    like a key redacted.

    >>> error_text(RuntimeError("401: bad key sk-abcdef123456\\nsee docs"))
    'RuntimeError: 401: bad key *** see docs'
    """
    text = redact(" ".join(f"{type(exc).__name__}: {exc}".split()), secrets)
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


#: HTTP statuses that are the server's or the network's trouble, not the request's.
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one the user can fix by changing their input or settings.

    A :class:`recai.RecaiError` is, unless it carries an HTTP ``status`` attribute that says
    otherwise: ``None`` (no answer: connection refused, timeout, a broken stream), a 5xx, or
    408/409/425/429. Any other exception (a ``ConnectionError``, a bug in a component) is not.

    >>> is_user_error(RecaiError("unknown model")), is_user_error(ConnectionError("refused"))
    (True, False)
    """
    if not isinstance(exc, RecaiError):
        return False
    if not hasattr(exc, "status"):
        return True
    status = getattr(exc, "status", None)
    return isinstance(status, int) and 400 <= status < 500 and status not in _TRANSIENT_STATUS


def secrets_of(component: Any) -> list[str]:
    """The key a component reads from the environment (``api_key_env``), if it has one."""
    env = getattr(component, "api_key_env", None)
    value = os.environ.get(env) if isinstance(env, str) and env else None
    return [value] if value else []


class Caller(ABC):
    """How to ask one component: the cache key's parts and the call itself."""

    #: Whether :meth:`ask_many` answers a whole chunk in one call.
    native_batch: bool = False

    def __init__(self, component: Any, options: dict[str, Any] | None = None):
        self.component = component
        self.options = dict(options or {})
        self.description = describe_component(component)
        #: Secrets to redact from this component's errors (its key, if it names one).
        self.secrets = secrets_of(component)

    @abstractmethod
    def payload(self, request: Any) -> Any:
        """The request as JSON-able data (for the cache key and the cache record)."""

    @abstractmethod
    def ask(self, request: Any) -> tuple[str, dict[str, Any]]:
        """Answer one request: ``(text, extra facts for the cache record)``."""

    def ask_many(self, requests: Sequence[Any]) -> list[tuple[str, dict[str, Any]]]:
        """Answer a chunk of requests (the default asks one at a time)."""
        return [self.ask(r) for r in requests]


def _from_completion(done: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(done, Completion) or not isinstance(done.text, str):
        raise TypeError(f"the backend returned {type(done).__name__}, not a recai.Completion")
    extra = {
        "finish_reason": done.finish_reason,
        "model": done.model,
        "usage": [done.usage.prompt_tokens, done.usage.completion_tokens],
        "latency_s": round(float(done.latency_s), 4),
    }
    return done.text, extra


class LLMCaller(Caller):
    """Asks an :class:`~recai.LLMBackend`; requests are lists of :class:`~recai.Message`.

    ``options`` are passed to ``chat``/``chat_batch`` (``max_tokens``, ``temperature``, ``stop``,
    ``seed``); options set to ``None`` are left out, so the backend's defaults apply.
    """

    def __init__(self, llm: LLMBackend, options: dict[str, Any] | None = None):
        super().__init__(llm, {k: v for k, v in (options or {}).items() if v is not None})
        self.native_batch = type(llm).chat_batch is not LLMBackend.chat_batch

    def payload(self, request: Sequence[Message]) -> Any:
        return [m.to_dict() for m in request]

    def ask(self, request: Sequence[Message]) -> tuple[str, dict[str, Any]]:
        return _from_completion(self.component.chat(list(request), **self.options))

    def ask_many(self, requests: Sequence[Sequence[Message]]) -> list[tuple[str, dict[str, Any]]]:
        done = self.component.chat_batch([list(r) for r in requests], **self.options)
        if len(done) != len(requests):
            raise ValueError(
                f"chat_batch returned {len(done)} completions for {len(requests)} conversations"
            )
        return [_from_completion(c) for c in done]


def own_respond(component: Any) -> Any:
    """``component.respond`` when the agent has one of its own (it reports its items and
    costs), else None: ``recai.Agent``'s default ``respond`` only wraps ``reply`` and knows no
    items, so such an agent is read from its text, as before the kernel had one."""
    from recai.roles import Agent

    respond = getattr(component, "respond", None)
    if not callable(respond) or getattr(respond, "__func__", None) is Agent.respond:
        return None
    return respond


class AgentCaller(Caller):
    """Asks an :class:`~recai.Agent` for its reply to a conversation (a list of messages)."""

    def payload(self, request: Sequence[Message]) -> Any:
        return [m.to_dict() for m in request]

    def ask(self, request: Sequence[Message]) -> tuple[str, dict[str, Any]]:
        reply = self.component.reply(list(request))
        if not isinstance(reply, Message):
            raise TypeError(f"the agent returned {type(reply).__name__}, not a recai.Message")
        return reply.content, {}


class ExplainerCaller(Caller):
    """Asks an :class:`~recai.Explainer`; requests are ``(history item indices, item)``."""

    def payload(self, request: tuple[Sequence[int], int]) -> Any:
        history, item = request
        return {"history": [int(i) for i in history], "item": int(item)}

    def ask(self, request: tuple[Sequence[int], int]) -> tuple[str, dict[str, Any]]:
        history, item = request
        done = self.component.explain(ItemList(list(history)), int(item))
        text = getattr(done, "text", None)
        if not isinstance(text, str):
            raise TypeError(
                f"the explainer returned {type(done).__name__}, not a recai.Explanation"
            )
        return text, {}


def caller_for(component: Any, options: dict[str, Any] | None = None) -> Caller:
    """The :class:`Caller` for a component of any supported role."""
    if isinstance(component, recai.LLMBackend):
        return LLMCaller(component, options)
    if isinstance(component, recai.Agent):
        return AgentCaller(component, options)
    if isinstance(component, recai.Explainer):
        return ExplainerCaller(component, options)
    raise TypeError(
        f"cannot ask a {type(component).__name__}: not an LLM backend, agent or explainer"
    )


Progress = Callable[..., Iterator[Any]]


def _no_progress(iterable: Iterable[Any], **_: Any) -> Iterator[Any]:
    yield from iterable


class Runner:
    """Answers requests through an :class:`~.cache.AnswerCache` (see the module docstring).

    ``progress`` is a function like :meth:`recai.RunContext.progress`. Counters in :attr:`stats`
    add up over calls: ``requested``, ``cached`` (answered from the cache), ``calls`` (requests
    sent), ``failed`` (requests whose every try raised) and ``seconds`` (time spent calling).
    """

    def __init__(
        self,
        cache: AnswerCache,
        *,
        concurrency: int = 4,
        batch_size: int = 8,
        retries: int = 0,
        progress: Progress | None = None,
    ):
        if concurrency < 1 or batch_size < 1 or retries < 0:
            raise ValueError("concurrency and batch_size must be at least 1, retries at least 0")
        self.cache = cache
        self.concurrency = int(concurrency)
        self.batch_size = int(batch_size)
        self.retries = int(retries)
        self.progress = progress or _no_progress
        self.stats: dict[str, float] = {
            "requested": 0,
            "cached": 0,
            "calls": 0,
            "failed": 0,
            "seconds": 0.0,
        }

    def run(self, caller: Caller, requests: Sequence[Any], *, desc: str = "") -> list[Answer]:
        """One :class:`Answer` per request, in order."""
        out: list[Answer | None] = [None] * len(requests)
        pending: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            key = request_key(caller.description, caller.payload(request), caller.options)
            hit = self.cache.get(key)
            if hit is not None and isinstance(hit.get("text"), str):
                out[i] = Answer(hit["text"], cached=True)
            else:
                pending.setdefault(key, []).append(i)
        self.stats["requested"] += len(requests)
        self.stats["cached"] += len(requests) - sum(len(v) for v in pending.values())
        todo = [(key, requests[rows[0]]) for key, rows in pending.items()]
        start = time.perf_counter()
        for key, request, answer, extra in self._execute(caller, todo, desc):
            if answer.ok:
                record = {"text": answer.text, **extra, "request": caller.payload(request)}
                self.cache.put(key, record)
            else:
                self.stats["failed"] += 1
            for i in pending[key]:
                out[i] = answer
        self.stats["seconds"] += time.perf_counter() - start
        self.stats["calls"] += len(todo)
        assert all(a is not None for a in out)
        return out  # type: ignore[return-value]

    # -- calling ----------------------------------------------------------------------------------
    def _one(
        self, caller: Caller, request: Any, failed: Exception | None = None
    ) -> tuple[Answer, dict[str, Any]]:
        """Ask ``request`` up to ``1 + retries`` times (``failed``: the first try already
        raised this)."""
        error = user = None
        tries = 1 + self.retries
        if failed is not None:
            error, user = error_text(failed, caller.secrets), is_user_error(failed)
            tries -= 1
        for _ in range(tries):
            try:
                text, extra = caller.ask(request)
                return Answer(text), extra
            except Exception as e:  # noqa: BLE001 - a failed sample is recorded, not raised
                error, user = error_text(e, caller.secrets), is_user_error(e)
        return Answer(None, error or "no answer", user_error=bool(user)), {}

    def _execute(
        self, caller: Caller, todo: list[tuple[str, Any]], desc: str
    ) -> Iterator[tuple[str, Any, Answer, dict[str, Any]]]:
        if not todo:
            return
        if caller.native_batch:
            chunks = [todo[i : i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
            for chunk in self.progress(chunks, desc=desc, total=len(chunks)):
                failed: Exception | None = None
                try:
                    done = caller.ask_many([request for _, request in chunk])
                    results = [(Answer(text), extra) for text, extra in done]
                except Exception as e:  # noqa: BLE001 - isolate the failing request(s)
                    failed = e
                # asked outside the except block, so that their errors do not carry the batch's
                # error as their context (clients that explain an error by its chain would
                # report the batch's instead)
                if failed is not None and len(chunk) == 1:  # nothing to isolate: a first try
                    results = [self._one(caller, chunk[0][1], failed=failed)]
                elif failed is not None:
                    results = [self._one(caller, request) for _, request in chunk]
                for (key, request), (answer, extra) in zip(chunk, results, strict=True):
                    yield key, request, answer, extra
            return
        workers = min(self.concurrency, len(todo))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recai-llm")
        try:
            futures = {pool.submit(self._one, caller, req): (key, req) for key, req in todo}
            for future in self.progress(as_completed(futures), desc=desc, total=len(futures)):
                key, request = futures[future]
                answer, extra = future.result()
                yield key, request, answer, extra
        finally:  # on an interrupt, drop the requests not started yet
            pool.shutdown(wait=True, cancel_futures=True)
