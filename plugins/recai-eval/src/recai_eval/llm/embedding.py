"""embedding-ranking.v1 and embedding-retrieval.v1: a text retriever finds a user's next item.

RecLM-eval's embedding tasks, without an LLM: the user's history becomes a text query
(``query_template``, by default "A user who has interacted with these items, oldest first: t1;
t2; ..."), and a :class:`recai.Retriever` that takes text (an embedding model, typically)
answers it:

- **embedding-retrieval**: over the whole catalog; the user's history items are removed from
  the results (as RecAI does; ``in_history_rate`` says how often the retriever returned some);
- **embedding-ranking**: among the held-out item and ``n_candidates - 1`` sampled negatives,
  passed as ``candidates``.

Metrics are those of the LLM tasks (Hit/NDCG/MRR@k of the held-out item) with the error rates
that apply to item ids: ``nonexistent_rate`` (an index outside the catalog), ``duplicate_rate``,
``in_history_rate`` (retrieval), ``out_of_candidates_rate`` and ``copy_rate`` (ranking: the
result repeats the candidates' input order) and ``failure_rate`` (always 0 here: a sample whose
retriever call raised has no result; it is left out of the metrics, as in the LLM tasks, and
``max_failed_share`` bounds how many may be: :mod:`.base`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from recai.runtime import RunContext
from recai.types import ItemList, Query, Report

from ..metrics import MISSED
from .base import Case, LLMTask, Session, error_columns, sample_cases
from .params import EmbeddingRankingParams, EmbeddingRetrievalParams
from .prompts import EMBEDDING_QUERY, render
from .ranking import candidate_sets
from .runner import Answer, error_text, is_user_error, secrets_of
from .scoring import error_flags, mean_and_intervals, ranking_values, target_rank

__all__ = ["EmbeddingRankingEvaluator", "EmbeddingRetrievalEvaluator"]


class _EmbeddingTask(LLMTask):
    task: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()
    Params = EmbeddingRetrievalParams
    positional = ("dataset", "retriever")
    params: EmbeddingRetrievalParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p = self.params
        self.k: Sequence[int] = sorted({int(x) for x in p.k})
        self.query_template = EMBEDDING_QUERY if p.query_template is None else p.query_template

    def query(self, s: Session, case: Case) -> Query:
        history = "; ".join(s.items(case.shown(self.params.max_history)))
        return Query(
            text=render(self.query_template, self.placeholders["query_template"], history=history)
        )

    def _score(
        self,
        s: Session,
        cases: list[Case],
        results: list[Any],
        candidates: list[list[int]] | None,
    ) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
        ranks: list[int] = []
        flags: list[dict[str, bool] | None] = []
        n_items = s.data.n_items
        for i, (case, result) in enumerate(zip(cases, results, strict=True)):
            if isinstance(result, Answer):
                s.no_answer(case, "retrieve", result)
                s.record(case, error=result.error)
                ranks.append(int(MISSED))
                flags.append(None)
                continue
            ids = [int(x) for x in result]
            grounded: list[int | None] = [x if 0 <= x < n_items else None for x in ids]
            cand = None if candidates is None else candidates[i]
            f = error_flags(grounded, history=case.history.tolist(), candidates=cand, order=cand)
            if candidates is None:  # history items are filtered out after the flags are taken
                hist = set(case.history.tolist())
                grounded = [g for g in grounded if g is None or g not in hist]
            f = {k: v for k, v in f.items() if k in self.kinds}
            rank = target_rank(grounded, case.target)
            ranks.append(rank)
            flags.append(f)
            s.record(case, items=ids, rank=None if rank == int(MISSED) else rank, flags=f)
        accuracy, intervals = mean_and_intervals(
            s.measured(cases, ranking_values(ranks, self.k)), self.params.bootstrap, s.seed
        )
        failed = np.array([f is None for f in flags], dtype=np.float64)
        errors, _ = mean_and_intervals(
            s.measured(cases, {**error_columns(flags, self.kinds), "failure_rate": failed}),
            0,
            s.seed,
        )
        return {**accuracy, **errors}, intervals

    def _retrieve(self, query: Query, k: int, candidates: ItemList | None) -> Any:
        try:
            result = self.params.retriever.retrieve(query, k, candidates=candidates)
            if not isinstance(result, ItemList):
                raise TypeError(f"retrieve returned {type(result).__name__}, not a recai.ItemList")
            return result.ids.tolist()
        except Exception as e:  # noqa: BLE001 - a failed sample is recorded, not raised
            secrets = secrets_of(self.params.retriever)
            return Answer(None, error_text(e, secrets), user_error=is_user_error(e))

    def _report(
        self,
        s: Session,
        ctx: RunContext,
        cases: list[Case],
        row: dict[str, float],
        intervals: dict,
        protocol: str,
        counts: dict,
        **extra: Any,
    ) -> Report:
        name = ctx.name_of(self.params.retriever)
        info = s.info(
            protocol,
            len(cases),
            counts,
            task=self.task,
            k=list(self.k),
            max_history=self.params.max_history,
            fields=list(self.params.fields),
            retriever=self.describe(self.params.retriever),
            query_template=self.query_template,
            **extra,
        )
        for key in ("grounding", "generation", "requests", "cache"):  # no LLM is asked here
            info.pop(key, None)
        return s.report({name: row}, info, {name: intervals} if intervals else None)


class EmbeddingRetrievalEvaluator(_EmbeddingTask):
    """The history as a text query over the whole catalog; Hit/NDCG/MRR@k of the held-out item."""

    task = "embedding_retrieval"
    kinds = ("nonexistent", "duplicate", "in_history")

    def evaluate(self, ctx: RunContext) -> Report:
        s = Session(self, ctx)
        ctx.fit(self.params.retriever, s.split)
        cases, counts = sample_cases(s.data, s.split, self.params.samples, s.seed)
        top = max(self.k)
        results = []
        for case in ctx.progress(cases, desc=f"{s.stage}: retrieval", total=len(cases)):
            extra = len(set(case.history.tolist()))
            results.append(self._retrieve(self.query(s, case), top + extra, None))
        row, intervals = self._score(s, cases, results, None)
        protocol = (
            "leave-one-out by time; the last "
            f"{self.params.max_history} history items as a text query; the retriever searches the whole "
            f"catalog for the {top} best items plus as many as the user's distinct history items, "
            "which are then removed; Hit/NDCG/MRR@k of the held-out item"
        )
        return self._report(s, ctx, cases, row, intervals, protocol, counts)


class EmbeddingRankingEvaluator(_EmbeddingTask):
    """The history as a text query over candidates (the held-out item and sampled negatives)."""

    task = "embedding_ranking"
    kinds = ("nonexistent", "duplicate", "out_of_candidates", "copy")

    Params = EmbeddingRankingParams
    params: EmbeddingRankingParams

    def evaluate(self, ctx: RunContext) -> Report:
        s = Session(self, ctx)
        ctx.fit(self.params.retriever, s.split)
        sampled, counts = sample_cases(s.data, s.split, self.params.samples, s.seed)
        cases, orders, dropped = candidate_sets(s, sampled, self.params.n_candidates)
        results = []
        pairs = list(zip(cases, orders, strict=True))
        for case, order in ctx.progress(pairs, desc=f"{s.stage}: ranking", total=len(pairs)):
            results.append(self._retrieve(self.query(s, case), len(order), ItemList(order)))
        row, intervals = self._score(s, cases, results, orders)
        protocol = (
            f"leave-one-out by time; the last {self.params.max_history} history items as a text query; "
            f"the retriever ranks {self.params.n_candidates} candidates (the held-out item and "
            f"{self.params.n_candidates - 1} uniform negatives the user never interacted with); "
            "Hit/NDCG/MRR@k of the held-out item"
        )
        return self._report(
            s,
            ctx,
            cases,
            row,
            intervals,
            protocol,
            counts,
            n_candidates=self.params.n_candidates,
            dropped_users=dropped,
        )
