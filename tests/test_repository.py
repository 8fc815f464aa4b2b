"""Repository-wide rules: in-repo plugins are installed, listed in the install hints, and tested
with the contract classes of recai.testing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from recai._known import KNOWN_FAMILIES, family
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
def test_component_families_are_known(plugin_dir: Path) -> None:
    dist = _dist(plugin_dir)
    reg = fresh_plugin_manager(autoload=True).registry()
    names = [c.name for c in reg.all() if c.plugin.distribution == dist]
    assert names, f"{dist} registers no components"
    for name in names:
        assert KNOWN_FAMILIES.get(family(name)) == dist, (
            f"add {family(name)!r}: {dist!r} to src/recai/_known.py"
        )


@pytest.mark.parametrize("plugin_dir", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_uses_the_contract_tests(plugin_dir: Path) -> None:
    sources = "".join(p.read_text() for p in (plugin_dir / "tests").glob("test_*.py"))
    assert "from recai.testing import" in sources and "Contract" in sources


@pytest.mark.parametrize(
    "plugin_dir", [*PLUGIN_DIRS, ROOT / "examples" / "recai-recency"], ids=lambda p: p.name
)
def test_entry_point_module_imports_only_recai(plugin_dir: Path) -> None:
    """plugin.py and the package __init__ (run when plugin.py is imported) import only recai:
    listing components must not import the modules that do the work."""
    for plugin_py in (plugin_dir / "src").glob("*/plugin.py"):
        for module in (plugin_py, plugin_py.parent / "__init__.py"):
            for line in module.read_text().splitlines():
                if line.startswith(("import ", "from ")):
                    assert line.split()[1].split(".")[0] in ("recai", "__future__"), (
                        f"{module}: {line}"
                    )
