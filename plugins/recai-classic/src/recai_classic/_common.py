"""What the classic models share: the catalog they were fitted on, sparse history matrices, item
neighbours from embeddings, and saving/loading fitted state (``state.npz`` + ``model.json``) so the
runtime can cache fits.

Saved state is plain arrays in an ``.npz`` file read with ``allow_pickle=False`` (no code runs on
load, and no torch is needed to read it) and a small JSON file with the component, its params, the
catalog fingerprint, the fingerprint of the training data and, for trained models, the training log.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from recai.data import Catalog, Dataset, Split
from recai.errors import DataError

__all__ = [
    "FittedState",
    "catalog_fingerprint",
    "history_matrix",
    "as_index_array",
    "check_items",
    "check_candidates",
    "is_main_process",
    "top_similar",
]

STATE_FILE = "state.npz"
META_FILE = "model.json"


def catalog_fingerprint(catalog: Catalog) -> str:
    """What item index ``i`` means (see :meth:`recai.data.Catalog.fingerprint`)."""
    return catalog.fingerprint()


def history_matrix(histories: Sequence[np.ndarray], n_items: int, who: str) -> Any:
    """A binary ``scipy.sparse`` CSR matrix, one row per history (repeated items count once)."""
    from scipy import sparse

    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    indptr = np.zeros(len(histories) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    cols = (
        np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
        if indptr[-1]
        else np.zeros(0, dtype=np.int64)
    )
    check_items(cols, n_items, who)
    m = sparse.csr_matrix(
        (np.ones(len(cols), dtype=np.float64), cols, indptr), shape=(len(histories), n_items)
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def check_items(items: np.ndarray, n_items: int, who: str) -> None:
    """Refuse item indices outside ``0..n_items-1`` with a message that says why it matters."""
    if len(items) and (items.min() < 0 or items.max() >= n_items):
        bad = int(items.max() if items.max() >= n_items else items.min())
        raise DataError(
            f"{who}: item index {bad} is outside the catalog it was fitted on (0..{n_items - 1}); "
            "score items of the dataset the model was fitted on"
        )


def as_index_array(items: Any) -> np.ndarray:
    """Item indices (an ItemList, array or sequence) as an int64 array."""
    ids = getattr(items, "ids", items)
    return np.asarray(ids, dtype=np.int64).reshape(-1)


def check_candidates(items: Any, n_rows: int, n_items: int, who: str) -> np.ndarray:
    """Candidate indices as int64, refused when outside the catalog or (per-user candidates,
    shape ``(B, C)``) when their rows do not match the ``n_rows`` users."""
    cand = np.asarray(items, dtype=np.int64)
    check_items(cand.reshape(-1), n_items, who)
    if cand.ndim == 2 and cand.shape[0] != n_rows:
        raise ValueError(f"per-user candidates have {cand.shape[0]} rows for {n_rows} users")
    if cand.ndim not in (1, 2):
        raise ValueError(f"candidates must have shape (C,) or (B, C), got {cand.shape}")
    return cand


def take_candidates(full: np.ndarray, cand: np.ndarray | None) -> np.ndarray:
    """Full-catalog scores ``(B, n_items)`` cut to shared ``(C,)`` or per-user ``(B, C)``
    candidates (``None``: all of them)."""
    if cand is None:
        return full
    if cand.ndim == 1:
        return full[:, cand]
    return np.take_along_axis(full, cand, axis=1)


def top_similar(
    vectors: np.ndarray, item: int, k: int, *, cosine: bool = True, exclude_self: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` items whose vectors are most similar to ``item``'s, best first, ties to the lower
    index: ``(items, similarities)``. Cosine similarity by default, else dot products.

    >>> v = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    >>> top_similar(v, 0, 2)[0].tolist()
    [1, 2]
    """
    n = len(vectors)
    check_items(np.array([item]), n, "similar items")
    x = np.asarray(vectors, dtype=np.float64)
    sims = x @ x[item]
    if cosine:
        norms = np.linalg.norm(x, axis=1)
        sims = sims / np.maximum(norms * norms[item], 1e-12)
    keep = np.ones(n, dtype=bool)
    if exclude_self:
        keep[item] = False
    idx = np.flatnonzero(keep)
    sims = sims[idx]
    order = np.lexsort((idx, -sims))[: max(0, k)]
    return idx[order], sims[order]


def is_main_process() -> bool:
    """False in the processes of a ``torch.distributed`` run other than rank 0 (which saves).

    Looks at an initialised process group when torch is already imported, else at ``RANK``
    (set by torchrun); a process outside a distributed run is the main one.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0") or 0) == 0


class FittedState:
    """Mixin: remembers the catalog a model was fitted on; saves and loads its fitted arrays.

    Subclasses set :attr:`component`, implement :meth:`params`, :meth:`state` and
    :meth:`set_state`, and call :meth:`remember` in ``fit``.
    """

    component: ClassVar[str]
    #: Bump when the saved arrays change meaning, so old caches are refused rather than misread.
    format_version: ClassVar[int] = 1

    n_items: int | None = None
    fitted_catalog: str | None = None
    """Fingerprint of the catalog the model was fitted on (see :func:`catalog_fingerprint`)."""
    fitted_data: str | None = None
    """Fingerprint of the split the model was fitted on (:meth:`recai.data.Split.fingerprint`)."""
    training_log: dict[str, Any] | None = None
    """What training did (epochs, best epoch, validation curve, seconds), for trained models."""

    # -- for subclasses ---------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def set_state(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def remember(self, split: Split) -> None:
        self.n_items = split.dataset.n_items
        self.fitted_catalog = catalog_fingerprint(split.dataset.catalog)
        self.fitted_data = split.fingerprint()

    def require_fitted(self) -> int:
        if self.n_items is None:
            raise RuntimeError(
                f"{self.component} is not fitted: call fit(split) or load(directory)"
            )
        return self.n_items

    # -- persistence ------------------------------------------------------------------------------
    def save(self, directory: Path | str) -> None:
        """Write the fitted state into ``directory`` (created if needed).

        In a ``torch.distributed`` run only rank 0 writes; the other ranks return at once.
        """
        n_items = self.require_fitted()
        if not is_main_process():
            return
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        # numpy's stub: a ** mapping could fill savez's allow_pickle (it holds only arrays here)
        np.savez(folder / STATE_FILE, **self.state())  # type: ignore[arg-type]
        meta = {
            "component": self.component,
            "format": self.format_version,
            "params": self.params(),
            "n_items": n_items,
            "catalog": self.fitted_catalog,
            "data": self.fitted_data,
        }
        if self.training_log is not None:
            meta["training"] = self.training_log
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    def _saved_params(self, saved: Any) -> Any:
        """``saved`` (the params in a model file) with any parameter added to the class after
        that file was written filled in with its default: the older version behaved as the
        default does, so a model saved then still loads into a model built with the default."""
        if not isinstance(saved, dict):
            return saved
        out = dict(saved)
        signature = inspect.signature(type(self).__init__).parameters
        for name in self.params().keys() - out.keys():
            default = signature[name].default if name in signature else inspect.Parameter.empty
            if default is not inspect.Parameter.empty:
                out[name] = default
        return out

    def load(self, directory: Path | str, *, dataset: Dataset | None = None) -> None:
        """Read a state written by :meth:`save`.

        Refuses (``DataError``) a state saved by another component, with other params, or for
        another catalog than ``dataset``'s (or than the one this model was already fitted on).
        """
        folder = Path(directory)
        meta_path = folder / META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"no saved {self.component} model here", path=str(meta_path)) from None
        except ValueError as e:
            raise DataError(f"not a readable model file: {e}", path=str(meta_path)) from None
        where = str(meta_path)
        if meta.get("component") != self.component:
            raise DataError(
                f"holds a {meta.get('component')!r} model, not {self.component}", path=where
            )
        if meta.get("format") != self.format_version:
            raise DataError(
                f"was saved in format {meta.get('format')}, this version reads format "
                f"{self.format_version}; fit the model again",
                path=where,
            )
        if self._saved_params(meta.get("params")) != self.params():
            raise DataError(
                f"was saved with params {meta.get('params')}, this model has {self.params()}",
                path=where,
            )
        expected: tuple[int, str | None] | None = None
        if dataset is not None:
            expected = (dataset.n_items, catalog_fingerprint(dataset.catalog))
        elif self.n_items is not None:
            expected = (self.n_items, self.fitted_catalog)
        if expected is not None and (meta.get("n_items"), meta.get("catalog")) != expected:
            raise DataError(
                f"was fitted on a catalog of {meta.get('n_items')} items (fingerprint "
                f"{meta.get('catalog')}), not on this one of {expected[0]} items (fingerprint "
                f"{expected[1]})",
                path=where,
            )
        state_path = folder / STATE_FILE
        try:
            with np.load(state_path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            self.set_state(arrays)
        except FileNotFoundError:
            raise DataError("the model's arrays are missing", path=str(state_path)) from None
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as e:
            raise DataError(
                f"unreadable model arrays ({type(e).__name__}: {e})", path=str(state_path)
            ) from None
        self.n_items = int(meta["n_items"])
        self.fitted_catalog = meta.get("catalog")
        self.fitted_data = meta.get("data")
        self.training_log = meta.get("training")
