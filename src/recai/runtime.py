"""Running a recipe: stages, the run context, cached fitting, resumable results and reports.

A run directory holds::

    metrics.json          every stage's report, plus the recipe, versions and seeds
    report.md             the same as Markdown tables
    stages/<name>.json    one finished stage (a rerun skips it when nothing it depends on changed)
    artifacts/<key>/      fitted models that can save themselves, keyed by a fingerprint
                          of component, params and training data

All files are written atomically (a temporary file renamed into place), so an interrupted run
never leaves a half-written result behind; rerunning the same command resumes it. A temporary
file is named ``.<name>.recai-<host>-<pid>-<random>.tmp``: the next run sweeps the ones whose
writer is gone (:func:`sweep_temporary_files`, which other caches can call on their folders).

Secrets stay in the environment: a value the recipe took from ``${...}`` is registered
(:func:`recai.secrets.register_recipe`) before anything is built, and is never written into the
folder's name, ``metrics.json``, ``report.md``, ``stages/*`` or the text files evaluators write
under the run folder (:meth:`RunContext.redact`, :meth:`RunContext.write_text`; and
:func:`atomic_write_text` / :func:`atomic_write_json` redact any file inside a run folder).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from . import progress as _progress, secrets as _secrets
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
    "sweep_temporary_files",
    "temporary_name",
    "TEMP_MAX_AGE_S",
]

T = TypeVar("T")

log = logging.getLogger("recai.runtime")

# -- temporary files: named so that the next run can tell whose they are -------------------------

TEMP_MAX_AGE_S = 24 * 3600.0
"""A temporary file older than this is swept even when its writer's process cannot be checked
(another host, a recycled pid, Windows)."""

_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
# .<name>.recai-<host>-<pid>-<random>.tmp (mkstemp's random part: letters, digits and '_')
_TEMP_NAME = re.compile(
    r"^\..*\.recai-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$", re.S
)


def temporary_name(name: str) -> tuple[str, str]:
    """``(prefix, suffix)`` for :func:`tempfile.mkstemp` / ``mkdtemp`` of a temporary ``name``
    that :func:`sweep_temporary_files` recognises: it holds this host and process id. The name
    part is cut to 100 characters so that the temporary name stays within file-name limits."""
    short = name[:100]
    return f".{short}.recai-{_HOST}-{os.getpid()}-", ".tmp"


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie does not)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs under another user
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _stale(name: str, mtime: float, now: float, max_age_s: float) -> bool:
    m = _TEMP_NAME.match(name)
    if m is None:  # not ours (older recai names held no pid: they are left alone)
        return False
    if now - mtime > max_age_s:
        return True
    return m["host"] == _HOST and not _pid_alive(int(m["pid"]))


def sweep_temporary_files(
    folder: Path | str,
    *,
    max_depth: int = 6,
    max_entries: int = 20_000,
    max_age_s: float = TEMP_MAX_AGE_S,
) -> list[Path]:
    """Remove the temporary files (and folders) that interrupted atomic writes left in
    ``folder`` and its subfolders; returns what was removed.

    Only names made by :func:`temporary_name` are touched, and only when the process that made
    them on this host is gone or they are older than ``max_age_s`` seconds: a write in progress
    (this process's or another's) is left alone. The walk is bounded: ``max_depth`` levels of
    folders, ``max_entries`` entries in all; symbolic links are not followed. Errors (a file
    already gone, no permission) are skipped.
    """
    removed: list[Path] = []
    now = time.time()
    seen = 0
    todo: list[tuple[Path, int]] = [(Path(folder), 0)]
    while todo and seen < max_entries:
        here, depth = todo.pop()
        try:
            entries = list(os.scandir(here))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > max_entries:
                break
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                if not _stale(entry.name, st.st_mtime, now, max_age_s):
                    continue
                with contextlib.suppress(OSError):
                    if is_dir:
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                    removed.append(Path(entry.path))
            elif is_dir and depth + 1 < max_depth:
                todo.append((Path(entry.path), depth + 1))
    return removed


# -- folders whose text files are redacted ------------------------------------------------------

_run_folders: set[Path] = set()
_run_folders_lock = threading.Lock()


def _protect(folder: Path) -> None:
    with _run_folders_lock:
        _run_folders.add(folder.resolve())


def _in_run_folder(path: Path) -> bool:
    if not _run_folders or not _secrets.known_secrets():
        return False
    try:
        resolved = path.resolve()
    except OSError:
        return False
    return any(resolved.is_relative_to(root) for root in tuple(_run_folders))


def atomic_write_file(path: Path | str, write: Callable[[str], Any]) -> Path:
    """Write a file all at once or not at all: ``write(tmp)`` fills a temporary file in the same
    folder (by its path; any writer that takes a file name), which is then flushed to disk and
    renamed to ``path``. On any error the temporary file is removed and the error re-raised;
    readers of ``path`` never see a partial file. Returns ``path``. The temporary name holds
    the writer's pid (:func:`temporary_name`): if the process is killed mid-write, the next run's
    :func:`sweep_temporary_files` removes what it left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = temporary_name(path.name)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
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
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write_file`).

    Inside the folder of a run (:func:`run`), registered secrets are removed from ``text``
    first (:func:`recai.secrets.redact_known`)."""
    if _in_run_folder(Path(path)):
        text = _secrets.redact_known(text, shapes="keys")
    _write_text(path, text)


def _write_text(path: Path | str, text: str) -> None:
    atomic_write_file(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path | str, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically; inside the folder of a run its
    strings are redacted first (:func:`recai.secrets.redact_data`)."""
    if _in_run_folder(Path(path)):
        data = _secrets.redact_data(_plain(data))
    _write_text(path, json.dumps(data, indent=2, sort_keys=False, default=json_default) + "\n")


def _plain(data: Any) -> Any:
    """``data`` as JSON-able builtins (what :func:`json_default` makes of numpy values, paths)."""
    return json.loads(json.dumps(data, default=json_default))


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
        """A path inside the run folder (parent folders are created). A registered secret in a
        part becomes ``redacted``: no file is named after one."""
        safe = [_secrets.redact_known(str(p), shapes="keys", mark="redacted") for p in parts]
        p = self.out_dir.joinpath(*safe)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def redact(self, data: T) -> T:
        """``data`` without secrets: a string, JSON-like data (every string in it, keys
        included) or a :class:`~recai.types.Report`, with each value the recipe took from the
        environment replaced by ``***`` (:mod:`recai.secrets`). Evaluators pass what they write
        or report through it; :meth:`write_text` and :meth:`write_json` do it for them."""
        if isinstance(data, Report):
            return Report.from_dict(_secrets.redact_data(data.to_dict()))  # type: ignore[return-value]
        if isinstance(data, str):
            return _secrets.redact_known(data, shapes="keys")  # type: ignore[return-value]
        return _secrets.redact_data(data)  # type: ignore[no-any-return]

    def write_text(self, path: Path | str, text: str) -> Path:
        """Write ``text`` atomically to ``path`` (inside the run folder when relative) without
        secrets; returns the path."""
        target = self._target(path)
        _write_text(target, self.redact(text))
        return target

    def write_json(self, path: Path | str, data: Any) -> Path:
        """Write ``data`` as indented JSON atomically to ``path`` (inside the run folder when
        relative) without secrets; returns the path."""
        target = self._target(path)
        clean = self.redact(_plain(data))
        _write_text(target, json.dumps(clean, indent=2, ensure_ascii=False) + "\n")
        return target

    def _target(self, path: Path | str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.path(*p.parts)

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
                prefix, suffix = temporary_name(key)
                tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=art.parent))
                component.save(tmp)  # type: ignore[attr-defined]
                (tmp / "DONE").write_text(self.name_of(component) + "\n")
                if art.exists():
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

    def __init__(
        self,
        out_dir: Path,
        reports: dict[str, Report],
        resumed: list[str],
        notes: list[str] | None = None,
    ):
        self.out_dir = out_dir
        self.reports = reports
        self.resumed = resumed
        self.notes = list(notes or [])
        """What the run changed on its own (a run folder not named after a secret name)."""

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
    stages: Sequence[str] | None = None,
) -> RunResult:
    """Build ``recipe`` (if needed), run its stages and write ``metrics.json`` and ``report.md``.

    ``stages`` runs only the named stages of the recipe (in the recipe's order); the others are
    not run, and appear in the results only where an earlier run finished them unchanged (read
    back as with ``resume``). A name that is not a stage of the recipe is an error listing them.

    Finished stages are stored as they complete; with ``resume`` a stage whose components, params
    and seed are unchanged is read back instead of being run again — unless its report's ``info``
    has a true ``retry_on_rerun`` (some samples got no answer and are to be asked again).

    The values the recipe took from the environment are registered as secrets first
    (:func:`recai.secrets.register_recipe`): they appear in no error, log line, progress line or
    file of the run, and a ``name`` from the environment does not name the run folder. Temporary
    files that an interrupted run left in the folder are removed
    (:func:`sweep_temporary_files`).
    """
    _secrets.register_recipe(recipe.recipe if isinstance(recipe, Built) else recipe)
    built = (
        recipe
        if isinstance(recipe, Built)
        else build(recipe, pm if pm is not None else get_plugin_manager())
    )
    rec = built.recipe
    planned = built.plan.stages
    if not planned:
        raise RecaiError(
            f"{rec.source}: the recipe has nothing to run: add an evaluator component, or list "
            "evaluators under [run] stages"
        )
    only: frozenset[str] | None = None
    if stages is not None:
        unknown = [name for name in stages if name not in planned]
        if unknown or not stages:
            said = ", ".join(repr(n) for n in unknown) or "no stage"
            raise RecaiError(
                f"{rec.source}: {said} is not a stage of this recipe; its stages: "
                + ", ".join(planned)
            )
        only = frozenset(stages)
    notes: list[str] = []
    if out_dir is None:
        base, note = _folder_name(rec)
        out_dir = Path("runs") / base
        if note:
            notes.append(note)
            log.warning("%s", note)
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
    _protect(out)
    swept = sweep_temporary_files(out)
    if swept:
        log.info("removed %d temporary file(s) left by an interrupted run in %s", len(swept), out)
    with _progress.enabled(progress):
        result = _run_stages(built, out, pm, resume=resume, progress=progress, only=only)
    result.notes[:0] = notes
    return result


def _folder_name(rec: Recipe) -> tuple[str, str | None]:
    """The default run folder name of ``rec`` and, when it is not the recipe's name, why."""
    stem = Path(rec.source).stem if not rec.source.startswith("<") else "recipe"
    if _secrets.redact_known(stem, shapes="keys") != stem:
        stem = "recipe"
    if not rec.name:
        return stem, None
    from_env = "name" in rec.secret_paths
    if from_env or _secrets.redact_known(rec.name, shapes="keys") != rec.name:
        why = "comes from the environment" if from_env else "holds a secret"
        return stem, (
            f"the recipe's name {why}, so it does not name the run folder: writing to "
            f"runs/{stem} (named after the recipe file; choose another with --out)"
        )
    return rec.name, None


def _shown(rec: Recipe, key: str) -> str | None:
    """The recipe's ``name`` or ``description`` as written into results: ``***`` when it came
    from the environment (whatever its length), else redacted text."""
    value: str | None = getattr(rec, key)
    if value is None:
        return None
    if key in rec.secret_paths:
        return _secrets.REDACTED
    return _secrets.redact_known(value, shapes="keys")


def _run_stages(
    built: Built,
    out: Path,
    pm: PluginManager | None,
    *,
    resume: bool,
    progress: bool,
    only: frozenset[str] | None = None,
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
        chosen = only is None or stage in only
        if (resume or not chosen) and stage_file.exists():
            try:
                saved = json.loads(stage_file.read_text())
                # a stage that finished with samples left to ask again (its report says
                # info.retry_on_rerun) runs again; its answered samples come from its cache
                partial = (saved.get("report", {}).get("info") or {}).get("retry_on_rerun")
                if saved.get("key") == key and not partial:
                    reports[stage] = ctx.redact(Report.from_dict(saved["report"]))
                    timings[stage] = float(saved.get("seconds", 0.0))
                    resumed.append(stage)
                    continue
            except (ValueError, KeyError, TypeError):
                pass  # unreadable or old: run the stage again
        if not chosen:
            continue  # not asked for, and not finished before: left out
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
        report = ctx.redact(report)
        reports[stage] = report
        atomic_write_json(
            stage_file, {"key": key, "seconds": timings[stage], "report": report.to_dict()}
        )

    pm_ = pm if pm is not None else get_plugin_manager()
    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
    metrics = {
        "recipe": {"name": _shown(rec, "name"), "source": rec.source},
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
    lines = [f"# {_shown(rec, 'name') or 'recai run'}", ""]
    description = _shown(rec, "description")
    if description:
        lines += [description.strip(), ""]
    lines.append(f"- recipe: `{rec.source}`")
    lines.append(f"- created: {now}, recai {__version__}, seed {rec.run.seed}")
    dists = ", ".join(f"{d} {v}" for d, v in sorted(pm.distributions().items()))
    lines += [f"- plugins: {dists}", ""]
    for name, report in reports.items():
        lines.append(report.to_markdown())
        lines.append(f"_stage `{name}` took {timings[name]:.2f} s_")
        lines.append("")
    return "\n".join(lines)
