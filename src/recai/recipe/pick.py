"""Choosing one component of a role from a checked recipe: the one it has, or the one named.

Commands that drive one component of a recipe (``recai chat -c NAME``, ``recai serve RECIPE
--component NAME``, ``--dataset NAME``) choose it the same way and say the same things when the
choice is wrong, so the choice lives here: a plugin may not import another plugin's.

>>> from recai.recipe import check, load_recipe
>>> plan = check(load_recipe({"components": {
...     "data": {"use": "synthetic.v1"}, "rnd": {"use": "random.v1"}}}))
>>> pick(plan, "ranker", None, "--component")
'rnd'
>>> pick(plan, "ranker", "rdn", "--component")
Traceback (most recent call last):
...
recai.errors.RecaiError: <recipe>: --component 'rdn' is not a ranker. Did you mean 'rnd'? rankers: rnd
"""

from __future__ import annotations

import difflib

from ..errors import RecaiError
from ..roles import Role
from .graph import Plan, _listing

__all__ = ["playing", "pick", "pick_optional"]


def playing(plan: Plan, role: Role | str | type) -> list[str]:
    """The names of the recipe's components that play ``role``, in recipe order."""
    wanted = Role.parse(role)
    return [n for n, e in plan.resolved.items() if wanted in e.roles]


def pick(
    plan: Plan,
    role: Role | str | type,
    name: str | None,
    option: str | None = None,
    *,
    verb: str = "use",
) -> str:
    """The component of ``role`` to use: ``name`` when given, else the recipe's only one.

    ``option`` is the command-line option that names it (``"--component"``), for the messages;
    ``verb`` what the command does with it (``"chat with"``: "name the agent to chat with").
    A wrong choice is a :class:`~recai.errors.RecaiError` (exit code 2) naming the recipe, the
    option, the components of that role and a close name ("Did you mean ...?"): a ``name``
    that is no component of that role, or no ``name`` while the recipe has none or several.
    """
    chosen = pick_optional(plan, role, name, option, verb=verb)
    if chosen is None:
        raise RecaiError(_name_it(plan, Role.parse(role), option, verb, []))
    return chosen


def pick_optional(
    plan: Plan,
    role: Role | str | type,
    name: str | None,
    option: str | None = None,
    *,
    verb: str = "use",
) -> str | None:
    """As :func:`pick`, but a recipe with no component of ``role`` (and no ``name``) gives
    ``None`` instead of an error: for a component a command can do without."""
    wanted = Role.parse(role)
    found = playing(plan, wanted)
    if name is None:
        if len(found) > 1:
            raise RecaiError(_name_it(plan, wanted, option, verb, found))
        return found[0] if found else None
    if name in found:
        return name
    source = plan.recipe.source
    what = f"{option} {name!r}" if option else f"component {name!r}"
    other = plan.resolved.get(name)
    # a component of another role was meant as itself: say what it is, guess no other name
    close = [] if other else difflib.get_close_matches(name, found, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    it_is = f": it is {other.plays} ({other.name})." if other is not None else "."
    raise RecaiError(
        f"{source}: {what} is not {wanted.a}{it_is}{hint} {wanted.plural}: "
        f"{_listing(found) or 'none'}"
    )


def _name_it(plan: Plan, role: Role, option: str | None, verb: str, found: list[str]) -> str:
    which = f"it has {len(found)}: {_listing(found)}" if found else "it has none"
    how = f", {option} NAME" if option else ""
    return f"{plan.recipe.source}: name the {role.title} to {verb}{how} ({which})"
