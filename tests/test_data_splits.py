"""Split protocols: leave-one-out (file or RecBole tie order), global temporal, random; no
leakage, exact partitions, recorded protocols."""

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
    recbole_time_keys,
    synthetic_dataset,
    temporal_split,
)
from recai.errors import DataError


def make(users, items, timestamps=None, n_items=None) -> Dataset:
    n_items = n_items or max(items) + 1
    catalog = Catalog(
        ids=np.arange(n_items), titles=np.array([f"T{i}" for i in range(n_items)], dtype=object)
    )
    inter = Interactions(
        users,
        items,
        n_users=max(users) + 1,
        n_items=n_items,
        timestamps=timestamps,
        ratings=np.arange(len(users)),
    )
    return Dataset("hand", catalog, inter)


def numbered(data: Dataset) -> Dataset:
    """The same data with each event's source row in its ratings column (to tell events apart)."""
    i = data.interactions
    inter = Interactions(
        i.users,
        i.items,
        n_users=i.n_users,
        n_items=i.n_items,
        timestamps=i.timestamps,
        ratings=np.arange(len(i)),
    )
    return Dataset(data.name, data.catalog, inter, data.user_ids)


def rows_of(part: Interactions | None) -> list[tuple]:
    """Events as tuples; the ratings column holds the source row, so each event is unique."""
    if part is None:
        return []
    ts = part.timestamps if part.timestamps is not None else np.zeros(len(part))
    return list(
        zip(
            part.users.tolist(),
            part.items.tolist(),
            ts.tolist(),
            part.ratings.tolist(),
            strict=True,
        )
    )


def _table(part: Interactions) -> np.ndarray:
    cols = [part.users, part.items]
    cols.append(part.timestamps if part.timestamps is not None else np.zeros(len(part)))
    cols.append(part.ratings if part.ratings is not None else np.zeros(len(part)))
    table = np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1)
    return table[np.lexsort(table.T[::-1])]


def assert_exact_partition(split: Split) -> None:
    """The parts together hold exactly the dataset's events, each once (as a multiset): a
    held-out event is never also a training event."""
    parts = [p for p in (split.train, split.valid, split.test) if p is not None]
    together = np.concatenate([_table(p) for p in parts])
    together = together[np.lexsort(together.T[::-1])]
    assert np.array_equal(together, _table(split.dataset.interactions))


def assert_no_future_in_train(split: Split) -> None:
    """Per user, every valid and test event is at or after every training event, and test at or
    after valid."""
    n = split.dataset.n_users

    def per_user(part: Interactions, reduce: np.ufunc, empty: float) -> np.ndarray:
        out = np.full(n, empty)
        reduce.at(out, part.users, part.timestamps.astype(np.float64))
        return out

    last_train = per_user(split.train, np.maximum, -np.inf)
    first_valid = per_user(split.valid, np.minimum, np.inf)
    last_valid = per_user(split.valid, np.maximum, -np.inf)
    first_test = per_user(split.test, np.minimum, np.inf)
    assert np.all(first_valid >= last_train)
    assert np.all(first_test >= last_train)
    assert np.all(first_test >= last_valid)


def test_the_leak_checks_catch_leaks() -> None:
    data = make([0, 0, 0], [0, 1, 2], timestamps=[1, 2, 3])
    inter = data.interactions
    pick = np.array
    early_test = Split(
        data,
        inter.select(pick([1, 2])),
        test=inter.select(pick([0])),
        valid=inter.select(pick([], dtype=int)),
    )
    with pytest.raises(AssertionError):
        assert_no_future_in_train(early_test)
    twice = Split(
        data,
        inter.select(pick([0, 1, 2])),
        test=inter.select(pick([2])),
        valid=inter.select(pick([], dtype=int)),
    )
    with pytest.raises(AssertionError):
        assert_exact_partition(twice)
    lost = Split(
        data,
        inter.select(pick([0])),
        test=inter.select(pick([2])),
        valid=inter.select(pick([], dtype=int)),
    )
    with pytest.raises(AssertionError):
        assert_exact_partition(lost)


# -- leave-one-out ------------------------------------------------------------------------------


def test_leave_one_out_by_history_length() -> None:
    data = make([0, 1, 1, 2, 2, 2, 2], [0, 1, 2, 3, 4, 5, 6], timestamps=[1, 5, 3, 1, 4, 2, 3])
    split = leave_one_out(data)
    assert rows_of(split.test) == [(1, 1, 5, 1), (2, 4, 4, 4)]
    assert rows_of(split.valid) == [(2, 6, 3, 6)]
    assert sorted(rows_of(split.train)) == [(0, 0, 1, 0), (1, 2, 3, 2), (2, 3, 1, 3), (2, 5, 2, 5)]
    assert split.protocol == "leave_one_out" and split.details == {"order": "time", "ties": "file"}
    assert_exact_partition(split)
    assert_no_future_in_train(split)


def test_leave_one_out_ties_keep_file_order() -> None:
    data = make([0, 0, 0], [7, 8, 9], timestamps=[10, 10, 10])
    split = leave_one_out(data)
    assert split.test.items.tolist() == [9] and split.valid.items.tolist() == [8]


def test_leave_one_out_without_timestamps() -> None:
    split = leave_one_out(make([0, 0, 0], [2, 1, 0]))
    assert split.test.items.tolist() == [0] and split.details == {"order": "file"}


def test_recbole_keys_collide_where_float32_runs_out() -> None:
    ts = np.array([0, 1_700_000_000, 1_700_000_001, 2_000_000_000])
    keys = recbole_time_keys(ts)
    assert keys.dtype == np.float32 and keys[1] == keys[2] and keys[0] == 0 and keys[3] == 1
    assert recbole_time_keys(np.array([5, 5])).tolist() == [1.0, 1.0]  # RecBole's constant column
    as_dates = np.array(ts, dtype="datetime64[s]")
    assert np.array_equal(recbole_time_keys(as_dates), keys)


def test_recbole_ties_differ_exactly_on_collisions() -> None:
    # user 0: the last two events collide in float32 and come in reverse time order in the file;
    # user 1: same times but in time order in the file; user 2: no collision
    big = 1_700_000_000
    users = [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    items = [0, 1, 2, 0, 1, 2, 0, 1, 2, 3]
    ts = [10, big + 1, big, 10, big, big + 1, 10, big - 5000, big, 2_000_000_000]
    data = make(users, items, timestamps=ts)
    keys = recbole_time_keys(np.array(ts))
    assert keys[1] == keys[2] and keys[7] != keys[8]
    by_file, by_recbole = leave_one_out(data), leave_one_out(data, ties="recbole")
    assert by_recbole.details["ties"] == "recbole"
    test_file = dict(zip(by_file.test.users.tolist(), by_file.test.items.tolist(), strict=True))
    test_rb = dict(zip(by_recbole.test.users.tolist(), by_recbole.test.items.tolist(), strict=True))
    assert test_file == {0: 1, 1: 2, 2: 2}
    assert test_rb == {0: 2, 1: 2, 2: 2}  # only user 0 differs: RecBole keeps file order there
    valid_rb = dict(
        zip(by_recbole.valid.users.tolist(), by_recbole.valid.items.tolist(), strict=True)
    )
    assert valid_rb[0] == 1
    assert_exact_partition(by_recbole)


def reference_last_event(keys: np.ndarray, users: np.ndarray) -> dict[int, int]:
    """Per user, the row sorting last by (key, file position): a plain loop."""
    last: dict[int, int] = {}
    for row, (u, k) in enumerate(zip(users.tolist(), keys.tolist(), strict=True)):
        if u not in last or k >= keys[last[u]]:
            last[u] = row
    return last


@pytest.mark.integration
def test_recbole_ties_on_movielens() -> None:
    import recai

    data = recai.create("dataset", "movielens-100k.v1").dataset()
    inter = data.interactions
    by_file, by_recbole = leave_one_out(data), leave_one_out(data, ties="recbole")
    for split in (by_file, by_recbole):
        assert len(split.test) == data.n_users
        assert_exact_partition(split)
    keys = recbole_time_keys(inter.timestamps)
    raw_last = reference_last_event(inter.timestamps, inter.users)
    rb_last = reference_last_event(keys, inter.users)
    expected = {u for u in raw_last if raw_last[u] != rb_last[u]}
    # where they differ, the two events share a float32 key but not a timestamp
    for u in expected:
        a, b = raw_last[u], rb_last[u]
        assert keys[a] == keys[b] and inter.timestamps[a] > inter.timestamps[b] and b > a
    differ = set(np.flatnonzero(_test_item(by_file) != _test_item(by_recbole)).tolist())
    assert differ == {u for u in expected if inter.items[raw_last[u]] != inter.items[rb_last[u]]}
    assert 0 < len(differ) < 50  # a few users, as RecBole's notes say
    assert_no_future_in_train(by_file)


def _test_item(split: Split) -> np.ndarray:
    out = np.full(split.dataset.n_users, -1)
    out[split.test.users] = split.test.items
    return out


def test_leave_one_out_has_no_leakage_on_synthetic_data() -> None:
    split = leave_one_out(numbered(synthetic_dataset(n_users=80, n_items=50, seed=4)))
    assert_exact_partition(split)
    assert_no_future_in_train(split)


# -- temporal -------------------------------------------------------------------------------------


def test_temporal_split_by_quantiles() -> None:
    data = numbered(synthetic_dataset(n_users=80, n_items=50, seed=5))
    split = temporal_split(data, valid=0.1, test=0.2)
    assert split.protocol == "temporal"
    assert_exact_partition(split)
    assert split.train.timestamps.max() < split.valid.timestamps.min()
    assert split.valid.timestamps.max() < split.test.timestamps.min()
    n = len(data.interactions)
    assert (
        abs(len(split.test) - 0.2 * n) <= 0.02 * n and abs(len(split.valid) - 0.1 * n) <= 0.02 * n
    )
    d = split.details
    assert d["events"] == [len(split.train), len(split.valid), len(split.test)]
    assert d["cut"] == "quantile" and d["test_from"] == int(split.test.timestamps.min())
    assert d["cold_test_users"] >= 0 and "temporal(cut=quantile" in split.describe()


def test_temporal_split_keeps_equal_times_together() -> None:
    data = make(
        [0, 1, 2, 3, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5, 6, 7], timestamps=[1, 1, 1, 1, 2, 2, 2, 3]
    )
    split = temporal_split(data, valid=0.1, test=0.25)
    assert split.details["test_from"] == 2 and len(split.test) == 4 and len(split.valid) == 0
    assert split.details["cold_test_items"] == 4 and split.details["cold_test_users"] == 0


def test_temporal_split_with_given_cuts() -> None:
    day = 86_400
    data = make([0, 0, 1, 1, 2], [0, 1, 2, 3, 4], timestamps=[0, 3 * day, day, 5 * day, 7 * day])
    split = temporal_split(data, cuts=(2 * day, 5 * day))
    assert split.train.items.tolist() == [0, 2] and split.valid.items.tolist() == [1]
    assert split.test.items.tolist() == [3, 4] and split.details["cut"] == "given"
    by_date = temporal_split(data, cuts=("1970-01-03", "1970-01-06"))
    assert by_date.details["valid_from"] == 2 * day and by_date.details["test_from"] == 5 * day
    assert by_date.test.items.tolist() == [3, 4]


def test_temporal_split_on_datetimes() -> None:
    ts = np.array(["2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01"], dtype="datetime64[s]")
    data = make([0, 0, 1, 1], [0, 1, 2, 3], timestamps=ts)
    split = temporal_split(data, cuts=("2020-02-15", "2020-03-15"))
    assert split.test.items.tolist() == [3] and split.details["test_from"] == "2020-03-15"
    assert len(temporal_split(data, valid=0.25, test=0.25).test) == 1


def test_temporal_split_errors() -> None:
    data = make([0, 1], [0, 1], timestamps=[1, 2])
    with pytest.raises(DataError, match="needs timestamps"):
        temporal_split(make([0, 1], [0, 1]))
    with pytest.raises(DataError, match="no event comes before"):
        temporal_split(data, cuts=(0, 1))
    with pytest.raises(ValueError):
        temporal_split(data, cuts=(2, 1))
    with pytest.raises(ValueError):
        temporal_split(data, valid=0.5, test=0.5)
    with pytest.raises(DataError, match="no event comes before"):
        temporal_split(make([0, 1], [0, 1], timestamps=[3, 3]))


# -- random -------------------------------------------------------------------------------------


def test_random_split_by_interaction() -> None:
    data = numbered(synthetic_dataset(n_users=50, n_items=30, seed=6))
    split = random_split(data, valid=0.1, test=0.2, seed=1)
    n = len(data.interactions)
    assert len(split.test) == int(np.floor(0.2 * n + 0.5)) and len(split.valid) == int(
        np.floor(0.1 * n + 0.5)
    )
    assert_exact_partition(split)
    assert split.details == {"by": "interaction", "valid": 0.1, "test": 0.2, "seed": 1}
    again = random_split(data, valid=0.1, test=0.2, seed=1)
    assert rows_of(again.test) == rows_of(split.test)
    other = random_split(data, valid=0.1, test=0.2, seed=2)
    assert rows_of(other.test) != rows_of(split.test)


def test_random_split_by_user() -> None:
    # users with 1, 2, 5 and 20 events
    users = [0] + [1] * 2 + [2] * 5 + [3] * 20
    data = make(users, list(range(len(users))), timestamps=list(range(len(users))))
    split = random_split(data, valid=0.1, test=0.2, by="user", seed=0)
    assert_exact_partition(split)
    count = {
        p: np.bincount(getattr(split, p).users, minlength=4).tolist()
        for p in ("train", "valid", "test")
    }
    assert count["test"] == [0, 0, 1, 4]  # round(2 * .2) = 0, round(5 * .2) = 1, round(20 * .2) = 4
    assert count["valid"] == [0, 0, 1, 2]  # round(5 * .1) = 0.5 -> 1 (halves round up)
    assert count["train"] == [1, 2, 3, 14]
    tiny = make([0, 0], [0, 1])
    assert len(random_split(tiny, valid=0.4, test=0.5, by="user").train) == 1  # one always stays
    assert (
        random_split(data, by="user", seed=5).describe()
        == "random(by=user, valid=0.1, test=0.1, seed=5)"
    )


def test_random_split_errors() -> None:
    data = make([0, 1], [0, 1])
    with pytest.raises(ValueError):
        random_split(data, test=0.0)
    with pytest.raises(ValueError):
        random_split(data, by="item")  # type: ignore[arg-type]


def test_splits_of_an_empty_dataset() -> None:
    catalog = Catalog(ids=np.arange(3), titles=np.array(["a", "b", "c"], dtype=object))
    empty = Dataset("empty", catalog, Interactions([], [], n_users=2, n_items=3, timestamps=[]))
    split = leave_one_out(empty)
    assert len(split.train) == len(split.valid) == len(split.test) == 0
    assert len(random_split(empty, by="user").test) == 0
    assert len(random_split(empty).test) == 0
    with pytest.raises(DataError, match="no interactions"):
        temporal_split(empty)
