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


# -- damaged run folders and hostile options (issue 17, items 6 and 7) -------------------------


def damaged(runs, tmp_path: Path, name: str = "d") -> Path:
    """A copy of run ``b`` to damage (the module's runs stay intact)."""
    import shutil

    return Path(shutil.copytree(runs[1], tmp_path / name))


def refused(capsys, *argv: str, parts: tuple[str, ...]) -> str:
    """``recai eval *argv`` exits 2 with one ``recai: error:`` paragraph naming ``parts``."""
    code = cli.main(["eval", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("recai: error: ") and "Traceback" not in err and "internal" not in err
    for part in parts:
        assert part in err, (part, err)
    return err


def test_a_truncated_metrics_json_names_the_file(runs, capsys, tmp_path) -> None:
    d = damaged(runs, tmp_path)
    m = d / "metrics.json"
    m.write_bytes(m.read_bytes()[: len(m.read_bytes()) // 2])
    refused(capsys, str(runs[0]), str(d), parts=(str(m), "not valid JSON", "truncated"))


@pytest.mark.parametrize(
    "content",
    [b"\x1f\x8b\x08\x00" + bytes(range(256)), b"\x00" * 100, b"\xff\xfe{}", b"   \n"],
    ids=["gzip", "zeros", "utf16-bom", "blank"],
)
def test_a_binary_or_empty_metrics_json_names_the_file(runs, capsys, tmp_path, content) -> None:
    d = damaged(runs, tmp_path)
    (d / "metrics.json").write_bytes(content)
    refused(capsys, str(d), parts=(str(d / "metrics.json"),))


def test_a_folder_fifo_or_device_where_metrics_json_should_be(runs, capsys, tmp_path) -> None:
    d = damaged(runs, tmp_path)
    m = d / "metrics.json"
    m.unlink()
    m.mkdir()
    refused(capsys, str(d), parts=(str(m), "is a folder"))
    m.rmdir()
    os.mkfifo(m)  # reading it would block for ever: refused before opening
    refused(capsys, str(d), parts=(str(m), "not a regular file"))
    m.unlink()
    m.symlink_to("/dev/zero")  # endless
    refused(capsys, str(d), parts=(str(m), "not a regular file"))


def test_a_huge_metrics_json_is_refused_before_reading(runs, capsys, tmp_path) -> None:
    from recai_eval.compare import MAX_METRICS_BYTES

    d = damaged(runs, tmp_path)
    with open(d / "metrics.json", "r+b") as f:
        f.truncate(MAX_METRICS_BYTES + 1)  # sparse: no disk used
    refused(capsys, str(d), parts=(str(d / "metrics.json"), "bytes, more than"))


def test_a_missing_metrics_json_of_an_interrupted_run_says_so(runs, capsys, tmp_path) -> None:
    d = damaged(runs, tmp_path)
    (d / "metrics.json").unlink()
    refused(capsys, str(d), parts=(str(d), "no metrics.json", "did not finish"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_metrics_json_names_the_file(runs, capsys, tmp_path) -> None:
    d = damaged(runs, tmp_path)
    (d / "metrics.json").chmod(0)
    refused(capsys, str(d), parts=(str(d / "metrics.json"), "cannot read"))


@pytest.mark.parametrize(
    ("change", "part"),
    [
        (lambda m: m.update(stages=[1, 2]), "no 'stages' table"),
        (lambda m: m["stages"].update(eval=[]), "stages.eval is list, expected a table"),
        (lambda m: m["stages"]["eval"].pop("evaluator"), "no 'evaluator'"),
        (lambda m: m["stages"]["eval"].update(metrics=7), "no 'metrics' table"),
        (lambda m: m["stages"]["eval"]["metrics"].update(model="x"), "metrics.model is str"),
        (lambda m: m["stages"]["eval"]["metrics"]["model"].update({"Hit@5": "high"}), "Hit@5"),
        (lambda m: m["stages"]["eval"]["metrics"]["model"].update({"Hit@5": True}), "Hit@5"),
        (lambda m: m["stages"]["eval"]["metrics"]["model"].update({"Hit@5": 10**400}), "Hit@5"),
        (lambda m: m["stages"]["eval"].update(info=[]), "info is list"),
        (lambda m: m["stages"]["eval"]["intervals"]["model"].update({"Hit@5": [1]}), "[low, high]"),
        (lambda m: m["stages"]["eval"]["intervals"].update(model=None), "intervals.model"),
        (lambda m: m["stages"]["eval"]["info"].update(per_user=5), "info.per_user"),
        (lambda m: m["stages"]["eval"]["info"].update(per_user="../../../etc/passwd"), "outside"),
        (lambda m: m["stages"]["eval"]["info"].update(per_user="/etc/passwd"), "outside"),
    ],
)
def test_a_metrics_json_of_the_wrong_shape_names_file_and_key(
    runs, capsys, tmp_path, change, part
) -> None:
    d = damaged(runs, tmp_path)
    m = d / "metrics.json"
    data = json.loads(m.read_text())
    change(data)
    m.write_text(json.dumps(data))
    refused(capsys, str(runs[0]), str(d), parts=(str(m), part))


def test_a_deeply_nested_metrics_json_is_refused(runs, capsys, tmp_path) -> None:
    d = damaged(runs, tmp_path)
    (d / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    refused(capsys, str(d), parts=(str(d / "metrics.json"),))


@pytest.mark.parametrize(
    "damage",
    ["truncated", "text", "folder", "npy", "shape", "missing-array", "repeats", "pickle"],
)
def test_a_damaged_per_user_file_names_the_file(runs, capsys, tmp_path, damage) -> None:
    import numpy as np

    d = damaged(runs, tmp_path)
    f = d / "stages" / "eval.per_user.npz"
    if damage == "truncated":
        f.write_bytes(f.read_bytes()[:300])
    elif damage == "text":
        f.write_text("per-user values\n")
    elif damage == "folder":
        f.unlink()
        f.mkdir()
    elif damage == "npy":
        with open(f, "wb") as out:
            np.save(out, np.zeros(3))
    else:
        with np.load(runs[1] / "stages" / "eval.per_user.npz") as z:
            arrays = {k: z[k] for k in z.files}
        if damage == "shape":
            arrays["values_0"] = arrays["values_0"][:5]
        elif damage == "missing-array":
            del arrays["units"]
        elif damage == "repeats":
            arrays["units"] = np.zeros_like(arrays["units"])
        else:
            arrays["units"] = np.array([object()] * 3, dtype=object)
        with open(f, "wb") as out:
            np.savez(out, **arrays)
    refused(capsys, str(runs[0]), str(d), parts=(str(f), "per-user values"))


def test_a_per_user_file_too_large_unpacked_is_refused(runs, capsys, tmp_path, monkeypatch):
    import recai_eval.compare

    monkeypatch.setattr(recai_eval.compare, "MAX_PER_USER_BYTES", 1000)
    d = damaged(runs, tmp_path)
    refused(capsys, str(runs[0]), str(d), parts=("eval.per_user.npz", "bytes unpacked"))


def test_a_missing_per_user_file_is_named_in_the_comparison(runs, capsys, tmp_path) -> None:
    d = damaged(runs, tmp_path)
    (d / "stages" / "eval.per_user.npz").unlink()
    assert cli.main(["eval", str(runs[0]), str(d)]) == 0
    assert "d has no per-user values for this stage (no stages/eval.per_user.npz)" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("argv", "parts"),
    [
        (["--resamples", "1000000000"], ("--resamples", "1 to 100,000", "1,000,000,000")),
        (["--resamples", "0"], ("--resamples",)),
        (["--resamples", "-5"], ("--resamples",)),
        (["--resamples", "100001"], ("--resamples",)),
        (["--seed", "-1"], ("--seed",)),
        (["--seed", str(2**64)], ("--seed",)),
        (["--confidence", "0"], ("--confidence", "between 0 and 1")),
        (["--confidence", "1"], ("--confidence",)),
        (["--confidence", "1.5"], ("--confidence",)),
        (["--confidence", "-0.1"], ("--confidence",)),
        (["--confidence", "nan"], ("--confidence",)),
        (["--confidence", "inf"], ("--confidence",)),
        (["--out", ""], ("--out is empty",)),
        (["--chart", " "], ("--chart is empty",)),
    ],
)
def test_bad_numeric_and_output_options_are_refused_up_front(runs, capsys, argv, parts) -> None:
    refused(capsys, str(runs[0]), *argv, parts=parts)


def test_outputs_that_cannot_be_written_are_refused_before_comparing(runs, capsys, tmp_path):
    a = str(runs[0])
    refused(capsys, a, "--out", str(tmp_path), parts=("--out", "is a folder"))
    refused(capsys, a, "--chart", str(tmp_path), parts=("--chart", "is a folder"))
    (tmp_path / "file").write_text("x")
    refused(capsys, a, "--out", str(tmp_path / "file" / "x.md"), parts=("--out", "is a file"))
    # a folder that cannot be created: the error at writing names the option too
    blocked = tmp_path / "ro"
    blocked.mkdir()
    (blocked / "x.md").mkdir()  # renaming onto a folder fails at the end
    refused(capsys, a, "--out", str(blocked / "x.md"), parts=("--out", "is a folder"))


def test_other_confidence_levels_are_used_and_shown(runs, capsys) -> None:
    a, b, _ = runs
    assert cli.main(["eval", str(a), str(b), "--resamples", "200", "--confidence", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "80% interval" in out and "80% CI of Δ" in out


def test_a_damaged_run_in_a_real_process_exits_2_without_traceback(runs, tmp_path) -> None:
    d = damaged(runs, tmp_path)
    (d / "metrics.json").write_text('{"stages": {"eval": {"evaluator": "x", "metrics": {')
    out = subprocess.run(
        [sys.executable, "-m", "recai", "eval", str(runs[0]), str(d), "--resamples", "10"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and str(d / "metrics.json") in out.stderr


def test_a_chart_of_infinite_or_absurd_metrics_is_drawn_not_a_crash(runs, capsys, tmp_path):
    import warnings

    pytest.importorskip("matplotlib")
    d = damaged(runs, tmp_path)
    m = d / "metrics.json"
    data = json.loads(m.read_text())
    row = data["stages"]["eval"]["metrics"]["model"]
    row["Hit@5"], row["NDCG@5"] = float("inf"), 1e308
    data["stages"]["eval"]["intervals"]["model"]["Hit@10"] = [-1e308, float("inf")]
    m.write_text(json.dumps(data))
    png = tmp_path / "c.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert cli.main(["eval", str(d), "--chart", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and "| inf" in capsys.readouterr().out
