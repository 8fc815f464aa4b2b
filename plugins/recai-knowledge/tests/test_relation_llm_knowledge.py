"""knowledge-kgpaths.v1's relation_llm on the film fixture (knowledgekit): the model judges the
kinds of relation once at fit time, by yes/no log-probabilities where it can score, else by one
answer under a JSON schema; the graph then follows only the kinds it kept."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from knowledgekit import film_split

import recai
from recai.errors import ParamsError, RecaiError
from recai.types import Completion, ItemList, Message
from recai_knowledge.kgpaths import FAR, KGPathsKnowledge
from recai_knowledge.reljudge import NEUTRAL, RelationJudgeError

#: The fixture's kinds of relation (all five pass with min_informativeness 0).
KINDS = ["actor", "country", "director", "production company", "sequel"]
#: The film fixture with every relation left to the model (the country is no hub at 8).
OPEN = {"min_informativeness": 0.0, "max_degree": 8}


@pytest.fixture(scope="module")
def split() -> recai.Split:
    return film_split()


def kind_of(messages: Sequence[Message]) -> str:
    """The kind a scored question asks about (the default question's wording)."""
    found = re.search(r"are linked because (.+?)\. Is that", messages[-1].content)
    assert found is not None, messages[-1].content
    link = found.group(1)
    if link == NEUTRAL:
        return NEUTRAL
    shared = re.fullmatch(r"they have the same (.+)", link)
    direct = re.fullmatch(r"one is the (.+) of the other", link)
    assert shared or direct, link
    return (shared or direct).group(1)  # type: ignore[union-attr]


class YesNo(recai.LLMBackend):
    """Log-probabilities by hand: ``log P(yes) - log P(no)`` is ``bias + margins[kind]`` for a
    kind (``bias`` alone for the content-free question): a model that leans to "yes"."""

    def __init__(self, margins: dict[str, float], bias: float = 0.0) -> None:
        self.margins = margins
        self.bias = bias
        self.asked: list[tuple[str, list[str]]] = []
        self.questions: list[str] = []

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        raise AssertionError("a backend that scores is never asked to generate")

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        kind = kind_of(messages)
        self.asked.append((kind, list(continuations)))
        self.questions.append(messages[-1].content)
        m = self.bias + (0.0 if kind == NEUTRAL else self.margins[kind])
        # Yes/yes share log P(yes), No/no share log P(no); the case split is 3:1 both ways
        yes, no = -np.log1p(np.exp(-m)), -np.log1p(np.exp(m))
        return [yes + np.log(0.75), yes + np.log(0.25), no + np.log(0.75), no + np.log(0.25)]


class Asked(recai.LLMBackend):
    """Cannot score; answers the one question with ``reply`` (and records the options)."""

    def __init__(self, reply: str, schema: bool = True) -> None:
        self.reply = reply
        self.capabilities = frozenset({"json_schema"} if schema else set())
        self.calls: list[tuple[list[Message], dict[str, Any]]] = []

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        self.calls.append((list(messages), options))
        return Completion(self.reply)


def fitted(split: recai.Split, **params: Any) -> KGPathsKnowledge:
    k = KGPathsKnowledge(**params)
    k.fit(split)
    return k


PREFERS = {"director": 3.0, "sequel": 2.0, "actor": 1.0, "production company": 0.0, "country": -2.0}


# -- scoring ---------------------------------------------------------------------------------------
def test_the_top_share_of_kinds_by_yes_over_no_margin_is_kept(split: recai.Split) -> None:
    llm = YesNo(PREFERS, bias=5.0)
    k = fitted(split, relation_llm=llm, relation_keep=0.4, relation_domain="movies", **OPEN)
    # one question per kind and the content-free one, each scoring Yes/yes/No/no once
    assert sorted(kind for kind, _ in llm.asked) == sorted([NEUTRAL, *KINDS])
    assert all(conts == ["Yes", "yes", "No", "no"] for _, conts in llm.asked)
    assert all(q.startswith("We recommend movies to a person") for q in llm.questions)
    stats = k.relation_stats
    kept = {r for r, s in stats.items() if s["kept"]}
    assert kept == {"film.film.directed_by", "film.film.sequel"}  # ceil(0.4 x 5) = 2
    assert (
        "margin +3.00 (calibrated), rank 1; kept: top 2 of 5 kept"
        in (stats["film.film.directed_by"]["why"])
    )
    assert "rank 3; dropped" in stats["film.film.actor"]["why"]
    judged = k.describe()["relation_llm"]
    assert judged["method"] == "yes-no" and judged["kept"] == ["director", "sequel"]
    assert judged["baseline_margin"] == pytest.approx(5.0)  # the bias, removed from every kind
    assert judged["kinds"]["country"]["margin"] == pytest.approx(-2.0)
    # the graph follows only those: Heat-Ronin (actor) is gone, Heat-Collateral (director) not
    assert k.distances(np.array([0, 6]), np.array([1, 2, 7])).tolist() == [
        [FAR, 2, FAR],
        [FAR, FAR, 1],
    ]
    # the question is asked about movies, and never again per request
    asked = len(llm.asked)
    text = k.knowledge(history=ItemList([6, 0]), candidates=ItemList([2, 7, 1]))
    assert "shares the director Michael Mann" in text and "Robert De Niro" not in text
    assert len(llm.asked) == asked


def test_a_margin_keeps_the_kinds_above_it_after_calibration(split: recai.Split) -> None:
    # raw margins 8, 7, 6, 5, 3 would all pass 0.5: the bias of 5 is the model's, not the kind's
    k = fitted(split, relation_llm=YesNo(PREFERS, bias=5.0), relation_margin=0.5, **OPEN)
    kept = sorted(r for r, s in k.relation_stats.items() if s["kept"])
    assert kept == ["film.film.actor", "film.film.directed_by", "film.film.sequel"]
    assert "kept at margin >= 0.5" in k.relation_stats["film.film.actor"]["why"]


def test_the_llm_judges_only_what_the_other_pruning_left(split: recai.Split) -> None:
    llm = YesNo(PREFERS)
    k = fitted(
        split, relation_llm=llm, relation_keep=1.0, exclude_relations=["film.film.sequel"]
    )  # default min_informativeness: the country (0.0) is dropped before the model sees it
    assert sorted(kind for kind, _ in llm.asked) == sorted(
        [NEUTRAL, "actor", "director", "production company"]
    )
    stats = k.relation_stats
    assert stats["film.film.country"]["why"] == "informativeness 0.000 < min_informativeness 0.25"
    assert stats["film.film.sequel"]["why"] == "in exclude_relations"
    assert not stats["film.film.sequel"]["kept"] and stats["film.film.actor"]["kept"]


def test_unusable_scores_are_one_readable_error(split: recai.Split) -> None:
    class NaNs(YesNo):
        def score_continuations(self, messages, continuations):  # type: ignore[no-untyped-def]
            return [float("nan")] * len(continuations)

    with pytest.raises(RelationJudgeError, match="relation_llm: NaNs.score_continuations") as e:
        fitted(split, relation_llm=NaNs({}), **OPEN)
    assert e.value.exit_code == 2


class Statement(recai.LLMBackend):
    """Scores the sentences of the 'statement' judge: each kind's log-probability is its
    ``prior`` (how common the word is, in any context) plus ``lift[kind]`` when the request to
    finish the sentence is there (not after the content-free 'N/A')."""

    def __init__(self, prior: dict[str, float], lift: dict[str, float]) -> None:
        self.prior, self.lift = prior, lift
        self.calls: list[tuple[str, list[str]]] = []

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        raise AssertionError("a backend that scores is never asked to generate")

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        asked = messages[-1].content
        self.calls.append((asked, list(continuations)))
        out = []
        for c in continuations:
            kind = re.fullmatch(r".* with the same (.+)\.", c).group(1)  # type: ignore[union-attr]
            out.append(self.prior[kind] + (self.lift.get(kind, 0.0) if asked != NEUTRAL else 0.0))
        return out


def test_the_statement_judge_ranks_by_what_the_request_adds(split: recai.Split) -> None:
    # 'country' is the likeliest word anywhere (prior -1), but the request adds most to
    # 'director' and 'actor': pointwise mutual information ranks those first
    prior = {"actor": -4.0, "country": -1.0, "director": -5.0, "production company": -9.0}
    prior["sequel"] = -6.0
    llm = Statement(prior, {"director": 3.0, "actor": 2.0, "country": 0.5})
    k = fitted(split, relation_llm=llm, relation_judge="statement", relation_keep=0.4, **OPEN)
    assert len(llm.calls) == 2  # the request and the content-free prompt, every kind in each
    assert llm.calls[1][0] == NEUTRAL and llm.calls[0][0].startswith("Finish this sentence")
    assert llm.calls[0][1] == [
        f"When a person liked one of the items, a good recommendation is another one with the "
        f"same {kind}."
        for kind in KINDS
    ]
    judged = k.describe()["relation_llm"]
    assert judged["method"] == "statement" and judged["kept"] == ["actor", "director"]
    # centred on the mean lift (5.5 / 5 = 1.1)
    assert judged["kinds"]["director"]["margin"] == pytest.approx(1.9)
    assert judged["kinds"]["sequel"]["margin"] == pytest.approx(-1.1)
    assert (
        "statement score +1.90 (calibrated), rank 1; kept"
        in (k.relation_stats["film.film.directed_by"]["why"])
    )
    with pytest.raises(ParamsError, match="relation_question: is the question of"):
        KGPathsKnowledge(relation_llm=llm, relation_judge="statement", relation_question="{link}?")


# -- asking (a backend that cannot score) ----------------------------------------------------------
def test_a_backend_that_cannot_score_is_asked_once_under_a_schema(split: recai.Split) -> None:
    llm = Asked('{"relevant": ["director", "sequel"]}')
    k = fitted(split, relation_llm=llm, relation_domain="movies", **OPEN)
    assert len(llm.calls) == 1
    messages, options = llm.calls[0]
    schema = options["json_schema"]
    assert schema["properties"]["relevant"]["items"]["enum"] == KINDS
    assert "Two movies can be linked in these ways:\n- actor (they have the same actor)\n" in (
        messages[-1].content
    )
    assert "- sequel (one is the sequel of the other)\n" in messages[-1].content
    assert options["temperature"] == 0.0
    kept = sorted(r for r, s in k.relation_stats.items() if s["kept"])
    assert kept == ["film.film.directed_by", "film.film.sequel"]
    assert (
        "asked once under a JSON schema) did not name it"
        in (k.relation_stats["film.film.actor"]["why"])
    )
    assert k.describe()["relation_llm"]["method"] == "ask"


def test_without_a_schema_the_json_is_found_in_the_reply(split: recai.Split) -> None:
    llm = Asked('Sure! {"relevant": ["Actor"]} These matter most.', schema=False)
    k = fitted(split, relation_llm=llm, **OPEN)
    assert llm.calls[0][1]["json_schema"] is None
    assert [r for r, s in k.relation_stats.items() if s["kept"]] == ["film.film.actor"]


def test_a_reply_without_json_is_one_readable_error(split: recai.Split) -> None:
    with pytest.raises(RecaiError, match="relation_llm: Asked cannot score continuations") as e:
        fitted(split, relation_llm=Asked("director and sequel"), **OPEN)
    assert e.value.exit_code == 2 and "director and sequel" in str(e.value)


def test_a_verdict_that_keeps_nothing_is_not_applied(split: recai.Split) -> None:
    k = fitted(split, relation_llm=Asked('{"relevant": []}'), **OPEN)
    assert all(s["kept"] for s in k.relation_stats.values())
    assert "its verdict is not applied" in k.relation_stats["film.film.actor"]["why"]
    assert k.describe()["relation_llm"]["applied"] is False


# -- params ----------------------------------------------------------------------------------------
def test_llm_options_without_the_llm_are_named() -> None:
    with pytest.raises(ParamsError, match="relation_keep: applies only with relation_llm"):
        KGPathsKnowledge(relation_keep=0.3)
    with pytest.raises(ParamsError, match="relation_question"):
        KGPathsKnowledge(relation_llm=YesNo({}), relation_question="Is {relation} good?")
    with pytest.raises(ParamsError, match="give one"):
        KGPathsKnowledge(relation_llm=YesNo({}), relation_keep=0.3, relation_margin=1.0)
    with pytest.raises(ParamsError, match="relation_keep"):
        recai.create("knowledge_prompter", "knowledge-kgpaths.v1", relation_keep=0)


def test_built_through_the_registry_the_defaults_stay_defaults(split: recai.Split) -> None:
    # a recipe builds through the registry, which passes every param to the class: an unset
    # relation_keep must not read as given
    plain = recai.create("knowledge_prompter", "knowledge-kgpaths.v1")
    assert plain.params.relation_keep is None
    llm = YesNo(PREFERS)
    k = recai.create(
        "knowledge_prompter", "knowledge-kgpaths.v1", relation_llm=llm, relation_margin=0.5, **OPEN
    )
    k.fit(split)
    assert sorted(r for r, s in k.relation_stats.items() if s["kept"]) == [
        "film.film.actor",
        "film.film.directed_by",
        "film.film.sequel",
    ]
    assert all("Two items are linked" in q for q in llm.questions)  # the default domain


def test_a_custom_question_is_scored(split: recai.Split) -> None:
    class Custom(YesNo):
        def score_continuations(self, messages, continuations):  # type: ignore[no-untyped-def]
            kind = messages[-1].content.split("'")[1].split()[-1]
            self.asked.append((kind, list(continuations)))
            return [0.0, -9.0, -1.0 - self.margins.get(kind, 0.0), -9.0]

    llm = Custom({"director": 2.0, "sequel": 1.0})
    k = fitted(
        split,
        relation_llm=llm,
        relation_keep=0.2,
        relation_question="Do fans of {domain} care that '{link}'?",
        **OPEN,
    )
    assert [r for r, s in k.relation_stats.items() if s["kept"]] == ["film.film.directed_by"]


# -- the embedded model ----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.integration
def test_the_embedded_model_judges_the_relations_by_scoring(split: recai.Split) -> None:
    if "hf.v1" not in recai.get_plugin_manager().registry():
        pytest.skip("hf.v1 (recai-hf) is not installed")
    brain = recai.create("llm_backend", "hf.v1", threads=1)
    k = fitted(split, relation_llm=brain, relation_domain="movies", **OPEN)
    judged = k.describe()["relation_llm"]
    assert judged["method"] == "yes-no" and judged["applied"]  # it scores: no generation
    margins = [judged["kinds"][kind]["margin"] for kind in KINDS]
    assert all(np.isfinite(margins)) and len(set(margins)) > 1  # the kinds differ
    assert sorted(judged["kinds"][kind]["rank"] for kind in KINDS) == [1, 2, 3, 4, 5]
    assert len(judged["kept"]) == 3  # ceil(0.5 x 5), the highest margins
    best = sorted(KINDS, key=lambda kind: -judged["kinds"][kind]["margin"])[:3]
    assert sorted(judged["kept"]) == sorted(best)
    again = fitted(split, relation_llm=brain, relation_domain="movies", **OPEN)
    assert again.describe()["relation_llm"] == judged  # scoring is deterministic
