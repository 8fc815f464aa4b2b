"""ease.v1, bpr.v1 and sasrec.v1: role contracts, the closed form by hand, determinism, early
stopping, public internals, save/load, learnability on sequential synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recai.baselines import RandomRecommender
from recai.data import Split, leave_one_out, synthetic_dataset
from recai.errors import DataError, RecaiError
from recai.testing import RankerContract, RetrieverContract
from recai.types import ItemList, Query
from recai_classic._training import Parallel, Validator
from recai_classic.bpr import BPR, sample_negatives
from recai_classic.ease import EASE, ease_weights
from recai_classic.popularity import Popularity
from recai_classic.sasrec import SASRec, training_windows

TINY_BPR = {"factors": 8, "epochs": 3, "batch_size": 64}
TINY_SASREC = {"hidden": 8, "blocks": 1, "heads": 2, "max_len": 8, "epochs": 2, "batch_size": 16}


# -- contracts ---------------------------------------------------------------------------------
class TestEASERanker(RankerContract):
    name = "ease.v1"
    params = {"l2": 10.0}
    distribution = "recai-classic"


class TestEASERetriever(RetrieverContract):
    name = "ease.v1"
    params = {"l2": 10.0}
    distribution = "recai-classic"


class TestBPRRanker(RankerContract):
    name = "bpr.v1"
    params = TINY_BPR
    distribution = "recai-classic"


class TestBPRRetriever(RetrieverContract):
    name = "bpr.v1"
    params = TINY_BPR
    distribution = "recai-classic"


class TestSASRecRanker(RankerContract):
    name = "sasrec.v1"
    params = TINY_SASREC
    distribution = "recai-classic"


class TestSASRecBCERanker(RankerContract):
    name = "sasrec.v1"
    params = {**TINY_SASREC, "loss": "bce"}
    distribution = "recai-classic"


class TestSASRecEMARanker(RankerContract):
    name = "sasrec.v1"
    params = {**TINY_SASREC, "ema": 0.9}
    distribution = "recai-classic"


class TestSASRecRetriever(RetrieverContract):
    name = "sasrec.v1"
    params = TINY_SASREC
    distribution = "recai-classic"


# -- EASE ----------------------------------------------------------------------------------------
def test_ease_closed_form_equals_per_item_ridge_regressions():
    """Column j of B is the ridge regression of item j's column on the other items' columns."""
    rng = np.random.default_rng(0)
    x = (rng.random((40, 7)) < 0.35).astype(np.float64)
    lam = 3.0
    b = ease_weights(x, lam)
    for j in range(x.shape[1]):
        others = [i for i in range(x.shape[1]) if i != j]
        a = x[:, others]
        coef = np.linalg.solve(a.T @ a + lam * np.eye(len(others)), a.T @ x[:, j])
        np.testing.assert_allclose(b[others, j], coef, rtol=1e-8, atol=1e-10)
        assert b[j, j] == 0.0


def test_ease_scores_sum_weight_rows_and_refuses_large_catalogs(tiny_split):
    model = EASE(l2=5.0)
    model.fit(tiny_split)
    hist = np.array([3, 1, 3])  # repeats count once
    np.testing.assert_allclose(
        model.score([hist])[0], model.weights[1] + model.weights[3], rtol=1e-6
    )
    np.testing.assert_allclose(model.similarity_row(3), model.weights[3])
    sim = model.similar_items(3, 4)
    assert 3 not in sim.ids.tolist() and np.all(sim.scores > 0)
    with pytest.raises(RecaiError, match=r"dense 25 x 25 item-item matrix.*itemknn.v1"):
        EASE(max_items=20).fit(tiny_split)


# -- BPR -----------------------------------------------------------------------------------------
def test_negatives_are_unseen_items():
    rng = np.random.default_rng(0)
    seen = np.unique(np.array([0 * 10 + i for i in range(9)] + [1 * 10 + 3]))
    users = np.array([0] * 50 + [1] * 50)
    neg = sample_negatives(users, seen, 10, rng)
    assert set(neg[:50].tolist()) == {9}
    assert 3 not in neg[50:].tolist() and len(set(neg[50:].tolist())) > 5


def test_bpr_scores_are_embedding_dot_products(tiny_split):
    model = BPR(**TINY_BPR)
    model.fit(tiny_split)
    u, v = model.user_embeddings(), model.item_embeddings()
    hist = tiny_split.train.histories([2, 5])
    scores = model.score(hist, users=np.array([2, 5]))
    np.testing.assert_allclose(scores, (u[[2, 5]] @ v.T), rtol=1e-5)
    # without a known user the history is folded in: the mean of its item vectors
    folded = model.score([hist[0]])[0]
    np.testing.assert_allclose(folded, v[np.unique(hist[0])].mean(0) @ v.T, rtol=1e-5)
    np.testing.assert_array_equal(model.score([np.array([], dtype=np.int64)]), 0.0)
    # a known user's retrieval excludes the items they trained on
    got = model.retrieve(Query(user=2), 5).ids
    assert not set(got.tolist()) & set(hist[0].tolist())
    assert model.similar_items(0, 3).ids.tolist() == model.similar_items(0, 5).ids[:3].tolist()


# -- SASRec --------------------------------------------------------------------------------------
@pytest.mark.parametrize("stride", [None, 4, 3, 2, 1])
def test_training_windows_make_every_transition_a_target_once(stride):
    hist = [np.arange(10), np.arange(3) + 20, np.array([7])]
    windows, owners, firsts = training_windows(hist, 4, stride)
    # targets: the transitions after each window's context-only part
    pairs = [
        (int(w[t]), int(w[t + 1]))
        for w, f in zip(windows, firsts, strict=True)
        for t in range(f, len(w) - 1)
    ]
    expected = [(a, a + 1) for a in range(9)] + [(20, 21), (21, 22)]
    assert sorted(pairs) == sorted(expected)
    assert all(len(w) <= 5 for w in windows) and set(owners.tolist()) == {0, 1}
    if stride is None:
        assert owners.tolist() == [0, 0, 0, 1] and not firsts.any()
    else:  # a window with a context-only part has exactly its last `stride` transitions as targets
        for w, f in zip(windows, firsts, strict=True):
            if f:
                assert len(w) - 1 - f == stride
    with pytest.raises(ValueError, match="stride"):
        training_windows(hist, 4, 5)


def test_sasrec_scores_are_history_embeddings_dot_items(tiny_split):
    model = SASRec(**TINY_SASREC)
    model.fit(tiny_split)
    hist = tiny_split.train.histories([0, 1, 2])
    reps = model.history_embeddings(hist)
    np.testing.assert_allclose(
        model.score(hist), reps @ model.item_embeddings().T, rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(model.user_embeddings([0, 1, 2]), reps, rtol=1e-6)
    # only the last max_len items are read
    long = np.concatenate([np.arange(20) % 25, hist[0]])
    np.testing.assert_allclose(
        model.score([long]), model.score([long[-TINY_SASREC["max_len"] :]]), rtol=1e-5
    )
    assert model.retrieve(Query(user=0), 3) == model.retrieve(Query(items=ItemList(hist[0])), 3)


# -- shared: determinism, early stopping, save/load ------------------------------------------------
@pytest.mark.parametrize(
    "make", [lambda s: BPR(**TINY_BPR, seed=s), lambda s: SASRec(**TINY_SASREC, seed=s)]
)
def test_training_is_deterministic_under_a_seed(make, tiny_split):
    hist = tiny_split.train.histories(range(5))
    users = np.arange(5)
    a, b, c = make(0), make(0), make(1)
    for m in (a, b, c):
        m.fit(tiny_split)
    np.testing.assert_array_equal(a.score(hist, users=users), b.score(hist, users=users))
    assert a.training_log["curve"] == b.training_log["curve"]
    assert not np.allclose(a.score(hist, users=users), c.score(hist, users=users))


@pytest.mark.parametrize("cls", [BPR, SASRec])
def test_early_stopping_keeps_the_best_epoch(cls, tiny_split):
    params = TINY_BPR if cls is BPR else TINY_SASREC
    # a learning rate too small to change float32 weights: no epoch improves on the first
    still = cls(**{**params, "epochs": 30, "patience": 2, "lr": 1e-12})
    still.fit(tiny_split)
    log = still.training_log
    assert (log["epochs_run"], log["best_epoch"], log["stopped_early"]) == (3, 1, True)
    # a learning model: the parameters kept are those of the best epoch
    model = cls(**{**params, "epochs": 8, "patience": 3})
    model.fit(tiny_split)
    log = model.training_log
    best = max(p["valid"] for p in log["curve"])
    assert log["best_valid"] == pytest.approx(best, abs=1e-6)
    again = Validator(tiny_split, "ndcg", 10)(
        lambda h, u: __import__("torch").from_numpy(model.score(h, users=u)), Parallel()
    )
    assert again == pytest.approx(best, abs=1e-6)


def test_without_validation_events_every_epoch_runs(tiny_dataset):
    split = leave_one_out(tiny_dataset)
    no_valid = Split(tiny_dataset, split.train, split.test, None)
    model = SASRec(**{**TINY_SASREC, "epochs": 3})
    model.fit(no_valid)
    assert model.training_log["epochs_run"] == 3 and model.training_log["metric"] is None


@pytest.mark.parametrize(
    "make",
    [lambda: EASE(l2=7.0), lambda: BPR(**TINY_BPR), lambda: SASRec(**TINY_SASREC)],
    ids=["ease", "bpr", "sasrec"],
)
def test_save_load_round_trip(make, tmp_path, tiny_split):
    model = make()
    model.fit(tiny_split)
    model.save(tmp_path / "m")
    again = make()
    again.load(tmp_path / "m", dataset=tiny_split.dataset)
    hist = tiny_split.train.histories(range(10))
    users = np.arange(10)
    np.testing.assert_allclose(
        again.score(hist, users=users), model.score(hist, users=users), rtol=1e-6
    )
    q = Query(items=ItemList(hist[0][:3]))
    assert again.retrieve(q, 5) == model.retrieve(q, 5)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["data"] == tiny_split.fingerprint() and meta["n_items"] == 25
    if hasattr(model, "training_log") and model.training_log is not None:
        assert again.training_log == meta["training"]
    with pytest.raises(DataError, match="fitted on a catalog of 25 items"):
        make().load(tmp_path / "m", dataset=synthetic_dataset(n_items=30))


def test_load_refuses_other_params(tmp_path, tiny_split):
    model = SASRec(**TINY_SASREC)
    model.fit(tiny_split)
    model.save(tmp_path / "m")
    with pytest.raises(DataError, match="saved with params"):
        SASRec(**{**TINY_SASREC, "hidden": 16}).load(tmp_path / "m")
    with pytest.raises(DataError, match="holds a 'sasrec.v1' model"):
        BPR(**TINY_BPR).load(tmp_path / "m")


def test_unfitted_models_say_so():
    for model in (EASE(), BPR(), SASRec()):
        with pytest.raises(RuntimeError, match="not fitted"):
            model.score([np.array([0])])


def test_out_of_catalog_histories_are_refused(tiny_split):
    model = SASRec(**TINY_SASREC)
    model.fit(tiny_split)
    with pytest.raises(DataError, match="item index 99 is outside the catalog"):
        model.score([np.array([0, 99])])


# -- learnability ----------------------------------------------------------------------------------
def hit_at_10(model, split) -> float:
    """Leave-one-out Hit@10 over the test users; history = everything before the test item."""
    data = split.dataset
    users = split.test.users
    hist = [data.interactions.history(u)[:-1] for u in users.tolist()]
    scores = model.score(hist, users=users)
    hits = []
    for r, target in enumerate(split.test.items.tolist()):
        scores[r, hist[r]] = -np.inf
        top = np.argsort(-scores[r], kind="stable")[:10]
        hits.append(target in top.tolist())
    return float(np.mean(hits))


@pytest.mark.slow
def test_sasrec_learns_sequences_that_popularity_cannot():
    # Synthetic sessions: the next item is usually a successor of the previous one.
    split = leave_one_out(synthetic_dataset(n_users=400, n_items=120, mean_length=15, seed=3))
    scores = {}
    sasrec = dict(
        hidden=32, blocks=2, max_len=20, dropout=0.1, epochs=40, patience=5, lr=3e-3, batch_size=64
    )
    variants = {
        "sasrec-ce": {},
        "sasrec-bce": {"loss": "bce"},
        "sasrec-stride": {"stride": 5},
        "sasrec-post": {"norm": "post", "attn_dropout": 0.1},
        "sasrec-ema": {"ema": 0.99},
    }
    models = {
        **{name: SASRec(**sasrec, **extra) for name, extra in variants.items()},
        "bpr": BPR(factors=32, epochs=60, batch_size=256, patience=5),
        "bpr-4neg": BPR(factors=32, negatives=4, epochs=60, batch_size=256, patience=5),
        "popularity": Popularity(),
        "random": RandomRecommender(seed=0),
    }
    for name, model in models.items():
        model.fit(split)
        scores[name] = hit_at_10(model, split)
    se = np.sqrt(0.25 / len(split.test))  # the largest standard error of a hit rate
    for name in variants:
        assert scores[name] > scores["popularity"] + 4 * se, (name, scores)
    assert scores["bpr"] > scores["random"] + 4 * se, scores
    assert scores["bpr-4neg"] > scores["random"] + 4 * se, scores


def test_load_fills_params_added_since_with_their_defaults(tmp_path, tiny_split):
    """A model saved before a parameter existed behaved as its default does: it loads into a
    model built with the default and is refused by one built with another value."""
    model = BPR(**TINY_BPR)
    model.fit(tiny_split)
    model.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["params"]["negatives"]  # as written before ``negatives`` was added
    meta_path.write_text(json.dumps(meta))
    again = BPR(**TINY_BPR)
    again.load(tmp_path / "m", dataset=tiny_split.dataset)
    np.testing.assert_array_equal(again.item_embeddings(), model.item_embeddings())
    with pytest.raises(DataError, match="saved with params"):
        BPR(**{**TINY_BPR, "negatives": 3}).load(tmp_path / "m")


def test_bpr_negatives_one_is_the_default_and_more_change_training(tiny_split):
    one = BPR(**TINY_BPR)
    one.fit(tiny_split)
    same = BPR(**{**TINY_BPR, "negatives": 1})
    same.fit(tiny_split)
    np.testing.assert_array_equal(one.item_embeddings(), same.item_embeddings())
    several = BPR(**{**TINY_BPR, "negatives": 4})
    several.fit(tiny_split)
    assert several.params()["negatives"] == 4
    assert not np.allclose(several.item_embeddings(), one.item_embeddings())


def test_decays_go_back_to_the_best_epoch_with_a_lower_learning_rate():
    import torch

    from recai_classic._training import train_with_early_stopping

    module = torch.nn.Linear(1, 1, bias=False)
    opt = torch.optim.SGD(module.parameters(), lr=1.0)
    curve = [0.1, 0.3, 0.2, 0.2, 0.25, 0.4, 0.1, 0.1, 0.5, 0.5]
    seen: list[tuple[int, float, float]] = []  # epoch, lr, weight when the epoch starts

    def run_epoch(epoch: int) -> float:
        seen.append((epoch + 1, opt.param_groups[0]["lr"], module.weight.item()))
        with torch.no_grad():
            module.weight.fill_(epoch + 1.0)  # the weight names the epoch that last ran
        return 0.0

    values = iter(curve)
    log = train_with_early_stopping(
        module,
        epochs=10,
        patience=2,
        run_epoch=run_epoch,
        validate=lambda: next(values),
        par=Parallel(),
        desc="t",
        optimizer=opt,
        decays=1,
        decay_factor=0.5,
    )
    # patience ran out after epoch 4: back to epoch 2's weight, lr halved; then after epoch 8: stop
    assert log.decays == [4] and log.epochs_run == 8 and log.stopped_early
    assert (log.best_epoch, log.best_valid) == (6, 0.4)
    assert seen[4] == (5, 0.5, 2.0)  # epoch 5 starts from epoch 2's parameters at half the lr
    assert module.weight.item() == 6.0  # the best epoch's parameters are kept at the end
    assert log.to_dict()["decays"] == [4]
    with pytest.raises(ValueError, match="decays need"):
        train_with_early_stopping(
            module, epochs=1, patience=1, run_epoch=run_epoch, validate=None, par=Parallel(),
            desc="t", optimizer=opt, decays=1,
        )  # fmt: skip


def test_sasrec_without_decays_trains_as_before_and_with_them_goes_on(tiny_split):
    params = {**TINY_SASREC, "epochs": 12, "patience": 1}
    plain = SASRec(**params)
    plain.fit(tiny_split)
    decayed = SASRec(**params, decays=2)
    decayed.fit(tiny_split)
    a, b = plain.training_log, decayed.training_log
    assert a["decays"] == [] and a["stopped_early"]
    n = a["epochs_run"]  # identical up to the first plateau
    assert [p["valid"] for p in b["curve"][:n]] == [p["valid"] for p in a["curve"]]
    assert b["decays"][0] == n and b["epochs_run"] > n
    assert b["best_valid"] >= a["best_valid"]


def test_sasrec_label_smoothing_changes_training_and_needs_ce(tiny_split):
    plain = SASRec(**TINY_SASREC)
    plain.fit(tiny_split)
    smooth = SASRec(**TINY_SASREC, label_smoothing=0.2)
    smooth.fit(tiny_split)
    hist = [np.array([0, 1, 2])]
    assert not np.allclose(plain.score(hist), smooth.score(hist))
    assert smooth.params()["label_smoothing"] == 0.2
    with pytest.raises(ValueError, match="label_smoothing applies to loss = 'ce'"):
        SASRec(**TINY_SASREC, loss="bce", label_smoothing=0.1)


def test_sasrec_ema_averages_the_weights_without_changing_training(tiny_split):
    params = {**TINY_SASREC, "epochs": 4, "patience": 4}
    plain = SASRec(**params)
    plain.fit(tiny_split)
    # decay ~0: the average is the last step's weights, so the fitted model is the plain one
    last = SASRec(**params, ema=1e-9)
    last.fit(tiny_split)
    hist = [np.array([0, 1, 2]), np.array([5])]
    np.testing.assert_allclose(last.score(hist), plain.score(hist), rtol=1e-5, atol=1e-6)
    assert last.training_log["best_epoch"] == plain.training_log["best_epoch"]
    averaged = SASRec(**params, ema=0.9)
    averaged.fit(tiny_split)
    a, b = plain.training_log["curve"], averaged.training_log["curve"]
    assert [p["loss"] for p in b] == [p["loss"] for p in a]  # training itself is the same
    assert [p["valid"] for p in b] != [p["valid"] for p in a]  # validation reads the average
    assert not np.allclose(averaged.score(hist), plain.score(hist))
    assert averaged.params()["ema"] == 0.9
    with pytest.raises(ValueError, match="ema is a decay"):
        SASRec(**TINY_SASREC, ema=1.0)


def test_sasrec_ema_with_decays_goes_back_to_the_best_average(tiny_split):
    params = {**TINY_SASREC, "epochs": 12, "patience": 1, "ema": 0.9}
    model = SASRec(**params, decays=1)
    model.fit(tiny_split)
    log = model.training_log
    assert log["decays"] and log["epochs_run"] > log["decays"][0]
    best = max(p["valid"] for p in log["curve"])
    assert log["best_valid"] == pytest.approx(best, abs=1e-6)
    # the kept model is the best epoch's average: validating it again gives the logged value
    from recai_classic._training import Validator

    again = Validator(tiny_split, "ndcg", 10, seed=0)(
        lambda h, u: model._score_tensor(h), Parallel()
    )
    assert again == pytest.approx(log["best_valid"], abs=1e-6)
