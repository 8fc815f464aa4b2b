"""Reading RecBole "atomic files": tab-separated text with a typed header line.

The first line names each column with its type, ``name:type``, where the type is ``token``,
``token_seq``, ``float`` or ``float_seq``::

    user_id:token	item_id:token	rating:float	timestamp:float
    196	242	3	881250949

:func:`read_atomic` splits the file with Apache Arrow's CSV reader (``pyarrow.csv``, C++) into
one Arrow string column per header field, and reports the first malformed line by number (the
lines are counted again only when the file has blank or malformed lines). Columns are converted
when asked, with Arrow's compute functions: :meth:`AtomicTable.floats` reads numbers,
:meth:`AtomicTable.factorize` and :meth:`AtomicTable.codes` turn tokens into contiguous indices
without making a Python string per row. Ten million interactions read in seconds and well under
2 GB; :meth:`AtomicTable.text` (a Python string per row) is there for small files and free text.
For typed columns with few distinct values (categories, tags, dates), :meth:`AtomicTable.distinct`
gives each distinct value once with every row's index into them, and :meth:`AtomicTable.decimals`
parses numbers leaving the rare odd field (empty, ``nan``, ``1e3``, junk) to the caller.
``benchmarks/bench_atomic.py`` compares this reader with the hand-written one it replaced.

pyarrow is imported on first use, not with this module.

>>> import tempfile, pathlib
>>> f = pathlib.Path(tempfile.mkdtemp()) / "x.inter"
>>> _ = f.write_text("user_id:token\\titem_id:token\\trating:float\\nu2\\ti7\\t4\\nu10\\ti7\\t3.5\\n")
>>> table = read_atomic(f, required=("user_id", "item_id"))
>>> users, codes = table.factorize("user_id")
>>> users.tolist(), codes.tolist(), table.floats("rating").tolist()
(['u2', 'u10'], [0, 1], [4.0, 3.5])
>>> table.codes("item_id", ["i3", "i7"]).tolist()
[1, 1]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recai.errors import DataError, RequirementError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["AtomicTable", "read_atomic", "COLUMN_TYPES", "numbered_tokens", "index_of"]

COLUMN_TYPES = ("token", "token_seq", "float", "float_seq")
"""The column types of the atomic-file format."""

# pyarrow's CSV reader can parse blocks of the file on its thread pool; on the 2-core machine of
# benchmarks/bench_atomic.py one thread was faster at 10^6 and 10^7 rows (docs/performance.md)
_THREADS = False
_BLOCK_BYTES: int | None = None  # the size of those blocks (None: pyarrow's default, 1 MB)
_MAX_DIGITS = 18  # an int64 holds any 18-digit number
_LEAST = np.array([0, 0] + [10**k for k in range(1, _MAX_DIGITS)], dtype=np.int64)  # by length
# Numbers Arrow's parser reads as Python's float does (it reads no other text Python rejects);
# Python also takes spaces around, "1_000" and non-ASCII digits: those rows go through float().
_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DECIMAL = r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)$"  # what decimals() parses
_MAYBE_SPACED = r"^[^!-~]|[^!-~]$"  # first or last character not printable ASCII: check it


def _arrow() -> Any:
    """The ``pyarrow`` package with ``pyarrow.compute`` and ``pyarrow.csv`` loaded."""
    try:
        import pyarrow
        import pyarrow.compute  # noqa: F401
        import pyarrow.csv  # noqa: F401
    except ImportError as e:  # pragma: no cover - a dependency of recai-datasets
        raise RequirementError(
            f"reading RecBole atomic files needs pyarrow ({e}); it is a dependency of "
            "recai-datasets: pip install pyarrow"
        ) from None
    return pyarrow


# -- Arrow <-> numpy without pyarrow's pandas shim -------------------------------------------------
# ``Array.to_numpy`` and ``pyarrow.array`` import pandas when it is installed (a fifth of a second
# and a heavy import); these helpers go through the buffers instead.
def _numpy(values: Any, dtype: type[np.generic]) -> np.ndarray:
    """A chunked or plain Arrow array of a fixed-width type without nulls, as a numpy array."""
    chunks = values.chunks if hasattr(values, "chunks") else [values]
    parts = []
    for chunk in chunks:
        if not len(chunk):
            continue
        assert chunk.null_count == 0
        parts.append(np.frombuffer(chunk.buffers()[1], dtype=dtype)[chunk.offset :][: len(chunk)])
    if not parts:
        return np.zeros(0, dtype=dtype)
    return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()


def _offsets(chunk: Any) -> np.ndarray:
    """The offsets of a string array's values in its data buffer (``len(chunk) + 1`` of them)."""
    kind = np.int64 if chunk.type.equals(_arrow().large_string()) else np.int32
    return np.frombuffer(chunk.buffers()[1], dtype=kind)[chunk.offset :][: len(chunk) + 1]


def _lengths(values: Any) -> np.ndarray:
    """The length in bytes of every string of an Arrow string array (chunked or not)."""
    chunks = values.chunks if hasattr(values, "chunks") else [values]
    parts = [np.diff(_offsets(c)) for c in chunks if len(c)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


def _total_bytes(values: Any) -> int:
    """The bytes of all the strings of an Arrow string array (chunked or not)."""
    chunks = values.chunks if hasattr(values, "chunks") else [values]
    total = 0
    for chunk in chunks:
        if len(chunk):
            offsets = _offsets(chunk)
            total += int(offsets[-1]) - int(offsets[0])
    return total


def _mask(values: Any) -> np.ndarray:
    """A boolean Arrow array (chunked or not) as a numpy ``bool`` array."""
    pa = _arrow()
    return _numpy(pa.compute.cast(values, pa.int8()), np.int8).astype(bool)


def _indices(rows: np.ndarray) -> pa.Array:
    """Row numbers as an Arrow ``int64`` array (for ``take``)."""
    pa = _arrow()
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(rows), [None, pa.py_buffer(rows)])


def _strings(words: list[str]) -> pa.Array:
    """Python strings as an Arrow string array."""
    pa = _arrow()
    data = "".join(words).encode("utf-8")
    if len(data) == sum(map(len, words)):  # ASCII: characters are bytes
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    else:
        lengths = np.fromiter((len(w.encode("utf-8")) for w in words), np.int64, len(words))
    large = len(data) >= np.iinfo(np.int32).max
    offsets = np.zeros(len(words) + 1, dtype=np.int64 if large else np.int32)
    np.cumsum(lengths, out=offsets[1:])
    kind = pa.large_string() if large else pa.string()
    return pa.Array.from_buffers(
        kind, len(words), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


class _Columns(Mapping[str, list[str]]):
    """``table.columns[name]``: the column as strings, made on first use."""

    def __init__(self, table: AtomicTable) -> None:
        self._table = table

    def __getitem__(self, name: str) -> list[str]:
        if name not in self._table.types:
            raise KeyError(name)
        return self._table.text(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._table.types)

    def __len__(self) -> int:
        return len(self._table.types)


class AtomicTable:
    """The rows of an atomic file by column, with the source line of every row.

    Made by :func:`read_atomic`, which keeps one Arrow string column per field and converts a
    column when asked for it. ``AtomicTable(path, types, columns, lines)`` also wraps columns
    already split into Python strings.
    """

    def __init__(
        self,
        path: Path,
        types: dict[str, str],
        columns: Mapping[str, list[str]] | None = None,
        lines: np.ndarray | None = None,
    ) -> None:
        self.path = Path(path)
        self.types = dict(types)
        self._text: dict[str, list[str]] = dict(columns or {})
        self._lines = None if lines is None else np.asarray(lines, dtype=np.int64)
        self._arrow: dict[str, Any] | None = None  # name -> pyarrow ChunkedArray of strings
        self._prefixes: dict[str, str] = {}  # columns found numbered: their prefix
        self._n = len(self._lines) if self._lines is not None else 0
        if columns is not None and lines is None:
            self._n = len(next(iter(self._text.values()), []))

    @classmethod
    def _from_arrow(
        cls, path: Path, types: dict[str, str], columns: dict[str, Any], n: int, lines: Any
    ) -> AtomicTable:
        table = cls(path, types)
        table._arrow, table._n, table._lines = columns, n, lines
        return table

    # -- what the table is --------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"AtomicTable({self.path.name!r}, {self._n} rows, columns={list(self.types)})"

    @property
    def lines(self) -> np.ndarray:
        """1-based line number in :attr:`path` of each row (the header is line 1)."""
        if self._lines is None:
            self._lines = np.arange(2, self._n + 2, dtype=np.int64)
        return self._lines

    @property
    def columns(self) -> Mapping[str, list[str]]:
        """Every column as a list of strings (each made on first use: prefer the parsers)."""
        return _Columns(self)

    @property
    def columnar(self) -> bool:
        """Whether columns are converted from the file's Arrow columns when asked for (tables
        made by :func:`read_atomic`), rather than held as Python strings."""
        return self._arrow is not None

    def line_of(self, row: int) -> int:
        return int(self._lines[row]) if self._lines is not None else row + 2

    def release(self) -> None:
        """Let go of the Arrow columns once the columns needed are converted: what stays is the
        types, the line numbers and the columns already made strings by :meth:`text`."""
        self._arrow = None
        self._prefixes.clear()

    def _col(self, name: str) -> int:
        try:
            return list(self.types).index(name)
        except ValueError:
            raise KeyError(name) from None

    def _column(self, name: str) -> Any:
        """Column ``name`` as an Arrow chunked array of strings."""
        assert self._arrow is not None
        self._col(name)
        return self._arrow[name]

    # -- columns as Python strings ------------------------------------------------------------
    def text(self, name: str) -> list[str]:
        """The values of column ``name`` as strings (one Python string per row, kept)."""
        if name in self._text:
            return self._text[name]
        c = self._col(name)
        if self._arrow is None:
            raise KeyError(name)
        out = self._strings(c)
        self._text[name] = out
        return out

    def _strings(self, c: int) -> list[str]:
        """Column ``c`` as one Python string per row (not kept)."""
        return self._column(list(self.types)[c]).to_pylist()

    def texts(self, name: str, rows: Sequence[int] | np.ndarray) -> list[str]:
        """The values of column ``name`` in ``rows`` only, as strings (none kept).

        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.item"
        >>> _ = f.write_text("item_id:token\\tprice:float\\ni1\\t3\\ni2\\t\\ni3\\tn/a\\n")
        >>> read_atomic(f).texts("price", [2, 1])
        ['n/a', '']
        """
        self._col(name)
        rows = np.asarray(rows, dtype=np.int64)
        if self._arrow is None:
            col = self.text(name)
            return [col[r] for r in rows.tolist()]
        if not len(rows):
            return []
        return self._column(name).take(_indices(rows)).to_pylist()

    # -- numbers ------------------------------------------------------------------------------
    def floats(
        self, name: str, *, finite: bool = True, dtype: type[np.floating] = np.float64
    ) -> np.ndarray:
        """Column ``name`` as float64; a value that is not a number names its line.

        With ``finite=True`` (the default) ``nan`` and ``inf`` count as not a number. Numbers
        are parsed by Arrow (equal to Python's ``float``); what Arrow does not read (spaces
        around, ``1_000``) goes through Python's ``float`` and, failing that, raises
        :class:`~recai.errors.DataError` with the line of the first bad value.
        ``dtype=np.float32`` gives the float64 values rounded to float32, in half the memory.
        """
        self._col(name)
        if self._arrow is None:
            return self._floats_of_text(name, self.text(name), finite).astype(dtype, copy=False)
        pa = _arrow()
        col = self._column(name)
        try:
            values = _numpy(pa.compute.cast(col, pa.float64()), np.float64)
            slow = np.zeros(0, dtype=np.int64)
        except pa.ArrowInvalid:  # some value Arrow does not read: those by Python's rules
            values, slow = self._parsed(col, _NUMBER)
        bad = np.zeros(self._n, dtype=bool)
        if len(slow):
            numbers, unreadable = _python_floats(self.texts(name, slow))
            values[slow] = numbers
            bad[slow[unreadable]] = True
        if finite:
            bad |= ~np.isfinite(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"column {name!r} must hold numbers, found {self.texts(name, [row])[0]!r}",
                path=str(self.path),
                line=self.line_of(row),
            )
        return values.astype(dtype, copy=False)

    def decimals(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(values, rows)``: column ``name`` as float64 where it is written as a plain decimal
        number (``-12``, ``3.5``; equal to Python's ``float``), and the rows left to the caller
        (``NaN`` in ``values``): empty fields, exponents, ``nan``, junk.

        Raises nothing: :meth:`floats` is the strict reading. Read the rows left with
        :meth:`texts`.

        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.item"
        >>> _ = f.write_text("item_id:token\\tprice:float\\ni1\\t3.5\\ni2\\t\\ni3\\t1e3\\n")
        >>> values, rows = read_atomic(f).decimals("price")
        >>> values.tolist(), rows.tolist()
        ([3.5, nan, nan], [1, 2])
        """
        self._col(name)
        if self._arrow is None:
            rows = np.arange(self._n, dtype=np.int64)
            return np.full(self._n, np.nan), rows
        return self._parsed(self._column(name), _DECIMAL)

    def _parsed(self, col: Any, pattern: str) -> tuple[np.ndarray, np.ndarray]:
        """``(values, rows)``: the fields matching ``pattern`` parsed by Arrow, ``NaN`` in the
        ``rows`` that do not match."""
        pa = _arrow()
        pc = pa.compute
        match = pc.match_substring_regex(col, pattern)
        ok = _mask(match)
        values = np.full(self._n, np.nan)
        if ok.any():
            values[ok] = _numpy(pc.cast(col.filter(match), pa.float64()), np.float64)
        return values, np.flatnonzero(~ok)

    def _parse_floats(
        self, name: str, texts: list[str], rows: Sequence[int] | np.ndarray, finite: bool
    ) -> np.ndarray:
        """``texts`` as floats (Python's ``float`` rules); the first one that is not a number
        (or not finite: ``finite``) raises, naming the line of its row."""
        values, bad = _python_floats(texts)
        if finite:
            bad |= ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"column {name!r} must hold numbers, found {texts[i]!r}",
                path=str(self.path),
                line=self.line_of(int(rows[i])),
            )
        return values

    def _floats_of_text(self, name: str, col: list[str], finite: bool) -> np.ndarray:
        return self._parse_floats(name, col, np.arange(len(col)), finite)

    # -- tokens -------------------------------------------------------------------------------
    def factorize(
        self, name: str, *, dtype: type[np.signedinteger] = np.int64
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(uniques, codes)``: the distinct tokens of column ``name`` and each row's index.

        ``uniques`` (an object array of ``str``) is sorted: tokens that are all a number after
        a shared prefix (``"7"``, ``"42"`` or ``"u7"``, ``"u42"``) by that number, others by text
        (digit-only tokens with leading zeros by value, then text). Vectorised with Arrow.
        ``codes`` are of ``dtype`` (``np.int32`` halves their memory), or ``int64`` when there
        are too many tokens for it.
        """
        self._col(name)
        if self._arrow is None or not self._n:
            found = _factorize_strings(self.text(name))
        else:
            found = self._factorize_numbered(name, dtype)
            if found is None:
                found = self._factorize_arrow(name)
        uniques, codes = found
        return uniques, codes.astype(_code_type(dtype, len(uniques)), copy=False)

    def _encoded(self, col: Any) -> tuple[list[str], np.ndarray]:
        """``(distinct values in the order they first appear, every row's index)``."""
        encoded = col.dictionary_encode()
        chunks = [c for c in encoded.chunks if len(c)]
        if not chunks:
            return [], np.zeros(0, dtype=np.int64)
        dictionary = chunks[-1].dictionary  # the chunks share one growing dictionary
        if any(len(c.dictionary) != len(dictionary) for c in chunks):  # pragma: no cover
            encoded = col.combine_chunks().dictionary_encode()
            chunks, dictionary = [encoded], encoded.dictionary
        codes = np.concatenate([_numpy(c.indices, np.int32) for c in chunks]).astype(np.int64)
        return dictionary.to_pylist(), codes

    def _factorize_arrow(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`factorize` for any tokens: Arrow's hash encoding, the distinct values sorted."""
        tokens, codes = self._encoded(self._column(name))
        order = sorted(range(len(tokens)), key=tokens.__getitem__)
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return _natural_order([tokens[i] for i in order], rank[codes])

    def _factorize_numbered(
        self, name: str, dtype: type[np.signedinteger] = np.int64
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`factorize` for numbered tokens (see :meth:`_numbered`), or ``None``."""
        numbered = self._numbered(name)
        if numbered is None:
            return None
        prefix, values = numbered
        uniq, codes = _factorize_ints(values, dtype)
        del values
        tokens = np.empty(len(uniq), dtype=object)
        tokens[:] = _numbered_texts(prefix, uniq)
        return tokens, codes

    def _numbered(self, name: str) -> tuple[str, np.ndarray] | None:
        """``(prefix, numbers)`` when every token of column ``name`` is one prefix and a number
        without leading zeros (``"u42"``, ``"42"``), else ``None``."""
        found = _numbered_column(self._column(name))
        if found is not None:
            self._prefixes[name] = found[0]
        return found

    def distinct(
        self, name: str, rows: Sequence[int] | np.ndarray | None = None
    ) -> tuple[list[str], np.ndarray]:
        """``(values, codes)``: the distinct values of column ``name``, each once, in the order
        they first appear, and every row's index into them: ``values[codes[r]]`` is row ``r``'s
        text. With ``rows``, of those rows only (``codes[i]`` for ``rows[i]``).

        For converting a column once per distinct value rather than once per row: Arrow's
        hash encoding, no Python string per row.

        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.item"
        >>> _ = f.write_text("item_id:token\\tgenre:token\\ni1\\tdrama\\ni2\\t\\ni3\\tdrama\\n")
        >>> values, codes = read_atomic(f).distinct("genre")
        >>> [values[c] for c in codes.tolist()]
        ['drama', '', 'drama']
        """
        self._col(name)
        if rows is not None:
            return _distinct_strings(self.texts(name, rows))
        if self._arrow is None or not self._n:
            return _distinct_strings(self.text(name))
        return self._encoded(self._column(name))

    def spaced(self, name: str) -> bool:
        """Whether some value of column ``name`` starts or ends with white space (as
        ``str.strip`` sees it); only fields that start or end with a character other than
        printable ASCII are made Python strings to check."""
        self._col(name)
        if self._arrow is None:
            return any(t != t.strip() for t in self.text(name))
        if name in self._prefixes:  # numbered: only the prefix can start with a space
            prefix = self._prefixes[name]
            return prefix != prefix.lstrip()
        pa = _arrow()
        maybe = np.flatnonzero(
            _mask(pa.compute.match_substring_regex(self._column(name), _MAYBE_SPACED))
        )
        return any(t != t.strip() for t in self.texts(name, maybe))

    def codes(
        self,
        name: str,
        vocabulary: Sequence[str] | np.ndarray,
        *,
        dtype: type[np.signedinteger] = np.int64,
    ) -> np.ndarray:
        """The index in ``vocabulary`` of each row's token in column ``name``, ``-1`` if absent.

        For example the catalog index of every interaction's item:
        ``table.codes("item_id", catalog.ids)``. A token listed twice in ``vocabulary`` gets the
        later index. The indices are of ``dtype`` (``int64`` if it cannot hold them all).
        """
        words = list(map(str, np.asarray(vocabulary, dtype=object).tolist()))
        dtype = _code_type(dtype, len(words))
        self._col(name)
        if self._arrow is None or not self._n:
            uniques, codes = self.factorize(name)
            uniques = uniques.tolist()
        else:
            numbered = self._numbered(name)
            if numbered is not None:
                prefix, values = numbered
                known = _numbered_strings(words, prefix)
                if known is not None:
                    return _lookup(values, known, dtype)
            uniques, codes = self._encoded(self._column(name))
        index = {t: i for i, t in enumerate(words)}
        remap = np.fromiter(map(index.get, uniques, repeat(-1)), dtype=dtype, count=len(uniques))
        return remap[codes] if len(codes) else np.zeros(0, dtype=dtype)


def _python_floats(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(values, unreadable)``: ``texts`` by Python's ``float`` (NaN where unreadable)."""
    try:
        return np.array(texts, dtype=np.float64), np.zeros(len(texts), dtype=bool)
    except ValueError:
        pass
    values = np.full(len(texts), np.nan)
    bad = np.zeros(len(texts), dtype=bool)
    for i, raw in enumerate(texts):
        try:
            values[i] = float(raw)
        except ValueError:
            bad[i] = True
    return values, bad


def _numbered_column(col: Any) -> tuple[str, np.ndarray] | None:
    """``(prefix, numbers)`` when every string of the Arrow array ``col`` is one prefix and a
    number without leading zeros, else ``None``."""
    pa = _arrow()
    pc = pa.compute
    if not len(col):
        return None
    first = col[0].as_py()
    prefix = first.rstrip("0123456789")
    if prefix == first:
        return None
    if prefix and not pc.all(pc.starts_with(col, prefix)).as_py():
        return None
    if prefix.isascii() and not any(ch.isdigit() for ch in prefix):
        rest = pc.ascii_ltrim(col, prefix)  # (fast; a token that repeats a character of the
    else:  # prefix loses more than the prefix: its length says so below)
        rest = pc.utf8_slice_codeunits(col, len(prefix))
    lengths = _lengths(rest)  # (in bytes: in characters for ASCII digits)
    if lengths.min() < 1 or lengths.max() > _MAX_DIGITS:
        return None
    if _total_bytes(col) - len(prefix.encode("utf-8")) * len(col) != _total_bytes(rest):
        return None
    try:  # (Arrow reads ASCII digits with an optional "-" and leading zeros)
        values = _numpy(pc.cast(rest, pa.int64()), np.int64)
    except pa.ArrowInvalid:
        return None
    if values.min() < 0 or (values < _LEAST[lengths]).any():
        return None  # a leading zero ("u07", "-0"): the text is not the number's
    return prefix, values


def _code_type(dtype: type[np.signedinteger], n: int) -> type[np.signedinteger]:
    """``dtype`` if it holds the codes of ``n`` tokens, else ``int64``."""
    return dtype if n <= np.iinfo(dtype).max else np.int64


def _numbered_texts(prefix: str, numbers: np.ndarray) -> list[str]:
    """``prefix`` followed by each of ``numbers`` (not negative) written in decimal."""
    if not len(numbers):
        return []
    pa = _arrow()
    pc = pa.compute
    values = pa.Array.from_buffers(pa.int64(), len(numbers), [None, pa.py_buffer(numbers)])
    texts = pc.cast(values, pa.string())
    if prefix:
        texts = pc.utf8_replace_slice(texts, 0, 0, prefix)
    return texts.to_pylist()


def _factorize_ints(
    values: np.ndarray, dtype: type[np.signedinteger] = np.int64
) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``, by a lookup table when the range is small."""
    if not len(values):
        return values, np.zeros(0, dtype=dtype)
    lo, hi = int(values.min()), int(values.max())
    if hi - lo <= max(1 << 20, len(values)):  # a table of the values present
        present = np.zeros(hi - lo + 1, dtype=bool)
        step = 1 << 20  # in slices: no temporary as long as the column
        for i in range(0, len(values), step):
            present[values[i : i + step] - lo] = True
        uniq = np.flatnonzero(present) + lo
        index = np.cumsum(present, dtype=np.int64) - 1
        del present
        codes = np.empty(len(values), dtype=_code_type(dtype, len(uniq)))
        for i in range(0, len(values), step):
            codes[i : i + step] = index[values[i : i + step] - lo]
        return uniq, codes
    uniq, codes = np.unique(values, return_inverse=True)
    return uniq, codes.reshape(-1).astype(_code_type(dtype, len(uniq)), copy=False)


def _natural_order(tokens: list[str], codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``tokens`` (sorted as text) with ``codes`` into them, reordered as
    :meth:`AtomicTable.factorize` promises."""
    order = list(range(len(tokens)))
    if tokens:
        prefix = tokens[0].rstrip("0123456789")
        rest = [t[len(prefix) :] for t in tokens]
        if all(
            t.startswith(prefix) and r.isdigit() and (r == "0" or r[0] != "0")
            for t, r in zip(tokens, rest, strict=True)
        ):
            order.sort(key=lambda i: int(rest[i]))
        elif all(t.isdigit() for t in tokens):
            order.sort(key=lambda i: (int(tokens[i]), tokens[i]))
    uniques = np.empty(len(order), dtype=object)
    uniques[:] = [tokens[i] for i in order]
    if order == sorted(order):
        return uniques, codes
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return uniques, rank[codes]


def _distinct_strings(tokens: list[str]) -> tuple[list[str], np.ndarray]:
    """:meth:`AtomicTable.distinct` for tokens already split into strings (first-seen order)."""
    index: dict[str, int] = {}
    codes = np.fromiter(
        (index.setdefault(t, len(index)) for t in tokens), dtype=np.int64, count=len(tokens)
    )
    return list(index), codes


def _factorize_strings(tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`AtomicTable.factorize` for tokens already split into strings."""
    uniq = sorted(set(tokens))
    index = {t: i for i, t in enumerate(uniq)}
    codes = np.fromiter((index[t] for t in tokens), dtype=np.int64, count=len(tokens))
    return _natural_order(uniq, codes)


def numbered_tokens(tokens: Sequence[str]) -> tuple[str, np.ndarray] | None:
    """``(prefix, numbers)`` when every token is one ASCII prefix followed by a number without
    leading zeros (``"u7"``, ``"u42"``; ``"7"``, ``"42"`` with the prefix ``""``), else ``None``.
    Checked vectorised: a million ids take a fraction of a second.

    >>> numbered_tokens(["u7", "u42", "u7"])
    ('u', array([ 7, 42,  7]))
    >>> numbered_tokens(["u7", "v42"]), numbered_tokens(["007"]), numbered_tokens([])
    (None, None, None)
    """
    words = tokens if isinstance(tokens, list) else list(tokens)
    if not words or set(map(type, words)) != {str}:
        return None
    if not "".join(words).isascii():
        return None
    return _numbered_column(_strings(words))


def _numbered_strings(words: list[str], prefix: str) -> np.ndarray | None:
    """The numbers of ``words`` if each is ``prefix`` and a number without leading zeros."""
    if not words:
        return np.zeros(0, dtype=np.int64)
    found = numbered_tokens(words)
    if found is None or found[0] != prefix:
        return None
    return found[1]


def index_of(tokens: Sequence[str], vocabulary: Sequence[str] | np.ndarray) -> np.ndarray:
    """The position of each of ``tokens`` in ``vocabulary`` (the later one of a word listed
    twice), ``-1`` if absent. Vectorised when both are numbered ids (see
    :func:`numbered_tokens`), through a dictionary otherwise.

    >>> index_of(["u3", "u9", "u1"], ["u1", "u2", "u3"]).tolist()
    [2, -1, 0]
    """
    tokens = tokens if isinstance(tokens, list) else list(tokens)
    if not tokens:
        return np.zeros(0, dtype=np.int64)
    words = vocabulary.tolist() if isinstance(vocabulary, np.ndarray) else list(vocabulary)
    found = numbered_tokens(tokens)
    if found is not None:
        known = _numbered_strings(words, found[0]) if words else None
        if known is not None:
            return _lookup(found[1], known)
    index = {w: i for i, w in enumerate(words)}
    return np.fromiter(map(index.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))


def _lookup(
    values: np.ndarray, known: np.ndarray, dtype: type[np.signedinteger] = np.int64
) -> np.ndarray:
    """For each of ``values``, its position in ``known`` (the last one if repeated), else -1;
    positions of ``dtype``."""
    if not len(values):
        return np.zeros(0, dtype=dtype)
    if not len(known):
        return np.full(len(values), -1, dtype=dtype)
    lo, hi = int(known.min()), int(known.max())
    if hi - lo <= max(1 << 20, 4 * len(known)):  # a table from value to position
        table = np.full(hi - lo + 2, -1, dtype=np.int64)  # the last slot: out of range
        if (np.diff(known) > 0).all():  # distinct (and sorted): a plain assignment
            table[known - lo] = np.arange(len(known))
        else:  # a repeated value maps to its last position
            np.maximum.at(table, known - lo, np.arange(len(known)))
        out = np.empty(len(values), dtype=dtype)
        step = 1 << 20  # in slices: no temporary as long as the values
        within = lo <= int(values.min()) and int(values.max()) <= hi
        for i in range(0, len(values), step):
            part = values[i : i + step] - lo
            if not within:
                part = np.where((part >= 0) & (part <= hi - lo), part, hi - lo + 1)
            out[i : i + step] = table[part]
        return out
    order = np.argsort(known, kind="stable")
    ranked = known[order]
    at = np.searchsorted(ranked, values, side="right") - 1
    ok = (at >= 0) & (ranked[np.maximum(at, 0)] == values)
    return np.where(ok, order[np.maximum(at, 0)], -1).astype(dtype, copy=False)


# -- reading a file ----------------------------------------------------------------------------
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


def _not_utf8(data: bytes, path: Path) -> DataError | None:
    """A DataError naming the first line that is not UTF-8, or ``None`` if all of it is."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return DataError("the file is not UTF-8 text", path=str(path), line=line)
    return None


def _check_not_blank(data: bytes, path: Path) -> None:
    """Raise a DataError if ``data`` holds nothing but white space."""
    head = data[: 1 << 16]
    if len(data) <= len(head):
        try:
            blank = not head.decode("utf-8").strip()  # str.strip: Unicode white space too
        except UnicodeDecodeError:
            blank = False
    else:
        blank = not head.strip() and not data.strip()
    if blank:
        raise DataError("the file is empty; expected a header line and data", path=str(path))


def _row_lines(data: bytes, start: int, types: dict[str, str], path: Path) -> np.ndarray:
    """The line number of every row Arrow kept: lines with as many fields as the header,
    without the empty ones and the white-space ones of a wrong field count. The first line
    of another wrong field count raises a DataError naming it. Counted over the bytes, only
    for files that have such lines. The rows start at byte ``start``, on line 2."""
    ncol = len(types)
    buf = np.frombuffer(data, dtype=np.uint8, offset=start)
    ends = np.flatnonzero(buf == 10)
    if len(buf) and buf[-1] != 10:
        ends = np.append(ends, len(buf))
    starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else ends
    fields = np.diff(np.searchsorted(np.flatnonzero(buf == 9), ends), prepend=0) + 1
    empty = ends == starts
    wrong = (fields != ncol) & ~empty
    for i in np.flatnonzero(wrong).tolist():
        if data[start + starts[i] : start + ends[i]].strip():
            raise DataError(
                f"expected {ncol} tab-separated fields ({', '.join(types)}), "
                f"found {int(fields[i])}",
                path=str(path),
                line=i + 2,
            )
    return np.flatnonzero(~empty & ~wrong) + 2


def read_atomic(path: Path | str, required: Sequence[str] = ()) -> AtomicTable:
    """Read an atomic file; ``required`` columns must be in its header.

    Blank lines are skipped; every other line must have as many tab-separated fields as the header.
    Raises :class:`~recai.errors.DataError` naming the file (and line) for anything malformed.
    The columns are converted later, when asked for (:meth:`AtomicTable.floats`,
    :meth:`AtomicTable.factorize`, :meth:`AtomicTable.codes`, :meth:`AtomicTable.text`).
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
    if b"\r" in data:  # Windows line ends; a lone "\r" ends a line too, as for Arrow
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    _check_not_blank(data, path)

    head_end = data.find(b"\n")
    head_end = len(data) if head_end < 0 else head_end
    try:
        header = data[:head_end].decode("utf-8")
    except UnicodeDecodeError:
        raise DataError("the file is not UTF-8 text", path=str(path), line=1) from None
    types = _parse_header(header, path)
    missing = [c for c in required if c not in types]
    if missing:
        have = ", ".join(f"{n}:{t}" for n, t in types.items())
        raise DataError(
            f"the header lacks the column(s) {', '.join(missing)} (it has: {have})",
            path=str(path),
            line=1,
        )
    start = head_end + 1
    end = len(data)  # the end of the last line that is not empty
    while end > start and data[end - 1] == 10:
        end -= 1
    columns, skipped = _split(data, start, end, types, path)
    n = len(next(iter(columns.values())))
    lines = None
    # rows are lines 2, 3, ... unless lines were left out: for their field count or empty
    if skipped or (end > start and data.count(b"\n", start, end) + 1 != n):
        lines = _row_lines(data, start, types, path)
        if len(lines) != n:  # pragma: no cover - Arrow and the count above disagree
            raise DataError(
                f"read {n} rows but counted {len(lines)} lines: please report this",
                path=str(path),
            )
    return AtomicTable._from_arrow(path, types, columns, n, lines)


def _split(
    data: bytes, start: int, end: int, types: dict[str, str], path: Path
) -> tuple[dict[str, Any], int]:
    """The fields of ``data[start:]`` as one Arrow string column per header field (Arrow's CSV
    reader: tab-separated, no quoting), and how many lines were left out for their field count
    (the caller counts the lines to name them). ``end``: where the last line that is not empty
    ends."""
    pa = _arrow()
    names = list(types)
    if end <= start:
        return {n: pa.chunked_array([], type=pa.string()) for n in names}, 0
    skipped = 0

    def handler(row: Any) -> str:
        nonlocal skipped
        skipped += 1
        return "skip"

    def read(block_size: int | None) -> Any:
        return pa.csv.read_csv(
            pa.BufferReader(pa.py_buffer(data).slice(start)),
            read_options=pa.csv.ReadOptions(
                column_names=[f"f{i}" for i in range(len(names))],
                use_threads=_THREADS,
                block_size=block_size,
            ),
            parse_options=pa.csv.ParseOptions(
                delimiter="\t",
                quote_char=False,
                escape_char=False,
                double_quote=False,
                newlines_in_values=False,
                ignore_empty_lines=True,
                invalid_row_handler=handler,
            ),
            convert_options=pa.csv.ConvertOptions(
                column_types={f"f{i}": pa.string() for i in range(len(names))},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                null_values=[],
                check_utf8=True,
            ),
        )

    try:
        try:
            table = read(_BLOCK_BYTES)
        except pa.ArrowInvalid as e:
            if "straddl" not in str(e):
                raise
            # a line longer than a block (a long text field): blocks that hold the longest line
            ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8, offset=start) == 10)
            longest = int(np.diff(ends, prepend=-1, append=len(data) - start).max())
            skipped = 0
            table = read(max(2 * longest + 1, _BLOCK_BYTES or 0))
    except pa.ArrowInvalid as e:
        error = _not_utf8(data, path)
        if error is not None:
            raise error from None
        raise DataError(f"cannot split the file into fields: {e}", path=str(path)) from None
    return {n: table.column(i) for i, n in enumerate(names)}, skipped
