"""Vector indexes over faiss: exact inner product by default, IVF and HNSW for large catalogs.

:class:`IndexConfig` says which index to build (all by inner product on unit vectors, i.e.
cosine similarity):

- ``flat``: exact search (``IndexFlatIP``), the default;
- ``ivf``: an inverted file of ``nlist`` k-means cells, ``nprobe`` of them searched per query;
- ``hnsw``: a graph with ``m`` links per node, ``ef_construction`` / ``ef_search`` beam widths;
- ``codec``: how vectors are stored in ``ivf``/``hnsw``: ``flat`` (float32), ``sq8``/``sq4``/
  ``fp16`` (scalar quantisers) or ``pq`` (``pq_m`` sub-quantisers of ``pq_bits`` bits).

:class:`VectorIndex` searches it, optionally **restricted to a subset** of ids without
re-indexing (faiss ``SearchParameters`` carrying an ``IDSelectorBatch``), saves it to disk
atomically (written under a temporary name, then renamed) and loads it memory-mapped
(``faiss.IO_FLAG_MMAP`` for IVF lists, ``IO_FLAG_MMAP_IFC`` for flat and HNSW vectors), so a
large index costs page cache, not private memory.

>>> import numpy as np
>>> x = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8]], dtype=np.float32)
>>> index = VectorIndex.build(x)
>>> scores, ids = index.search(x[:1], 2)
>>> ids.tolist()
[[0, 1]]
>>> index.search(x[:1], 2, subset=np.array([2, 3]))[1].tolist()
[[3, 2]]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from recai.errors import DataError, RecaiError
from recai.runtime import atomic_write_file
from recai.specs import Params

__all__ = ["IndexConfig", "VectorIndex"]


class IndexConfig(Params):
    """Which faiss index to build (see the module docstring)."""

    kind: Literal["flat", "ivf", "hnsw"] = "flat"
    codec: Literal["flat", "sq8", "sq4", "fp16", "pq"] = "flat"
    nlist: Annotated[
        int | None, Field(ge=1, le=1_000_000, description="IVF cells (default 4*sqrt(n))")
    ] = None
    nprobe: Annotated[
        int, Field(ge=1, le=1_000_000, description="IVF cells searched per query")
    ] = 16
    m: Annotated[int, Field(ge=2, le=256, description="HNSW links per node")] = 32
    ef_construction: Annotated[
        int, Field(ge=8, le=100_000, description="HNSW beam width while building")
    ] = 80
    ef_search: Annotated[
        int, Field(ge=1, le=100_000, description="HNSW beam width at search time")
    ] = 64
    pq_m: Annotated[
        int, Field(ge=1, le=4096, description="PQ sub-quantisers (divides the dimension)")
    ] = 16
    pq_bits: Annotated[int, Field(ge=4, le=12)] = 8
    train_size: Annotated[
        int,
        Field(ge=1000, le=100_000_000, description="vectors sampled to train IVF/PQ/SQ"),
    ] = 200_000

    def factory_string(self, n: int, dim: int) -> str:
        """The faiss ``index_factory`` description for ``n`` vectors of ``dim`` dimensions.

        >>> IndexConfig(kind="ivf", nlist=256, codec="sq8").factory_string(10**5, 384)
        'IVF256,SQ8'
        >>> IndexConfig(kind="hnsw", m=16, codec="pq", pq_m=48).factory_string(10**6, 384)
        'HNSW16_PQ48x8'
        """
        if self.codec == "pq" and dim % self.pq_m:
            raise RecaiError(f"index: pq_m={self.pq_m} does not divide the dimension {dim}")
        if self.kind == "flat":
            if self.codec != "flat":
                raise RecaiError("index: a codec other than 'flat' needs kind 'ivf' or 'hnsw'")
            return "Flat"
        if self.kind == "ivf":
            nlist = self.nlist or max(1, min(65536, int(4 * np.sqrt(max(n, 1)))))
            codec = {
                "flat": "Flat",
                "sq8": "SQ8",
                "sq4": "SQ4",
                "fp16": "SQfp16",
                "pq": f"PQ{self.pq_m}x{self.pq_bits}",
            }[self.codec]
            return f"IVF{nlist},{codec}"
        if self.codec == "pq":
            return f"HNSW{self.m}_PQ{self.pq_m}x{self.pq_bits}"
        codec = {"flat": "Flat", "sq8": "SQ8", "sq4": "SQ4", "fp16": "SQfp16"}[self.codec]
        return f"HNSW{self.m}" if codec == "Flat" else f"HNSW{self.m},{codec}"


class VectorIndex:
    """A faiss index of unit vectors with ids ``0..n-1`` (catalog indices)."""

    def __init__(self, index: Any, config: IndexConfig, *, mmapped: bool = False) -> None:
        self._index = index
        self.config = config
        self.mmapped = mmapped
        self._apply_search_params()

    # -- building -----------------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        config: IndexConfig | None = None,
        *,
        seed: int = 0,
        add_batch: int = 65536,
    ) -> VectorIndex:
        """Build an index over ``vectors`` (``(n, dim)``; ``float32``, normalised by the caller)."""
        import faiss

        config = config or IndexConfig()
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or len(x) == 0:
            raise DataError(f"index: expected a non-empty (n, dim) matrix, got shape {x.shape}")
        n, dim = x.shape
        desc = config.factory_string(n, dim)
        if config.kind == "hnsw":
            index = faiss.index_factory(dim, desc, faiss.METRIC_INNER_PRODUCT)
            faiss.downcast_index(index).hnsw.efConstruction = config.ef_construction
        else:
            index = faiss.index_factory(dim, desc, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            if config.kind == "ivf":
                nlist = faiss.extract_index_ivf(index).nlist
                if n < nlist:
                    raise RecaiError(
                        f"index: IVF with {nlist} cells needs at least {nlist} vectors, got {n}"
                    )
            rng = np.random.default_rng(seed)
            sample = (
                x
                if n <= config.train_size
                else x[np.sort(rng.choice(n, config.train_size, replace=False))]
            )
            index.train(sample)
        for start in range(0, n, add_batch):
            index.add(x[start : start + add_batch])
        return cls(index, config)

    def _apply_search_params(self) -> None:
        import faiss

        index = self._index
        if self.config.kind == "ivf":
            faiss.extract_index_ivf(index).nprobe = self.config.nprobe
        elif self.config.kind == "hnsw":
            faiss.downcast_index(index).hnsw.efSearch = self.config.ef_search

    # -- facts ----------------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def faiss_index(self) -> Any:
        return self._index

    def __repr__(self) -> str:
        how = " (memory-mapped)" if self.mmapped else ""
        return (
            f"VectorIndex({self.config.kind}/{self.config.codec}, {self.ntotal} x {self.dim}{how})"
        )

    # -- search ----------------------------------------------------------------------------------------
    def _params(self, subset: np.ndarray | None, **overrides: int) -> Any:
        import faiss

        kw: dict[str, Any] = {}
        if subset is not None:
            kw["sel"] = faiss.IDSelectorBatch(np.ascontiguousarray(subset, dtype=np.int64))
        if self.config.kind == "ivf":
            kw["nprobe"] = int(overrides.get("nprobe", self.config.nprobe))
            return faiss.SearchParametersIVF(**kw), kw.get("sel")
        if self.config.kind == "hnsw":
            kw["efSearch"] = int(overrides.get("ef_search", self.config.ef_search))
            return faiss.SearchParametersHNSW(**kw), kw.get("sel")
        return (faiss.SearchParameters(**kw) if kw else None), kw.get("sel")

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        subset: np.ndarray | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(len(queries), k)``, best first; ids ``-1`` where fewer than
        ``k`` vectors were found. ``subset`` restricts the search to those ids (no re-indexing);
        ``nprobe``/``ef_search`` override the configured search width for this call."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise DataError(f"index: queries have {q.shape[1]} dimensions, the index {self.dim}")
        k = int(max(1, k))
        overrides = {
            key: v for key, v in (("nprobe", nprobe), ("ef_search", ef_search)) if v is not None
        }
        if subset is not None:
            subset = np.asarray(subset, dtype=np.int64)
            if len(subset) and (subset.min() < 0 or subset.max() >= self.ntotal):
                raise DataError(f"index: subset ids must lie in 0..{self.ntotal - 1}")
        params, _sel = self._params(subset, **overrides)  # _sel kept alive during the search
        if params is None:
            scores, ids = self._index.search(q, k)
        else:
            scores, ids = self._index.search(q, k, params=params)
        return scores, ids

    # -- disk -------------------------------------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        """Write the index (``path``) and its config (``path`` + ``.json``) atomically."""
        import faiss

        path = Path(path)
        atomic_write_file(path, lambda tmp: faiss.write_index(self._index, tmp))
        meta = {"config": self.config.model_dump(), "ntotal": self.ntotal, "dim": self.dim}
        atomic_write_file(
            path.with_name(path.name + ".json"),
            lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)),
        )
        return path

    @classmethod
    def load(cls, path: Path | str, *, mmap: bool = True) -> VectorIndex:
        """Read an index written by :meth:`save`; memory-mapped (read-only) by default."""
        import faiss

        path = Path(path)
        meta_path = path.with_name(path.name + ".json")
        if not path.exists() or not meta_path.exists():
            raise DataError(
                f"no saved index at {path} (or its {meta_path.name} is missing)", path=str(path)
            )
        try:
            meta = json.loads(meta_path.read_text())
            config = IndexConfig.model_validate(meta["config"])
        except (ValueError, KeyError) as e:
            raise DataError(f"index metadata is unreadable: {e}", path=str(meta_path)) from None
        flags = 0
        if mmap:
            # IVF: the inverted lists are mapped (IO_FLAG_MMAP); flat and HNSW: the stored vectors
            # ("index flat codes", IO_FLAG_MMAP_IFC). faiss refuses the two together for IVF.
            ifc = getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP)
            flags = (faiss.IO_FLAG_MMAP if config.kind == "ivf" else ifc) | faiss.IO_FLAG_READ_ONLY
        try:
            index = faiss.read_index(str(path), flags)
        except RuntimeError as e:
            raise DataError(
                f"cannot read the faiss index: {str(e).splitlines()[0]}", path=str(path)
            ) from None
        if index.ntotal != meta.get("ntotal") or index.d != meta.get("dim"):
            raise DataError(
                f"index holds {index.ntotal} x {index.d} vectors, its metadata says "
                f"{meta.get('ntotal')} x {meta.get('dim')}",
                path=str(path),
            )
        return cls(index, config, mmapped=mmap)
