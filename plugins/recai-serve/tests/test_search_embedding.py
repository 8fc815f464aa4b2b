"""``POST /v1/search`` and ``GET /v1/items/{id}/similar`` through the real embedding retriever:
recai-emb's ``embedding.v1`` (the embedded all-MiniLM-L6-v2 over a faiss index), created
through the registry, over MovieLens-100K's 1,682 titles, served by AgentServer on loopback
beside a test agent. Issue 20 item 2: search is text -> items through the embedding retriever.
Slow (the encoder reads every title once, about 20 s on one busy core)."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from agent_doubles import Plain

import recai
from recai.errors import RecaiError
from recai_serve.served import Served
from recai_serve.server import AgentServer

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    source = recai.create("dataset", "movielens-100k.v1")
    cache = tmp_path_factory.mktemp("emb-cache")
    try:
        retriever = recai.create("retriever", "embedding.v1", dataset=source, cache_dir=str(cache))
        retriever.search("warm up", 1)  # encodes the catalog, or says why it cannot
    except (RecaiError, ImportError, OSError) as e:
        pytest.skip(f"embedding.v1 cannot run here: {e}")
    dataset = source.dataset()
    served = Served(agents={"plain": Plain()}, retrievers={"minilm": retriever}, dataset=dataset)
    with AgentServer(served, api_key="k-search") as s:
        yield s, dataset


def _call(server: AgentServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(*server.address, timeout=60)
    try:
        headers = {"Authorization": "Bearer k-search", "Content-Type": "application/json"}
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_search_finds_a_title_and_a_genre_by_text_with_the_items_attributes(server: Any) -> None:
    s, dataset = server
    status, found = _call(s, "POST", "/v1/search", {"query": "Toy Story", "k": 3})
    assert status == 200 and found["model"] == "minilm"
    first = found["items"][0]
    assert first["title"] == "Toy Story (1995)" and first["id"] == "1"
    assert "Animation" in first["attributes"]["genres"] and first["attributes"]["year"] == 1995
    status, scary = _call(s, "POST", "/v1/search", {"query": "a scary horror movie", "k": 20})
    assert status == 200 and len(scary["items"]) == 20
    horror = sum("Horror" in item["attributes"]["genres"] for item in scary["items"])
    base = sum("Horror" in g for g in dataset.catalog.fields["genres"]) / dataset.catalog.n_items
    assert horror / 20 > 3 * base, (horror, base)  # base: about 5% of the catalog
    scores = [item["score"] for item in scary["items"]]
    assert scores == sorted(scores, reverse=True)


def test_similar_items_through_the_embedding_retriever_leave_the_item_out(server: Any) -> None:
    s, _ = server
    status, similar = _call(s, "GET", "/v1/items/1/similar?k=10&model=minilm")
    assert status == 200 and len(similar["items"]) == 10
    assert "1" not in [item["id"] for item in similar["items"]]
    kids = sum(
        bool({"Animation", "Children's"} & set(item["attributes"]["genres"]))
        for item in similar["items"]
    )
    assert kids >= 3, similar["items"]  # Toy Story's neighbours: animated and children's films


def test_without_the_key_search_is_refused(server: Any) -> None:
    s, _ = server
    conn = http.client.HTTPConnection(*s.address, timeout=60)
    try:
        conn.request("POST", "/v1/search", json.dumps({"query": "x"}), {})
        assert conn.getresponse().status == 401
    finally:
        conn.close()
