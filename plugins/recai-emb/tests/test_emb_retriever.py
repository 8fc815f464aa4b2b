"""The embedding retrievers on a tiny random encoder and a local OpenAI-style embeddings server."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from emb_testkit import write_tiny_encoder

import recai
from recai.data import leave_one_out
from recai.errors import ParamsError, RecaiError
from recai.testing import RetrieverContract, make_tiny_dataset
from recai.types import ItemList, Query


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return write_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder")


class TestEmbeddingContract(RetrieverContract):
    name = "embedding.v1"
    distribution = "recai-emb"
    supports_text = True

    @pytest.fixture
    def component(self, entry, split, tiny_dir, tmp_path):
        obj = entry.build({"model": str(tiny_dir), "cache_dir": str(tmp_path)})
        obj.fit(split)
        return obj


class TestEmbeddingContractThroughHNSW(TestEmbeddingContract):
    """Candidates through the index's IDSelector (exact_pool=0), HNSW instead of exact search."""

    @pytest.fixture
    def component(self, entry, split, tiny_dir, tmp_path):
        params = {"model": str(tiny_dir), "cache_dir": str(tmp_path), "exact_pool": 0}
        obj = entry.build({**params, "index": {"kind": "hnsw", "m": 8}})
        obj.fit(split)
        return obj


@pytest.fixture
def retriever(tiny_dir, tmp_path):
    from recai_emb.retriever import EmbeddingRetriever

    r = EmbeddingRetriever(model=str(tiny_dir), cache_dir=str(tmp_path / "cache"))
    r.fit(leave_one_out(make_tiny_dataset()))
    return r


def test_text_query_scores_are_cosines_with_item_vectors(retriever):
    res = retriever.search("a feel-good mystery", 25)
    q = retriever.encoder.encode(["a feel-good mystery"], "query")[0]
    want = retriever.item_vectors @ q
    assert res.ids.tolist() == np.argsort(-want, kind="stable")[:25].tolist()
    np.testing.assert_allclose(res.scores, want[res.ids], rtol=1e-5)


def test_similar_items_exclude_the_item_and_use_its_vector(retriever):
    res = retriever.similar(3, 5)
    assert 3 not in res.ids.tolist() and len(res) == 5
    want = np.argsort(-(retriever.item_vectors @ retriever.item_vectors[3]), kind="stable")
    assert res.ids.tolist() == [i for i in want.tolist() if i != 3][:5]


def test_history_query_is_the_titles_as_text(retriever):
    hist = [4, 1, 7]
    text = retriever.history_text(hist)
    assert text == "; ".join(retriever._data.catalog.title(i) for i in hist)
    a = retriever.retrieve(Query(items=ItemList(hist)), 5)
    b = retriever.search(text, 8).exclude(hist).top(5)
    assert a.ids.tolist() == b.ids.tolist()
    assert not set(a.ids.tolist()) & set(hist)


def test_history_plus_text_and_user_queries(retriever):
    combined = retriever.retrieve(Query(text="mystery", items=ItemList([1, 2])), 5)
    direct = retriever.search(retriever.history_text([1, 2]) + ". mystery", 7).exclude([1, 2])
    assert combined.ids.tolist() == direct.top(5).ids.tolist()
    trained = retriever._train.history(0)
    by_user = retriever.retrieve(Query(user=0), 10)
    assert not set(by_user.ids.tolist()) & set(trained.tolist())
    with pytest.raises(recai.DataError, match="user 999"):
        retriever.retrieve(Query(user=999), 3)


def test_mean_history_mode(tiny_dir, tmp_path):
    from recai_emb.retriever import EmbeddingRetriever

    r = EmbeddingRetriever(model=str(tiny_dir), cache_dir=str(tmp_path), history_query="mean")
    r.fit(leave_one_out(make_tiny_dataset()))
    v = r.item_vectors[[2, 5]].mean(0)
    want = np.argsort(-(r.item_vectors @ v), kind="stable").tolist()
    got = r.retrieve(Query(items=ItemList([2, 5])), 4).ids.tolist()
    assert got == [i for i in want if i not in (2, 5)][:4]


def test_exact_pool_and_index_selector_agree(retriever):
    cand = ItemList(np.arange(0, 25, 2))
    exact = retriever.search("winter drama", 5, candidates=cand)
    retriever.exact_pool = 0
    through_index = retriever.search("winter drama", 5, candidates=cand)
    assert exact.ids.tolist() == through_index.ids.tolist()
    np.testing.assert_allclose(exact.scores, through_index.scores, rtol=1e-5)
    with pytest.raises(recai.DataError, match="candidates"):
        retriever.search("x", 3, candidates=ItemList([0, 99]))


def test_second_build_reads_the_cache_and_never_encodes_the_catalog(
    tiny_dir, tmp_path, monkeypatch
):
    from recai_emb.encoder import TransformersEncoder
    from recai_emb.retriever import EmbeddingRetriever

    split = leave_one_out(make_tiny_dataset())
    first = EmbeddingRetriever(model=str(tiny_dir), cache_dir=str(tmp_path))
    first.fit(split)
    assert first.report()["vectors_cached"] is False

    def refuse(self, texts, kind="passage"):
        assert kind == "query", "the catalog was encoded again"
        return original(self, texts, kind)

    original = TransformersEncoder.encode
    monkeypatch.setattr(TransformersEncoder, "encode", refuse)
    second = EmbeddingRetriever(model=str(tiny_dir), cache_dir=str(tmp_path))
    second.fit(split)
    facts = second.report()
    assert facts["vectors_cached"] and facts["index_cached"]
    assert second.search("mirror", 5) == first.search("mirror", 5)
    # another template is another entry
    third = EmbeddingRetriever(model=str(tiny_dir), cache_dir=str(tmp_path), template="{title}")
    monkeypatch.setattr(TransformersEncoder, "encode", original)
    third.fit(split)
    assert third.report()["vectors_cached"] is False


def test_dataset_param_prepares_on_first_use(tiny_dir, tmp_path):
    source = recai.DatasetSource.of(make_tiny_dataset())
    r = recai.create(
        "retriever", "embedding.v1", dataset=source, model=str(tiny_dir), cache_dir=str(tmp_path)
    )
    assert len(r.search("mirror", 3)) == 3
    assert r.item_texts[0].startswith(source.dataset().catalog.title(0))
    bare = recai.create("retriever", "embedding.v1", model=str(tiny_dir), cache=False)
    with pytest.raises(RecaiError, match="call fit"):
        bare.search("x")


def test_saved_index_loads_memory_mapped(retriever, tmp_path):
    from recai_emb.index import VectorIndex

    path = retriever.save_index(tmp_path / "items.faiss")
    loaded = VectorIndex.load(path)
    q = retriever.encoder.encode(["mirror"], "query")
    assert np.array_equal(loaded.search(q, 5)[1], retriever.vector_index.search(q, 5)[1])


def test_params_are_checked(tiny_dir):
    with pytest.raises(ParamsError, match="history_query"):
        recai.create("retriever", "embedding.v1", history_query="max")
    with pytest.raises(ParamsError, match="index.kind"):
        recai.create("retriever", "embedding.v1", index={"kind": "lsh"})
    with pytest.raises(RecaiError, match="history_template"):
        recai.create("retriever", "embedding.v1", history_template="no placeholder")


# -- embedding.openai.v1 against a local server ----------------------------------------------------
class _Embeddings(http.server.BaseHTTPRequestHandler):
    """POST /v1/embeddings: deterministic 16-d vectors from a hash of each text; 401 echoing the
    credentials when the key is wrong (as careless servers do)."""

    key = "sk-test-secret-123456"
    requests: list[dict] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization", "")
        type(self).requests.append({"path": self.path, "body": body, "auth": auth})
        if auth != f"Bearer {self.key}":
            out = {"error": {"message": f"Incorrect API key provided: {auth}", "type": "auth"}}
            data, status = json.dumps(out).encode(), 401
        else:
            rows = []
            for i, text in enumerate(body["input"]):
                seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
                vec = np.random.default_rng(seed).standard_normal(body.get("dimensions", 16))
                rows.append({"object": "embedding", "index": i, "embedding": (3 * vec).tolist()})
            rows.reverse()  # servers may answer out of order: the index field says where
            out = {"object": "list", "data": rows, "model": body["model"], "usage": {}}
            data, status = json.dumps(out).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server():
    _Embeddings.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_openai_retriever_batches_orders_and_normalises(server, tmp_path, monkeypatch):
    pytest.importorskip("openai")
    monkeypatch.setenv("EMB_TEST_KEY", _Embeddings.key)
    r = recai.create(
        "retriever",
        "embedding.openai.v1",
        model="test-embed",
        base_url=server,
        api_key_env="EMB_TEST_KEY",
        batch_size=10,
        query_prefix="query: ",
        cache_dir=str(tmp_path),
    )
    r.fit(leave_one_out(make_tiny_dataset()))
    sizes = [len(q["body"]["input"]) for q in _Embeddings.requests]
    assert sizes == [10, 10, 5] and all(q["path"] == "/v1/embeddings" for q in _Embeddings.requests)
    v = r.item_vectors
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    seed = int(hashlib.sha256(r.item_texts[2].encode()).hexdigest()[:8], 16)
    raw = np.random.default_rng(seed).standard_normal(16)
    np.testing.assert_allclose(v[2], raw / np.linalg.norm(raw), rtol=1e-5)
    r.search("mystery", 3)
    assert _Embeddings.requests[-1]["body"]["input"] == ["query: mystery"]


def test_openai_errors_never_show_the_key(server, tmp_path, monkeypatch):
    pytest.importorskip("openai")
    monkeypatch.setenv("EMB_TEST_KEY", "sk-wrong-key-abcdef")
    r = recai.create(
        "retriever",
        "embedding.openai.v1",
        model="m",
        base_url=server,
        api_key_env="EMB_TEST_KEY",
        max_retries=0,
        cache=False,
    )
    with pytest.raises(RecaiError, match="answered 401") as e:
        r.fit(leave_one_out(make_tiny_dataset()))
    assert "sk-wrong" not in str(e.value) and "***" in str(e.value)


def test_openai_params_refuse_keys(server):
    with pytest.raises(ParamsError, match="api_key_env") as e:
        recai.create("retriever", "embedding.openai.v1", model="m", api_key_env="sk-abcdef123456")
    assert "sk-abcdef" not in str(e.value)
    with pytest.raises(ParamsError, match="base_url"):
        recai.create("retriever", "embedding.openai.v1", model="m", base_url="http://u:p@h/v1")
    with pytest.raises(ParamsError, match="model"):
        recai.create("retriever", "embedding.openai.v1", model="sk-proj-abcdefgh12345678")
