"""What the task generators read: a dataset, its split, held-out items, and item attributes.

:class:`TaskData` gathers, once, everything RecLM-emb's training tasks are made from:

- the **split** (leave-one-out by time, as ``ranking.v1`` makes it): training tasks read only
  ``split.train``; evaluation tasks take their targets from ``split.test`` (the valid and test
  events are never seen by a training task);
- the **held-out items**: a seeded fraction of the catalog (:func:`heldout_items`). Tasks that
  query an item's own text (title, misspelt title, attributes) never use a held-out item in
  training, as positive or as negative; their evaluation queries are about held-out items only;
- the **attributes** of each item, read the same way from any catalog: a set of labels (from
  ``genres``, ``tags``, ``categories`` or ``category``), a year (from ``year`` or a date column)
  and a price, with :class:`Condition` saying which items meet a request.

>>> from recai.data import synthetic_dataset
>>> data = TaskData.from_dataset(synthetic_dataset(n_users=30, n_items=25), item_holdout=0.2)
>>> int(data.heldout.sum()), data.label_field, data.number_kind
(5, 'tags', 'year')
>>> cond = Condition(include=("time-travel",))
>>> bool(cond.mask(data)[[i for i in range(25) if "time-travel" in data.labels[i]]].all())
True
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recai.data import Dataset, Split, leave_one_out
from recai.errors import DataError

from .itemtext import DEFAULT_TEMPLATE, ItemTextTemplate

__all__ = ["Condition", "TaskData", "heldout_items", "stable_seed", "short_title"]

LABEL_FIELDS = ("genres", "tags", "categories", "category")
YEAR_FIELDS = ("year", "released", "release_date", "date")
PRICE_FIELDS = ("price",)
_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})\)\s*$")


def stable_seed(*parts: Any) -> int:
    """A 32-bit seed from any JSON-able parts (the same in every process and Python version).

    >>> stable_seed("uh2i", 0) == stable_seed("uh2i", 0) != stable_seed("i2i", 0)
    True
    """
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")


def heldout_items(n_items: int, fraction: float, seed: int = 0) -> np.ndarray:
    """A boolean mask of ``round(fraction * n_items)`` items, chosen by ``seed``.

    >>> heldout_items(10, 0.3, seed=1).sum()
    np.int64(3)
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"item_holdout must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(stable_seed("heldout-items", n_items, seed))
    mask = np.zeros(n_items, dtype=bool)
    mask[rng.permutation(n_items)[: int(round(fraction * n_items))]] = True
    return mask


def short_title(title: str) -> str:
    """A title without a trailing ``(1995)`` year and with MovieLens' ``", The"`` moved back.

    >>> short_title("Usual Suspects, The (1995)")
    'The Usual Suspects'
    """
    t = _YEAR_SUFFIX.sub("", title).strip()
    m = re.match(r"^(.*), (The|A|An|Les|La|Le|Il|Das|Die|Der|El)$", t)
    return f"{m.group(2)} {m.group(1)}" if m else t


def _year_of(value: Any) -> float:
    if isinstance(value, np.datetime64):
        return (
            math.nan if np.isnat(value) else float(value.astype("datetime64[Y]").astype(int) + 1970)
        )
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v if 1000 <= v <= 3000 else math.nan


@dataclass(frozen=True)
class Condition:
    """What a request asks of an item: labels it must all have (``include``), labels it must not
    have (``exclude``), a year range and a price range (inclusive; ``None``: no bound).

    >>> Condition(include=("Drama",), exclude=("Comedy",), year=(1990, None)).to_dict()
    {'include': ['Drama'], 'exclude': ['Comedy'], 'year': [1990, None]}
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    year: tuple[float | None, float | None] | None = None
    price: tuple[float | None, float | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.include:
            out["include"] = list(self.include)
        if self.exclude:
            out["exclude"] = list(self.exclude)
        if self.year is not None:
            out["year"] = list(self.year)
        if self.price is not None:
            out["price"] = list(self.price)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Condition:
        def rng(v: Any) -> tuple[float | None, float | None] | None:
            return None if v is None else (v[0], v[1])

        return cls(
            tuple(d.get("include", ())),
            tuple(d.get("exclude", ())),
            rng(d.get("year")),
            rng(d.get("price")),
        )

    def mask(self, data: TaskData) -> np.ndarray:
        """Which items meet the condition (an item with an unknown year fails a year range)."""
        ok = np.ones(data.n_items, dtype=bool)
        if self.include or self.exclude:
            inc, exc = set(self.include), set(self.exclude)
            ok &= np.array([inc <= s and not (exc & s) for s in data.labels], dtype=bool)
        for bounds, values in ((self.year, data.years), (self.price, data.prices)):
            if bounds is None:
                continue
            lo, hi = bounds
            with np.errstate(invalid="ignore"):
                ok &= ~np.isnan(values)
                if lo is not None:
                    ok &= values >= lo
                if hi is not None:
                    ok &= values <= hi
        return ok


@dataclass(eq=False)
class TaskData:
    """A dataset prepared for task generation (see the module docstring)."""

    dataset: Dataset
    split: Split
    heldout: np.ndarray
    texts: list[str]
    labels: list[frozenset[str]]
    label_field: str | None
    years: np.ndarray
    prices: np.ndarray
    number_kind: str | None
    item_holdout: float = 0.0
    holdout_seed: int = 0
    max_history: int = 10
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dataset(
        cls,
        dataset: Dataset,
        *,
        split: Split | None = None,
        item_holdout: float = 0.2,
        holdout_seed: int = 0,
        template: str = DEFAULT_TEMPLATE,
        max_history: int = 10,
        label_field: str | None = None,
    ) -> TaskData:
        """Prepare ``dataset``; ``split`` defaults to leave-one-out by time (``ranking.v1``'s)."""
        split = split if split is not None else leave_one_out(dataset)
        if split.dataset.catalog.fingerprint() != dataset.catalog.fingerprint():
            raise DataError("task data: the split belongs to another catalog")
        cat = dataset.catalog
        texts, text_report = ItemTextTemplate(template).render(cat)
        if label_field is None:
            label_field = next((f for f in LABEL_FIELDS if f in cat.fields), None)
        elif label_field not in cat.fields:
            raise DataError(
                f"task data: label_field {label_field!r} is not a catalog column "
                f"(columns: {', '.join(cat.fields) or 'none'})"
            )
        labels: list[frozenset[str]] = []
        col = cat.fields.get(label_field) if label_field else None
        for i in range(cat.n_items):
            v = None if col is None else col[i]
            if isinstance(v, (tuple, list, np.ndarray)):
                labels.append(frozenset(str(x) for x in v if x is not None and str(x).strip()))
            elif isinstance(v, str) and v.strip():
                labels.append(frozenset([v.strip()]))
            else:
                labels.append(frozenset())
        year_field = next((f for f in YEAR_FIELDS if f in cat.fields), None)
        years = np.full(cat.n_items, np.nan)
        if year_field is not None:
            years = np.array([_year_of(v) for v in cat.fields[year_field]], dtype=np.float64)
        price_field = next((f for f in PRICE_FIELDS if f in cat.fields), None)
        prices = np.full(cat.n_items, np.nan)
        if price_field is not None:
            prices = np.asarray(cat.fields[price_field], dtype=np.float64)
        number_kind = (
            "year" if np.isfinite(years).any() else "price" if np.isfinite(prices).any() else None
        )
        facts = {
            "dataset": dataset.name,
            "split": split.describe(),
            "split_fingerprint": split.fingerprint(),
            "item_holdout": item_holdout,
            "holdout_seed": holdout_seed,
            "label_field": label_field,
            "year_field": year_field,
            "price_field": price_field,
            "items_without_labels": int(sum(1 for s in labels if not s)),
            "items_without_year": int(np.isnan(years).sum()),
            "item_text": text_report,
        }
        return cls(
            dataset=dataset,
            split=split,
            heldout=heldout_items(cat.n_items, item_holdout, holdout_seed),
            texts=texts,
            labels=labels,
            label_field=label_field,
            years=years,
            prices=prices,
            number_kind=number_kind,
            item_holdout=item_holdout,
            holdout_seed=holdout_seed,
            max_history=max_history,
            facts=facts,
        )

    # -- shared views -----------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    def title(self, item: int) -> str:
        return self.dataset.catalog.title(int(item))

    def history_text(self, items: np.ndarray | list[int]) -> str:
        """The last ``max_history`` titles joined by ``"; "`` (what ``embedding.v1`` encodes)."""
        recent = list(items)[-self.max_history :]
        return "; ".join(self.title(i) for i in recent)

    def item_pool(self, part: str) -> np.ndarray:
        """Items an item-text task may use: not held out for ``"train"``, held out for
        ``"test"``."""
        return np.flatnonzero(~self.heldout if part == "train" else self.heldout)

    def popularity(self) -> np.ndarray:
        """Training events per item (add-one, as sampling weights)."""
        if not hasattr(self, "_pop"):
            self._pop = self.split.train.item_counts().astype(np.float64) + 1.0
        return self._pop

    def heldout_key(self) -> str:
        """A short hash of which items are held out (stored with a fine-tuned model)."""
        return hashlib.sha256(np.packbits(self.heldout).tobytes()).hexdigest()[:16]
