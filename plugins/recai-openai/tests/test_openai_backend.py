"""openai.v1 and azure-openai.v1 against a real OpenAI-compatible server on loopback.

The server is ``recai serve`` (:class:`recai_serve.server.LLMServer`) serving small deterministic
test doubles defined here; the HTTP server, the sockets and the ``openai`` client are all real, and
the failures (429 with Retry-After, 5xx, timeouts, cut-off JSON, dropped connections and streams, a
401 that echoes the key) are produced by that server (:mod:`recai.testing.faults` in front of it).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import recai
from recai.errors import ParamsError, RecaiError, RecipeError
from recai.roles import LLMBackend
from recai.testing import LLMBackendContract
from recai.testing.faults import FaultPlan
from recai.types import Completion, Message, Usage
from recai_openai.cache import request_key
from recai_openai.errors import LLMOutputError, LLMRequestError, LLMStreamError
from recai_serve.server import LLMServer

KEY_ENV = "RECAI_OPENAI_TEST_KEY"
KEY = "sk-test-0123456789abcdefSECRET"


# -- test doubles served over HTTP -----------------------------------------------------------------
class Echo(LLMBackend):
    """``echo: <last message>`` (+ `` [seed N]``); honours max_tokens (words) and stop; streams
    word by word; scores prompts (each word costs minus its length); answers JSON schemas."""

    def chat(
        self, messages, *, max_tokens=None, temperature=None, stop=None, seed=None, json_schema=None
    ):
        last = messages[-1].content
        prompt_words = sum(len(m.content.split()) for m in messages)
        if json_schema is not None:
            text = json.dumps({"answer": last, "n": len(last)})
            return Completion(text, "stop", Usage(prompt_words, 3))
        text = f"echo: {last}" + (f" [seed {seed}]" if seed is not None else "")
        finish = "stop"
        for s in stop or ():
            if s in text:
                text = text[: text.index(s)]
        words = text.split()
        if max_tokens is not None and len(words) > max_tokens:
            words, finish = words[:max_tokens], "length"
        return Completion(" ".join(words), finish, Usage(prompt_words, len(words)))

    def stream(self, messages, **options):
        words = self.chat(messages, **options).text.split()
        for i, w in enumerate(words):
            yield w if i == 0 else " " + w

    def prompt_logprobs(self, text: str) -> list[tuple[str, float | None]]:
        return [
            (t, None if i == 0 else -float(len(t.strip())))
            for i, t in enumerate(re.findall(r"\s*\S+|\s+$", text))
        ]


class Sleepy(LLMBackend):
    """Sleeps ``seconds`` per request (for concurrency)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def chat(self, messages, **options):
        time.sleep(self.seconds)
        return Completion("zz", "stop", Usage(1, 1))


class NoJSON(LLMBackend):
    """Refuses response_format (a 400), then answers bad JSON until it is asked to repair
    ``fix_after`` times."""

    def __init__(self, fix_after: int):
        self.fix_after = fix_after

    def chat(self, messages, *, json_schema=None, **options):
        if json_schema is not None:
            raise NotImplementedError("response_format is not supported")
        repairs = sum("not valid" in m.content for m in messages if m.role == "user")
        if repairs >= self.fix_after:
            return Completion('Here you go: {"answer": "ok", "n": 2}', "stop", Usage(5, 5))
        return Completion('{"answer": "ok", "n": "two"', "stop", Usage(5, 5))


@pytest.fixture(scope="module")
def server() -> Any:
    backends = {
        "echo": Echo(),
        "sleepy": Sleepy(0.1),
        "nojson": NoJSON(fix_after=1),
        "hopeless": NoJSON(fix_after=99),
    }
    faults = FaultPlan()
    with LLMServer(backends, middleware=[faults.middleware]) as s:
        s.faults = faults  # the tests queue faults through the server they talk to
        yield s


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    if "server" in request.fixturenames:
        s = request.getfixturevalue("server")
        s.faults.clear()
        s.stats.reset()


def make(server: LLMServer, **params: Any) -> Any:
    defaults = {
        "model": "echo",
        "base_url": server.base_url,
        "api_key_env": KEY_ENV,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
    }
    return recai.create("llm_backend", "openai.v1", **{**defaults, **params})


def msgs(text: str = "hello there") -> list[Message]:
    return [Message.system("You are terse."), Message.user(text)]


# -- the role contract -----------------------------------------------------------------------------
class TestOpenAIBackend(LLMBackendContract):
    name = "openai.v1"
    params = {"model": "echo", "base_url": "http://127.0.0.1:9/v1", "api_key_env": KEY_ENV}
    distribution = "recai-openai"

    @pytest.fixture
    def component(self, entry: Any, server: LLMServer) -> Any:
        return entry.build({**self.params, "base_url": server.base_url})


class TestAzureOpenAIBackend(LLMBackendContract):
    name = "azure-openai.v1"
    params = {"deployment": "echo", "endpoint": "http://127.0.0.1:9", "api_key_env": KEY_ENV}
    distribution = "recai-openai"

    @pytest.fixture
    def component(self, entry: Any) -> Any:
        with LLMServer(Echo(), model="echo", api_key=KEY) as s:  # Azure's api-key header
            yield entry.build({**self.params, "endpoint": s.url})


# -- chat, options, streaming ----------------------------------------------------------------------
def test_chat_returns_the_server_answer_with_usage(server: LLMServer) -> None:
    llm = make(server)
    c = llm.chat(msgs("a b c"), seed=3)
    assert c.text == "echo: a b c [seed 3]" and c.finish_reason == "stop"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (6, 6)
    assert c.model == "echo" and c.latency_s > 0
    c = llm.chat(msgs("one two three four"), max_tokens=2)
    assert c.text == "echo: one" and c.finish_reason == "length"
    assert llm.chat(msgs("stop here please"), stop=["here"]).text == "echo: stop"


def test_stream_yields_the_pieces_of_the_answer(server: LLMServer) -> None:
    llm = make(server)
    pieces = list(llm.stream(msgs("one two three")))
    assert pieces == ["echo:", " one", " two", " three"]
    assert llm.totals()["completion_tokens"] == 0  # the double streams without usage counts
    assert llm.totals()["calls"] == 1


def test_azure_sends_the_deployment_api_version_and_key_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with LLMServer(Echo(), model="dep", api_key=KEY) as s:
        llm = recai.create(
            "llm_backend",
            "azure-openai.v1",
            deployment="dep",
            endpoint=s.url,
            api_key_env=KEY_ENV,
            api_version="2024-10-21",
        )
        assert llm.chat(msgs("x")).text == "echo: x"
        assert s.stats.by_path == {"/v1/chat/completions": 1}
        monkeypatch.setenv(KEY_ENV, "sk-wrong-0123456789")
        wrong = recai.create(
            "llm_backend", "azure-openai.v1", deployment="dep", endpoint=s.url, api_key_env=KEY_ENV
        )
        with pytest.raises(LLMRequestError, match="HTTP 401") as info:
            wrong.chat(msgs("x"))
        assert "sk-wrong-0123456789" not in str(info.value)


# -- retries ---------------------------------------------------------------------------------------
def test_retry_then_success(server: LLMServer) -> None:
    server.faults.add("500", times=2)
    llm = make(server, max_retries=3)
    assert llm.chat(msgs("x")).text == "echo: x"
    assert server.stats.requests == 3
    t = llm.totals()
    assert (t["requests"], t["retries"], t["calls"]) == (3, 2, 1)


def test_retry_exhaustion_names_status_and_attempts(server: LLMServer) -> None:
    server.faults.add("503", times=3)
    llm = make(server, max_retries=2)
    with pytest.raises(LLMRequestError) as info:
        llm.chat(msgs("x"))
    e = info.value
    assert isinstance(e, RecaiError)
    assert (e.status, e.attempts) == (503, 3)
    assert (
        "HTTP 503" in str(e)
        and "gave up after 3 attempt(s)" in str(e)
        and "injected fault" in str(e)
    )
    assert server.stats.requests == 3


def test_client_errors_are_not_retried(server: LLMServer) -> None:
    llm = make(server, model="no-such-model", max_retries=3)
    with pytest.raises(
        LLMRequestError, match="HTTP 404.*not retried.*Check model = 'no-such-model'"
    ) as info:
        llm.chat(msgs())
    assert info.value.attempts == 1 and server.stats.requests == 1


def test_retry_after_is_honoured(server: LLMServer) -> None:
    server.faults.add("429:retry-after=0.4")
    llm = make(server, max_retries=1)
    start = time.perf_counter()
    assert llm.chat(msgs("x")).text == "echo: x"
    elapsed = time.perf_counter() - start
    (wait,) = llm.retry_waits
    assert 0.4 <= wait <= 0.44, wait  # what the server asked, plus at most 10 % jitter
    assert elapsed >= 0.4
    assert server.stats.requests == 2


def test_retry_after_longer_than_allowed_is_not_waited_for(server: LLMServer) -> None:
    server.faults.add("429:retry-after=30")
    llm = make(server, max_retries=3, max_retry_after=5)
    start = time.perf_counter()
    with pytest.raises(
        LLMRequestError, match=r"asks to wait 30 s \(Retry-After\), more than max_retry_after = 5 s"
    ):
        llm.chat(msgs())
    assert time.perf_counter() - start < 1 and server.stats.requests == 1


def test_backoff_has_jitter(server: LLMServer) -> None:
    a = make(server, max_retries=4, backoff_base=0.02, backoff_max=1.0)
    b = make(server, max_retries=4, backoff_base=0.02, backoff_max=1.0)
    for llm in (a, b):
        server.faults.add("500", times=4)
        llm.chat(msgs())
    for waits in (a.retry_waits, b.retry_waits):
        assert len(waits) == 4
        for n, w in enumerate(waits, start=1):
            cap = 0.02 * 2 ** (n - 1)
            assert cap / 2 <= w <= cap  # exponential, with equal jitter
    assert len(set(a.retry_waits + b.retry_waits)) == 8  # no two waits alike


def test_timeout_is_retried_then_reported(server: LLMServer) -> None:
    server.faults.add("delay:seconds=0.6")
    llm = make(server, timeout=0.2, max_retries=1)
    start = time.perf_counter()
    assert llm.chat(msgs("x")).text == "echo: x"  # the second attempt is answered at once
    assert time.perf_counter() - start < 0.5
    server.faults.add("delay:seconds=0.6", times=2)
    with pytest.raises(
        LLMRequestError, match=r"no answer within the timeout of 0.2 s; gave up after 2 attempt"
    ) as info:
        llm.chat(msgs("y"))
    assert info.value.status is None and info.value.reason == "timeout"


def test_malformed_json_body_is_a_clear_error(server: LLMServer) -> None:
    server.faults.add("malformed")
    llm = make(server, max_retries=3)
    with pytest.raises(
        LLMRequestError, match='not valid JSON.*it begins: \'\\{"id": "chatcmpl-broken"'
    ) as info:
        llm.chat(msgs())
    assert info.value.attempts == 1 and server.stats.requests == 1


def test_dropped_connection_is_retried(server: LLMServer) -> None:
    server.faults.add("drop")
    llm = make(server, max_retries=1)
    assert llm.chat(msgs("x")).text == "echo: x"
    assert server.stats.requests == 2
    server.faults.add("drop", times=2)
    with pytest.raises(LLMRequestError, match="connection failed .*gave up after 2 attempt"):
        llm.chat(msgs("y"))


def test_dropped_stream_is_a_clear_error_and_not_cached(server: LLMServer, tmp_path: Path) -> None:
    server.faults.add("drop:after=2")
    llm = make(server, cache=str(tmp_path / "c.sqlite"))
    got: list[str] = []
    with pytest.raises(
        LLMStreamError, match=r"the stream broke after \d+ chunk\(s\) \(9 characters\)"
    ) as info:
        for piece in llm.stream(msgs("one two three")):
            got.append(piece)
    assert got == ["echo:", " one"] and info.value.partial == "echo: one"
    assert llm.totals()["calls"] == 0
    assert list(llm.stream(msgs("one two three"))) == [
        "echo:",
        " one",
        " two",
        " three",
    ]  # not cached
    assert server.stats.requests == 2


def test_connection_refused_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    with LLMServer(Echo()) as s:
        url = s.base_url  # a port that was just released
    llm = recai.create(
        "llm_backend",
        "openai.v1",
        model="m",
        base_url=url,
        api_key_env=KEY_ENV,
        max_retries=1,
        backoff_base=0.01,
    )
    with pytest.raises(LLMRequestError, match="connection failed.*Is the server running"):
        llm.chat(msgs())


# -- concurrency -----------------------------------------------------------------------------------
@pytest.fixture
def sleepy() -> Any:
    """A server of its own (no request of another test in flight) whose backend sleeps 0.06 s."""
    faults = FaultPlan()
    with LLMServer(Sleepy(0.06), model="sleepy", middleware=[faults.middleware]) as s:
        s.faults = faults
        yield s


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_limit_is_respected(sleepy: LLMServer, limit: int) -> None:
    llm = make(sleepy, model="sleepy", max_concurrency=limit)
    start = time.perf_counter()
    out = llm.chat_batch([msgs(str(i)) for i in range(6)])
    elapsed = time.perf_counter() - start
    assert [c.text for c in out] == ["zz"] * 6
    assert sleepy.stats.requests == 6 and sleepy.stats.max_in_flight == limit
    assert elapsed >= 6 / limit * 0.06 * 0.95
    if limit > 1:
        assert elapsed < 6 * 0.06 * 0.8  # really concurrent


def test_limit_holds_across_threads_calling_chat(sleepy: LLMServer) -> None:
    llm = make(sleepy, model="sleepy", max_concurrency=2)
    threads = [threading.Thread(target=llm.chat, args=(msgs(str(i)),)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sleepy.stats.requests == 6 and sleepy.stats.max_in_flight == 2


def test_chat_batch_keeps_order_and_raises_the_first_error(server: LLMServer) -> None:
    llm = make(server, max_concurrency=4)
    out = llm.chat_batch([msgs(str(i)) for i in range(10)])
    assert [c.text for c in out] == [f"echo: {i}" for i in range(10)]
    server.faults.add("400")
    with pytest.raises(LLMRequestError, match="HTTP 400"):
        llm.chat_batch([msgs(str(i)) for i in range(4)])


def test_a_failed_batch_leaves_nothing_running(sleepy: LLMServer) -> None:
    llm = make(sleepy, model="sleepy", max_concurrency=3)
    sleepy.faults.add("400")
    with pytest.raises(LLMRequestError, match="HTTP 400"):
        llm.chat_batch([msgs(str(i)) for i in range(12)])
    sent = sleepy.stats.requests
    time.sleep(0.3)  # a request still running after the raise would reach the server now
    assert sleepy.stats.requests == sent < 12


# -- cache -----------------------------------------------------------------------------------------
def test_cache_hit_makes_no_request(server: LLMServer, tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    llm = make(server, cache=str(path))
    first = llm.chat(msgs("x"), temperature=0.7, seed=1)
    again = llm.chat(msgs("x"), temperature=0.7, seed=1)
    assert server.stats.requests == 1
    assert (again.text, again.finish_reason, again.usage, again.model) == (
        first.text,
        first.finish_reason,
        first.usage,
        first.model,
    )
    fresh = make(server, cache=str(path))  # another process's view: the file
    assert fresh.chat(msgs("x"), temperature=0.7, seed=1).text == first.text
    assert list(fresh.stream(msgs("x"), temperature=0.7, seed=1)) == [first.text]
    assert server.stats.requests == 1
    assert fresh.totals()["cached_calls"] == 2 and fresh.totals()["calls"] == 0
    # every option is part of the key
    for options in (
        {"temperature": 0.7, "seed": 2},
        {"temperature": 0.8, "seed": 1},
        {"temperature": 0.7, "seed": 1, "stop": ["q"]},
        {"temperature": 0.7, "seed": 1, "max_tokens": 9},
    ):
        fresh.chat(msgs("x"), **options)
    assert server.stats.requests == 5
    assert KEY.encode() not in path.read_bytes()
    stored = fresh._cache.requests()
    assert stored[0] == {
        "model": "echo",
        "messages": [m.to_dict() for m in msgs("x")],
        "temperature": 0.7,
        "seed": 1,
    }


def test_cache_key_covers_server_model_messages_and_options() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.0}
    base = request_key("chat", "http://a/v1", body)
    assert base == request_key("chat", "http://a/v1", dict(reversed(body.items())))
    assert base != request_key("chat", "http://b/v1", body)
    assert base != request_key("score", "http://a/v1", body)
    assert base != request_key("chat", "http://a/v1", {**body, "model": "n"})
    assert base != request_key(
        "chat", "http://a/v1", {**body, "messages": [{"role": "user", "content": "y"}]}
    )
    assert base != request_key(
        "chat", "http://a/v1", {**body, "response_format": {"type": "json_object"}}
    )


def test_cache_is_shared_safely_by_threads(server: LLMServer, tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    llm = make(server, cache=str(path), max_concurrency=8)
    convs = [msgs(f"q{i}") for i in range(40)]
    first = [c.text for c in llm.chat_batch(convs)]
    assert server.stats.requests == 40 and len(llm._cache) == 40
    other = make(server, cache=str(path), max_concurrency=8)
    assert [c.text for c in other.chat_batch(convs)] == first
    assert server.stats.requests == 40


# -- accounting ------------------------------------------------------------------------------------
def test_cost_accounting_with_a_price_table(server: LLMServer, tmp_path: Path) -> None:
    prices = {"echo": {"input": 2.0, "output": 8.0}}
    llm = make(server, prices=prices, cache=str(tmp_path / "c.sqlite"))
    answers = [llm.chat(msgs(f"question {i} " * (i + 1))) for i in range(5)]
    pt = sum(c.usage.prompt_tokens for c in answers)
    ct = sum(c.usage.completion_tokens for c in answers)
    t = llm.totals()
    assert (t["prompt_tokens"], t["completion_tokens"], t["calls"]) == (pt, ct, 5)
    assert t["cost_usd"] == pytest.approx((pt * 2.0 + ct * 8.0) / 1e6)
    assert t["unpriced_models"] == []
    llm.chat(msgs("question 0 "))  # a cache hit costs nothing, but says what it saved
    t2 = llm.totals()
    assert t2["cost_usd"] == t["cost_usd"] and t2["cached_calls"] == 1
    assert t2["cached_cost_usd"] == pytest.approx(
        (answers[0].usage.prompt_tokens * 2.0 + answers[0].usage.completion_tokens * 8.0) / 1e6
    )
    report = llm.usage_report()
    assert isinstance(report, recai.Report)
    assert report.metrics["echo"]["cost_usd"] == pytest.approx(t["cost_usd"])
    assert report.info["prices_usd_per_1m_tokens"] == {"echo": {"input": 2.0, "output": 8.0}}
    assert "cost_usd" in report.to_markdown()


def test_unpriced_models_are_counted_not_costed(
    server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm = make(server, prices={"gpt-4o": {"input": 1, "output": 1}})
    with caplog.at_level(logging.WARNING, "recai_openai"):
        llm.chat(msgs())
        llm.chat(msgs())
    t = llm.totals()
    assert t["cost_usd"] == 0 and t["prompt_tokens"] > 0 and t["unpriced_models"] == ["echo"]
    assert sum("no price for model 'echo'" in r.message for r in caplog.records) == 1


# -- keys ------------------------------------------------------------------------------------------
def test_key_never_appears_in_errors_reprs_or_logs(
    server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.faults.add("auth-echo")  # a server that puts the key it got into its 401 message
    server.faults.add("500")
    llm = make(server, max_retries=1)
    with caplog.at_level(logging.DEBUG), pytest.raises(LLMRequestError) as info:
        llm.chat(msgs())
    text = str(info.value)
    assert "HTTP 401" in text and "Incorrect API key provided: Bearer ***" in text
    assert f"environment variable {KEY_ENV}" in text
    assert KEY not in text and KEY not in info.value.reason and KEY not in repr(info.value.args)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with caplog.at_level(logging.DEBUG):
        llm.chat(msgs())  # the 500, retried and logged
    assert any("retry 1 of 1" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if KEY in r.getMessage()]
    assert (
        KEY not in repr(llm)
        and KEY not in repr(vars(llm))
        and KEY not in json.dumps(recai.roles.describe_component(llm))
    )


def test_keys_are_never_params(server: LLMServer) -> None:
    with pytest.raises(ParamsError, match="api_key: unknown key"):
        make(server, api_key=KEY)
    with pytest.raises(
        ParamsError, match="NAME of the environment variable.*looks like a key itself"
    ) as info:
        make(server, api_key_env=KEY)
    assert KEY not in str(info.value)
    with pytest.raises(ParamsError, match="user name or password") as info:
        make(server, base_url=f"http://user:{KEY}@127.0.0.1:1/v1")
    assert KEY not in str(info.value)
    with pytest.raises(
        ParamsError, match=r"credential in its query \(api-key=..., not shown\)"
    ) as info:
        make(server, base_url=f"http://127.0.0.1:1/v1?api-key={KEY}")
    assert KEY not in str(info.value)
    with pytest.raises(ParamsError, match="looks like an API key") as info:
        make(server, model=KEY)
    assert KEY not in str(info.value)
    with pytest.raises(
        ParamsError, match="looks like a key itself"
    ):  # built directly, not through recai.create
        from recai_openai.backend import OpenAIBackend

        OpenAIBackend(model="m", base_url=server.base_url, api_key_env=KEY)


def test_a_recipe_with_a_pasted_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f'[components.llm]\nuse = "openai.v1"\nparams = {{ model = "m", api_key_env = "{KEY}" }}\n'
    )
    with pytest.raises(RecipeError) as info:
        recai.recipe.check(recai.load_recipe(recipe))
    assert "components.llm.params.api_key_env" in str(info.value) and KEY not in str(info.value)


def test_openai_host_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECAI_OPENAI_UNSET", raising=False)
    with pytest.raises(RecaiError, match="environment variable RECAI_OPENAI_UNSET is not set"):
        recai.create(
            "llm_backend",
            "openai.v1",
            model="gpt-4o-mini",
            base_url="https://api.openai.com/v1",
            api_key_env="RECAI_OPENAI_UNSET",
        )
    # a local server without keys is fine
    llm = recai.create(
        "llm_backend",
        "openai.v1",
        model="m",
        base_url="http://127.0.0.1:9/v1",
        api_key_env="RECAI_OPENAI_UNSET",
    )
    assert llm.base_url == "http://127.0.0.1:9/v1"


def test_base_url_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:7/v1/")
    assert (
        recai.create("llm_backend", "openai.v1", model="m", api_key_env=KEY_ENV).base_url
        == "http://127.0.0.1:7/v1"
    )


# -- JSON ------------------------------------------------------------------------------------------
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["answer", "n"],
}


def test_json_schema_through_response_format(server: LLMServer) -> None:
    llm = make(server)
    c = llm.chat(msgs("hi"), json_schema=SCHEMA)
    assert json.loads(c.text) == {"answer": "hi", "n": 2}
    assert server.stats.requests == 1


def test_json_repair_loop_when_the_server_has_no_json_mode(server: LLMServer) -> None:
    llm = make(server, model="nojson")
    c = llm.chat(msgs(), json_schema=SCHEMA)
    assert json.loads(c.text) == {"answer": "ok", "n": 2}
    # refused response_format (400), then a bad answer, then the repaired one
    assert server.stats.requests == 3
    assert c.usage.prompt_tokens == 10  # both answers counted
    server.stats.reset()
    llm.chat(msgs("again"), json_schema=SCHEMA)  # the fallback is remembered: no more 400
    assert server.stats.requests == 2


def test_json_gives_up_with_the_last_problem(server: LLMServer) -> None:
    llm = make(server, model="hopeless", json_mode="prompt", json_repairs=2)
    with pytest.raises(
        LLMOutputError,
        match=r"no valid JSON for the schema in 3 attempt\(s\) \(2 repair\(s\)\): the reply's "
        r"JSON does not parse: Expecting ',' delimiter at line 1, column 28",
    ):
        llm.chat(msgs(), json_schema=SCHEMA)
    assert server.stats.requests == 3


def test_json_mode_schema_does_not_fall_back(server: LLMServer) -> None:
    llm = make(server, model="nojson", json_mode="schema")
    with pytest.raises(LLMRequestError, match="HTTP 400.*response_format is not supported"):
        llm.chat(msgs(), json_schema=SCHEMA)


# -- scoring ---------------------------------------------------------------------------------------
def test_score_continuations_by_prompt_logprobs(server: LLMServer, tmp_path: Path) -> None:
    llm = make(server, cache=str(tmp_path / "c.sqlite"))
    scores = llm.score_continuations(msgs("capital of France?"), ["Paris", "Lyon city", ""])
    # the double charges each word minus its length: "Paris" -5, "Lyon city" -4 - 4
    assert scores == [-5.0, -8.0, 0.0]
    assert llm.score_continuations(msgs("capital of France?"), ["Paris", "Lyon city", ""]) == scores
    assert server.stats.by_path == {"/v1/completions": 1}  # one request for all, then the cache
    assert llm.score_continuations(msgs(), []) == []


def test_score_continuations_unsupported_is_not_implemented(server: LLMServer) -> None:
    llm = make(server, model="sleepy")
    with pytest.raises(NotImplementedError, match="does not score prompts .*cannot score prompts"):
        llm.score_continuations(msgs(), ["a"])
