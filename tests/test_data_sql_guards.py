"""Issue 17, item 2, piece by piece: where() conditions keep the statement's shape, the costly
built-ins check their arguments (and still give SQLite's results), results are bounded in bytes,
the watchdog and the progress handler each stop a runaway query alone, and every failure is one
readable QueryError (item 7)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import recai.data.sql as sqlmod
from recai.data import Catalog, CatalogDB, QueryError
from recai.data.sqlguard import MAX_SQL_CHARS, Limits, Watchdog, printf_problem


def films() -> Catalog:
    return Catalog(
        ids=np.array([101, 102, 103, 104, 105]),
        titles=np.array(
            ["Heat (1995)", "Up (2009)", "Alien (1979)", "Amélie (2001)", "It's (2010)"],
            dtype=object,
        ),
        fields={
            "year": np.array([1995.0, 2009.0, np.nan, 2001.0, 2010.0]),
            "price": np.array([3.5, 9.0, 12.25, np.nan, 1.0]),
            "votes": np.array([10, 20, 30, 40, 50]),
            "studio": np.array(["Warner", None, "Fox", "UGC", "Fox"], dtype=object),
            "genres": np.array(
                [("Crime", "Action"), ("Animation",), ("Horror", "Sci-Fi"), (), ("Drama",)],
                dtype=object,
            ),
            "Release Date": np.array(
                ["1995-12-15", "2009-05-29", "NaT", "2001-04-25", "2010-01-01"],
                dtype="datetime64[D]",
            ),
        },
    )


@pytest.fixture
def db() -> CatalogDB:
    return CatalogDB(films(), time_budget=0.5, max_rows=50)


def assert_readable(err: QueryError) -> None:
    """One readable paragraph (the reason; the SQL follows on its own line), no chained error."""
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    assert "\n" not in err.reason and "Traceback" not in str(err)
    assert not isinstance(err, sqlite3.Error)


# -- where(): one expression, nothing around it ---------------------------------------------------
SHAPE_ATTACKS = [
    "1) UNION SELECT 5 /*",  # the red team's case: the comment swallows the rest
    "1) UNION SELECT 5 --",
    "1) UNION SELECT 5 -- \n",
    "1 -- \n) UNION SELECT 5 --",
    "1; DELETE FROM items",
    "1; SELECT 5",
    "1) OR (1",  # balanced once wrapped, not on its own
    "title = 'x') OR (item >= 0",
    "1) ORDER BY item LIMIT 1 --",
    "1) GROUP BY item HAVING (1",
    "1 /* /* */ ) UNION SELECT 5 -- */",  # comments do not nest in SQLite
    "[title) UNION SELECT 5 --",
    '"title) UNION SELECT 5 --',
    "title = 'x",
    "SELECT item FROM items",
    "1 UNION SELECT 5",
    "1 EXCEPT SELECT 0",
    "item IN (SELECT length(sql) FROM sqlite_master)",  # a table outside the catalog
    "EXISTS (SELECT 1 FROM main.sqlite_schema)",
    "item IN (SELECT item FROM temp.items)",
    "item IN (SELECT cid FROM pragma_table_info('items'))",
    "item IN (SELECT 1 FROM generate_series(1, 10))",
    "?1 = 1",  # not readable by the parser: refused, not guessed
    "",
    "  \n ",
]


def test_the_condition_that_runs_is_the_one_written(db: CatalogDB) -> None:
    from recai.data.sqlguard import condition_sql

    tables = frozenset(db.tables())
    assert condition_sql("like(?, title) /* c */ -- d", tables) == "like(?, title)"
    assert condition_sql("a  !=\n1 AND b<<2", tables) == "a != 1 AND b<<2"
    # strings and quoted names are quoted afresh; a backslash is an ordinary character
    assert condition_sql("t = 'it''s' OR [a b] = `c``d`", tables) == "t = 'it''s' OR [a b] = `c``d`"
    assert condition_sql("t = 'a\\' OR 1 = 1 -- '", tables) == "t = 'a\\' OR 1 = 1"


@pytest.mark.parametrize("condition", SHAPE_ATTACKS)
def test_a_condition_cannot_change_the_statement_shape(db: CatalogDB, condition: str) -> None:
    with pytest.raises(QueryError) as info:
        db.where(condition)
    assert_readable(info.value)
    assert db.query("SELECT count(*) FROM items").rows == [(5,)]
    assert db.where("votes > 35").tolist() == [3, 4]


def test_condition_errors_say_what_is_wrong(db: CatalogDB) -> None:
    with pytest.raises(QueryError, match="one SQL expression .* line 1, column 2"):
        db.where("1) UNION SELECT 5 --")
    with pytest.raises(QueryError, match="unterminated string, quoted name or comment"):
        db.where("1) UNION SELECT 5 /*")
    with pytest.raises(QueryError, match="reads the table sqlite_master, which is not a catalog"):
        db.where("item IN (SELECT rootpage FROM sqlite_master)")
    with pytest.raises(QueryError, match="generate_series\\(\\), which is not a catalog table"):
        db.where("item IN (SELECT value FROM generate_series(1, 3))")
    with pytest.raises(QueryError, match="the condition is empty"):
        db.where(" ")
    with pytest.raises(QueryError, match="the condition must be a str, not bytes"):
        db.where(b"votes > 1")  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="more than the cap of 10,000"):
        db.where("votes > 1 AND " * 1000 + "1")
    with pytest.raises(QueryError, match="nests parentheses, CASE or NOT too deeply"):
        db.where("(" * 200 + "1" + ")" * 200)


# conditions an LLM or a user writes; each must select what the same text selects when SQLite
# reads it directly (the condition that runs is rewritten token by token from sqlglot's tokens)
LEGIT = [
    "genres LIKE ? AND year < 2000",
    "year IS NULL",
    "year IS NOT NULL AND NOT (year > 2000)",
    "year NOTNULL",
    "1 = 0",
    "1",
    "item IN (SELECT item FROM item_genres WHERE value = 'Crime')",
    "EXISTS (SELECT 1 FROM item_genres g WHERE g.item = items.item AND g.value = 'Horror')",
    "item IN (WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 2 FROM c WHERE x < 3) "
    "SELECT x FROM c)",
    "title LIKE '%(19__)' ESCAPE '\\'",
    "title GLOB '*e*'",
    "year BETWEEN 1990 AND 2005",
    "lower(title) = 'up (2009)'",
    "substr(title, 1, 3) = 'Hea'",
    "instr(title, '(') > 4",
    "replace(title, 'Up', 'Down') = 'Down (2009)'",
    "trim(title, '()0123456789 ') = 'Heat'",
    "printf('%05d', votes) = '00010'",
    "format('%s!', studio) = 'Fox!'",
    "coalesce(year, 0) > 0",
    "ifnull(price, 0) < 5",
    "iif(year > 2000, 1, 0) = 1",
    "CASE WHEN year > 2000 THEN 'new' ELSE 'old' END = 'new'",
    "CAST(year AS TEXT) = '1995'",
    "votes % 20 = 10",
    "votes / 3 = 3",
    "votes / 3.0 > 3.2",
    "date(release_date) > date('2000-01-01')",
    "strftime('%Y', release_date) = '1995'",
    "typeof(year) = 'null'",
    "title || '!' = 'Up (2009)!'",
    "json_extract('{\"a\": 20}', '$.a') = votes",
    "'{\"a\": 30}' ->> '$.a' = votes",
    'title IN (SELECT value FROM json_each(\'["Up (2009)", "Heat (1995)"]\'))',
    "title COLLATE NOCASE = 'UP (2009)'",
    "votes IN (10, 20)",
    "(votes, year) = (10, 1995)",
    "year IS DISTINCT FROM NULL",
    "title == 'Up (2009)' OR year != 1995",
    "[title] = 'Up (2009)' OR `votes` = 30 OR \"studio\" = 'UGC'",
    "x'41' = CAST('A' AS BLOB) AND 0x10 = 16 AND 1e1 = 10",
    "title = 'It''s (2010)'",
    "title = 'a\\' OR votes = 20 -- a backslash is a plain character in SQLite",
    "/* a comment */ votes > 25 -- and another",
    "genres LIKE :g",
    "max(votes, 25) = 25",
    "abs(-votes) > 15 AND length(title) > 5",
    # function forms whose arguments sqlglot's generator would turn around (like(p, s) is
    # s LIKE p): the condition runs as written, token by token, so they keep their meaning
    "like('%e%', title)",
    "glob('*(19*', title)",
    "like('%!%%', title || '%', '!')",
    "ifnull(price, 100) > 10 AND substr(title, 2, 1) = 'l' AND mod(votes, 20) = 10",
    "votes - -10 = 40 AND votes<<1 = 60 AND .5 < 1",
    "x'41' = CAST('A' AS BLOB) OR 0x1e = votes",
]


@pytest.mark.parametrize("condition", LEGIT)
def test_a_condition_selects_what_sqlite_would(db: CatalogDB, condition: str) -> None:
    params: dict[str, str] | tuple[str, ...] | None = None
    if "?" in condition:
        params = ("%Crime%",)
    elif ":g" in condition:
        params = {"g": "%Drama%"}
    direct = db.items(f"SELECT item FROM items WHERE ({condition}\n) ORDER BY item", params)
    assert db.where(condition, params).tolist() == direct.tolist()


# -- the costly built-ins --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ("%.*c", 200_000_000, "x"),  # the red team's case
        ("%d %.*c", 5, 200_000_000, "x"),  # the * argument after another conversion
        ("%%%.*c", 200_000_000, "x"),  # %% takes no argument
        ("%n%.*c", 200_000_000, "x"),  # neither does %n
        ("%.*c", "200000000", "x"),  # text read as a number
        ("%.*c", " +2e8 apples", "x"),
        ("%.*c", 2e8, "x"),
        ("%.*c", float("inf"), "x"),
        ("%.*c", -200_000_000, "x"),  # a negative precision counts by its size
        (b"%.*c", 200_000_000, b"x"),  # a blob format
        ("%-200000000d", 1),  # a width in the format
        ("%.200000000f", 1.0),
        ("%*.*c", 5, 300_000_000, "x"),
        ("%0*d", 2**31 - 1, 1),
    ],
)
def test_printf_refuses_widths_and_precisions_over_the_cap(args: tuple[object, ...]) -> None:
    assert printf_problem(args, 131_072) is not None


@pytest.mark.parametrize(
    "args",
    [
        ("%05d", 3),
        ("%.*c", 5, "x"),
        ("%s and %s", "a", "b"),
        ("%.*c",),  # a missing argument reads as 0
        ("100%",),
        ("%k%.*c", 200_000_000, "x"),  # SQLite stops at an unknown conversion
        (None, 200_000_000),
        (12, 200_000_000),
    ],
)
def test_printf_lets_ordinary_formats_through(args: tuple[object, ...]) -> None:
    assert printf_problem(args, 131_072) is None


def test_sqlite_stops_at_an_unknown_conversion(db: CatalogDB) -> None:
    start = time.perf_counter()
    assert db.query("SELECT printf('ab%kc%.*c', 200000000, 'x')").rows == [("ab",)]
    assert time.perf_counter() - start < 0.5


CALLS = [
    "printf('%5.2f|%-4d|%q|%Q|%w|%c|%.3s|%,d|%x|%e', 3.14159, 7, 'it''s', NULL, 'a\"b', 'xyz', "
    "'abcdef', 1234567, 255, 12345.678)",
    "format('%s-%d', 'a', '12abc')",
    "printf(NULL)",
    "printf('%d')",
    "printf(5)",
    "printf('%.*c', 3, 'xy')",
    "typeof(printf('%s', x'00'))",
    "trim('  x  ')",
    "trim('xxhixx', 'x')",
    "ltrim('xxhixx', 'x')",
    "rtrim('xxhixx', 'xi')",
    "trim(123.5, '15')",
    "trim(x'0001020100', x'00')",
    "trim(NULL, 'x')",
    "instr('abcabc', 'ca')",
    "instr(x'010203', x'03')",
    "instr('abc', NULL)",
    "instr(12345, 34)",
    "replace('aaa', 'a', 'bb')",
    "replace(1234, 2, 9)",
    "replace('abc', '', 'x')",
    "typeof(replace(x'0102', x'01', x'09'))",
    "replace('Amélie', 'é', 'e')",
]


def test_the_guarded_functions_give_sqlites_results(db: CatalogDB) -> None:
    plain = sqlite3.connect(":memory:")
    for call in CALLS:
        expected = plain.execute(f"SELECT {call}").fetchone()
        assert tuple(db.query(f"SELECT {call}").rows[0]) == expected, call


def test_printf_past_the_size_cap_is_an_error_not_null(db: CatalogDB) -> None:
    cap = db.limits.length
    with pytest.raises(QueryError, match=f"printf\\(\\) would return more than the cap of {cap:,}"):
        db.query("SELECT printf('%s%s', ?, ?)", ("a" * (cap // 2 + 10), "b" * (cap // 2 + 10)))
    with pytest.raises(QueryError, match="format\\(\\) was asked for a precision of 200,000,000"):
        db.where("format('%.*c', 200000000, 'x') = 'x'")


def test_quadratic_functions_are_refused_by_cost_even_on_a_large_catalog() -> None:
    long_text = "a" * 300_000
    cat = Catalog(ids=["a", "b"], titles=["A", "B"], fields={"text": [long_text, "short"]})
    db = CatalogDB(cat, time_budget=1.0)
    assert db.limits.length >= 600_000  # the longest row stays readable
    assert db.query("SELECT length(text) FROM items ORDER BY text").rows[0] == (300_000,)
    assert db.where("text LIKE 'aaa%'").tolist() == [0]
    assert db.where("instr(text, 'aaab') = 0 AND length(text) > 10").tolist() == [0]
    for sql, name in (
        ("SELECT instr(text, substr(text, 1, 150000) || 'b') FROM items", "instr"),
        ("SELECT replace(text, substr(text, 1, 150000) || 'b', '') FROM items", "replace"),
        ("SELECT trim(text, substr(text, 1, 5000) || 'b') FROM items", "trim"),
        ("SELECT rtrim(text, printf('%.*c', 9000, 'b') || 'a') FROM items", "rtrim"),
        ("SELECT ltrim(text, printf('%.*c', 9000, 'b') || 'a') FROM items", "ltrim"),
    ):
        start = time.perf_counter()
        with pytest.raises(QueryError, match=f"{name}\\(\\) on these arguments would take about"):
            db.query(sql)
        assert time.perf_counter() - start < 0.5
    assert db.limits.like_pattern < 1_000  # a LIKE stays cheap on longer strings


def test_functions_that_grow_past_the_cap_are_refused(db: CatalogDB) -> None:
    for sql, name in (
        ("SELECT json_group_array(title) FROM items", "json_group_array"),
        ("SELECT json_group_object(title, votes) FROM items", "json_group_object"),
        ("SELECT json_patch('{\"a\": 1}', '{\"b\": 2}')", "json_patch"),
        ("SELECT load_extension('x')", "load_extension"),
        ("SELECT 1 FROM items WHERE JSON_GROUP_ARRAY(1) > 0", "JSON_GROUP_ARRAY"),
    ):
        match = f"the function {name.lower()}\\(\\) is not allowed"
        with pytest.raises(QueryError, match=match) as info:
            db.query(sql)
        assert_readable(info.value)
    assert db.query("SELECT group_concat(title, '|') FROM items WHERE votes < 25").rows == [
        ("Heat (1995)|Up (2009)",)
    ]


def test_limits_name_their_caps(db: CatalogDB) -> None:
    limits = db.limits
    cases = [
        ("SELECT zeroblob(?)", (limits.length + 1,), f"cap of {limits.length:,} bytes"),
        ("SELECT hex(zeroblob(?))", (limits.length // 2 + 1,), f"cap of {limits.length:,} bytes"),
        ("SELECT title LIKE ? FROM items", ("%" * 2000,), f"cap of {limits.like_pattern:,} bytes"),
        ("SELECT " + " + ".join(["1"] * 400), None, f"cap of {limits.expr_depth}"),
        (" UNION ".join(["SELECT 1"] * 40), None, f"cap of {limits.compound_select}"),
        ("SELECT char(" + ", ".join(["65"] * 100) + ")", None, f"cap of {limits.function_arg}"),
        ("SELECT " + ", ".join(["1"] * 100), None, f"cap of {limits.column}"),
        ("SELECT ?20000", None, f"cap of {limits.variable_number:,}"),
    ]
    for sql, params, words in cases:
        with pytest.raises(QueryError) as info:
            db.query(sql, params)
        assert words in str(info.value), (sql[:60], str(info.value))
        assert_readable(info.value)


def test_common_table_expressions_are_measured_before_sqlite_copies_them(db: CatalogDB) -> None:
    from recai.data.sqlguard import MAX_CTE_EXPANSION, cte_expansion

    ordinary = [
        "SELECT * FROM items WHERE title = 'with'",
        "WITH g AS (SELECT item FROM item_genres WHERE value = 'Crime') "
        "SELECT * FROM items WHERE item IN g OR item IN (SELECT item FROM g)",
        "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 3) "
        "SELECT x FROM c",
        "WITH a AS (SELECT item FROM items), b AS (SELECT item FROM a), c AS (SELECT item "
        "FROM b) SELECT item FROM c",
    ]
    for sql in ordinary:
        assert cte_expansion(sql) < 200, sql
        db.query(sql)
    doubling = "WITH a0 AS (SELECT item FROM items)" + "".join(
        f", a{i} AS (SELECT x.item FROM a{i - 1} x, a{i - 1} y)" for i in range(1, 25)
    )
    assert cte_expansion(doubling + " SELECT 1 FROM a24") > MAX_CTE_EXPANSION
    tripling = "WITH RECURSIVE a0(item) AS (SELECT 1)" + "".join(
        f", a{i}(item) AS NOT MATERIALIZED (SELECT 1 FROM a{i - 1}, a{i - 1}, a{i - 1})"
        for i in range(1, 14)
    )
    for sql in (doubling + " SELECT 1 FROM a24", tripling + " SELECT 1 FROM a13"):
        start = time.perf_counter()
        with pytest.raises(QueryError, match="WITH clauses would expand to more than 50,000"):
            db.query(sql)
        assert time.perf_counter() - start < 0.5
    with pytest.raises(QueryError, match="WITH clauses would expand"):
        db.where("item IN (" + doubling + " SELECT item FROM a24)")


def test_limits_fit_the_catalog() -> None:
    assert Limits.for_catalog(100, 5).length == Limits.MIN_LENGTH
    big = Limits.for_catalog(1_000_000, 300)
    assert big.length == 2_000_000 and big.column == 608 and 100 <= big.like_pattern < 1_000


# -- bytes as well as rows ---------------------------------------------------------------------
def test_results_are_bounded_in_bytes(db: CatalogDB) -> None:
    result = db.query("SELECT zeroblob(100000) FROM items a, items b", max_bytes=350_000)
    assert len(result) == 3 and result.truncated and result.truncated_by == "bytes"
    result = db.query("SELECT title FROM items", max_rows=2)
    assert len(result) == 2 and result.truncated_by == "rows"
    result = db.query("SELECT title FROM items")
    assert not result.truncated and result.truncated_by is None
    small = CatalogDB(films(), max_bytes=1_000)
    with pytest.raises(QueryError, match="more than the cap of 1,000 bytes; select item indices"):
        small.items("SELECT item, title || zeroblob(500) FROM items")
    assert small.where("votes > 0").tolist() == [0, 1, 2, 3, 4]


# -- the deadline: watchdog and progress handler, each alone ---------------------------------
BOMB = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def test_the_watchdog_alone_stops_a_runaway_query(db: CatalogDB) -> None:
    db._conn.set_progress_handler(None, 0)
    start = time.perf_counter()
    with pytest.raises(QueryError, match="time budget of 0.3 s"):
        db.query(BOMB, time_budget=0.3)
    assert time.perf_counter() - start < 1.5
    assert db.query("SELECT count(*) FROM items").rows == [(5,)]  # no interrupt left over


def test_the_progress_handler_alone_stops_a_runaway_query(
    db: CatalogDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Asleep(Watchdog):
        def arm(self, deadline: float, fire: object) -> int:  # type: ignore[override]
            return 0

    monkeypatch.setattr(sqlmod, "WATCHDOG", Asleep())
    start = time.perf_counter()
    with pytest.raises(QueryError, match="time budget of 0.3 s"):
        db.query(BOMB, time_budget=0.3)
    assert time.perf_counter() - start < 1.5


def test_a_disarmed_watchdog_never_fires() -> None:
    dog = Watchdog()
    fired: list[str] = []
    now = time.monotonic()
    late = dog.arm(now + 0.15, lambda: fired.append("late"))
    early = dog.arm(now + 0.05, lambda: fired.append("early"))
    kept = dog.arm(now + 0.1, lambda: fired.append("kept"))
    dog.disarm(early)
    dog.disarm(late)
    time.sleep(0.4)
    assert fired == ["kept"]
    dog.disarm(kept)  # after it fired: nothing happens


def test_a_timed_out_query_never_interrupts_the_next_one(db: CatalogDB) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def bombs() -> None:
        while not done.is_set():
            with pytest.raises(QueryError, match="time budget"):
                db.query(BOMB, time_budget=0.02)

    def normal() -> None:
        try:
            for _ in range(150):
                assert db.where("votes >= ?", (20,)).tolist() == [1, 2, 3, 4]
                assert db.query("SELECT count(*) FROM items", time_budget=5).rows == [(5,)]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    threads = [threading.Thread(target=bombs), threading.Thread(target=normal)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


@pytest.mark.parametrize("budget", [0, -1, float("nan"), float("inf"), True, "1"])
def test_a_bad_time_budget_is_refused(db: CatalogDB, budget: object) -> None:
    with pytest.raises(ValueError, match="time_budget must be a positive number of seconds"):
        db.query("SELECT 1", time_budget=budget)  # type: ignore[arg-type]


# -- parameters ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "words"),
    [
        ("abc", "a sequence (for ? placeholders) or a mapping (for :name placeholders), not str"),
        (b"ab", "not bytes"),
        (5, "not int"),
        ((2**70,), "parameter 1 is an integer beyond SQLite's 64 bits"),
        ((object(),), "parameter 1 is of type object, which SQLite cannot store"),
        (([1, 2],), "parameter 1 is of type list"),
        (("x" * 200_000,), "parameter 1 is 200,000 characters long, more than the cap of 131,072"),
        ((b"x" * 200_000,), "parameter 1 is 200,000 bytes long"),
        ({"a": 1}, "wrong parameters"),
        ((1, 2), "wrong parameters"),
    ],
)
def test_bad_parameters_are_named(db: CatalogDB, params: object, words: str) -> None:
    with pytest.raises(QueryError) as info:
        db.query("SELECT ?", params)  # type: ignore[arg-type]
    assert words in str(info.value)
    assert_readable(info.value)
    # and the next error is about the next query (sqlite3 can report a stale one after a bind)
    with pytest.raises(QueryError, match="beyond SQLite's 64 bits"):
        db.query("SELECT ?", (2**64,))


def test_numpy_values_bind_as_numbers(db: CatalogDB) -> None:
    picked = np.array([0, 3])
    assert db.where("item IN (?, ?)", tuple(picked)).tolist() == [0, 3]  # np.int64, not a blob
    assert db.where("item IN (?, ?)", picked).tolist() == [0, 3]
    assert db.where("price > :p", {"p": np.float32(5.0)}).tolist() == [1, 2]
    assert db.query("SELECT ?, ?", [np.bool_(True), None]).rows == [(1, None)]


# -- every failure one readable QueryError (item 7) ---------------------------------------------
@pytest.mark.parametrize(
    ("sql", "words"),
    [
        (b"SELECT 1", "the SQL must be a str, not bytes"),
        (None, "the SQL must be a str, not NoneType"),
        (42, "the SQL must be a str, not int"),
        (["SELECT 1"], "the SQL must be a str, not list"),
        ("", "the SQL is empty"),
        ("SELECT 1 -- " + "x" * MAX_SQL_CHARS, "more than the cap of 20,000"),
        ("SELEC item FROM items", 'syntax error at line 1, column 1: near "SELEC"'),
        ("SELECT item\nFROM items\nWHERE title = 'a", "line 3, column 15: unrecognized token"),
        ("SELECT item FROM items WHERE (1", "syntax error at its end"),
        ("SELECT item FROM items WHERE title = 'a' AND AND 1", "line 1, column 46"),
        ("SELECT nosuch FROM items", "no such column: nosuch"),
        ("SELECT * FROM items WHERE title = ?", "wrong parameters"),
        (BOMB, "time budget of 0.5 s"),
    ],
)
def test_every_failure_is_one_readable_query_error(db: CatalogDB, sql: object, words: str) -> None:
    with pytest.raises(QueryError) as info:
        db.query(sql)  # type: ignore[arg-type]
    assert words in str(info.value)
    assert_readable(info.value)


def test_sqlglot_is_imported_only_to_parse() -> None:
    code = (
        "import sys, recai, recai.data\n"
        "from recai.data import Catalog, CatalogDB\n"
        "db = CatalogDB(Catalog(ids=['a'], titles=['A']))\n"
        "db.query('SELECT * FROM items')\n"
        "assert 'sqlglot' not in sys.modules, 'imported early'\n"
        "db.where('item = 0')\n"
        "assert 'sqlglot' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
