"""``uniqueItems`` for arrays of string enums, on top of the grammar engine's JSON constraint.

Grammar engines (llguidance included) cannot express "no item twice": it is not context-free.
For the common case they leave out, an array whose items are an ``enum`` of strings (a ranking
of candidate titles, a list of genres), :class:`UniqueTracker` adds it as a second filter over the
tokens the grammar allows: it follows each row's JSON text byte by byte (a small incremental
scanner: objects, arrays, keys, strings with escapes, scalars), knows which schema location each
value is at, remembers per array **instance** which enum strings were already completed, and
bans a token when, after its bytes,

- a string item of such an array is closed and equals an item already in that array;
- the string item written so far is a prefix of some enum strings, all of them already used
  (titles share prefixes, ``"Heat"`` / ``"Heat 2"``: a prefix stays allowed while it leads to
  an unused item);
- a ``,`` would open another item of such an array and every enum string is used.

It is **exact** relative to the grammar: a continuation that leads to an unused item is never
banned (the grammar already holds the text to a prefix of some enum string; a prefix of an
unused one passes), and it only bans, so the grammar's guarantees stay. A byte-level vocabulary
always keeps a way forward (the next byte of an unused item as a one-byte token). A prefix that
matches no encoding it knows (the engine writes strings with ``json.dumps(..., ensure_ascii=
False)``'s escapes) is not banned: the completed item is still checked when its string closes.

Only the locations reached from the root through ``properties`` and ``items`` are followed
(not ``$ref``, ``anyOf``, ``prefixItems``...), and only when ``minItems`` does not exceed the
number of distinct enum strings; :func:`split_unique` leaves every other ``uniqueItems`` in the
schema, where the engine refuses it (or, lenient, the validation after decoding checks it).

>>> spec, rest = split_unique({"type": "array", "uniqueItems": True, "items": {"enum": ["a", "b"]}})
>>> rest
{'type': 'array', 'items': {'enum': ['a', 'b']}}
>>> t = UniqueTracker(spec)
>>> t.feed(b'["a",'), t.allows(b'"a"'), t.allows(b'"b"]')
(True, False, True)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["UniqueNode", "UniqueSpec", "UniqueTracker", "split_unique"]


@dataclass
class UniqueSpec:
    """One array location whose string items must differ: the enum strings, their indices and
    every prefix of their JSON encodings (as written between the quotes) -> a bit mask of the
    strings it can still become."""

    values: list[str]
    index: dict[str, int] = field(init=False)
    prefixes: dict[bytes, int] = field(init=False)
    full: int = field(init=False)

    def __post_init__(self) -> None:
        self.index = {v: i for i, v in enumerate(self.values)}
        self.full = (1 << len(self.values)) - 1
        self.prefixes = {}
        for i, v in enumerate(self.values):
            raw = json.dumps(v, ensure_ascii=False)[1:-1].encode()  # as llguidance writes it
            for n in range(len(raw) + 1):
                self.prefixes[raw[:n]] = self.prefixes.get(raw[:n], 0) | (1 << i)


@dataclass
class UniqueNode:
    """A schema location on the way to a unique array: its properties and items that lead to
    one, and its own :class:`UniqueSpec` when it is one."""

    props: dict[str, UniqueNode] = field(default_factory=dict)
    item: UniqueNode | None = None
    unique: UniqueSpec | None = None


def _string_enum(items: Any) -> list[str] | None:
    if not isinstance(items, dict):
        return None
    values = items.get("enum")
    if "const" in items and values is None:
        values = [items["const"]]
    if not isinstance(values, list) or not values:
        return None
    if not all(isinstance(v, str) for v in values):
        return None
    kind = items.get("type", "string")
    if kind != "string" and not (isinstance(kind, list) and "string" in kind):
        return None
    return list(dict.fromkeys(values))


def _walk(schema: Any) -> UniqueNode | None:
    """Strip the enforceable ``uniqueItems`` below ``schema`` (in place); their tree, or None."""
    if not isinstance(schema, dict):
        return None
    node = UniqueNode()
    props = schema.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            child = _walk(sub)
            if child is not None:
                node.props[str(name)] = child
    items = schema.get("items")
    if isinstance(items, dict):
        node.item = _walk(items)
    if schema.get("uniqueItems") is True:
        values = _string_enum(items)
        low = schema.get("minItems", 0)
        if values is not None and isinstance(low, int) and low <= len(values):
            node.unique = UniqueSpec(values)
            del schema["uniqueItems"]
    elif schema.get("uniqueItems") is False:
        del schema["uniqueItems"]  # says nothing
    if node.props or node.item is not None or node.unique is not None:
        return node
    return None


def split_unique(schema: dict[str, Any]) -> tuple[UniqueNode | None, dict[str, Any]]:
    """The ``uniqueItems`` a :class:`UniqueTracker` enforces, and the schema without them (a
    copy, for the grammar engine; every other keyword, other ``uniqueItems`` included, kept)."""
    rest = copy.deepcopy(schema)
    return _walk(rest), rest


# A frame of the scanner's stack: [kind, state, node, used, key]
_OBJ, _ARR = 0, 1
_KEY, _COLON, _VALUE, _AFTER = 0, 1, 2, 3  # object states; arrays use _VALUE and _AFTER
_SPACE = frozenset(b" \t\r\n")


class UniqueTracker:
    """One row's scanner: feed it the bytes of every token taken; ask whether a token's bytes
    would repeat an item (:meth:`allows`, which does not change the state).

    ``violations`` counts items that were repeated anyway (a token another processor forced).
    """

    __slots__ = ("root", "stack", "instr", "esc", "buf", "scalar", "done", "violations")

    def __init__(self, root: UniqueNode | None):
        self.root = root
        self.stack: list[list[Any]] = []
        self.instr = 0  # 0 outside strings, 1 in a key, 2 in a value
        self.esc = False
        self.buf: bytearray | None = None  # the raw bytes of a string that matters
        self.scalar = False
        self.done = False
        self.violations = 0

    def clone(self) -> UniqueTracker:
        c = UniqueTracker.__new__(UniqueTracker)
        c.root = self.root
        c.stack = [f.copy() for f in self.stack]
        c.instr, c.esc, c.scalar, c.done = self.instr, self.esc, self.scalar, self.done
        c.buf = None if self.buf is None else bytearray(self.buf)
        c.violations = self.violations
        return c

    def in_unique(self) -> bool:
        """Whether the text is inside an array this tracker enforces (any later byte matters)."""
        if not self.stack:
            return False
        top = self.stack[-1]
        return top[0] == _ARR and top[2] is not None and top[2].unique is not None

    def allows(self, data: bytes) -> bool:
        """Whether a token of these bytes keeps every enforced array free of repeats."""
        sim = self.clone()
        if not sim.feed(data):
            return False
        return sim._partial_ok()

    def feed(self, data: bytes) -> bool:
        """Advance over ``data``; False when it repeated an item (the state still advances)."""
        ok = True
        for c in data:
            if not self._byte(c):
                ok = False
                self.violations += 1
        return ok

    # -- internals --------------------------------------------------------------------------------
    def _partial_ok(self) -> bool:
        if self.instr != 2 or self.buf is None or not self.in_unique():
            return True
        spec = self.stack[-1][2].unique
        can = spec.prefixes.get(bytes(self.buf))
        return can is None or bool(can & ~self.stack[-1][3])

    def _child(self) -> UniqueNode | None:
        """The schema node of the value that starts now."""
        if not self.stack:
            return self.root
        top = self.stack[-1]
        node = top[2]
        if node is None:
            return None
        if top[0] == _OBJ:
            return node.props.get(top[4]) if top[4] is not None else None
        return node.item

    def _after_value(self) -> None:
        if self.stack:
            self.stack[-1][1] = _AFTER
        else:
            self.done = True

    def _byte(self, c: int) -> bool:
        if self.instr:
            if self.esc:
                self.esc = False
            elif c == 0x5C:  # backslash
                self.esc = True
            elif c == 0x22:  # the closing quote
                return self._close_string()
            if self.buf is not None:
                self.buf.append(c)
            return True
        if self.scalar:
            if c in b",]}" or c in _SPACE:
                self.scalar = False
                self._after_value()
            else:
                return True
        if c in _SPACE or self.done:
            return True
        top = self.stack[-1] if self.stack else None
        if top is not None and top[0] == _OBJ and top[1] != _VALUE:
            state = top[1]
            if c == 0x22 and state == _KEY:
                self.instr = 1
                self.buf = bytearray() if top[2] is not None else None
            elif c == 0x3A and state == _COLON:  # ':'
                top[1] = _VALUE
            elif c == 0x2C and state == _AFTER:  # ','
                top[1] = _KEY
            elif c == 0x7D:  # '}'
                self.stack.pop()
                self._after_value()
            return True
        if top is not None and top[0] == _ARR:
            if c == 0x5D:  # ']'
                self.stack.pop()
                self._after_value()
                return True
            if top[1] == _AFTER:
                if c == 0x2C:
                    top[1] = _VALUE
                    spec = top[2].unique if top[2] is not None else None
                    return spec is None or top[3] != spec.full  # another item: one must be left
                return True
        # a value starts
        node = self._child()
        if c == 0x7B:  # '{'
            self.stack.append([_OBJ, _KEY, node, 0, None])
        elif c == 0x5B:  # '['
            self.stack.append([_ARR, _VALUE, node, 0, None])
        elif c == 0x22:
            self.instr = 2
            self.buf = bytearray() if self.in_unique() else None
        else:
            self.scalar = True
        return True

    def _close_string(self) -> bool:
        kind, raw = self.instr, self.buf
        self.instr, self.buf = 0, None
        top = self.stack[-1] if self.stack else None
        if kind == 1:
            if top is not None:
                top[4] = _decode(raw) if raw is not None else None
                top[1] = _COLON
            return True
        ok = True
        if raw is not None and top is not None and top[2] is not None and top[2].unique:
            spec = top[2].unique
            value = _decode(raw)
            i = spec.index.get(value) if value is not None else None
            if i is not None:
                ok = not (top[3] >> i) & 1
                top[3] |= 1 << i
        self._after_value()
        return ok


def _decode(raw: bytes | bytearray) -> str | None:
    try:
        value = json.loads(b'"' + bytes(raw) + b'"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def banned_tokens(
    tracker: UniqueTracker,
    allowed: Sequence[int],
    token_bytes: Sequence[bytes],
) -> list[int]:
    """Of the ``allowed`` token ids, those whose bytes :meth:`UniqueTracker.allows` refuses."""
    return [t for t in allowed if not tracker.allows(token_bytes[t])]
