"""llm-ranking.v1 with a knowledge prompter, and its scoring mode (log-probabilities of titles).

Uses the six-user movie fixture of test_llm_tasks (five events each, the last held out)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_llm_tasks import (
    GENRES,
    HISTORY,
    TARGET,
    TITLES,
    ctx_for,
    make_dataset,
    ranking_reply,
    user_of,
)

import recai
from recai.errors import ParamsError, RecaiError
from recai.types import Completion, ItemList, Message
from recai_eval.llm.ranking import QUESTION, LLMRankingEvaluator


@pytest.fixture(scope="module")
def source() -> recai.DatasetSource:
    return recai.DatasetSource.of(make_dataset())


class Noting(recai.KnowledgePrompter):
    """Knowledge that names the user's first history item and the number of candidates; keeps
    what it was given and the training split it was fitted on (privately)."""

    def __init__(self, tag: str = "K") -> None:
        self.tag = tag
        self._given: list[tuple[list[int], list[int]]] = []
        self._train: list[tuple[int, int]] = []

    def fit(self, split: recai.Split) -> None:
        self._train = list(zip(split.train.users.tolist(), split.train.items.tolist(), strict=True))

    def knowledge(self, *, history=None, candidates=None, query=None):  # type: ignore[no-untyped-def]
        assert isinstance(history, ItemList) and isinstance(candidates, ItemList)
        self._given.append((history.ids.tolist(), candidates.ids.tolist()))
        return (
            f"[{self.tag}] first item: {TITLES[int(history.ids[0])]}; {len(candidates)} candidates"
        )


class Silent(Noting):
    """Knowledge with nothing to say: the prompts are those without knowledge."""

    def knowledge(self, *, history=None, candidates=None, query=None):  # type: ignore[no-untyped-def]
        return ""


class Recording(recai.LLMBackend):
    """Answers like ranking_reply (by the user of the last message) and keeps the messages."""

    def __init__(self) -> None:
        self._seen: list[list[Message]] = []

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        msgs = list(messages)
        self._seen.append(msgs)
        user = user_of(msgs[-1].content)
        if user == 4:
            return Completion("1. nothing", model="rec")
        return Completion(ranking_reply(user, msgs), model="rec")


def test_knowledge_reaches_every_prompt_with_history_and_candidates(
    source: Any, tmp_path: Path
) -> None:
    llm, k = Recording(), Noting()
    report = LLMRankingEvaluator(source, llm, samples=6, bootstrap=0, knowledge=k).evaluate(
        ctx_for(tmp_path)
    )
    assert len(llm._seen) == 6
    for msgs in llm._seen:
        # the system prompt, the knowledge as a system message, then the question
        assert [m.role for m in msgs] == ["system", "system", "user"]
        user = user_of(msgs[-1].content)
        assert msgs[1].content == (f"[K] first item: {TITLES[HISTORY[user][0]]}; 20 candidates")
    for history, candidates in k._given:
        user = next(u for u, h in HISTORY.items() if h == history)  # the whole history, in order
        shown = [
            line[2:]
            for line in next(
                m[-1].content for m in llm._seen if user_of(m[-1].content) == user
            ).splitlines()
            if line.startswith("- ")
        ]
        assert [TITLES[i] for i in candidates] == shown  # the candidates in their shown order
    # fitted on the training split: no held-out (or validation) event
    assert not {(u, TARGET[u]) for u in TARGET} & set(k._train)
    assert list(report.metrics) == ["Recording + Noting"]  # one system: with knowledge
    info = report.info["knowledge"]["Recording + Noting"]
    assert info["prompts_with_knowledge"] == 6 and info["mean_tokens"] > 5


def test_answers_are_cached_apart_per_knowledge_config(source: Any, tmp_path: Path) -> None:
    def run(knowledge: Any) -> int:
        llm = Recording()
        LLMRankingEvaluator(source, llm, samples=6, bootstrap=0, knowledge=knowledge).evaluate(
            ctx_for(tmp_path)  # one run folder: one answer cache
        )
        return len(llm._seen)

    assert run(None) == 6
    assert run(None) == 0  # cached
    assert run(Noting("A")) == 6  # with knowledge: asked again
    assert run(Noting("A")) == 0
    assert run(Noting("B")) == 6  # another config: asked again
    assert run(Silent()) == 6  # knowledge that adds nothing still has its own answers


def test_a_registered_knowledge_type_writes_its_facts(source: Any, tmp_path: Path) -> None:
    from recai.plugins import get_plugin_manager

    if "knowledge-attributes.v1" not in get_plugin_manager().registry().names():
        pytest.skip("recai-knowledge is not installed")
    attrs = recai.create(
        "knowledge_prompter", "knowledge-attributes.v1", fields=["genre"], stats=False
    )
    llm = Recording()
    LLMRankingEvaluator(source, llm, samples=2, bootstrap=0, knowledge=attrs).evaluate(
        ctx_for(tmp_path)
    )
    knowledge = llm._seen[0][1].content
    assert knowledge.startswith("About these items:\n- ")
    lines = knowledge.splitlines()
    assert len(lines) == 1 + 20  # the header and every candidate (the type's max_facts: 20)
    for line in lines[1:]:  # each candidate with its genre from the catalog
        title, genre = line[2:].rsplit(": genre ", 1)
        assert GENRES[TITLES.index(title)] == genre


# -- scoring mode ----------------------------------------------------------------------------------
class Scorer(recai.LLMBackend):
    """Log-probabilities by hand: a title's prior (``prior``), plus ``boost`` for the held-out
    item when the prompt shows the user's history (not after the bare question)."""

    def __init__(self, boost: float = 2.0, prior: dict[str, float] | None = None) -> None:
        self.boost = boost
        self.prior = prior or {}
        self._calls: list[tuple[list[Message], list[str]]] = []

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        raise AssertionError("scoring mode never generates")

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        msgs = list(messages)
        self._calls.append((msgs, list(continuations)))
        text = msgs[-1].content
        if text.endswith(QUESTION) and "oldest first" not in text:  # the calibration prompt
            return [self.prior.get(t, 0.0) - len(t) / 100 for t in continuations]
        user = user_of(text)
        target = TITLES[TARGET[user]]
        return [
            self.prior.get(t, 0.0) - len(t) / 100 + (self.boost if t == target else 0.0)
            for t in continuations
        ]


def test_scoring_mode_ranks_by_log_probability(source: Any, tmp_path: Path) -> None:
    llm = Scorer(boost=2.0)
    report = LLMRankingEvaluator(source, llm, samples=6, bootstrap=0, mode="score").evaluate(
        ctx_for(tmp_path)
    )
    assert len(llm._calls) == 6  # one call per user
    for msgs, conts in llm._calls:
        assert msgs[-1].content.endswith(QUESTION)
        shown = [line[2:] for line in msgs[-1].content.splitlines() if line.startswith("- ")]
        assert conts == shown and len(conts) == 20  # titles in the shown order
    row = report.metrics["Scorer"]
    assert row["Hit@1"] == 1.0 and row["NDCG@10"] == 1.0 and row["failure_rate"] == 0.0
    assert "nonexistent_rate" not in row  # nothing to ground in scoring mode
    assert report.info["mode"] == "score" and report.info["score_norm"] == "sum"


def test_calibration_removes_a_titles_prior(source: Any, tmp_path: Path) -> None:
    # a decoy with a strong prior: every user's candidates hold it only if it is not theirs,
    # so give every title but the targets a prior of 3 > the target's boost of 2
    targets = {TITLES[t] for t in TARGET.values()}
    prior = {t: 3.0 for t in TITLES if t not in targets}

    def hit1(norm: str) -> float:
        llm = Scorer(boost=2.0, prior=prior)
        report = LLMRankingEvaluator(
            source, llm, samples=6, bootstrap=0, mode="score", score_norm=norm, cache=False
        ).evaluate(ctx_for(tmp_path, norm))
        return float(report.metrics["Scorer"]["Hit@1"])

    assert hit1("sum") == 0.0  # the prior wins
    assert hit1("calibrated") == 1.0  # what the context adds: only the target's boost


def test_scoring_mode_with_knowledge_and_the_cache(source: Any, tmp_path: Path) -> None:
    llm = Scorer()
    LLMRankingEvaluator(
        source, llm, samples=6, bootstrap=0, mode="score", knowledge=Noting()
    ).evaluate(ctx_for(tmp_path))
    assert all([m.role for m in msgs] == ["system", "system", "user"] for msgs, _ in llm._calls)
    again = Scorer()
    LLMRankingEvaluator(
        source, again, samples=6, bootstrap=0, mode="score", knowledge=Noting()
    ).evaluate(ctx_for(tmp_path))
    assert again._calls == []  # every score came from the cache


class BadScores(Scorer):
    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        user = user_of(messages[-1].content)
        if user == 0:
            return [0.0] * (len(continuations) - 1)
        if user == 1:
            return [float("nan")] * len(continuations)
        return super().score_continuations(messages, continuations)


def test_unusable_scores_count_as_failures(source: Any, tmp_path: Path) -> None:
    report = LLMRankingEvaluator(
        source, BadScores(), samples=6, bootstrap=0, mode="score"
    ).evaluate(ctx_for(tmp_path))
    row = report.metrics["BadScores"]
    assert row["failure_rate"] == pytest.approx(2 / 6)
    assert row["Hit@1"] == pytest.approx(4 / 6)
    errors = sorted(f["error"] for f in report.info["failed_samples"])
    assert errors == ["19 scores for 20 candidates", "a score is NaN"]


def test_scoring_mode_needs_a_backend_that_scores(source: Any, tmp_path: Path) -> None:
    llm = Recording()
    with pytest.raises(RecaiError, match="mode = 'score'.*cannot score continuations") as e:
        LLMRankingEvaluator(source, llm, samples=2, mode="score").evaluate(ctx_for(tmp_path))
    assert e.value.exit_code == 2 and llm._seen == []


def test_score_norm_belongs_to_scoring_mode(source: Any) -> None:
    with pytest.raises(ParamsError, match="score_norm: 'per_char' applies to mode = 'score'"):
        LLMRankingEvaluator(source, Recording(), score_norm="per_char")
    with pytest.raises(ParamsError, match="mode"):
        LLMRankingEvaluator(source, Recording(), mode="write")


def test_per_char_divides_by_the_title_length(source: Any, tmp_path: Path) -> None:
    # every title scores -1 (no boost): summed, ties keep the shown order; per character, the
    # longest title scores highest (-1 / length is closest to 0)
    class Flat(Scorer):
        def score_continuations(self, messages, continuations):  # type: ignore[no-untyped-def]
            return [-1.0] * len(continuations)

    report = LLMRankingEvaluator(
        source, Flat(), samples=6, bootstrap=0, mode="score", score_norm="per_char"
    ).evaluate(ctx_for(tmp_path))
    lines = (tmp_path / "run" / "llm-results").glob("*.jsonl")
    records = [json.loads(x) for f in lines for x in f.read_text().splitlines()]
    for r in records:
        lengths = [len(TITLES[i]) for i in r["items"]]
        assert lengths == sorted(lengths, reverse=True)
    assert np.isfinite(report.metrics["Flat"]["NDCG@10"])


# -- ablation: several knowledge types and none, paired -------------------------------------------
class Helped(Scorer):
    """Scores the target up only when the prompt carries the knowledge tagged [A]."""

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        self.boost = 2.0 if any("[A]" in m.content for m in messages) else 0.0
        return super().score_continuations(messages, continuations)


def test_a_list_of_prompters_is_an_ablation_with_paired_effects(
    source: Any, tmp_path: Path
) -> None:
    from recai_eval.peruser import load_per_user

    llm = Helped()
    report = LLMRankingEvaluator(
        source, llm, samples=6, bootstrap=200, mode="score", knowledge=[Noting("A"), Silent()]
    ).evaluate(ctx_for(tmp_path))
    assert list(report.metrics) == ["Helped", "Helped + Noting", "Helped + Silent"]
    assert len(llm._calls) == 18  # each system asks every user once (no shared cache key)
    none, helped, silent = (report.metrics[n]["NDCG@10"] for n in report.metrics)
    assert report.metrics["Helped + Noting"]["Hit@1"] == 1.0 and helped == 1.0
    assert none < 1.0 and silent == none  # nothing said: the same ranking as none
    effects = report.info["knowledge_effects"]
    assert effects["Helped + Noting"]["NDCG@10"]["delta"] == pytest.approx(helped - none)
    assert effects["Helped + Noting"]["NDCG@10"]["low"] > 0
    assert effects["Helped + Silent"]["NDCG@10"]["delta"] == 0.0
    assert effects["Helped + Silent"]["NDCG@10"]["p_test"] == 1.0
    notes = "\n".join(report.notes)
    assert "Helped + Noting: NDCG@10 +" in notes and "Helped + Silent: NDCG@10 +0.0000" in notes
    per_user = load_per_user(tmp_path / "run" / "stages" / "LLMRankingEvaluator.per_user.npz")
    assert sorted(per_user.values) == sorted(report.metrics) and len(per_user.units) == 6
    col = per_user.columns.index("NDCG@10")
    assert per_user.values["Helped + Noting"][:, col].mean() == pytest.approx(helped)


def test_without_knowledge_adds_the_bare_system(source: Any, tmp_path: Path) -> None:
    report = LLMRankingEvaluator(
        source,
        Helped(),
        samples=6,
        bootstrap=0,
        mode="score",
        knowledge=Noting("A"),
        without_knowledge=True,
    ).evaluate(ctx_for(tmp_path))
    assert list(report.metrics) == ["Helped", "Helped + Noting"]
    assert "Helped + Noting" in report.info["knowledge_effects"]


def test_knowledge_list_and_switch_are_checked(source: Any) -> None:
    with pytest.raises(ParamsError, match="knowledge: an empty list"):
        LLMRankingEvaluator(source, Recording(), knowledge=[])
    with pytest.raises(ParamsError, match="without_knowledge: there is no knowledge"):
        LLMRankingEvaluator(source, Recording(), without_knowledge=True)
    with pytest.raises(ParamsError, match="knowledge"):
        LLMRankingEvaluator(source, Recording(), knowledge=[Recording()])


class Blank(Recording):
    """Answers nothing readable for user 2; like Recording otherwise."""

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        if user_of(list(messages)[-1].content) == 2:
            self._seen.append(list(messages))
            return Completion("   ", model="blank")
        return super().chat(messages, **options)


def test_unusable_answers_are_counted_per_system(source: Any, tmp_path: Path) -> None:
    report = LLMRankingEvaluator(
        source, Blank(), samples=6, bootstrap=0, knowledge=[Noting()], without_knowledge=True
    ).evaluate(ctx_for(tmp_path))
    assert report.metrics["Blank"]["failure_rate"] == pytest.approx(1 / 6)
    assert report.metrics["Blank + Noting"]["failure_rate"] == pytest.approx(1 / 6)
    notes = "\n".join(report.notes)
    assert "Of 6 samples, unusable answers: 1 for Blank, 1 for Blank + Noting" in notes
    assert "samples failed" not in notes  # not added up over the systems
    systems = sorted(f["system"] for f in report.info["failed_samples"])
    assert systems == ["Blank", "Blank + Noting"]
