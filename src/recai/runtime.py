"""Running a recipe: stages, the run context, cached fitting, resumable results and reports.

A run directory holds::

    metrics.json          every stage's report, plus the recipe, versions and seeds
    report.md             the same as Markdown tables
    stages/<name>.json    one finished stage (a rerun skips it when nothing it depends on changed)
    artifacts/<key>/      fitted models that can save themselves, keyed by a fingerprint
                          of component, params and training data

All files are written atomically (a temporary file renamed into place), so an interrupted run
never leaves a half-written result behind; rerunning the same command resumes it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from . import progress as _progress
from ._version import __version__
from .errors import RecaiError
from .plugins import PluginManager, get_plugin_manager
from .recipe.graph import Built, build
from .recipe.model import Recipe
from .roles import describe_component
from .types import Report

__all__ = [
    "RunContext",
    "RunResult",
    "run",
    "ensure_fitted",
    "atomic_write_file",
    "atomic_write_text",
    "atomic_write_json",
    "json_default",
]

T = TypeVar("T")


def atomic_write_file(path: Path | str, write: Callable[[str], Any]) -> Path:
    """Write a file all at once or not at all: ``write(tmp)`` fills a temporary file in the same
    folder (by its path; any writer that takes a file name), which is then flushed to disk and
    renamed to ``path``. On any error the temporary file is removed and the error re-raised;
    readers of ``path`` never see a partial file. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write_file`)."""
    atomic_write_file(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path | str, data: Any) -> None:
    atomic_write_text(
        path, json.dumps(data, indent=2, sort_keys=False, default=json_default) + "\n"
    )


def json_default(obj: Any) -> Any:
    """``default=`` for :func:`json.dumps`: numpy values, sets, tuples and paths as JSON."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class RunContext:
    """What a stage gets from the runtime: seed, output folder, progress bars and cached fitting."""

    def __init__(
        self,
        out_dir: Path | str,
        *,
        seed: int = 0,
        built: Built | None = None,
        progress: bool = True,
    ):
        self.out_dir = Path(out_dir)
        self.seed = seed
        self.built = built
        self.progress_enabled = progress

    def name_of(self, component: Any) -> str:
        """The recipe name of a component (its class name outside a recipe)."""
        name = self.built.name_of(component) if self.built is not None else None
        return name or type(component).__name__

    def names_of(self, components: Iterable[Any]) -> list[str]:
        """Distinct report names of ``components``: their recipe names (:meth:`name_of`), a
        repeated one with ``#2``, ``#3``, ... (the same component listed twice, or two built by
        hand from one class).

        >>> RunContext(Path("."), seed=0).names_of([1, 2, "x", 3])
        ['int', 'int#2', 'str', 'int#3']
        """
        seen: dict[str, int] = {}
        out = []
        for name in (self.name_of(c) for c in components):
            seen[name] = seen.get(name, 0) + 1
            out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
        return out

    def path(self, *parts: str) -> Path:
        """A path inside the run folder (parent folders are created)."""
        p = self.out_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def progress(
        self, iterable: Iterable[T], *, desc: str = "", total: int | None = None
    ) -> Iterator[T]:
        """``iterable`` with its progress on stderr when progress is enabled: a tqdm bar on a
        terminal, a plain line every ``RECAI_PROGRESS_INTERVAL`` seconds in a log (see
        :class:`recai.progress.Progress`, which loops that report fields such as a loss use)."""
        return iter(
            _progress.Progress(iterable, desc=desc, total=total, enabled=self.progress_enabled)
        )

    def fingerprint(self, component: Any, data_fingerprint: str) -> str:
        """Key of ``component`` fitted on data with ``data_fingerprint``: component, params, versions."""
        decl: Any = describe_component(component)  # name + params, nested components included
        name = self.built.name_of(component) if self.built is not None else None
        provider = (
            self.built.plan.resolved[name].plugin.label if self.built is not None and name else None
        )
        return _digest(
            {"component": decl, "provider": provider, "data": data_fingerprint, "seed": self.seed}
        )

    def fit(self, component: T, split: Any) -> T:
        """Fit ``component`` on ``split`` unless it already is; reuse a saved fit when it can.

        Components it depends on in the recipe are fitted first, the same way. A component that
        implements ``save(directory)`` and ``load(directory)`` is saved under
        ``artifacts/<fingerprint>/`` after fitting and loaded from there on the next run (the
        protocol: :class:`recai.Ranker`). The fit runs inside ``recai.progress.enabled(...)`` with
        this context's progress switch, so a component's progress reports follow it.
        """
        with _progress.enabled(self.progress_enabled):
            return self._fit(component, split)

    def _fit(self, component: T, split: Any) -> T:
        data_key = split.fingerprint()
        if getattr(component, _FIT_MARK, None) == data_key:
            return component
        if self.built is not None:
            name = self.built.name_of(component)
            for dep in sorted(self.built.plan.deps.get(name, ())) if name else ():
                child = self.built[dep]
                if _learns(child):
                    self._fit(child, split)
        key = self.fingerprint(component, data_key)
        can_save = callable(getattr(component, "save", None)) and callable(
            getattr(component, "load", None)
        )
        art = self.out_dir / "artifacts" / key
        if can_save and (art / "DONE").exists():
            component.load(art)  # type: ignore[attr-defined]
        else:
            component.fit(split)  # type: ignore[attr-defined]
            if can_save:
                art.parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=art.parent))
                component.save(tmp)  # type: ignore[attr-defined]
                (tmp / "DONE").write_text(self.name_of(component) + "\n")
                if art.exists():
                    import shutil

                    shutil.rmtree(art)
                os.replace(tmp, art)
        _mark_fitted(component, data_key)
        return component


_FIT_MARK = "_recai_fitted_on"


def _learns(component: Any) -> bool:
    from .roles import Component

    fit = getattr(type(component), "fit", None)
    return fit is not None and fit is not Component.fit


def _mark_fitted(component: Any, data_key: str) -> None:
    with contextlib.suppress(AttributeError, TypeError):
        setattr(component, _FIT_MARK, data_key)


def ensure_fitted(component: T, split: Any) -> T:
    """Fit ``component`` on ``split`` unless it was already fitted on exactly that data.

    Components that wrap others call this in their own ``fit`` so that a shared child (fitted by
    the runtime, or by another wrapper) is not fitted twice.
    """
    data_key = split.fingerprint()
    if getattr(component, _FIT_MARK, None) != data_key:
        component.fit(split)  # type: ignore[attr-defined]
        _mark_fitted(component, data_key)
    return component


class RunResult:
    """What :func:`run` produced: reports by stage and the files written."""

    def __init__(self, out_dir: Path, reports: dict[str, Report], resumed: list[str]):
        self.out_dir = out_dir
        self.reports = reports
        self.resumed = resumed

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.json"

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.md"

    def to_markdown(self) -> str:
        return "\n".join(r.to_markdown() for r in self.reports.values())


def _stage_key(built: Built, stage: str, seed: int) -> str:
    plan = built.plan
    parts = {}
    for name in plan.needed_for([stage]):
        c = built.recipe.components[name]
        parts[name] = {
            "use": c.use,
            "params": c.params,
            "provider": plan.resolved[name].plugin.label,
        }
    return _digest({"components": parts, "seed": seed, "recai": __version__})


def run(
    recipe: Recipe | Built,
    out_dir: Path | str | None = None,
    *,
    pm: PluginManager | None = None,
    resume: bool = True,
    progress: bool = True,
) -> RunResult:
    """Build ``recipe`` (if needed), run its stages and write ``metrics.json`` and ``report.md``.

    Finished stages are stored as they complete; with ``resume`` a stage whose components, params
    and seed are unchanged is read back instead of being run again.
    """
    built = (
        recipe
        if isinstance(recipe, Built)
        else build(recipe, pm if pm is not None else get_plugin_manager())
    )
    rec = built.recipe
    stages = built.plan.stages
    if not stages:
        raise RecaiError(
            f"{rec.source}: the recipe has nothing to run: add an evaluator component, or list "
            "evaluators under [run] stages"
        )
    if out_dir is None:
        base = rec.name or (Path(rec.source).stem if not rec.source.startswith("<") else "recipe")
        out_dir = Path("runs") / base
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".recai-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise RecaiError(
            f"cannot write results to {out}: {e.strerror or e}; choose another --out folder"
        ) from None
    with _progress.enabled(progress):
        return _run_stages(built, out, pm, resume=resume, progress=progress)


def _run_stages(
    built: Built, out: Path, pm: PluginManager | None, *, resume: bool, progress: bool
) -> RunResult:
    rec = built.recipe
    stages = built.plan.stages
    seed = rec.run.seed
    ctx = RunContext(out, seed=seed, built=built, progress=progress)
    reports: dict[str, Report] = {}
    resumed: list[str] = []
    timings: dict[str, float] = {}
    for stage in stages:
        key = _stage_key(built, stage, seed)
        stage_file = out / "stages" / f"{stage}.json"
        if resume and stage_file.exists():
            try:
                saved = json.loads(stage_file.read_text())
                if saved.get("key") == key:
                    reports[stage] = Report.from_dict(saved["report"])
                    timings[stage] = float(saved.get("seconds", 0.0))
                    resumed.append(stage)
                    continue
            except (ValueError, KeyError, TypeError):
                pass  # unreadable or old: run the stage again
        evaluator = built[stage]
        start = time.perf_counter()
        report = evaluator.evaluate(ctx)
        timings[stage] = time.perf_counter() - start
        if not isinstance(report, Report):
            raise TypeError(
                f"evaluator {stage!r} ({rec.components[stage].use}) returned {type(report).__name__}, "
                "not a recai.Report"
            )
        if not report.evaluator:
            report.evaluator = stage
        reports[stage] = report
        atomic_write_json(
            stage_file, {"key": key, "seconds": timings[stage], "report": report.to_dict()}
        )

    pm_ = pm if pm is not None else get_plugin_manager()
    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
    metrics = {
        "recipe": {"name": rec.name, "source": rec.source},
        "created": now,
        "recai_version": __version__,
        "distributions": pm_.distributions(),
        "seed": seed,
        "stages": {
            name: {**r.to_dict(), "seconds": round(timings[name], 3)} for name, r in reports.items()
        },
    }
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "report.md", _markdown(rec, reports, timings, now, pm_))
    return RunResult(out, reports, resumed)


def _markdown(
    rec: Recipe, reports: dict[str, Report], timings: dict[str, float], now: str, pm: PluginManager
) -> str:
    lines = [f"# {rec.name or 'recai run'}", ""]
    if rec.description:
        lines += [rec.description.strip(), ""]
    lines.append(f"- recipe: `{rec.source}`")
    lines.append(f"- created: {now}, recai {__version__}, seed {rec.run.seed}")
    dists = ", ".join(f"{d} {v}" for d, v in sorted(pm.distributions().items()))
    lines += [f"- plugins: {dists}", ""]
    for name, report in reports.items():
        lines.append(report.to_markdown())
        lines.append(f"_stage `{name}` took {timings[name]:.2f} s_")
        lines.append("")
    return "\n".join(lines)
