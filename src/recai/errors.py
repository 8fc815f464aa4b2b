"""Error types of recai.

Every error a *user* can cause (a bad recipe, an unknown component name, a malformed data file, a
plugin that does not load) is a :class:`RecaiError`. The command line prints its message without a
traceback and exits with code 2; anything else is an internal failure (exit code 1).

Messages are written for the person reading them: what went wrong, where (file, line, key path),
and how to fix it. A message never shows a secret: ``str()`` of every :class:`RecaiError` passes
through :func:`recai.secrets.redact_known`, so a value a recipe took from the environment (a key,
a ``${DATA_DIR}`` path in "file not found") reads ``***`` wherever the error is printed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "RecaiError",
    "RecipeError",
    "Problem",
    "UnknownComponentError",
    "DuplicateComponentError",
    "PluginLoadError",
    "InvalidSpecError",
    "RoleMismatchError",
    "ParamsError",
    "DataError",
    "RequirementError",
    "UnknownRoleError",
    "QueryError",
    "UnknownIdError",
]


def _redacted(text: str) -> str:
    """``text`` without registered secrets. The registry lives in :mod:`recai.secrets`; until
    that module is imported no secret can be registered, so it is not imported here."""
    secrets = sys.modules.get("recai.secrets")
    return secrets.redact_known(text, shapes="none") if secrets is not None else text


class RecaiError(Exception):
    """Base class of every error caused by user input. The CLI exits with code 2 on these.

    Its text (``str(error)``) never holds a registered secret (see the module docstring).
    """

    exit_code = 2

    def __str__(self) -> str:
        return _redacted(super().__str__())


@dataclass(frozen=True)
class Problem:
    """One problem found while checking a recipe: where it is and what is wrong."""

    where: str
    """Key path such as ``components.ranker.params.hidden_size``, or ``line 3`` for syntax errors."""
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class RecipeError(RecaiError):
    """A recipe has one or more problems. All of them are reported together."""

    def __init__(self, source: str, problems: Iterable[Problem | str]):
        self.source = source
        self.problems: list[Problem] = [
            p if isinstance(p, Problem) else Problem("", str(p)) for p in problems
        ]
        super().__init__(self._format())

    def _format(self) -> str:
        n = len(self.problems)
        head = f"{self.source}: {n} problem{'s' if n != 1 else ''} in recipe"
        return head + ":\n" + "\n".join(f"  - {p}" for p in self.problems)


class UnknownComponentError(RecaiError, LookupError):
    """A registered name that no installed plugin provides."""


class DuplicateComponentError(RecaiError):
    """Two providers register the same component name."""


class PluginLoadError(RecaiError):
    """A plugin could not be imported or registered (raised in strict mode)."""


class InvalidSpecError(RecaiError):
    """A plugin yielded a malformed component spec."""


class RoleMismatchError(RecaiError, TypeError):
    """A component was used where another role is required."""


class ParamsError(RecaiError, ValueError):
    """Parameters given to a component do not match its params model."""

    def __init__(self, name: str, problems: Sequence[Problem]):
        self.name = name
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid parameters for {name}:\n{lines}")


class DataError(RecaiError, ValueError):
    """A data file is malformed, or data does not fit what a component needs.

    Name the file and line (``path``, ``line``) whenever they are known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class RequirementError(RecaiError):
    """A distribution that a recipe requires is missing or has the wrong version."""


class UnknownIdError(RecaiError, KeyError):
    """An external id (of an item or a user) that the data does not hold.

    Also a ``KeyError``, so ``except KeyError`` around a lookup keeps working. ``kind`` is
    ``"item"`` or ``"user"`` and ``key`` the id as given; the message says why it was not found
    (an ``int`` where the ids are strings, a title given as an id) and the closest id, if any.
    """

    def __init__(self, message: str, *, kind: str, key: object):
        self.kind = kind
        self.key = key
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would quote the message
        return _redacted(str(self.args[0]))


class UnknownRoleError(RecaiError, ValueError):
    """A role name that is not one of recai's roles."""


class QueryError(RecaiError):
    """A query on a :class:`~recai.data.CatalogDB` was refused or failed.

    ``reason`` says why in words (what the SQL tried, or SQLite's message); ``sql`` is the
    statement as given. Raised instead of any ``sqlite3`` exception.
    """

    def __init__(self, reason: str, sql: str | None = None):
        self.reason = reason
        self.sql = sql
        shown = ""
        if sql is not None:
            text = " ".join(sql.split())
            shown = "\n  SQL: " + (text if len(text) <= 500 else text[:500] + " ...")
        super().__init__(f"{reason}{shown}")
