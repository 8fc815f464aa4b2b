"""Plans: the JSON schema the brain writes them under, their validation and repair, the
deterministic plan from the slots, and the merge of the two.

A plan is ``{"steps": [{"tool": "<name>", "input": {...}}, ...]}``. As InteRecAgent prescribes,
the steps follow a tool-order skeleton: one ``lookup`` alone (a question about known items), or
``[hard_filter] [soft_filter] ranking map`` (a recommendation). :func:`plan_schema` builds the
JSON schema of exactly those skeletons from the tools and the catalog: genre and other
categorical values as enums of the catalog's values, years within the catalog's range, seed
titles as strings (an enum of titles when the catalog is small) grounded afterwards. It stays
within what recai-hf's JSON constraint compiles (``const``, ``enum``, ``anyOf``, ``prefixItems``,
``$ref``/``$defs``, ``maxItems``, ``maxLength``, ``pattern``, ``minimum``/``maximum``) and small
enough for a 135M model: every string and array is bounded, so a constrained reply is short.

The brain's plan is checked by :func:`validate_plan` (shape, schema, order, grounded values); an
invalid one goes to :func:`repair_plan` (parse what can be parsed, a cut reply closed, tool
names and values mapped to the nearest real ones, impossible steps dropped, the order fixed).
:func:`plan_from_slots` is the deterministic plan from :class:`~recai_agent.slots.Slots`, and
:func:`merge` combines the two: the rules for what they catch with certainty (the genres, years,
titles and refusals the request names), the model for the rest (the skeleton, how to rank, a
look-up's SQL). Nothing here raises on a bad plan: problems are returned and recorded.

>>> from recai.data import Catalog
>>> cat = Catalog(ids=[1, 2], titles=["Heat (1995)", "Babe (1995)"],
...               fields={"genres": [("Action",), ("Comedy",)], "year": [1995, 1995]})
>>> schema = plan_schema(["hard_filter", "ranking", "map"], cat)
>>> plan, problems = validate_plan(
...     {"steps": [{"tool": "hard_filter", "input": {"genres": ["Comedy"]}},
...                {"tool": "ranking", "input": {"by": "popularity"}},
...                {"tool": "map", "input": {}}]}, schema, cat)
>>> problems, [s.tool for s in plan.steps]
([], ['hard_filter', 'ranking', 'map'])
>>> repair_plan('{"steps": [{"tool": "filter", "input": {"genres": ["comedies"]}}', schema, cat).to_dict()
{'steps': [{'tool': 'hard_filter', 'input': {'genres': ['Comedy']}}, {'tool': 'ranking', 'input': {'by': 'preference', 'mode': 'accuracy'}}, {'tool': 'map', 'input': {}}]}
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any

from recai.data import Catalog
from recai.data.grounding import Grounder

from .slots import CatalogFacts, SlotExtractor, Slots

__all__ = [
    "ORDER",
    "TOOLS",
    "Plan",
    "Step",
    "merge",
    "plan_from_slots",
    "plan_schema",
    "repair_plan",
    "validate_plan",
]

#: The tools of the recommend skeleton, in the order they run (``lookup`` stands alone).
ORDER = ("hard_filter", "soft_filter", "ranking", "map")
#: Every tool a plan may name.
TOOLS = ("lookup", *ORDER)
RANK_BY = ("preference", "popularity", "similarity")
RANK_MODE = ("accuracy", "diversity")

#: How well a seed title must match a catalog title (the fuzzy score) to count as grounded.
TITLE_THRESHOLD = 0.6
#: How well a free-text value must match a catalog value to be mapped to it in a repair.
VALUE_THRESHOLD = 0.5
#: Bounds that keep a constrained reply short.
MAX_VALUES = 3
MAX_SEEDS = 3
MAX_TITLE_CHARS = 80
MAX_TEXT_CHARS = 120
MAX_SQL_CHARS = 400
#: A look-up is one SELECT (the decoder cannot start anything else, nor a second statement).
SQL_PATTERN = "^(SELECT|select) [^;]*$"
#: Enum of titles for seeds only up to this many items (else strings grounded afterwards).
MAX_TITLE_ENUM = 200
#: A categorical field other than the genre one appears in the schema as an enum up to this many
#: values; bigger ones are left out (the hard filter still takes them as free text from a repair).
MAX_FIELD_ENUM = 60

_TOOL_ALIASES = {
    "lookup": "lookup",
    "look_up": "lookup",
    "search": "lookup",
    "sql": "lookup",
    "query": "lookup",
    "select": "lookup",
    "hard_filter": "hard_filter",
    "hardfilter": "hard_filter",
    "filter": "hard_filter",
    "hard": "hard_filter",
    "candidates_storing": "hard_filter",
    "soft_filter": "soft_filter",
    "softfilter": "soft_filter",
    "similar": "soft_filter",
    "similarity": "soft_filter",
    "soft": "soft_filter",
    "retrieve": "soft_filter",
    "ranking": "ranking",
    "rank": "ranking",
    "ranker": "ranking",
    "sort": "ranking",
    "order": "ranking",
    "map": "map",
    "mapping": "map",
    "titles": "map",
    "map_ids": "map",
    "output": "map",
}


@dataclass
class Step:
    """One tool call of a plan."""

    tool: str
    input: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "input": copy.deepcopy(self.input)}


@dataclass
class Plan:
    """Steps in order; ``source`` says where the plan came from (``"model"``, ``"repaired"``,
    ``"slots"``, ``"merged"``, ``"chat"``); ``notes`` what was fixed or why a part was dropped."""

    steps: list[Step] = field(default_factory=list)
    source: str = "model"
    notes: list[str] = field(default_factory=list)

    @property
    def tools(self) -> list[str]:
        return [s.tool for s in self.steps]

    def step(self, tool: str) -> Step | None:
        return next((s for s in self.steps if s.tool == tool), None)

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON (``{"steps": [...]}``), as the tools read it."""
        return {"steps": [s.to_dict() for s in self.steps]}

    def __str__(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


# -- the schema -----------------------------------------------------------------------------------


def _tool_names(tools: Sequence[Any]) -> list[str]:
    names = []
    for t in tools:
        name = t if isinstance(t, str) else getattr(t, "name", None)
        if isinstance(name, str) and name in TOOLS and name not in names:
            names.append(name)
    return names


def _str_array(values: Sequence[str] | None, max_items: int, max_len: int) -> dict[str, Any]:
    item: dict[str, Any] = (
        {"enum": list(values)} if values is not None else {"type": "string", "maxLength": max_len}
    )
    return {"type": "array", "items": item, "maxItems": max_items}


def _step_schema(tool: str, inp: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"tool": {"const": tool}, "input": inp},
        "required": ["tool", "input"],
        "additionalProperties": False,
    }


def _year_bounds(facts: CatalogFacts) -> tuple[int, int] | None:
    """The years a plan may name: the catalog's, widened to whole decades (so "the 90s" fits a
    catalog that ends in 1998)."""
    if facts.years is None:
        return None
    return facts.years[0] // 10 * 10, facts.years[1] // 10 * 10 + 9


def _input_schemas(catalog: Catalog, facts: CatalogFacts) -> dict[str, dict[str, Any]]:
    titles: list[str] | None = None
    if catalog.n_items <= MAX_TITLE_ENUM:
        titles = sorted({str(t) for t in catalog.titles if t is not None})
    hard: dict[str, Any] = {}
    g = facts.genre_field
    if g is not None:
        hard["genres"] = _str_array(facts.categorical[g], MAX_VALUES, 40)
        hard["not_genres"] = _str_array(facts.categorical[g], MAX_VALUES, 40)
    bounds = _year_bounds(facts)
    if bounds is not None:
        lo, hi = bounds
        hard["year_min"] = {"type": "integer", "minimum": lo, "maximum": hi}
        hard["year_max"] = {"type": "integer", "minimum": lo, "maximum": hi}
    for f, values in facts.categorical.items():
        if f != g and len(values) <= MAX_FIELD_ENUM and f not in hard:
            hard[f] = _str_array(values, MAX_VALUES, 40)
    for f, (lo_v, hi_v) in facts.numeric.items():
        if f == facts.year_field:
            continue
        for side in ("min", "max"):
            key = f"{f}_{side}"
            if key not in hard:
                hard[key] = {"type": "number", "minimum": lo_v, "maximum": hi_v}
    seeds = _str_array(titles, MAX_SEEDS, MAX_TITLE_CHARS)
    return {
        "lookup": {
            "type": "object",
            "properties": {
                "sql": {
                    "type": "string",
                    "pattern": SQL_PATTERN,
                    "minLength": 8,
                    "maxLength": MAX_SQL_CHARS,
                }
            },
            "required": ["sql"],
            "additionalProperties": False,
        },
        "hard_filter": {"type": "object", "properties": hard, "additionalProperties": False},
        "soft_filter": {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"seeds": {**seeds, "minItems": 1}},
                    "required": ["seeds"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "minLength": 2, "maxLength": MAX_TEXT_CHARS}
                    },
                    "required": ["text"],
                    "additionalProperties": False,
                },
            ]
        },
        "ranking": {
            "type": "object",
            "properties": {
                "by": {"enum": list(RANK_BY)},
                "mode": {"enum": list(RANK_MODE)},
                "prefer": _str_array(titles, MAX_SEEDS, MAX_TITLE_CHARS),
                "unwanted": _str_array(titles, MAX_SEEDS, MAX_TITLE_CHARS),
            },
            "required": ["by"],
            "additionalProperties": False,
        },
        "map": {"type": "object", "properties": {}, "additionalProperties": False},
    }


def plan_schema(tools: Sequence[Any], catalog: Catalog, *_: Any) -> dict[str, Any]:
    """The JSON schema of plans over ``tools`` (names, or objects with ``name``; tools other than
    the five of :data:`TOOLS` are left out) and ``catalog``.

    ``steps`` is one of the skeletons the tools allow: ``[lookup]``, or ``[hard_filter]
    [soft_filter] ranking map`` with the optional steps present or not (four variants when all
    tools are there). A recommend skeleton needs ``ranking`` and ``map``; without them only the
    look-up remains. Step inputs live in ``$defs`` so each is written once.
    """
    names = _tool_names(tools)
    facts = CatalogFacts.of(catalog)
    inputs = _input_schemas(catalog, facts)
    defs = {n: _step_schema(n, inputs[n]) for n in names}
    skeletons: list[list[str]] = []
    if "lookup" in names:
        skeletons.append(["lookup"])
    if "ranking" in names and "map" in names:
        for hard in ("hard_filter" in names, False):
            for soft in ("soft_filter" in names, False):
                sk = [*(["hard_filter"] if hard else []), *(["soft_filter"] if soft else [])]
                sk += ["ranking", "map"]
                if sk not in skeletons:
                    skeletons.append(sk)
    if not skeletons:
        raise ValueError(
            f"no plan skeleton fits the tools {names}: a plan needs 'lookup', or 'ranking' and "
            "'map'"
        )
    variants = [
        {
            "type": "array",
            "prefixItems": [{"$ref": f"#/$defs/{n}"} for n in sk],
            "minItems": len(sk),
            "maxItems": len(sk),
        }
        for sk in skeletons
    ]
    return {
        "type": "object",
        "properties": {"steps": variants[0] if len(variants) == 1 else {"anyOf": variants}},
        "required": ["steps"],
        "additionalProperties": False,
        "$defs": defs,
    }


# -- checking a value against the schema -----------------------------------------------------------


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        return _resolve(target, root)
    return node


def _type_ok(value: Any, t: str) -> bool:
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(float(value))
        )
    if t == "boolean":
        return isinstance(value, bool)
    if t == "null":
        return value is None
    return True


def schema_errors(
    value: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, path: str = ""
) -> list[str]:
    """Where ``value`` breaks ``schema`` (the subset :func:`plan_schema` writes: type, const,
    enum, properties, required, additionalProperties, items, prefixItems, min/maxItems,
    min/maxLength, minimum/maximum, anyOf, $ref), one line each with its JSON path."""
    root = schema if root is None else root
    node = _resolve(schema, root)
    where = path or "the plan"
    if "anyOf" in node:
        options = [schema_errors(value, o, root, path) for o in node["anyOf"]]
        if any(not e for e in options):
            return []
        return min(options, key=len)
    errors: list[str] = []
    t = node.get("type")
    if t is not None:
        types = [t] if isinstance(t, str) else list(t)
        if not any(_type_ok(value, x) for x in types):
            return [f"{where}: expected {' or '.join(types)}, got {type(value).__name__}"]
    if "const" in node and value != node["const"]:
        return [f"{where}: expected {node['const']!r}, got {value!r}"]
    if "enum" in node and value not in node["enum"]:
        shown = ", ".join(map(repr, node["enum"][:8])) + (", ..." if len(node["enum"]) > 8 else "")
        return [f"{where}: {value!r} is not one of {shown}"]
    if isinstance(value, str):
        if len(value) > node.get("maxLength", math.inf):
            errors.append(f"{where}: longer than {node['maxLength']} characters")
        if len(value) < node.get("minLength", 0):
            errors.append(f"{where}: shorter than {node['minLength']} characters")
        if "pattern" in node and not re.search(node["pattern"], value):
            errors.append(f"{where}: does not match {node['pattern']!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in node and value < node["minimum"]:
            errors.append(f"{where}: {value} is below {node['minimum']}")
        if "maximum" in node and value > node["maximum"]:
            errors.append(f"{where}: {value} is above {node['maximum']}")
    if isinstance(value, list):
        if len(value) > node.get("maxItems", math.inf):
            errors.append(f"{where}: more than {node['maxItems']} items")
        if len(value) < node.get("minItems", 0):
            errors.append(f"{where}: fewer than {node['minItems']} items")
        prefix = node.get("prefixItems", [])
        for i, v in enumerate(value):
            sub = prefix[i] if i < len(prefix) else node.get("items")
            if sub is False:
                errors.append(f"{path}[{i}]: not allowed")
            elif isinstance(sub, Mapping):
                errors += schema_errors(v, sub, root, f"{path}[{i}]")
    if isinstance(value, dict):
        props = node.get("properties", {})
        for key in node.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing {key!r}")
        for key, v in value.items():
            sub_path = f"{path}.{key}" if path else str(key)
            if key in props:
                errors += schema_errors(v, props[key], root, sub_path)
            elif node.get("additionalProperties", True) is False:
                errors.append(f"{where}: unknown key {key!r}")
    return errors


# -- validation -------------------------------------------------------------------------------------


def _order_problems(tools: Sequence[str]) -> list[str]:
    if not tools:
        return ["the plan has no steps"]
    if "lookup" in tools:
        return [] if list(tools) == ["lookup"] else ["a lookup must be the only step"]
    problems = []
    unknown = [t for t in tools if t not in ORDER]
    if unknown:
        problems.append(f"unknown tools {unknown} (tools: {', '.join(TOOLS)})")
    known = [t for t in tools if t in ORDER]
    if len(set(known)) != len(known):
        problems.append("a tool appears twice")
    if known != sorted(known, key=ORDER.index):
        problems.append(f"steps out of order: {known} (order: {', '.join(ORDER)})")
    for must in ("ranking", "map"):
        if must not in known:
            problems.append(f"no {must} step")
    if known and known[-1] != "map":
        problems.append("map must be the last step")
    return problems


def _ground_title(text: str, grounder: Grounder) -> tuple[str | None, float]:
    ids, scores = grounder.titles.top(str(text)[:300], 1)
    if len(ids) and scores[0] >= TITLE_THRESHOLD:
        return grounder.catalog.title(int(ids[0])), float(scores[0])
    return None, float(scores[0]) if len(scores) else 0.0


def _grounder(catalog: Catalog, grounder: Grounder | None) -> Grounder:
    return grounder if grounder is not None else Grounder(catalog)


def validate_plan(
    obj: Any,
    schema: Mapping[str, Any],
    catalog: Catalog,
    grounder: Grounder | None = None,
) -> tuple[Plan | None, list[str]]:
    """``(plan, [])`` when ``obj`` (parsed JSON, or the reply's text) is a valid plan: its shape
    and values fit ``schema``, its steps follow the skeleton, every title grounds in the catalog
    (seed and ranking titles come back as exact catalog titles) and a look-up is one SELECT.
    Otherwise ``(None, problems)``, one line each; nothing raises."""
    problems: list[str] = []
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except ValueError as e:
            return None, [f"the plan does not parse as JSON: {e}"]
    if not isinstance(obj, dict) or not isinstance(obj.get("steps"), list):
        return None, ['the plan is not an object with a "steps" list']
    problems += schema_errors(obj, schema)
    steps = obj["steps"]
    if not all(isinstance(s, dict) and isinstance(s.get("tool"), str) for s in steps):
        return None, problems + ['every step must be an object with a "tool" name']
    problems += _order_problems([s["tool"] for s in steps])
    if problems:
        return None, problems
    g = _grounder(catalog, grounder)
    plan = Plan([Step(s["tool"], copy.deepcopy(s.get("input") or {})) for s in steps], "model")
    for st in plan.steps:
        for key in ("seeds", "prefer", "unwanted"):
            if key not in st.input:
                continue
            grounded = []
            for title in st.input[key]:
                real, score = _ground_title(title, g)
                if real is None:
                    problems.append(
                        f"{st.tool}.{key}: {title!r} matches no catalog title (best score "
                        f"{score:.2f} < {TITLE_THRESHOLD})"
                    )
                elif real not in grounded:
                    grounded.append(real)
            st.input[key] = grounded
        if st.tool == "lookup" and not _is_select(st.input.get("sql", "")):
            problems.append("lookup.sql: not a single SELECT statement")
        if st.tool == "hard_filter":
            lo, hi = st.input.get("year_min"), st.input.get("year_max")
            if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
                problems.append(f"hard_filter: year_min {lo} is after year_max {hi}")
    return (None, problems) if problems else (plan, [])


_SELECT = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)


def _is_select(sql: Any) -> bool:
    if not isinstance(sql, str) or not _SELECT.match(sql):
        return False
    body = sql.strip().rstrip(";")
    return ";" not in body


# -- repair -----------------------------------------------------------------------------------------


def close_json(text: str) -> str | None:
    """A JSON text cut short (a reply that ran out of tokens) closed into a parseable one: the
    unfinished last value is dropped and open strings, arrays and objects are closed. ``None``
    when no ``{`` or ``[`` starts a value."""
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    text = text[start:]
    stack: list[str] = []
    in_str = esc = False
    safe = 0  # the end of the last complete element
    safe_stack: list[str] = []
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack:
                return text[:i]
            stack.pop()
            safe, safe_stack = i + 1, list(stack)
            if not stack:
                return text[: i + 1]
        elif ch == ",":
            safe, safe_stack = i, list(stack)
    if in_str or stack:
        head = text[:safe].rstrip().rstrip(",")
        closers = "".join(reversed(safe_stack))
        # an object cut after a key (`{"a": 1, "b"`) was dropped at the comma above
        candidate = head + closers
        try:
            json.loads(candidate)
            return candidate
        except ValueError:
            return None
    return text


def _parse_any(obj_or_text: Any) -> tuple[Any, list[str]]:
    if not isinstance(obj_or_text, str):
        return obj_or_text, []
    text = obj_or_text.strip()
    from recai.jsontext import JSONTextError, extract_json

    try:
        return json.loads(text), []
    except ValueError as e:
        reason = str(e)
    if text.startswith(("{", "[")):  # a reply cut by max_tokens is a prefix of the plan
        closed = close_json(text)
        if closed is not None:
            try:
                return json.loads(closed), [f"the reply was cut short ({reason}); closed it"]
            except ValueError:
                pass
    try:
        return extract_json(text).value, []
    except JSONTextError as e:
        return None, [f"the reply holds no usable JSON: {e}"]


def _tool_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    key = re.sub(r"[^a-z_]", "", value.lower().replace(" ", "_").replace("-", "_"))
    if key in _TOOL_ALIASES:
        return _TOOL_ALIASES[key]
    close = get_close_matches(key, list(_TOOL_ALIASES), n=1, cutoff=0.75)
    return _TOOL_ALIASES[close[0]] if close else None


def _raw_steps(obj: Any) -> list[Any]:
    if isinstance(obj, list):
        return obj
    if not isinstance(obj, dict):
        return []
    for key in ("steps", "plan", "tools", "actions", "calls", "tool_calls"):
        if isinstance(obj.get(key), list):
            return list(obj[key])
    # {"hard_filter": {...}, "ranking": {...}}: one step per tool key
    steps = [{"tool": k, "input": v} for k, v in obj.items() if _tool_name(k) is not None]
    if steps:
        return steps
    if "tool" in obj or "name" in obj:
        return [obj]
    return []


def _step_parts(raw: Any) -> tuple[str | None, Any]:
    if isinstance(raw, str):
        return _tool_name(raw), {}
    if not isinstance(raw, dict):
        return None, None
    name = next(
        (raw[k] for k in ("tool", "name", "action", "tool_name", "function") if k in raw), None
    )
    if isinstance(name, dict):  # {"function": {"name": ..., "arguments": ...}}
        raw, name = name, name.get("name")
    inp = next(
        (raw[k] for k in ("input", "arguments", "args", "parameters", "params", "arg") if k in raw),
        None,
    )
    if isinstance(inp, str):
        try:
            inp = json.loads(inp)
        except ValueError:
            inp = {"sql": inp} if _SELECT.match(inp) else {"text": inp}
    return _tool_name(name), inp if inp is not None else {}


_EXTRACTORS: dict[int, tuple[Catalog, Grounder, SlotExtractor]] = {}


def _extractor(catalog: Catalog, grounder: Grounder) -> SlotExtractor:
    """A slot extractor per catalog (kept: compiling its words takes a few milliseconds)."""
    hit = _EXTRACTORS.get(id(catalog))
    if hit is not None and hit[0] is catalog and hit[1] is grounder:
        return hit[2]
    if len(_EXTRACTORS) >= 8:
        _EXTRACTORS.clear()
    ex = SlotExtractor(catalog, grounder)
    _EXTRACTORS[id(catalog)] = (catalog, grounder, ex)
    return ex


class _Fixer:
    """Maps values of one plan to the catalog's, noting every change."""

    def __init__(self, catalog: Catalog, grounder: Grounder, notes: list[str]):
        self.catalog = catalog
        self.grounder = grounder
        self.extractor = _extractor(catalog, grounder)
        self.facts = self.extractor.facts
        self.notes = notes

    def value(self, field_name: str, v: Any, where: str) -> str | None:
        values = self.facts.categorical.get(field_name, [])
        text = str(v).strip()[:100]
        exact = next((x for x in values if x.lower() == text.lower()), None)
        if exact is not None:
            return exact
        # the request reader's words first (plurals, synonyms, misspellings: "comedies",
        # "scifi", "romcom"), then the fuzzy matcher
        said = self.extractor.extract(text).fields.get(field_name)
        if said:
            self.notes.append(f"{where}: {text!r} -> {said[0]!r}")
            return said[0]
        found = self.grounder.values(field_name, text, k=1, threshold=VALUE_THRESHOLD)
        if found:
            self.notes.append(f"{where}: {text!r} -> {found[0].name!r}")
            return found[0].name
        self.notes.append(f"{where}: {text!r} is no {field_name} value, dropped")
        return None

    def values(self, field_name: str, raw: Any, where: str) -> list[str]:
        items = raw if isinstance(raw, list) else [raw] if raw not in (None, "") else []
        out: list[str] = []
        for v in items:
            got = self.value(field_name, v, where)
            if got is not None and got not in out:
                out.append(got)
        if len(out) > MAX_VALUES:
            self.notes.append(f"{where}: kept the first {MAX_VALUES} values")
        return out[:MAX_VALUES]

    def number(self, raw: Any, where: str, lo: float, hi: float, integer: bool) -> float | None:
        try:
            v = float(str(raw).strip().rstrip("s'")) if not isinstance(raw, int | float) else raw
        except ValueError:
            self.notes.append(f"{where}: {raw!r} is not a number, dropped")
            return None
        if isinstance(v, bool) or not math.isfinite(float(v)):
            return None
        clamped = min(max(float(v), lo), hi)
        if clamped != float(v):
            self.notes.append(f"{where}: {v} outside {lo:g}..{hi:g}, set to {clamped:g}")
        return int(round(clamped)) if integer else clamped

    def titles(self, raw: Any, where: str) -> list[str]:
        items = raw if isinstance(raw, list) else [raw] if raw not in (None, "") else []
        out: list[str] = []
        for t in items:
            if isinstance(t, int) and not isinstance(t, bool) and 0 <= t < self.catalog.n_items:
                real: str | None = self.catalog.title(t)
            else:
                real, score = _ground_title(str(t), self.grounder)
                if real is None:
                    self.notes.append(f"{where}: {str(t)[:60]!r} matches no title, dropped")
                    continue
                if real != t:
                    self.notes.append(f"{where}: {str(t)[:60]!r} -> {real!r}")
            if real is not None and real not in out:
                out.append(real)
        return out[:MAX_SEEDS]

    def hard_filter(self, inp: Any) -> dict[str, Any]:
        if not isinstance(inp, dict):
            self.notes.append("hard_filter: input is not an object, dropped")
            return {}
        f = self.facts
        out: dict[str, Any] = {}
        for key, raw in inp.items():
            k = str(key).lower().strip()
            if k in ("genre", "genres", "category", "categories") and f.genre_field:
                k = "genres"
            elif k in ("not_genre", "not_genres", "exclude", "exclude_genres", "without"):
                k = "not_genres"
            elif k in ("year_from", "from_year", "min_year", "start_year", "after"):
                k = "year_min"
            elif k in ("year_to", "to_year", "max_year", "end_year", "before"):
                k = "year_max"
            if k in ("genres", "not_genres") and f.genre_field:
                vals = self.values(f.genre_field, raw, f"hard_filter.{k}")
                if vals:
                    out[k] = vals
            elif k in ("year_min", "year_max") and (bounds := _year_bounds(f)) is not None:
                v = self.number(raw, f"hard_filter.{k}", bounds[0], bounds[1], True)
                if v is not None:
                    out[k] = v
            elif k == "sql" and isinstance(raw, str) and raw.strip():
                out["sql"] = raw.strip()[:MAX_SQL_CHARS]
            elif k in f.categorical:
                vals = self.values(k, raw, f"hard_filter.{k}")
                if vals:
                    out[k] = vals
            elif k.endswith(("_min", "_max")) and k[:-4] in f.numeric:
                lo, hi = f.numeric[k[:-4]]
                v = self.number(raw, f"hard_filter.{k}", lo, hi, False)
                if v is not None:
                    out[k] = v
            else:
                self.notes.append(f"hard_filter: unknown key {key!r}, dropped")
        lo_y, hi_y = out.get("year_min"), out.get("year_max")
        if lo_y is not None and hi_y is not None and lo_y > hi_y:
            out["year_min"], out["year_max"] = hi_y, lo_y
            self.notes.append("hard_filter: year_min after year_max, swapped")
        for g in set(out.get("genres", [])) & set(out.get("not_genres", [])):
            out["genres"].remove(g)
            self.notes.append(f"hard_filter: {g!r} both wanted and refused, refused")
        return {k: v for k, v in out.items() if v not in ([], None, "")}

    def soft_filter(self, inp: Any) -> dict[str, Any]:
        if isinstance(inp, list | str) and not isinstance(inp, dict):
            inp = {"seeds": inp} if isinstance(inp, list) else {"text": inp}
        if not isinstance(inp, dict):
            return {}
        seeds_raw = next(
            (
                inp[k]
                for k in ("seeds", "seed", "items", "titles", "similar_to", "like")
                if k in inp
            ),
            None,
        )
        if seeds_raw:
            seeds = self.titles(seeds_raw, "soft_filter.seeds")
            if seeds:
                return {"seeds": seeds}
        text = next((inp[k] for k in ("text", "query", "description") if k in inp), None)
        if isinstance(text, str) and len(text.strip()) >= 2:
            return {"text": text.strip()[:MAX_TEXT_CHARS]}
        return {}

    def ranking(self, inp: Any) -> dict[str, Any]:
        if isinstance(inp, str):
            inp = {"by": inp}
        if not isinstance(inp, dict):
            inp = {}
        out: dict[str, Any] = {}
        for key, options, default in (
            ("by", RANK_BY, "preference"),
            ("mode", RANK_MODE, "accuracy"),
        ):
            raw = inp.get(key)
            if raw is None:
                out[key] = default
                continue
            text = str(raw).lower().strip()
            close = [o for o in options if o.startswith(text[:4])] or get_close_matches(
                text, list(options), n=1, cutoff=0.5
            )
            out[key] = close[0] if close else default
            if out[key] != raw:
                self.notes.append(f"ranking.{key}: {raw!r} -> {out[key]!r}")
        for key in ("prefer", "unwanted"):
            if inp.get(key):
                titles = self.titles(inp[key], f"ranking.{key}")
                if titles:
                    out[key] = titles
        return out


def repair_plan(
    obj_or_text: Any,
    schema: Mapping[str, Any] | None = None,
    catalog: Catalog | None = None,
    grounder: Grounder | None = None,
) -> Plan | None:
    """The plan ``obj_or_text`` meant, fixed: JSON found in prose or closed when cut short; a
    bare list of steps or ``{"plan": [...]}``; tool names and input keys by alias and nearest
    spelling; categorical values, years and titles mapped to the nearest real ones (or dropped);
    unknown tools and empty steps dropped; the order made the skeleton's (a look-up alone; a
    missing ranking or map added). ``None`` when nothing usable is left. ``plan.notes`` says what
    was changed. Tools absent from ``schema`` are dropped."""
    if catalog is None:
        raise TypeError("repair_plan needs the catalog")
    notes: list[str] = []
    obj, parse_notes = _parse_any(obj_or_text)
    notes += parse_notes
    if obj is None:
        return None
    g = _grounder(catalog, grounder)
    fixer = _Fixer(catalog, g, notes)
    allowed = set(TOOLS) if schema is None else set(_schema_tools(schema)) or set(TOOLS)
    found: dict[str, dict[str, Any]] = {}
    for raw in _raw_steps(obj)[:10]:
        tool, inp = _step_parts(raw)
        if tool is None:
            notes.append(f"step {str(raw)[:60]!r}: no known tool, dropped")
            continue
        if tool not in allowed:
            notes.append(f"step {tool!r}: not among this agent's tools, dropped")
            continue
        if tool == "lookup":
            sql = inp.get("sql") if isinstance(inp, dict) else inp if isinstance(inp, str) else None
            if _is_select(sql):
                found.setdefault("lookup", {"sql": str(sql).strip()[:MAX_SQL_CHARS]})
            else:
                notes.append("lookup: no single SELECT, dropped")
            continue
        fixed = getattr(fixer, tool)(inp) if tool != "map" else {}
        if tool in found and tool == "hard_filter":  # two filters: both conditions hold
            for k, v in fixed.items():
                prev = found[tool].get(k)
                found[tool][k] = (
                    list(dict.fromkeys([*prev, *v]))
                    if isinstance(prev, list) and isinstance(v, list)
                    else v
                )
            notes.append("hard_filter: two steps merged")
            continue
        if tool in found:
            notes.append(f"{tool}: a second step dropped")
            continue
        if tool in ("hard_filter", "soft_filter") and not fixed:
            notes.append(f"{tool}: nothing left to filter by, dropped")
            continue
        found[tool] = fixed
    if "lookup" in found:
        if any(t in found for t in ("hard_filter", "soft_filter")):
            notes.append("lookup mixed with filters: the recommendation kept, the lookup dropped")
            del found["lookup"]
        else:
            return Plan([Step("lookup", found["lookup"])], "repaired", notes)
    if not found:
        return None
    if "ranking" in allowed and "ranking" not in found:
        found["ranking"] = {"by": "preference", "mode": "accuracy"}
        notes.append("no ranking step: ranking by preference added")
    if "map" in allowed and "map" not in found:
        found["map"] = {}
        notes.append("no map step: added")
    steps = [Step(t, found[t]) for t in ORDER if t in found]
    return Plan(steps, "repaired", notes)


def _schema_tools(schema: Mapping[str, Any]) -> list[str]:
    defs = schema.get("$defs", {})
    return [n for n in defs if n in TOOLS]


# -- from the slots, and the merge -----------------------------------------------------------------


def _slot_filter(slots: Slots) -> dict[str, Any]:
    hard: dict[str, Any] = {}
    if slots.genres:
        hard["genres"] = list(slots.genres)
    if slots.not_genres:
        hard["not_genres"] = list(slots.not_genres)
    if slots.year_min is not None:
        hard["year_min"] = int(slots.year_min)
    if slots.year_max is not None:
        hard["year_max"] = int(slots.year_max)
    for f, values in slots.fields.items():
        if f != slots.genre_field and values:
            hard[f] = list(values)
    # refusals of other fields (slots.not_fields) wait for the hard filter to take not_<field>
    for f, (lo, hi) in slots.ranges.items():
        if lo is not None:
            hard[f"{f}_min"] = lo
        if hi is not None:
            hard[f"{f}_max"] = hi
    return hard


def _title(slots: Slots, item: int) -> str:
    return slots.titles.get(item, str(item))


def _lookup_sql(slots: Slots) -> str | None:
    if not slots.mentioned:
        return None
    ids = ", ".join(str(int(i)) for i in slots.mentioned[:5])
    return f"SELECT * FROM items WHERE item IN ({ids})"


def plan_from_slots(slots: Slots) -> Plan:
    """The deterministic plan: a look-up of the mentioned items for a question; otherwise a hard
    filter with the values, refusals, years and ranges found, a soft filter by the liked titles,
    ranking (popularity when asked for popular items, preference otherwise; diversity for hidden
    gems; disliked titles unwanted) and map. An empty plan for chit-chat."""
    if slots.intent == "chat" and slots.empty():
        return Plan([], "chat", ["chit-chat: no tools"])
    if slots.intent == "lookup":
        sql = _lookup_sql(slots)
        if sql is not None:
            return Plan([Step("lookup", {"sql": sql})], "slots")
    steps = []
    hard = _slot_filter(slots)
    if hard:
        steps.append(Step("hard_filter", hard))
    if slots.liked:
        steps.append(Step("soft_filter", {"seeds": [_title(slots, i) for i in slots.liked[:5]]}))
    ranking: dict[str, Any] = {
        "by": "popularity" if slots.popular else "preference",
        "mode": "diversity" if slots.popular is False else "accuracy",
    }
    if slots.disliked:
        ranking["unwanted"] = [_title(slots, i) for i in slots.disliked[:5]]
    steps += [Step("ranking", ranking), Step("map", {})]
    return Plan(steps, "slots")


def _as_plan(model_plan: Any) -> Plan | None:
    if model_plan is None or isinstance(model_plan, Plan):
        return model_plan
    d = model_plan.to_dict() if hasattr(model_plan, "to_dict") else model_plan
    if not isinstance(d, dict):
        return None
    steps = [
        Step(str(s.get("tool")), dict(s.get("input") or {}))
        for s in d.get("steps", [])
        if isinstance(s, dict)
    ]
    return Plan(steps, "model")


#: Slot confidence from which the rules override the model (exact values, explicit years and
#: good title matches are 0.85 and above; vague words such as "recent" are lower).
CERTAIN = 0.8


def merge(model_plan: Any, slots: Slots, *, model_values: bool = False) -> Plan:
    """One plan from the model's (``None`` when there was none or it could not be repaired) and
    the slots'.

    The rules decide what they catch with certainty: the intent when the slots found anything
    to recommend by (a model's look-up yields to it), the genre and other values, refusals,
    years, ranges (confidence at least :data:`CERTAIN`), liked titles as seeds, disliked titles
    as unwanted, popularity. The model decides the rest: a look-up's SQL, a text soft filter,
    how to rank (``by``, ``mode``, ``prefer``) where the slots say nothing, vague year bounds.
    Values the model put in its filters that the request does not name are kept only with
    ``model_values=True``: a small brain fills them at random (SmolLM2-135M under the schema:
    genre recall 0.00), a strong one may read what the rules cannot.
    """
    rules = plan_from_slots(slots)
    model = _as_plan(model_plan)
    notes: list[str] = []
    if model is None or not model.steps:
        rules.notes.append("no usable model plan: the rules' plan")
        return rules
    if slots.intent == "chat" and slots.empty() and "lookup" not in model.tools:
        rules.notes.append("chit-chat: the model's plan is not run")
        return rules
    model_lookup = model.step("lookup")
    if model_lookup is not None:
        if slots.intent == "lookup" or (slots.empty() and slots.intent != "recommend"):
            return Plan([Step("lookup", dict(model_lookup.input))], "merged", notes)
        notes.append("the model looked up, the request asks for recommendations: rules' plan")
        return Plan(rules.steps, "merged", notes)
    if slots.intent == "lookup" and rules.step("lookup") is not None:
        notes.append("the request is a question: the rules' look-up")
        return Plan(rules.steps, "merged", notes)

    # the filters: the rules' certain values, the model's others only when trusted
    r_hard, r_soft, r_rank = (rules.step(t) for t in ("hard_filter", "soft_filter", "ranking"))
    hard = dict(r_hard.input) if r_hard is not None else {}
    m_hard = model.step("hard_filter")
    conf = slots.confidence
    if m_hard is not None:
        for key, value in m_hard.input.items():
            if key in hard:
                if key.startswith("year") and conf.get("years", 1.0) < CERTAIN:
                    hard[key] = value  # "recent": the model's bound may be the better guess
                    notes.append(f"hard_filter.{key}: the model's {value} over a vague word")
                elif hard[key] != value:
                    notes.append(f"hard_filter.{key}: the request's {hard[key]!r} over {value!r}")
                continue
            if model_values:
                hard[key] = value
            else:
                notes.append(f"hard_filter.{key}: {value!r} is not in the request, dropped")
    # a model value that contradicts the request (refusing a wanted genre, wanting a refused
    # one) goes: the request's side wins
    for key, other in (("genres", "not_genres"), ("not_genres", "genres")):
        said = set(getattr(slots, key))
        if other in hard and said & set(hard[other]):
            hard[other] = [v for v in hard[other] if v not in said]
            notes.append(f"hard_filter.{other}: values the request puts in {key} removed")
            if not hard[other]:
                del hard[other]
    for key in ("genres", "not_genres"):
        if key in hard and conf.get("genres", 1.0) < 0.5:
            notes.append(f"hard_filter.{key}: low confidence {conf['genres']}")
    # the soft filter: liked titles; else the model's seeds or text
    soft: dict[str, Any] | None = dict(r_soft.input) if r_soft is not None else None
    m_soft = model.step("soft_filter")
    if soft is None and m_soft is not None:
        if "text" in m_soft.input:
            soft = {"text": m_soft.input["text"]}
        elif m_soft.input.get("seeds") and model_values:
            soft = {"seeds": list(m_soft.input["seeds"])}
        elif m_soft.input.get("seeds"):
            notes.append("soft_filter.seeds: titles the request does not name, dropped")
    # ranking: the request's popularity and dislikes, the model's choices otherwise
    ranking = dict(r_rank.input) if r_rank is not None else {}
    m_rank = model.step("ranking")
    if m_rank is not None:
        if slots.popular is None and m_rank.input.get("by") in RANK_BY:
            by = m_rank.input["by"]
            if by == "similarity" and soft is None and not slots.liked:
                notes.append("ranking.by: similarity with nothing to be similar to: preference")
            else:
                ranking["by"] = by
        if slots.popular is None and m_rank.input.get("mode") in RANK_MODE:
            ranking["mode"] = m_rank.input["mode"]
        if m_rank.input.get("prefer") and model_values:
            ranking["prefer"] = list(m_rank.input["prefer"])
        if m_rank.input.get("unwanted"):
            extra = [t for t in m_rank.input["unwanted"] if t not in ranking.get("unwanted", [])]
            # an untrusted model does not turn a title the rules read as liked, for certain, into
            # an unwanted one ("I really enjoyed X. Recommend similar ones": the tuned 135M
            # planner wrote X as unwanted)
            liked = {slots.titles.get(i) for i in slots.liked}
            certain = min(conf.get("titles", 1.0), conf.get("polarity", 1.0)) >= CERTAIN
            if certain and not model_values and any(t in liked for t in extra):
                notes.append("ranking.unwanted: titles the request likes for certain kept liked")
                extra = [t for t in extra if t not in liked]
            if not model_values:  # as for the filters: only titles the request names
                named = set(slots.titles.values())
                if any(t not in named for t in extra):
                    notes.append("ranking.unwanted: titles not in the request, dropped")
                extra = [t for t in extra if t in named]
            if extra:  # more exclusions never add a wrong item
                ranking["unwanted"] = [*ranking.get("unwanted", []), *extra][: MAX_SEEDS + 2]
    if soft is not None and m_soft is not None and model_values and "seeds" in soft:
        more = [t for t in m_soft.input.get("seeds") or [] if t not in soft["seeds"]]
        soft["seeds"] = [*soft["seeds"], *more][:MAX_SEEDS]
    # a title the plan does not want is no seed to be similar to
    if soft is not None and soft.get("seeds") and ranking.get("unwanted"):
        kept = [t for t in soft["seeds"] if t not in ranking["unwanted"]]
        if len(kept) < len(soft["seeds"]):
            notes.append("soft_filter.seeds: titles the plan does not want removed")
        soft = {"seeds": kept} if kept else None
    steps = []
    if hard:
        steps.append(Step("hard_filter", hard))
    if soft:
        steps.append(Step("soft_filter", soft))
    steps += [Step("ranking", ranking), Step("map", {})]
    return Plan(steps, "merged", notes)
