"""End to end through a recipe: conversation.v1 with the scripted user against ranker-agent.v1
(recai-eval and recai-classic met by registered names, as a user's recipe meets them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import recai


def _recipe(name: str, samples: int, share_history: bool = True) -> Any:
    conversation = {
        "dataset": "data",
        "simulation": "scripted",
        "share_history": share_history,
        "samples": samples,
        "max_turns": 5,
        "bootstrap": 200,
        "concurrency": 1,
    }
    return recai.load_recipe(
        {
            "name": name,
            "requires": ["recai-classic", "recai-eval", "recai-agent"],
            "components": {
                "data": {
                    "use": "synthetic.v1",
                    "params": {"n_users": 300, "n_items": 80, "seed": 1},
                },
                "knn": {"use": "itemknn.v1", "params": {"neighbors": 30}},
                "pop": {"use": "popularity.v1"},
                "knn_agent": {
                    "use": "ranker-agent.v1",
                    "params": {"dataset": "data", "ranker": "knn"},
                },
                "pop_agent": {
                    "use": "ranker-agent.v1",
                    "params": {"dataset": "data", "ranker": "pop"},
                },
                "chat_knn": {
                    "use": "conversation.v1",
                    "params": {**conversation, "recommender": "knn_agent"},
                },
                "chat_pop": {
                    "use": "conversation.v1",
                    "params": {**conversation, "recommender": "pop_agent"},
                },
            },
            "run": {"seed": 0},
        }
    )


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    folder = tmp_path_factory.mktemp("runs") / "scripted"
    return folder, recai.run(_recipe("scripted", 200), folder, progress=False)


def test_ranker_agents_talk_with_the_scripted_user_through_a_recipe(ran: tuple[Path, Any]) -> None:
    folder, result = ran
    knn = result.reports["chat_knn"]
    pop = result.reports["chat_pop"]
    for report, name in ((knn, "knn_agent"), (pop, "pop_agent")):
        row = report.metrics[name]
        assert report.info["samples"] == 200 and report.info["simulation"] == "scripted"
        assert row["leak_rate"] == 0.0 and row["failure_rate"] == 0.0
        assert row["nonexistent_rate"] == 0.0 and row["duplicate_rate"] == 0.0
        assert row["llm_calls_per_turn"] == 0.0
        assert 0 < row["seconds_per_turn"] < 1
        low, high = report.intervals[name]["Hit@5"]
        assert low <= row["Hit@5"] <= high
        assert 1 <= row["AT@5"] <= 6
        # five turns of five items each: at most 25 distinct items were listed to anybody
        assert sum(report.info["hits_by_turn"]) == round(row["Hit@5"] * 200)
    # ItemKNN on the user's history finds the held-out item more often than popularity
    assert knn.metrics["knn_agent"]["Hit@5"] > pop.metrics["pop_agent"]["Hit@5"]
    assert knn.intervals["knn_agent"]["Hit@5"][0] > pop.metrics["pop_agent"]["Hit@5"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert "chat_knn" in json.dumps(metrics)


def test_each_turn_lists_five_new_catalog_titles(ran: tuple[Path, Any]) -> None:
    folder, result = ran
    data = recai.create("dataset", "synthetic.v1", n_users=300, n_items=80, seed=1).dataset()
    titles = set(data.catalog.titles.tolist())
    records = [
        json.loads(line)
        for line in (folder / "llm-results" / "chat_knn.jsonl").read_text().splitlines()
    ]
    assert len(records) == 200
    for record in records:
        replies = [m["content"] for m in record["dialogue"] if m["role"] == "assistant"][1:]
        listed = [line.split(". ", 1)[1] for r in replies for line in r.splitlines()[1:]]
        assert len(replies) == record["turns"] and len(listed) == 5 * record["turns"]
        assert set(listed) <= titles and len(set(listed)) == len(listed)
        users = [m["content"] for m in record["dialogue"] if m["role"] == "user"]
        assert not any(record["target_title"] in u for u in users)
        assert record["clues"]


def test_the_scripted_run_is_reproducible(ran: tuple[Path, Any], tmp_path: Path) -> None:
    _, result = ran
    again = recai.run(_recipe("again", 200), tmp_path / "again", progress=False)
    for stage in ("chat_knn", "chat_pop"):
        first, second = result.reports[stage].metrics, again.reports[stage].metrics
        for name in first:
            for metric in ("Hit@5", "AT@5", "in_history_rate"):
                assert first[name][metric] == second[name][metric]


def test_without_the_history_the_ranker_agent_falls_back_to_popularity(tmp_path: Path) -> None:
    result = recai.run(_recipe("nohistory", 60, share_history=False), tmp_path, progress=False)
    knn = result.reports["chat_knn"].metrics["knn_agent"]
    pop = result.reports["chat_pop"].metrics["pop_agent"]
    # told nothing, both agents page through the most popular training items alike
    assert knn["Hit@5"] == pop["Hit@5"] and knn["AT@5"] == pop["AT@5"]


def test_the_baselines_example_recipe_checks() -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "baselines-scripted.toml"
    recipe = recai.load_recipe(path)
    plan = recai.recipe.check(recipe)
    assert set(plan.stages) == {"chat_popular", "chat_sasrec", "chat_chatrec", "chat_bare_llm"}
    for stage in plan.stages:
        params = recipe.components[stage].params
        assert params["simulation"] == "scripted" and params["samples"] >= 200
