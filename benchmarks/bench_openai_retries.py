"""Retries of recai-openai's ``openai.v1`` against the ``openai`` SDK's own, on the same faults.

    python benchmarks/bench_openai_retries.py --out docs/performance.md

Issue 16 asked whether the SDK's built-in retries (``OpenAI(max_retries=n)``; they honour
``Retry-After``) can replace ``recai_openai/retry.py``. This script answers with measurements: the
server is ``recai serve``'s ``LLMServer`` on loopback with each fault injected in front of it (HTTP 5xx, 404, 429 with
``Retry-After``, delays past the timeout, dropped connections, a cut-off JSON body), and the same
request goes through

- **sdk**: ``openai.OpenAI(max_retries=n)``, everything else default (its backoff is fixed at
  0.5 s doubling to 8 s, less up to 25 % jitter; ``Retry-After`` is honoured up to 120 s);
- **recai**: ``openai.v1`` with ``max_retries=n`` and its default backoff (``backoff_base`` 0.5 s,
  ``backoff_max`` 30 s, equal jitter; ``Retry-After`` plus up to 10 %, up to ``max_retry_after``).

For each: whether it got the answer, how many requests the server saw, the seconds it took, and
the start of the error it raised. Then **herds**: ``--clients`` clients, each with its own client
object, send one request at once and each gets a 429 with ``Retry-After`` (or a 500); the table
gives how far apart their retries reach the backend (max - min of the arrival times), over
``--rounds`` rounds.

The Markdown section is printed and written into ``--out`` between the markers
``<!-- bench_openai_retries:begin -->`` and ``<!-- bench_openai_retries:end -->`` (the rest of the
file is kept). Not part of the test suite; it takes about 30 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _report import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "bench_openai_retries"
KEY_ENV = "RECAI_BENCH_RETRIES_KEY"


def make_server() -> Any:
    import recai
    from recai.testing.faults import FaultPlan
    from recai.types import Completion, Usage
    from recai_serve.server import LLMServer

    class Recorder(recai.LLMBackend):
        """Answers at once and records when each request reached it."""

        def __init__(self) -> None:
            self.arrivals: list[float] = []
            self._lock = threading.Lock()

        def chat(self, messages: Any, **options: Any) -> Completion:
            with self._lock:
                self.arrivals.append(time.perf_counter())
            return Completion("ok", "stop", Usage(3, 1))

    backend = Recorder()
    faults = FaultPlan()
    server = LLMServer(backend, model="m", middleware=[faults.middleware])
    server.faults = faults  # where the scenarios queue them
    return server, backend


def sdk_call(base_url: str, retries: int, timeout: float, model: str = "m") -> Callable[[], Any]:
    import openai

    client = openai.OpenAI(
        base_url=base_url,
        api_key="EMPTY",
        max_retries=retries,
        timeout=openai.Timeout(timeout, connect=10.0),
    )
    messages = [{"role": "user", "content": "hi"}]
    return lambda: client.chat.completions.create(model=model, messages=messages)


def recai_call(
    base_url: str, retries: int, timeout: float, model: str = "m", **params: Any
) -> Callable[[], Any]:
    import recai
    from recai.types import Message

    llm = recai.create(
        "llm_backend",
        "openai.v1",
        model=model,
        base_url=base_url,
        api_key_env=KEY_ENV,
        max_retries=retries,
        timeout=timeout,
        **params,
    )
    return lambda: llm.chat([Message.user("hi")])


# fault, what it shows, max_retries, timeout, recai-only params, model asked for
SCENARIOS: list[tuple[str, str, int, float, dict[str, Any], str]] = [
    ("500:times=2", "two 500s, then the answer", 3, 10.0, {}, "m"),
    ("503:times=3", "503 on every attempt (retries run out)", 2, 10.0, {}, "m"),
    ("", "404: an unknown model (not retryable)", 3, 10.0, {}, "no-such-model"),
    ("429:retry-after=0.4", "429, Retry-After 0.4 s", 1, 10.0, {}, "m"),
    (
        "429:retry-after=3",
        "429, Retry-After 3 s; recai max_retry_after = 1",
        1,
        10.0,
        {"max_retry_after": 1.0},
        "m",
    ),
    ("429:retry-after=121", "429, Retry-After 121 s (over 120)", 1, 10.0, {}, "m"),
    ("delay:seconds=0.6,times=2", "no answer within 0.2 s, twice", 1, 0.2, {}, "m"),
    ("drop", "connection closed without an answer", 1, 10.0, {}, "m"),
    ("malformed", "200 with a cut-off JSON body", 3, 10.0, {}, "m"),
]


def run_scenarios(server: Any) -> list[dict[str, Any]]:
    rows = []
    for fault, label, retries, timeout, extra, model in SCENARIOS:
        for client in ("sdk", "recai"):
            if client == "sdk":
                call = sdk_call(server.base_url, retries, timeout, model=model)
            else:
                call = recai_call(server.base_url, retries, timeout, model=model, **extra)
            server.faults.clear()
            server.stats.reset()
            if fault:
                server.faults.add(fault)
            start = time.perf_counter()
            error = ""
            try:
                call()
                answered = True
            except Exception as e:  # noqa: BLE001 - the error is what is measured
                answered = False
                error = f"{type(e).__name__}: {e}"
            seconds = time.perf_counter() - start
            time.sleep(0.05)  # a timed-out request still sleeping on the server ends
            rows.append(
                {
                    "fault": fault or "-",
                    "label": label,
                    "max_retries": retries,
                    "client": client,
                    "answered": answered,
                    "requests": server.stats.requests,
                    "seconds": seconds,
                    "error": error,
                }
            )
            print(
                f"{label:50s} {client:5s} answered={answered!s:5s} "
                f"requests={server.stats.requests} {seconds:6.2f} s {error[:100]}",
                file=sys.stderr,
            )
    return rows


def herd(server: Any, backend: Any, client: str, fault: str, clients: int) -> tuple[float, float]:
    """Seconds between the first and the last of the clients' first requests to reach the server,
    and between the first and the last of their retries to reach the backend."""
    make = sdk_call if client == "sdk" else recai_call
    calls = [make(server.base_url, 2, 10.0) for _ in range(clients)]
    server.faults.clear()

    def together() -> None:
        barrier = threading.Barrier(clients)

        def go(call: Callable[[], Any]) -> None:
            barrier.wait()
            call()

        threads = [threading.Thread(target=go, args=(c,)) for c in calls]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # warm up, all at once: every client has an open connection (openai.v1's backends share one
    # pool, which would otherwise open 15 connections at once during the herd) and its lazy
    # imports done
    together()
    firsts: list[float] = []
    take = server.faults.take

    def timed_take() -> Any:
        firsts.append(time.perf_counter())
        return take()

    server.faults.take = timed_take
    server.faults.add(fault, times=clients)
    backend.arrivals.clear()
    try:
        together()
    finally:
        del server.faults.take
    retries = backend.arrivals
    if len(retries) != clients or len(firsts) != 2 * clients:
        raise RuntimeError(
            f"{client}: {len(firsts)} requests and {len(retries)} answers for {clients} clients"
        )
    first = sorted(firsts)[:clients]
    return max(first) - min(first), max(retries) - min(retries)


def run_herds(server: Any, backend: Any, clients: int, rounds: int) -> list[dict[str, Any]]:
    rows = []
    for fault, label in (
        ("429:retry-after=0.5", "429 with Retry-After 0.5 s"),
        ("500", "500 (no Retry-After): first backoff"),
    ):
        for client in ("sdk", "recai"):
            got = [herd(server, backend, client, fault, clients) for _ in range(rounds)]
            firsts = [1000 * f for f, _ in got]
            spreads = [1000 * r for _, r in got]
            rows.append(
                {
                    "label": label,
                    "client": client,
                    "first_ms": statistics.median(firsts),
                    "median_ms": statistics.median(spreads),
                    "min_ms": min(spreads),
                    "max_ms": max(spreads),
                }
            )
            print(f"herd {label:40s} {client:5s} {rows[-1]}", file=sys.stderr)
    return rows


def markdown(
    scen: list[dict[str, Any]], herds: list[dict[str, Any]], args: Any, server: Any
) -> str:
    server_name = f"{type(server).__module__}.{type(server).__name__}"
    cmd = (
        "python benchmarks/bench_openai_retries.py"
        + (
            f" --clients {args.clients} --rounds {args.rounds}"
            if (args.clients, args.rounds) != (16, 5)
            else ""
        )
        + (f" --out {args.out}" if args.out else "")
    )
    out = [
        "## LLM client: the openai SDK's retries against openai.v1's (`bench_openai_retries.py`)",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {machine('openai')}  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        f"The server is `{server_name}` on loopback, the fault injected in front of it; **sdk** is "
        "`openai.OpenAI(max_retries=n)` with its defaults (backoff 0.5 s doubling to 8 s, less up "
        "to 25 %; `Retry-After` honoured up to 120 s, not configurable), **recai** is `openai.v1` "
        "with `max_retries=n` and its defaults (backoff 0.5 s doubling to 30 s, equal jitter; "
        "`Retry-After` plus up to 10 %, up to `max_retry_after` = 120 s). *requests*: what the "
        "server saw; *error*: the start of what the caller got.",
        "",
        "| fault | max_retries | client | answered | requests | seconds | error |",
        "|---|---:|---|---|---:|---:|---|",
    ]
    for r in scen:
        err = r["error"].replace("|", "\\|").replace("\n", " ")
        if len(err) > 150:
            err = err[:147] + "..."
        out.append(
            f"| {r['label']} | {r['max_retries']} | {r['client']} | "
            f"{'yes' if r['answered'] else 'no'} | {r['requests']} | {r['seconds']:.2f} | "
            f"{err or '-'} |"
        )
    out += [
        "",
        f"**Herds**: {args.clients} clients (each its own client object) send one request at the "
        "same moment and each gets the fault once; how far apart their retries reach the backend "
        f"(max - min arrival, ms), over {args.rounds} rounds.",
        "",
        "| fault | client | first requests: median spread ms | retries: median spread ms | min | max |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in herds:
        out.append(
            f"| {r['label']} | {r['client']} | {r['first_ms']:.1f} | {r['median_ms']:.1f} | "
            f"{r['min_ms']:.1f} | "
            f"{r['max_ms']:.1f} |"
        )
    out += ["", *summary(scen, herds)]
    return "\n".join(out) + "\n"


def summary(scen: list[dict[str, Any]], herds: list[dict[str, Any]]) -> list[str]:
    """What the tables say, computed from them."""
    by = {(r["label"], r["client"]): r for r in scen}
    labels = list(dict.fromkeys(r["label"] for r in scen))
    capped = next(lb for lb in labels if "max_retry_after" in lb)
    same = [lb for lb in labels if by[lb, "sdk"]["requests"] == by[lb, "recai"]["requests"]]
    failed = {
        c: [r for r in scen if r["client"] == c and not r["answered"]] for c in ("sdk", "recai")
    }
    counted = {
        c: sum("attempt" in r["error"] or "not retried" in r["error"] for r in rows)
        for c, rows in failed.items()
    }
    herd = {(r["label"], r["client"]): r["median_ms"] for r in herds}
    ra = next(r["label"] for r in herds if "Retry-After" in r["label"])
    return [
        f"- Same requests from both on {len(same)} of {len(labels)} faults (5xx, 404, "
        "timeouts, dropped connections, cut-off body, Retry-After within limits); the "
        f"exception: {capped}, where the SDK waited {by[capped, 'sdk']['seconds']:.2f} s and "
        f"retried ({by[capped, 'sdk']['requests']} requests) and openai.v1 refused at once "
        f"({by[capped, 'recai']['requests']} request): the SDK has no setting for the longest "
        "wait it accepts.",
        f"- Errors that say whether, and how often, the request was tried: SDK "
        f"{counted['sdk']} of its {len(failed['sdk'])} failed calls, openai.v1 "
        f"{counted['recai']} of {len(failed['recai'])}.",
        f"- Herds after a Retry-After: the SDK's retries arrived within {herd[ra, 'sdk']:.0f} ms "
        f"of each other (it waits exactly what the server said), openai.v1's within "
        f"{herd[ra, 'recai']:.0f} ms (up to 10 % added).",
        "- Kept: `recai_openai/retry.py` (the SDK's retries stay off); see "
        "plugins/recai-openai/README.md, section Retries.",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="clients in a herd (default 16)")
    parser.add_argument("--rounds", type=int, default=5, help="herds per row (default 5)")
    parser.add_argument("--out", type=Path, help="write the section into this Markdown file")
    args = parser.parse_args(argv)
    os.environ.setdefault(KEY_ENV, "EMPTY")
    logging.basicConfig(level=logging.WARNING)
    server, backend = make_server()
    with server:
        scen = run_scenarios(server)
        herds = run_herds(server, backend, args.clients, args.rounds)
    text = markdown(scen, herds, args, server)
    print(text)
    if args.out:
        write_section(args.out, SECTION, text)


if __name__ == "__main__":
    main()
