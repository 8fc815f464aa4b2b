"""The vectorised atomic-file reader: the same answers and the same line-numbered errors as a
line-by-line reading, a round trip with the synthetic writer, and a million rows in seconds."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from recai.data import synthetic_dataset
from recai.data.synthetic import write_atomic
from recai.errors import DataError
from recai_datasets.atomic import AtomicTable, read_atomic

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def rows(n: int, bad: dict[int, str] | None = None) -> str:
    """``n`` well-formed interaction lines (``bad`` replaces some: row -> text)."""
    out = [f"u{i % 997}\ti{(i * 7) % 503}\t{1 + i % 5}\t{1_600_000_000 + i}" for i in range(n)]
    for row, text in (bad or {}).items():
        out[row] = text
    return "\n".join(out) + "\n"


# -- a million rows ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def million(tmp_path_factory):
    data = synthetic_dataset(n_users=100_000, n_items=10_000, mean_length=10, ratings=True)
    start = time.perf_counter()
    paths = write_atomic(data, tmp_path_factory.mktemp("million"), name="big")
    return data, paths, time.perf_counter() - start


def test_a_million_rows_write_and_read_in_seconds(million):
    data, paths, write_seconds = million
    assert write_seconds < 10.0  # about 0.6 s here
    start = time.perf_counter()
    table = read_atomic(paths["inter"], required=("user_id", "item_id", "rating", "timestamp"))
    user_ids, users = table.factorize("user_id")
    items = table.codes("item_id", data.catalog.ids)
    ratings, timestamps = table.floats("rating"), table.floats("timestamp")
    seconds = time.perf_counter() - start
    assert seconds < 5.0, f"reading 10^6 rows took {seconds:.1f} s (about 0.5 s here)"
    inter = data.interactions
    assert len(table) == len(inter) == 1_000_000
    np.testing.assert_array_equal(users, inter.users)  # "u0" < "u1" < ... < "u99999": by number
    np.testing.assert_array_equal(user_ids, data.user_ids)
    np.testing.assert_array_equal(items, inter.items)
    np.testing.assert_array_equal(ratings, inter.ratings)
    np.testing.assert_array_equal(timestamps, inter.timestamps)
    assert table.line_of(999_999) == 1_000_001


# -- round trip --------------------------------------------------------------------------------
def test_round_trip_of_a_small_synthetic_dataset(tmp_path):
    data = synthetic_dataset(n_users=40, n_items=30, ratings=True, seed=11)
    paths = write_atomic(data, tmp_path)
    inter = read_atomic(paths["inter"])
    assert inter.types == {
        "user_id": "token", "item_id": "token", "rating": "float", "timestamp": "float",
    }  # fmt: skip
    user_ids, users = inter.factorize("user_id")
    np.testing.assert_array_equal(user_ids[users], data.user_ids[data.interactions.users])
    np.testing.assert_array_equal(inter.codes("item_id", data.catalog.ids), data.interactions.items)
    np.testing.assert_array_equal(inter.floats("rating"), data.interactions.ratings)
    np.testing.assert_array_equal(inter.floats("timestamp"), data.interactions.timestamps)

    items = read_atomic(paths["item"])
    cat = data.catalog
    assert items.text("item_id") == cat.ids.tolist()
    assert items.text("title") == cat.titles.tolist()
    assert items.text("category") == cat.fields["category"].tolist()
    assert [tuple(t.split()) for t in items.text("tags")] == cat.fields["tags"].tolist()
    np.testing.assert_array_equal(items.floats("price"), cat.fields["price"])
    released = np.array(items.text("released"), dtype="datetime64[D]")
    np.testing.assert_array_equal(released, cat.fields["released"])


# -- errors keep their file and line -----------------------------------------------------------
def test_wrong_field_count_deep_in_a_big_file(tmp_path):
    f = tmp_path / "x.inter"
    f.write_text(HEADER + rows(200_000, {150_000: "u1\ti2\t3"}))
    with pytest.raises(DataError, match=r"x\.inter:150002: expected 4 tab-separated fields") as e:
        read_atomic(f)
    assert e.value.path == str(f) and e.value.line == 150_002
    assert "found 3" in str(e.value)


def test_bad_and_non_finite_numbers_name_their_line(tmp_path):
    f = tmp_path / "x.inter"
    f.write_text(HEADER + rows(120_000, {99_000: "u1\ti2\tfour\t5", 110_000: "u1\ti2\tnan\t5"}))
    table = read_atomic(f)
    with pytest.raises(
        DataError, match=r"x\.inter:99002: column 'rating' must hold numbers, found 'four'"
    ):
        table.floats("rating")
    g = tmp_path / "y.inter"
    g.write_text(HEADER + rows(120_000, {110_000: "u1\ti2\tnan\t5", 110_001: "u1\ti2\t-inf\t5"}))
    table = read_atomic(g)
    with pytest.raises(DataError, match=r"y\.inter:110002: .* found 'nan'"):
        table.floats("rating")
    values = table.floats("rating", finite=False)
    assert math.isnan(values[110_000]) and values[110_001] == -math.inf and values[0] == 1.0


def test_not_utf8_deep_in_the_file_names_the_line(tmp_path):
    f = tmp_path / "x.inter"
    body = rows(50_000).encode()
    at = body.index(b"\n", len(body) // 2) + 1  # the start of some line
    line = body.count(b"\n", 0, at) + 2
    f.write_bytes(HEADER.encode() + body[:at] + b"u\xff\ti1\t3\t4\n" + body[at:])
    with pytest.raises(DataError, match=rf"x\.inter:{line}: the file is not UTF-8 text"):
        read_atomic(f)


def test_blank_lines_crlf_and_no_final_line_break_in_a_big_file(tmp_path):
    lines = rows(30_000).splitlines()
    lines[10_000:10_000] = ["", " \t ", "u1\t\t"]  # blank, white space, and 3 fields
    text = HEADER.replace("\n", "\r\n") + "\r\n".join(lines)  # no final line break
    f = tmp_path / "x.inter"
    f.write_bytes(text.encode())
    with pytest.raises(DataError, match=r"x\.inter:10004: expected 4 tab-separated fields"):
        read_atomic(f)  # "\t\t" has three fields
    lines[10_002] = "u5\ti5\t5\t5"
    f.write_bytes(("\r\n".join([HEADER.strip()] + lines)).encode())
    table = read_atomic(f)
    assert len(table) == 30_001
    assert table.line_of(9_999) == 10_001 and table.line_of(10_000) == 10_004
    assert table.lines[-1] == 30_004
    assert table.text("timestamp")[-1] == str(1_600_000_000 + 29_999)
    assert table.floats("rating")[10_000] == 5.0 and table.text("user_id")[10_001] == "u30"
    users, codes = table.factorize("user_id")
    assert users[codes[10_000]] == "u5"


# -- numbers: the vectorised parser agrees with Python's float ---------------------------------
def test_floats_agree_with_python_float(tmp_path):
    rng = np.random.default_rng(0)
    texts = [
        " 1e3", "0", "-0", "7", "-12", "3.5", "-0.25", ".5", "5.", "007", "1e3", "-2.5E-3", "+4", " 6 ",
        "1_000", "inf", "123456789012345678", "1234567890123456789", "0.1234567890123456789",
        "9007199254740993", "3.14159265358979323846", "100000000000000000000",
    ]  # fmt: skip
    texts += [f"{x:.{int(rng.integers(0, 12))}f}" for x in rng.normal(0, 1e4, 2000)]
    texts += [str(int(x)) for x in rng.integers(-(10**17), 10**17, 2000)]
    texts += [repr(float(x)) for x in rng.lognormal(0, 20, 2000)]
    f = tmp_path / "n.inter"
    f.write_text("v:float\n" + "\n".join(texts) + "\n")
    got = read_atomic(f).floats("v", finite=False)
    want = np.array([float(t) for t in texts])
    assert got.tobytes() == want.tobytes()  # bit for bit, including -0.0


def test_a_missing_number_is_an_error(tmp_path):
    f = tmp_path / "x.inter"
    f.write_text("a:token\tb:float\nx\t1\ny\t\n")
    with pytest.raises(DataError, match=r"x\.inter:3: column 'b' must hold numbers, found ''"):
        read_atomic(f).floats("b")


# -- tokens: factorize and codes on every path -------------------------------------------------
@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["u10", "u2", "u10", "u0"], ["u0", "u2", "u10"]),  # one prefix and numbers: by number
        (["10", "9", "100"], ["9", "10", "100"]),
        (["7", "007", "10"], ["007", "7", "10"]),  # leading zeros: by value, then text
        (["b", "a10", "a9"], ["a10", "a9", "b"]),  # mixed: as text
        (["u1", "v2"], ["u1", "v2"]),
        (
            ["long-token-1", "long-token-10", "long-token-2"],
            ["long-token-1", "long-token-2", "long-token-10"],
        ),
        (
            ["zeta-omega-alpha", "alpha-beta-gamma-delta", "ζ", "é"],
            ["alpha-beta-gamma-delta", "zeta-omega-alpha", "é", "ζ"],
        ),
        (["", "a", ""], ["", "a"]),
        (["u", "u1"], ["u", "u1"]),
        (["u5", "uu5", "u10"], ["u10", "u5", "uu5"]),  # "uu5" is not "u" and a number
        (["u5", "u-5"], ["u-5", "u5"]),
        (["a1b7", "a1b10"], ["a1b7", "a1b10"]),
    ],
)
def test_factorize_orders_tokens_and_agrees_with_the_string_path(tmp_path, tokens, expected):
    f = tmp_path / "t.inter"
    f.write_text("k:token\tn:float\n" + "".join(f"{t}\t1\n" for t in tokens), encoding="utf-8")
    uniques, codes = read_atomic(f).factorize("k")
    assert uniques.tolist() == expected
    assert uniques[codes].tolist() == tokens
    listed = AtomicTable(f, {"k": "token"}, {"k": list(tokens)}, np.arange(2, len(tokens) + 2))
    u2, c2 = listed.factorize("k")
    assert u2.tolist() == expected and c2.tolist() == codes.tolist()


def test_codes_map_tokens_into_a_vocabulary(tmp_path):
    f = tmp_path / "t.inter"
    f.write_text("item:token\tx:float\n" + "".join(f"{t}\t1\n" for t in ["i3", "i1", "i9", "i3"]))
    table = read_atomic(f)
    assert table.codes("item", ["i1", "i2", "i3"]).tolist() == [2, 0, -1, 2]  # numbered path
    assert table.codes("item", ["i1", "x", "i3", "i1"]).tolist() == [2, 3, -1, 2]  # dict path
    assert table.codes("item", np.array(["i3", "i3"], dtype=object)).tolist() == [1, -1, -1, 1]
    assert table.codes("item", []).tolist() == [-1, -1, -1, -1]
    big = [f"i{k}" for k in range(0, 10**9, 10**7)]  # sparse numbers: searched, not tabled
    assert table.codes("item", big).tolist() == [-1, -1, -1, -1]


def test_text_columns_and_the_columns_mapping(tmp_path):
    f = tmp_path / "t.inter"
    f.write_text("a:token\tb:token_seq\nx\tone two\n\t\nz\tthree\n")
    table = read_atomic(f)
    assert table.text("b") == ["one two", "", "three"]
    assert table.columns["a"] == ["x", "", "z"] and list(table.columns) == ["a", "b"]
    assert table.text("a") is table.text("a")  # made once
    with pytest.raises(KeyError):
        table.text("nope")
    assert repr(table) == "AtomicTable('t.inter', 3 rows, columns=['a', 'b'])"


def test_fields_of_thousands_of_bytes(tmp_path):
    f = tmp_path / "x.item"
    long = "word " * 1000  # 5,000 bytes in one field
    f.write_text("item_id:token\tdesc:token_seq\n" + "".join(f"i{k}\t{long}\n" for k in range(50)))
    table = read_atomic(f)
    assert len(table) == 50 and table.text("desc")[49] == long
    assert table.distinct("desc")[0] == [long] and table.spaced("desc")
    f.write_text(f.read_text() + "i50\n")
    with pytest.raises(DataError, match=r"x\.item:52: expected 2 tab-separated fields"):
        read_atomic(f)


def test_header_only_and_empty_bodies(tmp_path):
    f = tmp_path / "h.inter"
    f.write_text("a:token\tb:float")
    table = read_atomic(f)
    assert len(table) == 0 and table.text("a") == [] and table.floats("b").tolist() == []
    assert table.factorize("a")[0].tolist() == [] and table.codes("a", ["x"]).tolist() == []
    (tmp_path / "e.inter").write_text(" \n\n")
    with pytest.raises(DataError, match=r"e\.inter: the file is empty"):
        read_atomic(tmp_path / "e.inter")


def test_reading_a_file_holds_no_python_string_per_row(tmp_path):
    """The parsers work on the bytes: 10^5 rows cost a few arrays, not 4 x 10^5 strings."""
    import tracemalloc

    f = tmp_path / "m.inter"
    f.write_text(HEADER + rows(100_000))
    tracemalloc.start()
    table = read_atomic(f)
    table.factorize("user_id"), table.floats("rating"), table.floats("timestamp")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 12 * Path(f).stat().st_size  # strings alone would take ~50 bytes per field


def test_long_tokens_after_a_hash_collision_sort_the_bytes(tmp_path, monkeypatch):
    import recai_datasets.atomic as atomic

    f = tmp_path / "t.inter"
    tokens = ["token-b-long", "token-a-long", "token-b-long", "x"]
    f.write_text("k:token\n" + "".join(f"{t}\n" for t in tokens))
    expected = read_atomic(f).factorize("k")
    monkeypatch.setattr(atomic, "_unique_rows", lambda fixed, words: None)
    uniques, codes = read_atomic(f).factorize("k")
    assert uniques.tolist() == expected[0].tolist() == ["token-a-long", "token-b-long", "x"]
    assert codes.tolist() == expected[1].tolist() == [1, 0, 1, 2]
