"""A SQLite mirror of a :class:`~recai.data.Catalog`, with a safe path for SQL written by an LLM.

The mirror has one table ``items`` (``item`` = the catalog index, ``id``, ``title`` and one column
per scalar field) and, for every multi-valued field (tuples of strings, e.g. genres), a side table
``item_<field>(item, value)`` with one row per item and value. After it is built the connection is
read-only, and every query runs under an authorizer (reads, SELECTs and ordinary functions only:
no writes, ATTACH, PRAGMA or extensions), one statement at a time, within a time budget, a row
limit and a byte limit. The budget holds by construction (:mod:`recai.data.sqlguard`): SQLite's
limits cap every string and blob a query can build, the few built-ins whose one call could outlast
the budget check their arguments first, and a watchdog thread interrupts a statement at its
deadline. A ``where()`` condition is parsed (sqlglot) into one expression, and the SQL generated
from that parse is what runs. A refused or failing query raises :class:`QueryError` with the reason
and the SQL.

>>> from recai.data import Catalog
>>> films = Catalog(
...     ids=[10, 20, 30, 40],
...     titles=["Heat (1995)", "Up (2009)", "Alien (1979)", "Fargo (1996)"],
...     fields={"year": [1995.0, 2009.0, 1979.0, float("nan")],
...             "genres": [("Crime", "Action"), ("Animation",), ("Horror", "Sci-Fi"), ("Crime",)]},
... )
>>> db = CatalogDB(films)
>>> db.where("genres LIKE ? AND year < 2000", ("%Crime%",)).tolist()
[0]
>>> db.query("SELECT title FROM items WHERE year IS NULL").rows
[('Fargo (1996)',)]
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import DataError, QueryError
from .catalog import Catalog
from .sqlguard import (
    MAX_CONDITION_CHARS,
    MAX_CTE_EXPANSION,
    MAX_SQL_CHARS,
    WATCHDOG,
    Limits,
    condition_sql,
    cte_expansion,
    install_guarded_functions,
    syntax_error_position,
)

__all__ = ["CatalogDB", "QueryError", "QueryResult"]

#: SQL parameters: a sequence for ``?`` placeholders or a mapping for ``:name`` ones.
SQLParams = Sequence[Any] | Mapping[str, Any] | None

_IDENT = re.compile(r"[^0-9a-z_]+")
_RESERVED = {"item", "id", "title"}
# words an LLM would have to quote as column names: such columns get a trailing underscore
_KEYWORDS = {
    "abort", "add", "all", "alter", "and", "as", "asc", "between", "by", "case", "cast", "check",
    "collate", "column", "constraint", "create", "cross", "default", "delete", "desc", "distinct",
    "drop", "else", "end", "escape", "except", "exists", "filter", "foreign", "from", "full",
    "glob", "group", "having", "if", "in", "index", "inner", "insert", "intersect", "into", "is",
    "isnull", "join", "key", "left", "like", "limit", "match", "natural", "not", "notnull", "null",
    "of", "offset", "on", "or", "order", "outer", "over", "primary", "references", "regexp",
    "returning", "right", "select", "set", "table", "then", "to", "union", "unique", "update",
    "using", "values", "when", "where", "window", "with",
}  # fmt: skip
# functions never allowed, even where SQLite would have them: name -> why ("" for no reason given)
_DENIED_FUNCTIONS = {
    **dict.fromkeys(("load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"), ""),
    # SQLite 3.40 checks the size cap only when these finish: 600 MB within a 1 s budget
    **dict.fromkeys(
        ("json_group_array", "json_group_object"),
        ": it grows past the size cap before SQLite checks it; use group_concat()",
    ),
    # one call merges every pair of keys, uninterruptibly: 0.8 s on two 128 KiB objects
    "json_patch": ": one call can run past the time budget",
}
# the progress handler checks the deadline every this many VM steps, a second check besides the
# watchdog (1000 before; 250 costs about 5% on a scan of 200,000 rows, 100 about 15%)
_PROGRESS_STEPS = 250
_ACTION_NAMES = {
    getattr(sqlite3, f"SQLITE_{n}"): n
    for n in (
        "INSERT",
        "UPDATE",
        "DELETE",
        "ATTACH",
        "DETACH",
        "PRAGMA",
        "TRANSACTION",
        "SAVEPOINT",
        "CREATE_TABLE",
        "CREATE_INDEX",
        "CREATE_VIEW",
        "CREATE_TRIGGER",
        "CREATE_TEMP_TABLE",
        "CREATE_TEMP_INDEX",
        "CREATE_TEMP_VIEW",
        "CREATE_TEMP_TRIGGER",
        "CREATE_VTABLE",
        "DROP_TABLE",
        "DROP_INDEX",
        "DROP_VIEW",
        "DROP_TRIGGER",
        "DROP_TEMP_TABLE",
        "DROP_TEMP_INDEX",
        "DROP_TEMP_VIEW",
        "DROP_TEMP_TRIGGER",
        "DROP_VTABLE",
        "ALTER_TABLE",
        "REINDEX",
        "ANALYZE",
    )  # fmt: skip
    if hasattr(sqlite3, f"SQLITE_{n}")
}


@dataclass
class QueryResult:
    """Rows of a query: ``columns`` (names), ``rows`` (tuples), ``truncated`` (a limit cut the
    result short), ``seconds`` (time taken) and ``truncated_by`` (``"rows"`` or ``"bytes"``: which
    limit, None when nothing was cut)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False
    seconds: float = 0.0
    truncated_by: Literal["rows", "bytes"] | None = None

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class _Column:
    field: str | None  # catalog field name (None for item/id/title)
    name: str  # SQL column name in ``items``
    sql_type: str  # INTEGER, REAL or TEXT
    kind: str  # number, text, date, multi
    description: str
    side_table: str | None = None
    # dataclasses.field: the name `field` is this class's first attribute
    values: list[Any] = dataclasses.field(default_factory=list, repr=False)


class CatalogDB:
    """A read-only SQLite mirror of a catalog; safe to run SQL that an LLM or a user wrote.

    ``path``: a file to build the database in (``None`` or ``":memory:"``: in memory); an existing
    file is replaced only with ``overwrite=True``. ``time_budget`` (seconds), ``max_rows`` and
    ``max_bytes`` (the size of the values fetched: text and blobs by length, numbers as 8) are the
    defaults for :meth:`query`; the budget and the bytes also bound :meth:`items` and
    :meth:`where`. ``limits`` are the SQLite limits every query runs under. Column names are the catalog's field names in lower case with
    other characters turned into ``_`` (``columns`` maps field to column).

    >>> from recai.data import Catalog
    >>> cat = Catalog(ids=["a", "b"], titles=["Up", "Heat"],
    ...               fields={"genres": [("Drama",), ("Action", "Crime")]})
    >>> CatalogDB(cat).where("item IN (SELECT item FROM item_genres WHERE value = 'Crime')")
    array([1])
    """

    def __init__(
        self,
        catalog: Catalog,
        path: str | Path | None = None,
        *,
        overwrite: bool = False,
        time_budget: float = 1.0,
        max_rows: int = 1000,
        max_bytes: int = 16 * 2**20,
    ):
        if not 0 < time_budget < math.inf or max_rows < 1 or max_bytes < 1:
            raise ValueError(
                "time_budget must be a positive number of seconds and max_rows and max_bytes at "
                "least 1"
            )
        self.catalog = catalog
        self.time_budget = float(time_budget)
        self.max_rows = int(max_rows)
        self.max_bytes = int(max_bytes)
        self.path = None if path is None or str(path) == ":memory:" else Path(path)
        if self.path is not None and self.path.exists():
            if not overwrite:
                raise DataError(
                    "a file is already there; pass overwrite=True to replace it",
                    path=str(self.path),
                )
            self.path.unlink()
        self._lock = threading.Lock()
        self._deadline = math.inf
        self._timed_out = False
        self._denied: str | None = None
        self._over_cap: str | None = None
        self._last_seconds = 0.0
        self._close_guards: Callable[[], None] = lambda: None
        start = time.perf_counter()
        self._conn = sqlite3.connect(
            ":memory:" if self.path is None else str(self.path),
            check_same_thread=False,
            isolation_level=None,
        )
        self._columns = self._plan(catalog)
        self._build()
        self._lock_down()
        self.build_seconds = time.perf_counter() - start

    # -- building ---------------------------------------------------------------------------------
    def _plan(self, catalog: Catalog) -> list[_Column]:
        desc = catalog.descriptions
        ids = catalog.ids
        id_type = "INTEGER" if np.issubdtype(ids.dtype, np.integer) else "TEXT"
        cols = [
            _Column(None, "item", "INTEGER", "number",
                    "the item's index in recai: select it to return items"),
            _Column(None, "id", id_type, "number" if id_type == "INTEGER" else "text",
                    desc.get("id", "the item's external id")),
            _Column(None, "title", "TEXT", "text", desc.get("title", "the name of the item")),
        ]  # fmt: skip
        cols[1].values = [int(x) for x in ids] if id_type == "INTEGER" else [str(x) for x in ids]
        cols[2].values = [None if t is None else str(t) for t in catalog.titles]
        taken = set(_RESERVED)
        for name, raw in catalog.fields.items():
            sql_name = _IDENT.sub("_", str(name).lower()).strip("_") or "field"
            if sql_name[0].isdigit():
                sql_name = "f_" + sql_name
            if sql_name in _KEYWORDS:
                sql_name += "_"
            base, n = sql_name, 2
            while sql_name in taken:
                sql_name, n = f"{base}_{n}", n + 1
            taken.add(sql_name)
            col = _convert(name, sql_name, raw, desc.get(name, str(name)))
            cols.append(col)
        return cols

    def _build(self) -> None:
        conn = self._conn
        defs = ", ".join(
            f"{c.name} {c.sql_type}" + (" PRIMARY KEY" if c.name == "item" else "")
            for c in self._columns
        )
        n = self.catalog.n_items
        conn.execute("BEGIN")
        conn.execute(f"CREATE TABLE items ({defs})")
        self._columns[0].values = list(range(n))
        marks = ", ".join("?" for _ in self._columns)
        rows = zip(*(c.values for c in self._columns), strict=True)
        conn.executemany(f"INSERT INTO items VALUES ({marks})", rows)
        for c in self._columns[1:]:
            if c.kind == "multi":
                assert c.field is not None  # multi columns come from catalog fields
                side = self.catalog.fields[c.field]
                c.side_table = f"item_{c.name}"
                conn.execute(f"CREATE TABLE {c.side_table} (item INTEGER NOT NULL, value TEXT)")
                pairs = ((i, str(v)) for i, vs in enumerate(side) if vs for v in vs)
                conn.executemany(f"INSERT INTO {c.side_table} VALUES (?, ?)", pairs)
                conn.execute(
                    f"CREATE INDEX ix_{c.side_table}_value ON {c.side_table} (value, item)"
                )
                conn.execute(f"CREATE INDEX ix_{c.side_table}_item ON {c.side_table} (item)")
            elif c.kind != "text" or _short_text(c.values):
                conn.execute(f"CREATE INDEX ix_items_{c.name} ON items ({c.name})")
        conn.execute("COMMIT")
        for c in self._columns:
            c.values = []  # the data lives in SQLite now

    def _lock_down(self) -> None:
        conn = self._conn
        conn.execute("PRAGMA query_only = ON")
        # sorting, DISTINCT, GROUP BY and recursive queues spill to temporary files, not memory
        conn.execute("PRAGMA temp_store = FILE")
        self.limits = Limits.for_catalog(self._longest_row(), len(self._columns))
        self.limits.apply(conn)
        self._close_guards = install_guarded_functions(conn, self.limits, self._note_over_cap)
        conn.set_authorizer(self._authorize)
        conn.set_progress_handler(self._progress, _PROGRESS_STEPS)

    def _longest_row(self) -> int:
        """Bytes of the longest row of ``items`` (at most: the sum of each column's longest)."""
        names = [c.name for c in self._columns]
        total = 0
        for start in range(0, len(names), 500):
            terms = ", ".join(
                f"coalesce(max(length(CAST({n} AS BLOB))), 0)" for n in names[start : start + 500]
            )
            total += sum(self._conn.execute(f"SELECT {terms} FROM items").fetchone())
        return int(total) + 8 * len(names)

    def _note_over_cap(self, reason: str) -> None:
        self._over_cap = self._over_cap or reason

    # -- the guards -------------------------------------------------------------------------------
    def _authorize(self, action: int, arg1: Any, arg2: Any, db: Any, source: Any) -> int:
        # every table of this database is the catalog's (or its schema): reading is allowed;
        # a where() condition's tables are checked when it is parsed
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            why = _DENIED_FUNCTIONS.get(str(arg2).lower())
            if why is not None:
                self._denied = self._denied or f"the function {arg2}() is not allowed{why}"
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" and db == "main":
            # SQLite asks this while it sets up table-valued functions such as json_each();
            # a real write is still stopped by PRAGMA query_only
            return sqlite3.SQLITE_OK
        what = _ACTION_NAMES.get(action, f"action {action}")
        target = f" on {arg1}" if isinstance(arg1, str) and arg1 else ""
        if arg1 in ("sqlite_master", "sqlite_temp_master"):
            target += " (a change to the schema)"
        self._denied = (
            self._denied or f"only reading is allowed, and this SQL asks for {what}{target}"
        )
        return sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        if time.perf_counter() > self._deadline:
            self._timed_out = True
            return 1
        return 0

    # -- queries ----------------------------------------------------------------------------------
    def query(
        self,
        sql: str,
        params: SQLParams = None,
        *,
        max_rows: int | None = None,
        time_budget: float | None = None,
        max_bytes: int | None = None,
    ) -> QueryResult:
        """Run one read-only statement; values go in ``params`` (``?`` or ``:name`` placeholders).

        At most ``max_rows`` rows and ``max_bytes`` bytes of values come back (``truncated`` says
        whether there were more, ``truncated_by`` which limit stopped the fetch); the query is
        stopped after ``time_budget`` seconds. Anything refused or failing raises
        :class:`QueryError`.
        """
        limit = self.max_rows if max_rows is None else int(max_rows)
        if limit < 0:
            raise ValueError("max_rows must be at least 0")
        cap = self._byte_cap(max_bytes)
        rows: list[tuple[Any, ...]] = []
        size = 0
        cut: Literal["rows", "bytes"] | None = None
        with self._run(_checked(sql), params, time_budget) as cursor:
            columns = [d[0] for d in cursor.description or ()]
            for row in cursor:
                if len(rows) == limit:
                    cut = "rows"
                    break
                size += _row_bytes(row)
                if size > cap:
                    cut = "bytes"
                    break
                rows.append(row)
        return QueryResult(columns, rows, cut is not None, self._last_seconds, cut)

    def _byte_cap(self, max_bytes: int | None) -> int:
        cap = self.max_bytes if max_bytes is None else int(max_bytes)
        if cap < 1:
            raise ValueError("max_bytes must be at least 1")
        return cap

    def items(
        self, sql: str, params: SQLParams = None, *, time_budget: float | None = None
    ) -> np.ndarray:
        """Item indices selected by a full ``SELECT``, in the order the query gives, each once.

        The column named ``item`` is used when the result has one (so ``SELECT * FROM items ...``
        works), otherwise the first column; every value must be an item index.

        >>> from recai.data import Catalog
        >>> db = CatalogDB(Catalog(ids=["a", "b", "c"], titles=["Up", "Heat", "Alien"]))
        >>> db.items("SELECT * FROM items ORDER BY title").tolist()
        [2, 1, 0]
        """
        return self._items(_checked(sql), params, time_budget)

    def _items(
        self,
        sql: str,
        params: SQLParams,
        time_budget: float | None,
        *,
        shown_budget: float | None = None,
    ) -> np.ndarray:
        cap = max(10_000, 4 * self.catalog.n_items)
        byte_cap = self.max_bytes
        values: list[Any] = []
        size = 0
        with self._run(sql, params, time_budget, shown_budget) as cursor:
            columns = [d[0] for d in cursor.description or ()]
            col = columns.index("item") if "item" in columns else 0
            for row in cursor:
                if len(values) == cap:
                    raise QueryError(
                        f"the query returns more than {cap:,} rows; select each item once", sql
                    )
                size += _row_bytes(row)
                if size > byte_cap:
                    raise QueryError(
                        f"the query returns more than the cap of {byte_cap:,} bytes; select item "
                        "indices only",
                        sql,
                    )
                values.append(row[col])
        if not columns:
            raise QueryError("the statement returns no columns; select item indices", sql)
        bad = [v for v in values if not isinstance(v, int) or not 0 <= v < self.catalog.n_items]
        if bad:
            raise QueryError(
                f"column {columns[col]!r} must hold item indices 0..{self.catalog.n_items - 1}, "
                f"got {bad[0]!r}",
                sql,
            )
        return np.fromiter(dict.fromkeys(values), dtype=np.int64)

    def where(
        self, condition: str, params: SQLParams = None, *, time_budget: float | None = None
    ) -> np.ndarray:
        """Item indices (ascending) of the items that satisfy a ``WHERE`` condition.

        >>> from recai.data import Catalog
        >>> db = CatalogDB(Catalog(ids=["a", "b", "c"], titles=["Up", "Heat", "Alien"],
        ...                        fields={"price": [3.5, 9.0, 12.0]}))
        >>> db.where("price > :p", {"p": 5}).tolist()
        [1, 2]
        """
        start = time.perf_counter()
        budget = self._budget(time_budget)
        text = _checked(condition, "condition", MAX_CONDITION_CHARS)
        expression = condition_sql(text, frozenset(self.tables()))
        sql = f"SELECT item FROM items WHERE ({expression}) ORDER BY item"
        left = budget - (time.perf_counter() - start)  # checking it counts against the budget
        if left <= 0:
            raise QueryError(
                f"checking the condition took longer than its time budget of {budget:g} s", text
            )
        return self._items(sql, params, left, shown_budget=budget)

    def _budget(self, time_budget: float | None) -> float:
        budget = self.time_budget if time_budget is None else time_budget
        if isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget < 1e9:
            raise ValueError(f"time_budget must be a positive number of seconds, not {budget!r}")
        return float(budget)

    def _run(
        self,
        sql: str,
        params: SQLParams,
        time_budget: float | None,
        shown_budget: float | None = None,
    ) -> _Running:
        budget = self._budget(time_budget)
        shown = budget if shown_budget is None else shown_budget
        expansion = cte_expansion(sql)
        if expansion > MAX_CTE_EXPANSION:
            raise QueryError(
                "the SQL's WITH clauses would expand to more than "
                f"{MAX_CTE_EXPANSION:,} tokens, the cap (SQLite copies a common table expression "
                "for each use, before running anything and past any time budget); use each one "
                "fewer times",
                sql,
            )
        return _Running(self, sql, _bindable(params, sql, self.limits.length), budget, shown)

    # -- describing -------------------------------------------------------------------------------
    @property
    def columns(self) -> dict[str, str]:
        """Catalog field name -> SQL column name in ``items``."""
        return {c.field: c.name for c in self._columns if c.field is not None}

    def tables(self) -> list[str]:
        """The tables: ``items`` and one ``item_<field>`` per multi-valued field."""
        return ["items"] + [c.side_table for c in self._columns if c.side_table]

    def schema_for_prompt(self, examples: int = 3, list_values: int = 30) -> str:
        """The tables and columns in words, for an LLM that writes SQL over them.

        Each column has its SQL type, the catalog's description, and example values (the most
        frequent ones for categorical columns; every value when there are at most
        ``list_values``; the range for numbers).

        >>> from recai.data import Catalog
        >>> cat = Catalog(ids=["a", "b", "c"], titles=["Up", "Heat", "Alien"],
        ...               fields={"genres": [("Animation",), ("Crime", "Action"), ("Horror",)]},
        ...               descriptions={"genres": "the film's genres"})
        >>> print(CatalogDB(cat).schema_for_prompt())
        SQLite database of the item catalog (read-only).
        Table items: 3 rows, one per item.
        - item INTEGER PRIMARY KEY: the item's index in recai: select it to return items
        - id TEXT: the item's external id. Examples: 'a', 'b', 'c'
        - title TEXT: the name of the item. Examples: 'Up', 'Heat', 'Alien'
        - genres TEXT: the film's genres. Several values joined by '|' (match one with genres LIKE '%...%'); 4 distinct values: 'Action', 'Animation', 'Crime', 'Horror'
        Table item_genres: 4 rows (item INTEGER, value TEXT), one per item and value of genres; for exact matches use item IN (SELECT item FROM item_genres WHERE value = '...').
        """
        with self._lock:
            return self._schema(examples, list_values)

    def _schema(self, examples: int, list_values: int) -> str:
        n = self.catalog.n_items
        lines = [
            "SQLite database of the item catalog (read-only).",
            f"Table items: {n} rows, one per item.",
        ]
        side = []
        for c in self._columns:
            head = f"- {c.name} {c.sql_type}{' PRIMARY KEY' if c.name == 'item' else ''}: "
            text = head + c.description.rstrip(".")
            if c.name == "item":
                lines.append(text)
                continue
            notes = self._column_notes(c, examples, list_values)
            lines.append(text + (". " + notes if notes else ""))
            if c.side_table:
                count = self._scalar(f"SELECT count(*) FROM {c.side_table}")
                side.append(
                    f"Table {c.side_table}: {count} rows (item INTEGER, value TEXT), one per item "
                    f"and value of {c.name}; for exact matches use "
                    f"item IN (SELECT item FROM {c.side_table} WHERE value = '...')."
                )
        return "\n".join(lines + side)

    def _column_notes(self, c: _Column, examples: int, list_values: int) -> str:
        notes = []
        nulls = self._scalar(f"SELECT count(*) FROM items WHERE {c.name} IS NULL")
        if c.kind == "number" and c.name not in ("id",):
            lo, hi = self._conn.execute(
                f"SELECT min({c.name}), max({c.name}) FROM items"
            ).fetchone()
            if lo is not None:
                notes.append(f"From {_lit(lo)} to {_lit(hi)}")
        if c.kind == "date":
            lo, hi = self._conn.execute(
                f"SELECT min({c.name}), max({c.name}) FROM items"
            ).fetchone()
            if lo is not None:
                notes.append(f"ISO dates from {_lit(lo)} to {_lit(hi)}")
        if nulls:
            notes.append(f"NULL for {nulls} item{'s' if nulls != 1 else ''}")
        if c.kind == "multi":
            table = c.side_table
            distinct = self._scalar(f"SELECT count(DISTINCT value) FROM {table}")
            sep = "Several values joined by '|' (match one with " + c.name + " LIKE '%...%')"
            top = self._conn.execute(
                f"SELECT value FROM {table} GROUP BY value ORDER BY count(*) DESC, value LIMIT ?",
                (distinct if distinct <= list_values else examples,),
            ).fetchall()
            values = [r[0] for r in top]
            if distinct <= list_values:
                values.sort()
                notes.append(f"{sep}; {distinct} distinct values: " + ", ".join(map(_lit, values)))
            else:
                notes.append(
                    f"{sep}; {distinct} distinct values, most frequent: "
                    + ", ".join(map(_lit, values))
                )
            return ". ".join(notes)
        distinct = self._scalar(f"SELECT count(DISTINCT {c.name}) FROM items")
        if c.kind == "number" and c.name != "id":
            return ". ".join(notes + [f"{distinct} distinct values"])
        if (
            c.kind in ("text", "date")
            and distinct <= list_values
            and distinct < self.catalog.n_items
        ):
            vals = self._conn.execute(
                f"SELECT DISTINCT {c.name} FROM items WHERE {c.name} IS NOT NULL ORDER BY {c.name}"
            ).fetchall()
            notes.append(f"{distinct} distinct values: " + ", ".join(_lit(v[0]) for v in vals))
        elif c.kind == "text" and distinct <= self.catalog.n_items // 2:
            vals = self._conn.execute(
                f"SELECT {c.name} FROM items WHERE {c.name} IS NOT NULL GROUP BY {c.name} "
                f"ORDER BY count(*) DESC, {c.name} LIMIT ?",
                (examples,),
            ).fetchall()
            notes.append(
                f"{distinct} distinct values, most frequent: " + ", ".join(_lit(v[0]) for v in vals)
            )
        else:
            vals = self._conn.execute(
                f"SELECT {c.name} FROM items WHERE {c.name} IS NOT NULL ORDER BY item LIMIT ?",
                (examples,),
            ).fetchall()
            if vals:
                notes.append("Examples: " + ", ".join(_lit(v[0]) for v in vals))
        return ". ".join(notes)

    def _scalar(self, sql: str) -> Any:
        return self._conn.execute(sql).fetchone()[0]

    # -- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (a file database stays on disk)."""
        with self._lock:
            self._conn.close()
            self._close_guards()

    def __enter__(self) -> CatalogDB:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else ":memory:"
        return f"CatalogDB({self.catalog.n_items} items, {where})"


class _Running:
    """Context manager around one guarded statement: lock, deadline (progress handler and
    watchdog), cursor clean-up, error translation."""

    _TRANSLATED = (sqlite3.Error, ValueError, OverflowError, MemoryError, RecursionError)

    def __init__(self, db: CatalogDB, sql: str, params: Any, budget: float, shown: float):
        self.db, self.sql, self.params, self.budget = db, sql, params, budget
        self.shown = shown  # the budget as the caller gave it (where() spends some on parsing)
        self.held = False
        self.token: int | None = None
        self.cursor: sqlite3.Cursor | None = None

    def __enter__(self) -> sqlite3.Cursor:
        db = self.db
        db._lock.acquire()
        self.held = True
        db._denied, db._timed_out, db._over_cap = None, False, None
        self.start = time.perf_counter()
        db._deadline = self.start + self.budget
        self.token = WATCHDOG.arm(time.monotonic() + self.budget, self._interrupt)
        try:
            self.cursor = db._conn.execute(self.sql, self.params)
            return self.cursor
        except BaseException as exc:
            self._finish()
            raise self._translate(exc) from None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        self._finish()
        if exc is not None and isinstance(exc, self._TRANSLATED):
            raise self._translate(exc) from None
        return False

    def _interrupt(self) -> None:
        """The watchdog's call at the deadline (never after :meth:`_finish` disarmed it)."""
        self.db._timed_out = True
        self.db._conn.interrupt()

    def _finish(self) -> None:
        db = self.db
        if self.held:
            self.held = False
            if self.token is not None:
                WATCHDOG.disarm(self.token)
            if self.cursor is not None:
                with contextlib.suppress(sqlite3.Error):
                    self.cursor.close()  # resets the statement: a late interrupt ends with it
            db._deadline = math.inf
            db._last_seconds = time.perf_counter() - self.start
            db._lock.release()

    def _translate(self, exc: BaseException) -> BaseException:
        db, sql = self.db, self.sql
        if db._timed_out:
            return QueryError(f"the query ran longer than its time budget of {self.shown:g} s", sql)
        if db._denied is not None:
            return QueryError(f"SQL refused: {db._denied}", sql)
        if db._over_cap is not None:
            return QueryError(db._over_cap, sql)
        msg = str(exc)
        if isinstance(exc, sqlite3.Error | sqlite3.Warning):
            limit = db.limits.explain(msg)
            if limit is not None:
                return QueryError(f"the query is too large: {limit}", sql)
        if isinstance(exc, MemoryError):
            return QueryError(
                "the query needs more memory than there is; select fewer or smaller values", sql
            )
        if isinstance(exc, RecursionError):
            return QueryError("the SQL nests too deeply", sql)
        if isinstance(exc, sqlite3.ProgrammingError | sqlite3.Warning) and "one statement" in msg:
            return QueryError("SQL refused: only one statement may be run at a time", sql)
        if isinstance(exc, sqlite3.ProgrammingError) and (
            "binding" in msg.lower() or "supplied" in msg or "parameter" in msg
        ):
            return QueryError(f"wrong parameters for the SQL: {exc}", sql)
        if isinstance(exc, sqlite3.Error):
            if "readonly" in msg or "read-only" in msg:
                return QueryError("SQL refused: the database is read-only", sql)
            if msg == "interrupted":
                return QueryError("the query was interrupted", sql)
            if "syntax error" in msg or "incomplete input" in msg or "unrecognized token" in msg:
                where = syntax_error_position(sql, msg)
                return QueryError(f"the SQL has a syntax error{where}: {msg}", sql)
            return QueryError(f"the SQL failed: {msg}", sql)
        if isinstance(exc, ValueError | OverflowError):
            return QueryError(f"the SQL or its parameters are invalid: {exc}", sql)
        return exc


def _checked(sql: Any, what: str = "SQL", cap: int = MAX_SQL_CHARS) -> str:
    """``sql`` if it is non-empty text within the length cap; a :class:`QueryError` otherwise."""
    if not isinstance(sql, str):
        raise QueryError(f"the {what} must be a str, not {type(sql).__name__}")
    if not sql.strip():
        raise QueryError(f"the {what} is empty", sql)
    if len(sql) > cap:
        raise QueryError(
            f"the {what} is {len(sql):,} characters long, more than the cap of {cap:,}",
            sql[:1000],
        )
    return sql


def _bindable(params: SQLParams, sql: str, cap: int) -> tuple[Any, ...] | dict[str, Any]:
    """``params`` as sqlite3 binds them, checked first: a sequence for ``?`` or a mapping for
    ``:name``; numpy scalars become Python numbers (sqlite3 would bind an ``np.int64`` as an
    8-byte blob, which matches nothing); integers beyond 64 bits and text or bytes longer than
    ``cap`` are refused here, with the parameter named."""
    if params is None:
        return ()
    if isinstance(params, str | bytes | bytearray) or not isinstance(
        params, Mapping | Sequence | np.ndarray
    ):
        raise QueryError(
            "the parameters must be a sequence (for ? placeholders) or a mapping (for :name "
            f"placeholders), not {type(params).__name__}",
            sql,
        )
    items = (
        [(str(k), v) for k, v in params.items()]
        if isinstance(params, Mapping)
        else [(str(i + 1), v) for i, v in enumerate(params)]
    )
    out = []
    for name, value in items:
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise QueryError(f"parameter {name} is an integer beyond SQLite's 64 bits", sql)
        if isinstance(value, str | bytes | bytearray | memoryview) and len(value) > cap:
            raise QueryError(
                f"parameter {name} is {len(value):,} "
                f"{'characters' if isinstance(value, str) else 'bytes'} long, more than the cap "
                f"of {cap:,} bytes per string or blob",
                sql,
            )
        if value is not None and not isinstance(
            value, int | float | str | bytes | bytearray | memoryview | datetime.date
        ):
            raise QueryError(
                f"parameter {name} is of type {type(value).__name__}, which SQLite cannot "
                "store (give a number, text, bytes or None)",
                sql,
            )
        out.append((name, value))
    if isinstance(params, Mapping):
        return dict(out)
    return tuple(v for _, v in out)


def _row_bytes(row: tuple[Any, ...]) -> int:
    """The size of a fetched row: text and blobs by length, anything else as 8 bytes."""
    return sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)


def _convert(name: str, sql_name: str, raw: Any, description: str) -> _Column:
    """Turn a catalog column into SQL values following the catalog's conventions."""
    arr = _as_column(raw)
    kind = arr.dtype.kind
    if kind == "b":
        return _Column(
            name, sql_name, "INTEGER", "number", description, values=[int(v) for v in arr]
        )
    if kind in "iu":
        return _Column(name, sql_name, "INTEGER", "number", description, values=arr.tolist())
    if kind == "f":
        finite = np.isfinite(arr)
        whole = bool(np.all(arr[finite] == np.round(arr[finite]))) and (
            not finite.any() or np.abs(arr[finite]).max() < 2**53
        )
        conv = int if whole else float
        values: list[Any] = [
            conv(v) if ok else None for v, ok in zip(arr.tolist(), finite.tolist(), strict=True)
        ]
        return _Column(
            name, sql_name, "INTEGER" if whole else "REAL", "number", description, values=values
        )
    if kind == "M":
        nat = np.isnat(arr)
        days = arr.astype("datetime64[D]")
        unit: Literal["D", "s"] = (
            "D" if bool(np.all((arr[~nat] - days[~nat]) == np.timedelta64(0))) else "s"
        )
        text = np.datetime_as_string(arr, unit=unit)
        values = [None if m else str(t) for t, m in zip(text.tolist(), nat.tolist(), strict=True)]
        return _Column(name, sql_name, "TEXT", "date", description, values=values)
    if kind in "US":
        return _Column(
            name, sql_name, "TEXT", "text", description, values=[str(v) for v in arr.tolist()]
        )
    if kind != "O":
        raise DataError(f"catalog column {name!r} has dtype {arr.dtype}, which has no SQL mirror")
    values = arr.tolist()
    present = [v for v in values if not _missing(v)]
    if present and all(isinstance(v, tuple | list | set | frozenset) for v in present):
        joined = [None if _missing(v) else "|".join(str(x) for x in v) for v in values]
        return _Column(name, sql_name, "TEXT", "multi", description, values=joined)
    if present and all(isinstance(v, bool | int | float | np.number) for v in present):
        whole = all(float(v).is_integer() for v in present)
        conv = int if whole else float
        out: list[Any] = [None if _missing(v) else conv(v) for v in values]
        return _Column(
            name, sql_name, "INTEGER" if whole else "REAL", "number", description, values=out
        )
    out = [None if _missing(v) else str(v) for v in values]
    return _Column(name, sql_name, "TEXT", "text", description, values=out)


def _as_column(raw: Any) -> np.ndarray:
    """A one-dimensional array; sequences of tuples become object arrays of tuples."""
    if isinstance(raw, np.ndarray) and raw.ndim == 1:
        return raw
    values = list(raw)
    if any(isinstance(v, tuple | list | set | frozenset) for v in values):
        arr = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            arr[i] = v
        return arr
    return np.asarray(values)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _short_text(values: list[Any]) -> bool:
    """Index a text column only when it looks categorical or short (not free text)."""
    present = [v for v in values if v is not None]
    return not present or sum(len(v) for v in present) / len(present) <= 64


def _lit(value: Any) -> str:
    """A value as an SQL literal, shortened for prompts."""
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return "'" + text.replace("'", "''") + "'"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
