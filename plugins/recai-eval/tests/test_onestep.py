"""agent-retrieval.v1 and agent-ranking.v1 (InteRecAgent's one-turn protocols): metrics by hand
on a small film catalog, the request never naming its target, ranking over all 20 candidates of
a synthetic dataset, the cache, failures, and bad params."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import recai
from recai.data import Catalog, Dataset, Interactions, synthetic_dataset
from recai.data.context import CONTEXT_NAME, user_context
from recai.errors import ParamsError, RecipeError
from recai.recipe import check, recipe_from_dict
from recai.runtime import RunContext, run
from recai.types import Completion, Message
from recai_eval.llm.onestep import (
    AgentRankingEvaluator,
    AgentRetrievalEvaluator,
    reply_items,
)
from recai_eval.llm.scoring import core_title, mentions_title

TITLES = [
    "Heat (1995)",  # 0
    "Casino (1995)",  # 1
    "Fargo (1996)",  # 2
    "Toy Story (1995)",  # 3
    "Alien (1979)",  # 4
    "Aliens (1986)",  # 5
    "Blade Runner (1982)",  # 6
    "Annie Hall (1977)",  # 7
    "Manhattan (1979)",  # 8
    "Goodfellas (1990)",  # 9
    "Babe (1995)",  # 10
    "Clueless (1995)",  # 11
]
GENRES = [
    ("Action", "Crime", "Thriller"),
    ("Crime", "Drama"),
    ("Crime", "Drama", "Thriller"),
    ("Animation", "Comedy"),
    ("Horror", "Sci-Fi"),
    ("Action", "Sci-Fi"),
    ("Sci-Fi", "Thriller"),
    ("Comedy", "Romance"),
    ("Comedy", "Drama", "Romance"),
    ("Crime", "Drama"),
    ("Children's", "Comedy"),
    ("Comedy", "Romance"),
]
YEARS = [1995, 1995, 1996, 1995, 1979, 1986, 1982, 1977, 1979, 1990, 1995, 1995]
EVENTS = {  # user -> items in time order; the last one is the hidden target
    0: [1, 9, 2, 0],
    1: [4, 6, 3, 5],
    2: [7, 3, 2, 8],
    3: [0, 1, 6, 9],
    4: [4, 5, 7, 6],
    5: [3, 8, 9, 2],
}
TARGETS = {f"u{u}": items[-1] for u, items in EVENTS.items()}


def make_films() -> Dataset:
    users = [u for u, items in EVENTS.items() for _ in items]
    items = [i for seq in EVENTS.values() for i in seq]
    stamps = [1000 * u + t for u, seq in EVENTS.items() for t in range(len(seq))]
    catalog = Catalog(
        ids=[f"m{i}" for i in range(len(TITLES))],
        titles=TITLES,
        fields={"genres": np.array(GENRES, dtype=object), "year": np.array(YEARS, float)},
    )
    inter = Interactions(users, items, n_users=6, n_items=len(TITLES), timestamps=stamps)
    return Dataset("films", catalog, inter, user_ids=np.array([f"u{u}" for u in EVENTS]))


@pytest.fixture(scope="module")
def films() -> Dataset:
    return make_films()


def ctx_for(tmp_path: Path, name: str = "run") -> RunContext:
    return RunContext(tmp_path / name, seed=7, progress=False)


@dataclass
class Reply:
    """What recai-agent's agents return from ``respond``."""

    text: str
    items: list[dict[str, Any]] = field(default_factory=list)
    llm_calls: int = 2
    plan_valid: bool = True


class Placer(recai.Agent):
    """Puts the hidden target (it reads the user from the context message) at ``place[user]``
    (0-based; ``None``: leaves it out) of its list: the candidates of a ranking request in the
    order given, else other catalog items. Answers through ``respond`` (items) or, with
    ``items=False``, through ``reply`` only (a numbered list of titles to parse). Keeps every
    conversation it saw, privately."""

    def __init__(self, catalog: Catalog, place: dict[str, int | None], *, items: bool = True):
        self._catalog = catalog
        self._place = place
        self._seen: list[list[Message]] = []
        if items:
            self.respond = self._respond

    def _order(self, conversation: Sequence[Message]) -> list[int]:
        self._seen.append(list(conversation))
        context = user_context(conversation, self._catalog)
        assert context is not None and context.k is not None
        user = json.loads(conversation[0].content)["user"]
        target = TARGETS.get(user, -1)
        pool = context.candidates
        if pool is None:  # retrieval: items the user has not seen, catalog order
            pool = [i for i in range(self._catalog.n_items) if i not in context.history]
        rest = [i for i in pool if i != target]
        place = self._place.get(user)
        if place is not None:
            rest.insert(place, target)
        return rest[: context.k]

    def reply(self, conversation: Sequence[Message]) -> Message:
        order = self._order(conversation)
        lines = "\n".join(f"{n}. {self._catalog.title(i)}" for n, i in enumerate(order, 1))
        return Message.assistant(f"Here you go:\n{lines}\nEnjoy!")

    def _respond(self, conversation: Sequence[Message]) -> Reply:
        order = self._order(conversation)
        found = [{"index": i, "title": self._catalog.title(i)} for i in order]
        return Reply("Here you go.", found)


PLACES: dict[str, int | None] = {"u0": 0, "u1": 1, "u2": 3, "u3": None, "u4": 0, "u5": 2}


def ranking(films: Dataset, agent: recai.Agent, **params: Any) -> AgentRankingEvaluator:
    return AgentRankingEvaluator(
        recai.DatasetSource.of(films),
        agent,
        **{"n_candidates": 4, "k": [1, 3], "samples": 6, "bootstrap": 0, "concurrency": 1} | params,
    )


# -- ranking, by hand ------------------------------------------------------------------------------
@pytest.mark.parametrize("items", [True, False], ids=["reply-items", "reply-text"])
def test_ranking_metrics_by_hand(films: Dataset, tmp_path: Path, items: bool) -> None:
    agent = Placer(films.catalog, PLACES, items=items)
    report = ranking(films, agent).evaluate(ctx_for(tmp_path))
    row = report.metrics["Placer"]
    # target places 0, 1, 3, missing, 0, 2 among 4 candidates
    ndcg = (1 + 1 / math.log2(3) + 1 / math.log2(5) + 0 + 1 + 1 / math.log2(4)) / 6
    assert row["NDCG@4"] == pytest.approx(ndcg)
    assert row["Hit@1"] == pytest.approx(2 / 6)
    assert row["Hit@3"] == pytest.approx(4 / 6)
    assert row["coverage"] == pytest.approx((5 + 3 / 4) / 6)  # u3's reply left the target out
    assert row["out_of_candidates_rate"] == 0.0 and row["nonexistent_rate"] == 0.0
    assert row["failure_rate"] == 0.0 and not report.notes
    assert report.info["read_from"] == (
        {"items": 6, "text": 0} if items else {"items": 0, "text": 6}
    )
    if items:
        assert row["llm_calls_per_request"] == 2.0 and row["plan_valid_rate"] == 1.0
    else:
        assert "llm_calls_per_request" not in row
    assert 0 < row["seconds_per_request"] < 5


def test_the_context_message_carries_the_candidates_and_k(films: Dataset, tmp_path: Path) -> None:
    agent = Placer(films.catalog, PLACES)
    ranking(films, agent).evaluate(ctx_for(tmp_path))
    assert len(agent._seen) == 6
    for conversation in agent._seen:
        assert [m.role for m in conversation] == ["system", "user"]
        assert conversation[0].name == CONTEXT_NAME
        body = json.loads(conversation[0].content)
        user = int(body["user"][1:])
        history = EVENTS[user][:-1]
        assert [e["id"] for e in body["history"]] == [f"m{i}" for i in history]
        assert body["k"] == 4
        shown = [int(e["id"][1:]) for e in body["candidates"]]
        assert len(set(shown)) == 4 and EVENTS[user][-1] in shown
        assert not set(shown) & set(history)  # negatives are never the user's items
        assert [e["title"] for e in body["candidates"]] == [TITLES[i] for i in shown]
        assert "Rank all" not in conversation[1].content  # list_candidates is off


def test_list_candidates_puts_them_in_the_request_too(films: Dataset, tmp_path: Path) -> None:
    agent = Placer(films.catalog, PLACES)
    ranking(films, agent, list_candidates=True).evaluate(ctx_for(tmp_path))
    for conversation in agent._seen:
        body = json.loads(conversation[0].content)
        text = conversation[1].content
        assert "Rank all 4 of these candidates, best first:" in text
        assert all(f"- {e['title']}" in text for e in body["candidates"])


def test_without_share_history_the_context_names_no_user(films: Dataset, tmp_path: Path) -> None:
    class Blind(recai.Agent):
        def __init__(self) -> None:
            self._seen: list[list[Message]] = []

        def reply(self, conversation: Sequence[Message]) -> Message:
            self._seen.append(list(conversation))
            return Message.assistant("1. Babe (1995)")

    agent = Blind()
    report = ranking(films, agent, share_history=False).evaluate(ctx_for(tmp_path))
    bodies = [json.loads(c[0].content) for c in agent._seen]
    assert all(
        b["user"] is None and b["history"] == [] and len(b["candidates"]) == 4 for b in bodies
    )
    row = report.metrics["Blind"]
    # Babe is no user's item, so it is a candidate exactly where it was drawn as a negative
    drawn = sum("m10" in {e["id"] for e in b["candidates"]} for b in bodies)
    assert row["out_of_candidates_rate"] == pytest.approx((6 - drawn) / 6)
    assert row["NDCG@4"] == 0.0 and row["coverage"] == pytest.approx(drawn / 6 / 4)
    assert any("does not seem to read the 'candidates'" in n for n in report.notes)


# -- retrieval, by hand ----------------------------------------------------------------------------
def test_retrieval_recall_by_hand_and_the_k_the_agent_is_asked_for(
    films: Dataset, tmp_path: Path
) -> None:
    agent = Placer(films.catalog, {"u0": 0, "u1": 4, "u2": 5, "u3": None, "u4": 2, "u5": 1})
    ev = AgentRetrievalEvaluator(
        recai.DatasetSource.of(films), agent, k=[1, 5], samples=6, bootstrap=200, n_recommend=6
    )
    report = ev.evaluate(ctx_for(tmp_path))
    row = report.metrics["Placer"]
    assert row["Recall@1"] == pytest.approx(1 / 6)
    assert row["Recall@5"] == pytest.approx(4 / 6)  # places 0, 4, 2, 1; u2's 5 is beyond
    assert row["in_history_rate"] == 0.0 and "out_of_candidates_rate" not in row
    assert all(json.loads(c[0].content)["k"] == 6 for c in agent._seen)
    assert all("candidates" not in json.loads(c[0].content) for c in agent._seen)
    low, high = report.intervals["Placer"]["Recall@5"]
    assert low <= row["Recall@5"] <= high and low < high
    assert report.info["task"] == "agent-retrieval" and report.info["asked_for"] == 6


def test_text_replies_are_grounded_and_their_errors_counted(films: Dataset, tmp_path: Path) -> None:
    class Writer(recai.Agent):
        def reply(self, conversation: Sequence[Message]) -> Message:
            user = json.loads(conversation[0].content)["user"]
            target = TITLES[TARGETS[user]]
            if user == "u5":
                return Message.assistant("Sorry, I have no idea.")
            if user == "u4":  # a one-line answer: read as a list
                return Message.assistant(f"{target}; Babe (1995)")
            return Message.assistant(
                f"Try:\n1. The Great Unknown Film (2031)\n2. {target}\n3. Heat (1995)"
            )

    ev = AgentRetrievalEvaluator(recai.DatasetSource.of(films), Writer(), samples=6, bootstrap=0)
    report = ev.evaluate(ctx_for(tmp_path))
    row = report.metrics["Writer"]
    assert row["Recall@5"] == pytest.approx(5 / 6)  # every reply but u5's names the target
    assert row["failure_rate"] == pytest.approx(1 / 6)  # u5's reply lists nothing
    assert row["nonexistent_rate"] == pytest.approx(4 / 6)  # the invented film, u0..u3
    # Heat is listed after u0's target (Heat: a duplicate) and is in u3's history
    assert row["duplicate_rate"] == pytest.approx(1 / 6)
    assert row["in_history_rate"] == pytest.approx(1 / 6)
    records = _records(tmp_path / "run", "AgentRetrievalEvaluator")
    u1 = next(r for r in records if r["user"] == "u1")
    assert u1["read_from"] == "text" and u1["items"] == [None, 5, 0] and u1["rank"] == 1
    assert any("no items in the reply" in f["error"] for f in report.info["failed_samples"])


# -- the request ---------------------------------------------------------------------------------
def test_scripted_requests_describe_the_target_and_never_name_it(
    films: Dataset, tmp_path: Path
) -> None:
    agent = Placer(films.catalog, {})
    ranking(films, agent, script=["genres", "decade", "similar"]).evaluate(ctx_for(tmp_path))
    for conversation in agent._seen:
        user = json.loads(conversation[0].content)["user"]
        target = TARGETS[user]
        request = conversation[1].content
        assert not mentions_title(request, core_title(TITLES[target]))
        assert " and ".join(GENRES[target][-2:]) in request
        assert f"{YEARS[target] // 10 * 10}s" in request
    first = next(c[1].content for c in agent._seen if '"u0"' in c[0].content)
    # u0 wants Heat: the most similar history film shares Crime and Thriller (Fargo)
    assert "Action, Crime and Thriller" in first and "1990s" in first and "Fargo (1996)" in first


def test_requests_are_the_same_on_every_run(films: Dataset, tmp_path: Path) -> None:
    def requests(folder: str) -> list[str]:
        ranking(films, Placer(films.catalog, {}), cache=False).evaluate(ctx_for(tmp_path, folder))
        return [r["request"] for r in _records(tmp_path / folder, "AgentRankingEvaluator")]

    assert requests("a") == requests("b")


class Simulator(recai.LLMBackend):
    """Writes a request that names Heat (1995) (u0's target), or nothing for one prompt;
    keeps its prompts privately."""

    def __init__(self) -> None:
        self._asked: list[list[Message]] = []

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        self._asked.append(list(messages))
        if "Action and Sci-Fi" in messages[0].content:
            return Completion("   ")  # u1 (Aliens): an empty request
        return Completion("I want a crime film like heat, please.")


def test_an_llm_request_that_names_the_target_is_replaced(films: Dataset, tmp_path: Path) -> None:
    agent = Placer(films.catalog, PLACES)
    simulator = Simulator()
    report = ranking(films, agent, simulation="llm", simulator=simulator).evaluate(
        ctx_for(tmp_path)
    )
    row = report.metrics["Placer"]
    assert row["leak_rate"] == pytest.approx(1 / 6)  # u0: "heat" names Heat (1995)
    assert row["simulator_failure_rate"] == pytest.approx(1 / 6)  # u1: nothing written
    records = {r["user"]: r for r in _records(tmp_path / "run", "AgentRankingEvaluator")}
    assert records["u0"]["leaked"] and "Action, Crime and Thriller" in records["u0"]["request"]
    assert records["u1"]["simulator_failed"] and "Sci-Fi" in records["u1"]["request"]
    assert records["u2"]["request"] == "I want a crime film like heat, please."
    for user, r in records.items():
        assert not mentions_title(r["request"], core_title(TITLES[TARGETS[user]]))
    # the simulator is shown the clues of each user's target (asked one at a time, in user
    # order), never that target's title
    assert len(simulator._asked) == 6
    for user, messages in zip(sorted(TARGETS), simulator._asked, strict=True):
        prompt = messages[0].content
        assert "Never write the item's name or title" in prompt
        assert " and ".join(GENRES[TARGETS[user]][-2:]) in prompt
        assert not mentions_title(prompt, core_title(TITLES[TARGETS[user]]))
    assert "The simulator named the target in 1 requests" in " ".join(report.notes)


# -- the cache and failures ----------------------------------------------------------------------
def test_a_rerun_reads_items_and_costs_from_the_cache(films: Dataset, tmp_path: Path) -> None:
    first = ranking(films, Placer(films.catalog, PLACES)).evaluate(ctx_for(tmp_path))
    again = ranking(films, Placer(films.catalog, PLACES)).evaluate(ctx_for(tmp_path))
    a, b = first.metrics["Placer"], again.metrics["Placer"]
    assert again.info["requests"]["calls"] == 0 and again.info["requests"]["cached"] == 6
    assert b["NDCG@4"] == a["NDCG@4"] and b["coverage"] == a["coverage"]
    assert b["llm_calls_per_request"] == 2.0  # kept in the cache record
    assert "seconds_per_request" not in b  # no fresh reply was timed


class Flaky(Placer):
    """Raises for u2 while ``broken``."""

    broken = True

    def reply(self, conversation: Sequence[Message]) -> Message:
        if Flaky.broken and '"u2"' in conversation[0].content:
            raise ConnectionError("the agent's server went away")
        return super().reply(conversation)


def test_an_agent_that_raises_leaves_the_sample_out_and_a_rerun_asks_only_it(
    films: Dataset, tmp_path: Path
) -> None:
    Flaky.broken = True
    report = ranking(
        films, Flaky(films.catalog, PLACES, items=False), max_failed_share=0.5
    ).evaluate(ctx_for(tmp_path))
    assert report.info["measured_samples"] == 5 and report.info["retry_on_rerun"]
    ndcg5 = (1 + 1 / math.log2(3) + 0 + 1 + 1 / math.log2(4)) / 5  # without u2
    assert report.metrics["Flaky"]["NDCG@4"] == pytest.approx(ndcg5)
    Flaky.broken = False
    rerun = ranking(films, Flaky(films.catalog, PLACES, items=False)).evaluate(ctx_for(tmp_path))
    assert rerun.info["requests"]["calls"] == 1 and rerun.info["measured_samples"] == 6
    ndcg = (1 + 1 / math.log2(3) + 1 / math.log2(5) + 0 + 1 + 1 / math.log2(4)) / 6
    assert rerun.metrics["Flaky"]["NDCG@4"] == pytest.approx(ndcg)


def test_reply_items_without_an_index_fail_the_sample_readably() -> None:
    assert reply_items(Reply("x", [{"index": np.int64(3)}])) == [3]
    with pytest.raises(TypeError, match=r"items\[1\] has no catalog index"):
        reply_items(Reply("x", [{"index": 3}, {"title": "Heat"}]))
    with pytest.raises(TypeError, match=r"items\[0\]"):
        reply_items(Reply("x", [{"index": True}]))


# -- 1 + 19 on a real small dataset ----------------------------------------------------------------
class GenreRanker(recai.Agent):
    """Orders the candidates: those whose category the request names first, then the others,
    each group in the order given; lists all k."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._seen: list[list[Message]] = []

    def respond(self, conversation: Sequence[Message]) -> Reply:
        self._seen.append(list(conversation))
        context = user_context(conversation, self._catalog)
        assert context is not None and context.candidates is not None and context.k is not None
        request = conversation[-1].content.lower()
        category = self._catalog.fields["category"]
        order = sorted(context.candidates, key=lambda i: str(category[i]) not in request)
        found = [{"index": int(i)} for i in order[: context.k]]
        return Reply("Ranked.", found, llm_calls=0)

    def reply(self, conversation: Sequence[Message]) -> Message:
        return Message.assistant(self.respond(conversation).text)


@pytest.fixture(scope="module")
def synthetic() -> Dataset:
    return synthetic_dataset(n_users=40, n_items=60, mean_length=8, seed=0, name="synthetic")


def test_ranking_covers_all_20_candidates(synthetic: Dataset, tmp_path: Path) -> None:
    agent = GenreRanker(synthetic.catalog)
    ev = AgentRankingEvaluator(
        recai.DatasetSource.of(synthetic), agent, samples=30, bootstrap=500, script=["genres"]
    )
    report = ev.evaluate(ctx_for(tmp_path))
    row = report.metrics["GenreRanker"]
    measured = report.info["samples"]
    assert measured + report.info["dropped_users"] == 30 and measured >= 20
    assert row["coverage"] == 1.0 and row["out_of_candidates_rate"] == 0.0
    assert row["duplicate_rate"] == 0.0 and row["failure_rate"] == 0.0
    for conversation in agent._seen:
        body = json.loads(conversation[0].content)
        ids = [e["id"] for e in body["candidates"]]
        assert len(ids) == len(set(ids)) == 20 and body["k"] == 20
    records = _records(tmp_path / "run", "AgentRankingEvaluator")
    ranks = np.array([r["rank"] for r in records], dtype=float)
    assert not np.isnan(ranks).any()  # every reply placed the target
    assert row["NDCG@20"] == pytest.approx(np.mean(1 / np.log2(ranks + 2)))
    assert row["Hit@5"] == pytest.approx(np.mean(ranks < 5))
    # the request names the target's category, so it comes with its category mates: better than
    # the 1/20 a blind order gets for Hit@1 on average
    assert row["Hit@5"] > 0.25 + 1e-9
    low, high = report.intervals["GenreRanker"]["NDCG@20"]
    assert low <= row["NDCG@20"] <= high


# -- bad params ----------------------------------------------------------------------------------
def test_bad_params_name_the_key(films: Dataset) -> None:
    data = recai.DatasetSource.of(films)
    agent = Placer(films.catalog, {})
    with pytest.raises(ParamsError, match=r"simulator: an LLM that writes the requests"):
        AgentRankingEvaluator(data, agent, simulation="llm")
    with pytest.raises(ParamsError, match=r"simulator: the scripted requests"):
        AgentRankingEvaluator(data, agent, simulator=Simulator())
    with pytest.raises(ParamsError, match=r"k: cut-off 10 is beyond n_recommend = 5"):
        AgentRetrievalEvaluator(data, agent, k=[5, 10])
    with pytest.raises(ParamsError, match=r"k: cut-off 30 is beyond n_candidates = 20"):
        AgentRankingEvaluator(data, agent, k=[1, 30])
    with pytest.raises(ParamsError, match="n_candidates"):
        AgentRankingEvaluator(data, agent, n_candidates=1)
    with pytest.raises(ParamsError, match="script"):
        AgentRetrievalEvaluator(data, agent, script=["plot"])
    with pytest.raises(ParamsError, match=r"simulator_prompt: .*\{title\}"):
        AgentRankingEvaluator(
            data, agent, simulation="llm", simulator=Simulator(), simulator_prompt="Say {title}"
        )
    with pytest.raises(ParamsError, match="agent"):
        AgentRankingEvaluator(data, Simulator())


class Agents:
    """A test plugin: ``placer.v1``, an agent that lists catalog items."""

    @recai.hookimpl
    def recai_agents(self):  # type: ignore[no-untyped-def]
        yield recai.ComponentSpec(name="placer.v1", factory=_placer, summary="Placer for tests.")


def _placer(dataset: recai.DatasetSource) -> Placer:
    return Placer(dataset.dataset().catalog, {})


def _recipe(**params: Any) -> dict[str, Any]:
    return {
        "components": {
            "data": {"use": "synthetic.v1", "params": {"n_users": 40, "n_items": 60, "seed": 1}},
            "agent": {"use": "placer.v1", "params": {"dataset": "data"}},
            "rank": {
                "use": "agent-ranking.v1",
                "params": {"dataset": "data", "agent": "agent", "samples": 5, "bootstrap": 0}
                | params,
            },
        },
        "run": {"stages": ["rank"]},
    }


def test_a_recipe_runs_it_and_recipe_errors_name_the_key_path(
    recai_installed_pm: Any, tmp_path: Path
) -> None:
    recai_installed_pm.register(Agents(), name="agents")
    result = run(recipe_from_dict(_recipe()), tmp_path / "out", progress=False)
    row = result.reports["rank"].metrics["agent"]
    assert row["coverage"] == 1.0 and 0 <= row["NDCG@20"] <= 1
    with pytest.raises(RecipeError) as e:
        check(recipe_from_dict(_recipe(k=[50], simulation="llm")))
    text = str(e.value)
    assert "components.rank.params" in text and "simulator" in text
    with pytest.raises(
        RecipeError, match=r"components.rank.params: k: cut-off 50 is beyond n_candidates = 20"
    ):
        check(recipe_from_dict(_recipe(k=[50])))


def _records(run_dir: Path, stage: str) -> list[dict[str, Any]]:
    path = run_dir / "llm-results" / f"{stage}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_recai_agents_ranker_baseline_is_read_from_its_reply_items(
    recai_installed_pm: Any, tmp_path: Path
) -> None:
    pytest.importorskip("recai_agent", reason="recai-agent is not installed")
    pytest.importorskip("recai_classic", reason="recai-classic is not installed")
    recipe = {
        "components": {
            "data": {"use": "synthetic.v1", "params": {"n_users": 40, "n_items": 60, "seed": 1}},
            "popularity": {"use": "popularity.v1"},
            "agent": {
                "use": "ranker-agent.v1",
                "params": {"dataset": "data", "ranker": "popularity"},
            },
            "find": {
                "use": "agent-retrieval.v1",
                "params": {"dataset": "data", "agent": "agent", "samples": 8, "bootstrap": 0},
            },
        },
        "run": {"stages": ["find"]},
    }
    report = run(recipe_from_dict(recipe), tmp_path / "out", progress=False).reports["find"]
    assert report.info["read_from"] == {"items": 8, "text": 0}
    row = report.metrics["agent"]
    assert row["llm_calls_per_request"] == 0.0 and row["failure_rate"] == 0.0
    assert row["in_history_rate"] == 0.0  # the baseline never lists a history item
    records = _records(tmp_path / "out", "find")
    assert all(len(r["items"]) == 5 for r in records)  # the baseline lists its k = 5
