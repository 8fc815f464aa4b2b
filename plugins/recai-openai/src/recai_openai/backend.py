"""The LLM backends: ``openai.v1`` (any OpenAI-compatible server) and ``azure-openai.v1``.

Both send chat requests through the official ``openai`` client with its own retries switched
off; this module retries instead (:mod:`recai_openai.retry` says why, with the measurements), so
that waits are configurable, ``Retry-After`` is capped by ``max_retry_after`` and errors count
the attempts. Around each request:

1. the response cache is asked first (:mod:`recai_openai.cache`; a hit sends nothing);
2. a semaphore bounds the requests in flight to ``max_concurrency`` (shared by every thread
   that uses the backend; ``chat_batch`` runs that many at once);
3. errors become :class:`~recai_openai.errors.LLMRequestError` with the status, the attempts and
   the server's message, keys redacted (:mod:`recai.secrets`);
4. tokens and cost are added to the backend's :class:`~recai_openai.accounting.UsageMeter`.

>>> import os
>>> os.environ.setdefault("RECAI_DOCTEST_KEY", "sk-doctest-0123456789")
'sk-doctest-0123456789'
>>> llm = OpenAIBackend(
...     model="m", base_url="http://127.0.0.1:9/v1", api_key_env="RECAI_DOCTEST_KEY"
... )
>>> llm
OpenAIBackend(model='m', base_url='http://127.0.0.1:9/v1', api_key_env='RECAI_DOCTEST_KEY')
>>> "sk-doctest" in repr(vars(llm))
False
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import urlsplit

import openai

from recai.errors import ParamsError, Problem, RecaiError
from recai.roles import LLMBackend
from recai.secrets import Redactor, check_base_url, read_key
from recai.specs import ComponentSpec
from recai.types import Completion, Message, Report, ToolCall, Usage, check_tools

from .accounting import UsageMeter
from .cache import ResponseCache, request_key
from .errors import LLMOutputError, LLMRequestError, LLMStreamError
from .jsonout import instruction, parse_and_check, repair_request, response_format
from .params import AzureOpenAIParams, ClientParams, OpenAIParams
from .retry import RetryPolicy, retry_after_seconds

__all__ = ["OpenAIBackend", "AzureOpenAIBackend", "render_prompt"]

log = logging.getLogger("recai_openai")
T = TypeVar("T")

_DEFAULT_BASE_URL = "https://api.openai.com/v1"
_NO_KEY = "EMPTY"  # what vLLM's docs send to servers without keys; the client needs a value
# what servers say when they do not take response_format (OpenAI, vLLM, recai serve, ...)
_REFUSES_FORMAT = re.compile(
    r"response_format|json_schema|json_object|not supported|unsupported", re.IGNORECASE
)
_http: Any = None
_http_lock = threading.Lock()


def _http_client() -> Any:
    """One HTTP connection pool for every backend of the process: making one costs ~0.1 s (TLS
    set-up), and keeping connections alive across backends to one server saves handshakes."""
    global _http
    with _http_lock:
        if _http is None:
            _http = openai.DefaultHttpxClient()
        return _http


def render_prompt(messages: Sequence[Message]) -> str:
    """The plain-text prompt scored by :meth:`OpenAIBackend.score_continuations`.

    >>> render_prompt([Message.system("Be brief."), Message.user("Capital of France?")])
    'system: Be brief.\\nuser: Capital of France?\\nassistant: '
    """
    return "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant: "


class OpenAIBackend(LLMBackend):
    """A chat model behind an OpenAI-compatible server.

    Takes the settings of :class:`~recai_openai.params.OpenAIParams` as keyword arguments (they
    are validated by that model, whether the backend is built from a recipe or directly):
    ``model``, ``base_url`` (default: environment variable ``OPENAI_BASE_URL``, else OpenAI's),
    ``api_key_env`` (the *name* of the variable holding the key; keys are never params), and
    the shared :class:`~recai_openai.params.ClientParams`: timeouts, retries, concurrency,
    prices, cache and JSON answers.
    """

    capabilities = frozenset({"stream", "json_schema", "logprobs", "tools"})
    #: The registered name, used in messages.
    label = "openai.v1"
    #: The params model that validates the constructor's keyword arguments.
    params_model: ClassVar[type[ClientParams]] = OpenAIParams

    def __init__(self, **params: Any):
        p = cast(OpenAIParams, self._validated(params))
        resolved = p.base_url or os.environ.get("OPENAI_BASE_URL") or _DEFAULT_BASE_URL
        self._check_url(resolved, "base_url" if p.base_url else "OPENAI_BASE_URL")
        self.model = p.model
        self.base_url = resolved.rstrip("/")
        self.api_key_env = p.api_key_env
        self._setup(p)
        key = self._key(required=urlsplit(self.base_url).hostname in ("api.openai.com",))
        self._server: str | Mapping[str, Any] = self.base_url
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=key,
            timeout=openai.Timeout(p.timeout, connect=p.connect_timeout),
            max_retries=0,  # retried by _send: see recai_openai.retry for why
            http_client=_http_client(),
        )
        self._redactor = Redactor([key])

    # -- set-up ------------------------------------------------------------------------------------
    def _validated(self, params: dict[str, Any]) -> ClientParams:
        """``params`` checked by :attr:`params_model` (a recipe's were checked already; this
        catches direct construction). Raises :class:`recai.ParamsError` listing every problem."""
        spec = ComponentSpec(self.label, type(self), self.label, params=self.params_model)
        return cast(ClientParams, spec.validate_params(params))  # the kernel's messages

    def _check_url(self, url: str, where: str) -> None:
        try:
            check_base_url(url)
        except ValueError as e:
            raise ParamsError(self.label, [Problem(where, str(e))]) from None

    def _setup(self, p: ClientParams) -> None:
        """The settings shared by every backend of this package."""
        self.params = p
        self.timeout = p.timeout
        self.connect_timeout = p.connect_timeout
        self.max_retries = p.max_retries
        self.max_concurrency = p.max_concurrency
        self.cache = p.cache
        self.json_mode = p.json_mode
        self.json_strict = p.json_strict
        self.json_repairs = p.json_repairs
        self.max_tokens_field = p.max_tokens_field
        self.stream_usage = p.stream_usage
        self._policy = RetryPolicy(
            max_retries=p.max_retries,
            backoff_base=p.backoff_base,
            backoff_max=p.backoff_max,
            max_retry_after=p.max_retry_after,
        )
        self._meter = UsageMeter(dict(p.prices or {}))
        self._cache = ResponseCache(self.cache) if self.cache else None
        self._gate = threading.BoundedSemaphore(self.max_concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._rng = random.Random()
        self._retry_waits: collections.deque[float] = collections.deque(maxlen=1000)
        self._native_json = True
        self._unpriced_warned: set[str] = set()

    def _key(self, *, required: bool) -> str:
        key = read_key(self.api_key_env)
        if key is None:
            if required:
                raise RecaiError(
                    f"{self.label}: the environment variable {self.api_key_env} is not set; put "
                    f"the key for {self.base_url} in it (or name another variable with "
                    "api_key_env)"
                )
            return _NO_KEY
        return key

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key_env={self.api_key_env!r})"
        )

    # -- accounting --------------------------------------------------------------------------------
    def totals(self) -> dict[str, Any]:
        """What this backend has used so far: calls (answered by the server), cached_calls,
        requests (HTTP, retries included), retries, prompt/completion tokens, ``cost_usd`` (of
        priced models), ``cached_cost_usd`` (what cache hits would have cost) and
        ``unpriced_models``."""
        return self._meter.totals()

    def usage_by_model(self) -> dict[str, dict[str, Any]]:
        """The totals per answering model."""
        return self._meter.by_model()

    def usage_report(self) -> Report:
        """The totals as a :class:`recai.Report` (one row per model), for a run's report."""
        by_model = self._meter.by_model()
        metrics = {
            model: {
                k: float(v)
                for k, v in m.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
            for model, m in by_model.items()
        }
        totals = self._meter.totals()
        info = {
            "backend": self.label,
            "server": self.base_url,
            "prices_usd_per_1m_tokens": {k: v.model_dump() for k, v in self._meter.prices.items()},
            "requests": totals["requests"],
            "retries": totals["retries"],
            "unpriced_models": totals["unpriced_models"],
        }
        return Report(evaluator=f"{self.label} usage", metrics=metrics, info=info)

    @property
    def retry_waits(self) -> list[float]:
        """Seconds waited before each retry (the latest 1,000)."""
        return list(self._retry_waits)

    # -- requests ----------------------------------------------------------------------------------
    def _send(self, what: str, call: Callable[[], T], *, gated: bool = True) -> T:
        """``call()`` with retries; errors become :class:`LLMRequestError`."""
        attempt = 0
        while True:
            attempt += 1
            self._meter.count_request(retry=attempt > 1)
            retry_after = None
            try:
                if gated:
                    with self._gate:
                        return call()
                return call()
            except openai.APIStatusError as e:
                status = e.status_code
                reason = self._reason(e)
                headers = e.response.headers
                retryable = self._policy.retryable(status, headers)
                if not retryable or attempt > self._policy.max_retries:
                    raise self._status_error(what, status, reason, attempt, retryable) from None
                retry_after = retry_after_seconds(headers)
                if retry_after is not None and retry_after > self._policy.max_retry_after:
                    raise LLMRequestError(
                        f"{self.label}: {what}: HTTP {status}: the server asks to wait "
                        f"{retry_after:g} s (Retry-After), more than max_retry_after = "
                        f"{self._policy.max_retry_after:g} s; "
                        f"gave up after {attempt} attempt(s). Server said: {reason}",
                        status=status,
                        attempts=attempt,
                        reason=reason,
                    ) from None
                cause = f"HTTP {status}"
            except openai.APITimeoutError:
                if attempt > self._policy.max_retries:
                    raise LLMRequestError(
                        f"{self.label}: {what}: no answer within the timeout of "
                        f"{self.timeout:g} s; gave up after {attempt} attempt(s) (raise timeout "
                        "or max_retries)",
                        attempts=attempt,
                        reason="timeout",
                    ) from None
                cause = "timeout"
            except openai.APIConnectionError as e:
                detail = self._redactor.redact(_cause(e))
                if attempt > self._policy.max_retries:
                    raise LLMRequestError(
                        f"{self.label}: {what}: connection failed ({detail}); gave up after "
                        f"{attempt} attempt(s). Is the server running at that address?",
                        attempts=attempt,
                        reason=detail,
                    ) from None
                cause = f"connection error ({detail})"
            except json.JSONDecodeError as e:
                shown = self._redactor.redact(e.doc[:120])
                raise LLMRequestError(
                    f"{self.label}: {what}: the server answered with a body that is not valid JSON "
                    f"({e.msg} at character {e.pos} of {len(e.doc)}); it begins: {shown!r}",
                    attempts=attempt,
                    reason="malformed JSON",
                ) from None
            except openai.APIResponseValidationError as e:
                raise LLMRequestError(
                    f"{self.label}: {what}: the server's answer does not have the expected shape: "
                    f"{self._redactor.redact(str(e))}",
                    status=getattr(e, "status_code", None),
                    attempts=attempt,
                    reason="invalid answer",
                ) from None
            except openai.OpenAIError as e:
                raise LLMRequestError(
                    f"{self.label}: {what}: {type(e).__name__}: {self._redactor.redact(str(e))}",
                    attempts=attempt,
                ) from None
            wait = self._policy.wait(attempt, retry_after, self._rng)
            self._retry_waits.append(wait)
            log.info(
                "%s: %s: %s; retry %d of %d in %.2f s",
                self.label,
                what,
                cause,
                attempt,
                self._policy.max_retries,
                wait,
            )
            time.sleep(wait)

    def _reason(self, e: openai.APIStatusError) -> str:
        body = e.body
        message = None
        if isinstance(body, dict):
            err = body.get("error", body)
            message = err.get("message") if isinstance(err, dict) else str(err)
        if not message:
            try:
                message = e.response.text[:300]
            except Exception:  # noqa: BLE001 - a streamed body may be unreadable
                message = str(e)
        return self._redactor.redact(str(message))

    def _status_error(
        self, what: str, status: int, reason: str, attempts: int, retryable: bool
    ) -> LLMRequestError:
        hints = {
            401: f" Check the key in the environment variable {self.api_key_env}.",
            403: " The key is not allowed to use this model or endpoint.",
            404: f" Check model = {self.model!r} and the server address {self.base_url}.",
            429: " Rate limited: lower max_concurrency, or raise max_retries / backoff_max.",
        }
        if attempts > 1:
            tried = f"gave up after {attempts} attempt(s)"
        else:
            tried = "max_retries = 0" if retryable else "not retried"
        if retryable != self._policy.retryable_status(status):
            tried += f"; the server sent x-should-retry: {str(retryable).lower()}"
        return LLMRequestError(
            f"{self.label}: {what}: HTTP {status}: {reason} ({tried}).{hints.get(status, '')}",
            status=status,
            attempts=attempts,
            reason=reason,
        )

    def _endpoint(self, path: str) -> str:
        return f"POST {self.base_url}/{path}"

    # -- chat --------------------------------------------------------------------------------------
    def _options(
        self,
        max_tokens: int | None,
        temperature: float | None,
        stop: Sequence[str] | None,
        seed: int | None,
    ) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if max_tokens is not None:
            opts[self.max_tokens_field] = int(max_tokens)
        if temperature is not None:
            opts["temperature"] = float(temperature)
        if stop:
            opts["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if seed is not None:
            opts["seed"] = int(seed)
        return opts

    def _tool_options(
        self, tools: Any, tool_choice: Any, parallel_tool_calls: Any = None
    ) -> dict[str, Any]:
        """``tools``, ``tool_choice`` and ``parallel_tool_calls`` as sent (checked first: a
        mistake is named here, not by the server's 400)."""
        if tools is None:
            for option, value in (
                ("tool_choice", tool_choice),
                ("parallel_tool_calls", parallel_tool_calls),
            ):
                if value is not None:
                    raise RecaiError(f"{self.label}: {option} is given without tools")
            return {}
        if parallel_tool_calls is not None and not isinstance(parallel_tool_calls, bool):
            raise RecaiError(
                f"{self.label}: parallel_tool_calls must be true or false, got "
                f"{parallel_tool_calls!r:.40}"
            )
        try:
            checked = check_tools(tools, tool_choice)
        except ValueError as e:
            raise RecaiError(f"{self.label}: {e}") from None
        opts: dict[str, Any] = {"tools": checked}
        if tool_choice is not None:
            opts["tool_choice"] = tool_choice
        if parallel_tool_calls is not None:
            opts["parallel_tool_calls"] = parallel_tool_calls
        return opts

    # LLMBackend declares chat without tools; this backend has the "tools" capability
    def chat(  # type: ignore[override]
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
    ) -> Completion:
        """Complete one conversation (from the cache when it was asked before).

        ``json_schema`` asks for JSON matching it (``{}``: any JSON object); the answer is
        validated and repaired, and its text is the JSON value. ``tools`` (OpenAI function
        specs), ``tool_choice`` and ``parallel_tool_calls`` (OpenAI's default when None: the
        model may ask for several calls at once) are sent as they are; the calls come back
        in ``Completion.tool_calls`` with ``finish_reason`` ``"tool_calls"`` (a JSON answer is
        then not asked for: the calls are).
        """
        msgs = _message_dicts(messages)
        opts = {
            **self._options(max_tokens, temperature, stop, seed),
            **self._tool_options(tools, tool_choice, parallel_tool_calls),
        }
        if json_schema is not None:
            return self._chat_json(msgs, opts, json_schema)
        return self._chat_once(msgs, opts)

    def _chat_once(
        self, msgs: list[dict[str, Any]], opts: dict[str, Any], fmt: dict[str, Any] | None = None
    ) -> Completion:
        started = time.perf_counter()
        body: dict[str, Any] = {"model": self.model, "messages": msgs, **opts}
        if fmt is not None:
            body["response_format"] = fmt
        key = None
        if self._cache is not None:
            key = request_key("chat", self._server, body)
            hit = self._cache.get(key)
            if hit is not None:
                return self._from_cache(hit, started)
        resp = self._send(
            self._endpoint("chat/completions"), lambda: self._client.chat.completions.create(**body)
        )
        if not resp.choices:
            raise LLMRequestError(
                f"{self.label}: {self._endpoint('chat/completions')}: the answer has no choices"
            )
        choice = resp.choices[0]
        text = choice.message.content or "" if choice.message is not None else ""
        calls = _tool_calls(choice.message)
        usage = resp.usage
        pt = int(usage.prompt_tokens or 0) if usage is not None else 0
        ct = int(usage.completion_tokens or 0) if usage is not None else 0
        finish = choice.finish_reason or "stop"
        model = resp.model or self.model
        self._record(model, pt, ct)
        if key is not None and self._cache is not None:
            answer: dict[str, Any] = {
                "text": text,
                "finish_reason": finish,
                "usage": [pt, ct],
                "model": model,
            }
            if calls:
                answer["tool_calls"] = [c.to_dict() for c in calls]
            self._cache.put(key, body, answer)
        return Completion(text, finish, Usage(pt, ct), time.perf_counter() - started, model, calls)

    def _from_cache(self, hit: dict[str, Any], started: float) -> Completion:
        pt, ct = hit["usage"]
        self._meter.record(self.model, hit["model"], pt, ct, cached=True)
        return Completion(
            hit["text"],
            hit["finish_reason"],
            Usage(pt, ct),
            time.perf_counter() - started,
            hit["model"],
            [ToolCall.from_dict(c) for c in hit.get("tool_calls", ())],
        )

    def _record(self, model: str, pt: int, ct: int) -> None:
        self._meter.record(self.model, model, pt, ct)
        if (
            self._meter.prices
            and model not in self._unpriced_warned
            and self._meter.price_of(self.model, model) is None
        ):
            self._unpriced_warned.add(model)
            log.warning(
                "%s: no price for model %r: its tokens are counted, not costed", self.label, model
            )

    def _chat_json(
        self, msgs: list[dict[str, Any]], opts: dict[str, Any], schema: dict[str, Any]
    ) -> Completion:
        started = time.perf_counter()
        mode = (
            self.json_mode
            if self.json_mode != "auto"
            else ("schema" if self._native_json else "prompt")
        )
        conv = msgs if mode == "schema" and schema else _with_instruction(msgs, instruction(schema))
        usage = Usage()
        last: Completion | None = None
        problem: str | None = ""
        attempt = 0
        while attempt <= self.json_repairs:
            try:
                c = self._chat_once(conv, opts, response_format(schema, mode, self.json_strict))
            except LLMRequestError as e:
                if (
                    self.json_mode == "auto"
                    and mode != "prompt"
                    and e.status == 400
                    and _REFUSES_FORMAT.search(e.reason)
                ):
                    # the server refuses response_format: ask in words and check the answer
                    log.info(
                        "%s: the server refused response_format (%s); asking in the prompt",
                        self.label,
                        e.reason,
                    )
                    mode = "prompt"
                    conv = _with_instruction(msgs, instruction(schema))
                    c = self._chat_once(conv, opts, None)
                    self._native_json = False
                else:
                    raise
            usage = usage + c.usage
            if c.tool_calls:  # the model calls a tool instead of answering: nothing to check
                return Completion(
                    c.text,
                    c.finish_reason,
                    usage,
                    time.perf_counter() - started,
                    c.model,
                    c.tool_calls,
                )
            value, problem = parse_and_check(c.text, schema)
            if problem is None:
                text = json.dumps(value, ensure_ascii=False)
                return Completion(
                    text, c.finish_reason, usage, time.perf_counter() - started, c.model
                )
            last = c
            conv = [
                *conv,
                {"role": "assistant", "content": c.text},
                {"role": "user", "content": repair_request(problem)},
            ]
            attempt += 1
        assert last is not None  # json_repairs >= 0: at least one attempt
        # the last reply is kept as the model's answer, with what every attempt cost
        kept = Completion(
            last.text, last.finish_reason, usage, time.perf_counter() - started, last.model
        )
        raise LLMOutputError(
            f"{self.label}: model {self.model!r} gave no valid JSON for the schema in "
            f"{self.json_repairs + 1} attempt(s) ({self.json_repairs} repair(s)): {problem}. Last "
            f"answer: {last.text[:200]!r}",
            completions=[kept],
            failed=[0],
        )

    def chat_batch(
        self, conversations: Sequence[Sequence[Message]], **options: Any
    ) -> list[Completion]:
        """Complete many conversations, ``max_concurrency`` at a time; results in input order.

        The first error (in input order) is raised once the requests already sent have ended;
        requests not yet started are cancelled, so nothing of this call is still running (or still
        being billed) after it returns or raises. An answer that stays invalid for
        ``json_schema`` does not stop the batch: the others are completed, then one
        :class:`LLMOutputError` is raised whose ``completions`` hold every conversation's reply
        in input order (recai-hf's ``StructuredOutputError`` does the same).
        """
        convs = list(conversations)
        results: list[Completion | LLMOutputError] = []
        if len(convs) <= 1 or self.max_concurrency == 1:
            for c in convs:
                try:
                    results.append(self.chat(c, **options))
                except LLMOutputError as e:
                    results.append(_with_reply(e))
            return _batch_answers(results)
        pool = self._executor()
        futures = [pool.submit(self.chat, c, **options) for c in convs]
        try:
            for f in futures:
                try:
                    results.append(f.result())
                except LLMOutputError as e:
                    results.append(_with_reply(e))
        except BaseException:
            for f in futures:
                f.cancel()
            concurrent.futures.wait(futures)
            raise
        return _batch_answers(results)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.max_concurrency, thread_name_prefix="recai-openai"
                )
            return self._pool

    # LLMBackend declares stream with **options; this backend names its options
    def stream(  # type: ignore[override]
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
    ) -> Iterator[str]:
        """Yield the answer in pieces as the server sends them.

        A cached answer comes in one piece; JSON answers (``json_schema``) too, since they are
        validated whole. A stream that breaks raises :class:`LLMStreamError`; only a complete
        answer is cached and counted. Text comes in pieces, tool calls do not: with ``tools``,
        use :meth:`chat`.
        """
        if tools is not None or tool_choice is not None:
            raise RecaiError(
                f"{self.label}: stream() yields text and cannot return tool calls; pass tools "
                "to chat(), whose Completion carries them in tool_calls"
            )
        if json_schema is not None:
            yield self.chat(
                messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop,
                seed=seed,
                json_schema=json_schema,
            ).text
            return
        body: dict[str, Any] = {
            "model": self.model,
            "messages": _message_dicts(messages),
            **self._options(max_tokens, temperature, stop, seed),
        }
        key = None
        if self._cache is not None:
            key = request_key("chat", self._server, body)
            hit = self._cache.get(key)
            if hit is not None:
                self._from_cache(hit, time.perf_counter())
                yield hit["text"]
                return
        extra: dict[str, Any] = {"stream": True}
        if self.stream_usage:
            extra["stream_options"] = {"include_usage": True}
        what = self._endpoint("chat/completions") + " (stream)"
        pieces: list[str] = []
        finish = None
        usage = None
        model = self.model
        chunks = 0
        with self._gate:
            stream = self._send(
                what, lambda: self._client.chat.completions.create(**body, **extra), gated=False
            )
            try:
                for chunk in stream:
                    chunks += 1
                    if chunk.usage is not None:
                        usage = chunk.usage
                    model = chunk.model or model
                    for choice in chunk.choices:
                        content = choice.delta.content if choice.delta is not None else None
                        if content:
                            pieces.append(content)
                            yield content
                        if choice.finish_reason:
                            finish = choice.finish_reason
            except (openai.OpenAIError, OSError, ValueError) as e:
                detail = self._redactor.redact(_cause(e))
                raise LLMStreamError(
                    f"{self.label}: {what}: the stream broke after {chunks} chunk(s) "
                    f"({sum(map(len, pieces))} characters): {detail}; the partial answer is not "
                    "cached",
                    partial="".join(pieces),
                ) from None
            finally:
                stream.close()
        if finish is None:
            raise LLMStreamError(
                f"{self.label}: {what}: the stream ended after {chunks} chunk(s) without a finish "
                "reason (the connection closed early?); the partial answer is not cached",
                partial="".join(pieces),
            )
        pt = int(usage.prompt_tokens or 0) if usage is not None else 0
        ct = int(usage.completion_tokens or 0) if usage is not None else 0
        self._record(model, pt, ct)
        if key is not None and self._cache is not None:
            self._cache.put(
                key,
                body,
                {
                    "text": "".join(pieces),
                    "finish_reason": finish,
                    "usage": [pt, ct],
                    "model": model,
                },
            )

    # -- scoring -----------------------------------------------------------------------------------
    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        """Log-probability of each continuation after ``messages`` (natural log, summed over its
        tokens), from the completions endpoint with ``echo`` and ``logprobs`` (vLLM and
        ``recai serve`` with a scoring backend answer it; OpenAI's chat models, Ollama and
        llama.cpp's server do not: NotImplementedError).

        The prompt is :func:`render_prompt` (plain ``role: content`` lines, not the server's chat
        template) followed by the continuation as given; tokens that overlap the continuation are
        summed. Compare scores among continuations of the same messages.
        """
        conts = [str(c) for c in continuations]
        if not conts:
            return []
        prefix = render_prompt(messages)
        prompts = [prefix + c for c in conts]
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": prompts,
            "echo": True,
            "logprobs": 1,
            "max_tokens": 1,
            "temperature": 0.0,
        }
        key = None
        if self._cache is not None:
            key = request_key("score", self._server, body)
            hit = self._cache.get(key)
            if hit is not None:
                self._meter.record(self.model, hit["model"], hit["usage"][0], 0, cached=True)
                return list(hit["scores"])
        what = self._endpoint("completions")
        try:
            resp = self._send(what, lambda: self._client.completions.create(**body))
        except LLMRequestError as e:
            if e.status in (400, 404, 405, 422, 501):
                raise NotImplementedError(
                    f"{self.label}: the server at {self.base_url} does not score prompts "
                    f"(completions with echo and logprobs): HTTP {e.status}: {e.reason}. vLLM "
                    "and `recai serve` with a scoring backend do; OpenAI's chat models, Ollama "
                    "and llama.cpp's server do not"
                ) from None
            raise
        choices = sorted(resp.choices, key=lambda ch: ch.index)
        if len(choices) != len(prompts):
            raise LLMRequestError(
                f"{self.label}: {what}: {len(choices)} choices for {len(prompts)} prompts"
            )
        scores = []
        for prompt, cont, ch in zip(prompts, conts, choices, strict=True):
            lp = ch.logprobs
            if lp is None or not lp.tokens or lp.token_logprobs is None:
                raise NotImplementedError(
                    f"{self.label}: the server at {self.base_url} returned no prompt "
                    "log-probabilities (it ignores echo); it cannot score continuations"
                )
            offsets = lp.text_offset or _offsets(lp.tokens)
            total = 0.0
            counted = 0
            for tok, value, off in zip(lp.tokens, lp.token_logprobs, offsets, strict=False):
                if off >= len(prompt):
                    break  # generated, not part of the prompt
                if off + len(tok) > len(prefix) and value is not None:
                    total += float(value)
                    counted += 1
            if cont and not counted:
                raise LLMRequestError(
                    f"{self.label}: {what}: no token of the continuation {cont[:40]!r} came "
                    "back with a log-probability"
                )
            scores.append(total)
        pt = int(resp.usage.prompt_tokens or 0) if resp.usage is not None else 0
        model = resp.model or self.model
        self._record(model, pt, 0)
        if key is not None and self._cache is not None:
            self._cache.put(key, body, {"scores": scores, "usage": [pt, 0], "model": model})
        return scores

    # -- life --------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the thread pool and close the cache file (the connection pool is shared by
        the process's backends and stays open)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AzureOpenAIBackend(OpenAIBackend):
    """A chat model deployed on Azure OpenAI.

    Takes the settings of :class:`~recai_openai.params.AzureOpenAIParams`: ``deployment`` (the
    deployment name), ``endpoint`` (``https://<resource>.openai.azure.com``; default: environment
    variable ``AZURE_OPENAI_ENDPOINT``), ``api_version`` (default: ``OPENAI_API_VERSION``, else
    ``2024-10-21``), ``model`` (default: the deployment; names the model for prices and the
    cache), ``api_key_env`` (default ``AZURE_OPENAI_API_KEY``), and the shared settings of
    ``openai.v1``.
    """

    label = "azure-openai.v1"
    params_model: ClassVar[type[ClientParams]] = AzureOpenAIParams

    def __init__(self, **params: Any):
        p = cast(AzureOpenAIParams, self._validated(params))
        resolved = p.endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not resolved:
            raise ParamsError(
                self.label,
                [
                    Problem(
                        "endpoint",
                        "give the Azure endpoint (https://<resource>.openai.azure.com) or set "
                        "AZURE_OPENAI_ENDPOINT",
                    )
                ],
            )
        self._check_url(resolved, "endpoint" if p.endpoint else "AZURE_OPENAI_ENDPOINT")
        self.deployment = p.deployment
        self.endpoint = resolved.rstrip("/")
        self.api_version = p.api_version or os.environ.get("OPENAI_API_VERSION") or "2024-10-21"
        self.model = p.model or p.deployment
        self.base_url = f"{self.endpoint}/openai/deployments/{p.deployment}"
        self.api_key_env = p.api_key_env
        self._setup(p)
        key = self._key(required=True)
        self._server = {
            "azure_endpoint": self.endpoint,
            "deployment": p.deployment,
            "api_version": self.api_version,
        }
        self._client = openai.AzureOpenAI(
            azure_endpoint=self.endpoint,
            azure_deployment=p.deployment,
            api_version=self.api_version,
            api_key=key,
            timeout=openai.Timeout(p.timeout, connect=p.connect_timeout),
            max_retries=0,  # retried by _send: see recai_openai.retry for why
            http_client=_http_client(),
        )
        self._redactor = Redactor([key])

    def __repr__(self) -> str:
        return (
            f"AzureOpenAIBackend(deployment={self.deployment!r}, endpoint={self.endpoint!r}, "
            f"api_version={self.api_version!r}, api_key_env={self.api_key_env!r})"
        )


# -- helpers ---------------------------------------------------------------------------------------
def _message_dicts(messages: Sequence[Message | Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        d = (m if isinstance(m, Message) else Message.from_dict(m)).to_dict()
        if d.get("tool_calls") and not d["content"]:
            d["content"] = None  # OpenAI's shape of an assistant message that only calls
        out.append(d)
    return out


def _tool_calls(message: Any) -> list[ToolCall]:
    """The function calls of an answer's message (other kinds of tool calls are skipped)."""
    out = []
    for c in getattr(message, "tool_calls", None) or ():
        fn = getattr(c, "function", None)
        if fn is None or not isinstance(getattr(fn, "name", None), str):
            continue
        arguments = fn.arguments if isinstance(fn.arguments, str) else json.dumps(fn.arguments)
        out.append(ToolCall(str(c.id or ""), fn.name, arguments or "{}"))
    return out


def _with_reply(error: LLMOutputError) -> LLMOutputError:
    """``error`` when it keeps the one reply of its conversation; else it is raised (as any error
    that stops a batch)."""
    if len(error.completions) != 1:
        raise error
    return error


def _batch_answers(results: list[Completion | LLMOutputError]) -> list[Completion]:
    """The completions of a batch, or one :class:`LLMOutputError` keeping every conversation's
    reply when some stayed invalid for the schema."""
    failed = [i for i, r in enumerate(results) if isinstance(r, LLMOutputError)]
    if not failed:
        return [r for r in results if isinstance(r, Completion)]
    first = results[failed[0]]
    assert isinstance(first, LLMOutputError)
    if len(results) == 1:
        raise first
    kept = [r.completions[0] if isinstance(r, LLMOutputError) else r for r in results]
    raise LLMOutputError(
        f"{len(failed)} of {len(results)} conversations got no valid JSON for the schema "
        f"(conversations {', '.join(map(str, failed[:10]))}{', ...' if len(failed) > 10 else ''}"
        f"); the first: {first}",
        completions=kept,
        failed=failed,
    ) from None


def _with_instruction(msgs: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """``msgs`` with ``text`` added to the first system message (or as a new first message):
    some chat templates refuse a system message anywhere but first."""
    if msgs and msgs[0].get("role") == "system":
        return [{**msgs[0], "content": f"{msgs[0]['content']}\n\n{text}"}, *msgs[1:]]
    return [{"role": "system", "content": text}, *msgs]


def _offsets(tokens: Sequence[str]) -> list[int]:
    out, pos = [], 0
    for t in tokens:
        out.append(pos)
        pos += len(t)
    return out


def _cause(e: BaseException) -> str:
    """The most telling message in an exception chain (httpx's reason behind openai's
    "Connection error.")."""
    messages = []
    seen = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur).strip()
        if text and text not in messages:
            messages.append(text)
        cur = cur.__cause__ or cur.__context__
    generic = {"Connection error.", "Request timed out."}
    specific = [m for m in messages if m not in generic]
    return (specific[-1] if specific else messages[0] if messages else type(e).__name__)[:300]
