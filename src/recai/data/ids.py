"""External ids (of items or users) to contiguous indices, with errors that say why an id is missing.

The common slip is the id's type: datasets read from files keep external ids as **strings**
(MovieLens item ``"50"``), so ``catalog.index(50)`` finds nothing. :class:`IdIndex` answers such a
miss with an :class:`~recai.errors.UnknownIdError` that names the type and the id meant.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import UnknownIdError

__all__ = ["IdIndex"]

_FUZZY_LIMIT = 50_000
"""Close-match suggestions (difflib) only for at most this many ids: a miss stays fast."""


class IdIndex:
    """Maps external ids to their positions ``0..n-1``; a miss raises :class:`UnknownIdError`.

    ``kind`` names what the ids are (``"item"``, ``"user"``) and ``owner`` where they live
    (``"the catalog"``), for messages. ``titles``, when given, lets a title passed as an id be
    recognised.

    >>> index = IdIndex(np.array(["7", "50"], dtype=object), kind="item", owner="the catalog")
    >>> index.lookup("50")
    1
    >>> index.lookup(50)
    Traceback (most recent call last):
    ...
    recai.errors.UnknownIdError: item id 50 is an int; the catalog's external ids are strings: did you mean '50'?
    """

    def __init__(
        self,
        ids: np.ndarray,
        *,
        kind: str,
        owner: str,
        titles: Callable[[], np.ndarray] | None = None,
    ) -> None:
        self._ids = ids
        self.kind = kind
        self.owner = owner
        self._titles = titles
        self._map: dict[Any, int] | None = None

    def _table(self) -> dict[Any, int]:
        if self._map is None:
            self._map = {k: i for i, k in enumerate(self._ids.tolist())}
        return self._map

    def __contains__(self, key: Any) -> bool:
        try:
            return key in self._table()
        except TypeError:  # unhashable
            return False

    def lookup(self, key: Any) -> int:
        """The position of ``key``; :class:`UnknownIdError` (a ``KeyError``) when absent."""
        table = self._table()
        try:
            return table[key]
        except (KeyError, TypeError):
            raise UnknownIdError(self.explain(key), kind=self.kind, key=key) from None

    # -- the message ------------------------------------------------------------------------------
    def _id_type(self) -> str:
        """``"strings"``, ``"ints"``, ... from the first id (ids of one catalog share a type)."""
        if not len(self._ids):
            return "ids"
        first = self._ids[:1].tolist()[0]
        return {str: "strings", int: "ints", float: "floats"}.get(type(first), type(first).__name__)

    def explain(self, key: Any) -> str:
        """Why ``key`` is not an id here, with the id probably meant."""
        table = self._table()
        shown = key.item() if isinstance(key, np.generic) else key
        what = f"{self.kind} id {shown!r}"
        is_number = isinstance(key, (int, float, np.integer, np.floating)) and not isinstance(
            key, bool
        )
        if is_number:
            number = key.item() if isinstance(key, np.generic) else key
            as_text = (
                str(int(number))
                if isinstance(number, float) and number.is_integer()
                else str(number)
            )
            if as_text in table:
                return (
                    f"{what} is {_a(type(key).__name__)}; {_possessive(self.owner)} external ids "
                    f"are strings: did you mean {as_text!r}?"
                )
        if isinstance(key, str):
            stripped = key.strip()
            for candidate in _numbers(stripped):
                if candidate in table and not isinstance(candidate, str):
                    return (
                        f"{what} is a str; {_possessive(self.owner)} external ids are "
                        f"{self._id_type()}: did you mean {candidate!r}?"
                    )
        try:
            hash(key)
        except TypeError:
            return (
                f"{self.kind} id {key!r} is {_a(type(key).__name__)}, not an id: look up one id "
                f"at a time ({_possessive(self.owner)} external ids are {self._id_type()})"
            )
        n = len(self._ids)
        examples = ", ".join(repr(x) for x in self._ids[:3].tolist())
        head = (
            f"{what} is not in {self.owner} ({n} {self.kind}s; ids are {self._id_type()} "
            f"such as {examples})"
        )
        hint = self._hint(key, table)
        if not hint and is_number and float(key).is_integer() and 0 <= int(key) < n:
            at = int(key)
            hint = (
                f"if {at} is already {_a(self.kind)} index (0..{n - 1}), use it as it is; "
                f"its id is {self._ids[at : at + 1].tolist()[0]!r}"
            )
        return f"{head}: {hint}" if hint else head

    def _hint(self, key: Any, table: dict[Any, int]) -> str:
        if not isinstance(key, str):
            return ""
        text = key.strip()
        if text != key and text in table:
            return f"did you mean {text!r} (without the spaces)?"
        folded = text.casefold()
        if len(self._ids) <= _FUZZY_LIMIT:
            same_case = [k for k in table if isinstance(k, str) and k.casefold() == folded]
            if same_case:
                return f"did you mean {same_case[0]!r}?"
        if self._titles is not None:
            titles = self._titles()
            hits = np.flatnonzero(
                np.fromiter(
                    (str(t).casefold() == folded for t in titles.tolist()),
                    dtype=bool,
                    count=len(titles),
                )
            )
            if len(hits):
                found = self._ids[hits[:1]].tolist()[0]
                return (
                    f"that is the title of {self.kind} {found!r} (ids and titles differ; "
                    "recai.data.Grounder finds items by title)"
                )
        if len(self._ids) <= _FUZZY_LIMIT:
            names = [k for k in table if isinstance(k, str)]
            close = difflib.get_close_matches(text, names, n=1, cutoff=0.8)
            if close:
                return f"did you mean {close[0]!r}?"
        return ""


def _numbers(text: str) -> list[Any]:
    """``text`` read as an int and as a float, where it reads as one."""
    out: list[Any] = []
    for convert in (int, float):
        with contextlib.suppress(ValueError):
            out.append(convert(text))
    return out


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _possessive(owner: str) -> str:
    """``"the catalog"`` -> ``"the catalog's"``."""
    return owner + "'s"
