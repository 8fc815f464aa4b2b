"""What a loader does with bad input: raise at once, or skip it, count it and say so.

Every text loader takes ``on_error: Literal["raise", "skip"] = "raise"``. With ``"raise"`` the
first problem is a :class:`~recai.errors.DataError` naming the file and line. With ``"skip"`` the
line (or value) is left out, counted by reason, and the counts land in ``dataset.info["skipped"]``
plus one :class:`SkippedDataWarning` per load; nothing is dropped silently.

>>> p = Problems("skip")
>>> p.report(MALFORMED, "expected 4 fields, found 3", path="ratings.dat", line=7)
>>> p.counts
{'malformed line': 1}
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Literal

from recai.errors import DataError

__all__ = [
    "OnError",
    "Problems",
    "SkippedDataWarning",
    "MALFORMED",
    "ENCODING",
    "MISSING",
    "BAD_VALUE",
    "IMPLAUSIBLE_TIME",
    "IMPLAUSIBLE_RATING",
    "DUPLICATE_ITEM",
    "DUPLICATE_USER",
    "UNKNOWN_ITEM",
    "UNKNOWN_USER",
]

OnError = Literal["raise", "skip"]
"""The type of every loader's ``on_error`` param."""

# Reasons, as they appear in ``dataset.info["skipped"]``.
MALFORMED = "malformed line"
ENCODING = "undecodable line"
MISSING = "missing value"
BAD_VALUE = "bad value"
IMPLAUSIBLE_TIME = "implausible time"
IMPLAUSIBLE_RATING = "implausible rating"
DUPLICATE_ITEM = "duplicate item id"
DUPLICATE_USER = "duplicate user id"
UNKNOWN_ITEM = "unknown item"
UNKNOWN_USER = "unknown user"

_HINT = ' (on_error = "skip" leaves such lines out and counts them)'


class SkippedDataWarning(UserWarning):
    """A loader in lenient mode (``on_error = "skip"``) left data out; the message has the counts."""


class Problems:
    """Collects problems of one load under an ``on_error`` policy."""

    def __init__(self, on_error: OnError = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise DataError(f'on_error must be "raise" or "skip", not {on_error!r}')
        self.on_error = on_error
        self._counts: Counter[str] = Counter()
        self._first: dict[str, str] = {}

    @property
    def lenient(self) -> bool:
        return self.on_error == "skip"

    @property
    def counts(self) -> dict[str, int]:
        """Skipped lines (or values) by reason, in the order the reasons first came up."""
        return dict(self._counts)

    def report(
        self,
        reason: str,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        count: int = 1,
    ) -> None:
        """Raise a :class:`DataError` (strict) or count ``count`` skips under ``reason``."""
        if not self.lenient:
            raise DataError(message + _HINT, path=path, line=line)
        if count <= 0:
            return
        self._counts[reason] += count
        if reason not in self._first:
            where = f"{path}:{line}: " if line is not None else (f"{path}: " if path else "")
            self._first[reason] = where + message

    def finish(self, info: dict, dataset: str) -> None:
        """Put the counts into ``info["skipped"]`` and warn once when anything was skipped."""
        info["skipped"] = self.counts
        if not self._counts:
            return
        parts = [
            f"{n:,} x {reason} (first: {self._first[reason]})" for reason, n in self._counts.items()
        ]
        warnings.warn(
            f"{dataset}: skipped " + "; ".join(parts) + ' (counts in dataset.info["skipped"])',
            SkippedDataWarning,
            stacklevel=3,
        )
