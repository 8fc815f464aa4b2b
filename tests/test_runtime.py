"""Running recipes: reports, resume after interruption, cached fits, atomic files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import support_plugin

import recai
from recai.errors import RecaiError
from recai.plugins import PluginManager
from recai.runtime import RunContext, atomic_write_json, run


class CountingRanker(recai.Ranker):
    """Popularity that counts its fits and can save/load itself (to test the fit cache)."""

    fits = 0

    def __init__(self, tag: str = "x"):
        self.tag = tag
        self.counts: np.ndarray | None = None

    def fit(self, split):
        type(self).fits += 1
        self.counts = split.train.item_counts().astype(float)

    def score(self, histories, items=None, *, users=None):
        s = np.tile(self.counts, (len(histories), 1))
        if items is None:
            return s
        return s[:, items] if np.ndim(items) == 1 else np.take_along_axis(s, items, axis=1)

    def save(self, directory):
        np.save(Path(directory) / "counts.npy", self.counts)

    def load(self, directory):
        self.counts = np.load(Path(directory) / "counts.npy")


class Flaky(recai.Evaluator):
    """Fails when the environment says so: simulates an interrupted run."""

    def __init__(self, models: list[recai.Ranker]):
        self.models = models

    def evaluate(self, ctx):
        import os

        if os.environ.get("RECAI_TEST_FAIL"):
            raise KeyboardInterrupt
        return recai.Report(
            "",
            {"x": {"m": 1.0}},
            info={"dataset": "-", "protocol": "-", "samples": 0, "seed": ctx.seed},
        )


class Extra:
    @recai.hookimpl
    def recai_rankers(self):
        yield recai.ComponentSpec(
            name="counting.v1", factory=CountingRanker, summary="Counts fits."
        )

    @recai.hookimpl
    def recai_evaluators(self):
        yield recai.ComponentSpec(name="flaky.v1", factory=Flaky, summary="Fails on demand.")


@pytest.fixture
def pm(recai_pm: PluginManager) -> PluginManager:
    recai_pm.register(support_plugin, name="support")
    recai_pm.register(Extra(), name="extra")
    CountingRanker.fits = 0
    return recai_pm


def recipe(weight: float = 2.0, **run_section) -> recai.Recipe:
    return recai.load_recipe(
        {
            "name": "rt",
            "components": {
                "data": {"use": "synthetic.v1", "params": {"n_users": 40, "n_items": 30}},
                "pop": {"use": "counting.v1"},
                "big": {"use": "scaled.v1", "params": {"base": "pop", "weight": weight}},
                "eval": {
                    "use": "hitrate.v1",
                    "params": {"dataset": "data", "models": ["pop", "big"], "k": 5},
                },
                "later": {"use": "flaky.v1", "params": {"models": ["pop"]}},
            },
            "run": run_section or {"stages": ["eval", "later"], "seed": 3},
        }
    )


def test_run_writes_metrics_and_report(pm: PluginManager, tmp_path: Path) -> None:
    res = run(recipe(), tmp_path / "out", progress=False)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["seed"] == 3 and metrics["recipe"]["name"] == "rt"
    hit = metrics["stages"]["eval"]["metrics"]["pop"]["hit@5"]
    assert (
        0 <= hit <= 1 and metrics["stages"]["eval"]["metrics"]["big"]["hit@5"] == hit
    )  # scaling keeps ranks
    assert metrics["stages"]["eval"]["info"]["samples"] == 40
    assert "plugin" not in metrics["distributions"]  # only real distributions are listed
    md = (tmp_path / "out" / "report.md").read_text()
    assert "# rt" in md and "| pop |" in md and "## eval" in md
    assert res.reports["eval"].evaluator == "eval"
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_resume_skips_finished_stages_and_reruns_changed_ones(
    pm: PluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("RECAI_TEST_FAIL", "1")
    with pytest.raises(KeyboardInterrupt):
        run(recipe(), out, progress=False)
    assert (out / "stages" / "eval.json").exists()  # finished stage kept
    assert not (out / "metrics.json").exists()
    fits_before = CountingRanker.fits
    monkeypatch.delenv("RECAI_TEST_FAIL")
    res = run(recipe(), out, progress=False)
    assert res.resumed == ["eval"]
    assert CountingRanker.fits == fits_before  # eval was not re-run; 'later' does not fit
    res = run(recipe(weight=3.0), out, progress=False)  # 'eval' depends on big's weight
    assert res.resumed == ["later"]
    res = run(recipe(weight=3.0), out, progress=False, resume=False)
    assert res.resumed == []


def test_stages_runs_only_the_named_ones_and_keeps_finished_others(
    pm: PluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("RECAI_TEST_FAIL", "1")  # 'later' would fail: it must not run
    res = run(recipe(), out, progress=False, stages=["eval"])
    assert list(res.reports) == ["eval"] and res.resumed == []
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["stages"]) == ["eval"]
    monkeypatch.delenv("RECAI_TEST_FAIL")
    res = run(recipe(), out, progress=False, stages=["later"])  # eval finished: read back
    assert list(res.reports) == ["eval", "later"] and res.resumed == ["eval"]
    fits = CountingRanker.fits
    res = run(recipe(), out, progress=False, stages=["later"], resume=False)
    assert res.resumed == ["eval"] and CountingRanker.fits == fits  # only 'later' ran again
    res = run(recipe(weight=3.0), out, progress=False, stages=["later"])
    assert list(res.reports) == ["later"]  # eval changed since: neither run nor read back


@pytest.mark.parametrize("stages", [["evl"], [], ["eval", "pop"]])
def test_a_stage_that_is_not_one_is_a_user_error(
    pm: PluginManager, tmp_path: Path, stages: list[str]
) -> None:
    with pytest.raises(RecaiError, match="is not a stage of this recipe; its stages: eval, later"):
        run(recipe(), tmp_path / "out", progress=False, stages=stages)
    assert not (tmp_path / "out" / "stages").exists()  # refused before anything ran


def test_fit_cache_loads_saved_models(pm: PluginManager, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(recipe(), out, progress=False)
    assert CountingRanker.fits == 1  # fitted once although two models wrap it
    artifacts = list((out / "artifacts").iterdir())
    assert (
        len(artifacts) == 1
        and (artifacts[0] / "DONE").exists()
        and (artifacts[0] / "counts.npy").exists()
    )
    run(recipe(), out, progress=False, resume=False)
    assert CountingRanker.fits == 1  # loaded from artifacts instead of fitting again


def test_context_fit_refits_on_other_data(tmp_path: Path, tiny_split) -> None:
    from recai.data import leave_one_out, synthetic_dataset

    ctx = RunContext(tmp_path, progress=False)
    CountingRanker.fits = 0
    model = CountingRanker()
    ctx.fit(model, tiny_split)
    ctx.fit(model, tiny_split)
    assert CountingRanker.fits == 1
    ctx.fit(model, leave_one_out(synthetic_dataset(seed=9)))
    assert CountingRanker.fits == 2


def test_run_without_stages_is_a_user_error(pm: PluginManager, tmp_path: Path) -> None:
    r = recai.load_recipe({"components": {"rnd": {"use": "random.v1"}}})
    with pytest.raises(RecaiError, match="nothing to run"):
        run(r, tmp_path)


def test_evaluator_must_return_a_report(pm: PluginManager, tmp_path: Path) -> None:
    class Bad(recai.Evaluator):
        def evaluate(self, ctx):
            return {"ndcg": 1}

    class P:
        @recai.hookimpl
        def recai_evaluators(self):
            yield recai.ComponentSpec(name="bad.v1", factory=Bad, summary="Returns a dict.")

    pm.register(P(), name="p")
    with pytest.raises(TypeError, match="returned dict, not a recai.Report"):
        run(recai.load_recipe({"components": {"e": {"use": "bad.v1"}}}), tmp_path)


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "m.json"
    atomic_write_json(target, {"ok": 1})

    class Unserialisable:
        def __repr__(self):
            raise RuntimeError("cannot")

    with pytest.raises(RuntimeError):
        atomic_write_json(target, {"bad": Unserialisable()})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_fit_keys_follow_params_outside_recipes(
    pm: PluginManager, tmp_path: Path, tiny_split
) -> None:
    ctx = RunContext(tmp_path, progress=False)
    fp = tiny_split.fingerprint()
    a, b = recai.create("ranker", "random.v1", seed=1), recai.create("ranker", "random.v1", seed=2)
    assert ctx.fingerprint(a, fp) != ctx.fingerprint(b, fp)
    assert ctx.fingerprint(a, fp) == ctx.fingerprint(
        recai.create("ranker", "random.v1", seed=1), fp
    )
    s1 = recai.create("ranker", "scaled.v1", base=a)
    s2 = recai.create("ranker", "scaled.v1", base=b)
    assert ctx.fingerprint(s1, fp) != ctx.fingerprint(s2, fp)  # nested components count too
    by_hand = CountingRanker(tag="a"), CountingRanker(tag="b")
    assert ctx.fingerprint(by_hand[0], fp) != ctx.fingerprint(by_hand[1], fp)


def test_fit_key_changes_when_a_referenced_component_changes(
    pm: PluginManager, tmp_path: Path, tiny_split
) -> None:
    def key(seed: int) -> str:
        built = recai.build(
            recai.load_recipe(
                {
                    "components": {
                        "rnd": {"use": "random.v1", "params": {"seed": seed}},
                        "big": {"use": "scaled.v1", "params": {"base": "rnd"}},
                    }
                }
            )
        )
        return RunContext(tmp_path, built=built, progress=False).fingerprint(
            built["big"], tiny_split.fingerprint()
        )

    assert key(1) == key(1) and key(1) != key(2)
