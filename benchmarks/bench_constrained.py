"""Benchmark of catalog-constrained decoding (recai-hf) against unconstrained generation.

    python benchmarks/bench_constrained.py                              # measure and print
    python benchmarks/bench_constrained.py --out docs/performance.md    # and write the section

Data: the 1,682 titles of MovieLens-100K (``movielens-100k.v1``) and ``--users`` real users
(every user with at least 20 ratings, taken at an even stride), each described by the last
``--history`` films they rated 4 or more, in time order. Model: the embedded
SmolLM2-135M-Instruct through ``hf.v1``, greedy, the same prompts and the same
``--max-tokens`` with and without the constraint, ``chat_batch`` with ``--batch`` conversations
per ``generate`` call.

Two tasks:

- **span** (RecLM-cgen's form): a one-shot prompt asks for titles between ``<item>`` and
  ``</item>`` inside free text; constrained = :class:`recai_hf.constrained.CatalogConstraint`
  (``mode="span"``). An item is the text of a complete span.
- **list**: "recommend 5 films, one title per line"; constrained =
  ``CatalogConstraint(mode="list", n_items=5)`` (the reply is exactly 5 titles). An item is a
  non-empty line, with list markers (``1.``, ``-``, ``*``) and quotes stripped.

Grounding is an exact title match. Out of catalog = items that are no catalog title / items;
repeated = items named twice in one reply; from history = items among the user's own liked films
(the constrained runs exclude them, per conversation, with ``CatalogConstraint.excluding``).
A reply cut by ``--max-tokens`` (finish reason ``length``) is not charged for its cut-off last
item: an open span or a last line without its newline counts as unfinished, not as an item. tokens/s = generated tokens (end-of-sequence
included) / wall time of ``chat_batch``; constrained and unconstrained runs alternate,
``--repeats`` times after a warm-up, and the table shows medians. The time spent inside the
constraint's processor is measured as well (the constraint's own cost, independent of how long
the replies are). Compile: the trie of the 1,682 titles built from nothing, then read back from
a disk cache in a new process-like state (memory cache cleared). The bar: 0% out of catalog
with the constraint, and constrained tokens/s at least 80% of unconstrained.

The Markdown section is printed and written into ``--out`` between the markers
``<!-- bench_constrained:begin -->`` and ``<!-- bench_constrained:end -->``. This script is not
part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "bench_constrained"  # its block in docs/performance.md
BAR = 0.80
SYSTEM_SPAN = "You recommend movies. Always write a movie title between <item> and </item>."
SHOT_USER = "I liked Heat (1995). What should I watch?"
SHOT_REPLY = "Try <item>Casino (1995)</item> and <item>GoodFellas (1990)</item>."
SYSTEM_LIST = "You recommend movies. Answer with movie titles only, one title per line."
MARKER = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")


def users_and_histories(dataset: Any, n_users: int, history: int) -> list[list[int]]:
    import numpy as np

    inter = dataset.interactions
    counts = np.bincount(inter.users, minlength=inter.n_users)
    eligible = np.nonzero(counts >= 20)[0]
    chosen = eligible[np.linspace(0, len(eligible) - 1, n_users).astype(int)]
    out = []
    for u in chosen:
        rows = np.nonzero(inter.users == u)[0]
        rows = rows[np.argsort(inter.timestamps[rows], kind="stable")]
        liked = [int(inter.items[r]) for r in rows if inter.ratings[r] >= 4]
        out.append(liked[-history:])
    return out


def conversations(titles: list[str], histories: list[list[int]]) -> dict[str, list[Any]]:
    from recai.types import Message

    span, lst = [], []
    for h in histories:
        liked = ", ".join(titles[i] for i in h)
        span.append(
            [
                Message.system(SYSTEM_SPAN),
                Message.user(SHOT_USER),
                Message.assistant(SHOT_REPLY),
                Message.user(f"I liked {liked}. What should I watch next?"),
            ]
        )
        lst.append(
            [
                Message.system(SYSTEM_LIST),
                Message.user(f"I liked {liked}. Recommend 5 other movies."),
            ]
        )
    return {"span": span, "list": lst}


def items_of(task: str, text: str, cut: bool) -> tuple[list[str], bool]:
    """The item strings of a reply and whether its last item was left unfinished (``cut``: the
    reply ran out of ``max_tokens``, so a last line without its newline is a title's start)."""
    if task == "span":
        found = re.findall(r"<item>(.*?)</item>", text, flags=re.DOTALL)
        rest = re.sub(r"<item>.*?</item>", "", text, flags=re.DOTALL)
        return found, "<item>" in rest
    lines = text.split("\n")
    unfinished = cut and not text.endswith("\n") and bool(lines[-1].strip())
    if unfinished:
        lines = lines[:-1]
    out = []
    for line in lines:
        line = MARKER.sub("", line).strip().strip('"').strip()
        if line:
            out.append(line)
    return out, unfinished


def grounding(
    task: str, done: list[Any], catalog: set[str], histories: list[set[str]]
) -> dict[str, Any]:
    items = unknown = repeated = unfinished = from_history = 0
    examples: list[str] = []
    for completion, history in zip(done, histories, strict=True):
        found, open_item = items_of(task, completion.text, completion.finish_reason == "length")
        unfinished += open_item
        seen: set[str] = set()
        for s in found:
            items += 1
            if s not in catalog:
                unknown += 1
                if len(examples) < 3:
                    examples.append(s)
            elif s in seen:
                repeated += 1
            elif s in history:
                from_history += 1
            seen.add(s)
    return {
        "items": items,
        "out_of_catalog": unknown,
        "repeated": repeated,
        "from_history": from_history,
        "unfinished": unfinished,
        "ooc_rate": unknown / items if items else 0.0,
        "examples": examples,
    }


class Timed:
    """Wraps a bindable processor and adds up the seconds its bound processors take."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.seconds = 0.0

    def bind(self, context: Any) -> Any:
        start = time.perf_counter()
        proc = self.inner.bind(context)
        self.seconds += time.perf_counter() - start

        def timed(input_ids: Any, scores: Any) -> Any:
            t0 = time.perf_counter()
            out = proc(input_ids, scores)
            self.seconds += time.perf_counter() - t0
            return out

        return timed


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import recai
    from recai_hf import constrained
    from recai_hf.backend import HFBackend
    from recai_hf.constrained import CatalogConstraint, compile_trie

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    dataset = recai.create("dataset", "movielens-100k.v1", kg=False).dataset()
    catalog = dataset.catalog
    titles = [str(t) for t in catalog.titles]
    llm = HFBackend(model="smollm2", batch_size=args.batch).load()
    tok = llm.tokenizer
    result: dict[str, Any] = {"n_titles": len(titles), "compile": {}}
    with tempfile.TemporaryDirectory(prefix="recai-bench-trie-") as cache:
        for name, prefix, suffix in (("span", "<item>", "</item>"), ("list", "\n", "\n")):
            constrained._MEMORY.clear()
            start = time.perf_counter()
            trie = compile_trie(titles, tok, prefix=prefix, suffix=suffix, cache_dir=cache)
            first = time.perf_counter() - start
            constrained._MEMORY.clear()
            start = time.perf_counter()
            again = compile_trie(titles, tok, prefix=prefix, suffix=suffix, cache_dir=cache)
            from_disk = time.perf_counter() - start
            assert again.info["source"] == "disk", again.info
            files = list(Path(cache).glob(f"trie-{trie.key[:32]}.npz"))
            result["compile"][name] = {
                **{k: trie.info[k] for k in ("n_paths", "n_nodes", "n_edges", "max_path_tokens")},
                **{k: trie.info[k] for k in ("duplicate_titles", "merged_with_prefix")},
                "compile_s": first,
                "disk_s": from_disk,
                "nbytes": trie.nbytes,
                "file_bytes": files[0].stat().st_size,
            }
        constrained._OPENERS.clear()
        start = time.perf_counter()
        constrained._opener_tables(tok, "<item>", int(llm.hf_model.config.vocab_size))
        result["compile"]["opener_s"] = time.perf_counter() - start
    histories = users_and_histories(dataset, args.users, args.history)
    convs = conversations(titles, histories)
    in_catalog = set(titles)
    liked = [{titles[i] for i in h} for h in histories]
    result["users"] = len(histories)
    result["tasks"] = []
    for task in ("span", "list"):
        if task == "span":
            constraint = CatalogConstraint.from_catalog(catalog, mode="span")
        else:
            constraint = CatalogConstraint.from_catalog(catalog, mode="list", n_items=5)
        timed = Timed(constraint.excluding(histories))  # never the user's own films

        def run(kind: str, _task: str = task, _timed: Timed = timed) -> tuple[float, list[Any]]:
            procs = [_timed] if kind == "constrained" else []
            start = time.perf_counter()
            done = llm.chat_batch(
                convs[_task], max_tokens=args.max_tokens, temperature=0, logits_processors=procs
            )
            return time.perf_counter() - start, done

        run("constrained"), run("unconstrained")  # warm-up
        times: dict[str, list[float]] = {"constrained": [], "unconstrained": []}
        inside: list[float] = []
        last: dict[str, list[Any]] = {}
        for _ in range(args.repeats):
            for kind in ("constrained", "unconstrained"):
                timed.seconds = 0.0
                wall, done = run(kind)
                times[kind].append(wall)
                if kind == "constrained":
                    inside.append(timed.seconds / wall)
                texts = [c.text for c in done]
                if kind in last and [c.text for c in last[kind]] != texts:
                    raise SystemExit(f"{task}/{kind}: greedy outputs differ between runs")
                last[kind] = done
        row: dict[str, Any] = {"task": task}
        for kind in ("constrained", "unconstrained"):
            done = last[kind]
            row[kind] = grounding(task, done, in_catalog, liked)
            row[kind]["seconds"] = statistics.median(times[kind])
            row[kind]["all_seconds"] = times[kind]
            row[kind]["tokens"] = sum(c.usage.completion_tokens for c in done)
            row[kind]["tps"] = row[kind]["tokens"] / row[kind]["seconds"]
            row[kind]["sample"] = done[0].text
        row["ratio"] = row["constrained"]["tps"] / row["unconstrained"]["tps"]
        row["processor_share"] = statistics.median(inside)
        result["tasks"].append(row)
        print(json.dumps(row), file=sys.stderr)
    result["threads"] = torch.get_num_threads()
    return result


# -- the report ----------------------------------------------------------------------------------
def report(command: str, r: dict[str, Any], loads: str, args: argparse.Namespace) -> str:
    lines = [
        "## Constrained decoding: catalog titles with and without the trie",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine('torch', 'transformers')}  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        f"Catalog: the {r['n_titles']:,} MovieLens-100K titles. Prompts: {r['users']} real users, "
        f"each with the last {args.history} films they rated 4+, greedy, at most "
        f"{args.max_tokens} new tokens, {args.batch} conversations per `generate` call; model "
        f"SmolLM2-135M-Instruct (embedded) through `hf.v1` on CPU, {r['threads']} torch "
        f"thread(s). Load average (1, 5, 15 min) at the start: {loads}.",
        "",
        "| task | decoding | items | out of catalog | repeated | from history | unfinished "
        "| tokens | seconds | tokens/s | ratio | in processor |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in r["tasks"]:
        for kind in ("unconstrained", "constrained"):
            k = t[kind]
            ratio = f"{t['ratio']:.3f}" if kind == "constrained" else ""
            share = f"{t['processor_share']:.1%}" if kind == "constrained" else ""
            lines.append(
                f"| {t['task']} | {kind} | {k['items']} | {k['out_of_catalog']} "
                f"({k['ooc_rate']:.1%}) | {k['repeated']} | {k['from_history']} | "
                f"{k['unfinished']} | {k['tokens']} | "
                f"{k['seconds']:.2f} | {k['tps']:.1f} | {ratio} | {share} |"
            )
    lines += ["", "Out-of-catalog examples without the constraint: "]
    for t in r["tasks"]:
        ex = ", ".join(f"`{e}`" for e in t["unconstrained"]["examples"]) or "none"
        lines[-1] += f"{t['task']}: {ex}. "
    lines[-1] = lines[-1].rstrip()
    lines += [
        "",
        "| trie | paths | nodes | edges | longest path (tokens) | equal titles | compile (s) | "
        "from disk (s) | arrays | file |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("span", "list"):
        c = r["compile"][name]
        lines.append(
            f"| {name} | {c['n_paths']:,} | {c['n_nodes']:,} | {c['n_edges']:,} | "
            f"{c['max_path_tokens']} | {c['duplicate_titles']} | {c['compile_s']:.3f} | "
            f"{c['disk_s']:.3f} | {c['nbytes'] / 2**20:.2f} MiB | {c['file_bytes'] / 2**20:.2f} MiB |"
        )
    worst = min(t["ratio"] for t in r["tasks"])
    ooc = max(t["constrained"]["out_of_catalog"] for t in r["tasks"])
    met = "met" if worst >= BAR and ooc == 0 else "NOT met"
    lines += [
        "",
        f"The `<item>` opener automaton over the vocabulary took {r['compile']['opener_s']:.2f} s "
        "to build (once per tokenizer and opener, kept in memory). *compile* includes tokenizing "
        "every title in context; *from disk* reads the cached `.npz` (memory cache cleared). "
        "*in processor*: share of the constrained wall time spent inside the constraint. "
        "*unfinished*: a span still open, or a last list line without its newline, when "
        "`max_tokens` ran out (not counted as an item). *from history*: catalog items the user "
        "had listed as liked (the constrained runs exclude each user's films per conversation "
        "with `CatalogConstraint.excluding`). "
        "tokens/s compares different replies (the constrained ones have other lengths); the "
        "processor share is the constraint's own cost.",
        f"Bar: 0% out of catalog with the constraint ({ooc} found) and constrained tokens/s >= "
        f"{BAR:.0%} of unconstrained (lowest ratio {worst:.3f}): {met}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=32)
    p.add_argument("--history", type=int, default=6)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", type=Path, help="write the section into this Markdown file")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    given = list(argv if argv is not None else sys.argv[1:])
    command = ("python benchmarks/bench_constrained.py " + shlex.join(given)).strip()
    try:
        loads = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        loads = "unknown"
    result = measure(args)
    section = report(command, result, loads, args)
    print(section)
    if args.out:
        write_section(args.out, SECTION, section)


if __name__ == "__main__":
    main()
