"""The registry: every registered component name, its roles and who provides it.

A :class:`Registry` is a snapshot built by :class:`recai.plugins.PluginManager` from the specs the
plugins yield. Looking up a name that nobody provides answers with "did you mean", the available
names of that role with their providers, and which installed plugins are not loaded (and why) or
failed to load. The kernel names no distribution of its own accord: every hint comes from what is
installed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import DuplicateComponentError, RoleMismatchError, UnknownComponentError
from .roles import Role, with_article
from .specs import ComponentSpec

__all__ = ["PluginInfo", "PluginFailure", "Registered", "Registry", "Unloaded"]


@dataclass(frozen=True)
class PluginInfo:
    """A registered plugin: its name (the entry-point name), distribution and version."""

    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None

    @property
    def label(self) -> str:
        if self.distribution:
            ver = f" {self.version}" if self.version else ""
            return f"{self.distribution}{ver}"
        return f"plugin {self.name!r}"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin (or one of its components) that was skipped, and why."""

    plugin: str
    distribution: str | None
    version: str | None
    reason: str

    def __str__(self) -> str:
        where = (
            f" from {self.distribution}{' ' + self.version if self.version else ''}"
            if self.distribution
            else ""
        )
        return f"plugin {self.plugin!r}{where} was skipped: {self.reason}"


@dataclass(frozen=True)
class Unloaded:
    """An installed plugin (an entry point of group ``recai``) that was not loaded, and why."""

    plugin: str
    distribution: str | None
    version: str | None
    reason: str

    @property
    def label(self) -> str:
        if self.distribution:
            return f"{self.distribution}{' ' + self.version if self.version else ''}"
        return f"plugin {self.plugin!r}"


@dataclass(frozen=True)
class Registered:
    """A component name bound to its spec, roles and provider."""

    spec: ComponentSpec
    roles: tuple[Role, ...]
    plugin: PluginInfo

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def summary(self) -> str:
        return self.spec.summary

    @property
    def plays(self) -> str:
        """The roles in words, with an article: ``"a retriever and ranker"``."""
        return with_article(" and ".join(r.title for r in self.roles))

    def build(self, params: Mapping[str, Any] | None = None, *, role: Role | None = None) -> Any:
        """Validate ``params``, call the factory and check the result plays ``role``."""
        obj = self.spec.build(dict(params or {}))
        self.check_instance(obj, role)
        return obj

    def check_instance(self, obj: Any, role: Role | None = None) -> None:
        for r in [role] if role is not None else self.roles:
            if not isinstance(obj, r.cls):
                raise RoleMismatchError(
                    f"component {self.name} ({self.plugin.label}) is registered as {r.a}, but its "
                    f"factory returned a {type(obj).__name__}, which does not subclass recai.{r.cls.__name__}"
                )


class Registry:
    """Registered components by name, plus name conflicts between providers."""

    def __init__(
        self,
        components: Mapping[str, Registered],
        conflicts: Mapping[str, list[Registered]] | None = None,
        failures: Iterable[Any] = (),
        *,
        unloaded: Callable[[], list[Unloaded]] | None = None,
    ):
        self._components = dict(components)
        self._conflicts = {k: list(v) for k, v in (conflicts or {}).items()}
        self._failures = list(failures)
        self._unloaded = unloaded

    def __contains__(self, name: object) -> bool:
        return name in self._components

    def __len__(self) -> int:
        return len(self._components)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._components))

    @property
    def conflicts(self) -> dict[str, list[Registered]]:
        return dict(self._conflicts)

    def names(self, role: Role | str | None = None) -> list[str]:
        """Sorted registered names, optionally only those playing ``role``."""
        if role is None:
            return sorted(self._components)
        r = Role.parse(role)
        return sorted(n for n, c in self._components.items() if r in c.roles)

    def all(self, role: Role | str | None = None) -> list[Registered]:
        return [self._components[n] for n in self.names(role)]

    def get(self, name: str, role: Role | str | None = None) -> Registered:
        """The component registered as ``name``; raises a helpful error when there is none."""
        r = Role.parse(role) if role is not None else None
        if name in self._conflicts:
            providers = " and ".join(
                c.plugin.label + f" (plugin {c.plugin.name!r})" for c in self._conflicts[name]
            )
            raise DuplicateComponentError(
                f"component name {name!r} is registered by two providers: {providers}. "
                "Uninstall one of them, or block one with RECAI_BLOCK_PLUGINS=<plugin name>."
            )
        found = self._components.get(name)
        if found is not None:
            if r is not None and r not in found.roles:
                raise RoleMismatchError(
                    f"{name!r} ({found.plugin.label}) is {found.plays}, not {r.a}. "
                    + self._available(r)
                )
            return found
        raise UnknownComponentError(self.unknown_message(name, r))

    def unknown_message(self, name: str, role: Role | None = None) -> str:
        what = f"{role.title} " if role else "component "
        parts = [f"unknown {what}{name!r}."]
        pool = self.names(role) or self.names()
        family = name.rsplit(".", 1)[0] + "." if "." in name else name + "."
        same_family = [n for n in pool if n.startswith(family)][:3]  # sasrec.v3 -> sasrec.v1
        close = same_family or difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
        if close:
            parts.append("Did you mean " + " or ".join(repr(c) for c in close) + "?")
        unloaded = self._unloaded() if self._unloaded is not None else []
        if unloaded:
            by_reason: dict[str, list[str]] = {}
            for u in unloaded:
                by_reason.setdefault(u.reason, []).append(u.label)
            shown = "; ".join(f"{', '.join(labels)} ({why})" for why, labels in by_reason.items())
            parts.append(f"Installed plugins that are not loaded may provide it: {shown}.")
        if self._failures:
            shown = "; ".join(str(f) for f in self._failures[:3])
            more = (
                f" (and {len(self._failures) - 3} more: see `recai plugins`)"
                if len(self._failures) > 3
                else ""
            )
            parts.append(f"Some plugins failed to load and may provide it: {shown}{more}.")
        parts.append(self._available(role))
        return " ".join(parts)

    def _available(self, role: Role | None) -> str:
        entries = self.all(role)
        kind = role.plural if role else "components"
        if not entries:
            return f"No {kind} are installed."
        listing = ", ".join(f"{c.name} ({c.plugin.label})" for c in entries)
        return f"Available {kind}: {listing}."

    def create(self, role: Role | str | type | None, name: str, /, **params: Any) -> Any:
        """Build component ``name`` of ``role`` (None: any role) with ``params``, validated.

        Same argument order as :func:`recai.create`.
        """
        r = Role.parse(role) if role is not None else None
        return self.get(name, r).build(params, role=r)
