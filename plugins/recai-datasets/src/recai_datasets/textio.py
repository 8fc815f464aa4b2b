"""Reading text data files line by line, with the file and line of every problem.

All readers take plain or gzip-compressed files (recognised by their first bytes, whatever the
name), drop a UTF-8 byte-order mark and Windows line ends, and number lines from 1 as an editor
does. Problems go through a :class:`~recai_datasets.problems.Problems` policy: raised as
:class:`~recai.errors.DataError` naming file and line, or skipped and counted.

- :func:`iter_lines`: non-blank lines;
- :func:`iter_json_lines`: one JSON object per line (or one Python dict literal per line, read
  with :func:`ast.literal_eval`, never ``eval``);
- :func:`iter_csv_rows`: delimited rows with quoting (:mod:`csv`), a quoted field may span lines;
- :func:`iter_split_chunks`: delimited rows *without* quoting, split in large chunks (fast).

>>> import tempfile, pathlib
>>> f = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
>>> _ = f.write_text('{"a": 1}\\n\\n{"a": 2}\\n')
>>> [(line, obj["a"]) for line, obj in iter_json_lines(f, Problems())]
[(1, 1), (3, 2)]
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from recai.errors import DataError

from .problems import ENCODING, MALFORMED, Problems

__all__ = [
    "read_bytes",
    "read_text",
    "iter_lines",
    "iter_json_lines",
    "iter_csv_rows",
    "iter_split_chunks",
    "find_file",
]

_GZIP_MAGIC = b"\x1f\x8b"


def find_file(folder: Path, *names: str) -> Path | None:
    """The first of ``names`` that exists in ``folder`` (``None`` if none does)."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def read_bytes(path: Path | str) -> bytes:
    """The file's bytes: gunzipped when compressed, without a BOM, with ``\\n`` line ends.

    An empty (or whitespace-only) file is a :class:`DataError` whatever the policy: there is
    nothing to skip, and a dataset without its file is not a dataset.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise DataError("is a folder, expected a file", path=str(path)) from None
    except OSError as e:
        raise DataError(f"cannot read the file: {e.strerror or e}", path=str(path)) from None
    if data.startswith(_GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"not a valid gzip file: {e}", path=str(path)) from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if not data.strip():
        raise DataError("the file is empty", path=str(path))
    return data


def _decode(data: bytes, path: Path, encoding: str, problems: Problems) -> str:
    try:
        return data.decode(encoding)
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r}", path=str(path)) from None
    except UnicodeDecodeError as e:
        first = data.count(b"\n", 0, e.start) + 1
        if not problems.lenient:
            problems.report(
                ENCODING,
                f"the file is not {encoding} text (byte {data[e.start]:#04x}); "
                "set the encoding param if it uses another one",
                path=str(path),
                line=first,
            )
    # lenient: undecodable lines become blank lines (keeping every other line's number)
    out = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            out.append(raw.decode(encoding))
        except UnicodeDecodeError:
            problems.report(ENCODING, f"not {encoding} text", path=str(path), line=number)
            out.append("")
    return "\n".join(out)


def read_text(
    path: Path | str, problems: Problems, encoding: str = "utf-8", *, data: bytes | None = None
) -> str:
    """The file as text (see :func:`read_bytes`; ``data``: its bytes, already read); undecodable
    lines follow the policy."""
    path = Path(path)
    return _decode(read_bytes(path) if data is None else data, path, encoding, problems)


def _open(path: Path) -> io.BufferedIOBase:
    """The file opened for reading bytes, through gzip when its first bytes say so."""
    try:
        with path.open("rb") as f:
            magic = f.read(2)
        return gzip.open(path, "rb") if magic == _GZIP_MAGIC else path.open("rb")
    except FileNotFoundError:
        raise DataError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise DataError("is a folder, expected a file", path=str(path)) from None
    except OSError as e:
        raise DataError(f"cannot read the file: {e.strerror or e}", path=str(path)) from None


def iter_lines(
    path: Path | str, problems: Problems, encoding: str = "utf-8"
) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every non-blank line, read as a stream (big files are fine).

    A file without any non-blank line is a :class:`DataError` (see :func:`read_bytes`).
    """
    path = Path(path)
    content = False
    number = 0
    with _open(path) as f:
        try:
            for number, raw in enumerate(f, start=1):
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                raw = raw.rstrip(b"\r\n")
                if not raw.strip():
                    continue
                content = True
                try:
                    line = raw.decode(encoding)
                except LookupError:
                    raise DataError(f"unknown text encoding {encoding!r}", path=str(path)) from None
                except UnicodeDecodeError as e:
                    problems.report(
                        ENCODING,
                        f"not {encoding} text (byte {raw[e.start]:#04x}); "
                        "set the encoding param if the file uses another one",
                        path=str(path),
                        line=number,
                    )
                    continue
                yield number, line
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise DataError(
                f"not a valid gzip file: {e}", path=str(path), line=number + 1
            ) from None
    if not content:
        raise DataError("the file is empty", path=str(path))


def iter_json_lines(
    path: Path | str, problems: Problems, *, literal: bool = False, encoding: str = "utf-8"
) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for every non-blank line holding one JSON object.

    With ``literal=True`` each line is a Python dict literal (``{'a': True, 'b': None}``), as in
    the Steam files of McAuley's lab, read with :func:`ast.literal_eval`.
    """
    path = Path(path)
    kind = "a Python dict literal" if literal else "a JSON object"
    for number, line in iter_lines(path, problems, encoding):
        try:
            obj = ast.literal_eval(line.strip()) if literal else json.loads(line)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
            detail = getattr(e, "msg", None) or str(e).split("\n")[0]
            problems.report(MALFORMED, f"not {kind}: {detail}", path=str(path), line=number)
            continue
        if not isinstance(obj, dict):
            problems.report(
                MALFORMED,
                f"expected {kind}, found {type(obj).__name__}",
                path=str(path),
                line=number,
            )
            continue
        yield number, obj


def iter_csv_rows(
    path: Path | str,
    problems: Problems,
    *,
    sep: str = ",",
    quote: str | None = '"',
    encoding: str = "utf-8",
    data: bytes | None = None,
) -> Iterator[tuple[int, list[str]]]:
    """``(line number where the row starts, fields)`` of every non-blank row.

    Quoting follows :mod:`csv` (``"a, b"`` is one field; ``""`` inside quotes is a quote); a row
    whose quoting is broken follows the policy.
    """
    path = Path(path)
    text = read_text(path, problems, encoding, data=data)
    options: dict[str, Any] = {"delimiter": sep, "strict": True}
    if quote is None:
        options["quoting"] = csv.QUOTE_NONE
    else:
        options["quotechar"] = quote
    try:
        reader = csv.reader(io.StringIO(text, newline=""), **options)
    except TypeError as e:
        raise DataError(f"bad CSV options (delimiter {sep!r}, quote {quote!r}): {e}") from None
    last = 0
    while True:
        start = last + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            last = reader.line_num
            problems.report(MALFORMED, f"bad CSV quoting: {e}", path=str(path), line=start)
            continue
        last = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield start, row


def iter_split_chunks(
    path: Path | str,
    problems: Problems,
    *,
    sep: str,
    n_fields: int | None = None,
    header: bool = False,
    encoding: str = "utf-8",
    chunk_lines: int = 1 << 20,
    data: bytes | None = None,
) -> Iterator[tuple[list[str], list[list[str]], np.ndarray]]:
    """Delimited text *without quoting*, in chunks: ``(header names, columns, line numbers)``.

    Every non-blank line must have ``n_fields`` fields (default: as many as the header, or as the
    first line); others follow the policy. ``data`` is the file's bytes when already read (see
    :func:`read_bytes`). Field counts are checked over the raw bytes at once,
    so a million lines cost well under a second; ``sep`` may have several characters (``::``).
    The encoding must keep ASCII bytes as they are (UTF-8, Latin-1, cp1252 do).
    """
    path = Path(path)
    data = read_bytes(path) if data is None else data
    sep_bytes = sep.encode("ascii")
    if len(sep_bytes) != 1:
        if b"\x1f" in data:
            raise DataError("the file holds the control character 0x1f", path=str(path))
        data = data.replace(sep_bytes, b"\x1f")
        sep_byte = 0x1F
    else:
        sep_byte = sep_bytes[0]
    try:
        data.decode(encoding)
        bad_bytes = None
    except LookupError:
        raise DataError(f"unknown text encoding {encoding!r}", path=str(path)) from None
    except UnicodeDecodeError as e:
        bad_bytes = e
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    if len(raw) and raw[-1] != 10:
        ends = np.append(ends, len(raw))
    starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else np.zeros(0, dtype=np.int64)
    # separators per line: how many separator positions fall before each line's end
    n_sep = np.diff(np.searchsorted(np.flatnonzero(raw == sep_byte), ends), prepend=0)
    skip = ends == starts  # blank lines (whitespace-only lines are found below)
    if bad_bytes is not None:
        first = int(np.searchsorted(ends, bad_bytes.start))
        if not problems.lenient:
            problems.report(
                ENCODING,
                f"the file is not {encoding} text; set the encoding param if it uses another one",
                path=str(path),
                line=first + 1,
            )
        for i in range(first, len(ends)):
            try:
                data[starts[i] : ends[i]].decode(encoding)
            except UnicodeDecodeError:
                skip[i] = True
                problems.report(ENCODING, f"not {encoding} text", path=str(path), line=i + 1)

    def _blank(i: int) -> bool:
        return not data[starts[i] : ends[i]].replace(b"\x1f", b"").strip()

    usable = np.flatnonzero(~skip)
    names: list[str] = []
    if header:
        while len(usable) and _blank(int(usable[0])):
            usable = usable[1:]
        if not len(usable):
            raise DataError("the file has no header line", path=str(path))
        h = int(usable[0])
        names = [f.strip() for f in data[starts[h] : ends[h]].decode(encoding).split(chr(sep_byte))]
        usable = usable[1:]
        if n_fields is None:
            n_fields = len(names)
    if n_fields is None:
        first_line = next((int(i) for i in usable if not _blank(int(i))), None)
        n_fields = int(n_sep[first_line]) + 1 if first_line is not None else 1
    wrong = usable[n_sep[usable] != n_fields - 1]
    if len(wrong):
        for i in wrong.tolist():
            if not _blank(i):
                problems.report(
                    MALFORMED,
                    f"expected {n_fields} fields separated by {sep!r}, found {int(n_sep[i]) + 1}",
                    path=str(path),
                    line=i + 1,
                )
        usable = usable[n_sep[usable] == n_fields - 1]
    sep_char = chr(sep_byte)
    for lo in range(0, len(usable), chunk_lines):
        rows = usable[lo : lo + chunk_lines]
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1  # runs of consecutive lines: one slice each
        text = "\n".join(
            data[starts[run[0]] : ends[run[-1]]].decode(encoding) for run in np.split(rows, cuts)
        )
        tokens = text.replace("\n", sep_char).split(sep_char)
        columns = [tokens[c::n_fields] for c in range(n_fields)]
        yield names, columns, rows + 1
    if not len(usable):
        yield names, [[] for _ in range(n_fields)], np.zeros(0, dtype=np.int64)
