"""``recai chat``: scripted and interactive conversations through the real CLI and recipe path."""

from __future__ import annotations

import builtins
import io
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from agentkit import FILMS, FilmsPlugin, film_recipe

import recai
from recai import cli
from recai.testing import fresh_plugin_manager, use_plugin_manager
from recai.types import Completion, Message

TITLES = [t for t, _, _ in FILMS]


class ScriptedBrain(recai.LLMBackend):
    """A brain that cannot plan (it writes prose where JSON is wanted) and writes a reply that
    names one film that is on no bus: the agent's rules and grounding must carry the turn."""

    capabilities = frozenset({"json_schema", "stream"})

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        if options.get("json_schema") is not None:
            return Completion("I would filter some movies!")
        return Completion("Here are films for you. Casablanca (1942) is a must. Enjoy them!")

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[str]:
        text = self.chat(messages, **options).text
        for i in range(0, len(text), 5):
            yield text[i : i + 5]


class _TestPlugin:
    @recai.hookimpl
    def recai_llm_backends(self) -> Iterator[recai.ComponentSpec]:
        yield recai.ComponentSpec(name="scripted-brain.v1", factory=ScriptedBrain, summary="Test.")


RECIPE = film_recipe("chat-test", brain="scripted-brain.v1")


@pytest.fixture()
def recipe(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "chat.toml"
    path.write_text(RECIPE)
    with use_plugin_manager(fresh_plugin_manager(FilmsPlugin(), _TestPlugin(), autoload=True)):
        yield path


def chat(*argv: str) -> int:
    return cli.main(["chat", *argv])


def test_scripted_conversation_as_json_names_only_bus_items(recipe, tmp_path, capsys) -> None:
    out = tmp_path / "fits"
    code = chat(
        str(recipe),
        "--out", str(out),
        "--json",
        "--message", "I want horror films",
        "--message", "more like Heat please",
    )  # fmt: skip
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    assert body["agent"] == "agent" and len(body["turns"]) == 2
    first, second = body["turns"]
    assert first["user"] == "I want horror films"
    assert first["items"] and all("Horror" in FILMS[it["index"]][2] for it in first["items"])
    for turn in body["turns"]:
        assert turn["llm_calls"] == 2 and turn["seconds"] > 0
        assert [s["tool"] for s in turn["trace"]][-1] == "map"
        assert all("kept_by" in it["evidence"] for it in turn["items"])
        named = {t for t in TITLES if t in turn["text"]}
        assert named == {it["title"] for it in turn["items"]}  # Casablanca was dropped
    assert not {i["index"] for i in first["items"]} & {i["index"] for i in second["items"]}
    # no horror film (the genre carried from turn 1) is like Heat: the agent keeps the genre,
    # fills the list without the similarity condition, and says so
    assert second["items"] and all("Horror" in FILMS[i["index"]][2] for i in second["items"])
    assert any("filled without soft_filter" in n for n in second["notes"])
    assert (out / "artifacts").is_dir()  # ItemKNN's fit is cached for the next chat


def test_plain_output_prints_the_turns(recipe, tmp_path, capsys) -> None:
    assert chat(str(recipe), "--out", str(tmp_path / "f"), "-m", "some comedy") == 0
    text = capsys.readouterr().out
    assert text.startswith("you: some comedy\nagent: ")
    assert "Casablanca" not in text


def test_trace_prints_the_plan_each_tool_call_and_the_costs(recipe, tmp_path, capsys) -> None:
    code = chat(str(recipe), "--out", str(tmp_path / "f"), "--trace", "-m", "crime films")
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    trace = [line for line in lines if line.startswith("  [")]
    assert trace[0].startswith("  [plan: hard_filter > ranking > map")
    assert any(t.startswith('  [hard_filter {"genres": ["Crime"]} -> ') for t in trace)
    assert trace[-2].startswith("  [map {} -> 3 items, ")
    assert trace[-1].startswith("  [2 LLM calls, ") and "in the LLM]" in trace[-1]


def test_lines_of_standard_input_are_the_messages(recipe, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("crime films\n\nromance\n"))
    assert chat(str(recipe), "--out", str(tmp_path / "f"), "--json") == 0
    turns = json.loads(capsys.readouterr().out)["turns"]
    assert [t["user"] for t in turns] == ["crime films", "romance"]


def test_interactive_session_streams_grounded_text(recipe, tmp_path, capsys, monkeypatch) -> None:
    class TTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", TTY(""))
    said = iter(["animated films for kids", "exit"])
    monkeypatch.setattr(builtins, "input", lambda prompt="": next(said))
    assert chat(str(recipe), "--out", str(tmp_path / "f")) == 0
    out = capsys.readouterr().out
    assert "agent> Here are films for you." in out
    assert "Casablanca" not in out
    assert "Toy Story (1995)" in out or "Aladdin (1992)" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--message", "  "], "--message number 1 is empty"),
        (["--message", "x" * 5000], "more than 4,000"),
        (["--component", "agnet"], "Did you mean 'agent'?"),
        (["--user", "nobody", "-m", "hi"], "--user 'nobody' is not a user"),
    ],
)
def test_user_errors_exit_2_with_one_readable_line(recipe, tmp_path, capsys, argv, needle) -> None:
    code = chat(str(recipe), "--out", str(tmp_path / "f"), *argv)
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and "Traceback" not in err


def test_a_recipe_without_an_agent_is_refused(tmp_path, capsys) -> None:
    path = tmp_path / "noagent.toml"
    path.write_text('[components.films]\nuse = "films.v1"\n')
    with use_plugin_manager(fresh_plugin_manager(FilmsPlugin(), _TestPlugin(), autoload=True)):
        code = chat(str(path), "-m", "hi")
    err = capsys.readouterr().err
    assert code == 2 and "name the agent to chat with" in err and "it has none" in err


def test_a_missing_recipe_file_is_refused(tmp_path, capsys) -> None:
    assert chat(str(tmp_path / "nope.toml"), "-m", "hi") == 2
    assert "nope.toml" in capsys.readouterr().err


def test_the_example_recipe_checks() -> None:
    from recai.recipe import check, load_recipe

    root = Path(__file__).resolve().parents[3]
    recipe = load_recipe(root / "examples" / "agent.toml")
    with use_plugin_manager(fresh_plugin_manager(autoload=True)) as pm:
        plan = check(recipe, pm.registry())
    assert plan.resolved["agent"].name == "interecagent.v1"


# -- build_agent: the agent and other components, one build ----------------------------------------
def test_build_agent_builds_named_components_with_the_agent_and_fits_them_once(
    recipe: Path, tmp_path: Path
) -> None:
    from recai_agent.cli import build_agent

    lines: list[str] = []
    agent, name, fit, also = build_agent(
        str(recipe), None, str(tmp_path / "fit"), log=lines.append, also=["knn", "agent", "knn"]
    )
    assert name == "agent" and list(also) == ["knn"]  # the agent itself and repeats dropped
    knn = also["knn"]
    assert knn is agent.params.ranker  # one build: the agent's own part
    fits: list[Any] = []
    knn_fit = knn.fit
    knn.fit = lambda split: fits.append(split) or knn_fit(split)
    assert fit is not None
    fit()
    assert len(fits) == 1  # as the agent's part, not again as the component asked for
    assert lines[0].startswith("fitting agent and retriever knn (cached under")
    assert lines[-1].startswith("agent fitted in") and lines[-1].endswith("(retriever knn too)")
    # without also: the agent alone, as recai chat builds it
    lines.clear()
    _, _, fit, none = build_agent(str(recipe), None, str(tmp_path / "fit"), log=lines.append)
    assert none == {} and fit is not None
    fit()
    assert lines[0].startswith("fitting agent (cached under") and "too" not in lines[-1]


def test_build_agent_asks_the_picker_after_the_agent_is_chosen(recipe: Path) -> None:
    from recai_agent.cli import build_agent

    asked: list[tuple[str, list[str]]] = []

    def pick(plan: Any, name: str) -> list[str]:
        asked.append((name, sorted(plan.resolved)))
        return ["brain"]

    *_, also = build_agent(str(recipe), None, None, log=str, also=pick)
    assert asked == [("agent", ["agent", "brain", "films", "knn"])]
    assert isinstance(also["brain"], ScriptedBrain)
    *_, one = build_agent(str(recipe), None, None, log=str, also="brain")  # one name, not letters
    assert list(one) == ["brain"]
    # a bad agent choice is refused before the picker is asked
    with pytest.raises(recai.RecaiError, match="'agnet' is not an agent. Did you mean 'agent'"):
        build_agent(str(recipe), "agnet", None, log=str, also=pick)
    assert len(asked) == 1


def test_build_agent_refuses_an_unknown_component_by_name(recipe: Path) -> None:
    from recai_agent.cli import build_agent

    with pytest.raises(recai.RecaiError) as caught:
        build_agent(str(recipe), None, None, log=str, also=["knm"])
    text = str(caught.value)
    assert "chat.toml: no component 'knm' to build with agent 'agent'" in text
    assert "components: films, brain, knn, agent" in text and "\n" not in text
    assert caught.value.exit_code == 2
