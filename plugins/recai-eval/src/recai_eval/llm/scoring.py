"""From parsed mentions to items, error flags and metrics.

:class:`TitleMatcher` grounds each mention (a list item the model wrote) in the catalog with
:class:`recai.data.Grounder`: the best title score over the mention's readings
(:func:`~.parsing.mention_variants`), accepted when it reaches ``threshold``. ``method="tfidf"``
is RecAI's baseline (character 3-gram TF-IDF cosine); ``"blend"`` (the default) normalises
titles and rewards partial titles.

:func:`error_flags` says, for one answer, which of the error kinds it shows:

- ``nonexistent``: a mention that grounds to no catalog item (an invented or unreadable title);
- ``duplicate``: an item named twice;
- ``in_history``: an item the user has already interacted with;
- ``out_of_candidates``: an item outside the candidates the prompt offered (when it offered any);
- ``copy``: the answer repeats the input order: its distinct items that come from the input
  list are, in order, a prefix of that list, at least ``min(3, len(input))`` of them long.

Every rate in a report is the share of *all* samples with that flag (failed samples have no
flags and are counted by ``failure_rate``).

>>> from recai.data import Catalog
>>> m = TitleMatcher(Catalog(ids=[1, 2, 3], titles=["Heat (1995)", "Fargo (1996)", "Babe (1995)"]))
>>> m.ground_all(["Fargo", "Hot Shots", "heat 1995"])
[1, None, 0]
>>> flags = error_flags([1, None, 0, 1], history={0}, candidates=[1, 2], order=[1, 2])
>>> sorted(k for k, v in flags.items() if v)
['duplicate', 'in_history', 'nonexistent', 'out_of_candidates']
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Literal

import numpy as np

from recai.data import Catalog, Grounder, normalize_text
from recai.stats import bootstrap_intervals

from ..metrics import MISSED, metric_values
from .parsing import DEFAULT_THRESHOLD, mention_variants

__all__ = [
    "TitleMatcher",
    "error_flags",
    "ERROR_KINDS",
    "rate_name",
    "target_rank",
    "ranking_values",
    "mean_and_intervals",
    "mentions_title",
    "core_title",
]

_EMPTY = {"", "the", "a", "an"}
_PARENS = re.compile(r"\([^()]*\)")
ERROR_KINDS = ("nonexistent", "duplicate", "in_history", "out_of_candidates", "copy")


def rate_name(kind: str) -> str:
    """``"in_history"`` -> ``"in_history_rate"`` (the report column)."""
    return f"{kind}_rate"


class TitleMatcher:
    """Grounds free-text mentions in a catalog's titles (see the module docstring)."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        method: Literal["blend", "tfidf"] = "blend",
        threshold: float = DEFAULT_THRESHOLD,
    ):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
        self.catalog = catalog
        self.method = method
        self.threshold = float(threshold)
        self.grounder = Grounder(catalog, method=method)
        self._memo: dict[str, tuple[int | None, float]] = {}

    def score(self, text: str) -> float:
        """The best title score of ``text`` as written (no other readings)."""
        ids, scores = self.grounder.titles.top(text, 1)
        return float(scores[0]) if len(scores) else 0.0

    def best(self, mention: str) -> tuple[int, float]:
        """The best item over the readings of ``mention`` and its score (whatever the score)."""
        best_item, best_score = -1, 0.0
        for variant in mention_variants(mention):
            ids, scores = self.grounder.titles.top(variant, 1)
            if len(ids) and scores[0] > best_score:
                best_item, best_score = int(ids[0]), float(scores[0])
        return best_item, best_score

    def ground(self, mention: str) -> tuple[int | None, float]:
        """``(item, score)``; the item is ``None`` when the best score is below the threshold,
        or when the mention has no words besides articles and parenthesised parts (``"The
        (1992)"`` would otherwise match any title from 1992)."""
        if mention not in self._memo:
            if normalize_text(_PARENS.sub(" ", mention)) in _EMPTY:
                self._memo[mention] = (None, 0.0)
                return self._memo[mention]
            item, score = self.best(mention)
            self._memo[mention] = (item if item >= 0 and score >= self.threshold else None, score)
        return self._memo[mention]

    def ground_all(self, mentions: Sequence[str]) -> list[int | None]:
        """The item of each mention (``None`` where it grounds to nothing)."""
        return [self.ground(m)[0] for m in mentions]

    def among(self, text: str, items: Sequence[int]) -> int | None:
        """The position in ``items`` whose title ``text`` names (used to read a multiple-choice
        answer that gives a title instead of a letter): the option whose title, with or without
        its parenthesised parts, appears in ``text`` as words (the longest if several), else the
        best grounding score if it reaches the threshold."""
        if not len(items):
            return None
        named = []
        for pos, item in enumerate(items):
            title = self.catalog.title(int(item))
            if mentions_title(text, title) or mentions_title(text, core_title(title)):
                named.append((len(normalize_text(core_title(title))), -pos))
        if named:
            return -max(named)[1]
        best_pos, best_score = None, 0.0
        idx = np.asarray(items, dtype=np.int64)
        for variant in mention_variants(text):
            scores = self.grounder.titles.scores(variant)[idx]
            pos = int(np.argmax(scores))
            if scores[pos] > best_score:
                best_pos, best_score = pos, float(scores[pos])
        return best_pos if best_score >= self.threshold else None

    def describe(self) -> dict[str, object]:
        return {"method": self.method, "threshold": self.threshold}


def error_flags(
    grounded: Sequence[int | None],
    *,
    history: Collection[int] = (),
    candidates: Sequence[int] | None = None,
    order: Sequence[int] | None = None,
) -> dict[str, bool]:
    """The error kinds one answer shows (``out_of_candidates`` only when ``candidates`` is
    given; ``copy`` only when an input ``order`` is given)."""
    items = [g for g in grounded if g is not None]
    hist = set(int(h) for h in history)
    flags = {
        "nonexistent": any(g is None for g in grounded),
        "duplicate": len(set(items)) < len(items),
        "in_history": any(i in hist for i in items),
    }
    if candidates is not None:
        allowed = set(int(c) for c in candidates)
        flags["out_of_candidates"] = any(i not in allowed for i in items)
    if order is not None:
        flags["copy"] = is_copy(items, order)
    return flags


def is_copy(items: Sequence[int], order: Sequence[int]) -> bool:
    """Whether the distinct ``items`` taken from ``order`` are a prefix of ``order`` (at least
    ``min(3, len(order))`` long).

    >>> is_copy([5, 6, 99, 7], [5, 6, 7, 8]), is_copy([6, 5, 7], [5, 6, 7, 8]), is_copy([5, 6], [5, 6, 7])
    (True, False, False)
    """
    members = set(int(o) for o in order)
    seen: list[int] = []
    for i in items:
        if i in members and i not in seen:
            seen.append(int(i))
    need = min(3, len(order))
    return need > 0 and len(seen) >= need and seen == [int(o) for o in order[: len(seen)]]


def target_rank(grounded: Sequence[int | None], target: int) -> int:
    """0-based position of the first mention of ``target`` (every mention keeps its slot, also
    duplicates and invented titles); :data:`~recai_eval.metrics.MISSED` if it is not named."""
    for pos, item in enumerate(grounded):
        if item is not None and int(item) == int(target):
            return pos
    return int(MISSED)


def ranking_values(ranks: Sequence[int], ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-sample Hit@k, NDCG@k and MRR@k from target ranks (as ``ranking.v1`` computes them)."""
    return metric_values(np.asarray(ranks, dtype=np.int64), ks, ["hit", "ndcg", "mrr"])


def mean_and_intervals(
    columns: dict[str, np.ndarray], resamples: int, seed: int
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Column means and 95% percentile bootstrap intervals (none when ``resamples`` is 0)."""
    names = list(columns)
    if not names:
        return {}, {}
    values = np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in names])
    means = (
        {n: float(v) for n, v in zip(names, values.mean(axis=0), strict=True)}
        if len(values)
        else {n: 0.0 for n in names}
    )
    if not resamples or not len(values):
        return means, {}
    low, high = bootstrap_intervals(values, resamples, seed)
    return means, {n: (float(lo), float(hi)) for n, lo, hi in zip(names, low, high, strict=True)}


def core_title(title: str) -> str:
    """The title without parenthesised parts: ``"Seven (Se7en) (1995)"`` -> ``"Seven"``."""
    return re.sub(r"\s+", " ", _PARENS.sub(" ", title)).strip() or title


def _padded(text: str) -> str:
    return f" {normalize_text(text)} "


def mentions_title(text: str, title: str) -> bool:
    """Whether ``text`` contains ``title`` as words, after normalisation (case, accents,
    punctuation, trailing articles): ``mentions_title("I loved the matrix (1999)!",
    "Matrix, The (1999)")`` is true.

    >>> mentions_title("I loved the matrix (1999)!", "Matrix, The (1999)")
    True
    >>> mentions_title("Heathers is fun", "Heat")
    False
    """
    core = normalize_text(title)
    return bool(core) and f" {core} " in _padded(text)
