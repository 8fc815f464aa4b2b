"""The top-k metric core: lists, hits, accuracy metrics with several relevant items, coverage,
novelty, popularity bias, paired bootstrap; by hand and against independent implementations."""

from __future__ import annotations

import numpy as np
import pytest

from recai_eval.metrics import (
    arp_values,
    coverage,
    list_hits,
    list_metric_values,
    metric_values,
    novelty_values,
    paired_bootstrap,
    self_information,
    target_ranks,
    top_k,
)

ACC = ["recall", "ndcg", "hit", "mrr", "precision", "map"]


def reference_top_k(scores: np.ndarray, k: int, mask: np.ndarray) -> np.ndarray:
    """Full stable sort per row: best score first, ties by lower index, masked items dropped."""
    out = np.full((len(scores), k), -1)
    for b in range(len(scores)):
        items = np.flatnonzero(~mask[b])
        order = items[np.lexsort((items, -scores[b, items]))][:k]
        out[b, : len(order)] = order
    return out


# -- top_k -------------------------------------------------------------------------------------
def test_top_k_by_hand():
    scores = np.array(
        [
            [0.1, 0.9, 0.5, 0.3, 0.5],  # 1, then the tie 2 / 4 goes to 2
            [0.5, 0.9, 0.5, 0.3, 0.5],  # 1, then 0, 2 (ties by index)
            [0.1, 0.9, 0.5, 0.3, 0.5],  # item 1 masked: 2, 4, 3
        ]
    )
    assert top_k(scores, 3, np.array([2]), np.array([1])).tolist() == [
        [1, 2, 4],
        [1, 0, 2],
        [2, 4, 3],
    ]
    # fewer unmasked items than k: padded with -1
    assert top_k(np.array([[3.0, 2.0, 1.0]]), 4, np.array([0]), np.array([0])).tolist() == [
        [1, 2, -1, -1]
    ]
    # -inf scores are listed last, ties among them by index
    assert top_k(np.array([[-np.inf, 1.0, -np.inf, 0.0]]), 4).tolist() == [[1, 3, 0, 2]]
    # integer scores work, and the input is never modified
    ints = np.array([[1, 3, 2]])
    assert top_k(ints, 2).tolist() == [[1, 2]] and ints.tolist() == [[1, 3, 2]]


def test_top_k_refuses_nan_but_not_on_masked_cells():
    with pytest.raises(ValueError, match="NaN"):
        top_k(np.array([[0.1, np.nan, 0.3]]), 2)
    assert top_k(np.array([[0.1, np.nan, 0.3]]), 2, np.array([0]), np.array([1])).tolist() == [
        [2, 0]
    ]
    # +inf with -inf makes a NaN row sum, but it is no NaN score
    assert top_k(np.array([[np.inf, -np.inf, 0.0]]), 3).tolist() == [[0, 2, 1]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_k_agrees_with_a_full_sort(dtype):
    rng = np.random.default_rng(3)
    for trial in range(20):
        n_rows, n_cols = rng.integers(1, 40), rng.integers(1, 60)
        levels = rng.integers(2, 8) if trial % 2 else 10**6  # many ties, or almost none
        scores = rng.integers(0, levels, size=(n_rows, n_cols)).astype(dtype)
        mask = rng.random((n_rows, n_cols)) < 0.3
        k = int(rng.integers(1, n_cols + 5))
        rows, cols = np.nonzero(mask)
        np.testing.assert_array_equal(
            top_k(scores, k, rows, cols), reference_top_k(scores, k, mask)
        )


def test_top_k_agrees_with_target_ranks():
    """The position of a target in the full list equals its rank computed by counting."""
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 6, size=(60, 25)).astype(float)
    mask = rng.random((60, 25)) < 0.2
    targets = rng.integers(0, 25, size=60)
    mask[np.arange(60), targets] = False
    lists = top_k(scores, 25, *np.nonzero(mask))
    positions = np.argmax(lists == targets[:, None], axis=1)
    np.testing.assert_array_equal(positions, target_ranks(scores, targets, mask))


# -- hits and accuracy metrics -----------------------------------------------------------------
def test_list_metric_values_by_hand():
    # user 0: relevant {1, 5}; list 3, 1, 5, 7 -> hits at positions 2 and 3
    # user 1: relevant {4}; list 4, 0, 2, 9 -> hit at position 1
    # user 2: relevant {6, 8, 9}; list 0, 1, 2, 3 -> no hit
    lists = np.array([[3, 1, 5, 7], [4, 0, 2, 9], [0, 1, 2, 3]])
    hits = list_hits(lists, np.array([0, 2, 3, 6]), np.array([5, 1, 4, 9, 8, 6]))
    assert hits.tolist() == [
        [False, True, True, False],
        [True, False, False, False],
        [False, False, False, False],
    ]
    v = list_metric_values(hits, np.array([2, 1, 3]), [1, 3], ACC)
    np.testing.assert_allclose(v["Hit@1"], [0, 1, 0])
    np.testing.assert_allclose(v["Hit@3"], [1, 1, 0])
    np.testing.assert_allclose(v["Recall@3"], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(v["Precision@3"], [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(v["MRR@3"], [1 / 2, 1, 0])
    np.testing.assert_allclose(v["MRR@1"], [0, 1, 0])
    dcg = 1 / np.log2(3) + 1 / np.log2(4)
    np.testing.assert_allclose(v["NDCG@3"], [dcg / (1 + 1 / np.log2(3)), 1, 0])
    # MAP@3: (P@2 + P@3) / min(2, 3) = (1/2 + 2/3) / 2
    np.testing.assert_allclose(v["MAP@3"], [(1 / 2 + 2 / 3) / 2, 1, 0])
    # at k = 1 the ideal list of user 0 holds one hit: min(R, k) = 1
    np.testing.assert_allclose(v["MAP@1"], [0, 1, 0])


def test_one_relevant_item_gives_the_rank_based_values():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(300, 40))
    targets = rng.integers(0, 40, size=300)
    mask = rng.random((300, 40)) < 0.1
    ranks = target_ranks(scores, targets, mask)
    lists = top_k(scores, 20, *np.nonzero(mask))
    hits = list_hits(lists, np.arange(301), targets)
    from_lists = list_metric_values(hits, np.ones(300), [1, 5, 10, 20], ACC)
    from_ranks = metric_values(ranks, [1, 5, 10, 20], ACC)
    assert list(from_lists) == list(from_ranks)
    for name in from_ranks:
        np.testing.assert_array_equal(from_lists[name], from_ranks[name], err_msg=name)
    np.testing.assert_array_equal(from_ranks["MAP@10"], from_ranks["MRR@10"])


def test_ndcg_with_several_relevant_items_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
    rng = np.random.default_rng(1)
    n_users, n_items = 150, 30
    scores = rng.normal(size=(n_users, n_items))  # continuous: no ties, where sklearn averages
    relevance = (rng.random((n_users, n_items)) < 0.15).astype(float)
    relevance[relevance.sum(axis=1) == 0, 0] = 1.0
    lists = top_k(scores, 20)
    indptr = np.concatenate(([0], np.cumsum(relevance.sum(axis=1)))).astype(np.int64)
    hits = list_hits(lists, indptr, np.nonzero(relevance)[1])
    ours = list_metric_values(hits, relevance.sum(axis=1), [1, 5, 10, 20], ["ndcg"])
    for k in (1, 5, 10, 20):
        theirs = [
            sklearn_metrics.ndcg_score(relevance[i : i + 1], scores[i : i + 1], k=k)
            for i in range(n_users)
        ]
        np.testing.assert_allclose(ours[f"NDCG@{k}"], theirs, atol=1e-12)


def test_precision_recall_map_against_a_plain_loop():
    """An independent, loop-by-loop implementation of RecBole's definitions."""
    rng = np.random.default_rng(2)
    lists = np.stack([rng.permutation(50)[:10] for _ in range(80)])
    relevant = [set(rng.choice(50, size=rng.integers(1, 8), replace=False).tolist()) for _ in lists]
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in relevant])))
    items = np.concatenate([sorted(r) for r in relevant])
    v = list_metric_values(
        list_hits(lists, indptr, items), np.diff(indptr), [5, 10], ["precision", "recall", "map"]
    )
    for b, (row, rel) in enumerate(zip(lists.tolist(), relevant, strict=True)):
        for k in (5, 10):
            h = [int(i in rel) for i in row[:k]]
            assert v[f"Precision@{k}"][b] == pytest.approx(sum(h) / k)
            assert v[f"Recall@{k}"][b] == pytest.approx(sum(h) / len(rel))
            ap = sum(h[j] * sum(h[: j + 1]) / (j + 1) for j in range(k)) / min(len(rel), k)
            assert v[f"MAP@{k}"][b] == pytest.approx(ap)


def test_list_metric_values_refuse_bad_input():
    with pytest.raises(ValueError, match="k = 5 needs more"):
        list_metric_values(np.zeros((2, 3)), np.ones(2), [5], ["hit"])
    with pytest.raises(ValueError, match="at least one relevant"):
        list_metric_values(np.zeros((2, 3)), np.array([1, 0]), [3], ["hit"])
    with pytest.raises(ValueError, match="unknown metric"):
        list_metric_values(np.zeros((2, 3)), np.ones(2), [3], ["coverage"])


# -- beyond accuracy ---------------------------------------------------------------------------
def test_coverage_novelty_and_arp_by_hand():
    lists = np.array([[0, 1, 2], [0, 3, -1], [0, 1, 4]])
    assert coverage(lists, n_items=10, k=1) == pytest.approx(0.1)  # item 0 only
    assert coverage(lists, n_items=10, k=2) == pytest.approx(0.3)  # 0, 1, 3
    assert coverage(lists, n_items=10, k=3) == pytest.approx(0.5)  # 0..4

    counts = np.array([5, 2, 0, 1, 0, 0, 0, 0, 0, 0])  # 8 events over 10 items
    info = self_information(counts)
    np.testing.assert_allclose(info[:4], -np.log2(np.array([6, 3, 1, 2]) / 18))
    nov = novelty_values(lists, 2, counts)
    np.testing.assert_allclose(nov, [(info[0] + info[1]) / 2, (info[0] + info[3]) / 2, nov[0]])
    arp = arp_values(lists, 3, counts)
    np.testing.assert_allclose(arp, [(5 + 2 + 0) / 3, (5 + 1) / 2, (5 + 2 + 0) / 3])
    # an empty list counts 0, not NaN
    assert arp_values(np.array([[-1, -1]]), 2, counts).tolist() == [0.0]
    # popular lists are less novel and more popular
    assert (
        novelty_values(np.array([[0]]), 1, counts)[0]
        < novelty_values(np.array([[2]]), 1, counts)[0]
    )


# -- paired bootstrap --------------------------------------------------------------------------
def test_paired_bootstrap_finds_a_small_consistent_gain():
    rng = np.random.default_rng(4)
    a = rng.random((400, 1))
    b = a + 0.01 + rng.normal(scale=0.005, size=(400, 1))  # tiny but paired gain
    r = paired_bootstrap(a, b, 1000, seed=0)
    assert r["low"][0] > 0 and r["p"][0] < 0.01
    assert r["delta"][0] == pytest.approx(float((b - a).mean()))
    # the unpaired intervals of the two means overlap heavily: pairing is what shows the gain
    same = paired_bootstrap(a, a.copy(), 1000, seed=0)
    assert same["delta"][0] == 0 and same["p"][0] == 1.0
    noise = paired_bootstrap(a, rng.permutation(a), 1000, seed=0)
    assert noise["low"][0] < 0 < noise["high"][0] and noise["p"][0] > 0.05
