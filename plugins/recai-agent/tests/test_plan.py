"""Plans: the schema from tools and catalog, validation, repair, the slots' plan and the merge.

Real catalogs (MovieLens-100K, a synthetic one), the real slot extractor; jsonschema cross-checks
the validator where installed; one slow test decodes a plan with hf.v1 under the schema."""

from __future__ import annotations

import json
import random

import pytest
from slots_labelled import LABELLED  # type: ignore[import-not-found]  # beside this file

from recai.data import Catalog
from recai.data.grounding import Grounder
from recai.data.synthetic import synthetic_dataset
from recai.types import Message
from recai_agent.plan import (
    Plan,
    close_json,
    merge,
    plan_from_slots,
    plan_schema,
    repair_plan,
    schema_errors,
    validate_plan,
)
from recai_agent.slots import SlotExtractor

TOOLS = ["lookup", "hard_filter", "soft_filter", "ranking", "map"]


@pytest.fixture(scope="module")
def grounder(ml: Catalog) -> Grounder:
    return Grounder(ml)


@pytest.fixture(scope="module")
def ex(ml: Catalog, grounder: Grounder) -> SlotExtractor:
    return SlotExtractor(ml, grounder)


@pytest.fixture(scope="module")
def schema(ml: Catalog) -> dict:
    return plan_schema(TOOLS, ml)


def steps(*pairs) -> dict:
    return {"steps": [{"tool": t, "input": i} for t, i in pairs]}


GOOD = steps(
    ("hard_filter", {"genres": ["Comedy"], "year_min": 1990, "year_max": 1999}),
    ("soft_filter", {"seeds": ["toy story"]}),
    ("ranking", {"by": "preference", "mode": "accuracy"}),
    ("map", {}),
)


# ---- the schema ----------------------------------------------------------------------------------


def test_schema_has_the_skeletons_catalog_enums_and_year_range(schema, ml):
    variants = schema["properties"]["steps"]["anyOf"]
    skeletons = [[r["$ref"].rsplit("/", 1)[1] for r in v["prefixItems"]] for v in variants]
    assert skeletons == [
        ["lookup"],
        ["hard_filter", "soft_filter", "ranking", "map"],
        ["hard_filter", "ranking", "map"],
        ["soft_filter", "ranking", "map"],
        ["ranking", "map"],
    ]
    hard = schema["$defs"]["hard_filter"]["properties"]["input"]["properties"]
    genres = {g for gs in ml.fields["genres"] for g in gs}
    assert set(hard["genres"]["items"]["enum"]) == genres
    assert (hard["year_min"]["minimum"], hard["year_max"]["maximum"]) == (1920, 1999)  # decades
    seeds = schema["$defs"]["soft_filter"]["properties"]["input"]["anyOf"][0]
    assert seeds["properties"]["seeds"]["items"] == {"type": "string", "maxLength": 80}
    assert len(json.dumps(schema)) < 4000  # small enough to go into a 135M model's prompt


def test_schema_follows_the_tools_and_a_small_catalogs_titles():
    cat = synthetic_dataset(n_users=20, n_items=30, seed=2).catalog
    schema = plan_schema(["hard_filter", "ranking", "map"], cat)
    assert "anyOf" not in schema["properties"]["steps"] or all(
        "soft_filter" not in json.dumps(v) for v in schema["properties"]["steps"]["anyOf"]
    )
    assert set(schema["$defs"]) == {"hard_filter", "ranking", "map"}
    hard = schema["$defs"]["hard_filter"]["properties"]["input"]["properties"]
    assert set(hard["genres"]["items"]["enum"]) == set(cat.fields["category"])
    assert "tags" in hard and "price_max" in hard and "year_min" in hard
    prefer = schema["$defs"]["ranking"]["properties"]["input"]["properties"]["prefer"]
    assert set(prefer["items"]["enum"]) == set(cat.titles)  # 30 titles: an enum
    with pytest.raises(ValueError, match="no plan skeleton"):
        plan_schema(["hard_filter"], cat)


def test_schema_is_valid_json_schema_and_agrees_with_jsonschema(schema):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    samples = [
        GOOD,
        steps(("lookup", {"sql": "SELECT title FROM items WHERE year = 1995"})),
        steps(("lookup", {"sql": "DELETE FROM items"})),
        steps(("lookup", {"sql": "SELECT 1; DROP TABLE items"})),
        steps(("ranking", {"by": "preference"}), ("map", {})),
        steps(("map", {}), ("ranking", {"by": "preference"})),
        steps(
            ("hard_filter", {"genres": ["Comedy", "Scifi"]}), ("ranking", {"by": "x"}), ("map", {})
        ),
        steps(("hard_filter", {"year_min": 1800}), ("ranking", {"by": "popularity"}), ("map", {})),
        steps(("hard_filter", {"colour": "red"}), ("ranking", {"by": "popularity"}), ("map", {})),
        steps(("soft_filter", {"text": "x" * 200}), ("ranking", {"by": "popularity"}), ("map", {})),
        steps(("soft_filter", {"seeds": []}), ("ranking", {"by": "popularity"}), ("map", {})),
        {"steps": []},
        {"plan": []},
        [],
    ]
    for obj in samples:
        mine = schema_errors(obj, schema)
        assert (not mine) == validator.is_valid(obj), (obj, mine)


def test_recai_hf_compiles_the_schema(schema):
    jc = pytest.importorskip("recai_hf.jsonconstraint")
    pytest.importorskip("llguidance")
    constraint = jc.JSONConstraint(schema)
    assert constraint.warnings == []


# ---- validation ----------------------------------------------------------------------------------


def test_a_valid_plan_passes_with_titles_made_exact(schema, ml, grounder):
    plan, problems = validate_plan(GOOD, schema, ml, grounder)
    assert problems == []
    assert plan.tools == ["hard_filter", "soft_filter", "ranking", "map"]
    assert plan.step("soft_filter").input == {"seeds": ["Toy Story (1995)"]}
    assert plan.source == "model"


@pytest.mark.parametrize(
    ("obj", "expect"),
    [
        (steps(("map", {}), ("ranking", {"by": "preference"})), "expected"),
        (
            steps(
                ("hard_filter", {"genres": ["Scifi"]}),
                ("ranking", {"by": "popularity"}),
                ("map", {}),
            ),
            "'Scifi' is not one of",
        ),
        (
            steps(
                ("soft_filter", {"seeds": ["Quantum Llamas of Mars"]}),
                ("ranking", {"by": "preference"}),
                ("map", {}),
            ),
            "matches no catalog title",
        ),
        (steps(("lookup", {"sql": "SELECT 1; DROP TABLE items"})), "does not match"),
        (
            steps(
                ("hard_filter", {"year_min": 1995, "year_max": 1990}),
                ("ranking", {"by": "popularity"}),
                ("map", {}),
            ),
            "after year_max",
        ),
        ({"steps": []}, "no steps"),
        ({"steps": "all of them"}, '"steps" list'),
        ("not json at all", "does not parse"),
        (None, '"steps" list'),
        (42, '"steps" list'),
        ({"steps": [1, 2]}, "every step"),
    ],
)
def test_invalid_plans_are_reported_never_raised(schema, ml, grounder, obj, expect):
    plan, problems = validate_plan(obj, schema, ml, grounder)
    assert plan is None and problems
    assert any(expect in p for p in problems), problems


# ---- repair --------------------------------------------------------------------------------------


def test_repair_closes_a_reply_cut_by_max_tokens(schema, ml, grounder):
    cut = json.dumps(GOOD)[:-30]
    assert json.loads(close_json(cut))  # parses
    plan = repair_plan(cut, schema, ml, grounder)
    assert plan is not None and plan.tools == ["hard_filter", "soft_filter", "ranking", "map"]
    assert plan.step("hard_filter").input["genres"] == ["Comedy"]
    assert any("cut short" in n for n in plan.notes)


def test_repair_maps_names_values_and_titles_to_real_ones(schema, ml, grounder):
    text = (
        "Sure! Here is the plan:\n```json\n"
        + json.dumps(
            {
                "plan": [
                    {"action": "Rank", "args": {"by": "popular"}},
                    {
                        "name": "filter",
                        "parameters": {
                            "genre": ["comedies", "scifi"],
                            "year_from": "1980s",
                            "year_to": 2050,
                        },
                    },
                    {
                        "tool": "similar",
                        "input": {"seeds": ["jurasic park", "No Such Film At All"]},
                    },
                    {"tool": "launch_missiles", "input": {}},
                ]
            }
        )
        + "\n```"
    )
    plan = repair_plan(text, schema, ml, grounder)
    assert plan.tools == ["hard_filter", "soft_filter", "ranking", "map"]
    hard = plan.step("hard_filter").input
    assert hard == {"genres": ["Comedy", "Sci-Fi"], "year_min": 1980, "year_max": 1999}
    assert plan.step("soft_filter").input == {"seeds": ["Jurassic Park (1993)"]}
    assert plan.step("ranking").input["by"] == "popularity"
    notes = " | ".join(plan.notes)
    assert "launch_missiles" in notes and "No Such Film" in notes and "2050" in notes
    assert plan.source == "repaired"
    fixed, problems = validate_plan(plan.to_dict(), schema, ml, grounder)
    assert problems == [] and fixed is not None


def test_repair_fixes_order_and_drops_impossible_steps(schema, ml, grounder):
    plan = repair_plan(
        steps(
            ("map", {}),
            ("lookup", {"sql": "SELECT * FROM items"}),
            ("hard_filter", {"genres": ["Nonsense Genre"]}),
            ("soft_filter", {"seeds": ["Fargo"]}),
        ),
        schema,
        ml,
        grounder,
    )
    assert plan.tools == ["soft_filter", "ranking", "map"]
    assert "lookup mixed with filters" in " ".join(plan.notes)
    lookup = repair_plan(
        {"tool": "sql", "input": "SELECT title FROM items LIMIT 3"}, schema, ml, grounder
    )
    assert lookup.to_dict() == steps(("lookup", {"sql": "SELECT title FROM items LIMIT 3"}))
    assert repair_plan(steps(("lookup", {"sql": "DROP TABLE items"})), schema, ml, grounder) is None
    assert repair_plan("no plan here", schema, ml, grounder) is None


def test_repair_and_validate_never_raise_on_garbage(schema, ml, grounder):
    rng = random.Random(0)
    pieces = [
        "{",
        "}",
        "[",
        "]",
        '"steps"',
        ":",
        ",",
        '"tool"',
        '"input"',
        '"ranking"',
        '"map"',
        '"genres"',
        '["Comedy"]',
        "null",
        "1e999",
        "-1",
        '"\\u0000"',
        '{"by": 3}',
        "true",
    ]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
        plan = repair_plan(text, schema, ml, grounder)
        assert plan is None or isinstance(plan, Plan)
        if plan is not None and plan.tools != ["lookup"]:
            assert plan.tools[-2:] == ["ranking", "map"]
        try:
            obj = json.loads(text)
        except ValueError:
            obj = text
        validate_plan(obj, schema, ml, grounder)


# ---- the slots' plan and the merge ---------------------------------------------------------------


def test_plan_from_slots(ex):
    plan = plan_from_slots(ex.extract("something funny like Toy Story but no horror, from the 90s"))
    assert plan.to_dict() == steps(
        (
            "hard_filter",
            {"genres": ["Comedy"], "not_genres": ["Horror"], "year_min": 1990, "year_max": 1999},
        ),
        ("soft_filter", {"seeds": ["Toy Story (1995)"]}),
        ("ranking", {"by": "preference", "mode": "accuracy"}),
        ("map", {}),
    )
    plan = plan_from_slots(ex.extract("popular westerns, I hated Unforgiven"))
    assert plan.step("ranking").input == {
        "by": "popularity",
        "mode": "accuracy",
        "unwanted": ["Unforgiven (1992)"],
    }
    assert plan_from_slots(ex.extract("hidden gems")).step("ranking").input["mode"] == "diversity"
    look = plan_from_slots(ex.extract("who directed Fargo?"))
    assert look.tools == ["lookup"] and "item IN (" in look.steps[0].input["sql"]
    assert plan_from_slots(ex.extract("hello!")).steps == []


def test_every_slots_plan_of_the_labelled_requests_is_valid_under_the_schema(
    ex, schema, ml, grounder
):
    for text, _ in LABELLED:
        slots = ex.extract(text)
        plan = plan_from_slots(slots)
        if not plan.steps:
            assert slots.intent == "chat"
            continue
        _, problems = validate_plan(plan.to_dict(), schema, ml, grounder)
        assert problems == [], (text, plan.to_dict(), problems)


def test_merge_keeps_the_requests_values_and_drops_the_models_inventions(ex):
    slots = ex.extract("a funny movie from the 90s")
    # what SmolLM2-135M wrote under the schema: every enum it saw, the full year range
    model = repair_plan(
        steps(
            (
                "hard_filter",
                {
                    "genres": ["Action", "Adventure", "Animation"],
                    "not_genres": ["Comedy"],
                    "year_min": 1922,
                    "year_max": 1998,
                },
            ),
            ("soft_filter", {"seeds": ["Fargo"]}),
            ("ranking", {"by": "preference", "mode": "diversity"}),
            ("map", {}),
        ),
        None,
        ex.catalog,
        ex.grounder,
    )
    plan = merge(model, slots)
    assert plan.step("hard_filter").input == {
        "genres": ["Comedy"],
        "year_min": 1990,
        "year_max": 1999,
    }
    assert plan.step("soft_filter") is None  # Fargo is not in the request
    assert plan.step("ranking").input == {
        "by": "preference",
        "mode": "diversity",
    }  # the model's mode
    assert plan.source == "merged" and any("not_genres" in n for n in plan.notes)
    trusted = merge(model, slots, model_values=True)
    assert trusted.step("hard_filter").input["genres"] == ["Comedy"]  # the request still wins
    # the model refused what the request asks for: the request wins, the refusal goes
    assert "not_genres" not in trusted.step("hard_filter").input
    assert trusted.step("soft_filter").input == {"seeds": ["Fargo (1996)"]}


def test_merge_keeps_a_title_liked_for_certain_and_drops_unnamed_unwanted_titles(ex):
    def valid(*given: tuple[str, dict]) -> Plan:
        plan = validate_plan(
            steps(*given), plan_schema(TOOLS, ex.catalog), ex.catalog, ex.grounder
        )[0]
        assert plan is not None
        return plan

    def model(*unwanted: str) -> Plan:
        return valid(("ranking", {"by": "preference", "unwanted": list(unwanted)}), ("map", {}))

    def model_seed(*seeds: str) -> Plan:
        return valid(
            ("soft_filter", {"seeds": list(seeds)}), ("ranking", {"by": "preference"}), ("map", {})
        )

    # the tuned 135M planner read "I really enjoyed X." as a dislike; "enjoyed" is a cue
    liked = ex.extract("I really enjoyed Rob Roy. Recommend similar ones")
    assert liked.confidence["polarity"] == 1.0
    plan = merge(model("Rob Roy (1995)"), liked)
    assert plan.step("soft_filter").input == {"seeds": ["Rob Roy (1995)"]}
    assert "unwanted" not in plan.step("ranking").input
    # a trusted model's reading wins ("My wife liked Heat, I found it boring")
    trusted = merge(model("Rob Roy (1995)"), liked, model_values=True)
    assert trusted.step("soft_filter") is None
    assert trusted.step("ranking").input["unwanted"] == ["Rob Roy (1995)"]
    # no cue or verdict around the title: liked only by default, so the model's reading wins
    awful = ex.extract("Boogie Nights. Show me horror films")
    assert awful.liked and awful.confidence["polarity"] < 0.8
    plan = merge(model("Boogie Nights (1997)"), awful)
    assert plan.step("soft_filter") is None
    assert plan.step("ranking").input["unwanted"] == ["Boogie Nights (1997)"]
    # a verdict after the title is certain: an untrusted model's liking does not flip it
    verdict = ex.extract("Boogie Nights was awful; show me horror films")
    assert verdict.disliked and not verdict.liked and verdict.confidence["polarity"] == 1.0
    plan = merge(model_seed("Boogie Nights (1997)"), verdict)
    assert plan.step("soft_filter") is None
    assert plan.step("ranking").input["unwanted"] == ["Boogie Nights (1997)"]
    # a title the request does not name is not added as unwanted unless model_values
    genre = ex.extract("I hate action movies, suggest something else")
    plan = merge(model("Last Action Hero (1993)"), genre)
    assert "unwanted" not in plan.step("ranking").input
    assert any("not in the request" in n for n in plan.notes)
    trusted = merge(model("Last Action Hero (1993)"), genre, model_values=True)
    assert trusted.step("ranking").input["unwanted"] == ["Last Action Hero (1993)"]


def test_merge_on_intents(ex):
    lookup_model = repair_plan(
        steps(("lookup", {"sql": "SELECT title, year FROM items WHERE title LIKE '%Fargo%'"})),
        None,
        ex.catalog,
    )
    q = ex.extract("what year is Fargo from?")
    assert merge(lookup_model, q).to_dict() == lookup_model.to_dict()  # the model's SQL
    assert merge(None, q).tools == ["lookup"]  # the rules' look-up
    rec = ex.extract("comedies like Fargo")
    plan = merge(lookup_model, rec)
    assert plan.tools == ["hard_filter", "soft_filter", "ranking", "map"]
    assert merge(None, ex.extract("hi")).steps == []
    assert merge(
        {"steps": [{"tool": "ranking", "input": {"by": "popularity"}}]},
        ex.extract("anything good?"),
    ).tools == ["ranking", "map"]


def test_merge_follows_the_conversation(ex):
    history = [Message.user("a scary movie"), Message.assistant("Scream?")]
    plan = merge(None, ex.extract("from the 80s", history))
    assert plan.step("hard_filter").input == {
        "genres": ["Horror"],
        "year_min": 1980,
        "year_max": 1989,
    }


# ---- decoding under the schema with the embedded model -------------------------------------------


@pytest.mark.slow
def test_hf_v1_decodes_a_plan_under_the_schema(ml, schema, ex):
    jc = pytest.importorskip("recai_hf.jsonconstraint")
    backend = pytest.importorskip("recai_hf.backend")
    sources = pytest.importorskip("recai_hf.sources")
    if sources.embedded_gguf() is None:
        pytest.skip("the embedded model is not installed")
    llm = backend.HFBackend(model="smollm2", threads=2).load()
    prompt = (
        "Write a JSON plan of tool calls for the user's request. Tools in order: hard_filter "
        "(genres, years), soft_filter (seeds: titles the user likes), ranking, map."
    )
    request = "I want a funny movie from the 90s"
    out = llm.chat(
        [Message.system(prompt), Message.user(request)],
        logits_processors=[jc.JSONConstraint(schema)],
        max_tokens=160,
        temperature=0.0,
    )
    obj = json.loads(out.text) if out.finish_reason == "stop" else None
    if obj is not None:
        assert schema_errors(obj, schema) == []  # the decoder kept to the schema
    model_plan, problems = validate_plan(out.text, schema, ml)
    if model_plan is None:
        model_plan = repair_plan(out.text, schema, ml)
    plan = merge(model_plan, ex.extract(request))
    assert plan.step("hard_filter").input["genres"] == ["Comedy"]
    assert plan.tools[-2:] == ["ranking", "map"]


def test_plan_work_per_turn_takes_well_under_the_framework_budget(schema, ml, grounder, ex):
    import time

    import numpy as np

    text = json.dumps(
        steps(
            (
                "hard_filter",
                {"genres": ["Action", "Adventure"], "year_min": 1922, "year_max": 1998},
            ),
            ("soft_filter", {"text": "Fargo"}),
            ("ranking", {"by": "preference", "prefer": ["preference"]}),
            ("map", {}),
        )
    )

    def turn():
        plan, problems = validate_plan(json.loads(text), schema, ml, grounder)
        if plan is None:
            plan = repair_plan(text, schema, ml, grounder)
        return merge(plan, ex.extract("a funny movie like Toy Story from the 90s"))

    turn()
    times = []
    for _ in range(20):
        start = time.perf_counter()
        turn()
        times.append(time.perf_counter() - start)
    # measured: about 1 ms (validate 0.4, repair 0.2, extract + merge 0.8) against 50 ms a turn
    assert float(np.median(times)) < 0.01
