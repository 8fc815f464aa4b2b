"""Deterministic negative sampling for candidate protocols (1 + 19, 1 + 99)."""

from __future__ import annotations

import numpy as np
import pytest

from recai.data import (
    Catalog,
    Dataset,
    Interactions,
    Split,
    leave_one_out,
    random_split,
    sample_candidates,
    synthetic_dataset,
)
from recai.errors import DataError


@pytest.fixture(scope="module")
def split() -> Split:
    return leave_one_out(synthetic_dataset(n_users=200, n_items=300, seed=7))


def known_items(split: Split, user: int, parts=("train", "valid", "test")) -> set[int]:
    out: set[int] = set()
    for name in parts:
        part = getattr(split, name)
        out |= set(part.items[part.users == user].tolist())
    return out


def test_candidates_shape_positive_and_exclusions(split: Split) -> None:
    c = sample_candidates(split, n_negatives=19, seed=0)
    assert c.items.shape == (len(split.test), 20) and c.items.dtype == np.int64
    assert np.array_equal(c.items[:, 0], split.test.items[c.rows])
    assert np.array_equal(c.users, split.test.users[c.rows])
    for r in range(len(c)):
        row = c.items[r].tolist()
        assert len(set(row)) == 20  # distinct
        assert not set(row[1:]) & known_items(split, int(c.users[r]))  # never a known item
    assert c.protocol["negatives"] == 19 and c.protocol["strategy"] == "uniform"
    assert c.protocol["split"] == split.describe() and c.protocol["dropped_rows"] == 0
    assert "train, valid and test" in c.protocol["exclude"]


def test_same_seed_same_candidates_whatever_the_batch(split: Split) -> None:
    full = sample_candidates(split, n_negatives=99, seed=3)
    assert np.array_equal(full.items, sample_candidates(split, n_negatives=99, seed=3).items)
    row_of = {int(u): r for r, u in enumerate(full.users)}
    rng = np.random.default_rng(0)
    for batch in (rng.permutation(200)[:37], np.arange(200)[::-1], np.array([5])):
        part = sample_candidates(split, n_negatives=99, seed=3, users=batch)
        assert sorted(part.users.tolist()) == sorted(batch.tolist())
        for r, u in enumerate(part.users):
            assert np.array_equal(part.items[r], full.items[row_of[int(u)]])
    other = sample_candidates(split, n_negatives=99, seed=4)
    assert not np.array_equal(other.items[:, 1:], full.items[:, 1:])


def test_popularity_negatives_follow_training_counts() -> None:
    data = synthetic_dataset(n_users=400, n_items=150, seed=8)
    split = leave_one_out(data)
    c = sample_candidates(split, n_negatives=30, strategy="popularity", seed=1)
    counts = np.bincount(split.train.items, minlength=data.n_items)
    drawn = np.bincount(c.items[:, 1:].ravel(), minlength=data.n_items)
    assert drawn[counts == 0].sum() == 0  # never drawn without training events
    # expected draws: per row, about n * w / (weight of the items the user may still get)
    expected = np.zeros(data.n_items)
    for u in c.users.tolist():
        allowed = np.ones(data.n_items, dtype=bool)
        allowed[list(known_items(split, u))] = False
        w = counts * allowed
        expected += np.minimum(1.0, 30 * w / w.sum())
    assert np.corrcoef(drawn, expected)[0, 1] > 0.95  # measured 0.98
    uniform = sample_candidates(split, n_negatives=30, seed=1)
    flat = np.bincount(uniform.items[:, 1:].ravel(), minlength=data.n_items)
    assert np.corrcoef(flat, counts)[0, 1] < np.corrcoef(drawn, counts)[0, 1]
    # uniform draws are spread out: no item far above its expected share
    assert flat.max() < 3 * flat.mean()
    assert c.protocol["weights"] == "training events per item"


def tiny(n_items: int = 6) -> Split:
    # user 0 knows items 0..3 (test: 3); user 1 knows item 0 (train) and 1 (test)
    users = [0, 0, 0, 0, 1, 1]
    items = [0, 1, 2, 3, 0, 1]
    catalog = Catalog(
        ids=np.arange(n_items), titles=np.array([f"T{i}" for i in range(n_items)], dtype=object)
    )
    inter = Interactions(users, items, n_users=2, n_items=n_items, timestamps=[1, 2, 3, 4, 1, 2])
    return leave_one_out(Dataset("tiny", catalog, inter))


def test_a_user_who_knows_almost_everything() -> None:
    split = tiny(n_items=6)
    # user 0 has exactly items 4 and 5 left: the exact fallback must find both
    c = sample_candidates(split, n_negatives=2, seed=0)
    assert sorted(c.items[c.users == 0][0, 1:].tolist()) == [4, 5]
    with pytest.raises(DataError, match="user 0 has only 2 items left to draw 3 uniform negatives"):
        sample_candidates(split, n_negatives=3, seed=0)
    kept = sample_candidates(split, n_negatives=3, seed=0, short="drop")
    assert kept.users.tolist() == [1] and kept.protocol["dropped_rows"] == 1
    negatives = set(kept.items[0, 1:].tolist())
    assert len(negatives) == 3 and negatives <= {2, 3, 4, 5}


def test_rejection_sampling_near_exhaustion_is_exact_and_deterministic() -> None:
    n_items = 500
    users = [0] * 480 + [1, 1]
    items = list(range(480)) + [0, 1]
    catalog = Catalog(
        ids=np.arange(n_items), titles=np.array([str(i) for i in range(n_items)], dtype=object)
    )
    inter = Interactions(users, items, n_users=2, n_items=n_items, timestamps=np.arange(482))
    split = leave_one_out(Dataset("dense", catalog, inter))
    c = sample_candidates(split, n_negatives=19, seed=2)
    row = c.items[c.users == 0][0]
    negatives = set(row[1:].tolist())  # 19 of the only 20 items user 0 has not met
    assert len(negatives) == 19 and negatives <= set(range(480, 500))
    assert np.array_equal(c.items, sample_candidates(split, n_negatives=19, seed=2).items)


def test_popularity_with_too_few_drawable_items() -> None:
    split = tiny(n_items=6)  # items 4 and 5 have no training events
    with pytest.raises(DataError, match="popularity negatives"):
        sample_candidates(split, n_negatives=1, strategy="popularity")


def test_validation_target_and_repeated_pairs() -> None:
    split = random_split(synthetic_dataset(n_users=60, n_items=200, seed=9), by="user", seed=0)
    c = sample_candidates(split, n_negatives=9, target="valid", seed=0)
    assert np.array_equal(c.items[:, 0], split.valid.items[c.rows])
    for r in range(len(c)):
        assert not set(c.items[r, 1:].tolist()) & known_items(
            split, int(c.users[r]), ("train", "valid")
        )
    assert c.protocol["target"] == "valid" and "test" not in c.protocol["exclude"]
    # several test events of one user: each is its own row, with its own negatives
    t = sample_candidates(split, n_negatives=9, seed=0)
    assert len(t) == len(split.test) and len(np.unique(t.users)) < len(t)


def test_no_negatives_and_bad_arguments(split: Split) -> None:
    c = sample_candidates(split, n_negatives=0)
    assert c.items.shape == (len(split.test), 1)
    for bad in ({"n_negatives": -1}, {"strategy": "zipf"}, {"target": "train"}, {"short": "pad"}):
        with pytest.raises(ValueError):
            sample_candidates(split, **bad)
    empty = Split(
        split.dataset, split.train, test=split.train.select(np.zeros(len(split.train), dtype=bool))
    )
    with pytest.raises(DataError, match="no test events"):
        sample_candidates(empty)


@pytest.mark.integration
def test_movielens_1_plus_99() -> None:
    import recai

    split = leave_one_out(recai.create("dataset", "movielens-100k.v1").dataset())
    for strategy in ("uniform", "popularity"):
        c = sample_candidates(split, n_negatives=99, strategy=strategy, seed=0)
        assert c.items.shape == (943, 100)
        assert all(len(set(row)) == 100 for row in c.items.tolist())
