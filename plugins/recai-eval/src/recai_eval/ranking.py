"""ranking.v1: leave-one-out, full-catalog top-k ranking metrics with bootstrap intervals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

import recai
from recai.data import Dataset, Interactions, Split, leave_one_out
from recai.errors import DataError
from recai.runtime import RunContext
from recai.types import Report

from .metrics import METRICS, bootstrap_intervals, metric_values, target_ranks

__all__ = ["RankingEvaluator", "ALL_METRICS", "DEFAULT_K"]

Metric = Literal["recall", "ndcg", "hit", "mrr", "precision"]
ALL_METRICS: tuple[Metric, ...] = ("recall", "ndcg", "hit", "mrr", "precision")
DEFAULT_K: tuple[int, ...] = (10, 20)
LEVEL = 0.95


class RankingEvaluator(recai.Evaluator):
    """Leave-one-out by time; each model ranks the whole catalog for every user.

    Every model is fitted on the training part (through ``ctx.fit``, so fits are cached). For
    ``target = "test"`` a user's history is their train and validation items in time order, and
    the held-out item is the last one; for ``"valid"`` the history is the train items and the
    held-out item the second to last. History items are masked before ranking. Metrics are means
    over users, with percentile bootstrap intervals over users (seeded with the run's seed).
    """

    def __init__(
        self,
        dataset: Annotated[recai.DatasetSource, Field(description="the dataset to evaluate on")],
        models: Annotated[
            Sequence[recai.Ranker], Field(min_length=1, description="rankers to evaluate")
        ],
        k: Annotated[
            Sequence[Annotated[int, Field(ge=1)]],
            Field(min_length=1, description="cut-offs of the top-k metrics"),
        ] = DEFAULT_K,
        metrics: Annotated[
            Sequence[Metric], Field(min_length=1, description="metrics to report at every k")
        ] = ALL_METRICS,
        target: Annotated[
            Literal["test", "valid"], Field(description="which held-out item to rank")
        ] = "test",
        batch_size: Annotated[int, Field(ge=1, description="users scored per batch")] = 512,
        bootstrap: Annotated[
            int, Field(ge=0, description="bootstrap resamples for 95% intervals; 0 disables")
        ] = 1000,
        max_users: Annotated[
            Annotated[int, Field(ge=1)] | None,
            Field(description="evaluate a seeded random sample of at most this many users"),
        ] = None,
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
        self.dataset = dataset
        self.models = list(models)
        self.k = sorted({int(x) for x in k})
        self.metrics = list(dict.fromkeys(metrics))
        self.target = target
        self.batch_size = max(1, int(batch_size))
        self.bootstrap = max(0, int(bootstrap))
        self.max_users = max_users

    # -- protocol ---------------------------------------------------------------------------------
    def protocol(self, split: Split, n_items: int) -> str:
        order = "time" if split.dataset.interactions.timestamps is not None else "file order"
        masked = "train+valid items masked" if self.target == "test" else "train items masked"
        return (
            f"leave-one-out by {order}, full ranking over all {n_items} items, "
            f"{self.target} item, {masked}"
        )

    def cases(self, split: Split) -> tuple[np.ndarray, np.ndarray, Interactions]:
        """``(users, targets, histories)``: who is evaluated, their held-out item, what they saw."""
        held = split.test if self.target == "test" else split.valid
        if held is None or len(held) == 0:
            need = 2 if self.target == "test" else 3
            raise DataError(
                f"dataset {split.dataset.name!r}: no user has a {self.target} item under "
                f"leave-one-out (a user needs at least {need} interactions)"
            )
        order = np.argsort(held.users, kind="stable")
        users, targets = held.users[order], held.items[order]
        if len(np.unique(users)) != len(users):
            raise DataError(f"split {split.describe()}: some users hold out more than one item")
        seen = split.train
        if self.target == "test" and split.valid is not None and len(split.valid):
            seen = _concat(split.train, split.valid)
        return users, targets, seen

    # -- running ----------------------------------------------------------------------------------
    def evaluate(self, ctx: RunContext) -> Report:
        data: Dataset = self.dataset.dataset()
        split = leave_one_out(data)
        users, targets, seen = self.cases(split)
        total = len(users)
        if self.max_users is not None and self.max_users < total:
            rng = np.random.default_rng(ctx.seed)
            pick = np.sort(rng.choice(total, size=self.max_users, replace=False))
            users, targets = users[pick], targets[pick]
        histories = seen.histories(users.tolist())
        n_items = data.n_items
        repeated = sum(
            int(t in set(h.tolist())) for h, t in zip(histories, targets.tolist(), strict=True)
        )

        names = _unique_names([ctx.name_of(m) for m in self.models])
        columns = list(metric_values(np.zeros(0), self.k, self.metrics))
        metrics: dict[str, dict[str, float]] = {}
        intervals: dict[str, dict[str, tuple[float, float]]] = {}
        for model, name in zip(self.models, names, strict=True):
            ctx.fit(model, split)
            values = self._values(ctx, model, name, users, targets, histories, n_items)
            metrics[name] = {c: float(v) for c, v in zip(columns, values.mean(axis=0), strict=True)}
            if self.bootstrap:
                low, high = bootstrap_intervals(values, self.bootstrap, ctx.seed, LEVEL)
                intervals[name] = {
                    c: (float(lo), float(hi)) for c, lo, hi in zip(columns, low, high, strict=True)
                }

        info = {
            "dataset": data.name,
            "protocol": self.protocol(split, n_items),
            "split": split.describe(),
            "samples": len(users),
            "users_with_target": total,
            "seed": ctx.seed,
            "catalog_items": n_items,
            "k": self.k,
            "intervals": (
                f"{LEVEL:.0%} percentile bootstrap over users, {self.bootstrap} resamples"
                if self.bootstrap
                else "none"
            ),
        }
        notes = []
        if len(users) < total:
            notes.append(
                f"Evaluated a random sample of {len(users)} of {total} users (seed {ctx.seed})."
            )
        if repeated:
            notes.append(
                f"{repeated} of {len(users)} users' {self.target} item is already in their "
                "history; "
                "history items are masked, so these count as misses for every model."
            )
        return Report(
            evaluator=ctx.name_of(self),
            metrics=metrics,
            info=info,
            intervals=intervals,
            notes=notes,
        )

    def _values(
        self,
        ctx: RunContext,
        model: recai.Ranker,
        name: str,
        users: np.ndarray,
        targets: np.ndarray,
        histories: list[np.ndarray],
        n_items: int,
    ) -> np.ndarray:
        """Per-user metric values (users x columns) of one model."""
        n = len(users)
        starts = range(0, n, self.batch_size)
        out: list[np.ndarray] = []
        for start in ctx.progress(starts, desc=f"ranking {name}", total=len(starts)):
            stop = min(start + self.batch_size, n)
            hist = histories[start:stop]
            scores = np.asarray(model.score(hist, None, users=users[start:stop]), dtype=np.float64)
            if scores.shape != (stop - start, n_items):
                raise ValueError(
                    f"model {name!r} returned scores of shape {scores.shape} for {stop - start} "
                    f"users; expected ({stop - start}, {n_items}), one column per catalog item"
                )
            mask = np.zeros(scores.shape, dtype=bool)
            lengths = [len(h) for h in hist]
            if sum(lengths):
                mask[np.repeat(np.arange(len(hist)), lengths), np.concatenate(hist)] = True
            try:
                ranks = target_ranks(scores, targets[start:stop], mask)
            except ValueError as e:
                raise ValueError(f"model {name!r}: {e}") from None
            values = metric_values(ranks, self.k, self.metrics)
            out.append(np.column_stack(list(values.values())))
        return np.concatenate(out) if out else np.zeros((0, len(self.k) * len(self.metrics)))


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


def _unique_names(names: list[str]) -> list[str]:
    """Report rows need distinct keys: a repeated name gets ``#2``, ``#3``, ..."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out
