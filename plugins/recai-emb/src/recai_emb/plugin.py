"""Entry point of recai-emb: registers the embedding retrievers and the per-task evaluator
(imports nothing heavy).

The retrievers' params models (``EmbeddingParams``, ``OpenAIEmbeddingParams`` and
``TunedEmbeddingParams``, inheriting from shared ones) live beside the retrievers and need
:mod:`recai_emb.index` and :mod:`recai_emb.itemtext` (numpy, ``recai.data``), which listing
components must not import. So their specs name the model as a ``"module:Model"`` string,
imported on first use like the factory.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any

import recai
from recai.errors import InvalidSpecError


@functools.cache
def _import(name: str, target: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except Exception as e:  # noqa: BLE001 - reported with the component name
        raise InvalidSpecError(
            f"component {name}: cannot import its params model {target!r}: {type(e).__name__}: {e}"
        ) from e


@dataclass(frozen=True, eq=False)
class _Spec(recai.ComponentSpec):
    """A component spec whose params model is a lazy ``"module:Model"`` string (a stopgap while
    ``recai.ComponentSpec(params=...)`` takes only a class)."""

    params_at: str = ""

    def params_model(self) -> Any:
        return _import(self.name, self.params_at)


EMBEDDING = _Spec(
    name="embedding.v1",
    factory="recai_emb.retriever:EmbeddingRetriever",
    params_at="recai_emb.retriever:EmbeddingParams",
    summary="Text-embedding retrieval (RecLM-emb): a transformers encoder (MiniLM by default) "
    "over a faiss index; text, history, item and user queries.",
)
EMBEDDING_OPENAI = _Spec(
    name="embedding.openai.v1",
    factory="recai_emb.retriever:OpenAIEmbeddingRetriever",
    params_at="recai_emb.retriever:OpenAIEmbeddingParams",
    summary="Text-embedding retrieval with vectors from any OpenAI-compatible embeddings "
    "endpoint, over a faiss index.",
)

EMBEDDING_TUNED = _Spec(
    name="embedding.tuned.v1",
    factory="recai_emb.tuned:TunedEmbeddingRetriever",
    params_at="recai_emb.tuned:TunedEmbeddingParams",
    summary="embedding.v1 whose fit first fine-tunes the encoder (InfoNCE) on RecLM-emb tasks "
    "made from the training split.",
)


@recai.hookimpl
def recai_retrievers():
    yield EMBEDDING
    yield EMBEDDING_OPENAI
    yield EMBEDDING_TUNED


EMBEDDING_TASKS = recai.ComponentSpec(
    name="embedding.tasks.v1",
    factory="recai_emb.evaluate:TaskEvaluator",
    summary="RecLM-emb held-out task queries (history, item, attribute, misspelt, vague, "
    "negative): hit/NDCG@k and condition coverage@k with bootstrap intervals.",
)


@recai.hookimpl
def recai_evaluators():
    yield EMBEDDING_TASKS


@recai.hookimpl
def recai_commands():
    yield recai.CommandSpec(
        name="emb",
        factory="recai_emb.cli:configure",
        summary="RecLM-emb: make training/evaluation examples (emb tasks), fine-tune an encoder "
        "(emb train)",
    )
