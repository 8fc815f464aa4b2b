"""The planner on the held-out request set: the rule floor, the untuned SmolLM2-135M under the plan
schema, a tuned planner, any OpenAI-compatible model; with 95% intervals (issue 19).

The held-out requests come from :mod:`recai_agent.requests` (split ``test``: templates,
phrasings and titles never used for training) over MovieLens-100K, the first ``--n`` of the
``--size`` generated with ``--seed``. ``--split sealed`` measures the sealed family instead
(its own templates, year phrasings, genre synonyms and titles, never read to fix the rules:
the rules were fixed on the ``test`` family's errors, so that score is optimistic); ``--split
train`` the training family. Each planner plans every request; :mod:`recai_agent.
plannereval` scores validity, exact plans, tool choice and per-slot precision/recall/F1.

Planners (``--planners``, comma-separated):

- ``rules``: the slot extractor's plan (the floor);
- ``untuned``: ``hf.v1`` with the embedded SmolLM2-135M, the full planner prompt, decoded under
  the plan schema by recai-hf's JSON constraint (no re-asks: ``json_repairs = 0``);
- ``tuned:PATH``: ``hf.v1`` with the tuned folder PATH, the prompt it was trained on and the
  backend params it runs with (``PATH/tune.json``: the schema is not appended to its prompt);
- ``openai:BASE_URL:MODEL``: ``openai.v1`` (key from ``$OPENAI_API_KEY``), the full prompt, the
  schema as ``response_format``;
- any of them with ``+rules`` appended: the model's plan merged with the rules' (the rules win
  where they are certain, the model's other values kept; the model's answers are reused from the
  plain spec when it ran first); ``+certain``: merged the same way, keeping only what the rules
  leave open (how to rank, vague years), none of the model's other values;
- any of them with ``@N`` appended: only the first N of the measured requests (a slow planner on
  a smaller sample; its row says how many).

    python benchmarks/bench_planner.py [--n 100] [--planners rules,untuned,tuned:runs/planner]
        [--split test|sealed|train] [--threads 2] [--json benchmarks/results/bench_planner.json]
        [--out docs/performance.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import machine, peak_mb, write_section

import recai
from recai_agent.plannereval import SLOTS, LLMPlanner, RulePlanner, run
from recai_agent.requests import SPLITS, generate, read_jsonl

SECTION = "bench_planner"
_LABEL = {
    "test": "Held-out request",
    "sealed": "Sealed held-out request (never read to fix the rules)",
    "train": "Training-family",
}
_TITLE = {
    "test": "Planner on held-out requests",
    "sealed": "Planner on sealed held-out requests",
    "train": "Planner on training-family requests",
}


_BACKENDS: dict[str, Any] = {}  # one backend (and one memo of its answers) per model
_MEMOS: dict[str, dict[Any, str]] = {}


def _hf(key: str, **params: Any) -> tuple[Any, dict[Any, str]]:
    if key not in _BACKENDS:
        _BACKENDS[key] = recai.create("llm_backend", "hf.v1", **params)
        _MEMOS[key] = {}
    return _BACKENDS[key], _MEMOS[key]


def _planner(spec: str, catalog: Any, threads: int | None, free: bool = False) -> Any:
    strict = spec.endswith("+certain")
    combine = strict or spec.endswith("+rules")
    base = spec.removesuffix("+rules").removesuffix("+certain")
    hf: dict[str, Any] = {"json_repairs": 0}
    if threads:
        hf["threads"] = threads
    if base == "rules":
        return RulePlanner(catalog)
    if base == "untuned":
        llm, memo = _hf("untuned", **hf)
        return LLMPlanner(
            llm,
            catalog,
            name=spec,
            combine=combine,
            constrain=not free,
            memo=memo,
            model_values=not strict,
        )
    if base.startswith("tuned:"):
        path = base.split(":", 1)[1]
        info_path = Path(path) / "tune.json"
        prompt, run_as = "short", {"schema_prompt": False}
        if info_path.is_file():
            info = json.loads(info_path.read_text())
            prompt = info.get("prompt", "short")
            run_as = {k: v for k, v in info.get("hf_params", run_as).items() if k != "model"}
        llm, memo = _hf(path, model=path, **{**hf, **run_as})
        return LLMPlanner(
            llm,
            catalog,
            name=spec,
            prompt=prompt,
            combine=combine,
            constrain=not free,
            memo=memo,
            model_values=not strict,
        )
    if base.startswith("openai:"):
        _, rest = base.split(":", 1)
        url, _, model = rest.rpartition(":")
        llm = recai.create(
            "llm_backend", "openai.v1", model=model, base_url=url, api_key="${OPENAI_API_KEY}"
        )
        return LLMPlanner(llm, catalog, name=spec, combine=combine, model_values=not strict)
    raise SystemExit(f"unknown planner {spec!r} (rules, untuned, tuned:PATH, openai:URL:MODEL)")


def _cell(v: dict[str, float], key: str = "value") -> str:
    low, high = v.get(f"{key}_low", v.get("low")), v.get(f"{key}_high", v.get("high"))
    return f"{v[key]:.3f} [{low:.3f}, {high:.3f}]"


def table(results: list[dict[str, Any]]) -> str:
    head = "| planner | valid | exact plan | tools | " + " | ".join(
        f"{k} F1" for k in (*SLOTS, "all")
    )
    lines = [head + " | s/request |", "|" + "---|" * (7 + len(SLOTS))]
    lines[0] = lines[0].replace("| planner |", "| planner | requests |")
    for r in results:
        slots = " | ".join(_cell(r["slots"][k], "f1") for k in (*SLOTS, "all"))
        speed = (
            "the model's answers above" if r.get("reused") else f"{r['seconds_per_request']:.3f}"
        )
        lines.append(
            f"| {r['planner']} | {r['n']} | {_cell(r['valid'])} | {_cell(r['exact'])} | "
            f"{_cell(r['tools'])} | {slots} | {speed} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="held-out requests measured")
    ap.add_argument("--size", type=int, default=600, help="held-out requests generated")
    ap.add_argument("--seed", type=int, default=0, help="seed of the set and the bootstrap")
    ap.add_argument("--planners", default="rules,untuned")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for hf.v1")
    ap.add_argument(
        "--free",
        action="store_true",
        help="hf.v1 planners decode without the JSON constraint (a tuned planner's own output)",
    )
    ap.add_argument(
        "--requests",
        help="score this held-out JSONL set (`recai agent-requests`, e.g. with LLM paraphrases, "
        "kinds '<kind>+paraphrase') instead of generating one",
    )
    ap.add_argument("--batch", type=int, default=8, help="requests per chat_batch call")
    ap.add_argument("--json", help="write the results (without per-request rows) here")
    ap.add_argument("--rows", help="write every planner's per-request rows here (JSONL)")
    ap.add_argument("--out", help="write a section into this Markdown file")
    ap.add_argument(
        "--split",
        default="test",
        help="the request family generated: 'test' (held out from training; the rules were "
        "fixed on its errors), 'sealed' (held out from training and from the rules' fixes) or "
        "'train' (the training family, for checking that a planner was not fitted to one)",
    )
    ap.add_argument(
        "--section",
        help=f"the section of --out written (default {SECTION}, {SECTION}_SPLIT for another "
        "--split; another name keeps it)",
    )
    ap.add_argument("--title", help="its heading (default: the split's)")
    args = ap.parse_args(argv)
    if args.split not in SPLITS:
        print(
            f"{ap.prog}: error: --split {args.split!r} is not a request family "
            f"({', '.join(SPLITS)})",
            file=sys.stderr,
        )
        return 2
    if args.section is None:
        args.section = SECTION if args.split == "test" else f"{SECTION}_{args.split}"
    if args.title is None:
        args.title = _TITLE[args.split]

    ds = recai.create("dataset", "movielens-100k.v1", kg=False).dataset()
    catalog = ds.catalog
    counts = np.bincount(ds.interactions.items, minlength=catalog.n_items)
    if args.requests:
        held = [r for r in read_jsonl(args.requests) if r.split == args.split][: args.n]
        if not held:
            raise SystemExit(f"{args.requests}: no requests of split {args.split}")
    else:
        held = generate(catalog, args.split, args.size, seed=args.seed, counts=counts)[: args.n]
    results = []
    for spec in [s.strip() for s in args.planners.split(",") if s.strip()]:
        spec, _, first = spec.partition("@")  # "untuned@100": the first 100 requests only
        subset = held[: int(first)] if first else held
        planner = _planner(spec, catalog, args.threads, args.free)
        start = time.perf_counter()
        result = run(planner, subset, catalog, batch=args.batch, seed=args.seed)
        result["wall_s"] = time.perf_counter() - start
        result["reused"] = getattr(planner, "asked", None) == 0 and bool(subset)
        results.append(result)
        if args.rows:  # after each planner: a later one failing loses nothing
            with open(args.rows, "a" if len(results) > 1 else "w") as f:
                for row in result["rows"]:
                    f.write(json.dumps({"planner": result["planner"], **row}) + "\n")
        print(
            f"{spec}: valid {_cell(result['valid'])}, exact {_cell(result['exact'])}, "
            f"slot F1 {_cell(result['slots']['all'], 'f1')}, "
            f"{result['seconds_per_request']:.3f} s/request",
            file=sys.stderr,
            flush=True,
        )
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    text = (
        (
            f"Held-out request set: {len(held)} requests of {args.requests} over MovieLens-100K"
            if args.requests
            else f"{_LABEL[args.split]} set: "
            f"{len(held)} of {args.size} generated requests (split {args.split}, seed "
            f"{args.seed}) over MovieLens-100K"
        )
        + f"; Wilson 95% intervals for shares, bootstrap 95% over "
        f"requests for F1 (seed {args.seed}). {when}, load average {load:.1f} at the end; "
        f"{machine('torch', 'transformers')}; peak memory {peak_mb():.0f} MiB.\n\n"
        + table(results)
        + "\n\nCommand: `python benchmarks/"
        + " ".join(shlex.quote(a) for a in ["bench_planner.py", *(argv or sys.argv[1:])])
        + "`"
    )
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        slim = [{k: v for k, v in r.items() if k != "rows"} for r in results]
        Path(args.json).write_text(json.dumps(slim, indent=1) + "\n")
    if args.out:
        write_section(Path(args.out), args.section, f"## {args.title}\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
