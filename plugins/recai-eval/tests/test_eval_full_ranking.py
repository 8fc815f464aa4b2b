"""ranking.v1 beyond the basics: any split, retrievers, MAP / coverage / novelty / ARP,
bounded memory, chunking invariance, per-user values and the chart."""

from __future__ import annotations

import numpy as np
import pytest

import recai
from recai.baselines import RandomRecommender, SyntheticDataset
from recai.data import (
    Catalog,
    Dataset,
    Interactions,
    leave_one_out,
    random_split,
    synthetic_dataset,
)
from recai.roles import DatasetSource
from recai.runtime import RunContext
from recai.testing import EvaluatorContract
from recai.types import ItemList, Report
from recai_eval.metrics import metric_values, target_ranks
from recai_eval.peruser import load_per_user
from recai_eval.ranking import BYTES_PER_CELL, RankingEvaluator, evaluation_cases

ALL = ["recall", "ndcg", "hit", "mrr", "precision", "map", "coverage", "novelty", "arp"]
PNG = b"\x89PNG\r\n\x1a\n"


class Pop(recai.Ranker):
    """Training popularity plus a small per-user twist (so that lists differ between users)."""

    def __init__(self, twist: float = 0.0):
        self.twist = twist
        self.counts: np.ndarray | None = None
        self.shapes: list[tuple[int, ...]] = []

    def fit(self, split):
        self.counts = split.train.item_counts().astype(np.float64)

    def score(self, histories, items=None, *, users=None):
        n = len(self.counts)
        twist = self.twist * ((np.asarray(users)[:, None] * 7 + np.arange(n)) % 5)
        s = self.counts[None, :] + twist
        self.shapes.append(s.shape)
        if items is None:
            return s
        items = np.asarray(items)
        return s[:, items] if items.ndim == 1 else np.take_along_axis(s, items, axis=1)


class PopRetriever(recai.Retriever):
    """The same ranking as ``Pop(twist)``, as a retriever that does NOT drop the seed items."""

    def __init__(self, twist: float = 0.0):
        self.ranker = Pop(twist)

    def fit(self, split):
        self.ranker.fit(split)

    def retrieve(self, query, k=10, *, candidates=None):
        scores = self.ranker.score([np.zeros(0, dtype=np.int64)], users=np.array([query.user]))[0]
        return ItemList.from_scores(scores, k)


def ctx(tmp_path, seed: int = 0) -> RunContext:
    return RunContext(tmp_path, seed=seed, progress=False)


@pytest.fixture(scope="module")
def source() -> DatasetSource:
    return SyntheticDataset(n_users=300, n_items=120, mean_length=10, seed=3)


# -- contract, with every metric and another split ---------------------------------------------
class TestRankingAllMetrics(EvaluatorContract):
    name = "ranking.v1"
    distribution = "recai-eval"
    required_info = ("dataset", "protocol", "samples", "seed", "catalog_items", "split")

    @pytest.fixture
    def component(self, registry):
        dataset = registry.create("dataset", "synthetic.v1", n_users=40, n_items=30)
        ranker = registry.create("ranker", "random.v1", seed=2)
        return registry.create(
            "evaluator",
            "ranking.v1",
            dataset=dataset,
            models=[ranker],
            bootstrap=50,
            metrics=ALL,
            split="temporal",
            chart=False,
        )

    def test_every_metric_is_reported(self, report: Report) -> None:
        (row,) = report.metrics.values()
        assert list(row) == [
            f"{m}@{k}"
            for m in (
                "Recall",
                "NDCG",
                "Hit",
                "MRR",
                "Precision",
                "MAP",
                "Coverage",
                "Novelty",
                "ARP",
            )
            for k in (10, 20)
        ]
        (ci,) = report.intervals.values()
        assert "Coverage@10" not in ci and "Novelty@10" in ci and "MAP@20" in ci
        assert report.info["split"].startswith("temporal(")


# -- the same numbers whatever the batching ----------------------------------------------------
def test_results_do_not_depend_on_the_memory_budget_or_batch_size(tmp_path, source):
    runs = []
    for memory_mb, batch_size in ((256, 512), (0.01, 512), (256, 7), (0.001, 1)):
        ev = RankingEvaluator(
            source,
            [Pop(twist=0.5), RandomRecommender(seed=1)],
            metrics=ALL,
            bootstrap=100,
            memory_mb=memory_mb,
            batch_size=batch_size,
            chart=False,
        )
        folder = tmp_path / f"m{memory_mb}-{batch_size}"
        report = ev.evaluate(ctx(folder))
        values = load_per_user(folder / report.info["per_user"]).values
        runs.append((report, values, report.info["batch"]))
    first, first_values, _ = runs[0]
    assert {b for *_, b in runs} == {
        "512 users per batch (memory_mb=256)",
        "3 users per batch (memory_mb=0.01)",
        "7 users per batch (memory_mb=256)",
        "1 users per batch (memory_mb=0.001)",
    }
    for report, values, _ in runs[1:]:
        assert report.metrics == first.metrics and report.intervals == first.intervals
        for name in first_values:
            np.testing.assert_array_equal(values[name], first_values[name])


def test_a_million_items_never_make_a_users_by_items_matrix(tmp_path):
    n_items, n_users = 1_000_000, 12
    rng = np.random.default_rng(0)
    data = Dataset(
        "big",
        Catalog(ids=np.arange(n_items), titles=np.full(n_items, "", dtype=object)),
        Interactions(
            np.repeat(np.arange(n_users), 6),
            rng.integers(0, n_items, size=6 * n_users),
            n_users=n_users,
            n_items=n_items,
            timestamps=np.tile(np.arange(6), n_users),
        ),
    )
    model = Pop()
    ev = RankingEvaluator(
        DatasetSource.of(data), [model], k=[10], bootstrap=0, memory_mb=60, chart=False
    )
    report = ev.evaluate(ctx(tmp_path))
    assert report.info["samples"] == 12
    budget = 60 * (1 << 20)
    assert model.shapes and all(b * n * BYTES_PER_CELL <= budget for b, n in model.shapes)
    assert max(b for b, _ in model.shapes) == 2  # 60 MB / (24 B x 10^6 items)


# -- the numbers themselves --------------------------------------------------------------------
def test_leave_one_out_values_equal_the_rank_based_ones(tmp_path, source):
    """The top-k path gives exactly what ranking each target by counting gives."""
    data = source.dataset()
    ev = RankingEvaluator(
        source, [Pop(twist=0.3)], k=[1, 5, 10], metrics=ALL[:6], bootstrap=0, chart=False
    )
    report = ev.evaluate(ctx(tmp_path))
    got = load_per_user(tmp_path / report.info["per_user"])

    split = leave_one_out(data)
    cases = evaluation_cases(split)
    model = Pop(twist=0.3)
    model.fit(split)
    scores = model.score(cases.histories, users=cases.users)
    mask = np.zeros(scores.shape, dtype=bool)
    for b, h in enumerate(cases.histories):
        mask[b, h] = True
    ranks = target_ranks(scores, cases.rel_items, mask)
    expected = metric_values(ranks, [1, 5, 10], ALL[:6])
    assert got.columns == list(expected)
    np.testing.assert_array_equal(got.units, cases.users)
    for j, name in enumerate(got.columns):
        np.testing.assert_array_equal(got.values["Pop"][:, j], expected[name], err_msg=name)


def brute_force(split, model, users, k, target="test"):
    """Loop-by-loop recall, NDCG and coverage for several relevant items per user."""
    held = split.test if target == "test" else split.valid
    seen = np.concatenate([split.train.users, split.valid.users])
    seen_items = np.concatenate([split.train.items, split.valid.items])
    n_items = split.dataset.n_items
    recall, ndcg, listed = [], [], set()
    for u in users.tolist():
        rel = set(held.items[held.users == u].tolist())
        hist = set(seen_items[seen == u].tolist())
        s = model.score([np.array(sorted(hist), dtype=np.int64)], users=np.array([u]))[0]
        items = [i for i in range(n_items) if i not in hist]
        order = sorted(items, key=lambda i: (-s[i], i))[:k]
        listed |= set(order)
        h = [int(i in rel) for i in order]
        recall.append(sum(h) / len(rel))
        dcg = sum(x / np.log2(j + 2) for j, x in enumerate(h))
        ndcg.append(dcg / sum(1 / np.log2(j + 2) for j in range(min(len(rel), k))))
    return np.mean(recall), np.mean(ndcg), len(listed) / n_items


@pytest.mark.parametrize("how", ["random", "temporal"])
def test_several_relevant_items_per_user_against_a_plain_loop(tmp_path, source, how):
    ev = RankingEvaluator(
        source,
        [Pop(twist=0.7)],
        k=[5],
        metrics=["recall", "ndcg", "coverage"],
        bootstrap=0,
        split=how,
        holdout=0.2,
        chart=False,
    )
    report = ev.evaluate(ctx(tmp_path, seed=4))
    data = source.dataset()
    split = ev.make_split(data, 4)
    cases = evaluation_cases(split)
    assert cases.n_relevant.max() > 1  # the point of this test
    assert report.info["relevant_items"] == len(cases.rel_items)
    model = Pop(twist=0.7)
    model.fit(split)
    recall, ndcg, cov = brute_force(split, model, cases.users, 5)
    row = report.metrics["Pop"]
    assert row["Recall@5"] == pytest.approx(recall)
    assert row["NDCG@5"] == pytest.approx(ndcg)
    assert row["Coverage@5"] == pytest.approx(cov)


def test_random_split_uses_the_run_seed(tmp_path, source):
    ev = RankingEvaluator(source, [Pop()], bootstrap=0, split="random", chart=False)
    a = ev.evaluate(ctx(tmp_path, seed=1))
    assert a.info["split"] == random_split(source.dataset(), test=0.1, by="user", seed=1).describe()
    assert ev.evaluate(ctx(tmp_path, seed=2)).info["split"] != a.info["split"]


def test_novelty_and_arp_of_popularity_against_random(tmp_path, source):
    ev = RankingEvaluator(
        source,
        [Pop(), RandomRecommender(seed=3)],
        k=[10],
        metrics=["novelty", "arp", "coverage"],
        bootstrap=0,
        chart=False,
    )
    report = ev.evaluate(ctx(tmp_path))
    pop, rnd = report.metrics["Pop"], report.metrics["RandomRecommender"]
    assert pop["ARP@10"] > rnd["ARP@10"] and pop["Novelty@10"] < rnd["Novelty@10"]
    assert pop["Coverage@10"] < rnd["Coverage@10"]
    # popularity lists the same top items for everyone, minus their history: its lists come
    # from the (10 + longest history) most popular items, and none is more popular than the top 10
    cases = evaluation_cases(leave_one_out(source.dataset()))
    counts = leave_one_out(source.dataset()).train.item_counts()
    longest = max(len(h) for h in cases.histories)
    assert pop["Coverage@10"] <= (10 + longest) / len(counts)
    assert pop["ARP@10"] <= np.sort(counts)[::-1][:10].mean() + 1e-9


# -- retrievers --------------------------------------------------------------------------------
def test_a_retriever_is_evaluated_from_its_list(tmp_path, source):
    """A retriever ranking like a ranker gets the ranker's numbers (history removed from its
    list, which it was asked to make long enough for that)."""
    ev = RankingEvaluator(
        source, [Pop(twist=0.5), PopRetriever(twist=0.5)], metrics=ALL, bootstrap=50, chart=False
    )
    report = ev.evaluate(ctx(tmp_path))
    assert report.metrics["Pop"] == report.metrics["PopRetriever"]
    assert report.intervals["Pop"] == report.intervals["PopRetriever"]
    assert report.info["models"] == {
        "Pop": "scores every item",
        "PopRetriever": "retrieve(k=20 + history)",
    }


def test_via_retrieve_uses_the_retriever_side_of_a_model_with_both(tmp_path, source):
    calls = []

    class Both(Pop, recai.Retriever):
        def retrieve(self, query, k=10, *, candidates=None):
            calls.append((query.user, len(query.items), k))
            return ItemList(np.arange(min(k, len(self.counts))))

    ev = RankingEvaluator(source, [Both()], k=[10], bootstrap=0, via="retrieve", chart=False)
    report = ev.evaluate(ctx(tmp_path))
    assert len(calls) == report.info["samples"]
    # room for the history it drops (at most the whole catalog of 120 items)
    assert all(k >= min(120, 10 + n_seed) for _, n_seed, k in calls)
    assert report.info["models"]["Both"].startswith("retrieve")


def test_a_retriever_with_bad_items_is_named(tmp_path, source):
    class Bad(recai.Retriever):
        def retrieve(self, query, k=10, *, candidates=None):
            return ItemList([10**6])

    ev = RankingEvaluator(source, [Bad()], bootstrap=0, chart=False)
    with pytest.raises(ValueError, match=r"model 'Bad' retrieved items outside 0\.\.119"):
        ev.evaluate(ctx(tmp_path))


def test_models_must_be_rankers_or_retrievers(source):
    with pytest.raises(ValueError, match="not a ranker or retriever"):
        RankingEvaluator(source, [object()])
    with pytest.raises(ValueError, match="not a retriever"):
        RankingEvaluator(source, [Pop()], via="retrieve")
    with pytest.raises(ValueError, match="cannot score"):
        RankingEvaluator(source, [PopRetriever()], via="score")


def test_a_retriever_only_component_fits_a_recipe(recai_pm, tmp_path):
    import recai_eval.plugin

    class Plugin:
        @recai.hookimpl
        def recai_retrievers(self):
            yield recai.ComponentSpec(
                name="pop-retriever.v1", factory=PopRetriever, summary="Popularity retriever."
            )

    recai_pm.register(recai_eval.plugin, name="eval")
    recai_pm.register(Plugin(), name="test-retriever")
    recipe = recai.load_recipe(
        {
            "components": {
                "data": {"use": "synthetic.v1", "params": {"n_users": 50, "n_items": 30}},
                "ret": {"use": "pop-retriever.v1"},
                "eval": {
                    "use": "ranking.v1",
                    "params": {
                        "dataset": "data",
                        "models": ["ret"],
                        "bootstrap": 0,
                        "chart": False,
                    },
                },
            }
        }
    )
    result = recai.run(recipe, tmp_path, pm=recai_pm, progress=False)
    assert result.reports["eval"].info["models"] == {"ret": "retrieve(k=20 + history)"}
    with pytest.raises(recai.RecaiError, match="needs a ranker"):
        bad = recipe.model_copy(deep=True)
        bad.components["eval"].params["models"] = ["data"]
        recai.build(bad, recai_pm)


# -- files: per-user values and the chart ------------------------------------------------------
def test_per_user_values_and_chart_are_written(tmp_path, source):
    ev = RankingEvaluator(source, [Pop(), RandomRecommender()], k=[10], bootstrap=100)
    report = ev.evaluate(ctx(tmp_path))
    per_user = load_per_user(tmp_path / "stages" / "RankingEvaluator.per_user.npz")
    assert report.info["per_user"] == "stages/RankingEvaluator.per_user.npz"
    assert per_user.unit == "user" and len(per_user.units) == report.info["samples"]
    assert per_user.columns == list(report.metrics["Pop"])
    for system, row in report.metrics.items():
        np.testing.assert_allclose(per_user.values[system].mean(axis=0), list(row.values()))
    png = tmp_path / "RankingEvaluator.png"
    assert report.info["chart"] == "RankingEvaluator.png"
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 5_000
    assert any("![RankingEvaluator](RankingEvaluator.png)" in n for n in report.notes)
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary files


def test_outputs_can_be_switched_off(tmp_path, source):
    ev = RankingEvaluator(source, [Pop()], bootstrap=0, per_user=False, chart=False)
    report = ev.evaluate(ctx(tmp_path))
    assert "per_user" not in report.info and "chart" not in report.info
    assert not list(tmp_path.rglob("*.npz")) and not list(tmp_path.rglob("*.png"))


def test_evaluation_cases_collect_distinct_relevant_items():
    data: Dataset = synthetic_dataset(n_users=40, n_items=25, seed=2)
    split = random_split(data, test=0.3, by="user", seed=0)
    cases = evaluation_cases(split)
    for r, u in enumerate(cases.users.tolist()):
        rel = cases.rel_items[cases.rel_indptr[r] : cases.rel_indptr[r + 1]]
        assert rel.tolist() == sorted(set(split.test.items[split.test.users == u].tolist()))
        hist = cases.histories[r].tolist()
        assert sorted(hist) == sorted(
            split.train.items[split.train.users == u].tolist()
            + split.valid.items[split.valid.users == u].tolist()
        )
    assert cases.masked_relevant() == sum(
        len(
            set(cases.rel_items[cases.rel_indptr[r] : cases.rel_indptr[r + 1]].tolist())
            & set(cases.histories[r].tolist())
        )
        for r in range(len(cases))
    )
