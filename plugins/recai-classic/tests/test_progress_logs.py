"""Training progress in logs: with stderr not a terminal, BPR and SASRec fits print a line per
``RECAI_PROGRESS_INTERVAL`` seconds (epoch, loss, validation metric, elapsed); silenced on demand."""

from __future__ import annotations

import re

import pytest

from recai import progress
from recai.data import leave_one_out, synthetic_dataset
from recai_classic.bpr import BPR
from recai_classic.sasrec import SASRec

EPOCH = re.compile(
    r"^(?P<desc>[\w.() ]+): epoch (?P<n>\d+)/(?P<total>\d+) \| loss=(?P<loss>[\d.e+-]+) "
    r"NDCG@10=[\d.e+-]+ best=[\d.e+-]+ best_epoch=\d+ \| elapsed \d+s"
)


@pytest.fixture(scope="module")
def split():
    return leave_one_out(synthetic_dataset(n_users=40, n_items=30, seed=1))


@pytest.fixture
def log_every_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAI_PROGRESS_INTERVAL", "0")  # captured stderr is not a terminal


@pytest.mark.parametrize(
    ("model", "desc"),
    [
        (lambda: BPR(factors=8, epochs=3, batch_size=64), "bpr.v1"),
        (
            lambda: SASRec(hidden=8, blocks=1, heads=2, max_len=8, epochs=3, batch_size=16),
            "sasrec.v1 (ce)",
        ),
    ],
    ids=["bpr", "sasrec"],
)
def test_a_fit_prints_a_line_per_epoch_in_a_log(model, desc, split, log_every_epoch, capsys):
    fitted = model()
    fitted.fit(split)
    lines = capsys.readouterr().err.splitlines()
    found = [EPOCH.match(x) for x in lines[:-1]]
    assert all(found), lines
    assert [(m["desc"], m["n"], m["total"]) for m in found] == [
        (desc, str(e), "3") for e in (1, 2, 3)
    ]
    curve = fitted.training_log["curve"]
    assert [float(m["loss"]) for m in found] == pytest.approx([p["loss"] for p in curve], rel=1e-3)
    assert lines[-1].startswith(f"{desc}: done, epoch 3/3 | loss=")


def test_early_stopping_says_so(split, log_every_epoch, capsys):
    model = BPR(factors=8, epochs=50, patience=1, batch_size=64, lr=0.5)
    model.fit(split)
    last = capsys.readouterr().err.splitlines()[-1]
    assert model.training_log["stopped_early"]
    best = model.training_log["best_epoch"]
    run = model.training_log["epochs_run"]
    assert last.startswith(f"bpr.v1: stopped early (best epoch {best}), epoch {run}/50 | ")


def test_silenced_fits_print_nothing(split, log_every_epoch, capsys):
    with progress.enabled(False):
        BPR(factors=8, epochs=2, batch_size=64).fit(split)
    assert capsys.readouterr().err == ""
