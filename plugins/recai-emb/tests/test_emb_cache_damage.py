"""The embedding cache never turns a damaged entry into a failure (issue 17 item 1).

Each damaged entry is reported once, moved aside and computed again; a cache that cannot be
written keeps the vectors in memory. Real files throughout; the last test runs the retriever on a
tiny random encoder.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from emb_testkit import write_tiny_encoder

from recai.damaged import DamagedFileWarning
from recai.data import leave_one_out
from recai.testing import make_tiny_dataset
from recai_emb.cache import EmbeddingCache

PARTS = {"encoder": {"model": "m"}, "catalog": "c", "template": "t"}
VECTORS = np.arange(12, dtype=np.float32).reshape(4, 3)


def damaged(call: Callable[[], Any]) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = call()
    return out, [str(w.message) for w in caught if issubclass(w.category, DamagedFileWarning)]


def save(path: Path, vectors: Any) -> None:
    with open(path, "wb") as f:
        np.save(f, vectors, allow_pickle=True)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "meta-not-json": lambda f: (f / "meta.json").write_text("{broken"),
    "meta-not-object": lambda f: (f / "meta.json").write_text("[1, 2]"),
    "meta-other-texts": lambda f: (f / "meta.json").write_text(json.dumps({"texts": "other"})),
    "vectors-truncated": lambda f: (f / "vectors.npy").write_bytes(
        (f / "vectors.npy").read_bytes()[:100]
    ),
    "vectors-int64": lambda f: save(f / "vectors.npy", np.ones((4, 3), dtype=np.int64)),
    "vectors-1d": lambda f: save(f / "vectors.npy", np.ones(12, dtype=np.float32)),
    "vectors-pickled": lambda f: save(f / "vectors.npy", np.array([{"a": 1}], dtype=object)),
    "vectors-shape": lambda f: save(f / "vectors.npy", np.ones((5, 3), dtype=np.float32)),
    "vectors-folder": lambda f: ((f / "vectors.npy").unlink(), (f / "vectors.npy").mkdir()),
    "meta-folder": lambda f: ((f / "meta.json").unlink(), (f / "meta.json").mkdir()),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_entry_is_reported_once_moved_aside_and_rewritten(
    tmp_path: Path, kind: str
) -> None:
    cache = EmbeddingCache(tmp_path)
    folder = cache.put(PARTS, "h", VECTORS)
    DAMAGE[kind](folder)
    got, said = damaged(lambda: cache.get(PARTS, "h"))
    assert got is None
    assert len(said) == 1 and str(folder) in said[0] and "moved aside" in said[0]
    assert (tmp_path / f"{folder.name}.corrupt-1").is_dir()
    (_, said_put) = damaged(lambda: cache.put(PARTS, "h", VECTORS))
    again, said_get = damaged(lambda: cache.get(PARTS, "h"))
    assert said_put == said_get == [] and np.array_equal(again, VECTORS)


def test_a_file_where_the_entry_folder_should_be(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    folder = cache.path(PARTS, "h")
    folder.write_text("not a folder")
    got, said = damaged(lambda: cache.get(PARTS, "h"))
    assert got is None and len(said) == 1 and "not a folder" in said[0]
    cache.put(PARTS, "h", VECTORS)
    assert np.array_equal(cache.get(PARTS, "h"), VECTORS)


def test_an_interrupted_write_is_no_entry_and_no_damage(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    folder = cache.put(PARTS, "h", VECTORS)
    (folder / "meta.json").unlink()  # the metadata is written last
    got, said = damaged(lambda: cache.get(PARTS, "h"))
    assert got is None and said == [] and not (tmp_path / f"{folder.name}.corrupt-1").exists()


def test_an_unwritable_cache_keeps_vectors_in_memory(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.write_text("a file where the cache folder should be")
    cache = EmbeddingCache(root)

    def put_twice() -> Path:
        cache.put(PARTS, "h", VECTORS)
        return cache.put({**PARTS, "template": "u"}, "h", VECTORS)

    _, said = damaged(put_twice)
    assert len(said) == 1 and "cannot be written" in said[0] and "memory" in said[0]
    assert np.array_equal(cache.get(PARTS, "h"), VECTORS)


def test_the_retriever_recomputes_a_damaged_entry(tmp_path: Path) -> None:
    from recai_emb.retriever import EmbeddingRetriever

    tiny = write_tiny_encoder(tmp_path / "encoder")
    split = leave_one_out(make_tiny_dataset())
    cache_dir = tmp_path / "cache"
    first = EmbeddingRetriever(model=str(tiny), cache_dir=str(cache_dir))
    first.fit(split)
    (vectors,) = list(cache_dir.glob("*/vectors.npy"))
    vectors.write_bytes(vectors.read_bytes()[:200])  # truncated
    second = EmbeddingRetriever(model=str(tiny), cache_dir=str(cache_dir))
    _, said = damaged(lambda: second.fit(split))
    assert len(said) == 1 and str(vectors.parent) in said[0]
    assert second.report()["vectors_cached"] is False
    assert second.search("winter mirror", 5) == first.search("winter mirror", 5)
