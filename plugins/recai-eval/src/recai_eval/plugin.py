"""Entry point of recai-eval: registers the evaluators (imports nothing heavy).

Factories are lazy ``"module:Class"`` strings, so listing components imports none of the
evaluator modules. The LLM tasks name their params models (:mod:`recai_eval.llm.params`, one base
inherited by every task's model) the same lazy way; the others' params come from their
signatures.
"""

from __future__ import annotations

import recai

_LLM = "recai_eval.llm.params:"

_EVALUATORS = (
    (
        "ranking.v1",
        "recai_eval.ranking:RankingEvaluator",
        "Full-catalog ranking of rankers or retrievers: Recall, NDCG, Hit, MRR, MAP, coverage, "
        "novelty at k.",
        None,
    ),
    (
        "candidate-ranking.v1",
        "recai_eval.candidates:CandidateRankingEvaluator",
        "1 positive + N sampled negatives (uniform or popularity): Hit, NDCG, MRR at k.",
        None,
    ),
    (
        "llm-retrieval.v1",
        "recai_eval.llm.retrieval:LLMRetrievalEvaluator",
        "LLM names items from a user's history; Hit/NDCG/MRR@k with hallucination, duplicate, "
        "history and copy rates.",
        _LLM + "LLMRetrievalParams",
    ),
    (
        "llm-ranking.v1",
        "recai_eval.llm.ranking:LLMRankingEvaluator",
        "LLM ranks 20 candidates (1 held-out + 19 negatives); Hit/NDCG/MRR@k with five error rates.",
        _LLM + "LLMRankingParams",
    ),
    (
        "cf-ranking-mc.v1",
        "recai_eval.llm.choice:CFRankingMCEvaluator",
        "LLM picks, among 10 lettered options, the item hidden from a user's unordered history.",
        _LLM + "ChoiceParams",
    ),
    (
        "seq-ranking-mc.v1",
        "recai_eval.llm.choice:SeqRankingMCEvaluator",
        "LLM picks, among 10 lettered options, the item a user chooses next.",
        _LLM + "ChoiceParams",
    ),
    (
        "explanation.v1",
        "recai_eval.llm.explanation:ExplanationEvaluator",
        "An LLM judge compares two systems' explanations in both orders: win/tie/loss, aspects.",
        _LLM + "ExplanationParams",
    ),
    (
        "conversation.v1",
        "recai_eval.llm.conversation:ConversationEvaluator",
        "A simulated user (an LLM, or a scripted one revealing clues) with a hidden target talks to a recommender: Hit@N and AT@N.",
        _LLM + "ConversationParams",
    ),
    (
        "agent-retrieval.v1",
        "recai_eval.llm.onestep:AgentRetrievalEvaluator",
        "InteRecAgent's one-turn retrieval: one request describing a hidden item (never its "
        "title), the agent recommends over the catalog; Recall@5.",
        _LLM + "AgentRetrievalParams",
    ),
    (
        "agent-ranking.v1",
        "recai_eval.llm.onestep:AgentRankingEvaluator",
        "InteRecAgent's one-turn ranking: the agent orders the hidden item and 19 negatives for "
        "one request; NDCG@20, Hit@1/@5.",
        _LLM + "AgentRankingParams",
    ),
    (
        "embedding-ranking.v1",
        "recai_eval.llm.embedding:EmbeddingRankingEvaluator",
        "A text retriever ranks 20 candidates for a user's history as a query: Hit/NDCG/MRR@k.",
        _LLM + "EmbeddingRankingParams",
    ),
    (
        "embedding-retrieval.v1",
        "recai_eval.llm.embedding:EmbeddingRetrievalEvaluator",
        "A text retriever searches the catalog with a user's history as a query: Hit/NDCG/MRR@k.",
        _LLM + "EmbeddingRetrievalParams",
    ),
)


@recai.hookimpl
def recai_evaluators():
    for name, factory, summary, params in _EVALUATORS:
        yield recai.ComponentSpec(name=name, factory=factory, summary=summary, params=params)


@recai.hookimpl
def recai_commands():
    yield recai.CommandSpec(
        name="eval",
        factory="recai_eval.cli:configure",
        summary="compare run folders side by side, with paired tests between runs",
    )
