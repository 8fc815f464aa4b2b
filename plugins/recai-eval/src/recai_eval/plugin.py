"""Entry point of recai-eval: registers the evaluators (imports nothing heavy).

Factories are lazy ``"module:Class"`` strings, so listing components imports none of the
evaluator modules.
"""

from __future__ import annotations

import recai

_EVALUATORS = (
    (
        "ranking.v1",
        "recai_eval.ranking:RankingEvaluator",
        "Full-catalog ranking of rankers or retrievers: Recall, NDCG, Hit, MRR, MAP, coverage, "
        "novelty at k.",
    ),
    (
        "candidate-ranking.v1",
        "recai_eval.candidates:CandidateRankingEvaluator",
        "1 positive + N sampled negatives (uniform or popularity): Hit, NDCG, MRR at k.",
    ),
    (
        "llm-retrieval.v1",
        "recai_eval.llm.retrieval:LLMRetrievalEvaluator",
        "LLM names items from a user's history; Hit/NDCG/MRR@k with hallucination, duplicate, "
        "history and copy rates.",
    ),
    (
        "llm-ranking.v1",
        "recai_eval.llm.ranking:LLMRankingEvaluator",
        "LLM ranks 20 candidates (1 held-out + 19 negatives); Hit/NDCG/MRR@k with five error rates.",
    ),
    (
        "cf-ranking-mc.v1",
        "recai_eval.llm.choice:CFRankingMCEvaluator",
        "LLM picks, among 10 lettered options, the item hidden from a user's unordered history.",
    ),
    (
        "seq-ranking-mc.v1",
        "recai_eval.llm.choice:SeqRankingMCEvaluator",
        "LLM picks, among 10 lettered options, the item a user chooses next.",
    ),
    (
        "explanation.v1",
        "recai_eval.llm.explanation:ExplanationEvaluator",
        "An LLM judge compares two systems' explanations in both orders: win/tie/loss, aspects.",
    ),
    (
        "conversation.v1",
        "recai_eval.llm.conversation:ConversationEvaluator",
        "A user-simulator LLM with a hidden target talks to a recommender: Hit@N and AT@N.",
    ),
    (
        "embedding-ranking.v1",
        "recai_eval.llm.embedding:EmbeddingRankingEvaluator",
        "A text retriever ranks 20 candidates for a user's history as a query: Hit/NDCG/MRR@k.",
    ),
    (
        "embedding-retrieval.v1",
        "recai_eval.llm.embedding:EmbeddingRetrievalEvaluator",
        "A text retriever searches the catalog with a user's history as a query: Hit/NDCG/MRR@k.",
    ),
)


@recai.hookimpl
def recai_evaluators():
    for name, factory, summary in _EVALUATORS:
        yield recai.ComponentSpec(name=name, factory=factory, summary=summary)
