"""The kernel's agent turn: ``Agent.respond`` (what servers, pages and recai-eval read) and
``Agent.remember`` (the feedback a server's like and dislike buttons send)."""

from __future__ import annotations

import json

import pytest

import recai
from recai.types import Message


class Echo(recai.Agent):
    def reply(self, conversation):
        return Message.assistant("you said " + conversation[-1].content)


class Step:
    def to_dict(self):
        return {"tool": "look-up", "seconds": 0.1}


def test_default_respond_is_the_reply_in_one_piece_without_items() -> None:
    pieces: list[str] = []
    turn = Echo().respond([Message.user("hi")], on_text=pieces.append)
    assert isinstance(turn, recai.AgentTurn)
    assert turn.text == "you said hi" and pieces == ["you said hi"]
    assert turn.items == [] and turn.plan is None and turn.llm_calls == 0
    assert turn.seconds >= 0


def test_default_remember_says_the_agent_keeps_no_profile() -> None:
    with pytest.raises(NotImplementedError, match="Echo keeps no user profile"):
        Echo().remember("u1", liked=["7"])


def test_turn_to_dict_is_json_with_trace_steps_as_dicts() -> None:
    turn = recai.AgentTurn(
        "Heat (1995).",
        [{"id": "7", "title": "Heat (1995)"}],
        trace=[Step(), {"tool": "map"}],
        llm_calls=2,
        seconds=0.123456,
        profile={"liked": [{"id": "7", "title": "Heat (1995)"}]},
    )
    out = json.loads(json.dumps(turn.to_dict()))
    assert out["trace"] == [{"tool": "look-up", "seconds": 0.1}, {"tool": "map"}]
    assert out["seconds"] == 0.1235 and out["llm_calls"] == 2
    assert out["profile"]["liked"][0]["id"] == "7"
