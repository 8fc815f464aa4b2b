"""Repository-wide rules: in-repo plugins are installed and register something, the kernel names
no distribution, and plugins are tested with the contract classes of recai.testing."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from recai.testing import fresh_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIRS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


def _dist(path: Path) -> str:
    return tomllib.loads((path / "pyproject.toml").read_text())["project"]["name"]


@pytest.mark.parametrize("plugin_dir", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_is_installed_and_loads(plugin_dir: Path) -> None:
    pm = fresh_plugin_manager(autoload=True)
    dist = _dist(plugin_dir)
    assert dist in pm.distributions(), (
        f"{dist} is not installed (scripts/setup.sh installs every plugin)"
    )
    failed = [f for f in pm.failures if f.distribution == dist]
    assert not failed, failed


@pytest.mark.parametrize("plugin_dir", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_registers_components_or_commands(plugin_dir: Path) -> None:
    dist = _dist(plugin_dir)
    pm = fresh_plugin_manager(autoload=True)
    components = [c.name for c in pm.registry().all() if c.plugin.distribution == dist]
    commands = [c.name for c in pm.commands().commands.values() if c.plugin.distribution == dist]
    assert components or commands, f"{dist} registers no components and no commands"


def test_the_kernel_names_no_distribution() -> None:
    """Install hints come from what is installed, never from names the kernel makes up: a
    distribution named in the kernel's messages is one that anybody could publish."""
    offenders = []
    for path in sorted((ROOT / "src" / "recai").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"pip install [-\w. ]*['\"]?recai-", line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("plugin_dir", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_uses_the_contract_tests(plugin_dir: Path) -> None:
    dist = _dist(plugin_dir)
    if not [
        c
        for c in fresh_plugin_manager(autoload=True).registry().all()
        if c.plugin.distribution == dist
    ]:
        pytest.skip(f"{dist} registers commands only: no component to run a contract on")
    sources = "".join(p.read_text() for p in (plugin_dir / "tests").glob("test_*.py"))
    assert "from recai.testing import" in sources and "Contract" in sources


@pytest.mark.parametrize(
    "plugin_dir", [*PLUGIN_DIRS, ROOT / "examples" / "recai-recency"], ids=lambda p: p.name
)
def test_entry_point_module_imports_only_recai(plugin_dir: Path) -> None:
    """plugin.py and the package __init__ (run when plugin.py is imported) import only recai and
    the standard library: listing components must not import the modules that do the work."""
    for plugin_py in (plugin_dir / "src").glob("*/plugin.py"):
        for module in (plugin_py, plugin_py.parent / "__init__.py"):
            for line in module.read_text().splitlines():
                if line.startswith(("import ", "from ")):
                    top = line.split()[1].split(".")[0]
                    assert top == "recai" or top in sys.stdlib_module_names, f"{module}: {line}"
