"""Entry point of recai-emb: registers the embedding retrievers and the per-task evaluator
(imports nothing heavy)."""

from __future__ import annotations

import recai

EMBEDDING = recai.ComponentSpec(
    name="embedding.v1",
    factory="recai_emb.retriever:EmbeddingRetriever",
    summary="Text-embedding retrieval (RecLM-emb): a transformers encoder (MiniLM by default) "
    "over a faiss index; text, history, item and user queries.",
)
EMBEDDING_OPENAI = recai.ComponentSpec(
    name="embedding.openai.v1",
    factory="recai_emb.retriever:OpenAIEmbeddingRetriever",
    summary="Text-embedding retrieval with vectors from any OpenAI-compatible embeddings "
    "endpoint, over a faiss index.",
)

EMBEDDING_TUNED = recai.ComponentSpec(
    name="embedding.tuned.v1",
    factory="recai_emb.tuned:TunedEmbeddingRetriever",
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
