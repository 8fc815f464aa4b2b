"""What the agent knows about the catalog's columns, and the table description given to the LLM.

:func:`columns_of` reads a :class:`~recai.data.sql.CatalogDB` into :class:`ColumnInfo` records
(SQL name, kind, description, distinct values of categorical columns, numeric ranges); the tools
and the SQL grounding use them. :func:`describe_tables` writes the description an LLM that plans
or writes SQL reads: the tables and columns (types, meanings, ranges, values) followed by the
values and titles nearest the user's request.

>>> from recai.data import Catalog
>>> from recai.data.sql import CatalogDB
>>> films = Catalog(ids=[1, 2], titles=["Alien (1979)", "Heat (1995)"],
...                 fields={"year": [1979.0, 1995.0], "genres": [("Sci-Fi", "Horror"), ("Crime",)]})
>>> cols = {c.name: c for c in columns_of(CatalogDB(films))}
>>> cols["genres"].kind, cols["genres"].values, cols["year"].low
('multi', ['Crime', 'Horror', 'Sci-Fi'], 1979.0)
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from recai.data import Catalog
    from recai.data.grounding import Grounder
    from recai.data.sql import CatalogDB

__all__ = ["ColumnInfo", "columns_of", "describe_tables", "genre_column", "year_column"]

Kind = Literal["key", "id", "title", "number", "date", "text", "multi"]

#: Fields that hold an item's genre or category, most telling first.
GENRE_NAMES = ("genres", "genre", "categories", "category", "tags", "tag")
#: How many distinct values a text column may have to count as categorical.
MAX_CATEGORIES = 500


@dataclass
class ColumnInfo:
    """One column of the ``items`` table: its SQL name, the catalog field it mirrors (None for
    ``item``, ``id``, ``title``), its kind, the catalog's description, the side table of a
    multi-valued field, the distinct values of a categorical column (sorted; empty for free text
    and numbers) and the range of a numeric or date column."""

    name: str
    field: str | None
    kind: Kind
    description: str
    side_table: str | None = None
    values: list[str] = dataclasses.field(default_factory=list)
    low: float | str | None = None
    high: float | str | None = None

    @property
    def categorical(self) -> bool:
        return self.kind in ("text", "multi") and bool(self.values)


def _kind(values: np.ndarray | Sequence[object]) -> Kind:
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        return "date"
    if isinstance(values, np.ndarray) and values.dtype.kind in "iufb":
        return "number"
    for v in list(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, tuple | list | set | frozenset):
            return "multi"
        if isinstance(v, datetime.date | np.datetime64):
            return "date"
        if isinstance(v, int | float | np.number):
            return "number"
        return "text"
    return "text"


def _distinct(values: np.ndarray | Sequence[object], multi: bool) -> list[str]:
    found: set[str] = set()
    for v in np.asarray(values, dtype=object).tolist():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if multi:
            found.update(str(x) for x in v)
        else:
            found.add(str(v))
        if len(found) > MAX_CATEGORIES:
            return []
    return sorted(found)


def columns_of(db: CatalogDB) -> list[ColumnInfo]:
    """The columns of ``db``'s ``items`` table, described for the tools and the grounding."""
    catalog = db.catalog
    descriptions = dict(getattr(catalog, "descriptions", None) or {})
    out = [
        ColumnInfo("item", None, "key", "the item's index: select it to return items"),
        ColumnInfo("id", None, "id", "the item's external id"),
        ColumnInfo("title", None, "title", descriptions.get("title", "the name of the item")),
    ]
    tables = set(db.tables())
    for fname, sql_name in db.columns.items():
        values = catalog.fields[fname]
        kind = _kind(values)
        info = ColumnInfo(sql_name, fname, kind, descriptions.get(fname, fname))
        if kind == "multi":
            side = f"item_{sql_name}"
            info.side_table = side if side in tables else None
        if kind in ("text", "multi"):
            info.values = _distinct(values, kind == "multi")
        elif kind == "number":
            arr = np.asarray(values, dtype=np.float64)
            finite = arr[np.isfinite(arr)]
            if len(finite):
                info.low, info.high = float(finite.min()), float(finite.max())
        elif kind == "date":
            arr = np.asarray(values, dtype="datetime64[D]")
            ok = arr[~np.isnat(arr)]
            if len(ok):
                info.low, info.high = str(ok.min()), str(ok.max())
        out.append(info)
    return out


def genre_column(columns: Sequence[ColumnInfo]) -> ColumnInfo | None:
    """The column holding genres or categories: a field named like one (``genres``,
    ``category``, ``tags``...), else the first multi-valued categorical column, else the first
    categorical text column."""
    cats = [c for c in columns if c.categorical]
    by_name = {c.name.lower(): c for c in cats}
    for name in GENRE_NAMES:
        if name in by_name:
            return by_name[name]
    multi = [c for c in cats if c.kind == "multi"]
    if multi or cats:
        return (multi or cats)[0]
    return None


def year_column(columns: Sequence[ColumnInfo]) -> tuple[ColumnInfo, str] | None:
    """The column giving an item's year and the SQL expression of the year: a number column
    named ``year``, else the first date column (its year through ``strftime``)."""
    for c in columns:
        if c.kind == "number" and c.name.lower() in ("year", "release_year", "years"):
            return c, c.name
    for c in columns:
        if c.kind == "date":
            return c, f"CAST(strftime('%Y', {c.name}) AS INTEGER)"
    return None


def _fmt(v: float | str | None) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def describe_tables(
    db: CatalogDB,
    request: str = "",
    grounder: Grounder | None = None,
    *,
    nearest: int = 3,
    threshold: float = 0.35,
    max_chars: int = 4000,
) -> str:
    """The table description for an LLM that plans over the catalog or writes SQL.

    The tables, columns, types, meanings, ranges and values (from the catalog's read-only mirror)
    and, when ``request`` is given, the values of each categorical column and the titles nearest
    to it (fuzzy matches scoring at least ``threshold``), so a model that cannot spell
    ``'Sci-Fi'`` or a title sees the real string. Cut at ``max_chars`` characters.
    """
    text = db.schema_for_prompt(examples=3, list_values=30)
    if request and grounder is not None:
        hints = nearest_values(db.catalog, columns_of(db), request, grounder, nearest, threshold)
        if hints:
            text += "\nValues nearest the request:\n" + "\n".join(hints)
    if len(text) > max_chars:
        text = text[: max_chars - 4].rsplit("\n", 1)[0] + "\n..."
    return text


def nearest_values(
    catalog: Catalog,
    columns: Sequence[ColumnInfo],
    request: str,
    grounder: Grounder,
    k: int = 3,
    threshold: float = 0.35,
) -> list[str]:
    """One line per categorical column (and one for titles) with the values closest to
    ``request``, as SQL string literals.

    The request is read in windows of one to four words, so a value or a title inside a longer
    sentence is found (``"some scifi like the terminator"``: ``'Sci-Fi'``, ``'Terminator,
    The (1984)'``); whole-request fuzzy matches scoring at least ``threshold`` are added.
    """
    from .sqlground import value_in

    words = re.findall(r"[\w'&-]+", request.lower())[:60]
    spans = [
        " ".join(words[i : i + n])
        for n in (4, 3, 2, 1)
        for i in range(len(words) - n + 1)
        if any(w not in _STOP for w in words[i : i + n])
    ]
    lines = []
    for c in columns:
        if not c.categorical or c.field is None:
            continue
        found: list[str] = []
        for span in spans:
            v = value_in(c, span)
            if v is not None and v not in found:
                found.append(v)
        for m in grounder.values(c.field, request, k=k, threshold=max(threshold, 0.45)):
            if m.name not in found:
                found.append(m.name)
        if found:
            lines.append(f"- {c.name}: " + ", ".join(_quote(v) for v in found[:k]))
    titles: list[int] = []
    for span in spans:
        if len(span) < 4:
            continue
        item = grounder.item(span, threshold=0.75)
        if item is not None and item not in titles:
            titles.append(item)
        if len(titles) >= k:
            break
    if titles:
        lines.append("- title: " + ", ".join(_quote(str(catalog.titles[i])) for i in titles))
    return lines


_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "in",
        "on",
        "for",
        "to",
        "with",
        "like",
        "some",
        "me",
        "i",
        "my",
        "want",
        "watch",
        "movie",
        "movies",
        "film",
        "films",
        "something",
        "anything",
        "please",
        "recommend",
        "show",
        "find",
        "give",
        "good",
        "best",
        "new",
        "old",
        "more",
        "less",
        "not",
        "no",
        "but",
        "is",
        "are",
        "was",
        "be",
        "it",
        "that",
        "this",
        "these",
        "those",
        "from",
        "by",
        "about",
        "any",
    ]
)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
