"""Long-term profiles (issue 18 item 6): the store (memory and SQLite, across restarts), the
agent's remember() feedback, and what a stored profile does to later conversations."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import pytest

from recai.errors import UnknownIdError
from recai.roles import DatasetSource, LLMBackend
from recai.types import Completion, Message
from recai_agent.agent import AgentReply, InterecAgent
from recai_agent.baselines import context_message
from recai_agent.profiles import Profile, ProfileStore, ProfileStoreError


class Plain(LLMBackend):
    """Writes the same short introduction for every reply (plans come from the rules)."""

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        return Completion("Here are some films.")


def agent_for(split, knn, **params: Any) -> InterecAgent:  # type: ignore[no-untyped-def]
    agent = InterecAgent(
        DatasetSource.of(split.dataset),
        Plain(),
        ranker=knn,
        similarity=knn,
        plan_mode="rules",
        **params,
    )
    agent.fit(split)
    return agent


def chat(agent: InterecAgent, user: str | None, text: str) -> AgentReply:
    conv = [] if user is None else [context_message(user, [], agent.catalog)]
    return agent.respond([*conv, Message.user(text)])


def ids(refs: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in refs]


# -- the store -------------------------------------------------------------------------------------
def test_sqlite_store_keeps_the_latest_verdict_across_a_reopen(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "deep" / "profiles.sqlite"
    store = ProfileStore(path)
    store.update("u1", liked=["7", "9"], disliked=["3"])
    store.update("u1", disliked=["9"], source="dialogue")
    store.update("u2", liked=["3"])
    store.close()
    again = ProfileStore(path)
    assert again.get("u1") == Profile(liked=["7"], disliked=["3", "9"])
    assert again.get("u2") == Profile(liked=["3"]) and again.get("u3") == Profile()
    rows = sqlite3.connect(path).execute("SELECT source FROM verdicts WHERE item = '9'").fetchall()
    assert rows == [("dialogue",)]


def test_a_file_that_is_not_a_profile_store_is_refused_with_its_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = tmp_path / "notes.txt"
    text.write_text("not a database, just words " * 100)
    with pytest.raises(ProfileStoreError, match="notes.txt"):
        ProfileStore(text)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE verdicts (x INTEGER)")
    with pytest.raises(ProfileStoreError, match="not recai-agent's"):
        ProfileStore(other)


# -- the agent ---------------------------------------------------------------------------------------
def test_remember_returns_the_profile_and_refuses_an_unknown_item(split, knn) -> None:  # type: ignore[no-untyped-def]
    agent = agent_for(split, knn)
    profile = agent.remember("u1", liked=["2"], disliked=["18"])
    assert profile["liked"] == [{"id": "2", "title": "Aliens (1986)"}]
    assert ids(profile["disliked"]) == ["18"]
    with pytest.raises(UnknownIdError):
        agent.remember("u1", liked=["999"])
    assert agent.remember("u1") == profile  # nothing was stored by the refused call


def test_a_disliked_item_is_never_listed_to_that_user_in_a_later_conversation(split, knn) -> None:  # type: ignore[no-untyped-def]
    agent = agent_for(split, knn)
    first = chat(agent, "u1", "recommend some popular sci-fi films")
    top = first.items[0]["id"]
    agent.remember("u1", disliked=[top])
    later = chat(agent, "u1", "recommend some popular sci-fi films")
    assert top not in ids(later.items) and len(later.items) == len(first.items)
    assert top in ids(later.profile["disliked"])
    other = chat(agent, "u2", "recommend some popular sci-fi films")  # another user: unaffected
    assert other.items[0]["id"] == top


def test_what_the_user_said_is_remembered_in_the_next_conversation(split, knn) -> None:  # type: ignore[no-untyped-def]
    agent = agent_for(split, knn)
    said = chat(agent, "u5", "I loved Heat (1995), anything like it?")
    assert "14" in ids(said.profile["liked"])  # Heat
    fresh = chat(agent, "u5", "something for me")  # a new conversation: no titles in it
    assert "14" in ids(fresh.profile["liked"])
    assert ids(agent.remember("u5")["liked"]) == ["14"]
    stranger = chat(agent, None, "something for me")  # no user named: nothing kept or read
    assert stranger.profile["liked"] == []


def test_the_conversation_overrides_the_stored_profile(split, knn) -> None:  # type: ignore[no-untyped-def]
    agent = agent_for(split, knn)
    agent.remember("u1", disliked=["14"])
    reply = chat(agent, "u1", "I loved Heat (1995), anything like it?")
    assert "14" in ids(reply.profile["liked"]) and "14" not in ids(reply.profile["disliked"])
    assert ids(agent.remember("u1")["liked"]) == ["14"]  # and the new verdict is kept


def test_profiles_survive_a_restart_with_a_store_file(split, knn, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "p.sqlite")
    agent_for(split, knn, profile_store=path).remember("u1", disliked=["1"])
    restarted = agent_for(split, knn, profile_store=path)
    reply = chat(restarted, "u1", "recommend some popular sci-fi films")
    assert "1" in ids(reply.profile["disliked"]) and "1" not in ids(reply.items)


def test_profile_memory_off_keeps_and_reads_nothing(split, knn) -> None:  # type: ignore[no-untyped-def]
    agent = agent_for(split, knn, profile_memory=False)
    chat(agent, "u5", "I loved Heat (1995), anything like it?")
    assert chat(agent, "u5", "something for me").profile["liked"] == []
