"""Benchmark of recai-agent's LLM re-ranking stage (recai_agent.rerank) on MovieLens-100K.

    python benchmarks/bench_rerank.py --users 100 --jsonl /tmp/rerank.jsonl   # measure (resumable)
    python benchmarks/bench_rerank.py --jsonl /tmp/rerank.jsonl --report      # the table only
    python benchmarks/bench_rerank.py --jsonl /tmp/rerank.jsonl --report --out docs/performance.md

The setting of the agent's ranking tool: MovieLens-100K split leave-one-out by time; the ranker
(``itemknn.v1``, 100 neighbours, fitted on the training split) orders the whole catalog for a
user's history (every event but the held-out one; items in the history excluded), and the
brain (``hf.v1``, SmolLM2-135M-Instruct, 1 thread) re-ranks its top 20 exactly as the tool does
(:class:`~recai_agent.rerank.LLMReranker`, ``norm = "calibrated"``, the last 10 history items,
no request: the benchmark asks what the user chooses next). Users are drawn (seed 0) among those
whose held-out item is in the ranker's top 20 (only their order can change); the share of such
users is reported. Each user is scored twice: without knowledge, and with the knowledge of
recai-knowledge's composite (attributes, I2I by cosine among the candidates, KG paths; cut to
the re-ranker's 300 tokens by SmolLM2's tokenizer). The brain's scores are kept per user
(``--jsonl``, one line each, so an interrupted run resumes), and the blended orders for weights
0 (the ranker alone), 0.25, 0.5, 0.75 and 1 (the brain alone) are computed from them.

**Metric**: NDCG@10 of the held-out item within the re-ranked 20 (1 / log2(2 + place), 0 beyond
place 10), its paired difference from the ranker (weight 0) with a 95% paired bootstrap
interval (2,000 resamples) and the paired t-test's p. This script is not part of the test
suite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import machine, write_section

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
TOP = 20


def ndcg10(order: list[int], target: int) -> float:
    place = order.index(target) if target in order else 99
    return 1.0 / math.log2(2 + place) if place < 10 else 0.0


def setting(seed: int) -> tuple[Any, Any, Any, list[tuple[int, list[int], int, list[int]]]]:
    """The split, the ranker and, for every user whose held-out item is in the ranker's top 20
    (in a seeded random order): (user, history, target, top 20)."""
    import recai
    from recai.data import leave_one_out
    from recai_classic.itemknn import ItemKNN

    data = recai.create("dataset", "movielens-100k.v1").dataset()
    split = leave_one_out(data)
    knn = ItemKNN(neighbors=100)
    knn.fit(split)
    users = np.sort(split.test.users)
    rows = []
    for u in users.tolist():
        history = data.interactions.history(u)[:-1]
        target = int(split.test.items[split.test.users == u][0])
        scores = np.asarray(knn.score([history], None)[0], dtype=np.float64).reshape(-1)
        scores[history] = -np.inf
        top = np.lexsort((np.arange(len(scores)), -scores))[:TOP].tolist()
        if target in top:
            rows.append((int(u), [int(i) for i in history], target, [int(i) for i in top]))
    order = np.random.default_rng(seed).permutation(len(rows))
    return data, split, len(users), [rows[i] for i in order.tolist()]


def knowledge_for(data: Any, split: Any, brain: Any) -> Any:
    import recai

    attributes = recai.create("knowledge_prompter", "knowledge-attributes.v1", max_facts=20)
    i2i = recai.create(
        "knowledge_prompter",
        "knowledge-i2i.v1",
        recent=5,
        neighbours=3,
        scope="candidates",
        measure="cosine",
    )
    kg = recai.create("knowledge_prompter", "knowledge-kgpaths.v1", max_hops=4, max_facts=8)
    composite = recai.create(
        "knowledge_prompter",
        "knowledge-composite.v1",
        max_tokens=400,
        blocks=[
            {"prompter": i2i, "weight": 1.2},
            {"prompter": kg, "weight": 1.0},
            {"prompter": attributes, "weight": 0.6, "max_facts": 20},
        ],
    )
    composite.fit(split)
    return composite


def measure(args: argparse.Namespace) -> None:
    import recai
    from recai.data.grounding import Grounder
    from recai_agent.rerank import LLMReranker
    from recai_agent.tools import TurnState

    start = time.perf_counter()
    data, split, n_users, rows = setting(args.seed)
    print(
        f"{len(rows)} of {n_users} users have the held-out item in the ranker's top {TOP} "
        f"({len(rows) / n_users:.1%}); setting built in {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    done: set[int] = set()
    path = Path(args.jsonl)
    if path.exists():
        done = {json.loads(line)["user"] for line in path.read_text().splitlines() if line}
    brain = recai.create("llm_backend", "hf.v1")
    knowledge = knowledge_for(data, split, brain)
    plain = LLMReranker(brain, None, top=TOP, weight=1.0)
    knowing = LLMReranker(brain, knowledge, top=TOP, weight=1.0)
    grounder = Grounder(data.catalog)
    with path.open("a") as out:
        for user, history, target, top in rows[: args.users]:
            if user in done:
                continue
            row: dict[str, Any] = {"user": user, "target": target, "top": top}
            for name, rr in (("plain", plain), ("knowledge", knowing)):
                state = TurnState(data.catalog, grounder, history=history)
                t = time.perf_counter()
                got = rr.rerank(top, state)
                if not got.applied:
                    raise SystemExit(f"user {user}: {got.note}")
                row[name] = [got.scores[i] for i in top]
                row[f"{name}_seconds"] = round(time.perf_counter() - t, 3)
                row[f"{name}_tokens"] = got.knowledge_tokens
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(
                f"user {user}: {row['plain_seconds']:.1f} s / {row['knowledge_seconds']:.1f} s, "
                f"knowledge {row['knowledge_tokens']} tokens",
                flush=True,
            )


def report(args: argparse.Namespace) -> str:
    from recai.stats import paired_bootstrap, paired_test
    from recai_agent.rerank import blend_positions

    rows = [json.loads(line) for line in Path(args.jsonl).read_text().splitlines() if line]
    base = np.array([ndcg10(r["top"], r["target"]) for r in rows])
    lines = [
        f"{len(rows)} users (held-out item in ItemKNN's top {TOP}); NDCG@10 within the 20; "
        "paired difference from the ranker alone (95% paired bootstrap, 2,000 resamples; "
        "paired t-test)",
        "",
        "| brain's prompt | weight | NDCG@10 | vs ranker | 95% interval | p |",
        "|---|---|---|---|---|---|",
        f"| (ranker alone) | 0 | {base.mean():.4f} | | | |",
    ]
    for name in ("plain", "knowledge"):
        for w in WEIGHTS[1:]:
            vals = []
            for r in rows:
                order = [r["top"][j] for j in blend_positions(r[name], w)]
                vals.append(ndcg10(order, r["target"]))
            got = np.array(vals)
            boot = paired_bootstrap(base[:, None], got[:, None], 2000, seed=0)
            _, p = paired_test(base, got)
            label = "history" if name == "plain" else "history + knowledge"
            lines.append(
                f"| {label} | {w:g} | {got.mean():.4f} | {float(boot['delta'][0]):+.4f} | "
                f"[{float(boot['low'][0]):+.4f}, {float(boot['high'][0]):+.4f}] | {p:.3g} |"
            )
    secs = [r["plain_seconds"] for r in rows], [r["knowledge_seconds"] for r in rows]
    toks = [r["knowledge_tokens"] for r in rows]
    lines.append("")
    lines.append(
        f"Seconds per re-ranking (median): {np.median(secs[0]):.2f} without knowledge, "
        f"{np.median(secs[1]):.2f} with ({np.median(toks):.0f} knowledge tokens, median)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jsonl", required=True, help="per-user scores (appended; resumable)")
    parser.add_argument("--report", action="store_true", help="only print the table")
    parser.add_argument("--out", help="also write the table into this markdown file's section")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not args.report:
        measure(args)
    table = report(args)
    print(table)
    if args.out:
        write_section(Path(args.out), "bench_rerank", _section(args, table, argv))
    return 0


def _section(args: argparse.Namespace, table: str, argv: list[str] | None) -> str:
    """The docs section: what was measured, when and on what, the table and the command."""
    import datetime as dt
    import shlex

    scored = dt.datetime.fromtimestamp(Path(args.jsonl).stat().st_mtime, dt.UTC)
    command = "python benchmarks/bench_rerank.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    return "\n".join(
        [
            "## The agent's LLM re-ranking (recai_agent.rerank)",
            "",
            "MovieLens-100K (GroupLens), leave-one-out by time; ItemKNN (100 neighbours) ranks "
            f"the catalog, SmolLM2-135M-Instruct (hf.v1, 1 thread) re-ranks its top {TOP} as "
            "the agent's ranking tool does, without and with recai-knowledge's composite "
            f"(300 tokens); users drawn with seed {args.seed} among those whose held-out item "
            f"is in the top {TOP}. Scores last written {scored:%Y-%m-%d %H:%M} UTC; "
            f"{machine('torch', 'transformers')}.",
            "",
            table,
            "",
            f"Command: `{command}`; the scores come from the same command without `--report` "
            "and with `--users N` (it appends to the JSON-lines file and resumes).",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
