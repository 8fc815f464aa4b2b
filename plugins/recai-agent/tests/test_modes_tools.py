"""The agent's native tool-calling mode over real tool calling: the kernel's SchemaToolCalling
in-process, and openai.v1 talking to recai serve over loopback HTTP. The brain behind both is a
scripted backend that decodes JSON under the schema it is given (checked with jsonschema), so a
function spec the agent builds wrong fails the test."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from agentkit import FILMS

import recai
from recai.roles import DatasetSource, LLMBackend
from recai.toolcalls import SchemaToolCalling
from recai.types import Completion, Message
from recai_agent.agent import InterecAgent, _Turn
from recai_agent.modes import run_native
from recai_agent.tools import TurnState

jsonschema = pytest.importorskip("jsonschema")


class JSONBrain(LLMBackend):
    """Answers each call with the next of ``answers`` (JSON), after checking it against the
    call's ``json_schema``; records the messages and schemas it got."""

    capabilities = frozenset({"json_schema"})

    def __init__(self, answers: Sequence[dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[Message], dict[str, Any]]] = []

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        self.calls.append((list(messages), options))
        schema = options.get("json_schema")
        if schema is None:
            return Completion("Enjoy these films.")
        answer = self.answers.pop(0) if self.answers else {"name": "finish", "arguments": {}}
        jsonschema.validate(answer, schema)  # a constrained decoder could write nothing else
        return Completion(json.dumps(answer))


ANSWERS = [
    {"name": "hard_filter", "arguments": {"genres": ["Sci-Fi"], "year_min": 1990}},
    {"name": "ranking", "arguments": {"by": "popularity", "mode": "accuracy"}},
]


def native_turn(split, knn, llm: LLMBackend, request: str) -> tuple[dict[str, Any], bool, _Turn]:  # type: ignore[no-untyped-def]
    agent = InterecAgent(DatasetSource.of(split.dataset), llm, ranker=knn, similarity=knn)
    agent.fit(split)
    _, grounder, tools = agent._ready()
    slots = agent.extractor.extract(request, [])
    turn = _Turn(TurnState(agent.catalog, grounder, k=agent.params.k), request, [])
    turn.dialogue.append(Message.user(request))
    plan, valid = run_native(agent, turn, slots, tools)
    return plan, valid, turn


def check_nineties_scifi(plan: dict[str, Any], valid: bool, turn: _Turn) -> None:
    assert valid is True and plan["mode"] == "tools"
    assert [(s["tool"], s["source"]) for s in plan["steps"]] == [
        ("hard_filter", "model"),
        ("ranking", "model"),
        ("map", "rules"),
    ]
    assert plan["steps"][1]["input"]["by"] == "popularity"
    assert turn.calls == 2 and turn.state.mapped
    for ev in turn.state.mapped:
        assert "Sci-Fi" in FILMS[ev.item][2] and FILMS[ev.item][1] >= 1990


def test_native_mode_on_a_json_brain_through_schema_tool_calling(split, knn) -> None:
    brain = JSONBrain(ANSWERS)
    plan, valid, turn = native_turn(split, knn, SchemaToolCalling(brain), "90s sci-fi films")
    check_nineties_scifi(plan, valid, turn)
    # the second call carries the first call and its result, written as text for the brain
    second = "\n".join(m.content for m in brain.calls[1][0])
    assert "hard_filter" in second and "items left; first:" in second


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, JSONBrain]]:
    server_mod = pytest.importorskip("recai_serve.server")
    brain = JSONBrain([])
    with server_mod.LLMServer({"brain": brain}) as s:
        host, port = s.address
        yield f"http://{host}:{port}/v1", brain


def test_native_mode_through_openai_v1_and_recai_serve_on_loopback(split, knn, served) -> None:
    pytest.importorskip("recai_openai")
    url, brain = served
    brain.answers = list(ANSWERS)
    client = recai.create("llm_backend", "openai.v1", model="brain", base_url=url)
    assert "tools" in client.capabilities
    plan, valid, turn = native_turn(split, knn, client, "90s sci-fi films")
    check_nineties_scifi(plan, valid, turn)
    assert len(brain.calls) == 2 and all(o.get("json_schema") for _, o in brain.calls)
