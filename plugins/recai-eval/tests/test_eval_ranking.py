"""ranking.v1 and its metric core: the evaluator contract, hand-computed metrics, chance level."""

from __future__ import annotations

import numpy as np
import pytest

from recai.baselines import RandomRecommender, SyntheticDataset
from recai.data import leave_one_out
from recai.runtime import RunContext
from recai.testing import EvaluatorContract
from recai.types import Report
from recai_eval.metrics import MISSED, bootstrap_intervals, metric_values, target_ranks
from recai_eval.ranking import RankingEvaluator


# -- contract ----------------------------------------------------------------------------------
class TestRankingEvaluator(EvaluatorContract):
    name = "ranking.v1"
    distribution = "recai-eval"
    required_info = ("dataset", "protocol", "samples", "seed", "catalog_items")

    @pytest.fixture
    def component(self, registry):
        dataset = registry.create("dataset", "synthetic.v1", n_users=40, n_items=30)
        ranker = registry.create("ranker", "random.v1", seed=2)
        return registry.create(
            "evaluator", "ranking.v1", dataset=dataset, models=[ranker], bootstrap=50
        )

    def test_reports_every_metric_at_every_k(self, report: Report) -> None:
        (row,) = report.metrics.values()
        assert list(row) == [
            f"{m}@{k}" for m in ("Recall", "NDCG", "Hit", "MRR", "Precision") for k in (10, 20)
        ]
        assert row["Recall@10"] == row["Hit@10"]
        assert row["Precision@10"] == pytest.approx(row["Hit@10"] / 10)
        assert set(report.intervals[next(iter(report.metrics))]) == set(row)
        assert report.info["samples"] == 40 and report.info["catalog_items"] == 30


def test_params_are_checked(recai_pm):
    import recai_eval.plugin
    from recai.errors import ParamsError

    recai_pm.register(recai_eval.plugin, name="eval")
    entry = recai_pm.registry().get("ranking.v1", "evaluator")
    data = SyntheticDataset()
    with pytest.raises(ParamsError, match="models"):
        entry.build({"dataset": data, "models": []})
    with pytest.raises(ParamsError, match=r"metrics\[0\]"):
        entry.build({"dataset": data, "models": [RandomRecommender()], "metrics": ["auc"]})
    with pytest.raises(ParamsError, match=r"k\[0\]"):
        entry.build({"dataset": data, "models": [RandomRecommender()], "k": [0]})
    with pytest.raises(ParamsError, match="target"):
        entry.build({"dataset": data, "models": [RandomRecommender()], "target": "train"})
    ok = entry.build({"dataset": data, "models": [RandomRecommender()]})
    assert ok.k == [10, 20] and ok.metrics == ["recall", "ndcg", "hit", "mrr", "precision"]


# -- the metric core, by hand ------------------------------------------------------------------
def test_target_ranks_by_hand():
    scores = np.array(
        [
            [
                0.1,
                0.9,
                0.5,
                0.3,
                0.5,
            ],  # target 2 (0.5): 1 above, item 4 ties but has a higher index
            [0.5, 0.9, 0.5, 0.3, 0.5],  # target 2 (0.5): 1 and 0 above (0 ties, lower index)
            [0.1, 0.9, 0.5, 0.3, 0.5],  # target 4: 1, 2 above; item 1 masked -> rank 1
            [0.1, 0.9, 0.5, 0.3, 0.5],  # target 1 masked -> never found
        ]
    )
    mask = np.zeros_like(scores, dtype=bool)
    mask[2, 1] = mask[3, 1] = True
    ranks = target_ranks(scores, np.array([2, 2, 4, 1]), mask)
    assert ranks.tolist() == [1, 2, 1, MISSED]
    assert target_ranks(scores[:1], np.array([1])).tolist() == [0]


def test_target_ranks_accept_minus_inf_and_refuse_nan():
    scores = np.array([[-np.inf, 1.0, -np.inf]])
    # item 1 scores higher; item 0 ties at -inf and has the lower index
    assert target_ranks(scores, np.array([2])).tolist() == [2]
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(np.array([[np.nan, 1.0]]), np.array([1]))
    # NaN on a masked item does not matter
    assert target_ranks(
        np.array([[np.nan, 1.0]]), np.array([1]), np.array([[True, False]])
    ).tolist() == [0]


def test_metric_values_by_hand():
    ranks = np.array([0, 1, 4, 9, 10, MISSED])
    v = metric_values(ranks, [1, 5, 10], ["hit", "recall", "ndcg", "mrr", "precision"])
    np.testing.assert_array_equal(v["Hit@1"], [1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(v["Hit@5"], [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(v["Hit@10"], [1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(v["Recall@10"], v["Hit@10"])
    np.testing.assert_allclose(v["NDCG@5"], [1, 1 / np.log2(3), 1 / np.log2(6), 0, 0, 0])
    np.testing.assert_allclose(
        v["NDCG@10"], [1, 1 / np.log2(3), 1 / np.log2(6), 1 / np.log2(11), 0, 0]
    )
    np.testing.assert_allclose(v["MRR@10"], [1, 1 / 2, 1 / 5, 1 / 10, 0, 0])
    np.testing.assert_allclose(v["Precision@5"], [0.2, 0.2, 0.2, 0, 0, 0])
    # a masked target is a miss even when k exceeds the catalog
    assert metric_values(np.array([MISSED]), [10**6], ["hit"])["Hit@1000000"].tolist() == [0.0]


def test_ndcg_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 50))  # continuous: no ties, where sklearn averages
    targets = rng.integers(0, 50, size=200)
    ranks = target_ranks(scores, targets)
    relevance = np.zeros_like(scores)
    relevance[np.arange(200), targets] = 1.0
    for k in (1, 5, 10, 20):
        ours = metric_values(ranks, [k], ["ndcg"])[f"NDCG@{k}"]
        theirs = [
            sklearn_metrics.ndcg_score(relevance[i : i + 1], scores[i : i + 1], k=k)
            for i in range(200)
        ]
        np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_ranks_agree_with_a_full_sort():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=(50, 30)).astype(float)  # many ties
    mask = rng.random((50, 30)) < 0.2
    targets = rng.integers(0, 30, size=50)
    ranks = target_ranks(scores, targets, mask)
    for b in range(50):
        if mask[b, targets[b]]:
            assert ranks[b] == MISSED
            continue
        items = np.flatnonzero(~mask[b])
        order = items[np.lexsort((items, -scores[b, items]))]  # best first, ties by lower index
        assert ranks[b] == int(np.flatnonzero(order == targets[b])[0])


def test_bootstrap_intervals_cover_the_mean_and_are_seeded():
    rng = np.random.default_rng(0)
    values = (rng.random((500, 2)) < [0.1, 0.5]).astype(float)
    low, high = bootstrap_intervals(values, 400, seed=3)
    mean = values.mean(axis=0)
    assert np.all(low < mean) and np.all(mean < high)
    # width near 2 * 1.96 * binomial standard error
    se = np.sqrt(mean * (1 - mean) / 500)
    np.testing.assert_allclose(high - low, 2 * 1.96 * se, rtol=0.25)
    again = bootstrap_intervals(values, 400, seed=3)
    np.testing.assert_array_equal(low, again[0])
    assert not np.array_equal(low, bootstrap_intervals(values, 400, seed=4)[0])


# -- the protocol ------------------------------------------------------------------------------
class Oracle(RandomRecommender):
    """Knows every user's held-out test item: scores it highest (checks what the evaluator asks)."""

    def __init__(self, split):
        super().__init__(seed=0, n_items=split.dataset.n_items)
        self.answer = dict(zip(split.test.users.tolist(), split.test.items.tolist(), strict=True))
        self.valid = dict(zip(split.valid.users.tolist(), split.valid.items.tolist(), strict=True))
        self.seen: list[tuple[int, list[int]]] = []

    def fit(self, split):
        pass

    def score(self, histories, items=None, *, users=None):
        out = super().score(histories, items, users=users)
        for b, u in enumerate(users.tolist()):
            self.seen.append((u, histories[b].tolist()))
            out[b, self.answer[u]] = 2.0
        return out


def test_histories_targets_and_masks(tmp_path):
    source = SyntheticDataset(n_users=50, n_items=30, seed=4)
    data = source.dataset()
    split = leave_one_out(data)
    oracle = Oracle(split)
    ev = RankingEvaluator(source, [oracle], k=[1], metrics=["hit"], bootstrap=0, batch_size=7)
    report = ev.evaluate(RunContext(tmp_path, progress=False))
    row = report.metrics["Oracle"]
    # the test item is found first, unless it repeats an item of the history (then it is masked)
    repeats = sum(int(t in data.interactions.history(u)[:-1]) for u, t in oracle.answer.items())
    assert row["Hit@1"] == pytest.approx(1 - repeats / len(oracle.answer))
    assert len(oracle.seen) == 50
    for u, hist in oracle.seen:
        assert hist == data.interactions.history(u)[:-1].tolist()  # train + valid, in time order
    assert "train+valid items masked" in report.info["protocol"]

    oracle.seen.clear()
    ev = RankingEvaluator(source, [oracle], k=[1], metrics=["hit"], bootstrap=0, target="valid")
    report = ev.evaluate(RunContext(tmp_path, progress=False))
    for u, hist in oracle.seen:
        assert hist == data.interactions.history(u)[:-2].tolist()  # train only
    # the oracle pushes the *test* item, so on the valid target it is no better than chance
    assert report.metrics["Oracle"]["Hit@1"] < 0.5


def test_max_users_samples_with_the_seed(tmp_path):
    source = SyntheticDataset(n_users=60, n_items=30)
    ev = RankingEvaluator(source, [RandomRecommender(seed=1)], bootstrap=0, max_users=20)
    a = ev.evaluate(RunContext(tmp_path, seed=5, progress=False))
    b = ev.evaluate(RunContext(tmp_path, seed=5, progress=False))
    assert a.info["samples"] == 20 and a.info["users_with_target"] == 60
    assert a.metrics == b.metrics
    assert any("sample of 20 of 60" in n for n in a.notes)


def test_a_model_with_the_wrong_shape_is_named(tmp_path):
    class Short(RandomRecommender):
        def score(self, histories, items=None, *, users=None):
            return super().score(histories, items, users=users)[:, :-1]

    ev = RankingEvaluator(SyntheticDataset(), [Short()], bootstrap=0)
    with pytest.raises(ValueError, match=r"model 'Short' returned scores of shape \(\d+, 39\)"):
        ev.evaluate(RunContext(tmp_path, progress=False))


def test_random_ranker_is_at_chance_level(tmp_path):
    """Random Hit@10 is the mean over users of 10 / (unmasked items); 0 for a masked target."""
    source = SyntheticDataset(n_users=3000, n_items=200, mean_length=12, seed=7)
    data = source.dataset()
    ev = RankingEvaluator(
        source, [RandomRecommender(seed=11)], k=[10], metrics=["hit"], bootstrap=0
    )
    report = ev.evaluate(RunContext(tmp_path, progress=False))
    observed = report.metrics["RandomRecommender"]["Hit@10"]

    split = leave_one_out(data)
    p = []
    for u, t in zip(split.test.users.tolist(), split.test.items.tolist(), strict=True):
        hist = set(data.interactions.history(u)[:-1].tolist())
        p.append(
            0.0 if t in hist else min(10, data.n_items - len(hist)) / (data.n_items - len(hist))
        )
    p = np.asarray(p)
    expected = p.mean()
    se = np.sqrt((p * (1 - p)).sum()) / len(p)
    assert abs(observed - expected) < 4 * se, (observed, expected, se)


# -- hostile params: refused up front by check, with the key (issue 17, item 3) ----------------------
HOSTILE_RANKING = [
    ("k = [1000000000000]", "components.ranking.params.k[0]", "less than or equal to 100000"),
    ("k = [10, 0]", "components.ranking.params.k[1]", "greater than or equal to 1"),
    ("k = [" + ", ".join(str(i) for i in range(1, 40)) + "]", "params.k", "at most 32 items"),
    ("memory_mb = inf", "components.ranking.params.memory_mb", "finite"),
    ("memory_mb = nan", "components.ranking.params.memory_mb", "finite"),
    ("memory_mb = 1e300", "components.ranking.params.memory_mb", "less than or equal to"),
    ("memory_mb = -1.0", "components.ranking.params.memory_mb", "greater than 0"),
    ("batch_size = 9223372036854775807", "params.batch_size", "less than or equal to 1000000"),
    ("bootstrap = 1000000000", "components.ranking.params.bootstrap", "less than or equal"),
    ("threads = 100000000", "components.ranking.params.threads", "less than or equal to 1024"),
    ("holdout = nan", "components.ranking.params.holdout", "finite"),
    ("max_users = 99999999999999999999999", "params.max_users", "64 bits"),
]


@pytest.mark.parametrize(("param", "key", "message"), HOSTILE_RANKING)
def test_hostile_ranking_params_are_refused_by_check_and_run_alike(
    recai_pm, tmp_path, capsys, param, key, message
):
    import time

    import recai_eval.plugin
    from recai import cli

    recai_pm.register(recai_eval.plugin, name="eval")
    path = tmp_path / "hostile.toml"
    path.write_text(
        '[components.data]\nuse = "synthetic.v1"\nparams = { n_users = 30 }\n'
        '[components.rnd]\nuse = "random.v1"\n'
        '[components.ranking]\nuse = "ranking.v1"\n'
        f'params = {{ dataset = "data", models = ["rnd"], chart = false, {param} }}\n'
    )
    texts = []
    for args in (["recipe", "check", str(path)], ["run", str(path), "--out", str(tmp_path / "o")]):
        start = time.perf_counter()
        code = cli.main(args)
        took = time.perf_counter() - start
        out, err = capsys.readouterr()
        assert code == 2, out + err
        assert key in err and message in err and "(line 8)" in err, err
        assert "Traceback" not in err and "bug in" not in err
        assert took < 2.0
        texts.append(err)
    assert texts[0] == texts[1]
    assert not (tmp_path / "o").exists()


def test_largest_k_runs_and_its_lists_count_against_memory_mb(tmp_path):
    from recai_eval.ranking import BYTES_PER_LIST_CELL, MAX_K, users_per_batch

    data = SyntheticDataset(n_users=30, n_items=25)
    ev = RankingEvaluator(
        data, [RandomRecommender(seed=1)], k=[10, MAX_K], bootstrap=0, chart=False, memory_mb=8
    )
    report = ev.evaluate(RunContext(tmp_path, progress=False))
    row = report.metrics["RandomRecommender"]
    assert row[f"Recall@{MAX_K}"] <= 1.0 and row[f"Hit@{MAX_K}"] >= row["Hit@10"]
    # a k beyond the catalog pads the lists: precision counts the padding as misses
    assert row[f"Precision@{MAX_K}"] <= 1 / MAX_K
    batch = users_per_batch(25, 8, 512, depth=MAX_K)
    assert (
        batch * MAX_K * BYTES_PER_LIST_CELL <= 8 << 20 < (batch + 1) * MAX_K * BYTES_PER_LIST_CELL
    )
    assert report.info["batch"] == f"{batch} users per batch (memory_mb=8)"
