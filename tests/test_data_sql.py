"""The SQLite mirror of a catalog: column conventions, the item API, the prompt schema, and the
guards of the safe query path (read-only, one statement, time budget, row limit)."""

from __future__ import annotations

import sqlite3
import threading
import time

import numpy as np
import pytest

from recai.data import Catalog, CatalogDB, QueryError
from recai.errors import DataError, RecaiError


def films() -> Catalog:
    """Every kind of column the catalog conventions allow, with missing values of each."""
    return Catalog(
        ids=np.array([101, 102, 103, 104]),
        titles=np.array(
            ["Heat (1995)", "Up (2009)", "Alien (1979)", "Amélie (2001)"], dtype=object
        ),
        fields={
            "year": np.array([1995.0, 2009.0, np.nan, 2001.0]),
            "price": np.array([3.5, 9.0, 12.25, np.nan]),
            "votes": np.array([10, 20, 30, 40]),
            "colour": np.array([True, True, False, True]),
            "studio": np.array(["Warner", None, "Fox", "UGC"], dtype=object),
            "genres": np.array(
                [("Crime", "Action"), ("Animation",), ("Horror", "Sci-Fi"), ()], dtype=object
            ),
            "Release Date": np.array(
                ["1995-12-15", "2009-05-29", "NaT", "2001-04-25"], dtype="datetime64[D]"
            ),
            "order": np.array(["a", "b", "c", "d"], dtype=object),
        },
        descriptions={"year": "year of release", "genres": "the film's genres"},
    )


@pytest.fixture
def db() -> CatalogDB:
    return CatalogDB(films(), time_budget=0.5, max_rows=50)


def test_columns_follow_the_catalog_conventions(db: CatalogDB) -> None:
    table_sql = db.query("SELECT sql FROM sqlite_master WHERE name = 'items'").rows[0][0]
    for decl in (
        "item INTEGER PRIMARY KEY",
        "id INTEGER",
        "title TEXT",
        "year INTEGER",  # whole numbers with NaN: INTEGER with NULL
        "price REAL",
        "votes INTEGER",
        "colour INTEGER",
        "studio TEXT",
        "genres TEXT",
        "release_date TEXT",
        "order_ TEXT",  # an SQL keyword gets an underscore
    ):
        assert decl in table_sql
    assert db.columns["Release Date"] == "release_date" and db.columns["order"] == "order_"
    rows = db.query("SELECT * FROM items ORDER BY item").rows
    assert rows[0] == (
        0,
        101,
        "Heat (1995)",
        1995,
        3.5,
        10,
        1,
        "Warner",
        "Crime|Action",
        "1995-12-15",
        "a",
    )
    assert rows[2][3] is None  # NaN year -> NULL
    assert rows[3][4] is None  # NaN price -> NULL
    assert rows[1][7] is None  # None -> NULL
    assert rows[2][9] is None  # NaT -> NULL
    assert rows[3][8] == ""  # no genres: empty text, and no row in the side table
    assert db.tables() == ["items", "item_genres"]
    side = db.query("SELECT item, value FROM item_genres ORDER BY item, value").rows
    assert side == [(0, "Action"), (0, "Crime"), (1, "Animation"), (2, "Horror"), (2, "Sci-Fi")]


def test_datetimes_with_a_time_of_day_keep_it() -> None:
    cat = Catalog(
        ids=["a", "b"],
        titles=["A", "B"],
        fields={"at": np.array(["2020-01-02T03:04:05", "2021-06-07"], dtype="datetime64[s]")},
    )
    rows = CatalogDB(cat).query("SELECT at FROM items ORDER BY item").rows
    assert rows == [("2020-01-02T03:04:05",), ("2021-06-07T00:00:00",)]


def test_plain_lists_as_columns() -> None:
    cat = Catalog(
        ids=["a", "b", "c"],
        titles=["A", "B", "C"],
        fields={"tags": [("x", "y"), ("x",), ()], "n": [1, None, 3], "w": [0.5, None, 2.0]},
    )
    db = CatalogDB(cat)
    assert db.where("item IN (SELECT item FROM item_tags WHERE value = 'x')").tolist() == [0, 1]
    assert db.query("SELECT n, w FROM items ORDER BY item").rows == [
        (1, 0.5),
        (None, None),
        (3, 2.0),
    ]


def test_where_and_items(db: CatalogDB) -> None:
    assert db.where("year >= ?", (2000,)).tolist() == [1, 3]
    assert db.where("genres LIKE :g", {"g": "%Crime%"}).dtype == np.int64
    assert db.where("year IS NULL").tolist() == [2]
    assert db.where("1 = 0").tolist() == []
    # order of the query kept, each item once; SELECT * works (the item column is found)
    assert db.items("SELECT * FROM items ORDER BY price DESC").tolist() == [2, 1, 0, 3]
    joined = "SELECT i.item FROM item_genres g JOIN items i ON i.item = g.item ORDER BY g.value"
    assert db.items(joined).tolist() == [0, 1, 2]
    assert db.items("SELECT votes / 10 - 1 FROM items").tolist() == [0, 1, 2, 3]


def test_items_refuses_values_that_are_not_item_indices(db: CatalogDB) -> None:
    with pytest.raises(QueryError, match="item indices"):
        db.items("SELECT title FROM items")
    with pytest.raises(QueryError, match="item indices"):
        db.items("SELECT votes FROM items")


def test_values_go_through_parameters_not_sql(db: CatalogDB) -> None:
    evil = "x'; DROP TABLE items; --"
    assert db.where("title = ?", (evil,)).tolist() == []
    assert db.query("SELECT count(*) FROM items").rows == [(4,)]
    with pytest.raises(QueryError, match="parameters"):
        db.where("title = ?")


ATTACKS = [
    ("SELECT 1; DROP TABLE items", "one statement"),
    ("SELECT item FROM items; DELETE FROM items", "one statement"),
    ("DROP TABLE items", "only reading"),
    ("DELETE FROM items", "DELETE on items"),
    ("INSERT INTO items (item, title) VALUES (99, 'x')", "INSERT on items"),
    ("UPDATE items SET title = 'pwned'", "UPDATE on items"),
    ("REPLACE INTO items (item) VALUES (0)", "only reading"),
    ("CREATE TABLE t (x)", "only reading"),
    ("CREATE TEMP TABLE t (x)", "only reading"),
    ("CREATE INDEX ix ON items (title)", "only reading"),
    ("ALTER TABLE items ADD COLUMN z", "ALTER_TABLE"),
    ("ATTACH DATABASE 'evil.db' AS evil", "ATTACH"),
    ("DETACH DATABASE main", "only reading"),
    ("PRAGMA query_only = OFF", "PRAGMA"),
    ("PRAGMA writable_schema = ON", "PRAGMA"),
    ("SELECT * FROM pragma_table_info('items')", "PRAGMA"),
    ("SELECT load_extension('/tmp/evil.so')", "load_extension"),
    ("BEGIN", "TRANSACTION"),
    ("VACUUM", "only reading"),
    ("VACUUM INTO 'copy.db'", "ATTACH"),
    ("WITH x AS (SELECT 1) DELETE FROM items", "DELETE on items"),
    ("WITH x AS (SELECT 1) UPDATE sqlite_master SET sql = 'x'", "failed"),
    ("SELECT randomblob(1000000000)", "longer than the cap of 131,072 bytes"),
    ("SELEC item FROM items", "syntax error"),
    ("SELECT * FROM no_such_table", "no such table"),
    ("", "empty"),
]


@pytest.mark.parametrize(("sql", "reason"), ATTACKS)
def test_the_safe_path_refuses_with_a_clear_error(
    db: CatalogDB, sql: str, reason: str, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(QueryError) as info:
        db.query(sql)
    err = info.value
    assert isinstance(err, RecaiError) and not isinstance(err, sqlite3.Error)
    assert reason in str(err)
    assert err.sql == sql and err.reason in str(err)
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    # nothing changed, nothing was written next to us
    assert db.query("SELECT count(*), min(title) FROM items").rows == [(4, "Alien (1979)")]
    assert list(tmp_path.iterdir()) == []
    assert db.query("SELECT 1").rows == [(1,)]  # the connection still works


def test_injection_through_a_where_condition_is_refused(db: CatalogDB) -> None:
    for condition in ("1) ; DROP TABLE items; --", "1; DELETE FROM items", "1) UNION SELECT 5 --"):
        with pytest.raises(QueryError):
            db.where(condition)
    assert db.query("SELECT count(*) FROM items").rows == [(4,)]


def test_a_recursive_cte_bomb_hits_the_time_budget(db: CatalogDB) -> None:
    bomb = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    start = time.perf_counter()
    with pytest.raises(QueryError, match="time budget of 0.2 s"):
        db.query(bomb, time_budget=0.2)
    assert time.perf_counter() - start < 2.0
    tables = ", ".join(f"items t{i}" for i in range(12))  # 4**12 rows to count
    cross = f"SELECT count(*) FROM {tables}"
    with pytest.raises(QueryError, match="time budget"):
        db.query(cross, time_budget=0.2)
    # a bomb through the item API too, and the budget is reset afterwards
    with pytest.raises(QueryError, match="time budget"):
        db.items(
            "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x FROM c) SELECT sum(x) FROM c",
            time_budget=0.1,
        )
    assert db.where("1").tolist() == [0, 1, 2, 3]


def test_row_limit(db: CatalogDB) -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    result = db.query(endless, max_rows=7)
    assert len(result) == 7 and result.truncated and result.columns == ["x"]
    result = db.query("SELECT item FROM items")
    assert len(result) == 4 and not result.truncated
    with pytest.raises(QueryError, match="more than"):
        db.items("WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT 0 FROM c) SELECT x FROM c")


def test_json_functions_work(db: CatalogDB) -> None:
    rows = db.query('SELECT value FROM json_each(\'["a", "b"]\')').rows
    assert rows == [("a",), ("b",)]


def test_schema_for_prompt(db: CatalogDB) -> None:
    text = db.schema_for_prompt()
    assert "Table items: 4 rows" in text
    assert "- year INTEGER: year of release. From 1979 to 2009" not in text  # 1979 is NULL
    assert "- year INTEGER: year of release. From 1995 to 2009. NULL for 1 item" in text
    assert "- genres TEXT: the film's genres. Several values joined by '|'" in text
    assert "4 distinct values: 'Action', 'Animation', 'Crime', 'Horror', 'Sci-Fi'" not in text
    assert "5 distinct values: 'Action', 'Animation', 'Crime', 'Horror', 'Sci-Fi'" in text
    assert "Table item_genres: 5 rows (item INTEGER, value TEXT)" in text
    assert "release_date TEXT: Release Date. ISO dates from '1995-12-15' to '2009-05-29'" in text
    assert "- title TEXT: the name of the item. Examples: 'Heat (1995)', 'Up (2009)'" in text
    assert "- studio TEXT" in text and "NULL for 1 item" in text
    for column in ("item", "id", "price", "votes", "colour", "order_"):
        assert f"- {column} " in text


def test_a_file_database(tmp_path) -> None:
    path = tmp_path / "catalog.sqlite"
    with CatalogDB(films(), path) as db:
        assert db.where("votes > 15").tolist() == [1, 2, 3]
        with pytest.raises(QueryError):
            db.query("DELETE FROM items")
    assert path.exists()
    with pytest.raises(DataError, match="overwrite=True"):
        CatalogDB(films(), path)
    with CatalogDB(films(), path, overwrite=True) as db:
        assert db.query("SELECT count(*) FROM items").rows == [(4,)]
    # what was written is a plain SQLite file anyone can read
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM item_genres").fetchone() == (5,)


def test_an_empty_catalog() -> None:
    db = CatalogDB(Catalog(ids=np.array([], dtype=object), titles=np.array([], dtype=object)))
    assert db.where("1").tolist() == []
    assert "Table items: 0 rows" in db.schema_for_prompt()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        CatalogDB(films(), time_budget=0)
    cat = Catalog(ids=["a"], titles=["A"], fields={"blob": np.array([1 + 2j])})
    with pytest.raises(DataError, match="blob"):
        CatalogDB(cat)


def test_queries_from_several_threads(db: CatalogDB) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                assert db.where("votes >= ?", (20,)).tolist() == [1, 2, 3]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.integration
def test_movielens_mirror_builds_fast() -> None:
    import recai

    catalog = recai.create("dataset", "movielens-100k.v1").dataset().catalog
    db = CatalogDB(catalog)
    assert db.build_seconds < 0.5, f"building took {db.build_seconds:.3f} s"
    assert db.query("SELECT count(*) FROM items").rows == [(1682,)]
    scifi_90s = db.where("genres LIKE '%Sci-Fi%' AND year BETWEEN 1990 AND 1999")
    exact = db.where(
        "item IN (SELECT item FROM item_genres WHERE value = 'Sci-Fi') "
        "AND year BETWEEN 1990 AND 1999"
    )
    assert len(scifi_90s) == len(exact) > 20
    assert all("Sci-Fi" in catalog.fields["genres"][i] for i in exact)
    text = db.schema_for_prompt()
    assert "18 distinct values" in text and "'Film-Noir'" in text
