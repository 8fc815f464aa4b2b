"""movielens-100k.v1: the role contract, the published statistics, errors and load time."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

from recai.errors import DataError
from recai.testing import DatasetContract
from recai_datasets.atomic import read_atomic
from recai_datasets.movielens import LICENCE, MovieLens100K, bundled_folder, load_movielens_100k

HAVE_RECBOLE = importlib.util.find_spec("recbole") is not None
NO_RECBOLE = "MovieLens-100K is read from the recbole wheel: pip install --no-deps recbole==1.2.1"


def needs_recbole(test):
    """Marks a test that reads the data inside the recbole wheel (an integration test)."""
    return pytest.mark.integration(pytest.mark.skipif(not HAVE_RECBOLE, reason=NO_RECBOLE)(test))


INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"


def write_folder(root: Path, inter_lines: list[str], item_lines: list[str] | None = None) -> Path:
    """A folder of atomic files in the ml-100k format (small, hand-written)."""
    root.mkdir(parents=True, exist_ok=True)
    items = (
        item_lines
        if item_lines is not None
        else [
            "1\tToy Story\t1995\tAnimation Children's Comedy",
            "2\tGoldenEye\t1995\tAction Adventure Thriller",
            "3\tunkonwn\tunkonwn\tunknown",
        ]
    )
    (root / "ml-100k.item").write_text(ITEM_HEADER + "\n".join(items) + "\n")
    (root / "ml-100k.inter").write_text(INTER_HEADER + "\n".join(inter_lines) + "\n")
    return root


# -- the contract, on a hand-written folder (runs everywhere) and on the bundled data --------------
class TestMovieLensFromFolder(DatasetContract):
    name = "movielens-100k.v1"
    distribution = "recai-datasets"

    @pytest.fixture
    def component(self, entry, tmp_path):
        folder = write_folder(
            tmp_path / "ml",
            ["10\t1\t4\t100", "10\t2\t3\t90", "7\t2\t5\t50", "7\t3\t1\t60", "2\t1\t2\t70"],
        )
        return entry.build({"path": str(folder)}, role=self.role)


@needs_recbole
class TestMovieLensBundled(DatasetContract):
    name = "movielens-100k.v1"
    distribution = "recai-datasets"


# -- real data ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ml100k():
    if not HAVE_RECBOLE:
        pytest.skip(NO_RECBOLE)
    return load_movielens_100k()


@needs_recbole
def test_published_statistics(ml100k):
    # GroupLens README of ml-100k: 100,000 ratings (1-5) from 943 users on 1,682 movies,
    # each user has rated at least 20 movies.
    assert ml100k.n_users == 943
    assert ml100k.n_items == 1682
    assert len(ml100k.interactions) == 100_000
    assert ml100k.interactions.user_counts().min() >= 20
    assert set(np.unique(ml100k.interactions.ratings).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    pairs = ml100k.interactions.users * ml100k.n_items + ml100k.interactions.items
    assert len(np.unique(pairs)) == 100_000, "a user rated a film twice"


@needs_recbole
def test_catalog_titles_years_and_genres(ml100k):
    cat = ml100k.catalog
    toy = cat.index("1")
    assert cat.title(toy) == "Toy Story (1995)"
    assert cat.fields["year"][toy] == 1995
    assert cat.fields["genres"][toy] == ("Animation", "Children's", "Comedy")
    # the bundled file has the year inside this title and "V" in the year column
    land = cat.index("1412")
    assert cat.title(land) == "Land Before Time III: The Time of the Great Giving (1995)"
    assert cat.fields["year"][land] == 1995
    # item 267 is unknown in the original data
    assert np.isnan(cat.fields["year"][cat.index("267")])
    assert cat.fields["genres"][cat.index("267")] == ()
    assert set(cat.descriptions) >= {"year", "genres"}
    assert all(isinstance(g, tuple) for g in cat.fields["genres"])


@needs_recbole
def test_users_and_time_order(ml100k):
    assert (
        ml100k.user_ids is not None and ml100k.user_ids[0] == "1" and ml100k.user_ids[-1] == "943"
    )
    # first line of the file: user 196 rated item 242 with 3 at 881250949
    inter = ml100k.interactions
    assert ml100k.user_ids[inter.users[0]] == "196"
    assert ml100k.catalog.ids[inter.items[0]] == "242"
    assert inter.ratings[0] == 3 and inter.timestamps[0] == 881250949


@needs_recbole
def test_info_has_source_and_licence(ml100k):
    assert "recbole" in ml100k.info["source"]
    assert ml100k.info["licence"] == LICENCE
    assert "GroupLens" in LICENCE and "redistributed" in LICENCE
    assert "Harper" in ml100k.info["citation"] and "Konstan" in ml100k.info["citation"]


@needs_recbole
def test_loads_well_under_a_second():
    load_movielens_100k()  # warm the file cache and imports
    start = time.perf_counter()
    load_movielens_100k()
    assert time.perf_counter() - start < 1.0


@needs_recbole
def test_recbole_is_not_imported():
    import subprocess
    import sys

    code = (
        "import sys; from recai_datasets.movielens import load_movielens_100k; "
        "load_movielens_100k(); "
        "print(sorted(m for m in ('recbole', 'torch', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bundled_folder_points_into_the_wheel():
    if not HAVE_RECBOLE:
        with pytest.raises(DataError, match="pip install --no-deps recbole==1.2.1"):
            bundled_folder()
        return
    folder = bundled_folder()
    assert (folder / "ml-100k.inter").is_file() and (folder / "ml-100k.item").is_file()


# -- errors ------------------------------------------------------------------------------------
def test_missing_wheel_gives_install_hint(monkeypatch):
    import recai_datasets.movielens as ml

    monkeypatch.setattr(ml.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install --no-deps recbole==1\.2\.1"):
        MovieLens100K().load()


def test_malformed_line_names_file_and_line(tmp_path):
    folder = write_folder(tmp_path, ["10\t1\t4\t100", "10\t2\t3\t90", "7\t2\tfive\t50"])
    with pytest.raises(DataError) as info:
        load_movielens_100k(folder)
    err = info.value
    assert err.path == str(folder / "ml-100k.inter") and err.line == 4
    assert "ml-100k.inter:4:" in str(err) and "'five'" in str(err)


def test_wrong_field_count_names_line(tmp_path):
    folder = write_folder(tmp_path, ["10\t1\t4\t100", "", "10\t2\t3", "7\t2\t5\t50"])
    with pytest.raises(DataError, match=r"ml-100k\.inter:4: expected 4 tab-separated fields"):
        load_movielens_100k(folder)


def test_unknown_item_names_line(tmp_path):
    folder = write_folder(tmp_path, ["10\t1\t4\t100", "10\t99\t3\t90"])
    with pytest.raises(DataError, match=r"ml-100k\.inter:3: item id '99' is not in the item file"):
        load_movielens_100k(folder)


def test_duplicate_item_names_both_lines(tmp_path):
    folder = write_folder(tmp_path, ["10\t1\t4\t100"], ["1\tA\t1995\tDrama", "1\tB\t1996\tDrama"])
    with pytest.raises(
        DataError, match=r"ml-100k\.item:3: item id '1' appears again \(first on line 2\)"
    ):
        load_movielens_100k(folder)


def test_missing_file_is_named(tmp_path):
    folder = write_folder(tmp_path, ["10\t1\t4\t100"])
    (folder / "ml-100k.inter").unlink()
    with pytest.raises(DataError, match=r"ml-100k\.inter: file not found"):
        load_movielens_100k(folder)


def test_bad_header_is_line_one(tmp_path):
    (tmp_path / "x.inter").write_text("user_id\titem_id\n1\t2\n")
    with pytest.raises(DataError, match=r"x\.inter:1: header field 'user_id'"):
        read_atomic(tmp_path / "x.inter")


def test_missing_column_is_named(tmp_path):
    (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match=r"x\.inter:1: the header lacks the column\(s\) rating"):
        read_atomic(tmp_path / "x.inter", required=("user_id", "item_id", "rating"))


def test_not_a_folder(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        load_movielens_100k(tmp_path / "nowhere")


# -- the reader on small inputs ------------------------------------------------------------------
def test_reader_keeps_line_numbers_across_blank_lines(tmp_path):
    (tmp_path / "x.inter").write_text("a:token\tb:float\r\n1\t2.5\r\n\r\n3\t4\r\n   \r\n5\tnan\r\n")
    table = read_atomic(tmp_path / "x.inter")
    assert table.text("a") == ["1", "3", "5"]
    assert table.lines.tolist() == [2, 4, 6]
    with pytest.raises(DataError, match=r"x\.inter:6: column 'b' must hold numbers, found 'nan'"):
        table.floats("b")
    np.testing.assert_array_equal(table.floats("b", finite=False)[:2], [2.5, 4.0])


def test_small_folder_round_trip(tmp_path):
    folder = write_folder(tmp_path, ["10\t1\t4\t100", "10\t2\t3\t90", "7\t2\t5\t50", "2\t3\t1\t70"])
    data = load_movielens_100k(folder)
    assert data.user_ids.tolist() == ["2", "7", "10"]  # numeric ids sort by value
    assert data.catalog.titles.tolist() == ["Toy Story (1995)", "GoldenEye (1995)", "unknown"]
    assert data.interactions.history(2).tolist() == [1, 0]  # user "10", in time order
    assert data.info["licence"] == LICENCE
