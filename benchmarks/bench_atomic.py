"""Benchmark of RecBole atomic-file reading: ``recai_datasets.atomic``'s hand-written numpy
reader against a reader built on pyarrow's CSV reader (issue 16 asked whether the library is as
fast), and polars, at bench_data's sizes (synthetic datasets of 10^5 to 10^7 interactions).

    .venv/bin/pip install pyarrow polars   # the compared libraries (not recai dependencies)
    flock /tmp/bench.lock python benchmarks/bench_atomic.py --out docs/performance.md
    python benchmarks/bench_atomic.py --sizes 1e5 1e6 --repeats 3

The pyarrow reader is the same module rewritten on Arrow (same API, same answers and errors; it
was committed, measured, and replaced by the hand-written one again): it is taken from git
(``--candidate-rev``) into a temporary folder and imported from there. Readers:

- **hand-written**: ``recai_datasets.atomic`` as it is (numpy over the file's bytes);
- **pyarrow**: ``atomic.py`` at the candidate commit (``pyarrow.csv`` splits the file into
  Arrow string columns, Arrow's compute functions convert them), its CSV reader on one thread,
  and on Arrow's thread pool (**pyarrow threads**, ``use_threads=True``, pyarrow's default);
- **polars**: ``polars.read_csv`` and polars expressions doing the same work (not a recai reader:
  what the library alone gives), for the first workload only.

Workloads, each in a fresh process per (repeat, size, reader), interleaved so that load from
other work on the machine falls on every reader alike; medians of ``--repeats`` runs:

- **read**: ``bench_data``'s read step: ``.inter`` + ``.item`` into interactions (users
  factorized in natural order, items coded against the item file, ratings, timestamps), item ids
  and titles as Python strings;
- **item columns**: what ``recbole-atomic.v1`` does with the ``.item`` file: item ids as strings,
  every ``token``/``token_seq`` column through ``distinct`` and ``spaced``, every ``float``
  column through ``decimals`` (the rows left parsed by Python).

Every reader must give the same answers (a hash of its outputs is compared). The clock starts
after the imports (the reader's module, and pyarrow or polars); the import time is its own row.
**ratio** = reader median / hand-written median (below 1: faster). The Markdown table is printed
and, with ``--out``, written between ``<!-- bench_atomic:begin -->`` and
``<!-- bench_atomic:end -->``. Needs pyarrow and polars installed (neither is a recai
dependency: ``pip install pyarrow polars``). This script is not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import machine, peak_mb, write_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "bench_atomic"
NAME = "synthetic"
MODULE_PATH = "plugins/recai-datasets/src/recai_datasets/atomic.py"
CANDIDATE_REV = "65c6d3d"  # the last commit with the pyarrow reader
READERS = ("hand-written", "pyarrow", "pyarrow threads", "polars")
WORKLOADS = ("read", "item columns")
TOLERANCE = 1.05  # "as fast": within 5% (run-to-run noise on a shared machine is larger)


# -- the readers ---------------------------------------------------------------------------------
def load_reader(reader: str, candidate: Path) -> Any:
    """The module whose ``read_atomic`` a reader uses (imported here, before any clock)."""
    if reader == "hand-written":
        import recai_datasets.atomic as module

        return module
    spec = importlib.util.spec_from_file_location("atomic_pyarrow", candidate)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._arrow()  # pyarrow itself
    module._THREADS = reader == "pyarrow threads"
    return module


def digest(*parts: Any) -> str:
    """A short hash of arrays and lists of strings (the answers every reader must share)."""
    import numpy as np

    h = hashlib.sha1()
    for part in parts:
        if isinstance(part, np.ndarray) and part.dtype != object:
            h.update(str(part.dtype).encode() + np.ascontiguousarray(part).tobytes())
        else:
            h.update("\x1e".join(map(str, list(part))).encode())
    return h.hexdigest()[:16]


def read_workload(atomic: Any, folder: Path) -> str:
    """bench_data's read step with ``atomic.read_atomic``."""
    import numpy as np

    inter = atomic.read_atomic(folder / f"{NAME}.inter", required=("user_id", "item_id"))
    items = atomic.read_atomic(folder / f"{NAME}.item", required=("item_id", "title"))
    ids, titles = items.text("item_id"), items.text("title")
    user_ids, users = inter.factorize("user_id", dtype=np.int32)
    item_codes = inter.codes("item_id", ids, dtype=np.int32)
    ratings = inter.floats("rating", dtype=np.float32)
    timestamps = inter.floats("timestamp")
    return digest(user_ids, users, item_codes, ratings, timestamps, ids, titles)


def item_columns_workload(atomic: Any, folder: Path) -> str:
    """recbole-atomic.v1's work on the item file, column by column."""
    table = atomic.read_atomic(folder / f"{NAME}.item", required=("item_id",))
    parts: list[Any] = [table.text("item_id")]
    for name, kind in table.types.items():
        if name == "item_id":
            continue
        if kind == "float":
            values, rows = table.decimals(name)
            left = [float(t) if t.strip() else float("nan") for t in table.texts(name, rows)]
            values[rows] = left
            parts.append(values)
        else:
            texts, codes = table.distinct(name)
            parts += [texts, codes, [table.spaced(name)]]
    return digest(*parts)


def polars_read(folder: Path) -> str:
    """The read workload in polars: the same outputs, from polars' own functions."""
    import numpy as np
    import polars as pl

    def frame(path: Path, columns: int | None = None) -> pl.DataFrame:
        with path.open(encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
        kinds = {h: (pl.Float64 if h.endswith(":float") else pl.String) for h in header}
        df = pl.read_csv(
            path,
            separator="\t",
            quote_char=None,
            schema_overrides=kinds,
            columns=header[:columns] if columns else None,
        )
        return df.rename({h: h.rpartition(":")[0] for h in df.columns})

    inter, items = frame(folder / f"{NAME}.inter"), frame(folder / f"{NAME}.item", 2)
    ids, titles = items["item_id"].to_list(), items["title"].to_list()
    users = inter["user_id"]
    prefix = users[0].rstrip("0123456789")
    numbers = users.str.strip_prefix(prefix).cast(pl.Int64, strict=False)
    if not users.str.starts_with(prefix).all() or numbers.null_count():
        raise SystemExit("polars reader: the synthetic user ids are a prefix and a number")
    uniq, codes = np.unique(numbers.to_numpy(), return_inverse=True)
    user_ids = [f"{prefix}{k}" for k in uniq.tolist()]
    item_codes = (
        inter["item_id"]
        .replace_strict(items["item_id"], pl.int_range(len(ids), eager=True), default=-1)
        .cast(pl.Int32)
        .to_numpy()
    )
    ratings = inter["rating"].cast(pl.Float32).to_numpy()
    timestamps = inter["timestamp"].to_numpy()
    return digest(user_ids, codes.astype(np.int32), item_codes, ratings, timestamps, ids, titles)


def step(reader: str, workload: str, folder: Path, candidate: Path) -> dict[str, Any]:
    start = time.perf_counter()
    if reader == "polars":
        import polars  # noqa: F401
    else:
        atomic = load_reader(reader, candidate)
    imported = time.perf_counter() - start
    start = time.perf_counter()
    if reader == "polars":
        answer = polars_read(folder)
    elif workload == "read":
        answer = read_workload(atomic, folder)
    else:
        answer = item_columns_workload(atomic, folder)
    seconds = time.perf_counter() - start
    return {"import_s": imported, "s": seconds, "peak_mb": peak_mb(), "answer": answer}


def run_step(*args: str) -> dict[str, Any]:
    """Run one step in a fresh interpreter; its JSON answer."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"step {args} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_files(n: int, folder: Path) -> float:
    """The synthetic dataset of ``n`` interactions as atomic files; their size in MB."""
    from recai.data import synthetic_dataset
    from recai.data.synthetic import write_atomic

    data = synthetic_dataset(n_users=n // 10, n_items=n // 10, mean_length=10, ratings=True)
    paths = write_atomic(data, folder, name=NAME)
    return sum(p.stat().st_size for p in paths.values()) / 1e6


# -- the report ----------------------------------------------------------------------------------
def power(n: int) -> str:
    exp = len(str(n)) - 1
    return f"10^{exp}" if n == 10**exp else f"{n:,}"


def report(command: str, rev: str, repeats: int, sizes: dict[int, float], runs: list) -> str:
    def median(key: str, n: int, workload: str, reader: str) -> float | None:
        xs = [r[key] for r in runs if (r["n"], r["workload"], r["reader"]) == (n, workload, reader)]
        return statistics.median(xs) if xs else None

    lines = [
        "## Atomic files: the hand-written reader against pyarrow and polars",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine('numpy', 'pyarrow', 'polars')}  ",
        f"Date: {dt.date.today().isoformat()}",
        "",
        f"Hand-written: `recai_datasets.atomic` as it is (numpy over the file's bytes); pyarrow: "
        f"`{MODULE_PATH}` at commit {rev}, the same API rewritten on Arrow (`pyarrow.csv` splits "
        "the file into string columns, Arrow compute converts them; CSV reader on one thread, or "
        "on Arrow's thread pool: pyarrow threads); polars: `polars.read_csv` and polars "
        "expressions (not a recai reader). Synthetic files as in bench_data (items = "
        "interactions / 10). Seconds of wall "
        f"time, medians of {repeats} runs, each in a fresh process, readers interleaved; imports "
        "not counted (see the last row); peak RSS of the process. ratio = reader / "
        "hand-written (below 1: faster). Workloads: **read** = bench_data's read step (`.inter` "
        "+ `.item` into users, items, ratings, timestamps, item ids, titles); **item columns** = "
        "what `recbole-atomic.v1` does with the `.item` file (`distinct`, `spaced`, `decimals` "
        "per column). Every reader gave the same answers.",
        "",
        "| interactions | files (MB) | workload | hand-written (s) | pyarrow (s) | ratio | "
        "pyarrow threads (s) | ratio | polars (s) | ratio | peak MB: hand-written / pyarrow "
        "/ polars |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def cell(x: float | None, base: float | None) -> tuple[str, str]:
        if x is None:
            return "–", "–"
        return f"{x:.3f}", (f"{x / base:.2f}" if base else "–")

    for n, mb in sizes.items():
        for workload in WORKLOADS:
            base = median("s", n, workload, "hand-written")
            cells = [cell(median("s", n, workload, r), base) for r in READERS]
            peaks = [
                median("peak_mb", n, workload, r) for r in ("hand-written", "pyarrow", "polars")
            ]
            peak = " / ".join("–" if p is None else f"{p:.0f}" for p in peaks)
            lines.append(
                f"| {power(n)} | {mb:.0f} | {workload} | {cells[0][0]} | {cells[1][0]} | "
                f"{cells[1][1]} | {cells[2][0]} | {cells[2][1]} | {cells[3][0]} | {cells[3][1]} "
                f"| {peak} |"
            )
    imports = [
        statistics.median([r["import_s"] for r in runs if r["reader"] == reader] or [float("nan")])
        for reader in READERS
    ]
    lines.append(
        f"| import | | module + library | {imports[0]:.3f} | {imports[1]:.3f} | | "
        f"{imports[2]:.3f} | | {imports[3]:.3f} | | |"
    )
    slower = []
    for n in sizes:
        for workload in WORKLOADS:
            base = median("s", n, workload, "hand-written")
            best = min(
                x
                for x in (median("s", n, workload, r) for r in ("pyarrow", "pyarrow threads"))
                if x is not None
            )
            if base and best > TOLERANCE * base:
                slower.append(f"{workload} at {power(n)} ({best / base:.2f})")
    verdict = (
        "as fast everywhere: the pyarrow reader may replace the hand-written one"
        if not slower
        else "NOT as fast: " + ", ".join(slower) + "; the hand-written reader stays"
    )
    lines += [
        "",
        f"As fast = the better pyarrow median (one thread or the pool) at most {TOLERANCE:.2f} x "
        f"the hand-written median, for every size and workload: {verdict}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["1e5", "1e6", "1e7"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--candidate-rev", default=CANDIDATE_REV, help="commit of the pyarrow reader"
    )
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to update")
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step and args.step[0] == "write":
        print(json.dumps({"mb": write_files(int(args.step[1]), Path(args.step[2]))}))
        return
    if args.step:
        reader, workload, folder, candidate = args.step
        print(json.dumps(step(reader, workload, Path(folder), Path(candidate))))
        return

    command = "python benchmarks/bench_atomic.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    have_polars = importlib.util.find_spec("polars") is not None
    with tempfile.TemporaryDirectory(prefix="recai-bench-atomic-") as tmp:
        root = Path(tmp)
        candidate = root / "atomic_pyarrow.py"
        source = subprocess.run(
            ["git", "show", f"{args.candidate_rev}:{MODULE_PATH}"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout
        candidate.write_text(source)
        rev = subprocess.run(
            ["git", "rev-parse", "--short", args.candidate_rev],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout.strip()
        sizes = {}
        for size in args.sizes:
            n = int(float(size))
            sizes[n] = run_step("write", str(n), str(root / str(n)))["mb"]  # (a small parent:
            # a child's peak RSS starts from its parent's at the fork)
            print(f"{power(n)}: {sizes[n]:.0f} MB of files", flush=True)
        runs = []
        for repeat in range(args.repeats):
            for n in sizes:
                for workload in WORKLOADS:
                    answers = {}
                    for reader in READERS:
                        if reader == "polars" and (workload != "read" or not have_polars):
                            continue
                        r = run_step(reader, workload, str(root / str(n)), str(candidate))
                        answers[reader] = r.pop("answer")
                        runs.append({"n": n, "workload": workload, "reader": reader, **r})
                        print(
                            f"repeat {repeat} {power(n)} {workload} {reader}: {r['s']:.3f} s, "
                            f"{r['peak_mb']:.0f} MB",
                            flush=True,
                        )
                    if len(set(answers.values())) != 1:
                        raise SystemExit(f"readers disagree at {power(n)} {workload}: {answers}")
    section = report(command.strip(), rev, args.repeats, sizes, runs)
    print()
    print(section)
    if args.out is not None:
        write_section(args.out, SECTION, section)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
