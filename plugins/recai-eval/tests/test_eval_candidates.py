"""candidate-ranking.v1: the 1 + N protocol, its chance level, ties, retrievers, sampling info."""

from __future__ import annotations

import math

import numpy as np
import pytest

import recai
from recai.baselines import RandomRecommender, SyntheticDataset
from recai.data import leave_one_out, sample_candidates
from recai.runtime import RunContext
from recai.testing import EvaluatorContract
from recai.types import ItemList, Report
from recai_eval.candidates import CandidateRankingEvaluator, candidate_ranks, chance_values
from recai_eval.peruser import load_per_user


def ctx(tmp_path, seed: int = 0) -> RunContext:
    return RunContext(tmp_path, seed=seed, progress=False)


class Pop(recai.Ranker):
    def fit(self, split):
        self.counts = split.train.item_counts().astype(float)

    def score(self, histories, items=None, *, users=None):
        s = np.tile(self.counts, (len(histories), 1))
        if items is None:
            return s
        items = np.asarray(items)
        return s[:, items] if items.ndim == 1 else np.take_along_axis(s, items, axis=1)


class PopRetriever(recai.Retriever):
    def fit(self, split):
        self.counts = split.train.item_counts().astype(float)

    def retrieve(self, query, k=10, *, candidates=None):
        pool = None if candidates is None else candidates.ids
        return ItemList.from_scores(self.counts, k, candidates=pool)


class TestCandidateRanking(EvaluatorContract):
    name = "candidate-ranking.v1"
    distribution = "recai-eval"
    required_info = ("dataset", "protocol", "samples", "seed", "sampling", "candidates", "chance")

    @pytest.fixture
    def component(self, registry):
        dataset = registry.create("dataset", "synthetic.v1", n_users=40, n_items=60)
        ranker = registry.create("ranker", "random.v1", seed=2)
        return registry.create(
            "evaluator",
            "candidate-ranking.v1",
            dataset=dataset,
            models=[ranker],
            negatives=19,
            bootstrap=50,
            chart=False,
        )

    def test_reports_the_protocol(self, report: Report) -> None:
        (row,) = report.metrics.values()
        assert list(row) == [f"{m}@{k}" for m in ("Hit", "NDCG", "MRR") for k in (1, 5, 10)]
        assert report.info["candidates"] == 20 and report.info["samples"] == 40
        assert report.info["sampling"]["negatives"] == 19
        assert report.info["sampling"]["strategy"] == "uniform"
        assert report.info["sampling"]["seed"] == report.info["seed"] == 0
        assert "1 + 19 candidates" in report.info["protocol"]
        assert report.info["chance"]["Hit@10"] == 0.5


# -- chance level ------------------------------------------------------------------------------
def exact_chance(c: int, k: int) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of Hit, NDCG and MRR at k when the positive's rank is uniform
    on 0..c-1, written out term by term."""
    out = {}
    for name, f in (
        ("Hit", lambda r: 1.0 if r < k else 0.0),
        ("NDCG", lambda r: 1.0 / math.log2(r + 2) if r < k else 0.0),
        ("MRR", lambda r: 1.0 / (r + 1) if r < k else 0.0),
    ):
        values = [f(r) for r in range(c)]
        mean = sum(values) / c
        var = sum((v - mean) ** 2 for v in values) / c
        out[f"{name}@{k}"] = (mean, math.sqrt(var))
    return out


def test_the_chance_level_of_1_plus_19_by_hand():
    e = exact_chance(20, 10)
    assert e["Hit@10"][0] == 0.5
    assert e["NDCG@10"][0] == pytest.approx(0.2272, abs=5e-5)  # the "about 0.227"
    assert e["MRR@10"][0] == pytest.approx(sum(1 / r for r in range(1, 11)) / 20)
    got = chance_values(20, [10], ["hit", "ndcg", "mrr"])
    for name, (mean, _) in e.items():
        assert got[name] == pytest.approx(mean, abs=1e-15)


@pytest.mark.parametrize(
    ("negatives", "strategy", "k"),
    [(19, "uniform", 10), (99, "popularity", 10), (19, "uniform", 1)],
)
def test_a_random_ranker_scores_the_chance_level(tmp_path, negatives, strategy, k):
    source = SyntheticDataset(n_users=3000, n_items=400, mean_length=8, seed=5)
    ev = CandidateRankingEvaluator(
        source,
        [RandomRecommender(seed=9)],
        negatives=negatives,
        strategy=strategy,
        k=[k],
        bootstrap=0,
        chart=False,
        per_user=False,
    )
    report = ev.evaluate(ctx(tmp_path))
    n = report.info["samples"]
    assert n == 3000
    row = report.metrics["RandomRecommender"]
    for name, (mean, sd) in exact_chance(negatives + 1, k).items():
        se = sd / math.sqrt(n)
        assert abs(row[name] - mean) < 4 * se, (name, row[name], mean, se)
        assert report.info["chance"][name] == pytest.approx(mean)


# -- ranks, ties and what is scored ------------------------------------------------------------
def test_candidate_ranks_break_ties_by_item_index_not_by_column():
    scores = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.5, 0.9, 0.1]])
    items = np.array([[5, 9, 7], [5, 2, 7], [5, 2, 7]])
    # row 0: the positive (5) has the lowest index of the tie; row 1: item 2 is before it
    assert candidate_ranks(scores, items).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="NaN"):
        candidate_ranks(np.array([[np.nan, 1.0]]), np.array([[0, 1]]))


def test_a_constant_scorer_is_ranked_by_item_index(tmp_path):
    class Constant(recai.Ranker):
        def score(self, histories, items=None, *, users=None):
            return np.zeros(np.shape(items))

    source = SyntheticDataset(n_users=200, n_items=100, seed=2)
    ev = CandidateRankingEvaluator(
        source, [Constant()], negatives=9, k=[1], metrics=["hit"], bootstrap=0, chart=False
    )
    report = ev.evaluate(ctx(tmp_path, seed=3))
    cands = sample_candidates(leave_one_out(source.dataset()), n_negatives=9, seed=3)
    expected = (cands.items[:, 0] < cands.items[:, 1:].min(axis=1)).mean()
    assert report.metrics["Constant"]["Hit@1"] == pytest.approx(expected)
    assert expected < 0.5  # not the 1.0 that breaking ties by column would give


def test_models_see_each_rows_candidates_and_history(tmp_path):
    source = SyntheticDataset(n_users=80, n_items=90, seed=4)
    data = source.dataset()
    seen = []

    class Oracle(recai.Ranker):
        def score(self, histories, items=None, *, users=None):
            seen.append((users.copy(), items.copy(), [h.copy() for h in histories]))
            return (np.arange(items.shape[1]) == 0)[None, :].repeat(len(items), 0).astype(float)

    ev = CandidateRankingEvaluator(
        source, [Oracle()], negatives=29, k=[1], bootstrap=0, batch_size=16, chart=False
    )
    report = ev.evaluate(ctx(tmp_path, seed=7))
    assert report.metrics["Oracle"]["Hit@1"] == 1.0  # nothing masked: the positive is ranked
    cands = sample_candidates(leave_one_out(data), n_negatives=29, seed=7)
    np.testing.assert_array_equal(np.concatenate([s[1] for s in seen]), cands.items)
    for users, _, hists in seen:
        for u, h in zip(users.tolist(), hists, strict=True):
            assert h.tolist() == data.interactions.history(u)[:-1].tolist()


def test_a_retriever_is_ranked_by_its_list(tmp_path):
    source = SyntheticDataset(n_users=300, n_items=150, seed=6)
    ev = CandidateRankingEvaluator(
        source, [Pop(), PopRetriever()], negatives=19, bootstrap=100, chart=False
    )
    report = ev.evaluate(ctx(tmp_path))
    assert report.metrics["Pop"] == report.metrics["PopRetriever"]
    assert report.info["models"]["PopRetriever"] == "retrieve(candidates=...)"


def test_seed_param_and_sampling_record(tmp_path):
    source = SyntheticDataset(n_users=100, n_items=200, seed=1)
    base = dict(negatives=19, bootstrap=0, chart=False)
    a = CandidateRankingEvaluator(source, [Pop()], **base).evaluate(ctx(tmp_path / "a", seed=1))
    b = CandidateRankingEvaluator(source, [Pop()], seed=1, **base).evaluate(ctx(tmp_path / "b"))
    c = CandidateRankingEvaluator(source, [Pop()], seed=2, **base).evaluate(ctx(tmp_path / "c"))
    assert a.info["sampling"]["seed"] == b.info["sampling"]["seed"] == 1
    assert a.metrics == b.metrics
    assert c.info["sampling"]["seed"] == 2 and c.metrics != a.metrics


def test_per_event_values_and_chart(tmp_path):
    source = SyntheticDataset(n_users=60, n_items=80, seed=1)
    ev = CandidateRankingEvaluator(source, [Pop()], negatives=19, bootstrap=20)
    report = ev.evaluate(ctx(tmp_path))
    values = load_per_user(tmp_path / report.info["per_user"])
    assert values.unit == "event" and len(values.units) == 60
    np.testing.assert_allclose(
        values.values["Pop"].mean(axis=0), list(report.metrics["Pop"].values())
    )
    assert (tmp_path / report.info["chart"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_too_few_items_raise_or_are_dropped_and_counted(tmp_path):
    source = SyntheticDataset(n_users=50, n_items=30, mean_length=12, seed=0)
    ev = CandidateRankingEvaluator(source, [Pop()], negatives=25, k=[5], bootstrap=0, chart=False)
    with pytest.raises(recai.DataError, match="short='drop'"):
        ev.evaluate(ctx(tmp_path))
    ev = CandidateRankingEvaluator(
        source, [Pop()], negatives=25, k=[5], bootstrap=0, short="drop", chart=False
    )
    report = ev.evaluate(ctx(tmp_path))
    dropped = report.info["sampling"]["dropped_rows"]
    assert dropped > 0 and report.info["samples"] == 50 - dropped
    assert any(f"{dropped} held-out events were left out" in n for n in report.notes)


def test_bad_params():
    source = SyntheticDataset()
    with pytest.raises(ValueError, match="exceeds the 20 candidates"):
        CandidateRankingEvaluator(source, [Pop()], negatives=19, k=[50])
    with pytest.raises(ValueError, match="unknown metric"):
        CandidateRankingEvaluator(source, [Pop()], metrics=["coverage"])
