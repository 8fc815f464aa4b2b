"""RecLM-emb's training tasks: seeded generators of (query text, positive item, hard negatives).

Each task is a registered generator (:data:`TASKS`, :func:`register_task`) that reads a
:class:`~recai_emb.taskdata.TaskData` and writes :class:`Example`\\ s for one ``part``:

| task | query | positive | hard negatives |
|---|---|---|---|
| ``uh2i`` | the user's history (titles, oldest first) | the next item | popular items the user never had |
| ``i2i`` | an item's title | the item that came next in a history | popular items outside the history |
| ``fa2i`` | all of an item's labels and its year | the item | items sharing a label that fail the condition |
| ``sa2i`` | one or two labels, sometimes a decade | an item meeting them | items failing it |
| ``nm2i`` | the title, misspelt | the item | items whose titles share a word |
| ``vc2i`` | a vague year (or price) range, sometimes a label | an item in range | items just outside |
| ``na2i`` | "a *Drama* that is not a *Comedy*" | an item meeting it | items with the excluded label |
| ``uq2i`` | history + "now something in *Horror*" | the next item | items without the label |
| ``t2i`` | the exact title | the item | items whose titles share a word |

Hard negatives of condition tasks always **violate the query's condition** (as RecAI samples
them); ``Example.condition`` records it so that evaluation can measure how much of a result
list meets it.

**Parts.** ``"train"`` examples read only the split's training events and, for the tasks about
an item's own text (``fa2i sa2i nm2i vc2i na2i t2i``), only items that are not held out (as
positives and as negatives). ``"test"`` examples are the evaluation queries: for history tasks
(``uh2i i2i uq2i``) the user's held-out test event is the target and the history is their train
and validation events; for item-text tasks the positive is a held-out item. So no evaluation
target is ever a training target.

Every generator draws from its own random stream, seeded by ``(seed, task, part)``: the same
seed gives the same examples whatever other tasks are generated with it.

>>> from recai.data import synthetic_dataset
>>> from recai_emb.taskdata import TaskData
>>> data = TaskData.from_dataset(synthetic_dataset(n_users=40, n_items=30))
>>> examples, report = generate(data, ["t2i", "na2i"], 5, seed=0)
>>> sorted(report), len(examples)
(['na2i', 't2i'], 10)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from recai.errors import DataError, RecaiError
from recai.runtime import atomic_write_text

from .taskdata import Condition, TaskData, short_title, stable_seed

__all__ = [
    "Example",
    "TASKS",
    "RULE_TASKS",
    "TaskGenerator",
    "add_count_option",
    "generate",
    "parse_counts",
    "read_examples",
    "register_task",
    "write_examples",
]

Part = Literal["train", "test"]


@dataclass
class Example:
    """One training or evaluation example.

    ``pos``/``negs`` are catalog indices; ``exclude`` the items a retriever must not be credited
    for (the query's own history or item); ``condition`` what the query asks of an item (condition
    tasks); ``kind`` says which metrics apply: ``"id"`` (find ``pos``), ``"condition"`` (meet the
    condition) or ``"both"``.
    """

    task: str
    query: str
    pos: int
    negs: list[int]
    kind: str = "id"
    condition: Condition | None = None
    exclude: list[int] = field(default_factory=list)
    user: int | None = None
    part: str = "train"

    def to_json(self, texts: Sequence[str] | None = None) -> dict[str, Any]:
        """A JSON row; with ``texts`` (item texts) the passages are written out too, so a
        training run needs only the file."""
        row: dict[str, Any] = {
            "task": self.task,
            "part": self.part,
            "kind": self.kind,
            "query": self.query,
            "pos_item": int(self.pos),
            "neg_items": [int(x) for x in self.negs],
        }
        if texts is not None:
            row["pos"] = texts[self.pos]
            row["neg"] = [texts[i] for i in self.negs]
        if self.condition is not None:
            row["condition"] = self.condition.to_dict()
        if self.exclude:
            row["exclude_items"] = [int(x) for x in self.exclude]
        if self.user is not None:
            row["user"] = int(self.user)
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Example:
        cond = row.get("condition")
        return cls(
            task=str(row["task"]),
            query=str(row["query"]),
            pos=int(row["pos_item"]),
            negs=[int(x) for x in row.get("neg_items", [])],
            kind=str(row.get("kind", "id")),
            condition=None if cond is None else Condition.from_dict(cond),
            exclude=[int(x) for x in row.get("exclude_items", [])],
            user=row.get("user"),
            part=str(row.get("part", "train")),
        )


# -- registry -------------------------------------------------------------------------------------
TASKS: dict[str, type[TaskGenerator]] = {}
"""Registered task generators by name (``uh2i``, ``i2i``, ...)."""


def register_task(cls: type[TaskGenerator]) -> type[TaskGenerator]:
    """Class decorator: register a generator under ``cls.name`` (refuses a second one)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", cls.name):
        raise ValueError(f"task name {cls.name!r} must be lowercase letters, digits, '_'")
    if cls.name in TASKS and TASKS[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} is registered twice ({TASKS[cls.name]} and {cls})")
    TASKS[cls.name] = cls
    return cls


def task_class(name: str) -> type[TaskGenerator]:
    """The generator registered as ``name``; a clear error listing the names otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, list(TASKS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RecaiError(
            f"unknown task {name!r}.{hint} Choose from: {', '.join(sorted(TASKS))}"
        ) from None


class TaskGenerator:
    """A task: ``make(data, n, rng, part, negatives)`` returns examples and skip counts."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "id"
    history: ClassVar[bool] = False  # reads user histories (else an item's own text)
    needs: ClassVar[tuple[str, ...]] = ()  # "labels", "numbers"
    summary: ClassVar[str] = ""

    def make(
        self, data: TaskData, n: int, rng: np.random.Generator, part: Part, negatives: int
    ) -> tuple[list[Example], dict[str, int]]:
        raise NotImplementedError


# -- helpers --------------------------------------------------------------------------------------
def _sample(
    rng: np.random.Generator,
    allowed: np.ndarray,
    k: int,
    weights: np.ndarray | None = None,
) -> list[int]:
    """Up to ``k`` distinct items where ``allowed`` (a boolean mask) holds, weighted."""
    idx = np.flatnonzero(allowed)
    if not len(idx) or k <= 0:
        return []
    k = min(k, len(idx))
    p = None
    if weights is not None:
        w = weights[idx]
        p = w / w.sum()
    return [int(x) for x in rng.choice(idx, size=k, replace=False, p=p)]


def _hard(
    rng: np.random.Generator,
    violate: np.ndarray,
    near: np.ndarray,
    k: int,
    weights: np.ndarray | None,
) -> list[int]:
    """``k`` violators, from the ``near`` ones first (the hard ones), then any."""
    out = _sample(rng, violate & near, k, weights)
    if len(out) < k:
        rest = violate.copy()
        rest[out] = False
        out += _sample(rng, rest, k - len(out), weights)
    return out


def _label_phrase(labels: Sequence[str]) -> str:
    labels = list(labels)
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def _noun(data: TaskData) -> str:
    return "movie" if "movielens" in data.dataset.name.lower() else "item"


def _user_targets(
    data: TaskData, part: Part, n: int, rng: np.random.Generator, need: Callable[[int], bool]
) -> tuple[list[tuple[int, np.ndarray, int]], dict[str, int]]:
    """``(user, history, target)`` triples: from training histories (``train``: a random position
    in a random user's history) or the held-out test event after train + valid (``test``)."""
    split = data.split
    skipped: dict[str, int] = {}
    out: list[tuple[int, np.ndarray, int]] = []
    if part == "train":
        hist = split.train.histories()
        users = np.array([u for u, h in enumerate(hist) if len(h) >= 2], dtype=np.int64)
        if not len(users):
            return [], {"no user with two training events": 1}
        tries = 0
        while len(out) < n and tries < 20 * n:
            tries += 1
            u = int(rng.choice(users))
            h = hist[u]
            t = int(rng.integers(1, len(h)))
            if not need(int(h[t])):
                skipped["target lacks what the query needs"] = (
                    skipped.get("target lacks what the query needs", 0) + 1
                )
                continue
            out.append((u, h[:t], int(h[t])))
        return out, skipped
    if split.test is None:
        raise DataError("task data: the split has no test part to evaluate on")
    test = split.test.histories()
    train = split.train.histories()
    valid = split.valid.histories() if split.valid is not None else None
    test_users = [u for u, h in enumerate(test) if len(h)]
    for u in [int(x) for x in rng.permutation(test_users)]:
        if len(out) >= n:
            break
        target = int(test[u][0])
        if not need(target):
            skipped["target lacks what the query needs"] = (
                skipped.get("target lacks what the query needs", 0) + 1
            )
            continue
        history = train[u] if valid is None else np.concatenate([train[u], valid[u]])
        if not len(history):
            skipped["no history"] = skipped.get("no history", 0) + 1
            continue
        out.append((u, history, target))
    return out, skipped


def _history_negatives(
    data: TaskData,
    rng: np.random.Generator,
    user: int,
    target: int,
    k: int,
    extra: np.ndarray | None = None,
) -> list[int]:
    """Popular items the user has no training event with (and ``extra`` where given)."""
    allowed = np.ones(data.n_items, dtype=bool) if extra is None else extra.copy()
    allowed[data.split.train.history(user)] = False
    allowed[target] = False
    return _sample(rng, allowed, k, data.popularity())


# -- the history tasks ----------------------------------------------------------------------------
@register_task
class UH2I(TaskGenerator):
    name = "uh2i"
    history = True
    summary = "user history -> next item"

    def make(
        self, data: TaskData, n: int, rng: np.random.Generator, part: Part, negatives: int
    ) -> tuple[list[Example], dict[str, int]]:
        triples, skipped = _user_targets(data, part, n, rng, lambda i: True)
        out = []
        for u, hist, target in triples:
            negs = _history_negatives(data, rng, u, target, negatives)
            out.append(
                Example(
                    self.name,
                    data.history_text(hist),
                    target,
                    negs,
                    "id",
                    exclude=sorted(set(hist.tolist())),
                    user=u,
                    part=part,
                )
            )
        return out, skipped


@register_task
class I2I(TaskGenerator):
    name = "i2i"
    history = True
    summary = "item -> the item that came next in a user's history"

    def make(
        self, data: TaskData, n: int, rng: np.random.Generator, part: Part, negatives: int
    ) -> tuple[list[Example], dict[str, int]]:
        triples, skipped = _user_targets(data, part, n, rng, lambda i: True)
        out = []
        for u, hist, target in triples:
            seed_item = int(hist[-1])
            if seed_item == target:
                skipped["repeat of the same item"] = skipped.get("repeat of the same item", 0) + 1
                continue
            negs = _history_negatives(data, rng, u, target, negatives)
            out.append(
                Example(
                    self.name,
                    data.title(seed_item),
                    target,
                    negs,
                    "id",
                    exclude=[seed_item],
                    user=u,
                    part=part,
                )
            )
        return out, skipped


UQ2I_PHRASES = (
    "{history}. Now I want a {label} {noun}",
    "{history}. Next, something in {label}",
    "{history}. Recommend me a {label} {noun}",
)


@register_task
class UQ2I(TaskGenerator):
    name = "uq2i"
    kind = "both"
    history = True
    needs = ("labels",)
    summary = "user history + a label request -> the next item, which has the label"

    def make(
        self, data: TaskData, n: int, rng: np.random.Generator, part: Part, negatives: int
    ) -> tuple[list[Example], dict[str, int]]:
        triples, skipped = _user_targets(data, part, n, rng, lambda i: bool(data.labels[i]))
        noun = _noun(data)
        out = []
        for u, hist, target in triples:
            label = str(rng.choice(sorted(data.labels[target])))
            cond = Condition(include=(label,))
            violate = ~cond.mask(data)
            negs = _history_negatives(data, rng, u, target, negatives, extra=violate)
            phrase = UQ2I_PHRASES[int(rng.integers(len(UQ2I_PHRASES)))]
            query = phrase.format(history=data.history_text(hist), label=label, noun=noun)
            out.append(
                Example(
                    self.name,
                    query,
                    target,
                    negs,
                    "both",
                    cond,
                    exclude=sorted(set(hist.tolist())),
                    user=u,
                    part=part,
                )
            )
        return out, skipped


# -- the item-text tasks --------------------------------------------------------------------------
class _ItemTask(TaskGenerator):
    """Positives drawn from the part's item pool (never held-out items in training)."""

    def make(
        self, data: TaskData, n: int, rng: np.random.Generator, part: Part, negatives: int
    ) -> tuple[list[Example], dict[str, int]]:
        pool = data.item_pool(part)
        usable = np.zeros(data.n_items, dtype=bool)
        usable[pool] = True
        # negatives come from training items in training; evaluation ignores them
        neg_pool = usable if part == "train" else np.ones(data.n_items, dtype=bool)
        skipped: dict[str, int] = {}
        out: list[Example] = []
        candidates = [int(i) for i in pool if self.eligible(data, int(i))]
        if len(candidates) < len(pool):
            skipped["item lacks the fields the task needs"] = len(pool) - len(candidates)
        if not candidates:
            return [], skipped
        order = rng.permutation(len(candidates))
        i = 0
        # evaluation asks about each held-out item at most once; training may rephrase
        limit = len(candidates) if part == "test" else 4 * n + len(candidates)
        while len(out) < n and i < limit:
            item = candidates[int(order[i % len(order)])]
            i += 1
            ex = self.one(data, item, rng, negatives, neg_pool)
            if ex is None:
                skipped["no query could be made"] = skipped.get("no query could be made", 0) + 1
                continue
            ex.part = part
            out.append(ex)
        return out, skipped

    def eligible(self, data: TaskData, item: int) -> bool:
        return True

    def one(
        self,
        data: TaskData,
        item: int,
        rng: np.random.Generator,
        negatives: int,
        neg_pool: np.ndarray,
    ) -> Example | None:
        raise NotImplementedError


_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "of",
        "and",
        "in",
        "on",
        "to",
        "for",
        "with",
        "from",
        "at",
        "by",
        "is",
        "it",
        "la",
        "le",
        "les",
        "de",
        "der",
        "die",
        "das",
    ]
)


def _words(title: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9']+", title.lower()) if len(w) >= 3 and w not in _STOP}


def _title_negatives(
    data: Any,  # a TaskData, which caches its title words on itself
    item: int,
    rng: np.random.Generator,
    k: int,
    neg_pool: np.ndarray,
) -> list[int]:
    """Items whose titles share a word with ``item``'s (the confusable ones), then popular ones."""
    if not hasattr(data, "_title_words"):
        data._title_words = [_words(short_title(data.title(i))) for i in range(data.n_items)]
    mine = data._title_words[item]
    near = np.array([bool(mine & w) for w in data._title_words], dtype=bool)
    violate = neg_pool.copy()
    violate[item] = False
    return _hard(rng, violate, near, k, data.popularity())


@register_task
class T2I(_ItemTask):
    name = "t2i"
    summary = "title -> item"

    def one(
        self,
        data: TaskData,
        item: int,
        rng: np.random.Generator,
        negatives: int,
        neg_pool: np.ndarray,
    ) -> Example | None:
        title = data.title(item)
        query = title if rng.random() < 0.5 else short_title(title)
        return Example(
            self.name, query, item, _title_negatives(data, item, rng, negatives, neg_pool)
        )


def misspell(text: str, rng: np.random.Generator, edits: int = 2) -> str:
    """``text`` with ``edits`` typos (a letter dropped, doubled, swapped with the next, or
    replaced by a keyboard neighbour) in words of four letters or more.

    >>> misspell("Independence Day", np.random.default_rng(0)) != "Independence Day"
    True
    """
    near = {
        "a": "qsz", "b": "vgn", "c": "xdv", "d": "sfe", "e": "wrd", "f": "dgr", "g": "fht",
        "h": "gjy", "i": "uok", "j": "hku", "k": "jli", "l": "kop", "m": "nj", "n": "bmh",
        "o": "ipl", "p": "ol", "q": "wa", "r": "etf", "s": "adw", "t": "ryg", "u": "yij",
        "v": "cbf", "w": "qes", "x": "zsc", "y": "tuh", "z": "xas",
    }  # fmt: skip
    chars = list(text)
    spots = [
        m.start() + j for m in re.finditer(r"[A-Za-z]{4,}", text) for j in range(1, len(m.group()))
    ]
    if not spots:
        return text
    for _ in range(edits):
        if not spots:
            break
        p = int(spots[int(rng.integers(len(spots)))])
        if p >= len(chars):
            continue
        op = int(rng.integers(4))
        c = chars[p]
        if op == 0 and len(chars) > 4:
            del chars[p]
        elif op == 1:
            chars.insert(p, c)
        elif op == 2 and p + 1 < len(chars):
            chars[p], chars[p + 1] = chars[p + 1], chars[p]
        else:
            alt = near.get(c.lower(), "e")
            r = alt[int(rng.integers(len(alt)))]
            chars[p] = r.upper() if c.isupper() else r
        spots = [s for s in spots if s < len(chars)]
    out = "".join(chars)
    return out if out != text else text[:-1] if len(text) > 4 else text


@register_task
class NM2I(_ItemTask):
    name = "nm2i"
    summary = "misspelt title -> item"

    def eligible(self, data: TaskData, item: int) -> bool:
        return bool(re.search(r"[A-Za-z]{4,}", short_title(data.title(item))))

    def one(
        self,
        data: TaskData,
        item: int,
        rng: np.random.Generator,
        negatives: int,
        neg_pool: np.ndarray,
    ) -> Example | None:
        query = misspell(short_title(data.title(item)), rng, edits=int(rng.integers(1, 3)))
        return Example(
            self.name, query, item, _title_negatives(data, item, rng, negatives, neg_pool)
        )


def _label_near(data: TaskData, labels: Iterable[str]) -> np.ndarray:
    ls = set(labels)
    return np.array([bool(ls & s) for s in data.labels], dtype=bool)


FA2I_PHRASES = (
    "A {labels} {noun} from {year}",
    "{labels} {noun}, released in {year}",
    "I want a {noun} that is {labels}, from {year}",
)


@register_task
class FA2I(_ItemTask):
    name = "fa2i"
    kind = "both"
    needs = ("labels",)
    summary = "all of an item's labels (and its year) -> the item"

    def eligible(self, data: TaskData, item: int) -> bool:
        return bool(data.labels[item])

    def one(
        self,
        data: TaskData,
        item: int,
        rng: np.random.Generator,
        negatives: int,
        neg_pool: np.ndarray,
    ) -> Example | None:
        labels = sorted(data.labels[item])
        year = data.years[item]
        has_year = bool(np.isfinite(year))
        phrase = (
            FA2I_PHRASES[int(rng.integers(len(FA2I_PHRASES)))] if has_year else "A {labels} {noun}"
        )
        query = phrase.format(
            labels=_label_phrase(labels), noun=_noun(data), year=int(year) if has_year else ""
        )
        cond = Condition(
            include=tuple(labels), year=(float(year), float(year)) if has_year else None
        )
        violate = neg_pool & ~cond.mask(data)
        violate[item] = False
        negs = _hard(rng, violate, _label_near(data, labels), negatives, data.popularity())
        return Example(self.name, query, item, negs, "both", cond)


SA2I_PHRASES = ("A {labels} {noun}", "Something {labels}", "Any good {labels} {noun}s?")
DECADE_PHRASES = ("A {labels} {noun} from the {decade}s", "{labels} {noun}s of the {decade}s")


@register_task
class SA2I(_ItemTask):
    name = "sa2i"
    kind = "condition"
    needs = ("labels",)
    summary = "one or two labels, sometimes a decade -> an item meeting them"

    def eligible(self, data: TaskData, item: int) -> bool:
        return bool(data.labels[item])

    def one(
        self,
        data: TaskData,
        item: int,
        rng: np.random.Generator,
        negatives: int,
        neg_pool: np.ndarray,
    ) -> Example | None:
        labels = sorted(data.labels[item])
        take = min(len(labels), int(rng.integers(1, 3)))
        chosen = sorted(str(x) for x in rng.choice(labels, size=take, replace=False))
        year = data.years[item]
        noun = _noun(data)
        if np.isfinite(year) and data.number_kind == "year" and rng.random() < 0.3:
            decade = int(year) // 10 * 10
            phrase = DECADE_PHRASES[int(rng.integers(len(DECADE_PHRASES)))]
            query = phrase.format(labels=_label_phrase(chosen), noun=noun, decade=decade)
            cond = Condition(include=tuple(chosen), year=(float(decade), float(decade + 9)))
        else:
            phrase = SA2I_PHRASES[int(rng.integers(len(SA2I_PHRASES)))]
            query = phrase.format(labels=_label_phrase(chosen), noun=noun)
            cond = Condition(include=tuple(chosen))
        violate = neg_pool & ~cond.mask(data)
        violate[item] = False
        negs = _hard(rng, violate, _label_near(data, chosen), negatives, data.popularity())
        return Example(self.name, query, item, negs, "condition", cond)


def vague_year(
    year: int, rng: np.random.Generator
) -> tuple[str, tuple[float | None, float | None]]:
    """A vague phrase that ``year`` satisfies and the range it means.

    >>> phrase, (lo, hi) = vague_year(1994, np.random.default_rng(3))
    >>> lo is None or lo <= 1994, hi is None or 1994 <= hi
    (True, True)
    """
    decade = year // 10 * 10
    short = f"{decade % 100:02d}s" if 1900 <= decade < 2000 else f"{decade}s"
    within = year - decade
    choice = int(rng.integers(5))
    if choice == 0:
        part, lo, hi = (
            ("early", 0, 3) if within <= 3 else ("mid", 4, 6) if within <= 6 else ("late", 7, 9)
        )
        return f"from the {part} {decade}s", (float(decade + lo), float(decade + hi))
    if choice == 1:
        return f"from the {short}", (float(decade), float(decade + 9))
    if choice == 2:
        cut = year + int(rng.integers(1, 6))
        return f"released before {cut}", (None, float(cut - 1))
    if choice == 3:
        cut = year - int(rng.integers(1, 6))
        return f"released after {cut}", (float(cut + 1), None)
    return f"from around {year}", (float(year - 2), float(year + 2))


def vague_price(
    price: float, rng: np.random.Generator
) -> tuple[str, tuple[float | None, float | None]]:
    """A vague price phrase that ``price`` satisfies and the range it means."""
    choice = int(rng.integers(3))
    if choice == 0:
        cut = float(np.ceil(price / 5.0) * 5.0 + 5.0 * int(rng.integers(0, 2)))
        cut = max(cut, price)
        return f"under ${cut:.0f}", (None, cut)
    if choice == 1:
        cut = float(np.floor(price / 5.0) * 5.0)
        return f"over ${cut:.0f}", (cut, None)
    lo, hi = float(np.floor(price / 10.0) * 10.0), float(np.floor(price / 10.0) * 10.0 + 10.0)
    return f"between ${lo:.0f} and ${hi:.0f}", (lo, hi)


@register_task
class VC2I(_ItemTask):
    name = "vc2i"
    kind = "condition"
    needs = ("numbers",)
    summary = "a vague year (or price) condition, sometimes with a label -> an item meeting it"

    def eligible(self, data: TaskData, item: int) -> bool:
        v = data.years[item] if data.number_kind == "year" else data.prices[item]
        return bool(np.isfinite(v))

    def one(
        self,
        data: TaskData,
        item: int,
        rng: np.random.Generator,
        negatives: int,
        neg_pool: np.ndarray,
    ) -> Example | None:
        noun = _noun(data)
        labels = sorted(data.labels[item])
        label = str(rng.choice(labels)) if labels and rng.random() < 0.5 else None
        if data.number_kind == "year":
            phrase, bounds = vague_year(int(data.years[item]), rng)
            cond = Condition(include=(label,) if label else (), year=bounds)
            values = data.years
        else:
            phrase, bounds = vague_price(float(data.prices[item]), rng)
            cond = Condition(include=(label,) if label else (), price=bounds)
            values = data.prices
        query = f"A {label + ' ' if label else ''}{noun} {phrase}"
        violate = neg_pool & ~cond.mask(data)
        violate[item] = False
        # hard: just outside the range (and with the label, when one is asked for)
        lo, hi = bounds
        span = 10.0 if data.number_kind == "year" else 10.0
        with np.errstate(invalid="ignore"):
            near = np.isfinite(values)
            if lo is not None:
                near &= values >= lo - span
            if hi is not None:
                near &= values <= hi + span
        if label:
            near &= _label_near(data, [label])
        negs = _hard(rng, violate, near, negatives, data.popularity())
        return Example(self.name, query, item, negs, "condition", cond)


NA2I_PHRASES = (
    "A {inc}{noun} that is not {exc}",
    "Any {inc}{noun} except {exc} ones",
    "No {exc}, please: a {inc}{noun}",
)


@register_task
class NA2I(_ItemTask):
    name = "na2i"
    kind = "condition"
    needs = ("labels",)
    summary = "negative labels ('a Drama that is not a Comedy') -> an item meeting them"

    def eligible(self, data: TaskData, item: int) -> bool:
        return True

    def one(
        self,
        data: Any,  # a TaskData, which caches its label counts on itself
        item: int,
        rng: np.random.Generator,
        negatives: int,
        neg_pool: np.ndarray,
    ) -> Example | None:
        if not hasattr(data, "_label_counts"):
            counts: dict[str, int] = {}
            for s in data.labels:
                for x in s:
                    counts[x] = counts.get(x, 0) + 1
            data._label_counts = counts
        mine = data.labels[item]
        others = sorted(x for x in data._label_counts if x not in mine)
        if not others:
            return None
        w = np.array([data._label_counts[x] for x in others], dtype=np.float64)
        exc = str(rng.choice(others, p=w / w.sum()))
        inc = str(rng.choice(sorted(mine))) if mine and rng.random() < 0.6 else None
        noun = _noun(data)
        phrase = NA2I_PHRASES[int(rng.integers(len(NA2I_PHRASES)))]
        query = phrase.format(inc=f"{inc} " if inc else "", exc=exc, noun=noun)
        query = query[0].upper() + query[1:]
        cond = Condition(include=(inc,) if inc else (), exclude=(exc,))
        violate = neg_pool & ~cond.mask(data)
        violate[item] = False
        # the hardest violators have the excluded label (and the wanted one)
        near = _label_near(data, [exc])
        if inc:
            near &= _label_near(data, [inc])
        negs = _hard(rng, violate, near, negatives, data.popularity())
        return Example(self.name, query, item, negs, "condition", cond)


RULE_TASKS = ("uh2i", "i2i", "fa2i", "sa2i", "nm2i", "vc2i", "na2i", "uq2i", "t2i")
"""The tasks made by rules (no LLM), in RecLM-emb's order."""


# -- generation and files -------------------------------------------------------------------------
def generate(
    data: TaskData,
    tasks: Sequence[str] = RULE_TASKS,
    n_per_task: int = 1000,
    *,
    part: Part = "train",
    seed: int = 0,
    negatives: int = 1,
    counts: Mapping[str, int] | None = None,
) -> tuple[list[Example], dict[str, dict[str, Any]]]:
    """Examples of each task (up to ``n_per_task``, or ``counts[task]`` for the tasks it names;
    test parts may have fewer) and a report per task: ``made``, ``skipped`` (reason -> count), or
    ``unavailable`` when the catalog lacks what the task needs.

    ``counts`` weights the mix, e.g. ``{"uh2i": 6000}`` with ``n_per_task=1500`` gives the history
    task four times the examples of each other task."""
    if part not in ("train", "test"):
        raise RecaiError(f"part must be 'train' or 'test', not {part!r}")
    counts = dict(counts or {})
    stray = sorted(set(counts) - set(tasks))
    if stray:
        raise RecaiError(
            f"counts name tasks that are not generated: {', '.join(stray)} "
            f"(tasks: {', '.join(tasks)})"
        )
    bad = {t: n for t, n in counts.items() if not isinstance(n, int) or n < 0}
    if bad:
        raise RecaiError(f"counts must be whole numbers >= 0, got {bad}")
    out: list[Example] = []
    report: dict[str, dict[str, Any]] = {}
    for name in tasks:
        gen = task_class(name)()
        lacks = [
            need
            for need in gen.needs
            if (need == "labels" and data.label_field is None)
            or (need == "numbers" and data.number_kind is None)
        ]
        if lacks:
            report[name] = {"made": 0, "unavailable": f"the catalog has no {', '.join(lacks)}"}
            continue
        rng = np.random.default_rng(stable_seed("task", name, part, seed))
        made, skipped = gen.make(data, int(counts.get(name, n_per_task)), rng, part, int(negatives))
        same = 0
        for ex in made:  # a negative written exactly like the positive (a duplicate entry)
            keep = [i for i in ex.negs if data.texts[i] != data.texts[ex.pos]]
            same += len(ex.negs) - len(keep)
            ex.negs = keep
        if same:
            skipped = {**skipped, "negatives dropped: same text as the positive": same}
        out += made
        report[name] = {"made": len(made), "skipped": skipped}
    return out, report


def write_examples(
    path: str | os.PathLike[str], examples: Sequence[Example], texts: Sequence[str]
) -> Path:
    """Write examples as JSONL (one object a line, passages included), atomically."""
    lines = [json.dumps(e.to_json(texts), ensure_ascii=False) for e in examples]
    path = Path(path)
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def read_examples(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of an examples file; a malformed row is a :class:`DataError` naming file and line."""
    rows = []
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"cannot read examples: {e}", path=str(path)) from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise DataError(f"not JSON: {e}", path=str(path), line=n) from None
        if not isinstance(row, dict):
            raise DataError("a row must be a JSON object", path=str(path), line=n)
        missing = [k for k in ("query", "pos") if not isinstance(row.get(k), str)]
        if missing:
            raise DataError(
                f"row lacks the text field(s) {', '.join(missing)} (query and pos are strings)",
                path=str(path),
                line=n,
            )
        neg = row.get("neg", [])
        if not isinstance(neg, list) or not all(isinstance(x, str) for x in neg):
            raise DataError("'neg' must be a list of strings", path=str(path), line=n)
        rows.append(row)
    if not rows:
        raise DataError("the examples file has no rows", path=str(path))
    return rows


# -- command line ---------------------------------------------------------------------------------
def add_count_option(parser: Any) -> None:
    """Add ``--count TASK=N`` (repeatable) to an ``argparse`` parser; read the values with
    :func:`parse_counts`."""
    parser.add_argument(
        "--count",
        action="append",
        default=[],
        metavar="TASK=N",
        help="training examples of one task instead of --per-task (repeatable), e.g. uh2i=6000",
    )


def parse_counts(specs: Sequence[str]) -> dict[str, int]:
    """``["uh2i=6000", "i2i=3000"]`` -> ``{"uh2i": 6000, "i2i": 3000}``; a malformed entry is
    a :class:`RecaiError` naming it."""
    out: dict[str, int] = {}
    for spec in specs:
        name, eq, n = spec.partition("=")
        name = name.strip()
        if not eq or not name or not n.strip().isdigit():
            raise RecaiError(f"--count wants TASK=N with N a whole number, got {spec!r}")
        task_class(name)
        out[name] = int(n)
    return out
