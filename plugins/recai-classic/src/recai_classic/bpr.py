"""BPR-MF: matrix factorisation trained with Bayesian Personalised Ranking (Rendle et al., 2009).

A user ``u`` and an item ``i`` have ``factors``-dimensional embeddings; the score is their dot
product. Each epoch, every training interaction ``(u, i)`` is paired with ``negatives`` items
``j`` (default one) drawn uniformly among the items ``u`` has no training interaction with, and the
loss ``-log sigmoid(s_ui - s_uj)`` (averaged over the negatives of a pair) is minimised with Adam,
plus ``weight_decay`` times the squared norms of the batch's user, positive and negative embeddings
(BPR's regulariser, applied to the rows a batch uses; a pair's negatives averaged). Early
stopping on the validation split (NDCG@10 by default, full ranking); the best epoch's parameters
are kept. Deterministic on CPU under ``seed`` for a given number of threads.
Launched by ``torchrun``, training is data parallel (see :mod:`recai_classic._training`).

**Scoring.** A user known at fit time (``users=`` in :meth:`BPR.score`, ``Query(user=...)``) is
scored with their learned embedding; the history is then only used to mask seen items. A history
without a known user (``users`` not given, or a user index the model has not seen) is *folded in*:
its vector is the mean of its items' embeddings (an empty history scores every item 0).

**Public internals** (for explainers and knowledge prompters): :meth:`BPR.user_embeddings`,
:meth:`BPR.item_embeddings` (numpy), :meth:`BPR.fold_in` and :meth:`BPR.similar_items` (cosine
similarity of item embeddings).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

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
    cells_within,
    csr_histories,
    global_mean,
    join,
    require_torch,
    resolve_device,
    seeded_generator,
    shard,
    train_with_early_stopping,
)

if TYPE_CHECKING:
    import torch

__all__ = ["BPR", "sample_negatives"]


def _negatives_fit(negatives: int, info: ValidationInfo) -> int:
    """``negatives`` such that a batch's ``batch_size x negatives x factors`` embeddings fit."""
    cells_within(info, "batch_size * negatives * factors", negatives, "batch_size", "factors")
    return negatives


def sample_negatives(
    users: np.ndarray,
    seen_keys: np.ndarray,
    n_items: int,
    rng: np.random.Generator,
    tries: int = 50,
) -> np.ndarray:
    """One item per entry of ``users``, uniform over the items that user has not seen.

    ``seen_keys`` are the sorted ``user * n_items + item`` keys of the training interactions.
    Draws are vectorised and redrawn where they hit a seen item; after ``tries`` rounds a rare
    leftover (a user who has seen nearly the whole catalog) is kept as drawn.

    >>> keys = np.array([0 * 4 + 0, 0 * 4 + 1, 0 * 4 + 2])  # user 0 has seen items 0, 1, 2
    >>> sample_negatives(np.zeros(5, dtype=np.int64), keys, 4, np.random.default_rng(0)).tolist()
    [3, 3, 3, 3, 3]
    """
    items = rng.integers(0, n_items, size=len(users))
    if not len(seen_keys):
        return items
    todo = np.arange(len(users))  # entries still to check: at first all, then the redrawn ones
    for _ in range(tries):
        keys = users[todo] * n_items + items[todo]
        pos = np.minimum(np.searchsorted(seen_keys, keys), len(seen_keys) - 1)
        todo = todo[seen_keys[pos] == keys]
        if not len(todo):
            break
        items[todo] = rng.integers(0, n_items, size=len(todo))
    return items


def _network(n_users: int, n_items: int, factors: int) -> Any:
    torch = require_torch()
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.users = nn.Embedding(n_users, factors)
            self.items = nn.Embedding(n_items, factors)
            nn.init.normal_(self.users.weight, std=0.1)
            nn.init.normal_(self.items.weight, std=0.1)

        def forward(
            self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor, decay: float
        ) -> torch.Tensor:
            """Summed BPR loss and L2 penalty of the batch ``(u, i, j)``; ``j`` is ``(B, k)``: each
            pair's ``k`` negatives count ``1/k`` each."""
            eu, ei, ej = self.users(u), self.items(i), self.items(j)
            k = j.shape[1]
            x = (eu.unsqueeze(1) * (ei.unsqueeze(1) - ej)).sum(-1)
            loss = torch.nn.functional.softplus(-x).sum() / k
            if decay:
                loss = loss + decay * (
                    eu.square().sum() + ei.square().sum() + ej.square().sum() / k
                )
            return loss

    return Net()


class BPR(FittedState, recai.Ranker, recai.Retriever):
    """Matrix factorisation with the BPR pairwise loss (PyTorch).

    >>> from recai.data import synthetic_dataset, leave_one_out
    >>> model = BPR(factors=8, epochs=2)
    >>> model.fit(leave_one_out(synthetic_dataset(seed=1)))
    >>> model.score([np.array([0, 1])], users=np.array([3])).shape
    (1, 40)
    >>> model.user_embeddings().shape, model.item_embeddings().shape
    ((60, 8), (40, 8))
    """

    component = "bpr.v1"

    epoch_callback: Callable[[int, Callable[..., np.ndarray]], None] | None = None
    """Set to ``f(epoch, score)`` to watch training: after each epoch (1-based) and its
    validation, ``score(histories, users)`` returns full-catalog scores ``(B, n_items)`` under
    that epoch's parameters (e.g. to measure time-to-accuracy). Its time is not counted in
    ``training_log["seconds"]``; it is not a parameter and is never saved."""

    def __init__(
        self,
        factors: Annotated[int, Field(ge=1, le=4096, description="embedding size")] = 64,
        lr: LearningRate = 5e-3,
        weight_decay: Annotated[
            float,
            Field(ge=0, le=1e6, description="L2 penalty on the embeddings each batch uses"),
        ] = 1e-5,
        batch_size: Annotated[
            int, Field(ge=1, le=MAX_BATCH, description="interactions per batch")
        ] = 4096,
        negatives: Annotated[
            int,
            Field(ge=1, le=1000, description="negative items drawn per training interaction"),
            AfterValidator(_negatives_fit),
        ] = 1,
        epochs: Epochs = 200,
        patience: Patience = 10,
        valid_metric: ValidMetric = "ndcg",
        valid_k: ValidK = 10,
        seed: Annotated[
            Seed, Field(description="seed of initialisation, shuffling, negatives")
        ] = 0,
        device: Device = "cpu",
    ) -> None:
        self.factors = int(factors)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.batch_size = int(batch_size)
        self.negatives = int(negatives)
        self.epochs = int(epochs)
        self.patience = int(patience)
        self.valid_metric = valid_metric
        self.valid_k = int(valid_k)
        self.seed = int(seed)
        self.device = device
        self._user_vectors: np.ndarray | None = None
        self._item_vectors: np.ndarray | None = None
        self._train_indptr: np.ndarray | None = None
        self._train_items: np.ndarray | None = None

    # -- FittedState ------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "negatives": self.negatives,
            "epochs": self.epochs,
            "patience": self.patience,
            "valid_metric": self.valid_metric,
            "valid_k": self.valid_k,
            "seed": self.seed,
            "device": self.device,
        }

    def state(self) -> dict[str, np.ndarray]:
        self.require_fitted()
        assert self._user_vectors is not None and self._item_vectors is not None
        assert self._train_indptr is not None and self._train_items is not None
        return {
            "net.users.weight": self._user_vectors,
            "net.items.weight": self._item_vectors,
            "train_indptr": self._train_indptr,
            "train_items": self._train_items,
        }

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        users = np.asarray(arrays["net.users.weight"], dtype=np.float32)
        items = np.asarray(arrays["net.items.weight"], dtype=np.float32)
        if users.shape[1:] != (self.factors,) or items.shape[1:] != (self.factors,):
            raise ValueError(
                f"embeddings of size {users.shape[1:]} / {items.shape[1:]}, not {self.factors}"
            )
        self._user_vectors, self._item_vectors = users, items
        self._train_indptr = np.asarray(arrays["train_indptr"], dtype=np.int64)
        self._train_items = np.asarray(arrays["train_items"], dtype=np.int64)

    # -- learning ---------------------------------------------------------------------------------
    def fit(self, split: Split) -> None:
        """Train on ``split.train``, early-stopping on ``split.valid`` (when it has events)."""
        torch = require_torch()
        n_items, n_users = split.dataset.n_items, split.dataset.n_users
        train = split.train
        if not len(train):
            raise recai.RecaiError(f"{self.component}: the training split has no interactions")
        device = resolve_device(self.device)
        par = join(device)
        torch.manual_seed(self.seed)
        net = _network(n_users, n_items, self.factors).to(device)
        model: Any = net
        if par.active:
            model = torch.nn.parallel.DistributedDataParallel(net)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        users_all = torch.from_numpy(train.users)
        items_all = torch.from_numpy(train.items)
        seen = np.unique(train.users * n_items + train.items)
        n = len(train)

        def run_epoch(epoch: int) -> float:
            net.train()
            rng = seeded_generator(self.seed, epoch)
            order = rng.permutation(n)
            drawn = sample_negatives(
                np.repeat(train.users[order], self.negatives), seen, n_items, rng
            )
            negatives = torch.from_numpy(drawn.reshape(n, self.negatives))
            order_t = torch.from_numpy(order)
            total = 0.0
            for lo in range(0, n, self.batch_size):
                # the global batch is drawn alike on every rank; each rank takes its slice
                hi = min(n, lo + self.batch_size)
                mine = shard(hi - lo, par)
                rows = order_t[lo:hi][mine]
                u = users_all[rows].to(device)
                i = items_all[rows].to(device)
                j = negatives[lo:hi][mine].to(device)
                loss_sum = model(u, i, j, self.weight_decay)
                opt.zero_grad(set_to_none=True)
                global_mean(loss_sum, hi - lo, par).backward()
                opt.step()
                total += float(loss_sum.detach())
            return par.all_sum([total])[0] / n

        validator = Validator(split, self.valid_metric, self.valid_k, seed=self.seed)

        def validate() -> float:
            net.eval()
            weights_u, weights_i = net.users.weight, net.items.weight
            return validator(
                lambda h, u: (weights_u[torch.from_numpy(u).to(device)] @ weights_i.T).cpu(), par
            )

        def on_epoch(epoch: int) -> None:
            with torch.inference_mode():
                users_w, items_w = net.users.weight, net.items.weight

                def score(histories: Sequence[np.ndarray], users: np.ndarray) -> np.ndarray:
                    u = torch.from_numpy(np.asarray(users, dtype=np.int64)).to(device)
                    return (users_w[u] @ items_w.T).double().cpu().numpy()

                self.epoch_callback(epoch, score)  # type: ignore[misc]

        log = train_with_early_stopping(
            net,
            epochs=self.epochs,
            patience=self.patience,
            run_epoch=run_epoch,
            validate=validate if len(validator) else None,
            par=par,
            desc=self.component,
            metric=validator.name if len(validator) else None,
            valid_cases=len(validator),
            on_epoch=on_epoch if self.epoch_callback is not None else None,
        )
        self._user_vectors = net.users.weight.detach().cpu().numpy().copy()
        self._item_vectors = net.items.weight.detach().cpu().numpy().copy()
        self._train_indptr, self._train_items = csr_histories(train.histories())
        self.training_log = log.to_dict()
        self.remember(split)

    # -- scoring ----------------------------------------------------------------------------------
    def fold_in(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Vectors for histories without a known user: the mean of their items' embeddings
        (zeros for an empty history), ``(B, factors)``."""
        self.require_fitted()
        items = self._item_vectors
        assert items is not None
        out = np.zeros((len(histories), self.factors), dtype=np.float64)
        for b, h in enumerate(histories):
            h = as_index_array(h)
            check_items(h, len(items), self.component)
            if len(h):
                out[b] = items[np.unique(h)].astype(np.float64).mean(axis=0)
        return out

    def _vectors(self, histories: Sequence[np.ndarray], users: np.ndarray | None) -> np.ndarray:
        assert self._user_vectors is not None
        vecs = self.fold_in(histories)
        if users is not None:
            us = np.asarray(users, dtype=np.int64).reshape(-1)
            if len(us) != len(histories):
                raise ValueError(f"{len(us)} users for {len(histories)} histories")
            known = (us >= 0) & (us < len(self._user_vectors))
            vecs[known] = self._user_vectors[us[known]]
        return vecs

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
        vecs = self._vectors(histories, users)
        item_vecs = self._item_vectors.astype(np.float64)  # type: ignore[union-attr]
        if cand is not None and cand.ndim == 1:
            return vecs @ item_vecs[cand].T
        return take_candidates(vecs @ item_vecs.T, cand)

    # -- public internals -------------------------------------------------------------------------
    def user_embeddings(self, users: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """The learned user embeddings, ``(n_users, factors)`` float32 (rows ``users`` if given)."""
        self.require_fitted()
        assert self._user_vectors is not None
        if users is None:
            return self._user_vectors.copy()
        return self._user_vectors[np.asarray(users, dtype=np.int64)]

    def item_embeddings(self) -> np.ndarray:
        """The learned item embeddings, ``(n_items, factors)`` float32."""
        self.require_fitted()
        assert self._item_vectors is not None
        return self._item_vectors.copy()

    def similar_items(self, item: int, k: int = 10) -> ItemList:
        """The ``k`` items whose embeddings have the highest cosine similarity with ``item``'s."""
        ids, sims = top_similar(self.item_embeddings(), int(item), k)
        return ItemList(ids, sims)

    def training_history(self, user: int) -> np.ndarray:
        """The items of ``user`` the model was trained on (time order)."""
        self.require_fitted()
        indptr, items = self._train_indptr, self._train_items
        assert indptr is not None and items is not None
        if not 0 <= user < len(indptr) - 1:
            raise ValueError(f"{self.component} knows users 0..{len(indptr) - 2}, not {user}")
        return items[indptr[user] : indptr[user + 1]]

    # -- Retriever --------------------------------------------------------------------------------
    def retrieve(
        self, query: Query, k: int = 10, *, candidates: ItemList | None = None
    ) -> ItemList:
        """A known user (``Query(user=...)``) is scored with their embedding, their training
        items and any seed items excluded; seed items alone are folded in and excluded."""
        n_items = self.require_fitted()
        seeds = as_index_array(query.items) if query.items is not None else np.zeros(0, np.int64)
        if query.user is not None:
            exclude = np.union1d(seeds, self.training_history(query.user))
            scores = self.score([seeds], users=np.array([query.user]))[0]
        elif query.items is not None:
            exclude = seeds
            scores = self.score([seeds])[0]
        else:
            raise ValueError(
                f"{self.component} retrieves by seed items or a user, not by text alone"
            )
        pool = None if candidates is None else np.unique(as_index_array(candidates))
        if pool is not None:
            check_items(pool, n_items, self.component)
        return ItemList.from_scores(scores, k, exclude=exclude, candidates=pool)

    def __repr__(self) -> str:
        fitted = f"fitted on {self.n_items} items" if self.n_items is not None else "not fitted"
        return f"BPR(factors={self.factors}, {fitted})"
