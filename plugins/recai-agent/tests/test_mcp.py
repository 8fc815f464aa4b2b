"""``recai mcp``'s tools, called through the official MCP SDK's own client, in-process (the
client connected to the server object) on the small film catalog with ItemKNN as ranker and
similarity: what each tool returns is checked against the catalog and the components directly."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anyio
import numpy as np
import pytest
from agentkit import (
    FILMS,
    FilmsSource,
    RulesBrain,
    film_dataset,
    mcp_call,
    mcp_ok,
    mcp_refused,
    mcp_session,
    mcp_tools,
)

import recai
from recai.data import Split
from recai.testing import fresh_plugin_manager
from recai.types import Message
from recai_agent.agent import InterecAgent
from recai_agent.mcpserver import AgentToolbox, build_server

TITLES = [t for t, _, _ in FILMS]
TOOLS = {
    "describe_catalog",
    "lookup",
    "filter_items",
    "similar_items",
    "search_items",
    "recommend",
    "item_details",
    "chat",
    "feedback",
}


@pytest.fixture(scope="module")
def knn() -> Any:
    model = fresh_plugin_manager(autoload=True).create("retriever", "itemknn.v1", neighbors=10)
    model.fit(Split.full(film_dataset()))
    return model


@pytest.fixture(scope="module")
def toolbox(knn: Any) -> AgentToolbox:
    agent = InterecAgent(dataset=FilmsSource(), llm=RulesBrain(), ranker=knn, similarity=knn, k=3)
    agent.fit(Split.full(film_dataset()))
    return AgentToolbox(agent, name="agent")


@pytest.fixture(scope="module")
def server(toolbox: AgentToolbox) -> Any:
    return build_server(toolbox)


def genres_of(title: str) -> tuple[str, ...]:
    return next(g for t, _, g in FILMS if t == title)


def year_of(title: str) -> int:
    return next(y for t, y, _ in FILMS if t == title)


# -- listing ---------------------------------------------------------------------------------------
def test_lists_every_tool_with_typed_input_and_output_schemas(server: Any) -> None:
    tools = mcp_tools(server)
    assert set(tools) == TOOLS
    rec = tools["recommend"].input_schema["properties"]
    assert rec["mode"]["enum"] == ["accuracy", "diversity"]
    assert rec["k"]["minimum"] == 1 and rec["k"]["maximum"] == 100
    assert tools["lookup"].input_schema["required"] == ["sql"]
    assert tools["similar_items"].input_schema["required"] == ["items"]
    for tool in tools.values():
        assert tool.output_schema is not None and tool.description, tool.name
    item = tools["recommend"].output_schema["$defs"]["FoundItem"]["properties"]
    assert {"id", "title", "score"} <= set(item)
    assert tools["lookup"].annotations.read_only_hint is True
    assert tools["chat"].annotations.read_only_hint is not True


def test_describe_catalog_gives_columns_values_and_ranges(server: Any) -> None:
    info = mcp_ok(server, "describe_catalog")
    assert info["items"] == len(FILMS) and info["dataset"] == "films"
    cols = {c["name"]: c for c in info["columns"]}
    assert {"item", "id", "title", "year", "genres"} <= set(cols)
    assert cols["genres"]["kind"] == "multi"
    assert set(cols["genres"]["values"]) == {g for _, _, gs in FILMS for g in gs}
    assert (cols["year"]["min"], cols["year"]["max"]) == (1942.0, 1999.0)
    assert "items" in info["sql_schema"]
    assert info["components"]["ranker"] == info["components"]["similarity"] == "ItemKNN"


# -- look-up ---------------------------------------------------------------------------------------
def test_lookup_returns_rows_and_the_catalog_items_they_name(server: Any) -> None:
    rows = mcp_ok(
        server, "lookup", sql="SELECT title, year FROM items WHERE year >= 1997 ORDER BY title"
    )
    want = sorted(t for t, y, _ in FILMS if y >= 1997)
    assert rows["columns"] == ["title", "year"]
    assert [r[0] for r in rows["rows"]] == want
    assert [i["title"] for i in rows["items"]] == want
    assert all(i["id"] == str(TITLES.index(i["title"]) + 1) for i in rows["items"])


def test_lookup_grounds_a_loose_title_and_caps_the_rows(server: Any) -> None:
    rows = mcp_ok(server, "lookup", sql="SELECT year FROM items WHERE title = 'heat'")
    assert rows["rows"] == [[1995]] or rows["rows"] == [[1995.0]], rows
    assert "Heat (1995)" in rows["sql"] and rows["notes"]
    capped = mcp_ok(server, "lookup", sql="SELECT title FROM items", max_rows=5)
    assert len(capped["rows"]) == 5 and capped["truncated"] is True


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("DROP TABLE items", "only reading"),
        ("SELECT title FROM items; DELETE FROM items", "one statement"),
        ("ATTACH DATABASE '/tmp/recai-mcp-attack.db' AS x", "only reading"),
        ("PRAGMA writable_schema = 1", "refused"),
        ("SELECT load_extension('/tmp/evil.so')", "load_extension"),
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            "time budget",
        ),
        ("SELECT title FROM items WHERE", "syntax error"),
        ("SELECT nothing FROM nowhere", "'nowhere'"),
    ],
)
def test_hostile_or_broken_sql_is_a_tool_error_and_the_catalog_stays(
    server: Any, sql: str, why: str
) -> None:
    text = mcp_refused(server, "lookup", sql=sql)
    assert why in text, text
    count = mcp_ok(server, "lookup", sql="SELECT count(*) AS n FROM items")
    assert count["rows"] == [[len(FILMS)]]


# -- finding items ---------------------------------------------------------------------------------
def test_filter_items_meets_every_condition_most_popular_first(server: Any) -> None:
    found = mcp_ok(server, "filter_items", genres=["sci-fi"], year_min=1980, year_max=1999, k=20)
    want = {t for t, y, g in FILMS if "Sci-Fi" in g and 1980 <= y <= 1999}
    assert {i["title"] for i in found["items"]} == want and found["total"] == len(want)
    scores = [i["score"] for i in found["items"]]
    assert scores == sorted(scores, reverse=True)
    assert any("'sci-fi' -> 'Sci-Fi'" in n for n in found["notes"]), found["notes"]
    page = mcp_ok(server, "filter_items", genres=["Sci-Fi"], year_min=1980, k=2, offset=2)
    assert [i["title"] for i in page["items"]] == [i["title"] for i in found["items"][2:4]]
    sql = mcp_ok(server, "filter_items", where="year < 1970", not_genres=["Drama"])
    assert {i["title"] for i in sql["items"]} == {"Psycho (1960)"}


def test_filter_items_refuses_a_value_the_catalog_lacks_and_no_condition(server: Any) -> None:
    text = mcp_refused(server, "filter_items", genres=["Western"])
    assert "'Western'" in text and "Sci-Fi" in text  # names the values there are
    assert "at least one condition" in mcp_refused(server, "filter_items")
    assert "'rating'" in mcp_refused(server, "filter_items", fields={"rating": ["PG"]})


def test_similar_items_are_the_similarity_components_neighbours(server: Any, knn: Any) -> None:
    found = mcp_ok(server, "similar_items", items=["alien", "3"], k=4)
    assert [n["title"] for n in found["named"]] == ["Alien (1979)", "Terminator, The (1984)"]
    total = np.asarray(knn.similarity_row(0), float) + np.asarray(knn.similarity_row(2), float)
    cand = [i for i in np.lexsort((np.arange(len(total)), -total)) if i not in (0, 2)]
    want = [TITLES[i] for i in cand if total[i] > 0][:4]
    assert [i["title"] for i in found["items"]] == want
    assert all(i["similar_to"] for i in found["items"])
    scifi = mcp_ok(server, "similar_items", items=["Alien (1979)"], genres=["Horror"], k=10)
    assert scifi["items"] and all("Horror" in genres_of(i["title"]) for i in scifi["items"])


def test_search_items_without_a_text_retriever_matches_titles(server: Any) -> None:
    found = mcp_ok(server, "search_items", text="terminator", k=3)
    assert found["items"][0]["title"] == "Terminator, The (1984)"
    assert any("no text retriever" in n for n in found["notes"])
    horror = mcp_ok(server, "search_items", text="alien", genres=["Horror"], k=5)
    assert horror["items"][0]["title"] == "Alien (1979)"
    assert all("Horror" in genres_of(i["title"]) for i in horror["items"])


def test_lookup_maps_an_id_column_to_items(server: Any) -> None:
    rows = mcp_ok(server, "lookup", sql="SELECT id FROM items WHERE year = 1995 ORDER BY id")
    want = sorted((str(i + 1) for i, (_, y, _) in enumerate(FILMS) if y == 1995))
    assert [r[0] for r in rows["rows"]] == want
    assert [i["id"] for i in rows["items"]] == want


def test_recommend_orders_by_the_rankers_scores_without_the_history(server: Any, knn: Any) -> None:
    history = ["Toy Story (1995)", "Aladdin (1992)"]
    found = mcp_ok(server, "recommend", history=history, k=5)
    idx = [TITLES.index(t) for t in history]
    ids = np.asarray([i for i in range(len(TITLES)) if i not in idx])
    scores = np.asarray(knn.score([np.asarray(idx)], ids)[0], float).reshape(-1)
    want = [TITLES[i] for i in ids[np.lexsort((ids, -scores))][:5]]
    assert [i["title"] for i in found["items"]] == want
    assert not {i["title"] for i in found["items"]} & set(history)
    assert [n["title"] for n in found["named"]] == history


def test_recommend_diversity_mode_varies_the_genres(server: Any) -> None:
    history = ["Alien (1979)", "Aliens (1986)", "Matrix, The (1999)"]

    def genres(mode: str) -> int:
        items = mcp_ok(server, "recommend", history=history, k=5, mode=mode)["items"]
        assert len(items) == 5
        return len({g for i in items for g in genres_of(i["title"])})

    assert genres("diversity") >= genres("accuracy")


def test_recommend_for_a_known_user_reads_their_history(server: Any, toolbox: AgentToolbox) -> None:
    seen = {TITLES[i] for i in toolbox.user_history("3")}
    found = mcp_ok(server, "recommend", user="3", k=5, exclude=["Heat (1995)"], year_min=1990)
    titles = {i["title"] for i in found["items"]}
    assert titles and not titles & seen and "Heat (1995)" not in titles
    assert all(year_of(t) >= 1990 for t in titles)
    assert "not a user" in mcp_refused(server, "recommend", user="nobody")


def test_recommend_for_a_user_reads_the_likes_and_dislikes_feedback_gave(
    server: Any, toolbox: AgentToolbox
) -> None:
    """As explain does: a user the dataset does not know is recommended for from what they
    liked through feedback; a known user's likes join their history and what they disliked
    leaves it and is not offered again."""
    assert "not a user of dataset" in mcp_refused(server, "recommend", user="carol")
    for title in ("Heat", "Alien"):
        mcp_ok(server, "feedback", item=title, value="like", user="carol")
    found = mcp_ok(server, "recommend", user="carol", k=5)
    named = mcp_ok(server, "recommend", history=["Heat (1995)", "Alien (1979)"], k=5)
    assert found["items"] == named["items"] and len(found["items"]) == 5
    assert "their profile: 2 liked items added, 0 disliked left out" in found["notes"]

    seq = [TITLES[i] for i in toolbox.user_history("8")]
    extra = next(t for t in TITLES if t not in seq)
    mcp_ok(server, "feedback", item=seq[-1], value="dislike", user="8")
    mcp_ok(server, "feedback", item=extra, value="like", user="8")
    found = mcp_ok(server, "recommend", user="8", k=30)
    want = mcp_ok(server, "recommend", history=[*seq[:-1], extra], exclude=[seq[-1]], k=30)
    assert [i["title"] for i in found["items"]] == [i["title"] for i in want["items"]]
    assert seq[-1] not in {i["title"] for i in found["items"]}
    assert "their profile: 1 liked items added, 1 disliked left out" in found["notes"]


def test_item_details_by_id_and_title(server: Any) -> None:
    found = mcp_ok(server, "item_details", items=["14", "Casablanca", "No Such Film At All Xyz"])
    assert [(i["id"], i["title"]) for i in found["items"]] == [
        ("14", "Heat (1995)"),
        ("21", "Casablanca (1942)"),
    ]
    heat = found["items"][0]
    assert heat["fields"] == {"year": 1995.0, "genres": ["Action", "Crime", "Thriller"]}
    assert heat["interactions"] > 0
    assert found["not_found"] == ["No Such Film At All Xyz"]
    assert "no catalog item" in mcp_refused(server, "item_details", items=["zzzz qqqq"])


# -- the whole agent -------------------------------------------------------------------------------
def test_chat_keeps_the_conversation_in_a_session(server: Any) -> None:
    first = mcp_ok(server, "chat", message="some sci-fi films from the 1980s", user="3")
    assert first["session"] and first["items"]
    assert all(i["title"] in TITLES for i in first["items"])
    assert all("Sci-Fi" in genres_of(i["title"]) for i in first["items"])
    assert first["trace"] and first["plan"]
    again = mcp_ok(server, "chat", message="more like those", session=first["session"])
    assert again["session"] == first["session"]
    shown = {i["title"] for i in first["items"]}
    assert again["items"] and not shown & {i["title"] for i in again["items"]}
    assert "no conversation" in mcp_refused(server, "chat", message="hi", session="nope")
    other = mcp_refused(server, "chat", message="hi", session=first["session"], user="4")
    assert "user '3'" in other


def test_chat_gives_the_agent_the_users_context_and_the_whole_conversation(
    toolbox: AgentToolbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[Message]] = []
    respond = toolbox.agent.respond

    def spy(conversation: Sequence[Message], **kw: Any) -> Any:
        seen.append(list(conversation))
        return respond(conversation, **kw)

    monkeypatch.setattr(toolbox.agent, "respond", spy)
    first = toolbox.chat("recommend me something", user="5")
    toolbox.chat("and more", session=first.session)
    context = json.loads(seen[1][0].content)
    assert seen[1][0].name == "recai_context" and context["user"] == "5"
    assert [e["title"] for e in context["history"]] == [
        TITLES[i] for i in toolbox.user_history("5")
    ]
    assert [(m.role, m.content.split("\n")[0]) for m in seen[1][1:]] == [
        ("user", "recommend me something"),
        ("assistant", first.text.split("\n")[0]),
        ("user", "and more"),
    ]
    history = {TITLES[i] for i in toolbox.user_history("5")}
    assert not {i.title for i in first.items} & history  # the agent left out what they saw


def test_feedback_adds_to_the_users_profile_and_needs_a_user(server: Any) -> None:
    liked = mcp_ok(server, "feedback", item="Fargo", value="like", user="7")["profile"]
    assert "Fargo (1996)" in [i["title"] for i in liked["liked"]]
    disliked = mcp_ok(server, "feedback", item="13", value="dislike", user="7")["profile"]
    assert "Fargo (1996)" in [i["title"] for i in disliked["disliked"]]
    assert "Fargo (1996)" not in [i["title"] for i in disliked["liked"]]
    anonymous = mcp_ok(server, "chat", message="hello")["session"]
    assert "name the user" in mcp_refused(
        server, "feedback", item="1", value="like", session=anonymous
    )


def test_feedback_to_an_agent_without_profiles_says_so(knn: Any) -> None:
    agent = fresh_plugin_manager(autoload=True).create(
        "agent", "ranker-agent.v1", dataset=FilmsSource(), ranker=knn
    )
    server = build_server(AgentToolbox(agent, name="ranker"))
    text = mcp_refused(server, "feedback", item="1", value="like", user="3")
    assert "agent 'ranker' keeps no user profile" in text
    turn = mcp_ok(server, "chat", message="anything good?", user="3")  # its reply still comes
    assert turn["text"] and turn["session"]


def test_sessions_end_after_their_idle_time_and_the_oldest_go_first(knn: Any) -> None:
    agent = InterecAgent(dataset=FilmsSource(), llm=RulesBrain(), ranker=knn, similarity=knn)
    box = AgentToolbox(agent, name="agent", max_sessions=2, session_ttl=0.2)
    first = box.chat("sci-fi please").session
    second = box.chat("comedies please").session
    third = box.chat("dramas please").session  # the oldest, first, makes room
    with pytest.raises(recai.RecaiError, match="no conversation"):
        box.chat("more", session=first)
    assert box.chat("more", session=second).session == second
    import time

    time.sleep(0.3)
    with pytest.raises(recai.RecaiError, match="no conversation"):
        box.chat("more", session=third)


def test_concurrent_conversations_do_not_cross(server: Any) -> None:
    asks = {"3": "sci-fi films", "4": "comedies", "5": "crime films", "6": "horror films"}

    async def body(client: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}

        async def talk(user: str, text: str) -> None:
            first = (
                await client.call_tool("chat", {"message": text, "user": user})
            ).structured_content
            args = {"message": "more please", "session": first["session"]}
            again = (await client.call_tool("chat", args)).structured_content
            out[user] = (first, again)

        async with anyio.create_task_group() as tg:
            for user, text in asks.items():
                tg.start_soon(talk, user, text)
        return out

    out = mcp_session(server, body)
    sessions = {first["session"] for first, _ in out.values()}
    assert len(sessions) == len(asks)
    want = {"3": "Sci-Fi", "4": "Comedy", "5": "Crime", "6": "Horror"}
    for user, (first, again) in out.items():
        assert again["session"] == first["session"]
        assert first["items"], (user, first["text"])
        assert all(want[user] in genres_of(i["title"]) for i in first["items"]), (user, first)
        # the follow-up is planned from its own conversation: the same genre, none shown again
        steps = {s["tool"]: s["input"] for s in again["plan"]["steps"]}
        assert steps["hard_filter"]["genres"] == [want[user]], (user, again["plan"])
        shown = {i["title"] for i in first["items"]}
        assert again["items"] and not shown & {i["title"] for i in again["items"]}


# -- bad calls -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tool", "args", "says"),
    [
        ("filter_items", {"genres": ["Drama"], "k": "ten"}, "argument 'k'"),
        ("filter_items", {"genres": ["Drama"], "k": 0}, "greater than or equal to 1"),
        ("recommend", {"histroy": ["Alien"]}, "no argument 'histroy'"),
        ("similar_items", {}, "argument 'items'"),
        ("similar_items", {"items": []}, "argument 'items'"),
        ("recommend", {"history": ["Alien"], "mode": "random"}, "argument 'mode'"),
        ("lookup", {"sql": ""}, "argument 'sql'"),
        ("chat", {"message": "x" * 5000}, "argument 'message'"),
        ("feedback", {"item": "1", "value": "love", "user": "3"}, "argument 'value'"),
    ],
)
def test_a_bad_argument_is_a_one_line_tool_error(
    server: Any, tool: str, args: dict[str, Any], says: str
) -> None:
    assert says in mcp_refused(server, tool, **args)


def test_an_unknown_tool_is_an_error_and_the_server_goes_on(server: Any) -> None:
    error, text = mcp_call(server, "drop_everything", {})
    assert error and "drop_everything" in text
    assert mcp_ok(server, "describe_catalog")["items"] == len(FILMS)


def test_without_a_similarity_component_similar_items_says_so(knn: Any) -> None:
    agent = InterecAgent(dataset=FilmsSource(), llm=RulesBrain(), ranker=knn)
    server = build_server(AgentToolbox(agent, name="plain"))
    assert "no similarity component" in mcp_refused(server, "similar_items", items=["Alien"])
    # the ranker still ranks
    assert mcp_ok(server, "recommend", history=["Alien"], k=3)["items"]


def test_a_chosen_set_of_tools_is_all_that_is_served(toolbox: AgentToolbox) -> None:
    server = build_server(toolbox, tools=["recommend", "item_details"])
    assert list(mcp_tools(server)) == ["recommend", "item_details"]
    error, text = mcp_call(server, "chat", {"message": "hi"})
    assert error and "chat" in text
    with pytest.raises(recai.RecaiError, match="'recomend', which is no tool"):
        build_server(toolbox, tools=["recomend"])


def test_an_agent_without_a_dataset_is_refused_by_name() -> None:
    class Bare(recai.Agent):
        def reply(self, conversation: Sequence[Message]) -> Message:
            return Message.assistant("hi")

    with pytest.raises(recai.RecaiError, match="agent 'bare' .* no 'dataset'"):
        AgentToolbox(Bare(), name="bare")


def test_outputs_are_json_text_too(server: Any) -> None:
    """Clients that read only the text content get the same result as JSON."""

    async def body(client: Any) -> Any:
        return await client.call_tool("item_details", {"items": ["1"]})

    result = mcp_session(server, body)
    assert json.loads(result.content[0].text) == result.structured_content
