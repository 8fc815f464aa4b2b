"""What the classic models share: the catalog they were fitted on, sparse history matrices, and
saving/loading fitted state (``state.npz`` + ``model.json``) so the runtime can cache fits."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from recai.data import Catalog, Dataset, Split
from recai.errors import DataError

__all__ = ["FittedState", "catalog_fingerprint", "history_matrix", "as_index_array"]

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

    def require_fitted(self) -> int:
        if self.n_items is None:
            raise RuntimeError(
                f"{self.component} is not fitted: call fit(split) or load(directory)"
            )
        return self.n_items

    # -- persistence ------------------------------------------------------------------------------
    def save(self, directory: Path | str) -> None:
        """Write the fitted state into ``directory`` (created if needed)."""
        n_items = self.require_fitted()
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / STATE_FILE, **self.state())
        meta = {
            "component": self.component,
            "format": self.format_version,
            "params": self.params(),
            "n_items": n_items,
            "catalog": self.fitted_catalog,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

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
        if meta.get("params") != self.params():
            raise DataError(
                f"was saved with params {meta.get('params')}, this model has {self.params()}",
                path=where,
            )
        expected = None
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
