"""``embedding.v1`` and ``embedding.openai.v1``: retrieval by text embeddings over a faiss index.

Every catalog item is written as text (:mod:`recai_emb.itemtext`), encoded once (cached on disk,
:mod:`recai_emb.cache`) and indexed (:mod:`recai_emb.index`). A :class:`recai.Query` becomes one
query vector:

- **text** (``Query(text=...)``): the text, encoded as a query (with ``query_prefix``);
- **one seed item** (``Query(items=[i])``): item ``i``'s own vector: items similar to ``i``;
- **several seed items** (a history): with ``history_query="text"`` (default, as RecLM-emb
  does) the titles of the last ``max_history`` items, oldest first, joined by ``"; "`` into
  ``history_template``, encoded as a query; with ``"mean"`` the normalised mean of their vectors;
- **a user** (``Query(user=u)``): the user's training history (from ``fit``), as above;
- **text and items or a user**: the history text, then the query text, encoded together (the
  "user history + query" request of RecLM-emb).

Seed items and the user's training items are never returned. ``candidates`` restricts the
result without re-indexing: a small pool (at most ``exact_pool`` items) is scored exactly from
the stored vectors; a larger one through the index with a faiss ``IDSelector``.

The retriever needs the catalog: from ``fit(split)`` (what evaluators call), or from the
``dataset`` param, prepared on first use.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

import recai
from recai.data import Dataset, Interactions, Split
from recai.errors import DataError, RecaiError
from recai.roles import DatasetSource, Retriever
from recai.secrets import BaseURL, EnvName, ModelName
from recai.specs import Configurable, neutral
from recai.types import ItemList, Query

from .cache import EmbeddingCache
from .encoder import Encoder, Pooling
from .index import IndexConfig, VectorIndex
from .itemtext import DEFAULT_TEMPLATE, ItemTextTemplate, texts_key

__all__ = [
    "EmbeddingRetriever",
    "OpenAIEmbeddingRetriever",
    "RetrieverParams",
    "LocalEncoderParams",
    "TextParams",
    "EmbeddingParams",
    "OpenAIEmbeddingParams",
]

HistoryQuery = Literal["text", "mean"]
Count = Annotated[int, Field(ge=1, le=1_000_000)]
MaxHistory = Annotated[
    int,
    Field(ge=1, le=10_000, description="most recent items of a history that make its query"),
]
BatchSize = Annotated[int, Field(ge=1, le=65_536, description="texts per encoder batch")]
Threads = Annotated[
    int | None,
    neutral(ge=1, le=1024, description="torch threads while encoding (default: torch's)"),
]


# -- params ----------------------------------------------------------------------------------------
# RetrieverParams ─┬─ LocalEncoderParams ─┬─────────────── TunedEmbeddingParams (tuned.py)
#                  │                      └─┐
#                  └─ TextParams ───────────┴─ EmbeddingParams
#                                 └─────────── OpenAIEmbeddingParams
class RetrieverParams(recai.Params):
    """What every embedding retriever takes: its catalog, history queries, index and cache."""

    dataset: DatasetSource | None = Field(
        None,
        description="the dataset whose catalog is searched when the retriever is used without "
        "fit(split)",
    )
    max_history: MaxHistory = 20
    index: IndexConfig | None = Field(
        None, description="the faiss index to build (default: flat, exact search)"
    )
    cache: bool = Field(True, description="keep item vectors and indexes in the embedding cache")
    cache_dir: str | None = Field(
        None,
        description="the embedding cache folder (default: $RECAI_EMB_CACHE, else "
        "$XDG_CACHE_HOME/recai/embeddings)",
    )


class LocalEncoderParams(RetrieverParams):
    """A retriever whose transformers encoder runs on this machine."""

    batch_size: BatchSize = 64
    threads: Threads = None
    runtime: Literal["torch", "onnx"] = Field(
        "torch",
        description="'onnx': the encoder exported once into the cache and run with ONNX Runtime "
        "(faster for single queries on CPU; the onnx extra)",
    )


class TextParams(RetrieverParams):
    """How items and queries are written as text, and how candidate pools are scored (fixed in
    ``embedding.tuned.v1``, whose fine-tuning uses the defaults)."""

    query_prefix: str = Field("", description="text put before every query")
    passage_prefix: str = Field("", description="text put before every item text")
    template: str = Field(
        DEFAULT_TEMPLATE,
        description="item text from catalog fields: {field} placeholders, optional parts in "
        "[brackets] (recai_emb.itemtext)",
    )
    max_field_chars: Annotated[
        int,
        Field(
            ge=1, le=1_000_000, description="characters kept of one field's value (cut on a word)"
        ),
    ] = 400
    history_query: HistoryQuery = Field(
        "text",
        description="a history as a query: 'text' (its titles, encoded as a query) or 'mean' "
        "(the normalised mean of its items' vectors)",
    )
    history_template: str = Field(
        "{history}",
        description="query text of a history; {history} is its titles, oldest first, joined "
        "by '; '",
    )
    exact_pool: Annotated[
        int,
        Field(
            ge=0,
            le=10_000_000,
            description="candidate pools up to this size are scored exactly, not searched",
        ),
    ] = 4096

    @field_validator("history_template")
    @classmethod
    def _has_history(cls, value: str) -> str:
        if "{history}" not in value:
            raise ValueError("history_template must contain {history}")
        return value


class EmbeddingParams(LocalEncoderParams, TextParams):
    """``embedding.v1``: a local transformers encoder (all-MiniLM-L6-v2 from its wheel by default)."""

    model: str = Field(
        "minilm", description="'minilm' (the embedded all-MiniLM-L6-v2) or a transformers folder"
    )
    pooling: Pooling = Field(
        "auto",
        description="'auto' (the folder's sentence-transformers pooling, else mean), 'mean', "
        "'cls' or 'last'",
    )
    normalize: bool = Field(True, description="unit-length vectors (cosine similarity)")
    max_length: Annotated[
        int | None,
        Field(ge=8, le=1_048_576, description="most tokens per text (default: the model's)"),
    ] = None
    query_keep: Literal["start", "end"] = Field(
        "end",
        description="which part of a query longer than max_length is kept: 'end' keeps the most "
        "recent history items and the request (and the prefix)",
    )


class OpenAIEmbeddingParams(TextParams):
    """``embedding.openai.v1``: vectors from an OpenAI-compatible ``/v1/embeddings`` endpoint."""

    model: ModelName = Field(description="the embedding model or deployment name")
    base_url: BaseURL = Field(
        None, description="the server's base URL (default: $OPENAI_BASE_URL, else OpenAI's)"
    )
    api_key_env: EnvName = Field(
        "OPENAI_API_KEY",
        description="the NAME of the environment variable holding the key (keys are never params)",
    )
    dimensions: Annotated[
        int | None,
        Field(ge=1, le=65_536, description="shorter vectors, for models that offer them"),
    ] = None
    batch_size: Annotated[int, Field(ge=1, le=65_536, description="texts per request")] = 256
    timeout: Annotated[
        float, Field(gt=0, le=86_400, description="seconds per request (at most a day)")
    ] = 60.0
    max_retries: Annotated[int, Field(ge=0, le=100, description="retries of a failed request")] = 4


class _Base(Configurable, Retriever):
    """What the retrievers share: item texts, cached vectors, the index and query handling.

    Built from keywords checked against ``Params`` (the fields in ``positional`` also by
    position), or from a ready params model; the validated params are ``self.params`` and their
    fields are also attributes (``self.max_history``...).
    """

    label = "embedding"
    Params: ClassVar[type[RetrieverParams]] = RetrieverParams
    positional: ClassVar[tuple[str, ...]] = ()
    params: RetrieverParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # Configurable: self.params, validated
        p = self.params
        self.dataset = p.dataset
        self.max_history = p.max_history
        self.index = p.index or IndexConfig()
        self.cache = p.cache
        self.cache_dir = p.cache_dir
        # a retriever without text settings (embedding.tuned.v1) writes texts the default way
        t = p if isinstance(p, TextParams) else TextParams()
        self.template = t.template
        self.max_field_chars = t.max_field_chars
        self.history_query: HistoryQuery = t.history_query
        self.history_template = t.history_template
        self.exact_pool = t.exact_pool
        self.query_prefix = t.query_prefix
        self.passage_prefix = t.passage_prefix
        self._template = ItemTextTemplate(self.template, max_field_chars=self.max_field_chars)
        self._encoder: Encoder | None = None
        self._data: Dataset | None = None
        self._train: Interactions | None = None
        self._texts: list[str] = []
        self._vectors: np.ndarray | None = None
        self._index: VectorIndex | None = None
        self._lock = threading.Lock()
        self._facts: dict[str, Any] = {}

    # -- to implement ---------------------------------------------------------------------------------
    def _make_encoder(self) -> Encoder:
        raise NotImplementedError

    # -- preparation -----------------------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder:
        """The encoder (built on first use)."""
        if self._encoder is None:
            self._encoder = self._make_encoder()
        return self._encoder

    def fit(self, split: Split) -> None:
        """Index the split's catalog and remember its training histories (for user queries)."""
        self._prepare(split.dataset)
        self._train = split.train

    def _require(self) -> Dataset:
        if self._data is None:
            if self.dataset is None:
                raise RecaiError(
                    f"{self.label}: no catalog to search: call fit(split) first, or build the "
                    "retriever with dataset= a dataset component"
                )
            self._prepare(self.dataset.dataset())
        assert self._data is not None
        return self._data

    def _prepare(self, data: Dataset) -> None:
        with self._lock:
            same = (
                self._data is not None
                and self._data.catalog.fingerprint() == data.catalog.fingerprint()
            )
            if same and self._index is not None:
                self._data = data
                return
            started = time.perf_counter()
            texts, text_report = self._template.render(data.catalog)
            thash = texts_key(texts)
            parts = {
                "encoder": self.encoder.identity(),
                "catalog": data.catalog.fingerprint(),
                "template": self._template.key(),
            }
            store = EmbeddingCache(self.cache_dir) if self.cache else None
            vectors = store.get(parts, thash) if store is not None else None
            cached = vectors is not None
            if vectors is None:
                vectors = self.encoder.encode(texts, "passage")
                if store is not None:
                    store.put(parts, thash, vectors)
                    vectors = store.get(parts, thash)
                    assert vectors is not None
            encoded = time.perf_counter()
            index = None
            index_path = None
            if store is not None:
                ikey = hashlib.sha256(
                    json.dumps(self.index.model_dump(), sort_keys=True).encode()
                ).hexdigest()[:12]
                index_path = store.path(parts, thash) / f"index-{ikey}.faiss"
                if index_path.exists():
                    try:
                        index = VectorIndex.load(index_path, mmap=True)
                    except DataError:
                        index = None
                    if index is not None and index.ntotal != len(vectors):
                        index = None
            index_cached = index is not None
            if index is None:
                index = VectorIndex.build(np.asarray(vectors), self.index)
                if index_path is not None:
                    index.save(index_path)
            self._data, self._texts, self._vectors, self._index = data, texts, vectors, index
            self._facts = {
                "items": len(texts),
                "dim": int(vectors.shape[1]),
                "encoder": self.encoder.identity(),
                "vectors_cached": cached,
                "index_cached": index_cached,
                "index": repr(index),
                "cache_entry": None if store is None else str(store.path(parts, thash)),
                "encode_s": round(encoded - started, 3),
                "index_s": round(time.perf_counter() - encoded, 3),
                "item_text": text_report,
            }

    # -- facts ----------------------------------------------------------------------------------------
    @property
    def item_texts(self) -> list[str]:
        """The text of every catalog item, as encoded."""
        self._require()
        return list(self._texts)

    @property
    def item_vectors(self) -> np.ndarray:
        """The item vectors, ``(n_items, dim)`` (read-only, memory-mapped when cached)."""
        self._require()
        assert self._vectors is not None
        return self._vectors

    @property
    def vector_index(self) -> VectorIndex:
        self._require()
        assert self._index is not None
        return self._index

    def report(self) -> dict[str, Any]:
        """How the index was made: sizes, encoder, cache hits, times, item-text gaps."""
        self._require()
        return dict(self._facts)

    # -- queries --------------------------------------------------------------------------------------
    def _seeds(self, query: Query, n_items: int) -> np.ndarray:
        seeds: list[int] = []
        if query.user is not None:
            if self._train is None:
                raise RecaiError(
                    f"{self.label}: a user query needs fit(split) first (training histories)"
                )
            if not 0 <= query.user < self._train.n_users:
                raise DataError(
                    f"{self.label}: user {query.user} is not in 0..{self._train.n_users - 1}"
                )
            seeds += self._train.history(query.user).tolist()
        if query.items is not None:
            seeds += query.items.ids.tolist()
        arr = np.asarray(seeds, dtype=np.int64)
        if len(arr) and (arr.min() < 0 or arr.max() >= n_items):
            raise DataError(f"{self.label}: seed items must be catalog indices 0..{n_items - 1}")
        return arr

    def history_text(self, items: Sequence[int] | np.ndarray) -> str:
        """The query text of a history: the last ``max_history`` titles, oldest first."""
        data = self._require()
        recent = np.asarray(items, dtype=np.int64)[-self.max_history :]
        titles = "; ".join(data.catalog.title(int(i)) for i in recent)
        return self.history_template.replace("{history}", titles)

    def _plan(self, query: Query, n_items: int) -> tuple[str | None, np.ndarray | None, np.ndarray]:
        """``(text to encode, or a ready vector, excluded items)`` for one query."""
        seeds = self._seeds(query, n_items)
        if query.text is not None and query.text.strip():
            text = query.text.strip()
            if len(seeds):
                text = f"{self.history_text(seeds)}. {text}"
            return text, None, seeds
        if not len(seeds):
            raise RecaiError(f"{self.label}: the query has no text and no items to search with")
        assert self._vectors is not None
        if len(np.unique(seeds)) == 1:
            return None, np.asarray(self._vectors[seeds[0]], dtype=np.float32), seeds
        if self.history_query == "mean":
            v = np.asarray(self._vectors[seeds[-self.max_history :]], dtype=np.float32).mean(0)
            return None, v / max(float(np.linalg.norm(v)), 1e-12), seeds
        return self.history_text(seeds), None, seeds

    def _pool(self, candidates: ItemList | None, n_items: int) -> np.ndarray | None:
        if candidates is None:
            return None
        pool = np.unique(candidates.ids.astype(np.int64))
        if len(pool) and (pool[0] < 0 or pool[-1] >= n_items):
            raise DataError(f"{self.label}: candidates must be catalog indices 0..{n_items - 1}")
        return pool

    def _search(
        self, vector: np.ndarray, k: int, exclude: np.ndarray, pool: np.ndarray | None
    ) -> ItemList:
        assert self._vectors is not None and self._index is not None
        banned = np.unique(exclude)
        if pool is not None:
            pool = pool[~np.isin(pool, banned)] if len(banned) else pool
            if not len(pool):
                return ItemList(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))
            if len(pool) <= self.exact_pool:
                scores = np.asarray(self._vectors[pool], dtype=np.float32) @ vector
                return ItemList(pool, scores).top(k)
        n = self._index.ntotal if pool is None else len(pool)
        want = min(k + len(banned), n)
        scores, ids = self._index.search(vector[None, :], want, subset=pool)
        keep = ids[0] >= 0
        found = ItemList(ids[0][keep], scores[0][keep])
        if len(banned):
            found = found.exclude(banned)
        return found.top(k)

    def retrieve(
        self, query: Query, k: int = 10, *, candidates: ItemList | None = None
    ) -> ItemList:
        return self.retrieve_batch([query], k, candidates=candidates)[0]

    def retrieve_batch(
        self, queries: Sequence[Query], k: int = 10, *, candidates: ItemList | None = None
    ) -> list[ItemList]:
        """Answers to many queries; their texts are encoded together, in length-sorted batches."""
        data = self._require()
        n_items = data.n_items
        pool = self._pool(candidates, n_items)
        plans = [self._plan(q, n_items) for q in queries]
        texts = [t for t, _, _ in plans if t is not None]
        encoded = iter(self.encoder.encode(texts, "query")) if texts else iter(())
        out = []
        for text, vector, exclude in plans:
            v = next(encoded) if text is not None else vector
            assert v is not None
            out.append(self._search(np.asarray(v, dtype=np.float32), int(k), exclude, pool))
        return out

    def search(self, text: str, k: int = 10, *, candidates: ItemList | None = None) -> ItemList:
        """Items for a free-text request. Same as ``retrieve(Query(text=text), k)``."""
        return self.retrieve(Query(text=text), k, candidates=candidates)

    def similar(self, item: int, k: int = 10, *, candidates: ItemList | None = None) -> ItemList:
        """Items whose text embedding is closest to ``item``'s (``item`` itself excluded)."""
        return self.retrieve(Query(items=ItemList([int(item)])), k, candidates=candidates)

    def save_index(self, path: str | Path) -> Path:
        """Write the index to ``path`` (atomic), for :meth:`VectorIndex.load` elsewhere."""
        return self.vector_index.save(path)


class EmbeddingRetriever(_Base):
    """Text-embedding retrieval with a local transformers encoder (``embedding.v1``).

    Params: :class:`EmbeddingParams` (``model``, the embedded all-MiniLM-L6-v2 by default, or a
    transformers folder; ``runtime="onnx"`` runs the encoder with ONNX Runtime, about 2.6x faster
    for a single query on two CPU cores), by keyword or as a ready model.

    >>> from recai.data import synthetic_dataset
    >>> from recai.roles import DatasetSource
    >>> r = EmbeddingRetriever(dataset=DatasetSource.of(synthetic_dataset()))  # doctest: +SKIP
    >>> r.search("a feel-good mystery", 3)  # doctest: +SKIP
    ItemList(3 items: [...], scored)
    """

    label = "embedding.v1"
    Params: ClassVar[type[LocalEncoderParams]] = EmbeddingParams
    positional = ("dataset", "model")
    params: LocalEncoderParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p = self.params
        self.batch_size = p.batch_size
        self.threads = p.threads
        self.runtime = p.runtime
        # a subclass without encoder settings (embedding.tuned.v1) uses the defaults
        e = p if isinstance(p, EmbeddingParams) else EmbeddingParams()
        self.model = e.model
        self.pooling = e.pooling
        self.normalize = e.normalize
        self.max_length = e.max_length
        self.query_keep = e.query_keep

    def _make_encoder(self) -> Encoder:
        from .cache import cache_root
        from .encoder import TransformersEncoder

        return TransformersEncoder(
            self.model,
            pooling=self.pooling,
            normalize=self.normalize,
            query_prefix=self.query_prefix,
            passage_prefix=self.passage_prefix,
            max_length=self.max_length,
            query_keep=self.query_keep,
            batch_size=self.batch_size,
            threads=self.threads,
            runtime=self.runtime,
            onnx_dir=cache_root(self.cache_dir) / "onnx",
        )

    def __repr__(self) -> str:
        state = f"{len(self._texts)} items" if self._data is not None else "not prepared"
        return f"EmbeddingRetriever(model={self.model!r}, index={self.index.kind!r}, {state})"


class OpenAIEmbeddingRetriever(_Base):
    """Text-embedding retrieval through any OpenAI-compatible ``/v1/embeddings`` endpoint
    (``embedding.openai.v1``).

    Params: :class:`OpenAIEmbeddingParams` (``model``, ``base_url``, ``api_key_env``: the *name*
    of the environment variable holding the key; keys are never params).
    """

    label = "embedding.openai.v1"
    Params = OpenAIEmbeddingParams
    positional = ("model", "dataset")
    params: OpenAIEmbeddingParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p = self.params
        self.model = p.model
        self.base_url = p.base_url
        self.api_key_env = p.api_key_env
        self.dimensions = p.dimensions
        self.batch_size = p.batch_size
        self.timeout = p.timeout
        self.max_retries = p.max_retries

    def _make_encoder(self) -> Encoder:
        from .openai_encoder import OpenAIEncoder

        return OpenAIEncoder(
            self.model,
            base_url=self.base_url,
            api_key_env=self.api_key_env,
            dimensions=self.dimensions,
            batch_size=self.batch_size,
            timeout=self.timeout,
            max_retries=self.max_retries,
            query_prefix=self.query_prefix,
            passage_prefix=self.passage_prefix,
        )

    def __repr__(self) -> str:
        return f"OpenAIEmbeddingRetriever(model={self.model!r}, base_url={self.base_url!r})"
