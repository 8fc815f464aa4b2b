"""The plugin manager: built-in components plus plugins found through entry points.

Plugins are modules (or any objects) with hook implementations, registered under the entry-point
group ``recai``::

    [project.entry-points.recai]
    my_plugin = "my_plugin.plugin"

Environment switches (read when a manager is created):

``RECAI_DISABLE_PLUGIN_AUTOLOAD=1``
    load no entry points, only the built-in components.
``RECAI_PLUGINS=a,b``
    load only these plugins (entry-point names or distribution names).
``RECAI_BLOCK_PLUGINS=a,b``
    never load these plugins.
``RECAI_STRICT_PLUGINS=1``
    a plugin that fails to load, a malformed spec or a name registered twice is an error instead
    of a reported skip.

A hook implementation is a function marked with :data:`recai.hookimpl`, or any function whose name
starts with ``recai_``; a ``recai_`` name that is not a hook (a misspelling) makes the plugin fail.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pluggy

from . import hookspecs
from ._version import __version__
from .commands import KERNEL_COMMANDS, CommandSpec, CommandTable, RegisteredCommand
from .errors import DuplicateComponentError, PluginLoadError
from .registry import PluginFailure, PluginInfo, Registered, Registry, Unloaded
from .roles import Role
from .specs import ComponentSpec

__all__ = [
    "PluginManager",
    "get_plugin_manager",
    "set_plugin_manager",
    "ENV_DISABLE_AUTOLOAD",
    "ENV_ALLOW",
    "ENV_BLOCK",
    "ENV_STRICT",
]

ENV_DISABLE_AUTOLOAD = "RECAI_DISABLE_PLUGIN_AUTOLOAD"
ENV_ALLOW = "RECAI_PLUGINS"
ENV_BLOCK = "RECAI_BLOCK_PLUGINS"
ENV_STRICT = "RECAI_STRICT_PLUGINS"

BUILTIN_PLUGIN = "recai"
COMMANDS_HOOK = "recai_commands"
_HOOK_NAMES = frozenset({*(r.hook for r in Role), COMMANDS_HOOK})


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _names(name: str) -> frozenset[str] | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    return frozenset(x.strip() for x in raw.split(",") if x.strip())


class _Pluggy(pluggy.PluginManager):
    """pluggy manager that also treats unmarked ``recai_*`` functions as hook implementations."""

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("recai_"):
            method = getattr(plugin, name, None)
            if callable(method) and not isinstance(method, type):
                return {}
        return opts


class PluginManager:
    """Loads plugins and builds the :class:`~recai.registry.Registry` of their components.

    >>> pm = PluginManager(autoload=False)
    >>> "random.v1" in pm.registry()
    True
    """

    def __init__(
        self,
        *,
        autoload: bool | None = None,
        strict: bool | None = None,
        allow: Iterable[str] | None = None,
        block: Iterable[str] | None = None,
        builtins: bool = True,
    ):
        self.strict = _flag(ENV_STRICT) if strict is None else strict
        self.allow = frozenset(allow) if allow is not None else _names(ENV_ALLOW)
        self.block = frozenset(block) if block is not None else (_names(ENV_BLOCK) or frozenset())
        self._pm = _Pluggy(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []
        self.left_out: list[Unloaded] = []
        """Installed plugins not loaded on purpose (autoload off, not allowed, blocked)."""
        self._autoload = autoload if autoload is not None else not _flag(ENV_DISABLE_AUTOLOAD)
        self._registry: Registry | None = None
        self._commands: CommandTable | None = None
        self._lock = threading.Lock()
        if builtins:
            from . import builtins as builtin_module

            self.register(
                builtin_module, name=BUILTIN_PLUGIN, distribution="recai", version=__version__
            )
        if self._autoload:
            self.load_entrypoints()

    # -- loading ----------------------------------------------------------------------------------
    def _fail(
        self, plugin: str, reason: str, distribution: str | None = None, version: str | None = None
    ) -> None:
        failure = PluginFailure(plugin, distribution, version, reason)
        if self.strict:
            raise PluginLoadError(f"{failure} (strict mode: {ENV_STRICT} is set)")
        self.failures.append(failure)

    def _blocked(self, *names: str | None) -> bool:
        return any(n is not None and n in self.block for n in names)

    def register(
        self,
        plugin: Any,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> bool:
        """Register a plugin object (usually a module). Returns False if it was skipped."""
        name = name or getattr(plugin, "__name__", None) or f"plugin-{id(plugin):x}"
        if self._blocked(name, distribution):
            return False
        if name in self.plugins:
            self._fail(name, "a plugin with this name is already registered", distribution, version)
            return False
        try:
            self._pm.register(plugin, name=name)
        except Exception as e:  # pluggy.PluginValidationError, ValueError: report and skip
            self._fail(name, f"{type(e).__name__}: {e}", distribution, version)
            return False
        callers = self._pm.get_hookcallers(plugin) or []
        misspelt = [hc.name for hc in callers if hc.name not in _HOOK_NAMES]
        if not callers:
            self._pm.unregister(plugin)
            self._fail(
                name,
                "it implements no recai hook: mark functions with @recai.hookimpl and name them after "
                "a hook (recai_rankers, recai_llm_backends, ...)",
                distribution,
                version,
            )
            return False
        if misspelt:
            self._pm.unregister(plugin)
            self._fail(name, _misspelt_message(misspelt), distribution, version)
            return False
        self.plugins[name] = PluginInfo(
            name, distribution, version, getattr(plugin, "__name__", None)
        )
        self._registry = None
        return True

    def unregister(self, name: str) -> None:
        self._pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._registry = None

    def load_entrypoints(self, group: str = hookspecs.PROJECT) -> None:
        """Import and register every plugin in entry-point ``group``; report the ones that fail."""
        seen: set[str] = set()
        for ep in sorted(md.entry_points(group=group), key=lambda e: e.name):
            dist_name = ep.dist.metadata["Name"] if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            if self.allow is not None and ep.name not in self.allow and dist_name not in self.allow:
                self.left_out.append(
                    Unloaded(ep.name, dist_name, version, f"it is not listed in {ENV_ALLOW}")
                )
                continue
            if self._blocked(ep.name, dist_name):
                self.left_out.append(
                    Unloaded(ep.name, dist_name, version, f"it is blocked by {ENV_BLOCK}")
                )
                continue
            if ep.name in seen:
                continue
            seen.add(ep.name)
            try:
                obj = ep.load()
            except BaseException as e:  # noqa: BLE001 - a broken plugin must not stop recai
                if isinstance(e, KeyboardInterrupt):
                    raise
                self._fail(
                    ep.name,
                    f"import of {ep.value!r} failed: {type(e).__name__}: {e}",
                    dist_name,
                    version,
                )
                continue
            self.register(obj, name=ep.name, distribution=dist_name, version=version)
        if self.allow is not None:
            found = {ep.name for ep in md.entry_points(group=group)}
            found |= {
                ep.dist.metadata["Name"]
                for ep in md.entry_points(group=group)
                if ep.dist is not None
            }
            for wanted in sorted(self.allow - found - {BUILTIN_PLUGIN}):
                self._fail(wanted, f"listed in {ENV_ALLOW} but no installed plugin has that name")

    def check_pending(self) -> None:
        """Raise :class:`PluginLoadError` if a registered hook implementation is not a recai hook.

        :meth:`register` already rejects such plugins; this re-checks everything registered.
        """
        bad = []
        for name, caller in vars(self._pm.hook).items():
            if (
                name not in _HOOK_NAMES
                and getattr(caller, "spec", None) is None
                and caller.get_hookimpls()
            ):
                plugins = ", ".join(sorted({i.plugin_name for i in caller.get_hookimpls()}))
                bad.append(f"plugin {plugins}: {_misspelt_message([name])}")
        if bad:
            raise PluginLoadError("; ".join(bad))

    # -- registry ---------------------------------------------------------------------------------
    def registry(self) -> Registry:
        """The registry of every component the registered plugins provide (built once, cached)."""
        with self._lock:
            if self._registry is None:
                self.check_pending()
                self._registry = self._collect()
            return self._registry

    def unloaded(self) -> list[Unloaded]:
        """Installed plugins (entry points of group ``recai``) that this manager did not load, and
        why: they are left out on purpose, or failed. Used for the hint of an unknown name."""
        out = list(self.left_out)
        if not self._autoload:
            reason = (
                f"plugin autoloading is off ({ENV_DISABLE_AUTOLOAD})"
                if _flag(ENV_DISABLE_AUTOLOAD)
                else "this plugin manager was created with autoload=False"
            )
            loaded = {p.name for p in self.plugins.values()}
            for ep in sorted(md.entry_points(group=hookspecs.PROJECT), key=lambda e: e.name):
                if ep.name not in loaded:
                    dist = ep.dist.metadata["Name"] if ep.dist is not None else None
                    out.append(
                        Unloaded(ep.name, dist, ep.dist.version if ep.dist else None, reason)
                    )
        failed = {f.plugin for f in self.failures}
        return [u for u in out if u.plugin not in failed]

    def commands(self) -> CommandTable:
        """The ``recai`` subcommands the registered plugins provide (collected once, cached).

        A malformed spec, a hook that raises, a name of a kernel command or a name two plugins
        claim is reported in :attr:`failures` (or raised in strict mode) and the command skipped.
        """
        with self._lock:
            if self._commands is None:
                self._commands = self._collect_commands()
            return self._commands

    def _hook_results(self, hook: str) -> Iterator[tuple[PluginInfo, list[Any]]]:
        """Each plugin's results of ``hook``, in registration order; a plugin whose hook raises
        is reported (a failure, or an error in strict mode) and left out."""
        caller = getattr(self._pm.hook, hook)
        for impl in reversed(caller.get_hookimpls()):  # registration order
            info = self.plugins.get(impl.plugin_name, PluginInfo(impl.plugin_name))
            try:
                specs = list(impl.function() or ())
            except Exception as e:  # noqa: BLE001 - a broken plugin must not stop recai
                self._fail(
                    info.name,
                    f"hook {hook}() raised {type(e).__name__}: {e}",
                    info.distribution,
                    info.version,
                )
                continue
            yield info, specs

    def _collect_commands(self) -> CommandTable:
        found: dict[str, RegisteredCommand] = {}
        conflicts: dict[str, list[RegisteredCommand]] = {}
        for info, specs in self._hook_results(COMMANDS_HOOK):
            for spec in specs:
                if not isinstance(spec, CommandSpec):
                    self._fail(
                        info.name,
                        f"hook {COMMANDS_HOOK}() yielded {spec!r}, not a recai.CommandSpec",
                        info.distribution,
                        info.version,
                    )
                    continue
                problems = spec.problems()
                if not problems and spec.name in KERNEL_COMMANDS:
                    problems = [f"'recai {spec.name}' is a command of recai itself"]
                if problems:
                    self._fail(
                        info.name,
                        f"command {spec.name!r}: " + "; ".join(problems),
                        info.distribution,
                        info.version,
                    )
                    continue
                entry = RegisteredCommand(spec, info)
                if spec.name in conflicts:
                    conflicts[spec.name].append(entry)
                elif spec.name in found:
                    first = found.pop(spec.name)
                    if self.strict:
                        raise DuplicateComponentError(
                            f"command {spec.name!r} is provided by both {first.plugin.label} "
                            f"(plugin {first.plugin.name!r}) and {info.label} (plugin {info.name!r})"
                        )
                    conflicts[spec.name] = [first, entry]
                else:
                    found[spec.name] = entry
        return CommandTable(found, conflicts)

    def _collect(self) -> Registry:
        components: dict[str, Registered] = {}
        conflicts: dict[str, list[Registered]] = {}
        for role in Role:
            for info, specs in self._hook_results(role.hook):
                for spec in specs:
                    self._add(components, conflicts, spec, role, info)
        return Registry(components, conflicts, self.failures, unloaded=self.unloaded)

    def _add(
        self,
        components: dict[str, Registered],
        conflicts: dict[str, list[Registered]],
        spec: Any,
        role: Role,
        info: PluginInfo,
    ) -> None:
        if not isinstance(spec, ComponentSpec):
            self._fail(
                info.name,
                f"hook {role.hook}() yielded {spec!r}, not a recai.ComponentSpec",
                info.distribution,
                info.version,
            )
            return
        problems = spec.problems()
        if problems:
            self._fail(
                info.name,
                f"component {spec.name!r}: " + "; ".join(problems),
                info.distribution,
                info.version,
            )
            return
        entry = Registered(spec, (role,), info)
        existing = components.get(spec.name)
        if existing is None:
            if spec.name in conflicts:
                conflicts[spec.name].append(entry)
            else:
                components[spec.name] = entry
            return
        same_provider = existing.plugin.name == info.name and (
            existing.spec is spec or existing.spec.factory == spec.factory
        )
        if same_provider:
            if role not in existing.roles:
                components[spec.name] = Registered(existing.spec, existing.roles + (role,), info)
            return
        if self.strict:
            raise DuplicateComponentError(
                f"component name {spec.name!r} is registered by both {existing.plugin.label} "
                f"(plugin {existing.plugin.name!r}) and {info.label} (plugin {info.name!r})"
            )
        conflicts[spec.name] = [components.pop(spec.name), entry]

    # -- convenience ------------------------------------------------------------------------------
    def create(self, role: Role | str, name: str, /, **params: Any) -> Any:
        """Build component ``name`` of ``role`` with ``params``."""
        return self.registry().create(role, name, **params)

    def distributions(self) -> dict[str, str | None]:
        """Distribution name -> version, for every registered plugin with a distribution."""
        return {p.distribution: p.version for p in self.plugins.values() if p.distribution}


def _misspelt_message(names: list[str]) -> str:
    parts = []
    for n in names:
        close = difflib.get_close_matches(n, sorted(_HOOK_NAMES), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parts.append(f"{n!r}{hint}")
    hooks = ", ".join(sorted(_HOOK_NAMES))
    return f"it implements {', '.join(parts)}, which {'is' if len(parts) == 1 else 'are'} not a recai hook. recai hooks: {hooks}"


_default: PluginManager | None = None
_default_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (created on first use, honouring the environment)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PluginManager()
        return _default


def set_plugin_manager(pm: PluginManager | None) -> PluginManager | None:
    """Replace the process-wide manager (``None`` resets it); returns the previous one."""
    global _default
    with _default_lock:
        old, _default = _default, pm
        return old
