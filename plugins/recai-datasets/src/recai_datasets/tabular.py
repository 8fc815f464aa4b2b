"""Interactions from delimited text files: columns of text -> checked ids, ratings and times.

:func:`read_interactions` reads a whole file into an
:class:`~recai_datasets.assemble.InteractionsBuilder`. Files without quoting are split in large
chunks (:func:`~recai_datasets.textio.iter_split_chunks`), quoted CSV goes through :mod:`csv`;
either way every bad value names its line.

>>> import tempfile, pathlib
>>> from recai_datasets.problems import Problems
>>> f = pathlib.Path(tempfile.mkdtemp()) / "ratings.dat"
>>> _ = f.write_text("1::10::5::978300760\\n2::10::3::978302109\\n")
>>> b = read_interactions(f, Problems(), sep="::", user=0, item=1, rating=2, timestamp=3)
>>> b.item_tokens, b.columns()[3].tolist()
(['10'], [5.0, 3.0])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from recai.errors import DataError

from .assemble import InteractionsBuilder, numbers, stripped
from .problems import BAD_VALUE, MALFORMED, MISSING, Problems
from .textio import iter_csv_rows, iter_split_chunks, read_bytes

__all__ = ["read_interactions", "parse_times", "column_index", "time_unit", "TIME_FORMATS"]

TIME_FORMATS = ("unix", "unix_ms", "iso")
"""Named timestamp formats: Unix seconds, Unix milliseconds, ISO 8601 (``2017-12-17[T10:00:00]``).
Any other value is a :func:`datetime.strptime` format such as ``"%d/%m/%Y %H:%M"``."""


def time_unit(fmt: str) -> str:
    """How a time format writes times, for :class:`InteractionsBuilder`'s messages."""
    return {"unix": "s", "unix_ms": "ms"}.get(fmt, "text")


def _column_name(what: str, column: int | str | None) -> str:
    """A column as messages name it: its header name, or ``"field 3"`` by position."""
    if isinstance(column, str):
        return column
    return what if column is None else f"field {column + 1}"


def column_index(
    names: Sequence[str], column: int | str | None, path: Path, what: str
) -> int | None:
    """The position of ``column`` (a header name or a 0-based position) in the header ``names``."""
    if column is None or isinstance(column, int):
        return column
    if column in names:
        return names.index(column)
    have = ", ".join(repr(n) for n in names) or "(none)"
    raise DataError(
        f"the header has no {what} column {column!r} (it has: {have}); "
        "set the column mapping in the params",
        path=str(path),
        line=1,
    )


def parse_times(
    tokens: Sequence[str],
    lines: np.ndarray,
    problems: Problems,
    *,
    path: str,
    column: str,
    fmt: str = "unix",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Timestamps as Unix seconds (float64) and the rows to keep (``None``: all).

    ``fmt`` is one of :data:`TIME_FORMATS` or a ``strptime`` format; dates without a time zone
    are read as UTC.
    """
    if fmt in ("unix", "unix_ms"):
        values, keep = numbers(tokens, lines, problems, path=path, column=column)
        return (values / 1000.0 if fmt == "unix_ms" else values), keep
    out = np.zeros(len(tokens))
    keep = np.ones(len(tokens), dtype=bool)
    cache: dict[str, float | None] = {}
    for row, raw in enumerate(tokens):
        text = raw.strip()
        if text not in cache:
            cache[text] = _parse_time(text, fmt)
        value = cache[text]
        if value is not None:
            out[row] = value
            continue
        keep[row] = False
        reason, what = (
            (BAD_VALUE, f"not a time in format {fmt!r}: {raw!r}") if text else (MISSING, "is empty")
        )
        problems.report(reason, f"{column} {what}", path=path, line=int(lines[row]))
    return out, None if keep.all() else keep


def _parse_time(text: str, fmt: str) -> float | None:
    if not text:
        return None
    try:
        if fmt == "iso":
            stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        else:
            stamp = datetime.strptime(text, fmt)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _chunks_csv(
    path: Path,
    problems: Problems,
    *,
    sep: str,
    quote: str,
    encoding: str,
    header: bool,
    data: bytes,
) -> Iterator[tuple[list[str], list[list[str]], np.ndarray]]:
    """Like :func:`iter_split_chunks`, through :mod:`csv` (for files with quoted fields)."""
    names: list[str] = []
    n_fields: int | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    rows_in = iter_csv_rows(path, problems, sep=sep, quote=quote, encoding=encoding, data=data)
    for line, row in rows_in:
        if header and not names:
            names = [f.strip() for f in row]
            n_fields = len(names)
            continue
        if n_fields is None:
            n_fields = len(row)
        if len(row) != n_fields:
            problems.report(
                MALFORMED,
                f"expected {n_fields} fields separated by {sep!r}, found {len(row)}",
                path=str(path),
                line=line,
            )
            continue
        rows.append(row)
        lines.append(line)
    if header and not names:
        raise DataError("the file has no header line", path=str(path))
    columns = (
        [list(col) for col in zip(*rows, strict=True)]
        if rows
        else [[] for _ in range(n_fields or 0)]
    )
    yield names, columns, np.asarray(lines, dtype=np.int64)


def read_interactions(
    path: Path | str,
    problems: Problems,
    *,
    sep: str,
    user: int | str,
    item: int | str,
    rating: int | str | None = None,
    timestamp: int | str | None = None,
    header: bool = False,
    n_fields: int | None = None,
    encoding: str = "utf-8",
    quote: str | None = None,
    time_format: str = "unix",
    builder: InteractionsBuilder | None = None,
) -> InteractionsBuilder:
    """Read interactions from a delimited file into a builder (a new one unless given).

    Columns are 0-based positions or header names (with ``header=True``). With ``quote`` set
    and present in the file, rows go through :mod:`csv`; otherwise lines are split directly.
    """
    path = Path(path)
    spath = str(path)
    if builder is None:
        builder = InteractionsBuilder(
            spath,
            problems,
            ratings=rating is not None,
            timestamps=timestamp is not None,
            rating_column=_column_name("rating", rating),
            time_column=_column_name("timestamp", timestamp),
            time_unit=time_unit(time_format),
        )
    data = read_bytes(path)
    if quote is not None and quote.encode() in data:
        chunks = _chunks_csv(
            path, problems, sep=sep, quote=quote, encoding=encoding, header=header, data=data
        )
    else:
        chunks = iter_split_chunks(
            path, problems, sep=sep, n_fields=n_fields, header=header, encoding=encoding, data=data
        )
    positions: tuple[int | None, ...] | None = None
    for names, columns, lines in chunks:
        if positions is None:
            positions = tuple(
                column_index(names, c, path, what)
                for c, what in (
                    (user, "user"),
                    (item, "item"),
                    (rating, "rating"),
                    (timestamp, "timestamp"),
                )
            )
            for p in positions:
                if p is not None and p >= len(columns):
                    raise DataError(
                        f"column {p} does not exist: lines have {len(columns)} fields",
                        path=spath,
                        line=int(lines[0]) if len(lines) else None,
                    )
        u, i, r, t = positions
        assert u is not None and i is not None  # the user and item columns are required
        users = stripped(columns[u])
        items = stripped(columns[i])
        keep = np.ones(len(lines), dtype=bool)
        for what, tokens in (("user", users), ("item", items)):
            if "" in tokens:
                for row in [k for k, v in enumerate(tokens) if not v]:
                    problems.report(
                        MISSING, f"the {what} id is empty", path=spath, line=int(lines[row])
                    )
                    keep[row] = False
        ratings = times = None
        if r is not None:
            ratings, ok = numbers(columns[r], lines, problems, path=spath, column="rating")
            if ok is not None:
                keep &= ok
        if t is not None:
            times, ok = parse_times(
                columns[t], lines, problems, path=spath, column="timestamp", fmt=time_format
            )
            if ok is not None:
                keep &= ok
        builder.add_rows(users, items, lines, ratings=ratings, timestamps=times, keep=keep)
    return builder
