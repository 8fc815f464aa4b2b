"""popularity.v1 and itemknn.v1: role contracts, hand-checked values, save/load, learnability."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recai.baselines import RandomRecommender
from recai.data import Catalog, Dataset, Interactions, leave_one_out, synthetic_dataset
from recai.errors import DataError
from recai.testing import RankerContract, RetrieverContract
from recai.types import ItemList, Query
from recai_classic.itemknn import ItemKNN, cosine_neighbours
from recai_classic.popularity import Popularity


# -- contracts ---------------------------------------------------------------------------------
class TestPopularityRanker(RankerContract):
    name = "popularity.v1"
    distribution = "recai-classic"


class TestPopularityRetriever(RetrieverContract):
    name = "popularity.v1"
    distribution = "recai-classic"


class TestItemKNNRanker(RankerContract):
    name = "itemknn.v1"
    params = {"neighbors": 10, "shrink": 1.0}
    distribution = "recai-classic"


class TestItemKNNRetriever(RetrieverContract):
    name = "itemknn.v1"
    params = {"neighbors": 10}
    distribution = "recai-classic"


class TestItemKNNCandidatePruningRanker(RankerContract):
    name = "itemknn.v1"
    params = {"neighbors": 3, "prune_by": "candidate"}
    distribution = "recai-classic"


# -- a tiny dataset whose similarities can be computed by hand -----------------------------------
def tiny(n_items: int = 4) -> Dataset:
    # user 0: items 0 1 2; user 1: items 0 1; user 2: items 1 3
    users = [0, 0, 0, 1, 1, 2, 2]
    items = [0, 1, 2, 0, 1, 1, 3]
    inter = Interactions(users, items, n_users=3, n_items=n_items, timestamps=np.arange(7))
    cat = Catalog(
        ids=np.array([f"m{i}" for i in range(n_items)], dtype=object),
        titles=np.array([f"M{i}" for i in range(n_items)], dtype=object),
    )
    return Dataset("tiny", cat, inter)


def fit_all(model, data):
    from recai.data import Split

    model.fit(Split(data, data.interactions, None))
    return model


def test_popularity_scores_are_training_counts():
    model = fit_all(Popularity(), tiny())
    np.testing.assert_array_equal(model.score([np.array([2])])[0], [2, 3, 1, 1])
    # ties (items 2 and 3) go to the lower index; seed items are left out of retrieval
    assert model.retrieve(Query(items=ItemList([1])), 3).ids.tolist() == [0, 2, 3]
    assert model.retrieve(Query(user=0), 2, candidates=ItemList([3, 2, 3])).ids.tolist() == [2, 3]


def test_itemknn_similarities_by_hand():
    # n = [2, 3, 1, 1]; c01 = 2, c02 = 1, c12 = 1, c13 = 1
    model = fit_all(ItemKNN(neighbors=10), tiny())
    w = model.similarity.toarray()
    expected = np.zeros((4, 4))
    for i, j, c in [(0, 1, 2), (0, 2, 1), (1, 2, 1), (1, 3, 1)]:
        n = [2, 3, 1, 1]
        expected[i, j] = expected[j, i] = c / np.sqrt(n[i] * n[j])
    np.testing.assert_allclose(w, expected)
    # score of item j = sum of sim(i, j) over the history (repeats count once)
    scores = model.score([np.array([0, 3, 0])])[0]
    np.testing.assert_allclose(scores, expected[0] + expected[3])


def test_itemknn_shrink_and_pruning():
    model = fit_all(ItemKNN(neighbors=1, shrink=1.0), tiny())
    w = model.similarity.toarray()
    assert (np.count_nonzero(w, axis=1) <= 1).all()
    # item 1's best neighbour is item 0: 2 / (sqrt(6) + 1)
    assert w[1, 0] == pytest.approx(2 / (np.sqrt(6) + 1))
    assert w[1].sum() == pytest.approx(w[1, 0])
    # item 2: 1 / (sqrt(2) + 1) to item 0 beats 1 / (sqrt(3) + 1) to item 1
    assert np.flatnonzero(w[2]).tolist() == [0]


def test_itemknn_prune_by_candidate_scores_with_each_candidates_neighbours():
    # neighbors=1: items 1 and 2 keep item 0 as their one neighbour, items 0 and 3 keep item 1
    by_history = fit_all(ItemKNN(neighbors=1), tiny())
    by_candidate = fit_all(ItemKNN(neighbors=1, prune_by="candidate"), tiny())
    w = by_history.similarity.toarray()
    np.testing.assert_array_equal(by_candidate.similarity.toarray(), w)  # same neighbour lists
    hist = [np.array([0]), np.array([1, 3])]
    np.testing.assert_allclose(by_history.score(hist), np.stack([w[0], w[1] + w[3]]))
    np.testing.assert_allclose(by_candidate.score(hist), np.stack([w[:, 0], w[:, 1] + w[:, 3]]))
    # a history of item 0: item 2 keeps 0 as its neighbour, so only pruning by candidate scores it
    assert by_history.score(hist)[0, 2] == 0 and by_candidate.score(hist)[0, 2] > 0
    np.testing.assert_allclose(
        by_candidate.score(hist, np.array([[2, 3], [0, 2]])),
        np.take_along_axis(by_candidate.score(hist), np.array([[2, 3], [0, 2]]), axis=1),
    )
    # items 1 and 2 both keep item 0 as their neighbour: 2 / sqrt(6) > 1 / sqrt(2)
    assert by_candidate.retrieve(Query(items=ItemList([0])), 3).ids.tolist() == [1, 2]
    # with every neighbour kept, both prunings are the same (cosine is symmetric)
    full = [fit_all(ItemKNN(neighbors=10, prune_by=p), tiny()) for p in ("history", "candidate")]
    np.testing.assert_allclose(full[0].score(hist), full[1].score(hist))
    with pytest.raises(ValueError, match="prune_by must be"):
        ItemKNN(prune_by="both")


def test_pruning_breaks_ties_by_lower_index():
    x = np.array([[1, 1, 1, 1]])  # every pair co-occurs once: all similarities equal
    w = cosine_neighbours(x, neighbors=2).toarray()
    assert [np.flatnonzero(r).tolist() for r in w] == [[1, 2], [0, 2], [0, 1], [0, 1]]


def test_itemknn_retrieval_excludes_seeds_and_unrelated_items():
    model = fit_all(ItemKNN(), tiny())
    res = model.retrieve(Query(items=ItemList([3])), 10)
    assert res.ids.tolist() == [1]  # only item 1 co-occurs with 3
    res = model.retrieve(Query(items=ItemList([0])), 10)
    assert res.ids.tolist() == [1, 2]
    assert model.retrieve(Query(user=2), 10).ids.tolist() == [0, 2]
    with pytest.raises(ValueError, match="not by text"):
        model.retrieve(Query(text="space opera"), 3)


def test_out_of_catalog_items_are_refused():
    model = fit_all(ItemKNN(), tiny())
    with pytest.raises(DataError, match="item index 9 is outside the catalog"):
        model.score([np.array([0, 9])])
    with pytest.raises(DataError, match="outside the catalog"):
        fit_all(Popularity(), tiny()).score([np.array([0])], np.array([4]))


def test_unfitted_model_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        ItemKNN().score([np.array([0])])


# -- save / load -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        Popularity,
        lambda: ItemKNN(neighbors=5, shrink=2.0),
        lambda: ItemKNN(neighbors=3, prune_by="candidate"),
    ],
)
def test_save_load_round_trip(make, tmp_path, tiny_split):
    model = make()
    model.fit(tiny_split)
    model.save(tmp_path / "m")
    again = make()
    again.load(tmp_path / "m", dataset=tiny_split.dataset)
    hist = tiny_split.train.histories(range(10))
    np.testing.assert_array_equal(again.score(hist), model.score(hist))
    q = Query(items=ItemList(hist[0][:2]))
    assert again.retrieve(q, 5) == model.retrieve(q, 5)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["n_items"] == tiny_split.dataset.n_items


def test_load_refuses_other_catalog_and_params(tmp_path, tiny_split):
    model = ItemKNN(neighbors=5)
    model.fit(tiny_split)
    model.save(tmp_path / "m")
    with pytest.raises(DataError, match="fitted on a catalog of 25 items"):
        ItemKNN(neighbors=5).load(tmp_path / "m", dataset=synthetic_dataset(n_items=30))
    with pytest.raises(DataError, match="saved with params"):
        ItemKNN(neighbors=6).load(tmp_path / "m")
    with pytest.raises(DataError, match="holds a 'itemknn.v1' model"):
        Popularity().load(tmp_path / "m")
    with pytest.raises(DataError, match="no saved popularity.v1 model"):
        Popularity().load(tmp_path / "nothing")


def test_runtime_caches_the_fit(tmp_path, tiny_split):
    from recai.runtime import RunContext

    ctx = RunContext(tmp_path, progress=False)
    first = ctx.fit(ItemKNN(neighbors=5), tiny_split)
    saved = list((tmp_path / "artifacts").iterdir())
    assert len(saved) == 1 and (saved[0] / "DONE").exists()
    second = RunContext(tmp_path, progress=False).fit(ItemKNN(neighbors=5), tiny_split)
    assert second.similarity is not None
    hist = tiny_split.train.histories(range(5))
    np.testing.assert_array_equal(first.score(hist), second.score(hist))


# -- learnability ------------------------------------------------------------------------------
def hit_at_10(model, split) -> float:
    """Leave-one-out Hit@10 over the test users, history = everything before the test item."""
    data = split.dataset
    hits = []
    for u, target in zip(split.test.users.tolist(), split.test.items.tolist(), strict=True):
        history = data.interactions.history(u)[:-1]
        top = model.rank(history, k=10, user=u)
        hits.append(target in top.ids.tolist())
    return float(np.mean(hits))


def test_itemknn_learns_more_than_popularity_and_chance():
    split = leave_one_out(synthetic_dataset(n_users=300, n_items=60, seed=1))
    scores = {}
    for name, model in [
        ("itemknn", ItemKNN()),
        ("popularity", Popularity()),
        ("random", RandomRecommender(seed=0)),
    ]:
        model.fit(split)
        scores[name] = hit_at_10(model, split)
    n = len(split.test)
    se = np.sqrt(0.25 / n)  # the largest standard error of a hit rate over n users
    assert scores["itemknn"] > scores["popularity"] + 3 * se, scores
    assert scores["itemknn"] > scores["random"] + 3 * se, scores
