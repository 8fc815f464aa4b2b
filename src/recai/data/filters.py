"""Filters over interactions, each returning the filtered data and a report of what it removed.

- :func:`min_rating`: implicit feedback from ratings (keep events rated at least a threshold);
- :func:`deduplicate`: one event per (user, item) pair, by a stated policy;
- :func:`k_core`: repeat until every user and every item has at least ``k`` events, then
  re-index users and items contiguously (catalog, user ids, user columns and knowledge-graph
  links follow);
- :func:`apply_filters`: the three in RecBole's order (duplicates, then ratings, then k-core).

Every filter accepts a :class:`~recai.data.Dataset` (and returns one, with the report appended to
``info["filters"]``) or bare :class:`~recai.data.Interactions`. Nothing is removed silently: the
:class:`FilterReport` counts events, users and items before and after each step. A filter that
would leave no events raises :class:`~recai.errors.DataError` instead of returning empty data.

>>> from recai.data import synthetic_dataset
>>> ds, report = k_core(synthetic_dataset(n_users=50, n_items=30, seed=1), 5)
>>> report.steps[0].name, report.steps[0].events_after == len(ds.interactions)
('k_core', True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, TypeVar

import numpy as np

from ..errors import DataError
from .catalog import Catalog
from .dataset import Dataset
from .interactions import Interactions
from .knowledge import KnowledgeGraph

__all__ = [
    "FilterStep",
    "FilterReport",
    "min_rating",
    "deduplicate",
    "k_core",
    "apply_filters",
    "subset_catalog",
    "DedupPolicy",
]

Data = TypeVar("Data", Dataset, Interactions)
DedupPolicy = Literal["first", "last", "none"]


@dataclass(frozen=True)
class FilterStep:
    """What one filter did. ``users_*``/``items_*`` count users and items *with events*;
    ``users_removed``/``items_removed`` count those dropped from the index (only :func:`k_core`
    re-indexes; other filters keep every index, possibly with no events left)."""

    name: str
    params: dict[str, Any]
    events_before: int
    events_after: int
    users_before: int
    users_after: int
    items_before: int
    items_after: int
    users_removed: int = 0
    items_removed: int = 0
    note: str = ""

    @property
    def events_removed(self) -> int:
        return self.events_before - self.events_after

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (what goes into ``dataset.info["filters"]``)."""
        out = asdict(self)
        out["events_removed"] = self.events_removed
        return out

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        text = (
            f"{self.name}({args}): removed {self.events_removed} of {self.events_before} events; "
            f"users with events {self.users_before} -> {self.users_after}, "
            f"items with events {self.items_before} -> {self.items_after}"
        )
        if self.users_removed or self.items_removed:
            dropped = f"{self.users_removed} users and {self.items_removed} items"
            text += f"; dropped {dropped} from the index"
        return text + (f" ({self.note})" if self.note else "")


@dataclass
class FilterReport:
    """The steps applied, in order, and how indices changed.

    ``kept_users[new] = old`` and ``kept_items[new] = old`` map the filtered indices back to the
    input's (identity when nothing was re-indexed).
    """

    steps: list[FilterStep] = field(default_factory=list)
    kept_users: np.ndarray | None = None
    kept_items: np.ndarray | None = None

    def then(self, other: FilterReport) -> FilterReport:
        """This report followed by ``other`` (indices composed)."""
        users = _compose(self.kept_users, other.kept_users)
        items = _compose(self.kept_items, other.kept_items)
        return FilterReport(self.steps + other.steps, users, items)

    def to_dict(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.steps]

    def summary(self) -> str:
        """One line per step.

        >>> from recai.data import Interactions
        >>> inter = Interactions([0, 0, 1], [0, 1, 1], n_users=2, n_items=2, ratings=[5, 2, 4])
        >>> print(min_rating(inter, 4)[1].summary())
        min_rating(threshold=4.0): removed 1 of 3 events; users with events 2 -> 2, items with events 2 -> 2
        """
        return "\n".join(s.describe() for s in self.steps) or "no filters"


def _compose(first: np.ndarray | None, second: np.ndarray | None) -> np.ndarray | None:
    if first is None:
        return second
    if second is None:
        return first
    return first[second]


def _interactions(data: Dataset | Interactions) -> Interactions:
    if isinstance(data, Dataset):
        return data.interactions
    if isinstance(data, Interactions):
        return data
    raise TypeError(f"expected a Dataset or Interactions, got {type(data).__name__}")


def _active(inter: Interactions) -> tuple[int, int]:
    return (
        int(np.count_nonzero(inter.user_counts())),
        int(np.count_nonzero(inter.item_counts())),
    )


def _step(
    name: str,
    params: dict[str, Any],
    before: Interactions,
    after: Interactions,
    **extra: Any,
) -> FilterStep:
    ub, ib = _active(before)
    ua, ia = _active(after)
    return FilterStep(name, params, len(before), len(after), ub, ua, ib, ia, **extra)


def _refuse_empty(step: FilterStep, hint: str) -> None:
    if step.events_after == 0:
        raise DataError(
            f"{step.name} with {', '.join(f'{k}={v}' for k, v in step.params.items())} leaves no "
            f"interactions (it had {step.events_before}); {hint}"
        )


def _with_step(data: Data, inter: Interactions, step: FilterStep) -> Data:
    # mypy checks the Dataset case of `Data` against an imagined subclass of both classes
    if isinstance(data, Interactions):
        return inter  # type: ignore[return-value]
    info: dict[str, Any] = dict(data.info)
    info["filters"] = [*info.get("filters", []), step.to_dict()]
    return replace(data, interactions=inter, info=info)


def min_rating(data: Data, threshold: float) -> tuple[Data, FilterReport]:
    """Keep events rated at least ``threshold`` (implicit feedback from explicit ratings).

    Events without a rating (``NaN``) are removed too, and counted. User and item indices stay;
    users or items left without events still exist (``k_core(data, 1)`` drops them).

    >>> from recai.data import Interactions
    >>> inter = Interactions([0, 0, 1], [0, 1, 1], n_users=2, n_items=2, ratings=[5, 2, 4])
    >>> kept, report = min_rating(inter, 4)
    >>> kept.items.tolist(), report.steps[0].events_removed
    ([0, 1], 1)
    """
    inter = _interactions(data)
    if inter.ratings is None:
        raise DataError("min_rating needs ratings, and these interactions have none")
    threshold = float(threshold)
    ratings = inter.ratings
    keep = ratings >= threshold  # NaN compares False
    kept = inter.select(keep)
    unrated = int(np.count_nonzero(np.isnan(ratings)))
    note = f"{unrated} events without a rating removed" if unrated else ""
    step = _step("min_rating", {"threshold": threshold}, inter, kept, note=note)
    rated = ratings[~np.isnan(ratings)]
    span = f"ratings run from {rated.min():g} to {rated.max():g}" if len(rated) else "no ratings"
    _refuse_empty(step, span)
    return _with_step(data, kept, step), FilterReport([step])


def deduplicate(data: Data, keep: DedupPolicy = "first") -> tuple[Data, FilterReport]:
    """One event per (user, item) pair.

    ``keep="first"`` (the default) keeps the earliest event of each pair (ties in time: the
    earlier in the file), ``"last"`` the latest, ``"none"`` keeps every event and only counts the
    repeats. The default is ``"first"`` because the task is recommending what a user has not met
    yet: the first event is when the user met the item, and keeping a later repeat would let an
    item seen in training reappear as a held-out "new" item. Use ``"last"`` when the latest rating
    is the one that counts, ``"none"`` to study re-consumption. Kept events stay in file order.

    >>> from recai.data import Interactions
    >>> inter = Interactions([0, 0, 0], [3, 3, 1], n_users=1, n_items=4, timestamps=[1, 5, 3])
    >>> deduplicate(inter, "last")[0].timestamps.tolist()
    [5, 3]
    """
    if keep not in ("first", "last", "none"):
        raise ValueError(f"keep must be 'first', 'last' or 'none', not {keep!r}")
    inter = _interactions(data)
    order = inter.order()  # by user, time, then file order
    if keep == "last":
        order = order[::-1]
    pair = inter.users[order] * max(1, inter.n_items) + inter.items[order]
    _, first = np.unique(pair, return_index=True)
    n_dup = len(inter) - len(first)
    if keep == "none":
        note = f"{n_dup} repeated (user, item) events kept"
        step = _step("deduplicate", {"keep": keep}, inter, inter, note=note)
        _refuse_empty(step, "the input is empty")
        return _with_step(data, inter, step), FilterReport([step])
    mask = np.zeros(len(inter), dtype=bool)
    mask[order[first]] = True
    kept = inter.select(mask)
    step = _step(
        "deduplicate",
        {"keep": keep},
        inter,
        kept,
        note=f"{n_dup} repeated (user, item) events removed",
    )
    _refuse_empty(step, "the input is empty")
    return _with_step(data, kept, step), FilterReport([step])


def k_core(
    data: Data,
    k: int,
    *,
    user_k: int | None = None,
    item_k: int | None = None,
) -> tuple[Data, FilterReport]:
    """Remove events until every user has at least ``user_k`` and every item at least ``item_k``
    events (both default to ``k``), then re-index users and items contiguously.

    Users and items without events are dropped from the index too, so ``k_core(data, 1)`` only
    compacts. A dataset's catalog (ids, titles, every column), ``user_ids``, ``user_fields`` and
    the knowledge graph's item links are subset the same way. The report's ``kept_users`` and
    ``kept_items`` map new indices to old ones.

    >>> from recai.data import Interactions
    >>> inter = Interactions([0, 0, 1, 1, 2], [0, 1, 0, 1, 2], n_users=3, n_items=3)
    >>> core, report = k_core(inter, 2)
    >>> len(core), core.n_users, core.n_items, report.kept_users.tolist()
    (4, 2, 2, [0, 1])
    """
    uk = int(k if user_k is None else user_k)
    ik = int(k if item_k is None else item_k)
    if uk < 1 or ik < 1:
        raise ValueError("k-core thresholds must be at least 1")
    inter = _interactions(data)
    alive = np.ones(len(inter), dtype=bool)
    rounds = 0
    while True:
        rounds += 1
        ucount = np.bincount(inter.users[alive], minlength=inter.n_users)
        icount = np.bincount(inter.items[alive], minlength=inter.n_items)
        ok = (ucount[inter.users] >= uk) & (icount[inter.items] >= ik) & alive
        if np.array_equal(ok, alive):
            break
        alive = ok
    kept_users = np.flatnonzero(np.bincount(inter.users[alive], minlength=inter.n_users) > 0)
    kept_items = np.flatnonzero(np.bincount(inter.items[alive], minlength=inter.n_items) > 0)
    user_map = np.full(inter.n_users, -1, dtype=np.int64)
    user_map[kept_users] = np.arange(len(kept_users))
    item_map = np.full(inter.n_items, -1, dtype=np.int64)
    item_map[kept_items] = np.arange(len(kept_items))
    sub = inter.select(alive)
    users_before, items_before = _active(inter)
    step = FilterStep(
        name="k_core",
        params={"user_k": uk, "item_k": ik},
        events_before=len(inter),
        events_after=int(alive.sum()),
        users_before=users_before,
        users_after=len(kept_users),
        items_before=items_before,
        items_after=len(kept_items),
        users_removed=inter.n_users - len(kept_users),
        items_removed=inter.n_items - len(kept_items),
        note=f"{rounds} rounds",
    )
    max_u = int(np.bincount(inter.users, minlength=1).max()) if len(inter) else 0
    max_i = int(np.bincount(inter.items, minlength=1).max()) if len(inter) else 0
    _refuse_empty(
        step, f"the most active user has {max_u} events and the most popular item {max_i}"
    )
    core = Interactions(
        user_map[sub.users],
        item_map[sub.items],
        n_users=len(kept_users),
        n_items=len(kept_items),
        timestamps=sub.timestamps,
        ratings=sub.ratings,
    )
    report = FilterReport([step], kept_users, kept_items)
    if isinstance(data, Interactions):  # the ignore: see _with_step
        return core, report  # type: ignore[return-value]
    info: dict[str, Any] = dict(data.info)
    info["filters"] = [*info.get("filters", []), step.to_dict()]
    out = Dataset(
        name=data.name,
        catalog=subset_catalog(data.catalog, kept_items),
        interactions=core,
        user_ids=None if data.user_ids is None else np.asarray(data.user_ids)[kept_users],
        info=info,
        kg=None if data.kg is None else _subset_kg(data.kg, kept_items),
        user_fields={k: _take(v, kept_users) for k, v in data.user_fields.items()},
        user_descriptions=dict(data.user_descriptions),
    )
    return out, report


def subset_catalog(catalog: Catalog, items: np.ndarray) -> Catalog:
    """The catalog of ``items`` (old indices, in new order), every column subset alike.

    >>> cat = Catalog(ids=["a", "b", "c"], titles=["A", "B", "C"], fields={"n": [1, 2, 3]})
    >>> sub = subset_catalog(cat, np.array([2, 0]))
    >>> sub.ids.tolist(), list(sub.fields["n"])
    (['c', 'a'], [3, 1])
    """
    return Catalog(
        ids=catalog.ids[items],
        titles=catalog.titles[items],
        fields={k: _take(v, items) for k, v in catalog.fields.items()},
        descriptions=dict(catalog.descriptions),
    )


def _take(column: Any, rows: np.ndarray) -> Any:
    if isinstance(column, np.ndarray):
        return column[rows]
    return [column[int(i)] for i in rows]


def _subset_kg(kg: KnowledgeGraph, items: np.ndarray) -> KnowledgeGraph:
    return KnowledgeGraph(
        heads=kg.heads,
        relations=kg.relations,
        tails=kg.tails,
        entities=kg.entities,
        relation_names=kg.relation_names,
        item_entity=kg.item_entity[items],
        entity_names=kg.entity_names,
    )


def apply_filters(
    dataset: Dataset,
    *,
    dedup: DedupPolicy = "first",
    min_rating: float | None = None,
    k_core: int | None = None,
) -> tuple[Dataset, FilterReport]:
    """Deduplicate, keep ratings ``>= min_rating``, then take the ``k_core``, in that order
    (RecBole's order). ``None`` skips a step; ``dedup="none"`` still counts repeats. The result is
    named after the input and the filters (``movielens-100k|rating>=4,5-core``) and its
    ``info["filters"]`` lists every step.

    >>> from recai.data import synthetic_dataset
    >>> ds, report = apply_filters(synthetic_dataset(), k_core=3)
    >>> [s.name for s in report.steps], ds.name
    (['deduplicate', 'k_core'], 'synthetic|dedup=first,3-core')
    """
    report = FilterReport()
    out, step = deduplicate(dataset, dedup)
    report = report.then(step)
    parts = [f"dedup={dedup}"]
    if min_rating is not None:
        out, step = _min_rating(out, min_rating)
        report = report.then(step)
        parts.append(f"rating>={min_rating:g}")
    if k_core is not None:
        out, step = _k_core(out, k_core)
        report = report.then(step)
        parts.append(f"{k_core}-core")
    out = replace(out, name=f"{dataset.name}|{','.join(parts)}")
    return out, report


_min_rating = min_rating
_k_core = k_core
