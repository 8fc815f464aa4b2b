"""Filters: implicit-feedback threshold, deduplication, k-core; each reports what it removed.
Also the built-in ``filtered.v1`` dataset component that applies them to another dataset."""

from __future__ import annotations

import numpy as np
import pytest

import recai
from recai.data import (
    Catalog,
    Dataset,
    Interactions,
    KnowledgeGraph,
    apply_filters,
    deduplicate,
    k_core,
    min_rating,
    synthetic_dataset,
)
from recai.errors import DataError, ParamsError
from recai.roles import DatasetSource
from recai.testing import DatasetContract


def make(
    users, items, *, n_users=None, n_items=None, timestamps=None, ratings=None, kg=False
) -> Dataset:
    n_users = n_users if n_users is not None else (max(users) + 1 if users else 0)
    n_items = n_items if n_items is not None else (max(items) + 1 if items else 0)
    catalog = Catalog(
        ids=np.array([f"i{i}" for i in range(n_items)], dtype=object),
        titles=np.array([f"Title {i}" for i in range(n_items)], dtype=object),
        fields={
            "price": np.arange(n_items, dtype=float) * 10,
            "tags": [(f"t{i}",) for i in range(n_items)],  # a plain list column
        },
        descriptions={"price": "price"},
    )
    graph = None
    if kg:  # item i is linked to entity i + 1; entity 0 is a genre
        graph = KnowledgeGraph(
            heads=np.arange(1, n_items + 1),
            relations=np.zeros(n_items, dtype=np.int64),
            tails=np.zeros(n_items, dtype=np.int64),
            entities=np.array(["genre"] + [f"e{i}" for i in range(n_items)], dtype=object),
            relation_names=np.array(["has_genre"], dtype=object),
            item_entity=np.arange(1, n_items + 1),
        )
    inter = Interactions(
        users, items, n_users=n_users, n_items=n_items, timestamps=timestamps, ratings=ratings
    )
    return Dataset(
        name="hand",
        catalog=catalog,
        interactions=inter,
        user_ids=np.array([f"u{u}" for u in range(n_users)], dtype=object),
        user_fields={"age": np.arange(n_users) + 20},
        kg=graph,
        info={"source": "test"},
    )


# -- min_rating ---------------------------------------------------------------------------------


def test_min_rating_keeps_high_ratings_and_reports() -> None:
    data = make([0, 0, 1, 1, 2], [0, 1, 0, 2, 2], ratings=[5, 3, 4, np.nan, 1])
    out, report = min_rating(data, 4)
    assert out.interactions.items.tolist() == [0, 0] and out.interactions.users.tolist() == [0, 1]
    step = report.steps[0]
    assert (step.events_before, step.events_after, step.events_removed) == (5, 2, 3)
    assert (step.users_before, step.users_after) == (3, 2)  # user 2 has no event left
    assert (step.items_before, step.items_after) == (3, 1)
    assert step.users_removed == step.items_removed == 0  # indices stay
    assert out.n_users == 3 and out.n_items == 3
    assert "1 events without a rating" in step.note
    assert out.info["filters"] == [step.to_dict()] and out.info["source"] == "test"
    assert "filters" not in data.info  # the input is untouched
    assert "removed 3 of 5 events" in report.summary()


def test_min_rating_errors() -> None:
    with pytest.raises(DataError, match="needs ratings"):
        min_rating(make([0], [0]), 4)
    with pytest.raises(DataError, match="leaves no interactions.*from 1 to 3"):
        min_rating(make([0, 1], [0, 1], ratings=[1, 3]), 4)


# -- deduplicate --------------------------------------------------------------------------------


def repeated() -> Interactions:
    # user 0 meets item 1 at t=5, t=2 and t=2 again (file rows 0, 2, 3); item 0 once
    return Interactions(
        [0, 0, 0, 0, 1],
        [1, 0, 1, 1, 1],
        n_users=2,
        n_items=2,
        timestamps=[5, 9, 2, 2, 1],
        ratings=[1, 2, 3, 4, 5],
    )


def test_deduplicate_policies() -> None:
    first, report = deduplicate(repeated())
    assert report.steps[0].params == {"keep": "first"}  # the default
    # the earliest event of the pair, the first in the file among equal times (row 2);
    # the kept events stay in file order
    assert first.ratings.tolist() == [2, 3, 5]
    last, _ = deduplicate(repeated(), "last")
    assert last.ratings.tolist() == [1, 2, 5]  # the latest event of the pair (t=5)
    kept, report = deduplicate(repeated(), "none")
    assert len(kept) == 5 and report.steps[0].events_removed == 0
    assert "2 repeated (user, item) events kept" in report.steps[0].note
    _, report = deduplicate(repeated(), "first")
    assert report.steps[0].events_removed == 2 and "2 repeated" in report.steps[0].note
    with pytest.raises(ValueError):
        deduplicate(repeated(), "middle")  # type: ignore[arg-type]


def test_deduplicate_without_timestamps_uses_file_order() -> None:
    inter = Interactions([0, 0, 0], [1, 1, 0], n_users=1, n_items=2, ratings=[1, 2, 3])
    assert deduplicate(inter, "first")[0].ratings.tolist() == [1, 3]
    assert deduplicate(inter, "last")[0].ratings.tolist() == [2, 3]


# -- k_core ---------------------------------------------------------------------------------------


def reference_k_core(users: list[int], items: list[int], k: int) -> set[int]:
    """Rows of the k-core, one removal at a time (slow and obviously right)."""
    alive = set(range(len(users)))
    changed = True
    while changed:
        changed = False
        for r in sorted(alive):
            u_deg = sum(1 for s in alive if users[s] == users[r])
            i_deg = sum(1 for s in alive if items[s] == items[r])
            if u_deg < k or i_deg < k:
                alive.discard(r)
                changed = True
    return alive


def test_k_core_iterates_until_stable() -> None:
    # item 2 has one event; once it goes, user 2 has one event and goes, then item 3 has one...
    users = [0, 0, 1, 1, 2, 2, 3, 3]
    items = [0, 1, 0, 1, 2, 3, 3, 4]
    core, report = k_core(Interactions(users, items, n_users=4, n_items=5), 2)
    assert len(core) == 4 and core.n_users == 2 and core.n_items == 2
    assert report.kept_users.tolist() == [0, 1] and report.kept_items.tolist() == [0, 1]
    step = report.steps[0]
    assert (step.users_removed, step.items_removed, step.events_removed) == (2, 3, 4)
    assert "rounds" in step.note


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_core_matches_a_reference_and_every_degree_reaches_k(seed: int) -> None:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 12, 60).tolist()
    items = rng.zipf(1.6, 60).clip(max=15).tolist()
    inter = Interactions(users, items, n_users=12, n_items=16)
    for k in (2, 3):
        try:
            core, report = k_core(inter, k)
        except DataError:
            assert reference_k_core(users, items, k) == set()
            continue
        assert core.user_counts().min() >= k and core.item_counts().min() >= k
        old_pairs = sorted((users[r], items[r]) for r in reference_k_core(users, items, k))
        new_pairs = sorted(
            zip(
                report.kept_users[core.users].tolist(),
                report.kept_items[core.items].tolist(),
                strict=True,
            )
        )
        assert new_pairs == old_pairs


def test_k_core_subsets_everything_consistently() -> None:
    data = make(
        [0, 0, 1, 1, 2, 3, 3],
        [1, 3, 1, 3, 0, 1, 3],
        n_users=5,  # user 4 has no events
        n_items=5,  # item 2 and 4 have none
        timestamps=[1, 2, 3, 4, 5, 6, 7],
        ratings=[5, 4, 3, 2, 1, 5, 4],
        kg=True,
    )
    out, report = k_core(data, 2)
    users, items = report.kept_users, report.kept_items
    assert users.tolist() == [0, 1, 3] and items.tolist() == [1, 3]
    cat = out.catalog
    assert cat.ids.tolist() == ["i1", "i3"] and cat.titles.tolist() == ["Title 1", "Title 3"]
    assert cat.fields["price"].tolist() == [10.0, 30.0] and cat.fields["tags"] == [("t1",), ("t3",)]
    assert cat.descriptions == {"price": "price"}
    assert out.user_ids.tolist() == ["u0", "u1", "u3"]
    assert out.user_fields["age"].tolist() == [20, 21, 23]
    assert out.kg.item_entity.tolist() == [2, 4]  # the entities of old items 1 and 3
    assert out.kg.item_facts(0) == [("has_genre", "genre")]
    # every kept event maps back to the same external user and item, with its time and rating
    src = data.interactions
    before = {
        (data.user_ids[u], data.catalog.ids[i], t, r)
        for u, i, t, r in zip(src.users, src.items, src.timestamps, src.ratings, strict=True)
    }
    after = out.interactions
    mapped = {
        (out.user_ids[u], out.catalog.ids[i], t, r)
        for u, i, t, r in zip(
            after.users, after.items, after.timestamps, after.ratings, strict=True
        )
    }
    assert mapped <= before and len(mapped) == 6
    assert out.info["filters"][-1]["name"] == "k_core"
    assert (
        out.info["filters"][-1]["users_removed"] == 2
        and out.info["filters"][-1]["items_removed"] == 3
    )


def test_k_core_larger_than_any_degree_is_refused() -> None:
    data = make([0, 0, 1], [0, 1, 1])
    with pytest.raises(
        DataError, match="k_core.*leaves no interactions.*most active user has 2 events"
    ):
        k_core(data, 5)
    with pytest.raises(ValueError):
        k_core(data, 0)


def test_k_core_one_only_compacts() -> None:
    data = make([0, 2], [3, 3], n_users=4, n_items=5)
    out, report = k_core(data, 1)
    assert out.n_users == 2 and out.n_items == 1 and len(out.interactions) == 2
    assert report.steps[0].events_removed == 0


def test_asymmetric_k_core() -> None:
    inter = Interactions([0, 0, 0, 1], [0, 1, 2, 0], n_users=2, n_items=3)
    core, report = k_core(inter, 1, user_k=3, item_k=1)
    assert core.n_users == 1 and len(core) == 3
    assert report.steps[0].params == {"user_k": 3, "item_k": 1}


def test_empty_data_is_refused_by_every_filter() -> None:
    empty = make([], [], n_users=2, n_items=2, ratings=[])
    for call in (
        lambda: k_core(empty, 1),
        lambda: min_rating(empty, 1),
        lambda: deduplicate(empty),
        lambda: deduplicate(empty, "none"),
    ):
        with pytest.raises(DataError, match="leaves no interactions"):
            call()


# -- apply_filters and filtered.v1 ---------------------------------------------------------------


def test_apply_filters_runs_in_recbole_order_and_names_the_result() -> None:
    data = make(
        [0, 0, 0, 1, 1, 2, 2, 2],
        [0, 0, 1, 0, 1, 0, 1, 2],
        timestamps=[1, 2, 3, 4, 5, 6, 7, 8],
        ratings=[5, 1, 4, 5, 4, 2, 5, 5],
    )
    out, report = apply_filters(data, min_rating=4, k_core=2)
    assert [s.name for s in report.steps] == ["deduplicate", "min_rating", "k_core"]
    # the duplicate (0, 0) keeps its first event (rated 5), so user 0 keeps item 0
    assert out.name == "hand|dedup=first,rating>=4,2-core"
    assert [f["name"] for f in out.info["filters"]] == ["deduplicate", "min_rating", "k_core"]
    assert report.steps[0].events_removed == 1 and report.steps[1].events_removed == 1
    assert out.interactions.user_counts().min() >= 2 and out.interactions.item_counts().min() >= 2
    unchanged, report = apply_filters(data, dedup="none")
    assert len(unchanged.interactions) == 8 and len(report.steps) == 1


class TestFilteredDataset(DatasetContract):
    name = "filtered.v1"
    params = {"k_core": 2, "dedup": "first"}
    distribution = "recai"

    @pytest.fixture
    def component(self, entry, dataset_source):
        return entry.build({"source": dataset_source, **self.params})


def test_filtered_component_reports_its_filters(recai_pm) -> None:
    source = DatasetSource.of(synthetic_dataset(n_users=80, n_items=40, seed=2))
    data = recai.create("dataset", "filtered.v1", source=source, k_core=5).dataset()
    steps = data.info["filters"]
    assert [s["name"] for s in steps] == ["deduplicate", "k_core"]
    assert steps[-1]["events_after"] == len(data.interactions)
    assert data.interactions.user_counts().min() >= 5 and data.interactions.item_counts().min() >= 5
    for bad in ({"k_core": 0}, {"dedup": "middle"}, {"min_rating": "high"}, {"k": 3}):
        with pytest.raises(ParamsError):
            recai.create("dataset", "filtered.v1", source=source, **bad)


def test_filtered_component_in_a_recipe(tmp_path, recai_pm) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        'name = "filtered"\n'
        "[components.raw]\n"
        'use = "synthetic.v1"\n'
        "params = { n_users = 50, n_items = 30, seed = 3 }\n"
        "[components.data]\n"
        'use = "filtered.v1"\n'
        'params = { source = "raw", k_core = 3 }\n'
    )
    built = recai.build(recai.load_recipe(recipe))
    data = built["data"].dataset()
    assert data.name.endswith("|dedup=first,3-core")
    assert data.interactions.user_counts().min() >= 3


@pytest.mark.integration
def test_filtered_movielens() -> None:
    raw = recai.create("dataset", "movielens-100k.v1")
    data = recai.create("dataset", "filtered.v1", source=raw, min_rating=4, k_core=5).dataset()
    steps = {s["name"]: s for s in data.info["filters"]}
    assert steps["deduplicate"]["events_removed"] == 0  # MovieLens-100K has no repeated pair
    assert steps["min_rating"]["events_after"] == int(
        (raw.dataset().interactions.ratings >= 4).sum()
    )
    assert steps["k_core"]["events_after"] == len(data.interactions)
    assert data.interactions.user_counts().min() >= 5 and data.interactions.item_counts().min() >= 5
    assert data.n_items == len(data.catalog) < 1682
