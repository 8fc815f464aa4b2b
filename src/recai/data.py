"""Data types every component reads: :class:`Catalog`, :class:`Interactions`, :class:`Dataset`,
:class:`Split`.

Items and users are addressed by **contiguous indices** (``0..n-1``); the catalog and the dataset's
``user_ids`` map them back to external ids. Interaction arrays are plain numpy; user histories are
a CSR view sorted by time (ties keep file order).

Only the types and the split protocols every technique needs live here; loaders for real formats
are dataset plugins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError

__all__ = ["Catalog", "Interactions", "Dataset", "Split", "leave_one_out", "synthetic_dataset"]


@dataclass(eq=False)
class Catalog:
    """The items: external ids, titles and further columns (genres, price, year, ...).

    ``descriptions`` says in words what each column holds, for use in LLM prompts.
    """

    ids: np.ndarray
    titles: np.ndarray
    fields: dict[str, Any] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids)
        self.titles = np.asarray(self.titles, dtype=object)
        n = len(self.ids)
        if self.ids.ndim != 1:
            raise DataError("catalog ids must be one-dimensional")
        if len(self.titles) != n:
            raise DataError(f"catalog has {n} ids but {len(self.titles)} titles")
        for name, col in self.fields.items():
            if len(col) != n:
                raise DataError(f"catalog column {name!r} has {len(col)} values for {n} items")
        uniq, counts = np.unique(self.ids, return_counts=True)
        if len(uniq) != n:
            dup = uniq[counts > 1][:5].tolist()
            raise DataError(f"catalog item ids are not unique: {dup} appear more than once")
        self._index: dict[Any, int] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_items(self) -> int:
        return len(self.ids)

    def index(self, external_id: Any) -> int:
        """The catalog index of an external item id (``KeyError`` if unknown)."""
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self.ids.tolist())}
        return self._index[external_id]

    def title(self, item: int) -> str:
        return str(self.titles[item])

    def fingerprint(self) -> str:
        """A short hash of the item ids in index order: what item index ``i`` means.

        Models store it when fitted and refuse to load against a catalog with another one.
        """
        if getattr(self, "_fingerprint", None) is None:
            h = hashlib.sha256(str(len(self.ids)).encode())
            for token in self.ids.tolist():
                h.update(b"\x1f" + str(token).encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def describe(self) -> str:
        """One line per column, for prompts: ``title: the item's name``."""
        lines = [f"title: {self.descriptions.get('title', 'the name of the item')}"]
        for name in self.fields:
            lines.append(f"{name}: {self.descriptions.get(name, name)}")
        return "\n".join(lines)


class Interactions:
    """User-item events as numpy arrays, with a CSR view of user histories in time order."""

    def __init__(
        self,
        users: Sequence[int] | np.ndarray,
        items: Sequence[int] | np.ndarray,
        *,
        n_users: int,
        n_items: int,
        timestamps: Sequence[float] | np.ndarray | None = None,
        ratings: Sequence[float] | np.ndarray | None = None,
    ):
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.timestamps = None if timestamps is None else np.asarray(timestamps)
        self.ratings = None if ratings is None else np.asarray(ratings, dtype=np.float32)
        self.n_users = int(n_users)
        self.n_items = int(n_items)
        n = len(self.users)
        for name, arr in (("items", self.items), ("timestamps", self.timestamps), ("ratings", self.ratings)):
            if arr is not None and len(arr) != n:
                raise DataError(f"interactions: {name} has {len(arr)} entries, users has {n}")
        if n:
            if self.users.min() < 0 or self.users.max() >= self.n_users:
                raise DataError(f"interactions: user index out of range 0..{self.n_users - 1}")
            if self.items.min() < 0 or self.items.max() >= self.n_items:
                raise DataError(f"interactions: item index out of range 0..{self.n_items - 1}")
        self._csr: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.users)

    def __repr__(self) -> str:
        return f"Interactions({len(self)} events, {self.n_users} users, {self.n_items} items)"

    def order(self) -> np.ndarray:
        """Permutation sorting events by user, then time; ties keep their original order."""
        if self.timestamps is None:
            return np.argsort(self.users, kind="stable")
        return np.lexsort((np.arange(len(self)), self.timestamps, self.users))

    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(indptr, items, positions)``: user ``u``'s items are ``items[indptr[u]:indptr[u+1]]``
        in time order; ``positions`` maps them back to rows of this object."""
        if self._csr is None:
            order = self.order()
            counts = np.bincount(self.users, minlength=self.n_users)
            indptr = np.zeros(self.n_users + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            self._csr = (indptr, self.items[order], order)
        return self._csr

    def history(self, user: int) -> np.ndarray:
        indptr, items, _ = self.csr()
        return items[indptr[user] : indptr[user + 1]]

    def histories(self, users: Iterable[int] | None = None) -> list[np.ndarray]:
        indptr, items, _ = self.csr()
        us = range(self.n_users) if users is None else users
        return [items[indptr[u] : indptr[u + 1]] for u in us]

    def user_counts(self) -> np.ndarray:
        return np.bincount(self.users, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.n_items)

    def select(self, rows: np.ndarray) -> Interactions:
        """A new object with the given rows (boolean mask or indices)."""
        return Interactions(
            self.users[rows],
            self.items[rows],
            n_users=self.n_users,
            n_items=self.n_items,
            timestamps=None if self.timestamps is None else self.timestamps[rows],
            ratings=None if self.ratings is None else self.ratings[rows],
        )

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(f"{self.n_users},{self.n_items},{len(self)}".encode())
        for arr in (self.users, self.items, self.timestamps, self.ratings):
            if arr is not None:
                h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]


@dataclass(eq=False)
class Dataset:
    """A catalog, interactions and the facts about where they came from."""

    name: str
    catalog: Catalog
    interactions: Interactions
    user_ids: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.interactions.n_items != self.catalog.n_items:
            raise DataError(
                f"dataset {self.name}: interactions index {self.interactions.n_items} items "
                f"but the catalog has {self.catalog.n_items}"
            )
        if self.user_ids is not None and len(self.user_ids) != self.interactions.n_users:
            raise DataError(f"dataset {self.name}: {len(self.user_ids)} user ids for {self.interactions.n_users} users")

    @property
    def n_users(self) -> int:
        return self.interactions.n_users

    @property
    def n_items(self) -> int:
        return self.catalog.n_items

    def stats(self) -> dict[str, Any]:
        n = len(self.interactions)
        return {
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "density": n / max(1, self.n_users * self.n_items),
        }

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.name.encode())
        h.update(self.catalog.fingerprint().encode())
        h.update(self.interactions.fingerprint().encode())
        return h.hexdigest()[:16]


@dataclass(eq=False)
class Split:
    """Train / validation / test interactions of one dataset, and the protocol that made them.

    ``protocol`` is a short name (``leave_one_out``) and ``details`` its parameters, so every
    reported number can say how it was measured.
    """

    dataset: Dataset
    train: Interactions
    test: Interactions | None
    valid: Interactions | None = None
    protocol: str = "custom"
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def full(cls, dataset: Dataset) -> Split:
        """Everything is training data (for serving a model, not for measuring it)."""
        return cls(dataset, dataset.interactions, None, None, "full", {})

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.details.items())
        return f"{self.protocol}({extra})" if extra else self.protocol

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.dataset.fingerprint().encode())
        h.update(self.describe().encode())
        for part in (self.train, self.valid, self.test):
            h.update((part.fingerprint() if part is not None else "-").encode())
        return h.hexdigest()[:16]


def leave_one_out(dataset: Dataset) -> Split:
    """Per user in time order: last event -> test, second-to-last -> valid, the rest -> train.

    Users with two events give one to train and one to test; users with one event keep it in train.
    Ties in time keep the order of the source file.
    """
    inter = dataset.interactions
    indptr, _, order = inter.csr()
    counts = np.diff(indptr)
    role = np.zeros(len(inter), dtype=np.int8)  # 0 train, 1 valid, 2 test
    last = indptr[1:] - 1
    has_test = counts >= 2
    role[order[last[has_test]]] = 2
    has_valid = counts >= 3
    role[order[last[has_valid] - 1]] = 1
    return Split(
        dataset,
        train=inter.select(role == 0),
        valid=inter.select(role == 1),
        test=inter.select(role == 2),
        protocol="leave_one_out",
        details={"order": "time" if inter.timestamps is not None else "file"},
    )


def synthetic_dataset(
    n_users: int = 60,
    n_items: int = 40,
    mean_length: int = 12,
    *,
    seed: int = 0,
    categories: Sequence[str] = ("drama", "comedy", "action", "horror"),
    name: str = "synthetic",
) -> Dataset:
    """A small seeded dataset with learnable structure.

    Item popularity follows a power law; each user starts somewhere and mostly moves to the next
    few items of a ring, so both popularity and sequence carry signal.
    """
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop = pop[rng.permutation(n_items)]
    pop /= pop.sum()
    lengths = np.maximum(3, rng.zipf(1.8, size=n_users).clip(max=4 * mean_length) + mean_length // 2)
    users, items, times = [], [], []
    t0 = 1_600_000_000
    for u in range(n_users):
        cur = rng.choice(n_items, p=pop)
        for step in range(int(lengths[u])):
            users.append(u)
            items.append(cur)
            times.append(t0 + u * 10_000 + step * 60)
            cur = (cur + rng.integers(1, 4)) % n_items if rng.random() < 0.8 else rng.choice(n_items, p=pop)
    cat = np.array([categories[i % len(categories)] for i in range(n_items)], dtype=object)
    catalog = Catalog(
        ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        titles=np.array([f"Item {i:04d} ({cat[i]})" for i in range(n_items)], dtype=object),
        fields={"category": cat, "price": np.round(rng.uniform(1, 100, n_items), 2)},
        descriptions={"category": "the item's genre", "price": "price in dollars"},
    )
    inter = Interactions(users, items, n_users=n_users, n_items=n_items, timestamps=np.asarray(times, dtype=np.int64))
    return Dataset(
        name=name,
        catalog=catalog,
        interactions=inter,
        user_ids=np.array([f"u{u}" for u in range(n_users)], dtype=object),
        info={"source": f"recai synthetic generator (seed={seed})"},
    )

