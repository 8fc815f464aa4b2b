"""The labelled request set: every kind, gold plans in the agent's format that their targets
ground back to, train and test disjoint (templates, phrasings, titles, texts), deterministic by
seed, JSONL in and out; on MovieLens-100K and the film fixture."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest
from agentkit import film_catalog  # type: ignore[import-not-found]  # beside this file

from recai.data import Catalog, Dataset
from recai.errors import DataError
from recai_agent.plan import ORDER, plan_from_slots, validate_plan
from recai_agent.plannereval import planner_schema
from recai_agent.requests import (
    KINDS,
    TEMPLATES,
    YEAR_PHRASES,
    generate,
    read_jsonl,
    said_title,
    write_jsonl,
)


@pytest.fixture(scope="module")
def ml(ml_dataset: Dataset) -> Dataset:
    return ml_dataset


@pytest.fixture(scope="module")
def counts(ml_counts: np.ndarray) -> np.ndarray:
    return ml_counts


@pytest.fixture(scope="module")
def test_set(ml, counts):
    return generate(ml.catalog, "test", 600, seed=0, counts=counts)


@pytest.fixture(scope="module")
def train_set(ml, counts):
    return generate(ml.catalog, "train", 1500, seed=1, counts=counts)


def test_held_out_set_has_over_500_distinct_requests_of_every_kind(test_set):
    assert len(test_set) == 600
    assert len({r.request.lower() for r in test_set}) == 600
    kinds = Counter(r.kind for r in test_set)
    assert set(kinds) == set(KINDS), kinds
    assert all(kinds[k] >= 5 for k in KINDS), kinds


def test_gold_plans_follow_the_tool_order_and_targets_ground_back_to_them(ml, test_set):
    schema = planner_schema(ml.catalog)
    for r in test_set:
        tools = [s["tool"] for s in r.plan["steps"]]
        if r.kind == "chit_chat":
            assert tools == []
            continue
        assert tools == sorted(tools, key=ORDER.index) and tools[-2:] == ["ranking", "map"]
        got, problems = validate_plan(r.target, schema, ml.catalog)
        assert got is not None, (r.request, problems)
        assert got.to_dict() == r.plan, r.request


def test_gold_plans_say_what_the_request_says(ml, test_set):
    by_kind = {k: [r for r in test_set if r.kind == k] for k in KINDS}
    for r in by_kind["like_title"]:
        seeds = next(s["input"]["seeds"] for s in r.plan["steps"] if s["tool"] == "soft_filter")
        target = next(s["input"]["seeds"] for s in r.target["steps"] if s["tool"] == "soft_filter")
        assert all(t in r.request for t in target), r.request  # copied as said
        assert all(t in ml.catalog.titles for t in seeds)  # gold: exact catalog titles
    for r in by_kind["popularity"]:
        rank = next(s["input"] for s in r.plan["steps"] if s["tool"] == "ranking")
        hidden = re.search(r"hidden|underrated|lesser|obscure|little", r.request, re.I)
        assert rank == (
            {"by": "preference", "mode": "diversity"}
            if hidden
            else {"by": "popularity", "mode": "accuracy"}
        ), r.request
    for r in by_kind["profile"]:
        assert r.plan == {
            "steps": [
                {"tool": "ranking", "input": {"by": "preference", "mode": "accuracy"}},
                {"tool": "map", "input": {}},
            ]
        }
    decades = [r for r in by_kind["years"] if re.search(r"\b(?:the )?(?:19)?80s\b", r.request)]
    for r in decades:
        hard = r.plan["steps"][0]["input"]
        if "early" not in r.request and "late" not in r.request:
            assert (hard["year_min"], hard["year_max"]) == (1980, 1989), r.request


def test_the_gold_plan_is_the_agents_own_plan_format(ml, test_set):
    """A gold plan is what plan_from_slots writes for the same slots."""
    from recai_agent.slots import Slots

    for r in test_set[:100]:
        s = r.slots
        title_ids = {t: list(ml.catalog.titles).index(t) for t in s["seeds"] + s["unwanted"]}
        slots = Slots(
            intent="chat" if r.kind == "chit_chat" else "recommend",
            genres=s["genres"],
            not_genres=s["not_genres"],
            year_min=s["year_min"],
            year_max=s["year_max"],
            liked=[title_ids[t] for t in s["seeds"]],
            disliked=[title_ids[t] for t in s["unwanted"]],
            popular=s["popular"],
            titles={i: t for t, i in title_ids.items()},
        )
        assert plan_from_slots(slots).to_dict() == r.plan


def test_train_and_test_share_no_template_phrasing_title_or_text(ml, test_set, train_set):
    for kind, (train, test) in [*TEMPLATES.items(), *YEAR_PHRASES.items()]:
        assert not set(train) & set(test), kind
    assert {r.template.split("/")[1] for r in test_set} == {"1"}
    assert {r.template.split("/")[1] for r in train_set} == {"0"}
    assert not {r.request.lower() for r in test_set} & {r.request.lower() for r in train_set}

    def titles(reqs):
        return {t for r in reqs for t in r.slots["seeds"] + r.slots["unwanted"]}

    assert titles(test_set) and titles(train_set)
    assert not titles(test_set) & titles(train_set)
    # a test year phrasing never appears in a training request
    fill = {"a": r"\d{4}", "b": r"\d{4}", "d2": r"\d\d", "d4": r"\d{4}", "w": r"[a-z]+ies"}
    for _train, test in YEAR_PHRASES.values():
        for phrase in test:
            pattern = re.compile(
                r"\b"
                + re.escape(phrase).replace(r"\{", "{").replace(r"\}", "}").format(**fill)
                + r"\b"
            )
            assert not any(pattern.search(r.request) for r in train_set), phrase
            assert any(pattern.search(r.request) for r in test_set), phrase


def test_generation_is_deterministic_by_seed(ml, counts, test_set):
    again = generate(ml.catalog, "test", 600, seed=0, counts=counts)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in test_set]
    other = generate(ml.catalog, "test", 600, seed=1, counts=counts)
    assert [r.request for r in other] != [r.request for r in test_set]


def test_misspelt_requests_keep_their_gold_plan_and_differ_from_every_clean_phrase(test_set):
    miss = [r for r in test_set if r.kind == "misspelling"]
    assert len(miss) >= 20
    clean = {r.request.lower() for r in test_set if r.kind != "misspelling"}
    assert not any(r.request.lower() in clean for r in miss)
    assert all(r.plan["steps"] for r in miss)


def test_the_film_fixture_gets_a_set_too():
    cat = film_catalog()
    reqs = generate(cat, "test", 120, seed=0)
    assert len(reqs) == 120
    assert {r.kind for r in reqs} == set(KINDS)
    assert all(t in cat.titles for r in reqs for t in r.slots["seeds"])


def test_jsonl_round_trip_and_a_bad_line_names_file_and_line(tmp_path, test_set):
    path = tmp_path / "requests.jsonl"
    assert write_jsonl(test_set[:50], path) == 50
    back = read_jsonl(path)
    assert [r.to_dict() for r in back] == [r.to_dict() for r in test_set[:50]]
    lines = path.read_text().splitlines()
    lines[6] = json.dumps({"request": "hi"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        read_jsonl(path)
    assert f"{path}:7:" in str(e.value) and "plan" in str(e.value)
    with pytest.raises(DataError, match="cannot read"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_bad_split_kind_and_too_many_requests_are_readable_errors():
    cat = film_catalog()
    with pytest.raises(DataError, match="split must be"):
        generate(cat, "dev", 10)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="unknown request kinds"):
        generate(cat, "test", 10, kinds=["jokes"])
    with pytest.raises(DataError, match="supports only"):
        generate(cat, "test", 50, kinds=["chit_chat"])


def test_said_title_is_how_people_type_a_title():
    assert said_title("Godfather, The (1972)") == "The Godfather"
    assert said_title("Toy Story (1995)") == "Toy Story"
    assert said_title("Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)") is None


def test_a_catalog_without_years_or_titles_still_generates_what_it_can():
    cat = Catalog(
        ids=[1, 2, 3, 4],
        titles=["Alpha", "Beta", "Gamma", "Delta"],
        fields={"genres": [("Strategy",), ("RPG",), ("Strategy", "Indie"), ("Indie",)]},
    )
    reqs = generate(cat, "train", 30, seed=0)
    assert len(reqs) == 30
    assert all(r.slots["year_min"] is None and r.slots["year_max"] is None for r in reqs)


def test_the_training_family_is_much_wider_than_the_test_family(train_set, test_set):
    """A 135M planner memorised a few templates a kind in one epoch: training phrasings
    outnumber the test family's several times, and training requests come dressed (openings,
    endings, lower case) while held-out requests never do."""
    for kind, (train, test) in TEMPLATES.items():
        assert len(train) >= 2 * len(test), kind
    assert len({r.template for r in train_set}) >= 3 * len({r.template for r in test_set})
    openers = ("hey, ", "quick question: ", "hmm, ", "so, ", "well, ")
    dressed = [r for r in train_set if r.request.lower().startswith(openers)]
    assert len(dressed) >= len(train_set) // 20
    assert not any(r.request.lower().startswith(openers) for r in test_set)


def test_early_and_late_phrasings_keep_their_part_of_the_decade(train_set, test_set):
    """Every phrasing of "early"/"late" (digits or the decade's word) has the gold range of that
    part: a catalog decade without a word falls back to a digit phrasing of the same kind."""
    seen = Counter()
    for r in [*train_set, *test_set]:
        m = re.search(r"\b(early|late) (?:the )?(\d\ds|\d{4}s|[a-z]+ies)\b", r.request.lower())
        if m is None or r.kind == "misspelling":
            continue
        hard = next(s["input"] for s in r.plan["steps"] if s["tool"] == "hard_filter")
        lo, hi = hard["year_min"], hard["year_max"]
        assert hi - lo == 3 and (lo % 10 == 0) == (m.group(1) == "early"), r.request
        seen[m.group(1)] += 1
    assert seen["early"] >= 5 and seen["late"] >= 5
