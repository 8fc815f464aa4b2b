"""The synthetic generator: seeded, the promised shapes (power laws, sequences, time order), a
catalog with readable unique titles, and the atomic-file writer's format and refusals."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

import recai
from recai.data import Catalog, Dataset, Interactions, leave_one_out, synthetic_dataset
from recai.data.synthetic import write_atomic
from recai.errors import DataError, ParamsError


def arrays(data: Dataset) -> dict[str, np.ndarray]:
    inter, cat = data.interactions, data.catalog
    out = {
        "users": inter.users,
        "items": inter.items,
        "timestamps": inter.timestamps,
        "titles": cat.titles,
        "ids": cat.ids,
    }
    if inter.ratings is not None:
        out["ratings"] = inter.ratings
    out.update({f"field:{k}": np.asarray(v) for k, v in cat.fields.items()})
    return out


# -- seeds -------------------------------------------------------------------------------------
def test_same_seed_same_dataset_other_seed_another():
    kwargs = {"n_users": 200, "n_items": 80, "ratings": True}
    a, b = arrays(synthetic_dataset(seed=7, **kwargs)), arrays(synthetic_dataset(seed=7, **kwargs))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    c = arrays(synthetic_dataset(seed=8, **kwargs))
    for key in ("items", "timestamps", "titles", "field:price", "ratings"):
        assert not np.array_equal(a[key], c[key]), key


def test_defaults_and_the_tiny_test_kit_dataset_stay_small_and_fast():
    start = time.perf_counter()
    data = synthetic_dataset()
    tiny = synthetic_dataset(n_users=30, n_items=25, mean_length=8, name="tiny")
    assert time.perf_counter() - start < 1.0
    assert (data.n_users, data.n_items, len(data.interactions)) == (60, 40, 60 * 12)
    assert (tiny.n_users, tiny.n_items, len(tiny.interactions)) == (30, 25, 240)
    assert tiny.name == "tiny" and data.info["generator"]["seed"] == 0


# -- shapes ------------------------------------------------------------------------------------
def test_sizes_lengths_and_time_order():
    data = synthetic_dataset(n_users=500, n_items=300, mean_length=9, seed=3)
    inter = data.interactions
    assert len(inter) == 500 * 9  # exactly n_users * mean_length
    assert inter.user_counts().min() >= 3  # min_length
    indptr, _, order = inter.csr()
    ts = inter.timestamps[order]
    same_user = np.repeat(np.arange(500), np.diff(indptr))
    step = np.diff(ts)[same_user[1:] == same_user[:-1]]
    assert step.min() >= 1, "timestamps must increase strictly within a user"
    # the file order is already per user and in time order
    assert np.array_equal(order, np.arange(len(inter)))
    first_event = np.datetime64(int(inter.timestamps.min()), "s")
    assert data.catalog.fields["released"].max() < first_event.astype("datetime64[D]")


def top_share(counts: np.ndarray, fraction: float = 0.1) -> float:
    ranked = np.sort(counts)[::-1]
    return float(ranked[: max(1, int(len(ranked) * fraction))].sum() / ranked.sum())


def test_popularity_and_activity_are_heavy_tailed():
    data = synthetic_dataset(n_users=5000, n_items=2000, mean_length=10, seed=1)
    inter = data.interactions
    assert top_share(inter.item_counts()) > 0.5  # top 10% of items: a clear majority of events
    assert top_share(inter.user_counts()) > 0.3  # top 10% of users: three times their share
    flat = synthetic_dataset(
        n_users=5000, n_items=2000, mean_length=10, seed=1,
        popularity_exponent=0.2, activity_exponent=50.0,
    )  # fmt: skip
    assert top_share(flat.interactions.item_counts()) < 0.3
    assert top_share(flat.interactions.user_counts()) < 0.2  # Poisson noise alone gives ~0.15


def next_item_hit_rates(data: Dataset, k: int = 10) -> tuple[float, float]:
    """Hit@k on each user's held-out last item: transition counts from the previous item vs
    popularity, both learnt from the training part of a leave-one-out split."""
    split = leave_one_out(data)
    train = split.train
    indptr, items, _ = train.csr()
    same = np.repeat(np.arange(train.n_users), np.diff(indptr))
    follows = same[1:] == same[:-1]
    n = data.n_items
    pairs = items[:-1][follows] * n + items[1:][follows]
    transitions = np.bincount(pairs, minlength=n * n).reshape(n, n).astype(float)
    popularity = np.bincount(train.items, minlength=n).astype(float)
    top_popular = set(np.argsort(-popularity, kind="stable")[:k].tolist())
    hits_pop, hits_seq = [], []
    for user, target in zip(split.test.users.tolist(), split.test.items.tolist(), strict=True):
        previous = data.interactions.history(user)[-2]
        scores = transitions[previous] + 1e-6 * popularity  # popularity breaks ties
        hits_seq.append(target in set(np.argsort(-scores, kind="stable")[:k].tolist()))
        hits_pop.append(target in top_popular)
    return float(np.mean(hits_pop)), float(np.mean(hits_seq))


def test_sequences_carry_signal_beyond_popularity():
    data = synthetic_dataset(n_users=1500, n_items=400, mean_length=12, seed=2)
    popular, sequential = next_item_hit_rates(data)
    se = np.sqrt(0.25 / data.n_users)  # the largest standard error of a hit rate
    assert sequential > popular + 10 * se, (popular, sequential)
    # without chains the previous item tells little: the gap closes
    shuffled = synthetic_dataset(n_users=1500, n_items=400, mean_length=12, seed=2, p_follow=0.0)
    popular0, sequential0 = next_item_hit_rates(shuffled)
    assert sequential0 < popular0 + 4 * se, (popular0, sequential0)


# -- the catalog -------------------------------------------------------------------------------
def test_catalog_columns_follow_the_conventions():
    data = synthetic_dataset(n_users=200, n_items=3000, seed=4, categories=("a", "b", "c"))
    cat = data.catalog
    titles = cat.titles.tolist()
    assert len(set(titles)) == len(titles), "titles must be unique"
    assert all(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+( \d+)?", t) for t in titles)
    assert any(t[-1].isdigit() for t in titles)  # sequels where an adjective + noun repeats
    assert len(set(cat.ids.tolist())) == len(cat.ids) and cat.ids[0] == "i0"
    assert set(cat.fields["category"].tolist()) == {"a", "b", "c"}
    tags = cat.fields["tags"]
    assert all(isinstance(t, tuple) and 1 <= len(t) <= 3 for t in tags)
    assert all(isinstance(x, str) for t in tags for x in t)
    assert cat.fields["price"].dtype == np.float64 and cat.fields["price"].min() >= 0.99
    assert cat.fields["released"].dtype == np.dtype("datetime64[D]")
    assert set(cat.descriptions) == set(cat.fields)
    # items of one latent cluster share their tags: tags predict the next item's tags
    inter = data.interactions
    same_user = inter.users[1:] == inter.users[:-1]
    first_tag = np.array([t[0] for t in tags.tolist()], dtype=object)
    agree = (first_tag[inter.items[1:]] == first_tag[inter.items[:-1]])[same_user].mean()
    assert agree > 0.3


def test_ratings_are_optional_and_in_range():
    assert synthetic_dataset().interactions.ratings is None
    ratings = synthetic_dataset(n_users=300, ratings=True).interactions.ratings
    assert set(np.unique(ratings).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert len(np.unique(ratings)) >= 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_users": 0},
        {"n_items": 0},
        {"mean_length": 0},
        {"p_follow": 1.5},
        {"taste": -0.1},
        {"cluster_size": 0},
        {"popularity_exponent": 0},
        {"categories": ()},
    ],
)
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        synthetic_dataset(**kwargs)


def test_one_item_one_user_and_no_chains_still_work():
    one = synthetic_dataset(n_users=1, n_items=1, mean_length=4)
    assert one.interactions.items.tolist() == [0, 0, 0, 0]
    always = synthetic_dataset(n_users=20, n_items=30, p_follow=1.0, successors=1)
    assert len(always.interactions) == 240


def test_a_very_active_user_keeps_times_before_2100_in_order():
    # activity_exponent 0.1 puts most events on a few users at ~2 days a session: centuries of
    # history, which Interactions refuses; their gaps are compressed
    from recai.data.interactions import TIME_RANGE

    kw = dict(n_users=2000, n_items=300, mean_length=50, p_follow=0.0, seed=3)
    skewed = synthetic_dataset(activity_exponent=0.1, **kw).interactions
    assert skewed.timestamps.max() < TIME_RANGE[1]
    order = np.lexsort((skewed.timestamps, skewed.users))
    same_user = np.diff(skewed.users[order]) == 0
    assert (np.diff(skewed.timestamps[order])[same_user] >= 0).all()  # order kept per user
    plain = synthetic_dataset(**kw).interactions
    again = synthetic_dataset(**kw).interactions
    assert np.array_equal(plain.timestamps, again.timestamps)


def test_generation_scales_linearly():
    start = time.perf_counter()
    data = synthetic_dataset(n_users=50_000, n_items=20_000, mean_length=10)
    assert len(data.interactions) == 500_000
    assert time.perf_counter() - start < 5.0  # about 0.3 s here; 10^7 events take seconds


# -- the component -----------------------------------------------------------------------------
def test_synthetic_component_takes_the_generator_params(recai_pm):
    data = recai.create(
        "dataset", "synthetic.v1", n_users=50, n_items=20, mean_length=5, p_follow=0.0, ratings=True
    ).dataset()
    assert len(data.interactions) == 250 and data.interactions.ratings is not None
    assert data.info["generator"]["p_follow"] == 0.0
    with pytest.raises(ParamsError, match="p_follow"):
        recai.create("dataset", "synthetic.v1", p_follow=2.0)
    with pytest.raises(ParamsError, match="n_users"):
        recai.create("dataset", "synthetic.v1", n_users=0)


# -- writing atomic files ----------------------------------------------------------------------
def test_write_atomic_format(tmp_path):
    data = synthetic_dataset(n_users=4, n_items=5, mean_length=3, ratings=True, seed=5)
    paths = write_atomic(data, tmp_path / "out", name="toy")
    assert paths == {"inter": tmp_path / "out" / "toy.inter", "item": tmp_path / "out" / "toy.item"}
    lines = paths["inter"].read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    inter = data.interactions
    expected = [
        f"{data.user_ids[u]}\t{data.catalog.ids[i]}\t{int(r)}\t{t}"
        for u, i, r, t in zip(
            inter.users, inter.items, inter.ratings, inter.timestamps, strict=True
        )
    ]
    assert lines[1:] == expected
    items = paths["item"].read_text().splitlines()
    assert items[0] == (
        "item_id:token\ttitle:token_seq\tcategory:token\ttags:token_seq\tprice:float\treleased:token"
    )
    cat = data.catalog
    first = items[1].split("\t")
    assert first[:4] == [
        "i0",
        cat.titles[0],
        cat.fields["category"][0],
        " ".join(cat.fields["tags"][0]),
    ]
    assert float(first[4]) == cat.fields["price"][0] and first[5] == str(cat.fields["released"][0])
    assert len(items) == 1 + data.n_items and not list(tmp_path.glob("out/*.tmp"))


def test_write_atomic_handles_any_dataset(tmp_path):
    catalog = Catalog(
        ids=np.array([10, 20, 30]),
        titles=np.array(["Señor", "B", "C"], dtype=object),
        fields={
            "score": np.array([0.1, np.nan, -2.5]),
            "year": np.array([1999, 2000, 2001]),
            "genre": np.array(["x y", None, "z"], dtype=object),
            "tags": np.array([("a", "b"), (), ("c",)], dtype=object),
            "day": np.array(["2020-01-01", "NaT", "1999-12-31"], dtype="datetime64[D]"),
        },
    )
    inter = Interactions([0, 1, 1], [2, 0, 1], n_users=2, n_items=3, timestamps=[5, 0, 4102444799])
    data = Dataset(
        "any",
        catalog,
        inter,
        user_ids=np.array(["ü", "v"], dtype=object),
        user_fields={"age": np.array([20.5, 30.0])},
    )
    paths = write_atomic(data, tmp_path)
    assert paths["inter"].read_text(encoding="utf-8").splitlines() == [
        "user_id:token\titem_id:token\ttimestamp:float",
        "ü\t30\t5",
        "v\t10\t0",
        "v\t20\t4102444799",
    ]
    assert paths["item"].read_text(encoding="utf-8").splitlines() == [
        "item_id:token\ttitle:token_seq\tscore:float\tyear:float\tgenre:token\ttags:token_seq\tday:token",
        "10\tSeñor\t0.1\t1999\tx y\ta b\t2020-01-01",
        "20\tB\tnan\t2000\t\t\t",
        "30\tC\t-2.5\t2001\tz\tc\t1999-12-31",
    ]
    assert paths["user"].read_text().splitlines() == [
        "user_id:token\tage:float",
        "ü\t20.5",
        "v\t30",
    ]


def test_write_atomic_refuses_what_the_format_cannot_hold(tmp_path):
    def dataset(title: str = "ok", tags: tuple[str, ...] = ("a",)) -> Dataset:
        tag_col = np.empty(1, dtype=object)
        tag_col[0] = tags
        cat = Catalog(ids=["i"], titles=[title], fields={"tags": tag_col})
        return Dataset("bad", cat, Interactions([0], [0], n_users=1, n_items=1))

    with pytest.raises(DataError, match=r"title: 'a\\tb' contains a tab or line break"):
        write_atomic(dataset(title="a\tb"), tmp_path)
    with pytest.raises(DataError, match=r"catalog column 'tags': 'two words' contains a space"):
        write_atomic(dataset(tags=("two words",)), tmp_path)


def test_write_atomic_wide_text_takes_the_string_path(tmp_path):
    long = "A " * 60 + "title"
    cat = Catalog(ids=["a", "b"], titles=[long, "short"])
    data = Dataset("wide", cat, Interactions([0, 0], [1, 0], n_users=1, n_items=2))
    paths = write_atomic(data, tmp_path)
    assert paths["item"].read_text().splitlines()[1:] == [f"a\t{long}", "b\tshort"]
    assert paths["inter"].read_text().splitlines()[1:] == ["0\tb", "0\ta"]
