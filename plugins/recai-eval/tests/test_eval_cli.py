"""`recai eval RUN_DIR...` (registered by recai-eval through the command hook): side-by-side
comparison of runs, exit codes, output formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import recai
from recai import cli


def make_run(folder: Path, *, data_seed: int = 1, model_seed: int = 0) -> Path:
    recipe = recai.load_recipe(
        {
            "name": folder.name,
            "components": {
                "data": {
                    "use": "synthetic.v1",
                    "params": {"n_users": 200, "n_items": 60, "seed": data_seed},
                },
                "model": {"use": "random.v1", "params": {"seed": model_seed}},
                "eval": {
                    "use": "ranking.v1",
                    "params": {
                        "dataset": "data",
                        "models": ["model"],
                        "k": [5, 10],
                        "metrics": ["hit", "ndcg"],
                        "bootstrap": 100,
                    },
                },
            },
        }
    )
    recai.run(recipe, folder, progress=False)
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Three runs made once: a and b on the same data, other on other data."""
    from recai.testing import fresh_plugin_manager, use_plugin_manager

    root = tmp_path_factory.mktemp("runs")
    with use_plugin_manager(fresh_plugin_manager(autoload=True)):
        a = make_run(root / "a")
        b = make_run(root / "b", model_seed=7)
        other = make_run(root / "other", data_seed=2)
    return a, b, other


def test_two_runs_side_by_side_with_a_paired_test(runs, capsys) -> None:
    a, b, _ = runs
    assert cli.main(["eval", str(a), str(b), "--resamples", "300"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Comparison of 2 run(s): a, b")
    assert "| a | model | " in out and "| b | model | " in out
    assert "### b: model − a: model" in out and "Paired over 200 shared users" in out
    assert "| Hit@5 |" in out and "p (paired t-test)" in out
    assert "| a | synthetic | leave_one_out(" in out  # dataset, split, protocol, samples, seed


def test_a_single_run_is_shown(runs, capsys) -> None:
    assert cli.main(["eval", str(runs[0])]) == 0
    out = capsys.readouterr().out
    assert "| a | model | " in out and "###" not in out


def test_json_markdown_file_and_chart(runs, capsys, tmp_path) -> None:
    a, b, _ = runs
    md, png = tmp_path / "cmp.md", tmp_path / "cmp.png"
    code = cli.main(
        [
            "eval",
            str(a),
            str(b),
            "--json",
            "--test",
            "wilcoxon",
            "--out",
            str(md),
            "--chart",
            str(png),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["runs"] == ["a", "b"] and data["test"] == "Wilcoxon signed-rank"
    (pair,) = data["stages"][0]["pairs"]
    assert pair["shared"] == 200 and set(pair["rows"]) == {"Hit@5", "Hit@10", "NDCG@5", "NDCG@10"}
    assert md.read_text().startswith("# Comparison of 2 run(s)")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {md}" in captured.err and f"wrote {png}" in captured.err


def test_runs_on_different_data_are_refused_unless_forced(runs, capsys) -> None:
    a, _, other = runs
    assert cli.main(["eval", str(a), str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("recai: error: stage eval: the runs did not measure the same thing")
    assert "data_fingerprint differs" in err and "--force" in err
    assert cli.main(["eval", str(a), str(other), "--force"]) == 0
    captured = capsys.readouterr()
    assert "recai: warning: data_fingerprint differs" in captured.err
    assert "> warning: data_fingerprint differs" in captured.out


def test_a_folder_that_is_not_a_run_exits_2(tmp_path, capsys) -> None:
    assert cli.main(["eval", str(tmp_path)]) == 2
    assert "not a recai run (no metrics.json)" in capsys.readouterr().err


def test_exit_codes_in_a_real_process(tmp_path) -> None:
    env = {**os.environ}

    def recai_cmd(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "recai", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    out = recai_cmd("eval", str(tmp_path / "missing"))
    assert out.returncode == 2 and "no such folder" in out.stderr and "Traceback" not in out.stderr
    assert recai_cmd("eval").returncode == 2  # RUN_DIR is required
    helped = recai_cmd("--help")
    assert helped.returncode == 0 and "eval" in helped.stdout and "[recai-eval " in helped.stdout
    blocked = {**env, "RECAI_BLOCK_PLUGINS": "recai-eval"}
    gone = subprocess.run(
        [sys.executable, "-m", "recai", "eval", str(tmp_path)],
        capture_output=True,
        text=True,
        env=blocked,
        timeout=120,
    )
    assert gone.returncode == 2 and "invalid choice: 'eval'" in gone.stderr
