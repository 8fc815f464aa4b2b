"""movielens-1m.v1 and movielens-latest.v1 on hand-written files in the GroupLens formats."""

from __future__ import annotations

import numpy as np
import pytest
from datasets_files import (
    ML1M_MOVIES,
    ML1M_RATINGS,
    ML1M_USERS,
    ML_LATEST_MOVIES,
    ML_LATEST_RATINGS,
    ML_LATEST_TAGS,
    write_ml1m,
    write_ml_latest,
)

from recai.errors import DataError
from recai.testing import DatasetContract
from recai_datasets.movielens import LICENCE
from recai_datasets.movielens_1m import load_movielens_1m
from recai_datasets.movielens_latest import load_movielens_latest
from recai_datasets.problems import SkippedDataWarning


class TestMovieLens1M(DatasetContract):
    name = "movielens-1m.v1"
    distribution = "recai-datasets"

    @pytest.fixture
    def component(self, entry, tmp_path):
        return entry.build({"path": str(write_ml1m(tmp_path / "ml-1m"))}, role=self.role)


class TestMovieLensLatest(DatasetContract):
    name = "movielens-latest.v1"
    distribution = "recai-datasets"

    @pytest.fixture
    def component(self, entry, tmp_path):
        return entry.build(
            {"path": str(write_ml_latest(tmp_path / "ml-latest-small"))}, role=self.role
        )


# -- MovieLens-1M ------------------------------------------------------------------------------
def test_1m_values(tmp_path):
    data = load_movielens_1m(write_ml1m(tmp_path))
    cat = data.catalog
    assert cat.ids.tolist() == ["1", "73", "3952"]
    assert cat.titles.tolist() == [
        "Toy Story (1995)",
        "Misérables, Les (1995)",
        "Contender, The (2000)",
    ]
    assert cat.fields["year"].tolist() == [1995.0, 1995.0, 2000.0]
    assert cat.fields["genres"].tolist() == [
        ("Animation", "Children's", "Comedy"),
        ("Drama", "Musical"),
        ("Drama", "Thriller"),
    ]
    assert data.user_ids.tolist() == ["1", "6040"]
    assert data.user_fields["gender"].tolist() == ["F", "M"]
    assert data.user_fields["age"].tolist() == [1.0, 25.0]
    assert data.user_fields["age_group"].tolist() == ["under 18", "25-34"]
    assert data.user_fields["occupation"].tolist() == ["K-12 student", "doctor/health care"]
    assert data.user_fields["zip_code"].tolist() == ["48067", "11106"]
    inter = data.interactions
    assert inter.ratings.tolist() == [5.0, 3.0, 4.0, 2.0]
    assert inter.timestamps.tolist() == [978824268, 978300760, 956703932, 956704056]
    assert inter.timestamps.dtype == np.int64
    assert cat.ids[inter.history(0)].tolist() == ["73", "1"]  # user 1 in time order
    assert data.info["licence"] == LICENCE and data.info["skipped"] == {}


def test_1m_without_users_file(tmp_path):
    folder = write_ml1m(tmp_path)
    (folder / "users.dat").unlink()
    data = load_movielens_1m(folder)
    assert data.user_fields == {} and data.user_ids.tolist() == ["1", "6040"]


def test_1m_errors_name_file_and_line(tmp_path):
    folder = write_ml1m(tmp_path / "a", ratings=[*ML1M_RATINGS, "1::3952::4"])
    with pytest.raises(
        DataError, match=r"ratings\.dat:5: expected 4 fields separated by '::', found 3"
    ):
        load_movielens_1m(folder)
    folder = write_ml1m(tmp_path / "b", users=[*ML1M_USERS, "7::M::30::6::11106"])
    with pytest.raises(DataError, match=r"users\.dat:3: age code must be one of"):
        load_movielens_1m(folder)
    folder = write_ml1m(tmp_path / "c", ratings=[*ML1M_RATINGS, "1::5::4::978824268"])
    with pytest.raises(DataError, match=r"ratings\.dat:5: item id '5' is not in the item file"):
        load_movielens_1m(folder)
    folder = write_ml1m(tmp_path / "d")
    (folder / "movies.dat").write_bytes(b"")
    with pytest.raises(DataError, match=r"movies\.dat: the file is empty"):
        load_movielens_1m(folder)


def test_1m_utf8_is_not_assumed(tmp_path):
    # the release is Latin-1; a UTF-8 copy reads as mojibake, not as an error: say what happens
    folder = write_ml1m(tmp_path)
    (folder / "movies.dat").write_text("\n".join(ML1M_MOVIES) + "\n", encoding="utf-8")
    data = load_movielens_1m(folder)
    assert data.catalog.titles[1] == "MisÃ©rables, Les (1995)"


def test_1m_skip_mode(tmp_path):
    ratings = [*ML1M_RATINGS, "1::3952", "2::1::5::978824268", "1::1::x::978824268"]
    folder = write_ml1m(
        tmp_path, ratings=ratings, movies=[*ML1M_MOVIES, "1::Toy Story again (1995)::Comedy"]
    )
    with pytest.warns(SkippedDataWarning):
        data = load_movielens_1m(folder, on_error="skip")
    assert data.info["skipped"] == {
        "duplicate item id": 1,
        "malformed line": 1,
        "bad value": 1,
        "unknown user": 1,
    }
    assert len(data.interactions) == 4 and data.n_items == 3


# -- MovieLens latest ---------------------------------------------------------------------------
def test_latest_values(tmp_path):
    data = load_movielens_latest(write_ml_latest(tmp_path))
    cat = data.catalog
    assert cat.ids.tolist() == ["1", "11", "193609", "176601"]
    assert cat.titles.tolist() == [
        "Toy Story (1995)",
        "American President, The (1995)",  # quoted in the file: the comma is part of the title
        "Andrew Dice Clay: Dice Rules (1991)",
        "Black Mirror",
    ]
    assert cat.fields["year"][:3].tolist() == [1995.0, 1995.0, 1991.0] and np.isnan(
        cat.fields["year"][3]
    )
    assert cat.fields["genres"].tolist() == [
        ("Adventure", "Animation", "Children", "Comedy", "Fantasy"),
        ("Comedy", "Drama", "Romance"),
        ("Comedy",),
        (),  # "(no genres listed)"
    ]
    # most used first; "funny, clever" is one tag (quoted)
    assert cat.fields["tags"].tolist() == [("pixar",), ("politics", "funny, clever"), (), ()]
    assert cat.fields["imdb_id"].tolist() == ["0114709", "0112346", "0101726", "2085059"]
    assert cat.fields["tmdb_id"].tolist() == ["862", "9087", None, "42269"]
    inter = data.interactions
    assert inter.ratings.tolist() == [4.0, 3.5, 5.0, 0.5]
    assert data.user_ids.tolist() == ["1", "610"]
    assert {"tags", "imdb_id", "tmdb_id"} <= set(cat.descriptions)


def test_latest_without_optional_files(tmp_path):
    folder = write_ml_latest(tmp_path)
    (folder / "tags.csv").unlink()
    data = load_movielens_latest(folder, links=False)
    assert set(data.catalog.fields) == {"year", "genres"}
    assert [p.rsplit("/", 1)[-1] for p in data.info["files"]] == ["ratings.csv", "movies.csv"]


def test_latest_errors(tmp_path):
    movies = [*ML_LATEST_MOVIES, "5,Father of the Bride, Part II (1995),Comedy"]  # unquoted comma
    with pytest.raises(
        DataError, match=r"movies\.csv:6: expected 3 comma-separated fields, found 4"
    ):
        load_movielens_latest(write_ml_latest(tmp_path / "a", movies=movies))
    ratings = ["user,movie,rating,timestamp", "1,1,4.0,964982703"]
    with pytest.raises(DataError, match=r"ratings\.csv:1: the header has no user column 'userId'"):
        load_movielens_latest(write_ml_latest(tmp_path / "b", ratings=ratings))
    tags = [*ML_LATEST_TAGS, "7,999,orphan,1528843890"]
    with pytest.raises(DataError, match=r"tags\.csv:6: movie id '999' is not in movies\.csv"):
        load_movielens_latest(write_ml_latest(tmp_path / "c", tags=tags))
    movies = [*ML_LATEST_MOVIES, '7,"Sabrina (1995),Comedy']  # the quote never closes
    with pytest.raises(DataError, match=r"movies\.csv:6: bad CSV quoting"):
        load_movielens_latest(write_ml_latest(tmp_path / "d", movies=movies))


def test_latest_skip_mode(tmp_path):
    ratings = [*ML_LATEST_RATINGS, "1,1,4.0", "1,2,4.0,964982703"]
    tags = [*ML_LATEST_TAGS, "7,999,orphan,1528843890"]
    with pytest.warns(SkippedDataWarning):
        data = load_movielens_latest(write_ml_latest(tmp_path, ratings, tags=tags), on_error="skip")
    assert data.info["skipped"] == {"unknown item": 2, "malformed line": 1}
    assert len(data.interactions) == 4
