"""Item text from catalog fields, through a template with optional parts.

A template is text with ``{field}`` placeholders (``title`` and any column of the catalog's
``fields``). A part in square brackets is **optional**: it is dropped for an item where one of
its fields is missing (``None``, ``NaN``, ``NaT``, an empty string or an empty tuple), and for
every item when the catalog has no such column; a field outside brackets is required and must be
a column of the catalog. ``[[`` and ``]]`` write literal brackets; ``{{``/``}}`` literal braces.

Values are written the same way for every catalog: multi-valued fields joined with ``", "``,
whole numbers without decimals (``1995``), other numbers with two (``4.87``), dates as
``YYYY-MM-DD``, text cut to ``max_field_chars`` characters on a word boundary.

>>> import numpy as np
>>> from recai.data import Catalog
>>> cat = Catalog(ids=np.array([1, 2]), titles=np.array(["Heat", "Up"], dtype=object),
...     fields={"genres": np.array([("Crime", "Drama"), ()], dtype=object),
...             "year": np.array([1995.0, np.nan])})
>>> texts, report = ItemTextTemplate("{title}[. Genres: {genres}][. Year: {year}]").render(cat)
>>> texts
['Heat. Genres: Crime, Drama. Year: 1995', 'Up']
>>> report["missing"]
{'genres': 1, 'year': 1}
"""

from __future__ import annotations

import hashlib
import math
import re
import string
from dataclasses import dataclass
from typing import Any

import numpy as np

from recai.data import Catalog
from recai.errors import RecaiError

__all__ = ["DEFAULT_TEMPLATE", "ItemTextTemplate", "format_value"]

DEFAULT_TEMPLATE = (
    "{title}[. Genres: {genres}][. Categories: {categories}][. Category: {category}]"
    "[. Tags: {tags}][. Year: {year}][. Released: {released}][. Release date: {release_date}]"
    "[. Price: {price}][. Description: {description}]"
)
"""Title first, then the usual catalog columns where present (RecAI writes items the same way)."""

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, np.floating) and np.isnan(value):
        return True
    if isinstance(value, np.datetime64) and np.isnat(value):
        return True
    if isinstance(value, (str, tuple, list)) and len(value) == 0:
        return True
    return isinstance(value, str) and not value.strip()


def format_value(value: Any, max_chars: int = 400) -> str:
    """One field value as text (see the module docstring).

    >>> format_value(("Action", "Drama")), format_value(1995.0), format_value(4.871)
    ('Action, Drama', '1995', '4.87')
    >>> format_value(np.datetime64("1994-05-01"))
    '1994-05-01'
    """
    if isinstance(value, (tuple, list, np.ndarray)):
        text = ", ".join(str(v) for v in value if not _is_missing(v))
    elif isinstance(value, np.datetime64):
        text = str(value.astype("datetime64[D]"))
    elif isinstance(value, (float, np.floating)):
        text = str(int(value)) if float(value).is_integer() else f"{float(value):.2f}"
    else:
        text = str(value)
    text = " ".join(text.split())
    if len(text) > max_chars:
        cut = text[:max_chars].rsplit(" ", 1)[0]
        text = (cut or text[:max_chars]) + "..."
    return text


@dataclass(frozen=True)
class _Part:
    text: str  # a str.format pattern with the fields as positional names
    fields: tuple[str, ...]
    optional: bool


def _parse(template: str) -> list[_Part]:
    parts: list[_Part] = []
    buf, i, depth, start = [], 0, 0, 0
    text = template
    segments: list[tuple[str, bool]] = []
    while i < len(text):
        two = text[i : i + 2]
        if two in ("[[", "]]"):
            buf.append(two[0])
            i += 2
            continue
        c = text[i]
        if c == "[":
            if depth:
                raise RecaiError(f"item text template: nested '[' at character {i}: {template!r}")
            segments.append(("".join(buf), False))
            buf, depth, start = [], 1, i
        elif c == "]":
            if not depth:
                raise RecaiError(
                    f"item text template: ']' without '[' at character {i}: {template!r}"
                )
            segments.append(("".join(buf), True))
            buf, depth = [], 0
        else:
            buf.append(c)
        i += 1
    if depth:
        raise RecaiError(
            f"item text template: '[' at character {start} is never closed: {template!r}"
        )
    segments.append(("".join(buf), False))
    for seg, optional in segments:
        if not seg:
            continue
        try:
            fields = tuple(
                dict.fromkeys(
                    name for _, name, _, _ in string.Formatter().parse(seg) if name is not None
                )
            )
            bad = [f for f in fields if not _FIELD.fullmatch("{" + f + "}")]
            if bad:
                raise ValueError(f"{{{bad[0]}}} is not a field name")
            seg.format(**{f: "" for f in fields})
        except (IndexError, KeyError, ValueError) as e:
            raise RecaiError(
                f"item text template: {seg!r} is not a valid pattern ({e}); use {{field}} "
                "placeholders and {{{{ }}}} for literal braces"
            ) from None
        parts.append(_Part(seg, fields, optional))
    return parts


class ItemTextTemplate:
    """Renders the text of every catalog item from ``template`` (see the module docstring)."""

    def __init__(self, template: str = DEFAULT_TEMPLATE, *, max_field_chars: int = 400) -> None:
        self.template = template
        self.max_field_chars = int(max_field_chars)
        self._parts = _parse(template)
        if not any(p.fields for p in self._parts):
            raise RecaiError(f"item text template {template!r} names no field: use {{title}}")

    @property
    def fields(self) -> list[str]:
        seen: list[str] = []
        for p in self._parts:
            seen += [f for f in p.fields if f not in seen]
        return seen

    def key(self) -> str:
        """A short hash of the template and its settings (part of the embedding cache key)."""
        return hashlib.sha256(f"{self.template}\x1f{self.max_field_chars}".encode()).hexdigest()[
            :16
        ]

    def _columns(self, catalog: Catalog) -> tuple[dict[str, Any], list[str]]:
        cols: dict[str, Any] = {"title": catalog.titles}
        absent = []
        for f in self.fields:
            if f == "title":
                continue
            if f in catalog.fields:
                cols[f] = catalog.fields[f]
            else:
                absent.append(f)
        required_absent = [
            f for p in self._parts if not p.optional for f in p.fields if f in absent
        ]
        if required_absent:
            have = ", ".join(["title", *catalog.fields])
            raise RecaiError(
                f"item text template needs the column(s) {', '.join(sorted(set(required_absent)))}, "
                f"which the catalog does not have (it has: {have}); put optional parts in [brackets]"
            )
        return cols, absent

    def render(self, catalog: Catalog) -> tuple[list[str], dict[str, Any]]:
        """The text of every item (in index order) and a report: which template fields the catalog
        lacks (``absent``) and for how many items each present field was missing (``missing``)."""
        cols, absent = self._columns(catalog)
        present = [f for f in self.fields if f not in absent]
        missing = dict.fromkeys(present, 0)
        texts = []
        for i in range(catalog.n_items):
            values: dict[str, str] = {}
            for f in present:
                v = cols[f][i]
                if _is_missing(v):
                    missing[f] += 1
                    continue
                s = format_value(v, self.max_field_chars)
                if s:
                    values[f] = s
                else:
                    missing[f] += 1
            out = []
            for p in self._parts:
                if all(f in values for f in p.fields):
                    out.append(p.text.format(**{f: values[f] for f in p.fields}))
                elif not p.optional:
                    out.append(p.text.format(**{f: values.get(f, "") for f in p.fields}))
            texts.append(" ".join("".join(out).split()))
        report = {
            "template": self.template,
            "absent": absent,
            "missing": {f: n for f, n in missing.items() if n},
        }
        return texts, report

    def __repr__(self) -> str:
        return f"ItemTextTemplate({self.template!r})"


def texts_key(texts: list[str]) -> str:
    """A short hash of the item texts themselves (checked when a cached embedding is read)."""
    h = hashlib.sha256(str(len(texts)).encode())
    for t in texts:
        h.update(b"\x1f" + t.encode())
    return h.hexdigest()[:16]
