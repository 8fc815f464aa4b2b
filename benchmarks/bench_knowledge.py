"""Benchmark of recai-knowledge: extraction for every MovieLens-100K user, and KG path coverage.

    python benchmarks/bench_knowledge.py                                # measure and print
    python benchmarks/bench_knowledge.py --out docs/performance.md      # and write the section

The setting of the 20-candidate re-ranking task (llm-ranking.v1): MovieLens-100K with its
Freebase graph, split leave-one-out by time; each of the 943 users' history is every event but
the held-out one, the candidates the held-out item and 19 uniform negatives the user never
chose (:func:`recai.data.sample_candidates`, seed 0), in a random order. Every knowledge type is
fitted on the training split, then asked for every user's knowledge text (``knowledge()``, as
the task asks it); the composite pools all six types within a 400-token budget. The U2I type
reads ``--ranker`` (default ``itemknn.v1``; ``sasrec.v1`` is the issue's sequential model, its
training is not timed but its scoring, one user at a time, is).

**Bar**: every type's extraction for all users adds up to < 10 s (and the composite alone).

**KG coverage**: over every (recent history item, candidate) pair of every user (the last
``recent`` = 10 items, as the type reads them) whose items are both linked to the graph: the
share whose items are within the hop limit in the *full* graph (every relation, no hub
skipped) for which the type finds a path (within the limit in its pruned graph); bar >= 80%.
The distribution of path lengths is over the same pairs, and over the paths the text shows
(one per candidate: the shortest from the most recent history item).

The section is printed and written into ``--out`` between ``<!-- bench_knowledge:begin -->``
and ``<!-- bench_knowledge:end -->``. This script is not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from _report import machine, peak_mb, write_section

SECTION = "bench_knowledge"
HOPS = 4


def setting(seed: int) -> tuple[Any, Any, list[np.ndarray], list[np.ndarray]]:
    import recai
    from recai.data import leave_one_out, sample_candidates

    data = recai.create("dataset", "movielens-100k.v1").dataset()
    split = leave_one_out(data)
    users = np.sort(split.test.users)
    cands = sample_candidates(split, n_negatives=19, seed=seed, users=users, short="drop")
    rng = np.random.default_rng(seed)
    histories, candidates = [], []
    for u, row in zip(cands.users.tolist(), cands.items.tolist(), strict=True):
        histories.append(data.interactions.history(u)[:-1])
        candidates.append(rng.permutation(np.asarray(row, dtype=np.int64)))
    return data, split, histories, candidates


def prompters(ranker: Any) -> dict[str, Any]:
    import recai

    def make(name: str, **params: Any) -> Any:
        return recai.create("knowledge_prompter", name, **params)

    types = {
        "attributes": make("knowledge-attributes.v1"),
        "cooccurrence": make("knowledge-cooccurrence.v1"),
        "i2i": make("knowledge-i2i.v1"),
        "u2i": make("knowledge-u2i.v1", ranker=ranker),
        "kgpaths": make("knowledge-kgpaths.v1", max_hops=HOPS),
        "recency": make("knowledge-recency.v1"),
    }
    blocks = [{"prompter": p} for p in types.values()]
    types["composite (all six, 400 tokens)"] = make(
        "knowledge-composite.v1", blocks=blocks, max_tokens=400
    )
    return types


def coverage(kg_type: Any, full: Any, histories: list, candidates: list) -> dict[str, Any]:
    """Pairs within the hop limit in the full graph, and those the type finds paths for."""
    linked = kg_type.kg.item_entity >= 0
    reachable = found = pairs = 0
    lengths: Counter[int] = Counter()
    shown: Counter[int] = Counter()
    rebuilt = tried = 0
    for hist, cands in zip(histories, candidates, strict=True):
        rec = _recent(hist, kg_type.params.recent)
        rec, cc = rec[linked[rec]], cands[linked[cands]]
        if not len(rec) or not len(cc):
            continue
        d_full = full.distances(rec, cc)
        d = kg_type.distances(rec, cc)
        ok = d_full <= HOPS
        ok &= rec[:, None] != cc[None, :]
        pairs += int(ok.size)
        reachable += int(ok.sum())
        got = ok & (d <= HOPS)
        found += int(got.sum())
        lengths.update(d[got].tolist())
        for j in range(d.shape[1]):
            best = int(d[:, j].min())
            if 0 < best <= HOPS:
                shown[best] += 1
                i = int(np.flatnonzero(d[:, j] == best)[0])
                tried += 1
                rebuilt += kg_type.path(int(rec[i]), int(cc[j]), best) is not None
    return {
        "pairs": pairs,
        "reachable": reachable,
        "found": found,
        "lengths": dict(sorted(lengths.items())),
        "shown": dict(sorted(shown.items())),
        "rebuilt": rebuilt,
        "tried": tried,
    }


def _recent(history: np.ndarray, n: int) -> np.ndarray:
    out: list[int] = []
    for item in history[::-1].tolist():
        if item not in out:
            out.append(item)
            if len(out) >= n:
                break
    return np.asarray(out, dtype=np.int64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranker", default="itemknn.v1", help="the ranker U2I reads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the section into this file")
    args = parser.parse_args(argv)

    import recai
    from recai.types import ItemList

    load = os.getloadavg()
    started = time.perf_counter()
    data, split, histories, candidates = setting(args.seed)
    t0 = time.perf_counter()
    ranker = recai.create("ranker", args.ranker)
    ranker.fit(split)
    ranker_fit = time.perf_counter() - t0
    rows = []
    total = 0.0
    for name, k in prompters(ranker).items():
        t0 = time.perf_counter()
        recai.ensure_fitted(k, split)
        fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        texts = [
            k.knowledge(history=ItemList(h), candidates=ItemList(c))
            for h, c in zip(histories, candidates, strict=True)
        ]
        seconds = time.perf_counter() - t0
        if not name.startswith("composite"):
            total += seconds
        tokens = [len(t) / 4 for t in texts]
        said = sum(bool(t) for t in texts)
        rows.append((name, fit, seconds, 1000 * seconds / len(texts), np.mean(tokens), said))
        print(f"{name}: fit {fit:.2f} s, {seconds:.2f} s for {len(texts)} users", file=sys.stderr)
        if name == "kgpaths":
            kg_type = k
            example = next(t for t in texts if t.count("\n") >= 3)
    full = recai.create(
        "knowledge_prompter",
        "knowledge-kgpaths.v1",
        max_hops=HOPS,
        max_degree=10**8,
        min_informativeness=0.0,
    )
    full.fit(split)
    cov = coverage(kg_type, full, histories, candidates)
    elapsed = time.perf_counter() - started

    n = len(histories)
    share = cov["found"] / max(cov["reachable"], 1)
    kept = kg_type.describe()
    lines = [
        "## recai-knowledge: knowledge extraction for every ML-100K user (`bench_knowledge.py`)",
        "",
        f"Command: `python benchmarks/bench_knowledge.py {shlex.join(sys.argv[1:])}`  ",
        f"Machine: {machine('numpy', 'scipy')}  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        f"Load average (1, 5, 15 min) when it started: {', '.join(f'{x:.1f}' for x in load)}; "
        f"peak memory {peak_mb():.0f} MiB; {elapsed:.0f} s in all.",
        "",
        f"The 20-candidate re-ranking setting: {n} users (all), MovieLens-100K with its Freebase "
        "graph, leave-one-out by time; history: every event but the held-out one; candidates: "
        "the held-out item and 19 uniform negatives, shuffled (seed "
        f"{args.seed}). Each type fitted on the training split, then `knowledge()` asked once "
        f"per user, one user at a time. U2I reads `{args.ranker}` (fitted in "
        f"{ranker_fit:.1f} s, not counted).",
        "",
        "| type | fit (s) | all users (s) | per user (ms) | tokens per user | users with text |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, fit, seconds, per, tokens, said in rows:
        lines.append(f"| {name} | {fit:.2f} | {seconds:.2f} | {per:.2f} | {tokens:.0f} | {said} |")
    verdict = "met" if total < 10 else "NOT met"
    lines += [
        "",
        f"**Bar: every type for all {n} users in under 10 s: {total:.2f} s ({verdict})** (the six "
        "types' extraction added up; the composite, which asks them again, is its own row). "
        "Tokens: characters / 4.",
        "",
        f"**KG paths** (hop limit {HOPS}; pruned: relations kept "
        f"{len(kept['relations_kept'])} of {len(kg_type.relation_stats)}, "
        f"{kept['hub_entities_skipped']} hub entities skipped): of {cov['pairs']:,} (recent "
        f"history item, candidate) pairs with both items linked, {cov['reachable']:,} are within "
        f"{HOPS} hops in the full graph; the type finds a path for {cov['found']:,} of them: "
        f"**{100 * share:.1f}%** (bar >= 80%: {'met' if share >= 0.8 else 'NOT met'}). "
        f"Paths rebuilt for the text: {cov['rebuilt']:,} of {cov['tried']:,}.",
        "",
        "| hops | pairs with a path | paths shown (one per candidate) |",
        "|---:|---:|---:|",
    ]
    for hops in range(1, HOPS + 1):
        lines.append(
            f"| {hops} | {cov['lengths'].get(hops, 0):,} | {cov['shown'].get(hops, 0):,} |"
        )
    dropped = [r for r, s in kg_type.relation_stats.items() if not s["kept"]]
    lines += [
        "",
        "Relations dropped as uninformative (informativeness < 0.25): "
        + ", ".join(f"`{r}` ({kg_type.relation_stats[r]['informativeness']:.2f})" for r in dropped)
        + ".",
        "",
        "An example of the KG type's text:",
        "",
        "```",
        example,
        "```",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.out:
        write_section(args.out, SECTION, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
