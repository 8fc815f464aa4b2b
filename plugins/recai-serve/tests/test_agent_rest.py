"""recai serve's REST API beside the agents: recommend, similar items, search, explain, items,
feedback, metrics, the OpenAPI document and docs page, the API key on every route, CORS."""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any

import numpy as np
import pytest
from agent_doubles import DATASET, Plain, Shop
from starlette.routing import Route

from recai.roles import Explainer, LLMBackend, Ranker, Retriever
from recai.types import Completion, Explanation, ItemList
from recai_serve.served import Served
from recai_serve.server import AgentServer

CATALOG = DATASET.catalog


class CoCount(Ranker, Retriever):
    """Scores items by how often they follow the history's items in users' histories (a real,
    fitted model in a few lines); a query's seed items are its history. No text."""

    def __init__(self) -> None:
        n = CATALOG.n_items
        self.co = np.zeros((n, n))
        for h in DATASET.interactions.histories():
            for a in set(h.tolist()):
                for b in set(h.tolist()):
                    if a != b:
                        self.co[a, b] += 1

    def score(self, histories, items=None, *, users=None):
        out = np.stack(
            [
                self.co[np.asarray(h, dtype=int)].sum(0) if len(h) else np.zeros(CATALOG.n_items)
                for h in histories
            ]
        )
        if items is None:
            return out
        return np.take_along_axis(
            out,
            np.broadcast_to(items, (len(histories), len(items))) if np.ndim(items) == 1 else items,
            1,
        )

    def retrieve(self, query, k=10, *, candidates=None):
        if query.items is None:
            raise NotImplementedError("CoCount finds items for items, not for text")
        scores = self.score([query.items.ids])[0]
        return ItemList.from_scores(scores, k)


class TitleSearch(Retriever):
    """Items whose title shares a word with the query, most shared words first."""

    def retrieve(self, query, k=10, *, candidates=None):
        words = set((query.text or "").lower().split())
        scores = np.array([len(words & set(str(t).lower().split())) for t in CATALOG.titles], float)
        keep = np.flatnonzero(scores > 0)
        return ItemList(keep, scores[keep]).top(k)


class Because(Explainer):
    def explain(self, history, item):
        return Explanation(
            item, f"{len(history)} items lead to {CATALOG.title(item)}", {"n": len(history)}
        )


def served(**kw: Any) -> Served:
    table: dict[str, Any] = {
        "agents": {"shop": Shop(), "plain": Plain()},
        "rankers": {"cocount": CoCount()},
        "retrievers": {"cocount": CoCount(), "titles": TitleSearch()},
        "dataset": DATASET,
    }
    table.update(kw)
    return Served(**table)


def call(
    server: AgentServer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
):
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        head = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, None if body is None else json.dumps(body), head)
        resp = conn.getresponse()
        raw = resp.read()
        ctype = resp.getheader("content-type") or ""
        data = json.loads(raw) if ctype.startswith("application/json") and raw else raw
        return resp.status, data, dict(resp.getheaders())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server():
    with AgentServer(served()) as s:
        yield s


def ids(answer: dict[str, Any]) -> list[str]:
    return [it["id"] for it in answer["items"]]


def test_recommend_for_a_known_user_ranks_unseen_items_with_their_attributes(server):
    user = str(DATASET.user_ids[2])
    history = DATASET.interactions.history(2)
    status, answer, _ = call(server, "POST", "/v1/recommend", {"user": user, "k": 5})
    assert status == 200, answer
    expected = CoCount().rank(history, k=5)
    assert ids(answer) == [str(CATALOG.ids[i]) for i in expected.ids]
    assert answer["model"] == "cocount"
    scores = [it["score"] for it in answer["items"]]
    assert scores == sorted(scores, reverse=True)
    first = answer["items"][0]
    assert first["title"] == CATALOG.title(int(expected.ids[0]))
    assert set(first["attributes"]) == set(CATALOG.fields)
    assert not set(ids(answer)) & {str(CATALOG.ids[i]) for i in history}


def test_recommend_for_a_history_of_item_ids(server):
    hist = [str(CATALOG.ids[3]), str(CATALOG.ids[9])]
    status, answer, _ = call(server, "POST", "/v1/recommend", {"history": hist, "k": 3})
    assert status == 200
    assert ids(answer) == [str(CATALOG.ids[i]) for i in CoCount().rank([3, 9], k=3).ids]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"user": "nobody"}, 404, "user"),
        ({"history": [str(CATALOG.ids[0]), "not-an-item"]}, 404, "history[1]"),
        ({}, 400, "user"),
        ({"user": str(DATASET.user_ids[0]), "k": 0}, 400, "k"),
        ({"user": str(DATASET.user_ids[0]), "kk": 3}, 400, "kk"),
        ({"user": str(DATASET.user_ids[0]), "model": "sasrec"}, 404, "model"),
    ],
)
def test_recommend_refusals_name_the_field(server, body, status, param):
    got, answer, _ = call(server, "POST", "/v1/recommend", body)
    assert got == status, answer
    assert answer["error"]["param"] == param
    assert set(answer["error"]) == {"message", "type", "param", "code"}


def test_similar_items_leave_out_the_item_itself(server):
    item = str(CATALOG.ids[5])
    status, answer, _ = call(server, "GET", f"/v1/items/{item}/similar?k=4&model=cocount")
    assert status == 200, answer
    assert len(answer["items"]) == 4 and item not in ids(answer)
    top = ItemList.from_scores(CoCount().co[5], 4, exclude=[5]).ids  # most co-occurring first
    assert ids(answer) == [str(CATALOG.ids[i]) for i in top]


def test_similar_needs_a_known_item_and_a_named_retriever_when_there_are_several(server):
    status, answer, _ = call(server, "GET", "/v1/items/zzz/similar?model=cocount")
    assert (status, answer["error"]["param"]) == (404, "item_id")
    status, answer, _ = call(server, "GET", f"/v1/items/{CATALOG.ids[1]}/similar")
    assert (status, answer["error"]["param"]) == (400, "model")
    status, answer, _ = call(server, "GET", f"/v1/items/{CATALOG.ids[1]}/similar?model=cocount&k=x")
    assert (status, answer["error"]["param"]) == (400, "k")


def test_search_finds_items_by_text_and_a_retriever_without_text_is_a_400(server):
    word = str(CATALOG.titles[7]).split()[0]
    status, answer, _ = call(
        server, "POST", "/v1/search", {"query": word.lower(), "model": "titles"}
    )
    assert status == 200, answer
    assert answer["items"] and all(word in it["title"] for it in answer["items"])
    status, answer, _ = call(server, "POST", "/v1/search", {"query": "x", "model": "cocount"})
    assert status == 400 and "cocount" in answer["error"]["message"]


def test_explain_is_501_without_an_explainer_and_answers_with_one(server):
    status, answer, _ = call(
        server,
        "POST",
        "/v1/explain",
        {"item": str(CATALOG.ids[1]), "user": str(DATASET.user_ids[0])},
    )
    assert status == 501 and "explainer" in answer["error"]["message"]
    with AgentServer(served(explainers={"why": Because()})) as other:
        status, answer, _ = call(
            other,
            "POST",
            "/v1/explain",
            {"item": str(CATALOG.ids[1]), "history": [str(CATALOG.ids[2])]},
        )
    assert status == 200, answer
    assert answer["text"] == f"1 items lead to {CATALOG.title(1)}" and answer["evidence"] == {
        "n": 1
    }


def test_an_item_with_its_attributes(server):
    status, answer, _ = call(server, "GET", f"/v1/items/{CATALOG.ids[6]}")
    assert status == 200
    assert answer["title"] == CATALOG.title(6)
    assert answer["attributes"]["category"] == CATALOG.fields["category"][6]


def test_feedback_goes_into_the_agents_profile_of_the_user(server):
    item = str(CATALOG.ids[8])
    status, answer, _ = call(
        server,
        "POST",
        "/v1/feedback",
        {"model": "shop", "item": item, "value": "like", "user": "u5"},
    )
    assert status == 200, answer
    assert answer["profile"]["liked"] == [{"id": item, "title": CATALOG.title(8)}]
    # the session's user, when no user is given
    _, chat, _ = call(
        server,
        "POST",
        "/v1/chat/completions",
        {
            "model": "shop",
            "user": "u6",
            "session": "new",
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    sid = chat["recai"]["session"]
    status, answer, _ = call(
        server,
        "POST",
        "/v1/feedback",
        {"model": "shop", "item": item, "value": "dislike", "session": sid},
    )
    assert status == 200 and answer["profile"]["user"] == "u6" and answer["profile"]["disliked"]
    # and the next turn of that user shows it
    _, chat, _ = call(
        server,
        "POST",
        "/v1/chat/completions",
        {"model": "shop", "session": sid, "messages": [{"role": "user", "content": "more"}]},
    )
    assert chat["recai"]["profile"]["disliked"][0]["id"] == item


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "shop", "item": "nope", "value": "like", "user": "u"}, 404, "item"),
        ({"model": "shop", "item": str(CATALOG.ids[0]), "value": "meh", "user": "u"}, 400, "value"),
        ({"model": "shop", "item": str(CATALOG.ids[0]), "value": "like"}, 400, "user"),
        (
            {"model": "plain", "item": str(CATALOG.ids[0]), "value": "like", "user": "u"},
            400,
            "model",
        ),
        (
            {"model": "shop", "item": str(CATALOG.ids[0]), "value": "like", "session": "gone"},
            404,
            "session",
        ),
    ],
)
def test_feedback_refusals_name_the_field(server, body, status, param):
    got, answer, _ = call(server, "POST", "/v1/feedback", body)
    assert (got, answer["error"]["param"]) == (status, param), answer


def test_metrics_count_requests_per_route_with_latency_percentiles():
    with AgentServer(served()) as s:
        for _ in range(5):
            call(s, "POST", "/v1/recommend", {"user": str(DATASET.user_ids[1])})
        call(s, "GET", f"/v1/items/{CATALOG.ids[2]}/similar?model=cocount")
        call(s, "GET", f"/v1/items/{CATALOG.ids[3]}/similar?model=cocount")
        call(s, "POST", "/v1/recommend", {"user": "nobody"})
        status, m, _ = call(s, "GET", "/metrics")
        _, text, _ = call(s, "GET", "/metrics?format=prometheus")
    assert status == 200
    rec = m["routes"]["POST /v1/recommend"]
    assert rec["count"] == 6 and rec["errors"] == 1 and rec["status"] == {"200": 5, "404": 1}
    assert 0 < rec["p50_ms"] <= rec["p95_ms"]
    assert m["routes"]["GET /v1/items/{item_id}/similar"]["count"] == 2  # one route, two items
    assert b'recai_requests_total{route="POST /v1/recommend",status="200"} 5' in text
    assert m["agents"] == {}  # no turn yet


def test_metrics_count_each_agents_turns_llm_calls_and_items():
    with AgentServer(served()) as s:
        for text in ("a", "b", "c"):
            call(
                s,
                "POST",
                "/v1/chat/completions",
                {"model": "shop", "messages": [{"role": "user", "content": text}]},
            )
        call(
            s,
            "POST",
            "/v1/chat/completions",
            {"model": "plain", "messages": [{"role": "user", "content": "x"}]},
        )
        _, m, _ = call(s, "GET", "/metrics")
        _, text, _ = call(s, "GET", "/metrics?format=prometheus")
    shop = m["agents"]["shop"]
    assert (shop["turns"], shop["llm_calls"], shop["items_per_turn"]) == (3, 0, 2.0)
    assert 0 <= shop["p50_s"] <= shop["p95_s"] < 5
    assert m["agents"]["plain"]["turns"] == 1 and m["agents"]["plain"]["items_per_turn"] == 0
    assert b'recai_agent_turns_total{agent="shop"} 3' in text


def test_openapi_document_and_docs_page_describe_every_route(server):
    status, doc, _ = call(server, "GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    for path in (
        "/v1/chat/completions",
        "/v1/feedback",
        "/v1/recommend",
        "/v1/search",
        "/v1/explain",
        "/v1/items/{item_id}/similar",
        "/health",
        "/metrics",
    ):
        assert path in doc["paths"], path
    body = doc["paths"]["/v1/recommend"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    schema = doc["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert schema["properties"]["k"]["maximum"] == 1000 and schema["additionalProperties"] is False
    status, page, headers = call(server, "GET", "/docs")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"POST /v1/recommend" in page and b"<script" not in page  # nothing fetched from the web
    assert b"href='openapi.json'" in page  # relative: right under a reverse proxy's prefix too


def concrete(path: str) -> str:
    return (
        path.replace("{item_id}", str(CATALOG.ids[0]))
        .replace("{deployment}", "shop")
        .replace("{path}", "x")
        .replace("{session_id}", "s")
    )


class Echo(LLMBackend):
    """An LLM backend served beside the agents (so that /v1/completions is in the table)."""

    def chat(self, messages: Any, **options: Any) -> Completion:
        return Completion(messages[-1].content)


KEY = "s3cret-Kë✓"  # not ASCII: the key's UTF-8 bytes are what a client sends
BEARER = {"Authorization": b"Bearer " + KEY.encode()}


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def raw_call(
    server: AgentServer, method: str, path: str, headers: dict[str, Any] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """One request with raw header values (bytes go as they are: a UTF-8 Bearer key)."""
    conn = http.client.HTTPConnection(*server.address, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        body = b"{}" if method in ("POST", "PUT", "PATCH", "DELETE") else b""
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def keyed():
    with AgentServer(served(backends={"echo": Echo()}), api_key=KEY) as s:
        yield s


def every_request(server: AgentServer) -> list[tuple[str, str]]:
    """(method, concrete path) for every route in the app's table and each of its methods:
    a route added later is checked without anyone remembering to."""
    routes = [r for r in server.app.routes if isinstance(r, Route)]
    return [(m, concrete(r.path)) for r in routes for m in sorted(r.methods or {"GET"})]


def test_with_a_key_every_route_refuses_a_request_without_it(keyed: AgentServer) -> None:
    requests = every_request(keyed)
    paths = {p for _, p in requests}
    for expected in ("/", "/static/app.js", "/static/style.css", "/docs", "/openapi.json"):
        assert expected in paths, expected  # the page and the docs are in the table
    assert "/v1/completions" in paths and len(requests) >= 25
    first = None
    for method, path in requests:
        status, raw, headers = raw_call(keyed, method, path)
        assert status == 401, (method, path, status)
        assert headers["www-authenticate"] == 'Basic realm="recai", charset="UTF-8"', path
        if method != "HEAD":
            error = json.loads(raw)["error"]  # OpenAI's shape, on the page's paths too
            assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
            assert "Missing API key" in error["message"] and KEY not in raw.decode()
            first = first if first is not None else raw
            assert raw == first, path  # one answer for every path: nothing told about routes


def test_with_a_key_unknown_paths_and_methods_get_the_401_before_any_404(
    keyed: AgentServer,
) -> None:
    known = raw_call(keyed, "GET", "/health")
    for method, path in (
        ("GET", "/nowhere"),
        ("GET", "/static/other.js"),
        ("GET", "/index.html"),
        ("GET", "/v1/secret-admin"),
        ("POST", "/"),  # the page's path, but not its method
        ("DELETE", "/health"),
        ("PUT", "/v1/chat/completions"),
        ("OPTIONS", "/v1/recommend"),  # no CORS configured: no preflight answered either
    ):
        status, raw, headers = raw_call(keyed, method, path)
        assert (status, raw) == known[:2], (method, path)
        assert headers["www-authenticate"] == known[2]["www-authenticate"]
    # with the key, the same requests get their 404 and 405
    status, raw, _ = raw_call(keyed, "GET", "/nowhere", BEARER)
    assert status == 404 and json.loads(raw)["error"]["code"] == "not_found"
    status, _, _ = raw_call(keyed, "DELETE", "/health", basic("x", KEY))
    assert status == 405


def test_with_a_key_every_route_takes_it_as_bearer_or_basic_and_answers_alike(
    keyed: AgentServer,
) -> None:
    for method, path in every_request(keyed):
        answers = [
            raw_call(keyed, method, path, headers)[:2]
            for headers in (BEARER, basic("anyone", KEY), basic("", KEY), {"api-key": KEY.encode()})
        ]
        assert answers[0][0] != 401, (method, path, answers[0])
        assert {status for status, _ in answers} == {answers[0][0]}, (method, path, answers)
    status, page, headers = raw_call(keyed, "GET", "/", basic("me", KEY))
    assert status == 200 and b"<title>recai chat</title>" in page
    assert "content-security-policy" in headers
    status, raw, _ = raw_call(keyed, "GET", "/health", basic("me", KEY))
    assert status == 200 and json.loads(raw)["agents"] == ["shop", "plain"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer " + KEY.encode("ascii", "replace").decode()},  # ✓ -> ?
        {"Authorization": b"Bearer " + KEY.encode()[:-1]},  # one byte short
        {"Authorization": b"Bearer " + KEY.encode() + b"x"},
        {"Authorization": "Basic " + base64.b64encode(b"me:wrong").decode()},
        {"Authorization": "Basic " + base64.b64encode(KEY.encode()).decode()},  # no colon
        {"Authorization": "Basic " + base64.b64encode(KEY.encode() + b":").decode()},  # as user
        {"Authorization": "Basic " + base64.b64encode(KEY.encode("latin-1", "replace")).decode()},
        {"Authorization": "Basic not*base64"},
        {"Authorization": "Basic"},
        {"Authorization": KEY.encode()},  # no scheme
        {"Authorization": b"Token " + KEY.encode()},
        {"api-key": "wrong"},
    ],
    ids=lambda h: repr(next(iter(h.values())))[:40],
)
def test_a_wrong_key_is_refused_however_it_is_sent(keyed: AgentServer, headers: Any) -> None:
    for method, path in (("GET", "/"), ("GET", "/health"), ("POST", "/v1/chat/completions")):
        status, raw, answer_headers = raw_call(keyed, method, path, headers)
        assert status == 401, (method, path)
        assert json.loads(raw)["error"]["code"] == "invalid_api_key"
        assert answer_headers["www-authenticate"].startswith("Basic ")
        assert b"wrong" not in raw and KEY.encode() not in raw  # nothing given is echoed


def test_the_openai_client_is_refused_without_the_key_and_served_with_it() -> None:
    import openai

    with AgentServer(served(), api_key="sk-ascii-only") as s:  # OpenAI clients send ASCII keys
        refused = openai.OpenAI(base_url=s.base_url, api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            refused.chat.completions.create(
                model="shop", messages=[{"role": "user", "content": "hi"}]
            )
        assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
        client = openai.OpenAI(base_url=s.base_url, api_key="sk-ascii-only", max_retries=0)
        answer = client.chat.completions.create(
            model="shop", messages=[{"role": "user", "content": "hi"}]
        )
    assert "you said hi" in (answer.choices[0].message.content or "")


def test_bodies_beyond_the_limit_or_too_slow_are_refused_on_every_post_route() -> None:
    import socket
    import time

    big = json.dumps({"query": "x" * 3000}).encode()
    with AgentServer(served(), max_body_bytes=1000, body_timeout=0.5, api_key="k") as s:
        posts = sorted(
            {r.path for r in s.app.routes if isinstance(r, Route) and "POST" in r.methods}
        )
        assert {"/v1/chat/completions", "/v1/feedback", "/v1/recommend", "/v1/search"} <= set(posts)
        for path in posts:
            status, raw, _ = raw_call(s, "POST", concrete(path), {"Authorization": "Bearer k"})
            assert status != 413, path  # a small body passes the limit (then 400, 404...)
            conn = http.client.HTTPConnection(*s.address, timeout=30)
            try:
                head = {"Content-Type": "application/json", "Authorization": "Bearer k"}
                conn.request("POST", concrete(path), big, head)
                resp = conn.getresponse()
                answer = json.loads(resp.read())
            finally:
                conn.close()
            assert resp.status == 413, path
            assert "larger than 1000 bytes" in answer["error"]["message"]
            # without the key, the 401 comes first: the body is never read
            status, raw, _ = raw_call(s, "POST", concrete(path))
            assert status == 401
        # a body that does not arrive in time: 408
        with socket.create_connection(s.address, timeout=10) as sock:
            sock.sendall(
                b"POST /v1/recommend HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            start = time.monotonic()
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert time.monotonic() - start < 5


def test_cors_is_off_by_default_and_on_for_the_configured_origin():
    origin = {"Origin": "http://app.example"}
    with AgentServer(served()) as s:
        _, _, headers = call(s, "GET", "/health", headers=origin)
        assert "access-control-allow-origin" not in {k.lower() for k in headers}
    with AgentServer(served(), cors_origins=["http://app.example"], api_key="k") as s:
        status, _, headers = call(
            s,
            "OPTIONS",
            "/v1/recommend",
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert status == 200
        assert headers.get("access-control-allow-origin") == "http://app.example"
        _, _, headers = call(s, "GET", "/health", headers={**origin, "Authorization": "Bearer k"})
        assert headers.get("access-control-allow-origin") == "http://app.example"
