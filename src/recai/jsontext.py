"""Finding the JSON value in a model's reply.

Models asked for JSON wrap it in prose, code fences and afterthoughts. :func:`extract_json`
finds the value the reply means, trying in order:

1. the whole reply (surrounding whitespace ignored);
2. each fenced block (```` ```json ... ``` ```` or a bare ```` ``` ````), in order;
3. each ``{`` (and ``[``) in the reply, in order: one value is decoded from there and whatever
   follows it (more prose, another value) is ignored; at most ``max_starts`` of them.

With ``kind="object"`` (or ``"array"``) values of another kind are passed over. It returns the
value and its source text as written; when nothing is found it raises :class:`JSONTextError`,
saying whether the reply held no JSON, held JSON that does not parse (the decoder's reason and
where, counted in the whole reply), or held JSON of another kind.

>>> extract_json('Sure! ```json\\n{"n": 3}\\n``` Anything else?')
FoundJSON(value={'n': 3}, text='{"n": 3}')
>>> extract_json('Scores: {"A": 2} then {"B": 1}. Overall [[A]]').value
{'A': 2}
>>> extract_json('[1, 2] and {"a": 1}', kind="object").value
{'a': 1}
>>> extract_json('{"answer": "ok", "n": "two"')
Traceback (most recent call last):
...
recai.jsontext.JSONTextError: the reply's JSON does not parse: Expecting ',' delimiter at line 1, column 28
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, NamedTuple

from .errors import RecaiError

__all__ = ["JSONKind", "FoundJSON", "JSONTextError", "extract_json"]

JSONKind = Literal["any", "object", "array"]
"""What :func:`extract_json` looks for: any JSON value, only an object, or only an array."""

_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_OPENERS: dict[str, str] = {"any": "{[", "object": "{", "array": "["}
_TYPES: dict[str, type | tuple[type, ...]] = {"any": object, "object": dict, "array": list}
_KIND_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
_DECODER = json.JSONDecoder()


class FoundJSON(NamedTuple):
    """A JSON value found in a reply, and its source text there (``json.loads(text) == value``)."""

    value: Any
    text: str


class JSONTextError(RecaiError, ValueError):
    """A reply holds no JSON value of the kind asked for. ``reply`` is the text searched."""

    def __init__(self, message: str, reply: str):
        super().__init__(message)
        self.reply = reply


def _kind_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return _KIND_NAMES.get(type(value), type(value).__name__)


def _decode(text: str, begin: int, end: int, whole: bool) -> tuple[Any, int]:
    """The value starting at ``text[begin]`` and where it ends; with ``whole``, nothing but
    whitespace may follow it before ``end``. Raises :class:`json.JSONDecodeError` (positions
    counted in ``text``); ``"Extra data"`` when something follows a whole span's value.
    """
    try:
        value, stop = _DECODER.raw_decode(text if end == len(text) else text[:end], begin)
    except RecursionError:  # nesting too deep for the decoder
        raise json.JSONDecodeError("Nesting too deep", text, begin) from None
    if whole and text[stop:end].strip():
        raise json.JSONDecodeError("Extra data", text, stop)
    return value, stop


def extract_json(text: str, *, kind: JSONKind = "any", max_starts: int = 20) -> FoundJSON:
    """The JSON value in a model's ``text`` and its source (see the module docstring).

    ``kind``: ``"any"`` JSON value, or only an ``"object"`` or an ``"array"``; ``max_starts``
    bounds the ``{``/``[`` positions tried in step 3 (each costs up to one pass over the reply).
    Raises :class:`JSONTextError` (a ``ValueError``) naming what was wrong: no JSON at all, the
    decoder's reason and position for the attempt that got furthest, or the kind found instead.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_json needs a str, got {type(text).__name__}")
    if kind not in _OPENERS:
        raise ValueError(f"kind must be one of {', '.join(_OPENERS)}, got {kind!r}")
    wanted = _TYPES[kind]
    spans: list[tuple[int, int, bool]] = [(0, len(text), True)]
    spans += [(m.start(1), m.end(1), True) for m in _FENCE.finditer(text)]
    starts = [i for i, c in enumerate(text) if c in _OPENERS[kind]][:max_starts]
    spans += [(i, len(text), False) for i in starts]
    furthest: json.JSONDecodeError | None = None  # the failed parse that got furthest
    progress = 0
    other: list[Any] = []  # a value of another kind, for the message
    for start, end, whole in spans:
        begin = start
        while begin < end and text[begin].isspace():
            begin += 1
        try:
            value, stop = _decode(text, begin, end, whole)
        except json.JSONDecodeError as e:
            # "Extra data": a complete value with prose after it; step 3 finds a container there
            if e.msg != "Extra data" and e.pos - begin > progress:
                furthest, progress = e, e.pos - begin
            continue
        if isinstance(value, wanted):
            return FoundJSON(value, text[begin:stop])
        other = other or [value]
    if other:
        want = "an object" if kind == "object" else "an array"
        message = f"the reply's JSON is {_kind_name(other[0])}, not {want}"
    elif furthest is not None:
        message = (
            f"the reply's JSON does not parse: {furthest.msg} at line {furthest.lineno}, "
            f"column {furthest.colno}"
        )
    elif not text.strip():
        message = "the reply holds no JSON value (it is empty)"
    else:
        message = "the reply holds no JSON value"
    raise JSONTextError(message, text)
