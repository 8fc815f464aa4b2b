"""recbole-atomic.v1: any RecBole atomic folder, typed columns, the column mapping, errors."""

from __future__ import annotations

import numpy as np
import pytest

from recai.errors import DataError
from recai.testing import DatasetContract
from recai_datasets.problems import SkippedDataWarning
from recai_datasets.recbole import load_atomic

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "u1\tB01\t5\t1500000000\n"
    "u2\tB02\t3.5\t1500000100\n"
    "u1\tB02\t4\t1400000000\n"
)
ITEM = (
    "item_id:token\ttitle:token\tsales_rank:float\tcategories:token_seq\tprice:float\tbrand:token\temb:float_seq\n"
    "B01\tDune Messiah\t120\tBooks Fiction\t9.99\tAce\t0.5 1.5\n"
    "B02\tCooking at Home\t\tBooks\t\t\t\n"
    "B03\tNever Rated\tn/a\tBooks\t1\tAce\t2\n"
)
USER = "user_id:token\tage:float\tcountry:token\nu1\t31\tnl\nu2\t\t\n"


def write(root, name="amazon-books", inter=INTER, item=ITEM, user=USER, kg=None, link=None):
    root.mkdir(parents=True, exist_ok=True)
    for suffix, text in (
        ("inter", inter),
        ("item", item),
        ("user", user),
        ("kg", kg),
        ("link", link),
    ):
        if text is not None:
            (root / f"{name}.{suffix}").write_text(text)
    return root


class TestRecBoleAtomic(DatasetContract):
    name = "recbole-atomic.v1"
    distribution = "recai-datasets"

    @pytest.fixture
    def component(self, entry, tmp_path):
        return entry.build({"path": str(write(tmp_path / "amazon-books"))}, role=self.role)


def test_columns_by_type(tmp_path):
    data = load_atomic(write(tmp_path / "amazon-books"))
    cat = data.catalog
    assert data.name == "amazon-books"
    assert cat.titles.tolist() == ["Dune Messiah", "Cooking at Home", "Never Rated"]
    assert cat.fields["categories"].tolist() == [("Books", "Fiction"), ("Books",), ("Books",)]
    np.testing.assert_array_equal(cat.fields["price"], [9.99, np.nan, 1.0])
    np.testing.assert_array_equal(cat.fields["sales_rank"], [120.0, np.nan, np.nan])
    assert cat.fields["brand"].tolist() == ["Ace", None, "Ace"]
    assert cat.fields["emb"].tolist() == [(0.5, 1.5), (), (2.0,)]
    assert data.info["unparsed"] == {"sales_rank": 1}  # "n/a"; empty fields are just missing
    assert data.info["columns"] == {
        "user": "user_id",
        "item": "item_id",
        "rating": "rating",
        "timestamp": "timestamp",
    }
    assert data.user_ids.tolist() == ["u1", "u2"]
    np.testing.assert_array_equal(data.user_fields["age"], [31.0, np.nan])
    assert data.user_fields["country"].tolist() == ["nl", None]
    inter = data.interactions
    assert inter.ratings.tolist() == [5.0, 3.5, 4.0]
    assert cat.ids[inter.history(0)].tolist() == ["B02", "B01"]  # time order
    assert inter.item_counts().tolist() == [1, 2, 0]  # items without interactions stay


def test_mapping_and_defaults(tmp_path):
    inter = "uid:token\tiid:token\tlabel:float\n1\tx\t1\n2\ty\t0\n"
    folder = write(tmp_path / "d", name="clicks", inter=inter, item=None, user=None)
    data = load_atomic(folder, "clicks", user_field="uid", item_field="iid", rating_field="label")
    assert data.interactions.ratings.tolist() == [1.0, 0.0]
    assert data.interactions.timestamps is None
    assert data.catalog.titles.tolist() == ["x", "y"]  # no item file: titled by id
    with pytest.raises(DataError, match=r"clicks\.inter:1: no timestamp column 'ts' in the header"):
        load_atomic(folder, "clicks", user_field="uid", item_field="iid", timestamp_field="ts")
    with pytest.raises(DataError, match="the header lacks the column"):
        load_atomic(folder, "clicks")  # user_id is not there


def test_knowledge_graph(tmp_path):
    kg = "head_id:token\trelation_id:token\ttail_id:token\ne1\tauthor\te9\ne2\tauthor\te9\n"
    link = "item_id:token\tentity_id:token\nB01\te1\nB03\te2\n"
    data = load_atomic(write(tmp_path / "amazon-books", kg=kg, link=link))
    assert data.kg.entities.tolist() == ["e1", "e2", "e9"]
    assert data.kg.item_entity.tolist() == [0, -1, 1]
    assert data.kg.item_facts(2) == [("author", "e9")]
    assert load_atomic(tmp_path / "amazon-books", kg=False).kg is None


def test_errors(tmp_path):
    with pytest.raises(
        DataError, match="no nothing.inter in the folder; the folder has amazon-books.inter"
    ):
        load_atomic(write(tmp_path / "amazon-books"), "nothing")
    bad = INTER + "u3\tB09\t4\t1\n"
    with pytest.raises(
        DataError, match=r"amazon-books\.inter:5: item id 'B09' is not in the item file"
    ):
        load_atomic(write(tmp_path / "b" / "amazon-books", inter=bad))
    with pytest.raises(DataError, match=r"amazon-books\.inter:1: header field 'user_id:integer'"):
        load_atomic(
            write(tmp_path / "c" / "amazon-books", inter="user_id:integer\titem_id:token\n1\tB01\n")
        )


def test_skip_mode(tmp_path):
    inter = INTER + "u3\tB09\t4\t1\nu1\tB01\t4\n" + "u1\tB03\tnan\t5\n"
    with pytest.warns(SkippedDataWarning):
        data = load_atomic(write(tmp_path / "amazon-books", inter=inter), on_error="skip")
    assert data.info["skipped"] == {
        "malformed line": 1,
        "bad value": 1,
        "unknown item": 1,
    }  # a row counts once
    assert len(data.interactions) == 3
