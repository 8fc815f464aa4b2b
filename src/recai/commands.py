"""Command specs: what a plugin's ``recai_commands()`` hook yields to add ``recai`` subcommands.

A plugin adds a command the way it adds a component: its hook yields a :class:`CommandSpec` with a
name, a one-line summary and a lazy ``"module:function"`` *configure* function. ``recai --help``
lists the command from the spec alone (nothing is imported); only ``recai NAME ...`` imports the
module and calls ``configure(parser)``, which adds the command's arguments (and subcommands, if
any) to an :mod:`argparse` parser and sets ``func``, the callable that runs it::

    # my_plugin/plugin.py
    @recai.hookimpl
    def recai_commands():
        yield recai.CommandSpec(
            name="hello", factory="my_plugin.cli:configure", summary="Say hello."
        )

    # my_plugin/cli.py
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("who")
        parser.set_defaults(func=run)

    def run(args: argparse.Namespace) -> int:
        print(f"hello {args.who}")
        return 0

``func`` returns the exit code (``None`` means 0). It raises :class:`recai.RecaiError` for a user's
mistake (printed without a traceback, exit code 2); any other exception is reported as a bug of the
plugin that provides the command, naming its distribution.

>>> spec = CommandSpec(name="hello", factory="my_plugin.cli:configure", summary="Say hello.")
>>> spec.problems()
[]
>>> CommandSpec(name="Hello World", factory="x", summary="").problems()[0]
"command name 'Hello World' must be one lowercase word (letters, digits, '-'), e.g. 'serve'"
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import PluginLoadError

__all__ = [
    "CommandSpec",
    "RegisteredCommand",
    "CommandTable",
    "COMMAND_NAME",
    "KERNEL_COMMANDS",
    "parse_params",
    "param_value",
]

COMMAND_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
"""Command names: one lowercase word, with digits and ``-`` allowed (``serve``, ``emb``)."""

KERNEL_COMMANDS = frozenset({"plugins", "recipe", "datasets", "run", "help"})
"""The kernel's own commands, which no plugin may replace."""

Configure = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True, eq=False)
class CommandSpec:
    """One ``recai`` subcommand a plugin provides.

    ``factory`` is a callable ``configure(parser)``, or better a lazy ``"module:function"`` string
    naming one, so that ``recai --help`` imports nothing of the plugin.
    """

    name: str
    factory: Configure | str
    summary: str
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def problems(self) -> list[str]:
        """What is wrong with this spec (empty when it is well formed). Imports nothing."""
        out: list[str] = []
        if not isinstance(self.name, str) or not COMMAND_NAME.match(self.name):
            out.append(
                f"command name {self.name!r} must be one lowercase word (letters, digits, '-'), "
                "e.g. 'serve'"
            )
        from .specs import factory_and_summary_problems

        out += factory_and_summary_problems(self.factory, self.summary, "module:function")
        return out

    def load(self) -> Configure:
        """The configure function, importing its module on first use for ``"module:attr"``."""
        if "configure" not in self._cache:
            if isinstance(self.factory, str):
                from .specs import import_reference

                obj = import_reference(self.factory)
                if not callable(obj):
                    raise TypeError(f"{self.factory!r} is not callable")
                self._cache["configure"] = obj
            else:
                self._cache["configure"] = self.factory
        return self._cache["configure"]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class RegisteredCommand:
    """A command name bound to its spec and the plugin that provides it."""

    spec: CommandSpec
    plugin: Any  # recai.registry.PluginInfo

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def summary(self) -> str:
        return self.spec.summary

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Import the command's module and let it configure ``parser``.

        A module that fails to import, or a configure function that raises, is reported as a
        :class:`~recai.errors.PluginLoadError` naming the command and its distribution.
        """
        try:
            self.spec.load()(parser)
        except Exception as e:  # noqa: BLE001 - a broken plugin is reported with its name
            raise PluginLoadError(
                f"command {self.name!r} from {self.plugin.label} failed to load: "
                f"{type(e).__name__}: {e}"
            ) from e


@dataclass(frozen=True)
class CommandTable:
    """The plugin commands by name, plus names that two providers claim."""

    commands: Mapping[str, RegisteredCommand]
    conflicts: Mapping[str, list[RegisteredCommand]]

    def __contains__(self, name: object) -> bool:
        return name in self.commands

    def __iter__(self) -> Any:
        return iter(sorted(self.commands))

    def get(self, name: str) -> RegisteredCommand | None:
        return self.commands.get(name)


def param_value(text: str) -> Any:
    """A ``--param KEY=VALUE`` value: JSON for lists, objects and null; text otherwise (a params
    model turns ``"3"`` into 3 and ``"true"`` into True where the field asks for it).

    >>> param_value("[1, 2]"), param_value("3"), param_value("null")
    ([1, 2], '3', None)
    """
    import json

    if text.strip()[:1] in ("[", "{") or text.strip() == "null":
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def parse_params(items: list[str], *, example: str = "model=gpt-4o-mini") -> dict[str, Any]:
    """``["k=v", ...]`` from repeated ``--param`` / ``-p`` options -> a params dict.

    Commands that build a component from the command line use it, so every command reads params
    alike. A malformed item is a :class:`~recai.errors.RecaiError` (exit code 2).

    >>> parse_params(["seed=3", "k=[10, 20]"])
    {'seed': '3', 'k': [10, 20]}
    """
    from .errors import RecaiError

    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecaiError(f"--param {item!r}: expected KEY=VALUE, e.g. --param {example}")
        params[key.strip()] = param_value(value)
    return params


def component_from_recipe(path: str, role: Any, component: str | None = None) -> tuple[Any, str]:
    """Build the component ``component`` of the recipe at ``path`` (and what it takes), checking
    that it plays ``role``; with ``component=None`` the recipe must have exactly one of that role.

    Returns ``(object, component name)``. For commands that serve or drive one component of a
    recipe (``recai serve recipe.toml -c brain``); every problem is a
    :class:`~recai.errors.RecaiError` naming the recipe file.
    """
    from .plugins import get_plugin_manager
    from .recipe import build, check, load_recipe, pick

    recipe = load_recipe(path)
    pm = get_plugin_manager()
    plan = check(recipe, pm.registry())
    component = pick(plan, role, component)
    return build(recipe, pm, only=[component])[component], component
