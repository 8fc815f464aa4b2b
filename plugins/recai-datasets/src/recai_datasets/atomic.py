"""Reading RecBole "atomic files": tab-separated text with a typed header line.

The first line names each column with its type, ``name:type``, where the type is ``token``,
``token_seq``, ``float`` or ``float_seq``::

    user_id:token	item_id:token	rating:float	timestamp:float
    196	242	3	881250949

:func:`read_atomic` checks the whole file at once and reports the first malformed line by number.
It keeps the file's bytes and the position of every field, and parses a column only when asked,
vectorised over the bytes with numpy: :meth:`AtomicTable.floats` reads numbers,
:meth:`AtomicTable.factorize` and :meth:`AtomicTable.codes` turn tokens into contiguous indices
without making a Python string per row. Ten million interactions read in seconds and well under
2 GB; :meth:`AtomicTable.text` (a Python string per row) is there for small files and free text.
For typed columns with few distinct values (categories, tags, dates), :meth:`AtomicTable.distinct`
gives each distinct value once with every row's index into them, and :meth:`AtomicTable.decimals`
parses numbers leaving the rare odd field (empty, ``nan``, ``1e3``, junk) to the caller.

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

import codecs
from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat
from pathlib import Path

import numpy as np

from recai.errors import DataError

__all__ = ["AtomicTable", "read_atomic", "COLUMN_TYPES", "numbered_tokens", "index_of"]

COLUMN_TYPES = ("token", "token_seq", "float", "float_seq")
"""The column types of the atomic-file format."""

_TAB, _NL = 9, 10
_SCAN = 1 << 24  # bytes per slice when looking for delimiters
_ROWS = 1 << 16  # rows per slice when parsing a column (keeps temporaries in cache)
_MAX_DIGITS = 18  # an int64 holds any 18-digit number
_FIXED_BYTES = 1 << 30  # factorize: at most this many bytes of fixed-width rows, else strings
_HASH_WORDS = 1 << 24  # distinct: at most this many 8-byte words of fields, else strings
_HASH_SEED, _HASH_MIX = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)
_SPACE_BYTES = np.array([chr(b).isspace() for b in range(128)] + [True] * 128)  # >= 128: maybe
_LOW_BYTES = np.array([(1 << (8 * r)) - 1 for r in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


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

    Made by :func:`read_atomic`, which keeps the bytes and parses a column when asked for it.
    ``AtomicTable(path, types, columns, lines)`` also wraps columns already split into strings.
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
        self._buf: np.ndarray | None = None
        self._ends: np.ndarray | None = None
        self._prefixes: dict[int, bytes] = {}  # columns found numbered: their prefix
        self._n = len(self._lines) if self._lines is not None else 0
        if columns is not None and lines is None:
            self._n = len(next(iter(self._text.values()), []))

    @classmethod
    def _from_bytes(
        cls,
        path: Path,
        types: dict[str, str],
        buf: np.ndarray,
        ends: np.ndarray,
        lines: np.ndarray | None,
    ) -> AtomicTable:
        table = cls(path, types)
        table._buf, table._ends = buf, ends
        table._n = len(ends) // len(types)
        table._lines = lines
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
    def keeps_bytes(self) -> bool:
        """Whether columns are parsed from the file's bytes when asked for (tables made by
        :func:`read_atomic`), rather than held as strings."""
        return self._buf is not None

    def line_of(self, row: int) -> int:
        return int(self._lines[row]) if self._lines is not None else row + 2

    def release(self) -> None:
        """Let go of the file's bytes once the columns needed are parsed: what stays is the
        types, the line numbers and the columns already made strings by :meth:`text`."""
        self._buf = self._ends = None
        self._prefixes.clear()

    # -- where the fields are -----------------------------------------------------------------
    def _col(self, name: str) -> int:
        try:
            return list(self.types).index(name)
        except ValueError:
            raise KeyError(name) from None

    def _spans(self, c: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Start offsets and byte lengths of column ``c``'s fields in rows ``lo:hi``."""
        assert self._ends is not None
        ncol = len(self.types)
        ends = self._ends[lo * ncol + c : hi * ncol : ncol].astype(np.int64)
        if c > 0:
            starts = self._ends[lo * ncol + c - 1 : hi * ncol : ncol].astype(np.int64) + 1
        elif lo == 0:
            prev = self._ends[ncol - 1 : hi * ncol - 1 : ncol].astype(np.int64) + 1
            starts = np.concatenate((np.zeros(1, dtype=np.int64), prev))
        else:
            starts = self._ends[lo * ncol - 1 : hi * ncol - 1 : ncol].astype(np.int64) + 1
        return starts, ends - starts

    def _spans_at(self, c: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start offsets and byte lengths of column ``c``'s fields in the given ``rows``."""
        assert self._ends is not None
        at = np.asarray(rows, dtype=np.int64) * len(self.types) + c
        ends = self._ends[at].astype(np.int64)
        if c > 0:
            starts = self._ends[at - 1].astype(np.int64) + 1
        else:
            starts = np.where(at > 0, self._ends[np.maximum(at - 1, 0)].astype(np.int64) + 1, 0)
        return starts, ends - starts

    def _slices(self) -> Iterator[tuple[int, int]]:
        for lo in range(0, self._n, _ROWS):
            yield lo, min(self._n, lo + _ROWS)

    # -- columns as Python strings ------------------------------------------------------------
    def text(self, name: str) -> list[str]:
        """The values of column ``name`` as strings (one Python string per row, kept)."""
        if name in self._text:
            return self._text[name]
        c = self._col(name)
        if self._buf is None:
            raise KeyError(name)
        out = self._strings(c)
        self._text[name] = out
        return out

    def _strings(self, c: int) -> list[str]:
        """Column ``c`` as one Python string per row (not kept)."""
        assert self._buf is not None
        out: list[str] = []
        for lo, hi in self._slices():
            s, n = self._spans(c, lo, hi)
            out += _joined(self._buf, s, n).decode("utf-8").split("\n")[:-1]
        return out

    def texts(self, name: str, rows: Sequence[int] | np.ndarray) -> list[str]:
        """The values of column ``name`` in ``rows`` only, as strings (none kept).

        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.item"
        >>> _ = f.write_text("item_id:token\\tprice:float\\ni1\\t3\\ni2\\t\\ni3\\tn/a\\n")
        >>> read_atomic(f).texts("price", [2, 1])
        ['n/a', '']
        """
        c = self._col(name)
        rows = np.asarray(rows, dtype=np.int64)
        if self._buf is None:
            col = self.text(name)
            return [col[r] for r in rows.tolist()]
        out: list[str] = []
        for lo in range(0, len(rows), _ROWS):
            s, n = self._spans_at(c, rows[lo : lo + _ROWS])
            out += _joined(self._buf, s, n).decode("utf-8").split("\n")[:-1]
        return out

    # -- numbers ------------------------------------------------------------------------------
    def floats(
        self, name: str, *, finite: bool = True, dtype: type[np.floating] = np.float64
    ) -> np.ndarray:
        """Column ``name`` as float64; a value that is not a number names its line.

        With ``finite=True`` (the default) ``nan`` and ``inf`` count as not a number. Decimal
        numbers (``-12``, ``3.5``) are parsed vectorised; anything else goes through Python's
        ``float`` and, failing that, raises :class:`~recai.errors.DataError` with the line.
        ``dtype=np.float32`` gives the float64 values rounded to float32, in half the memory
        (values beyond float32's range become infinite: the caller checks what it keeps).
        """
        c = self._col(name)
        with np.errstate(over="ignore"):
            if self._buf is None:
                col = self._floats_of_text(name, self.text(name), finite)
                return col.astype(dtype, copy=False)
            out, rows = self._decimals(c, dtype)
            if len(rows):
                out[rows] = self._floats_slow(name, c, rows, finite)
        return out

    def decimals(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(values, rows)``: column ``name`` as float64 where it is written as a plain decimal
        number (``-12``, ``3.5``; parsed vectorised, equal to Python's ``float``), and the rows
        left to the caller (``NaN`` in ``values``): empty fields, exponents, ``nan``, junk.

        Raises nothing: :meth:`floats` is the strict reading. Read the rows left with
        :meth:`texts`.

        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.item"
        >>> _ = f.write_text("item_id:token\\tprice:float\\ni1\\t3.5\\ni2\\t\\ni3\\t1e3\\n")
        >>> values, rows = read_atomic(f).decimals("price")
        >>> values.tolist(), rows.tolist()
        ([3.5, nan, nan], [1, 2])
        """
        c = self._col(name)
        if self._buf is None:
            rows = np.arange(self._n, dtype=np.int64)
            return np.full(self._n, np.nan), rows
        out, rows = self._decimals(c)
        out[rows] = np.nan
        return out, rows

    def _decimals(
        self, c: int, dtype: type[np.floating] = np.float64
    ) -> tuple[np.ndarray, np.ndarray]:
        """Column ``c`` parsed vectorised (as float64, then stored as ``dtype``), and the rows
        the parser could not read (their values are undefined)."""
        assert self._buf is not None
        out = np.empty(self._n, dtype=dtype)
        slow: list[np.ndarray] = []
        for lo, hi in self._slices():
            s, n = self._spans(c, lo, hi)
            whole, ok = _digits(self._buf, s, n)
            if ok.all():
                out[lo:hi] = whole.astype(np.float64)  # (to float32 through float64, as Python)
                continue
            values, ok = _decimals(self._buf, s, n)
            out[lo:hi] = values
            if not ok.all():
                slow.append(np.flatnonzero(~ok) + lo)
        rows = np.concatenate(slow) if slow else np.zeros(0, dtype=np.int64)
        return out, rows

    def _floats_slow(self, name: str, c: int, rows: np.ndarray, finite: bool) -> np.ndarray:
        """The rows the vectorised parser left out (exponents, ``nan``, spaces, junk), parsed
        with Python's ``float`` rules a slice at a time; the first bad value names its line."""
        assert self._buf is not None
        values = np.empty(len(rows), dtype=np.float64)
        for lo in range(0, len(rows), _ROWS):
            starts, n = self._spans_at(c, rows[lo : lo + _ROWS])
            texts = _joined(self._buf, starts, n).decode("utf-8").split("\n")[:-1]
            values[lo : lo + len(texts)] = self._parse_floats(name, texts, rows[lo:], finite)
        return values

    def _parse_floats(
        self, name: str, texts: list[str], rows: Sequence[int] | np.ndarray, finite: bool
    ) -> np.ndarray:
        """``texts`` as floats (NumPy parses strings as Python's ``float`` does); the first one
        that is not a number (or not finite: ``finite``) raises, naming the line of its row."""
        try:
            values = np.array(texts, dtype=np.float64)
        except ValueError:
            values = None
        if values is not None and (not finite or bool(np.isfinite(values).all())):
            return values
        for i, raw in enumerate(texts):
            try:
                v = float(raw)
            except ValueError:
                v = None
            if v is None or (finite and not np.isfinite(v)):
                raise DataError(
                    f"column {name!r} must hold numbers, found {raw!r}",
                    path=str(self.path),
                    line=self.line_of(int(rows[i])),
                )
        raise AssertionError(
            "unreachable: a bad value was detected but not found"
        )  # pragma: no cover

    def _floats_of_text(self, name: str, col: list[str], finite: bool) -> np.ndarray:
        return self._parse_floats(name, col, np.arange(len(col)), finite)

    # -- tokens -------------------------------------------------------------------------------
    def factorize(
        self, name: str, *, dtype: type[np.signedinteger] = np.int64
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(uniques, codes)``: the distinct tokens of column ``name`` and each row's index.

        ``uniques`` (an object array of ``str``) is sorted: tokens that are all a number after
        a shared prefix (``"7"``, ``"42"`` or ``"u7"``, ``"u42"``) by that number, others by text
        (digit-only tokens with leading zeros by value, then text). Vectorised over the bytes.
        ``codes`` are of ``dtype`` (``np.int32`` halves their memory), or ``int64`` when there
        are too many tokens for it.
        """
        c = self._col(name)
        found: tuple[np.ndarray, np.ndarray] | None
        if self._buf is None or not self._n:
            found = _factorize_strings(self.text(name))
        else:
            found = self._factorize_numbered(c, dtype)
            if found is None:
                found = self._factorize_bytes(c)
            if found is None:
                found = _factorize_strings(self._strings(c))
        uniques, codes = found
        return uniques, codes.astype(_code_type(dtype, len(uniques)), copy=False)

    def distinct(
        self, name: str, rows: Sequence[int] | np.ndarray | None = None
    ) -> tuple[list[str], np.ndarray]:
        """``(values, codes)``: the distinct values of column ``name``, each once, in the order
        they first appear, and every row's index into them: ``values[codes[r]]`` is row ``r``'s
        text. With ``rows``, of those rows only (``codes[i]`` for ``rows[i]``).

        For converting a column once per distinct value rather than once per row: fields are
        hashed vectorised over the bytes, eight at a time, and checked against one field of
        their hash; columns of wide fields (free text, mostly distinct anyway), and ``rows``,
        go through one Python string per row instead, not kept.

        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.item"
        >>> _ = f.write_text("item_id:token\\tgenre:token\\ni1\\tdrama\\ni2\\t\\ni3\\tdrama\\n")
        >>> values, codes = read_atomic(f).distinct("genre")
        >>> [values[c] for c in codes.tolist()]
        ['drama', '', 'drama']
        """
        c = self._col(name)
        if rows is not None:
            return _distinct_strings(self.texts(name, rows))
        if self._buf is None or not self._n:
            return _distinct_strings(self.text(name))
        found = self._distinct_bytes(c)
        if found is None:
            return _distinct_strings(self._strings(c))
        return found

    def _distinct_bytes(self, c: int) -> tuple[list[str], np.ndarray] | None:
        """:meth:`distinct` through the fields as rows of 64-bit words (zero-padded), hashed
        and checked word for word against the first field of their hash; ``None`` when the
        words would take too much memory (wide fields) or two different fields share a hash."""
        assert self._buf is not None
        buf = self._buf
        if len(buf) < 8:
            return None
        width = 1
        for lo, hi in self._slices():
            width = max(width, -(-int(self._spans(c, lo, hi)[1].max(initial=0)) // 8))
        if width * self._n > _HASH_WORDS:
            return None
        window = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))  # unaligned
        fields = np.zeros((self._n, width), dtype=np.uint64)
        lengths = np.empty(self._n, dtype=np.int64)
        hashes = np.empty(self._n, dtype=np.uint64)
        for lo, hi in self._slices():
            s, n = self._spans(c, lo, hi)
            lengths[lo:hi] = n
            h = n.astype(np.uint64) * _HASH_SEED
            used = -(-int(n.max(initial=0)) // 8)
            for k in range(width):  # every slice mixes as many words: one hash for one text
                if k < used:
                    word = _words(window, s, n, k)
                    fields[lo:hi, k] = word
                    h ^= word
                h *= _HASH_MIX
                h ^= h >> np.uint64(31)
            hashes[lo:hi] = h
        distinct, codes = np.unique(hashes, return_inverse=True)
        del hashes
        if len(distinct) == self._n:  # all different (different hashes): the column as it is
            return self._strings(c), np.arange(self._n, dtype=np.int64)
        codes = codes.reshape(-1).astype(np.int64, copy=False)
        first = np.full(len(distinct), self._n, dtype=np.int64)  # the first row of each hash
        np.minimum.at(first, codes, np.arange(self._n, dtype=np.int64))
        for lo, hi in self._slices():  # every field equals the first one of its hash
            rep = first[codes[lo:hi]]
            if not (
                np.array_equal(lengths[lo:hi], lengths[rep])
                and np.array_equal(fields[lo:hi], fields[rep])
            ):
                return None
        del fields, lengths
        if not (np.diff(first) > 0).all():  # the values in the order they first appear
            order = np.argsort(first)
            first = first[order]
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            codes = rank[codes]
        values: list[str] = []
        for lo in range(0, len(first), _ROWS):
            s, n = self._spans_at(c, first[lo : lo + _ROWS])
            values += _joined(buf, s, n).decode("utf-8").split("\n")[:-1]
        return values, codes

    def spaced(self, name: str) -> bool:
        """Whether some value of column ``name`` starts or ends with white space (as
        ``str.strip`` sees it); checked over the bytes, decoding only fields that may."""
        c = self._col(name)
        if self._buf is None:
            return any(t != t.strip() for t in self.text(name))
        if c in self._prefixes:  # numbered: only the prefix can start with a space
            prefix = self._prefixes[c].decode("utf-8")
            return prefix != prefix.lstrip()
        for lo, hi in self._slices():
            s, n = self._spans(c, lo, hi)
            if int(n.min(initial=1)) == 0:
                s, n = s[n > 0], n[n > 0]
            maybe = _SPACE_BYTES[self._buf[s]] | _SPACE_BYTES[self._buf[s + n - 1]]
            if maybe.any():
                texts = _joined(self._buf, s[maybe], n[maybe]).decode("utf-8").split("\n")[:-1]
                if any(t != t.strip() for t in texts):
                    return True
        return False

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
        c = self._col(name)
        numbered = self._numbered(c) if self._buf is not None and self._n else None
        if numbered is not None:
            prefix, values = numbered
            known = _numbered_strings(words, prefix)
            if known is not None:
                return _lookup(values, known, dtype)
        uniques, codes = self.factorize(name)
        index = {t: i for i, t in enumerate(words)}
        remap = np.fromiter(
            (index.get(t, -1) for t in uniques.tolist()), dtype=dtype, count=len(uniques)
        )
        return remap[codes] if len(codes) else np.zeros(0, dtype=dtype)

    def _numbered(self, c: int) -> tuple[bytes, np.ndarray] | None:
        """``(prefix, numbers)`` when every token of column ``c`` is one prefix and a number
        without leading zeros (``"u42"``, ``"42"``), else ``None``."""
        assert self._buf is not None
        spans = (self._spans(c, lo, hi) for lo, hi in self._slices())
        found = _numbered_spans(self._buf, spans, self._n)
        if found is not None:
            self._prefixes[c] = found[0]
        return found

    def _factorize_numbered(
        self, c: int, dtype: type[np.signedinteger] = np.int64
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`factorize` for numbered tokens (see :meth:`_numbered`), or ``None``."""
        numbered = self._numbered(c)
        if numbered is None:
            return None
        prefix, values = numbered
        uniq, codes = _factorize_ints(values, dtype)
        del values
        tokens = np.empty(len(uniq), dtype=object)
        tokens[:] = _numbered_texts(prefix, uniq)
        return tokens, codes

    def _factorize_bytes(self, c: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Any tokens: a zero-padded fixed-width byte row per token, read as 64-bit words.

        One word: :func:`numpy.unique` on it (big-endian words sort like the bytes). More: a
        hash of the words, checked for collisions (then :func:`numpy.unique` on the bytes).
        ``None`` when the rows would take more than ``_FIXED_BYTES`` (a few very long fields:
        strings are cheaper) or a field holds a zero byte (which the padding would hide).
        """
        assert self._buf is not None
        width = 1
        for lo, hi in self._slices():
            width = max(width, int(self._spans(c, lo, hi)[1].max(initial=0)))
        width = -(-width // 8) * 8
        if width * self._n > _FIXED_BYTES:
            return None
        fixed = np.zeros((self._n, width), dtype=np.uint8)
        for lo, hi in self._slices():
            s, n = self._spans(c, lo, hi)
            for j in range(int(n.max(initial=0))):
                live = j < n
                fixed[lo:hi, j] = np.where(live, self._buf[np.where(live, s + j, 0)], 0)
            if (np.count_nonzero(fixed[lo:hi], axis=1) != n).any():  # a zero byte in a field
                return None
        words = fixed.view(">u8").astype(np.uint64)
        if width == 8:
            uniq_keys, codes = np.unique(words[:, 0], return_inverse=True)
            raw = uniq_keys.astype(">u8").view("S8")
        else:
            found = _unique_rows(fixed, words)
            if found is None:  # a hash collision: sort the bytes themselves
                raw, codes = np.unique(fixed.view(f"S{width}").ravel(), return_inverse=True)
            else:
                raw, codes = found
        del fixed, words
        tokens = [b.decode("utf-8") for b in raw.tolist()]
        return _natural_order(tokens, codes.reshape(-1).astype(np.int64, copy=False))


def _unique_rows(fixed: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(distinct rows as bytes, sorted; each row's index)`` through a 64-bit hash of the
    ``words``; ``None`` if two different rows share a hash."""
    h = words[:, 0] * np.uint64(0x9E3779B97F4A7C15)
    for j in range(1, words.shape[1]):
        h ^= words[:, j]
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(29)
    _, first, codes = np.unique(h, return_index=True, return_inverse=True)
    codes = codes.reshape(-1)
    rep = fixed[first]
    for lo in range(0, len(fixed), _ROWS):
        if not np.array_equal(fixed[lo : lo + _ROWS], rep[codes[lo : lo + _ROWS]]):
            return None
    raw = rep.view(f"S{fixed.shape[1]}").ravel()
    order = np.argsort(raw, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return raw[order], rank[codes]


def _words(words: np.ndarray, start: np.ndarray, n: np.ndarray, k: int) -> np.ndarray:
    """Bytes ``8k .. 8k+7`` of each field ``buf[start:start+n]`` as a little-endian 64-bit
    word, zero past the field's end; ``words[i]`` is the word at byte ``i`` of ``buf``."""
    off = start + 8 * k
    last = len(words) - 1
    if int(off.max(initial=0)) <= last:
        word = words[off]
    else:  # near the end of the buffer: read the last word and shift
        at = np.minimum(off, last)
        word = words[at] >> (np.minimum(off - at, 7) * 8).astype(np.uint64)
    rest = n - 8 * k
    if int(rest.min(initial=8)) >= 8:
        return word
    return word & _LOW_BYTES[np.clip(rest, 0, 8)]


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
    uniques = np.array([tokens[i] for i in order], dtype=object)
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


def _numbered_spans(
    buf: np.ndarray, spans: Iterator[tuple[np.ndarray, np.ndarray]], total: int
) -> tuple[bytes, np.ndarray] | None:
    """``(prefix, numbers)`` when every field ``buf[s:s+n]`` (``spans`` yields ``(s, n)`` arrays
    slice by slice) is one prefix and a number without leading zeros, else ``None``."""
    values = np.empty(total, dtype=np.int64)
    p = prefix = None
    at = 0
    for s, n in spans:
        if not len(s):
            continue
        if p is None:
            first = bytes(buf[int(s[0]) : int(s[0] + n[0])])
            prefix = first.rstrip(b"0123456789")
            if prefix == first:
                return None
            p = np.frombuffer(prefix, dtype=np.uint8)
        digits = n - len(p)
        if digits.min() < 1 or digits.max() > _MAX_DIGITS:
            return None
        for j, byte in enumerate(p.tolist()):
            if (buf[s + j] != byte).any():
                return None
        if (buf[s + len(p)] == 48)[digits > 1].any():  # a leading zero: not a plain number
            return None
        v, ok = _digits(buf, s + len(p), digits)
        if not ok.all():
            return None
        values[at : at + len(s)] = v
        at += len(s)
    if prefix is None:
        return None
    return prefix, values


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
    joined = "\n".join(words)
    if not joined.isascii():
        return None
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    buf = np.frombuffer(joined.encode("ascii") + b"\n", dtype=np.uint8)
    del joined
    starts = np.cumsum(lengths + 1) - lengths - 1
    spans = ((starts[i : i + _ROWS], lengths[i : i + _ROWS]) for i in range(0, len(words), _ROWS))
    found = _numbered_spans(buf, spans, len(words))
    return None if found is None else (found[0].decode("ascii"), found[1])


def _numbered_strings(words: list[str], prefix: bytes) -> np.ndarray | None:
    """The numbers of ``words`` if each is ``prefix`` and a number without leading zeros."""
    if not words:
        return np.zeros(0, dtype=np.int64)
    found = numbered_tokens(words)
    if found is None or found[0].encode("ascii") != prefix:
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
        known = _numbered_strings(words, found[0].encode("ascii")) if words else None
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


def _code_type(dtype: type[np.signedinteger], n: int) -> type[np.signedinteger]:
    """``dtype`` if it holds the codes of ``n`` tokens, else ``int64``."""
    return dtype if n <= np.iinfo(dtype).max else np.int64


def _numbered_texts(prefix: bytes, numbers: np.ndarray) -> list[str]:
    """``prefix`` followed by each of ``numbers`` (sorted, not negative) written in decimal,
    formatted vectorised."""
    if not len(numbers):
        return []
    digits = np.ones(len(numbers), dtype=np.int64)
    for power in range(1, 19):
        digits += numbers >= 10**power
    width = digits + len(prefix) + 1  # and a line break
    ends = np.cumsum(width)
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    starts = ends - width
    for j, byte in enumerate(prefix):
        out[starts + j] = byte
    out[ends - 1] = _NL
    rest = numbers.copy()
    at = ends - 2
    for k in range(int(digits[-1])):  # the last digit first; numbers with more digits come last
        first = int(np.searchsorted(digits, k, side="right"))  # the numbers with a digit k
        out[at[first:]] = rest[first:] % 10 + 48
        rest[first:] //= 10
        at[first:] -= 1
    return out.tobytes().decode("utf-8").split("\n")[:-1]


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


def _digits(buf: np.ndarray, start: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned integers written in ``buf[start:start+n]``; ``ok`` is False where a byte is
    not a digit, there is none, or there are more than an int64 surely holds (18).

    Eight digits at a time: a field is read as a head of one to eight digits and up to two
    further words of eight, each turned into its number with a few word operations (SWAR).
    """
    ok = (n > 0) & (n <= _MAX_DIGITS)
    if not len(start):
        return np.zeros(0, dtype=np.int64), ok
    if len(buf) < 8:
        return _digits_bytewise(buf, start, n, ok)
    words = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))  # unaligned
    size = np.clip(n, 1, _MAX_DIGITS)
    parts = (size + 7) // 8
    head = size - 8 * (parts - 1)
    value, good = _eight_digits(words, start, head)
    at = start + head
    for k in range(1, int(parts.max())):
        word, fine = _eight_digits(words, at)
        more = parts > k
        if more.all():
            value *= np.uint64(100_000_000)
            value += word
            good &= fine
        else:
            value = np.where(more, value * np.uint64(100_000_000) + word, value)
            good &= fine | ~more
        at += 8
    return value.view(np.int64), ok & good


_ASCII_ZEROS = np.uint64(0x3030303030303030)
_FILL_ZEROS = np.array(  # "0" in the low 8 - k bytes: the digits of a k-digit head go above
    [0x3030303030303030 & ((1 << (8 * (8 - k))) - 1) for k in range(9)], dtype=np.uint64
)
_HIGH_NIBBLES = np.uint64(0xF0F0F0F0F0F0F0F0)


def _eight_digits(
    words: np.ndarray, start: np.ndarray, k: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The numbers written in the ``k`` (1 to 8; default 8) bytes at ``start``, and whether
    those bytes are all digits; ``words[i]`` is the little-endian word at byte ``i``."""
    last = len(words) - 1
    if int(start.max()) <= last:
        word = words[start]
    else:  # near the end of the buffer: read the last word and shift
        at = np.minimum(start, last)
        word = words[at] >> (np.minimum(start - at, 7) * 8).astype(np.uint64)
    if k is not None and int(k.min()) < 8:
        word <<= ((8 - k) * 8).astype(np.uint64)  # drop the bytes after the field
        word |= _FILL_ZEROS[k]  # and put zeros in front
    check = word + np.uint64(0x0606060606060606)  # a digit's high nibble stays 3 after + 6
    check &= _HIGH_NIBBLES
    check >>= np.uint64(4)
    check |= word & _HIGH_NIBBLES
    digits = check == np.uint64(0x3333333333333333)
    word -= _ASCII_ZEROS  # the digit values; now pairs, fours, eight of them
    np.right_shift(word, np.uint64(8), out=check)
    word *= np.uint64(10)
    word += check
    mask = np.uint64(0x000000FF000000FF)
    np.right_shift(word, np.uint64(16), out=check)
    check &= mask
    check *= np.uint64(0x0000271000000001)
    word &= mask
    word *= np.uint64(0x000F424000000064)
    word += check
    word >>= np.uint64(32)
    word &= np.uint64(0xFFFFFFFF)
    return word, digits


def _digits_bytewise(
    buf: np.ndarray, start: np.ndarray, n: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_digits` a byte at a time (for buffers shorter than a word)."""
    value = np.zeros(len(start), dtype=np.int64)
    last = len(buf) - 1
    for j in range(int(n.max(initial=0))):
        live = j < n
        d = buf[np.minimum(start + j, last)] - np.uint8(48)
        ok &= ~live | (d < 10)
        value = np.where(live, value * 10 + d, value)
    return value, ok


def _joined(buf: np.ndarray, start: np.ndarray, n: np.ndarray) -> bytes:
    """The fields ``buf[start:start+n]``, each followed by a line break, as one bytes object."""
    total = int(n.sum()) + len(n)
    ends = np.cumsum(n + 1)
    within = np.arange(total, dtype=np.int64) - np.repeat(ends - n - 1, n + 1)
    at = np.repeat(start, n + 1) + within  # each field and the delimiter after it (the last
    out = buf[np.minimum(at, len(buf) - 1)]  # line may lack its line break: any byte will do)
    out[ends - 1] = _NL
    return out.tobytes()


def _decimals(buf: np.ndarray, start: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numbers written ``[-]digits[.digits]`` in ``buf[start:start+n]``, as float64.

    ``ok`` is False where the text has another form (exponent, ``nan``, spaces, junk) or more
    digits than a float64 division rounds exactly; the caller parses those rows itself. The result
    equals Python's ``float`` (integers up to 18 digits, fractions up to 15 significant digits).
    """
    rows = len(start)
    if not rows:
        return np.zeros(0), np.ones(0, dtype=bool)
    last = len(buf) - 1
    neg = (buf[np.minimum(start, last)] == 45) & (n > 0)
    start = start + neg
    n = n - neg
    mant = np.zeros(rows, dtype=np.int64)
    ndig = np.zeros(rows, dtype=np.int64)
    frac = np.zeros(rows, dtype=np.int64)
    dots = np.zeros(rows, dtype=np.int64)
    ok = n > 0
    for j in range(int(n.max(initial=0))):
        live = j < n
        b = buf[np.minimum(start + j, last)]
        d = b - np.uint8(48)
        digit = live & (d < 10)
        dot = live & (b == 46)
        ok &= ~live | digit | dot
        mant = np.where(digit, mant * 10 + d, mant)
        ndig += digit
        frac += digit & (dots > 0)
        dots += dot
    ok &= (ndig > 0) & (dots <= 1) & (ndig <= _MAX_DIGITS) & ((frac == 0) | (ndig <= 15))
    values = mant.astype(np.float64)
    has_frac = frac > 0
    if has_frac.any():
        values = np.where(has_frac, values / 10.0 ** np.minimum(frac, 22), values)
    values[neg] *= -1.0
    return values, ok


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


def _check_text(data: bytes, skip: int, path: Path) -> None:
    """Raise a DataError if ``data[skip:]`` is not UTF-8 (naming the line) or holds nothing but
    white space."""
    raw = np.frombuffer(data, dtype=np.uint8)[skip:]
    view = memoryview(data)[skip:]
    step = 1 << 26
    if any(int(raw[i : i + step].max(initial=0)) >= 128 for i in range(0, len(raw), step)):
        decoder = codecs.getincrementaldecoder("utf-8")()
        for i in range(0, len(view), step):
            try:
                decoder.decode(view[i : i + step], final=i + step >= len(view))
            except UnicodeDecodeError:
                text = bytes(view)
                try:
                    text.decode("utf-8")
                except UnicodeDecodeError as e:
                    line = text.count(b"\n", 0, e.start) + 1
                    raise DataError(
                        "the file is not UTF-8 text", path=str(path), line=line
                    ) from None
                raise  # pragma: no cover
    head = bytes(view[: 1 << 16])
    if len(view) <= len(head):
        blank = not head.decode("utf-8").strip()  # str.strip: Unicode white space too
    else:
        blank = not head.strip() and not bytes(view).strip()
    if blank:
        raise DataError("the file is empty; expected a header line and data", path=str(path))


def _delimiters(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of every tab and line break (plus ``len(buf)`` when the last line has no line
    break), and which of them end a line."""
    dtype = np.int32 if len(buf) < np.iinfo(np.int32).max else np.int64
    counts = [  # tabs, line breaks and, rarely, another control byte (dropped below)
        int(np.count_nonzero(buf[off : off + _SCAN] <= _NL)) for off in range(0, len(buf), _SCAN)
    ]
    delims: np.ndarray = np.empty(sum(counts), dtype=dtype)  # filled in place: no second copy
    at = 0
    for off, count in zip(range(0, len(buf), _SCAN), counts, strict=True):
        delims[at : at + count] = np.flatnonzero(buf[off : off + _SCAN] <= _NL)
        delims[at : at + count] += off
        at += count
    found = buf[delims]
    if len(found) and found.min() < _TAB:
        delims = delims[found >= _TAB]
        found = buf[delims]
    is_nl = found == _NL
    if len(buf) and buf[-1] != _NL:
        delims = np.append(delims, np.array(len(buf), dtype=dtype))
        is_nl = np.append(is_nl, True)
    return delims, is_nl


def _regular(delims: np.ndarray, is_nl: np.ndarray, ncol: int) -> bool:
    """Whether every line has ``ncol`` fields and none is empty (the common case, checked fast)."""
    if len(delims) % ncol or not is_nl[ncol - 1 :: ncol].all():
        return False
    if int(np.count_nonzero(is_nl)) != len(delims) // ncol:
        return False
    if ncol == 1 and len(delims):  # an empty line is a line break right after another
        return bool(delims[0] != 0) and not (np.diff(delims) == 1).any()
    return True


def _layout(
    buf: np.ndarray, ncol: int, types: dict[str, str], path: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(buf, field ends, line numbers)`` with blank lines taken out; a line with the wrong
    number of fields raises a DataError naming it."""
    delims, is_nl = _delimiters(buf)
    if _regular(delims, is_nl, ncol):
        return buf, delims, None
    nl = np.flatnonzero(is_nl)
    fields = np.diff(nl, prepend=-1)
    line_end = delims[nl].astype(np.int64)
    line_start = np.concatenate(([0], line_end[:-1] + 1)) if len(nl) else line_end
    empty = line_end == line_start
    wrong = fields != ncol
    blank = empty.copy()
    for i in np.flatnonzero(wrong & ~empty).tolist():
        if bytes(buf[line_start[i] : line_end[i]]).strip():
            raise DataError(
                f"expected {ncol} tab-separated fields ({', '.join(types)}), "
                f"found {int(fields[i])}",
                path=str(path),
                line=i + 2,
            )
        blank[i] = True
    lines = np.flatnonzero(~blank) + 2
    if blank.any():  # take the blank lines (with their line breaks) out of the bytes
        edge = np.zeros(len(buf) + 2, dtype=np.int8)
        edge[line_start[blank]] += 1
        edge[line_end[blank] + 1] -= 1
        buf = buf[np.cumsum(edge[: len(buf)], dtype=np.int8) == 0]
        delims, is_nl = _delimiters(buf)
    return buf, delims, lines


def read_atomic(path: Path | str, required: Sequence[str] = ()) -> AtomicTable:
    """Read an atomic file; ``required`` columns must be in its header.

    Blank lines are skipped; every other line must have as many tab-separated fields as the header.
    Raises :class:`~recai.errors.DataError` naming the file (and line) for anything malformed.
    The columns are parsed later, when asked for (:meth:`AtomicTable.floats`,
    :meth:`AtomicTable.factorize`, :meth:`AtomicTable.codes`, :meth:`AtomicTable.text`).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=str(path)) from None
    except OSError as e:
        raise DataError(f"cannot read the file: {e.strerror or e}", path=str(path)) from None
    skip = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    if b"\r" in data:
        data = data[skip:].replace(b"\r\n", b"\n")
        skip = 0
    _check_text(data, skip, path)

    head_end = data.find(b"\n", skip)
    head_end = len(data) if head_end < 0 else head_end
    types = _parse_header(data[skip:head_end].decode("utf-8"), path)
    missing = [c for c in required if c not in types]
    if missing:
        have = ", ".join(f"{n}:{t}" for n, t in types.items())
        raise DataError(
            f"the header lacks the column(s) {', '.join(missing)} (it has: {have})",
            path=str(path),
            line=1,
        )
    body = np.frombuffer(data, dtype=np.uint8)[head_end + 1 :]
    buf, ends, lines = _layout(body, len(types), types, path)
    return AtomicTable._from_bytes(path, types, buf, ends, lines)
