"""Reading RecBole "atomic files": tab-separated text with a typed header line.

The first line names each column with its type, ``name:type``, where the type is ``token``,
``token_seq``, ``float`` or ``float_seq``::

    user_id:token	item_id:token	rating:float	timestamp:float
    196	242	3	881250949

:func:`read_atomic` checks the whole file at once (vectorised over the bytes, so 100,000 lines
take a few tens of milliseconds) and reports the first malformed line by number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recai.errors import DataError

__all__ = ["AtomicTable", "read_atomic", "COLUMN_TYPES"]

COLUMN_TYPES = ("token", "token_seq", "float", "float_seq")
"""The column types of the atomic-file format."""

_TAB, _NL = 9, 10


@dataclass(eq=False)
class AtomicTable:
    """The raw text of an atomic file, by column, with the source line of every row."""

    path: Path
    types: dict[str, str]
    columns: dict[str, list[str]]
    lines: np.ndarray
    """1-based line number in :attr:`path` of each row (the header is line 1)."""

    def __len__(self) -> int:
        return len(self.lines)

    def text(self, name: str) -> list[str]:
        """The values of column ``name`` as strings."""
        return self.columns[name]

    def floats(self, name: str, *, finite: bool = True) -> np.ndarray:
        """Column ``name`` as float64; a value that is not a number names its line."""
        col = self.columns[name]
        try:
            values = np.array(col, dtype=np.float64)
        except ValueError:
            values = None
        if values is not None and (not finite or bool(np.all(np.isfinite(values)))):
            return values
        for row, raw in enumerate(col):
            try:
                v = float(raw)
            except ValueError:
                v = None
            if v is None or (finite and not np.isfinite(v)):
                raise DataError(
                    f"column {name!r} must hold numbers, found {raw!r}",
                    path=str(self.path),
                    line=int(self.lines[row]),
                )
        raise AssertionError(
            "unreachable: a bad value was detected but not found"
        )  # pragma: no cover

    def line_of(self, row: int) -> int:
        return int(self.lines[row])


def _parse_header(header: str, path: Path) -> dict[str, str]:
    types: dict[str, str] = {}
    for field in header.split("\t"):
        name, sep, kind = field.strip().rpartition(":")
        if not sep or not name or kind not in COLUMN_TYPES:
            raise DataError(
                f"header field {field!r} is not 'name:type' with a type among "
                f"{', '.join(COLUMN_TYPES)} (is this a RecBole atomic file?)",
                path=str(path),
                line=1,
            )
        if name in types:
            raise DataError(f"column {name!r} appears twice in the header", path=str(path), line=1)
        types[name] = kind
    return types


def read_atomic(path: Path | str, required: Sequence[str] = ()) -> AtomicTable:
    """Read an atomic file; ``required`` columns must be in its header.

    Blank lines are skipped; every other line must have as many tab-separated fields as the header.
    Raises :class:`~recai.errors.DataError` naming the file (and line) for anything malformed.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=str(path)) from None
    except OSError as e:
        raise DataError(f"cannot read the file: {e.strerror or e}", path=str(path)) from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError("the file is not UTF-8 text", path=str(path), line=line) from None
    if not text.strip():
        raise DataError("the file is empty; expected a header line and data", path=str(path))

    header, _, body = text.partition("\n")
    types = _parse_header(header, path)
    missing = [c for c in required if c not in types]
    if missing:
        have = ", ".join(f"{n}:{t}" for n, t in types.items())
        raise DataError(
            f"the header lacks the column(s) {', '.join(missing)} (it has: {have})",
            path=str(path),
            line=1,
        )
    ncol = len(types)

    # Field counts per line, vectorised over the bytes of the body.
    raw = np.frombuffer(body.encode("utf-8"), dtype=np.uint8)
    ends = np.flatnonzero(raw == _NL)
    if len(raw) and raw[-1] != _NL:
        ends = np.append(ends, len(raw))
    starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else np.zeros(0, dtype=np.int64)
    tabs = np.concatenate(([0], np.cumsum(raw == _TAB)))
    n_tabs = tabs[ends] - tabs[starts]
    blank = np.zeros(len(ends), dtype=bool)
    empty = ends == starts
    if empty.any() or n_tabs.min(initial=ncol - 1) != n_tabs.max(initial=ncol - 1):
        # only-whitespace lines count as blank (rare: checked one by one)
        blank = empty.copy()
        for i in np.flatnonzero(~empty & (n_tabs != ncol - 1)):
            blank[i] = not bytes(raw[starts[i] : ends[i]]).strip()
    bad = np.flatnonzero(~blank & (n_tabs != ncol - 1))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"expected {ncol} tab-separated fields ({', '.join(types)}), "
            f"found {int(n_tabs[i]) + 1}",
            path=str(path),
            line=i + 2,
        )
    lines = np.flatnonzero(~blank) + 2
    if blank.any():
        kept = body.split("\n")
        body = "\n".join(kept[i - 2] for i in lines.tolist())
    body = body.rstrip("\n")
    tokens = body.replace("\n", "\t").split("\t") if len(lines) else []
    names = list(types)
    columns = {name: tokens[c::ncol] for c, name in enumerate(names)}
    return AtomicTable(path=path, types=types, columns=columns, lines=lines)
