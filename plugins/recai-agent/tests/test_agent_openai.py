"""InterecAgent with ``openai.v1`` as its brain, against a real OpenAI-compatible server on
loopback (``recai serve``'s LLMServer, the real ``openai`` client, real HTTP): the same agent
code runs unchanged on any such server. Behind the server, small deterministic doubles."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pytest
from agentkit import FILMS

import recai
from recai.roles import DatasetSource, LLMBackend
from recai.types import Completion, Message, Usage
from recai_agent.agent import InterecAgent
from recai_serve.server import LLMServer

KEY_ENV = "RECAI_AGENT_TEST_KEY"
TITLES = {t for t, _, _ in FILMS}
PLAN = {
    "steps": [
        {"tool": "hard_filter", "input": {"genres": ["Sci-Fi"]}},
        {"tool": "ranking", "input": {"by": "popularity"}},
        {"tool": "map", "input": {}},
    ]
}


class Brain(LLMBackend):
    """Writes PLAN under a schema, a one-line reply otherwise; scores a prompt's words (a
    word costs its length; 'similarity' costs nothing) when ``scores`` is on."""

    def __init__(self, scores: bool) -> None:
        self.scores = scores
        self.schemas: list[dict[str, Any]] = []

    def chat(
        self, messages: Sequence[Message], *, json_schema: Any = None, **options: Any
    ) -> Completion:
        if json_schema is not None:
            self.schemas.append(json_schema)
            return Completion(json.dumps(PLAN), "stop", Usage(10, 10))
        return Completion("These films fit what you asked for.", "stop", Usage(10, 5))

    def prompt_logprobs(self, text: str) -> list[tuple[str, float | None]]:
        if not self.scores:
            raise NotImplementedError("this model does not score prompts")
        return [
            (t, None if i == 0 else (0.0 if "similarity" in t else -float(len(t.strip()))))
            for i, t in enumerate(re.findall(r"\s*\S+|\s+$", text))
        ]


WRITER = Brain(scores=False)


@pytest.fixture(scope="module")
def server():  # type: ignore[no-untyped-def]
    with LLMServer({"scorer": Brain(scores=True), "writer": WRITER}) as s:
        yield s


def agent_on(
    server: Any, model: str, split: Any, knn: Any, monkeypatch: Any, **params: Any
) -> InterecAgent:
    monkeypatch.setenv(KEY_ENV, "sk-agent-test-key-0123456789")
    brain = recai.create(
        "llm_backend", "openai.v1", model=model, base_url=server.base_url, api_key_env=KEY_ENV
    )
    agent = InterecAgent(
        DatasetSource.of(split.dataset), brain, ranker=knn, similarity=knn, **params
    )
    agent.fit(split)
    return agent


def test_a_server_that_scores_lets_the_brain_choose_the_plan_over_http(
    server, split, knn, monkeypatch
) -> None:
    agent = agent_on(server, "scorer", split, knn, monkeypatch)
    reply = agent.respond([Message.user("I loved Alien (1979), some sci-fi please")])
    assert reply.plan_valid is True and reply.llm_calls == 2
    ranking = [s["input"]["by"] for s in reply.plan["steps"] if s["tool"] == "ranking"]  # type: ignore[index]
    assert ranking == ["similarity"]
    assert any("the brain chose" in n for n in reply.notes)
    assert reply.items and all(x["title"] in TITLES for x in reply.items)
    assert reply.text.splitlines()[0] == "These films fit what you asked for."


def test_a_server_that_cannot_score_gets_the_plan_schema_as_response_format(
    server, split, knn, monkeypatch
) -> None:
    agent = agent_on(server, "writer", split, knn, monkeypatch)
    before = len(WRITER.schemas)
    reply = agent.respond([Message.user("I loved Alien (1979), some sci-fi please")])
    assert reply.plan_valid is True
    assert reply.llm_calls == 2  # the failed scoring request is not a call the brain answered
    assert any("cannot score" in n for n in reply.notes), reply.notes
    assert len(WRITER.schemas) == before + 1  # the plan schema went as response_format
    steps = [s["tool"] for s in reply.plan["steps"]]  # type: ignore[index]
    assert steps == ["hard_filter", "soft_filter", "ranking", "map"]
    assert all("Sci-Fi" in dict((t, g) for t, _, g in FILMS)[x["title"]] for x in reply.items)
