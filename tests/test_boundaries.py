"""Plugins meet only through roles and registered names.

- The kernel (``src/recai``) imports no plugin package (``recai_*``): not at module level, not
  inside a function, not through ``importlib.import_module("recai_...")``, not as a lazy
  ``"recai_x.module:Class"`` factory reference.
- A plugin's shipped source (``plugins/*/src/<pkg>``, ``examples/*/src/<pkg>``) imports no other
  plugin's package in any of those ways. Plugin *tests* may (they are not shipped).
- ``import recai`` and importing every kernel module load no ``recai_*`` module (checked in a
  fresh interpreter with ``-X importtime``).

A shared helper belongs in the kernel (``recai.stats``, ``recai.jsontext``, ``recai.assets``);
another plugin's component is reached by its registered name (``recai.create(role, name)``).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "src" / "recai"
PLUGIN_SRCS = sorted(
    p for p in [*ROOT.glob("plugins/*/src"), *ROOT.glob("examples/*/src")] if p.is_dir()
)

# calls whose first argument names a module to import or locate
_IMPORTING_CALLS = {"import_module", "__import__", "find_spec", "find_in_package", "package_dirs"}
# a lazy factory reference, as component specs take them: "package.module:Attribute"
_FACTORY_REF = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)*):\w+(?:\.\w+)*$")


def imported_modules(source: str, filename: str = "<source>") -> Iterator[tuple[int, str, str]]:
    """``(line, module, how)`` for every module that ``source`` imports or names for import."""
    tree = ast.parse(source, filename=filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, "import"
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:  # relative imports stay in the package
                yield node.lineno, node.module, "from ... import"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name not in _IMPORTING_CALLS:
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield node.lineno, arg.value, f"{name}()"
            elif (
                isinstance(arg, ast.JoinedStr)  # f"recai_{name}": some plugin, computed
                and arg.values
                and isinstance(arg.values[0], ast.Constant)
                and str(arg.values[0].value).startswith("recai_")
            ):
                yield node.lineno, f"{arg.values[0].value}*", f"{name}() of an f-string"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found = _FACTORY_REF.match(node.value)
            if found:
                yield node.lineno, found.group(1), "factory reference"


def _is_plugin_module(module: str) -> bool:
    return module.split(".")[0].startswith("recai_")


def _own_packages(src: Path) -> set[str]:
    return {p.name for p in src.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} | {
        p.stem for p in src.glob("*.py")
    }


PLUGIN_PACKAGES = {name for src in PLUGIN_SRCS for name in _own_packages(src)}
"""The packages of the in-repo plugins (a factory reference is checked against these)."""


def _python_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*.py") if "tests" not in p.relative_to(folder).parts[:-1]
    )


def _violations(files: list[Path], allowed: set[str]) -> list[str]:
    out = []
    for path in files:
        for line, module, how in imported_modules(path.read_text(), str(path)):
            top = module.split(".")[0]
            if how == "factory reference" and top not in PLUGIN_PACKAGES:
                continue  # "recai_format:RecAIFormat" may be relative to the plugin's package
            if _is_plugin_module(module) and top not in allowed:
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                out.append(f"{where}:{line}: {how} {module}")
    return out


def test_the_checker_sees_every_way_of_importing() -> None:
    source = """
import recai_a
import os, recai_b.sub as b
from recai_c.mod import thing
from . import sibling
from .recai_local import x
def later():
    from recai_d import y
    import importlib
    importlib.import_module("recai_e.deep")
    __import__("recai_f")
    importlib.util.find_spec("recai_g")
    return importlib.import_module(f"recai_{later.__name__}")
FACTORY = "recai_h.models:Model"
HOOK = "recai_rankers"
DOC = "see recai_i.thing: not a reference"
"""
    found = sorted(m for _, m, _ in imported_modules(source) if _is_plugin_module(m))
    assert found == [
        "recai_*",  # the f-string
        "recai_a",
        "recai_b.sub",
        "recai_c.mod",
        "recai_d",
        "recai_e.deep",
        "recai_f",
        "recai_g",
        "recai_h.models",
    ]


def test_a_plugin_may_import_itself_and_name_its_own_relative_factories(tmp_path: Path) -> None:
    module = tmp_path / "plugin.py"
    module.write_text(
        "from recai_emb import tasks\n"
        "import recai_emb.train\n"
        "SPECS = ['recai_format:RecAIFormat', 'recai_emb.tuned:Tuned']\n"
        "OTHER = 'recai_eval.ranking:RankingEvaluator'\n"
        "def f():\n    from recai_hf.sources import resolve\n"
    )
    assert [v.split(":", 1)[1] for v in _violations([module], allowed={"recai_emb"})] == [
        "4: factory reference recai_eval.ranking",
        "6: from ... import recai_hf.sources",
    ]


def test_the_kernel_imports_no_plugin() -> None:
    files = _python_files(KERNEL)
    assert len(files) > 20, f"no kernel sources under {KERNEL}"
    bad = _violations(files, allowed=set())
    assert not bad, (
        "the kernel must not import plugin packages (move the shared piece into the kernel, or "
        "reach the component by its registered name):\n  " + "\n  ".join(bad)
    )


@pytest.mark.parametrize("src", PLUGIN_SRCS, ids=lambda p: p.parent.name)
def test_a_plugin_imports_no_other_plugin(src: Path) -> None:
    files = _python_files(src)
    own = _own_packages(src)
    assert files and own, f"no plugin package under {src}"
    bad = _violations(files, allowed=own)
    assert not bad, (
        f"{src.parent.name} imports other plugins' modules (use recai.create(role, name) or a "
        f"kernel helper; only {', '.join(sorted(own))} is its own):\n  " + "\n  ".join(bad)
    )


def test_plugins_are_found() -> None:
    names = {p.parent.name for p in PLUGIN_SRCS}
    assert {"recai-eval", "recai-emb", "recai-hf", "recai-openai", "recai-recency"} <= names


def _loaded_modules(code: str) -> list[str]:
    """Modules a fresh interpreter loads to run ``code``, from ``-X importtime``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    ]


def test_import_recai_loads_no_plugin() -> None:
    modules = _loaded_modules("import recai")
    assert "recai" in modules, "-X importtime printed no line for recai itself"
    assert not [m for m in modules if _is_plugin_module(m)]


def test_importing_every_kernel_module_loads_no_plugin() -> None:
    names = sorted(
        ".".join(p.relative_to(KERNEL.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in _python_files(KERNEL)
        if p.name != "__main__.py"  # runs the command line
    )
    # import statements: -X importtime does not see importlib.import_module
    modules = _loaded_modules("".join(f"import {name}\n" for name in names))
    assert set(names) <= set(modules)
    plugins = [m for m in modules if _is_plugin_module(m)]
    assert not plugins, f"importing the kernel loaded plugin modules: {plugins}"
