"""Benchmark of recai-openai's ``openai.v1``: framework overhead per call, and throughput as the
concurrency limit grows.

    python benchmarks/bench_llm_client.py --out docs/performance.md

The server is ``recai serve``'s :class:`recai_serve.server.LLMServer` (Starlette on uvicorn, from
the recai-serve plugin) on loopback, in a process of its own (so that it does not share the
client's interpreter lock), serving a backend defined here:

- **overhead**: an *instant* backend (a fixed 5-token answer, no model time). The same requests
  (one system and one user message, ``max_tokens=16``, ``temperature=0``) go through the raw
  ``openai`` client (``client.chat.completions.create``, then the text and usage read) and
  through ``openai.v1`` (``llm.chat``), one call of each in turn (the order rotating), every call
  timed, ``--calls`` x ``--rounds`` calls of each after a warm-up, one kept-alive connection each.
  **overhead** = median openai.v1 call - median raw call (means are shown too). Also timed:
  openai.v1 with its response cache (every call a miss, so each one is also written to the
  SQLite file; and every call a hit, which sends nothing).
  **framework only** times ``llm.chat`` with the HTTP call replaced by a function returning a
  ready answer object: the cost of recai's own code per call, without the network's noise.
- **scaling**: a backend that sleeps ``--sleep`` seconds per request, the server unbounded;
  ``--requests`` conversations through ``llm.chat_batch`` at each ``max_concurrency``.

The Markdown section is printed and written into ``--out`` between the markers
``<!-- bench_llm_client:begin -->`` and ``<!-- bench_llm_client:end -->`` (the rest of the file
is kept), with the command, the machine and the date. This script is not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from _report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "bench_llm_client"  # its block in docs/performance.md
BAR_MS = 1.0


# -- the server process ----------------------------------------------------------------------------
def serve(kind: str, sleep: float) -> None:
    """Run in a child process: serve the instant or the sleeping backend, print the address."""
    import recai
    from recai.types import Completion, Usage
    from recai_serve.server import LLMServer

    class Instant(recai.LLMBackend):
        def chat(self, messages, **options):
            return Completion("a fixed five word answer", "stop", Usage(12, 5))

    class Sleeper(recai.LLMBackend):
        def chat(self, messages, **options):
            time.sleep(sleep)
            return Completion("slept", "stop", Usage(12, 1))

    server = LLMServer(Instant() if kind == "instant" else Sleeper(), model=kind)
    print(server.base_url, flush=True)
    server.serve_forever()


class Server:
    def __init__(self, kind: str, sleep: float = 0.0):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--sleep", str(sleep)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http://"):
            self.proc.kill()
            raise RuntimeError("the server did not start")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# -- measurements ----------------------------------------------------------------------------------
def backend(base_url: str, model: str, **params: Any) -> Any:
    import recai

    return recai.create(
        "llm_backend",
        "openai.v1",
        model=model,
        base_url=base_url,
        api_key_env="RECAI_BENCH_NO_KEY",
        **params,
    )


def step_overhead(calls: int, rounds: int) -> dict[str, Any]:
    import openai

    from recai.types import Message

    messages = [Message.system("You are terse."), Message.user("Recommend one film.")]
    dicts = [m.to_dict() for m in messages]
    out: dict[str, Any] = {}
    with Server("instant") as server, tempfile.TemporaryDirectory() as tmp:
        raw = openai.OpenAI(base_url=server.base_url, api_key="EMPTY", max_retries=0)
        llm = backend(server.base_url, "instant", max_retries=0)
        miss = backend(
            server.base_url, "instant", max_retries=0, cache=str(Path(tmp) / "miss.sqlite")
        )
        hit = backend(
            server.base_url, "instant", max_retries=0, cache=str(Path(tmp) / "hit.sqlite")
        )
        hit.chat(messages, max_tokens=16, temperature=0.0)
        counter = iter(range(10**9))

        def run_raw() -> None:
            r = raw.chat.completions.create(
                model="instant", messages=dicts, max_tokens=16, temperature=0.0
            )
            _ = (
                r.choices[0].message.content,
                r.choices[0].finish_reason,
                r.usage.prompt_tokens,
                r.usage.completion_tokens,
            )

        def run_ours() -> None:
            llm.chat(messages, max_tokens=16, temperature=0.0)

        def run_miss() -> None:  # a new question every call: a miss, then a write
            miss.chat(
                [messages[0], Message.user(f"Recommend film {next(counter)}.")],
                max_tokens=16,
                temperature=0.0,
            )

        def run_raw_distinct() -> None:  # the same distinct questions, raw (the miss's baseline)
            d = [dicts[0], {"role": "user", "content": f"Recommend film {next(counter)}."}]
            r = raw.chat.completions.create(
                model="instant", messages=d, max_tokens=16, temperature=0.0
            )
            _ = (r.choices[0].message.content, r.usage.prompt_tokens)

        def run_hit() -> None:
            hit.chat(messages, max_tokens=16, temperature=0.0)

        fns = {
            "raw": run_raw,
            "ours": run_ours,
            "raw_distinct": run_raw_distinct,
            "miss": run_miss,
            "hit": run_hit,
        }
        for fn in fns.values():  # warm-up: connections, caches, code paths
            for _ in range(max(50, calls // 5)):
                fn()
        # one call of each path in turn (rotating the order), each call timed: load on the
        # machine hits every path alike, and medians ignore the calls a spike slowed down
        per_call: dict[str, list[float]] = {k: [] for k in fns}
        names = list(fns)
        for r in range(rounds):
            for i in range(calls):
                k = (r * calls + i) % len(names)
                for name in names[k:] + names[:k]:
                    start = time.perf_counter()
                    fns[name]()
                    per_call[name].append((time.perf_counter() - start) * 1000)
        out["ms"] = {k: statistics.median(v) for k, v in per_call.items()}
        out["mean_ms"] = {k: statistics.fmean(v) for k, v in per_call.items()}
        out["overhead_ms"] = out["ms"]["ours"] - out["ms"]["raw"]
        out["overhead_mean_ms"] = out["mean_ms"]["ours"] - out["mean_ms"]["raw"]
        out["miss_overhead_ms"] = out["ms"]["miss"] - out["ms"]["raw_distinct"]
        out["server_requests_checked"] = (
            llm.totals()["calls"],
            hit.totals()["calls"],
            hit.totals()["cached_calls"],
        )

        # framework only: the HTTP call replaced by a ready answer
        answer = raw.chat.completions.create(
            model="instant", messages=dicts, max_tokens=16, temperature=0.0
        )
        stub = backend(server.base_url, "instant", max_retries=0)
        stub._client = SimpleNamespace(
            chat=SimpleNamespace(completions=SimpleNamespace(create=lambda **kw: answer))
        )
        n = 20_000
        for _ in range(2000):
            stub.chat(messages, max_tokens=16, temperature=0.0)
        best = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                stub.chat(messages, max_tokens=16, temperature=0.0)
            best.append((time.perf_counter() - start) / n * 1e6)
        out["framework_us"] = statistics.median(best)
    out["calls"], out["rounds"] = calls, rounds
    return out


def step_scaling(requests: int, sleep: float, limits: list[int]) -> dict[str, Any]:
    from recai.types import Message

    rows = []
    with Server("sleeper", sleep) as server:
        warm = backend(server.base_url, "sleeper", max_concurrency=max(limits))
        warm.chat_batch([[Message.user("warm")]] * max(limits))
        for limit in limits:
            llm = backend(server.base_url, "sleeper", max_concurrency=limit, timeout=120)
            convs = [[Message.user(f"request {i}")] for i in range(requests)]
            start = time.perf_counter()
            out = llm.chat_batch(convs)
            seconds = time.perf_counter() - start
            assert len(out) == requests and llm.totals()["calls"] == requests
            rows.append({"limit": limit, "seconds": seconds, "rps": requests / seconds})
    base = rows[0]["seconds"]
    for r in rows:
        r["speedup"] = base / r["seconds"]
        r["efficiency"] = r["speedup"] / (r["limit"] / rows[0]["limit"])
        r["ideal_s"] = requests * sleep / r["limit"]
    return {"requests": requests, "sleep": sleep, "rows": rows}


# -- the report ------------------------------------------------------------------------------------
def report(command: str, over: dict[str, Any], scale: dict[str, Any]) -> str:
    ms, mean = over["ms"], over["mean_ms"]
    met = max(over["overhead_ms"], over["overhead_mean_ms"]) < BAR_MS
    verdict = "met" if met else "NOT met"
    lines = [
        "## LLM client: openai.v1 overhead and concurrency",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine('openai', 'starlette', 'uvicorn')}  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        "The server is `recai serve`'s `LLMServer` (recai-serve: Starlette on uvicorn; before "
        "issue 16 it was the kernel's threaded `http.server`) on loopback in its own process. "
        "**Overhead**: "
        "an instant backend (no model time); the same requests through the raw `openai` client and "
        "through `openai.v1`, one call of each path in turn (order rotating), every call timed, "
        f"{over['calls'] * over['rounds']:,} calls per path after a warm-up; **median** and mean "
        "ms per call. **Framework only**: `openai.v1`'s `chat` with the HTTP call replaced by a "
        "ready answer object (median of 5 runs of 20,000 calls).",
        "",
        "| path | median ms | vs raw (median) | mean ms |",
        "|---|---:|---:|---:|",
        *[
            f"| {label} | {ms[k]:.3f} | {vs} | {mean[k]:.3f} |"
            for label, k, vs in [
                ("raw `openai` client, `chat.completions.create`", "raw", "—"),
                ("`openai.v1` `chat` (no cache)", "ours", f"{ms['ours'] - ms['raw']:+.3f}"),
                ("raw client, a new question each call", "raw_distinct", "—"),
                (
                    "`openai.v1` with cache, every call a miss (+ SQLite write)",
                    "miss",
                    f"{ms['miss'] - ms['raw_distinct']:+.3f}",
                ),
                (
                    "`openai.v1` with cache, every call a hit (no request)",
                    "hit",
                    f"{ms['hit'] - ms['raw']:+.3f}",
                ),
            ]
        ],
        "",
        f"Framework only (recai's code per call, no HTTP): {over['framework_us']:.1f} µs.  ",
        f"Bar: overhead per call under {BAR_MS:g} ms: {over['overhead_ms']:.3f} ms by medians, "
        f"{over['overhead_mean_ms']:.3f} ms by means ({verdict}).",
        "",
        f"**Scaling**: {scale['requests']} requests through `chat_batch`, the backend sleeping "
        f"{scale['sleep'] * 1000:g} ms per request, the server unbounded.",
        "",
        "| max_concurrency | seconds | requests/s | speed-up | efficiency | ideal seconds |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in scale["rows"]:
        lines.append(
            f"| {r['limit']} | {r['seconds']:.3f} | {r['rps']:.1f} | {r['speedup']:.2f}x "
            f"| {r['efficiency']:.0%} | {r['ideal_s']:.3f} |"
        )
    last = scale["rows"][-1]
    lines += [
        "",
        f"Speed-up at max_concurrency = {last['limit']}: {last['speedup']:.2f}x "
        f"({last['efficiency']:.0%} of linear).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--serve", choices=["instant", "sleeper"], help=argparse.SUPPRESS)
    p.add_argument(
        "--calls", type=int, default=500, help="calls of each path per round (default 500)"
    )
    p.add_argument("--rounds", type=int, default=4, help="rounds (default 4)")
    p.add_argument(
        "--requests", type=int, default=64, help="requests per concurrency limit (default 64)"
    )
    p.add_argument(
        "--sleep",
        type=float,
        default=0.05,
        help="seconds the scaling backend sleeps (default 0.05)",
    )
    p.add_argument("--limits", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--out", type=Path, help="write the section into this Markdown file")
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.sleep)
        return
    given = list(argv if argv is not None else sys.argv[1:])
    command = ("python benchmarks/bench_llm_client.py " + shlex.join(given)).strip()
    over = step_overhead(args.calls, args.rounds)
    print(over, file=sys.stderr)
    scale = step_scaling(args.requests, args.sleep, args.limits)
    print(scale, file=sys.stderr)
    section = report(command, over, scale)
    print(section)
    if args.out:
        write_section(args.out, SECTION, section)


if __name__ == "__main__":
    main()
