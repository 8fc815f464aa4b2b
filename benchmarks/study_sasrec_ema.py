"""Validation-only study behind the quickstart's SASRec ``ema = 0.998``: raw weights against
moving averages of the weights, on MovieLens-100K, without looking at the test split.

    python benchmarks/study_sasrec_ema.py --seeds 0 1 2 3 --work /tmp/study-ema   # ~20 min a seed
    python benchmarks/study_sasrec_ema.py --seeds 0 1 2 3 --work /tmp/study-ema --analyse-only

For each seed, ``sasrec.v1`` with the quickstart's parameters (``ema`` off) trains for
``--epochs`` epochs on ``leave_one_out(ties="recbole")`` (early stopping never triggers). A
global optimizer hook keeps exponential moving averages of the weights (decays 0.99, 0.995,
0.998, 0.999), updated after every step as ``ema`` does, and after each epoch the per-user
validation NDCG@10 (full ranking, training items masked) of the raw weights, of each average
and of the mean of the last 3 and 5 epochs' weights is saved to ``<work>/seed<N>.npz``.

The analysis avoids the max-of-a-noisy-curve bias (a noisier curve has a higher maximum): the
validation users are split at random into two halves; the epoch is chosen by early stopping
(``patience`` 10, 20, 40) on one half's mean curve and scored on the other half, both ways,
100 random halvings per seed. It prints, per patience and variant, the mean of that held-out
half score over seeds (and per seed). Training is unchanged by the averages, so one trajectory
per seed serves every variant. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DECAYS = (0.99, 0.995, 0.998, 0.999)
NAMES = ["raw", *[f"ema{d}" for d in DECAYS], "swa3", "swa5"]
PARAMS = {"hidden": 64, "blocks": 2, "max_len": 50, "stride": 10, "loss": "ce"}


def run_seed(seed: int, epochs: int, out: Path) -> None:
    import torch
    import torch.optim.optimizer as topt

    import recai
    from recai.data import leave_one_out
    from recai_eval.metrics import metric_values, target_ranks
    from recai_eval.ranking import evaluation_cases

    data = recai.create("dataset", "movielens-100k.v1").dataset()
    split = leave_one_out(data, ties="recbole")
    cases = evaluation_cases(split, "valid")
    model = recai.create(
        "ranker", "sasrec.v1", **PARAMS, patience=epochs + 1, epochs=epochs, seed=seed
    )
    averages: dict[float, list] = {}

    def hook(opt, args, kwargs):  # after every optimizer step, as ema does
        net = model._net
        with torch.no_grad():
            for d in DECAYS:
                if d not in averages:
                    averages[d] = [p.detach().clone() for p in net.parameters()]
                else:
                    for e, p in zip(averages[d], net.parameters(), strict=True):
                        e.mul_(d).add_(p.detach(), alpha=1 - d)

    topt.register_optimizer_step_post_hook(hook)

    def per_user(score) -> np.ndarray:
        s = np.asarray(score(cases.histories, cases.users), dtype=np.float64)
        mask = np.zeros(s.shape, bool)
        rows = np.repeat(np.arange(len(cases)), [len(h) for h in cases.histories])
        mask[rows, np.concatenate(cases.histories)] = True
        ranks = target_ranks(s, cases.rel_items, mask)
        return np.asarray(metric_values(ranks, [10], ["ndcg"])["NDCG@10"], dtype=np.float64)

    def with_weights(weights, score) -> np.ndarray:
        net = model._net
        saved = [p.detach().clone() for p in net.parameters()]
        with torch.no_grad():
            for p, w in zip(net.parameters(), weights, strict=True):
                p.copy_(w)
        try:
            return per_user(score)
        finally:
            with torch.no_grad():
                for p, w in zip(net.parameters(), saved, strict=True):
                    p.copy_(w)

    snapshots: list[list] = []
    curves: dict[str, np.ndarray] = {}
    start = time.perf_counter()

    def on_epoch(epoch: int, score) -> None:
        rows = {"raw": per_user(score)}
        for d in DECAYS:
            rows[f"ema{d}"] = with_weights(averages[d], score)
        snapshots.append([p.detach().clone() for p in model._net.parameters()])
        for k in (3, 5):  # mean of the last k epochs' weights (zeros until there are k)
            if len(snapshots) >= k:
                mean = [torch.stack(ps).mean(0) for ps in zip(*snapshots[-k:], strict=True)]
                rows[f"swa{k}"] = with_weights(mean, score)
            else:
                rows[f"swa{k}"] = np.zeros(len(cases))
        if len(snapshots) > 5:
            snapshots.pop(0)
        curves[str(epoch)] = np.stack([rows[n] for n in NAMES])
        np.savez(out, names=np.array(NAMES), **curves)
        means = {n: round(float(v.mean()), 4) for n, v in rows.items()}
        print(
            json.dumps(
                {"seed": seed, "epoch": epoch, "s": round(time.perf_counter() - start), **means}
            ),
            flush=True,
        )

    model.epoch_callback = on_epoch
    model.fit(split)


def select(curve: np.ndarray, patience: int) -> int:
    """The epoch early stopping keeps: the first maximum, stopping ``patience`` epochs after."""
    best, kept, waited = -np.inf, 0, 0
    for e, v in enumerate(curve):
        if v > best:
            best, kept, waited = v, e, 0
        else:
            waited += 1
            if waited >= patience:
                break
    return kept


def analyse(work: Path, seeds: list[int], halvings: int = 100) -> dict:
    rng = np.random.default_rng(0)
    result: dict = {}
    for patience in (10, 20, 40):
        per_seed: dict[str, list[float]] = {n: [] for n in NAMES}
        for seed in seeds:
            z = np.load(work / f"seed{seed}.npz")
            epochs = sorted(int(k) for k in z.files if k != "names")
            table = np.stack([z[str(e)] for e in epochs])  # epochs x variants x users
            users = table.shape[2]
            for j, name in enumerate(NAMES):
                c = table[:, j, :]
                values = []
                for _ in range(halvings):
                    half = rng.random(users) < 0.5
                    values.append(c[select(c[:, half].mean(1), patience), ~half].mean())
                    values.append(c[select(c[:, ~half].mean(1), patience), half].mean())
                per_seed[name].append(float(np.mean(values)))
        result[patience] = per_seed
        print(f"patience {patience}: validation NDCG@10 on the half the epoch was not chosen on")
        for name in NAMES:
            seeds_txt = ", ".join(f"{v:.4f}" for v in per_seed[name])
            print(f"  {name:9s} {np.mean(per_seed[name]):.4f}  (seeds: {seeds_txt})")
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--epochs", type=int, default=56)
    p.add_argument("--work", type=Path, required=True, help="folder for the per-seed curves")
    p.add_argument("--analyse-only", action="store_true", help="use the curves already there")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.analyse_only:
        for seed in args.seeds:
            run_seed(seed, args.epochs, args.work / f"seed{seed}.npz")
    missing = [s for s in args.seeds if not (args.work / f"seed{s}.npz").exists()]
    if missing:
        print(f"no curves for seeds {missing} in {args.work}", file=sys.stderr)
        return 2
    analyse(args.work, args.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
