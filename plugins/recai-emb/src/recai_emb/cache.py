"""The embedding cache: item vectors on disk, keyed by encoder, catalog and item-text template.

An entry is a folder ``<root>/<key>/`` holding ``vectors.npy`` (``float32``, one row per catalog
item) and ``meta.json`` (the key's parts, the hash of the item texts, shape, and when it was
written). The key hashes the encoder's identity (model files, pooling, prefixes, lengths), the
catalog fingerprint, the template and the item texts themselves, so a catalog whose columns
changed under the same item ids is never served stale vectors, and an entry never changes once
written. Both files are written
under temporary names and renamed, the metadata last: an interrupted write leaves no entry.
Vectors are read memory-mapped.

A damaged entry never fails the retriever (:mod:`recai.damaged`): a ``meta.json`` that is not
JSON or does not match, a ``vectors.npy`` that is truncated, not a float32 matrix or of another
shape, a folder or a file where the other should be, a file without read permission — each is
reported once (a :class:`~recai.damaged.DamagedFileWarning` naming the path), the entry's
folder is moved aside to ``<key>.corrupt-<n>`` and the vectors are computed again. When the
cache cannot be written (a read-only folder, a full disk), the vectors are kept in memory for
the life of the :class:`EmbeddingCache` and the problem is reported once.

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

from recai.damaged import report_damaged, set_aside
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
        # vectors that could not be written, by entry folder (served by get for this object)
        self._memory: dict[Path, np.ndarray] = {}
        self._reported: set[str] = set()

    def path(self, parts: dict[str, Any], texts_hash: str) -> Path:
        """The entry's folder: its key hashes ``parts`` and the texts' hash, so an entry never
        changes once written (a changed catalog or template is another entry)."""
        return self.root / entry_key({**parts, "texts": texts_hash})

    def get(self, parts: dict[str, Any], texts_hash: str) -> np.ndarray | None:
        """The cached vectors (memory-mapped, read-only), or ``None`` when absent; a damaged
        entry is reported, moved aside and answers ``None`` (see the module docstring)."""
        folder = self.path(parts, texts_hash)
        if folder in self._memory:
            return self._memory[folder]
        meta_path, vec_path = folder / "meta.json", folder / "vectors.npy"
        if not os.path.lexists(folder):
            return None
        if not folder.is_dir():
            self._damaged(folder, "is not a folder")
            return None
        if not os.path.lexists(meta_path) or not os.path.lexists(vec_path):
            return None  # an interrupted write: the entry was never finished
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("meta.json is not a JSON object")
            if meta.get("texts") != texts_hash:
                raise ValueError("meta.json belongs to other item texts")
            vectors = np.load(vec_path, mmap_mode="r", allow_pickle=False)
            if vectors.dtype != np.float32 or vectors.ndim != 2:
                raise ValueError(f"vectors.npy holds {vectors.dtype} of {vectors.ndim} dimensions")
            if list(vectors.shape) != meta.get("shape"):
                raise ValueError(
                    f"vectors.npy has shape {list(vectors.shape)}, meta.json says "
                    f"{meta.get('shape')}"
                )
        except (OSError, ValueError, EOFError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self._damaged(folder, f"cannot be read ({why})")
            return None
        return vectors

    def _damaged(self, folder: Path, problem: str) -> None:
        moved = set_aside(folder)
        action = (
            f"moved aside to {moved.name}; the vectors are computed again"
            if moved is not None
            else "it cannot be moved aside; the vectors are computed again"
        )
        report_damaged(folder, f"the embedding cache entry {problem}", action)

    def put(self, parts: dict[str, Any], texts_hash: str, vectors: np.ndarray) -> Path:
        """Store ``vectors`` under ``parts``; returns the entry's folder. When the cache cannot
        be written, the vectors are kept in memory (:meth:`get` answers them) and the problem
        is reported once."""
        folder = self.path(parts, texts_hash)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if os.path.lexists(folder) and not folder.is_dir():
            self._damaged(folder, "is not a folder")

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a name
                np.save(f, vectors)

        meta = {
            "format": CACHE_FORMAT,
            "parts": parts,
            "texts": texts_hash,
            "shape": list(vectors.shape),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        try:
            for name in ("vectors.npy", "meta.json"):  # a folder where a file should be
                if (folder / name).is_dir():
                    self._damaged(folder / name, "is a folder where the file should be")
            atomic_write_file(folder / "vectors.npy", write)
            atomic_write_text(folder / "meta.json", json.dumps(meta, indent=1, default=str))
        except OSError as e:
            self._memory[folder] = vectors
            if str(self.root) not in self._reported:
                self._reported.add(str(self.root))
                report_damaged(
                    folder,
                    f"the embedding cache cannot be written ({e.strerror or e})",
                    "the vectors are kept in memory for this run",
                )
        return folder
