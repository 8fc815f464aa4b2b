"""The ranking tool's LLM re-ranking stage (recai_agent.rerank) with scorer doubles, on the film
fixture with a real CatalogDB and a real fitted ItemKNN as the ranker."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pytest
from agentkit import FILMS

from recai.data.grounding import Grounder
from recai.data.sql import CatalogDB
from recai.roles import KnowledgePrompter, LLMBackend
from recai.types import Completion, ItemList, Message
from recai_agent.bus import CandidateBus
from recai_agent.rerank import (
    QUESTION,
    LLMReranker,
    RerankParams,
    blend_positions,
    cut_to_budget,
)
from recai_agent.tools import RankingTool, TurnState, default_tools

TITLES = [t for t, _, _ in FILMS]
LIKED = [TITLES.index("Alien (1979)"), TITLES.index("Aliens (1986)")]


class Scorer(LLMBackend):
    """Scores a title by ``favour`` (default ``default``) after any prompt, and by ``prior``
    after the question alone; records every scoring call."""

    def __init__(
        self,
        favour: dict[str, float] | None = None,
        prior: dict[str, float] | None = None,
        default: float = -50.0,
    ):
        self.favour = favour or {}
        self.prior = prior or {}
        self.default = default
        self.calls: list[tuple[list[Message], list[str]]] = []

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        raise AssertionError("the re-ranker never asks the brain to write")

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        self.calls.append((list(messages), list(continuations)))
        bare = messages[-1].content == QUESTION
        table = self.prior if bare else self.favour
        return [float(table.get(c, 0.0 if bare else self.default)) for c in continuations]


class ChatOnly(LLMBackend):
    """A backend without scoring (an OpenAI chat model without log-probabilities)."""

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        raise AssertionError("not called")


class Refuses(Scorer):
    """Implements score_continuations, but the server says no (NotImplementedError)."""

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        self.calls.append((list(messages), list(continuations)))
        raise NotImplementedError("this server returns no prompt logprobs")


class Broken(Scorer):
    def __init__(self, answer: Any):
        super().__init__()
        self.answer = answer

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        self.calls.append((list(messages), list(continuations)))
        if isinstance(self.answer, Exception):
            raise self.answer
        return list(self.answer(continuations))


class Notes(KnowledgePrompter):
    """Writes one fact per candidate (its genres), under a header; records what it was given."""

    def __init__(self, lines_per_item: int = 1, fail: bool = False):
        self.lines_per_item = lines_per_item
        self.fail = fail
        self.given: list[dict[str, Any]] = []

    def knowledge(
        self,
        *,
        history: ItemList | None = None,
        candidates: ItemList | None = None,
        query: str | None = None,
    ) -> str:
        self.given.append({"history": history, "candidates": candidates, "query": query})
        if self.fail:
            raise RuntimeError("the graph is gone")
        assert candidates is not None
        lines = [
            f"- {TITLES[i]}: genres {', '.join(FILMS[i][2])} (fact {n})"
            for i in candidates.ids.tolist()
            for n in range(self.lines_per_item)
        ]
        return "About these films:\n" + "\n".join(lines)


@pytest.fixture(scope="module")
def db(split):  # type: ignore[no-untyped-def]
    return CatalogDB(split.dataset.catalog)


@pytest.fixture()
def state(split):  # type: ignore[no-untyped-def]
    s = TurnState(split.dataset.catalog, Grounder(split.dataset.catalog))
    s.liked = list(LIKED)
    s.request = "something with robots"
    return s


def ranked(knn, state, reranker=None, arg=None, keep=50):  # type: ignore[no-untyped-def]
    tool = RankingTool(knn, reranker=reranker, keep=keep)
    bus = CandidateBus(len(FILMS))
    res = tool.run(bus, arg or {"by": "preference"}, state)
    assert res.ok, res.error
    return bus.ids.tolist(), res


def ranker_order(knn, state) -> list[int]:  # type: ignore[no-untyped-def]
    return ranked(knn, TurnState(state.catalog, state.grounder, liked=list(state.liked)))[0]


# -- the order -------------------------------------------------------------------------------------
def test_weight_one_replaces_the_head_with_the_brains_order(knn, state) -> None:
    base = ranker_order(knn, state)
    head = base[:6]
    # the brain likes the ranker's 6th item best, then its 4th; the others equally little
    favour = {TITLES[head[5]]: -1.0, TITLES[head[3]]: -2.0}
    brain = Scorer(favour)
    ids, res = ranked(knn, state, LLMReranker(brain, top=6, weight=1.0, norm="sum"))
    assert ids[:6] == [head[5], head[3], head[0], head[1], head[2], head[4]]
    assert ids[6:] == base[6:]  # beyond the top, the ranker's order
    assert len(brain.calls) == 1 and sorted(brain.calls[0][1]) == sorted(TITLES[i] for i in head)
    assert res.note.startswith("rerank: the brain scored the top 6 (sum, weight 1, 1 call, ")
    assert res.note.endswith("; 6 of 6 places changed")


def test_half_weight_blends_positions_the_brains_favourite_rises_but_not_to_the_top(
    knn, state
) -> None:
    base = ranker_order(knn, state)
    head = base[:5]
    brain = Scorer({TITLES[head[4]]: 0.0}, default=-9.0)
    ids, _ = ranked(knn, state, LLMReranker(brain, top=5, weight=0.5, norm="sum"))
    # Borda: ranker places 0..4; the brain puts the last first and keeps the others' order
    assert ids[:5] == [head[0], head[1], head[4], head[2], head[3]]
    assert ids[:5] == [head[j] for j in blend_positions([-9, -9, -9, -9, 0], 0.5)]


def test_weight_zero_keeps_the_rankers_order_but_still_records_the_brains_scores(
    knn, state
) -> None:
    base = ranker_order(knn, state)
    brain = Scorer({TITLES[base[3]]: 0.0})
    ids, _ = ranked(knn, state, LLMReranker(brain, top=5, weight=0.0, norm="sum"))
    assert ids == base
    detail = state.trace[-1].detail["rerank"]
    assert detail["applied"] and detail["moved"] == 0
    assert detail["llm_scores"][str(base[3])] == 0.0


def test_per_char_and_calibrated_norms(knn, state) -> None:
    base = ranker_order(knn, state)
    head = base[:4]
    short, long_ = head[2], head[3]
    # summed, the short title wins; per character or against its prior, the long one does
    raw = {TITLES[short]: -10.0, TITLES[long_]: -12.0}
    s_ids, _ = ranked(knn, state, LLMReranker(Scorer(raw), top=4, weight=1.0, norm="sum"))
    assert s_ids[0] == short
    prior = {TITLES[short]: -4.0, TITLES[long_]: -20.0}
    brain = Scorer(raw, prior=prior, default=-60.0)
    rr = LLMReranker(brain, top=4, weight=1.0)  # calibrated by default
    c_ids, res = ranked(knn, state, rr)
    assert c_ids[0] == long_ and "2 calls" in res.note
    # the priors are kept: the next turn over the same titles costs one call
    ranked(knn, state, rr)
    assert len(brain.calls) == 3 and state.trace[-1].detail["rerank"]["calls"] == 1
    bare = [m.content for m in brain.calls[1][0]]
    assert bare[-1] == QUESTION and not any("Alien" in c for c in bare)


def test_only_preference_rankings_are_re_ranked_and_prefer_still_goes_first(knn, state) -> None:
    brain = Scorer()
    ranked(knn, state, LLMReranker(brain), {"by": "popularity"})
    ranked(knn, state, LLMReranker(brain), {"by": "similarity"})
    assert brain.calls == []
    base = ranker_order(knn, state)
    babe = TITLES.index("Babe (1995)")
    brain = Scorer({TITLES[base[2]]: 0.0})
    ids, _ = ranked(
        knn, state, LLMReranker(brain, weight=1.0), {"by": "preference", "prefer": ["Babe"]}
    )
    assert ids[0] == babe and ids[1] == base[2]


# -- the prompt ------------------------------------------------------------------------------------
def test_the_prompt_has_history_request_shuffled_candidates_and_the_knowledge(knn, state) -> None:
    state.history = [TITLES.index("Blade Runner (1982)")]
    notes = Notes()
    brain = Scorer()
    ids, _ = ranked(knn, state, LLMReranker(brain, notes, top=8))
    head = ids[:8]
    (given,) = notes.given
    assert given["history"].ids.tolist() == state.profile_history().tolist()
    assert sorted(given["candidates"].ids.tolist()) == sorted(head)
    assert given["query"] == "something with robots"
    messages, titles = brain.calls[0]
    system = [m.content for m in messages if m.role == "system"]
    user = messages[-1].content
    assert any(s.startswith("About these films:") for s in system)
    top = head[0]
    assert f"- {TITLES[top]}: genres {', '.join(FILMS[top][2])} (fact 0)" in "\n".join(system)
    assert "1. Blade Runner (1982)\n2. Alien (1979)\n3. Aliens (1986)" in user
    assert 'The user now asks: "something with robots"' in user
    listed = [line[2:] for line in user.split("\n") if line.startswith("- ")]
    assert listed == titles and sorted(listed) == sorted(TITLES[i] for i in head)
    ranker_titles = [TITLES[i] for i in ranker_order(knn, state)[:8]]
    assert listed != ranker_titles  # shown in a seeded random order, not the ranker's
    assert user.endswith(QUESTION)


def test_the_knowledge_block_stays_within_its_token_budget(knn, state) -> None:
    notes = Notes(lines_per_item=5)  # 100 lines for 20 candidates: far over 60 tokens
    brain = Scorer()
    ranked(knn, state, LLMReranker(brain, notes, knowledge_tokens=60))
    (system,) = [m.content for m in brain.calls[0][0][1:-1]]
    assert math.ceil(len(system) / 4) <= 60 and system.startswith("About these films:\n- ")
    detail = state.trace[-1].detail["rerank"]
    assert detail["knowledge_tokens"] <= 60 < detail["knowledge_tokens_before"]
    assert "knowledge" in state.trace[-1].note and "(cut from" in state.trace[-1].note


def test_the_budget_is_counted_by_the_brains_tokenizer_where_it_has_one(knn, state) -> None:
    class Counting(Scorer):
        def count_tokens(self, messages: Sequence[Message]) -> int:  # a word a token, +3 a msg
            return sum(3 + len(m.content.split()) for m in messages)

    brain = Counting()
    ranked(knn, state, LLMReranker(brain, Notes(lines_per_item=3), knowledge_tokens=40))
    (system,) = [m.content for m in brain.calls[0][0][1:-1]]
    assert len(system.split()) <= 40 < len(system) / 4  # the words fit; 4-char tokens would not


def test_no_knowledge_when_its_budget_is_zero_or_the_prompter_fails(knn, state) -> None:
    brain = Scorer()
    ranked(knn, state, LLMReranker(brain, Notes(), knowledge_tokens=0))
    assert [m.role for m in brain.calls[-1][0]] == ["system", "user"]
    ids, res = ranked(knn, state, LLMReranker(brain, Notes(fail=True)))
    assert [m.role for m in brain.calls[-1][0]] == ["system", "user"]
    assert "knowledge prompter failed (RuntimeError: the graph is gone)" in res.note
    assert state.trace[-1].detail["rerank"]["applied"]


def test_cut_to_budget_keeps_whole_lines_and_drops_headers_left_alone() -> None:
    def four(s: str) -> int:
        return math.ceil(len(s) / 4)

    text = "Header A:\n- a1 aaaa\n- a2 aaaa\n\nA very long header for B that cannot fit:\n- b1\n- c"
    cut, before, after = cut_to_budget(text, 8, four)
    assert cut == "Header A:\n- a1 aaaa" and before > 8 and after == four(cut) <= 8
    # B's header does not fit: its lines are not put under A's
    cut, _, _ = cut_to_budget(text, 12, four)
    assert "- b1" not in cut and cut.startswith("Header A:\n- a1 aaaa\n- a2 aaaa")
    assert cut_to_budget("short", 10, four) == ("short", 2, 2)
    assert cut_to_budget("Header:\n- way too long a fact", 3, four)[0] == ""


# -- never breaking a turn -------------------------------------------------------------------------
def test_a_backend_that_cannot_score_keeps_the_rankers_order_with_a_note(knn, state) -> None:
    base = ranker_order(knn, state)
    ids, res = ranked(knn, state, LLMReranker(ChatOnly(), Notes()))
    assert ids == base
    assert "ChatOnly cannot score continuations; the ranker's order kept" in res.note
    assert state.trace[-1].detail["rerank"]["applied"] is False and state.llm_calls == 0


def test_a_server_refusing_to_score_is_asked_once_then_left_alone(knn, state) -> None:
    base = ranker_order(knn, state)
    brain = Refuses()
    rr = LLMReranker(brain)
    ids, res = ranked(knn, state, rr)
    assert ids == base and "this server returns no prompt logprobs" in res.note
    ids, res = ranked(knn, state, rr)
    assert ids == base and "cannot score" in res.note
    assert len(brain.calls) == 1 and state.llm_calls == 1


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (RuntimeError("CUDA out of memory"), "RuntimeError: CUDA out of memory"),
        (lambda c: [0.0] * (len(c) - 1), "scores for"),
        (lambda c: [float("nan")] * len(c), "unusable scores"),
        (lambda c: ["x"] * len(c), "ValueError"),
    ],
)
def test_a_failing_brain_or_unusable_scores_keep_the_rankers_order(knn, state, answer, why) -> None:
    base = ranker_order(knn, state)
    rr = LLMReranker(Broken(answer), norm="sum")
    ids, res = ranked(knn, state, rr)
    assert res.ok and ids == base
    assert res.note.startswith("rerank failed (") and why in res.note
    assert "the ranker's order kept" in state.trace[-1].to_dict()["note"]


def test_minus_infinity_is_a_usable_score(knn, state) -> None:
    base = ranker_order(knn, state)
    first = TITLES[base[0]]
    rr = LLMReranker(
        Broken(lambda c: [-math.inf if t == first else -1.0 for t in c]), weight=1.0, norm="sum"
    )
    ids, _ = ranked(knn, state, rr)
    assert ids[:20] == base[1:20] + [base[0]]


# -- wiring --------------------------------------------------------------------------------------
def test_default_tools_give_the_ranking_tool_the_reranker_and_the_trace_records_it(
    db, knn, split, state
) -> None:
    brain = Scorer({"Terminator, The (1984)": 0.0})
    tools = default_tools(
        db, ranker=knn, grounder=Grounder(split.dataset.catalog), reranker=LLMReranker(brain)
    )
    bus = CandidateBus(len(FILMS))
    tools["ranking"].run(bus, {"by": "preference"}, state)
    step = state.trace[-1].to_dict()
    assert step["detail"]["rerank"]["applied"] and step["detail"]["rerank"]["top"] == 20
    assert state.llm_calls == 2 and state.llm_seconds > 0  # the title priors, then the prompt
    assert bus.evidence(int(bus.ids[0])).kept_by[-1].endswith("re-ranked by the brain, accuracy")
    plain = default_tools(db, ranker=knn)
    assert plain["ranking"].reranker is None  # type: ignore[attr-defined]
    state.trace.clear()
    plain["ranking"].run(CandidateBus(len(FILMS)), {"by": "preference"}, state)
    assert "detail" not in state.trace[-1].to_dict()


def test_params_are_checked_and_overrides_validated() -> None:
    rr = LLMReranker(Scorer(), params=RerankParams(top=10), weight=0.25)
    assert rr.params.top == 10 and rr.params.weight == 0.25
    with pytest.raises(ValueError, match="weight"):
        LLMReranker(Scorer(), weight=1.5)
    with pytest.raises(ValueError, match="top"):
        RerankParams(top=1)


def test_the_shown_order_is_a_seeded_permutation_of_the_set() -> None:
    rr = LLMReranker(Scorer())
    a = rr.shown_order([5, 3, 9, 1, 7])
    assert sorted(a) == [1, 3, 5, 7, 9]
    assert rr.shown_order([9, 7, 5, 3, 1]) == a  # the same set, the same order
    others = {tuple(LLMReranker(Scorer(), seed=s).shown_order([5, 3, 9, 1, 7])) for s in range(5)}
    assert len(others) > 1  # the seed changes it


# -- the agent -------------------------------------------------------------------------------------
class Brain(Scorer):
    """Writes a fixed plan (rank by preference, then list) and a short reply; scores titles."""

    capabilities = frozenset({"json_schema"})

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        if options.get("json_schema") is not None:
            steps = [
                {"tool": "ranking", "input": {"by": "preference"}},
                {"tool": "map", "input": {}},
            ]
            return Completion(json.dumps({"steps": steps}))
        return Completion("Here you go.")


def test_the_agent_re_ranks_with_its_brain_and_knowledge_when_rerank_is_set(split, knn) -> None:
    from recai.roles import DatasetSource
    from recai_agent.agent import InterecAgent, InterecAgentParams
    from recai_agent.baselines import context_message

    if "rerank" not in InterecAgentParams.model_fields:
        pytest.skip("interecagent.v1 has no rerank param yet (agent.py wiring pending)")
    favourite = "Babe (1995)"
    brain = Brain({favourite: 0.0})
    notes = Notes()
    agent = InterecAgent(
        DatasetSource.of(split.dataset),
        brain,
        ranker=knn,
        knowledge=notes,
        plan_decoding="generate",
        plan_mode="plan-first",
        rerank={"top": 20, "weight": 1.0, "knowledge_tokens": 200},
    )
    agent.fit(split)
    conversation = [
        context_message("u1", list(LIKED), agent.catalog),
        Message.user("what should I watch next?"),
    ]
    reply = agent.respond(conversation)
    ranking = next(s for s in reply.trace if s.tool == "ranking")
    assert ranking.detail is not None and ranking.detail["rerank"]["applied"], ranking.note
    assert reply.items[0]["title"] == favourite  # the brain's favourite leads at weight 1
    scored = [c for c in brain.calls if c[0][-1].content != QUESTION]
    assert scored and 'The user now asks: "what should I watch next?"' in scored[0][0][-1].content
    assert any(g["candidates"] is not None and len(g["candidates"]) == 20 for g in notes.given)
    assert reply.llm_calls >= 1 + len(brain.calls)  # the plan call and the scoring calls
    # without the table the ranker's order stands and the brain scores nothing
    plain = InterecAgent(
        DatasetSource.of(split.dataset),
        Brain({favourite: 0.0}),
        ranker=knn,
        knowledge=notes,
        plan_decoding="generate",
    )
    plain.fit(split)
    other = plain.respond(conversation)
    assert other.items[0]["title"] != favourite
    assert plain.params.llm.calls == []  # type: ignore[attr-defined]
