"""embedding.tuned.v1 and embedding.tasks.v1 in a recipe: base and fine-tuned side by side."""

from __future__ import annotations

import json

import pytest
from emb_testkit import write_tiny_encoder

import recai
from recai.errors import RecaiError
from recai.testing import EvaluatorContract, RetrieverContract

pytest.importorskip("torch")


def recipe(tiny, cache, holdout: float = 0.25) -> dict:
    common = {"model": str(tiny), "cache_dir": str(cache), "max_history": 5}
    return {
        "name": "emb-tuned-test",
        "components": {
            "data": {"use": "synthetic.v1", "params": {"n_users": 40, "n_items": 30, "seed": 1}},
            "base": {"use": "embedding.v1", "params": {"dataset": "data", **common}},
            "tuned": {
                "use": "embedding.tuned.v1",
                "params": {
                    "dataset": "data",
                    "base": str(tiny),
                    "cache_dir": str(cache),
                    "max_history": 5,
                    "steps": 3,
                    "train_batch_size": 8,
                    "examples_per_task": 8,
                    "item_holdout": 0.25,
                },
            },
            "tasks": {
                "use": "embedding.tasks.v1",
                "params": {
                    "dataset": "data",
                    "retrievers": ["base", "tuned"],
                    "samples": 6,
                    "bootstrap": 50,
                    "item_holdout": holdout,
                    "max_history": 5,
                },
            },
        },
    }


@pytest.mark.slow
def test_recipe_fine_tunes_then_evaluates_both(tmp_path):
    tiny = write_tiny_encoder(tmp_path / "tiny")
    result = recai.run(
        recai.load_recipe(recipe(tiny, tmp_path / "cache")), tmp_path / "run", progress=False
    )
    metrics = json.loads(result.metrics_path.read_text())
    stage = metrics["tasks"] if "tasks" in metrics else metrics["stages"]["tasks"]
    systems = stage["metrics"]
    assert set(systems) == {"base", "tuned"}
    assert "na2i.coverage@10" in systems["base"] and "uh2i.hit@10" in systems["tuned"]
    assert stage["info"]["samples"]["t2i"] <= 6
    tuned_runs = list((tmp_path / "cache" / "tuned").glob("*/model/model.safetensors"))
    assert len(tuned_runs) == 1
    # a second run reuses the fine-tuned folder (no new training run)
    recai.run(
        recai.load_recipe(recipe(tiny, tmp_path / "cache")), tmp_path / "run2", progress=False
    )
    assert len(list((tmp_path / "cache" / "tuned").glob("*/model"))) == 1
    # evaluating with other held-out items than the fine-tune used is refused (leakage)
    with pytest.raises(RecaiError, match="other held-out items"):
        recai.run(
            recai.load_recipe(recipe(tiny, tmp_path / "cache", holdout=0.3)),
            tmp_path / "run3",
            progress=False,
        )


def test_tuned_retriever_needs_fit_before_search(tmp_path):
    from recai_emb.tuned import TunedEmbeddingRetriever

    with pytest.raises(RecaiError, match="unknown task"):
        TunedEmbeddingRetriever(tasks=["nope"])
    r = TunedEmbeddingRetriever(
        dataset=recai.create("dataset", "synthetic.v1"), cache_dir=str(tmp_path)
    )
    with pytest.raises(RecaiError, match="not fine-tuned yet"):
        r.search("x", 1)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_tiny_encoder(tmp_path_factory.mktemp("tiny") / "enc")


@pytest.mark.slow
class TestTunedContract(RetrieverContract):
    name = "embedding.tuned.v1"
    distribution = "recai-emb"
    supports_text = True

    @pytest.fixture
    def component(self, entry, split, tiny_dir, tmp_path):
        obj = entry.build(
            {
                "base": str(tiny_dir),
                "cache_dir": str(tmp_path),
                "steps": 2,
                "train_batch_size": 4,
                "examples_per_task": 4,
            }
        )
        obj.fit(split)
        return obj


class TestTasksEvaluatorContract(EvaluatorContract):
    name = "embedding.tasks.v1"
    distribution = "recai-emb"

    @pytest.fixture
    def component(self, entry, dataset_source, tiny_dir, tmp_path):
        base = recai.create(
            "retriever", "embedding.v1", model=str(tiny_dir), cache_dir=str(tmp_path)
        )
        return entry.build(
            {"dataset": dataset_source, "retrievers": [base], "samples": 5, "bootstrap": 20}
        )


def test_tasks_evaluator_compares_later_retrievers_with_the_first(tiny_dir, tmp_path):
    from recai.runtime import RunContext

    data = recai.create("dataset", "synthetic.v1", n_users=40, n_items=30, seed=1)
    make = lambda **kw: recai.create(  # noqa: E731
        "retriever", "embedding.v1", model=str(tiny_dir), cache_dir=str(tmp_path), **kw
    )
    evaluator = recai.create(
        "evaluator",
        "embedding.tasks.v1",
        dataset=data,
        retrievers=[make(), make(query_prefix="find: ")],
        tasks=["uh2i", "na2i"],
        samples=8,
        bootstrap=200,
        max_history=5,
    )
    ctx = RunContext(tmp_path / "run", progress=False)
    report = evaluator.evaluate(ctx)
    (first, second), (pair,) = list(report.metrics), list(report.info["comparisons"])
    assert (first, second) == ("EmbeddingRetriever", "EmbeddingRetriever#2")
    assert pair == f"{second} vs {first}"
    deltas = report.info["comparisons"][pair]
    assert set(deltas) == set(report.metrics[first])
    for key, d in deltas.items():
        assert d["delta"] == pytest.approx(report.metrics[second][key] - report.metrics[first][key])
        assert d["low"] <= d["delta"] <= d["high"] and 0 < d["p"] <= 1
        lo, hi = report.intervals[first][key]
        assert lo <= report.metrics[first][key] <= hi
