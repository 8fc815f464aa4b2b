"""Every malformed recipe under ``tests/recipes/bad/`` fails ``recai recipe check`` with a clear message.

``tests/recipes/bad/expected.toml`` says, for each file, what its message must contain; a file
without an entry and an entry without a file both fail. Each file is checked in-process through
``recai.cli.main`` with the support plugin registered, and the files marked ``subprocess = true``
also through a real ``python -m recai`` that discovers the support plugin as an installed
distribution (a fake one, through its entry point).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import support_plugin

from recai import cli
from recai.testing.helpers import fake_distribution, fresh_plugin_manager, use_plugin_manager

BAD = Path(__file__).parent / "recipes" / "bad"
MANIFEST = BAD / "expected.toml"
EXPECTED: dict[str, dict[str, Any]] = tomllib.loads(MANIFEST.read_text(encoding="utf-8"))
FILES = sorted(p.name for p in BAD.iterdir() if p.is_file() and p != MANIFEST)
SUBPROCESS = sorted(name for name, entry in EXPECTED.items() if entry.get("subprocess"))

ENTRY_KEYS = {"contains", "problems", "unset", "env", "subprocess"}
# how a problem is located: a line (parse errors) or a key path, e.g. components.big.params.weight
LOCATED = re.compile(r"line \d+|^(name|description|requires|components|run)\b")
# problems about the whole file, which has no line or key path to point at
WHOLE_FILE = {
    "empty.toml",
    "empty_comments_only.yaml",
    "empty_object.json",
    "top_level_list.yaml",
    "top_level_scalar.json",
    "unknown_extension.ini",
}
PLUGIN_ENV = (
    "RECAI_PLUGINS",
    "RECAI_BLOCK_PLUGINS",
    "RECAI_STRICT_PLUGINS",
    "RECAI_DISABLE_PLUGIN_AUTOLOAD",
)


def _env_for(entry: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for var in entry.get("unset", []):
        monkeypatch.delenv(var, raising=False)
    for var, value in entry.get("env", {}).items():
        monkeypatch.setenv(var, value)


def _assert_one_message(err: str, path: Path, entry: dict[str, Any]) -> None:
    """The message is one block: 'recai: error: FILE: N problem(s) in recipe:' and N items."""
    assert "Traceback" not in err, err
    lines = err.rstrip("\n").splitlines()
    assert lines, "nothing on stderr"
    assert lines[0].startswith("recai: error: "), err
    assert str(path) in lines[0], err
    assert all(line.startswith("  - ") for line in lines[1:]), f"not a single message block:\n{err}"
    want = entry.get("problems", 1)
    head = re.search(r"(\d+) problems? in recipe:", lines[0])
    assert head is not None, err
    assert int(head.group(1)) == want, err
    assert len(lines) - 1 == want, err
    for text in entry["contains"]:
        assert text in err, f"{text!r} is missing from the message:\n{err}"


# -- the manifest ----------------------------------------------------------------------------------


def test_the_corpus_is_large_and_mixes_formats() -> None:
    assert len(FILES) >= 30
    suffixes = {Path(f).suffix for f in FILES}
    assert {".toml", ".yaml", ".json"} <= suffixes
    assert len(SUBPROCESS) >= 5


@pytest.mark.parametrize("name", sorted(set(FILES) | set(EXPECTED)))
def test_manifest_entry(name: str) -> None:
    assert name in FILES, (
        f"expected.toml has an entry for {name}, but there is no such file in {BAD}"
    )
    assert name in EXPECTED, (
        f"{name} has no entry in {MANIFEST.name}: add what its error message must say"
    )
    entry = EXPECTED[name]
    assert set(entry) <= ENTRY_KEYS, (
        f"unknown keys in the entry for {name}: {set(entry) - ENTRY_KEYS}"
    )
    assert entry.get("contains"), f"the entry for {name} lists nothing the message must contain"
    if name not in WHOLE_FILE:
        assert any(LOCATED.search(text) for text in entry["contains"]), (
            f"the entry for {name} must require the key path or the line of the problem"
        )


# -- in-process ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_check_reports_the_problem(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = EXPECTED.get(name)
    if entry is None:
        pytest.fail(f"{name} has no entry in {MANIFEST.name}")
    _env_for(entry, monkeypatch)
    path = BAD / name
    pm = fresh_plugin_manager()
    pm.register(support_plugin, name="support")
    with use_plugin_manager(pm):
        code = cli.main(["recipe", "check", str(path)])
    out, err = capsys.readouterr()
    assert code == 2, f"exit code {code}\nstdout: {out}\nstderr: {err}"
    assert out == ""
    _assert_one_message(err, path, entry)


# -- through a real subprocess ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def support_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where the support plugin looks pip-installed (distribution recai-test-support)."""
    site = tmp_path_factory.mktemp("site")
    source = (Path(__file__).parent / "support_plugin.py").read_text(encoding="utf-8")
    fake_distribution(
        site,
        "recai-test-support",
        version="0.0.1",
        entry_points={"support": "recai_support_plugin"},
        modules={"recai_support_plugin.py": source},
    )
    return site


def _subprocess_env(site: Path, entry: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PLUGIN_ENV and k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    env["RECAI_PLUGINS"] = "support"  # only the support plugin, whatever else is installed
    for var in entry.get("unset", []):
        env.pop(var, None)
    env.update(entry.get("env", {}))
    return env


@pytest.mark.parametrize("name", SUBPROCESS)
def test_check_in_a_subprocess(name: str, support_site: Path, tmp_path: Path) -> None:
    entry = EXPECTED[name]
    path = BAD / name
    proc = subprocess.run(
        [sys.executable, "-m", "recai", "recipe", "check", str(path)],
        capture_output=True,
        text=True,
        env=_subprocess_env(support_site, entry),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, (
        f"exit code {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    )
    assert proc.stdout == ""
    _assert_one_message(proc.stderr, path, entry)


def test_the_subprocess_sees_the_support_plugin(support_site: Path, tmp_path: Path) -> None:
    """The subprocess cases are meaningful: the fake distribution's components are found."""
    recipe = tmp_path / "ok.toml"
    recipe.write_text(
        '[components.rnd]\nuse = "random.v1"\n[components.big]\nuse = "scaled.v1"\nparams = { base = "rnd" }\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "recai", "recipe", "check", str(recipe)],
        capture_output=True,
        text=True,
        env=_subprocess_env(support_site, {}),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "build order: rnd, big" in proc.stdout
    listing = BAD / "unknown_component_name.toml"
    proc = subprocess.run(
        [sys.executable, "-m", "recai", "recipe", "check", str(listing)],
        capture_output=True,
        text=True,
        env=_subprocess_env(support_site, {}),
        cwd=tmp_path,
        timeout=120,
    )
    assert "scaled.v1 (recai-test-support 0.0.1)" in proc.stderr
