"""Contrastive fine-tuning of a text encoder on RecLM-emb examples (InfoNCE).

Each optimiser step reads ``batch_size × accumulation`` examples (query, positive passage, hard
negative passages). Within a micro-batch of ``batch_size`` examples a query is scored against
**every passage of the micro-batch** (its positive, the other examples' positives and all hard
negatives) by cosine similarity divided by ``temperature``; the loss is the cross-entropy of
picking its own positive (InfoNCE with in-batch and hard negatives). A passage written exactly
like the query's positive (the same item in another example) is masked, not counted as a
negative. Gradients of ``accumulation`` micro-batches are summed before a step (AdamW, linear
warm-up then linear decay).

**Data parallel.** Launched by ``torchrun`` (``WORLD_SIZE`` > 1) each process encodes its share of
every micro-batch under :class:`torch.nn.parallel.DistributedDataParallel` (gloo on CPU, NCCL on
GPU); the embeddings of all processes are gathered, so every process computes the loss over the
whole micro-batch, exactly as one process would: the same examples, the same negatives, the same
steps. Only process 0 writes files.

**Checkpoints and resume.** Every ``checkpoint_every`` steps the model, optimiser, schedule,
random state and loss curve are written to ``<out>/checkpoints/step-NNNNNN.pt`` (under a temporary
name, then renamed). A run started again with the same ``out`` and settings resumes from the
last checkpoint and takes the same steps an uninterrupted run takes (examples are read in a
seeded order computed from the step number). Different settings are refused.

**Output.** ``<out>/model/``: a normal transformers folder (``config.json``,
``model.safetensors``, tokenizer files, ``1_Pooling/config.json`` naming the pooling, and
``recai_emb_training.json`` with the settings and the loss curve), which ``embedding.v1`` loads
with ``model = "<out>/model"``.

Run it from the command line (``recai emb train --help``; ``python -m torch.distributed.run
--nproc_per_node 2 -m recai emb train ...`` for two processes) or from Python with
:func:`train`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, Field, ValidationInfo

from recai.errors import DataError, RecaiError
from recai.progress import Progress
from recai.runtime import atomic_write_file
from recai.specs import Params, Seed

from .encoder import _auto_max_length, _auto_pooling, pool, resolve_model, token_ids
from .tasks import read_examples

__all__ = ["TrainConfig", "train"]


MAX_BATCH_TOKENS = 1 << 24
"""Most tokens one micro-batch may hold: ``batch_size * (2 + negatives) * max_length`` (a query,
its positive and its hard negatives per example; 16.8 million, a few GB of activations even for a
small encoder)."""


def batch_tokens_fit(
    batch_size: int, negatives: int, max_length: int, batch_name: str, length_name: str
) -> None:
    """Raise a ValueError naming the fields when a micro-batch would hold more than
    :data:`MAX_BATCH_TOKENS` tokens."""
    tokens = batch_size * (2 + negatives) * max_length
    if tokens > MAX_BATCH_TOKENS:
        raise ValueError(
            f"{batch_name} * (2 + negatives) * {length_name} = {tokens:,} tokens per batch is "
            f"more than {MAX_BATCH_TOKENS:,}; lower one of them"
        )


def _query_tokens_fit(value: int, info: ValidationInfo) -> int:
    batch, negatives = info.data.get("batch_size"), info.data.get("negatives")
    if isinstance(batch, int) and isinstance(negatives, int):
        batch_tokens_fit(batch, negatives, value, "batch_size", "max_length")
    return value


def _passage_tokens_fit(value: int, info: ValidationInfo) -> int:
    batch, negatives = info.data.get("batch_size"), info.data.get("negatives")
    if isinstance(batch, int) and isinstance(negatives, int):
        batch_tokens_fit(batch, negatives, value, "batch_size", "passage_max_length")
    return value


class TrainConfig(Params):
    """Settings of a fine-tuning run (see the module docstring)."""

    model: str = Field("minilm", description="the encoder to start from (folder or 'minilm')")
    steps: Annotated[int, Field(ge=1, le=10_000_000, description="optimiser steps")] = 200
    batch_size: Annotated[
        int, Field(ge=2, le=65_536, description="examples per micro-batch, all processes")
    ] = 32
    accumulation: Annotated[
        int, Field(ge=1, le=10_000, description="micro-batches per optimiser step")
    ] = 1
    lr: Annotated[float, Field(gt=0, le=10, description="learning rate")] = 3e-5
    warmup: Annotated[float, Field(ge=0, lt=1, description="fraction of steps warming up")] = 0.1
    weight_decay: Annotated[float, Field(ge=0, le=1e6, description="AdamW weight decay")] = 0.01
    temperature: Annotated[float, Field(gt=0, le=1)] = 0.05
    negatives: Annotated[int, Field(ge=0, le=16, description="hard negatives per example")] = 1
    max_length: Annotated[
        int,
        Field(ge=8, le=1_048_576, description="query tokens"),
        AfterValidator(_query_tokens_fit),
    ] = 128
    query_keep: Literal["start", "end"] = Field(
        "end",
        description="which part of a query longer than max_length is kept: 'end' keeps the most "
        "recent history items and the request (and the prefix), as the encoder reads queries",
    )
    passage_max_length: Annotated[
        int,
        Field(ge=8, le=1_048_576, description="passage tokens"),
        AfterValidator(_passage_tokens_fit),
    ] = 64
    pooling: Literal["auto", "mean", "cls", "last"] = "auto"
    query_prefix: str = ""
    passage_prefix: str = ""
    seed: Seed = 0
    dropout: bool = Field(True, description="train with the model's dropout (train mode)")
    checkpoint_every: Annotated[
        int, Field(ge=1, le=10_000_000, description="steps between checkpoints")
    ] = 50
    keep_checkpoints: Annotated[
        int, Field(ge=1, le=1000, description="checkpoints kept on disk")
    ] = 2
    threads: Annotated[int | None, Field(ge=1, le=1024, description="torch threads")] = None
    device: str = "cpu"

    def key(self) -> str:
        """A hash of everything that changes the result (not threads, checkpoint cadence)."""
        d = self.model_dump(exclude={"threads", "checkpoint_every", "keep_checkpoints", "device"})
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# -- distributed ----------------------------------------------------------------------------------
class _Dist:
    """Rank, world size and the process group (created here when torchrun started us)."""

    def __init__(self, device: str) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.created = False
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
            self.created = True
        self.rank = dist.get_rank() if self.world > 1 else 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            self.dist.barrier()

    def gather(self, local: Any) -> Any:
        """All processes' rows, in rank order; this process's rows keep their gradient."""
        if self.world == 1:
            return local
        import torch

        parts = [torch.empty_like(local) for _ in range(self.world)]
        self.dist.all_gather(parts, local.detach().contiguous())
        parts[self.rank] = local
        return torch.cat(parts, 0)

    def close(self) -> None:
        if self.created:
            self.dist.destroy_process_group()


# -- data -----------------------------------------------------------------------------------------
class _Rows:
    """Examples as (query, positive, negatives) texts, read in a seeded order by step."""

    def __init__(self, rows: Sequence[dict[str, Any]], negatives: int, seed: int) -> None:
        kept = [r for r in rows if len(r.get("neg", [])) >= negatives]
        self.dropped = len(rows) - len(kept)
        if not kept:
            raise DataError(
                f"no example has {negatives} hard negative(s); lower 'negatives' or regenerate"
            )
        self.queries = [str(r["query"]) for r in kept]
        self.pos = [str(r["pos"]) for r in kept]
        self.neg = [[str(x) for x in r.get("neg", [])[:negatives]] for r in kept]
        self.seed = seed
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.queries)

    def batch(self, index: int, size: int) -> np.ndarray:
        """Row numbers of micro-batch ``index`` (epochs are seeded permutations)."""
        n = len(self)
        pos = np.arange(index * size, (index + 1) * size)
        out = np.empty(size, dtype=np.int64)
        for e in np.unique(pos // n):
            if int(e) not in self._perms:
                self._perms = {int(e): np.random.default_rng([self.seed, int(e)]).permutation(n)}
            sel = pos // n == e
            out[sel] = self._perms[int(e)][pos[sel] % n]
        return out


# -- the model ------------------------------------------------------------------------------------
def _dual(model: Any, pooling: str) -> Any:
    """One module that encodes queries and passages in one forward (one DDP forward a step)."""
    import torch

    class Dual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model

        def embed(self, ids: Any, mask: Any) -> Any:
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            return pool(hidden, mask, pooling, True)

        def forward(self, q_ids: Any, q_mask: Any, p_ids: Any, p_mask: Any) -> tuple[Any, Any]:
            return self.embed(q_ids, q_mask), self.embed(p_ids, p_mask)

    return Dual()


def _schedule(step: int, total: int, warmup: int) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("step-*.pt")) if folder.exists() else []


def _write_model(
    model: Any,
    tokenizer: Any,
    source: Path | str,
    out: Path,
    config: TrainConfig,
    pooling: str,
    facts: dict[str, Any],
) -> Path:
    """Save the final folder under a temporary name, then rename it to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "1_Pooling").mkdir()
        modes = {
            "mean": "pooling_mode_mean_tokens",
            "cls": "pooling_mode_cls_token",
            "last": "pooling_mode_lasttoken",
        }
        pooling_cfg = {"word_embedding_dimension": int(model.config.hidden_size)}
        pooling_cfg.update({v: k == pooling for k, v in modes.items()})
        (tmp / "1_Pooling" / "config.json").write_text(json.dumps(pooling_cfg, indent=1))
        src_sb = Path(source) / "sentence_bert_config.json" if isinstance(source, Path) else None
        if src_sb is not None and src_sb.exists():
            shutil.copy(src_sb, tmp / "sentence_bert_config.json")
        (tmp / "recai_emb_training.json").write_text(
            json.dumps({"config": config.model_dump(), "pooling": pooling, **facts}, indent=1)
        )
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def train(
    config: TrainConfig,
    examples: str | os.PathLike[str] | Sequence[dict[str, Any]],
    out: str | os.PathLike[str],
    *,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Fine-tune ``config.model`` on ``examples`` (a JSONL path or rows); returns the facts of
    the run (``model_dir``, ``steps``, ``curve``, ``processes``, ``seconds``, ``resumed_from``).

    ``stop_after`` ends the run after that many steps (as an interruption would: the last
    checkpoint stays, no model is written) — for tests of resume.

    >>> facts = train(TrainConfig(steps=2), "train.jsonl", "runs/ft")  # doctest: +SKIP
    >>> facts["model_dir"]  # doctest: +SKIP
    'runs/ft/model'
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    out = Path(out)
    rows = read_examples(examples) if isinstance(examples, (str, os.PathLike)) else list(examples)
    data = _Rows(rows, config.negatives, config.seed)
    dist = _Dist(config.device)
    try:
        if config.batch_size % dist.world:
            raise RecaiError(
                f"batch_size {config.batch_size} does not divide among {dist.world} processes"
            )
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        source, label = resolve_model(config.model)
        local = {"local_files_only": True}
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(source), **local)
            model = AutoModel.from_pretrained(str(source), dtype=torch.float32, **local)
        except OSError as e:
            raise RecaiError(f"cannot load encoder {config.model!r} from {source}: {e}") from None
        pooling = _auto_pooling(source) if config.pooling == "auto" else config.pooling
        limit = int(getattr(model.config, "max_position_embeddings", 0) or 1 << 30)
        q_len = min(config.max_length, limit, _auto_max_length(source, tokenizer))
        p_len = min(config.passage_max_length, limit)
        model.to(config.device)
        model.train(config.dropout)
        module = _dual(model, pooling)
        if dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            # encoders carry parts the embedding never uses (BERT's pooler): let DDP skip them
            module = DistributedDataParallel(module, find_unused_parameters=True)
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
        named = list(model.named_parameters())
        groups = [
            {
                "params": [p for n, p in named if not n.endswith(no_decay)],
                "weight_decay": config.weight_decay,
            },
            {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=config.lr)
        warm = int(round(config.warmup * config.steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: _schedule(s, config.steps, warm)
        )
        ckpt_dir = out / "checkpoints"
        start, curve, resumed = 0, [], None
        for ckpt in reversed(_checkpoints(ckpt_dir)):
            try:
                state = torch.load(ckpt, map_location=config.device, weights_only=False)
            except Exception:  # noqa: BLE001 - a torn file: try the one before
                continue
            if state.get("config_key") != config.key():
                raise RecaiError(
                    f"{out} holds checkpoints of a run with other settings: use another out "
                    f"folder, or delete {ckpt_dir} to start again"
                )
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            start, curve, resumed = int(state["step"]), list(state["curve"]), ckpt.name
            break
        per_rank = config.batch_size // dist.world
        lo, hi = dist.rank * per_rank, (dist.rank + 1) * per_rank
        qp, pp = config.query_prefix, config.passage_prefix

        def tok(texts: list[str], length: int, prefix: str, keep: str) -> tuple[Any, Any]:
            ids = token_ids(tokenizer, texts, length, prefix=prefix, keep=keep)  # type: ignore[arg-type]
            enc = tokenizer.pad({"input_ids": ids}, return_tensors="pt")
            return enc["input_ids"].to(config.device), enc["attention_mask"].to(config.device)

        started = time.perf_counter()
        steps = range(start, config.steps if stop_after is None else min(config.steps, stop_after))
        with Progress(
            desc="fine-tune",
            unit="step",
            initial=start,
            total=config.steps,
            enabled=progress and dist.main,
        ) as bar:
            for step in steps:
                optimizer.zero_grad(set_to_none=True)
                total = 0.0
                for micro in range(config.accumulation):
                    idx = data.batch(step * config.accumulation + micro, config.batch_size)
                    mine = idx[lo:hi]
                    queries = [data.queries[i] for i in mine]
                    # passages: this process's positives, then its hard negatives, row by row
                    passages = [data.pos[i] for i in mine]
                    passages += [t for i in mine for t in data.neg[i]]
                    q_ids, q_mask = tok(queries, q_len, qp, config.query_keep)
                    p_ids, p_mask = tok(passages, p_len, pp, "start")
                    sync = micro == config.accumulation - 1 or dist.world == 1
                    ctx = contextlib.nullcontext() if sync else module.no_sync()
                    with ctx:
                        q, p = module(q_ids, q_mask, p_ids, p_mask)
                        q_all, p_all = dist.gather(q), dist.gather(p)
                        loss = _info_nce(
                            q_all,
                            p_all,
                            idx,
                            data,
                            dist.world,
                            per_rank,
                            config.negatives,
                            config.temperature,
                        )
                        # DDP averages gradients over processes; each process's gradient covers
                        # only its own rows, so the sum is what one process would compute
                        (loss * dist.world / config.accumulation).backward()
                    total += float(loss.detach()) / config.accumulation
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                curve.append([step + 1, round(total, 6)])
                bar.update(1, loss=total)
                done = step + 1
                if done % config.checkpoint_every == 0 or done == config.steps:
                    if dist.main:
                        _save_checkpoint(ckpt_dir, done, model, optimizer, scheduler, curve, config)
                    dist.barrier()
        seconds = time.perf_counter() - started
        last = curve[-1][0] if curve else 0
        facts: dict[str, Any] = {
            "base_model": label,
            "examples": len(data),
            "examples_dropped_few_negatives": data.dropped,
            "processes": dist.world,
            "steps": last,
            "resumed_from": resumed,
            "seconds": round(seconds, 2),
            "curve": curve,
        }
        if last < config.steps:
            facts["model_dir"] = None  # interrupted on purpose (stop_after): no model yet
            return facts
        model_dir = out / "model"
        if dist.main:
            model.eval()
            _write_model(model, tokenizer, source, model_dir, config, pooling, facts)
        dist.barrier()
        facts["model_dir"] = str(model_dir)
        return facts
    finally:
        dist.close()


def _info_nce(
    q: Any,
    p: Any,
    idx: np.ndarray,
    data: _Rows,
    world: int,
    per_rank: int,
    negatives: int,
    temperature: float,
) -> Any:
    """InfoNCE of the gathered micro-batch (``q``: B queries; ``p``: every process's positives
    then negatives, in rank order)."""
    import torch

    b = len(idx)
    # the text of every gathered passage column, in the order the processes laid them out
    texts: list[str] = []
    labels = []
    for r in range(world):
        rows = idx[r * per_rank : (r + 1) * per_rank]
        base = len(texts)
        labels += [base + j for j in range(len(rows))]
        texts += [data.pos[i] for i in rows]
        texts += [t for i in rows for t in data.neg[i]]
    scores = (q @ p.T) / temperature
    pos_text = [data.pos[i] for i in idx]
    same = torch.tensor([[t == pt for t in texts] for pt in pos_text], dtype=torch.bool)
    target = torch.tensor(labels, dtype=torch.long)
    same[torch.arange(b), target] = False
    scores = scores.masked_fill(same.to(scores.device), float("-inf"))
    return torch.nn.functional.cross_entropy(scores, target.to(scores.device))


def _save_checkpoint(
    folder: Path,
    step: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    curve: list,
    config: TrainConfig,
) -> Path:
    import torch

    state = {
        "step": step,
        "config_key": config.key(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "curve": curve,
    }
    path = atomic_write_file(folder / f"step-{step:06d}.pt", lambda tmp: torch.save(state, tmp))
    for old in _checkpoints(folder)[: -config.keep_checkpoints]:
        old.unlink(missing_ok=True)
    return path
