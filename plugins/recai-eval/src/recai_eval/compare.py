"""Side-by-side comparison of run folders, with paired tests: what ``recai eval`` prints.

Each run folder (written by ``recai run``) holds ``metrics.json`` with one report per stage;
the ranking evaluators also leave per-user values (``stages/<stage>.per_user.npz``). Comparing
runs:

- stages are matched by name (two runs with one stage each are matched whatever the names);
- the runs of a stage must have measured the same thing: same dataset, split, protocol, data
  fingerprint and catalog size where both reports say. Otherwise :class:`CompareError` (exit
  code 2), unless ``force=True``, which compares anyway and prints the differences as warnings.
  Different seeds are only a warning (a seed is part of what is being compared);
- a table shows every run's systems with their means and 95% intervals;
- every later run is compared with the first (the reference), system by system (same name, or
  the only system of each): on the users (or events) both evaluated, the mean difference with a
  paired bootstrap interval and p-value, and a paired t-test or Wilcoxon signed-rank test
  (scipy; without it, a sign-flip permutation test). The statistics are the kernel's
  (:mod:`recai.stats`); :func:`paired_test` is re-exported here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recai.errors import RecaiError
from recai.stats import PairedTest, paired_bootstrap, paired_test
from recai.types import Report

from .peruser import PerUser, load_per_user, per_user_file

__all__ = [
    "CompareError",
    "Run",
    "Pair",
    "StageComparison",
    "Comparison",
    "load_run",
    "compare_runs",
    "paired_test",
    "SAME_KEYS",
]

SAME_KEYS: tuple[str, ...] = (
    "dataset",
    "split",
    "protocol",
    "data_fingerprint",
    "catalog_items",
    "candidates",
)
"""``report.info`` keys that must agree between runs of one stage (where both reports have them)."""


class CompareError(RecaiError):
    """Runs that cannot be compared: not a run folder, or different data or protocols."""


@dataclass
class Run:
    """A run folder: its label (the folder name), ``metrics.json`` and reports by stage."""

    path: Path
    label: str
    data: dict[str, Any]
    stages: dict[str, Report]

    def per_user(self, stage: str) -> PerUser | None:
        """The stage's per-user values, or ``None`` when the run has none."""
        report = self.stages[stage]
        rel = report.info.get("per_user") or per_user_file(stage)
        path = self.path / str(rel)
        if not path.is_file():
            return None
        try:
            return load_per_user(path)
        except ValueError:
            return None


def load_run(path: Path | str, label: str | None = None) -> Run:
    """Read a run folder; :class:`CompareError` says why a folder is not one.

    >>> load_run("/nonexistent/run")
    Traceback (most recent call last):
    ...
    recai_eval.compare.CompareError: /nonexistent/run: no such folder
    """
    p = Path(path)
    if not p.exists():
        raise CompareError(f"{p}: no such folder")
    if not p.is_dir():
        raise CompareError(f"{p}: not a folder; give the folder that `recai run --out` wrote")
    mfile = p / "metrics.json"
    if not mfile.is_file():
        raise CompareError(
            f"{p}: not a recai run (no metrics.json); give a folder written by `recai run`"
        )
    try:
        data = json.loads(mfile.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CompareError(f"{mfile}: not readable as JSON ({e})") from None
    stages_raw = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages_raw, dict):
        raise CompareError(f"{mfile}: not a recai run's metrics.json (no 'stages' table)")
    stages: dict[str, Report] = {}
    for name, raw in stages_raw.items():
        try:
            stages[name] = Report.from_dict(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CompareError(f"{mfile}: stage {name!r} is not a report ({e})") from None
    return Run(p, label or p.name or str(p), data, stages)


@dataclass
class Pair:
    """Run ``b`` against the reference run ``a`` for one system of one stage."""

    run_a: str
    run_b: str
    system_a: str
    system_b: str
    shared: int = 0
    only_a: int = 0
    only_b: int = 0
    unit: str = "user"
    test: str = ""
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class StageComparison:
    """One stage across runs: the reports, the warnings and the paired comparisons."""

    stage: dict[str, str]  # run label -> stage name in that run
    reports: dict[str, Report]  # run label -> report
    warnings: list[str] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)

    def columns(self) -> list[str]:
        cols: list[str] = []
        for report in self.reports.values():
            for row in report.metrics.values():
                cols += [c for c in row if c not in cols]
        return cols


@dataclass
class Comparison:
    """What :func:`compare_runs` found, as Markdown or JSON."""

    runs: list[str]
    stages: list[StageComparison]
    test: str
    resamples: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "test": self.test,
            "resamples": self.resamples,
            "seed": self.seed,
            "stages": [
                {
                    "stage": s.stage,
                    "reports": {label: r.to_dict() for label, r in s.reports.items()},
                    "warnings": s.warnings,
                    "pairs": [p.to_dict() for p in s.pairs],
                }
                for s in self.stages
            ],
        }

    def to_markdown(self, digits: int = 4) -> str:
        lines = [f"# Comparison of {len(self.runs)} run(s): {', '.join(self.runs)}", ""]
        for s in self.stages:
            lines += _stage_markdown(s, digits, self.resamples)
        return "\n".join(lines).rstrip() + "\n"


def _fmt(v: float | None, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}f}"


def _p(v: float | None, floor: float = 0.0) -> str:
    if v is None or math.isnan(v):
        return "—"
    if floor and v <= floor:
        return f"≤{floor:.2g}"  # the bootstrap cannot resolve smaller p-values
    return f"{v:.3g}" if v >= 1e-4 else "<1e-4"


def _stage_markdown(s: StageComparison, digits: int, resamples: int) -> list[str]:
    names = sorted(set(s.stage.values()))
    lines = [f"## stage {', '.join(f'`{n}`' for n in names)}", ""]
    lines += [
        "| run | dataset | split | protocol | samples | seed |",
        "|---|---|---|---|---:|---:|",
    ]
    for label, r in s.reports.items():
        i = r.info
        cells = [label] + [str(i.get(k, "—")) for k in ("dataset", "split", "protocol", "samples")]
        lines.append("| " + " | ".join(cells + [str(i.get("seed", "—"))]) + " |")
    lines.append("")
    for w in s.warnings:
        lines.append(f"> warning: {w}")
    if s.warnings:
        lines.append("")
    cols = s.columns()
    lines.append("| run | system | " + " | ".join(cols) + " |")
    lines.append("|---|---|" + "---:|" * len(cols))
    for label, r in s.reports.items():
        for system, row in r.metrics.items():
            cells = []
            for c in cols:
                v = row.get(c)
                cell = _fmt(v, digits) if isinstance(v, (int, float)) else "—"
                ci = r.intervals.get(system, {}).get(c)
                if ci is not None and v is not None:
                    cell += f" [{_fmt(ci[0], digits)}, {_fmt(ci[1], digits)}]"
                cells.append(cell)
            lines.append(f"| {label} | {system} | " + " | ".join(cells) + " |")
    lines.append("")
    for pair in s.pairs:
        a = f"{pair.run_a}: {pair.system_a}"
        b = f"{pair.run_b}: {pair.system_b}"
        lines.append(f"### {b} − {a}")
        lines.append("")
        if pair.reason:
            lines += [f"No paired test: {pair.reason}", ""]
            continue
        extra = ""
        if pair.only_a or pair.only_b:
            extra = (
                f" ({pair.only_a} {pair.unit}s only in {pair.run_a}, "
                f"{pair.only_b} only in {pair.run_b}: left out)"
            )
        lines.append(
            f"Paired over {pair.shared} shared {pair.unit}s{extra}; 95% interval and p (boot) "
            f"from {resamples} paired bootstrap resamples; p ({pair.test})."
        )
        lines.append("")
        lines.append(f"| metric | {a} | {b} | Δ | 95% CI of Δ | p (boot) | p ({pair.test}) |")
        lines.append("|---|---:|---:|---:|---|---:|---:|")
        for metric, pr in pair.rows.items():
            lines.append(
                f"| {metric} | {_fmt(pr['a'], digits)} | {_fmt(pr['b'], digits)} | "
                f"{pr['delta']:+.{digits}f} | [{pr['low']:+.{digits}f}, {pr['high']:+.{digits}f}] | "
                f"{_p(pr['p_boot'], 1.0 / resamples)} | {_p(pr['p_test'])} |"
            )
        lines.append("")
    return lines


def _match_stages(runs: Sequence[Run]) -> list[dict[str, str]]:
    """Stage name per run label, for each stage to compare."""
    if all(len(r.stages) == 1 for r in runs):
        return [{r.label: next(iter(r.stages)) for r in runs}]
    order: list[str] = []
    for r in runs:
        order += [s for s in r.stages if s not in order]
    return [{r.label: name for r in runs if name in r.stages} for name in order]


def _check_same(reports: dict[str, Report]) -> list[str]:
    problems = []
    labels = list(reports)
    ref = labels[0]
    for key in SAME_KEYS:
        for other in labels[1:]:
            a, b = reports[ref].info.get(key), reports[other].info.get(key)
            if a is not None and b is not None and a != b:
                problems.append(f"{key} differs: {ref} has {a!r}, {other} has {b!r}")
    return problems


def _systems(a: Report, b: Report) -> list[tuple[str, str]]:
    common = [s for s in a.metrics if s in b.metrics]
    if common:
        return [(s, s) for s in common]
    if len(a.metrics) == 1 and len(b.metrics) == 1:
        return [(next(iter(a.metrics)), next(iter(b.metrics)))]
    return []


def _pair(
    run_a: Run,
    run_b: Run,
    stage_a: str,
    stage_b: str,
    sys_a: str,
    sys_b: str,
    *,
    test: PairedTest,
    resamples: int,
    seed: int,
) -> Pair:
    pair = Pair(run_a.label, run_b.label, sys_a, sys_b)
    pa, pb = run_a.per_user(stage_a), run_b.per_user(stage_b)
    if pa is None or pb is None:
        missing = run_a.label if pa is None else run_b.label
        pair.reason = f"{missing} has no per-user values for this stage"
        return pair
    if pa.unit != pb.unit:
        pair.reason = f"the runs evaluated different units ({pa.unit} vs {pb.unit})"
        return pair
    if sys_a not in pa.values or sys_b not in pb.values:
        pair.reason = "a system is missing from the per-user values"
        return pair
    pair.unit = pa.unit
    shared, ia, ib = np.intersect1d(pa.units, pb.units, assume_unique=True, return_indices=True)
    pair.shared = len(shared)
    pair.only_a, pair.only_b = len(pa.units) - len(shared), len(pb.units) - len(shared)
    if not len(shared):
        pair.reason = f"the runs share no {pa.unit}s"
        return pair
    columns = [c for c in pa.columns if c in pb.columns]
    if not columns:
        pair.reason = "the runs share no per-user metric"
        return pair
    va = pa.values[sys_a][ia][:, [pa.columns.index(c) for c in columns]]
    vb = pb.values[sys_b][ib][:, [pb.columns.index(c) for c in columns]]
    boot = paired_bootstrap(va, vb, resamples, seed)
    for j, c in enumerate(columns):
        name, p = paired_test(va[:, j], vb[:, j], test, seed)
        pair.test = name
        pair.rows[c] = {
            "a": float(va[:, j].mean()),
            "b": float(vb[:, j].mean()),
            "delta": float(boot["delta"][j]),
            "low": float(boot["low"][j]),
            "high": float(boot["high"][j]),
            "p_boot": float(boot["p"][j]),
            "p_test": p,
        }
    return pair


def compare_runs(
    paths: Sequence[Path | str],
    *,
    force: bool = False,
    test: PairedTest = "t",
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Load the run folders and compare them (see the module docstring).

    Raises :class:`CompareError` for a folder that is not a run, or for runs of one stage that
    measured different things (unless ``force``).
    """
    if not paths:
        raise CompareError("give at least one run folder")
    if resamples < 1:
        raise CompareError(f"resamples must be at least 1, got {resamples}")
    labels = _labels([Path(p) for p in paths])
    runs = [load_run(p, label) for p, label in zip(paths, labels, strict=True)]
    out: list[StageComparison] = []
    for match in _match_stages(runs):
        reports = {label: runs[labels.index(label)].stages[name] for label, name in match.items()}
        sc = StageComparison(stage=dict(match), reports=reports)
        problems = _check_same(reports)
        if problems and not force:
            raise CompareError(
                f"stage {', '.join(sorted(set(match.values())))}: the runs did not measure the "
                "same thing, so their numbers are not comparable:\n  - "
                + "\n  - ".join(problems)
                + "\n(use --force to compare them anyway)"
            )
        sc.warnings += problems
        seeds = {label: r.info.get("seed") for label, r in reports.items()}
        if len({json.dumps(v) for v in seeds.values()}) > 1:
            sc.warnings.append(
                "seeds differ ("
                + ", ".join(f"{k}: {v}" for k, v in seeds.items())
                + "): sampled users or negatives may differ between the runs"
            )
        ref_label = next(iter(match))
        ref = runs[labels.index(ref_label)]
        for label in list(match)[1:]:
            other = runs[labels.index(label)]
            ra, rb = reports[ref_label], reports[label]
            systems = _systems(ra, rb)
            if not systems:
                sc.warnings.append(
                    f"{label} and {ref_label} have no system in common to compare pairwise"
                )
            for sys_a, sys_b in systems:
                sc.pairs.append(
                    _pair(
                        ref,
                        other,
                        match[ref_label],
                        match[label],
                        sys_a,
                        sys_b,
                        test=test,
                        resamples=resamples,
                        seed=seed,
                    )
                )
        out.append(sc)
    test_name = "Wilcoxon signed-rank" if test == "wilcoxon" else "paired t-test"
    return Comparison([r.label for r in runs], out, test_name, resamples, seed)


def _labels(paths: list[Path]) -> list[str]:
    """Folder names; the paths as given where different folders share a name; ``#2``, ``#3``
    for a folder given again."""
    names = [p.name or str(p) for p in paths]
    labels = []
    for p, n in zip(paths, names, strict=True):
        others = {str(q) for q, m in zip(paths, names, strict=True) if m == n}
        labels.append(str(p) if len(others) > 1 else n)
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return out


def comparison_chart(comparison: Comparison, path: Path | str) -> Path | None:
    """A bar chart of every run's systems (``run: system``) for the first stage."""
    from .charts import metrics_chart

    if not comparison.stages:
        return None
    s = comparison.stages[0]
    metrics: dict[str, dict[str, float]] = {}
    intervals: dict[str, dict[str, tuple[float, float]]] = {}
    for label, r in s.reports.items():
        for system, row in r.metrics.items():
            metrics[f"{label}: {system}"] = row
            intervals[f"{label}: {system}"] = r.intervals.get(system, {})
    return metrics_chart(path, metrics, intervals, title="comparison")
