"""recai.progress: a bar on a terminal, periodic plain lines in a log, one switch to silence all."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import recai
from recai import progress
from recai.errors import RecaiError
from recai.plugins import PluginManager
from recai.progress import Progress
from recai.runtime import RunContext, run

LINE = re.compile(r"^train: epoch (\d+)/3 \| loss=[\d.]+ NDCG@10=[\d.]+ \| elapsed \d+s")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def epochs(stream: io.StringIO, n: int = 3, **options) -> None:
    with Progress(total=n, desc="train", unit="epoch", stream=stream, **options) as bar:
        for epoch in range(n):
            bar.update(loss=1.0 / (epoch + 1), **{"NDCG@10": 0.1 * epoch})


def test_a_log_gets_a_line_per_interval_with_the_fields() -> None:
    log = io.StringIO()
    epochs(log, interval=0)
    lines = log.getvalue().splitlines()
    assert [LINE.match(x).group(1) for x in lines[:3]] == ["1", "2", "3"], lines
    assert "loss=0.5 NDCG@10=0.1 " in lines[1]
    assert ", eta " in lines[0] and ", eta " not in lines[2]  # nothing left after the last
    assert lines[3].startswith("train: done, epoch 3/3 | loss=0.3333 NDCG@10=0.2 | elapsed ")
    assert len(lines) == 4


def test_lines_wait_for_the_interval() -> None:
    log = io.StringIO()
    epochs(log, interval=3600)
    assert log.getvalue() == ""  # a loop shorter than the interval leaves the log alone
    log = io.StringIO()
    bar = Progress(total=10, desc="slow", stream=log, interval=0.05)
    bar.update()  # too early for a line
    time.sleep(0.06)
    bar.update()
    bar.close()
    lines = log.getvalue().splitlines()
    assert lines == [lines[0], lines[1]] and lines[0].startswith("slow: 2/10 | elapsed ")
    assert lines[1].startswith("slow: done, 2/10 | elapsed ")


def test_the_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAI_PROGRESS_INTERVAL", "0")
    log = io.StringIO()
    epochs(log)
    assert len(log.getvalue().splitlines()) == 4
    monkeypatch.setenv("RECAI_PROGRESS_INTERVAL", "soon")
    with pytest.raises(RecaiError, match=r"RECAI_PROGRESS_INTERVAL='soon' is not a number"):
        Progress(total=1, stream=io.StringIO())
    monkeypatch.setenv("RECAI_PROGRESS_INTERVAL", "-1")
    with pytest.raises(RecaiError, match="RECAI_PROGRESS_INTERVAL"):
        Progress(total=1, stream=io.StringIO())


def test_silenced_by_the_flag_or_the_switch() -> None:
    log = io.StringIO()
    epochs(log, interval=0, enabled=False)
    assert log.getvalue() == ""
    with progress.enabled(False):
        epochs(log, interval=0)
        term = Terminal()
        epochs(term, interval=0)
        assert Progress(total=1).mode == "off"
    assert log.getvalue() == "" and term.getvalue() == ""
    assert progress.is_enabled()


def test_a_terminal_gets_a_tqdm_bar_and_no_lines() -> None:
    term = Terminal()
    with Progress(total=3, desc="train", unit="epoch", stream=term, interval=0) as bar:
        for _ in range(3):
            time.sleep(0.11)  # tqdm redraws at most every 0.1 s
            bar.update(loss=0.5)
    out = term.getvalue()
    assert "\r" in out and "train" in out and "loss=0.5" in out  # tqdm redraws in place
    assert "elapsed" not in out and "done" not in out


def test_iterating_counts_items_and_an_error_says_stopped() -> None:
    log = io.StringIO()
    assert list(Progress(range(3), desc="it", stream=log, interval=0)) == [0, 1, 2]
    assert log.getvalue().splitlines()[-1].startswith("it: done, 3/3 |")
    log = io.StringIO()
    with pytest.raises(ZeroDivisionError), Progress(total=5, desc="x", stream=log, interval=0):
        1 / 0  # noqa: B018
    assert log.getvalue().startswith("x: stopped, 0/5 |")


def test_a_real_log_file_gets_the_lines(tmp_path: Path) -> None:
    """stderr redirected to a file, as under nohup or CI: plain lines, no bar."""
    code = (
        "from recai.progress import Progress\n"
        "with Progress(total=3, desc='fit', unit='epoch') as bar:\n"
        "    for e in range(3):\n"
        "        bar.update(loss=0.5)\n"
    )
    log = tmp_path / "log.txt"
    with log.open("w") as err:
        subprocess.run(
            [sys.executable, "-c", code],
            stderr=err,
            check=True,
            timeout=60,
            env={"RECAI_PROGRESS_INTERVAL": "0", "PATH": ""},
        )
    lines = log.read_text().splitlines()
    assert [x.split(" | ")[0] for x in lines] == [
        "fit: epoch 1/3",
        "fit: epoch 2/3",
        "fit: epoch 3/3",
        "fit: done, epoch 3/3",
    ]


# -- the runtime --------------------------------------------------------------------------------
class Reporting(recai.Ranker):
    """Popularity whose fit reports two epochs through recai.progress."""

    seen: list[bool] = []

    def __init__(self) -> None:
        self.counts: np.ndarray | None = None

    def fit(self, split):
        type(self).seen.append(progress.is_enabled())
        with Progress(total=2, desc="reporting.v1", unit="epoch", interval=0) as bar:
            for _ in range(2):
                bar.update(loss=0.25)
        self.counts = split.train.item_counts().astype(float)

    def score(self, histories, items=None, *, users=None):
        s = np.tile(self.counts, (len(histories), 1))
        return s if items is None else s[:, items]


class FitsAndCounts(recai.Evaluator):
    def __init__(self, dataset: recai.DatasetSource, model: recai.Ranker):
        self.dataset = dataset
        self.model = model

    def evaluate(self, ctx):
        from recai.data import leave_one_out

        split = leave_one_out(self.dataset.dataset())
        ctx.fit(self.model, split)
        for _ in ctx.progress(range(3), desc="counting"):
            pass
        info = {"dataset": "synthetic", "protocol": "-", "samples": 0, "seed": ctx.seed}
        return recai.Report("", {"m": {"x": 1.0}}, info=info)


class Plugin:
    @recai.hookimpl
    def recai_rankers(self):
        yield recai.ComponentSpec(name="reporting.v1", factory=Reporting, summary="Reports.")

    @recai.hookimpl
    def recai_evaluators(self):
        yield recai.ComponentSpec(name="fits.v1", factory=FitsAndCounts, summary="Fits.")


def recipe() -> recai.Recipe:
    return recai.load_recipe(
        {
            "components": {
                "data": {"use": "synthetic.v1", "params": {"n_users": 20, "n_items": 10}},
                "model": {"use": "reporting.v1"},
                "eval": {"use": "fits.v1", "params": {"dataset": "data", "model": "model"}},
            }
        }
    )


@pytest.fixture
def pm(recai_pm: PluginManager, monkeypatch: pytest.MonkeyPatch) -> PluginManager:
    recai_pm.register(Plugin(), name="reporting")
    monkeypatch.setenv("RECAI_PROGRESS_INTERVAL", "0")
    Reporting.seen = []
    return recai_pm


def test_run_reports_fits_and_loops_in_a_log(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(recipe(), tmp_path / "on", resume=False)
    err = capsys.readouterr().err.splitlines()
    assert Reporting.seen == [True]
    assert [x.split(" | ")[0] for x in err] == [
        "reporting.v1: epoch 1/2",
        "reporting.v1: epoch 2/2",
        "reporting.v1: done, epoch 2/2",
        "counting: 1/3",
        "counting: 2/3",
        "counting: 3/3",
        "counting: done, 3/3",
    ]


def test_no_progress_silences_the_fits_inside_a_run(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(recipe(), tmp_path / "off", resume=False, progress=False)
    assert capsys.readouterr().err == ""
    assert Reporting.seen == [False]  # the component's fit saw the switch
    assert progress.is_enabled()  # and the switch is back afterwards


def test_a_context_without_progress_silences_its_fits(
    tmp_path: Path, tiny_split, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("RECAI_PROGRESS_INTERVAL", "0")
    Reporting.seen = []
    RunContext(tmp_path, progress=False).fit(Reporting(), tiny_split)
    assert list(RunContext(tmp_path, progress=False).progress(range(2))) == [0, 1]
    assert capsys.readouterr().err == ""
    RunContext(tmp_path / "b").fit(Reporting(), tiny_split)
    assert Reporting.seen == [False, True]
    assert "reporting.v1: epoch 1/2" in capsys.readouterr().err
