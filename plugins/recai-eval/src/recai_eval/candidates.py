"""candidate-ranking.v1: rank each held-out item among N sampled negatives (1 + N protocol).

The protocol of SASRec-style papers (1 + 99) and of RecAI's ranking tasks (1 + 19): for every
held-out event, the positive and ``negatives`` items the user never interacted with, drawn by
:func:`recai.data.sample_candidates` (uniformly or by training popularity, deterministic given
the seed). Each model orders the ``1 + N`` candidates; the metrics at ``k`` are computed from
the positive's rank among them. A random ranker scores the analytic chance level
(:func:`chance_values`), which every report states next to the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field, ValidationInfo

import recai
from recai.data import Dataset, Split, sample_candidates
from recai.runtime import RunContext
from recai.specs import Seed
from recai.stats import bootstrap_intervals
from recai.types import ItemList, Query, Report

from .metrics import ACCURACY, MISSED, metric_name, metric_values
from .outputs import write_outputs
from .ranking import (
    LEVEL,
    MAX_BOOTSTRAP,
    MAX_K,
    RankingEvaluator,
    SplitName,
    evaluation_cases,
)

__all__ = ["CandidateRankingEvaluator", "chance_values", "candidate_ranks"]

CandidateMetric = Literal["recall", "ndcg", "hit", "mrr", "precision", "map"]

MAX_BATCH_CELLS = 50_000_000
"""Most scores one batch asks for (``batch_size * (1 + negatives)``): 400 MB of float64 scores,
before the model's and the ranking's working copies."""


def _k_within_candidates(k: Sequence[int], info: ValidationInfo) -> Sequence[int]:
    """Cut-offs no larger than the ``1 + negatives`` candidates of a row."""
    negatives = info.data.get("negatives")
    if isinstance(negatives, int) and k and max(k) > negatives + 1:
        raise ValueError(
            f"k = {max(k)} exceeds the {negatives + 1} candidates per row (1 + negatives); "
            f"use cut-offs up to {negatives + 1}"
        )
    return k


def _batch_fits(batch_size: int, info: ValidationInfo) -> int:
    """A batch size whose score matrix stays within :data:`MAX_BATCH_CELLS`."""
    negatives = info.data.get("negatives")
    if isinstance(negatives, int) and batch_size * (negatives + 1) > MAX_BATCH_CELLS:
        raise ValueError(
            f"batch_size * (1 + negatives) = {batch_size * (negatives + 1):,} scores per batch is "
            f"more than {MAX_BATCH_CELLS:,}; use batch_size <= {MAX_BATCH_CELLS // (negatives + 1):,}"
        )
    return batch_size


def chance_values(n_candidates: int, ks: Sequence[int], metrics: Sequence[str]) -> dict[str, float]:
    """Expected metric values of a random ordering of ``n_candidates`` with one positive.

    The positive's rank is uniform on ``0..C-1``, so each metric is its mean over those ranks.

    >>> v = chance_values(20, [10], ["hit", "ndcg"])
    >>> round(v["Hit@10"], 4), round(v["NDCG@10"], 4)
    (0.5, 0.2272)
    """
    ranks = np.arange(n_candidates)
    return {c: float(v.mean()) for c, v in metric_values(ranks, list(ks), list(metrics)).items()}


def candidate_ranks(scores: np.ndarray, items: np.ndarray, positive: int = 0) -> np.ndarray:
    """0-based rank of column ``positive`` of each row among that row's candidates.

    Candidates with a higher score are above it, and so are candidates with an equal score and
    a lower **item index** (the tie rule of full ranking), never a lower column: the positive
    sits in column 0, so breaking ties by column would favour it. NaN scores are an error.

    >>> candidate_ranks(np.array([[0.5, 0.9, 0.5, 0.1]]), np.array([[7, 3, 2, 9]])).tolist()
    [2]
    """
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(items, dtype=np.int64)
    if s.shape != c.shape or s.ndim != 2:
        raise ValueError(f"scores {s.shape} and candidates {c.shape} must be equal (rows, C)")
    if np.isnan(s).any():
        bad = np.isnan(s).any(axis=1)
        raise ValueError(f"scores contain NaN ({int(bad.sum())} of {len(s)} rows)")
    own = s[:, positive : positive + 1]
    above = (s > own) | ((s == own) & (c < c[:, positive : positive + 1]))
    return above.sum(axis=1)


class CandidateRankingEvaluator(recai.Evaluator):
    """Each held-out item ranked against ``negatives`` sampled items (1 + N candidates).

    Split and histories are those of ``ranking.v1`` (leave-one-out by time by default). For
    each held-out event, :func:`recai.data.sample_candidates` draws the negatives among items
    the user has no event with (``strategy`` uniform or popularity; ``seed`` defaults to the
    run's seed, so two runs with one seed rank the same candidates). A **ranker** scores the
    per-user candidate matrix ``score(histories, items (B, 1 + N), users=...)``; a
    **retriever** is asked ``retrieve(Query(items=history, user=u), k=1 + N,
    candidates=ItemList(candidates))`` and a positive missing from its list is a miss. The
    candidates are given, so nothing is masked: a positive that repeats a history item is
    still ranked. Ties go to the lower item index.

    >>> import tempfile
    >>> from recai.baselines import RandomRecommender, SyntheticDataset
    >>> ev = CandidateRankingEvaluator(SyntheticDataset(n_users=50, n_items=100),
    ...     [RandomRecommender()], negatives=19, k=[10], bootstrap=0,
    ...     chart=False, per_user=False)
    >>> report = ev.evaluate(RunContext(tempfile.mkdtemp(), progress=False))
    >>> report.info["candidates"], report.info["chance"]["Hit@10"]
    (20, 0.5)
    """

    def __init__(
        self,
        dataset: Annotated[recai.DatasetSource, Field(description="the dataset to evaluate on")],
        models: Annotated[
            Sequence[recai.Ranker | recai.Retriever],
            Field(min_length=1, description="rankers or retrievers to evaluate"),
        ],
        negatives: Annotated[
            int,
            Field(
                ge=1,
                le=MAX_K,
                description=f"sampled negatives per positive (19 RecAI, 99 SASRec; <= {MAX_K:,})",
            ),
        ] = 99,
        strategy: Annotated[
            Literal["uniform", "popularity"],
            Field(description="draw negatives uniformly or by training popularity"),
        ] = "uniform",
        k: Annotated[
            Sequence[Annotated[int, Field(ge=1, le=MAX_K + 1)]],
            Field(
                min_length=1,
                max_length=32,
                description="cut-offs over the 1 + N candidates (at most 32, each <= 1 + N)",
            ),
            AfterValidator(_k_within_candidates),
        ] = (1, 5, 10),
        metrics: Annotated[
            Sequence[CandidateMetric],
            Field(min_length=1, description="metrics to report at every k"),
        ] = ("hit", "ndcg", "mrr"),
        target: Annotated[
            Literal["test", "valid"], Field(description="which held-out items to rank")
        ] = "test",
        seed: Annotated[
            Seed | None, Field(description="seed of the negatives (default: the run's seed)")
        ] = None,
        short: Annotated[
            Literal["raise", "drop"],
            Field(description="a user with too few items to draw from: error, or drop (counted)"),
        ] = "raise",
        split: Annotated[
            SplitName,
            Field(description="leave_one_out (by time), temporal (global cut) or random (by user)"),
        ] = "leave_one_out",
        holdout: Annotated[
            float,
            Field(gt=0, lt=0.5, description="temporal/random: share of events in valid and test"),
        ] = 0.1,
        batch_size: Annotated[
            int,
            Field(
                ge=1,
                le=MAX_BATCH_CELLS // 2,
                description=f"rows scored per batch (batch_size * (1 + negatives) <= "
                f"{MAX_BATCH_CELLS:,})",
            ),
            AfterValidator(_batch_fits),
        ] = 1024,
        bootstrap: Annotated[
            int,
            Field(
                ge=0,
                le=MAX_BOOTSTRAP,
                description="bootstrap resamples for 95% intervals; 0 disables",
            ),
        ] = 1000,
        max_users: Annotated[
            Annotated[int, Field(ge=1, le=1_000_000_000)] | None,
            Field(description="evaluate a seeded random sample of at most this many users"),
        ] = None,
        via: Annotated[
            Literal["auto", "score", "retrieve"],
            Field(description="auto: rankers score the candidates, other models retrieve"),
        ] = "auto",
        per_user: Annotated[
            bool, Field(description="save per-event values for paired comparisons")
        ] = True,
        chart: Annotated[bool, Field(description="draw <stage>.png next to metrics.json")] = True,
    ) -> None:
        bad = [m for m in metrics if m not in ACCURACY]
        if bad:
            raise ValueError(f"unknown metric(s) {bad}; choose from {', '.join(ACCURACY)}")
        # split, models and via are checked the way ranking.v1 checks them
        self._base = RankingEvaluator(
            dataset,
            models,
            k=k,
            metrics=metrics,
            target=target,
            split=split,
            holdout=holdout,
            via=via,
        )
        if max(k) > negatives + 1:
            raise ValueError(f"k = {max(k)} exceeds the {negatives + 1} candidates per row")
        self.dataset = dataset
        self.models = list(models)
        self.negatives = int(negatives)
        self.strategy = strategy
        self.k = sorted({int(x) for x in k})
        self.metrics = list(dict.fromkeys(metrics))
        self.target = target
        self.seed = seed
        self.short = short
        self.split = split
        self.holdout = float(holdout)
        self.batch_size = max(1, int(batch_size))
        self.bootstrap = max(0, int(bootstrap))
        self.max_users = max_users
        self.via = via
        self.per_user = per_user
        self.chart = chart

    def protocol(self, split: Split) -> str:
        base = self._base.protocol(split, split.dataset.n_items).split(", full ranking")[0]
        return (
            f"{base}, {self.target} item ranked among 1 + {self.negatives} candidates "
            f"({self.strategy} negatives the user never interacted with)"
        )

    def evaluate(self, ctx: RunContext) -> Report:
        data: Dataset = self.dataset.dataset()
        split = self._base.make_split(data, ctx.seed)
        seed = ctx.seed if self.seed is None else int(self.seed)
        cases = evaluation_cases(split, self.target)  # every user with a held-out item
        total_users = len(cases)
        users = None
        if self.max_users is not None and self.max_users < total_users:
            rng = np.random.default_rng(ctx.seed)
            users = np.sort(rng.choice(cases.users, size=self.max_users, replace=False))
        cands = sample_candidates(
            split,
            n_negatives=self.negatives,
            strategy=self.strategy,
            seed=seed,
            target=self.target,
            users=users,
            short=self.short,
        )
        # each row's history: that of its user (rows are held-out events, several per user
        # under temporal or random splits)
        where = np.searchsorted(cases.users, cands.users)
        histories = [cases.histories[i] for i in where.tolist()]

        stage = ctx.name_of(self)
        names = ctx.names_of(self.models)
        columns = [metric_name(m, k) for m in self.metrics for k in self.k]
        metrics: dict[str, dict[str, float]] = {}
        intervals: dict[str, dict[str, tuple[float, float]]] = {}
        per_user: dict[str, np.ndarray] = {}
        how: dict[str, str] = {}
        for model, name in zip(self.models, names, strict=True):
            ctx.fit(model, split)
            scored = self._base.uses_scores(model)
            how[name] = "scores the candidates" if scored else "retrieve(candidates=...)"
            ranks = self._ranks(ctx, model, name, cands.users, cands.items, histories, scored)
            values = metric_values(ranks, self.k, self.metrics)
            table = np.column_stack([values[c] for c in columns])
            per_user[name] = table
            means = table.mean(axis=0) if len(table) else np.zeros(len(columns))
            metrics[name] = {c: float(v) for c, v in zip(columns, means, strict=True)}
            if self.bootstrap and len(table):
                low, high = bootstrap_intervals(table, self.bootstrap, ctx.seed, LEVEL)
                intervals[name] = {
                    c: (float(lo), float(hi)) for c, lo, hi in zip(columns, low, high, strict=True)
                }

        n_cand = self.negatives + 1
        info = {
            "dataset": data.name,
            "protocol": self.protocol(split),
            "split": split.describe(),
            "samples": len(cands),
            "users": int(len(np.unique(cands.users))),
            "seed": seed,
            "catalog_items": data.n_items,
            "candidates": n_cand,
            "sampling": cands.protocol,
            "k": self.k,
            "chance": chance_values(n_cand, self.k, self.metrics),
            "intervals": (
                f"{LEVEL:.0%} percentile bootstrap over held-out events, {self.bootstrap} resamples"
                if self.bootstrap
                else "none"
            ),
            "models": how,
            "data_fingerprint": split.fingerprint(),
        }
        notes = [
            f"A random ordering of {n_cand} candidates scores the 'chance' values of the info "
            "above (e.g. Hit@k = k / candidates)."
        ]
        if users is not None:
            notes.append(
                f"Evaluated a random sample of {len(users)} of {total_users} users "
                f"(seed {ctx.seed})."
            )
        dropped = int(cands.protocol.get("dropped_rows", 0))
        if dropped:
            notes.append(
                f"{dropped} held-out events were left out: their user has fewer than "
                f"{self.negatives} items left to draw negatives from (short='drop')."
            )
        extra_info, extra_notes = write_outputs(
            ctx,
            stage,
            unit="event",
            units=cands.rows,
            columns=columns,
            values=per_user,
            metrics=metrics,
            intervals=intervals,
            title=f"{stage}: {data.name}, 1 + {self.negatives} {self.strategy}, {len(cands)} rows",
            per_user=self.per_user,
            chart=self.chart,
        )
        info.update(extra_info)
        return Report(
            evaluator=stage,
            metrics=metrics,
            info=info,
            intervals=intervals,
            notes=notes + extra_notes,
        )

    def _ranks(
        self,
        ctx: RunContext,
        model: recai.Ranker | recai.Retriever,
        name: str,
        users: np.ndarray,
        items: np.ndarray,
        histories: list[np.ndarray],
        scored: bool,
    ) -> np.ndarray:
        n, width = items.shape
        out = np.empty(n, dtype=np.int64)
        starts = range(0, n, self.batch_size)
        for start in ctx.progress(starts, desc=f"candidates {name}", total=len(starts)):
            stop = min(start + self.batch_size, n)
            hist = histories[start:stop]
            block = items[start:stop]
            if scored:
                # `scored` (uses_scores: the `via` setting or the model's role) picks the role
                scores = np.asarray(model.score(hist, block, users=users[start:stop]))  # type: ignore[union-attr]
                if scores.shape != block.shape:
                    raise ValueError(
                        f"model {name!r} returned scores of shape {scores.shape} for candidates "
                        f"of shape {block.shape}; expected one score per candidate"
                    )
                try:
                    out[start:stop] = candidate_ranks(scores, block)
                except ValueError as e:
                    raise ValueError(f"model {name!r}: {e}") from None
                continue
            queries = [
                Query(items=ItemList(np.asarray(h, dtype=np.int64)), user=int(u))
                for h, u in zip(hist, users[start:stop].tolist(), strict=True)
            ]
            for b, q in enumerate(queries):
                got = model.retrieve(q, width, candidates=ItemList(block[b])).ids  # type: ignore[union-attr]
                hit = np.flatnonzero(np.asarray(got) == block[b, 0])
                out[start + b] = int(hit[0]) if len(hit) else MISSED
        return out
