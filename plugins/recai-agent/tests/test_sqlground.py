"""Grounding LLM-written SQL (sqlglot) and the table description given to the LLM."""

from __future__ import annotations

import pytest
from agentkit import film_catalog

from recai.data.grounding import Grounder
from recai.data.sql import CatalogDB
from recai.errors import QueryError
from recai.testing import make_tiny_dataset
from recai_agent.describe import columns_of, describe_tables, genre_column, year_column
from recai_agent.sqlground import SQLGrounder


@pytest.fixture(scope="module")
def films():  # type: ignore[no-untyped-def]
    cat = film_catalog()
    db = CatalogDB(cat)
    return db, SQLGrounder(db, Grounder(cat))


@pytest.mark.parametrize(
    ("written", "grounded", "rows"),
    [
        (
            "SELECT name FROM movies WHERE genre = 'scifi' AND release_year < 1980",
            "SELECT title FROM items WHERE genres LIKE '%Sci-Fi%' AND year < 1980",
            [("Alien (1979)",), ("Star Wars (1977)",)],
        ),
        (
            "SELECT year FROM items WHERE title = 'the godfather'",
            "SELECT year FROM items WHERE title = 'Godfather, The (1972)'",
            [(1972,)],
        ),
        (
            "SELECT f.title FROM films AS f WHERE f.genres LIKE '%science fiction%' AND f.year > 1995",
            "SELECT f.title FROM items AS f WHERE f.genres LIKE '%Sci-Fi%' AND f.year > 1995",
            [("Matrix, The (1999)",), ("Contact (1997)",), ("Gattaca (1997)",)],
        ),
        (
            "SELECT title FROM items WHERE item IN "
            "(SELECT item FROM genres WHERE value IN ('animated', 'musicals'))",
            "SELECT title FROM items WHERE item IN "
            "(SELECT item FROM item_genres WHERE value IN ('Animation', 'Musical'))",
            [("Toy Story (1995)",), ("Aladdin (1992)",), ("Lion King, The (1994)",)],
        ),
        (
            "SELECT count(*) AS n FROM items WHERE genres != 'HORROR' ORDER BY n",
            "SELECT COUNT(*) AS n FROM items WHERE NOT genres LIKE '%Horror%' ORDER BY n",
            [(20,)],
        ),
    ],
)
def test_wrong_tables_columns_values_and_titles_map_to_real_ones(
    films, written, grounded, rows
) -> None:
    db, sg = films
    sql, notes = sg.ground_query(written)
    assert sql == grounded
    assert notes
    assert sorted(db.query(sql).rows) == sorted(rows)


def test_correct_sql_comes_back_unchanged(films) -> None:
    db, sg = films
    sql = "SELECT title FROM items WHERE genres LIKE '%Crime%' AND year BETWEEN 1990 AND 1999"
    assert sg.ground_query(sql) == (sql, [])


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE items",
        "ATTACH DATABASE ':memory:' AS evil",
        "PRAGMA query_only = 0",
        "SELECT 1; DELETE FROM items",
        "SELEC title FROM",
        "x" * 20_000,
    ],
)
def test_hostile_or_broken_sql_is_not_made_runnable(films, sql) -> None:
    db, sg = films
    out, _ = sg.ground_query(sql)
    assert out == sql
    with pytest.raises(QueryError):
        db.query(out)


def test_condition_grounding_for_where(films) -> None:
    db, sg = films
    cond, notes = sg.ground_condition("genre = 'romantic' and release_year < 1990")
    assert cond == "genres LIKE '%Romance%' AND year < 1990"
    assert [str(t) for t in db.catalog.titles[db.where(cond)]] == [
        "Psycho (1960)",
        "Casablanca (1942)",
        "When Harry Met Sally... (1989)",
        "Annie Hall (1977)",
    ]


def test_values_of_a_categorical_column_on_another_dataset() -> None:
    cat = make_tiny_dataset().catalog  # category (text), tags (multi), price, released (date)
    db = CatalogDB(cat)
    sg = SQLGrounder(db, Grounder(cat))
    sql, notes = sg.ground_query("SELECT title FROM items WHERE category = 'Comedies'")
    assert sql == "SELECT title FROM items WHERE category = 'comedy'"
    sql, _ = sg.ground_query("SELECT title FROM items WHERE tags = 'time travel'")
    assert sql == "SELECT title FROM items WHERE tags LIKE '%time-travel%'"
    assert len(db.query(sql).rows) > 0
    cols = columns_of(db)
    assert genre_column(cols).name == "category"  # type: ignore[union-attr]
    col, expr = year_column(cols)  # type: ignore[misc]
    assert col.name == "released" and "strftime" in expr


def test_table_description_lists_columns_ranges_and_values_nearest_the_request(films) -> None:
    db, _ = films
    text = describe_tables(db, "some scifi like the terminator", Grounder(db.catalog))
    assert "- year INTEGER: year of release. From 1942 to 1999" in text
    assert "'Sci-Fi'" in text
    nearest = text.split("Values nearest the request:")[1]
    assert "- genres: 'Sci-Fi'" in nearest
    assert "'Terminator, The (1984)'" in nearest
    assert len(describe_tables(db, "x", Grounder(db.catalog), max_chars=200)) <= 200
