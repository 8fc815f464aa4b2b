"""Contrastive fine-tuning: the loss, a tiny run that learns, resume, DDP, the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from emb_testkit import write_tiny_encoder

from recai.errors import RecaiError

torch = pytest.importorskip("torch")

from recai import cli  # noqa: E402
from recai_emb.train import TrainConfig, _info_nce, _Rows, train  # noqa: E402


def toy_rows(n: int = 16) -> list[dict]:
    words = [
        "space",
        "war",
        "star",
        "mirror",
        "winter",
        "toy",
        "story",
        "drama",
        "comedy",
        "action",
        "thriller",
        "mystery",
        "kids",
        "animated",
        "adventure",
        "friendship",
    ]
    out = []
    for i in range(n):
        a, b = words[i % len(words)], words[(i * 7 + 3) % len(words)]
        out.append(
            {
                "query": f"a {a} film",
                "pos": f"{a} {b} movie",
                "neg": [f"{words[(i + 5) % len(words)]} story"],
            }
        )
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_encoder(tmp_path_factory.mktemp("tiny") / "enc")


def weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_info_nce_uses_in_batch_and_hard_negatives_and_masks_duplicates():
    rows = _Rows(
        [{"query": "q0", "pos": "A", "neg": ["N0"]}, {"query": "q1", "pos": "B", "neg": ["A"]}],
        negatives=1,
        seed=0,
    )
    idx = np.array([0, 1])
    q = torch.nn.functional.normalize(
        torch.randn(2, 4, generator=torch.Generator().manual_seed(0)), dim=1
    )
    p = torch.nn.functional.normalize(
        torch.randn(4, 4, generator=torch.Generator().manual_seed(1)), dim=1
    )
    loss = _info_nce(q, p, idx, rows, world=1, per_rank=2, negatives=1, temperature=0.1)
    s = (q @ p.T) / 0.1  # columns: A, B, N0, A(as q1's negative)
    row0 = -torch.log_softmax(torch.stack([s[0, 0], s[0, 1], s[0, 2]]), 0)[
        0
    ]  # col 3 is "A": masked
    row1 = -torch.log_softmax(s[1], 0)[1]
    assert float(loss) == pytest.approx(float((row0 + row1) / 2), rel=1e-5)


def test_rows_order_is_seeded_and_covers_every_example():
    rows = _Rows(toy_rows(10), negatives=1, seed=3)
    epoch = np.concatenate([rows.batch(i, 5) for i in range(2)])
    assert sorted(epoch.tolist()) == list(range(10))
    assert rows.batch(3, 5).tolist() == _Rows(toy_rows(10), 1, 3).batch(3, 5).tolist()
    few = _Rows([*toy_rows(3), {"query": "q", "pos": "p", "neg": []}], negatives=1, seed=0)
    assert few.dropped == 1 and len(few) == 3


@pytest.mark.slow
def test_tiny_fine_tune_learns_and_embedding_v1_loads_the_folder(tiny, tmp_path):
    from recai_emb.encoder import TransformersEncoder

    cfg = TrainConfig(
        model=str(tiny),
        steps=25,
        batch_size=8,
        lr=2e-3,
        warmup=0.0,
        dropout=False,
        checkpoint_every=10,
        temperature=0.1,
    )
    facts = train(cfg, toy_rows(16), tmp_path / "run", progress=False)
    curve = [loss for _, loss in facts["curve"]]
    assert len(curve) == 25
    assert np.mean(curve[-5:]) < 0.6 * np.mean(curve[:5]), curve
    model = Path(facts["model_dir"])
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "1_Pooling/config.json",
        "recai_emb_training.json",
    ):
        assert (model / name).exists(), name
    assert len(list((tmp_path / "run" / "checkpoints").glob("step-*.pt"))) == 2  # keep 2
    base, tuned = TransformersEncoder(str(tiny)), TransformersEncoder(str(model))
    assert tuned.pooling == "mean" and tuned.identity()["files"] != base.identity()["files"]
    texts = ["a space film", "space war movie", "mirror story"]
    vb, vt = base.encode(texts, "query"), tuned.encode(texts, "query")
    assert not np.allclose(vb, vt)
    # the tuned encoder scores the trained positive above the trained negative
    q, pos, neg = tuned.encode(["a space film", "space thriller movie", "drama story"])
    assert q @ pos > q @ neg


@pytest.mark.slow
def test_resume_takes_the_same_steps_as_an_uninterrupted_run(tiny, tmp_path):
    cfg = TrainConfig(
        model=str(tiny), steps=6, batch_size=4, lr=1e-3, dropout=False, checkpoint_every=2
    )
    whole = train(cfg, toy_rows(10), tmp_path / "whole", progress=False)
    cut = train(cfg, toy_rows(10), tmp_path / "cut", progress=False, stop_after=3)
    assert cut["model_dir"] is None and cut["steps"] == 3
    assert not (tmp_path / "cut" / "model").exists()
    resumed = train(cfg, toy_rows(10), tmp_path / "cut", progress=False)
    assert resumed["resumed_from"] == "step-000002.pt"
    assert [s for s, _ in resumed["curve"]] == [1, 2, 3, 4, 5, 6]
    losses = [loss for _, loss in resumed["curve"]]
    assert losses == pytest.approx([loss for _, loss in whole["curve"]], rel=1e-5)
    a, b = weights(Path(whole["model_dir"])), weights(Path(resumed["model_dir"]))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=k)
    other = cfg.model_copy(update={"lr": 5e-4})
    with pytest.raises(RecaiError, match="other settings"):
        train(other, toy_rows(10), tmp_path / "cut", progress=False)


def run_cli(args: list[str], *, torchrun: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    head = [sys.executable]
    if torchrun:
        head += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.run(
        [*head, "-m", "recai", "emb", "train", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.slow
def test_two_processes_match_one(tiny, tmp_path):
    pytest.importorskip("torch.distributed")
    examples = tmp_path / "train.jsonl"
    examples.write_text("".join(json.dumps(r) + "\n" for r in toy_rows(16)))
    common = [
        "--examples",
        str(examples),
        "--model",
        str(tiny),
        "--steps",
        "4",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--dropout",
        "false",
        "--quiet",
        "--accumulation",
        "2",
    ]
    one = run_cli([*common, "--out", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_cli([*common, "--out", str(tmp_path / "two")], torchrun=True)
    assert two.returncode == 0, two.stderr[-3000:]
    f1 = json.loads((tmp_path / "one" / "model" / "recai_emb_training.json").read_text())
    f2 = json.loads((tmp_path / "two" / "model" / "recai_emb_training.json").read_text())
    assert f1["processes"] == 1 and f2["processes"] == 2
    assert [x[1] for x in f2["curve"]] == pytest.approx([x[1] for x in f1["curve"]], rel=1e-4)
    a, b = weights(tmp_path / "one" / "model"), weights(tmp_path / "two" / "model")
    for k in a:
        np.testing.assert_allclose(b[k], a[k], atol=2e-5, err_msg=k)
    moved = weights(tiny)
    assert any(not np.allclose(moved[k], a[k]) for k in a if k in moved)


def test_command_line_errors_exit_2(tmp_path, capsys):
    def main(argv):
        return cli.main(["emb", "train", *argv])

    examples = tmp_path / "train.jsonl"
    examples.write_text(json.dumps({"query": "q"}) + "\n")
    assert main(["--examples", str(examples), "--out", str(tmp_path / "o"), "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
    assert main(["--examples", str(examples), "--out", str(tmp_path / "o"), "--steps", "1"]) == 2
    assert "train.jsonl:1" in capsys.readouterr().err
    assert main(["--examples", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o")]) == 2
    with pytest.raises(SystemExit) as e:
        main(["--out", "x"])  # --examples missing: argparse
    assert e.value.code == 2
    capsys.readouterr()
    assert cli.main(["emb"]) == 2  # no action: the help, exit 2
    assert "tasks" in capsys.readouterr().out
