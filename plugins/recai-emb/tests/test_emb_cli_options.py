"""``recai emb tasks`` and ``recai emb train`` refuse empty, negative and huge option values up
front (issue 17, item 3): exit code 2, one line naming the option, before any data is loaded or
any model is read, quickly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from recai import cli
from recai.plugins import PluginManager

TASKS_CASES = [
    (["--per-task", "-1"], "--per-task: Input should be greater than or equal to 1"),
    (["--per-task", "1" + "0" * 30], "--per-task: Input should be less than or equal to 1000000"),
    (["--test-per-task", "-5"], "--test-per-task"),
    (["--negatives", "100000"], "--negatives"),
    (["--seed", "-3"], "--seed"),
    (["--holdout-seed", str(2**32)], "--holdout-seed"),
    (["--item-holdout", "nan"], "--item-holdout: Input should be a finite number"),
    (["--item-holdout", "1"], "--item-holdout"),
    (["--max-history", "0"], "--max-history"),
    (["--llm-per-task", "99999999999"], "--llm-per-task"),
    (["--count", "uh2i=99999999999999999999"], "--count uh2i=99999999999999999999"),
    (["--tasks", " , "], "--tasks names no task"),
    (["--dataset", " "], "--dataset is empty"),
]


@pytest.mark.parametrize(("extra", "message"), TASKS_CASES)
def test_emb_tasks_refuses_a_bad_option_naming_it(
    recai_installed_pm: PluginManager,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    out = tmp_path / "out"
    start = time.perf_counter()
    code = cli.main(["emb", "tasks", "--out", str(out), *extra])
    took = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert took < 2.0, f"{took:.2f} s"  # nothing is loaded before the check (0.01 s measured)
    assert not out.exists()


def test_emb_tasks_refuses_an_empty_out(
    recai_installed_pm: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["emb", "tasks", "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err


def test_emb_tasks_within_the_bounds_still_runs(
    recai_installed_pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["emb", "tasks", "--dataset", "synthetic.v1", "--out", str(out), "--per-task", "3"]
    argv += ["--test-per-task", "2", "--seed", str(2**32 - 1), "--count", "uh2i=4"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert (out / "train.jsonl").stat().st_size > 0


TRAIN_CASES = [
    (["--steps", "1000000000000"], "--steps: Input should be less than or equal to 10000000"),
    (["--steps", ""], "--steps"),
    (["--lr", "inf"], "--lr: Input should be a finite number"),
    (["--lr", "0"], "--lr"),
    (["--batch-size", "-2"], "--batch-size"),
    (["--threads", "0"], "--threads"),
    (["--keep-checkpoints", "10000000"], "--keep-checkpoints"),
    (["--seed", "-1"], "--seed"),
    (["--max-length", "100000", "--batch-size", "4096"], "tokens per batch is more than"),
    (["--passage-max-length", "1048576", "--negatives", "16"], "--passage-max-length"),
]


@pytest.mark.parametrize(("extra", "message"), TRAIN_CASES)
def test_emb_train_refuses_a_bad_option_naming_it(
    recai_installed_pm: PluginManager,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    examples = tmp_path / "train.jsonl"
    examples.write_text("")
    out = tmp_path / "run"
    code = cli.main(["emb", "train", "--examples", str(examples), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "recai emb train" in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--out", "--examples"])
def test_emb_train_refuses_an_empty_path(
    recai_installed_pm: PluginManager,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
) -> None:
    paths = {"--examples": str(tmp_path / "train.jsonl"), "--out": str(tmp_path / "run")}
    paths[flag] = ""
    argv = ["emb", "train", "--examples", paths["--examples"], "--out", paths["--out"]]
    assert cli.main(argv) == 2
    assert f"{flag} is empty" in capsys.readouterr().err


def test_emb_train_refuses_a_boolean_that_is_neither(
    recai_installed_pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["emb", "train", "--examples", "x.jsonl", "--out", str(tmp_path), "--dropout", "maybe"]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "--dropout" in capsys.readouterr().err
