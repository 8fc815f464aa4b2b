"""Fuzzy grounding: free text (an LLM's or a user's) to catalog items and to field values.

:class:`FuzzyIndex` finds the closest of a fixed list of names by character n-grams weighted by
TF-IDF, with pure numpy (an inverted index; no scipy or scikit-learn). Two methods:

- ``"tfidf"``: character 3-grams of the lower-cased text, cosine similarity. This is the baseline
  (the same scores as scikit-learn's ``TfidfVectorizer(analyzer="char", ngram_range=(3, 3))``).
- ``"blend"`` (default): the text is normalised first (accents, case, punctuation; a trailing
  article moved back, so ``"Matrix, The (1999)"`` and ``"the matrix 1999"`` read alike; a leading
  article dropped), 3-grams are taken over the padded text, and the score blends the cosine with
  the share of the query's weight found in the name (``coverage``), which helps partial titles.

Scores lie in ``[0, 1]``; callers choose thresholds. :class:`Grounder` puts indexes over a
catalog's titles and fields.

>>> from recai.data import Catalog
>>> cat = Catalog(ids=[1, 2, 3],
...               titles=["Matrix, The (1999)", "Toy Story (1995)", "Mother (1996)"],
...               fields={"genres": [("Sci-Fi", "Action"), ("Animation",), ("Comedy",)]})
>>> g = Grounder(cat)
>>> g.items("the matrix", k=1).ids.tolist()
[0]
>>> g.values("genres", "scifi")[0].name
'Sci-Fi'
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import DataError
from ..types import ItemList
from .catalog import Catalog

__all__ = ["FuzzyIndex", "Grounder", "Match", "normalize_text"]

Method = Literal["blend", "tfidf"]

_ARTICLES = "the|a|an|les|la|le|l'|il|lo|gli|i|die|der|das|el|los|las|un|une|det|den|de"
_TRAILING_ARTICLE = re.compile(rf"^(.*\S),\s*({_ARTICLES})\s*$", re.IGNORECASE)
_LEADING_ARTICLE = re.compile(r"^(the|a|an) ")
_PARENS = re.compile(r"(\([^()]*\))")
_NON_WORD = re.compile(r"[^0-9a-z]+")
_SPACES = re.compile(r"\s\s+")


def normalize_text(text: str) -> str:
    """Lower case, no accents, ``&`` as ``and``, punctuation as spaces, trailing articles moved
    to the front (in the title and in each parenthesised part) and a leading English article
    dropped.

    >>> normalize_text("Matrix, The (1999)")
    'matrix 1999'
    >>> normalize_text("Tin Drum, The (Blechtrommel, Die) (1979)")
    'tin drum die blechtrommel 1979'
    >>> normalize_text("Amélie")
    'amelie'
    """
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c))
    parts = []
    for part in _PARENS.split(text):
        inner = part[1:-1] if part.startswith("(") and part.endswith(")") else part
        moved = _TRAILING_ARTICLE.match(inner.strip())
        parts.append(f"{moved.group(2)} {moved.group(1)}" if moved else inner)
    text = " ".join(parts).lower().replace("&", " and ").replace("'", "")
    text = _NON_WORD.sub(" ", text).strip()
    return _LEADING_ARTICLE.sub("", text)


def _baseline_text(text: str) -> str:
    return _SPACES.sub(" ", str(text).lower())


def _char_ngrams(text: str, n: int) -> list[str]:
    return [text[i : i + n] for i in range(len(text) - n + 1)]


@dataclass(frozen=True)
class Match:
    """One candidate: its position in the index (an item index for titles), its name, its score."""

    index: int
    name: str
    score: float


class FuzzyIndex:
    """The closest of a fixed list of names to free text, by character n-gram TF-IDF.

    ``method``: ``"blend"`` (normalised text, cosine blended with ``coverage``) or ``"tfidf"``
    (the baseline: raw lower-cased 3-grams, cosine). ``coverage`` is the share of the query's
    weight found in a name; with ``symmetric=True`` it is the larger of that and the share of the
    name's weight found in the query, so a name contained in a longer query also scores high
    (good for short values such as genres: ``"some horror movies"`` finds ``Horror``). Build cost
    is linear in the total length of the names; a query costs one pass over the posting lists of
    its n-grams.

    >>> idx = FuzzyIndex(["Action", "Film-Noir", "Children's"])
    >>> [(m.name, round(m.score, 2)) for m in idx.search("film noir", k=2)]
    [('Film-Noir', 1.0), ('Action', 0.0)]
    >>> idx.search("childrens", k=1)[0].name
    "Children's"
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        method: Method = "blend",
        n: int = 3,
        coverage: float = 0.5,
        symmetric: bool = False,
    ):
        if method not in ("blend", "tfidf"):
            raise ValueError(f"method must be 'blend' or 'tfidf', not {method!r}")
        if n < 1 or not 0.0 <= coverage <= 1.0:
            raise ValueError("n must be at least 1 and coverage lie in [0, 1]")
        self.names = [str(x) for x in names]
        self.method = method
        self.n = int(n)
        self.coverage = float(coverage) if method == "blend" else 0.0
        self.symmetric = bool(symmetric)
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        for r, name in enumerate(self.names):
            for gram in self._grams(name):
                rows.append(r)
                cols.append(vocab.setdefault(gram, len(vocab)))
        self._vocab = vocab
        n_docs, n_terms = len(self.names), len(vocab)
        key = np.asarray(rows, dtype=np.int64) * max(1, n_terms) + np.asarray(cols, dtype=np.int64)
        key, tf = np.unique(key, return_counts=True)
        docs, terms = key // max(1, n_terms), key % max(1, n_terms)
        df = np.bincount(terms, minlength=n_terms)
        self._idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
        self._idf_unseen = math.log(1.0 + n_docs) + 1.0
        weights = tf * self._idf[terms]
        norms = np.sqrt(np.bincount(docs, weights=weights**2, minlength=n_docs))
        weights = weights / np.where(norms > 0, norms, 1.0)[docs]
        order = np.argsort(terms, kind="stable")  # postings by term, docs ascending
        self._post_docs = docs[order]
        self._post_weights = weights[order]
        self._indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(df, out=self._indptr[1:])

    def __len__(self) -> int:
        return len(self.names)

    def _text(self, text: str) -> str:
        if self.method == "tfidf":
            return _baseline_text(text)
        norm = normalize_text(text)
        return f" {norm} " if norm else ""

    def _grams(self, text: str) -> list[str]:
        return _char_ngrams(self._text(text), self.n)

    def scores(self, query: str) -> np.ndarray:
        """The score of every name for ``query`` (shape ``(len(self),)``, values in ``[0, 1]``)."""
        out = np.zeros(len(self.names))
        counts = Counter(self._grams(query))
        if not counts or not self.names:
            return out
        known = [(self._vocab[g], c) for g, c in counts.items() if g in self._vocab]
        # the baseline ignores n-grams no name has (as scikit-learn does); the blend counts them
        # against the query, so that unknown words lower every score
        unseen = (
            0
            if self.method == "tfidf"
            else sum(c for g, c in counts.items() if g not in self._vocab)
        )
        terms = np.array([t for t, _ in known], dtype=np.int64)
        q = np.array([c for _, c in known], dtype=np.float64) * self._idf[terms]
        qnorm = math.sqrt(float(q @ q) + (unseen * self._idf_unseen) ** 2)
        if not known or qnorm == 0:
            return out
        q /= qnorm
        starts, ends = self._indptr[terms], self._indptr[terms + 1]
        lengths = ends - starts
        pos = np.repeat(ends - lengths.cumsum(), lengths) + np.arange(lengths.sum())
        docs = self._post_docs[pos]
        qw = np.repeat(q, lengths)
        out += (1.0 - self.coverage) * np.bincount(docs, qw * self._post_weights[pos], len(out))
        if self.coverage:
            cov_q = np.bincount(docs, qw * qw, len(out))
            if self.symmetric:
                cov_d = np.bincount(docs, self._post_weights[pos] ** 2, len(out))
                cov_q = np.maximum(cov_q, cov_d)
            out += self.coverage * cov_q
        return np.clip(out, 0.0, 1.0, out=out)

    def top(self, query: str, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, scores)`` of the ``k`` best names, best first (ties: lower index first)."""
        scores = self.scores(query)
        k = min(int(k), len(scores))
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        # ties at the cut: take every name with the k-th score, then order by (score, index)
        cut = scores[part].min()
        pool = np.flatnonzero(scores >= cut)
        order = np.lexsort((pool, -scores[pool]))[:k]
        best = pool[order]
        return best.astype(np.int64), scores[best]

    def search(self, query: str, k: int = 5) -> list[Match]:
        """The ``k`` best matches, best first."""
        idx, sc = self.top(query, k)
        return [Match(int(i), self.names[i], float(s)) for i, s in zip(idx, sc, strict=True)]

    def search_batch(self, queries: Sequence[str], k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """``(indices, scores)``, each of shape ``(len(queries), min(k, len(self)))``."""
        width = min(int(k), len(self.names))
        ids = np.zeros((len(queries), width), dtype=np.int64)
        scores = np.zeros((len(queries), width))
        for r, q in enumerate(queries):
            ids[r], scores[r] = self.top(q, width)
        return ids, scores


class Grounder:
    """Grounds free text in a catalog: titles to items, words to values of a field.

    Indexes are built on first use and kept. ``method`` is that of :class:`FuzzyIndex`; values of
    fields are matched with symmetric coverage (a value inside a longer phrase counts).

    >>> from recai.data import Catalog
    >>> g = Grounder(Catalog(ids=[1, 2], titles=["Usual Suspects, The (1995)", "Heat (1995)"],
    ...                      fields={"genre": ["Crime", "Action"]}))
    >>> found = g.items("the usual suspect", k=2)
    >>> found.ids.tolist(), found.scores.round(2).tolist()
    ([0], [0.81])
    >>> g.item("usual suspects"), g.item("something else")
    (0, None)
    >>> g.values("genre", "crime film")[0].name
    'Crime'
    """

    def __init__(self, catalog: Catalog, *, method: Method = "blend"):
        self.catalog = catalog
        self.method = method
        self._titles: FuzzyIndex | None = None
        self._fields: dict[str, FuzzyIndex] = {}

    @property
    def titles(self) -> FuzzyIndex:
        """The index over titles (position = item index)."""
        if self._titles is None:
            self._titles = FuzzyIndex(
                ["" if t is None else str(t) for t in self.catalog.titles], method=self.method
            )
        return self._titles

    def items(self, text: str, k: int = 5, *, threshold: float = 0.0) -> ItemList:
        """The ``k`` items whose titles match ``text`` best, with scores, dropping those scoring
        below ``threshold`` (and those sharing nothing with ``text``: score 0)."""
        ids, scores = self.titles.top(text, k)
        keep = (scores >= threshold) & (scores > 0)
        return ItemList(ids[keep], scores[keep])

    def item(self, text: str, *, threshold: float = 0.5) -> int | None:
        """The best matching item, or ``None`` when its score is below ``threshold``."""
        ids, scores = self.titles.top(text, 1)
        return int(ids[0]) if len(ids) and scores[0] >= threshold else None

    def field_values(self, field: str) -> list[str]:
        """The distinct values of a categorical or multi-valued field, sorted."""
        return self.field_index(field).names

    def field_index(self, field: str) -> FuzzyIndex:
        """The index over the distinct values of ``field`` (built once)."""
        if field not in self._fields:
            if field not in self.catalog.fields:
                known = ", ".join(self.catalog.fields) or "none"
                raise DataError(f"the catalog has no field {field!r} (fields: {known})")
            values: set[str] = set()
            for v in self.catalog.fields[field]:
                if isinstance(v, tuple | list | set | frozenset):
                    values.update(str(x) for x in v)
                elif isinstance(v, str):
                    values.add(v)
                elif v is not None and not (isinstance(v, float) and math.isnan(v)):
                    raise DataError(
                        f"field {field!r} holds {type(v).__name__} values; grounding needs text "
                        "values (categorical or multi-valued)"
                    )
            self._fields[field] = FuzzyIndex(sorted(values), method=self.method, symmetric=True)
        return self._fields[field]

    def values(self, field: str, text: str, k: int = 3, *, threshold: float = 0.0) -> list[Match]:
        """The ``k`` values of ``field`` closest to ``text``, best first, without those scoring
        below ``threshold`` or 0 (``Match.index`` indexes :meth:`field_values`)."""
        found = self.field_index(field).search(text, k)
        return [m for m in found if m.score >= threshold and m.score > 0]

    def __repr__(self) -> str:
        return f"Grounder({self.catalog.n_items} items, method={self.method!r})"
