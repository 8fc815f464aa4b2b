"""recai-format.v1, csv.v1 and jsonl.v1, plus the text readers they share."""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pytest
from datasets_files import RECAI_METADATA, RECAI_SEQUENCES, write_lines, write_recai

from recai.errors import DataError
from recai.testing import DatasetContract
from recai_datasets.generic import load_csv, load_jsonl
from recai_datasets.problems import Problems, SkippedDataWarning
from recai_datasets.recai_format import load_recai_format
from recai_datasets.textio import iter_csv_rows, iter_split_chunks, read_bytes

EVENTS = "user,item,stars,when\nu1,b,4,2024-01-02 10:00\nu2,a,5,2024-01-01 09:30\nu1,a,3,2024-01-01 08:00\n"
ITEMS = (
    "item,title,genres,price,released,blurb\n"
    'a,"Heat, the film",Crime|Drama,$9.99,1995-12-15,"said ""great"""\n'
    "b,Up,,free,not a date,\n"
    "c,Never seen,Animation,3,2009-05-29,Short\n"
)
FIELDS = {
    "genres": "multi",
    "price": "price",
    "released": {"kind": "date", "format": "%Y-%m-%d", "description": "release day"},
    "blurb": "text",
}


def write_csv(root, events=EVENTS, items=ITEMS):
    root.mkdir(parents=True, exist_ok=True)
    (root / "events.csv").write_text(events)
    (root / "items.csv").write_text(items)
    return root


class TestRecAIFormat(DatasetContract):
    name = "recai-format.v1"
    distribution = "recai-datasets"

    @pytest.fixture
    def component(self, entry, tmp_path):
        return entry.build({"path": str(write_recai(tmp_path / "steam"))}, role=self.role)


class TestCsv(DatasetContract):
    name = "csv.v1"
    distribution = "recai-datasets"

    @pytest.fixture
    def component(self, entry, tmp_path):
        d = write_csv(tmp_path)
        params = {
            "interactions": str(d / "events.csv"),
            "items": str(d / "items.csv"),
            "user": "user",
            "item": "item",
            "rating": "stars",
            "timestamp": "when",
            "time_format": "%Y-%m-%d %H:%M",
            "fields": FIELDS,
        }
        return entry.build(params, role=self.role)


class TestJsonl(DatasetContract):
    name = "jsonl.v1"
    distribution = "recai-datasets"

    @pytest.fixture
    def component(self, entry, tmp_path):
        events = write_lines(
            tmp_path / "e.jsonl", [{"u": 1, "i": "x", "t": 5}, {"u": 2, "i": "y", "t": 3}]
        )
        return entry.build(
            {"interactions": str(events), "user": "u", "item": "i", "timestamp": "t"},
            role=self.role,
        )


# -- RecAI's format ----------------------------------------------------------------------------------
def test_recai_format_values(tmp_path):
    data = load_recai_format(write_recai(tmp_path / "steam"))
    cat = data.catalog
    assert cat.ids.tolist() == ["1", "2", "3"]  # line n is item n; id 0 (padding) is no item
    assert cat.titles.tolist() == [
        "Lost Summoner Kitty",
        "Halo",
        "Real Pool 3D",
    ]  # app_name, TitleName, title
    assert cat.fields["tags"].tolist() == [
        ("Strategy", "Action"),
        ("shooter", "sci-fi"),
        ("Sports",),
    ]
    assert cat.fields["game_details"].tolist() == [("Single-player",), (), ()]
    np.testing.assert_array_equal(cat.fields["price"], [4.99, 19.99, 0.0])
    assert cat.fields["release_date"].astype(str).tolist() == ["2018-01-04", "2001-11-15", "NaT"]
    assert cat.fields["publisher"].tolist() == [None, "Xbox Game Studios", None]
    assert cat.fields["primary_genre"].tolist() == [None, "Shooter", None]
    assert "sub_genre" not in cat.fields  # no item has it
    assert data.info["unparsed"] == {"release_date": 1}
    inter = data.interactions
    assert inter.timestamps is None and inter.ratings is None
    assert data.user_ids.tolist() == ["1", "2", "7"]
    assert [cat.ids[inter.history(u)].tolist() for u in range(3)] == [
        ["1", "2", "3"],
        ["3", "1"],
        ["2"],
    ]


def test_recai_format_errors(tmp_path):
    with pytest.raises(
        DataError, match=r"sequential_data\.txt:2: item id 0 is not in metadata\.json .*padding"
    ):
        load_recai_format(write_recai(tmp_path / "a", sequences=["1 1 2", "2 0 3"]))
    with pytest.raises(
        DataError, match=r"sequential_data\.txt:1: item ids must be whole numbers, found 'x'"
    ):
        load_recai_format(write_recai(tmp_path / "b", sequences=["1 x"]))
    with pytest.raises(DataError, match=r"metadata\.json:2: the item has no title"):
        load_recai_format(
            write_recai(tmp_path / "c", metadata=[RECAI_METADATA[0], {"tags": ["x"]}])
        )
    folder = write_recai(tmp_path / "d")
    (folder / "metadata.json").write_text('{"title": "A"}\n\n{"title": "B"}\n')
    with pytest.raises(DataError, match=r"metadata\.json:2: blank line"):
        load_recai_format(folder)
    with pytest.warns(SkippedDataWarning):
        data = load_recai_format(folder, on_error="skip")
    assert data.catalog.titles.tolist() == ["A", "2", "B"]  # ids do not shift
    assert data.info["skipped"] == {"malformed line": 1}


def test_recai_format_skip_mode_keeps_good_items_of_a_line(tmp_path):
    folder = write_recai(tmp_path, sequences=[*RECAI_SEQUENCES, "9 1 4 2", "8"])
    with pytest.warns(SkippedDataWarning):
        data = load_recai_format(folder, on_error="skip")
    assert data.info["skipped"] == {"unknown item": 1, "malformed line": 1}
    u = data.user_ids.tolist().index("9")
    assert data.catalog.ids[data.interactions.history(u)].tolist() == ["1", "2"]


# -- csv.v1 ---------------------------------------------------------------------------------------
def test_csv_values(tmp_path):
    d = write_csv(tmp_path)
    data = load_csv(
        d / "events.csv",
        d / "items.csv",
        user="user",
        item="item",
        rating="stars",
        timestamp="when",
        time_format="%Y-%m-%d %H:%M",
        fields=FIELDS,
    )
    cat = data.catalog
    assert cat.titles.tolist() == ["Heat, the film", "Up", "Never seen"]
    assert cat.fields["genres"].tolist() == [("Crime", "Drama"), (), ("Animation",)]
    np.testing.assert_array_equal(cat.fields["price"], [9.99, 0.0, 3.0])
    assert cat.fields["released"].astype(str).tolist() == ["1995-12-15", "NaT", "2009-05-29"]
    assert cat.fields["blurb"].tolist() == ['said "great"', None, "Short"]
    assert cat.descriptions == {"released": "release day"}
    assert data.info["unparsed"] == {"released": 1}
    inter = data.interactions
    assert inter.timestamps.tolist() == [1704189600, 1704101400, 1704096000]  # UTC
    assert cat.ids[inter.history(0)].tolist() == ["a", "b"]
    assert inter.item_counts().tolist() == [2, 1, 0]


def test_csv_other_delimiters_encodings_and_no_header(tmp_path):
    (tmp_path / "r.dat").write_bytes("7::Amélie::5\n8::Amélie::3\n".encode("latin-1"))
    data = load_csv(
        tmp_path / "r.dat",
        delimiter="::",
        quote=None,
        encoding="latin-1",
        columns=["user", "film", "score"],
        user="user",
        item="film",
        rating="score",
    )
    assert data.catalog.ids.tolist() == ["Amélie"] and data.interactions.ratings.tolist() == [
        5.0,
        3.0,
    ]
    with pytest.raises(DataError, match=r"r\.dat:1: the file is not utf-8 text"):
        load_csv(
            tmp_path / "r.dat",
            delimiter="::",
            columns=["user", "film", "score"],
            user="user",
            item="film",
        )
    (tmp_path / "t.tsv.gz").write_bytes(gzip.compress(b"u\ti\n1\tx\n"))
    assert load_csv(tmp_path / "t.tsv.gz", delimiter="\t", user="u", item="i").n_items == 1


def test_csv_errors(tmp_path):
    d = write_csv(tmp_path / "a")
    with pytest.raises(DataError, match=r"items\.csv:1: the header lacks the column\(s\) 'genre'"):
        load_csv(
            d / "events.csv", d / "items.csv", user="user", item="item", fields={"genre": "multi"}
        )
    with pytest.raises(DataError, match=r"events\.csv:1: the header has no user column 'user_id'"):
        load_csv(d / "events.csv", d / "items.csv", item="item")
    d = write_csv(tmp_path / "b", events=EVENTS + "u3,zz,1,2024-01-01 08:00\n")
    with pytest.raises(DataError, match=r"events\.csv:5: item id 'zz' is not in the item file"):
        load_csv(d / "events.csv", d / "items.csv", user="user", item="item")
    d = write_csv(tmp_path / "c", events=EVENTS + "u3,a,1,yesterday\n")
    with pytest.raises(DataError, match=r"events\.csv:5: timestamp not a time in format"):
        load_csv(
            d / "events.csv",
            user="user",
            item="item",
            timestamp="when",
            time_format="%Y-%m-%d %H:%M",
        )
    d = write_csv(tmp_path / "d", items=ITEMS + "a,Heat again,,,,\n")
    with pytest.raises(
        DataError, match=r"items\.csv:5: item id 'a' appears again \(first on line 2\)"
    ):
        load_csv(d / "events.csv", d / "items.csv", user="user", item="item")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        load_csv(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="'title' is not a field"):
        load_csv(
            d / "events.csv", d / "items.csv", user="user", item="item", fields={"title": "text"}
        )


def test_csv_skip_mode(tmp_path):
    events = (
        EVENTS
        + "u3,zz,1,2024-01-01 08:00\nu3,a,1\n,a,1,2024-01-01 08:00\nu4,b,x,2024-01-01 08:00\n"
    )
    d = write_csv(tmp_path, events=events)
    with pytest.warns(SkippedDataWarning) as caught:
        data = load_csv(
            d / "events.csv",
            d / "items.csv",
            user="user",
            item="item",
            rating="stars",
            on_error="skip",
        )
    assert len(caught) == 1
    assert data.info["skipped"] == {
        "malformed line": 1,
        "missing value": 1,
        "bad value": 1,
        "unknown item": 1,
    }
    assert len(data.interactions) == 3


def test_csv_params_are_checked():
    import recai
    from recai.errors import ParamsError

    with pytest.raises(ParamsError, match="fields"):
        recai.create("dataset", "csv.v1", interactions="x.csv", fields={"genres": "tags"})
    with pytest.raises(ParamsError, match="fields"):
        recai.create(
            "dataset",
            "csv.v1",
            interactions="x.csv",
            fields={"genres": {"kind": "multi", "spe": "|"}},
        )


# -- jsonl.v1 -------------------------------------------------------------------------------------
def test_jsonl_values_and_errors(tmp_path):
    events = write_lines(
        tmp_path / "events.jsonl.gz",
        [
            {"u": 1, "i": "x", "r": 4, "t": 1700000000000},
            {"u": "2", "i": "y", "r": "3.5", "t": 1700000001000},
        ],
        gz=True,
    )
    items = write_lines(
        tmp_path / "items.jsonl",
        [
            {"id": "x", "name": "Ex", "tags": ["a", "b"], "price": 2, "meta": {"k": 1}},
            {"id": "y", "name": "Why", "tags": "c|d", "price": None},
        ],
    )
    data = load_jsonl(
        events,
        items,
        user="u",
        item="i",
        rating="r",
        timestamp="t",
        time_format="unix_ms",
        item_id="id",
        title="name",
        fields={"tags": "multi", "price": "number", "meta": "text"},
    )
    cat = data.catalog
    assert cat.titles.tolist() == ["Ex", "Why"]
    assert cat.fields["tags"].tolist() == [("a", "b"), ("c", "d")]
    np.testing.assert_array_equal(cat.fields["price"], [2.0, np.nan])
    assert cat.fields["meta"].tolist() == ["{'k': 1}", None]
    assert data.user_ids.tolist() == ["1", "2"]
    assert data.interactions.timestamps.tolist() == [1700000000, 1700000001]
    assert data.interactions.ratings.tolist() == [4.0, 3.5]
    bad = write_lines(
        tmp_path / "bad.jsonl", [{"u": 1, "i": "x", "r": 4}, {"u": 2, "i": "x", "r": None}]
    )
    with pytest.raises(DataError, match=r"bad\.jsonl:2: rating must be a number, found None"):
        load_jsonl(bad, user="u", item="i", rating="r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedDataWarning)
        lenient = load_jsonl(bad, user="u", item="i", rating="r", on_error="skip")
    assert lenient.info["skipped"] == {"missing value": 1} and len(lenient.interactions) == 1


# -- the readers ------------------------------------------------------------------------------------
def test_read_bytes_handles_gzip_bom_and_crlf(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"\xef\xbb\xbfa\r\nb\r\n"))
    assert read_bytes(tmp_path / "x.gz") == b"a\nb\n"
    (tmp_path / "broken.gz").write_bytes(gzip.compress(b"abc")[:-6])
    with pytest.raises(DataError, match=r"broken\.gz: not a valid gzip file"):
        read_bytes(tmp_path / "broken.gz")
    with pytest.raises(DataError, match="is a folder"):
        read_bytes(tmp_path)


def test_split_chunks_keep_line_numbers(tmp_path):
    (tmp_path / "x.txt").write_text("a|b\n\n1|2\n  \n3|4|5\n6|7\n")
    p = Problems("skip")
    chunks = list(iter_split_chunks(tmp_path / "x.txt", p, sep="|", header=True, chunk_lines=1))
    assert [c[0] for c in chunks] == [["a", "b"], ["a", "b"]]
    assert [c[1] for c in chunks] == [[["1"], ["2"]], [["6"], ["7"]]]
    assert [c[2].tolist() for c in chunks] == [[3], [6]]
    assert p.counts == {"malformed line": 1}


def test_csv_rows_report_the_line_where_a_row_starts(tmp_path):
    (tmp_path / "x.csv").write_text('id,text\n1,"two\nlines"\n2,plain\n')
    rows = list(iter_csv_rows(tmp_path / "x.csv", Problems()))
    assert rows == [(1, ["id", "text"]), (2, ["1", "two\nlines"]), (4, ["2", "plain"])]


def test_undecodable_lines_in_skip_mode(tmp_path):
    (tmp_path / "x.csv").write_bytes(b"u,i\n1,a\n2,\xff\n3,c\n")
    with pytest.warns(SkippedDataWarning, match=r"x\.csv:3"):
        data = load_csv(tmp_path / "x.csv", user="u", item="i", on_error="skip")
    assert data.info["skipped"] == {"undecodable line": 1}
    assert data.catalog.ids.tolist() == ["a", "c"]


def test_json_lines_are_streamed_with_errors_named(tmp_path):
    from recai_datasets.textio import iter_json_lines

    good = gzip.compress(b'{"a": 1}\n{"a": 2}\n' * 1000)
    (tmp_path / "cut.jsonl.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"cut\.jsonl\.gz:\d+: not a valid gzip file"):
        list(iter_json_lines(tmp_path / "cut.jsonl.gz", Problems()))
    (tmp_path / "blank.jsonl").write_text("\n  \n")
    with pytest.raises(DataError, match=r"blank\.jsonl: the file is empty"):
        list(iter_json_lines(tmp_path / "blank.jsonl", Problems()))
    (tmp_path / "crlf.jsonl").write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\r\n{"a": 2}\r\n')
    assert list(iter_json_lines(tmp_path / "crlf.jsonl", Problems())) == [
        (1, {"a": 1}),
        (3, {"a": 2}),
    ]
    (tmp_path / "latin.jsonl").write_bytes('{"a": "é"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.jsonl:1: not utf-8 text \(byte 0xe9\)"):
        list(iter_json_lines(tmp_path / "latin.jsonl", Problems()))
