"""Grounding LLM-written SQL before it runs: wrong names and values mapped to the real ones.

A small model writes ``SELECT title FROM movies WHERE genre = 'scifi' AND release_year > 1990``;
the catalog has a table ``items``, a column ``genres`` holding ``'Action|Sci-Fi'`` and a column
``year``. :class:`SQLGrounder` parses the statement with sqlglot (never regexes), maps

- unknown tables to the nearest catalog table (``movies`` -> ``items``; a multi-valued field's
  name -> its side table),
- unknown columns to the nearest column (``genre`` -> ``genres``, ``release_year`` -> ``year``,
  ``name`` -> ``title``),
- string literals compared with a categorical column to its nearest value (``'scifi'`` ->
  ``'Sci-Fi'``; inside ``LIKE '%...%'`` too), ``=`` on a multi-valued column to a ``LIKE`` on one
  of its values, and literals compared with ``title`` to the nearest catalog title,

and writes the SQL back. Each change is a note (``"genres 'scifi' -> 'Sci-Fi'"``) for the trace.
What it returns still runs only through :class:`~recai.data.sql.CatalogDB`, whose checks
(read-only, one statement, budgets) are the safety; grounding only makes honest mistakes work.

>>> from recai.data import Catalog
>>> from recai.data.grounding import Grounder
>>> from recai.data.sql import CatalogDB
>>> films = Catalog(ids=[1, 2], titles=["Alien (1979)", "Heat (1995)"],
...                 fields={"year": [1979.0, 1995.0], "genres": [("Sci-Fi", "Horror"), ("Crime",)]})
>>> sg = SQLGrounder(CatalogDB(films), Grounder(films))
>>> sql, notes = sg.ground_query("SELECT title FROM movies WHERE genre = 'scifi'")
>>> sql
"SELECT title FROM items WHERE genres LIKE '%Sci-Fi%'"
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from recai.data.grounding import FuzzyIndex, normalize_text

from .describe import ColumnInfo, columns_of

if TYPE_CHECKING:
    from recai.data.grounding import Grounder
    from recai.data.sql import CatalogDB

__all__ = ["SQLGrounder", "value_in"]

#: Column names an LLM commonly writes for the standard columns.
COLUMN_ALIASES = {
    "name": "title",
    "movie": "title",
    "film": "title",
    "movie_title": "title",
    "film_title": "title",
    "product": "title",
    "game": "title",
    "item_id": "item",
    "idx": "item",
    "index": "item",
}
#: Everyday words for genre values; used only where the value exists in the column.
VALUE_ALIASES = {
    "science fiction": "sci-fi",
    "sf": "sci-fi",
    "kids": "children's",
    "children": "children's",
    "family": "children's",
    "animated": "animation",
    "cartoon": "animation",
    "romantic": "romance",
    "romcom": "romance",
    "scary": "horror",
    "funny": "comedy",
    "comedies": "comedy",
    "noir": "film-noir",
    "documentaries": "documentary",
    "musicals": "musical",
    "westerns": "western",
    "thrillers": "thriller",
}
_COMPACT = re.compile(r"[^0-9a-z]+")


def _compact(text: str) -> str:
    return _COMPACT.sub("", normalize_text(text))


def value_in(column: ColumnInfo, text: str) -> str | None:
    """The value of ``column`` that ``text`` names without doubt: the same letters ignoring case
    and punctuation (``'scifi'``, ``'sci fi'`` -> ``'Sci-Fi'``), a plural, or an everyday word
    (``'science fiction'``, ``'kids'``); None otherwise (no fuzzy guess)."""
    if not column.values:
        return None
    exact = {v.lower(): v for v in column.values}
    if text.lower() in exact:
        return exact[text.lower()]
    compact = {_compact(v): v for v in column.values}
    key = _compact(text)
    if key in compact:
        return compact[key]
    alias = VALUE_ALIASES.get(normalize_text(text))
    if alias is not None and alias in exact:
        return exact[alias]
    if len(key) > 3 and key.endswith("s") and key[:-1] in compact:  # a plural
        return compact[key[:-1]]
    return None


class SQLGrounder:
    """Maps table and column names, categorical values and titles in SQL to real ones.

    ``value_threshold`` and ``title_threshold`` are the fuzzy scores (0..1) a value or title must
    reach to replace what was written; ``column_threshold`` the same for names.
    """

    def __init__(
        self,
        db: CatalogDB,
        grounder: Grounder,
        *,
        value_threshold: float = 0.45,
        title_threshold: float = 0.6,
        column_threshold: float = 0.35,
    ):
        self.db = db
        self.grounder = grounder
        self.value_threshold = value_threshold
        self.title_threshold = title_threshold
        self.column_threshold = column_threshold
        self.columns: list[ColumnInfo] = columns_of(db)
        self._by_name = {c.name.lower(): c for c in self.columns}
        self.tables = db.tables()
        names = [c.name for c in self.columns]
        self._column_index = FuzzyIndex([n.replace("_", " ") for n in names], symmetric=True)
        self._column_names = names
        self._table_index = FuzzyIndex([t.replace("_", " ") for t in self.tables], symmetric=True)

    # -- values -----------------------------------------------------------------------------------
    def value(self, column: ColumnInfo, text: str) -> str | None:
        """The real value of a categorical ``column`` nearest to ``text``, or None."""
        if not column.values:
            return None
        found = value_in(column, text)
        if found is not None:
            return found
        if column.field is None:
            return None
        near = self.grounder.values(column.field, text, k=1, threshold=self.value_threshold)
        return near[0].name if near else None

    def title(self, text: str) -> str | None:
        """The catalog title nearest to ``text`` (None below the threshold)."""
        item = self.grounder.item(text, threshold=self.title_threshold)
        return None if item is None else str(self.db.catalog.titles[item])

    def column(self, name: str) -> str | None:
        """The real column nearest to ``name`` (None when nothing is near)."""
        low = name.lower()
        if low in self._by_name or low == "value":
            return low
        if low in COLUMN_ALIASES:
            return COLUMN_ALIASES[low]
        for prefix in ("item_", "movie_", "film_", "release_", "product_"):
            if low.startswith(prefix) and low[len(prefix) :] in self._by_name:
                return low[len(prefix) :]
        if low.endswith("s") and low[:-1] in self._by_name:
            return low[:-1]
        if low + "s" in self._by_name:
            return low + "s"
        found = self._column_index.search(low.replace("_", " "), 1)
        if found and found[0].score >= self.column_threshold:
            return self._column_names[found[0].index]
        return None

    def table(self, name: str) -> str:
        """The catalog table for ``name``: itself, a multi-valued field's side table, the
        nearest side table by name, else ``items``."""
        low = name.lower()
        if low in self.tables:
            return low
        col = self._by_name.get(low) or self._by_name.get(low + "s")
        if col is not None and col.side_table:
            return col.side_table
        found = self._table_index.search(low.replace("_", " "), 1)
        if found and found[0].score >= 0.6:
            return self.tables[found[0].index]
        return "items"

    # -- SQL --------------------------------------------------------------------------------------
    def ground_query(self, sql: str) -> tuple[str, list[str]]:
        """``(grounded SQL, notes)`` for a full statement; SQL that does not parse comes back
        unchanged (CatalogDB then refuses it with the reason)."""
        return self._ground(sql, condition=False)

    def ground_condition(self, condition: str) -> tuple[str, list[str]]:
        """``(grounded condition, notes)`` for a ``WHERE`` condition over ``items``."""
        return self._ground(condition, condition=True)

    def _ground(self, text: str, *, condition: bool) -> tuple[str, list[str]]:
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import SqlglotError

        if not isinstance(text, str) or len(text) > 10_000:
            return text, []
        try:
            tree = (
                sqlglot.parse_one(text, dialect="sqlite", into=exp.Condition)
                if condition
                else sqlglot.parse_one(text, dialect="sqlite")
            )
        except (SqlglotError, RecursionError, ValueError):
            return text, []
        if tree is None:
            return text, []
        notes: list[str] = []
        try:
            self._walk(tree, notes)
            out = tree.sql(dialect="sqlite")
        except (SqlglotError, RecursionError, ValueError):
            return text, []
        return (out, notes) if notes else (text, [])

    def _walk(self, tree: Any, notes: list[str]) -> None:
        from sqlglot import exp

        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        aliases = {a.alias.lower() for a in tree.find_all(exp.Alias) if a.alias}
        aliases |= {t.alias.lower() for t in tree.find_all(exp.Table) if t.alias} | {
            s.alias.lower() for s in tree.find_all(exp.Subquery) if s.alias
        }
        for table in list(tree.find_all(exp.Table)):
            if not isinstance(table.this, exp.Identifier):
                continue
            name = table.name
            if name.lower() in ctes or name.lower() in self.tables:
                continue
            if name.lower().startswith(("sqlite_", "pragma_")) or table.args.get("db"):
                continue  # SQLite's own tables and other databases: left for CatalogDB to refuse
            real = self.table(name)
            notes.append(f"table {name!r} -> {real!r}")
            table.set("this", exp.to_identifier(real))
        for col in list(tree.find_all(exp.Column)):
            name = col.name
            if not name or name == "*" or name.lower() in aliases:
                continue
            real_name = self.column(name)
            if real_name is not None and real_name != name.lower():
                notes.append(f"column {name!r} -> {real_name!r}")
                col.set("this", exp.to_identifier(real_name))
        self._values(tree, notes)

    def _column_of(self, node: Any) -> ColumnInfo | None:
        from sqlglot import exp

        if isinstance(node, exp.Lower | exp.Upper):
            node = node.this
        if not isinstance(node, exp.Column):
            return None
        name = node.name.lower()
        if name == "value":  # a side table's value: the multi-valued field with that table
            multi = [c for c in self.columns if c.kind == "multi" and c.values]
            table = node.table.lower() if node.table else ""
            for c in multi:
                if table and c.side_table == table:
                    return c
            return _merged(multi) if multi else None
        return self._by_name.get(name)

    def _values(self, tree: Any, notes: list[str]) -> None:
        from sqlglot import exp

        pairs: list[tuple[Any, Any, Any]] = []
        for node in list(tree.find_all(exp.EQ, exp.NEQ, exp.Like, exp.ILike)):
            left, right = node.this, node.expression
            if isinstance(right, exp.Literal) and right.is_string:
                pairs.append((node, left, right))
            elif isinstance(left, exp.Literal) and left.is_string:
                pairs.append((node, right, left))
        for node in list(tree.find_all(exp.In)):
            for lit in node.expressions:
                if isinstance(lit, exp.Literal) and lit.is_string:
                    pairs.append((node, node.this, lit))
        for node, colnode, lit in pairs:
            col = self._column_of(colnode)
            if col is None:
                continue
            raw = lit.this
            like = isinstance(node, exp.Like | exp.ILike)
            core = raw.strip("%") if like else raw
            if not core or "%" in core or "_" in core and like:
                continue
            if col.kind == "title":
                if like or core in self._titles():
                    continue
                real = self.title(core)
            elif col.categorical:
                real = self.value(col, core)
            else:
                continue
            if real is None:
                continue
            multi_eq = (
                col.kind == "multi"
                and isinstance(colnode, exp.Column)
                and colnode.name.lower() != "value"
                and isinstance(node, exp.EQ | exp.NEQ)
            )
            if real == core and not multi_eq:
                continue
            new = raw.replace(core, real) if like else real
            if multi_eq:  # 'A|B' = 'B' never holds: match one of the values
                pattern = exp.Like(this=colnode.copy(), expression=exp.Literal.string(f"%{real}%"))
                node.replace(exp.Not(this=pattern) if isinstance(node, exp.NEQ) else pattern)
                notes.append(f"{col.name} = {core!r} -> {col.name} LIKE '%{real}%'")
                continue
            lit.replace(exp.Literal.string(new))
            notes.append(f"{col.name} {core!r} -> {real!r}")

    def _titles(self) -> set[str]:
        cached: set[str] | None = getattr(self, "_title_set", None)
        if cached is None:
            cached = {str(t) for t in self.db.catalog.titles}
            self._title_set = cached
        return cached


def _merged(columns: list[ColumnInfo]) -> ColumnInfo:
    if len(columns) == 1:
        return columns[0]
    values = sorted({v for c in columns for v in c.values})
    return ColumnInfo("value", columns[0].field, "multi", "values", values=values)
