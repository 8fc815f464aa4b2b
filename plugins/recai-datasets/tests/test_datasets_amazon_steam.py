"""amazon-2018.v1, amazon-2023.v1 and steam.v1 on hand-written files in the real formats."""

from __future__ import annotations

import numpy as np
import pytest
from datasets_files import (
    AMAZON_2018_META,
    AMAZON_2018_REVIEWS,
    AMAZON_2023_META,
    AMAZON_2023_REVIEWS,
    AUSTRALIAN_REVIEWS,
    STEAM_GAMES,
    STEAM_REVIEWS,
    write_lines,
)

from recai.errors import DataError
from recai.testing import DatasetContract
from recai_datasets.amazon import load_amazon_2018, load_amazon_2023
from recai_datasets.problems import SkippedDataWarning
from recai_datasets.steam import load_steam


def amazon_2018(root, reviews=AMAZON_2018_REVIEWS, meta=AMAZON_2018_META):
    r = write_lines(root / "Books.json.gz", reviews, gz=True)
    m = write_lines(root / "meta_Books.json.gz", meta, gz=True)
    return r, m


def amazon_2023(root, reviews=AMAZON_2023_REVIEWS, meta=AMAZON_2023_META):
    return write_lines(root / "All_Beauty.jsonl", reviews), write_lines(
        root / "meta_All_Beauty.jsonl", meta
    )


def steam(root, reviews=STEAM_REVIEWS, games=STEAM_GAMES):
    write_lines(root / "steam_reviews.json.gz", reviews, gz=True, literal=True)
    if games is not None:
        write_lines(root / "steam_games.json.gz", games, gz=True, literal=True)
    return root


class TestAmazon2018(DatasetContract):
    name = "amazon-2018.v1"
    distribution = "recai-datasets"

    @pytest.fixture
    def component(self, entry, tmp_path):
        r, m = amazon_2018(tmp_path)
        return entry.build({"reviews": str(r), "meta": str(m)}, role=self.role)


class TestAmazon2023(DatasetContract):
    name = "amazon-2023.v1"
    distribution = "recai-datasets"

    @pytest.fixture
    def component(self, entry, tmp_path):
        r, m = amazon_2023(tmp_path)
        return entry.build({"reviews": str(r), "meta": str(m)}, role=self.role)


class TestSteam(DatasetContract):
    name = "steam.v1"
    distribution = "recai-datasets"

    @pytest.fixture
    def component(self, entry, tmp_path):
        return entry.build({"path": str(steam(tmp_path))}, role=self.role)


# -- Amazon 2018 -----------------------------------------------------------------------------------
def test_amazon_2018_values(tmp_path):
    data = load_amazon_2018(*amazon_2018(tmp_path))
    cat = data.catalog
    assert cat.ids.tolist() == ["0000013714", "0078764343", "B000000NEW"]
    assert cat.titles.tolist() == [
        "Harry & Sally",
        "0078764343",
        "Never reviewed",
    ]  # unescaped; no title -> id
    assert data.info["items_without_title"] == 1
    np.testing.assert_array_equal(cat.fields["price"], [1299.0, np.nan, np.nan])
    assert data.info["unparsed"] == {"price": 1}  # "$5.00 - $9.00"; "" is just missing
    assert cat.fields["categories"].tolist() == [("Books", "Literature & Fiction"), (), ("Books",)]
    assert cat.fields["brand"].tolist() == ["Penguin", None, None]
    assert cat.fields["main_category"].tolist() == ["Books", "Digital Music", None]  # <img alt=...>
    assert cat.fields["description"].tolist() == ["A story.\nSecond part.", None, None]
    inter = data.interactions
    assert data.user_ids.tolist() == ["A2SUAM1J3GNN3B", "A3HVRXV0LVJN7"]
    assert inter.ratings.tolist() == [5.0, 3.0, 4.0]
    assert inter.timestamps.tolist() == [1252800000, 1252886400, 1262304000]
    assert cat.ids[inter.history(1)].tolist() == ["0078764343", "0000013714"]
    assert "McAuley" in data.info["citation"] and "no licence" in data.info["licence"]


def test_amazon_2018_reviews_only(tmp_path):
    r, _ = amazon_2018(tmp_path)
    data = load_amazon_2018(r)
    assert data.catalog.ids.tolist() == ["0000013714", "0078764343"]
    assert data.catalog.fields == {}


def test_amazon_errors(tmp_path):
    reviews = [*AMAZON_2018_REVIEWS, '{"reviewerID": "A1", "asin": "0000013714", "overall": 5.0']
    with pytest.raises(DataError, match=r"Books\.json\.gz:4: not a JSON object"):
        load_amazon_2018(*amazon_2018(tmp_path / "a", reviews=reviews))
    reviews = [
        *AMAZON_2018_REVIEWS,
        {"reviewerID": "A1", "asin": "0000013714", "unixReviewTime": 1},
    ]
    with pytest.raises(DataError, match=r"Books\.json\.gz:4: the review lacks 'overall'"):
        load_amazon_2018(*amazon_2018(tmp_path / "b", reviews=reviews))
    reviews = [
        *AMAZON_2018_REVIEWS,
        {"reviewerID": "A1", "asin": "X", "overall": 1.0, "unixReviewTime": 1},
    ]
    with pytest.raises(DataError, match=r"Books\.json\.gz:4: item id 'X' is not in the item file"):
        load_amazon_2018(*amazon_2018(tmp_path / "c", reviews=reviews))
    meta = [*AMAZON_2018_META, {"asin": "0000013714", "title": "again"}]
    with pytest.raises(
        DataError, match=r"meta_Books\.json\.gz:4: item id '0000013714' appears again"
    ):
        load_amazon_2018(*amazon_2018(tmp_path / "d", meta=meta))
    reviews = [*AMAZON_2018_REVIEWS, "[1, 2]"]
    with pytest.raises(DataError, match=r"Books\.json\.gz:4: expected a JSON object, found list"):
        load_amazon_2018(*amazon_2018(tmp_path / "e", reviews=reviews))


def test_amazon_skip_mode(tmp_path):
    reviews = [
        *AMAZON_2018_REVIEWS,
        "not json",
        {"reviewerID": "A1", "asin": "X", "overall": 1.0, "unixReviewTime": 1},
        {"reviewerID": "A1", "asin": "0078764343", "overall": "five", "unixReviewTime": 1},
    ]
    meta = [*AMAZON_2018_META, {"asin": "0000013714", "title": "again"}, {"title": "no id"}]
    with pytest.warns(SkippedDataWarning, match=r"/Books\.json\.gz:4: not a JSON object"):
        data = load_amazon_2018(*amazon_2018(tmp_path, reviews, meta), on_error="skip")
    assert data.info["skipped"] == {
        "duplicate item id": 1,
        "missing value": 1,
        "malformed line": 1,
        "bad value": 1,
        "unknown item": 1,
    }
    assert data.catalog.titles[0] == "Harry & Sally"  # the first of a repeated id is kept
    assert len(data.interactions) == 3


# -- Amazon 2023 -----------------------------------------------------------------------------------
def test_amazon_2023_values(tmp_path):
    data = load_amazon_2023(*amazon_2023(tmp_path))
    cat = data.catalog
    assert cat.ids.tolist() == ["B00YQ6X8EO", "B081TJ8YS3"]
    assert cat.titles[1] == "Yes to Tomatoes Detoxifying Charcoal Cleanser"
    np.testing.assert_array_equal(cat.fields["price"], [np.nan, 9.99])  # null -> NaN
    assert cat.fields["main_category"].tolist() == ["All Beauty", "All Beauty"]
    assert cat.fields["categories"].tolist() == [
        (),
        ("Beauty & Personal Care", "Skin Care", "Face"),
    ]
    assert cat.fields["store"].tolist() == ["Howard Products", "Yes To"]
    assert cat.fields["average_rating"].tolist() == [4.8, 4.5]
    assert cat.fields["rating_number"].tolist() == [10.0, 3.0]
    assert cat.fields["release_date"].astype(str).tolist() == ["NaT", "2016-03-05"]
    assert '"UPC": "617390882781"' in cat.fields["details"][0]
    inter = data.interactions
    # milliseconds in the file, seconds here
    assert inter.timestamps.tolist() == [1588687728.923, 1588615855.07, 1589665266.052]
    assert inter.ratings.tolist() == [5.0, 4.0, 1.0]
    u = data.user_ids.tolist().index("AGKHLEW2SOWHNMFQIJGBECAF7INQ")
    assert cat.ids[inter.history(u)].tolist() == ["B081TJ8YS3", "B00YQ6X8EO"]
    assert data.info["unparsed"] == {}


def test_amazon_2023_reviews_of_items_without_metadata(tmp_path):
    reviews = [
        *AMAZON_2023_REVIEWS,
        {"rating": 2.0, "parent_asin": "B0NOMETA", "user_id": "U9", "timestamp": 1600000000000},
    ]
    r, m = amazon_2023(tmp_path, reviews=reviews)
    with pytest.raises(
        DataError, match=r"All_Beauty\.jsonl:4: item id 'B0NOMETA' is not in the item file"
    ):
        load_amazon_2023(r, m)
    with pytest.warns(SkippedDataWarning):
        data = load_amazon_2023(r, m, on_error="skip")
    assert data.info["skipped"] == {"unknown item": 1} and len(data.interactions) == 3
    assert "U9" not in data.user_ids.tolist()


# -- Steam --------------------------------------------------------------------------------------------
def test_steam_values(tmp_path):
    data = load_steam(steam(tmp_path))
    cat = data.catalog
    assert cat.ids.tolist() == ["761140", "328100", "725280"]
    assert cat.titles.tolist() == ["Lost Summoner Kitty", "Real Pool 3D - Poolians", "弹炸人2222"]
    np.testing.assert_array_equal(cat.fields["price"], [4.99, 0.0, 0.99])  # "Free to Play" -> 0
    assert cat.fields["release_date"].astype(str).tolist() == ["2018-01-04", "2017-12-27", "NaT"]
    assert data.info["unparsed"] == {"release_date": 1}  # "Soon.."
    assert cat.fields["genres"][1] == ("Free to Play", "Indie", "Simulation", "Sports")
    assert cat.fields["tags"][0] == ("Strategy", "Action", "Indie", "Casual", "Simulation")
    assert cat.fields["publisher"].tolist() == ["Kotoshiro", "Poolians.com", None]
    assert data.user_ids.tolist() == ["Chaos Syren", "₮ʜᴇ Wᴀʀᴛᴏɴ"]
    inter = data.interactions
    assert inter.ratings is None
    assert inter.timestamps.tolist() == [1513468800, 1514332800, 1513468800]  # days, UTC
    # two reviews on one day keep the file's order
    assert cat.ids[inter.history(0)].tolist() == ["725280", "328100"]
    assert data.info["format"].startswith("steam_reviews")


def test_steam_is_read_with_literal_eval_not_eval(tmp_path):
    reviews = [
        *STEAM_REVIEWS,
        "{'username': __import__('os').system('echo pwned'), 'product_id': '1'}",
    ]
    with pytest.raises(DataError, match=r"steam_reviews\.json\.gz:4: not a Python dict literal"):
        load_steam(steam(tmp_path, reviews=reviews))


def test_steam_reviews_only_and_australian_format(tmp_path):
    data = load_steam(steam(tmp_path / "a", games=None))
    assert data.catalog.ids.tolist() == ["328100", "725280"]
    write_lines(
        tmp_path / "b" / "australian_user_reviews.json.gz",
        AUSTRALIAN_REVIEWS,
        gz=True,
        literal=True,
    )
    data = load_steam(tmp_path / "b")
    assert data.info["format"].startswith("australian_user_reviews")
    assert data.user_ids.tolist() == ["76561197970982479", "js41637"]
    assert data.catalog.ids.tolist() == ["1250", "22200", "251610"]
    assert data.interactions.timestamps.tolist() == [1320451200, 1310688000, 1403568000]


def test_steam_errors_and_skip_mode(tmp_path):
    games = [*STEAM_GAMES, {"app_name": "No id", "price": 1.0}]
    folder = steam(tmp_path / "a", games=games)
    with pytest.raises(DataError, match=r"steam_games\.json\.gz:4: the game has no 'id'"):
        load_steam(folder)
    with pytest.warns(SkippedDataWarning):
        assert load_steam(folder, on_error="skip").info["skipped"] == {"missing value": 1}
    reviews = [*STEAM_REVIEWS, {"username": "x", "product_id": "328100", "date": "someday"}]
    with pytest.raises(
        DataError, match=r"steam_reviews\.json\.gz:4: the review has no usable 'date'"
    ):
        load_steam(steam(tmp_path / "b", reviews=reviews))
    australian = [{"user_id": "u", "reviews": [{"item_id": "1", "posted": "Posted June 24."}]}]
    write_lines(tmp_path / "c" / "australian_user_reviews.json", australian, literal=True)
    with pytest.raises(
        DataError, match=r"australian_user_reviews\.json:1: a review of user 'u' lacks"
    ):
        load_steam(tmp_path / "c")
    with pytest.raises(DataError, match="no review file in the folder"):
        load_steam(tmp_path)
