"""``recai mcp``'s ``explain`` tool through the official MCP SDK's own client, in-process: a
deterministic test Explainer registered through a plugin manager (as a recipe's would be) answers
for an item grounded through the catalog's title matcher and a history (items, a user of the
dataset, a chat session's user); without an Explainer the tool is not listed; bad input is one
readable tool error. The command's choice of the recipe's Explainer (``--explainer``) is checked
on recipes here; the stdio and keyed HTTP servers with an Explainer in test_mcp_cli.py."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from agentkit import (
    FILMS,
    FilmsPlugin,
    FilmsSource,
    RulesBrain,
    film_dataset,
    film_recipe,
    mcp_call,
    mcp_ok,
    mcp_refused,
    mcp_session,
    mcp_tools,
)
from pydantic import Field

import recai
from recai.data import Split
from recai.testing import fresh_plugin_manager, use_plugin_manager
from recai.types import Explanation, ItemList, Message
from recai_agent.agent import InterecAgent
from recai_agent.mcpserver import AgentToolbox, build_for_mcp, build_server

TITLES = [t for t, _, _ in FILMS]


class BecauseParams(recai.Params):
    dataset: recai.DatasetSource = Field(description="the catalog whose titles it quotes")
    silent_on: str = Field("", description="a title it has no words for")


class Because(recai.Configurable, recai.Explainer):
    """Names the item and the history's last two items (so a test sees what it was given);
    evidence as numpy values; refuses Psycho and says nothing for ``silent_on``."""

    Params = BecauseParams

    def explain(self, history: ItemList, item: int) -> Explanation:
        catalog = self.params.dataset.dataset().catalog
        title = catalog.title(item)
        if title == "Psycho (1960)":
            raise NotImplementedError("no words for Psycho")
        if title == self.params.silent_on:
            return Explanation(item, "  ")
        last = [catalog.title(i) for i in history.ids.tolist()[-2:]]
        return Explanation(
            item,
            f"{title}, for one who liked {' and '.join(last)}",
            {"history": np.asarray(history.ids), "n": np.int64(len(history)), "item": item},
        )


def because_text(item: str, history: list[str]) -> str:
    return f"{item}, for one who liked {' and '.join(history[-2:])}"


class Learned(Because):
    """Because, plus how many interactions the item has in the split it was fitted on."""

    counts: np.ndarray | None = None

    def fit(self, split: Any) -> None:
        self.counts = np.bincount(split.train.items, minlength=split.dataset.n_items)

    def explain(self, history: ItemList, item: int) -> Explanation:
        if self.counts is None:
            raise RuntimeError("not fitted")
        out = super().explain(history, item)
        return Explanation(item, f"{out.text} ({self.counts[item]} views)", out.evidence)


class ExplainPlugin:
    """A plugin giving ``because.v1``, the way an installed distribution would."""

    @recai.hookimpl
    def recai_explainers(self) -> Iterator[recai.ComponentSpec]:
        yield recai.ComponentSpec(name="because.v1", factory=Because, summary="Test explainer.")
        yield recai.ComponentSpec(name="plain.v1", factory=Because, summary="Another one.")
        yield recai.ComponentSpec(name="learned.v1", factory=Learned, summary="It learns.")


@pytest.fixture(scope="module")
def pm() -> Any:
    return fresh_plugin_manager(ExplainPlugin(), autoload=True)


@pytest.fixture(scope="module")
def toolbox(pm: Any) -> AgentToolbox:
    source = FilmsSource()
    knn = pm.create("retriever", "itemknn.v1", neighbors=10)
    agent = InterecAgent(dataset=source, llm=RulesBrain(), ranker=knn, similarity=knn, k=3)
    agent.fit(Split.full(film_dataset()))
    explainer = pm.create("explainer", "because.v1", dataset=source, silent_on="Babe (1995)")
    return AgentToolbox(agent, name="agent", explainer=("because", explainer))


@pytest.fixture(scope="module")
def server(toolbox: AgentToolbox) -> Any:
    return build_server(toolbox)


def ok(server: Any, **args: Any) -> Any:
    return mcp_ok(server, "explain", **args)


def refused(server: Any, **args: Any) -> str:
    return mcp_refused(server, "explain", **args)


# -- listing ---------------------------------------------------------------------------------------
def test_explain_is_listed_with_typed_schemas_when_there_is_an_explainer(server: Any) -> None:
    tools = mcp_tools(server)
    assert "explain" in tools and list(tools)[-3:] == ["explain", "chat", "feedback"]
    tool = tools["explain"]
    assert tool.input_schema["required"] == ["item"]
    assert set(tool.input_schema["properties"]) == {"item", "history", "user", "session"}
    out = tool.output_schema["properties"]
    assert {"item", "text", "evidence", "explainer", "named", "notes"} <= set(out)
    assert tool.annotations.read_only_hint is True and tool.description


def test_without_an_explainer_the_tool_is_not_listed_nor_callable(
    toolbox: AgentToolbox, pm: Any
) -> None:
    agent = toolbox.agent
    bare = build_server(AgentToolbox(agent, name="agent"))
    tools = mcp_tools(bare)
    assert "explain" not in tools and {"recommend", "chat"} <= set(tools)
    assert all("explain" not in (t.description or "") for t in tools.values())
    error, text = mcp_call(bare, "explain", {"item": "Fargo", "history": ["Alien"]})
    assert error and "explain" in text
    with pytest.raises(recai.RecaiError, match="--tools names explain, but .* no Explainer"):
        build_server(AgentToolbox(agent, name="agent"), tools=["explain"])


def test_a_chosen_set_without_explain_leaves_it_out(toolbox: AgentToolbox) -> None:
    assert list(mcp_tools(build_server(toolbox, tools=["recommend"]))) == ["recommend"]
    assert list(mcp_tools(build_server(toolbox, tools=["explain"]))) == ["explain"]


def test_describe_catalog_names_the_explainer(server: Any) -> None:
    error, info = mcp_call(server, "describe_catalog", {})
    assert not error and info["components"]["explainer"] == "Because"


# -- answers ---------------------------------------------------------------------------------------
def test_explain_answers_with_the_explainers_text_for_a_title_and_a_history(server: Any) -> None:
    out = ok(server, item="Fargo (1996)", history=["Alien (1979)", "Heat (1995)"])
    assert out["text"] == because_text("Fargo (1996)", ["Alien (1979)", "Heat (1995)"])
    assert out["item"] == {"id": "13", "title": "Fargo (1996)"}
    assert out["explainer"] == "because" and out["history_items"] == 2
    assert [n["title"] for n in out["named"]] == ["Alien (1979)", "Heat (1995)"]
    # the explainer got catalog indices; its numpy evidence came back as JSON
    assert out["evidence"] == {"history": [0, 13], "n": 2, "item": 12}
    assert out["notes"] == []


def test_an_item_by_id_and_a_history_by_ids(server: Any) -> None:
    out = ok(server, item="8", history=["1", 2])
    assert out["item"]["title"] == "Star Wars (1977)"
    assert out["text"] == because_text("Star Wars (1977)", ["Alien (1979)", "Aliens (1986)"])


def test_a_misspelt_title_grounds_to_the_catalog_item(server: Any) -> None:
    out = ok(server, item="Godfather", history=["Termnator", "Pulp Fictoin"])
    assert out["item"]["title"] == "Godfather, The (1972)"
    assert out["text"] == because_text(
        "Godfather, The (1972)", ["Terminator, The (1984)", "Pulp Fiction (1994)"]
    )
    assert "'Godfather' read as 'Godfather, The (1972)'" in out["notes"]
    assert any(n.startswith("'Termnator' read as") for n in out["notes"])
    # below the matcher's 0.5, a clear lead still names the film (0.38 against 0.04)
    assert ok(server, item="Casablanka", history=["Alien"])["item"]["title"] == "Casablanca (1942)"
    # below both (0.20), a name two swapped letters off one film's (test_mcp_titles.py)
    out = ok(server, item="The Shinnig", history=["Alien"])
    assert out["item"]["title"] == "Shining, The (1980)"


def test_a_user_of_the_dataset_gives_the_history(server: Any, toolbox: AgentToolbox) -> None:
    seq = [TITLES[i] for i in toolbox.user_history("3")]
    out = ok(server, item="Fargo", user="3")
    assert out["history_items"] == len(seq) and out["named"] == []
    assert out["text"] == because_text("Fargo (1996)", seq)
    extra = next(t for t in TITLES if t not in seq)  # the named items follow the user's
    more = ok(server, item="Fargo", user="3", history=[extra])
    assert more["history_items"] == len(seq) + 1
    assert more["text"] == because_text("Fargo (1996)", [*seq, extra])


def test_a_chat_sessions_user_gives_the_history(server: Any, toolbox: AgentToolbox) -> None:
    async def body(client: Any) -> Any:
        turn = await client.call_tool("chat", {"message": "a comedy please", "user": "4"})
        sid = turn.structured_content["session"]
        return await client.call_tool("explain", {"item": "Heat", "session": sid})

    out = mcp_session(server, body)
    seq = [TITLES[i] for i in toolbox.user_history("4")]
    assert out.is_error is False, out.content
    assert out.structured_content["text"] == because_text("Heat (1995)", seq)


def test_feedback_likes_and_dislikes_shape_the_users_history(
    server: Any, toolbox: AgentToolbox
) -> None:
    """A user the dataset does not know is explained from what they liked through feedback;
    a known user's dislikes leave their history."""
    assert "not a user of dataset" in refused(server, item="Fargo", user="alice")
    for title in ("Heat", "Alien"):
        error, _ = mcp_call(server, "feedback", {"item": title, "value": "like", "user": "alice"})
        assert not error
    out = ok(server, item="Fargo", user="alice")
    assert out["text"] == because_text("Fargo (1996)", ["Heat (1995)", "Alien (1979)"])
    assert out["history_items"] == 2
    assert "their profile: 2 liked items added, 0 disliked left out" in out["notes"]

    seq = [TITLES[i] for i in toolbox.user_history("7")]
    error, _ = mcp_call(server, "feedback", {"item": seq[-1], "value": "dislike", "user": "7"})
    assert not error
    out = ok(server, item="Fargo", user="7")
    assert out["history_items"] == len(seq) - 1
    assert out["text"] == because_text("Fargo (1996)", seq[:-1])


# -- bad input -------------------------------------------------------------------------------------
def test_an_unknown_item_is_one_readable_error(server: Any) -> None:
    text = refused(server, item="Zorgon the Unwatchable", history=["Alien"])
    assert "no catalog item has the id or a title like 'Zorgon the Unwatchable'" in text
    # a title sharing a word with one film is not that film (the matcher scores it 0.14)
    assert "a title like 'Star Trek'" in refused(server, item="Star Trek", history=["Alien"])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({"item": "Fargo"}, "give the items the user liked ('history'"),
        ({"item": "Fargo", "history": ["Zorgon", "Blorp"]}, "history: no catalog item"),
        ({"item": "Fargo", "user": "nobody"}, "user 'nobody' is not a user of dataset 'films'"),
        ({"item": "Fargo", "session": "gone"}, "explain: no conversation with session 'gone'"),
        ({"item": "Psycho", "history": ["Alien"]}, "'because' cannot explain this: no words"),
        ({"item": "Babe", "history": ["Alien"]}, "gave no text for 'Babe (1995)'"),
        ({"item": "Fargo", "history": "Alien"}, "argument 'history'"),
        ({"item": "Fargo", "histroy": ["Alien"]}, "no argument 'histroy'"),
        ({"history": ["Alien"]}, "argument 'item'"),
    ],
)
def test_bad_input_is_a_one_line_tool_error_and_the_server_goes_on(
    server: Any, args: dict[str, Any], says: str
) -> None:
    assert says in refused(server, **args)
    assert ok(server, item="Fargo", history=["Alien"])["item"]["title"] == "Fargo (1996)"


# -- the command's choice of the recipe's Explainer ------------------------------------------------
class ExplainingParams(recai.Params):
    dataset: recai.DatasetSource = Field(description="its catalog")
    explainer: recai.Explainer = Field(description="the explainer it uses")


class Explaining(recai.Configurable, recai.Agent):
    """An agent that takes an explainer as a param (no agent of the project does yet)."""

    Params = ExplainingParams

    def reply(self, conversation: Sequence[Message]) -> Message:
        return Message.assistant("hi")


class AgentPlugin:
    @recai.hookimpl
    def recai_agents(self) -> Iterator[recai.ComponentSpec]:
        yield recai.ComponentSpec(name="explaining.v1", factory=Explaining, summary="Agent.")


@pytest.fixture()
def recipe_pm() -> Iterator[Any]:
    with use_plugin_manager(
        fresh_plugin_manager(ExplainPlugin(), FilmsPlugin(), AgentPlugin(), autoload=True)
    ) as pm:
        yield pm


def recipe(tmp_path: Path, *explainers: tuple[str, str, str]) -> str:
    parts = [
        f'[components.{name}]\nuse = "{use}"\nparams = {{ dataset = "{data}" }}'
        for name, use, data in explainers
    ]
    if any(data == "films2" for _, _, data in explainers):
        parts.append('[components.films2]\nuse = "films.v1"')
    path = tmp_path / "explain.toml"
    path.write_text(film_recipe("explain-test", more="\n".join(parts) + "\n"))
    return str(path)


def test_the_recipes_only_explainer_is_built_with_the_agent_on_its_dataset(
    recipe_pm: Any, tmp_path: Path
) -> None:
    path = recipe(tmp_path, ("why", "because.v1", "films"))
    agent, name, fit, explainer = build_for_mcp(path, None, str(tmp_path / "fit"), log=str)
    assert name == "agent" and fit is not None and explainer is not None
    assert explainer[0] == "why" and isinstance(explainer[1], Because)
    assert explainer[1].params.dataset is agent.params.dataset  # one build, shared parts
    # --tools without explain builds no explainer
    *_, none = build_for_mcp(path, None, str(tmp_path / "fit"), tools=["recommend"], log=str)
    assert none is None


def test_explainer_names_one_of_several_and_several_without_it_are_refused(
    recipe_pm: Any, tmp_path: Path
) -> None:
    path = recipe(tmp_path, ("why", "because.v1", "films"), ("plain", "plain.v1", "films"))
    with pytest.raises(recai.RecaiError, match=r"--explainer NAME \(it has 2: why, plain\)"):
        build_for_mcp(path, None, None, log=str)
    *_, explainer = build_for_mcp(path, None, None, explainer="plain", log=str)
    assert explainer is not None and explainer[0] == "plain"
    with pytest.raises(
        recai.RecaiError, match="'pain' is not an Explainer .* Did you mean 'plain'"
    ):
        build_for_mcp(path, None, None, explainer="pain", log=str)
    with pytest.raises(recai.RecaiError, match="--explainer is for the explain tool"):
        build_for_mcp(path, None, None, explainer="plain", tools=["lookup"], log=str)
    *_, none = build_for_mcp(path, None, None, tools=["lookup"], log=str)
    assert none is None


def test_an_explainer_on_another_dataset_is_refused_by_name(recipe_pm: Any, tmp_path: Path) -> None:
    path = recipe(tmp_path, ("why", "because.v1", "films2"))
    with pytest.raises(recai.RecaiError, match="'why' reads dataset 'films2', agent 'agent'"):
        build_for_mcp(path, "agent", None, log=str)


def test_tools_explain_on_a_recipe_without_one_is_refused(recipe_pm: Any, tmp_path: Path) -> None:
    path = recipe(tmp_path)
    with pytest.raises(recai.RecaiError, match="--tools names explain, but .* no Explainer"):
        build_for_mcp(path, None, None, tools=["explain"], log=str)
    *_, none = build_for_mcp(path, None, None, log=str)
    assert none is None


def test_the_agents_own_explainer_param_is_the_default_among_several(
    recipe_pm: Any, tmp_path: Path
) -> None:
    path = recipe(tmp_path, ("why", "because.v1", "films"), ("plain", "plain.v1", "films"))
    text = Path(path).read_text() + (
        '[components.talker]\nuse = "explaining.v1"\n'
        'params = { dataset = "films", explainer = "plain" }\n'
    )
    Path(path).write_text(text)
    agent, name, _, explainer = build_for_mcp(path, "talker", None, log=str)
    assert name == "talker"
    assert explainer is not None and explainer[0] == "plain"
    assert explainer[1] is agent.params.explainer
    *_, other = build_for_mcp(path, "talker", None, explainer="why", log=str)
    assert other is not None and other[0] == "why"  # the option wins
    toolbox = AgentToolbox(agent, name="talker", explainer=explainer)
    out = ok(build_server(toolbox), item="Fargo", history=["Heat"])
    assert out["explainer"] == "plain" and out["text"] == because_text(
        "Fargo (1996)", ["Heat (1995)"]
    )
    # a toolbox given no explainer uses the agent's
    assert AgentToolbox(agent, name="talker").explainer is agent.params.explainer


def test_an_explainer_that_learns_is_fitted_with_the_agent_and_explain_waits_for_it(
    recipe_pm: Any, tmp_path: Path
) -> None:
    path = recipe(tmp_path, ("seen", "learned.v1", "films"))
    lines: list[str] = []
    agent, name, fit, explainer = build_for_mcp(path, None, str(tmp_path / "fit"), log=lines.append)
    assert explainer is not None and explainer[1].counts is None and fit is not None
    toolbox = AgentToolbox(agent, name=name, explainer=explainer)
    toolbox.defer_fit(fit)
    server = build_server(toolbox)  # its lifespan starts the fit; explain waits for it
    out = ok(server, item="Fargo", history=["Heat"])
    views = int(np.sum(film_dataset().interactions.items == 12))
    assert out["text"] == because_text("Fargo (1996)", ["Heat (1995)"]) + f" ({views} views)"
    assert lines[0].startswith("fitting agent and explainer seen (cached under")
    assert lines[-1].startswith("agent fitted in") and "explainer seen too" in lines[-1]
    assert ok(server, item="Alien", history=["Heat"])["item"]["title"] == "Alien (1979)"
