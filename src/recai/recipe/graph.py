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
import inspect
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import ValidationError

from ..errors import InvalidSpecError, Problem, RecaiError, RecipeError
from ..plugins import PluginManager, get_plugin_manager
from ..registry import Registered, Registry
from ..roles import PendingRef, Role, with_article
from ..specs import format_validation_error, is_secret_path, unknown_key_hints
from .loader import MAX_DEPTH, MAX_PROBLEMS, with_lines
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
            raise KeyError(
                f"no built component {name!r}; built: {', '.join(self._objects)}"
            ) from None

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


def check_requirements(requires: list[str], secret: frozenset[str] = frozenset()) -> list[Problem]:
    """Problems with the ``requires`` list: unparsable entries, missing or wrong-version distributions.

    Entries at key paths in ``secret`` (values from the environment) are not echoed.
    """
    problems = []
    versions: dict[str, str | None] = {}  # one metadata lookup per distribution
    for i, text in enumerate(requires):
        where = f"requires[{i}]"
        hidden = is_secret_path(where, secret)
        shown = (
            "the requirement from the environment (not shown)"
            if hidden
            else repr(text)
            if len(text) <= 100
            else repr(text[:80] + "...") + f" ({len(text):,} characters)"
        )
        install = f"pip install '{text}'"
        try:
            req = Requirement(text)
        except InvalidRequirement as e:
            reason = "cannot parse it" if hidden or not str(e).strip() else str(e).splitlines()[0]
            problems.append(
                Problem(
                    where,
                    f"{shown} is not a valid requirement ({reason}); write e.g. 'recai-classic>=0.1'",
                )
            )
            continue
        if req.name not in versions:
            try:
                versions[req.name] = md.version(req.name)
            except md.PackageNotFoundError:
                versions[req.name] = None
        version = versions[req.name]
        if version is None:
            if hidden:
                problems.append(
                    Problem(where, f"the distribution named by {shown} is not installed")
                )
            else:
                problems.append(
                    Problem(where, f"the distribution {req.name!r} is not installed: {install}")
                )
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            if hidden:
                problems.append(
                    Problem(where, f"the installed version {version} does not satisfy {shown}")
                )
            else:
                problems.append(
                    Problem(
                        where,
                        f"{req.name} {version} is installed, but the recipe needs {shown}: {install}",
                    )
                )
    return problems


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(key path, string) for every string in ``value``, with key paths as the loader writes them."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")
    elif isinstance(value, str):
        yield where, value


def _roles_of(cls: type) -> set[Role]:
    return {r for r in Role if isinstance(cls, type) and issubclass(cls, r.cls)}


def check(recipe: Recipe, registry: Registry | None = None) -> Plan:
    """Second pass: everything about the recipe that needs the registry. Raises RecipeError."""
    registry = registry if registry is not None else get_plugin_manager().registry()
    secret = recipe.secret_paths
    problems = check_requirements(recipe.requires, secret)
    if problems:  # names from a missing distribution would only repeat the same problem
        raise RecipeError(recipe.source, with_lines(recipe._lines, problems))

    comps = recipe.components
    resolved: dict[str, Registered] = {}
    known = set(registry.names())
    for name, decl in comps.items():
        where = f"components.{name}.use"
        if decl.use not in known and len(problems) >= MAX_PROBLEMS:
            # only counted in the report: skip the "did you mean" search (20,000 of them take s)
            problems.append(Problem(where, "unknown component"))
            continue
        try:
            resolved[name] = registry.get(decl.use)
        except RecaiError as e:
            message = str(e)
            if is_secret_path(where, secret):  # the name came from the environment: do not echo it
                listing = ", ".join(registry.names()) or "(none)"
                message = (
                    "no component is registered under the name taken from the environment "
                    f"(not shown). Available components: {listing}."
                )
            problems.append(Problem(where, message))

    deps: dict[str, set[str]] = {name: set() for name in comps}
    names = list(comps)
    name_set = set(names)
    listing = _listing(names)
    budget = [MAX_PROBLEMS]  # "did you mean" searches left: the report lists no more problems
    for name, entry in resolved.items():
        prefix = f"components.{name}.params"
        from_env = {v for p, v in _strings(comps[name].params, prefix) if p in secret}

        def resolve(
            ref: str, expected: type, _name: str = name, _env: set[str] = from_env
        ) -> PendingRef:
            hidden = ref in _env  # a name from the environment is never echoed
            shown = (
                "the component named by the environment (name not shown)" if hidden else repr(ref)
            )
            if ref not in comps:
                if hidden:
                    raise ValueError(
                        "the name taken from the environment (not shown) is not a component of this "
                        f"recipe. Components: {listing}"
                    )
                hint = _did_you_mean(ref, names, budget)
                raise ValueError(
                    f"no component named {ref!r} in this recipe.{hint} Components: {listing}"
                )
            if ref == _name:
                raise ValueError(
                    f"{_name!r} cannot take itself as a parameter; name another component"
                )
            target = resolved.get(ref)
            wanted = _roles_of(expected)
            if target is not None and wanted and not wanted & set(target.roles):
                needs = " or ".join(sorted(r.title for r in wanted))
                raise ValueError(
                    f"{shown} is {target.plays} ({target.name}), but this parameter needs {with_article(needs)}"
                )
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
            found = format_validation_error(e, prefix, secret)
            rest = found[MAX_PROBLEMS:]  # only counted in the report: no hints to compute
            found = unknown_key_hints(found[:MAX_PROBLEMS], prefix, model)
            problems += _reference_hints(found, prefix, model, comps[name].params, name_set)
            problems += rest

    order: tuple[str, ...] = ()
    try:
        order = tuple(graphlib.TopologicalSorter(deps).static_order())
        problems += _chain_problems(order, deps)
    except graphlib.CycleError as e:
        # graphlib lists each component before the ones that take it; reverse that, so that each
        # is followed by the one it takes, and start at the one that comes first in the file
        cycle = list(reversed(e.args[1]))[:-1]
        position = {n: i for i, n in enumerate(comps)}
        first = min(range(len(cycle)), key=lambda i: position[cycle[i]])
        cycle = cycle[first:] + cycle[:first]
        problems.append(
            Problem(
                f"components.{cycle[0]}",
                "components take each other as parameters in a cycle: "
                + " -> ".join([*cycle, cycle[0]])
                + " (each takes the next), so none of them can be built first",
            )
        )

    if recipe.run.stages is None:
        stages = tuple(n for n, c in resolved.items() if Role.EVALUATOR in c.roles)
    else:
        stages = tuple(recipe.run.stages)
        evaluators = [n for n, c in resolved.items() if Role.EVALUATOR in c.roles]
        have = (
            f" Evaluators: {_listing(evaluators)}."
            if evaluators
            else " The recipe has no evaluator."
        )
        for i, stage in enumerate(stages):
            where = f"run.stages[{i}]"
            hidden = is_secret_path(where, secret)
            shown = "the stage named by the environment (name not shown)" if hidden else repr(stage)
            if stage not in comps and hidden:
                problems.append(
                    Problem(
                        where,
                        f"the name taken from the environment (not shown) is not a component of this recipe.{have}",
                    )
                )
            elif stage not in comps:
                hint = _did_you_mean(stage, names, budget)
                problems.append(
                    Problem(where, f"no component named {stage!r} in this recipe.{hint}{have}")
                )
            elif stage in resolved and Role.EVALUATOR not in resolved[stage].roles:
                problems.append(
                    Problem(
                        where, f"{shown} is {resolved[stage].plays}; stages run evaluators.{have}"
                    )
                )

    if problems:
        raise RecipeError(recipe.source, with_lines(recipe._lines, problems))
    return Plan(recipe, resolved, {k: frozenset(v) for k, v in deps.items()}, order, stages)


def _chain_problems(order: tuple[str, ...], deps: dict[str, set[str]]) -> list[Problem]:
    """A problem for a chain of components taking each other more than MAX_DEPTH deep: building
    and using them nests calls that deep (filtered.v1 over filtered.v1 over ... recursed past
    Python's limit at run time while check said OK)."""
    depth: dict[str, int] = {}
    below: dict[str, str | None] = {}
    for name in order:  # dependencies first
        deepest = max(deps[name], key=lambda d: depth[d], default=None)
        depth[name] = 1 + (depth[deepest] if deepest is not None else 0)
        below[name] = deepest
        if depth[name] > MAX_DEPTH:
            chain = [name]
            while below[chain[-1]] is not None and len(chain) < 4:
                chain.append(below[chain[-1]])  # type: ignore[arg-type]
            return [
                Problem(
                    f"components.{name}",
                    f"components take each other more than {MAX_DEPTH} deep ("
                    + " -> ".join(chain)
                    + " -> ...); a recipe chains a few",
                )
            ]
    return []


def _listing(names: list[str], most: int = 20) -> str:
    """``a, b, c`` for a few names; the first ``most`` and a count for many."""
    if len(names) <= most:
        return ", ".join(names)
    return ", ".join(names[:most]) + f", ... ({len(names):,} in all)"


def _did_you_mean(name: str, names: list[str], budget: list[int]) -> str:
    """`` Did you mean 'x'?`` for a close name, while ``budget[0]`` searches are left (each one
    compares with every name; a hostile recipe asks for thousands)."""
    if budget[0] <= 0:
        return ""
    budget[0] -= 1
    pool = names if len(names) <= 500 else [n for n in names if abs(len(n) - len(name)) <= 2]
    close = difflib.get_close_matches(name, pool[:500], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _takes_components(annotation: Any) -> bool:
    """Whether a field annotation mentions a role class anywhere (``list[Ranker] | None``...)."""
    from ..roles import Component

    if isinstance(annotation, type) and issubclass(annotation, Component):
        return True
    return any(_takes_components(a) for a in typing.get_args(annotation))


def _reference_hints(
    problems: list[Problem], prefix: str, model: Any, params: dict[str, Any], names: set[str]
) -> list[Problem]:
    """Explain a component name given to a parameter that does not take components."""
    out = []
    for p in problems:
        key = (
            re.split(r"[.\[]", p.where[len(prefix) + 1 :], maxsplit=1)[0]
            if p.where.startswith(prefix + ".")
            else ""
        )
        field = getattr(model, "model_fields", {}).get(key)
        value = params.get(key)
        values = value if isinstance(value, list) else [value]
        if (
            field is not None
            and any(isinstance(v, str) and v in names for v in values)
            and not _takes_components(field.annotation)
        ):
            hint = (
                f"; note: {key!r} does not take components, although the value names one. A parameter "
                "takes a component when annotated with a role class: recai.Ranker, recai.Retriever, "
                "recai.LLMBackend, recai.DatasetSource (not recai.Dataset, which is data), ..."
            )
            p = Problem(p.where, p.message + hint)
        out.append(p)
    return out


def _raised_by_factory(error: BaseException, factory: Any) -> bool:
    """Whether ``error`` was raised by the factory's own code (its function, or its class's
    ``__init__``), not by something it called: an argument check, not a failure inside."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    target = factory.__init__ if isinstance(factory, type) else factory  # type: ignore[misc]
    code = getattr(inspect.unwrap(target), "__code__", None)
    return code is not None and tb.tb_frame.f_code is code


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

        prefix = f"components.{name}.params"
        try:
            params = entry.spec.params_model().model_validate(
                decl.params, context={"recai_resolve": resolve}
            )
        except ValidationError as e:  # a validator that looks at the built components
            found = format_validation_error(e, prefix, recipe.secret_paths)
            raise RecipeError(recipe.source, with_lines(recipe._lines, found)) from None
        try:
            obj = entry.spec.build(params)
        except RecaiError as e:
            e.args = (f"component {name!r} ({decl.use}): {e}",) + e.args[1:]
            raise
        except (ValueError, TypeError) as e:
            if not _raised_by_factory(e, entry.spec.load_factory()):
                e.add_note(
                    f"while building component {name!r} (use = {decl.use!r}) from {recipe.source}"
                )
                raise
            # the factory refused its arguments (a check the params model does not express):
            # a problem of the recipe, named by its key path, not a bug of the plugin
            where = f"components.{name}"
            message = (
                str(e)
                if not is_secret_path(prefix, recipe.secret_paths)
                else (
                    f"{type(e).__name__} (the message is not shown: the params hold a value from the "
                    "environment)"
                )
            )
            raise RecipeError(
                recipe.source,
                with_lines(
                    recipe._lines, [Problem(where, f"{decl.use} refused its params: {message}")]
                ),
            ) from None
        except Exception as e:
            e.add_note(
                f"while building component {name!r} (use = {decl.use!r}) from {recipe.source}"
            )
            raise
        entry.check_instance(obj)
        objects[name] = obj
    return Built(plan, objects)
