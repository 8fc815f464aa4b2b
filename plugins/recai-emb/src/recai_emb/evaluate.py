"""Per-task evaluation of text retrievers on RecLM-emb's held-out queries (``embedding.tasks.v1``).

Evaluation queries are the ``"test"`` part of the task generators (:mod:`recai_emb.tasks`):
history tasks target each sampled user's held-out test event, item-text tasks ask about held-out
items. Every retriever answers every query over the whole catalog (``Query(text=...)``); the
query's own history or seed item is removed from its list, which is then cut to ``k``. Per query:

- **id tasks** (the query names one item): ``hit@k`` (= ``recall@k``: one relevant item) and
  ``ndcg@k`` (``1 / log2(rank + 2)`` when found);
- **condition tasks** (the query states a condition): ``coverage@k``, the fraction of the ``k``
  listed items that meet the condition (a list shorter than ``k`` counts the gap as misses);
- tasks of kind ``both`` get all three.

Means come with 95% percentile bootstrap intervals over queries, computed with the kernel's
:func:`recai.stats.bootstrap_intervals`; the resamples are the same for every retriever
(paired), seeded by the run's seed. With several retrievers, each one after the first is also
compared with the first by :func:`recai.stats.paired_bootstrap` (the mean difference per
task metric, its interval and a two-sided p-value) under ``info["comparisons"]`` — base model
first, fine-tuned after gives "before and after fine-tuning" directly.

>>> import numpy as np
>>> mean, (lo, hi) = bootstrap_mean(np.array([0.0, 1.0, 1.0, 0.0]), 200, seed=0)
>>> mean, bool(lo <= mean <= hi)
(0.5, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
from pydantic import Field

from recai.errors import RecaiError
from recai.roles import DatasetSource, Evaluator, Retriever
from recai.runtime import RunContext
from recai.specs import Seed
from recai.stats import bootstrap_intervals, paired_bootstrap
from recai.types import Query, Report

from .taskdata import TaskData
from .tasks import RULE_TASKS, Example, generate, task_class

__all__ = ["TaskEvaluator", "bootstrap_mean", "example_metrics", "evaluate_examples"]


def bootstrap_mean(
    values: np.ndarray, resamples: int, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """The mean of ``values`` and its 95% percentile bootstrap interval (``resamples`` draws,
    :func:`recai.stats.bootstrap_intervals`)."""
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean()) if len(v) else float("nan")
    if resamples <= 0 or len(v) < 2:
        return mean, (mean, mean)
    lo, hi = bootstrap_intervals(v, resamples, seed)
    return mean, (float(lo[0]), float(hi[0]))


def example_metrics(
    example: Example, ranked: Sequence[int], data: TaskData, ks: Sequence[int]
) -> dict[str, float]:
    """The metric values of one answered query (``ranked``: item indices, best first, with the
    query's excluded items already removed)."""
    out: dict[str, float] = {}
    ranked = [int(x) for x in ranked]
    if example.kind in ("id", "both"):
        rank = ranked.index(example.pos) if example.pos in ranked else None
        for k in ks:
            hit = rank is not None and rank < k
            out[f"hit@{k}"] = float(hit)
            out[f"ndcg@{k}"] = float(1.0 / np.log2(rank + 2)) if rank is not None and hit else 0.0
    if example.kind in ("condition", "both") and example.condition is not None:
        mask = example.condition.mask(data)
        for k in ks:
            top = ranked[:k]
            out[f"coverage@{k}"] = float(mask[top].sum()) / k if top else 0.0
    return out


def evaluate_examples(
    retriever: Retriever,
    examples: Sequence[Example],
    data: TaskData,
    ks: Sequence[int] = (10,),
    *,
    batch: int = 256,
) -> list[dict[str, float]]:
    """Metric values of every example for one retriever (see the module docstring)."""
    top = max(ks)
    values: list[dict[str, float]] = []
    for start in range(0, len(examples), batch):
        chunk = examples[start : start + batch]
        want = top + max((len(e.exclude) for e in chunk), default=0)
        found = retriever.retrieve_batch([Query(text=e.query) for e in chunk], want)
        for e, items in zip(chunk, found, strict=True):
            banned = set(e.exclude)
            ranked = [int(i) for i in items.ids if int(i) not in banned][:top]
            values.append(example_metrics(e, ranked, data, ks))
    return values


class TaskEvaluator(Evaluator):
    """Text retrievers on RecLM-emb's held-out task queries (``embedding.tasks.v1``).

    Params: ``dataset``; ``retrievers`` (compared on the same queries); ``tasks`` (default: every
    rule-made task); ``samples`` queries per task (fewer when the held-out part is smaller);
    ``k``; ``bootstrap`` resamples (0: no intervals); ``item_holdout``/``holdout_seed`` (which
    items are held out: a fine-tuned retriever must have been trained with the same, or the
    evaluation refuses to run); ``max_history`` (titles in a history query); ``seed`` (of the
    queries; default the run's).
    """

    def __init__(
        self,
        dataset: DatasetSource,
        retrievers: Annotated[list[Retriever], Field(max_length=256)],
        tasks: Annotated[list[str], Field(max_length=100)] = list(RULE_TASKS),  # noqa: B006 - validated copy per instance
        samples: Annotated[int, Field(ge=1, le=1_000_000)] = 300,
        k: Annotated[
            list[Annotated[int, Field(ge=1, le=100_000)]], Field(min_length=1, max_length=32)
        ] = [10],  # noqa: B006
        bootstrap: Annotated[int, Field(ge=0, le=20_000)] = 1000,
        item_holdout: Annotated[float, Field(ge=0, lt=1)] = 0.2,
        holdout_seed: Seed = 0,
        max_history: Annotated[int, Field(ge=1, le=10_000)] = 10,
        seed: Seed | None = None,
    ) -> None:
        for t in tasks:
            task_class(t)
        if not retrievers:
            raise RecaiError("embedding.tasks.v1: name at least one retriever")
        self.dataset = dataset
        self.retrievers = list(retrievers)
        self.tasks = list(tasks)
        self.samples = int(samples)
        self.k = sorted({int(x) for x in k})
        self.bootstrap = int(bootstrap)
        self.item_holdout = float(item_holdout)
        self.holdout_seed = int(holdout_seed)
        self.max_history = int(max_history)
        self.seed = seed

    def evaluate(self, ctx: RunContext) -> Report:
        seed = ctx.seed if self.seed is None else int(self.seed)
        data = TaskData.from_dataset(
            self.dataset.dataset(),
            item_holdout=self.item_holdout,
            holdout_seed=self.holdout_seed,
            max_history=self.max_history,
        )
        for r in self.retrievers:
            ctx.fit(r, data.split)
            trained = getattr(r, "heldout_key", None)
            if callable(trained):
                trained = trained()
            if trained is not None and trained != data.heldout_key():
                raise RecaiError(
                    f"embedding.tasks.v1: {ctx.name_of(r)} was fine-tuned with other held-out "
                    "items (item_holdout / holdout_seed differ): its scores would be leaked"
                )
        examples, made = generate(data, self.tasks, self.samples, part="test", seed=seed)
        by_task = {t: [e for e in examples if e.task == t] for t in self.tasks}
        metrics: dict[str, dict[str, float]] = {}
        intervals: dict[str, dict[str, tuple[float, float]]] = {}
        columns: dict[str, dict[str, np.ndarray]] = {}  # per retriever: "task.metric" -> values
        for r, name in zip(self.retrievers, ctx.names_of(self.retrievers), strict=True):
            metrics[name], intervals[name], columns[name] = {}, {}, {}
            for t, exs in ctx.progress(list(by_task.items()), desc=f"{name}: tasks"):
                if not exs:
                    continue
                values = evaluate_examples(r, exs, data, self.k)
                names = list(values[0])
                table = np.array([[v[m] for m in names] for v in values], dtype=np.float64)
                if self.bootstrap and len(table) >= 2:
                    low, high = bootstrap_intervals(table, self.bootstrap, seed)
                for j, m in enumerate(names):
                    key = f"{t}.{m}"
                    columns[name][key] = table[:, j]
                    metrics[name][key] = float(table[:, j].mean())
                    if self.bootstrap:
                        mean = metrics[name][key]
                        intervals[name][key] = (
                            (float(low[j]), float(high[j])) if len(table) >= 2 else (mean, mean)
                        )
        comparisons: dict[str, dict[str, dict[str, float]]] = {}
        names = list(columns)
        if self.bootstrap and len(names) > 1:
            base = names[0]
            for other in names[1:]:
                pair: dict[str, dict[str, float]] = {}
                for t in self.tasks:  # one paired bootstrap per task: its queries are the rows
                    keys = [
                        k for k in columns[base] if k.startswith(f"{t}.") and k in columns[other]
                    ]
                    if not keys:
                        continue
                    a = np.stack([columns[base][k] for k in keys], axis=1)
                    b = np.stack([columns[other][k] for k in keys], axis=1)
                    res = paired_bootstrap(a, b, self.bootstrap, seed)
                    for j, k in enumerate(keys):
                        pair[k] = {
                            "delta": float(res["delta"][j]),
                            "low": float(res["low"][j]),
                            "high": float(res["high"][j]),
                            "p": float(res["p"][j]),
                        }
                comparisons[f"{other} vs {base}"] = pair
        info = {
            "dataset": data.dataset.name,
            "protocol": "RecLM-emb task queries on held-out targets: history tasks target each "
            "user's leave-one-out test event (history = train + valid events); item-text tasks "
            f"ask about {int(data.heldout.sum())} held-out items ({self.item_holdout:.0%}, "
            f"seed {self.holdout_seed}); whole-catalog retrieval, query history/item removed; "
            "hit/ndcg@k for id tasks, coverage@k (share of the top k meeting the condition) for "
            "condition tasks; 95% percentile bootstrap over queries",
            "split": data.split.describe(),
            "samples": {t: len(v) for t, v in by_task.items()},
            "generation": made,
            "seed": seed,
            "bootstrap": self.bootstrap,
            "k": self.k,
            "heldout_items": data.heldout_key(),
            "comparisons": comparisons,
        }
        return Report("embedding.tasks.v1", metrics, info, intervals if self.bootstrap else {})
