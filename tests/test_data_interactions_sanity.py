"""Interactions refuse implausible timestamps and ratings given as Python arrays (issue 17, item 6).

Plausible times are Unix seconds from 1970-01-01 up to 2100-01-01 UTC (``TIME_RANGE``); ratings lie
within ``±RATING_LIMIT`` (``NaN``: an event without a rating).
"""

from __future__ import annotations

import numpy as np
import pytest

from recai.data import Interactions
from recai.data.interactions import (
    RATING_LIMIT,
    TIME_RANGE,
    implausible_ratings,
    implausible_times,
)
from recai.errors import DataError


def make(timestamps=None, ratings=None) -> Interactions:
    n = len(timestamps if timestamps is not None else ratings)
    return Interactions(
        np.zeros(n, dtype=np.int64),
        np.arange(n),
        n_users=1,
        n_items=n,
        timestamps=timestamps,
        ratings=ratings,
    )


def test_the_documented_range_is_1970_to_2100() -> None:
    lo, hi = TIME_RANGE
    assert np.datetime64(lo, "s") == np.datetime64("1970-01-01T00:00:00")
    assert np.datetime64(hi, "s") == np.datetime64("2100-01-01T00:00:00")
    make([lo, hi - 1, 1_600_000_000.5])  # both ends and fractions are fine


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (1e30, "after 2100-01-01"),
        (-1, "before 1970-01-01"),
        (float("nan"), "not a number"),
        (float("inf"), "infinite"),
        (float("-inf"), "infinite"),
        (TIME_RANGE[1], "after 2100-01-01"),
        (1_588_687_728_923, "looks like Unix milliseconds"),
        (1_588_687_728_923_000, "looks like Unix microseconds"),
    ],
)
def test_an_implausible_timestamp_is_refused_naming_row_and_reason(value, why) -> None:
    with pytest.raises(DataError) as e:
        make([1_500_000_000, value, 1_500_000_001])
    text = str(e.value)
    assert "at row 1" in text and why in text and "1970-01-01 .. 2100-01-01" in text
    assert "\n" not in text


def test_integer_timestamps_beyond_2100_are_refused_without_overflow() -> None:
    with pytest.raises(DataError, match="after 2100-01-01"):
        make(np.array([1, np.iinfo(np.int64).max], dtype=np.int64))
    with pytest.raises(DataError, match="before 1970-01-01"):
        make(np.array([np.iinfo(np.int64).min, 1], dtype=np.int64))


def test_datetime64_timestamps_outside_the_range_or_nat_are_refused() -> None:
    make(np.array(["1999-01-01", "2099-12-31"], dtype="datetime64[D]"))
    for bad, why in (("1969-12-31", "before 1970-01-01"), ("2100-01-01", "after 2100-01-01")):
        with pytest.raises(DataError, match=why):
            make(np.array(["2000-01-01", bad], dtype="datetime64[D]"))
    with pytest.raises(DataError, match=r"missing \(NaT\)"):
        make(np.array(["2000-01-01", "NaT"], dtype="datetime64[s]"))


def test_timestamps_that_are_not_numbers_are_refused() -> None:
    for bad in (["2000-01-01", "2001-01-01"], [True, False], [[1, 2], [3, 4]], [b"1", b"2"]):
        with pytest.raises(DataError, match="timestamps must be a 1-D array"):
            Interactions([0, 0], [0, 1], n_users=1, n_items=2, timestamps=bad)


def test_the_count_of_bad_timestamps_is_given() -> None:
    with pytest.raises(DataError, match="3 of 5 timestamps"):
        make([1, -1, 2, 1e20, np.nan])


@pytest.mark.parametrize("value", [1e300, float("inf"), -float("inf"), -2 * RATING_LIMIT, 1e10])
def test_an_implausible_rating_is_refused(value) -> None:
    with pytest.raises(DataError, match=r"rating .* at row 2 is not a plausible rating"):
        make(ratings=[1.0, 5.0, value])


def test_a_missing_rating_stays_allowed() -> None:
    inter = make(ratings=[4.0, np.nan, -RATING_LIMIT])
    assert np.isnan(inter.ratings[1])


def test_the_masks() -> None:
    assert implausible_times(np.array([0, 4_102_444_799, 4_102_444_800, -1])).tolist() == [
        False,
        False,
        True,
        True,
    ]
    assert implausible_ratings(np.array([np.nan, 1e9, 1.0000001e9])).tolist() == [
        False,
        False,
        True,
    ]


def test_select_and_subsets_of_good_data_still_work() -> None:
    inter = make([3, 1, 2], ratings=[1, 2, 3])
    part = inter.select(np.array([True, False, True]))
    assert part.timestamps.tolist() == [3, 2] and len(part) == 2


# -- split options (a DataError naming the value, never a raw numpy error) --------------------


def _dataset(timestamps):
    from recai.data import Catalog, Dataset

    n = len(timestamps)
    catalog = Catalog(ids=np.arange(n), titles=np.array([f"T{i}" for i in range(n)], dtype=object))
    inter = Interactions(np.zeros(n, dtype=np.int64), np.arange(n), n_users=1, n_items=n,
                         timestamps=timestamps)  # fmt: skip
    return Dataset("hand", catalog, inter)


@pytest.mark.parametrize(
    "cuts",
    [
        ("garbage", "1999-01-01"),
        (float("nan"), 5),
        (1, float("inf")),
        (True, 2),
        ("ab"),
        (None, 3),
        ("NaT", "2000-01-01"),
        (5, 1),
    ],
)
def test_temporal_split_refuses_cuts_that_are_not_times(cuts) -> None:
    from recai.data import temporal_split

    with pytest.raises(DataError, match="cuts"):
        temporal_split(_dataset([1, 2, 3, 4, 5, 6]), cuts=cuts)


def test_temporal_split_with_datetime64_refuses_nat_cuts() -> None:
    from recai.data import temporal_split

    data = _dataset(np.array(["2000-01-01", "2001-01-01", "2002-01-01"], dtype="datetime64[D]"))
    with pytest.raises(DataError, match="cuts: 'NaT'"):
        temporal_split(data, cuts=("NaT", "2001-06-01"))
    split = temporal_split(data, cuts=("2000-06-01", "2001-06-01"))
    assert [len(split.train), len(split.valid), len(split.test)] == [1, 1, 1]


@pytest.mark.parametrize(
    ("kwargs", "part"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"test": float("nan")}, "fractions"),
        ({"test": 1.0}, "fractions"),
        ({"valid": -0.1}, "fractions"),
        ({"by": "item"}, "by must be"),
    ],
)
def test_random_split_refuses_bad_options(kwargs, part) -> None:
    from recai.data import random_split

    with pytest.raises(DataError, match=part):
        random_split(_dataset([1, 2, 3, 4]), **kwargs)
