"""Scoring list answers (retrieval, ranking): parse, ground, flag errors, rank the target."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..metrics import MISSED
from .base import Case, Session, error_columns
from .parsing import parse_list
from .runner import Answer
from .scoring import error_flags, mean_and_intervals, ranking_values, target_rank

__all__ = ["ListScores", "score_list_answers", "list_metrics"]

_SNIPPET = 160


def snippet(text: str) -> str:
    """The start of an answer, on one line, for failure messages."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _SNIPPET else flat[: _SNIPPET - 3] + "..."


@dataclass
class ListScores:
    """Per-sample results of a list task: target ranks, error flags (``None``: failed), and
    whether the answer named every candidate exactly once and nothing else (``complete``)."""

    ranks: list[int] = field(default_factory=list)
    flags: list[dict[str, bool] | None] = field(default_factory=list)
    complete: list[bool] = field(default_factory=list)
    #: Distinct candidates each answer named (unusable and unanswered samples: none).
    named: list[int] = field(default_factory=list)
    mentions: int = 0
    grounded: int = 0

    def add_failed(self) -> None:
        """One sample with no usable answer: the target missed, no flags, nothing named."""
        self.ranks.append(int(MISSED))
        self.flags.append(None)
        self.complete.append(False)
        self.named.append(0)

    @property
    def failed(self) -> np.ndarray:
        return np.array([f is None for f in self.flags], dtype=np.float64)

    @property
    def complete_column(self) -> np.ndarray:
        """``complete`` as 0/1 per sample (``complete_rate``)."""
        return np.array([float(c) for c in self.complete], dtype=np.float64)


def score_list_answers(
    s: Session,
    cases: Sequence[Case],
    answers: Sequence[Answer],
    *,
    orders: Sequence[Sequence[int] | np.ndarray],
    candidates: Sequence[Sequence[int]] | None = None,
) -> ListScores:
    """Parse and ground every answer; failures are recorded in the session, never dropped."""
    out = ListScores()
    for i, (case, answer) in enumerate(zip(cases, answers, strict=True)):
        cand = None if candidates is None else [int(c) for c in candidates[i]]
        order = [int(o) for o in orders[i]]
        base: dict[str, Any] = {"cached": answer.cached}
        if cand is not None:
            base["candidates"] = cand
        if not answer.ok:
            s.no_answer(case, "answer", answer)
            s.record(case, **base, error=answer.error)
            out.add_failed()
            continue
        mentions = parse_list(
            answer.text or "", score=s.matcher.score, threshold=s.matcher.threshold
        )
        if not mentions:
            error = f"no list items in the answer: {snippet(answer.text or '')!r}"
            s.fail(case, "parse", error)
            s.record(case, **base, answer=answer.text, error=error)
            out.add_failed()
            continue
        grounded = s.matcher.ground_all(mentions)
        flags = error_flags(grounded, history=case.history.tolist(), candidates=cand, order=order)
        rank = target_rank(grounded, case.target)
        out.ranks.append(rank)
        out.flags.append(flags)
        out.complete.append(
            cand is not None and len(grounded) == len(cand) and set(grounded) == set(cand)
        )
        out.named.append(len(set(grounded) & set(cand or ())))
        out.mentions += len(mentions)
        out.grounded += sum(g is not None for g in grounded)
        s.record(
            case,
            **base,
            answer=answer.text,
            mentions=mentions,
            items=grounded,
            rank=None if rank == int(MISSED) else rank,
            flags=flags,
        )
    return out


def list_metrics(
    s: Session,
    cases: Sequence[Case],
    scores: ListScores,
    ks: Sequence[int],
    kinds: Sequence[str],
    bootstrap: int,
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Accuracy (Hit/NDCG/MRR@k, with intervals), then error rates and ``failure_rate``, over
    the answered samples."""
    accuracy, intervals = mean_and_intervals(
        s.measured(cases, ranking_values(scores.ranks, ks)), bootstrap, s.seed
    )
    errors, _ = mean_and_intervals(
        s.measured(cases, {**error_columns(scores.flags, kinds), "failure_rate": scores.failed}),
        0,
        s.seed,
    )
    return {**accuracy, **errors}, intervals
