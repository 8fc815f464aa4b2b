"""What the PyTorch models (BPR-MF, SASRec) share: importing torch, seeds, threads, data-parallel
training with ``torch.distributed``, the validation scorer and the early-stopping loop.

**Data parallel.** When a process is started by ``torchrun`` (``WORLD_SIZE > 1``), :func:`join`
joins the process group (``gloo`` on CPU, ``nccl`` on CUDA). Every rank then draws the *same*
global batches (same seed, same shuffling, same negatives) and takes its own contiguous slice of
each (:func:`shard`); the model is wrapped in ``DistributedDataParallel``, which averages
gradients over ranks. Each rank's loss is its share of the *global* batch's mean loss, scaled by
the world size (:func:`global_mean`), so the averaged gradient equals the gradient of the global
batch's mean loss: one process and N processes take the same optimisation steps, up to the order
of floating-point sums (and dropout, whose masks each rank draws from its own generator).
Validation users are split over ranks and their metric sums all-reduced, so every rank takes the
same early-stopping decision. Only rank 0 writes files (see ``FittedState.save``).

**Validation.** :class:`Validator` ranks the whole catalog for users with a validation event,
their training items masked, and reports the mean NDCG@k or Recall@k of the validation item
(ties go to the lower item index, as in recai-eval's ``ranking.v1``).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import Field, ValidationInfo

from recai.data import Split
from recai.errors import RecaiError
from recai.progress import Progress

if TYPE_CHECKING:
    import torch

# Params shared by the trained models (BPR, SASRec): one definition, one description. Every
# number has bounds, so that what a recipe check accepts, a run can allocate and finish.
MAX_EPOCHS = 100_000
MAX_BATCH = 10_000_000
MAX_CELLS = 2**32
"""Most elements of one activation tensor the params imply (16 GiB of float32), checked across
fields (BPR: ``batch_size * negatives * factors``; SASRec: ``batch_size * max_len * hidden`` and
``batch_size * heads * max_len**2``)."""

Epochs = Annotated[int, Field(ge=1, le=MAX_EPOCHS, description="most training epochs")]
Patience = Annotated[
    int,
    Field(ge=1, le=MAX_EPOCHS, description="stop after this many epochs without improvement"),
]
ValidMetric = Annotated[
    Literal["ndcg", "recall"], Field(description="early-stopping metric on split.valid")
]
ValidK = Annotated[int, Field(ge=1, le=100_000, description="cut-off of the validation metric")]
LearningRate = Annotated[float, Field(gt=0, le=10, description="Adam learning rate")]
WeightDecay = Annotated[float, Field(ge=0, le=1e6, description="Adam L2 penalty")]


def cells_within(
    info: ValidationInfo, what: str, value: int, *names: str, squared: str = ""
) -> None:
    """Raise a ValueError naming the fields when ``value`` times the already-validated fields
    ``names`` (times ``squared`` squared) is more than :data:`MAX_CELLS`; fields that failed
    their own check are skipped (their error is reported already)."""
    total = value
    for name in (*names, squared, squared) if squared else names:
        other = info.data.get(name)
        if not isinstance(other, int):
            return
        total *= other
    if total > MAX_CELLS:
        raise ValueError(
            f"{what} = {total:,} elements in one tensor is more than {MAX_CELLS:,} (16 GiB of "
            f"float32); lower one of them"
        )


Device = Annotated[Literal["cpu", "cuda", "auto"], Field(description="where to train and score")]


__all__ = [
    "require_torch",
    "Parallel",
    "join",
    "shard",
    "global_mean",
    "Validator",
    "TrainingLog",
    "train_with_early_stopping",
]

MAX_VALID_CASES = 20_000
"""Validation scores at most this many (user, item) cases (a seeded sample beyond that)."""


def require_torch() -> Any:
    """``import torch``, or a :class:`~recai.errors.RecaiError` that says how to install it."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of recai-classic
        raise RecaiError(
            "this model needs PyTorch: pip install torch==2.13.0 (the CPU build; install it "
            "before recai-classic so pip does not pull a CUDA build)"
        ) from None
    return torch


def resolve_device(device: str) -> Any:
    """``"cpu"``, ``"cuda"`` (refused when no GPU is visible) or ``"auto"`` as a torch device."""
    torch = require_torch()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RecaiError(f"device {device!r} asked for, but torch sees no CUDA GPU; use 'cpu'")
    return torch.device(device)


# -- data parallel ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parallel:
    """This process's place in a data-parallel run: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums of ``values`` over all ranks (float64)."""
        if not self.active:
            return [float(v) for v in values]
        torch = require_torch()
        import torch.distributed as dist

        t = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()


_JOINED: list[bool] = []


def join(device: Any = None) -> Parallel:
    """The process group of a ``torchrun`` launch (``WORLD_SIZE > 1``), joined on first use;
    a single process otherwise. ``gloo`` serves CPU training, ``nccl`` CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Parallel()
    require_torch()
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device is not None and getattr(device, "type", "") == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        if not _JOINED:
            atexit.register(_leave)
        _JOINED.append(True)
    return Parallel(dist.get_rank(), dist.get_world_size())


def _leave() -> None:
    """Leave the process group at exit, all ranks together: a rank that tears gloo down while a
    peer still works (rank 0 saving the model) can abort with "terminate called without an
    active exception" (seen once in CI). The barrier waits at most a minute, so a crashed peer
    cannot hang the exit."""
    import datetime

    import torch.distributed as dist

    if not dist.is_initialized():
        return
    if dist.get_backend() == "gloo":
        with contextlib.suppress(Exception):  # a peer that died: leave anyway
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
    dist.destroy_process_group()


def shard(n: int, par: Parallel) -> slice:
    """This rank's contiguous part of ``n`` rows (sizes differ by at most one).

    >>> [shard(5, Parallel(r, 2)) for r in range(2)]
    [slice(0, 3, None), slice(3, 5, None)]
    """
    base, extra = divmod(n, par.world)
    start = par.rank * base + min(par.rank, extra)
    return slice(start, start + base + (1 if par.rank < extra else 0))


def global_mean(local_sum: torch.Tensor, global_count: int, par: Parallel) -> torch.Tensor:
    """The loss a rank backpropagates so that DDP's gradient average equals the gradient of the
    mean over the whole global batch: ``local_sum * world / global_count``."""
    return local_sum * (par.world / max(1, global_count))


# -- validation --------------------------------------------------------------------------------
class Validator:
    """Full-catalog NDCG@k or Recall@k of each user's validation item, training items masked.

    ``score(histories, users)`` returns a ``(B, n_items)`` float tensor. With several validation
    items per user every (user, item) pair is a case. Users are split over data-parallel ranks
    and the sums all-reduced.
    """

    def __init__(
        self,
        split: Split,
        metric: str = "ndcg",
        k: int = 10,
        *,
        seed: int = 0,
        batch_size: int = 256,
        max_cases: int = MAX_VALID_CASES,
    ) -> None:
        if metric not in ("ndcg", "recall"):
            raise ValueError(f"valid_metric must be 'ndcg' or 'recall', not {metric!r}")
        self.metric = metric
        self.k = int(k)
        self.batch_size = batch_size
        valid = split.valid
        self.n_items = split.dataset.n_items
        if valid is None or not len(valid):
            self.users = np.zeros(0, dtype=np.int64)
            self.targets = np.zeros(0, dtype=np.int64)
            self.histories: list[np.ndarray] = []
            self.sampled = False
            return
        pairs = np.unique(valid.users * self.n_items + valid.items)
        self.sampled = len(pairs) > max_cases
        if self.sampled:
            rng = np.random.default_rng(seed)
            pairs = np.sort(rng.choice(pairs, size=max_cases, replace=False))
        self.users = pairs // self.n_items
        self.targets = pairs % self.n_items
        self.histories = split.train.histories(self.users.tolist())

    def __len__(self) -> int:
        return len(self.users)

    @property
    def name(self) -> str:
        return f"{'NDCG' if self.metric == 'ndcg' else 'Recall'}@{self.k}"

    def __call__(
        self, score: Callable[[list[np.ndarray], np.ndarray], Any], par: Parallel
    ) -> float:
        """The mean metric over all cases (every rank gets the same number)."""
        torch = require_torch()
        part = shard(len(self), par)
        idx = np.arange(len(self))[part]
        total = 0.0
        for lo in range(0, len(idx), self.batch_size):
            rows = idx[lo : lo + self.batch_size]
            hist = [self.histories[r] for r in rows.tolist()]
            with torch.inference_mode():
                scores = score(hist, self.users[rows]).float().clone()
                total += float(self._values(scores, hist, self.targets[rows]).sum())
        sums = par.all_sum([total, float(len(idx))])
        return sums[0] / max(1.0, sums[1])

    def _values(self, scores: torch.Tensor, hist: list[np.ndarray], targets: np.ndarray) -> Any:
        torch = require_torch()
        b, n = scores.shape
        lengths = [len(h) for h in hist]
        if sum(lengths):
            rows = torch.from_numpy(np.repeat(np.arange(b), lengths))
            cols = torch.from_numpy(np.concatenate(hist).astype(np.int64))
            scores[rows, cols] = -math.inf
        tgt = torch.from_numpy(targets.astype(np.int64))
        t_score = scores[torch.arange(b), tgt].unsqueeze(1)
        above = (scores > t_score).sum(1)
        tied = ((scores == t_score) & (torch.arange(n).unsqueeze(0) < tgt.unsqueeze(1))).sum(1)
        rank = (above + tied).double()
        hit = (rank < self.k) & torch.isfinite(t_score.squeeze(1))
        if self.metric == "recall":
            return hit.double()
        return torch.where(hit, 1.0 / torch.log2(rank + 2.0), torch.zeros_like(rank))


# -- the training loop -------------------------------------------------------------------------
@dataclass
class TrainingLog:
    """What :func:`train_with_early_stopping` did; saved with the model in ``model.json``."""

    epochs_run: int = 0
    best_epoch: int = 0
    metric: str | None = None
    best_valid: float | None = None
    stopped_early: bool = False
    seconds: float = 0.0
    processes: int = 1
    valid_cases: int = 0
    decays: list[int] = field(default_factory=list)
    curve: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "metric": self.metric,
            "best_valid": self.best_valid,
            "stopped_early": self.stopped_early,
            "seconds": round(self.seconds, 3),
            "processes": self.processes,
            "valid_cases": self.valid_cases,
            "decays": self.decays,
            "curve": self.curve,
        }


def train_with_early_stopping(
    module: torch.nn.Module,
    *,
    epochs: int,
    patience: int,
    run_epoch: Callable[[int], float],
    validate: Callable[[], float] | None,
    par: Parallel,
    desc: str,
    metric: str | None = None,
    valid_cases: int = 0,
    on_epoch: Callable[[int], None] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    decays: int = 0,
    decay_factor: float = 0.3,
) -> TrainingLog:
    """Run ``run_epoch(epoch)`` (returns the mean training loss) up to ``epochs`` times.

    With ``validate`` (returns the validation metric, higher is better) the parameters of the
    best epoch are kept and restored at the end, and training stops after ``patience`` epochs
    without improvement. Without it every epoch runs and the last parameters stay. Rank 0
    reports progress through :class:`recai.progress.Progress`: the loss, the validation metric
    and the best value so far, as a bar on a terminal and as a line every
    ``RECAI_PROGRESS_INTERVAL`` seconds in a log (silenced by ``recai.progress.enabled(False)``,
    which ``recai run --no-progress`` sets).

    ``on_epoch(epoch)`` (1-based), when given, runs after each epoch and its validation, with the
    module in eval mode and that epoch's parameters; its time is left out of ``seconds``.

    ``decays`` > 0 (needs ``optimizer`` and ``validate``): the first ``decays`` times patience
    runs out, training does not stop; it goes back to the best epoch's parameters and optimizer
    state, multiplies every learning rate by ``decay_factor`` and goes on (the epochs after which
    that happened are in ``log.decays``). Noisy validation curves of fast learning rates often
    settle higher after such a step down.
    """
    if decays and (optimizer is None or validate is None):
        raise ValueError("decays need an optimizer and a validation split")
    log = TrainingLog(metric=metric, processes=par.world, valid_cases=valid_cases)
    start = time.perf_counter()
    best_state: dict[str, Any] | None = None
    best = -math.inf
    best_opt: dict[str, Any] = {}
    waited = 0
    side = 0.0  # seconds spent in on_epoch
    with Progress(total=epochs, desc=desc, unit="epoch", enabled=par.main) as bar:
        for epoch in range(epochs):
            loss = run_epoch(epoch)
            point: dict[str, float] = {"epoch": epoch + 1, "loss": round(float(loss), 6)}
            log.epochs_run = epoch + 1
            if validate is not None:
                value = float(validate())
                point["valid"] = round(value, 6)
                if value > best:
                    best, waited = value, 0
                    log.best_epoch, log.best_valid = epoch + 1, value
                    best_state = copy.deepcopy(module.state_dict())
                    if decays:
                        best_opt = copy.deepcopy(optimizer.state_dict())  # type: ignore[union-attr]
                else:
                    waited += 1
            log.curve.append(point)
            shown: dict[str, float] = {"loss": float(loss)}
            if validate is not None:
                shown[metric or "valid"] = point["valid"]
                shown["best"] = best
                shown["best_epoch"] = log.best_epoch
            bar.update(1, **shown)
            if on_epoch is not None:
                entered = time.perf_counter()
                module.eval()
                on_epoch(epoch + 1)
                side += time.perf_counter() - entered
            if validate is not None and waited >= patience:
                if len(log.decays) < decays and best_state is not None:
                    assert optimizer is not None
                    module.load_state_dict(best_state)
                    optimizer.load_state_dict(best_opt)
                    for group in optimizer.param_groups:
                        group["lr"] *= decay_factor
                    best_opt = copy.deepcopy(optimizer.state_dict())
                    log.decays.append(epoch + 1)
                    waited = 0
                    continue
                log.stopped_early = epoch + 1 < epochs
                break
        if log.stopped_early:
            bar.close(f"stopped early (best epoch {log.best_epoch})")
    if best_state is not None:
        module.load_state_dict(best_state)
    if validate is None:
        log.best_epoch = log.epochs_run
    log.seconds = time.perf_counter() - start - side
    return log


def seeded_generator(seed: int, *parts: int) -> np.random.Generator:
    """A numpy generator for ``seed`` and sub-stream ``parts`` (e.g. the epoch): the same on
    every rank, so every rank draws the same global batches."""
    return np.random.default_rng([int(seed), *(int(p) for p in parts)])


def csr_histories(histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, items)`` of a list of histories (for saving them as arrays)."""
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    indptr = np.zeros(len(histories) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    items = (
        np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
        if indptr[-1]
        else np.zeros(0, dtype=np.int64)
    )
    return indptr, items


def state_to_numpy(module: torch.nn.Module, prefix: str = "net.") -> dict[str, np.ndarray]:
    """A module's parameters and buffers as float32/int64 numpy arrays, keys prefixed."""
    return {prefix + k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def numpy_to_state(
    module: torch.nn.Module, arrays: dict[str, np.ndarray], prefix: str = "net."
) -> None:
    """Load arrays written by :func:`state_to_numpy` into ``module`` (strict: every key)."""
    torch = require_torch()
    state = {
        k[len(prefix) :]: torch.from_numpy(np.array(v))
        for k, v in arrays.items()
        if k.startswith(prefix)
    }
    module.load_state_dict(state, strict=True)
