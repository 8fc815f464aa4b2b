"""The baseline agents: ranker-agent.v1, llm-agent.v1 and chatrec.v1, on the tiny dataset with
real recai-classic models."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

import recai
from recai.data import Dataset, Split
from recai.testing import AgentContract
from recai.types import Message
from recai_agent.baselines import (
    CONTEXT_NAME,
    context_message,
    listed_lines,
    user_context,
)


def _conversation(dataset: Dataset, user: int, *turns: str) -> list[Message]:
    history = dataset.interactions.history(user)[:-1]
    out = [context_message(str(user), history, dataset.catalog), Message.assistant("Hello!")]
    for n, text in enumerate(turns):
        out.append(Message.user(text) if n % 2 == 0 else Message.assistant(text))
    return out


def _titles(text: str) -> list[str]:
    return listed_lines(text)


@pytest.fixture(scope="module")
def fitted_itemknn(tiny_split: Split) -> Any:
    model = recai.create("ranker", "itemknn.v1", neighbors=20)
    model.fit(tiny_split)
    return model


class TestRankerAgentContract(AgentContract):
    name = "ranker-agent.v1"
    distribution = "recai-agent"

    @pytest.fixture
    def component(self, entry: Any, dataset_source: Any, split: Split) -> Any:
        ranker = recai.create("ranker", "popularity.v1")
        agent = entry.build({"dataset": dataset_source, "ranker": ranker})
        agent.fit(split)
        return agent


def test_ranker_agent_lists_the_rankers_top_k_for_the_context_history(
    tiny_dataset: Dataset, tiny_split: Split, fitted_itemknn: Any
) -> None:
    agent = recai.create(
        "agent",
        "ranker-agent.v1",
        dataset=recai.DatasetSource.of(tiny_dataset),
        ranker=fitted_itemknn,
    )
    agent.fit(tiny_split)
    user = 3
    history = tiny_dataset.interactions.history(user)[:-1]
    reply = agent.respond(_conversation(tiny_dataset, user, "Anything good?"))
    expected = fitted_itemknn.rank(history, k=5).ids.tolist()
    assert [it["index"] for it in reply.items] == expected
    assert _titles(reply.text) == [tiny_dataset.catalog.title(i) for i in expected]
    assert reply.llm_calls == 0 and reply.seconds >= 0
    assert not set(expected) & set(history.tolist())


def test_ranker_agent_shows_the_next_items_after_a_declined_list(
    tiny_dataset: Dataset, tiny_split: Split, fitted_itemknn: Any
) -> None:
    agent = recai.create(
        "agent",
        "ranker-agent.v1",
        dataset=recai.DatasetSource.of(tiny_dataset),
        ranker=fitted_itemknn,
    )
    agent.fit(tiny_split)
    history = tiny_dataset.interactions.history(3)[:-1]
    first = agent.respond(_conversation(tiny_dataset, 3, "Anything?"))
    second = agent.respond(_conversation(tiny_dataset, 3, "Anything?", first.text, "No."))
    ranked = fitted_itemknn.rank(history, k=10).ids.tolist()
    assert [it["index"] for it in first.items] == ranked[:5]
    assert [it["index"] for it in second.items] == ranked[5:10]
    # without exclude_shown the declined list comes again
    same = recai.create(
        "agent",
        "ranker-agent.v1",
        dataset=recai.DatasetSource.of(tiny_dataset),
        ranker=fitted_itemknn,
        exclude_shown=False,
    )
    again = same.respond(_conversation(tiny_dataset, 3, "Anything?", first.text, "No."))
    assert [it["index"] for it in again.items] == ranked[:5]


def test_ranker_agent_without_history_lists_the_most_popular_training_items(
    tiny_dataset: Dataset, tiny_split: Split, fitted_itemknn: Any
) -> None:
    agent = recai.create(
        "agent",
        "ranker-agent.v1",
        dataset=recai.DatasetSource.of(tiny_dataset),
        ranker=fitted_itemknn,
    )
    agent.fit(tiny_split)
    reply = agent.respond([Message.user("Recommend something")])
    counts = np.bincount(tiny_split.train.items, minlength=tiny_dataset.n_items)
    top = [it["index"] for it in reply.items]
    assert len(top) == 5
    assert sorted(counts[top].tolist(), reverse=True) == counts[top].tolist()
    assert counts[top].min() >= np.sort(counts)[-5]


def test_context_message_round_trips_and_bad_ones_name_the_problem(tiny_dataset: Dataset) -> None:
    catalog = tiny_dataset.catalog
    message = context_message("u7", [4, 2, 9], catalog)
    assert message.role == "system" and message.name == CONTEXT_NAME
    read = user_context([message, Message.user("hi")], catalog)
    assert read is not None and read.user == "u7" and read.history == [4, 2, 9]
    assert user_context([Message.user("hi")], catalog) is None

    body = json.loads(message.content)
    body["history"][1]["id"] = "no-such-item"
    bad = Message("system", json.dumps(body), name=CONTEXT_NAME)
    with pytest.raises(recai.RecaiError, match=r"'no-such-item' \(history\[1\]\)"):
        user_context([bad], catalog)
    with pytest.raises(recai.RecaiError, match="not JSON"):
        user_context([Message("system", "{oops", name=CONTEXT_NAME)], catalog)
    with pytest.raises(recai.RecaiError, match="no list 'history'"):
        user_context([Message("system", '{"user": 1}', name=CONTEXT_NAME)], catalog)
