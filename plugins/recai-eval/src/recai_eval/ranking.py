"""ranking.v1: full-catalog top-k ranking metrics with bootstrap intervals, in bounded memory.

Every model ranks the whole catalog for every evaluated user, with the user's history masked.
Rankers are scored in user batches small enough that one batch's score matrix and its working
copies stay under ``memory_mb`` (a catalog of 10^6 items never makes a users x items matrix);
retrievers are asked for their list. From each user's top-``max(k)`` list come the accuracy
metrics (Recall, NDCG, Hit, MRR, Precision, MAP), catalog coverage, novelty and popularity bias.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

import recai
from recai.data import (
    Dataset,
    Interactions,
    Split,
    leave_one_out,
    random_split,
    temporal_split,
)
from recai.errors import DataError
from recai.runtime import RunContext
from recai.stats import bootstrap_intervals
from recai.types import ItemList, Query, Report

from .metrics import (
    ACCURACY,
    METRICS,
    arp_values,
    list_hits,
    list_metric_values,
    metric_name,
    novelty_values,
    top_k,
)
from .outputs import write_outputs

__all__ = [
    "RankingEvaluator",
    "ALL_METRICS",
    "DEFAULT_METRICS",
    "DEFAULT_K",
    "BYTES_PER_CELL",
    "Cases",
    "evaluation_cases",
    "users_per_batch",
    "parallel_top_k",
]

Metric = Literal["recall", "ndcg", "hit", "mrr", "precision", "map", "coverage", "novelty", "arp"]
ALL_METRICS: tuple[Metric, ...] = (
    "recall",
    "ndcg",
    "hit",
    "mrr",
    "precision",
    "map",
    "coverage",
    "novelty",
    "arp",
)
DEFAULT_METRICS: tuple[Metric, ...] = ("recall", "ndcg", "hit", "mrr", "precision")
DEFAULT_K: tuple[int, ...] = (10, 20)
LEVEL = 0.95
BYTES_PER_CELL = 24
"""Working memory per (user, item) score cell: float64 scores from the model, their negated
working copy, boolean masks and the model's own temporaries (measured: benchmarks/bench_eval.py)."""

BYTES_PER_LIST_CELL = 48
"""Working memory per (user, list position) cell of the top-k lists: the int64 list, the hit
marks and the float64 cumulative hits and precisions of the metrics."""

MAX_K = 100_000
"""Largest cut-off: a top-k list is allocated for every user of a batch (a k beyond the catalog
only pads the lists, so Precision@k keeps its meaning)."""
MAX_BATCH = 1_000_000
MAX_BOOTSTRAP = 20_000
"""Most bootstrap resamples: one row of means per resample is kept in memory."""
MAX_MEMORY_MB = 1 << 20
"""Largest memory_mb (1 TiB)."""
MAX_THREADS = 1024

SplitName = Literal["leave_one_out", "temporal", "random"]


def users_per_batch(n_items: int, memory_mb: float, batch_size: int, depth: int = 0) -> int:
    """How many users one batch scores: at most ``batch_size``, and few enough that both the
    score matrix (``users x n_items x BYTES_PER_CELL``) and the top-k lists (``users x depth x
    BYTES_PER_LIST_CELL``, ``depth`` the largest k) stay under ``memory_mb`` (at least one user).

    >>> users_per_batch(1_000_000, 256, 512), users_per_batch(4_000, 256, 512)
    (11, 512)
    >>> users_per_batch(4_000, 256, 512, depth=100_000)
    55
    """
    budget = memory_mb * (1 << 20)
    by_scores = budget // (max(1, n_items) * BYTES_PER_CELL)
    by_lists = budget // (max(1, depth) * BYTES_PER_LIST_CELL)
    return max(1, min(int(batch_size), int(by_scores), int(by_lists)))


class Cases:
    """Who is evaluated and against what: users, their relevant items (CSR), their histories.

    ``users[r]`` is row ``r``'s user; their relevant (held-out) items are
    ``rel_items[rel_indptr[r]:rel_indptr[r + 1]]`` (distinct, ascending) and ``histories[r]``
    the items they saw before (time order), which are masked from the ranking.
    """

    def __init__(
        self,
        users: np.ndarray,
        rel_indptr: np.ndarray,
        rel_items: np.ndarray,
        histories: list[np.ndarray],
    ) -> None:
        self.users = users
        self.rel_indptr = rel_indptr
        self.rel_items = rel_items
        self.histories = histories

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_relevant(self) -> np.ndarray:
        return np.diff(self.rel_indptr)

    def take(self, rows: np.ndarray) -> Cases:
        """The cases of ``rows`` (ascending indices), in that order."""
        counts = self.n_relevant[rows]
        starts = self.rel_indptr[rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        pick = np.repeat(starts - indptr[:-1], counts) + np.arange(indptr[-1])
        return Cases(
            self.users[rows],
            indptr,
            self.rel_items[pick],
            [self.histories[r] for r in rows.tolist()],
        )

    def masked_relevant(self) -> int:
        """How many (user, relevant item) pairs are also in the user's history (never found)."""
        n = len(self)
        lengths = np.array([len(h) for h in self.histories], dtype=np.int64)
        if not n or not lengths.sum():
            return 0
        seen = np.concatenate(self.histories).astype(np.int64)
        width = int(max(self.rel_items.max(initial=0), seen.max())) + 1
        hist_keys = np.repeat(np.arange(n, dtype=np.int64), lengths) * width + seen
        rel_keys = np.repeat(np.arange(n, dtype=np.int64), self.n_relevant) * width
        return int(np.isin(rel_keys + self.rel_items, hist_keys).sum())


def evaluation_cases(split: Split, target: Literal["test", "valid"] = "test") -> Cases:
    """Users with at least one ``target`` event, their distinct ``target`` items, and their
    histories: train items, plus valid items when the target is test (time order).

    >>> from recai.data import leave_one_out, synthetic_dataset
    >>> cases = evaluation_cases(leave_one_out(synthetic_dataset(n_users=20, n_items=15)))
    >>> len(cases), int(cases.n_relevant.max())
    (20, 1)
    """
    held = split.test if target == "test" else split.valid
    if held is None or len(held) == 0:
        hint = ""
        if split.protocol == "leave_one_out":
            need = 2 if target == "test" else 3
            hint = f" under leave-one-out (a user needs at least {need} interactions)"
        raise DataError(f"dataset {split.dataset.name!r}: no user has a {target} item{hint}")
    n_items = split.dataset.n_items
    pairs = np.unique(held.users * n_items + held.items)  # sorted by user, then item
    pair_users, rel_items = pairs // n_items, pairs % n_items
    users, counts = np.unique(pair_users, return_counts=True)
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    seen = split.train
    if target == "test" and split.valid is not None and len(split.valid):
        seen = _concat(split.train, split.valid)
    return Cases(users, indptr, rel_items, seen.histories(users.tolist()))


class RankingEvaluator(recai.Evaluator):
    """Full-catalog ranking of held-out items; rankers and retrievers alike.

    The data is split (``split``: leave-one-out by time by default; ``temporal`` or ``random``
    by user with ``holdout`` of the events in valid and in test) and every model is fitted on
    the training part (through ``ctx.fit``, so fits are cached). For ``target = "test"`` a user's
    history is their train and validation items in time order and the relevant items are their
    test items; for ``"valid"`` the history is the train items and the relevant items the
    validation items. History items are masked before ranking, so a relevant item that repeats
    one of the history can never be found (the report counts them).

    A **ranker** scores the whole catalog (``score(histories, None, users=...)``) in batches of
    users; the top ``max(k)`` unmasked items, ties to the lower index, form its list. A
    **retriever** (or any model with ``via = "retrieve"``) is asked
    ``retrieve(Query(items=ItemList(history), user=u), k=max(k) + len(history))`` and its list,
    with history items removed, cut to ``max(k)``: every metric is computed from that list (an
    item it does not return counts as not found).

    Metrics are means over users with percentile bootstrap intervals over users (seeded with
    the run's seed). Coverage@k (share of catalog items in anyone's top k) is one number for
    the whole set of lists, not a mean over users, so it has no interval. Per-user values go
    to ``stages/<stage>.per_user.npz`` for paired comparisons (``recai eval A B``) and a chart
    to ``<stage>.png``.

    >>> import tempfile
    >>> from recai.baselines import RandomRecommender, SyntheticDataset
    >>> ev = RankingEvaluator(SyntheticDataset(n_users=50), [RandomRecommender()], k=[10],
    ...     metrics=["ndcg", "coverage"], bootstrap=0, chart=False, per_user=False)
    >>> report = ev.evaluate(RunContext(tempfile.mkdtemp(), progress=False))
    >>> list(report.metrics["RandomRecommender"]), report.info["samples"]
    (['NDCG@10', 'Coverage@10'], 50)
    """

    def __init__(
        self,
        dataset: Annotated[recai.DatasetSource, Field(description="the dataset to evaluate on")],
        models: Annotated[
            Sequence[recai.Ranker | recai.Retriever],
            Field(min_length=1, description="rankers or retrievers to evaluate"),
        ],
        k: Annotated[
            Sequence[Annotated[int, Field(ge=1, le=MAX_K)]],
            Field(
                min_length=1,
                max_length=32,
                description=f"cut-offs of the top-k metrics (at most 32), each 1 .. {MAX_K:,}",
            ),
        ] = DEFAULT_K,
        metrics: Annotated[
            Sequence[Metric], Field(min_length=1, description="metrics to report at every k")
        ] = DEFAULT_METRICS,
        target: Annotated[
            Literal["test", "valid"], Field(description="which held-out items to rank")
        ] = "test",
        batch_size: Annotated[
            int, Field(ge=1, le=MAX_BATCH, description="most users scored per batch")
        ] = 512,
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
        split: Annotated[
            SplitName,
            Field(description="leave_one_out (by time), temporal (global cut) or random (by user)"),
        ] = "leave_one_out",
        holdout: Annotated[
            float,
            Field(gt=0, lt=0.5, description="temporal/random: share of events in valid and test"),
        ] = 0.1,
        memory_mb: Annotated[
            float,
            Field(
                gt=0,
                le=MAX_MEMORY_MB,
                description="bound on one batch's score matrix, top-k lists and working copies (MB)",
            ),
        ] = 256,
        via: Annotated[
            Literal["auto", "score", "retrieve"],
            Field(description="auto: rankers score the catalog, other models retrieve"),
        ] = "auto",
        per_user: Annotated[
            bool, Field(description="save per-user values for paired comparisons")
        ] = True,
        chart: Annotated[bool, Field(description="draw <stage>.png next to metrics.json")] = True,
        threads: Annotated[
            int,
            Field(
                ge=0,
                le=MAX_THREADS,
                description="threads ranking each batch's scores; 0: one per core",
            ),
        ] = 0,
    ) -> None:
        if not models:
            raise ValueError("ranking.v1 needs at least one model")
        bad = [m for m in metrics if m not in METRICS]
        if bad:
            raise ValueError(f"unknown metric(s) {bad}; choose from {', '.join(METRICS)}")
        if not k or min(k) < 1:
            raise ValueError(f"k must be a non-empty list of positive cut-offs, got {list(k)}")
        if target not in ("test", "valid"):
            raise ValueError(f"target must be 'test' or 'valid', got {target!r}")
        for i, m in enumerate(models):
            if not isinstance(m, (recai.Ranker, recai.Retriever)):
                raise ValueError(f"models[{i}] is {type(m).__name__}, not a ranker or retriever")
            if via == "score" and not isinstance(m, recai.Ranker):
                raise ValueError(f"models[{i}] ({type(m).__name__}) cannot score: not a ranker")
            if via == "retrieve" and not isinstance(m, recai.Retriever):
                raise ValueError(f"models[{i}] ({type(m).__name__}) is not a retriever")
        self.dataset = dataset
        self.models = list(models)
        self.k = sorted({int(x) for x in k})
        self.metrics = list(dict.fromkeys(metrics))
        self.target = target
        self.batch_size = max(1, int(batch_size))
        self.bootstrap = max(0, int(bootstrap))
        self.max_users = max_users
        self.split = split
        self.holdout = float(holdout)
        self.memory_mb = float(memory_mb)
        self.via = via
        self.per_user = per_user
        self.chart = chart
        self.threads = int(threads)

    # -- protocol ---------------------------------------------------------------------------------
    def make_split(self, data: Dataset, seed: int) -> Split:
        if self.split == "leave_one_out":
            return leave_one_out(data)
        if self.split == "temporal":
            return temporal_split(data, valid=self.holdout, test=self.holdout)
        return random_split(data, valid=self.holdout, test=self.holdout, by="user", seed=seed)

    def protocol(self, split: Split, n_items: int) -> str:
        if split.protocol == "leave_one_out":
            order = "time" if split.dataset.interactions.timestamps is not None else "file order"
            how = f"leave-one-out by {order}"
        else:
            how = split.describe()
        masked = "train+valid items masked" if self.target == "test" else "train items masked"
        held = "item" if split.protocol == "leave_one_out" else "items"
        return f"{how}, full ranking over all {n_items} items, {self.target} {held}, {masked}"

    def uses_scores(self, model: object) -> bool:
        return self.via == "score" or (self.via == "auto" and isinstance(model, recai.Ranker))

    def columns(self) -> tuple[list[str], list[str]]:
        """``(all report columns, the per-user ones)`` in report order (metric, then k)."""
        every = [metric_name(m, k) for m in self.metrics for k in self.k]
        per_user = [metric_name(m, k) for m in self.metrics if m != "coverage" for k in self.k]
        return every, per_user

    # -- running ----------------------------------------------------------------------------------
    def evaluate(self, ctx: RunContext) -> Report:
        data: Dataset = self.dataset.dataset()
        split = self.make_split(data, ctx.seed)
        cases = evaluation_cases(split, self.target)
        total = len(cases)
        if self.max_users is not None and self.max_users < total:
            rng = np.random.default_rng(ctx.seed)
            cases = cases.take(np.sort(rng.choice(total, size=self.max_users, replace=False)))
        n_items = data.n_items
        item_counts = np.bincount(split.train.items, minlength=n_items)
        stage = ctx.name_of(self)
        names = ctx.names_of(self.models)
        every, per_user_columns = self.columns()
        batch = users_per_batch(n_items, self.memory_mb, self.batch_size, max(self.k))

        metrics: dict[str, dict[str, float]] = {}
        intervals: dict[str, dict[str, tuple[float, float]]] = {}
        per_user: dict[str, np.ndarray] = {}
        how: dict[str, str] = {}
        empty_lists: dict[str, int] = {}
        for model, name in zip(self.models, names, strict=True):
            ctx.fit(model, split)
            scored = self.uses_scores(model)
            how[name] = "scores every item" if scored else f"retrieve(k={max(self.k)} + history)"
            values, covered, empty = self._run_model(
                ctx, model, name, cases, n_items, item_counts, batch, scored
            )
            per_user[name] = values
            means = values.mean(axis=0) if len(values) else np.zeros(values.shape[1])
            row = dict(zip(per_user_columns, means.tolist(), strict=True))
            row.update({metric_name("coverage", k): covered[k] for k in covered})
            metrics[name] = {c: float(row[c]) for c in every}
            if self.bootstrap and len(values):
                low, high = bootstrap_intervals(values, self.bootstrap, ctx.seed, LEVEL)
                intervals[name] = {
                    c: (float(lo), float(hi))
                    for c, lo, hi in zip(per_user_columns, low, high, strict=True)
                }
            if empty:
                empty_lists[name] = empty

        info = {
            "dataset": data.name,
            "protocol": self.protocol(split, n_items),
            "split": split.describe(),
            "samples": len(cases),
            "users_with_target": total,
            "relevant_items": int(len(cases.rel_items)),
            "seed": ctx.seed,
            "catalog_items": n_items,
            "k": self.k,
            "intervals": (
                f"{LEVEL:.0%} percentile bootstrap over users, {self.bootstrap} resamples"
                if self.bootstrap
                else "none"
            ),
            "models": how,
            "data_fingerprint": split.fingerprint(),
            "batch": f"{batch} users per batch (memory_mb={self.memory_mb:g})",
        }
        notes = []
        if len(cases) < total:
            notes.append(
                f"Evaluated a random sample of {len(cases)} of {total} users (seed {ctx.seed})."
            )
        repeated = cases.masked_relevant()
        if repeated:
            notes.append(
                f"{repeated} of {len(cases.rel_items)} relevant {self.target} items are already "
                "in the user's history; history items are masked, so these count as misses for "
                "every model."
            )
        if "coverage" in self.metrics:
            notes.append(
                "Coverage@k is the share of catalog items in at least one user's top k: one "
                "number for all lists, so it has no bootstrap interval."
            )
        if "novelty" in self.metrics or "arp" in self.metrics:
            notes.append(
                "Novelty@k: mean -log2 of the training share of the listed items (add-one "
                "smoothed); ARP@k: mean number of training events of the listed items."
            )
        for name, n in empty_lists.items():
            notes.append(f"{name}: {n} users got an empty list (every metric is 0 for them).")
        extra_info, extra_notes = write_outputs(
            ctx,
            stage,
            unit="user",
            units=cases.users,
            columns=per_user_columns,
            values=per_user,
            metrics=metrics,
            intervals=intervals,
            title=f"{stage}: {data.name}, {split.describe()}, {len(cases)} users",
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

    def _run_model(
        self,
        ctx: RunContext,
        model: recai.Ranker | recai.Retriever,
        name: str,
        cases: Cases,
        n_items: int,
        item_counts: np.ndarray,
        batch: int,
        scored: bool,
    ) -> tuple[np.ndarray, dict[int, float], int]:
        """Per-user values (users x per-user columns), coverage per k, count of empty lists."""
        n = len(cases)
        depth = max(self.k)
        accuracy = [m for m in self.metrics if m in ACCURACY]
        seen = {k: np.zeros(n_items, dtype=bool) for k in self.k}
        out: list[np.ndarray] = []
        empty = 0
        starts = range(0, n, batch)
        for start in ctx.progress(starts, desc=f"ranking {name}", total=len(starts)):
            stop = min(start + batch, n)
            hist = cases.histories[start:stop]
            users = cases.users[start:stop]
            # `scored` (uses_scores: the `via` setting or the model's role) picks the role
            if scored:
                lists = self._ranked(model, name, hist, users, n_items, depth)  # type: ignore[arg-type]
            else:
                lists = self._retrieved(model, name, hist, users, n_items, depth)  # type: ignore[arg-type]
            empty += int((lists[:, 0] < 0).sum())
            indptr = cases.rel_indptr[start : stop + 1] - cases.rel_indptr[start]
            rel = cases.rel_items[cases.rel_indptr[start] : cases.rel_indptr[stop]]
            hits = list_hits(lists, indptr, rel)
            acc = list_metric_values(hits, np.diff(indptr), self.k, accuracy)
            columns: list[np.ndarray] = []
            for metric in self.metrics:
                for k in self.k:
                    if metric in ACCURACY:
                        columns.append(acc[metric_name(metric, k)])
                    elif metric == "novelty":
                        columns.append(novelty_values(lists, k, item_counts))
                    elif metric == "arp":
                        columns.append(arp_values(lists, k, item_counts))
            for k in self.k:
                top = lists[:, :k]
                seen[k][top[top >= 0]] = True
            out.append(np.column_stack(columns) if columns else np.zeros((stop - start, 0)))
        width = sum(1 for m in self.metrics if m != "coverage") * len(self.k)
        values = np.concatenate(out) if out else np.zeros((0, width))
        covered = (
            {k: float(seen[k].sum() / n_items) for k in self.k}
            if "coverage" in self.metrics
            else {}
        )
        return values, covered, empty

    def _ranked(
        self,
        model: recai.Ranker,
        name: str,
        hist: list[np.ndarray],
        users: np.ndarray,
        n_items: int,
        depth: int,
    ) -> np.ndarray:
        b = len(hist)
        scores = np.asarray(model.score(hist, None, users=users))
        if scores.shape != (b, n_items):
            raise ValueError(
                f"model {name!r} returned scores of shape {scores.shape} for {b} users; "
                f"expected ({b}, {n_items}), one column per catalog item"
            )
        lengths = [len(h) for h in hist]
        rows = np.repeat(np.arange(b), lengths)
        cols = np.concatenate(hist) if sum(lengths) else np.zeros(0, dtype=np.int64)
        try:
            return parallel_top_k(scores, depth, rows, cols, self.threads)
        except ValueError as e:
            raise ValueError(f"model {name!r}: {e}") from None

    def _retrieved(
        self,
        model: recai.Retriever,
        name: str,
        hist: list[np.ndarray],
        users: np.ndarray,
        n_items: int,
        depth: int,
    ) -> np.ndarray:
        want = min(n_items, depth + max((len(h) for h in hist), default=0))
        queries = [
            Query(items=ItemList(np.asarray(h, dtype=np.int64)), user=int(u))
            for h, u in zip(hist, users.tolist(), strict=True)
        ]
        found = model.retrieve_batch(queries, want)
        if len(found) != len(queries):
            raise ValueError(
                f"model {name!r} answered {len(found)} lists for {len(queries)} queries"
            )
        lists = np.full((len(hist), depth), -1, dtype=np.int64)
        for b, (got, h) in enumerate(zip(found, hist, strict=True)):
            ids = np.asarray(got.ids, dtype=np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= n_items):
                raise ValueError(f"model {name!r} retrieved items outside 0..{n_items - 1}")
            if len(np.unique(ids)) != len(ids):
                raise ValueError(f"model {name!r} retrieved the same item twice for one query")
            if len(h):
                ids = ids[~np.isin(ids, h)]
            ids = ids[:depth]
            lists[b, : len(ids)] = ids
        return lists


MIN_ROWS_PER_THREAD = 16


@lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recai-eval")


def parallel_top_k(
    scores: np.ndarray, k: int, rows: np.ndarray, cols: np.ndarray, threads: int = 0
) -> np.ndarray:
    """:func:`~recai_eval.metrics.top_k` over row blocks in threads (numpy releases the GIL in
    the partition and the comparisons); the same result as one call. ``rows`` must be sorted.
    ``threads = 0`` uses one thread per core, at most 8.

    >>> s = np.arange(40.0).reshape(20, 2) % 3
    >>> bool((parallel_top_k(s, 1, np.array([]), np.array([]), 4) == top_k(s, 1)).all())
    True
    """
    n = len(scores)
    workers = threads or min(8, os.cpu_count() or 1)
    workers = max(1, min(workers, n // MIN_ROWS_PER_THREAD))
    if workers == 1:
        return top_k(scores, k, rows, cols)
    cuts = np.linspace(0, n, workers + 1).astype(np.int64)
    bounds = np.searchsorted(rows, cuts)
    jobs = [
        _pool(workers).submit(top_k, scores[a:b], k, rows[lo:hi] - a, cols[lo:hi])
        for a, b, lo, hi in zip(cuts[:-1], cuts[1:], bounds[:-1], bounds[1:], strict=True)
    ]
    return np.concatenate([job.result() for job in jobs])


def _concat(a: Interactions, b: Interactions) -> Interactions:
    """The events of ``a`` then ``b`` (histories come out in time order; ties keep a before b)."""
    ts = None
    if a.timestamps is not None and b.timestamps is not None:
        ts = np.concatenate([a.timestamps, b.timestamps])
    return Interactions(
        np.concatenate([a.users, b.users]),
        np.concatenate([a.items, b.items]),
        n_users=a.n_users,
        n_items=a.n_items,
        timestamps=ts,
    )
