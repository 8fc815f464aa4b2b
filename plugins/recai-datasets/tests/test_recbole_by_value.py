"""recbole-atomic.v1 reads strictly from the file's bytes, converting each distinct value once;
lenient reading goes line by line and converts each row. Both must give the same dataset, down to
the type of every value, the ``unparsed`` counts and the error messages."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

import recai_datasets.atomic as atomic
from recai.data import Dataset, synthetic_dataset
from recai.data.synthetic import write_atomic
from recai.errors import DataError
from recai_datasets.assemble import factorize
from recai_datasets.atomic import AtomicTable, index_of, numbered_tokens, read_atomic
from recai_datasets.recbole import load_atomic

# -- a dataset with every kind of column and the awkward values each kind meets ------------------
ITEM_HEADER = [
    "item_id:token",
    "title:token_seq",
    "category:token",
    "tags:token_seq",
    "price:float",
    "emb:float_seq",
    "released:token",
]
CATEGORIES = ["drama", "comedy", "", "  ", " padded ", "é", "日本", "a\x00", "a\x00\x00", "x\xa0"]
TAGS = [
    "",
    "a b",
    "a  b",
    "b a a",
    " lead",
    "trail ",
    "sci-fi noir",
    "é ß",
    "a\x00 b",
    "long-tag-" * 3,
]
PRICES = [
    "9.99", "", " ", "nan", "inf", "-inf", "1e3", "n/a", " 5 ", "+3", "-0", ".5", "5.", "-12.75",
    "12345678901234567890", "123456789012345678", "0.1234567890123456", "1_000", "٣", "-",
]  # fmt: skip
EMBEDDINGS = ["0.5 1.5", "", "x 1", "nan", "2", "1  2", "-0 1e-3"]
DATES = ["2011-06-12", "", "1995-05-01", "2012-02-29"]
TITLES = ["Dune  Messiah", "", " Spaced Out ", "Same", "Same", "é t\xa0", "x"]


def write_folder(root: Path, seed: int, *, numbered: bool) -> Path:
    """A RecBole folder ``root/<name>.{inter,item,user,kg,link}`` of random rows (clean
    interactions: lenient reading must skip nothing)."""
    r = random.Random(seed)
    root.mkdir(parents=True)
    name = root.name
    items = [f"i{3 * k + 1}" if numbered else f"B{k:03d}" for k in range(r.randint(20, 60))]
    users = [f"u{2 * k}" if numbered else f"{k}" for k in range(r.randint(5, 25))]
    item_rows = [
        [
            item,
            r.choice(TITLES),
            r.choice(CATEGORIES),
            r.choice(TAGS),
            r.choice(PRICES),
            r.choice(EMBEDDINGS),
            r.choice(DATES),
        ]
        for item in items
    ]
    inter_rows = [
        [
            r.choice(users),
            r.choice(items),
            r.choice(["1", "2.5", "4", "5", "0.25"]),
            str(r.randint(10**8, 2 * 10**9)) + r.choice(["", "", ".5"]),
        ]
        for _ in range(r.randint(50, 200))
    ]
    user_rows = [[u, r.choice(PRICES), r.choice(CATEGORIES), r.choice(TAGS)] for u in users]

    def table(header: list[str], rows: list[list[str]]) -> str:
        return "\t".join(header) + "\n" + "".join("\t".join(row) + "\n" for row in rows)

    (root / f"{name}.item").write_text(table(ITEM_HEADER, item_rows), encoding="utf-8")
    inter_header = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    (root / f"{name}.inter").write_text(table(inter_header, inter_rows), encoding="utf-8")
    user_header = ["user_id:token", "age:float", "country:token", "interests:token_seq"]
    (root / f"{name}.user").write_text(table(user_header, user_rows), encoding="utf-8")
    kg_rows = [["e1", "r", "e2"], ["e2", "r2", "e3"]]
    (root / f"{name}.kg").write_text(
        table(["head_id:token", "relation_id:token", "tail_id:token"], kg_rows)
    )
    (root / f"{name}.link").write_text(
        table(["item_id:token", "entity_id:token"], [[items[0], "e1"]])
    )
    return root


def same(x: object, y: object) -> bool:
    """Equal values of the same type (NaN equals NaN, -0.0 is not 0.0), tuples element-wise."""
    if type(x) is not type(y):
        return False
    if isinstance(x, float):
        return (math.isnan(x) and math.isnan(y)) or (
            x == y and math.copysign(1, x) == math.copysign(1, y)
        )
    if isinstance(x, tuple):
        return len(x) == len(y) and all(same(p, q) for p, q in zip(x, y, strict=True))
    return x == y


def assert_same_array(a: np.ndarray, b: np.ndarray, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    if a.dtype == object:
        bad = [
            i for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)) if not same(x, y)
        ]
        assert not bad, f"{what}: row {bad[0]}: {a[bad[0]]!r} != {b[bad[0]]!r}"
    else:
        assert a.tobytes() == b.tobytes(), what  # bit for bit (NaN, -0.0)


def assert_same_dataset(a: Dataset, b: Dataset) -> None:
    assert a.name == b.name
    assert_same_array(a.catalog.ids, b.catalog.ids, "item ids")
    assert_same_array(a.catalog.titles, b.catalog.titles, "titles")
    assert list(a.catalog.fields) == list(b.catalog.fields)
    for name in a.catalog.fields:
        assert_same_array(a.catalog.fields[name], b.catalog.fields[name], f"item column {name}")
    assert a.catalog.descriptions == b.catalog.descriptions
    for part in ("users", "items", "timestamps", "ratings"):
        x, y = getattr(a.interactions, part), getattr(b.interactions, part)
        assert (x is None) == (y is None), part
        if x is not None:
            assert_same_array(x, y, part)
    assert a.interactions.n_users == b.interactions.n_users
    assert_same_array(a.user_ids, b.user_ids, "user ids")
    assert list(a.user_fields) == list(b.user_fields)
    for name in a.user_fields:
        assert_same_array(a.user_fields[name], b.user_fields[name], f"user column {name}")
    assert a.user_descriptions == b.user_descriptions
    assert list(a.info.items()) == list(b.info.items())  # unparsed counts in the same order too
    assert (a.kg is None) == (b.kg is None)
    if a.kg is not None:
        for part in ("heads", "relations", "tails", "entities", "relation_names", "item_entity"):
            assert_same_array(getattr(a.kg, part), getattr(b.kg, part), f"kg {part}")


@pytest.fixture(params=["vectorised", "small slices", "wide fields", "hash collisions"])
def reading(request, monkeypatch):
    """Every way the strict reading can take: hashing the fields (in slices of the usual size or
    of 3 rows), one string per row (fields too wide to hash), and collisions (all hashes equal)."""
    if request.param == "small slices":
        monkeypatch.setattr(atomic, "_ROWS", 3)
    elif request.param == "wide fields":
        monkeypatch.setattr(atomic, "_HASH_WORDS", 0)
    elif request.param == "hash collisions":
        monkeypatch.setattr(atomic, "_HASH_SEED", np.uint64(0))
        monkeypatch.setattr(atomic, "_HASH_MIX", np.uint64(0))
    return request.param


@pytest.mark.parametrize("numbered", [True, False], ids=["numbered ids", "other ids"])
@pytest.mark.parametrize("seed", [0, 1])
def test_strict_reading_equals_the_line_by_line_reading(tmp_path, reading, numbered, seed):
    folder = write_folder(tmp_path / "shop", seed, numbered=numbered)
    strict = load_atomic(folder)
    lenient = load_atomic(folder, on_error="skip")
    assert strict.info["skipped"] == {} and strict.info["unparsed"]  # the awkward values count
    assert_same_dataset(strict, lenient)


def test_strict_reading_equals_the_line_by_line_reading_without_item_file(tmp_path):
    folder = write_folder(tmp_path / "shop", 3, numbered=True)
    (folder / "shop.item").unlink()
    assert_same_dataset(load_atomic(folder), load_atomic(folder, on_error="skip"))


def test_a_synthetic_dataset_reads_back_the_same_both_ways(tmp_path):
    data = synthetic_dataset(n_users=300, n_items=200, mean_length=8, ratings=True, seed=5)
    write_atomic(data, tmp_path / "synthetic")
    strict = load_atomic(tmp_path / "synthetic")
    assert_same_dataset(strict, load_atomic(tmp_path / "synthetic", on_error="skip"))
    cat = data.catalog
    assert strict.catalog.ids.tolist() == cat.ids.tolist()
    assert strict.catalog.titles.tolist() == cat.titles.tolist()
    assert strict.catalog.fields["tags"].tolist() == cat.fields["tags"].tolist()
    assert strict.catalog.fields["category"].tolist() == cat.fields["category"].tolist()
    np.testing.assert_array_equal(strict.catalog.fields["price"], cat.fields["price"])
    np.testing.assert_array_equal(strict.interactions.ratings, data.interactions.ratings)


def test_typed_item_columns_make_no_string_per_row(tmp_path, monkeypatch):
    """Only the ids become a string per row; repeated categories, tags and dates do not."""
    folder = tmp_path / "shop"
    folder.mkdir()
    rows = [
        f"i{k}\tT{k % 7}\tc{k % 3}\ta b{k % 5}\t{k % 11}.5\t2011-06-{1 + k % 28:02d}"
        for k in range(500)
    ]
    (folder / "shop.item").write_text(
        "\t".join(ITEM_HEADER[:5] + ITEM_HEADER[6:]) + "\n" + "\n".join(rows) + "\n"
    )
    (folder / "shop.inter").write_text("user_id:token\titem_id:token\nu1\ti3\nu2\ti4\n")
    made = []
    real = AtomicTable._strings

    def strings(self, c):
        made.append((self.path.suffix, list(self.types)[c]))
        return real(self, c)

    monkeypatch.setattr(AtomicTable, "_strings", strings)
    data = load_atomic(folder)
    assert made == [(".item", "item_id")]
    assert data.catalog.fields["tags"][6] == ("a", "b1")
    assert data.catalog.fields["tags"][6] is data.catalog.fields["tags"][1]  # shared, not copied


# -- errors are the same ---------------------------------------------------------------------------
def test_unknown_items_name_the_first_line_and_count_the_rest(tmp_path):
    folder = write_folder(tmp_path / "shop", 4, numbered=True)
    inter = folder / "shop.inter"
    lines = inter.read_text().splitlines()
    lines[3] = "u0\ti99999\t4\t100"
    lines[7] = "u0\ti88888\t4\t100"
    lines[9] = "u0\ti99999\t4\t100"
    inter.write_text("\n".join(lines) + "\n")
    message = r"shop\.inter:4: item id 'i99999' is not in the item file \(3 line\(s\) name items it lacks\)"
    with pytest.raises(DataError, match=message):
        load_atomic(folder)
    user = folder / "shop.user"  # a bad user file is found first, as before: files in order
    user.write_text(user.read_text() + user.read_text().splitlines()[1] + "\n")
    with pytest.raises(DataError, match=r"shop\.user:\d+: user id 'u0' appears again"):
        load_atomic(folder)


def test_a_bad_rating_is_reported_before_anything_else_in_the_file(tmp_path):
    folder = write_folder(tmp_path / "shop", 5, numbered=False)
    inter = folder / "shop.inter"
    lines = inter.read_text().splitlines()
    lines[5] = "1\tB404\tfour\t100"  # an unknown item too, reported later
    inter.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"shop\.inter:6: column 'rating' must hold numbers, found 'four'"
    ):
        load_atomic(folder)


# -- the pieces ----------------------------------------------------------------------------------
def test_distinct_values_and_their_codes(tmp_path, reading):
    values = ["b", "a\x00", "a", "", "b", "é", "a", "a\x00", "z" * 30, "", "z" * 30 + "!"]
    f = tmp_path / "d.item"
    f.write_text("n:token\tk:token\n" + "".join(f"1\t{v}\n" for v in values), encoding="utf-8")
    texts, codes = read_atomic(f).distinct("k")
    assert [texts[c] for c in codes.tolist()] == values
    assert texts == list(dict.fromkeys(values))  # each once, in the order they first appear
    assert read_atomic(f).distinct("k", [2, 0, 6])[0] == ["a", "b"]


def test_decimals_leave_the_odd_fields_to_python(tmp_path):
    f = tmp_path / "p.item"
    f.write_text("n:token\tp:float\n" + "".join(f"1\t{p}\n" for p in PRICES), encoding="utf-8")
    table = read_atomic(f)
    values, rows = table.decimals("p")
    left = set(rows.tolist())
    for i, text in enumerate(PRICES):
        if i not in left:
            assert values[i] == float(text) and math.copysign(1, values[i]) == math.copysign(
                1, float(text)
            )
    assert table.texts("p", rows) == [PRICES[i] for i in rows.tolist()]
    assert PRICES.index("12345678901234567890") in left  # too many digits for an int64


def test_floats_of_integers_longer_than_an_int64(tmp_path):
    f = tmp_path / "n.inter"
    f.write_text("v:float\n12345678901234567890\n5\n")
    assert read_atomic(f).floats("v").tolist() == [12345678901234567890.0, 5.0]


def test_spaced_sees_every_white_space_python_strips(tmp_path):
    for token, spaced in [
        ("a", False),
        (" a", True),
        ("a\xa0", True),
        ("\u2003a", True),
        ("a b", False),
        ("", False),
    ]:
        f = tmp_path / "s.item"
        f.write_text(f"k:token\tx:token\nz\t1\n{token}\t2\n", encoding="utf-8")
        assert read_atomic(f).spaced("k") is (spaced and token.strip() != token), token


def test_numbered_tokens_and_index_of():
    assert numbered_tokens(["u1", "u20", "u3"])[0] == "u"
    assert numbered_tokens(["1", "20"])[1].tolist() == [1, 20]
    assert numbered_tokens(["u01"]) is None and numbered_tokens(["u1", "v1"]) is None
    assert numbered_tokens(["é1"]) is None and numbered_tokens([1, 2]) is None
    assert index_of(["u3", "u1", "u7"], ["u1", "u3", "u1"]).tolist() == [1, 2, -1]  # later wins
    assert index_of(["x", "u1"], np.array(["u1", "x"], dtype=object)).tolist() == [1, 0]


@pytest.mark.parametrize("prefix", ["", "u", "user-", "a1b"])
def test_factorize_of_numbered_ids_orders_them_as_python_does(prefix):
    rng = np.random.default_rng(len(prefix))
    numbers = rng.integers(0, 10 ** rng.integers(1, 18, 300), dtype=np.int64)
    tokens = [f"{prefix}{n}" for n in numbers.tolist()] + [
        f"{prefix}0",
        f"{prefix}10",
        f"{prefix}1",
    ]
    uniques, codes = factorize(tokens)
    expected = sorted(set(tokens), key=int) if not prefix else sorted(set(tokens))
    assert uniques.tolist() == expected
    assert uniques[codes].tolist() == tokens
