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
import stat
import zipfile
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
    "MAX_RESAMPLES",
    "MAX_METRICS_BYTES",
    "MAX_PER_USER_BYTES",
    "check_options",
]

MAX_RESAMPLES = 100_000
"""The most paired bootstrap resamples (p-values resolve to ``1 / resamples``: 1e-5 is plenty;
memory and time grow with resamples x units)."""

MAX_METRICS_BYTES = 64 << 20
"""The largest ``metrics.json`` read (a real one is a few kilobytes)."""

MAX_PER_USER_BYTES = 2 << 30
"""The most bytes the arrays of one per-user values file may take once decompressed."""

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


def _file_size(path: Path, what: str) -> int:
    """The size of ``path``, a regular file; :class:`CompareError` naming it otherwise (checked
    before opening, so a FIFO or a device is never read)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CompareError(f"{path}: missing; the run folder lacks its {what}") from None
    except OSError as e:
        raise CompareError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise CompareError(f"{path}: is a folder where the {what} should be a file")
    if not stat.S_ISREG(st.st_mode):
        raise CompareError(f"{path}: not a regular file (a FIFO, device or socket), not a {what}")
    return st.st_size


def _read_json(path: Path, what: str) -> Any:
    """A JSON file of at most :data:`MAX_METRICS_BYTES`; every failure names the file."""
    size = _file_size(path, what)
    if size > MAX_METRICS_BYTES:
        raise CompareError(
            f"{path}: {size:,} bytes, more than a {what} can be ({MAX_METRICS_BYTES:,}); "
            "is it the right file?"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CompareError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CompareError(
            f"{path}: not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start}): a binary "
            f"or damaged file, not a {what}"
        ) from None
    if not text.strip():
        raise CompareError(f"{path}: empty; the {what} was not written (an interrupted run?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CompareError(
            f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); the file is "
            f"damaged or truncated: run `recai run` again to rewrite the {what}"
        ) from None
    except (ValueError, RecursionError) as e:
        detail = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise CompareError(f"{path}: not readable as JSON ({detail})") from None


def _is_number(v: Any) -> bool:
    """A JSON number that fits a float (``NaN`` is one: a metric without a value)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    return isinstance(v, float) or abs(v) < 2**1023


def _shape_problem(raw: Any) -> str | None:
    """What is wrong with one stage's report in ``metrics.json`` (``None``: nothing)."""
    if not isinstance(raw, dict):
        return f"is {type(raw).__name__}, expected a table"
    if not isinstance(raw.get("evaluator"), str):
        return "has no 'evaluator' name"
    metrics = raw.get("metrics")
    if not isinstance(metrics, dict):
        return "has no 'metrics' table"
    for system, row in metrics.items():
        if not isinstance(row, dict):
            return f"metrics.{system} is {type(row).__name__}, expected a table of numbers"
        for col, v in row.items():
            if v is not None and not _is_number(v):
                return f"metrics.{system}.{col} is {v!r}, expected a number"
    for key, kind in (("info", dict), ("intervals", dict), ("notes", list)):
        if key in raw and not isinstance(raw[key], kind):
            return f"{key} is {type(raw[key]).__name__}, expected a {kind.__name__}"
    for system, row in raw.get("intervals", {}).items():
        if not isinstance(row, dict):
            return f"intervals.{system} is {type(row).__name__}, expected a table"
        for col, v in row.items():
            if not (isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v)):
                return f"intervals.{system}.{col} is {v!r}, expected [low, high]"
    per_user = raw.get("info", {}).get("per_user")
    if per_user is not None and not isinstance(per_user, str):
        return f"info.per_user is {per_user!r}, expected a path in the run folder"
    return None


@dataclass
class Run:
    """A run folder: its label (the folder name), ``metrics.json`` and reports by stage."""

    path: Path
    label: str
    data: dict[str, Any]
    stages: dict[str, Report]

    def per_user_path(self, stage: str) -> Path:
        """Where the stage's per-user values are (inside the run folder, or
        :class:`CompareError`)."""
        report = self.stages[stage]
        rel = str(report.info.get("per_user") or per_user_file(stage))
        path = self.path / rel
        root = self.path.resolve()
        if Path(rel).is_absolute() or not path.resolve().is_relative_to(root):
            raise CompareError(
                f"{self.path / 'metrics.json'}: stage {stage!r} names per-user values outside "
                f"the run folder ({rel!r})"
            )
        return path

    def per_user(self, stage: str) -> PerUser | None:
        """The stage's per-user values, or ``None`` when the run has none; a damaged file is a
        :class:`CompareError` naming it."""
        path = self.per_user_path(stage)
        if not path.exists() and not path.is_symlink():
            return None
        _file_size(path, "per-user values file")
        try:
            with zipfile.ZipFile(path) as z:
                unpacked = sum(info.file_size for info in z.infolist())
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise CompareError(
                f"{path}: not a per-user values file (not a readable .npz archive: {e}); "
                "delete it or run the stage again"
            ) from None
        if unpacked > MAX_PER_USER_BYTES:
            raise CompareError(
                f"{path}: its arrays take {unpacked:,} bytes unpacked, more than per-user values "
                f"can ({MAX_PER_USER_BYTES:,})"
            )
        try:
            return load_per_user(path)
        except ValueError as e:
            raise CompareError(f"{e}; delete it or run the stage again") from None


def load_run(path: Path | str, label: str | None = None) -> Run:
    """Read a run folder; :class:`CompareError` says why a folder is not one, naming the file
    and what is wrong with it (missing, a folder, not JSON, the wrong shape, too large).

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
    if not mfile.exists() and not mfile.is_symlink():
        folder = p / "stages"
        done = sorted(f.stem for f in folder.glob("*.json")) if folder.is_dir() else []
        hint = (
            f" (stages/ holds {len(done)} finished stage(s): the run did not finish; run "
            "`recai run` again to complete it)"
            if done
            else "; give a folder written by `recai run`"
        )
        raise CompareError(f"{p}: not a recai run (no metrics.json){hint}")
    data = _read_json(mfile, "metrics.json")
    stages_raw = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages_raw, dict):
        raise CompareError(f"{mfile}: not a recai run's metrics.json (no 'stages' table)")
    stages: dict[str, Report] = {}
    for name, raw in stages_raw.items():
        problem = _shape_problem(raw)
        if problem is None:
            try:
                stages[name] = Report.from_dict(raw)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                problem = f"is not a report ({e})"
        if problem is not None:
            raise CompareError(f"{mfile}: stages.{name} {problem}; the file is damaged")
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
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "test": self.test,
            "resamples": self.resamples,
            "seed": self.seed,
            "confidence": self.confidence,
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
            lines += _stage_markdown(s, digits, self.resamples, self.confidence)
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


def _stage_markdown(
    s: StageComparison, digits: int, resamples: int, confidence: float = 0.95
) -> list[str]:
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
            f"Paired over {pair.shared} shared {pair.unit}s{extra}; {100 * confidence:.4g}% interval "
            "and p (boot) "
            f"from {resamples} paired bootstrap resamples; p ({pair.test})."
        )
        lines.append("")
        level = f"{100 * confidence:.4g}% CI of Δ"
        lines.append(f"| metric | {a} | {b} | Δ | {level} | p (boot) | p ({pair.test}) |")
        lines.append("|---|---:|---:|---:|---|---:|---:|")
        for metric, pr in pair.rows.items():
            lines.append(
                f"| {metric} | {_fmt(pr['a'], digits)} | {_fmt(pr['b'], digits)} | "
                f"{pr['delta']:+.{digits}f} | [{pr['low']:+.{digits}f}, {pr['high']:+.{digits}f}] | "
                f"{_p(pr['p_boot'], 1.0 / resamples)} | {_p(pr['p_test'])} |"
            )
        lines.append("")
    return lines


def check_options(*, resamples: int, seed: int, confidence: float) -> None:
    """Refuse comparison options that cannot work, naming the option (:class:`CompareError`)."""
    if isinstance(resamples, bool) or not isinstance(resamples, int):
        raise CompareError(f"--resamples must be a whole number, got {resamples!r}")
    if not 1 <= resamples <= MAX_RESAMPLES:
        raise CompareError(
            f"--resamples must be from 1 to {MAX_RESAMPLES:,} (p-values resolve to "
            f"1/resamples), got {resamples:,}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise CompareError(f"--seed must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise CompareError(f"--confidence must be a number, got {confidence!r}")
    if not 0.0 < confidence < 1.0:  # (NaN fails too)
        raise CompareError(
            f"--confidence is the level of the intervals, between 0 and 1 exclusive "
            f"(e.g. 0.95), got {confidence!r}"
        )


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
    confidence: float = 0.95,
) -> Pair:
    pair = Pair(run_a.label, run_b.label, sys_a, sys_b)
    pa, pb = run_a.per_user(stage_a), run_b.per_user(stage_b)
    if pa is None or pb is None:
        run, stage = (run_a, stage_a) if pa is None else (run_b, stage_b)
        rel = run.per_user_path(stage).relative_to(run.path)
        pair.reason = f"{run.label} has no per-user values for this stage (no {rel})"
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
    boot = paired_bootstrap(va, vb, resamples, seed, level=confidence)
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
    confidence: float = 0.95,
) -> Comparison:
    """Load the run folders and compare them (see the module docstring).

    Raises :class:`CompareError` for a folder that is not a run, or for runs of one stage that
    measured different things (unless ``force``).
    """
    if not paths:
        raise CompareError("give at least one run folder")
    check_options(resamples=resamples, seed=seed, confidence=confidence)
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
                        confidence=confidence,
                    )
                )
        out.append(sc)
    test_name = "Wilcoxon signed-rank" if test == "wilcoxon" else "paired t-test"
    return Comparison([r.label for r in runs], out, test_name, resamples, seed, confidence)


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
