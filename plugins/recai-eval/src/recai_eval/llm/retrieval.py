"""llm-retrieval.v1: the LLM reads a user's history and names the items they will choose next.

RecLM-eval's *retrieval* task: no candidates are given; the model recommends ``n_recommend``
titles from its own knowledge of the catalog's domain. Each named title is grounded in the
catalog; the sample is a hit at ``k`` when the held-out item is among the first ``k`` mentions
(every mention keeps its slot, invented ones too). Beside Hit/NDCG/MRR@k the report gives the
rates of answers naming titles outside the catalog, duplicates, history items, and answers
that copy the history's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recai.runtime import RunContext
from recai.types import Report

from .base import LLMTask, Session, sample_cases
from .lists import list_metrics, score_list_answers
from .params import LLMRetrievalParams
from .prompts import RETRIEVAL, numbered, render

__all__ = ["LLMRetrievalEvaluator"]

KINDS = ("nonexistent", "duplicate", "in_history", "copy")


class LLMRetrievalEvaluator(LLMTask):
    """History in, ``n_recommend`` titles out; Hit/NDCG/MRR@k of the held-out item.

    ``template`` may use ``{history}`` (numbered titles, oldest first) and ``{k}`` (how many to
    name). See :mod:`recai_eval.llm.base` for the protocol and the shared params.
    """

    Params = LLMRetrievalParams
    positional = ("dataset", "llm")
    default_template = RETRIEVAL
    params: LLMRetrievalParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # LLMTask: params, system_prompt, template
        self.k: Sequence[int] = sorted({int(x) for x in self.params.k})

    def evaluate(self, ctx: RunContext) -> Report:
        s = Session(self, ctx)
        cases, counts = sample_cases(s.data, s.split, self.params.samples, s.seed)
        shown = [c.shown(self.params.max_history) for c in cases]
        prompts = [
            s.messages(
                render(
                    self.template,
                    self.placeholders["template"],
                    history=numbered(s.items(h)),
                    k=self.params.n_recommend,
                ),
                self.system_prompt,
            )
            for h in shown
        ]
        answers = s.ask(self.params.llm, prompts, "retrieval")
        scores = score_list_answers(s, cases, answers, orders=shown)
        row, intervals = list_metrics(s, cases, scores, self.k, KINDS, self.params.bootstrap)
        name = ctx.name_of(self.params.llm)
        protocol = (
            f"leave-one-out by time; the LLM names {self.params.n_recommend} items after the last "
            f"{self.params.max_history} history items; each mention grounded in the catalog "
            f"({s.matcher.method} >= {s.matcher.threshold}); Hit/NDCG/MRR@k of the held-out item "
            "by the position of its first mention"
        )
        info = s.info(
            protocol,
            len(cases),
            counts,
            task="retrieval",
            k=list(self.k),
            n_recommend=self.params.n_recommend,
            max_history=self.params.max_history,
            fields=list(self.params.fields),
            llm=self.describe(self.params.llm),
            mentions={"total": scores.mentions, "grounded": scores.grounded},
            error_rates="share of the answered samples whose answer shows the error; "
            "unreadable answers count in failure_rate only",
        )
        return s.report({name: row}, info, {name: intervals} if intervals else None)
