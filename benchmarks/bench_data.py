"""Benchmark of recai's data layer: MovieLens-100K load time, and generate + write + read of
synthetic datasets from 10^5 to 10^7 interactions, against pandas reading the same files.

    python benchmarks/bench_data.py                       # 10^5, 10^6, 10^7 interactions
    python benchmarks/bench_data.py --sizes 1e5 1e6 --out docs/performance.md

Every size runs in fresh subprocesses, one per step that is measured for memory, so each peak
RSS (``ru_maxrss``, read in the subprocess when it ends) belongs to that step alone:

- **recai**: generate (``recai.data.synthetic_dataset``, items = interactions / 10 unless given
  as ``N:I``), write (``recai.data.synthetic.write_atomic``: ``.inter`` + ``.item``), then read
  back into a :class:`recai.data.Dataset` (interactions, item ids and titles) with
  ``recai_datasets.atomic`` and check that it equals what was generated;
- **baseline**: ``pandas.read_csv`` of the same two files, ids turned into indices with
  ``pandas.factorize`` / ``Index.get_indexer`` (the same work); ``numpy.loadtxt`` of the numeric
  columns when pandas is not installed (pandas is not a recai dependency: ``pip install pandas``);
- **loader**: the ``recbole-atomic.v1`` dataset component (every catalog column typed), when
  it is installed.

The Markdown table is printed and written into ``--out`` between the markers
``<!-- bench_data:begin -->`` and ``<!-- bench_data:end -->`` (the rest of the file is kept),
with the command, the machine and the date. This script is not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import machine, peak_mb, write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "bench_data"  # its block in docs/performance.md
NAME = "synthetic"
BAR_SECONDS, BAR_MB, BAR_ML100K = 60.0, 2048.0, 1.0


# -- the steps, each run in its own process ----------------------------------------------------
def step_ml100k() -> dict[str, Any]:
    start = time.perf_counter()
    import recai

    try:
        recai.create("dataset", "movielens-100k.v1").dataset()
    except recai.RecaiError as e:
        return {"error": str(e).splitlines()[0]}
    cold = time.perf_counter() - start
    start = time.perf_counter()
    data = recai.create("dataset", "movielens-100k.v1").dataset()
    warm = time.perf_counter() - start
    return {"cold_s": cold, "warm_s": warm, "interactions": len(data.interactions)}


def read_back(folder: Path) -> Any:
    """The atomic files as a recai Dataset: interactions, item ids and titles."""
    import numpy as np

    from recai.data import Catalog, Dataset, Interactions
    from recai_datasets.atomic import read_atomic

    inter = read_atomic(folder / f"{NAME}.inter", required=("user_id", "item_id", "timestamp"))
    items = read_atomic(folder / f"{NAME}.item", required=("item_id", "title"))
    ids, titles = items.text("item_id"), items.text("title")
    user_ids, users = inter.factorize("user_id")
    item_codes = inter.codes("item_id", ids)
    if len(item_codes) and item_codes.min() < 0:
        raise SystemExit("an interaction names an item missing from the item file")
    timestamps = inter.floats("timestamp").astype(np.int64)
    ratings = inter.floats("rating") if "rating" in inter.types else None
    interactions = Interactions(
        users,
        item_codes,
        n_users=len(user_ids),
        n_items=len(ids),
        timestamps=timestamps,
        ratings=ratings,
    )
    catalog = Catalog(ids=np.array(ids, dtype=object), titles=np.array(titles, dtype=object))
    return Dataset(NAME, catalog, interactions, user_ids=user_ids)


def step_recai(n: int, n_items: int, folder: Path) -> dict[str, Any]:
    import recai_datasets.atomic  # noqa: F401  (imported before the clock starts)
    from recai.data import synthetic_dataset
    from recai.data.synthetic import write_atomic

    out: dict[str, Any] = {}
    start = time.perf_counter()
    data = synthetic_dataset(n_users=n // 10, n_items=n_items, mean_length=10, ratings=True)
    out["generate_s"] = time.perf_counter() - start
    out["peak_generate_mb"] = peak_mb()
    start = time.perf_counter()
    paths = write_atomic(data, folder, name=NAME)
    out["write_s"] = time.perf_counter() - start
    out["peak_write_mb"] = peak_mb()
    out["rows"] = len(data.interactions)
    out["file_mb"] = sum(p.stat().st_size for p in paths.values()) / 1e6
    fingerprint = data.interactions.fingerprint()
    ids, titles = data.catalog.ids.tolist(), data.catalog.titles.tolist()
    del data
    start = time.perf_counter()
    back = read_back(folder)
    out["read_s"] = time.perf_counter() - start
    out["round_trip_equal"] = bool(
        back.interactions.fingerprint() == fingerprint
        and back.catalog.ids.tolist() == ids
        and back.catalog.titles.tolist() == titles
    )
    out["peak_mb"] = peak_mb()
    return out


def step_baseline(folder: Path) -> dict[str, Any]:
    try:
        import pandas as pd
    except ImportError:
        import numpy as np

        start = time.perf_counter()
        values = np.loadtxt(folder / f"{NAME}.inter", skiprows=1, usecols=(2, 3))
        return {
            "tool": f"numpy {np.__version__} loadtxt (numeric columns only)",
            "read_s": time.perf_counter() - start,
            "rows": len(values),
            "peak_mb": peak_mb(),
        }
    start = time.perf_counter()
    inter_path, item_path = folder / f"{NAME}.inter", folder / f"{NAME}.item"
    opts = {"sep": "\t", "quoting": csv.QUOTE_NONE, "keep_default_na": False}
    head = inter_path.open().readline().rstrip("\n").split("\t")
    df = pd.read_csv(inter_path, dtype={head[0]: str, head[1]: str}, **opts)
    items = pd.read_csv(item_path, usecols=[0, 1], dtype=str, **opts)
    users, user_ids = pd.factorize(df[head[0]], sort=True)
    item_codes = pd.Index(items.iloc[:, 0]).get_indexer(df[head[1]])
    ratings = df[head[2]].to_numpy()
    timestamps = df[head[3]].to_numpy()
    titles = items.iloc[:, 1].tolist()
    assert len(users) == len(item_codes) == len(ratings) == len(timestamps) and titles
    return {
        "tool": f"pandas {pd.__version__} read_csv + factorize",
        "read_s": time.perf_counter() - start,
        "rows": len(df),
        "users": len(user_ids),
        "peak_mb": peak_mb(),
    }


def step_loader(folder: Path) -> dict[str, Any]:
    import recai

    try:
        source = recai.create("dataset", "recbole-atomic.v1", path=str(folder), name=NAME)
    except recai.RecaiError as e:
        return {"error": str(e).splitlines()[0]}
    start = time.perf_counter()  # the clock starts once the component is built (imports done)
    data = source.dataset()
    return {
        "load_s": time.perf_counter() - start,
        "rows": len(data.interactions),
        "peak_mb": peak_mb(),
    }


def run_step(*args: str) -> dict[str, Any]:
    """Run one step in a fresh interpreter; its JSON answer."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"step {args} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the report --------------------------------------------------------------------------------
def fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def power(n: int) -> str:
    exp = len(str(n)) - 1
    return f"10^{exp}" if n == 10**exp else f"{n:,}"


def report(command: str, ml: dict[str, Any], results: list[dict[str, Any]]) -> str:
    lines = [
        "## Data layer: load, generate, write, read",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine('numpy', 'pandas')}  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        "What is measured (seconds of wall time; peak RSS of a fresh process per step):",
        "",
        '- **ML-100K**: `recai.create("dataset", "movielens-100k.v1").dataset()` in a fresh '
        "process: cold (first call, with imports) and warm (a second component loading again).",
        "- **generate**: `synthetic_dataset(n_users=N/10, n_items=I, mean_length=10, ratings=True)`;"
        " **write**: `write_atomic` (`.inter` + `.item`); **read**: both files back into a "
        "`Dataset` (interactions, item ids, titles) with `recai_datasets.atomic`, checked equal to "
        "what was generated. Peak RSS covers all three in one process.",
        "- **baseline**: the same read with pandas (`read_csv` of both files, then `factorize` / "
        "`get_indexer` for the ids) in its own process; **ratio** = recai read / baseline read.",
        "- **loader**: the `recbole-atomic.v1` component (every catalog column typed, checks and "
        "reports), in its own process.",
        "",
    ]
    if "error" in ml:
        lines.append(f"ML-100K: not measured ({ml['error']}).")
    else:
        verdict = "meets" if ml["cold_s"] < BAR_ML100K else "misses"
        lines.append(
            f"ML-100K ({ml['interactions']:,} interactions): cold {ml['cold_s']:.2f} s, warm "
            f"{ml['warm_s']:.2f} s ({verdict} the bar of {BAR_ML100K:.0f} s)."
        )
    lines += [
        "",
        "| interactions | items | files (MB) | generate (s) | write (s) | read (s) | baseline "
        "read (s) | ratio | gen+write+read (s) | peak RSS (MB) | baseline peak (MB) | loader (s) "
        "| loader peak (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        a, b, c = r["recai"], r["baseline"], r["loader"]
        total = a["generate_s"] + a["write_s"] + a["read_s"]
        lines.append(
            f"| {power(r['n'])} | {power(r['items'])} | {a['file_mb']:.0f} | "
            f"{a['generate_s']:.2f} | {a['write_s']:.2f} | {a['read_s']:.2f} | "
            f"{fmt(b.get('read_s'))} | {fmt(a['read_s'] / b['read_s'] if b.get('read_s') else None)} "
            f"| {total:.1f} | {a['peak_mb']:.0f} | {fmt(b.get('peak_mb'), 0)} | "
            f"{fmt(c.get('load_s'))} | {fmt(c.get('peak_mb'), 0)} |"
        )
    tools = sorted({r["baseline"].get("tool", "") for r in results} - {""})
    lines += ["", f"Baseline: {'; '.join(tools) or 'none'}."]
    skipped = sorted({r["loader"]["error"] for r in results if "error" in r["loader"]})
    if skipped:
        lines.append(f"Loader not measured: {'; '.join(skipped)}.")
    largest = max(results, key=lambda r: r["n"]) if results else None
    if largest is not None:
        a = largest["recai"]
        total = a["generate_s"] + a["write_s"] + a["read_s"]
        ok = total < BAR_SECONDS and a["peak_mb"] < BAR_MB and a["round_trip_equal"]
        lines.append(
            f"Bar at {power(largest['n'])} interactions: generate + write + read under "
            f"{BAR_SECONDS:.0f} s and {BAR_MB / 1024:.0f} GB: {total:.1f} s, "
            f"{a['peak_mb']:.0f} MB, round trip {'equal' if a['round_trip_equal'] else 'DIFFERENT'}"
            f" ({'met' if ok else 'NOT met'})."
        )
    return "\n".join(lines) + "\n"


def parse_size(text: str) -> tuple[int, int]:
    n, _, items = text.partition(":")
    count = int(float(n))
    return count, int(float(items)) if items else max(1, count // 10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=["1e5", "1e6", "1e7"],
        help="interaction counts, optionally N:ITEMS (default items: N/10)",
    )
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to update")
    parser.add_argument("--no-loader", action="store_true", help="skip recbole-atomic.v1")
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        kind, *rest = args.step
        if kind == "ml100k":
            result = step_ml100k()
        elif kind == "recai":
            result = step_recai(int(rest[0]), int(rest[1]), Path(rest[2]))
        elif kind == "baseline":
            result = step_baseline(Path(rest[0]))
        else:
            result = step_loader(Path(rest[0]))
        print(json.dumps(result))
        return

    command = "python benchmarks/bench_data.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    ml = run_step("ml100k")
    print("ML-100K:", ml, flush=True)
    results = []
    for size in args.sizes:
        n, n_items = parse_size(size)
        with tempfile.TemporaryDirectory(prefix="recai-bench-") as tmp:
            a = run_step("recai", str(n), str(n_items), tmp)
            if not a["round_trip_equal"]:
                raise SystemExit(f"the round trip at {n} interactions is not equal")
            b = run_step("baseline", tmp)
            c = {"error": "skipped (--no-loader)"} if args.no_loader else run_step("loader", tmp)
        results.append({"n": n, "items": n_items, "recai": a, "baseline": b, "loader": c})
        print(f"{power(n)}:", {"recai": a, "baseline": b, "loader": c}, flush=True)
    section = report(command.strip(), ml, results)
    print()
    print(section)
    if args.out is not None:
        write_section(args.out, SECTION, section)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
