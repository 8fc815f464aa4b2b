"""Implausible values in data files (issue 17, item 6): every loader refuses a time outside
1970-01-01 .. 2100-01-01 UTC or a rating beyond ±1e9 naming file, line and column, or skips and
counts it with ``on_error = "skip"``; prices that cannot be one count as unreadable."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from datasets_files import write_lines

from recai.errors import DataError
from recai_datasets.amazon import load_amazon_2018, load_amazon_2023
from recai_datasets.generic import load_csv, load_jsonl
from recai_datasets.problems import SkippedDataWarning
from recai_datasets.recbole import load_atomic
from recai_datasets.steam import load_steam
from recai_datasets.values import as_id, as_number, parse_price, price_column

GOOD_MS = 1_588_687_728_923  # 2020-05-05, in milliseconds (Amazon 2023)
GOOD_S = 1_252_800_000  # 2009-09-13, in seconds (Amazon 2018)


def review_2023(asin: str, timestamp, rating=5.0) -> dict:
    return {"user_id": "U1", "parent_asin": asin, "rating": rating, "timestamp": timestamp}


def amazon_2023(tmp_path: Path, bad_line: str) -> Path:
    good = json.dumps(review_2023("B1", GOOD_MS))
    return write_lines(tmp_path / "reviews.jsonl", [good, bad_line])


def refused(load, *parts: str) -> str:
    """The DataError of ``load()``: one line naming every one of ``parts``."""
    with pytest.raises(DataError) as e:
        load()
    text = str(e.value)
    assert "\n" not in text and "Traceback" not in text
    for part in parts:
        assert part in text, (part, text)
    return text


# -- timestamps -------------------------------------------------------------------------------


def test_amazon_2023_time_of_1e30_is_refused_with_file_line_and_column(tmp_path) -> None:
    path = amazon_2023(tmp_path, '{"user_id": "U1", "parent_asin": "B2", "rating": 4.0, '
                       '"timestamp": 1e30}')  # fmt: skip
    refused(lambda: load_amazon_2023(path), f"{path}:2:", "column 'timestamp'", "after 2100-01-01")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (-5, "before 1970-01-01"),
        (-1e18, "before 1970-01-01"),
        (GOOD_MS * 1000, "looks like Unix microseconds, not milliseconds"),
        (5e15, "after 2100-01-01"),
    ],
)
def test_amazon_2023_times_outside_the_range(tmp_path, value, why) -> None:
    path = amazon_2023(tmp_path, json.dumps(review_2023("B2", value)))
    refused(lambda: load_amazon_2023(path), f"{path}:2:", why, "not a plausible time")


def test_amazon_2023_non_finite_and_overflowing_times_are_bad_values(tmp_path) -> None:
    for raw in ("NaN", "Infinity", "-Infinity", "1e999", "9" * 400):
        line = f'{{"user_id": "U1", "parent_asin": "B2", "rating": 4.0, "timestamp": {raw}}}'
        path = amazon_2023(tmp_path, line)
        refused(lambda p=path: load_amazon_2023(p), f"{path}:2:", "'timestamp'")


def test_amazon_2018_milliseconds_in_a_seconds_field_say_so(tmp_path) -> None:
    rows = [
        {"reviewerID": "A1", "asin": "B1", "overall": 5.0, "unixReviewTime": GOOD_S},
        {"reviewerID": "A1", "asin": "B2", "overall": 5.0, "unixReviewTime": GOOD_S * 1000},
    ]
    path = write_lines(tmp_path / "reviews.json", rows)
    refused(
        lambda: load_amazon_2018(path),
        f"{path}:2:",
        "column 'unixReviewTime'",
        "looks like Unix milliseconds, not seconds",
    )


def test_lenient_mode_skips_and_counts_implausible_times(tmp_path) -> None:
    lines = [json.dumps(review_2023(f"B{i}", GOOD_MS)) for i in range(3)]
    lines += [json.dumps(review_2023("B9", v)) for v in (1e30, -1, GOOD_MS * 10**6)]
    path = write_lines(tmp_path / "reviews.jsonl", lines)
    with pytest.warns(SkippedDataWarning, match="3 x implausible time"):
        data = load_amazon_2023(path, on_error="skip")
    assert data.info["skipped"] == {"implausible time": 3}
    ts = data.interactions.timestamps
    assert len(ts) == 3 and ts.min() >= 0 and ts.max() < 4_102_444_800


@pytest.mark.parametrize(
    ("fmt", "value", "why"),
    [
        ("unix", "1588687728923", "looks like Unix milliseconds, not seconds"),
        ("unix", "-0.5", "before 1970-01-01"),
        ("unix", "1e300", "after 2100-01-01"),
        ("unix_ms", "1e308", "after 2100-01-01"),
        ("iso", "1969-12-31T23:59:59", "before 1970-01-01"),
        ("iso", "9999-12-31", "after 2100-01-01"),
        ("iso", "2100-01-01T00:00:00Z", "after 2100-01-01"),
        ("%d/%m/%Y", "31/12/1900", "before 1970-01-01"),
    ],
)
def test_csv_times_outside_the_range_in_every_format(tmp_path, fmt, value, why) -> None:
    good = {"unix": "1000000000", "unix_ms": "1000000000000", "iso": "2001-01-01"}
    path = tmp_path / "ratings.csv"
    path.write_text(f"user,item,when\n1,10,{good.get(fmt, '01/01/2001')}\n1,11,{value}\n")
    refused(
        lambda: load_csv(path, user="user", item="item", timestamp="when", time_format=fmt),
        f"{path}:3:",
        "column 'when'",
        why,
    )


def test_csv_nan_and_inf_times_are_bad_values(tmp_path) -> None:
    for raw in ("nan", "inf", "-inf", "NaN"):
        path = tmp_path / "ratings.csv"
        path.write_text(f"user,item,when\n1,10,1000000000\n1,11,{raw}\n")
        refused(
            lambda p=path: load_csv(p, user="user", item="item", timestamp="when"),
            f"{path}:3:",
            "must be a number",
        )


def test_jsonl_times_outside_the_range(tmp_path) -> None:
    for t, fmt in ((1e30, "unix"), (-86400, "unix"), ("1950-06-01", "iso"), (1e20, "unix_ms")):
        path = write_lines(tmp_path / "x.jsonl", [{"u": 1, "i": 2, "t": t}])
        refused(
            lambda p=path, f=fmt: load_jsonl(p, user="u", item="i", timestamp="t", time_format=f),
            f"{path}:1:",
            "column 't'",
            "not a plausible time",
        )


def test_headerless_files_name_the_field(tmp_path) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.data").write_text("1\t10\t4\t881250949\n2\t10\t3\t-881250949\n")
    from recai_datasets.problems import Problems
    from recai_datasets.tabular import read_interactions

    refused(
        lambda: read_interactions(
            folder / "u.data", Problems(), sep="\t", user=0, item=1, rating=2, timestamp=3
        ),
        "u.data:2:",
        "field 4",
        "before 1970-01-01",
    )


def test_recbole_atomic_times_outside_the_range(tmp_path) -> None:
    head = "user_id:token\titem_id:token\ttimestamp:float\n"
    for raw, why in (("1e30", "after 2100"), ("-1", "before 1970"), ("4102444800", "after 2100")):
        folder = tmp_path / f"rb{raw}"
        folder.mkdir()
        (folder / f"{folder.name}.inter").write_text(f"{head}u1\ti1\t1000\nu1\ti2\t{raw}\n")
        refused(lambda f=folder: load_atomic(f), ".inter:3:", "column 'timestamp'", why)
        with pytest.warns(SkippedDataWarning, match="1 x implausible time"):
            data = load_atomic(folder, on_error="skip")
        assert data.interactions.timestamps.tolist() == [1000]


def test_steam_dates_before_1970_are_refused(tmp_path) -> None:
    folder = tmp_path / "steam"
    write_lines(
        folder / "steam_reviews.json",
        [
            {"username": "a", "product_id": "1", "date": "2015-01-01"},
            {"username": "a", "product_id": "2", "date": "1960-01-01"},
        ],
        literal=True,
    )
    refused(lambda: load_steam(folder), "steam_reviews.json:2:", "column 'date'", "1960-01-01")


# -- ratings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["1e300", "-1e10", "1000000001"])
def test_csv_huge_ratings_are_refused(tmp_path, raw) -> None:
    path = tmp_path / "r.csv"
    path.write_text(f"u,i,stars\n1,2,4\n1,3,{raw}\n")
    refused(
        lambda: load_csv(path, user="u", item="i", rating="stars"),
        f"{path}:3:",
        "column 'stars'",
        "not a plausible rating",
    )


def test_csv_nan_and_inf_ratings_are_bad_values(tmp_path) -> None:
    for raw in ("nan", "inf", "-Infinity"):
        path = tmp_path / "r.csv"
        path.write_text(f"u,i,stars\n1,2,4\n1,3,{raw}\n")
        refused(
            lambda p=path: load_csv(p, user="u", item="i", rating="stars"),
            f"{path}:3:",
            "rating must be a number",
        )


def test_recbole_rating_beyond_float32_is_refused_not_turned_into_inf(tmp_path) -> None:
    folder = tmp_path / "rb"
    folder.mkdir()
    (folder / "rb.inter").write_text(
        "user_id:token\titem_id:token\trating:float\nu1\ti1\t4\nu1\ti2\t1e300\n"
    )
    refused(lambda: load_atomic(folder), "rb.inter:3:", "column 'rating'", "plausible rating")
    with pytest.warns(SkippedDataWarning, match="1 x implausible rating"):
        data = load_atomic(folder, on_error="skip")
    assert np.isfinite(data.interactions.ratings).all()


def test_amazon_and_jsonl_huge_ratings_are_refused(tmp_path) -> None:
    path = amazon_2023(tmp_path, json.dumps(review_2023("B2", GOOD_MS, rating=1e300)))
    refused(lambda: load_amazon_2023(path), f"{path}:2:", "column 'rating'")
    jpath = write_lines(tmp_path / "x.jsonl", [{"u": 1, "i": 2, "r": -5e9}])
    refused(lambda: load_jsonl(jpath, user="u", item="i", rating="r"), f"{jpath}:1:", "'r'")


def test_lenient_mode_counts_times_and_ratings_apart(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("u,i,r,t\n1,2,4,1000\n1,3,1e300,1000\n1,4,4,1e30\n1,5,3,2000\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedDataWarning)
        data = load_csv(path, user="u", item="i", rating="r", timestamp="t", on_error="skip")
    assert data.info["skipped"] == {"implausible time": 1, "implausible rating": 1}
    assert len(data.interactions) == 2


# -- prices and other values ------------------------------------------------------------------


def test_prices_that_cannot_be_one_count_as_unreadable() -> None:
    from recai_datasets.values import Unparsed

    u = Unparsed()
    values = [-3, "$" + "9" * 400, 2e9, float("inf"), 10**400, "12.99", 0]
    out = price_column(values, u, "price")
    assert np.isnan(out[:5]).all() and out[5:].tolist() == [12.99, 0.0]
    assert u.counts == {"price": 5}
    assert parse_price(float("nan")) is None


def test_huge_integers_in_json_are_unreadable_not_a_crash() -> None:
    assert as_number(10**400) is None and as_number("1e999") is None
    assert as_id(10**400) == str(10**400) and as_id(float("inf")) is None
    assert as_id(float("nan")) is None and as_id(1e300) == str(int(1e300))


def test_steam_huge_integer_id_does_not_crash(tmp_path) -> None:
    folder = tmp_path / "steam"
    path = folder / "steam_reviews.json"
    folder.mkdir()
    big = "9" * 400  # float(int) overflows: the id is its digits
    path.write_text(
        f"{{'username': 'a', 'product_id': {big}, 'date': '2015-01-01'}}\n"
        "{'username': 'a', 'product_id': '2', 'date': '2015-01-01'}\n"
    )
    data = load_steam(folder)
    assert sorted(data.catalog.ids.tolist()) == sorted([big, "2"])
    path.write_text("{'username': 'a', 'product_id': 1e999, 'date': '2015-01-01'}\n")
    refused(lambda: load_steam(folder), "steam_reviews.json:1:", "'product_id'")
