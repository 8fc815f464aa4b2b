"""Seeded synthetic datasets with learnable structure (popularity and sequences)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .catalog import Catalog
from .dataset import Dataset
from .interactions import Interactions

__all__ = ["synthetic_dataset"]


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
