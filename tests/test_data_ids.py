"""Looking up external ids: misses answer with a recai error that says what was probably meant."""

from __future__ import annotations

import numpy as np
import pytest

from recai.data import Catalog, Dataset, Interactions, synthetic_dataset
from recai.errors import RecaiError, UnknownIdError


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        ids=np.array(["1", "50", "tt0114709"], dtype=object),
        titles=np.array(["Toy Story (1995)", "Star Wars (1977)", "Heat (1995)"], dtype=object),
    )


def test_an_int_where_the_ids_are_strings_names_the_string(catalog: Catalog) -> None:
    with pytest.raises(UnknownIdError) as caught:
        catalog.index(50)
    assert str(caught.value) == (
        "item id 50 is an int; the catalog's external ids are strings: did you mean '50'?"
    )
    assert caught.value.kind == "item" and caught.value.key == 50
    # numpy scalars and integral floats are the same slip
    with pytest.raises(UnknownIdError, match=r"item id 50 is an int64; .* did you mean '50'\?"):
        catalog.index(np.int64(50))
    with pytest.raises(UnknownIdError, match=r"is a float; .* did you mean '50'\?"):
        catalog.index(50.0)


def test_the_error_is_still_a_key_error(catalog: Catalog) -> None:
    with pytest.raises(KeyError):
        catalog.index(50)
    with pytest.raises(LookupError):
        catalog.index("nope")
    with pytest.raises(RecaiError):  # the CLI prints it without a traceback
        catalog.index("nope")
    try:
        catalog.index("nope")
    except KeyError as e:  # not quoted the way a plain KeyError's message is
        assert str(e).startswith("item id 'nope' is not in the catalog")


def test_an_unknown_string_says_so_with_a_close_match(catalog: Catalog) -> None:
    with pytest.raises(UnknownIdError) as caught:
        catalog.index("tt0114708")
    assert str(caught.value) == (
        "item id 'tt0114708' is not in the catalog (3 items; ids are strings such as '1', '50', "
        "'tt0114709'): did you mean 'tt0114709'?"
    )
    with pytest.raises(UnknownIdError, match=r"did you mean '50' \(without the spaces\)"):
        catalog.index(" 50")
    with pytest.raises(UnknownIdError, match=r"did you mean 'tt0114709'\?"):
        catalog.index("TT0114709")
    with pytest.raises(UnknownIdError) as caught:
        catalog.index("zzz")
    assert str(caught.value).endswith("such as '1', '50', 'tt0114709')")  # no hint to give


def test_a_title_given_as_an_id_is_recognised(catalog: Catalog) -> None:
    with pytest.raises(UnknownIdError, match=r"that is the title of item '50'"):
        catalog.index("star wars (1977)")


def test_an_index_given_as_an_id_is_recognised(catalog: Catalog) -> None:
    with pytest.raises(
        UnknownIdError, match=r"if 2 is already an item index \(0..2\), .* 'tt0114709'"
    ):
        catalog.index(2)


def test_a_str_where_the_ids_are_ints() -> None:
    cat = Catalog(ids=np.array([10, 20, 30]), titles=["a", "b", "c"])
    assert cat.index(20) == 1
    with pytest.raises(UnknownIdError) as caught:
        cat.index("20")
    assert str(caught.value) == (
        "item id '20' is a str; the catalog's external ids are ints: did you mean 20?"
    )


def test_not_an_id_at_all(catalog: Catalog) -> None:
    with pytest.raises(UnknownIdError, match=r"item id \['1', '50'\] is a list, not an id"):
        catalog.index(["1", "50"])


def test_membership(catalog: Catalog) -> None:
    assert "50" in catalog and 50 not in catalog and ["1"] not in catalog


def test_user_ids_are_checked_the_same_way() -> None:
    inter = Interactions([0, 1, 2], [0, 1, 0], n_users=3, n_items=2)
    cat = Catalog(ids=np.array(["a", "b"], dtype=object), titles=["A", "B"])
    data = Dataset("toy", cat, inter, user_ids=np.array(["7", "12", "u3"], dtype=object))
    assert data.user_index("12") == 1
    with pytest.raises(UnknownIdError) as caught:
        data.user_index(12)
    assert str(caught.value) == (
        "user id 12 is an int; dataset toy's external ids are strings: did you mean '12'?"
    )
    assert caught.value.kind == "user"
    with pytest.raises(UnknownIdError, match=r"user id 'u4' is not in dataset toy .*'u3'"):
        data.user_index("u4")


def test_without_user_ids_a_user_id_is_its_index() -> None:
    data = synthetic_dataset(n_users=5, n_items=4)
    plain = Dataset("plain", data.catalog, data.interactions)
    assert plain.user_index(4) == 4
    with pytest.raises(UnknownIdError, match=r"user id 5 is not in dataset plain \(5 users"):
        plain.user_index(5)
    with pytest.raises(UnknownIdError, match=r"is a str; .* external ids are ints: did you mean 4"):
        plain.user_index("4")
