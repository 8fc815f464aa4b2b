"""Package metadata: what every in-repo plugin (plugins/*, examples/*) must declare and ship.

Each plugin bounds the kernel below its next minor version (``recai>=0.1,<0.2`` while the kernel
is 0.1.x), declares every distribution its shipped code imports at run time, and ships a
``py.typed`` marker inside its wheel; ruff's isort knows every first-party package.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import recai

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = sorted(
    p.parent
    for pattern in ("plugins/*/pyproject.toml", "examples/*/pyproject.toml")
    for p in ROOT.glob(pattern)
)


def _project(path: Path) -> dict:
    return tomllib.loads((path / "pyproject.toml").read_text())


def _packages(project_dir: Path) -> list[Path]:
    """The import packages under ``src/`` (folders with an ``__init__.py``)."""
    return sorted(p.parent for p in (project_dir / "src").glob("*/__init__.py"))


def _ids(path: Path) -> str:
    return path.name


def test_every_project_is_found() -> None:
    # a sanity check of the globs above: a rename of plugins/ must not empty these tests
    names = {_project(p)["project"]["name"] for p in PROJECTS}
    assert {"recai-classic", "recai-eval", "recai-recency"} <= names


@pytest.mark.parametrize("project_dir", PROJECTS, ids=_ids)
def test_plugin_bounds_the_kernel_version(project_dir: Path) -> None:
    """``recai`` is required with a lower bound and an upper bound below the next minor kernel
    version: the kernel's API may change between minor versions while it is 0.x."""
    kernel = Version(recai.__version__)
    next_minor = Version(f"{kernel.major}.{kernel.minor + 1}")
    deps = [Requirement(d) for d in _project(project_dir)["project"].get("dependencies", [])]
    kernel_reqs = [r for r in deps if canonicalize_name(r.name) == "recai"]
    where = f"{project_dir.relative_to(ROOT)}/pyproject.toml"
    assert kernel_reqs, f"{where}: no dependency on recai"
    spec = kernel_reqs[0].specifier
    assert spec.contains(kernel), f"{where}: {spec} excludes the kernel's own version {kernel}"
    assert not spec.contains(next_minor, prereleases=True), (
        f"{where}: recai{spec} admits {next_minor}; bound it: "
        f'"recai>={kernel.major}.{kernel.minor},<{next_minor}"'
    )


@pytest.mark.parametrize("project_dir", [ROOT, *PROJECTS], ids=_ids)
def test_every_package_ships_py_typed(project_dir: Path) -> None:
    """A ``py.typed`` marker in each package folder that the wheel packs (PEP 561), so type
    checkers read the plugin's annotations once it is installed."""
    packed = _project(project_dir)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    packages = _packages(project_dir)
    assert packages, f"{project_dir.name}: no package under src/"
    for package in packages:
        rel = str(package.relative_to(project_dir))
        assert rel in packed, f"{project_dir.name}: the wheel does not pack {rel} ({packed})"
        assert (package / "py.typed").is_file(), f"{rel}/py.typed is missing in {project_dir.name}"


def test_isort_knows_every_first_party_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    known = set(config["tool"]["ruff"]["lint"]["isort"]["known-first-party"])
    ours = {p.name for d in [ROOT, *PROJECTS] for p in _packages(d)}
    missing = sorted(ours - known)
    assert not missing, (
        f"add {missing} to [tool.ruff.lint.isort] known-first-party in pyproject.toml"
    )


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> set[str]:
    """Top-level names of absolute imports anywhere in a module (functions included), except
    under ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_runtime_imports_checker_skips_type_checking_blocks() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "import numpy as np\n"
        "if TYPE_CHECKING:\n    import torch\nelse:\n    import json\n"
        "def f():\n    from scipy import sparse\n"
    )
    assert _runtime_imports(tree) == {"typing", "numpy", "json", "scipy"}


@pytest.mark.parametrize("project_dir", PROJECTS, ids=_ids)
def test_plugin_declares_what_it_imports(project_dir: Path) -> None:
    """Every third-party module the plugin's shipped code imports at run time (at module level
    or inside a function) comes from a declared dependency or optional extra."""
    project = _project(project_dir)["project"]
    declared = {
        canonicalize_name(Requirement(d).name)
        for d in [
            *project.get("dependencies", []),
            *(d for extra in project.get("optional-dependencies", {}).values() for d in extra),
        ]
    }
    own = {p.name for p in _packages(project_dir)}
    providers = packages_distributions()
    undeclared: dict[str, set[str]] = {}
    for path in sorted((project_dir / "src").rglob("*.py")):
        for module in _runtime_imports(ast.parse(path.read_text())):
            if module in sys.stdlib_module_names or module in own or module == "__future__":
                continue
            dists = {canonicalize_name(d) for d in providers.get(module, [module])}
            if not dists & declared:
                undeclared.setdefault(f"{module} (from {'/'.join(sorted(dists))})", set()).add(
                    str(path.relative_to(project_dir))
                )
    assert not undeclared, f"{project_dir.name}/pyproject.toml does not declare: " + "; ".join(
        f"{m}, imported in {', '.join(sorted(files))}" for m, files in sorted(undeclared.items())
    )
