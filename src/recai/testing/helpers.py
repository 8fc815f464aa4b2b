"""Plain helpers behind the fixtures (usable without pytest)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from ..data import Dataset, synthetic_dataset
from ..plugins import PluginManager, set_plugin_manager

__all__ = [
    "fresh_plugin_manager",
    "use_plugin_manager",
    "make_tiny_dataset",
    "fake_distribution",
    "modules_imported_by_listing",
]


def fresh_plugin_manager(
    *plugins: Any, autoload: bool = False, strict: bool = False, **kwargs: Any
) -> PluginManager:
    """A new manager, isolated from the environment's switches, with ``plugins`` registered.

    With ``autoload=False`` (the default) nothing installed is loaded: only the built-ins and
    the plugin objects (modules, classes, instances) passed here.
    """
    pm = PluginManager(
        autoload=autoload,
        strict=strict,
        allow=kwargs.pop("allow", None),
        block=kwargs.pop("block", ()),
        **kwargs,
    )
    for plugin in plugins:
        pm.register(plugin)
    return pm


@contextlib.contextmanager
def use_plugin_manager(pm: PluginManager) -> Iterator[PluginManager]:
    """Make ``pm`` the process-wide manager inside the ``with`` block."""
    old = set_plugin_manager(pm)
    try:
        yield pm
    finally:
        set_plugin_manager(old)


def make_tiny_dataset(seed: int = 0, n_users: int = 30, n_items: int = 25) -> Dataset:
    """The test kit's tiny dataset: seeded, with popularity and sequential structure."""
    return synthetic_dataset(
        n_users=n_users, n_items=n_items, mean_length=8, seed=seed, name="tiny"
    )


def fake_distribution(
    root: Any,
    name: str,
    *,
    version: str = "0.0.1",
    entry_points: dict[str, str] | None = None,
    modules: dict[str, str] | None = None,
    group: str = "recai",
) -> Any:
    """Write an installed-looking distribution into folder ``root`` (put ``root`` on ``sys.path``).

    ``modules`` maps module file names (``"my_plugin.py"``) to source text; ``entry_points`` maps
    entry-point names to ``"module"`` or ``"module:attr"`` in ``group``. ``importlib.metadata``
    then finds it exactly as it finds a pip-installed distribution.
    """
    from pathlib import Path

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for filename, source in (modules or {}).items():
        target = root / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = [f"[{group}]"] + [f"{k} = {v}" for k, v in (entry_points or {}).items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


def modules_imported_by_listing(
    plugin: str, modules: Iterable[str], *, expect: str | None = None
) -> list[str]:
    """Which of ``modules`` a fresh interpreter imports when it lists the components of ``plugin``.

    Runs ``recai``'s registry in a subprocess with only ``plugin`` (an entry-point name) loaded and
    strict mode on; ``expect`` is a component name that must be registered. A plugin whose
    entry-point module registers lazy ``"module:Class"`` factories returns ``[]``::

        assert modules_imported_by_listing("classic", ["scipy", "torch"], expect="itemknn.v1") == []
    """
    import json
    import os
    import subprocess
    import sys

    wanted = sorted(modules)
    code = (
        "import json, sys, recai\n"
        "reg = recai.get_plugin_manager().registry()\n"
        f"assert {expect!r} is None or {expect!r} in reg, reg.names()\n"
        f"print(json.dumps([m for m in {wanted!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "RECAI_PLUGINS": plugin, "RECAI_STRICT_PLUGINS": "1"}
    env.pop("RECAI_DISABLE_PLUGIN_AUTOLOAD", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    if out.returncode != 0:
        raise AssertionError(f"listing plugin {plugin!r} failed:\n{out.stderr}")
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded
