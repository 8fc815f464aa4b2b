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
from typing import Annotated

from pydantic import Field

from recai.runtime import RunContext
from recai.types import Report

from .base import (
    DEFAULT_THRESHOLD,
    BatchSize,
    Bootstrap,
    Concurrency,
    Cutoffs,
    DatasetParam,
    Fields,
    GroundingMethod,
    LLMParam,
    LLMTask,
    MaxHistory,
    MaxTokens,
    Retries,
    Samples,
    Seed,
    Session,
    SystemPrompt,
    Temperature,
    Threshold,
    UseCache,
    fixed_text,
    sample_cases,
    template_param,
)
from .lists import list_metrics, score_list_answers
from .prompts import DEFAULT_SYSTEM, RETRIEVAL, numbered, render

__all__ = ["LLMRetrievalEvaluator"]

KINDS = ("nonexistent", "duplicate", "in_history", "copy")


class LLMRetrievalEvaluator(LLMTask):
    """History in, ``n_recommend`` titles out; Hit/NDCG/MRR@k of the held-out item.

    ``template`` may use ``{history}`` (numbered titles, oldest first) and ``{k}`` (how many to
    name). See :mod:`recai_eval.llm.base` for the protocol and the shared params.
    """

    placeholders = {"template": frozenset({"history", "k"}), "system_prompt": frozenset()}

    def __init__(
        self,
        dataset: DatasetParam,
        llm: LLMParam,
        *,
        samples: Samples = 100,
        seed: Seed = None,
        n_recommend: Annotated[int, Field(ge=1, description="how many items the LLM names")] = 10,
        k: Cutoffs = (1, 5, 10),
        max_history: MaxHistory = 20,
        fields: Fields = (),
        system_prompt: SystemPrompt = None,
        template: template_param("history", "k") = None,
        max_tokens: MaxTokens = 400,
        temperature: Temperature = 0.0,
        grounding: GroundingMethod = "blend",
        threshold: Threshold = DEFAULT_THRESHOLD,
        concurrency: Concurrency = 4,
        batch_size: BatchSize = 8,
        retries: Retries = 0,
        cache: UseCache = True,
        bootstrap: Bootstrap = 1000,
    ) -> None:
        self._setup(
            dataset=dataset,
            samples=samples,
            seed=seed,
            max_history=max_history,
            fields=fields,
            max_tokens=max_tokens,
            temperature=temperature,
            grounding=grounding,
            threshold=threshold,
            concurrency=concurrency,
            batch_size=batch_size,
            retries=retries,
            cache=cache,
            bootstrap=bootstrap,
            prompts={"template": template, "system_prompt": system_prompt},
        )
        self.llm = llm
        self.n_recommend = int(n_recommend)
        self.k: Sequence[int] = sorted({int(x) for x in k})
        self.system_prompt = fixed_text(DEFAULT_SYSTEM if system_prompt is None else system_prompt)
        self.template = RETRIEVAL if template is None else template

    def evaluate(self, ctx: RunContext) -> Report:
        s = Session(self, ctx)
        cases, counts = sample_cases(s.data, s.split, self.samples, s.seed)
        shown = [c.shown(self.max_history) for c in cases]
        prompts = [
            s.messages(
                render(
                    self.template,
                    self.placeholders["template"],
                    history=numbered(s.items(h)),
                    k=self.n_recommend,
                ),
                self.system_prompt,
            )
            for h in shown
        ]
        answers = s.ask(self.llm, prompts, "retrieval")
        scores = score_list_answers(s, cases, answers, orders=shown)
        row, intervals = list_metrics(scores, self.k, KINDS, self.bootstrap, s.seed)
        name = ctx.name_of(self.llm)
        protocol = (
            f"leave-one-out by time; the LLM names {self.n_recommend} items after the last "
            f"{self.max_history} history items; each mention grounded in the catalog "
            f"({s.matcher.method} >= {s.matcher.threshold}); Hit/NDCG/MRR@k of the held-out item "
            "by the position of its first mention"
        )
        info = s.info(
            protocol,
            len(cases),
            counts,
            task="retrieval",
            k=list(self.k),
            n_recommend=self.n_recommend,
            max_history=self.max_history,
            fields=list(self.fields),
            llm=self.describe(self.llm),
            mentions={"total": scores.mentions, "grounded": scores.grounded},
            error_rates="share of all samples whose answer shows the error; failed samples "
            "count in failure_rate only",
        )
        return s.report({name: row}, info, {name: intervals} if intervals else None)
