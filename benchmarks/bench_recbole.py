"""Peer benchmark: RecBole 1.2.1 and recai-classic side by side on MovieLens-100K, one run.

    python benchmarks/bench_recbole.py --out docs/performance.md
    python benchmarks/bench_recbole.py --models bpr sasrec          # a subset, nothing written

**Protocol (both sides).** RecBole's bundled ``ml-100k`` atomic files (943 users, 1,682 items,
100,000 ratings, every rating a positive, no filtering). Leave-one-out by time: per user the last
interaction is test, the one before validation, the rest train, time ordered as RecBole orders it
(timestamps min-max normalised and cast to float32, stable sort: file order breaks ties; recai:
``leave_one_out(ties="recbole")``). The benchmark checks that both sides hold out exactly the same
(user, item) pairs. Full ranking over all 1,682 items at test time, the user's train and
validation items excluded; NDCG@10 and Recall@10 of the test item, mean over the 943 users.

**Where each side runs.** RecBole runs in its own virtualenv (``.bench/recbole-venv``, created on
first use: ``torch==2.13.0``, then ``recbole==1.2.1 --no-deps`` and its run-time imports with
``numpy<2`` and ``pandas<3``; ``--recbole-venv`` picks another). Every fit is a fresh process
(RecBole first, then recai, model by model), with the same environment on both sides: the glibc
malloc settings in :data:`MALLOC_ENV` (they keep large activations from being mapped and unmapped
on every op), the same torch build and thread count, the CPU.

**RecBole's side.** Its own pipeline called step by step (``Config`` -> ``init_seed`` ->
``create_dataset`` -> ``data_preparation`` -> ``get_model`` -> ``get_trainer`` -> ``fit`` ->
``evaluate``), its default hyperparameters for every model (``properties/overall.yaml`` and
``properties/model/*.yaml``: seed 2020, Adam, lr 0.001, batch 2048, up to 300 epochs, early
stopping after 10 epochs without improvement) with these settings: the split above
(``eval_args``), ``valid_metric = NDCG@10`` (its default is MRR@10; NDCG@10 is what is compared),
``metrics = [Recall, NDCG]``, ``topk = 10``, ``metric_decimal_place = 6``, CPU, no progress bars,
and for SASRec (CE loss) ``train_neg_sample_args = None``, which RecBole requires with CE.
Importing RecBole's sequential models switches on ``torch.autograd.set_detect_anomaly`` for the
whole process (``sine.py``); the benchmark switches it off after ``get_model`` (a large slowdown
otherwise) and reports whether it had been on. RecBole's full-ranking evaluation does not exclude
a sequential model's history items; the benchmark also scores RecBole's trained SASRec with them
excluded (as for recai) and compares recai with the better of the two numbers.

**recai's side.** ``movielens-100k.v1`` (the same files), ``leave_one_out(ties="recbole")``,
each model with the parameters the quickstart recipe (``examples/quickstart.toml``) gives it, so
the two agree, except where :data:`SAME_MODEL` picks recai's variant of RecBole's model definition
(ItemKNN; the quickstart variant's test numbers are reported too); BPR and SASRec select their epoch on the validation split only. Test metrics are
computed with recai-eval's functions, as ``ranking.v1`` computes them.

**Times.** *train* is the wall time of ``trainer.fit`` (RecBole: every epoch with its validation
pass, up to the early stop; data preparation not included) and of ``model.fit(split)`` (recai:
the same, plus building its training data). *to final* (RecBole) is the training time at the end
of the epoch whose parameters RecBole keeps (its best validation epoch, validation included).
*to RecBole's NDCG* (recai) is the training time at the end of the first epoch whose test
NDCG@10 is at least RecBole's final test NDCG@10: recai's trained models call an
``epoch_callback`` after each epoch, which the benchmark uses to evaluate the current parameters
on the test users; that side channel is timed and subtracted (it never influences training or
model selection, which use the validation split only). For the models fitted in one step
(popularity, ItemKNN, EASE) it is the fit time. The bar: recai's test NDCG@10 and Recall@10 at
least RecBole's, and *to RecBole's NDCG* below RecBole's *to final*.

**Seeds.** ``--seeds MODEL=N`` fits a trained model with ``N`` seeds on each side (RecBole
2020, 2021, ...; recai 0, 1, ...) and compares the means; by default BPR gets 5 (one fit takes
under a minute on either side, and its test NDCG@10 moves by up to 0.007 between seeds on both
sides — RecBole's 0.0600 to 0.0673 over seeds 2020-2022), SASRec 1. ``--recai-seeds MODEL=N``
fits recai's side with ``N`` seeds whatever RecBole's side has; by default SASRec gets 5 on recai's
side and 1 on RecBole's: a recai fit takes 2-5 minutes, RecBole's about an hour, and one seed of
either is a noisy estimate (recai's five seeds of 2026-11-26 span test Recall@10 0.193 to 0.213).
The table then compares recai's mean over its seeds with RecBole's mean (with ``--seeds
sasrec=N`` RecBole's side gets seeds 2020 ... 2020 + N - 1; ``--reuse-recbole`` fits only those
its file lacks), and the notes list every seed's numbers on both sides.

**Partial reruns.** ``--json FILE`` keeps every step's answer, rewritten after each step (an
interrupted run keeps what it finished). ``--reuse-recbole FILE`` takes RecBole's answers from such
a file instead of fitting RecBole again (its SASRec alone takes about an hour on 2 cores) and runs
recai's side only; held-out pairs are compared through the digest stored with each answer, and
the report names the file. Where ``--seeds`` asks for more RecBole seeds than the file holds, only
the missing ones are fitted (so RecBole's side can gain seeds one run at a time, e.g.
``--seeds bpr=5 sasrec=2`` with a file holding SASRec's seed 2020), and the report names them.

The Markdown table is printed and, with ``--out``, written between ``<!-- bench_recbole:begin -->``
and ``<!-- bench_recbole:end -->`` (the rest of the file is kept). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "bench_recbole"  # its block in docs/performance.md
DEFAULT_VENV = ROOT / ".bench" / "recbole-venv"
MODELS = ("pop", "itemknn", "ease", "bpr", "sasrec")
RECBOLE_NAME = {
    "pop": "Pop",
    "itemknn": "ItemKNN",
    "ease": "EASE",
    "bpr": "BPR",
    "sasrec": "SASRec",
}
RECAI_NAME = {
    "pop": "popularity.v1",
    "itemknn": "itemknn.v1",
    "ease": "ease.v1",
    "bpr": "bpr.v1",
    "sasrec": "sasrec.v1",
}
QUICKSTART = ROOT / "examples" / "quickstart.toml"
DEFAULT_SEEDS = {"bpr": 5}
"""Models fitted with several seeds on each side by default (cheap to repeat; their test NDCG
moves by several thousandths from seed to seed). RecBole's seeds are 2020, 2021, ... (2020 is
its default), recai's 0, 1, ... (0 is the quickstart's)."""
DEFAULT_RECAI_SEEDS = {"sasrec": 5}
"""Models fitted with more seeds on recai's side than on RecBole's by default (RecBole's SASRec
takes about an hour a seed on 2 cores, recai's a few minutes)."""
RECBOLE_SEED = 2020
TRAINED = ("bpr", "sasrec")  # the models whose fit depends on a seed
"""recai's models take their parameters from the quickstart recipe, so the two agree."""
SAME_MODEL = {"itemknn": {"prune_by": "candidate"}}
"""Overrides of the quickstart parameters where recai offers RecBole's own model definition:
RecBole's ItemKNN keeps each *candidate* item's nearest neighbours (recai's default keeps each
history item's, which scores higher on validation). The report also gives the quickstart
variant's test numbers."""
MALLOC_ENV = {
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": "17179869184",
    "MALLOC_TOP_PAD_": "1073741824",
}
RECBOLE_PACKAGES = [
    "numpy<2",
    "pandas<3",
    "scipy",
    "tqdm",
    "colorlog==4.7.2",
    "colorama==0.4.4",
    "scikit-learn",
    "pyyaml",
    "tensorboard",
    "thop",
    "texttable",
    "psutil",
]
K = 10


# -- the RecBole virtualenv ----------------------------------------------------------------------
def ensure_venv(venv: Path) -> Path:
    """The Python of RecBole's virtualenv, created and filled on first use."""
    python = venv / "bin" / "python"
    probe = [
        str(python),
        "-c",
        "import recbole, torch, numpy; assert recbole.__version__ == '1.2.1'",
    ]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating RecBole's virtualenv in {venv} (a few minutes)", file=sys.stderr)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)  # first: nothing may pull another build
    subprocess.run([*pip, "--no-deps", "recbole==1.2.1"], check=True)
    subprocess.run([*pip, *RECBOLE_PACKAGES], check=True)
    subprocess.run(probe, check=True)
    return python


# -- one RecBole fit (runs inside RecBole's virtualenv) -------------------------------------------
class _OutOfBudget(Exception):
    """Raised after the RecBole epoch that ends past ``--recbole-budget``."""


def recbole_step(
    model: str, workdir: Path, budget: float | None = None, seed: int | None = None
) -> dict[str, Any]:
    import numpy as np
    import recbole
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    name = RECBOLE_NAME[model]
    settings: dict[str, Any] = {
        "data_path": str(Path(recbole.__file__).parent / "dataset_example"),
        "checkpoint_dir": str(workdir / "saved"),
        "use_gpu": False,
        "show_progress": False,
        "state": "WARNING",
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "group_by": "user",
            "order": "TO",
            "mode": "full",
        },
        "metrics": ["Recall", "NDCG"],
        "topk": [K],
        "valid_metric": f"NDCG@{K}",
        "metric_decimal_place": 6,
    }
    if model == "sasrec":
        settings["train_neg_sample_args"] = None  # RecBole requires it with the CE loss
    if seed is not None:
        settings["seed"] = seed
    config = Config(model=name, dataset="ml-100k", config_dict=settings)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    anomaly_was_on = bool(torch.is_anomaly_enabled())
    torch.autograd.set_detect_anomaly(False)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)

    epochs: list[dict[str, float]] = []
    start = time.perf_counter()

    def after_epoch(epoch: int, valid_score: float) -> None:
        epochs.append(
            {"epoch": epoch + 1, "t": time.perf_counter() - start, "valid": float(valid_score)}
        )
        print(json.dumps(epochs[-1]), file=sys.stderr, flush=True)  # progress
        if budget is not None and epochs[-1]["t"] > budget:
            raise _OutOfBudget  # the best parameters so far are already saved

    stopped_by_budget = False
    try:
        trainer.fit(train_data, valid_data, verbose=False, saved=True, callback_fn=after_epoch)
    except _OutOfBudget:
        stopped_by_budget = True
    fit_s = time.perf_counter() - start
    result = trainer.evaluate(test_data, load_best_model=True)
    best = max(range(len(epochs)), key=lambda i: (epochs[i]["valid"], -i))  # first best
    out: dict[str, Any] = {
        "model": name,
        "ndcg": float(result[f"ndcg@{K}"]),
        "recall": float(result[f"recall@{K}"]),
        "train_s": fit_s,
        "to_final_s": epochs[best]["t"],
        "best_epoch": epochs[best]["epoch"],
        "epochs_run": len(epochs),
        "curve": epochs,
        "stopped_by_budget": stopped_by_budget,
        "anomaly_was_on": anomaly_was_on,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "hyper": {
            k: config[k]
            for k in (
                "epochs",
                "train_batch_size",
                "learning_rate",
                "stopping_step",
                "seed",
                "embedding_size",
                "hidden_size",
                "n_layers",
                "n_heads",
                "inner_size",
                "hidden_dropout_prob",
                "attn_dropout_prob",
                "MAX_ITEM_LIST_LENGTH",
                "loss_type",
                "k",
                "shrink",
                "reg_weight",
            )
            if config[k] is not None
        },
    }
    uid, iid = dataset.uid_field, dataset.iid_field
    for part, data in (("test", test_data), ("valid", valid_data)):
        feat = data._dataset.inter_feat
        users = dataset.id2token(uid, feat[uid].numpy())
        items = dataset.id2token(iid, feat[iid].numpy())
        out[f"{part}_pairs"] = sorted(f"{u}\t{i}" for u, i in zip(users, items, strict=True))
    if config["MODEL_TYPE"].name == "SEQUENTIAL":
        out["masked"] = _recbole_masked_test(net, dataset, test_data)
    return out


def _recbole_masked_test(net: Any, dataset: Any, test_data: Any) -> dict[str, float]:
    """RecBole's trained sequential model on the test users with each user's other items
    (train and validation: ML-100K has no repeated ratings) excluded, as recai evaluates.

    The same pass also ranks with nothing excluded (``unmasked_ndcg``): it must reproduce
    RecBole's own test NDCG@10, which checks this code's batches, item indices and ranks
    against RecBole's evaluator."""
    import numpy as np
    import torch

    uid, iid = dataset.uid_field, dataset.iid_field
    users = dataset.inter_feat[uid].numpy()
    order = np.argsort(users, kind="stable")
    items = dataset.inter_feat[iid].numpy()[order]
    bounds = np.searchsorted(users[order], np.arange(users.max() + 2))
    ndcg, recall, plain = [], [], []

    def rank_of(row: Any, target: int) -> int:
        t = row[target]
        return int((row > t).sum()) + int((row[:target] == t).sum())

    net.eval()
    with torch.no_grad():
        for interaction, _, _, positive_i in test_data:
            scores = net.full_sort_predict(interaction).view(len(positive_i), -1).double()
            scores[:, 0] = -math.inf  # the padding item
            batch_users = interaction[uid].numpy()
            for r, (u, target) in enumerate(zip(batch_users, positive_i.numpy(), strict=True)):
                row = scores[r]
                rank = rank_of(row, target)  # nothing excluded: RecBole's own number again
                plain.append(1.0 / math.log2(rank + 2) if rank < K else 0.0)
                seen = items[bounds[u] : bounds[u + 1]]
                seen = seen[seen != target]
                row[torch.from_numpy(seen)] = -math.inf
                rank = rank_of(row, target)
                hit = rank < K
                ndcg.append(1.0 / math.log2(rank + 2) if hit else 0.0)
                recall.append(float(hit))
    return {
        "ndcg": float(np.mean(ndcg)),
        "recall": float(np.mean(recall)),
        "users": len(ndcg),
        "unmasked_ndcg": float(np.mean(plain)),
    }


def quickstart_params(model: str) -> dict[str, Any]:
    """The parameters the quickstart recipe gives the component ``RECAI_NAME[model]``."""
    import tomllib

    components = tomllib.loads(QUICKSTART.read_text())["components"]
    for spec in components.values():
        if spec.get("use") == RECAI_NAME[model]:
            return dict(spec.get("params", {}))
    raise SystemExit(f"{QUICKSTART} has no {RECAI_NAME[model]} component")


# -- one recai fit --------------------------------------------------------------------------------
def recai_step(model: str, seed: int | None = None) -> dict[str, Any]:
    import numpy as np
    import torch

    import recai
    from recai.data import leave_one_out
    from recai_eval.metrics import metric_values, target_ranks
    from recai_eval.ranking import evaluation_cases

    data = recai.create("dataset", "movielens-100k.v1").dataset()
    split = leave_one_out(data, ties="recbole")
    cases = evaluation_cases(split)  # what ranking.v1 ranks: train + valid masked
    targets = cases.rel_items[cases.rel_indptr[:-1]]

    def test_metrics(score: Any) -> dict[str, float]:
        ndcg, recall = [], []
        for lo in range(0, len(cases), 512):
            hist = cases.histories[lo : lo + 512]
            s = np.asarray(score(hist, cases.users[lo : lo + 512]), dtype=np.float64)
            mask = np.zeros(s.shape, dtype=bool)
            rows = np.repeat(np.arange(len(hist)), [len(h) for h in hist])
            mask[rows, np.concatenate(hist)] = True
            v = metric_values(
                target_ranks(s, targets[lo : lo + 512], mask), [K], ["ndcg", "recall"]
            )
            ndcg.append(v[f"NDCG@{K}"])
            recall.append(v[f"Recall@{K}"])
        return {
            "ndcg": float(np.concatenate(ndcg).mean()),
            "recall": float(np.concatenate(recall).mean()),
        }

    variant = None
    if model in SAME_MODEL:  # the quickstart's own variant, for the report
        other = recai.create("ranker", RECAI_NAME[model], **quickstart_params(model))
        other.fit(split)
        variant = {
            "params": other.params(),
            **test_metrics(lambda h, u: other.score(h, users=u)),
        }
    params = {**quickstart_params(model), **SAME_MODEL.get(model, {})}
    if seed is not None:
        params["seed"] = seed
    net = recai.create("ranker", RECAI_NAME[model], **params)
    curve: list[dict[str, float]] = []
    side = [0.0]
    start = time.perf_counter()

    def after_epoch(epoch: int, score: Any) -> None:
        entered = time.perf_counter()
        curve.append({"epoch": epoch, "t": entered - start - side[0], **test_metrics(score)})
        print(json.dumps(curve[-1]), file=sys.stderr, flush=True)  # progress
        side[0] += time.perf_counter() - entered

    if hasattr(net, "epoch_callback"):
        net.epoch_callback = after_epoch
    net.fit(split)
    train_s = time.perf_counter() - start - side[0]
    final = test_metrics(lambda h, u: net.score(h, users=u))
    if not curve:  # fitted in one step: the model exists when fit returns
        curve.append({"epoch": 1, "t": train_s, **final})
    log = getattr(net, "training_log", None) or {}
    return {
        "model": RECAI_NAME[model],
        "params": net.params(),
        **final,
        "train_s": train_s,
        "side_channel_s": side[0],
        "quickstart_variant": variant,
        "curve": curve,
        "best_epoch": log.get("best_epoch"),
        "epochs_run": log.get("epochs_run"),
        "threads": torch.get_num_threads(),
        "test_pairs": sorted(
            f"{data.user_ids[u]}\t{data.catalog.ids[i]}"
            for u, i in zip(split.test.users.tolist(), split.test.items.tolist(), strict=True)
        ),
        "valid_pairs": sorted(
            f"{data.user_ids[u]}\t{data.catalog.ids[i]}"
            for u, i in zip(split.valid.users.tolist(), split.valid.items.tolist(), strict=True)
        ),
    }


# -- running the steps ----------------------------------------------------------------------------
def run_step(
    python: Path | str, side: str, model: str, env: dict[str, str], *extra: str
) -> dict[str, Any]:
    """One fit in a fresh interpreter; its JSON answer is the last line of its output."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as work:
        cmd = [str(python), str(Path(__file__).resolve()), "--step", side, model, work, *extra]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{side} {model} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_to(curve: list[dict[str, float]], ndcg: float) -> float | None:
    """Training seconds at the end of the first epoch whose test NDCG@10 reaches ``ndcg``."""
    for point in curve:
        if point["ndcg"] >= ndcg - 1e-12:
            return float(point["t"])
    return None


# -- the report -----------------------------------------------------------------------------------
def fmt_s(x: float | None) -> str:
    if x is None:
        return "not reached"
    if x < 1:
        return f"{x:.2f}"
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def report(
    command: str, rows: list[dict[str, Any]], check: dict[str, Any], budget: float | None = None
) -> str:
    rb0 = rows[0]["recbole"]
    reused = check.get("reused")
    lines = [
        "## Peer benchmark: RecBole 1.2.1 and recai-classic on MovieLens-100K",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}; both sides torch "
        f"{rb0['torch']} on the CPU with {rb0['threads']} threads and "
        + " ".join(f"`{k}={v}`" for k, v in MALLOC_ENV.items())
        + "  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        "Protocol: RecBole's bundled `ml-100k` (943 users, 1,682 items, 100,000 ratings, no "
        "filtering); leave-one-out by time with RecBole's float32 time keys (recai: "
        '`leave_one_out(ties="recbole")`); full ranking of all items, train and validation '
        "items excluded; test metrics over the 943 users. "
        f"Same held-out pairs on both sides: {check['same_split']} "
        f"({check['test_pairs']} test and {check['valid_pairs']} validation pairs compared).",
        "",
        "| model | RecBole NDCG@10 | recai NDCG@10 | RecBole Recall@10 | recai Recall@10 "
        "| RecBole train (s) | recai train (s) | RecBole to final (s) | recai to RecBole's NDCG (s) "
        "| speed-up | bar |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    notes = []
    for row in rows:
        rb, ra = row["recbole"], row["recai"]
        reach = row["recai_to_target_s"]
        speed = f"{rb['to_final_s'] / reach:.1f}x" if reach else "-"
        met = row["met"]
        rb_ndcg = f"{rb['ndcg']:.4f}"
        rb_recall = f"{rb['recall']:.4f}"
        if "masked" in rb:
            rb_ndcg += f" ({rb['masked']['ndcg']:.4f})"
            rb_recall += f" ({rb['masked']['recall']:.4f})"
        lines.append(
            f"| {row['model']} | {rb_ndcg} | {ra['ndcg']:.4f} | {rb_recall} | {ra['recall']:.4f} "
            f"| {fmt_s(rb['train_s'])} | {fmt_s(ra['train_s'])} | {fmt_s(rb['to_final_s'])} "
            f"| {fmt_s(reach)} | {speed} | {'met' if met else 'NOT met'} |"
        )
        epochs = f"RecBole {rb['epochs_run']} epoch(s) (best {rb['best_epoch']})"
        if rb.get("stopped_by_budget"):
            epochs += ", **stopped by the budget** before its own early stop"
        if "runs" in rb or "runs" in ra:  # several seeds: the table shows means

            def per_seed(side: dict[str, Any]) -> str:
                return ", ".join(
                    f"seed {r['seed']}: {r['ndcg']:.4f} / {r['recall']:.4f} "
                    f"({r['epochs_run']} epochs, best {r['best_epoch']})"
                    for r in side.get("runs") or seed_rows([side])
                )

            n_rb, n_ra = len(rb.get("runs", [rb])), len(ra.get("runs", [ra]))
            counts = (
                f"{n_rb} seeds per side"
                if n_rb == n_ra
                else f"RecBole {n_rb} seed{'s' * (n_rb > 1)}, recai {n_ra} seeds"
            )
            epochs = (
                f"means over {counts} (NDCG@10 / Recall@10): RecBole "
                f"{per_seed(rb)}; recai {per_seed(ra)}"
            )
            if "masked" in rb and n_rb == 1:
                epochs += (
                    f"; RecBole's with earlier items excluded: {rb['masked']['ndcg']:.4f} / "
                    f"{rb['masked']['recall']:.4f}"
                )
            below = sum(
                r["ndcg"] < row["target_ndcg"] or r["recall"] < row["target_recall"]
                for r in ra.get("runs", [ra])
            )
            if below:
                epochs += (
                    f"; {below} of recai's {n_ra} seeds alone fall below RecBole's NDCG@10 or "
                    "Recall@10"
                )
        elif ra["epochs_run"]:
            epochs += f"; recai {ra['epochs_run']} epochs (best {ra['best_epoch']})"
            reached = [p for p in ra["curve"] if p["ndcg"] >= row["target_ndcg"] - 1e-12]
            if reached:
                epochs += (
                    f", RecBole's test NDCG@10 first reached after epoch {reached[0]['epoch']}"
                )
        variant = ""
        if ra.get("quickstart_variant"):
            qv = ra["quickstart_variant"]
            variant = (
                f" (the quickstart's `{json.dumps(qv['params'], separators=(', ', ': '))}`: "
                f"test NDCG@10 {qv['ndcg']:.4f}, Recall@10 {qv['recall']:.4f})"
            )
        notes.append(
            f"- **{row['model']}**: {epochs}; recai `{ra['model']}` with "
            f"`{json.dumps(ra['params'], separators=(', ', ': '))}`{variant}; RecBole "
            f"`{json.dumps(rb['hyper'], separators=(', ', ': '))}`."
        )
    anomaly = [r["model"] for r in rows if r["recbole"]["anomaly_was_on"]]
    lines += [
        "",
        "*train*: wall time of the whole fit (every epoch and its validation pass, up to the "
        "early stop). *to final*: RecBole's training time at the end of the epoch whose "
        "parameters it keeps (its best validation epoch). *to RecBole's NDCG*: recai's training "
        "time at the end of the first epoch whose test NDCG@10 reaches RecBole's final test "
        "NDCG@10 (measured through a timed side channel that evaluates each epoch's parameters "
        "on the test users and is subtracted; selection and early stopping use the validation "
        "split only); for one-step fits, the fit time. *speed-up* = RecBole to final / recai to "
        "RecBole's NDCG. *bar*: recai's NDCG@10 and Recall@10 at least RecBole's, and reaching "
        "RecBole's NDCG@10 in less training time. A model fitted with several seeds (below) "
        "shows each side's means; recai's time to RecBole's NDCG is then the mean over its "
        "seeds of the time to reach RecBole's mean NDCG@10 (every seed must reach it).",
        "",
        "RecBole's sequential SASRec is evaluated by RecBole without excluding the user's "
        "earlier items; in brackets, the same trained RecBole model with them excluded (as recai "
        "is evaluated). The bar compares recai with the better of the two."
        + "".join(
            f" Check of that second evaluation ({r['model']}): ranking the same scores with "
            "nothing excluded gives NDCG@10 "
            + "; ".join(
                f"{unmasked:.6f}, RecBole's evaluator {ndcg:.6f}"
                + (f" (seed {seed})" if len(checks) > 1 else "")
                for seed, unmasked, ndcg in checks
            )
            + "."
            for r in rows
            if (checks := unmasked_checks(r["recbole"]))
        ),
        "",
        "RecBole: default hyperparameters except `valid_metric = NDCG@10` (default MRR@10), "
        "`metric_decimal_place = 6`, the split, CPU, and `train_neg_sample_args = None` for "
        "SASRec (required by its CE loss). `torch.autograd.set_detect_anomaly` was switched "
        "off after building the model"
        + (f" (RecBole had switched it on for: {', '.join(anomaly)})" if anomaly else "")
        + ". Fits run one after the other in fresh processes; the machine may be shared with "
        "other work, which slows both sides alike only on average."
        + (
            f" **RecBole's answers reused** from `{reused}` (an earlier run's `--json`, written "
            f"{check['reused_date']}; RecBole's fits are deterministic per seed on one machine): "
            + (
                "RecBole was not run again"
                if not check.get("fitted_now")
                else "RecBole was run now only for " + ", ".join(check["fitted_now"])
            )
            + "; its reused held-out pairs were compared by digest."
            if reused
            else ""
        )
        + (
            f" **Budget:** each RecBole fit was stopped after the first epoch ending past "
            f"{budget:g} s of training (`--recbole-budget`); where that happened (below), RecBole's "
            "numbers are those of its best epoch so far, not of a finished run."
            if budget is not None
            else ""
        ),
        "",
        *notes,
        "",
    ]
    return "\n".join(lines)


def unmasked_checks(rb: dict[str, Any]) -> list[tuple[Any, float, float]]:
    """(seed, NDCG@10 of RecBole's scores ranked with nothing excluded, RecBole's own NDCG@10)
    for each RecBole run of a model that was re-evaluated with history items excluded."""
    masked = rb.get("masked", {})
    if "checks" in masked:  # several seeds, gathered by combine
        return masked["checks"]
    if "unmasked_ndcg" in masked:
        return [(rb.get("hyper", {}).get("seed"), masked["unmasked_ndcg"], rb["ndcg"])]
    return []


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's runs of a model (one per seed) as one answer: the first run's fields, with the
    metrics and times replaced by their means over the runs, each run's numbers under ``runs``
    and every run's per-epoch ``curves``."""
    if len(runs) == 1:
        return runs[0]
    out = dict(runs[0])
    for key in ("ndcg", "recall", "train_s", "to_final_s"):
        if key in out:
            out[key] = sum(r[key] for r in runs) / len(runs)
    if "masked" in out:
        out["masked"] = {
            key: sum(r["masked"][key] for r in runs) / len(runs) for key in ("ndcg", "recall")
        }
        out["masked"]["checks"] = [c for r in runs for c in unmasked_checks(r)]
    out["curves"] = [r["curve"] for r in runs]
    out["runs"] = seed_rows(runs)
    return out


def seed_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run's seed, test metrics and epochs, for the report's per-seed notes."""
    return [
        {
            "seed": r.get("params", r.get("hyper", {})).get("seed"),
            "ndcg": r["ndcg"],
            "recall": r["recall"],
            "epochs_run": r.get("epochs_run"),
            "best_epoch": r.get("best_epoch"),
        }
        for r in runs
    ]


def compare(model: str, rb: dict[str, Any], ra: dict[str, Any]) -> dict[str, Any]:
    target_ndcg = max(rb["ndcg"], rb.get("masked", {}).get("ndcg", -1.0))
    target_recall = max(rb["recall"], rb.get("masked", {}).get("recall", -1.0))
    reaches = [time_to(curve, target_ndcg) for curve in ra.get("curves", [ra["curve"]])]
    reach = None if None in reaches else sum(reaches) / len(reaches)  # type: ignore[arg-type]
    met = (
        ra["ndcg"] >= target_ndcg
        and ra["recall"] >= target_recall
        and reach is not None
        and reach < rb["to_final_s"]
    )
    return {
        "model": RECBOLE_NAME[model],
        "recbole": rb,
        "recai": ra,
        "target_ndcg": target_ndcg,
        "target_recall": target_recall,
        "recai_to_target_s": reach,
        "met": met,
    }


def digest_pairs(answer: dict[str, Any]) -> None:
    """Replace a step's held-out pairs by one digest of them (the JSON stays small, and a later
    ``--reuse-recbole`` run can still check that both sides split alike)."""
    text = "\n".join(answer.pop("test_pairs")) + "\n\n" + "\n".join(answer.pop("valid_pairs"))
    answer["split_sha256"] = hashlib.sha256(text.encode()).hexdigest()


def save_answers(path: Path | None, answers: list[dict[str, Any]]) -> None:
    """Every answer so far, rewritten after each step (an interrupted run keeps its steps)."""
    if path is None:
        return
    from recai.runtime import atomic_write_text  # the kernel's writer (no heavy imports)

    atomic_write_text(path, json.dumps(answers, indent=1) + "\n")


def load_reused(
    path: Path, models: list[str], seeds: dict[str, int]
) -> dict[str, list[dict[str, Any]]]:
    """RecBole's answers per model from an earlier ``--json`` file, at most the requested number
    of seeds (fewer where the file holds fewer: the run fits the missing ones); a ``ValueError``
    naming the file if one has no split digest, was budget-cut or has an unexpected seed."""
    try:
        saved = json.loads(path.read_text())
        found = {entry["model"]: entry["recbole"] for entry in saved}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a bench_recbole --json file ({e})") from None
    for model in models:
        for k, run in enumerate(found.get(model, [])[: seeds[model]]):
            if "split_sha256" not in run or run.get("stopped_by_budget"):
                raise ValueError(
                    f"{path}: RecBole's {model} answer has no split digest or was cut "
                    "by a budget; run RecBole again"
                )
            seed = run.get("hyper", {}).get("seed")
            if seed != RECBOLE_SEED + k:
                raise ValueError(
                    f"{path}: RecBole's {model} run {k + 1} has seed {seed}, expected "
                    f"{RECBOLE_SEED + k}"
                )
    return {m: found.get(m, [])[: seeds[m]] for m in models}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--recbole-venv", type=Path, default=DEFAULT_VENV)
    p.add_argument(
        "--recbole-budget",
        type=float,
        metavar="SECONDS",
        help="stop each RecBole fit after the epoch that ends past this much training time "
        "(default: none, RecBole runs to its own early stop); the report says where it applied",
    )
    p.add_argument(
        "--seeds",
        nargs="*",
        metavar="MODEL=N",
        default=[f"{m}={n}" for m, n in DEFAULT_SEEDS.items()],
        help="fit MODEL with N seeds on each side and compare the means (default: "
        + " ".join(f"{m}={n}" for m, n in DEFAULT_SEEDS.items())
        + "; other models: one seed)",
    )
    p.add_argument(
        "--recai-seeds",
        nargs="*",
        metavar="MODEL=N",
        default=[f"{m}={n}" for m, n in DEFAULT_RECAI_SEEDS.items()],
        help="fit recai's MODEL with N seeds (0, 1, ...) whatever --seeds gives RecBole; the "
        "table compares recai's mean with RecBole's (default: "
        + " ".join(f"{m}={n}" for m, n in DEFAULT_RECAI_SEEDS.items())
        + ")",
    )
    p.add_argument("--out", type=Path, help="write the section into this Markdown file")
    p.add_argument(
        "--json",
        type=Path,
        help="also write every step's answer to this file (rewritten after each step)",
    )
    p.add_argument(
        "--reuse-recbole",
        type=Path,
        metavar="JSON",
        help="take RecBole's answers from an earlier run's --json file instead of running RecBole "
        "again; requested seeds the file lacks are fitted now (the report says which)",
    )
    args = p.parse_args(argv)
    if args.step:
        side, model, work, *rest = args.step
        opts = dict(x.split("=", 1) for x in rest)
        seed = int(opts["seed"]) if "seed" in opts else None
        if side == "recbole":
            budget = float(opts["budget"]) if "budget" in opts else None
            result = recbole_step(model, Path(work), budget, seed)
        else:
            result = recai_step(model, seed)
        print(json.dumps(result))
        return
    seeds = dict.fromkeys(MODELS, 1)
    recai_seeds: dict[str, int] = {}
    for option, specs, into in (
        ("--seeds", args.seeds, seeds),
        ("--recai-seeds", args.recai_seeds, recai_seeds),
    ):
        for spec in specs:
            name, _, n = spec.partition("=")
            if name not in TRAINED or not n.isdigit() or int(n) < 1:
                p.error(
                    f"{option} takes MODEL=N with MODEL one of {', '.join(TRAINED)}, got {spec!r}"
                )
            into[name] = int(n)
    recai_seeds = {m: recai_seeds.get(m, seeds[m]) for m in MODELS}
    given = list(argv if argv is not None else sys.argv[1:])
    command = "python benchmarks/bench_recbole.py " + shlex.join(given)
    if args.reuse_recbole and args.recbole_budget is not None:
        p.error("--reuse-recbole takes RecBole's answers as they are; it has no --recbole-budget")
    try:
        earlier = (
            load_reused(args.reuse_recbole, args.models, seeds) if args.reuse_recbole else None
        )
    except ValueError as e:
        p.exit(2, f"error: {e}\n")
    missing = [
        f"{RECBOLE_NAME[m]} seed {RECBOLE_SEED + k}"
        for m in args.models
        for k in range(len(earlier[m]) if earlier else 0, seeds[m])
    ]
    python = ensure_venv(args.recbole_venv) if missing else None
    env = {**os.environ, **MALLOC_ENV, "HF_HUB_OFFLINE": "1"}
    rb_env = {**env, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}  # RecBole reloads its checkpoint
    rows, answers = [], []
    same = True
    n_test = n_valid = 0
    for model in args.models:
        budget = [] if args.recbole_budget is None else [f"budget={args.recbole_budget}"]
        rb_runs, ra_runs = [], []
        answers.append({"model": model, "recbole": rb_runs, "recai": ra_runs})
        for k in range(max(seeds[model], recai_seeds[model])):
            if k < seeds[model]:
                if earlier and k < len(earlier[model]):
                    rb = earlier[model][k]
                else:
                    seeded = [] if seeds[model] == 1 else [f"seed={RECBOLE_SEED + k}"]
                    assert python is not None
                    rb = run_step(python, "recbole", model, rb_env, *budget, *seeded)
                    digest_pairs(rb)
                keys = ("ndcg", "recall", "train_s", "to_final_s", "epochs_run")
                print(f"RecBole {model}: {json.dumps({x: rb[x] for x in keys})}", file=sys.stderr)
                rb_runs.append(rb)
                save_answers(args.json, answers)
            if k >= recai_seeds[model]:
                continue
            seeded = [] if recai_seeds[model] == 1 else [f"seed={k}"]
            ra = run_step(sys.executable, "recai", model, env, *seeded)
            keys = ("ndcg", "recall", "train_s", "epochs_run")
            print(f"recai {model}: {json.dumps({x: ra[x] for x in keys})}", file=sys.stderr)
            n_test, n_valid = len(ra["test_pairs"]), len(ra["valid_pairs"])
            digest_pairs(ra)
            same &= rb_runs[0]["split_sha256"] == ra["split_sha256"]
            ra_runs.append(ra)
            save_answers(args.json, answers)
        rows.append(compare(model, combine(rb_runs), combine(ra_runs)))
    check = {"same_split": "yes" if same else "NO", "test_pairs": n_test, "valid_pairs": n_valid}
    if earlier:
        check["reused"] = str(args.reuse_recbole)
        check["reused_date"] = dt.date.fromtimestamp(args.reuse_recbole.stat().st_mtime).isoformat()
        check["fitted_now"] = missing if earlier else []
    section = report(command.strip(), rows, check, args.recbole_budget)
    print(section)
    if args.out:
        write_section(args.out, SECTION, section)


if __name__ == "__main__":
    main()
