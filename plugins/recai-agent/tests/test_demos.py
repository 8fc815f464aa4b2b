"""Demonstrations: the film seeds, the selector, the filter and the generator (through a
scripted LLM double), on MovieLens-100K and a Steam-like catalog."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from test_slots import steam_catalog  # type: ignore[import-not-found]  # beside this file

from recai.data import Catalog
from recai.types import Completion
from recai_agent.demos import (
    FILM_DEMOS,
    Demo,
    DemoSelector,
    format_demos,
    generate_demos,
    keep_demo,
    skeleton,
)
from recai_agent.plan import plan_schema, validate_plan
from recai_agent.slots import SlotExtractor

TOOLS = ["lookup", "hard_filter", "soft_filter", "ranking", "map"]


@pytest.fixture(scope="module")
def ex(ml: Catalog) -> SlotExtractor:
    return SlotExtractor(ml)


@pytest.fixture(scope="module")
def selector(ml: Catalog) -> DemoSelector:
    return DemoSelector(FILM_DEMOS, catalog=ml)


def test_film_demos_are_many_varied_valid_and_say_what_they_plan(ml, ex):
    assert 20 <= len(FILM_DEMOS) <= 40
    assert len({d.request for d in FILM_DEMOS}) == len(FILM_DEMOS)
    assert len({skeleton(d.plan) for d in FILM_DEMOS}) >= 5
    schema = plan_schema(TOOLS, ml)
    for demo in FILM_DEMOS:
        plan, problems = validate_plan(demo.plan, schema, ml)
        assert problems == [], (demo.request, problems)
        ok, why = keep_demo(demo, ex)
        assert ok, (demo.request, why)


@pytest.mark.parametrize(
    ("request_text", "nearest"),
    [
        ("a funny cartoon", "an animated comedy"),  # no shared word: the slots match
        ("something like Jurassic Park", "something like Toy Story"),
        ("who wrote Heat?", "who directed Fargo?"),
        ("popular comedies", "the most popular westerns"),
        ("a movie about space pirates", "movies with time travel"),
    ],
)
def test_the_selector_finds_the_nearest_demo(selector, request_text, nearest):
    assert selector.select(request_text, k=3)[0].request == nearest


def test_the_selector_shows_varied_skeletons(selector):
    chosen = selector.select("a thriller from the 90s", k=3)
    assert len(chosen) == 3
    assert len({skeleton(d.plan) for d in chosen}) == 3
    assert "Request: " in format_demos(chosen) and "Plan: {" in format_demos(chosen)
    assert selector.select("anything", k=0) == []


def test_demos_invalid_for_another_catalog_are_left_out():
    cat = steam_catalog()
    sel = DemoSelector(FILM_DEMOS, catalog=cat)
    assert sel.dropped > 20  # film genres and titles are not Steam's
    schema = plan_schema(TOOLS, cat)
    assert all(validate_plan(d.plan, schema, cat)[1] == [] for d in sel.demos)
    requests = {d.request for d in sel.demos}
    assert "give me a varied mix of adventure films" in requests  # Steam has Adventure
    assert "an animated comedy" not in requests and "sci-fi from the 80s" not in requests


def test_an_encoder_replaces_the_tfidf_fallback():
    demos = [Demo(f"request {i}", {"steps": [{"tool": "map", "input": {}}]}) for i in range(4)]
    calls = []

    def encode(texts):  # a fake embedding: request 2 points where every query points
        calls.append(list(texts))
        return np.array([[1.0, 0.0] if t in ("request 2", "q") else [0.0, 1.0] for t in texts])

    sel = DemoSelector(demos, encode=encode)
    assert sel.select("q", k=1)[0].request == "request 2"
    assert calls == [[d.request for d in demos], ["q"]]


def test_keep_demo_refuses_bad_order_unreadable_requests_and_copies(ex):
    good = Demo(
        "a comedy from the 80s",
        {"steps": [
            {"tool": "hard_filter", "input": {"genres": ["Comedy"], "year_min": 1980, "year_max": 1989}},
            {"tool": "ranking", "input": {"by": "preference"}},
            {"tool": "map", "input": {}},
        ]},
    )  # fmt: skip
    assert keep_demo(good, ex) == (True, "")
    bad_order = Demo(good.request, {"steps": list(reversed(good.plan["steps"]))})
    assert keep_demo(bad_order, ex)[1].startswith("tools out of order")
    unreadable = Demo("a movie please", good.plan)
    assert "does not say genres" in keep_demo(unreadable, ex)[1]
    wrong_title = Demo(
        "something like Fargo",
        {"steps": [
            {"tool": "soft_filter", "input": {"seeds": ["Heat (1995)"]}},
            {"tool": "ranking", "input": {"by": "preference"}},
            {"tool": "map", "input": {}},
        ]},
    )  # fmt: skip
    assert "does not name" in keep_demo(wrong_title, ex)[1]
    assert "too close" in keep_demo(Demo("a comedy from the 80s!", good.plan), ex, [good])[1]
    same = [Demo(f"a {g} film", good.plan) for g in ("war", "crime", "noir", "western", "drama")]
    fresh = Demo("comedies made in the eighties", good.plan)
    assert "already" in keep_demo(fresh, ex, same)[1]


class ScriptedWriter:
    """An LLM double that writes the request a plan answers (or nonsense every third call)."""

    def __init__(self):
        self.calls = 0

    def chat(self, messages, **options):
        self.calls += 1
        plan = json.loads(messages[-1].content)
        if self.calls % 3 == 0:
            return Completion(text="I like turtles", finish_reason="stop")
        steps = {s["tool"]: s["input"] for s in plan["steps"]}
        hard = steps.get("hard_filter", {})
        words = ["I want"]
        words += [" and ".join(hard.get("genres", [])) or "a"] + ["movie"]
        if "year_min" in hard:
            words.append(f"from the {hard['year_min']}s")
        if hard.get("not_genres"):
            words.append(f"but no {hard['not_genres'][0]}")
        if "soft_filter" in steps:
            words.append(f', like "{steps["soft_filter"]["seeds"][0]}"')
        if steps["ranking"]["by"] == "popularity":
            words.insert(1, "a popular")
        return Completion(text=" ".join(words), finish_reason="stop")


def test_generate_demos_keeps_readable_varied_pairs(ml):
    llm = ScriptedWriter()
    kept, refused = generate_demos(llm, ml, 8, seed=3)
    assert 1 <= len(kept) <= 8 and llm.calls <= 32
    ex = SlotExtractor(ml)
    for i, demo in enumerate(kept):
        assert keep_demo(demo, ex, kept[:i])[0], demo
    assert refused  # the nonsense requests were refused
    assert all(isinstance(n, int) for n in Counter(refused).values())
    again, _ = generate_demos(ScriptedWriter(), ml, 8, seed=3)
    assert again == kept  # seeded
