"""Validation-only study of ``sasrec.v1`` settings on MovieLens-100K (quickstart parameters,
``ema = 0.998``) with some of them changed, and of the metric early stopping selects on.

    python benchmarks/study_sasrec_params.py run --name d0.5 --set dropout=0.5 --seeds 0 1 \\
        --work /tmp/study-params            # ~8 min a seed and setting on one core
    python benchmarks/study_sasrec_params.py analyse --work /tmp/study-params

``run`` trains with ``--epochs`` epochs (early stopping never triggers) and after each epoch
saves the rank of every validation user's target (full ranking, training items masked) to
``<work>/<name>-seed<N>.npz``; the test split is never scored. ``analyse`` reads every file
there and, for each setting, selection metric (validation NDCG@10 or Recall@10) and patience,
reports the mean over seeds of the held-out score: the validation users are split at random
into halves, the epoch is chosen by early stopping on one half's curve and scored (NDCG@10 and
Recall@10) on the other half, both ways, 100 halvings per seed — so a noisier curve's higher
maximum is not mistaken for a better setting. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from study_sasrec_ema import select  # the same early-stopping choice as the ema study

METRICS = ("NDCG@10", "Recall@10")

BASE = {
    "hidden": 64,
    "blocks": 2,
    "max_len": 50,
    "stride": 10,
    "loss": "ce",
    "ema": 0.998,
}


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def run(name: str, overrides: dict, seeds: list[int], epochs: int, work: Path) -> None:
    import recai
    from recai.data import leave_one_out
    from recai_eval.metrics import target_ranks
    from recai_eval.ranking import evaluation_cases

    data = recai.create("dataset", "movielens-100k.v1").dataset()
    split = leave_one_out(data, ties="recbole")
    cases = evaluation_cases(split, "valid")
    rows = np.repeat(np.arange(len(cases)), [len(h) for h in cases.histories])
    cols = np.concatenate(cases.histories)
    params = {**BASE, **overrides}
    for seed in seeds:
        out = work / f"{name}-seed{seed}.npz"
        model = recai.create(
            "ranker", "sasrec.v1", **params, patience=epochs + 1, epochs=epochs, seed=seed
        )
        curves: dict[str, np.ndarray] = {}
        start = time.perf_counter()

        def on_epoch(epoch: int, score, seed=seed, out=out, curves=curves, start=start) -> None:
            s = np.asarray(score(cases.histories, cases.users), dtype=np.float64)
            mask = np.zeros(s.shape, bool)
            mask[rows, cols] = True
            ranks = np.asarray(target_ranks(s, cases.rel_items, mask))
            curves[str(epoch)] = ranks
            np.savez(out, params=json.dumps(params), **curves)
            print(
                json.dumps(
                    {
                        "name": name,
                        "seed": seed,
                        "epoch": epoch,
                        "s": round(time.perf_counter() - start),
                        **{k: round(float(v.mean()), 4) for k, v in _metrics(ranks).items()},
                    }
                ),
                flush=True,
            )

        model.epoch_callback = on_epoch
        model.fit(split)


def _metrics(ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user NDCG@10 and Recall@10 at 0-based target ``ranks`` (any shape), as recai-eval
    computes them."""
    from recai_eval.metrics import metric_values

    return metric_values(ranks, [10], ["ndcg", "recall"])


def analyse(work: Path, halvings: int = 100) -> dict:
    files = sorted(work.glob("*-seed*.npz"))
    if not files:
        print(f"no curves in {work}", file=sys.stderr)
        raise SystemExit(2)
    by_name: dict[str, list[Path]] = defaultdict(list)
    for f in files:
        by_name[f.stem.rsplit("-seed", 1)[0]].append(f)
    curves: dict[Path, tuple[list[int], dict[str, np.ndarray]]] = {}
    for f in files:  # each file read once: its epochs and per-epoch per-user metrics
        z = np.load(f)
        epochs = sorted(int(k) for k in z.files if k != "params")
        curves[f] = epochs, _metrics(np.stack([z[str(e)] for e in epochs]))  # epochs x users
    result: dict = {}
    for patience in (10, 20):
        print(f"patience {patience}: held-out-half validation score (mean over seeds)")
        print(f"  {'setting':14s} {'select on':9s} {'NDCG@10':>8s} {'R@10':>7s}  seeds  epochs")
        for name, paths in sorted(by_name.items()):
            for sel in METRICS:
                scores: dict[str, list[float]] = {k: [] for k in METRICS}
                chosen: list[float] = []
                for path in sorted(paths):
                    epochs, m = curves[path]
                    rng = np.random.default_rng(int(path.stem.rsplit("-seed", 1)[1]))
                    users = m[sel].shape[1]
                    vals: dict[str, list[float]] = {k: [] for k in scores}
                    for _ in range(halvings):
                        half = rng.random(users) < 0.5
                        for a, b in ((half, ~half), (~half, half)):
                            e = select(m[sel][:, a].mean(1), patience)
                            chosen.append(epochs[e])
                            for k in scores:
                                vals[k].append(m[k][e, b].mean())
                    for k in scores:
                        scores[k].append(float(np.mean(vals[k])))
                result[(patience, name, sel)] = scores
                print(
                    f"  {name:14s} {sel:9s} {np.mean(scores['NDCG@10']):8.4f} "
                    f"{np.mean(scores['Recall@10']):7.4f}  {len(paths):5d}  "
                    f"{np.mean(chosen):6.1f}"
                )
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--name", required=True)
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    r.add_argument("--epochs", type=int, default=60)
    r.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    r.add_argument("--work", type=Path, required=True)
    a = sub.add_parser("analyse")
    a.add_argument("--work", type=Path, required=True)
    args = p.parse_args()
    if args.cmd == "analyse":
        analyse(args.work)
        return 0
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"--set {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        overrides[key] = _value(value)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    run(args.name, overrides, args.seeds, args.epochs, args.work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
