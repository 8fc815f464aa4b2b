"""recai serve for agents: the chat endpoint through the official openai client (streamed and
not), the recai object, sessions in memory and in SQLite across a restart, the checks of a
turn, cancellation, timeouts, and LLM backends served beside the agents."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from agent_doubles import DATASET, Plain, Shop

from recai.data.context import CONTEXT_NAME
from recai.roles import LLMBackend
from recai.types import Completion
from recai_serve.served import Served
from recai_serve.server import AgentServer
from recai_serve.sessions import MemorySessions, SQLiteSessions


class Echo(LLMBackend):
    def chat(self, messages, **options):
        return Completion("llm: " + messages[-1].content)


def client(server: AgentServer, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, **kw)


def post(server: AgentServer, path: str, body: Any, headers: dict[str, str] | None = None):
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(
            "POST",
            path,
            json.dumps(body),
            {"Content-Type": "application/json", **(headers or {})},
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def served(agent: Any = None, **kw: Any) -> Served:
    return Served(agents={"shop": agent or Shop()}, dataset=DATASET, **kw)


def user_with_history() -> tuple[str, list[int]]:
    index = 4
    return str(DATASET.user_ids[index]), DATASET.interactions.history(index).tolist()


def test_openai_client_chats_with_an_agent_and_gets_items_with_attributes():
    shop = Shop()
    user, history = user_with_history()
    with AgentServer(served(shop)) as server:
        resp = client(server).chat.completions.create(
            model="shop", messages=[{"role": "user", "content": "something calm"}], user=user
        )
    assert resp.choices[0].message.content.startswith(f"For {user}: you said something calm")
    assert resp.choices[0].finish_reason == "stop"
    recai = resp.model_extra["recai"]
    assert recai["session"] is None and recai["user"] == user
    assert [it["id"] for it in recai["items"]] == [
        str(DATASET.catalog.ids[i]) for i in range(40) if i not in set(history)
    ][:2]
    first = recai["items"][0]
    index = DATASET.catalog.index(first["id"])
    assert first["title"] == DATASET.catalog.title(index)
    assert first["evidence"] == {"rule": "unseen"}
    assert first["attributes"]["category"] == DATASET.catalog.fields["category"][index]
    assert recai["trace"][0]["tool"] == "unseen" and recai["plan"] == {"steps": ["unseen"]}
    # the agent got the server's context message: the user's id and their whole history
    context = shop.conversations[0][0]
    assert context.name == CONTEXT_NAME
    body = json.loads(context.content)
    assert body["user"] == user
    assert [DATASET.catalog.index(h["id"]) for h in body["history"]] == history


def test_streamed_turn_arrives_in_pieces_and_its_last_chunk_carries_the_recai_object():
    with AgentServer(served(Shop(pause=0.01))) as server:
        stream = client(server).chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "a thriller"}],
            user="u7",
            stream=True,
        )
        chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 5  # word by word, as the agent wrote them
    text = "".join(texts)
    assert text.startswith("For u7: you said a thriller (1 turns). Try ")
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    recai = last.model_extra["recai"]
    assert len(recai["items"]) == 2 and recai["items"][0]["title"] in text
    assert all("recai" not in (c.model_extra or {}) for c in chunks[:-1])


def test_a_stream_asked_for_usage_ends_with_a_usage_chunk():
    with AgentServer(served()) as server:
        chunks = list(
            client(server).chat.completions.create(
                model="shop",
                messages=[{"role": "user", "content": "x"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason == "stop" and "recai" in chunks[-2].model_extra


def test_an_agent_with_reply_only_is_served_with_no_items():
    with AgentServer({"plain": Plain()}) as server:
        resp = client(server).chat.completions.create(
            model="plain", messages=[{"role": "user", "content": "hi"}]
        )
        stream = client(server).chat.completions.create(
            model="plain", messages=[{"role": "user", "content": "yo"}], stream=True
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert resp.choices[0].message.content == "plain: hi"
    assert resp.model_extra["recai"]["items"] == []
    assert streamed == "plain: yo"


def test_a_session_keeps_the_conversation_so_the_client_sends_only_its_new_message():
    shop = Shop()
    with AgentServer(served(shop)) as server:
        c = client(server)
        first = c.chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "one"}],
            user="u1",
            extra_body={"session": "new"},
        )
        sid = first.model_extra["recai"]["session"]
        assert isinstance(sid, str) and len(sid) >= 20
        second = c.chat.completions.create(
            model="shop", messages=[{"role": "user", "content": "two"}], extra_body={"session": sid}
        )
        third = c.chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "three"}],
            extra_body={"session": sid},
            stream=True,
        )
        third_text = "".join(ch.choices[0].delta.content or "" for ch in third if ch.choices)
    assert second.choices[0].message.content.startswith("For u1: you said two (2 turns)")
    assert third_text.startswith("For u1: you said three (3 turns)")
    convo = shop.conversations[2]
    assert [m.role for m in convo] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert convo[2].content == first.choices[0].message.content
    assert second.model_extra["recai"]["session"] == sid


def test_an_unknown_session_is_a_404_in_openai_shape():
    with AgentServer(served()) as server, pytest.raises(openai.NotFoundError) as err:
        client(server).chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "x"}],
            extra_body={"session": "no-such-session"},
        )
    body = err.value.body
    assert body["param"] == "session" and body["code"] == "session_not_found"


def test_sessions_in_sqlite_survive_a_restart(tmp_path):
    path = tmp_path / "sessions.db"
    first_agent = Shop()
    with AgentServer(served(first_agent), sessions=SQLiteSessions(path)) as server:
        r = client(server).chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "before"}],
            user="u2",
            extra_body={"session": "new"},
        )
        sid = r.model_extra["recai"]["session"]
    second_agent = Shop()
    with AgentServer(served(second_agent), sessions=SQLiteSessions(path)) as server:
        r2 = client(server).chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "after"}],
            extra_body={"session": sid},
        )
    assert r2.choices[0].message.content.startswith("For u2: you said after (2 turns)")
    convo = second_agent.conversations[0]
    assert [m.content for m in convo if m.role == "user"] == ["before", "after"]


def test_a_failed_turn_leaves_the_session_as_it_was(tmp_path):
    class Fails(Shop):
        def respond(self, conversation, *, on_text=None):
            if conversation[-1].content == "boom":
                raise RuntimeError("tool broke")
            return super().respond(conversation, on_text=on_text)

    agent = Fails()
    with AgentServer(served(agent), sessions=SQLiteSessions(tmp_path / "s.db")) as server:
        c = client(server)
        sid = c.chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "a"}],
            extra_body={"session": "new"},
        ).model_extra["recai"]["session"]
        with pytest.raises(openai.InternalServerError) as err:
            c.chat.completions.create(
                model="shop",
                messages=[{"role": "user", "content": "boom"}],
                extra_body={"session": sid},
            )
        assert "tool broke" in err.value.body["message"]
        again = c.chat.completions.create(
            model="shop", messages=[{"role": "user", "content": "b"}], extra_body={"session": sid}
        )
    assert "(2 turns)" in again.choices[0].message.content


def test_two_turns_at_once_on_one_session_the_second_gets_409():
    with AgentServer(served(Shop(pause=0.05)), max_concurrency=4) as server:
        c = client(server)
        sid = c.chat.completions.create(
            model="shop", messages=[{"role": "user", "content": "a"}], extra_body={"session": "new"}
        ).model_extra["recai"]["session"]

        def turn(text: str) -> int:
            return post(
                server,
                "/v1/chat/completions",
                {"model": "shop", "messages": [{"role": "user", "content": text}], "session": sid},
            )[0]

        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(turn, "b")
            time.sleep(0.2)
            quick = pool.submit(turn, "c")
            statuses = sorted([slow.result(), quick.result()])
    assert statuses == [200, 409]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {
                "messages": [
                    {"role": "system", "content": "{}", "name": CONTEXT_NAME},
                    {"role": "user", "content": "x"},
                ]
            },
            "messages[0].name",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
            "messages",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            "tools",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "user": "x" * 300}, "user"),
        ({"messages": [{"role": "user", "content": "x"}], "session": 7}, "session"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object"},
            },
            "response_format",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "top_p": 0.3}, "top_p"),
    ],
)
def test_bad_turns_are_400s_naming_the_field(body, param):
    with AgentServer(served()) as server:
        status, answer = post(server, "/v1/chat/completions", {"model": "shop", **body})
    assert status == 400, answer
    assert answer["error"]["param"] == param
    assert answer["error"]["type"] == "invalid_request_error"


def test_an_unknown_model_is_a_404_listing_the_agents_and_backends_stay_servable():
    with AgentServer(served(backends={"brain": Echo()})) as server:
        c = client(server)
        with pytest.raises(openai.NotFoundError) as err:
            c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
        llm = c.chat.completions.create(model="brain", messages=[{"role": "user", "content": "hi"}])
        models = sorted(m.id for m in c.models.list())
    assert "shop" in err.value.body["message"] and err.value.body["code"] == "model_not_found"
    assert llm.choices[0].message.content == "llm: hi"
    assert models == ["brain", "shop"]


def test_a_client_that_leaves_a_stream_stops_the_turn_at_its_next_piece():
    shop = Shop(pause=0.2)  # 20 words: 4 s if nobody stops it
    with AgentServer(served(shop)) as server:
        host, port = server.address
        sock = socket.create_connection((host, port))
        body = json.dumps(
            {"model": "shop", "messages": [{"role": "user", "content": "x"}], "stream": True}
        ).encode()
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        got = b""
        while b"data: " not in got:  # the head, then the first pieces
            more = sock.recv(4096)
            assert more, "the server closed the stream"
            got += more
        sock.close()
        assert shop.stopped.wait(3), "the turn went on after its client left"
        assert shop.finished == 0
        deadline = time.monotonic() + 3
        while server.backend_calls and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.backend_calls == 0


def test_a_turn_past_the_request_timeout_is_stopped_and_answered_504():
    shop = Shop(pause=0.1)
    with AgentServer(served(shop), request_timeout=0.3) as server:
        status, answer = post(
            server,
            "/v1/chat/completions",
            {"model": "shop", "messages": [{"role": "user", "content": "x"}]},
        )
    assert status == 504 and answer["error"]["code"] == "timeout"
    assert shop.stopped.is_set() and shop.finished == 0


def test_full_agent_slots_answer_503_after_the_queue_timeout():
    with AgentServer(served(Shop(pause=0.1)), max_concurrency=1, queue_timeout=0.2) as server:
        body = {"model": "shop", "messages": [{"role": "user", "content": "x"}]}
        with ThreadPoolExecutor(2) as pool:
            a = pool.submit(post, server, "/v1/chat/completions", body)
            time.sleep(0.1)
            b = pool.submit(post, server, "/v1/chat/completions", body)
            results = sorted([a.result()[0], b.result()[0]])
    assert results == [200, 503]


def test_memory_sessions_expire():
    store = MemorySessions(ttl=0.2)
    with AgentServer(served(), sessions=store) as server:
        c = client(server)
        sid = c.chat.completions.create(
            model="shop", messages=[{"role": "user", "content": "a"}], extra_body={"session": "new"}
        ).model_extra["recai"]["session"]
        time.sleep(0.4)
        with pytest.raises(openai.NotFoundError):
            c.chat.completions.create(
                model="shop",
                messages=[{"role": "user", "content": "b"}],
                extra_body={"session": sid},
            )


def test_shutdown_lets_a_turn_in_flight_finish():
    shop = Shop(pause=0.03)
    server = AgentServer(served(shop), shutdown_timeout=5).start()
    result: dict[str, Any] = {}

    def ask() -> None:
        result["r"] = post(
            server,
            "/v1/chat/completions",
            {"model": "shop", "messages": [{"role": "user", "content": "x"}]},
        )

    t = threading.Thread(target=ask)
    t.start()
    time.sleep(0.15)
    server.stop()
    t.join(10)
    status, answer = result["r"]
    assert status == 200 and answer["choices"][0]["message"]["content"].startswith("For None")


def test_beyond_max_queue_waiting_turns_a_turn_gets_429_at_once():
    with AgentServer(served(Shop(pause=0.05)), max_concurrency=1, max_queue=1) as server:
        body = {"model": "shop", "messages": [{"role": "user", "content": "x"}]}
        with ThreadPoolExecutor(3) as pool:
            running = pool.submit(post, server, "/v1/chat/completions", body)
            time.sleep(0.15)
            waiting = pool.submit(post, server, "/v1/chat/completions", body)
            time.sleep(0.15)
            start = time.monotonic()
            status, answer = post(server, "/v1/chat/completions", body)
            refused_in = time.monotonic() - start
            results = [running.result()[0], waiting.result()[0]]
    assert results == [200, 200]
    assert status == 429 and answer["error"]["code"] == "rate_limit_exceeded"
    assert refused_in < 0.5  # at once, not after the others


def test_shutdown_cancels_a_long_streamed_turn_with_an_error_event_and_no_done():
    shop = Shop(pause=0.3)  # 6 s for its 20 words
    server = AgentServer(served(shop), shutdown_timeout=0.5).start()
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    body = {"model": "shop", "messages": [{"role": "user", "content": "x"}], "stream": True}
    conn.request(
        "POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
    )
    resp = conn.getresponse()
    assert resp.status == 200
    stopper = threading.Timer(0.5, server.stop)
    stopper.start()
    raw = resp.read().decode()
    stopper.join()
    conn.close()
    events = [line[6:] for line in raw.split("\n") if line.startswith("data: ")]
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert last["error"]["message"].startswith("the server is shutting down")
    assert shop.stopped.is_set() and shop.finished == 0


def test_a_session_started_without_a_user_takes_the_first_one_named(tmp_path):
    shop = Shop()
    with AgentServer(served(shop), sessions=SQLiteSessions(tmp_path / "s.db")) as server:
        c = client(server)
        sid = c.chat.completions.create(
            model="shop", messages=[{"role": "user", "content": "a"}], extra_body={"session": "new"}
        ).model_extra["recai"]["session"]
        c.chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "b"}],
            user="u9",
            extra_body={"session": sid},
        )
        third = c.chat.completions.create(
            model="shop", messages=[{"role": "user", "content": "c"}], extra_body={"session": sid}
        )
        status, other = post(
            server,
            "/v1/chat/completions",
            {
                "model": "shop",
                "user": "u10",
                "session": sid,
                "messages": [{"role": "user", "content": "d"}],
            },
        )
    assert third.model_extra["recai"]["user"] == "u9"
    assert third.choices[0].message.content.startswith("For u9: ")
    assert (status, other["error"]["param"]) == (400, "user")


def test_a_kept_session_can_be_read_and_deleted(tmp_path):
    for store in (MemorySessions(), SQLiteSessions(tmp_path / "s.db")):
        with AgentServer(served(), sessions=store) as server:
            first = client(server).chat.completions.create(
                model="shop",
                messages=[{"role": "user", "content": "hello"}],
                user="u3",
                extra_body={"session": "new"},
            )
            sid = first.model_extra["recai"]["session"]
            host, port = server.address
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", f"/v1/sessions/{sid}")
            got = json.loads(conn.getresponse().read())
            conn.request("DELETE", f"/v1/sessions/{sid}")
            deleted = conn.getresponse()
            deleted_body = json.loads(deleted.read())
            conn.request("GET", f"/v1/sessions/{sid}")
            gone = conn.getresponse()
            gone_body = json.loads(gone.read())
            conn.close()
        assert got["user"] == "u3"
        assert [(m["role"], m["content"]) for m in got["messages"]] == [
            ("user", "hello"),
            ("assistant", first.choices[0].message.content),
        ]
        assert deleted.status == 200 and deleted_body == {"id": sid, "deleted": True}
        assert gone.status == 404 and gone_body["error"]["param"] == "session_id"


def test_many_concurrent_sessions_are_neither_dropped_nor_crossed():
    shop = Shop(pause=0.001)
    with AgentServer(served(shop), max_concurrency=8) as server:

        def session(n: int) -> list[str]:
            c = client(server)
            sid = None
            problems = []
            for t in range(1, 4):
                extra = {"session": sid or "new"}
                text = f"s{n}-t{t}"
                if t == 2:
                    stream = c.chat.completions.create(
                        model="shop",
                        messages=[{"role": "user", "content": text}],
                        user=None if sid else f"u{n}",
                        extra_body=extra,
                        stream=True,
                    )
                    reply = "".join(
                        ch.choices[0].delta.content or "" for ch in stream if ch.choices
                    )
                else:
                    kw = {} if sid else {"user": f"u{n}"}
                    r = c.chat.completions.create(
                        model="shop",
                        messages=[{"role": "user", "content": text}],
                        extra_body=extra,
                        **kw,
                    )
                    reply = r.choices[0].message.content
                    sid = sid or r.model_extra["recai"]["session"]
                if not reply.startswith(f"For u{n}: you said {text} ({t} turns)"):
                    problems.append(reply)
            return problems

        with ThreadPoolExecutor(40) as pool:
            problems = [p for ps in pool.map(session, range(40)) for p in ps]
    assert problems == []
    assert shop.finished == 120


def test_a_client_that_leaves_a_plain_request_stops_the_turn_too():
    shop = Shop(pause=0.2)
    with AgentServer(served(shop)) as server:
        host, port = server.address
        sock = socket.create_connection((host, port))
        body = json.dumps({"model": "shop", "messages": [{"role": "user", "content": "x"}]})
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        time.sleep(0.5)  # the turn is writing
        sock.close()
        assert shop.stopped.wait(3), "the turn went on after its client left"
    assert shop.finished == 0


def get(server: AgentServer, path: str, key: str | None = None) -> tuple[int, Any]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def test_a_kept_session_gives_each_agent_turn_with_its_items_plan_and_trace(tmp_path):
    """What a page needs to show a kept conversation again: GET /v1/sessions/{id} has, per
    agent message, the turn's recai object as the chat answer carried it (and the agent that
    answered), for a plain and a streamed turn, in memory and in SQLite across a restart;
    key-guarded; an unknown id is a 404 in OpenAI's shape."""
    key = "k-sessions"
    for kind in ("memory", "sqlite"):

        def store(kind: str = kind) -> Any:
            return MemorySessions() if kind == "memory" else SQLiteSessions(tmp_path / "kept.db")

        user, _ = user_with_history()
        with AgentServer(served(Shop()), sessions=store(), api_key=key) as server:
            c = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
            first = c.chat.completions.create(
                model="shop",
                messages=[{"role": "user", "content": "something calm"}],
                user=user,
                extra_body={"session": "new"},
            )
            sid = first.model_extra["recai"]["session"]
            chunks = list(
                c.chat.completions.create(
                    model="shop",
                    messages=[{"role": "user", "content": "and louder"}],
                    extra_body={"session": sid},
                    stream=True,
                )
            )
            streamed = chunks[-1].model_extra["recai"]
            refused, _ = get(server, f"/v1/sessions/{sid}")
            status, kept = get(server, f"/v1/sessions/{sid}", key)
            missing, error = get(server, "/v1/sessions/no-such-session", key)
        if kind == "sqlite":  # the same answer from a restarted server
            with AgentServer(served(Shop()), sessions=store(), api_key=key) as server:
                status, kept = get(server, f"/v1/sessions/{sid}", key)
        assert refused == 401 and status == 200, kind
        assert [m["role"] for m in kept["messages"]] == ["user", "assistant"] * 2
        assert [m["content"] for m in kept["messages"]] == [
            "something calm",
            first.choices[0].message.content,
            "and louder",
            "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices),
        ]
        for message, answer in (
            (kept["messages"][1], first.model_extra["recai"]),
            (kept["messages"][3], streamed),
        ):
            expected = {k: v for k, v in answer.items() if k != "session"}
            assert message["recai"] == {"model": "shop", **expected}, kind
        turn = kept["messages"][1]["recai"]
        assert turn["user"] == user and len(turn["items"]) == 2
        assert turn["items"][0]["attributes"]["category"]  # the catalog's attributes, kept
        assert turn["trace"][0]["tool"] == "unseen" and turn["plan"] == {"steps": ["unseen"]}
        assert "recai" not in kept["messages"][0] and "recai" not in kept["messages"][2]
        assert missing == 404
        assert error["error"]["param"] == "session_id"
        assert error["error"]["code"] == "session_not_found"
        assert set(error["error"]) == {"message", "type", "param", "code"}


def test_the_openapi_document_describes_a_sessions_turns():
    with AgentServer(served()) as server:
        status, doc = get(server, "/openapi.json")
    assert status == 200
    op = doc["paths"]["/v1/sessions/{session_id}"]["get"]
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok.endswith("/SessionOut") and "404" in op["responses"]
    schemas = doc["components"]["schemas"]
    message = schemas["SessionOut"]["properties"]["messages"]["items"]["$ref"]
    assert message.endswith("/SessionMessage")
    recai = json.dumps(schemas["SessionMessage"]["properties"]["recai"])
    assert "TurnOut" in recai
    assert {"model", "items", "trace", "plan"} <= set(schemas["TurnOut"]["properties"])


def test_a_turns_schema_is_the_chat_answers_recai_schema_with_model_for_session():
    """TurnOut (a kept agent message) and RecaiOut (a chat answer's ``recai``) share their
    fields; each lists its own one first, as clients generated from the document expect."""
    with AgentServer(served()) as server:
        status, doc = get(server, "/openapi.json")
    assert status == 200
    schemas = doc["components"]["schemas"]
    chat = schemas["ChatOut"]["properties"]["recai"]["$ref"]
    assert chat.endswith("/RecaiOut")
    turn, recai = schemas["TurnOut"], schemas["RecaiOut"]
    shared = ["user", "items", "trace", "plan", "llm_calls", "seconds", "profile"]
    assert list(turn["properties"]) == turn["required"] == ["model", *shared]
    assert list(recai["properties"]) == recai["required"] == ["session", *shared]
    assert [turn["properties"][k] for k in shared] == [recai["properties"][k] for k in shared]
    assert turn["properties"]["items"]["items"]["$ref"].endswith("/RecaiItem")
    assert turn["properties"]["model"] == {
        "description": "the agent that answered",
        "title": "Model",
        "type": "string",
    }
    assert recai["properties"]["session"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "title": "Session",
    }
    assert turn["description"].startswith("What an agent's turn showed besides its text")
    assert recai["description"] == "What recai adds to a chat answer (OpenAI clients ignore it)."
    assert not [name for name in schemas if name.startswith("_")]


def test_a_long_sessions_oldest_turns_lose_their_items_first_and_keep_their_text():
    from recai_serve.sessions import TURN_KEY, Session

    messages: list[dict[str, Any]] = []
    for n in range(6):
        messages.append({"role": "user", "content": f"ask {n}"})
        messages.append({"role": "assistant", "content": f"answer {n}", TURN_KEY: {"x": "y" * 90}})
    session = Session("s", None, messages)
    session.trim(turn_chars=250)  # room for two turns' data (about 100 characters each)
    assert [m["content"] for m in session.messages] == [m["content"] for m in messages]
    kept = [TURN_KEY in m for m in session.messages if m["role"] == "assistant"]
    assert kept == [False, False, False, False, True, True]
    assert TURN_KEY in messages[1]  # the caller's dicts are left as they were


def test_a_kept_sessions_profile_includes_feedback_given_after_its_last_turn():
    with AgentServer(served(Shop())) as server:
        c = client(server)
        first = c.chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "hello"}],
            user="u8",
            extra_body={"session": "new"},
        )
        sid = first.model_extra["recai"]["session"]
        item = first.model_extra["recai"]["items"][1]
        status, _ = post(
            server,
            "/v1/feedback",
            {"model": "shop", "item": item["id"], "value": "like", "session": sid},
        )
        _, kept = get(server, f"/v1/sessions/{sid}")
        anonymous = c.chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"session": "new"},
        ).model_extra["recai"]["session"]
        _, nobody = get(server, f"/v1/sessions/{anonymous}")
    assert status == 200
    assert kept["messages"][1]["recai"]["profile"] == {}  # the turn's, before the like
    assert kept["profile"]["user"] == "u8"
    assert kept["profile"]["liked"] == [{"id": item["id"], "title": item["title"]}]
    assert nobody["profile"] == {}


def test_a_kept_session_of_an_agent_without_profiles_has_an_empty_profile():
    with AgentServer(Served(agents={"plain": Plain()}, dataset=DATASET)) as server:
        sid = (
            client(server)
            .chat.completions.create(
                model="plain",
                messages=[{"role": "user", "content": "hi"}],
                user="u1",
                extra_body={"session": "new"},
            )
            .model_extra["recai"]["session"]
        )
        status, kept = get(server, f"/v1/sessions/{sid}")
    assert status == 200 and kept["profile"] == {} and kept["user"] == "u1"
    assert kept["messages"][1]["recai"]["model"] == "plain"
