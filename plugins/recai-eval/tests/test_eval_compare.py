"""Comparing run folders: side-by-side tables, paired tests, refusing what is not comparable."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import recai
from recai_eval.compare import CompareError, compare_runs, load_run, paired_test
from recai_eval.peruser import load_per_user


@pytest.fixture
def pm(recai_pm):
    import recai_eval.plugin

    recai_pm.register(recai_eval.plugin, name="eval")
    return recai_pm


def make_run(pm, folder, *, seed=1, n_users=300, model="random.v1", params=None, eval_params=None):
    """A run of ranking.v1 on synthetic data with one model named ``model``."""
    recipe = recai.load_recipe(
        {
            "name": folder.name,
            "run": {"seed": 0},
            "components": {
                "data": {
                    "use": "synthetic.v1",
                    "params": {"n_users": n_users, "n_items": 80, "seed": seed},
                },
                "model": {"use": model, "params": params or {}},
                "eval": {
                    "use": "ranking.v1",
                    "params": {
                        "dataset": "data",
                        "models": ["model"],
                        "k": [10],
                        "metrics": ["hit", "ndcg", "coverage"],
                        "bootstrap": 200,
                        "chart": False,
                        **(eval_params or {}),
                    },
                },
            },
        }
    )
    recai.run(recipe, folder, pm=pm, progress=False)
    return folder


class Oracle(recai.Ranker):
    """Random scores, but the test item on top for the users whose index is even."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, split):
        self.n_items = split.dataset.n_items
        self.answer = dict(zip(split.test.users.tolist(), split.test.items.tolist(), strict=True))

    def score(self, histories, items=None, *, users=None):
        rng = np.random.default_rng(self.seed)
        s = rng.random((len(histories), self.n_items))
        for b, u in enumerate(users.tolist()):
            if u % 2 == 0:
                s[b, self.answer[u]] = 2.0
        return s


@pytest.fixture
def oracle_pm(pm):
    class Plugin:
        @recai.hookimpl
        def recai_rankers(self):
            yield recai.ComponentSpec(name="oracle.v1", factory=Oracle, summary="Half oracle.")

    pm.register(Plugin(), name="oracle")
    return pm


def test_two_runs_are_compared_paired(oracle_pm, tmp_path):
    a = make_run(oracle_pm, tmp_path / "a", model="random.v1")
    b = make_run(oracle_pm, tmp_path / "b", model="oracle.v1")
    comp = compare_runs([a, b], resamples=500)
    (stage,) = comp.stages
    assert list(stage.reports) == ["a", "b"] and not stage.warnings
    (pair,) = stage.pairs
    assert (pair.system_a, pair.system_b, pair.shared, pair.unit) == ("model", "model", 300, "user")
    assert set(pair.rows) == {"Hit@10", "NDCG@10"}  # Coverage has no per-user values

    va = load_per_user(a / "stages" / "eval.per_user.npz").values["model"]
    vb = load_per_user(b / "stages" / "eval.per_user.npz").values["model"]
    hit = pair.rows["Hit@10"]
    assert hit["delta"] == pytest.approx(vb[:, 0].mean() - va[:, 0].mean())
    assert hit["a"] == pytest.approx(load_run(a).stages["eval"].metrics["model"]["Hit@10"])
    assert hit["low"] > 0 and hit["p_boot"] == pytest.approx(1 / 500)  # the oracle wins
    stats = pytest.importorskip("scipy.stats")
    assert hit["p_test"] == pytest.approx(stats.ttest_rel(vb[:, 0], va[:, 0]).pvalue)
    assert pair.test == "paired t-test"

    text = comp.to_markdown()
    assert "| a | model | " in text and "| b | model | " in text
    assert "### b: model − a: model" in text and "Paired over 300 shared users" in text
    assert "| synthetic | leave_one_out(" in text  # dataset, split, protocol, samples, seed
    json.dumps(comp.to_dict())  # JSON-able


def test_a_run_compared_with_itself_shows_no_difference(pm, tmp_path):
    a = make_run(pm, tmp_path / "a")
    comp = compare_runs([a, a], resamples=200)
    (pair,) = comp.stages[0].pairs
    assert pair.run_b == "a#2"
    for row in pair.rows.values():
        assert row["delta"] == 0 and row["p_boot"] == 1.0 and row["p_test"] == 1.0


def test_only_shared_users_are_paired(pm, tmp_path):
    a = make_run(pm, tmp_path / "a")
    b = make_run(pm, tmp_path / "b", params={"seed": 5}, eval_params={"max_users": 120})
    (pair,) = compare_runs([a, b], resamples=100).stages[0].pairs
    assert pair.shared == 120 and pair.only_a == 180 and pair.only_b == 0
    assert "180 users only in a" in compare_runs([a, b], resamples=100).to_markdown()


def test_different_datasets_are_refused_unless_forced(pm, tmp_path):
    a = make_run(pm, tmp_path / "a", seed=1)
    b = make_run(pm, tmp_path / "b", seed=2)  # another synthetic draw: other data
    with pytest.raises(CompareError, match="data_fingerprint differs") as e:
        compare_runs([a, b])
    assert "--force" in str(e.value)
    comp = compare_runs([a, b], force=True, resamples=100)
    assert any("data_fingerprint differs" in w for w in comp.stages[0].warnings)
    assert "> warning: data_fingerprint differs" in comp.to_markdown()


def test_different_seeds_warn(pm, tmp_path):
    a = make_run(pm, tmp_path / "a")
    b = make_run(pm, tmp_path / "b")
    data = json.loads((b / "metrics.json").read_text())
    data["stages"]["eval"]["info"]["seed"] = 9
    (b / "metrics.json").write_text(json.dumps(data))
    comp = compare_runs([a, b], resamples=100)
    assert any("seeds differ (a: 0, b: 9)" in w for w in comp.stages[0].warnings)


def test_a_run_without_per_user_values_gets_no_paired_test(pm, tmp_path):
    a = make_run(pm, tmp_path / "a")
    b = make_run(pm, tmp_path / "b", params={"seed": 4})
    (b / "stages" / "eval.per_user.npz").unlink()
    (pair,) = compare_runs([a, b]).stages[0].pairs
    reason = "b has no per-user values for this stage (no stages/eval.per_user.npz)"
    assert pair.reason == reason and not pair.rows
    assert "No paired test: b has no per-user values" in compare_runs([a, b]).to_markdown()


def test_folders_that_are_not_runs(tmp_path):
    with pytest.raises(CompareError, match="no such folder"):
        load_run(tmp_path / "missing")
    with pytest.raises(CompareError, match=r"not a recai run \(no metrics.json\)"):
        load_run(tmp_path)
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(CompareError, match="not valid JSON"):
        load_run(tmp_path)
    (tmp_path / "metrics.json").write_text('{"stages": 3}')
    with pytest.raises(CompareError, match="no 'stages' table"):
        load_run(tmp_path)
    assert issubclass(CompareError, recai.RecaiError)  # the CLI exits with 2


def test_more_than_two_runs_are_each_compared_with_the_first(pm, tmp_path):
    runs = [make_run(pm, tmp_path / name, params={"seed": i}) for i, name in enumerate("abc")]
    comp = compare_runs(runs, resamples=100)
    assert [(p.run_a, p.run_b) for p in comp.stages[0].pairs] == [("a", "b"), ("a", "c")]


def test_paired_tests():
    rng = np.random.default_rng(0)
    a = rng.random(200)
    b = a + 0.05 + rng.normal(scale=0.1, size=200)
    stats = pytest.importorskip("scipy.stats")
    name, p = paired_test(a, b, "wilcoxon")
    assert name == "Wilcoxon signed-rank" and p == pytest.approx(stats.wilcoxon(b - a).pvalue)
    name, p = paired_test(a, b, "t")
    assert name == "paired t-test" and p < 1e-6
    assert paired_test(a, a, "wilcoxon") == ("Wilcoxon signed-rank", 1.0)
    assert paired_test(a[:1], b[:1])[1] != paired_test(a[:1], b[:1])[1]  # NaN: too few pairs


def test_without_scipy_a_sign_flip_permutation_test_is_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    rng = np.random.default_rng(1)
    a = rng.random(100)
    name, p = paired_test(a, a + 0.2)
    assert name == "sign-flip permutation" and p == pytest.approx(1 / 10_001)
    name, p = paired_test(a, a + rng.normal(scale=0.01, size=100))
    assert p > 0.05


def test_bad_arguments(tmp_path):
    with pytest.raises(CompareError, match="--resamples must be from 1 to 100,000"):
        compare_runs([tmp_path], resamples=0)
    with pytest.raises(CompareError, match="at least one run folder"):
        compare_runs([])
