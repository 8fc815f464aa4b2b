"""The LLM task evaluators end to end against scripted backends that answer like real models do.

The data: 30 real-looking movie titles and six users with five events each (the last is held
out). Each scripted backend recognises the user from the history in its prompt and answers
with a fixed kind of mess: numbered lists, misspelt and invented titles, duplicates, history
items, the input order copied, letters in many formats, exceptions and empty answers. The
expected metric values are worked out by hand from those scripts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import recai
from recai.data import Catalog, Dataset, Interactions, leave_one_out
from recai.errors import DataError, ParamsError
from recai.runtime import RunContext
from recai.testing import EvaluatorContract
from recai.types import Completion, Explanation, ItemList, Message, Query, Report
from recai_eval.llm.choice import CFRankingMCEvaluator, SeqRankingMCEvaluator
from recai_eval.llm.conversation import ConversationEvaluator
from recai_eval.llm.embedding import EmbeddingRankingEvaluator, EmbeddingRetrievalEvaluator
from recai_eval.llm.explanation import ExplanationEvaluator
from recai_eval.llm.ranking import LLMRankingEvaluator
from recai_eval.llm.retrieval import LLMRetrievalEvaluator

TITLES = [
    "Toy Story (1995)",  # 0
    "Heat (1995)",
    "Fargo (1996)",
    "Matrix, The (1999)",
    "Star Wars (1977)",
    "Titanic (1997)",  # 5
    "Braveheart (1995)",
    "Jumanji (1995)",
    "GoldenEye (1995)",
    "Casablanca (1942)",
    "Vertigo (1958)",  # 10
    "Alien (1979)",
    "Aliens (1986)",
    "Babe (1995)",
    "Clueless (1995)",
    "Twister (1996)",  # 15
    "Scream (1996)",
    "Contact (1997)",
    "Good Will Hunting (1997)",
    "Shawshank Redemption, The (1994)",
    "Usual Suspects, The (1995)",  # 20
    "Seven (Se7en) (1995)",
    "Apollo 13 (1995)",
    "Batman Forever (1995)",
    "Mission: Impossible (1996)",
    "Rock, The (1996)",  # 25
    "Independence Day (ID4) (1996)",
    "Lion King, The (1994)",
    "Pulp Fiction (1994)",
    "Forrest Gump (1994)",
]
GENRES = ["Animation", "Crime", "Crime", "Sci-Fi", "Sci-Fi", "Romance", "War", "Adventure"] * 4
EVENTS = {  # user -> items in time order; the last one is held out
    0: [0, 7, 13, 27, 3],
    1: [4, 11, 12, 17, 18],
    2: [9, 10, 19, 20, 2],
    3: [5, 1, 29, 28, 6],
    4: [14, 16, 15, 23, 8],
    5: [22, 24, 25, 26, 21],
}
HISTORY = {u: items[:-1] for u, items in EVENTS.items()}
TARGET = {u: items[-1] for u, items in EVENTS.items()}


def make_dataset() -> Dataset:
    users = [u for u, items in EVENTS.items() for _ in items]
    items = [i for seq in EVENTS.values() for i in seq]
    stamps = [1000 * u + t for u, seq in EVENTS.items() for t in range(len(seq))]
    catalog = Catalog(
        ids=[f"m{i}" for i in range(len(TITLES))],
        titles=TITLES,
        fields={"genre": np.array(GENRES[: len(TITLES)], dtype=object)},
    )
    inter = Interactions(users, items, n_users=6, n_items=len(TITLES), timestamps=stamps)
    return Dataset("mini-movies", catalog, inter, user_ids=np.array([f"u{u}" for u in EVENTS]))


@pytest.fixture(scope="module")
def source() -> recai.DatasetSource:
    return recai.DatasetSource.of(make_dataset())


def user_of(text: str) -> int:
    """Which user a prompt is about: the one with most history titles in its first block."""
    block = text.split("\n\n")[0]
    counts = {u: sum(TITLES[i] in block for i in h) for u, h in HISTORY.items()}
    best = max(counts.values())
    winners = [u for u, c in counts.items() if c == best]
    assert best > 0 and len(winners) == 1, f"cannot tell the user of: {block!r}"
    return winners[0]


Reply = Callable[[int, list[Message]], str]


class Scripted(recai.LLMBackend):
    """Answers with ``reply(user, messages)``; the user is found in the conversation's first
    message (a system prompt) or its last user message. Everything it saw is kept privately."""

    def __init__(self, name: str, reply: Reply, *, find: str = "last"):
        self.name = name
        self._reply = reply
        self._find = find
        self._seen: list[tuple[int, list[Message]]] = []

    @property
    def seen(self) -> list[tuple[int, list[Message]]]:
        return self._seen

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        msgs = list(messages)
        text = msgs[0].content if self._find == "first" else msgs[-1].content
        user = user_of(text)
        self._seen.append((user, msgs))
        return Completion(self._reply(user, msgs), model=self.name)


def ctx_for(tmp_path: Path, name: str = "run") -> RunContext:
    return RunContext(tmp_path / name, seed=7, progress=False)


def candidates_in(prompt: str, marker: str = "- ") -> list[str]:
    return [line[len(marker) :] for line in prompt.splitlines() if line.startswith(marker)]


def options_in(prompt: str) -> list[str]:
    return [m.group(2) for m in re.finditer(r"(?m)^([A-J])\. (.*)$", prompt)]


# -- retrieval ------------------------------------------------------------------------------------
RETRIEVAL_ANSWERS: dict[int, str | Exception] = {
    0: "1. The Matrix (1999)\n2. Toy Story (1995)\n3. Pulp Fiction (1994)",
    1: "Here are my recommendations:\n1. Star Wars (1977)\n2. Good Will Huntin (1997)\n"
    "3. Good Will Huntin (1997)\n4. The Galactic Odyssey (2003)",
    2: "Casablanca (1942), Vertigo (1958), Shawshank Redemption, The (1994)",
    3: RuntimeError("rate limited"),
    4: "   ",
    5: '- "Seven (Se7en) (1995)" - a dark thriller\n- Apollo 13 (1995)',
}


#: The scripts make one of six samples raise: a share of unanswered samples above the default.
LENIENT = 0.5


def scripted(answers: dict[int, str | Exception], name: str = "model") -> Scripted:
    def reply(user: int, messages: list[Message]) -> str:
        answer = answers[user]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Scripted(name, reply)


def test_retrieval_metrics_and_error_rates_by_hand(source: Any, tmp_path: Path) -> None:
    llm = scripted(RETRIEVAL_ANSWERS)
    report = LLMRetrievalEvaluator(
        source, llm, samples=6, bootstrap=0, max_failed_share=LENIENT
    ).evaluate(ctx_for(tmp_path))
    row = report.metrics["Scripted"]
    # u3 raised: no result, left out (5 measured samples)
    # target ranks: u0 0, u1 1 (misspelt), u2 and u4 missed, u5 0
    assert row["Hit@1"] == pytest.approx(2 / 5)
    assert row["Hit@5"] == row["Hit@10"] == pytest.approx(3 / 5)
    assert row["NDCG@5"] == pytest.approx((1 + 1 / math.log2(3) + 1) / 5)
    assert row["MRR@10"] == pytest.approx((1 + 1 / 2 + 1) / 5)
    assert row["nonexistent_rate"] == pytest.approx(1 / 5)  # u1's invented title
    assert row["duplicate_rate"] == pytest.approx(1 / 5)  # u1
    assert row["in_history_rate"] == pytest.approx(4 / 5)  # u0, u1, u2, u5
    assert row["copy_rate"] == pytest.approx(1 / 5)  # u2 repeats its history in order
    assert row["failure_rate"] == pytest.approx(1 / 5)  # u4 said nothing
    assert "out_of_candidates_rate" not in row
    info = report.info
    assert info["samples"] == 6 and info["seed"] == 7 and info["dataset"] == "mini-movies"
    assert info["unanswered_samples"] == 1 and info["measured_samples"] == 5
    assert info["failures"] == 2
    assert [(f["user"], f["stage"], f["answered"]) for f in info["failed_samples"]] == [
        ("u3", "answer", False),
        ("u4", "parse", True),
    ]
    assert info["failed_samples"][0]["error"] == "RuntimeError: rate limited"
    assert info["mentions"] == {"total": 12, "grounded": 11}
    assert info["requests"]["calls"] == 6 and info["requests"]["failed"] == 1
    assert "1 of 6 samples got no answer (first: RuntimeError: rate limited)" in report.notes[0]
    assert "the metrics are over the other 5" in report.notes[0]
    assert "1 of 6 samples failed (1 at parse)" in report.notes[1]
    # the prompt: numbered history, oldest first, and the number of items to name
    (_, msgs) = next(x for x in llm.seen if x[0] == 0)
    assert msgs[0].role == "system"
    assert (
        "1. Toy Story (1995)\n2. Jumanji (1995)\n3. Babe (1995)\n4. Lion King, The (1994)"
        in msgs[1].content
    )
    assert "Recommend the 10 items" in msgs[1].content
    # per-sample records for audits
    records = (
        (tmp_path / "run" / "llm-results" / "LLMRetrievalEvaluator.jsonl").read_text().splitlines()
    )
    assert len(records) == 6 and '"items": [4, 18, 18, null]' in records[1]


def test_retrieval_rerun_costs_no_calls(source: Any, tmp_path: Path) -> None:
    first = scripted(RETRIEVAL_ANSWERS)
    a = LLMRetrievalEvaluator(
        source, first, samples=6, bootstrap=0, max_failed_share=LENIENT
    ).evaluate(ctx_for(tmp_path))
    second = scripted(RETRIEVAL_ANSWERS)
    b = LLMRetrievalEvaluator(
        source, second, samples=6, bootstrap=0, max_failed_share=LENIENT
    ).evaluate(ctx_for(tmp_path))
    assert a.metrics == b.metrics
    assert [u for u, _ in second.seen] == [3]  # only the sample that raised is asked again
    assert b.info["requests"]["cached"] == 5 and b.info["cache"]["loaded"] == 5
    other = scripted(RETRIEVAL_ANSWERS)
    LLMRetrievalEvaluator(
        source, other, samples=6, max_tokens=50, bootstrap=0, max_failed_share=LENIENT
    ).evaluate(ctx_for(tmp_path))
    assert len(other.seen) == 6  # other generation options are other questions
    uncached = scripted(RETRIEVAL_ANSWERS)
    LLMRetrievalEvaluator(
        source, uncached, samples=6, cache=False, bootstrap=0, max_failed_share=LENIENT
    ).evaluate(ctx_for(tmp_path))
    assert len(uncached.seen) == 6


def test_retrieval_resumes_after_a_torn_cache_line(source: Any, tmp_path: Path) -> None:
    LLMRetrievalEvaluator(
        source, scripted(RETRIEVAL_ANSWERS), samples=6, bootstrap=0, max_failed_share=LENIENT
    ).evaluate(ctx_for(tmp_path))
    path = tmp_path / "run" / "llm-cache" / "LLMRetrievalEvaluator.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    again = scripted(RETRIEVAL_ANSWERS)
    report = LLMRetrievalEvaluator(
        source, again, samples=6, bootstrap=0, max_failed_share=LENIENT
    ).evaluate(ctx_for(tmp_path))
    assert report.info["cache"]["repaired_last_line"] is True
    assert len(again.seen) == 2  # the torn answer and the failed sample
    assert report.metrics["Scripted"]["Hit@1"] == pytest.approx(2 / 5)


def test_samples_are_drawn_by_seed(source: Any, tmp_path: Path) -> None:
    def sampled(seed: int) -> list[int]:
        llm = scripted(RETRIEVAL_ANSWERS)
        ev = LLMRetrievalEvaluator(
            source, llm, samples=3, seed=seed, cache=False, max_failed_share=LENIENT
        )
        report = ev.evaluate(ctx_for(tmp_path, f"seed{seed}"))
        assert report.info["samples"] == 3 and report.info["seed"] == seed
        assert report.info["eligible_users"] == 6
        return sorted(u for u, _ in llm.seen)

    assert sampled(1) == sampled(1)
    # without replacement, by numpy's generator, among eligible users in index order
    assert sampled(1) == sorted(np.random.default_rng(1).choice(6, size=3, replace=False).tolist())
    assert len({tuple(sampled(seed)) for seed in range(5)}) > 1


def test_grounding_method_and_threshold_are_configurable(source: Any, tmp_path: Path) -> None:
    strict = LLMRetrievalEvaluator(
        source,
        scripted(RETRIEVAL_ANSWERS),
        samples=6,
        threshold=0.99,
        bootstrap=0,
        cache=False,
        max_failed_share=LENIENT,
    ).evaluate(ctx_for(tmp_path, "strict"))
    assert strict.metrics["Scripted"]["Hit@5"] == pytest.approx(
        2 / 5
    )  # the misspelling no longer counts
    assert strict.info["grounding"] == {"method": "blend", "threshold": 0.99}
    base = LLMRetrievalEvaluator(
        source,
        scripted(RETRIEVAL_ANSWERS),
        samples=6,
        grounding="tfidf",
        bootstrap=0,
        cache=False,
        max_failed_share=LENIENT,
    ).evaluate(ctx_for(tmp_path, "tfidf"))
    assert base.info["grounding"]["method"] == "tfidf"


def test_fields_and_templates_reach_the_prompt(source: Any, tmp_path: Path) -> None:
    llm = scripted(RETRIEVAL_ANSWERS)
    LLMRetrievalEvaluator(
        source,
        llm,
        samples=6,
        fields=["genre"],
        max_history=2,
        system_prompt="Use JSON like {{}} if you must.",
        template="History:\n{history}\n\nName {k} more.",
        n_recommend=3,
        cache=False,
        max_failed_share=LENIENT,
    ).evaluate(ctx_for(tmp_path))
    (_, msgs) = next(x for x in llm.seen if x[0] == 0)
    assert msgs[0].content == "Use JSON like {} if you must."
    assert (
        msgs[1].content
        == "History:\n1. Babe (1995) | genre: Romance\n2. Lion King, The (1994) | genre: Sci-Fi\n\nName 3 more."
    )
    with pytest.raises(ValueError, match=r"\{user\}"):
        LLMRetrievalEvaluator(source, llm, template="{user} likes {history}")
    with pytest.raises(DataError, match="no field 'year'"):
        LLMRetrievalEvaluator(source, llm, fields=["year"]).evaluate(ctx_for(tmp_path, "f"))


# -- ranking --------------------------------------------------------------------------------------
def ranking_reply(user: int, messages: list[Message]) -> str:
    cands = candidates_in(messages[-1].content)
    target = TITLES[TARGET[user]]
    if user == 0:  # the input order, copied
        return "\n".join(f"{i}. {t}" for i, t in enumerate(cands, 1))
    if user == 1:  # the target first, then the rest reversed
        rest = [t for t in cands if t != target][::-1]
        return "\n".join(f"{i}. {t}" for i, t in enumerate([target, *rest], 1))
    if user == 2:  # a duplicate and an invented title
        return f"1. {target}\n2. {target}\n3. Midnight Express Train (2021)"
    if user == 3:  # a history item, which is no candidate either
        return f"1. {target}\n2. Heat (1995)"
    if user == 4:
        raise ConnectionError("server went away")
    first = next(t for t in cands if t != target)
    return f"{first}<end>{target}<end>"


def test_ranking_metrics_and_error_rates_by_hand(source: Any, tmp_path: Path) -> None:
    llm = Scripted("ranker", ranking_reply)
    report = LLMRankingEvaluator(
        source, llm, samples=6, bootstrap=0, max_failed_share=LENIENT
    ).evaluate(ctx_for(tmp_path))
    row = report.metrics["Scripted"]
    seen = {u: candidates_in(m[-1].content) for u, m in llm.seen}
    for u, cands in seen.items():
        assert len(cands) == 20 and len(set(cands)) == 20 and TITLES[TARGET[u]] in cands
        assert not {TITLES[i] for i in HISTORY[u]} & set(cands)  # negatives: never interacted
    rank0 = seen[0].index(TITLES[TARGET[0]])
    ranks = [rank0, 0, 0, 0, 1]  # u4 raised: left out, 5 measured samples
    hits = lambda k: sum(r < k for r in ranks) / 5  # noqa: E731
    assert row["Hit@1"] == pytest.approx(hits(1))
    assert row["Hit@5"] == pytest.approx(hits(5))
    assert row["MRR@10"] == pytest.approx(sum(1 / (r + 1) for r in ranks if r < 10) / 5)
    assert row["copy_rate"] == pytest.approx(1 / 5)  # u0
    assert row["duplicate_rate"] == pytest.approx(1 / 5)  # u2
    assert row["nonexistent_rate"] == pytest.approx(1 / 5)  # u2
    assert row["in_history_rate"] == pytest.approx(1 / 5)  # u3
    assert row["out_of_candidates_rate"] == pytest.approx(1 / 5)  # u3
    assert row["failure_rate"] == 0.0  # every answer that came was readable
    assert report.info["unanswered_samples"] == 1
    assert report.info["n_candidates"] == 20 and report.info["dropped_users"] == 0
    assert report.info["failed_samples"][0]["error"] == "ConnectionError: server went away"


def test_ranking_candidates_do_not_depend_on_who_else_is_sampled(
    source: Any, tmp_path: Path
) -> None:
    every = Scripted("ranker", ranking_reply)
    LLMRankingEvaluator(source, every, samples=6, cache=False, max_failed_share=LENIENT).evaluate(
        ctx_for(tmp_path, "a")
    )
    few = Scripted("ranker", ranking_reply)
    LLMRankingEvaluator(source, few, samples=2, cache=False, max_failed_share=LENIENT).evaluate(
        ctx_for(tmp_path, "b")
    )
    all_prompts = {u: m[-1].content for u, m in every.seen}
    assert len(few.seen) == 2
    for u, msgs in few.seen:
        assert msgs[-1].content == all_prompts[u]


def test_ranking_drops_users_without_enough_negatives(source: Any, tmp_path: Path) -> None:
    report = LLMRankingEvaluator(
        source, Scripted("ranker", ranking_reply), samples=6, n_candidates=27, cache=False
    ).evaluate(ctx_for(tmp_path))
    assert report.info["dropped_users"] == 6 - report.info["samples"] > 0
    assert "too few items" in " ".join(report.notes)


# -- multiple choice ------------------------------------------------------------------------------
def choice_reply(kind: str) -> Reply:
    def reply(user: int, messages: list[Message]) -> str:
        prompt = messages[-1].content
        options = options_in(prompt)
        if kind == "seq":
            positive = TITLES[TARGET[user]]
        else:
            (positive,) = [o for o in options if o in {TITLES[i] for i in HISTORY[user]}]
        right = "ABCDEFGHIJ"[options.index(positive)]
        other = (options.index(positive) + 1) % len(options)
        wrong = "ABCDEFGHIJ"[other]
        shown = re.findall(r"(?m)^\d+\. (.*)$", prompt.split("\n\n")[0])
        return {
            0: f"{right}. {options[other]}",  # the right letter with another option's title
            1: f"{wrong}. {shown[0]}",  # a wrong letter with a title from the history
            2: f"answer: {right.lower()}",
            3: f"I would pick {re.sub(r' [(].*', '', positive)}",
            4: "K",
            5: "I am not sure.",
        }[user]

    return reply


@pytest.mark.parametrize(
    ("kind", "cls"), [("seq", SeqRankingMCEvaluator), ("cf", CFRankingMCEvaluator)]
)
def test_multiple_choice_by_hand(source: Any, tmp_path: Path, kind: str, cls: type) -> None:
    llm = Scripted("chooser", choice_reply(kind))
    report = cls(source, llm, samples=6, bootstrap=0).evaluate(ctx_for(tmp_path))
    row = report.metrics["Scripted"]
    assert row == {
        "accuracy": pytest.approx(3 / 6),  # u0 letter, u2 lower-case letter, u3 by title
        "out_of_candidates_rate": pytest.approx(2 / 6),  # u1 named a history item, u4 said K
        "in_history_rate": pytest.approx(1 / 6),  # u1
        "failure_rate": pytest.approx(1 / 6),  # u5 said nothing readable
    }
    assert report.info["answers_read_as_title"] == 1 and sum(report.info["choices"].values()) == 4
    assert report.info["letter_title_conflicts"] == 1  # u0
    assert report.info["chance"] == 0.1 and report.info["failed_samples"][0]["stage"] == "parse"
    for user, msgs in llm.seen:
        prompt = msgs[-1].content
        options = options_in(prompt)
        history_block = prompt.split("\n\n")[0]
        shown = [TITLES[i] for i in HISTORY[user] if TITLES[i] in history_block]
        assert len(options) == 10 and len(set(options)) == 10
        never = [o for o in options if o not in {TITLES[i] for i in EVENTS[user]}]
        assert len(never) == 9  # nine negatives the user never interacted with
        if kind == "seq":
            assert shown == [TITLES[i] for i in HISTORY[user]]  # the whole history, in order
            assert TITLES[TARGET[user]] in options
        else:
            assert len(shown) == 3  # the hidden item is taken out of the history
            assert "in no particular order" in history_block


# -- explanation ----------------------------------------------------------------------------------
SCORES = {
    "main-first": '{"A": {"informativeness": 3, "persuasiveness": 3, "helpfulness": 2}, '
    '"B": {"informativeness": 1, "persuasiveness": 2, "helpfulness": 1}}',
    "base-first": '{"A": {"informativeness": 2, "persuasiveness": 1, "helpfulness": 1}, '
    '"B": {"informativeness": 3, "persuasiveness": 2, "helpfulness": 3}}',
    "even": '{"A": {"informativeness": 2, "persuasiveness": 2, "helpfulness": 2}, '
    '"B": {"informativeness": 2, "persuasiveness": 2, "helpfulness": 2}}',
}


def explainer_reply(tag: str) -> Reply:
    def reply(user: int, messages: list[Message]) -> str:
        if tag == "BASE" and user == 5:
            raise TimeoutError("baseline timed out")
        return f"{tag} explains the pick for user {user}."

    return reply


def judge_reply(user: int, messages: list[Message]) -> str:
    prompt = messages[-1].content
    main_first = prompt.index("MAIN") < prompt.index("BASE")
    if user == 0:  # the evaluated system wins in both orders, with scores
        return f"Reasoning. {SCORES['main-first' if main_first else 'base-first']} " + (
            "[[A]]" if main_first else "[[B]]"
        )
    if user == 1:  # the baseline wins in both orders
        return "[[B]]" if main_first else "[[A]]"
    if user == 2:  # position bias: always the first one
        return "[[A]]"
    if user == 3:
        return f"{SCORES['even']}\nOverall: [[C]]"
    return "Both explanations are fine."


def test_explanation_win_tie_loss_by_hand(source: Any, tmp_path: Path) -> None:
    main, base = (
        Scripted("main", explainer_reply("MAIN")),
        Scripted("base", explainer_reply("BASE")),
    )
    judge = Scripted("judge", judge_reply)
    report = ExplanationEvaluator(
        source, main, base, judge, samples=6, bootstrap=0, max_failed_share=LENIENT
    ).evaluate(ctx_for(tmp_path))
    mine, theirs = report.metrics["Scripted"], report.metrics["Scripted#2"]
    # u5's baseline raised: no result, left out (5 measured samples)
    assert mine["win_rate"] == theirs["loss_rate"] == pytest.approx(1 / 5)  # u0
    assert mine["loss_rate"] == theirs["win_rate"] == pytest.approx(1 / 5)  # u1
    assert mine["tie_rate"] == pytest.approx(2 / 5)  # u2 (orders disagree), u3 (tie verdicts)
    assert mine["failure_rate"] == pytest.approx(1 / 5)  # u4 (no verdict)
    # aspect means over the readable judgements (u0 and u3, two orders each)
    assert mine["informativeness"] == pytest.approx((3 + 3 + 2 + 2) / 4)
    assert mine["persuasiveness"] == pytest.approx((3 + 2 + 2 + 2) / 4)
    assert mine["helpfulness"] == pytest.approx((2 + 3 + 2 + 2) / 4)
    assert theirs["informativeness"] == pytest.approx((1 + 2 + 2 + 2) / 4)
    assert theirs["helpfulness"] == pytest.approx((1 + 1 + 2 + 2) / 4)
    info = report.info
    assert info["judged_samples"] == 5 and info["consistent_verdicts"] == 3
    assert sorted(f["stage"] for f in info["failed_samples"]) == [
        "explanation by Scripted#2",
        "judge-parse",
    ]
    assert len(judge.seen) == 10  # both orders for each of five judged samples
    # the judge sees the explanations in both orders
    first, second = [m[-1].content for u, m in judge.seen if u == 0]
    assert first.index("MAIN") < first.index("BASE") and second.index("BASE") < second.index("MAIN")
    assert '{"A": {"informativeness": 2' in judge.seen[0][1][0].content  # braces un-doubled


def test_explanation_accepts_explainers(source: Any, tmp_path: Path) -> None:
    class Because(recai.Explainer):
        def explain(self, history: ItemList, item: int) -> Explanation:
            return Explanation(item, f"BASE: item {item} follows {len(history)} items")

    main, judge = Scripted("main", explainer_reply("MAIN")), Scripted("judge", judge_reply)
    report = ExplanationEvaluator(source, main, Because(), judge, samples=6, bootstrap=0).evaluate(
        ctx_for(tmp_path)
    )
    assert set(report.metrics) == {"Scripted", "Because"}
    # the explainer never fails, so u5 is judged: like u4, without a verdict
    assert report.metrics["Scripted"]["failure_rate"] == pytest.approx(2 / 6)
    assert [f["stage"] for f in report.info["failed_samples"]] == ["judge-parse", "judge-parse"]


# -- conversation ---------------------------------------------------------------------------------
def simulator_reply(user: int, messages: list[Message]) -> str:
    if user == 4:
        return ""
    if user == 1 and len(messages) == 2:
        return "(u1) I am looking for Good Will Hunting, the one with the genius janitor."
    return f"(u{user}) I want something I have not seen."


def recommender_text(user: int, turn: int) -> str:
    if user == 0:
        return "1. Matrix, The (1999)\n2. Heat (1995)"
    if user == 1:
        return (
            "What kind of films do you like?"
            if turn == 1
            else "1. Good Will Hunting (1997)\n2. Imaginary Film Title (2020)"
        )
    if user == 2:
        return "1. Casablanca (1942)\n2. Casablanca (1942)"
    if user == 3:
        if turn == 2:
            raise RuntimeError("recommender crashed")
        return "Tell me more."
    return "You should watch Seven (Se7en) (1995) tonight!"


class TaggedRecommender(recai.LLMBackend):
    def __init__(self) -> None:
        self._seen: list[list[Message]] = []

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        self._seen.append(list(messages))
        user = int(re.search(r"\(u(\d)\)", messages[-1].content).group(1))
        turn = sum(m.role == "user" for m in messages)
        return Completion(recommender_text(user, turn))


class TaggedAgent(recai.Agent):
    def reply(self, conversation: Sequence[Message]) -> Message:
        user = int(re.search(r"\(u(\d)\)", conversation[-1].content).group(1))
        turn = sum(m.role == "user" for m in conversation)
        return Message.assistant(recommender_text(user, turn))


@pytest.mark.parametrize("kind", ["llm", "agent"])
def test_conversation_hits_and_turns_by_hand(source: Any, tmp_path: Path, kind: str) -> None:
    simulator = Scripted("simulator", simulator_reply, find="first")
    recommender = TaggedRecommender() if kind == "llm" else TaggedAgent()
    ev = ConversationEvaluator(
        source, recommender, simulator, samples=6, max_turns=3, bootstrap=0, max_failed_share=0.5
    )
    report = ev.evaluate(ctx_for(tmp_path))
    row = next(iter(report.metrics.values()))
    # u3's recommender raised at turn 2: no result, left out (5 measured dialogues)
    assert row["Hit@3"] == pytest.approx(3 / 5)  # u0 and u5 at turn 1, u1 at turn 2
    assert row["AT@3"] == pytest.approx((1 + 2 + 4 + 4 + 1) / 5)  # a miss counts 4
    assert row["leak_rate"] == pytest.approx(1 / 5)  # u1's simulator named its target
    assert row["nonexistent_rate"] == pytest.approx(1 / 5)  # u1's imaginary title
    assert row["duplicate_rate"] == row["in_history_rate"] == pytest.approx(1 / 5)  # u2
    assert row["failure_rate"] == pytest.approx(1 / 5)  # u4's simulator said nothing
    assert report.info["hits_by_turn"] == [2, 1, 0]
    assert len(simulator.seen) == 6 + 3 + 1
    # the simulator is told the target but the recommender never sees it
    system = simulator.seen[0][1][0].content
    assert "Matrix, The (1999)" in system and "Never say the title" in system
    if kind == "llm":
        assert len(recommender._seen) == 5 + 3 + 1
        assert all("Matrix, The" not in m.content for m in recommender._seen[0][1:])
        assert (
            recommender._seen[0][0].role == "system"
            and "recommend 10 items" in recommender._seen[0][0].content
        )
        # a rerun replays every turn from the cache; only the call that raised is made again
        again_sim, again_rec = (
            Scripted("simulator", simulator_reply, find="first"),
            TaggedRecommender(),
        )
        again = ConversationEvaluator(
            source, again_rec, again_sim, samples=6, max_turns=3, bootstrap=0, max_failed_share=0.5
        )
        assert again.evaluate(ctx_for(tmp_path)).metrics == report.metrics
        assert again_sim.seen == [] and len(again_rec._seen) == 1


# -- embedding tasks ------------------------------------------------------------------------------
class ScriptedRetriever(recai.Retriever):
    """Finds the user from the query's titles and answers from a script."""

    def __init__(self) -> None:
        self._queries: list[Query] = []
        self._candidates: dict[int, list[int]] = {}

    def retrieve(
        self, query: Query, k: int = 10, *, candidates: ItemList | None = None
    ) -> ItemList:
        self._queries.append(query)
        user = user_of(query.text or "")
        if candidates is not None:
            cands = candidates.ids.tolist()
            self._candidates[user] = cands
            target = TARGET[user]
            ids = {
                0: cands,
                2: [HISTORY[2][0], target],
                3: [99, target],
            }.get(user, [target, *[c for c in cands if c != target]])
            return ItemList(ids[:k])
        if user == 2:
            raise KeyError("index not built")
        return ItemList({0: [0, 3, 5], 1: [5, 5, 18], 3: [99, 6], 4: [], 5: [21]}[user][:k])


def test_embedding_retrieval_by_hand(source: Any, tmp_path: Path) -> None:
    retriever = ScriptedRetriever()
    report = EmbeddingRetrievalEvaluator(
        source, retriever, samples=6, bootstrap=0, max_failed_share=LENIENT
    ).evaluate(ctx_for(tmp_path))
    row = report.metrics["ScriptedRetriever"]
    # u2's retriever raised: left out (5 measured samples)
    # after history items are removed: u0 [3, 5] -> 0; u1 [5, 5, 18] -> 2; u3 [99, 6] -> 1; u5 -> 0
    assert row["Hit@1"] == pytest.approx(2 / 5)
    assert row["Hit@5"] == pytest.approx(4 / 5)
    assert row["MRR@5"] == pytest.approx((1 + 1 / 3 + 1 / 2 + 1) / 5)
    assert (
        row["in_history_rate"]
        == row["duplicate_rate"]
        == row["nonexistent_rate"]
        == pytest.approx(1 / 5)
    )
    assert row["failure_rate"] == 0.0 and report.info["unanswered_samples"] == 1
    assert retriever._queries[0].text.startswith("A user who has interacted with these items")
    assert "generation" not in report.info and report.info["failures"] == 1


def test_embedding_ranking_by_hand(source: Any, tmp_path: Path) -> None:
    retriever = ScriptedRetriever()
    report = EmbeddingRankingEvaluator(source, retriever, samples=6, bootstrap=0).evaluate(
        ctx_for(tmp_path)
    )
    row = report.metrics["ScriptedRetriever"]
    cands = retriever._candidates
    assert all(len(c) == 20 and TARGET[u] in c for u, c in cands.items())
    ranks = [cands[0].index(TARGET[0]), 0, 1, 1, 0, 0]
    assert row["Hit@1"] == pytest.approx(sum(r < 1 for r in ranks) / 6)
    assert row["NDCG@10"] == pytest.approx(sum(1 / math.log2(r + 2) for r in ranks if r < 10) / 6)
    # u0 returns the candidates as given; u1, u4 and u5 too when the target happens to come first
    copies = 1 + sum(cands[u][0] == TARGET[u] for u in (1, 4, 5))
    assert row["copy_rate"] == pytest.approx(copies / 6)
    assert row["out_of_candidates_rate"] == pytest.approx(1 / 6)  # u2
    assert row["nonexistent_rate"] == pytest.approx(1 / 6)  # u3
    assert row["duplicate_rate"] == row["failure_rate"] == 0.0


# -- contracts: every evaluator, through the registry ---------------------------------------------
class Echo(recai.LLMBackend):
    """A generic double for the contracts: lists reversed, letter B, judge prefers A."""

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        text = messages[-1].content
        if "letter" in text:
            return Completion("(B)")
        if "[Explanation of assistant A]" in text:
            return Completion("[[A]]")
        lines = re.findall(r"(?m)^(?:\d+\.|-) (.*)$", text)
        return Completion(
            "\n".join(f"{i}. {t}" for i, t in enumerate(lines[::-1][:10], 1)) or "Hmm?"
        )


class _Contract(EvaluatorContract):
    distribution = "recai-eval"
    params: dict[str, Any] = {"samples": 4, "bootstrap": 20}
    extra: dict[str, Any] = {}

    @pytest.fixture
    def component(self, entry: Any, dataset_source: Any) -> Any:
        return entry.build({"dataset": dataset_source, **self.extra, **self.params})

    def test_reports_error_rates_beside_accuracy(self, report: Report) -> None:
        (row,) = list(report.metrics.values())[:1]
        assert "failure_rate" in row
        assert all(0.0 <= v <= 1.0 for k, v in row.items() if k.endswith("_rate"))


class TestRetrievalContract(_Contract):
    name = "llm-retrieval.v1"
    extra = {"llm": Echo()}


class TestRankingContract(_Contract):
    name = "llm-ranking.v1"
    extra = {"llm": Echo(), "n_candidates": 8}


class TestCFChoiceContract(_Contract):
    name = "cf-ranking-mc.v1"
    extra = {"llm": Echo(), "n_options": 5}


class TestSeqChoiceContract(_Contract):
    name = "seq-ranking-mc.v1"
    extra = {"llm": Echo(), "n_options": 5}


class TestExplanationContract(_Contract):
    name = "explanation.v1"
    extra = {"llm": Echo(), "baseline": Echo(), "judge": Echo()}


class TestConversationContract(_Contract):
    name = "conversation.v1"
    extra = {"recommender": Echo(), "simulator": Echo(), "max_turns": 2}


class TestEmbeddingRankingContract(_Contract):
    name = "embedding-ranking.v1"
    extra = {"retriever": recai.create("retriever", "random.v1"), "n_candidates": 8}


class TestEmbeddingRetrievalContract(_Contract):
    name = "embedding-retrieval.v1"
    extra = {"retriever": recai.create("retriever", "random.v1")}


def test_params_are_checked_with_key_paths(recai_installed_pm: Any) -> None:
    registry = recai_installed_pm.registry()
    data = recai.DatasetSource.of(make_dataset())
    entry = registry.get("llm-ranking.v1", "evaluator")
    with pytest.raises(ParamsError, match=r"template: template uses \{user\}"):
        entry.build({"dataset": data, "llm": Echo(), "template": "{user}"})
    with pytest.raises(ParamsError, match="threshold"):
        entry.build({"dataset": data, "llm": Echo(), "threshold": 0})
    with pytest.raises(ParamsError, match="llm"):
        entry.build({"dataset": data, "llm": recai.create("ranker", "random.v1")})
    with pytest.raises(ParamsError, match="n_candidates"):
        entry.build({"dataset": data, "llm": Echo(), "n_candidates": 1})
    conv = registry.get("conversation.v1", "evaluator")
    assert (
        conv.build(
            {"dataset": data, "recommender": TaggedAgent(), "simulator": Echo()}
        ).params.max_turns
        == 5
    )
    with pytest.raises(ParamsError, match="simulator"):
        conv.build({"dataset": data, "recommender": TaggedAgent(), "simulator": TaggedAgent()})


def test_protocol_matches_leave_one_out(source: Any) -> None:
    data = source.dataset()
    split = leave_one_out(data)
    assert sorted(split.test.items.tolist()) == sorted(TARGET.values())
