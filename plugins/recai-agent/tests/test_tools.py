"""The candidate bus and the five tools, on a real CatalogDB and real fitted classic models."""

from __future__ import annotations

import numpy as np
import pytest
from agentkit import FILMS

from recai.data.grounding import Grounder
from recai.data.sql import CatalogDB
from recai.roles import Retriever
from recai.types import ItemList, Query
from recai_agent.bus import CandidateBus
from recai_agent.tools import (
    HardFilterTool,
    LookupTool,
    MapTool,
    RankingTool,
    SoftFilterTool,
    TurnState,
    default_tools,
)
from recai_classic.itemknn import ItemKNN
from recai_classic.popularity import Popularity

TITLES = [t for t, _, _ in FILMS]


@pytest.fixture(scope="module")
def db(split):  # type: ignore[no-untyped-def]
    return CatalogDB(split.dataset.catalog)


@pytest.fixture()
def state(split):  # type: ignore[no-untyped-def]
    return TurnState(split.dataset.catalog, Grounder(split.dataset.catalog))


@pytest.fixture(scope="module")
def popularity(split):  # type: ignore[no-untyped-def]
    return np.bincount(split.train.items, minlength=len(FILMS)).astype(float)


@pytest.fixture()
def tools(db, knn, popularity, split):  # type: ignore[no-untyped-def]
    return default_tools(
        db,
        ranker=knn,
        similarity=knn,
        popularity=popularity,
        grounder=Grounder(split.dataset.catalog),
    )


def titles_of(ids) -> list[str]:  # type: ignore[no-untyped-def]
    return [TITLES[i] for i in ids]


def genres_of(i: int) -> tuple[str, ...]:
    return FILMS[i][2]


# -- the bus -----------------------------------------------------------------------------------------
def test_bus_starts_as_the_whole_catalog_and_records_why_items_stay() -> None:
    bus = CandidateBus(6)
    assert bus.whole and len(bus) == 6 and bus.candidates() is None
    bus.keep([4, 2, 4, 0], "hard_filter: a")
    assert bus.ids.tolist() == [4, 2, 0]  # each item once, order kept
    bus.keep([2, 0], "soft_filter: b", seeds={2: [5]})
    assert bus.evidence(2).kept_by == ["hard_filter: a", "soft_filter: b"]
    assert bus.evidence(2).seeds == [5]
    bus.order([0, 2], [3.0, 1.0], "ranking: popularity")
    assert bus.items().to_list() == [(0, 3.0), (2, 1.0)]
    assert bus.evidence(0).to_dict(["a", "b", "c", "d", "e", "f"])["score"] == 3.0
    bus.clear()
    assert bus.whole and bus.evidence(2).kept_by == []


def test_bus_refuses_items_outside_the_catalog() -> None:
    bus = CandidateBus(3)
    with pytest.raises(ValueError, match="item 7 is not in the catalog"):
        bus.keep([1, 7], "x")
    assert bus.whole


# -- look-up -----------------------------------------------------------------------------------------
def test_lookup_answers_from_the_whole_catalog_and_grounds_wrong_names(tools, state) -> None:
    bus = CandidateBus(len(FILMS))
    bus.keep([0], "earlier step")
    res = tools["lookup"].run(
        bus,
        {"sql": "SELECT name, release_year FROM movies WHERE name = 'the usual suspects'"},
        state,
    )
    assert res.ok, res.error
    assert "Usual Suspects, The (1995) | 1995" in res.text
    step = state.trace[-1]
    assert step.tool == "lookup" and step.error is None and step.out_size == 1
    assert "table 'movies' -> 'items'" in step.note
    assert bus.ids.tolist() == [0]  # the look-up reads the catalog, the bus is untouched
    assert state.looked_up == [TITLES.index("Usual Suspects, The (1995)")]


def test_lookup_result_is_cut_to_its_token_budget(db, state) -> None:
    tool = LookupTool(db, max_tokens=20, max_rows=100)
    res = tool.run(CandidateBus(len(FILMS)), {"sql": "SELECT title, genres FROM items"}, state)
    assert res.ok
    assert len(res.text) <= 20 * 4 + 40  # the budget plus the one line saying rows were cut
    assert "more rows" in res.text
    assert 0 < res.out_size < len(FILMS)


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE items",
        "DELETE FROM items",
        "UPDATE items SET title = 'x'",
        "INSERT INTO items (item, title) VALUES (99, 'x')",
        "ATTACH DATABASE '/tmp/evil.db' AS evil",
        "PRAGMA writable_schema = 1",
        "SELECT load_extension('/tmp/evil.so')",
        "SELECT 1; DROP TABLE items",
        "CREATE TABLE t (x)",
    ],
)
def test_hostile_lookup_sql_is_an_error_in_the_trace_and_changes_nothing(
    tools, state, db, sql
) -> None:
    bus = CandidateBus(len(FILMS))
    res = tools["lookup"].run(bus, {"sql": sql}, state)
    assert not res.ok and res.error
    assert state.trace[-1].error == res.error
    assert db.query("SELECT count(*) FROM items").rows == [(len(FILMS),)]
    assert db.query("SELECT title FROM items WHERE item = 0").rows == [(TITLES[0],)]
    assert db.tables() == ["items", "item_genres"]


# -- hard filter -------------------------------------------------------------------------------------
def test_hard_filter_structured_keeps_genre_and_year_and_grounds_values(tools, state) -> None:
    bus = CandidateBus(len(FILMS))
    res = tools["hard_filter"].run(
        bus, {"genres": ["scifi"], "not_genres": ["horror"], "year_min": 1980}, state
    )
    assert res.ok, res.error
    want = [
        i for i, (_, y, g) in enumerate(FILMS) if "Sci-Fi" in g and "Horror" not in g and y >= 1980
    ]
    assert bus.ids.tolist() == want
    assert "genres 'scifi' -> 'Sci-Fi'" in state.trace[-1].note
    assert bus.evidence(want[0]).kept_by[0].startswith("hard_filter:")


def test_hard_filter_sql_is_grounded_and_restricted_to_the_bus(tools, state) -> None:
    bus = CandidateBus(len(FILMS))
    bus.keep([0, 12, 13, 4], "soft_filter: earlier")
    res = tools["hard_filter"].run(
        bus, {"sql": "genre = 'thrillers' AND release_year >= 1990"}, state
    )
    assert res.ok, res.error
    # Fargo, Heat and The Matrix are 1990s thrillers on the bus; Alien is neither; no film off
    # the bus (Scream, Gattaca...) comes in
    assert bus.ids.tolist() == [12, 13, 4]
    assert "column 'genre' -> 'genres'" in state.trace[-1].note


@pytest.mark.parametrize(
    "arg",
    [
        {"colour": ["red"]},
        {"year_min": "nineteen-ninety"},
        {"sql": "1) UNION SELECT item FROM items --"},
        {"sql": "item IN (SELECT item FROM sqlite_master)"},
        {"sql": ""},
        42,
        ["Action"],
        None,
    ],
)
def test_hard_filter_bad_input_is_an_error_and_the_bus_stays(tools, state, arg) -> None:
    bus = CandidateBus(len(FILMS))
    bus.keep([1, 2, 3], "before")
    res = tools["hard_filter"].run(bus, arg, state)
    assert not res.ok and res.error
    assert bus.ids.tolist() == [1, 2, 3]
    assert state.trace[-1].tool == "hard_filter" and state.trace[-1].error


# -- soft filter -------------------------------------------------------------------------------------
def test_soft_filter_keeps_items_similar_to_fuzzy_seed_titles(tools, state, knn) -> None:
    bus = CandidateBus(len(FILMS))
    res = tools["soft_filter"].run(bus, {"seeds": ["the matrix"]}, state)
    assert res.ok, res.error
    matrix = TITLES.index("Matrix, The (1999)")
    assert matrix not in bus.ids.tolist()  # the seed itself is not recommended
    expected = knn.similar_items(matrix, 100).ids.tolist()
    assert bus.ids.tolist() == expected
    assert all(bus.evidence(i).seeds == [matrix] for i in bus.ids.tolist())
    assert "-> 'Matrix, The (1999)'" in state.trace[-1].note


class _RetrieverOnly(Retriever):
    """A plain Retriever (no similarity rows): the soft filter must go through retrieve()."""

    def __init__(self, inner: ItemKNN):
        self.inner = inner
        self.calls: list[ItemList | None] = []

    def retrieve(
        self, query: Query, k: int = 10, *, candidates: ItemList | None = None
    ) -> ItemList:
        self.calls.append(candidates)
        return self.inner.retrieve(query, k, candidates=candidates)


def test_soft_filter_through_any_retriever_respects_the_bus(knn, state) -> None:
    retriever = _RetrieverOnly(knn)
    tool = SoftFilterTool(retriever)
    bus = CandidateBus(len(FILMS))
    bus.keep(list(range(8, 24)), "hard_filter: not sci-fi")
    res = tool.run(bus, {"seeds": ["Heat"]}, state)
    assert res.ok, res.error
    assert retriever.calls and retriever.calls[0] is not None
    assert set(bus.ids.tolist()) <= set(range(8, 24))
    assert TITLES.index("Heat (1995)") not in bus.ids.tolist()
    assert len(bus) > 0


def test_soft_filter_by_text_without_a_text_retriever_matches_titles(tools, state) -> None:
    bus = CandidateBus(len(FILMS))
    res = tools["soft_filter"].run(bus, {"text": "godfather"}, state)
    assert res.ok, res.error
    assert bus.ids.tolist()[0] == TITLES.index("Godfather, The (1972)")
    assert len(bus) == len(FILMS)  # without a text retriever the text orders, it drops nothing


def test_soft_filter_unknown_seed_is_an_error(tools, state) -> None:
    bus = CandidateBus(len(FILMS))
    res = tools["soft_filter"].run(bus, {"seeds": ["Zzyzx Qwerty Plonk"]}, state)
    assert not res.ok and "no seed title matched" in (res.error or "")
    assert bus.whole


# -- ranking -----------------------------------------------------------------------------------------
def test_ranking_by_preference_is_the_ranker_on_the_liked_items(tools, state, knn) -> None:
    state.liked = [0, 1]
    bus = CandidateBus(len(FILMS))
    res = tools["ranking"].run(bus, {"by": "preference"}, state)
    assert res.ok, res.error
    expected = knn.rank(np.array([0, 1]), None, None)
    assert bus.ids.tolist() == expected.ids.tolist()[: len(bus)]
    assert 0 not in bus.ids.tolist() and 1 not in bus.ids.tolist()
    assert bus.evidence(int(bus.ids[0])).score == pytest.approx(float(expected.scores[0]))


def test_ranking_without_liked_items_falls_back_to_popularity(tools, state, popularity) -> None:
    bus = CandidateBus(len(FILMS))
    tools["ranking"].run(bus, {"by": "preference"}, state)
    assert "ranked by popularity" in state.trace[-1].note
    assert popularity[bus.ids[0]] == popularity.max()


def test_ranking_prefer_goes_first_and_unwanted_and_disliked_go(tools, state) -> None:
    state.disliked = [TITLES.index("Heat (1995)")]
    bus = CandidateBus(len(FILMS))
    res = tools["ranking"].run(
        bus,
        {"by": "popularity", "prefer": ["Babe"], "unwanted": ["Alien (1979)", "Scream"]},
        state,
    )
    assert res.ok, res.error
    ids = bus.ids.tolist()
    assert ids[0] == TITLES.index("Babe (1995)")
    for gone in ("Alien (1979)", "Scream (1996)", "Heat (1995)"):
        assert TITLES.index(gone) not in ids


def test_ranking_diversity_mode_spreads_genres(tools, state, popularity) -> None:
    def distinct_genre_sets(mode: str) -> int:
        bus = CandidateBus(len(FILMS))
        tools["ranking"].run(bus, {"by": "popularity", "mode": mode}, state)
        return len({genres_of(i) for i in bus.head(5)}), bus.head(5)

    acc, acc_head = distinct_genre_sets("accuracy")
    div, div_head = distinct_genre_sets("diversity")
    assert acc_head != div_head
    overlap = lambda head: sum(  # noqa: E731
        len(set(genres_of(a)) & set(genres_of(b))) for a in head for b in head if a < b
    )
    assert overlap(div_head) < overlap(acc_head)


def test_ranking_by_a_sasrec_like_ranker_class(split, state) -> None:
    # any Ranker serves: here popularity.v1's model, scoring the bus as candidates
    model = Popularity()
    model.fit(split)
    tool = RankingTool(model)
    state.liked = [3]
    bus = CandidateBus(len(FILMS))
    bus.keep([5, 6, 7, 8], "x")
    res = tool.run(bus, {"by": "preference"}, state)
    assert res.ok, res.error
    want = model.rank(np.array([3]), ItemList(np.array([5, 6, 7, 8]))).ids.tolist()
    assert bus.ids.tolist() == want


@pytest.mark.parametrize("arg", [{"by": "astrology"}, {"mode": "chaos"}, 3.5, ["popularity"]])
def test_ranking_bad_input_is_an_error(tools, state, arg) -> None:
    bus = CandidateBus(len(FILMS))
    res = tools["ranking"].run(bus, arg, state)
    assert not res.ok and state.trace[-1].error
    assert bus.whole


# -- map ---------------------------------------------------------------------------------------------
def test_map_reads_the_head_with_evidence_and_clears_the_bus(tools, state) -> None:
    bus = CandidateBus(len(FILMS))
    tools["hard_filter"].run(bus, {"genres": ["Crime"]}, state)
    tools["ranking"].run(bus, {"by": "popularity"}, state)
    res = MapTool(3).run(bus, {}, state)
    assert res.ok and res.out_size == 3
    assert bus.whole
    assert [ev.item for ev in state.mapped] == [
        int(x) for x in np.asarray([ev.item for ev in state.mapped])
    ]
    for ev in state.mapped:
        assert "Crime" in genres_of(ev.item)
        assert ev.kept_by[0].startswith("hard_filter:") and ev.score is not None
        assert TITLES[ev.item] in res.text
    assert [s.tool for s in state.trace] == ["hard_filter", "ranking", "map"]
    assert all(s.seconds >= 0 for s in state.trace)


def test_hard_filter_tool_alone_on_the_database(db, state) -> None:
    tool = HardFilterTool(db)
    bus = CandidateBus(len(FILMS))
    res = tool.run(bus, {"year_max": 1970}, state)
    assert res.ok
    assert titles_of(bus.ids) == ["Psycho (1960)", "Casablanca (1942)"]
