"""Benchmark of full-ranking evaluation (``ranking.v1`` of recai-eval) with a matrix-factorisation
scorer: the speed bar at 6,000 users x 4,000 items, and bounded memory up to 10^6 items.

    python benchmarks/bench_eval.py                                  # small + big (1k, 10k users)
    python benchmarks/bench_eval.py --big-users 1000 10000 100000 --out docs/performance.md

The scorer (``MF``) is what an MF model costs: user and item factors (dimension 64, float32,
seeded normal) and one matrix product per batch of users. Everything else is the evaluator:
split, histories, masking, top-k lists, metrics.

- **small** (6,000 users x 4,000 items, synthetic data with 20 events per user on average,
  leave-one-out, k = 10 and 20, Recall/NDCG/Hit/MRR/Precision/MAP): ``RankingEvaluator.evaluate``
  with ``bootstrap=0`` and no files (the bar), then with the defaults' 1,000 bootstrap resamples
  and the per-user file, against two baselines run on the same scorer, users, batches and masks
  in the same process: **argsort** (a naive full ``numpy.argsort`` of every score row, then the
  target's position) and **counting** (the previous ``ranking.v1`` core: ``target_ranks``,
  which compares every score with the target's through a full boolean mask). The three must give
  the same NDCG@10 (checked). Times are the median of 5 runs after one warm-up.
- **big** (``--big-users`` users x ``--big-items`` items, 10 events per user, default
  ``memory_mb=256``): one fresh process per size; peak RSS (``ru_maxrss``) after building the
  data and the factors, and at the end. The evaluator's share (end minus set-up) must not grow
  with the number of users.

The Markdown table is printed and written into ``--out`` between the markers
``<!-- bench_eval:begin -->`` and ``<!-- bench_eval:end -->`` (the rest of the file is kept),
with the command, the machine and the date. This script is not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import machine, peak_mb, write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "bench_eval"  # its block in docs/performance.md
DIM = 64
BAR_SECONDS = 1.0
RUNS = 5  # timed runs of each implementation in the small step (after one warm-up)


def mf_class() -> type:
    import recai

    class MF(recai.Ranker):
        """Dot products of seeded user and item factors; counts the seconds spent scoring."""

        def __init__(self, n_users: int, n_items: int, dim: int = DIM, seed: int = 0):
            rng = np.random.default_rng(seed)
            self.users = rng.standard_normal((n_users, dim), dtype=np.float32)
            self.items = rng.standard_normal((n_items, dim), dtype=np.float32)
            self.seconds = 0.0

        def score(self, histories, items=None, *, users=None):
            start = time.perf_counter()
            s = self.users[np.asarray(users)] @ self.items.T
            if items is not None:
                cand = np.asarray(items)
                s = s[:, cand] if cand.ndim == 1 else np.take_along_axis(s, cand, axis=1)
            self.seconds += time.perf_counter() - start
            return s

    return MF


def tiny_dataset(n_users: int, n_items: int, per_user: int, seed: int = 0) -> Any:
    """Interactions drawn directly (a catalog of plain ids): building 10^6 titles or running the
    synthetic generator would measure the data layer, not the evaluator."""
    from recai.data import Catalog, Dataset, Interactions

    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    items = rng.integers(0, n_items, size=len(users))
    times = np.tile(np.arange(per_user, dtype=np.int64), n_users)
    catalog = Catalog(ids=np.arange(n_items), titles=np.full(n_items, "", dtype=object))
    inter = Interactions(users, items, n_users=n_users, n_items=n_items, timestamps=times)
    return Dataset("bench", catalog, inter)


# -- the steps, each run in its own process ----------------------------------------------------
def load_now() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def step_small(n_users: int, n_items: int) -> dict[str, Any]:
    from recai.data import leave_one_out, synthetic_dataset
    from recai.roles import DatasetSource
    from recai.runtime import RunContext
    from recai_eval.metrics import list_metric_values, metric_values, target_ranks
    from recai_eval.ranking import RankingEvaluator, evaluation_cases, users_per_batch

    data = synthetic_dataset(n_users=n_users, n_items=n_items, mean_length=20, seed=1)
    source = DatasetSource.of(data)
    mf = mf_class()(data.n_users, data.n_items)
    metrics = ["recall", "ndcg", "hit", "mrr", "precision", "map"]
    ks = [10, 20]
    folder = Path(tempfile.mkdtemp(prefix="bench-eval-"))

    def ours(**kw: Any) -> tuple[float, float, float]:
        ev = RankingEvaluator(source, [mf], k=ks, metrics=metrics, chart=False, **kw)
        mf.seconds = 0.0
        start = time.perf_counter()
        report = ev.evaluate(RunContext(folder, progress=False))
        return time.perf_counter() - start, mf.seconds, report.metrics["MF"]["NDCG@10"]

    split = leave_one_out(data)
    cases = evaluation_cases(split)
    batch = users_per_batch(n_items, 256, 512)

    def baseline(kind: str) -> tuple[float, float, float]:
        """Same scorer, users, batches and masks; only the ranking step differs."""
        mf.seconds = 0.0
        start = time.perf_counter()
        cases_ = evaluation_cases(leave_one_out(data))  # the same set-up work as ours
        ndcg = []
        for lo in range(0, len(cases_), batch):
            hi = min(lo + batch, len(cases_))
            hist = cases_.histories[lo:hi]
            scores = np.asarray(mf.score(hist, users=cases_.users[lo:hi]), dtype=np.float64)
            rows = np.repeat(np.arange(hi - lo), [len(h) for h in hist])
            cols = np.concatenate(hist)
            target = cases_.rel_items[lo:hi]
            if kind == "argsort":
                scores[rows, cols] = -np.inf
                order = np.argsort(-scores, axis=1, kind="stable")
                hits = order[:, : max(ks)] == target[:, None]
                values = list_metric_values(hits, np.ones(hi - lo), ks, metrics)
            else:
                mask = np.zeros(scores.shape, dtype=bool)
                mask[rows, cols] = True
                values = metric_values(target_ranks(scores, target, mask), ks, metrics)
            ndcg.append(values["NDCG@10"])
        return time.perf_counter() - start, mf.seconds, float(np.concatenate(ndcg).mean())

    def median_of(fn: Any, runs: int = RUNS) -> dict[str, float]:
        fn()  # warm-up
        got = [fn() for _ in range(runs)]
        return {
            "seconds": statistics.median(g[0] for g in got),
            "scoring_s": statistics.median(g[1] for g in got),
            "ndcg10": got[0][2],
        }

    out = {
        "runs": RUNS,
        "load": load_now(),
        "users": len(cases),
        "items": n_items,
        "events": len(data.interactions),
        "batch": batch,
        "ours": median_of(lambda: ours(bootstrap=0, per_user=False)),
        "ours_full": median_of(lambda: ours(bootstrap=1000, per_user=True)),
        "argsort": median_of(lambda: baseline("argsort")),
        "counting": median_of(lambda: baseline("counting")),
    }
    out["peak_mb"] = peak_mb()
    return out


def step_big(n_users: int, n_items: int, per_user: int, memory_mb: float) -> dict[str, Any]:
    from recai.roles import DatasetSource
    from recai.runtime import RunContext
    from recai_eval.ranking import RankingEvaluator, users_per_batch

    load = load_now()
    start = time.perf_counter()
    data = tiny_dataset(n_users, n_items, per_user)
    mf = mf_class()(n_users, n_items)
    setup_s = time.perf_counter() - start
    setup_mb = peak_mb()
    ev = RankingEvaluator(
        DatasetSource.of(data),
        [mf],
        k=[10, 20],
        metrics=["recall", "ndcg", "hit", "mrr", "precision", "map", "coverage"],
        bootstrap=0,
        memory_mb=memory_mb,
        chart=False,
    )
    start = time.perf_counter()
    report = ev.evaluate(RunContext(tempfile.mkdtemp(prefix="bench-eval-"), progress=False))
    seconds = time.perf_counter() - start
    return {
        "load": load,
        "users": n_users,
        "items": n_items,
        "events": len(data.interactions),
        "memory_mb": memory_mb,
        "batch": users_per_batch(n_items, memory_mb, 512),
        "setup_s": setup_s,
        "seconds": seconds,
        "scoring_s": mf.seconds,
        "setup_peak_mb": setup_mb,
        "peak_mb": peak_mb(),
        "factors_mb": (mf.users.nbytes + mf.items.nbytes) / 2**20,
        "ndcg10": report.metrics["MF"]["NDCG@10"],
        "samples": report.info["samples"],
    }


def run_step(*args: str) -> dict[str, Any]:
    """Run one step in a fresh interpreter (its own peak RSS) and return its JSON answer."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"step {args} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the report --------------------------------------------------------------------------------
def power(n: int) -> str:
    exp = len(str(n)) - 1
    return f"10^{exp}" if n == 10**exp else f"{n:,}"


def report(command: str, small: dict[str, Any] | None, big: list[dict[str, Any]]) -> str:
    lines = [
        "## Evaluation: full ranking with a matrix-factorisation scorer",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine('numpy')}  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        "The scorer: user and item factors of dimension 64 (float32), one matrix product per "
        "batch of users. **scoring** is the time spent inside it; the rest is the evaluator "
        "(split, histories, masking, top-k lists, metrics). Times of the first table are "
        f"medians of {(small or {}).get('runs', 3)} runs after a warm-up, baselines measured in "
        "the same process on the same scorer, users, batches and masks. The machine may be "
        "shared with other work"
        + (
            ": the load average (1, 5, 15 min) when a step started is given with it."
            if (small or {}).get("load") or any("load" in r for r in big)
            else "."
        ),
        "",
    ]
    if small is not None:
        o, f, a, c = small["ours"], small["ours_full"], small["argsort"], small["counting"]
        lines += [
            f"### {small['users']:,} users x {small['items']:,} items "
            f"({small['events']:,} events, leave-one-out, {small['batch']} users per batch)",
            "",
            "| implementation | total (s) | scoring (s) | evaluator (s) | vs ranking.v1 | NDCG@10 |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        rows = [
            ("ranking.v1 (top-k lists), bootstrap off, no files", o),
            ("ranking.v1, 1,000 bootstrap resamples + per-user file", f),
            ("baseline: full `numpy.argsort` per row", a),
            ("baseline: previous ranking.v1 core (`target_ranks`, full mask)", c),
        ]
        for name, r in rows:
            lines.append(
                f"| {name} | {r['seconds']:.3f} | {r['scoring_s']:.3f} | "
                f"{r['seconds'] - r['scoring_s']:.3f} | {r['seconds'] / o['seconds']:.2f}x | "
                f"{r['ndcg10']:.5f} |"
            )
        same = len({round(r["ndcg10"], 12) for _, r in rows}) == 1
        verdict = "met" if o["seconds"] < BAR_SECONDS else "NOT met"
        lines += [
            "",
            f"Bar: full-ranking evaluation under {BAR_SECONDS:.0f} s on this machine: "
            f"{o['seconds']:.3f} s ({verdict}); the four agree on NDCG@10: "
            f"{'yes' if same else 'NO'}. Peak RSS of the process: {small['peak_mb']:.0f} MB."
            + (f" Load average when the step started: {small['load']}." if "load" in small else ""),
            "",
        ]
    if big:
        lines += [
            f"### Bounded memory: {power(big[0]['items'])} items, default `memory_mb = "
            f"{big[0]['memory_mb']:g}`",
            "",
            "One fresh process per row, 10 events per user, k = 10 and 20, Recall, NDCG, Hit, MRR, "
            "Precision, MAP and coverage, no bootstrap. **set-up peak**: RSS after building the "
            "interactions and the factors (the model's own memory: the item factors alone are "
            f"{big[0]['items'] * DIM * 4 / 2**20:.0f} MB). **evaluator** = peak minus set-up "
            "peak: the score matrices of one batch (bounded by `memory_mb`, the same for every "
            "row) plus what grows with the data, not with users x items: the split (a copy of the "
            "interactions), the histories and the per-user metric values.",
            "",
            "| users | items | events | users per batch | total (s) | scoring (s) | users/s | "
            "set-up peak (MB) | peak RSS (MB) | evaluator (MB) | users x items as float32 |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in big:
            dense = r["users"] * r["items"] * 4 / 2**30
            lines.append(
                f"| {power(r['users'])} | {power(r['items'])} | {r['events']:,} | {r['batch']} | "
                f"{r['seconds']:.1f} | {r['scoring_s']:.1f} | {r['users'] / r['seconds']:.0f} | "
                f"{r['setup_peak_mb']:.0f} | {r['peak_mb']:.0f} | "
                f"{r['peak_mb'] - r['setup_peak_mb']:.0f} | {dense:,.0f} GiB |"
            )
        first, last = big[0], big[-1]
        grow = (last["peak_mb"] - last["setup_peak_mb"]) - (
            first["peak_mb"] - first["setup_peak_mb"]
        )
        per_event = grow * 2**20 / max(1, last["events"] - first["events"])
        loads = sorted({r["load"] for r in big if "load" in r})
        lines += [
            "",
            f"From {power(first['users'])} to {power(last['users'])} users the evaluator's memory "
            f"grew by {grow:.0f} MB, about {per_event:.0f} bytes per added event: linear in the "
            "data, while the score working memory stays one batch "
            f"({first['batch']} users x {power(first['items'])} items). Peak RSS of the largest "
            f"run: {last['peak_mb']:,.0f} MB.",
            "",
        ]
        if loads:
            lines += [f"Load average when each row started: {', '.join(loads)}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--small", default="6000:4000", help="USERS:ITEMS of the speed bar")
    p.add_argument("--no-small", action="store_true", help="skip the speed bar")
    p.add_argument("--big-users", nargs="*", type=int, default=[1000, 10000])
    p.add_argument("--big-items", type=int, default=1_000_000)
    p.add_argument("--memory-mb", type=float, default=256)
    p.add_argument("--out", type=Path, help="write the section into this Markdown file")
    p.add_argument(
        "--render",
        type=Path,
        metavar="JSONL",
        help="measure nothing: render the section from the step results (one JSON object a "
        "line, as printed on standard error) of an earlier run with the other arguments given",
    )
    args = p.parse_args(argv)
    if args.step:
        kind, *rest = args.step
        if kind == "small":
            result = step_small(int(rest[0]), int(rest[1]))
        else:
            result = step_big(int(rest[0]), int(rest[1]), 10, float(rest[2]))
        print(json.dumps(result))
        return
    given = list(argv if argv is not None else sys.argv[1:])
    if args.render:
        i = given.index("--render")
        given = given[:i] + given[i + 2 :]
    command = "python benchmarks/bench_eval.py " + shlex.join(given)
    if args.render:
        rows = [json.loads(line) for line in args.render.read_text().splitlines() if line.strip()]
        small = next((r for r in rows if "ours" in r), None)
        big = [r for r in rows if "setup_peak_mb" in r]
        section = report(command.strip(), small, big)
        print(section)
        if args.out:
            write_section(args.out, SECTION, section)
        return
    small = None
    if not args.no_small:
        users, items = args.small.split(":")
        small = run_step("small", users, items)
        print(json.dumps(small), file=sys.stderr)
    big = []
    for n in args.big_users:
        big.append(run_step("big", str(n), str(args.big_items), str(args.memory_mb)))
        print(json.dumps(big[-1]), file=sys.stderr)
    section = report(command.strip(), small, big)
    print(section)
    if args.out:
        write_section(args.out, SECTION, section)


if __name__ == "__main__":
    main()
