"""Entry point of recai-eval: registers the evaluators (imports nothing heavy)."""

from __future__ import annotations

import recai


@recai.hookimpl
def recai_evaluators():
    yield recai.ComponentSpec(
        name="ranking.v1",
        factory="recai_eval.ranking:RankingEvaluator",
        summary="Leave-one-out full-catalog ranking: Recall, NDCG, Hit, MRR, Precision at k.",
    )
