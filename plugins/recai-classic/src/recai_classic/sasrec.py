"""SASRec: next-item prediction with causal self-attention over a user's recent items.

The network (Kang & McAuley, 2018): item embeddings (shared by input and output) plus learned
position embeddings, ``blocks`` pre-norm Transformer blocks (multi-head causal self-attention and a
GELU feed-forward layer of ``4 x hidden``, each with dropout and a residual connection) and a final
layer norm; ``norm = "post"`` puts the layer norms after each residual sum and on the input
instead (the paper's and RecBole's layout), ``attn_dropout`` drops attention weights. The output
at position ``t`` scores every item by a dot product with its embedding, as the prediction of the
item at ``t + 1``.

**Training.** A user's training items, in time order, are cut into windows of ``max_len + 1`` items
from the most recent backwards, so every training transition is a target exactly once per epoch;
the network predicts each item of a window from the ones before it. By default consecutive
windows share one item (a target early in a window sees little context); ``stride = s`` steps
the windows back ``s`` items at a time and makes only each window's last ``s`` transitions
targets, so every target (past the first ``max_len - s`` of a history) sees at least
``max_len - s + 1`` items — RecBole's every-prefix training is ``stride = 1``, at about
``max_len`` times the compute of the default. Windows are shuffled each epoch and grouped by
length so that batches carry little padding. Losses: ``"ce"``, cross-entropy over the whole
catalog (a full softmax: on catalogs of a few thousand items it is cheap and learns faster than
sampling), and ``"bce"``, the paper's
binary cross-entropy with one uniformly sampled negative per position (an item the user has not
seen in training). Adam; early stopping on the validation split (NDCG@10 by default, full
ranking); the best epoch's parameters are kept. ``ema = d`` (``0 < d < 1``) keeps an
exponential moving average of the weights, updated after every optimizer step with decay
``d`` (``torch.optim.swa_utils.AveragedModel``): validation, early stopping and the fitted
model then use the averaged weights, which are smoother than the last step's and usually
generalise better; training itself is unchanged. Deterministic on CPU under ``seed`` for a given
number of threads. Launched by ``torchrun``, training is data parallel (see
:mod:`recai_classic._training`).

**Scoring.** A history's last ``max_len`` items are encoded and the output at its last position
scores the catalog. An empty history is encoded as a single padding token (a fixed, uninformed
vector). As a retriever, a query's seed items (or the user's training history) are the history;
the seeds are left out of the results.

**Public internals** (for explainers and knowledge prompters): :meth:`SASRec.item_embeddings`
(``n_items x hidden``), :meth:`SASRec.history_embeddings` (the representation of any histories,
the vector that scores the catalog), :meth:`SASRec.user_embeddings` (that representation for the
training history of each user) and :meth:`SASRec.similar_items` (cosine similarity of item
embeddings).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, Field, ValidationInfo

import recai
from recai.data import Split
from recai.specs import Seed
from recai.types import ItemList, Query

from ._common import (
    FittedState,
    as_index_array,
    check_candidates,
    check_items,
    take_candidates,
    top_similar,
)
from ._training import (
    MAX_BATCH,
    Device,
    Epochs,
    LearningRate,
    Patience,
    Validator,
    ValidK,
    ValidMetric,
    WeightDecay,
    cells_within,
    csr_histories,
    global_mean,
    join,
    numpy_to_state,
    require_torch,
    resolve_device,
    seeded_generator,
    shard,
    state_to_numpy,
    train_with_early_stopping,
)

if TYPE_CHECKING:
    import torch

__all__ = ["SASRec", "training_windows"]


def _heads_divide_hidden(heads: int, info: ValidationInfo) -> int:
    hidden = info.data.get("hidden")
    if isinstance(hidden, int) and hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
    return heads


def _batch_fits(batch_size: int, info: ValidationInfo) -> int:
    """``batch_size`` such that a batch's activations and attention weights fit."""
    cells_within(info, "batch_size * max_len * hidden", batch_size, "max_len", "hidden")
    cells_within(info, "batch_size * heads * max_len**2", batch_size, "heads", squared="max_len")
    return batch_size


_SCORE_BATCH = 256  # histories encoded at once when scoring


def training_windows(
    histories: Sequence[np.ndarray], max_len: int, stride: int | None = None
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Every history cut into windows of at most ``max_len + 1`` items, the most recent first.

    Window ends step back ``stride`` items at a time (default ``max_len``: consecutive windows
    overlap by one item). Each transition is a target in exactly one window — the most recent
    window that holds it, where it has the longest context: a window's targets are its last
    ``stride`` transitions (all of them in the oldest window); its earlier items are context
    only. Histories shorter than two items give no window. Returns the windows, the index of
    the history each came from, and each window's first target position (``0``: the item at
    position 1 is the first target; ``k``: items up to position ``k`` are context only).

    >>> windows, owners, first = training_windows([np.arange(7), np.arange(1)], 3)
    >>> [w.tolist() for w in windows], owners.tolist(), first.tolist()
    ([[3, 4, 5, 6], [0, 1, 2, 3]], [0, 0], [0, 0])
    >>> windows, owners, first = training_windows([np.arange(7)], 3, stride=1)
    >>> [w.tolist() for w in windows], first.tolist()
    ([[3, 4, 5, 6], [2, 3, 4, 5], [1, 2, 3, 4], [0, 1, 2, 3], [0, 1, 2], [0, 1]], [2, 2, 2, 2, 1, 0])
    """
    step = max_len if stride is None else int(stride)
    if not 1 <= step <= max_len:
        raise ValueError(f"stride must be between 1 and max_len ({max_len}), got {stride}")
    out: list[np.ndarray] = []
    owners: list[int] = []
    firsts: list[int] = []
    for u, h in enumerate(histories):
        end = len(h)
        while end >= 2:
            start = max(0, end - max_len - 1)
            out.append(np.asarray(h[start:end], dtype=np.int64))
            owners.append(u)
            oldest = end - step < 2  # no later window: every transition is a target here
            firsts.append(0 if oldest else max(0, (end - step - 1) - start))
            end = end - step
            if oldest:
                break
    return out, np.asarray(owners, dtype=np.int64), np.asarray(firsts, dtype=np.int64)


def _network(
    n_items: int,
    hidden: int,
    blocks: int,
    heads: int,
    max_len: int,
    dropout: float,
    norm: str = "pre",
    attn_dropout: float = 0.0,
    label_smoothing: float = 0.0,
) -> Any:
    torch = require_torch()
    post = norm == "post"
    nn = torch.nn
    F = torch.nn.functional

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1 = nn.LayerNorm(hidden)
            self.qkv = nn.Linear(hidden, 3 * hidden)
            self.out = nn.Linear(hidden, hidden)
            self.norm2 = nn.LayerNorm(hidden)
            self.ff1 = nn.Linear(hidden, 4 * hidden)
            self.ff2 = nn.Linear(4 * hidden, hidden)
            self.drop = nn.Dropout(dropout)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, n, d = x.shape
            y = x if post else self.norm1(x)
            q, k, v = self.qkv(y).view(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            p = attn_dropout if self.training else 0.0
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
            x = x + self.drop(self.out(a.transpose(1, 2).reshape(b, n, d)))
            if post:  # BERT's order, as RecBole and the SASRec paper's code use
                x = self.norm1(x)
                return self.norm2(x + self.drop(self.ff2(F.gelu(self.ff1(x)))))
            return x + self.drop(self.ff2(F.gelu(self.ff1(self.norm2(x)))))

    class Net(nn.Module):
        """Token 0 pads; item ``i`` is token ``i + 1``. Sequences are right-padded."""

        def __init__(self) -> None:
            super().__init__()
            self.items = nn.Embedding(n_items + 1, hidden, padding_idx=0)
            self.positions = nn.Embedding(max_len, hidden)
            self.drop = nn.Dropout(dropout)
            self.blocks = nn.ModuleList(Block() for _ in range(blocks))
            self.norm = nn.LayerNorm(hidden)
            self.apply(self._init)

        @staticmethod
        def _init(m: nn.Module) -> None:
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
                if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                    with torch.no_grad():
                        m.weight[m.padding_idx].zero_()

        def encode(self, tokens: torch.Tensor) -> torch.Tensor:
            pos = torch.arange(tokens.shape[1], device=tokens.device)
            x = self.items(tokens) + self.positions(pos)
            if post:  # post-norm: the layer norm is on the input; each block ends normalised
                x = self.norm(x)
            x = self.drop(x)
            for block in self.blocks:
                x = block(x)
            return x if post else self.norm(x)

        def catalog(self) -> torch.Tensor:
            return self.items.weight[1:]

        def forward(
            self, tokens: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor | None
        ) -> torch.Tensor:
            """Summed loss over the positions with a target (targets are tokens; 0 = none)."""
            h = self.encode(tokens)
            live = targets > 0
            hv = h[live]
            tgt = targets[live]
            if negatives is None:
                logits = hv @ self.catalog().T
                return F.cross_entropy(
                    logits, tgt - 1, reduction="sum", label_smoothing=label_smoothing
                )
            pos = (hv * self.items(tgt)).sum(-1)
            neg = (hv * self.items(negatives[live])).sum(-1)
            return F.softplus(-pos).sum() + F.softplus(neg).sum()

    return Net()


class SASRec(FittedState, recai.Ranker, recai.Retriever):
    """Self-attentive sequential recommendation (PyTorch): scores the next item of a history.

    >>> from recai.data import synthetic_dataset, leave_one_out
    >>> model = SASRec(hidden=16, blocks=1, max_len=10, epochs=2)
    >>> model.fit(leave_one_out(synthetic_dataset(seed=1)))
    >>> model.score([np.array([0, 1, 2])]).shape
    (1, 40)
    >>> model.item_embeddings().shape
    (40, 16)
    """

    component = "sasrec.v1"

    epoch_callback: Callable[[int, Callable[..., np.ndarray]], None] | None = None
    """Set to ``f(epoch, score)`` to watch training: after each epoch (1-based) and its
    validation, ``score(histories, users)`` returns full-catalog scores ``(B, n_items)`` under
    that epoch's parameters (e.g. to measure time-to-accuracy). Its time is not counted in
    ``training_log["seconds"]``; it is not a parameter and is never saved."""

    def __init__(
        self,
        hidden: Annotated[int, Field(ge=2, le=8192, description="embedding and hidden size")] = 64,
        blocks: Annotated[int, Field(ge=1, le=256, description="self-attention blocks")] = 2,
        heads: Annotated[
            int,
            Field(ge=1, le=256, description="attention heads (divide hidden)"),
            AfterValidator(_heads_divide_hidden),
        ] = 2,
        max_len: Annotated[
            int, Field(ge=2, le=100_000, description="most recent items the model reads")
        ] = 50,
        stride: Annotated[
            int | None,
            Field(
                ge=1,
                le=100_000,
                description="training windows step back this many items (default max_len); "
                "smaller: more windows, every target with a longer context",
            ),
        ] = None,
        dropout: Annotated[float, Field(ge=0, lt=1, description="dropout rate")] = 0.2,
        attn_dropout: Annotated[
            float, Field(ge=0, lt=1, description="dropout rate of the attention weights")
        ] = 0.0,
        norm: Annotated[
            Literal["pre", "post"],
            Field(
                description="pre: layer norm before each sublayer and at the end (stable); "
                "post: after each residual sum and on the input (the paper's and RecBole's)"
            ),
        ] = "pre",
        loss: Annotated[
            Literal["ce", "bce"],
            Field(description="ce: softmax over the catalog; bce: one sampled negative"),
        ] = "ce",
        label_smoothing: Annotated[
            float,
            Field(
                ge=0,
                lt=1,
                description="ce only: this share of each target's probability is spread over "
                "the catalog",
            ),
        ] = 0.0,
        lr: LearningRate = 2e-3,
        weight_decay: WeightDecay = 0.0,
        batch_size: Annotated[
            int,
            Field(ge=1, le=MAX_BATCH, description="training windows per batch"),
            AfterValidator(_batch_fits),
        ] = 64,
        epochs: Epochs = 200,
        patience: Patience = 10,
        decays: Annotated[
            int,
            Field(
                ge=0,
                le=1000,
                description="times to go back to the best epoch and multiply the learning rate "
                "by decay_factor when patience runs out, before stopping",
            ),
        ] = 0,
        decay_factor: Annotated[
            float, Field(gt=0, lt=1, description="learning-rate factor of each decay")
        ] = 0.3,
        ema: Annotated[
            float,
            Field(
                ge=0,
                lt=1,
                description="0: off; else validate, keep and use an exponential moving average "
                "of the weights, updated after every step with this decay (e.g. 0.998)",
            ),
        ] = 0.0,
        valid_metric: ValidMetric = "ndcg",
        valid_k: ValidK = 10,
        seed: Annotated[Seed, Field(description="seed of initialisation, shuffling, dropout")] = 0,
        device: Device = "cpu",
    ) -> None:
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.hidden = int(hidden)
        self.blocks = int(blocks)
        self.heads = int(heads)
        self.max_len = int(max_len)
        if stride is not None and not 1 <= stride <= max_len:
            raise ValueError(f"stride must be between 1 and max_len ({max_len}), got {stride}")
        self.stride = None if stride is None else int(stride)
        self.dropout = float(dropout)
        self.attn_dropout = float(attn_dropout)
        self.norm = norm
        self.loss = loss
        if label_smoothing and loss != "ce":
            raise ValueError("label_smoothing applies to loss = 'ce' only")
        self.label_smoothing = float(label_smoothing)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.batch_size = int(batch_size)
        self.epochs = int(epochs)
        self.patience = int(patience)
        self.decays = int(decays)
        self.decay_factor = float(decay_factor)
        if not 0 <= ema < 1:
            raise ValueError(f"ema is a decay in [0, 1) (0: off), got {ema}")
        self.ema = float(ema)
        self.valid_metric = valid_metric
        self.valid_k = int(valid_k)
        self.seed = int(seed)
        self.device = device
        self._net: Any = None
        self._train_indptr: np.ndarray | None = None
        self._train_items: np.ndarray | None = None

    # -- FittedState ------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "blocks": self.blocks,
            "heads": self.heads,
            "max_len": self.max_len,
            "stride": self.stride,
            "dropout": self.dropout,
            "attn_dropout": self.attn_dropout,
            "norm": self.norm,
            "loss": self.loss,
            "label_smoothing": self.label_smoothing,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "patience": self.patience,
            "decays": self.decays,
            "decay_factor": self.decay_factor,
            "ema": self.ema,
            "valid_metric": self.valid_metric,
            "valid_k": self.valid_k,
            "seed": self.seed,
            "device": self.device,
        }

    def state(self) -> dict[str, np.ndarray]:
        self.require_fitted()
        assert self._train_indptr is not None and self._train_items is not None
        return {
            **state_to_numpy(self._net),
            "train_indptr": self._train_indptr,
            "train_items": self._train_items,
        }

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        n_items = int(arrays["net.items.weight"].shape[0]) - 1
        net = self._build(n_items)
        numpy_to_state(net, arrays)
        net.eval()
        self._net = net
        self._train_indptr = np.asarray(arrays["train_indptr"], dtype=np.int64)
        self._train_items = np.asarray(arrays["train_items"], dtype=np.int64)

    def _build(self, n_items: int) -> Any:
        torch = require_torch()
        torch.manual_seed(self.seed)
        net = _network(
            n_items,
            self.hidden,
            self.blocks,
            self.heads,
            self.max_len,
            self.dropout,
            self.norm,
            self.attn_dropout,
            self.label_smoothing,
        )
        return net.to(resolve_device(self.device))

    # -- learning ---------------------------------------------------------------------------------
    def fit(self, split: Split) -> None:
        """Train on ``split.train``, early-stopping on ``split.valid`` (when it has events)."""
        torch = require_torch()
        n_items = split.dataset.n_items
        device = resolve_device(self.device)
        par = join(device)
        histories = split.train.histories()
        net = self._build(n_items)
        model: Any = net
        if par.active:
            model = torch.nn.parallel.DistributedDataParallel(net)
        torch.manual_seed(self.seed + 7919 * par.rank)  # dropout: one stream per rank
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        windows, owners, firsts = training_windows(histories, self.max_len, self.stride)
        if not windows:
            raise recai.RecaiError(
                f"{self.component}: no user has two training events, so there is nothing to "
                "learn the next item from"
            )
        lengths = np.array([len(w) for w in windows], dtype=np.int64)
        n_tgt = lengths - 1 - firsts  # targets per window
        seen = _SeenItems(histories, n_items) if self.loss == "bce" else None
        averaged: Any = None  # the moving average of the weights, when ema > 0
        if self.ema:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(self.ema))
            averaged.eval()

        def run_epoch(epoch: int) -> float:
            net.train()
            rng = seeded_generator(self.seed, epoch)
            total, count = 0.0, 0
            for rows in _length_batches(lengths, self.batch_size, rng):
                # the global batch is drawn alike on every rank; each rank takes its slice
                n_targets = int(n_tgt[rows].sum())
                negatives = None
                if seen is not None:  # one negative per target, for the whole global batch
                    flat = seen.sample(np.repeat(owners[rows], lengths[rows] - 1), rng)
                    negatives = np.split(flat, np.cumsum(lengths[rows] - 1)[:-1])
                mine = shard(len(rows), par)
                part = rows[mine]
                tokens, targets = _pack([windows[r] for r in part.tolist()], firsts[part])
                neg_t = None
                if negatives is not None:
                    neg_t = _pack(negatives[mine], shift=False)[0].to(device)
                loss_sum = model(tokens.to(device), targets.to(device), neg_t)
                opt.zero_grad(set_to_none=True)
                global_mean(loss_sum, n_targets, par).backward()
                opt.step()
                if averaged is not None:
                    averaged.update_parameters(net)
                total += float(loss_sum.detach())
                count += int((targets > 0).sum())
            sums = par.all_sum([total, float(count)])
            return sums[0] / max(1.0, sums[1])

        validator = Validator(split, self.valid_metric, self.valid_k, seed=self.seed)
        # scoring (validation, the epoch callback, the fitted model) reads self._net
        self._net = net if averaged is None else averaged.module
        # early stopping keeps (and on a decay restores) the training weights and the average
        kept = net if averaged is None else torch.nn.ModuleList([net, averaged])

        def validate() -> float:
            self._net.eval()
            return validator(lambda h, u: self._score_tensor(h), par)

        def on_epoch(epoch: int) -> None:
            def score(histories: Sequence[np.ndarray], users: np.ndarray) -> np.ndarray:
                return self._score_tensor(histories).double().numpy()

            self.epoch_callback(epoch, score)  # type: ignore[misc]

        log = train_with_early_stopping(
            kept,
            epochs=self.epochs,
            patience=self.patience,
            run_epoch=run_epoch,
            validate=validate if len(validator) else None,
            par=par,
            desc=f"{self.component} ({self.loss})",
            metric=validator.name if len(validator) else None,
            valid_cases=len(validator),
            on_epoch=on_epoch if self.epoch_callback is not None else None,
            optimizer=opt,
            decays=self.decays if len(validator) else 0,
            decay_factor=self.decay_factor,
        )
        self._net.eval()
        self._train_indptr, self._train_items = csr_histories(histories)
        self.training_log = {**log.to_dict(), "windows": len(windows)}
        self.remember(split)

    # -- scoring ----------------------------------------------------------------------------------
    def _score_tensor(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        torch = require_torch()
        net = self._net
        with torch.inference_mode():
            reps = self._encode(histories)
            return (reps @ net.catalog().T).float().cpu()

    def _encode(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        """The representation (last position's output) of each history: ``(B, hidden)``."""
        torch = require_torch()
        net = self._net
        device = next(net.parameters()).device
        out = []
        for lo in range(0, len(histories), _SCORE_BATCH):
            chunk = [
                np.asarray(h, dtype=np.int64)[-self.max_len :]
                for h in histories[lo : lo + _SCORE_BATCH]
            ]
            width = max(1, max((len(h) for h in chunk), default=1))
            tokens = np.zeros((len(chunk), width), dtype=np.int64)
            last = np.zeros(len(chunk), dtype=np.int64)
            for b, h in enumerate(chunk):
                tokens[b, : len(h)] = h + 1
                last[b] = max(0, len(h) - 1)
            h_out = net.encode(torch.from_numpy(tokens).to(device))
            out.append(h_out[torch.arange(len(chunk)), torch.from_numpy(last).to(device)])
        if not out:
            return torch.zeros((0, self.hidden), device=device)
        return torch.cat(out)

    def score(
        self,
        histories: Sequence[np.ndarray],
        items: np.ndarray | None = None,
        *,
        users: np.ndarray | None = None,
    ) -> np.ndarray:
        n_items = self.require_fitted()
        cand = (
            None
            if items is None
            else check_candidates(items, len(histories), n_items, self.component)
        )
        hist = [as_index_array(h) for h in histories]
        for h in hist:
            check_items(h, n_items, self.component)
        self._net.eval()
        full = self._score_tensor(hist).double().numpy()
        return take_candidates(full, cand)

    # -- public internals -------------------------------------------------------------------------
    def item_embeddings(self) -> np.ndarray:
        """The item embedding matrix, ``(n_items, hidden)``: row ``i`` is item ``i``'s vector,
        used both to read a history and to score the next item (dot product)."""
        self.require_fitted()
        return self._net.catalog().detach().cpu().numpy().astype(np.float32)

    def history_embeddings(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The vector each history is summarised into, ``(B, hidden)``: its scores are this
        vector's dot products with :meth:`item_embeddings`."""
        n_items = self.require_fitted()
        hist = [as_index_array(h) for h in histories]
        for h in hist:
            check_items(h, n_items, self.component)
        torch = require_torch()
        self._net.eval()
        with torch.inference_mode():
            return self._encode(hist).float().cpu().numpy()

    def user_embeddings(self, users: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """:meth:`history_embeddings` of each user's *training* history (all users by default)."""
        return self.history_embeddings(self.training_histories(users))

    def training_histories(
        self, users: Sequence[int] | np.ndarray | None = None
    ) -> list[np.ndarray]:
        """The training histories the model was fitted on (time order), by user index."""
        self.require_fitted()
        indptr, items = self._train_indptr, self._train_items
        assert indptr is not None and items is not None
        n_users = len(indptr) - 1
        us = np.arange(n_users) if users is None else np.asarray(users, dtype=np.int64).reshape(-1)
        if len(us) and (us.min() < 0 or us.max() >= n_users):
            raise ValueError(f"{self.component} knows users 0..{n_users - 1}")
        return [items[indptr[u] : indptr[u + 1]] for u in us.tolist()]

    def similar_items(self, item: int, k: int = 10) -> ItemList:
        """The ``k`` items whose embeddings have the highest cosine similarity with ``item``'s."""
        ids, sims = top_similar(self.item_embeddings(), int(item), k)
        return ItemList(ids, sims)

    # -- Retriever --------------------------------------------------------------------------------
    def retrieve(
        self, query: Query, k: int = 10, *, candidates: ItemList | None = None
    ) -> ItemList:
        n_items = self.require_fitted()
        if query.items is not None:
            history = as_index_array(query.items)
        elif query.user is not None:
            history = self.training_histories([query.user])[0]
        else:
            raise ValueError(
                f"{self.component} retrieves by seed items or a user, not by text alone"
            )
        scores = self.score([history])[0]
        pool = None if candidates is None else np.unique(as_index_array(candidates))
        if pool is not None:
            check_items(pool, n_items, self.component)
        return ItemList.from_scores(scores, k, exclude=history, candidates=pool)

    def __repr__(self) -> str:
        fitted = f"fitted on {self.n_items} items" if self.n_items is not None else "not fitted"
        return (
            f"SASRec(hidden={self.hidden}, blocks={self.blocks}, max_len={self.max_len}, "
            f"loss={self.loss!r}, {fitted})"
        )


# -- batching ------------------------------------------------------------------------------------
def _length_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffled windows grouped into batches of similar length (little padding): windows are
    shuffled, sorted by length within groups of 50 batches, cut into batches, and the batches
    shuffled."""
    order = rng.permutation(len(lengths))
    group = batch_size * 50
    batches = []
    for lo in range(0, len(order), group):
        part = order[lo : lo + group]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _pack(
    windows: Sequence[np.ndarray], firsts: np.ndarray | None = None, *, shift: bool = True
) -> tuple[Any, Any]:
    """Right-padded token tensors. ``shift``: inputs are each window without its last item and
    targets without its first (both as tokens, item + 1; 0 pads); ``firsts[b]``: the first
    ``firsts[b]`` targets of window ``b`` are context only (set to 0)."""
    torch = require_torch()
    n = len(windows)
    size = max((len(w) for w in windows), default=1)
    size = max(1, (size - 1) if shift else size)
    inputs = np.zeros((n, size), dtype=np.int64)
    targets = np.zeros((n, size), dtype=np.int64)
    for b, w in enumerate(windows):
        if shift:
            inputs[b, : len(w) - 1] = w[:-1] + 1
            targets[b, : len(w) - 1] = w[1:] + 1
            if firsts is not None and firsts[b]:
                targets[b, : firsts[b]] = 0
        else:
            inputs[b, : len(w)] = w + 1
    return torch.from_numpy(inputs), torch.from_numpy(targets)


class _SeenItems:
    """Which items each user has in training, for drawing negatives they have not seen."""

    def __init__(self, histories: Sequence[np.ndarray], n_items: int) -> None:
        indptr, items = csr_histories(histories)
        users = np.repeat(np.arange(len(histories)), np.diff(indptr))
        self.keys = np.unique(users * n_items + items)
        self.n_items = n_items

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One uniform unseen item per entry of ``users`` (see :func:`~.bpr.sample_negatives`)."""
        from .bpr import sample_negatives

        return sample_negatives(users, self.keys, self.n_items, rng)
