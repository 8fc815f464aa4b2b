"""Second validation pass and building: resolve names, check params and references, order the graph.

:func:`check` looks every component up in the registry, validates its params against the params
model (a parameter typed with a role class takes the *name* of another component), refuses unknown
references, role mismatches and cycles, and reports every problem at once. :func:`build` then
constructs the components in dependency order.
"""

from __future__ import annotations

import difflib
import graphlib
import importlib.metadata as md
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import ValidationError

from ..errors import InvalidSpecError, Problem, RecaiError, RecipeError
from ..plugins import PluginManager, get_plugin_manager
from ..registry import Registered, Registry
from ..roles import PendingRef, Role, with_article
from ..specs import format_validation_error
from .loader import with_lines
from .model import Recipe

__all__ = ["Plan", "Built", "check", "build", "check_requirements"]


@dataclass(frozen=True)
class Plan:
    """A checked recipe: what each component resolves to, its dependencies, and the build order."""

    recipe: Recipe
    resolved: dict[str, Registered]
    deps: dict[str, frozenset[str]]
    order: tuple[str, ...]
    stages: tuple[str, ...]

    def needed_for(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """``names`` and everything they depend on, in build order."""
        want: set[str] = set()
        todo = list(names)
        while todo:
            n = todo.pop()
            if n not in want:
                want.add(n)
                todo.extend(self.deps.get(n, ()))
        return [n for n in self.order if n in want]


class Built(Mapping[str, Any]):
    """The components of a recipe, built; a read-only mapping from recipe name to object."""

    def __init__(self, plan: Plan, objects: dict[str, Any]):
        self.plan = plan
        self.recipe = plan.recipe
        self._objects = objects

    def __getitem__(self, name: str) -> Any:
        try:
            return self._objects[name]
        except KeyError:
            raise KeyError(f"no built component {name!r}; built: {', '.join(self._objects)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._objects)

    def __len__(self) -> int:
        return len(self._objects)

    def name_of(self, obj: Any) -> str | None:
        """The recipe name of a built object (None if it is not one of them)."""
        for name, o in self._objects.items():
            if o is obj:
                return name
        return None


def check_requirements(requires: list[str]) -> list[Problem]:
    """Problems with the ``requires`` list: unparsable entries, missing or wrong-version distributions."""
    problems = []
    for i, text in enumerate(requires):
        where = f"requires[{i}]"
        try:
            req = Requirement(text)
        except InvalidRequirement as e:
            problems.append(Problem(where, f"{text!r} is not a valid requirement ({e})"))
            continue
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            problems.append(Problem(where, f"the distribution {req.name!r} is not installed: pip install '{text}'"))
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            problems.append(Problem(where, f"{req.name} {version} is installed, but the recipe needs {text!r}: pip install '{text}'"))
    return problems


def _roles_of(cls: type) -> set[Role]:
    return {r for r in Role if isinstance(cls, type) and issubclass(cls, r.cls)}


def check(recipe: Recipe, registry: Registry | None = None) -> Plan:
    """Second pass: everything about the recipe that needs the registry. Raises RecipeError."""
    registry = registry if registry is not None else get_plugin_manager().registry()
    problems = check_requirements(recipe.requires)
    if problems:  # names from a missing distribution would only repeat the same problem
        raise RecipeError(recipe.source, with_lines(recipe._lines, problems))

    comps = recipe.components
    resolved: dict[str, Registered] = {}
    for name, decl in comps.items():
        try:
            resolved[name] = registry.get(decl.use)
        except RecaiError as e:
            problems.append(Problem(f"components.{name}.use", str(e)))

    deps: dict[str, set[str]] = {name: set() for name in comps}
    for name, entry in resolved.items():
        prefix = f"components.{name}.params"

        def resolve(ref: str, expected: type, _name: str = name) -> PendingRef:
            if ref not in comps:
                close = difflib.get_close_matches(ref, list(comps), n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"no component named {ref!r} in this recipe.{hint} Components: {', '.join(comps)}")
            if ref == _name:
                raise ValueError("a component cannot take itself as a parameter")
            target = resolved.get(ref)
            wanted = _roles_of(expected)
            if target is not None and wanted and not wanted & set(target.roles):
                needs = " or ".join(sorted(r.title for r in wanted))
                raise ValueError(f"{ref!r} is {target.plays} ({target.name}), but this parameter needs {with_article(needs)}")
            deps[_name].add(ref)
            return PendingRef(ref, comps[ref].use)

        try:
            model = entry.spec.params_model()
        except InvalidSpecError as e:
            problems.append(Problem(f"components.{name}.use", str(e)))
            continue
        try:
            model.model_validate(comps[name].params, context={"recai_resolve": resolve})
        except ValidationError as e:
            problems += _params_hints(format_validation_error(e, prefix, recipe.secret_paths), prefix, model)

    order: tuple[str, ...] = ()
    try:
        order = tuple(graphlib.TopologicalSorter(deps).static_order())
    except graphlib.CycleError as e:
        cycle = list(e.args[1])
        problems.append(Problem("components", "components depend on each other in a cycle: " + " -> ".join(cycle)))

    if recipe.run.stages is None:
        stages = tuple(n for n, c in resolved.items() if Role.EVALUATOR in c.roles)
    else:
        stages = tuple(recipe.run.stages)
        for i, stage in enumerate(stages):
            if stage not in comps:
                close = difflib.get_close_matches(stage, list(comps), n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                problems.append(Problem(f"run.stages[{i}]", f"no component named {stage!r} in this recipe.{hint}"))
            elif stage in resolved and Role.EVALUATOR not in resolved[stage].roles:
                problems.append(Problem(f"run.stages[{i}]", f"{stage!r} is {resolved[stage].plays}; stages run evaluators"))

    if problems:
        raise RecipeError(recipe.source, with_lines(recipe._lines, problems))
    return Plan(recipe, resolved, {k: frozenset(v) for k, v in deps.items()}, order, stages)


def _params_hints(problems: list[Problem], prefix: str, model: type) -> list[Problem]:
    fields = list(getattr(model, "model_fields", {}))
    out = []
    for p in problems:
        if p.message == "unknown key" and p.where.count(".") == prefix.count(".") + 1:
            key = p.where.rsplit(".", 1)[1]
            close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
            allowed = ", ".join(fields) if fields else "(none: this component takes no parameters)"
            hint = f"did you mean {close[0]!r}? " if close else ""
            p = Problem(p.where, f"unknown key ({hint}allowed keys: {allowed})")
        out.append(p)
    return out


def build(
    recipe: Recipe,
    pm: PluginManager | None = None,
    *,
    only: list[str] | None = None,
) -> Built:
    """Check ``recipe`` and build its components in dependency order.

    ``only`` builds just these components and what they depend on.
    """
    pm = pm if pm is not None else get_plugin_manager()
    plan = check(recipe, pm.registry())
    objects: dict[str, Any] = {}
    names = plan.needed_for(only) if only is not None else list(plan.order)
    for name in names:
        entry = plan.resolved[name]
        decl = recipe.components[name]

        def resolve(ref: str, expected: type) -> Any:
            return objects[ref]

        params = entry.spec.params_model().model_validate(decl.params, context={"recai_resolve": resolve})
        try:
            obj = entry.spec.build(params)
        except RecaiError as e:
            e.args = (f"component {name!r} ({decl.use}): {e}",) + e.args[1:]
            raise
        except Exception as e:
            e.add_note(f"while building component {name!r} (use = {decl.use!r}) from {recipe.source}")
            raise
        entry.check_instance(obj)
        objects[name] = obj
    return Built(plan, objects)

