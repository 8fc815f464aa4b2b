"""recai serve: the OpenAI-compatible server, over real sockets with the standard library's client.

Routes and response shapes, server-sent events, errors in OpenAI's shape, authentication, every
injected fault (recai.testing.faults) as a client sees it, the concurrency bound, body limits,
clean shutdown, and the command line.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from recai.roles import LLMBackend
from recai.testing.faults import Fault, FaultPlan, parse_fault
from recai.types import Completion, Usage
from recai_serve.server import LLMServer


class Words(LLMBackend):
    """Answers ``echo: <last message>``; streams word by word; can sleep; counts concurrency."""

    def __init__(self, sleep: float = 0.0):
        self.sleep = sleep
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def chat(self, messages, **options):
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append(options)
        try:
            if self.sleep:
                time.sleep(self.sleep)
            last = messages[-1].content
            if last == "explode":
                raise RuntimeError("backend exploded")
            if last == "unsupported":
                raise NotImplementedError("no such trick")
            text = f"echo: {last}"
            return Completion(
                text, "stop", Usage(len(last.split()), len(text.split())), model="words"
            )
        finally:
            with self._lock:
                self.active -= 1

    def stream(self, messages, **options):
        text = self.chat(messages, **options).text
        for i, word in enumerate(text.split()):
            yield word if i == 0 else " " + word

    def prompt_logprobs(self, text: str) -> list[tuple[str, float | None]]:
        tokens = [t for t in text.replace(" ", "\0 ").split("\0") if t]
        return [(t, None if i == 0 else -float(len(t))) for i, t in enumerate(tokens)]


class Whole(LLMBackend):
    """No stream of its own: the server streams its chat answer in one piece."""

    def chat(self, messages, **options):
        return Completion("all at once", "length", Usage(2, 3))


@pytest.fixture(scope="module")
def backend() -> Words:
    return Words()


@pytest.fixture(scope="module")
def faults() -> FaultPlan:
    return FaultPlan()


@pytest.fixture(scope="module")
def server(backend: Words, faults: FaultPlan) -> Iterator[LLMServer]:
    backends = {"words": backend, "whole": Whole(), "slow": Words(sleep=0.2)}
    with LLMServer(backends, middleware=[faults.middleware]) as s:
        yield s


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "server" in request.fixturenames:
        request.getfixturevalue("faults").clear()
        request.getfixturevalue("server").stats.reset()


def post(
    server: LLMServer,
    body: Any,
    path: str = "/v1/chat/completions",
    headers: dict | None = None,
    timeout: float = 10,
) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(*server.address, timeout=timeout)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request(
            "POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})}
        )
        resp = conn.getresponse()
        headers = {k.lower(): v for k, v in resp.getheaders()}  # names are case-insensitive
        return resp.status, headers, resp.read()
    finally:
        conn.close()


def get(server: LLMServer, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def chat_body(text: str = "hello there", model: str = "words", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def events(raw: bytes) -> list[Any]:
    out = []
    for block in raw.decode().split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


# -- routes and shapes -----------------------------------------------------------------------------
def test_models_and_health(server: LLMServer) -> None:
    status, body = get(server, "/v1/models")
    assert status == 200 and body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["words", "whole", "slow"]
    assert get(server, "/health") == (200, {"status": "ok"})
    status, body = get(server, "/v2/nothing")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = get(server, "/v1/chat/completions")
    assert status == 405 and body["error"]["message"].endswith("it answers POST")


def test_chat_completion_shape(server: LLMServer, backend: Words) -> None:
    status, headers, raw = post(
        server, chat_body("a b c", max_tokens=5, temperature=0.2, stop="x", seed=7)
    )
    assert status == 200 and headers["content-type"] == "application/json"
    body = json.loads(raw)
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "words"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "echo: a b c"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert backend.calls[-1] == {"max_tokens": 5, "temperature": 0.2, "stop": ["x"], "seed": 7}


def test_options_reach_the_backend(server: LLMServer, backend: Words) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    assert post(server, chat_body(max_completion_tokens=3, response_format=fmt))[0] == 200
    assert backend.calls[-1] == {"max_tokens": 3, "json_schema": schema}
    assert post(server, chat_body(response_format={"type": "json_object"}))[0] == 200
    assert backend.calls[-1] == {"json_schema": {}}
    assert post(server, chat_body(response_format={"type": "text"}))[0] == 200
    assert backend.calls[-1] == {}


def test_neutral_values_of_unsupported_knobs_are_accepted(server: LLMServer) -> None:
    neutral = {"top_p": 1, "presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": False}
    assert post(server, chat_body(**neutral, tools=None, logit_bias={}))[0] == 200
    status, _, raw = post(server, chat_body(presence_penalty=0.5))
    assert status == 400 and json.loads(raw)["error"]["param"] == "presence_penalty"


def test_content_parts_and_developer_role(server: LLMServer) -> None:
    body = {
        "model": "words",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "two "}, {"type": "text", "text": "parts"}],
            },
        ],
    }
    status, _, raw = post(server, body)
    assert (
        status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == "echo: two parts"
    )


def test_stream_sends_events_then_done(server: LLMServer) -> None:
    status, headers, raw = post(
        server, chat_body("one two three", stream=True, stream_options={"include_usage": True})
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert headers["transfer-encoding"] == "chunked"
    evs = events(raw)
    assert evs[-1] == "[DONE]"
    chunks = evs[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "echo: one two three"
    finish = [
        c["choices"][0]["finish_reason"]
        for c in chunks
        if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert finish == ["stop"]
    assert chunks[-1]["choices"] == [] and "usage" in chunks[-1]
    assert len(chunks) == 1 + 4 + 1 + 1  # role, four words, finish, usage


def test_stream_of_a_backend_without_stream_keeps_finish_and_usage(server: LLMServer) -> None:
    status, _, raw = post(
        server, chat_body(model="whole", stream=True, stream_options={"include_usage": True})
    )
    chunks = events(raw)[:-1]
    assert status == 200
    assert [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]][
        1
    ] == "all at once"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    status, _, raw = post(server, chat_body(model="whole", stream=True))
    assert "usage" not in events(raw)[-2]  # only when asked for


def test_azure_paths_name_the_model_by_deployment(server: LLMServer) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    status, _, raw = post(
        server, body, "/openai/deployments/whole/chat/completions?api-version=2024-10-21"
    )
    assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == "all at once"


def test_prompt_scoring(server: LLMServer) -> None:
    status, _, raw = post(
        server,
        {"model": "words", "prompt": ["a bb", "ccc"], "echo": True, "logprobs": 1, "max_tokens": 1},
        "/v1/completions",
    )
    assert status == 200
    choices = json.loads(raw)["choices"]
    assert choices[0]["logprobs"] == {
        "tokens": ["a", " bb"],
        "token_logprobs": [None, -3.0],
        "text_offset": [0, 1],
        "top_logprobs": None,
    }
    assert choices[1]["index"] == 1 and choices[1]["text"] == "ccc"
    status, _, raw = post(
        server, {"model": "whole", "prompt": "x", "echo": True, "logprobs": 1}, "/v1/completions"
    )
    assert status == 400 and "cannot score prompts" in json.loads(raw)["error"]["message"]
    status, _, raw = post(server, {"model": "words", "prompt": "x"}, "/v1/completions")
    assert status == 400 and "only to score prompts" in json.loads(raw)["error"]["message"]


# -- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (
            chat_body(model="nope"),
            404,
            "does not exist on this server; it serves: words, whole, slow",
        ),
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (chat_body(top_p=0.5), 400, "unsupported parameter 'top_p'"),
        (chat_body(n=2), 400, "n = 1"),
        ({"model": "words"}, 400, "messages must be a non-empty list"),
        ({"model": "words", "messages": [{"role": "wizard", "content": "x"}]}, 400, "unknown role"),
        (chat_body(max_tokens=0), 400, "max_tokens must be a positive integer"),
        (chat_body(temperature=5), 400, "temperature must be a number from 0 to 2"),
        (chat_body(response_format={"type": "xml"}), 400, "unknown response_format type"),
        (chat_body("explode"), 500, "the backend failed: RuntimeError: backend exploded"),
        (chat_body("unsupported"), 400, "not supported by this backend: no such trick"),
    ],
)
def test_errors_have_openai_shape(server: LLMServer, body: Any, status: int, needle: str) -> None:
    got, headers, raw = post(server, body)
    assert got == status
    err = json.loads(raw)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert needle in err["message"]
    assert err["type"] == ("server_error" if status == 500 else "invalid_request_error")


def test_the_connection_stays_usable_after_an_error(server: LLMServer) -> None:
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        for body in (
            b"{broken",
            json.dumps(chat_body()).encode(),
            json.dumps(chat_body(model="nope")).encode(),
            json.dumps(chat_body()).encode(),
        ):
            conn.request("POST", "/v1/chat/completions", body=body)
            resp = conn.getresponse()
            resp.read()
        assert resp.status == 200
    finally:
        conn.close()


def test_api_key_is_required_when_set() -> None:
    with LLMServer(Whole(), model="m", api_key="k-123") as s:
        status, _, raw = post(s, chat_body(model="m"))
        assert status == 401 and json.loads(raw)["error"]["code"] == "invalid_api_key"
        status, _, raw = post(
            s, chat_body(model="m"), headers={"Authorization": "Bearer wrong-key"}
        )
        assert status == 401 and "wrong-key" not in raw.decode()  # a wrong key is not echoed
        assert post(s, chat_body(model="m"), headers={"Authorization": "Bearer k-123"})[0] == 200
        assert (
            post(
                s,
                chat_body(model="m"),
                "/openai/deployments/m/chat/completions",
                {"api-key": "k-123"},
            )[0]
            == 200
        )


def _request(
    server: LLMServer, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        body = b"{}" if method == "POST" else None
        conn.request(
            method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})}
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_with_a_key_every_route_and_unknown_path_of_the_llm_server_wants_it() -> None:
    from starlette.routing import Route

    with LLMServer(Whole(), model="m", api_key="k-123") as s:
        routes = [r for r in s.app.routes if isinstance(r, Route)]
        requests = [
            (method, r.path.replace("{deployment}", "m"))
            for r in routes
            for method in sorted(r.methods or {"GET"})
        ]
        requests += [("GET", "/nowhere"), ("GET", "/"), ("POST", "/health"), ("PUT", "/v1/models")]
        assert len(requests) >= 16
        basic = "Basic " + base64.b64encode(b"anyone:k-123").decode()
        for method, path in requests:
            status, headers, raw = _request(s, method, path)
            assert status == 401, (method, path)  # before any 404 or 405: no route told
            assert headers["www-authenticate"] == 'Basic realm="recai", charset="UTF-8"'
            if method != "HEAD":
                assert json.loads(raw)["error"]["code"] == "invalid_api_key"
            wrong = "Basic " + base64.b64encode(b"anyone:k-12").decode()
            assert _request(s, method, path, {"Authorization": wrong})[0] == 401
            with_bearer = _request(s, method, path, {"Authorization": "Bearer k-123"})[0]
            with_basic = _request(s, method, path, {"Authorization": basic})[0]
            assert with_bearer == with_basic != 401, (method, path, with_bearer, with_basic)
        status, _, raw = _request(s, "GET", "/health", {"Authorization": basic})
        assert status == 200 and json.loads(raw) == {"status": "ok"}


# -- faults ----------------------------------------------------------------------------------------
def test_parse_fault_forms_and_errors() -> None:
    assert parse_fault("503:times=2") == Fault("status", status=503, times=2)
    assert parse_fault("drop:after=3") == Fault("drop", after=3)
    assert parse_fault(" auth-echo ") == Fault("auth-echo")
    for bad, needle in [
        ("teapot", "kind must be"),
        ("429:wait=1", "key among"),
        ("delay:seconds=x", "must be a number"),
        ("200", "4xx or 5xx"),
    ]:
        with pytest.raises(ValueError, match=needle):
            parse_fault(bad)
    plan = FaultPlan(["500", Fault("drop")])
    plan.add("429", times=2)
    kinds = [getattr(plan.take(), "kind", None) for _ in range(5)]
    assert kinds == ["status", "drop", "status", "status", None]
    assert plan.injected == 4


def test_status_faults_then_normal_answers(server: LLMServer, faults: FaultPlan) -> None:
    faults.add("429:retry-after=2").add("500")
    status, headers, raw = post(server, chat_body())
    assert status == 429 and headers["retry-after"] == "2"
    assert json.loads(raw)["error"]["type"] == "rate_limit_error"
    assert "injected fault" in json.loads(raw)["error"]["message"]
    status, headers, raw = post(server, chat_body())
    assert (
        status == 500
        and "retry-after" not in headers
        and json.loads(raw)["error"]["type"] == "server_error"
    )
    assert post(server, chat_body())[0] == 200
    assert server.stats.requests == 3 and faults.injected == 2


def test_faults_leave_other_routes_alone(server: LLMServer, faults: FaultPlan) -> None:
    faults.add("500")
    assert get(server, "/health") == (200, {"status": "ok"})
    assert get(server, "/v1/models")[0] == 200
    assert faults.pending == 1  # only a completion request takes it
    status, _, _ = post(
        server, {"model": "words", "prompt": "a b", "echo": True, "logprobs": 1}, "/v1/completions"
    )
    assert status == 500 and faults.pending == 0


def test_delay_fault_runs_past_a_client_timeout(server: LLMServer, faults: FaultPlan) -> None:
    faults.add("delay:seconds=0.6")
    start = time.perf_counter()
    with pytest.raises(TimeoutError):
        post(server, chat_body(), timeout=0.2)
    assert time.perf_counter() - start < 0.5
    faults.add("delay:seconds=0.3")
    start = time.perf_counter()
    assert post(server, chat_body())[0] == 200
    assert time.perf_counter() - start >= 0.3


def test_malformed_fault_sends_a_cut_off_body(server: LLMServer, faults: FaultPlan) -> None:
    faults.add("malformed", times=2)
    status, headers, raw = post(server, chat_body())
    assert status == 200 and headers["content-type"] == "application/json"
    assert raw.startswith(b'{"id": "chatcmpl-broken"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    status, _, raw = post(
        server, {"model": "words", "prompt": "a", "echo": True, "logprobs": 1}, "/v1/completions"
    )
    assert status == 200 and raw.startswith(b'{"id": "cmpl-broken"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


def test_drop_fault_closes_without_an_answer(server: LLMServer, faults: FaultPlan) -> None:
    faults.add("drop")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        post(server, chat_body())
    assert post(server, chat_body())[0] == 200  # the server itself is fine


def test_drop_fault_breaks_a_stream_in_the_middle(server: LLMServer, faults: FaultPlan) -> None:
    faults.add("drop:after=2")
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        conn.request(
            "POST", "/v1/chat/completions", body=json.dumps(chat_body("one two three", stream=True))
        )
        resp = conn.getresponse()
        assert resp.status == 200
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
    finally:
        conn.close()
    got = events(info.value.partial)
    assert [c["choices"][0]["delta"].get("content") for c in got] == ["", "echo:", " one"]
    assert "[DONE]" not in got


def test_drop_fault_before_a_stream_ends(server: LLMServer, faults: FaultPlan) -> None:
    faults.add("drop:after=9")  # more than the answer has: dropped before the finish chunk
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        conn.request(
            "POST", "/v1/chat/completions", body=json.dumps(chat_body("one two", stream=True))
        )
        resp = conn.getresponse()
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
    finally:
        conn.close()
    got = events(info.value.partial)
    assert [c["choices"][0]["delta"].get("content") for c in got] == ["", "echo:", " one", " two"]
    assert all(c["choices"][0]["finish_reason"] is None for c in got)


def test_auth_echo_fault_repeats_the_credentials(server: LLMServer, faults: FaultPlan) -> None:
    faults.add("auth-echo")
    status, _, raw = post(server, chat_body(), headers={"Authorization": "Bearer sk-visible-123"})
    assert status == 401 and "Bearer sk-visible-123" in json.loads(raw)["error"]["message"]


# -- concurrency and life cycle --------------------------------------------------------------------
def test_requests_run_concurrently_and_are_counted(server: LLMServer) -> None:
    start = time.perf_counter()
    with ThreadPoolExecutor(6) as pool:
        statuses = list(
            pool.map(lambda i: post(server, chat_body(str(i), model="slow"))[0], range(6))
        )
    elapsed = time.perf_counter() - start
    assert statuses == [200] * 6
    assert server.stats.requests == 6 and server.stats.max_in_flight >= 4
    assert elapsed < 6 * 0.2 * 0.6, f"6 requests of 0.2 s took {elapsed:.2f} s: not concurrent"


def test_max_concurrency_bounds_the_backend() -> None:
    backend = Words(sleep=0.05)
    with LLMServer(backend, model="m", max_concurrency=2) as s, ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda i: post(s, chat_body(model="m"))[0], range(6)))
    assert statuses == [200] * 6
    assert backend.max_active == 2


def test_stop_releases_the_port_and_closes_kept_alive_connections() -> None:
    s = LLMServer(Whole(), model="m").start()
    host, port = s.address
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("GET", "/health")
    conn.getresponse().read()  # a kept-alive connection, its handler thread waiting
    start = time.perf_counter()
    s.stop()
    assert time.perf_counter() - start < 2
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=1).close()
    conn.request("GET", "/health")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, OSError)):
        conn.getresponse()
    conn.close()


def test_server_refuses_what_is_not_a_backend() -> None:
    from recai.errors import RecaiError

    with pytest.raises(RecaiError, match="not an LLM backend"):
        LLMServer({"m": object()})  # type: ignore[dict-item]
    with pytest.raises(RecaiError, match="max_concurrency"):
        LLMServer(Whole(), max_concurrency=0)


def test_stop_lets_a_request_in_flight_finish() -> None:
    s = LLMServer(Words(sleep=0.4), model="m").start()
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post, s, chat_body(model="m"))
        deadline = time.perf_counter() + 5
        while s.stats.in_flight == 0 and time.perf_counter() < deadline:
            time.sleep(0.01)
        s.stop()  # while the backend is busy with it
        status, _, raw = answer.result(timeout=10)
    assert (
        status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == "echo: hello there"
    )


# -- limits ----------------------------------------------------------------------------------------
def test_json_endpoints_refuse_other_content_types(server: LLMServer) -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"):
        status, _, raw = post(server, chat_body(), headers={"Content-Type": ctype})
        err = json.loads(raw)["error"]
        assert status == 415 and err["code"] == "unsupported_media_type", ctype
        assert "Content-Type: application/json" in err["message"]
    assert server.stats.requests == 3  # refused before any backend call
    headers = {"Content-Type": "application/json; charset=utf-8"}
    assert post(server, chat_body(), headers=headers)[0] == 200


def test_request_body_size_is_capped() -> None:
    with LLMServer(Whole(), model="m", max_body_bytes=1000) as s:
        assert post(s, chat_body("x" * 800, model="m"))[0] == 200
        status, headers, raw = post(s, chat_body("x" * 1200, model="m"))
        assert status == 413 and "larger than 1000 bytes" in json.loads(raw)["error"]["message"]
        # a chunked body (no Content-Length) is counted as it arrives
        conn = http.client.HTTPConnection(*s.address, timeout=10)
        try:
            data = json.dumps(chat_body("y" * 1200, model="m")).encode()
            conn.request(
                "POST",
                "/v1/chat/completions",
                body=iter([data[:600], data[600:]]),
                encode_chunked=True,
                headers={"Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            assert resp.status == 413
        finally:
            conn.close()


def test_malformed_requests_get_a_400_not_a_closed_socket(server: LLMServer) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    status, _, raw = post(server, deep)
    assert status == 400 and "not valid JSON" in json.loads(raw)["error"]["message"]
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 400 ")


def test_a_full_queue_answers_503_after_the_wait() -> None:
    backend = Words(sleep=0.5)
    server = LLMServer(backend, model="m", max_concurrency=1, queue_timeout=0.1)
    with server as s, ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, s, chat_body(model="m"))
        deadline = time.perf_counter() + 5
        while backend.active == 0 and time.perf_counter() < deadline:
            time.sleep(0.005)  # until the first request holds the only slot
        start = time.perf_counter()
        status, headers, raw = post(s, chat_body(model="m"))
        waited = time.perf_counter() - start
        assert first.result()[0] == 200
    assert status == 503 and headers["retry-after"] == "1"
    assert json.loads(raw)["error"]["code"] == "server_busy"
    assert 0.1 <= waited < 1.0  # the bounded wait, not the first request's whole 0.5 s


def test_health_answers_while_every_backend_slot_is_busy() -> None:
    server = LLMServer(Words(sleep=0.5), model="m", max_concurrency=1)
    with server as s, ThreadPoolExecutor(3) as pool:
        busy = [pool.submit(post, s, chat_body(model="m")) for _ in range(3)]
        time.sleep(0.1)
        start = time.perf_counter()
        assert get(s, "/health") == (200, {"status": "ok"})
        # not behind the 3 x 0.5 s of backend work (typically a few ms; loose for busy CI)
        assert time.perf_counter() - start < 0.4
        assert [f.result()[0] for f in busy] == [200] * 3


class Endless(LLMBackend):
    """Streams words forever (slowly); records when its generator is closed."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def chat(self, messages, **options):
        return Completion("never")

    def stream(self, messages, **options):
        try:
            while True:
                time.sleep(0.02)
                yield "word "
        finally:
            self.closed.set()


def test_a_stream_whose_client_left_is_closed() -> None:
    backend = Endless()
    with LLMServer(backend, model="m", max_concurrency=1) as s:
        conn = http.client.HTTPConnection(*s.address, timeout=10)
        conn.request(
            "POST", "/v1/chat/completions", body=json.dumps(chat_body(model="m", stream=True))
        )
        resp = conn.getresponse()
        assert resp.status == 200
        seen = b""
        while b"word" not in seen:
            seen += resp.read1(4096)
        conn.close()  # the client goes away mid-stream
        assert backend.closed.wait(5), "the backend's generator was not closed"
        # its slot is free again (max_concurrency=1): a new request is answered
        status, _, raw = post(s, chat_body(model="m"))
        assert status == 200 and json.loads(raw)["choices"][0]["message"]["content"] == "never"


def test_errors_mid_stream_become_an_error_event() -> None:
    class Breaks(LLMBackend):
        def chat(self, messages, **options):
            return Completion("x")

        def stream(self, messages, **options):
            yield "fine"
            raise RuntimeError("broke mid-way")

    with LLMServer(Breaks(), model="m") as s:
        status, _, raw = post(s, chat_body(model="m", stream=True))
    evs = events(raw)
    assert status == 200 and "[DONE]" not in evs
    assert evs[1]["choices"][0]["delta"] == {"content": "fine"}
    assert "RuntimeError: broke mid-way" in evs[-1]["error"]["message"]


def test_create_app_runs_under_any_asgi_server() -> None:
    from starlette.testclient import TestClient

    from recai_serve.app import create_app

    app = create_app(Whole(), model="m", api_key="k")
    with TestClient(app) as client:
        r = client.post("/v1/chat/completions", json=chat_body(model="m"), headers={"api-key": "k"})
        assert (
            r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "all at once"
        )
        assert client.get("/v1/models").status_code == 401
        assert app.state.stats.requests == 1


def test_with_a_key_health_wants_it_too() -> None:
    # issue 20's bar: with a key configured, every endpoint refuses a request without it
    with LLMServer(Whole(), model="m", api_key="k-123") as s:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            conn = http.client.HTTPConnection(*s.address, timeout=10)
            conn.request("GET", "/health", headers=headers)
            resp = conn.getresponse()
            assert resp.status == 401 and b"invalid_api_key" in resp.read()
            conn.close()
        conn = http.client.HTTPConnection(*s.address, timeout=10)
        conn.request("GET", "/health", headers={"Authorization": "Bearer k-123"})
        assert conn.getresponse().status == 200
        conn.close()
