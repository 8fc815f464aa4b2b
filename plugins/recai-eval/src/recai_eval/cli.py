"""``recai eval RUN_DIR...``: compare run folders side by side (registered by :mod:`.plugin`).

Every later run is compared with the first, system by system, on the users both evaluated: the
mean difference with a paired bootstrap interval, and a paired test. Runs that measured different
data or protocols are refused (exit 2) unless ``--force``.
"""

from __future__ import annotations

import argparse
import sys


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
        "--resamples", type=int, default=2000, help="paired bootstrap resamples (default 2000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--out", help="also write the Markdown comparison to this file")
    parser.add_argument(
        "--chart", metavar="PNG", help="also draw the first stage's metrics into this PNG"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compare ``args.runs`` and print (or write) the comparison."""
    import json

    from recai.runtime import atomic_write_text, json_default

    from .compare import compare_runs, comparison_chart

    comparison = compare_runs(
        args.runs, force=args.force, test=args.test, resamples=args.resamples, seed=args.seed
    )
    for stage in comparison.stages:
        for warning in stage.warnings:
            print(f"recai: warning: {warning}", file=sys.stderr)
    text = comparison.to_markdown()
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2, default=json_default))
    else:
        print(text, end="")
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    if args.chart:
        if comparison_chart(comparison, args.chart) is None:
            print("recai: warning: no chart (matplotlib is not installed)", file=sys.stderr)
        else:
            print(f"wrote {args.chart}", file=sys.stderr)
    return 0
