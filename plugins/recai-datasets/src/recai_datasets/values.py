"""Turning raw values into catalog columns that follow :class:`recai.data.Catalog`'s conventions.

- numbers: float arrays, ``NaN`` for missing;
- categorical and free text: object arrays of ``str``, ``None`` for missing;
- multi-valued: object arrays of tuples of ``str``, ``()`` for none;
- dates: ``datetime64[D]`` arrays, ``NaT`` for missing.

A value that is *present but cannot be read* (a price of ``"call us"``, a date of ``"Soon"``) becomes
missing and is counted in an :class:`Unparsed` tally, which loaders put into
``dataset.info["unparsed"]``; nothing is turned into a gap silently.

>>> u = Unparsed()
>>> price_column(["$1,299.00", 3, None, "Free to Play", "$5 - $9"], u, "price").tolist()
[1299.0, 3.0, nan, 0.0, nan]
>>> u.counts
{'price': 1}
>>> multi_column([["a", " b "], "x|y", None], sep="|").tolist()
[('a', 'b'), ('x', 'y'), ()]
>>> date_column(["2017-12-17", "Dec 5, 2016", "soon"], u, "date").astype(str).tolist()
['2017-12-17', '2016-12-05', 'NaT']
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

__all__ = [
    "Unparsed",
    "as_id",
    "as_number",
    "as_text",
    "float_column",
    "float_values",
    "text_column",
    "multi_column",
    "date_column",
    "price_column",
    "parse_price",
    "parse_date",
    "unix_seconds",
    "DATE_FORMATS",
    "PRICE_LIMIT",
]

DATE_FORMATS = ("%Y-%m-%d", "%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d-%b-%Y", "%Y/%m/%d", "%Y-%m")
"""Date formats tried in order when a column's format is not given."""

PRICE_LIMIT = 1e9
"""The largest price read as one (in the file's currency); a larger or negative price is a
parsing or unit mistake and counts as unreadable."""

_MONEY = re.compile(r"^\s*(?:US)?\$?\s*(\d[\d,]*(?:\.\d+)?|\.\d+)\s*$")


class Unparsed:
    """Counts values that were present but unreadable, by column."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def add(self, column: str, n: int = 1) -> None:
        if n:
            self._counts[column] += n

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._counts)


def as_number(value: Any) -> float | None:
    """A finite number from a JSON/CSV value: ``None`` when missing or unreadable (bools are not
    numbers; nor are ``NaN``, infinities and integers too large for a float).

    >>> as_number("4.5"), as_number(3), as_number(""), as_number(True), as_number("x")
    (4.5, 3.0, None, None, None)
    >>> as_number(10**400), as_number("1e999"), as_number(float("nan"))
    (None, None, None)
    """
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        x = float(value)
    except (ValueError, OverflowError):
        return None
    return x if math.isfinite(x) else None


def as_id(value: Any) -> str | None:
    """An id from a JSON value: strings stripped (``None`` when blank), whole numbers as digits
    (``7`` and ``7.0`` are ``"7"``); anything else (bools, fractions, lists) is ``None``.

    >>> as_id(" A1 "), as_id(7), as_id(7.0), as_id(7.5), as_id(True), as_id(float("inf"))
    ('A1', '7', '7', None, None, None)
    """
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return None


def as_text(value: Any, *, unescape: bool = False) -> str | None:
    """Free text: ``None`` for missing/blank; lists are joined with newlines, numbers formatted."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, list | tuple):
        parts = [as_text(v, unescape=unescape) for v in value]
        value = "\n".join(p for p in parts if p)
    elif isinstance(value, float) and value.is_integer():
        value = str(int(value))
    elif not isinstance(value, str):
        value = str(value)
    value = value.strip()
    if unescape and "&" in value:
        value = html.unescape(value)
    return value or None


def _missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
    )


def float_values(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(numbers, unreadable)``: float64 with ``NaN`` for missing and unreadable values, and
    which values were present but unreadable (not a finite number).

    >>> numbers, unreadable = float_values(["1.5", " ", "n/a", None, "inf"])
    >>> numbers.tolist(), unreadable.tolist()
    ([1.5, nan, nan, nan, nan], [False, False, True, False, True])
    """
    out = np.full(len(values), np.nan)
    bad = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if _missing(v):
            continue
        x = as_number(v)
        if x is None:
            bad[i] = True
        else:
            out[i] = x
    return out, bad


def float_column(
    values: Sequence[Any], unparsed: Unparsed | None = None, name: str = ""
) -> np.ndarray:
    """Numbers as float64, ``NaN`` for missing; unreadable values counted under ``name``."""
    out, bad = float_values(values)
    if unparsed is not None:
        unparsed.add(name, int(np.count_nonzero(bad)))
    return out


def text_column(values: Iterable[Any], *, unescape: bool = False) -> np.ndarray:
    """Strings as an object array, ``None`` for missing."""
    vals = [as_text(v, unescape=unescape) for v in values]
    out = np.empty(len(vals), dtype=object)
    out[:] = vals
    return out


def _multi(value: Any, sep: str | None, unescape: bool) -> tuple[str, ...]:
    if _missing(value):
        return ()
    if isinstance(value, str):
        parts = value.split(sep) if sep else [value]
    elif isinstance(value, list | tuple):
        parts = []
        for v in value:  # one level of nesting (Amazon 2014's [["a", "b"]]) is flattened
            parts.extend(v if isinstance(v, list | tuple) else [v])
    else:
        parts = [value]
    out = []
    for p in parts:
        t = as_text(p, unescape=unescape)
        if t and t not in out:
            out.append(t)
    return tuple(out)


def multi_column(
    values: Iterable[Any], *, sep: str | None = None, unescape: bool = False
) -> np.ndarray:
    """Multi-valued values as tuples of ``str`` (``()`` for none; repeats dropped, order kept).

    A list stays a list; a string is split on ``sep`` (kept whole when ``sep`` is ``None``).
    """
    vals = [_multi(v, sep, unescape) for v in values]
    out = np.empty(len(vals), dtype=object)
    out[:] = vals
    return out


def parse_price(value: Any) -> float | None:
    """A price in dollars: numbers as they are, ``"$1,299.00"`` -> 1299.0, text with "free" -> 0.0.

    Returns ``None`` for anything else (ranges such as ``"$5 - $9"``, HTML, words), and for
    prices that cannot be one: negative, ``NaN``, infinite or above :data:`PRICE_LIMIT`.

    >>> parse_price(-3), parse_price("$" + "9" * 400), parse_price(2e9), parse_price(0)
    (None, None, None, 0.0)
    """
    x: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        x = as_number(value)
    elif isinstance(value, str):
        m = _MONEY.match(value)
        if m:
            x = as_number(m.group(1).replace(",", ""))
        elif "free" in value.lower():
            x = 0.0
    if x is None or not 0.0 <= x <= PRICE_LIMIT:
        return None
    return x


def price_column(
    values: Sequence[Any], unparsed: Unparsed | None = None, name: str = "price"
) -> np.ndarray:
    """Prices (see :func:`parse_price`) as float64, ``NaN`` for missing or unreadable."""
    out = np.full(len(values), np.nan)
    bad = 0
    for i, v in enumerate(values):
        if _missing(v):
            continue
        x = parse_price(v)
        if x is None:
            bad += 1
        else:
            out[i] = x
    if unparsed is not None:
        unparsed.add(name, bad)
    return out


def parse_date(value: Any, formats: Sequence[str] = DATE_FORMATS) -> np.datetime64 | None:
    """A day from text in one of ``formats`` (``None`` if it matches none).

    >>> parse_date("01-Jan-1995"), parse_date("March 5, 2016"), parse_date("TBA")
    (np.datetime64('1995-01-01'), np.datetime64('2016-03-05'), None)
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    for fmt in formats:
        try:
            return np.datetime64(datetime.strptime(text, fmt).date(), "D")
        except ValueError:
            continue
    return None


def date_column(
    values: Sequence[Any],
    unparsed: Unparsed | None = None,
    name: str = "",
    formats: Sequence[str] = DATE_FORMATS,
) -> np.ndarray:
    """Dates as ``datetime64[D]``, ``NaT`` for missing; unreadable values counted under ``name``."""
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[D]")
    cache: dict[str, np.datetime64 | None] = {}
    bad = 0
    for i, v in enumerate(values):
        if _missing(v):
            continue
        key = v if isinstance(v, str) else repr(v)
        if key not in cache:
            cache[key] = parse_date(v, formats)
        d = cache[key]
        if d is None:
            bad += 1
        else:
            out[i] = d
    if unparsed is not None:
        unparsed.add(name, bad)
    return out


def unix_seconds(day: str, fmt: str = "%Y-%m-%d") -> int | None:
    """Midnight UTC of a day, in Unix seconds (``None`` if ``day`` does not match ``fmt``).

    >>> unix_seconds("2017-12-17")
    1513468800
    """
    try:
        return int(datetime.strptime(day.strip(), fmt).replace(tzinfo=UTC).timestamp())
    except (ValueError, AttributeError):
        return None
