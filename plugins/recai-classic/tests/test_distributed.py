"""Data-parallel training (torch.distributed, gloo, two CPU processes) matches one process.

"Match" means: the same number of epochs, per-epoch training losses and validation metrics equal
within 1e-4 (relative), and every saved parameter within 2e-4 (absolute; the parameters are of
order 0.1 to 1). The two runs take the same optimisation steps on the same global batches; only
the order of floating-point sums differs (each rank sums its half of a batch, then the gradients
are averaged), which leaves differences of order 1e-6 after a few epochs. Dropout is off: with it,
each rank draws its own masks and runs agree only in distribution.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")


def run(args: list[str], out: Path) -> tuple[dict, dict[str, np.ndarray]]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, *args, str(out)], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    meta = json.loads((out / "model.json").read_text())
    with np.load(out / "state.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return meta, arrays


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bpr", "sasrec", "sasrec-bce"])
def test_two_processes_match_one(model: str, tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed")
    one_meta, one = run([str(WORKER), model], tmp_path / "one")
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    two_meta, two = run([*torchrun, str(WORKER), model], tmp_path / "two")

    assert one_meta["training"]["processes"] == 1 and two_meta["training"]["processes"] == 2
    c1, c2 = one_meta["training"]["curve"], two_meta["training"]["curve"]
    assert [p["epoch"] for p in c1] == [p["epoch"] for p in c2]
    for a, b in zip(c1, c2, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["valid"] == pytest.approx(a["valid"], rel=1e-4, abs=1e-6)
    assert one.keys() == two.keys()
    for key in one:
        np.testing.assert_allclose(two[key], one[key], atol=2e-4, err_msg=key)
    # and the runs did learn something: the parameters moved away from their initial values
    assert c1[-1]["loss"] < c1[0]["loss"]
