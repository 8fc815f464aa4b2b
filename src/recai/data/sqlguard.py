"""The guards that keep a query on a :class:`~recai.data.CatalogDB` within its budget.

SQLite checks the time budget only between VM steps, and a few built-in functions can spend
seconds inside one step (``printf('%.*c', 200000000, 'x')`` loops 200 million times; ``trim``,
``instr`` and ``replace`` are quadratic in their arguments). So a budget holds by construction
only with every layer below (plus the functions that :class:`~recai.data.CatalogDB`'s authorizer
refuses: ``json_group_array``/``json_group_object`` grow past the size cap before SQLite checks it,
``json_patch`` is quadratic and returns JSON, which a Python wrapper could not):

- :class:`Limits`: ``Connection.setlimit`` caps on string and blob sizes, SQL length, expression
  depth, compound SELECTs, function arguments, LIKE patterns, variables and result columns, sized
  to the catalog (the longest stored row must still be readable);
- :func:`install_guarded_functions`: the functions whose one call can cost more than a linear
  pass over a capped string are replaced by wrappers that check the cost of their arguments
  first, then call SQLite's own function on a private connection (same results, same types);
- :class:`Watchdog`: one thread that calls ``Connection.interrupt()`` when a statement passes its
  deadline (the progress handler stays as a second check);
- :func:`cte_expansion`: a statement whose common table expressions would expand (one copy per
  use, before anything runs, where no interrupt reaches) past a cap is refused up front;
- :func:`condition_sql`: a ``where()`` condition is parsed with sqlglot into ONE expression, and
  the SQL that runs is the condition rewritten from sqlglot's tokens (comments dropped, strings
  and names quoted afresh), so no text in the condition (a ``)``, a comment, a ``;``, a quote the
  two parsers read differently) can change the shape of the statement around it.

sqlglot is imported only when a condition is parsed.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import QueryError

if TYPE_CHECKING:
    from sqlglot.dialects.dialect import Dialect

__all__ = [
    "MAX_CONDITION_CHARS",
    "MAX_CTE_EXPANSION",
    "MAX_SQL_CHARS",
    "Limits",
    "Watchdog",
    "WATCHDOG",
    "condition_sql",
    "cte_expansion",
    "install_guarded_functions",
    "syntax_error_position",
]

#: longest statement (in characters) that query() and items() accept
MAX_SQL_CHARS = 20_000
#: longest where() condition: sqlglot checks one in about 0.2 s at worst (10,000 characters of
#: ``1+1+...``), and that time counts against the query's budget
MAX_CONDITION_CHARS = 10_000
#: a table-valued function a condition may read besides the catalog's tables
TABLE_FUNCTIONS = frozenset({"json_each", "json_tree"})


@dataclass(frozen=True)
class Limits:
    """The ``sqlite3`` limits of a catalog database (each applied with ``setlimit``).

    ``length`` (bytes of one string or blob, also of one row being sorted) is at least
    :attr:`MIN_LENGTH` and twice the longest stored row, so the catalog stays readable while no
    query can build values much larger than its data. The LIKE pattern cap shrinks as
    ``length`` grows so that one LIKE (``length`` x ``like_pattern`` steps at worst) stays cheap.
    """

    length: int
    sql_length: int = 4 * MAX_SQL_CHARS + 1_000  # bytes: the characters in UTF-8, and a wrapper
    like_pattern: int = 1_000
    column: int = 64
    expr_depth: int = 250
    compound_select: int = 32
    function_arg: int = 64
    variable_number: int = 10_000
    vdbe_op: int = 250_000

    MIN_LENGTH = 128 * 1024

    @classmethod
    def for_catalog(cls, longest_row: int, n_columns: int) -> Limits:
        length = max(cls.MIN_LENGTH, 2 * longest_row)
        like = max(100, min(1_000, 2**27 // length))
        return cls(length=length, like_pattern=like, column=max(64, 2 * n_columns + 8))

    def apply(self, conn: sqlite3.Connection) -> None:
        for name, value in (
            ("LENGTH", self.length),
            ("SQL_LENGTH", self.sql_length),
            ("LIKE_PATTERN_LENGTH", self.like_pattern),
            ("COLUMN", self.column),
            ("EXPR_DEPTH", self.expr_depth),
            ("COMPOUND_SELECT", self.compound_select),
            ("FUNCTION_ARG", self.function_arg),
            ("VARIABLE_NUMBER", self.variable_number),
            ("VDBE_OP", self.vdbe_op),
            ("TRIGGER_DEPTH", 1),
            ("ATTACHED", 0),
            ("WORKER_THREADS", 0),
        ):
            code = getattr(sqlite3, f"SQLITE_LIMIT_{name}", None)
            if code is not None:
                conn.setlimit(code, value)

    def explain(self, message: str) -> str | None:
        """SQLite's message for a limit it hit, in words that name the cap; None if not one."""
        low = message.lower()
        if "string or blob too big" in low or ("too large" in low and "json" in low):
            return (
                f"a value in the query would be longer than the cap of {self.length:,} bytes "
                "per string or blob"
            )
        if "query string is too large" in low or "statement too long" in low:
            return f"the SQL is longer than the cap of {self.sql_length:,} bytes"
        if "like or glob pattern too complex" in low:
            return f"a LIKE or GLOB pattern is longer than the cap of {self.like_pattern:,} bytes"
        if "expression tree is too large" in low:
            return f"the SQL nests expressions deeper than the cap of {self.expr_depth}"
        if "too many terms in compound select" in low:
            return (
                f"the SQL joins more SELECTs with UNION, INTERSECT or EXCEPT than the cap of "
                f"{self.compound_select}"
            )
        if "too many arguments on function" in low:
            return (
                f"a function call has more arguments than the cap of {self.function_arg} "
                f"({message})"
            )
        if "too many sql variables" in low or "variable number must be between" in low:
            return f"the SQL has more parameters than the cap of {self.variable_number:,}"
        if "too many columns" in low:
            return f"the SQL asks for more columns than the cap of {self.column} ({message})"
        if "parser stack overflow" in low:
            return "the SQL nests too deeply for SQLite's parser"
        if ("too many" in low and "program" in low) or "vdbe" in low:
            return f"the SQL compiles to a program longer than the cap of {self.vdbe_op:,} steps"
        return None


# -- the watchdog ---------------------------------------------------------------------------------
class Watchdog:
    """One daemon thread that calls a callback when its deadline passes, unless disarmed first.

    ``arm(deadline, fire)`` returns a token; ``disarm(token)`` guarantees that ``fire`` will not
    run afterwards (callbacks run under the same lock, so a fire in progress completes first).
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """A fresh state (also in a forked child: the parent's thread and lock are not its own)."""
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, Callable[[], None]] = {}
        self._tokens = 0
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, fire: Callable[[], None]) -> int:
        with self._cond:
            self._tokens += 1
            token = self._tokens
            self._armed[token] = fire
            heapq.heappush(self._heap, (deadline, token))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="recai-sql-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._cond:
            self._armed.pop(token, None)

    def _loop(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (
                    self._heap[0][0] <= now or self._heap[0][1] not in self._armed
                ):
                    _, token = heapq.heappop(self._heap)
                    fire = self._armed.pop(token, None)
                    if fire is not None:
                        with contextlib.suppress(Exception):  # a closed connection, say
                            fire()
                wait = self._heap[0][0] - now if self._heap else None
                self._cond.wait(wait)


#: the watchdog every CatalogDB shares
WATCHDOG = Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=WATCHDOG._reset)


# -- functions whose one call could outlast the budget --------------------------------------------
_PRINTF_SPEC = re.compile(r"%([-+ #!0,]*)(\*|[1-9][0-9]*)?(?:\.(\*|[0-9]*))?(l{0,2})(.?)", re.S)
_PRINTF_CONSUMES = set("dsgzqQwcouxXfeEGipr")
_LEADING_NUMBER = re.compile(rb"\s*[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")

# cost caps of one call, in units of the function's inner loop (about 0.05 to 0.1 s each)
_TRIM_WORK = 2**25  # characters trimmed x characters to trim
_SEARCH_WORK = 2**34  # bytes x bytes compared (instr, replace: memcmp at every position)


def _magnitude(value: Any) -> float:
    """The largest size SQLite could read from ``value`` as an integer argument (no smaller)."""
    if value is None:
        return 0.0
    if isinstance(value, bool | int):
        return float(abs(value))
    if isinstance(value, float):
        return abs(value) if math.isfinite(value) else math.inf
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)
    match = _LEADING_NUMBER.match(raw)
    if match is None:
        return 0.0
    try:
        return abs(float(match.group()))
    except ValueError:  # pragma: no cover - the pattern only matches numbers
        return math.inf


def _size(value: Any) -> int:
    """Bytes of a value as SQLite holds it (an upper bound for text)."""
    if isinstance(value, str):
        return len(value) if value.isascii() else 4 * len(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    return 0 if value is None else 24


def _chars(value: Any) -> int:
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    return 0 if value is None else 24


def printf_problem(args: tuple[Any, ...], cap: int) -> str | None:
    """Why ``printf(*args)`` would be too costly (a width or precision above ``cap``), or None.

    Reads the format as SQLite 3.40's printf does: flags, a width (digits or ``*``, taking the
    next argument), a precision (``.`` then digits or ``*``), ``l``/``ll`` and the conversion;
    ``%%`` and ``%n`` take no argument, an unknown conversion ends the output.
    """
    if not args or args[0] is None:
        return None
    fmt = args[0]
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else str(fmt)
    used = 1

    def take() -> float:
        nonlocal used
        value = args[used] if used < len(args) else None
        used += 1
        return _magnitude(value)

    pos = text.find("%")
    while pos >= 0:
        m = _PRINTF_SPEC.match(text, pos)
        assert m is not None  # every group is optional
        _, width, precision, _, conv = m.groups()
        for what, spec in (("width", width), ("precision", precision)):
            if not spec:
                continue
            size = take() if spec == "*" else float(spec)
            if size > cap:
                return (
                    f"printf() was asked for a {what} of {size:,.0f}, larger than the cap of "
                    f"{cap:,} bytes per string"
                )
        if conv in _PRINTF_CONSUMES:
            used += 1
        elif conv not in ("%", "n"):
            return None  # SQLite stops at an unknown conversion or the end of the format
        pos = text.find("%", m.end())
    return None


class _GuardedFunctions:
    """The costly built-ins of one connection, re-registered behind a cost check.

    A call within its cap runs SQLite's own function on a private in-memory connection (with the
    same length cap), so results and types are SQLite's. A call over its cap records why through
    ``refuse`` and raises, which fails the statement.
    """

    def __init__(self, limits: Limits, refuse: Callable[[str], None]):
        self.limits = limits
        self.refuse = refuse
        self._helper: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._helper is not None:
            self._helper.close()
            self._helper = None

    def _call(self, name: str, args: tuple[Any, ...]) -> Any:
        with self._lock:
            if self._helper is None:
                self._helper = sqlite3.connect(":memory:", check_same_thread=False)
                self.limits.apply(self._helper)
            marks = ", ".join("?" * len(args))
            try:
                return self._helper.execute(f"SELECT {name}({marks})", args).fetchone()[0]
            except sqlite3.Error as exc:
                explained = self.limits.explain(str(exc))
                self.refuse(
                    f"the query is too large: {explained}" if explained else f"{name}(): {exc}"
                )
                raise

    def _fail(self, reason: str) -> None:
        self.refuse(f"the query is too costly: {reason}")
        raise ValueError(reason)

    def printf(self, name: str) -> Callable[..., Any]:
        def guarded(*args: Any) -> Any:
            problem = printf_problem(args, self.limits.length)
            if problem is not None:
                self._fail(problem.replace("printf()", f"{name}()"))
            out = self._call(name, args)
            if out is None and args and args[0] is not None:
                # SQLite's printf returns NULL, silently, when the result is too long
                self._fail(
                    f"{name}() would return more than the cap of {self.limits.length:,} bytes "
                    "per string"
                )
            return out

        return guarded

    def quadratic(
        self, name: str, cost: Callable[[tuple[Any, ...]], int], cap: int, what: str
    ) -> Callable[..., Any]:
        def guarded(*args: Any) -> Any:
            spent = cost(args)
            if spent > cap:
                self._fail(
                    f"{name}() on these arguments would take about {spent:,} {what}, more than "
                    f"the cap of {cap:,} for one call"
                )
            return self._call(name, args)

        return guarded


def install_guarded_functions(
    conn: sqlite3.Connection, limits: Limits, refuse: Callable[[str], None]
) -> Callable[[], None]:
    """Replace the built-ins whose one call could outlast a budget; returns a close function."""
    guards = _GuardedFunctions(limits, refuse)
    for name in ("printf", "format"):
        conn.create_function(name, -1, guards.printf(name), deterministic=True)

    def trim_cost(a: tuple[Any, ...]) -> int:
        return _chars(a[0]) * _chars(a[1])

    def search_cost(a: tuple[Any, ...]) -> int:
        hay, needle = _size(a[0]), _size(a[1])
        return max(0, hay - needle + 1) * needle

    for name in ("trim", "ltrim", "rtrim"):
        conn.create_function(
            name,
            2,
            guards.quadratic(name, trim_cost, _TRIM_WORK, "character comparisons"),
            deterministic=True,
        )
    conn.create_function(
        "instr", 2, guards.quadratic("instr", search_cost, _SEARCH_WORK, "byte comparisons"),
        deterministic=True,
    )  # fmt: skip
    conn.create_function(
        "replace", 3, guards.quadratic("replace", search_cost, _SEARCH_WORK, "byte comparisons"),
        deterministic=True,
    )  # fmt: skip
    return guards.close


# -- conditions, parsed with sqlglot --------------------------------------------------------------
@functools.cache
def _dialect() -> type[Dialect]:
    """SQLite as sqlglot reads it, except that ``replace(`` at the start is a function call.

    (sqlglot's SQLite tokenizer reads a statement that starts with REPLACE as an opaque command,
    for ``REPLACE INTO``; a condition never is one.)
    """
    from sqlglot import TokenType
    from sqlglot.dialects.sqlite import SQLite

    class CatalogSQLite(SQLite):
        class Tokenizer(SQLite.Tokenizer):
            COMMANDS = SQLite.Tokenizer.COMMANDS - {TokenType.REPLACE}

    return CatalogSQLite


def _as_written(condition: str, exc: Exception) -> Exception:
    """sqlglot's error on the condition as written (its places are the user's), else ``exc``."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        sqlglot.parse_one(condition, dialect=_dialect(), into=exp.Condition)
    except SqlglotError as original:
        return original
    except RecursionError:  # pragma: no cover - the rewritten condition failed first
        pass
    return exc


def _not_one_expression(condition: str, exc: BaseException) -> QueryError:
    errors = getattr(exc, "errors", None) or []
    if errors and errors[0].get("line") is not None:
        first = errors[0]
        where = f" at line {first['line']}, column {first['col']}"
        near = (first.get("start_context") or "")[-20:].strip()
        detail = f"{first.get('description', 'unexpected text')}{where}" + (
            f" (after {near!r})" if near else ""
        )
    else:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if detail.startswith("Error tokenizing"):
            detail = "an unterminated string, quoted name or comment: " + detail
    return QueryError(
        "the condition must be one SQL expression (what follows WHERE), with nothing around it; "
        f"it could not be read as one: {detail}",
        condition,
    )


# what a token that is copied as it is written may look like (anything else is refused)
_RAW_TOKEN = re.compile(
    r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"  # a number
    r"|[xX]'[0-9A-Fa-f]*'|0[xX][0-9A-Fa-f]+"  # a blob or a hexadecimal integer
    r"|\$?[^\W\d][\w$]*"  # a name, keyword or $parameter
    r"|[^\W\d]\w*(?:[ \t\r\n]+[^\W\d]\w*)+"  # a keyword of several words (ORDER BY)
    r"|\(|\)|,|\.|\+|-|\*|/|%|==?|!=|<>|<=?|>=?|&|\|\|?|~|->>?|:|@|\?"  # punctuation
)
# two punctuation tokens that would read as a comment once joined
_JOINS_INTO_COMMENT = {("-", "-"), ("/", "*")}


def _canonical(text: str, tokens: list[Any]) -> str:
    """``text`` rewritten from sqlglot's tokens of it: strings and quoted names quoted afresh,
    every other token copied after checking its characters, comments and spacing replaced by one
    space. SQLite splits the result into the same tokens as sqlglot did (no string, quote or
    comment can start or end anywhere else), so the parse that sqlglot checks is the one SQLite
    runs, and the SQL keeps its meaning (no function or operator is rewritten)."""
    from sqlglot import TokenType

    out: list[str] = []
    prev_end, prev_raw = -2, ""
    for tok in tokens:
        raw = text[tok.start : tok.end + 1]
        quoted = tok.token_type in (TokenType.STRING, TokenType.IDENTIFIER)
        if tok.token_type == TokenType.STRING and raw[:1] == "'" and raw[-1:] == "'":
            piece = "'" + tok.text.replace("'", "''") + "'"
        elif tok.token_type == TokenType.IDENTIFIER and raw[:1] in ('"', "`"):
            q = raw[0]
            piece = q + tok.text.replace(q, q + q) + q
        elif tok.token_type == TokenType.IDENTIFIER and raw[:1] == "[" and "]" not in tok.text:
            piece = "[" + tok.text + "]"
        elif not quoted and _RAW_TOKEN.fullmatch(raw):
            piece = raw
        else:
            raise ValueError(f"unexpected text {raw[:40]!r} at offset {tok.start}")
        adjacent = tok.start == prev_end + 1 and not quoted and prev_raw != ""
        if adjacent and (prev_raw[-1:], piece[:1]) in _JOINS_INTO_COMMENT:
            raise ValueError(f"unexpected text {prev_raw + piece!r} at offset {tok.start}")
        if out and not adjacent:
            out.append(" ")
        out.append(piece)
        prev_end, prev_raw = tok.end, "" if quoted else piece
    return "".join(out)


@functools.lru_cache(maxsize=512)
def condition_sql(condition: str, tables: frozenset[str]) -> str:
    """The SQL of a ``WHERE`` condition, checked to be ONE expression.

    Refuses (:class:`QueryError`) text that is not exactly one expression (``1) UNION SELECT 5
    /*``, ``1; DELETE ...``), and subqueries that read a table other than ``tables``, their own
    CTEs and ``json_each``/``json_tree``. The returned text is the condition rewritten token by
    token (:func:`_canonical`: comments dropped, strings and names quoted afresh), so it cannot
    close a parenthesis or comment out what surrounds it, whatever the two parsers disagree on.
    """
    if len(condition) > MAX_CONDITION_CHARS:
        raise QueryError(
            f"the condition is {len(condition):,} characters long, more than the cap of "
            f"{MAX_CONDITION_CHARS:,}",
            condition[:1000],
        )
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    dialect = _dialect()
    try:
        sql = _canonical(condition, dialect().tokenize(condition))
        tree = sqlglot.parse_one(sql, dialect=dialect, into=exp.Condition)
        if _canonical(sql, dialect().tokenize(sql)) != sql:  # pragma: no cover - a fixed point
            raise ValueError("its tokens do not read back the same")
    except RecursionError:
        raise QueryError(
            "the condition nests parentheses, CASE or NOT too deeply to be checked", condition
        ) from None
    except SqlglotError as exc:
        raise _not_one_expression(condition, _as_written(condition, exc)) from None
    except ValueError as exc:
        raise QueryError(f"the condition could not be checked: {exc}", condition) from None
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            func = table.this
            name = (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
            if name not in TABLE_FUNCTIONS:
                raise QueryError(
                    f"the condition reads from {name}(), which is not a catalog table; "
                    f"it may read {_listing(tables)}",
                    condition,
                )
            continue
        name, db = table.name.lower(), table.db.lower()
        if db not in ("", "main") or (name not in tables and (db or name not in ctes)):
            shown = f"{db}.{name}" if db else name
            raise QueryError(
                f"the condition reads the table {shown}, which is not a catalog table; "
                f"it may read {_listing(tables)}",
                condition,
            )
    return sql


#: how many tokens the common table expressions of one statement may expand to
MAX_CTE_EXPANSION = 50_000
_WITH = re.compile(r"\bwith\b", re.IGNORECASE)
_CTE_BODY_STARTS = {"select", "with", "values"}


def cte_expansion(sql: str) -> int:
    """About how many tokens SQLite handles to prepare ``sql`` once every use of a common table
    expression is replaced by a copy of it (SQLite copies a CTE's body for each reference before
    it decides to materialize it, and a CTE that uses an earlier one twice doubles it: 30 such
    CTEs took 5.6 s to prepare, uninterruptibly). 0 when ``sql`` has no WITH.

    Counted on sqlglot's tokens, so any statement is measured, whatever the parser supports:
    a CTE is ``name [(columns)] AS [NOT] [MATERIALIZED] (SELECT|WITH|VALUES ...)``, and any other
    token spelling its name is a use (a column of that name counts too: an overestimate).
    """
    if not _WITH.search(sql):
        return 0
    from sqlglot.errors import SqlglotError

    try:
        tokens = _dialect()().tokenize(sql)
    except SqlglotError:
        return MAX_CTE_EXPANSION + 1  # SQLite would not read it either; refuse to guess
    words = [t.text.lower() for t in tokens]
    kinds = [t.token_type.name for t in tokens]
    closing = _matching_parens(kinds)
    bodies: dict[str, list[tuple[int, int]]] = {}
    definitions: set[int] = set()
    for i in range(len(tokens) - 2):
        if kinds[i] not in ("VAR", "IDENTIFIER") and not words[i].isidentifier():
            continue
        j = i + 1
        if kinds[j] == "L_PAREN" and j in closing:  # the column list
            j = closing[j] + 1
        if j >= len(tokens) or words[j] != "as":
            continue
        j += 1
        while j < len(tokens) and words[j] in ("not", "materialized"):
            j += 1
        if j + 1 < len(tokens) and kinds[j] == "L_PAREN" and words[j + 1] in _CTE_BODY_STARTS:
            bodies.setdefault(words[i], []).append((j + 1, closing.get(j, len(tokens))))
            definitions.add(i)
    if not bodies:
        return len(tokens)

    sizes: dict[str, int] = {}

    def size(name: str, visiting: frozenset[str]) -> int:
        if name in sizes:
            return sizes[name]
        best = 0
        for start, end in bodies[name]:
            total = end - start
            for k in range(start, end):
                ref = words[k]
                if ref in bodies and ref != name and ref not in visiting and k not in definitions:
                    total += size(ref, visiting | {name})
                    if total > MAX_CTE_EXPANSION:
                        break
            best = max(best, total)
        sizes[name] = min(best, MAX_CTE_EXPANSION + 1)
        return sizes[name]

    inside = [False] * len(tokens)
    for spans in bodies.values():
        for start, end in spans:
            inside[start:end] = [True] * (end - start)
    total = len(tokens)
    for k, word in enumerate(words):
        if word in bodies and not inside[k] and k not in definitions:
            total += size(word, frozenset())
            if total > MAX_CTE_EXPANSION:
                break
    return total


def _matching_parens(kinds: list[str]) -> dict[int, int]:
    """Index of each ``(`` token -> index of its ``)``."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for k, kind in enumerate(kinds):
        if kind == "L_PAREN":
            stack.append(k)
        elif kind == "R_PAREN" and stack:
            pairs[stack.pop()] = k
    return pairs


def _listing(tables: frozenset[str]) -> str:
    return ", ".join(sorted(tables)) + " and " + ", ".join(sorted(TABLE_FUNCTIONS)) + "()"


def syntax_error_position(sql: str, message: str) -> str:
    """Where SQLite's syntax error ``message`` is in ``sql``: ``" at line 1, column 5"`` or ``""``.

    SQLite names the token (``near "SELEC": syntax error``, ``unrecognized token: "'abc"``) but
    not its place; when the token occurs more than once, sqlglot's first error picks the nearest.
    ``incomplete input`` is at the end.
    """
    if "incomplete input" in message:
        return " at its end (an unclosed parenthesis, string, quoted name or CASE?)"
    m = re.search(r'(?:near|unrecognized token:) "(.*)"', message, re.S)
    if m is None or not m.group(1):
        return ""
    starts = [k.start() for k in re.finditer(re.escape(m.group(1)), sql)]
    if not starts:
        return ""
    pos = starts[0]
    if len(starts) > 1:
        guess = _sqlglot_error_offset(sql)
        if guess is not None:
            pos = min(starts, key=lambda k: abs(k - guess))
    line = sql.count("\n", 0, pos) + 1
    col = pos - (sql.rfind("\n", 0, pos) + 1) + 1
    return f" at line {line}, column {col}"


def _sqlglot_error_offset(sql: str) -> int | None:
    """The offset in ``sql`` of sqlglot's first parse error, if sqlglot finds one."""
    if len(sql) > MAX_SQL_CHARS:
        return None
    import sqlglot
    from sqlglot.errors import ParseError, SqlglotError

    try:
        sqlglot.parse(sql, dialect=_dialect())
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        line, col = first.get("line"), first.get("col")
        if isinstance(line, int) and isinstance(col, int):
            lines = sql.split("\n")
            return sum(len(x) + 1 for x in lines[: line - 1]) + max(0, col - 1)
    except (SqlglotError, RecursionError):
        pass
    return None
