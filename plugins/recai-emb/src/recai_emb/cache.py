"""The embedding cache: item vectors on disk, keyed by encoder, catalog and item-text template.

An entry is a folder ``<root>/<key>/`` holding ``vectors.npy`` (``float32``, one row per catalog
item) and ``meta.json`` (the key's parts, the hash of the item texts, shape, and when it was
written). The key hashes the encoder's identity (model files, pooling, prefixes, lengths), the
catalog fingerprint, the template and the item texts themselves, so a catalog whose columns
changed under the same item ids is never served stale vectors, and an entry never changes once
written. Both files are written
under temporary names and renamed, the metadata last: an interrupted write leaves no entry.
Vectors are read memory-mapped.

>>> import tempfile, numpy as np
>>> cache = EmbeddingCache(tempfile.mkdtemp())
>>> parts = {"encoder": {"model": "m"}, "catalog": "abc", "template": "t"}
>>> cache.get(parts, "texthash") is None
True
>>> _ = cache.put(parts, "texthash", np.ones((2, 3), dtype=np.float32))
>>> cache.get(parts, "texthash").shape
(2, 3)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from recai.runtime import atomic_write_file, atomic_write_text

__all__ = ["EmbeddingCache", "cache_root", "entry_key"]

CACHE_FORMAT = 1


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else ``$RECAI_EMB_CACHE``, else ``$XDG_CACHE_HOME/recai/embeddings``.

    >>> str(cache_root("/tmp/emb"))
    '/tmp/emb'
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("RECAI_EMB_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "recai" / "embeddings"


def entry_key(parts: dict[str, Any]) -> str:
    """The folder name of an entry: a hash of its parts (JSON with sorted keys)."""
    blob = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class EmbeddingCache:
    """Item vectors on disk (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = cache_root(root)

    def path(self, parts: dict[str, Any], texts_hash: str) -> Path:
        """The entry's folder: its key hashes ``parts`` and the texts' hash, so an entry never
        changes once written (a changed catalog or template is another entry)."""
        return self.root / entry_key({**parts, "texts": texts_hash})

    def get(self, parts: dict[str, Any], texts_hash: str) -> np.ndarray | None:
        """The cached vectors (memory-mapped, read-only), or ``None`` when absent or stale."""
        folder = self.path(parts, texts_hash)
        meta_path, vec_path = folder / "meta.json", folder / "vectors.npy"
        if not meta_path.exists() or not vec_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError:
            return None
        if meta.get("texts") != texts_hash:
            return None
        vectors = np.load(vec_path, mmap_mode="r")
        if list(vectors.shape) != meta.get("shape"):
            return None
        return vectors

    def put(self, parts: dict[str, Any], texts_hash: str, vectors: np.ndarray) -> Path:
        """Store ``vectors`` under ``parts``; returns the entry's folder."""
        folder = self.path(parts, texts_hash)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a name
                np.save(f, vectors)

        atomic_write_file(folder / "vectors.npy", write)
        meta = {
            "format": CACHE_FORMAT,
            "parts": parts,
            "texts": texts_hash,
            "shape": list(vectors.shape),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_text(folder / "meta.json", json.dumps(meta, indent=1, default=str))
        return folder
