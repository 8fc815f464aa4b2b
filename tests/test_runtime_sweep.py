"""Temporary files of interrupted atomic writes are cleaned up by the next run (issue 17 items
1 and 4): their names hold the writer's host and pid, and :func:`sweep_temporary_files` removes
only those whose writer is gone (or that are older than a bound)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import support_plugin

import recai
from recai.plugins import PluginManager
from recai.runtime import (
    TEMP_MAX_AGE_S,
    atomic_write_text,
    run,
    sweep_temporary_files,
    temporary_name,
)

TESTS = Path(__file__).parent

RECIPE = """\
name = "sweep"
[components.data]
use = "synthetic.v1"
params = { n_users = 30, n_items = 20 }
[components.rnd]
use = "random.v1"
[components.pop]
use = "random.v1"
params = { seed = 4 }
[components.eval]
use = "hitrate.v1"
params = { dataset = "data", models = ["rnd", "pop"], k = 5 }
"""

# Runs the recipe with the support plugin and stops for good while metrics.json is being
# written: the temporary file is complete, the rename has not happened.
KILLED_RUN = """\
import os, sys, time
sys.path.insert(0, {tests!r})
import support_plugin
import recai
from recai.testing.helpers import fresh_plugin_manager, use_plugin_manager

real_replace = os.replace
def replace(src, dst):
    if str(dst).endswith("metrics.json"):
        open({flag!r}, "w").close()
        time.sleep(600)
    return real_replace(src, dst)
os.replace = replace
pm = fresh_plugin_manager()
pm.register(support_plugin, name="support")
with use_plugin_manager(pm):
    recai.run(recai.load_recipe({recipe!r}), {out!r}, progress=False)
"""


@pytest.fixture
def pm(recai_pm: PluginManager) -> PluginManager:
    recai_pm.register(support_plugin, name="support")
    return recai_pm


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def temp_file(
    folder: Path, name: str, *, pid: int, host: str | None = None, age: float = 0
) -> Path:
    prefix, suffix = temporary_name(name)
    prefix = prefix.replace(f"-{os.getpid()}-", f"-{pid}-")
    if host is not None:
        prefix = prefix.replace(prefix.split("recai-")[1].split("-")[0], host)
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{prefix}abc123_x{suffix}"
    p.write_text("partial")
    if age:
        os.utime(p, (time.time() - age, time.time() - age))
    return p


def comparable(metrics_file: Path) -> dict:
    m = json.loads(metrics_file.read_text())
    stages = {
        k: {kk: vv for kk, vv in v.items() if kk != "seconds"} for k, v in m["stages"].items()
    }
    return {"seed": m["seed"], "stages": stages}


def test_kill_9_mid_write_then_rerun_sweeps_the_temporary_file_and_matches(
    pm: PluginManager, tmp_path: Path
) -> None:
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text(RECIPE)
    out, flag = tmp_path / "out", tmp_path / "writing"
    script = KILLED_RUN.format(
        tests=str(TESTS), flag=str(flag), recipe=str(recipe_file), out=str(out)
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the run never reached metrics.json"
            time.sleep(0.05)
    finally:
        proc.kill()  # SIGKILL: no clean-up handler runs
        proc.wait()
    left = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".metrics.json.recai-"), left
    assert not (out / "metrics.json").exists()

    result = run(recai.load_recipe(recipe_file), out, progress=False)
    assert result.resumed == ["eval"]  # the finished stage was kept
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    fresh = run(recai.load_recipe(recipe_file), tmp_path / "fresh", progress=False)
    assert comparable(result.metrics_path) == comparable(fresh.metrics_path)


def test_a_live_writers_temporary_file_is_kept(tmp_path: Path) -> None:
    mine = temp_file(tmp_path, "metrics.json", pid=os.getpid())
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = temp_file(tmp_path / "stages", "e.json", pid=sleeper.pid)
        assert sweep_temporary_files(tmp_path) == []
        assert mine.exists() and theirs.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sweep_temporary_files(tmp_path) == [theirs]  # its writer is gone now
    assert mine.exists()


def test_another_hosts_temporary_file_goes_by_age_only(tmp_path: Path) -> None:
    young = temp_file(tmp_path, "a.json", pid=dead_pid(), host="0badc0de")
    old = temp_file(tmp_path, "b.json", pid=dead_pid(), host="0badc0de", age=TEMP_MAX_AGE_S + 60)
    live_but_old = temp_file(tmp_path, "c.json", pid=os.getpid(), age=TEMP_MAX_AGE_S + 60)
    assert sorted(sweep_temporary_files(tmp_path)) == sorted([old, live_but_old])
    assert young.exists()


def test_names_that_are_not_recai_temporary_files_are_never_touched(tmp_path: Path) -> None:
    keep = [
        tmp_path / ".notes.tmp",
        tmp_path / "data.tmp",
        tmp_path / ".x.recai-zzzz-1-abc.tmp",  # not a host tag
        tmp_path / f".x.recai-0badc0de-{dead_pid()}-abc.txt",  # not .tmp
        tmp_path / "metrics.json",
        tmp_path / ".backup.20240101.tmp",  # shaped like an older recai's name
    ]
    for p in keep:
        p.write_text("mine")
        os.utime(p, (time.time() - TEMP_MAX_AGE_S - 60,) * 2)  # old: age alone is not enough
    ours = temp_file(tmp_path, "report.md", pid=dead_pid())
    assert sweep_temporary_files(tmp_path) == [ours]
    assert all(p.exists() for p in keep)


def test_the_walk_is_bounded_and_follows_no_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    stale_outside = temp_file(outside, "x.json", pid=dead_pid())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "link").symlink_to(outside, target_is_directory=True)
    deep = run_dir.joinpath(*[f"d{i}" for i in range(8)])
    stale_deep = temp_file(deep, "y.json", pid=dead_pid())
    stale_near = temp_file(run_dir / "stages", "z.json", pid=dead_pid())
    assert sweep_temporary_files(run_dir, max_depth=3) == [stale_near]
    assert stale_outside.exists() and stale_deep.exists()
    many = run_dir / "many"
    stale = [temp_file(many, f"f{i}.json", pid=dead_pid()) for i in range(3)]
    stale += [temp_file(many, f"g{i}.json", pid=0) for i in range(27)]
    assert len(sweep_temporary_files(many, max_entries=10)) == 10  # stops after 10 entries
    assert len(sweep_temporary_files(many)) == 20
    assert not any(p.exists() for p in stale)


def test_run_sweeps_an_interrupted_fit_folder_and_old_temporary_files(
    pm: PluginManager, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    prefix, suffix = temporary_name("0123456789abcdef")
    pid = dead_pid()
    half_saved = (
        out / "artifacts" / (prefix.replace(f"-{os.getpid()}-", f"-{pid}-") + "q1" + suffix)
    )
    half_saved.mkdir(parents=True)
    (half_saved / "weights.npy").write_bytes(b"\0" * 10)
    stale = temp_file(out / "llm-results", "task.jsonl", pid=pid)
    recipe_file = tmp_path / "r.toml"
    recipe_file.write_text(RECIPE)
    run(recai.load_recipe(recipe_file), out, progress=False)
    assert not half_saved.exists() and not stale.exists()
    assert (out / "metrics.json").exists()


def test_a_long_file_name_still_gets_a_valid_temporary_name(tmp_path: Path) -> None:
    name = "x" * 240 + ".json"
    prefix, suffix = temporary_name(name)
    assert len(prefix) + 8 + len(suffix) <= 255
    atomic_write_text(tmp_path / name, "{}")
    assert (tmp_path / name).read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize("script_body", ["", "raise SystemExit(3)"])
def test_a_failed_write_leaves_nothing_and_a_sweep_removes_nothing_else(
    tmp_path: Path, script_body: str
) -> None:
    code = textwrap.dedent(
        f"""
        from recai.runtime import atomic_write_file
        def write(tmp):
            open(tmp, "w").write("half")
            {script_body or 'raise ValueError("boom")'}
        try:
            atomic_write_file({str(tmp_path / "f.json")!r}, write)
        except ValueError:
            pass
        """
    )
    subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert list(tmp_path.iterdir()) == []  # the error path removed its own temporary file
    assert sweep_temporary_files(tmp_path) == []
