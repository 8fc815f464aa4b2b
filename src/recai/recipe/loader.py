"""Reading recipe files (TOML, YAML, JSON) into :class:`~recai.recipe.model.Recipe`.

Parsing and the shape check form the first validation pass; every problem found is reported
together in one :class:`~recai.errors.RecipeError` naming the file and the line or key path.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import Problem, RecipeError
from ..specs import format_validation_error, number_problem
from .model import Recipe, line_for

__all__ = [
    "load_recipe",
    "recipe_from_dict",
    "parse_text",
    "interpolate_env",
    "FORMATS",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_VALUES",
    "MAX_PROBLEMS",
]

FORMATS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}

MAX_BYTES = 1 << 20
"""Largest recipe file (1 MiB); larger files are refused before they are read."""
MAX_DEPTH = 64
"""Deepest nesting of tables and lists a recipe may have (a recipe needs fewer than ten)."""
MAX_VALUES = 20_000
"""Most values (tables, lists and scalars, YAML aliases expanded) a recipe may hold."""

_ENV_REF = re.compile(r"\$(\$)?\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_text(text: str, fmt: str, source: str) -> Any:
    """Parse recipe text; syntax errors become a RecipeError naming the line and column.

    Nesting deeper than :data:`MAX_DEPTH` and YAML whose aliases expand to more than
    :data:`MAX_VALUES` values are refused before the parsers recurse or expand them.
    """
    return _parse(text, fmt, source)[0]


def _parse(text: str, fmt: str, source: str) -> tuple[Any, Any]:
    """``(data, YAML node tree or None)``; the node tree gives YAML and JSON their lines."""
    if fmt not in ("toml", "yaml", "json"):
        raise RecipeError(
            source, [Problem("", f"unknown recipe format {fmt!r}; use one of: toml, yaml, json")]
        )
    if fmt != "yaml":
        deep = _too_deep_at(text, fmt)
        if deep is not None:
            raise RecipeError(source, [Problem(_where(text, deep), _DEEP)])
    try:
        if fmt == "toml":
            return tomllib.loads(text), None
        if fmt == "json":
            return json.loads(text), _compose(text, source, strict=False)
        root, data = _compose(text, source, strict=True, construct=True)
        return data, root
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        where = f"line {m.group(1)}, column {m.group(2)}" if m else "syntax"
        raise RecipeError(
            source,
            [Problem(where, "TOML syntax error: " + re.sub(r"\s*\(at line.*\)$", "", msg))],
        ) from None
    except json.JSONDecodeError as e:
        raise RecipeError(
            source, [Problem(f"line {e.lineno}, column {e.colno}", f"JSON syntax error: {e.msg}")]
        ) from None
    except RecipeError:
        raise
    except RecursionError:  # a backstop: the bounds above stop nesting long before this
        raise RecipeError(source, [Problem("", _DEEP)]) from None
    except ValueError as e:  # an integer of more than 4300 digits (Python's limit)
        if fmt == "yaml" and _is_yaml_error(e):
            raise _yaml_problem(e, source) from None
        long = re.search(r"\d{4000,}", text)
        where = _where(text, long.start()) if long else ""
        message = (
            f"a number of {len(long.group()):,} digits; integers must fit in 64 bits"
            if long
            else f"a value cannot be read: {e}"
        )
        raise RecipeError(source, [Problem(where, message)]) from None
    except Exception as e:  # yaml.YAMLError (yaml is imported lazily)
        raise _yaml_problem(e, source) from None


_DEEP = (
    f"values are nested more than {MAX_DEPTH} levels deep; a recipe needs only a few levels "
    "of tables and lists"
)


def _where(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    return f"line {line}, column {offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


def _too_deep_at(text: str, fmt: str) -> int | None:
    """Offset of the first ``[`` or ``{`` (outside strings and comments) that opens level
    ``MAX_DEPTH + 1`` of JSON or TOML text, or None. Linear time; checked before the parser,
    which recurses once per level."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    toml = fmt == "toml"
    special = re.compile(r"[\"'#\[\]{}]" if toml else r"[\"\[\]{}]")
    i, depth, n = 0, 0, len(text)
    while i < n:
        m = special.search(text, i)
        if m is None:
            return None
        j, c = m.start(), m.group()
        i = j + 1
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return j
        elif c in "]}":
            depth = max(0, depth - 1)
        elif c == "#":  # a TOML comment
            k = text.find("\n", j)
            i = n if k < 0 else k + 1
        elif c == "'":  # a TOML literal string: no escapes
            delim = "'''" if text.startswith("'''", j) else "'"
            k = text.find(delim, j + len(delim))
            i = n if k < 0 else k + len(delim)
        else:  # a basic string, with backslash escapes
            delim = '"""' if toml and text.startswith('"""', j) else '"'
            k = j + len(delim)
            while True:
                k = text.find('"', k)
                if k < 0:
                    i = n
                    break
                b = k
                while b > j and text[b - 1] == "\\":
                    b -= 1
                if (k - b) % 2 or not text.startswith(delim, k):
                    k += 1
                    continue
                i = k + len(delim)
                break
    return None


def _is_yaml_error(e: BaseException) -> bool:
    return type(e).__module__.split(".")[0] == "yaml"


def _yaml_problem(e: BaseException, source: str) -> RecipeError:
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "syntax"
    problem = getattr(e, "problem", None) or str(e)
    if problem == _DEEP or "maximum nesting depth" in str(problem):  # libyaml stops at 1000
        return RecipeError(source, [Problem(where, _DEEP)])
    return RecipeError(source, [Problem(where, f"YAML syntax error: {problem}")])


@functools.cache
def _yaml_loader() -> Any:
    """A YAML loader class (safe tags only) that refuses nesting beyond MAX_DEPTH while it
    composes: libyaml's fast parser when present (it stops at 1000 levels itself), else
    PyYAML's Python parser with a depth count in ``compose_node``."""
    import yaml

    if getattr(yaml, "__with_libyaml__", False):
        return yaml.CSafeLoader

    class BoundedSafeLoader(yaml.SafeLoader):
        _depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                    raise yaml.composer.ComposerError(None, None, _DEEP, mark)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

    return BoundedSafeLoader


def _compose(text: str, source: str, *, strict: bool, construct: bool = False) -> Any:
    """The YAML node tree of ``text`` (with ``construct``: ``(tree, data)``), checked against
    MAX_DEPTH and MAX_VALUES with aliases expanded: an alias bomb of a few hundred bytes is
    refused here, in linear time, before anything expands it. ``strict=False`` (JSON text, read
    by json for the data) gives None where YAML cannot read the text."""
    loader = _yaml_loader()(text)
    try:
        try:
            too_many = _too_many_events(text)
            if too_many is not None:
                raise RecipeError(source, [too_many])
            root = loader.get_single_node()
        except Exception as e:
            if strict or not _is_yaml_error(e):
                raise
            return None
        if root is not None:
            problem = _node_budget(root)
            if problem is not None:
                raise RecipeError(source, [problem])
        if not construct:
            return root
        return root, (None if root is None else loader.construct_document(root))
    finally:
        loader.dispose()


def _too_many_events(text: str) -> Problem | None:
    """A problem when the YAML text holds more than MAX_VALUES values (aliases not expanded),
    found by counting parser events, which stops early: composing a node tree of a 1 MiB file
    costs ten times as much."""
    import yaml

    events = (yaml.AliasEvent, yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
    loader = _yaml_loader()(text)
    try:
        count = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, events):
                count += 1
                if count > MAX_VALUES:
                    mark: Any = event.start_mark
                    return Problem(f"line {mark.line + 1}" if mark else "", _TOO_MANY)
    finally:
        loader.dispose()
    return None


_TOO_MANY = f"the recipe holds more than {MAX_VALUES:,} values; a recipe holds far fewer"


def _children(node: Any) -> list[Any]:
    value = node.value
    if isinstance(value, list):
        return [x for item in value for x in (item if isinstance(item, tuple) else (item,))]
    return []


def _node_budget(root: Any) -> Problem | None:
    """Whether the YAML node graph, aliases expanded, stays within MAX_DEPTH and MAX_VALUES.

    Each node's expanded size and height are computed once (memoised, iteratively), so the
    check is linear in the size of the file whatever the aliases multiply to."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            kids = _children(node)
            # a child on the path is an ancestor (an alias inside its own anchor): counted once,
            # and reported with its key path after construction
            size[key] = 1 + sum(size.get(id(k), 0) for k in kids)
            height[key] = 1 + max((height.get(id(k), 0) for k in kids), default=0)
            line = node.start_mark.line + 1
            if size[key] > MAX_VALUES:
                return Problem(
                    f"line {line}",
                    f"this value expands to more than {MAX_VALUES:,} values (YAML aliases "
                    "repeat what their anchor holds, so a few aliases can multiply it); a "
                    "recipe holds far fewer",
                )
            if height[key] > MAX_DEPTH:
                return Problem(f"line {line}", _DEEP)
            continue
        if key in size or key in on_path:
            continue
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in reversed(_children(node)))
    return None


def interpolate_env(
    data: Any, env: Mapping[str, str], path: str = "", values: set[str] | None = None
) -> tuple[Any, list[Problem], set[str]]:
    """Replace ``${NAME}`` (and ``${NAME:-default}``) in every string; ``$${`` is a literal ``${``.

    Returns the new data, the problems (unset variables, bad syntax) and the key paths that took a
    value from the environment. The environment values substituted (not the defaults written in
    the recipe) are added to ``values`` when given: they are the secrets to keep out of outputs.
    """
    problems: list[Problem] = []
    secret: set[str] = set()

    def walk(value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value

        def repl(m: re.Match[str]) -> str:
            if m.group(1):  # escaped: $${...}
                return "${" + m.group(2) + "}"
            body = m.group(2)
            name, sep, default = body.partition(":-")
            if not _ENV_NAME.match(name):
                problems.append(
                    Problem(
                        where,
                        f"'${{{body}}}' is not a valid environment reference; write ${{NAME}} or ${{NAME:-default}}",
                    )
                )
                return m.group(0)
            secret.add(where)
            if name in env:
                if values is not None:
                    values.add(env[name])
                return env[name]
            if sep:
                return default
            problems.append(
                Problem(
                    where,
                    f"environment variable {name} is not set; set it, or give a default with ${{{name}:-value}}",
                )
            )
            return m.group(0)

        return _ENV_REF.sub(repl, value)

    return walk(data, path), problems, secret


def _toml_lines(text: str) -> dict[str, int]:
    """Approximate source lines of TOML key paths (table headers and ``key =`` lines)."""
    lines: dict[str, int] = {}
    table = ""
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    keyline = re.compile(r"""^\s*([A-Za-z0-9_\-."']+)\s*=""")
    for no, raw in enumerate(text.splitlines(), start=1):
        m = header.match(raw)
        if m:
            parts = [p.strip().strip("\"'") for p in m.group(1).split(".")]
            table = ".".join(parts)
            for i in range(1, len(parts) + 1):  # [components.rnd] also opens `components`
                lines.setdefault(".".join(parts[:i]), no)
            continue
        m = keyline.match(raw)
        if m:
            key = ".".join(p.strip().strip("\"'") for p in m.group(1).split("."))
            lines.setdefault(f"{table}.{key}" if table else key, no)
    return lines


def _node_lines(root: Any) -> tuple[dict[str, int], list[Problem]]:
    """Source lines of the key paths of a YAML (or JSON) node tree, and its duplicate keys as
    problems.

    YAML and JSON parsers keep the last of two equal keys without a word, which silently drops a
    component; the composed node tree still has both, with their lines.
    """
    import yaml

    lines: dict[str, int] = {}
    duplicates: list[Problem] = []

    visited: set[int] = set()

    def walk(node: Any, where: str) -> None:
        if id(node) in visited:  # an alias of a node already walked (or a recursive one)
            return
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], tuple[int, int]] = {}
            for k, v in node.value:
                key = f"{where}.{k.value}" if where else str(k.value)
                line, column = k.start_mark.line + 1, k.start_mark.column + 1
                ident = (k.tag, k.value) if isinstance(k, yaml.ScalarNode) else None
                if ident is not None and ident in seen:
                    first = f"line {seen[ident][0]}" + (
                        f", column {seen[ident][1]}" if seen[ident][0] == line else ""
                    )
                    duplicates.append(
                        Problem(
                            f"line {line}, column {column}",
                            f"duplicate key {key!r}, first defined at {first}: rename or remove one "
                            "(the parser would silently keep only the last)",
                        )
                    )
                    continue
                if ident is not None:
                    seen[ident] = (line, column)
                lines[key] = line
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                key = f"{where}[{i}]"
                lines[key] = v.start_mark.line + 1
                walk(v, key)

    if root is not None:
        walk(root, "")
    return lines, duplicates


MAX_PROBLEMS = 50
"""Most problems one error lists; the rest are counted (fixing the first ones often fixes them)."""


def with_lines(lines: dict[str, int], problems: list[Problem]) -> list[Problem]:
    """Add ``(line N)`` to each problem's key path where the source line is known; keep the
    list readable: at most :data:`MAX_PROBLEMS` problems, long keys and messages shortened."""
    out = []
    for p in problems[:MAX_PROBLEMS]:
        line = line_for(lines, p.where) if p.where and not p.where.startswith("line ") else None
        where = _shorten_keys(p.where)
        out.append(Problem(f"{where} (line {line})" if line else where, _shorten(p.message)))
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        out.append(Problem("", f"... and {more:,} more problems, not listed; fix these first"))
    return out


def _shorten_keys(where: str) -> str:
    """A key path with each key of more than 60 characters cut to its first 40."""
    return re.sub(
        r"[^.\[\]]{61,}", lambda m: f"{m.group()[:40]}...({len(m.group()):,} characters)", where
    )


def _shorten(message: str, limit: int = 2000) -> str:
    if len(message) <= limit:
        return message
    return f"{message[: limit - 40]}... ({len(message) - limit + 40:,} more characters)"


_KINDS = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def recipe_from_dict(
    data: Any,
    *,
    source: str = "<recipe>",
    env: Mapping[str, str] | None = None,
    lines: dict[str, int] | None = None,
) -> Recipe:
    """Validate already-parsed recipe data (first pass: env interpolation and shape)."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else _KINDS.get(type(data), f"a {type(data).__name__}")
        raise RecipeError(
            source,
            [
                Problem(
                    "", f"a recipe must be a table/mapping at the top level, but the file is {kind}"
                )
            ],
        )
    fatal, numbers = _scan(data)
    if fatal:
        raise RecipeError(source, with_lines(lines or {}, fatal))
    env_values: set[str] = set()
    data, problems, secret = interpolate_env(
        data, os.environ if env is None else env, values=env_values
    )
    # the values taken from the environment are secrets from now on: errors, logs, progress and
    # run files of this process hide them (recai.secrets), whatever the command
    from .. import secrets as _secrets

    _secrets.register(env_values)
    problems += numbers
    recipe: Recipe | None = None
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        found = {p.where for p in numbers}  # said once, by the scan
        shape = [
            p for p in format_validation_error(e, redact=frozenset(secret)) if p.where not in found
        ]
        problems += _suggest(shape[:MAX_PROBLEMS]) + shape[MAX_PROBLEMS:]  # the rest: counted
    if problems or recipe is None:
        raise RecipeError(source, with_lines(lines or {}, problems))
    recipe._source = source
    recipe._secret_paths = frozenset(secret)
    recipe._secret_values = frozenset(env_values)
    recipe._lines = dict(lines or {})
    return recipe


_NAME_RULE = "names must start with a letter or '_' and contain only letters, digits, '_' and '-'"


def _suggest(problems: list[Problem]) -> list[Problem]:
    """Add "did you mean" to unknown keys of the recipe's own tables."""
    import difflib

    known = {
        "": ["name", "description", "requires", "components", "run"],
        "run": ["stages", "seed"],
    }
    out = []
    for p in problems:
        msg = p.message
        if msg == "unknown key":
            parent, _, key = p.where.rpartition(".")
            choices = known.get(parent)
            if choices is None and re.match(r"^components\.[^.]+$", parent):
                choices = ["use", "params", "description"]
            if choices:
                close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
                msg += (
                    f" (did you mean {close[0]!r}?)"
                    if close
                    else f" (allowed keys: {', '.join(choices)})"
                )
        bad_key = re.match(r"^components\[(.*)\]$", p.where)
        if bad_key and msg.startswith(
            "invalid key:"
        ):  # YAML reads `on`, `no`, `2` as a bool or a number
            got = re.search(r"\(got (.*)\)$", msg)
            what = f"that YAML reads as {got.group(1)} " if got else ""
            msg = (
                f"a component name {what}is not a string; put the name in quotes (YAML reads "
                "on/off/yes/no/true/false as booleans and digits as numbers)"
            )
            out.append(Problem("components", msg))
            continue
        if re.match(r"^components\.[^.]+$", p.where) and msg.startswith("invalid key:"):
            msg = f"{p.where.split('.', 1)[1]!r} is not a valid component name: {_NAME_RULE}"
        elif re.match(r"^components\.[^.]+$", p.where) and msg.startswith(
            "expected a table/mapping"
        ):
            name = p.where.split(".", 1)[1]
            msg = (
                f"a component must be a table with a `use` key, e.g. [components.{name}] "
                'use = "random.v1" (in YAML and JSON: a mapping)'
            )
        elif re.match(r"^run\.stages\[\d+\]$", p.where) and "should match pattern" in msg:
            got = re.search(r" \(got .*\)$", msg)
            msg = f"not a component name: {_NAME_RULE}" + (got.group(0) if got else "")
        out.append(Problem(p.where, msg))
    return out


def _scan(data: Any) -> tuple[list[Problem], list[Problem]]:
    """``(fatal, numbers)``: a value that contains itself, nesting beyond MAX_DEPTH or more
    than MAX_VALUES values (fatal: nothing else is checked), and numbers no component can use
    (``inf``, ``nan``, integers beyond 64 bits), with their key paths. Iterative, so that no
    input makes it recurse; what it accepts, the recursive passes after it can walk."""
    numbers: list[Problem] = []
    count = 0
    stack: list[tuple[Any, str, int, frozenset[int]]] = [(data, "", 0, frozenset())]
    while stack:
        value, where, depth, inside = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return [Problem(where, _TOO_MANY)], []
        if isinstance(value, (dict, list)):
            if id(value) in inside:
                return [
                    Problem(
                        where or "(top level)",
                        "this value contains itself (a YAML alias inside its own anchor)",
                    )
                ], []
            if depth >= MAX_DEPTH:
                return [Problem(where or "(top level)", _DEEP)], []
            inner = inside | {id(value)}
            if isinstance(value, dict):
                items = [(f"{where}.{k}" if where else str(k), v) for k, v in value.items()]
            else:
                items = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
            stack.extend((v, sub, depth + 1, inner) for sub, v in reversed(items))
            continue
        problem = number_problem(value)
        if problem is not None and len(numbers) < 20:
            numbers.append(Problem(where, problem))
    return [], numbers


def _read(path: Path, label: str) -> bytes:
    """The bytes of a recipe file, refusing before reading anything that is not a regular file
    (a device such as /dev/zero, a FIFO, a socket, a directory) or is larger than MAX_BYTES."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise RecipeError(label, [Problem("", "file not found")]) from None
    except NotADirectoryError:
        raise RecipeError(
            label, [Problem("", "file not found (a part of the path is a file, not a folder)")]
        ) from None
    except ValueError:  # a NUL character in the path
        raise RecipeError(label, [Problem("", "the path contains a NUL character")]) from None
    except OSError as e:
        raise RecipeError(label, [Problem("", f"cannot read the file: {e.strerror}")]) from None
    _check_kind(info, label)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise RecipeError(label, [Problem("", f"cannot read the file: {e.strerror}")]) from None
    try:
        _check_kind(os.fstat(fd), label)  # the file opened is the file checked
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as e:
        raise RecipeError(label, [Problem("", f"cannot read the file: {e.strerror}")]) from None
    finally:
        os.close(fd)
    if total > MAX_BYTES:  # it grew after the check
        _check_kind(info, label, size=total)
    return b"".join(chunks)


def _check_kind(info: os.stat_result, label: str, size: int | None = None) -> None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise RecipeError(label, [Problem("", "is a directory, not a recipe file")])
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(mode)
            else "a character device"
            if stat.S_ISCHR(mode)
            else "a block device"
            if stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        raise RecipeError(
            label,
            [Problem("", f"is {kind}, not a regular file; recai reads recipes from files only")],
        )
    size = info.st_size if size is None else size
    if size > MAX_BYTES:
        raise RecipeError(
            label,
            [
                Problem(
                    "",
                    f"the file is {size:,} bytes; a recipe file is at most {MAX_BYTES:,} bytes "
                    "(1 MiB)",
                )
            ],
        )


def _decode(raw: bytes, label: str) -> str:
    """UTF-8 text (a byte order mark is dropped); invalid bytes are named by line, column and
    byte offset."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RecipeError(
            label,
            [
                Problem(
                    "line 1",
                    "the file is UTF-16 text (it starts with a UTF-16 byte order mark); save it "
                    "as UTF-8",
                )
            ],
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line_start = raw.rfind(b"\n", 0, e.start) + 1
        line = raw.count(b"\n", 0, e.start) + 1
        column = len(raw[line_start : e.start].decode("utf-8", "replace")) + 1
        raise RecipeError(
            label,
            [
                Problem(
                    f"line {line}, column {column}",
                    f"the file is not valid UTF-8 text: byte 0x{raw[e.start]:02x} at offset "
                    f"{e.start} ({e.reason}); save the file as UTF-8",
                )
            ],
        ) from None


def load_recipe(
    source: str | os.PathLike[str] | Mapping[str, Any], *, env: Mapping[str, str] | None = None
) -> Recipe:
    """Load and shape-check a recipe from a file (``.toml``, ``.yaml``/``.yml``, ``.json``) or a dict.

    >>> r = load_recipe({"components": {"rnd": {"use": "random.v1"}}})
    >>> r.components["rnd"].use
    'random.v1'
    """
    if isinstance(source, Mapping):
        return recipe_from_dict(dict(source), env=env)
    if not os.fspath(source):
        raise RecipeError("<recipe>", [Problem("", "the recipe path is empty; name a recipe file")])
    path = Path(source)
    label = str(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        with contextlib.suppress(OSError, ValueError):  # a device or a FIFO is named as such
            _check_kind(os.stat(path), label)
        raise RecipeError(
            label,
            [
                Problem(
                    "",
                    f"unknown recipe file type {path.suffix or '(none)'!r}; use .toml, .yaml, .yml or .json",
                )
            ],
        )
    text = _decode(_read(path, label), label)
    data, root = _parse(text, fmt, label)
    # JSON text is YAML too, so both get exact lines and duplicate-key checks from the node tree
    lines, duplicates = _node_lines(root) if root is not None else ({}, [])
    if fmt == "toml":
        lines = _toml_lines(text)
    fatal, _ = _scan(data)
    if fatal:  # a value that contains itself, or (TOML dotted keys) nesting too deep
        raise RecipeError(label, with_lines(lines, fatal))
    if data is None or data == {}:
        raise RecipeError(
            label,
            [
                Problem(
                    "",
                    'the recipe is empty: it needs at least one component, e.g. [components.rnd] use = "random.v1"',
                )
            ],
        )
    if duplicates:
        raise RecipeError(label, duplicates)
    return recipe_from_dict(data, source=label, env=env, lines=lines)
