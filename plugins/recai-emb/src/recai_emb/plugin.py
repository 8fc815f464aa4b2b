"""Entry point of recai-emb: registers the embedding retrievers and the per-task evaluator
(imports nothing heavy).

The retrievers' params models (``EmbeddingParams``, ``OpenAIEmbeddingParams`` and
``TunedEmbeddingParams``, inheriting from shared ones) live beside the retrievers; the specs name
them as lazy ``"module:Model"`` strings, so listing components imports none of those modules.
"""

from __future__ import annotations

import recai

EMBEDDING = recai.ComponentSpec(
    name="embedding.v1",
    factory="recai_emb.retriever:EmbeddingRetriever",
    params="recai_emb.retriever:EmbeddingParams",
    summary="Text-embedding retrieval (RecLM-emb): a transformers encoder (MiniLM by default) "
    "over a faiss index; text, history, item and user queries.",
)
EMBEDDING_OPENAI = recai.ComponentSpec(
    name="embedding.openai.v1",
    factory="recai_emb.retriever:OpenAIEmbeddingRetriever",
    params="recai_emb.retriever:OpenAIEmbeddingParams",
    summary="Text-embedding retrieval with vectors from any OpenAI-compatible embeddings "
    "endpoint, over a faiss index.",
)

EMBEDDING_TUNED = recai.ComponentSpec(
    name="embedding.tuned.v1",
    factory="recai_emb.tuned:TunedEmbeddingRetriever",
    params="recai_emb.tuned:TunedEmbeddingParams",
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
