"""``recai eval RUN_DIR...``: compare run folders side by side (registered by :mod:`.plugin`).

Every later run is compared with the first, system by system, on the users both evaluated: the
mean difference with a paired bootstrap interval, and a paired test. Runs that measured different
data or protocols are refused (exit 2) unless ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``recai eval``'s arguments to ``parser`` (the kernel's command hook calls this)."""
    parser.description = (
        "Show the metrics of run folders (written by `recai run`) side by side. Every later "
        "run is compared with the first, system by system, on the users both evaluated: the "
        "mean difference with a paired bootstrap interval, and a paired test. Runs that "
        "measured different data or protocols are refused (exit 2) unless --force."
    )
    parser.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run folders; the first is the reference"
    )
    parser.add_argument(
        "--force", action="store_true", help="compare runs with different data or protocols (warns)"
    )
    parser.add_argument(
        "--test", choices=["t", "wilcoxon"], default="t", help="paired test (default: t)"
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=2000,
        help="paired bootstrap resamples, 1 to 100,000 (default 2000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        metavar="LEVEL",
        help="level of the paired intervals, between 0 and 1 (default 0.95)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--out", help="also write the Markdown comparison to this file")
    parser.add_argument(
        "--chart", metavar="PNG", help="also draw the first stage's metrics into this PNG"
    )
    parser.set_defaults(func=run)


def _output(option: str, value: str | None) -> None:
    """Refuse an output file that cannot be written, before the comparison runs."""
    from .compare import CompareError

    if value is None:
        return
    if not value.strip():
        raise CompareError(f"{option} is empty: give a file name")
    path = Path(value)
    if path.is_dir():
        raise CompareError(f"{option} {value}: is a folder; give a file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise CompareError(f"{option} {value}: {parent} is a file, not a folder")


def _write(option: str, path: str, write: Callable[[], object]) -> None:
    """Run ``write()``; an OS error is a :class:`CompareError` naming the option and file."""
    from .compare import CompareError

    try:
        write()
    except OSError as e:
        raise CompareError(f"{option} {path}: cannot write ({e.strerror or e})") from None


def run(args: argparse.Namespace) -> int:
    """Compare ``args.runs`` and print (or write) the comparison."""
    import json

    from recai.runtime import atomic_write_text, json_default

    from .compare import check_options, compare_runs, comparison_chart

    check_options(resamples=args.resamples, seed=args.seed, confidence=args.confidence)
    _output("--out", args.out)
    _output("--chart", args.chart)
    comparison = compare_runs(
        args.runs,
        force=args.force,
        test=args.test,
        resamples=args.resamples,
        seed=args.seed,
        confidence=args.confidence,
    )
    for stage in comparison.stages:
        for warning in stage.warnings:
            print(f"recai: warning: {warning}", file=sys.stderr)
    text = comparison.to_markdown()
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2, default=json_default))
    else:
        print(text, end="")
    if args.out is not None:
        _write("--out", args.out, lambda: atomic_write_text(args.out, text))
        print(f"wrote {args.out}", file=sys.stderr)
    if args.chart is not None:
        drawn: list[object] = []
        _write(
            "--chart", args.chart, lambda: drawn.append(comparison_chart(comparison, args.chart))
        )
        if drawn[0] is None:
            print("recai: warning: no chart (matplotlib is not installed)", file=sys.stderr)
        else:
            print(f"wrote {args.chart}", file=sys.stderr)
    return 0
