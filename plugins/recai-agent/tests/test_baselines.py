"""The baseline agents: ranker-agent.v1, llm-agent.v1 and chatrec.v1, on the tiny dataset with
real recai-classic models."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import recai
from recai.data import Dataset, Split
from recai.testing import AgentContract
from recai.types import Completion, Message
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


# -- the baselines that ask an LLM ------------------------------------------------------------------
class Brain(recai.LLMBackend):
    """A scripted LLM: answers ``answer(messages)``; scores continuations by ``prefer`` (a title
    fragment -> log-probability). Keeps what it was asked, privately."""

    def __init__(self, answer: Any, prefer: dict[str, float] | None = None):
        self._answer = answer
        self._prefer = prefer or {}
        self._asked: list[list[Message]] = []

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        self._asked.append(list(messages))
        return Completion(self._answer(list(messages)))

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        self._asked.append(list(messages))
        return [
            max((v for k, v in self._prefer.items() if k in c), default=-100.0)
            for c in continuations
        ]


def test_llm_agent_grounds_listed_titles_and_drops_the_rest(tiny_dataset: Dataset) -> None:
    catalog = tiny_dataset.catalog
    user = 3
    history = tiny_dataset.interactions.history(user)[:-1].tolist()
    unseen = [i for i in range(tiny_dataset.n_items) if i not in history]
    seen_title = catalog.title(history[-1])
    a, b, c = (catalog.title(i) for i in unseen[:3])
    answer = (
        "Sure! Here are my picks:\n"
        f"1. **{a.lower()}** - a great one\n"  # case and a comment
        "2. The Imaginary Film That Does Not Exist\n"  # grounds to nothing
        f"3. {seen_title}\n"  # in the history: dropped
        f"4. {a}\n"  # a duplicate: dropped
        f"- {b[:-1]}\n"  # a typo
        f"6. {c}"
    )
    brain = Brain(lambda messages: answer)
    agent = recai.create(
        "agent", "llm-agent.v1", dataset=recai.DatasetSource.of(tiny_dataset), llm=brain, k=5
    )
    reply = agent.respond(_conversation(tiny_dataset, user, "Something new please"))
    assert [it["index"] for it in reply.items] == unseen[:3]
    assert _titles(reply.text) == [a, b, c]
    assert reply.llm_calls == 1
    # the LLM saw the instructions with the history, then the dialogue without the context
    asked = brain._asked[0]
    assert asked[0].role == "system" and "Recommend 5 items" in asked[0].content
    assert seen_title in asked[0].content
    assert all(m.name != CONTEXT_NAME for m in asked)
    assert [m.role for m in asked[1:]] == ["assistant", "user"]


def test_llm_agent_asks_back_when_nothing_grounds(tiny_dataset: Dataset) -> None:
    brain = Brain(lambda messages: "1. Nothing Real At All\n2. Zzzz Qqqq")
    agent = recai.create(
        "agent", "llm-agent.v1", dataset=recai.DatasetSource.of(tiny_dataset), llm=brain
    )
    reply = agent.respond([Message.user("hi")])
    assert reply.items == [] and listed_lines(reply.text) == []
    assert "Tell me more" in reply.text


def _chatrec(
    tiny_dataset: Dataset, tiny_split: Split, brain: Brain, **params: Any
) -> tuple[Any, Any]:
    retriever = recai.create("retriever", "itemknn.v1", neighbors=20)
    agent = recai.create(
        "agent",
        "chatrec.v1",
        dataset=recai.DatasetSource.of(tiny_dataset),
        llm=brain,
        retriever=retriever,
        n_candidates=8,
        **params,
    )
    agent.fit(tiny_split)  # fits the retriever too
    return agent, retriever


def test_chatrec_picks_among_the_retrievers_candidates_then_fills(
    tiny_dataset: Dataset, tiny_split: Split
) -> None:
    user = 3
    history = tiny_dataset.interactions.history(user)[:-1].tolist()
    catalog = tiny_dataset.catalog
    outside: list[str] = []

    def answer(messages: list[Message]) -> str:
        listed = re.findall(r"^\d+\. (.+)$", messages[0].content, re.MULTILINE)
        cands = [t for t in listed if t not in {catalog.title(i) for i in history}]
        not_listed = [t for t in catalog.titles if t not in listed]
        outside.append(not_listed[0])
        # candidate 4 by number, the 6th by title with a typo, an item outside the candidates
        return f"1. 4\n2. {cands[5][:-1]}\n3. {not_listed[0]}"

    brain = Brain(answer)
    agent, retriever = _chatrec(tiny_dataset, tiny_split, brain)
    reply = agent.respond(_conversation(tiny_dataset, user, "I liked the last ones"))
    query_items = recai.ItemList(history[-20:])
    said = "I liked the last ones"
    expected = retriever.retrieve(recai.Query(text=said, items=query_items), 8 + len(set(history)))
    cands = [i for i in expected.ids.tolist() if i not in history][:8]
    picks = [it["index"] for it in reply.items]
    assert picks[:2] == [cands[3], cands[5]]
    assert picks == [cands[3], cands[5], *[c for c in cands if c not in (cands[3], cands[5])][:3]]
    assert all(catalog.title(p) != outside[0] for p in picks)
    assert reply.llm_calls == 1
    prompt = brain._asked[0][0].content
    assert "Candidates the user is likely to like" in prompt


def test_chatrec_score_mode_orders_candidates_by_log_probability(
    tiny_dataset: Dataset, tiny_split: Split
) -> None:
    catalog = tiny_dataset.catalog
    user = 5
    history = tiny_dataset.interactions.history(user)[:-1].tolist()
    probe, _ = _chatrec(tiny_dataset, tiny_split, Brain(lambda m: ""))
    cands = probe.candidates([Message.user("hi")], history, [])
    liked = {catalog.title(cands[6]): -1.0, catalog.title(cands[2]): -2.0}
    brain = Brain(lambda m: pytest.fail("score mode does not generate"), prefer=liked)
    agent, _ = _chatrec(tiny_dataset, tiny_split, brain, mode="score", fill=False)
    reply = agent.respond(
        [context_message("5", history, catalog), Message.assistant("Hi"), Message.user("hi")]
    )
    assert [it["index"] for it in reply.items][:2] == [cands[6], cands[2]]
    assert len(reply.items) == 5 and reply.llm_calls == 1


def test_baselines_refuse_bad_params_naming_the_key(tiny_dataset: Dataset) -> None:
    data = recai.DatasetSource.of(tiny_dataset)
    brain = Brain(lambda m: "")
    with pytest.raises(recai.ParamsError, match="k"):
        recai.create("agent", "llm-agent.v1", dataset=data, llm=brain, k=0)
    with pytest.raises(recai.ParamsError, match="mode"):
        recai.create(
            "agent",
            "chatrec.v1",
            dataset=data,
            llm=brain,
            retriever=recai.create("retriever", "random.v1"),
            mode="vote",
        )
    with pytest.raises(recai.ParamsError, match="ranker"):
        recai.create("agent", "ranker-agent.v1", dataset=data, ranker=brain)


def test_chatrec_falls_back_when_the_retriever_refuses_the_query(
    tiny_dataset: Dataset, tiny_split: Split
) -> None:
    user = 3
    history = tiny_dataset.interactions.history(user)[:-1].tolist()
    # itemknn.v1 refuses text alone: asked with the dialogue only, it is asked with the history
    agent, retriever = _chatrec(tiny_dataset, tiny_split, Brain(lambda m: ""), query="dialogue")
    said = [Message.user("something tense")]
    by_history = retriever.retrieve(recai.Query(items=recai.ItemList(history)), 40).ids.tolist()
    expected = [i for i in by_history if i not in history][:8]
    assert agent.candidates(said, history, []) == expected
    # a new user (no history): the most popular training items are the candidates
    counts = np.bincount(tiny_split.train.items, minlength=tiny_dataset.n_items)
    popular = [int(i) for i in np.argsort(-counts, kind="stable")[:8]]
    assert agent.candidates(said, [], []) == popular
    reply = agent.respond([Message.user("something tense")])
    assert len(reply.items) == 5 and {it["index"] for it in reply.items} <= set(popular)


def test_chatrec_reports_a_retriever_that_answers_nothing(
    tiny_dataset: Dataset, tiny_split: Split
) -> None:
    class Broken(recai.Retriever):
        def retrieve(self, query: Any, k: int = 10, *, candidates: Any = None) -> Any:
            raise recai.RecaiError("index not built")

    agent = recai.create(
        "agent",
        "chatrec.v1",
        dataset=recai.DatasetSource.of(tiny_dataset),
        llm=Brain(lambda m: ""),
        retriever=Broken(),
    )
    with pytest.raises(
        recai.RecaiError, match=r"chatrec.v1: the retriever answers no query.*index not built"
    ):
        agent.respond(_conversation(tiny_dataset, 3, "hi"))


# -- candidates and k given in the context (one-turn ranking protocols) -----------------------------
def _given(dataset: Dataset, user: int, candidates: list[int], text: str, k: int | None = None):  # type: ignore[no-untyped-def]
    history = dataset.interactions.history(user)[:-1]
    return [
        context_message(str(user), history, dataset.catalog, candidates=candidates, k=k),
        Message.user(text),
    ]


def _unseen(dataset: Dataset, user: int, n: int) -> list[int]:
    history = set(dataset.interactions.history(user).tolist())
    return [i for i in range(dataset.n_items) if i not in history][:n][::-1]


def test_ranker_agent_orders_exactly_the_given_candidates_by_its_scores(
    tiny_dataset: Dataset, tiny_split: Split, fitted_itemknn: Any
) -> None:
    agent = recai.create(
        "agent",
        "ranker-agent.v1",
        dataset=recai.DatasetSource.of(tiny_dataset),
        ranker=fitted_itemknn,
    )
    agent.fit(tiny_split)
    cands = _unseen(tiny_dataset, 3, 12)
    reply = agent.respond(_given(tiny_dataset, 3, cands, "order these"))
    listed = [it["index"] for it in reply.items]
    assert sorted(listed) == sorted(cands)
    history = tiny_dataset.interactions.history(3)[:-1]
    scores = fitted_itemknn.score([history], np.asarray(cands))[0]
    assert listed == [cands[j] for j in np.lexsort((np.arange(len(cands)), -scores))]
    assert len(agent.respond(_given(tiny_dataset, 3, cands, "top 4", k=4)).items) == 4


def test_llm_agent_and_chatrec_order_the_given_candidates_and_list_all(
    tiny_dataset: Dataset, tiny_split: Split
) -> None:
    catalog = tiny_dataset.catalog
    cands = _unseen(tiny_dataset, 3, 10)
    third, outside = catalog.title(cands[2]), catalog.title(_unseen(tiny_dataset, 3, 30)[0])
    brain = Brain(lambda m: f"1. {third}\n2. {outside}")
    llm_agent = recai.create(
        "agent", "llm-agent.v1", dataset=recai.DatasetSource.of(tiny_dataset), llm=brain
    )
    reply = llm_agent.respond(_given(tiny_dataset, 3, cands, "which first?"))
    listed = [it["index"] for it in reply.items]
    assert listed[0] == cands[2] and sorted(listed) == sorted(cands)
    assert catalog.title(cands[0]) in brain._asked[-1][0].content  # shown the candidates
    chatrec, _ = _chatrec(tiny_dataset, tiny_split, Brain(lambda m: "1. 3"))
    reply = chatrec.respond(_given(tiny_dataset, 3, cands, "which first?"))
    listed = [it["index"] for it in reply.items]
    assert listed[0] == cands[2] and sorted(listed) == sorted(cands)


def test_llm_agent_asks_for_and_lists_the_k_the_context_gives(tiny_dataset: Dataset) -> None:
    catalog = tiny_dataset.catalog
    user = 3
    history = tiny_dataset.interactions.history(user)[:-1]
    unseen = [i for i in range(tiny_dataset.n_items) if i not in history.tolist()]
    listing = "\n".join(f"{n}. {catalog.title(i)}" for n, i in enumerate(unseen[:6], 1))
    brain = Brain(lambda messages: listing)
    agent = recai.create(
        "agent", "llm-agent.v1", dataset=recai.DatasetSource.of(tiny_dataset), llm=brain, k=5
    )
    asked = [context_message(str(user), history, catalog, k=2), Message.user("Two please")]
    reply = agent.respond(asked)
    assert [it["index"] for it in reply.items] == unseen[:2]
    assert "Recommend 2 items" in brain._asked[0][0].content
    agent.respond(_conversation(tiny_dataset, user, "Something new please"))  # no k: params.k
    assert "Recommend 5 items" in brain._asked[1][0].content
