"""llm-ranking.v1: the LLM ranks a candidate list (the held-out item and sampled negatives).

RecLM-eval's *ranking* task: ``n_candidates`` items (by default 1 + 19, as in RecAI's
protocol) are shown in a per-user random order; the model writes them back in its order.
Negatives are drawn by :func:`recai.data.sample_candidates` (uniformly among items the user
never interacted with; deterministic per seed and user). Beside Hit/NDCG/MRR@k the report gives
the rates of answers naming titles outside the catalog, duplicates, history items, items
outside the candidates, and answers that copy the candidates' input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from recai.data import sample_candidates
from recai.runtime import RunContext
from recai.types import Report

from .base import LLMTask, Session, sample_cases
from .lists import list_metrics, score_list_answers
from .params import LLMRankingParams
from .prompts import RANKING, bulleted, numbered, render
from .scoring import ERROR_KINDS

__all__ = ["LLMRankingEvaluator", "candidate_sets"]


def candidate_sets(
    s: Session,
    cases: list,
    n_candidates: int,
    strategy: Literal["uniform", "popularity"] = "uniform",
) -> tuple[list, list[list[int]], int]:
    """For each case that has enough negatives: the positive and ``n_candidates - 1`` negatives
    in a random order (per seed and user). Returns ``(kept cases, orders, dropped count)``."""
    users = np.array([c.user for c in cases], dtype=np.int64)
    cands = sample_candidates(
        s.split,
        n_negatives=n_candidates - 1,
        strategy=strategy,
        seed=s.seed,
        users=users,
        short="drop",
    )
    by_user = {
        int(u): row for u, row in zip(cands.users.tolist(), cands.items.tolist(), strict=True)
    }
    kept, orders = [], []
    for case in cases:
        row = by_user.get(int(case.user))
        if row is None:
            continue
        kept.append(case)
        orders.append([int(x) for x in s.rng(case, 1).permutation(np.asarray(row))])
    return kept, orders, len(cases) - len(kept)


class LLMRankingEvaluator(LLMTask):
    """History and candidates in, a ranking out; Hit/NDCG/MRR@k of the held-out item.

    ``template`` may use ``{history}`` (numbered titles, oldest first), ``{candidates}`` (one
    per line, bulleted, in random order) and ``{n}`` (how many). Users without enough items to
    draw negatives from are left out and counted in ``info["dropped_users"]``.
    """

    Params = LLMRankingParams
    positional = ("dataset", "llm")
    default_template = RANKING
    params: LLMRankingParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # LLMTask: params, system_prompt, template
        self.k: Sequence[int] = sorted({int(x) for x in self.params.k})

    def evaluate(self, ctx: RunContext) -> Report:
        s = Session(self, ctx)
        sampled, counts = sample_cases(s.data, s.split, self.params.samples, s.seed)
        cases, orders, dropped = candidate_sets(
            s, sampled, self.params.n_candidates, self.params.negatives
        )
        prompts = [
            s.messages(
                render(
                    self.template,
                    self.placeholders["template"],
                    history=numbered(s.items(c.shown(self.params.max_history))),
                    candidates=bulleted(s.items(order)),
                    n=len(order),
                ),
                self.system_prompt,
            )
            for c, order in zip(cases, orders, strict=True)
        ]
        answers = s.ask(self.params.llm, prompts, "ranking")
        scores = score_list_answers(s, cases, answers, orders=orders, candidates=orders)
        row, intervals = list_metrics(s, cases, scores, self.k, ERROR_KINDS, self.params.bootstrap)
        name = ctx.name_of(self.params.llm)
        protocol = (
            f"leave-one-out by time; the LLM ranks {self.params.n_candidates} candidates (the held-out "
            f"item and {self.params.n_candidates - 1} {self.params.negatives} negatives the user never "
            f"interacted with) after the last {self.params.max_history} history items; each mention "
            f"grounded in the catalog ({s.matcher.method} >= {s.matcher.threshold}); "
            "Hit/NDCG/MRR@k by the position of the held-out item's first mention"
        )
        info = s.info(
            protocol,
            len(cases),
            counts,
            task="ranking",
            k=list(self.k),
            n_candidates=self.params.n_candidates,
            dropped_users=dropped,
            max_history=self.params.max_history,
            fields=list(self.params.fields),
            llm=self.describe(self.params.llm),
            mentions={"total": scores.mentions, "grounded": scores.grounded},
            error_rates="share of the answered samples whose answer shows the error; "
            "unreadable answers count in failure_rate only",
        )
        notes = []
        if dropped:
            notes.append(
                f"{dropped} sampled users had too few items left to draw "
                f"{self.params.n_candidates - 1} negatives and were left out."
            )
        return s.report({name: row}, info, {name: intervals} if intervals else None, notes)
