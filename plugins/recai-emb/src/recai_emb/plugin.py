"""Entry point of recai-emb: registers the embedding retrievers (imports nothing heavy)."""

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


@recai.hookimpl
def recai_retrievers():
    yield EMBEDDING
    yield EMBEDDING_OPENAI
