"""Reading recipe files (TOML, YAML, JSON) into :class:`~recai.recipe.model.Recipe`.

Parsing and the shape check form the first validation pass; every problem found is reported
together in one :class:`~recai.errors.RecipeError` naming the file and the line or key path.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import Problem, RecipeError
from ..specs import format_validation_error
from .model import Recipe, line_for

__all__ = ["load_recipe", "recipe_from_dict", "parse_text", "interpolate_env", "FORMATS"]

FORMATS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}

_ENV_REF = re.compile(r"\$(\$)?\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_text(text: str, fmt: str, source: str) -> Any:
    """Parse recipe text; syntax errors become a RecipeError naming the line and column."""
    try:
        if fmt == "toml":
            return tomllib.loads(text)
        if fmt == "yaml":
            import yaml

            return yaml.safe_load(text)
        if fmt == "json":
            return json.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        where = f"line {m.group(1)}, column {m.group(2)}" if m else "syntax"
        raise RecipeError(
            source, [Problem(where, "TOML syntax error: " + re.sub(r"\s*\(at line.*\)$", "", msg))]
        ) from None
    except json.JSONDecodeError as e:
        raise RecipeError(
            source, [Problem(f"line {e.lineno}, column {e.colno}", f"JSON syntax error: {e.msg}")]
        ) from None
    except Exception as e:  # yaml.YAMLError (yaml is imported lazily)
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "syntax"
        problem = getattr(e, "problem", None) or str(e)
        raise RecipeError(source, [Problem(where, f"YAML syntax error: {problem}")]) from None
    raise RecipeError(
        source, [Problem("", f"unknown recipe format {fmt!r}; use one of: toml, yaml, json")]
    )


def interpolate_env(
    data: Any, env: Mapping[str, str], path: str = ""
) -> tuple[Any, list[Problem], set[str]]:
    """Replace ``${NAME}`` (and ``${NAME:-default}``) in every string; ``$${`` is a literal ``${``.

    Returns the new data, the problems (unset variables, bad syntax) and the key paths that took a
    value from the environment.
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


def _yaml_lines(text: str) -> dict[str, int]:
    """Exact source lines of YAML key paths, from the composed node tree."""
    return _node_lines(text)[0]


def _node_lines(text: str) -> tuple[dict[str, int], list[Problem]]:
    """Source lines of the key paths of YAML (or JSON) text, and its duplicate keys as problems.

    YAML and JSON parsers keep the last of two equal keys without a word, which silently drops a
    component; the composed node tree still has both, with their lines.
    """
    import yaml

    lines: dict[str, int] = {}
    duplicates: list[Problem] = []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines, duplicates

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


def with_lines(lines: dict[str, int], problems: list[Problem]) -> list[Problem]:
    """Add ``(line N)`` to each problem's key path where the source line is known."""
    out = []
    for p in problems:
        line = line_for(lines, p.where) if p.where and not p.where.startswith("line ") else None
        out.append(Problem(f"{p.where} (line {line})", p.message) if line else p)
    return out


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
    data, problems, secret = interpolate_env(data, os.environ if env is None else env)
    recipe: Recipe | None = None
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as e:
        problems += _suggest(format_validation_error(e, redact=frozenset(secret)))
    if problems or recipe is None:
        raise RecipeError(source, with_lines(lines or {}, problems))
    recipe._source = source
    recipe._secret_paths = frozenset(secret)
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


def _recursive_path(data: Any, where: str = "", inside: tuple[int, ...] = ()) -> str | None:
    """Key path of a value that contains itself (possible with YAML anchors), or None."""
    if not isinstance(data, (dict, list)):
        return None
    if id(data) in inside:
        return where or "(top level)"
    inside = (*inside, id(data))
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for k, v in items:
        found = _recursive_path(
            v,
            (f"{where}.{k}" if where else str(k)) if isinstance(data, dict) else f"{where}[{k}]",
            inside,
        )
        if found is not None:
            return found
    return None


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
    path = Path(source)
    label = str(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise RecipeError(
            label,
            [
                Problem(
                    "",
                    f"unknown recipe file type {path.suffix or '(none)'!r}; use .toml, .yaml, .yml or .json",
                )
            ],
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecipeError(label, [Problem("", "file not found")]) from None
    except IsADirectoryError:
        raise RecipeError(label, [Problem("", "is a directory, not a recipe file")]) from None
    except OSError as e:
        raise RecipeError(label, [Problem("", f"cannot read the file: {e.strerror}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise RecipeError(
            label, [Problem(f"line {line}", "the file is not valid UTF-8 text")]
        ) from None
    data = parse_text(text, fmt, label)
    loop = _recursive_path(data)
    if loop is not None:
        problem = Problem(loop, "this value contains itself (a YAML alias inside its own anchor)")
        raise RecipeError(label, with_lines(_node_lines(text)[0], [problem]))
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
    if fmt == "toml":
        lines = _toml_lines(text)
    else:  # JSON text is YAML too, so both get exact lines and duplicate-key checks
        lines, duplicates = _node_lines(text)
        if duplicates:
            raise RecipeError(label, duplicates)
    return recipe_from_dict(data, source=label, env=env, lines=lines)
