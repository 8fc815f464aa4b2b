"""Issue 17, item 2: catalog SQL within its budget by construction.

The bar: with a 1 s budget, no query built from hostile scalar, aggregate or recursive constructs
runs longer than 2 s or makes the process grow by more than 100 MB (the peak resident size of a
fresh interpreter, which sees SQLite's own allocations too), and a normal query right after
succeeds quickly (the lock was released). Each sub-class runs in its own interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    from recai.data import Catalog, CatalogDB, QueryError

    n = 3000
    catalog = Catalog(
        ids=np.arange(n),
        titles=np.array([f"Film number {i}" for i in range(n)], dtype=object),
        fields={
            "genres": np.array([("Drama", "Crime") if i % 3 else ("Comedy",) for i in range(n)],
                               dtype=object),
            "year": (np.arange(n) % 60 + 1950).astype(float),
        },
    )
    db = CatalogDB(catalog, time_budget=1.0)
    normal = "genres LIKE '%Comedy%' AND year > 1990"
    expected = db.where(normal).tolist()
    db.query("SELECT 1")

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    base = peak_mb()
    out = []
    for kind, sql in json.loads(sys.argv[1]):
        start = time.perf_counter()
        try:
            result = getattr(db, kind)(sql)
            what = "ok:" + str(len(result)) + ":" + str(getattr(result, "truncated_by", ""))
        except QueryError as exc:
            assert exc.__cause__ is None
            what = "QueryError: " + str(exc).splitlines()[0]
        seconds = time.perf_counter() - start
        after = time.perf_counter()
        same = db.where(normal).tolist() == expected
        out.append({"sql": sql, "seconds": seconds, "result": what,
                    "next_seconds": time.perf_counter() - after, "next_ok": same,
                    "grown_mb": peak_mb() - base})
    print(json.dumps(out))
    """
)

BIG = "printf('%.*c', 120000, 'a')"

SCALAR = [
    ("where", "printf('%.*c', 200000000, 'x') = 'x'"),  # the red team's case
    ("where", "length(printf('%.*c', 2147483647, 'x')) > 0"),  # returned NULL after 24 s
    ("where", "length(printf('%.*c', (SELECT max(item) FROM items) * 100000, 'x')) > 0"),
    ("where", "length(format('%0*d', '900000000', 1)) > 0"),  # the width as text
    ("query", "SELECT zeroblob(9000000) FROM items"),  # 2.7 GB of results before
    ("query", "SELECT zeroblob(100000), randomblob(100000) FROM items a, items b"),
    ("query", "SELECT hex(zeroblob(60000)) FROM items"),
    ("query", f"SELECT replace({BIG}, 'a', 'bb') FROM items"),
    ("query", f"SELECT instr({BIG} || title, printf('%.*c', 60000, 'a') || 'b') FROM items"),
    ("query", f"SELECT trim({BIG} || title, printf('%.*c', 9000, 'b') || 'a') FROM items"),
    ("where", f"{BIG} || title LIKE '%' || printf('%.*c', 990, 'a') || 'b'"),
    ("where", f"{BIG} || title GLOB '*' || printf('%.*c', 990, 'a') || 'b'"),
    ("query", "SELECT title FROM items WHERE title LIKE '%" + "_%" * 2000 + "'"),
    ("query", "SELECT unicode(printf('%!.*f', 99999999, 1.5)) FROM items"),
]

AGGREGATE = [
    ("query", "SELECT length(group_concat(a.title)) FROM items a, items b"),
    ("query", "SELECT length(group_concat(zeroblob(100000))) FROM items"),
    ("query", "SELECT count(DISTINCT a.title || b.title) FROM items a, items b"),
    ("query", "SELECT a.item, group_concat(b.title) FROM items a, items b GROUP BY a.item"),
    ("query", "SELECT length(json_group_array(printf('%.*c', 1000, 'x'))) FROM items a, items b"),
    ("query", "SELECT a.title, count(*) FROM items a, items b, items c GROUP BY 1 ORDER BY 2"),
    (
        "query",
        "SELECT length(group_concat(a.title) OVER (ORDER BY a.item ROWS BETWEEN UNBOUNDED "
        "PRECEDING AND CURRENT ROW)) FROM items a, items b",
    ),
    ("where", "item IN (SELECT count(*) FROM items a, items b, items c)"),
    ("items", "SELECT a.item FROM items a, items b ORDER BY random()"),
    ("query", "SELECT length(json_group_object(a.title || b.item, b.title)) FROM items a, items b"),
    (
        "query",
        "SELECT json_patch((SELECT group_concat('{\"' || item || '\":1}') FROM items), "
        "(SELECT group_concat('{\"-' || item || '\":1}') FROM items))",
    ),
]


def CTE_BOMB(width: int, depth: int, terms: int) -> str:
    """A statement with ``depth`` CTEs, each using the one before ``width`` times."""
    body = "title NOT IN (" + ", ".join(f"'x{j}'" for j in range(terms)) + ")"
    ctes = f"WITH a0 AS (SELECT item, title FROM items WHERE {body})" + "".join(
        f", a{i} AS (SELECT t0.item, t0.title FROM "
        + ", ".join(f"a{i - 1} t{r}" for r in range(width))
        + ")"
        for i in range(1, depth)
    )
    return ctes + f" SELECT t0.item FROM a{depth - 1} t0"


RECURSIVE = [
    (
        "query",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    ),
    ("query", "WITH RECURSIVE c(x) AS (SELECT 1 UNION SELECT x + 1 FROM c) SELECT max(x) FROM c"),
    (
        "query",
        "WITH RECURSIVE c(s) AS (SELECT 'a' UNION ALL SELECT s || s FROM c) SELECT length(s) FROM c",
    ),
    (
        "where",
        "item IN (WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x FROM c) SELECT x FROM c)",
    ),
    (
        "query",
        "WITH RECURSIVE c(x, b) AS (SELECT 1, randomblob(50000) UNION ALL "
        "SELECT x + 1, randomblob(50000) FROM c, (SELECT 1 UNION ALL SELECT 2) ORDER BY 2) "
        "SELECT count(*) FROM c",
    ),
    (
        "query",
        "WITH RECURSIVE c(x, s) AS (SELECT 1, zeroblob(120000) UNION ALL SELECT x + 1, s FROM c) "
        "SELECT x, s FROM c",
    ),
    ("where", "(" * 400 + "1" + ")" * 400),
    (  # the longest condition: parsing it counts against the budget too
        "where",
        "item IN (" + ", ".join(["1"] * 3200) + ") OR item IN (WITH RECURSIVE c(x) AS "
        "(SELECT 0 UNION ALL SELECT x FROM c) SELECT x FROM c)",
    ),
    ("query", "SELECT " + "NOT " * 4000 + "1"),
    ("query", "SELECT " + "abs(" * 3000 + "1" + ")" * 3000),
    ("query", " UNION ".join(["SELECT 1"] * 600)),
    # common table expressions that double at each level: SQLite copies them while it prepares
    # the statement, where neither the progress handler nor an interrupt reaches (5.6 s before)
    ("query", CTE_BOMB(2, 30, 200)),
    ("query", CTE_BOMB(3, 20, 200)),
    ("query", CTE_BOMB(2, 16, 200)),
    ("where", f"item IN ({CTE_BOMB(2, 16, 50)})"),
]


def run_cases(cases: list[tuple[str, str]]) -> list[dict[str, object]]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def check_bar(cases: list[tuple[str, str]]) -> None:
    report = run_cases(cases)
    assert len(report) == len(cases)
    slow = [(r["sql"][:80], round(r["seconds"], 2)) for r in report if r["seconds"] > 2.0]
    assert not slow, f"past 2 s with a 1 s budget: {slow}"
    stuck = [r["sql"][:80] for r in report if not r["next_ok"] or r["next_seconds"] > 0.5]
    assert not stuck, f"a normal query right after did not succeed quickly: {stuck}"
    grown = max(r["grown_mb"] for r in report)
    assert grown < 100, f"the process grew by {grown:.0f} MB: {report}"
    # every case ends in a QueryError or a bounded result, never a raw SQLite error
    for r in report:
        assert r["result"].startswith(("QueryError: ", "ok:")), r


def test_hostile_scalar_functions_stay_within_the_budget() -> None:
    check_bar(SCALAR)


def test_hostile_aggregates_stay_within_the_budget() -> None:
    check_bar(AGGREGATE)


def test_hostile_recursion_and_nesting_stay_within_the_budget() -> None:
    check_bar(RECURSIVE)
