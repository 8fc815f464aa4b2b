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
from pathlib import Path

import numpy as np

from recai.errors import DataError

__all__ = ["AtomicTable", "read_atomic", "COLUMN_TYPES"]

COLUMN_TYPES = ("token", "token_seq", "float", "float_seq")
"""The column types of the atomic-file format."""

_TAB, _NL = 9, 10
_SCAN = 1 << 24  # bytes per slice when looking for delimiters
_ROWS = 1 << 16  # rows per slice when parsing a column (keeps temporaries in cache)
_MAX_DIGITS = 18  # an int64 holds any 18-digit number


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

    def line_of(self, row: int) -> int:
        return int(self._lines[row]) if self._lines is not None else row + 2

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
        out: list[str] = []
        for lo, hi in self._slices():
            s, n = self._spans(c, lo, hi)
            out += _joined(self._buf, s, n).decode("utf-8").split("\n")[:-1]
        self._text[name] = out
        return out

    # -- numbers ------------------------------------------------------------------------------
    def floats(self, name: str, *, finite: bool = True) -> np.ndarray:
        """Column ``name`` as float64; a value that is not a number names its line.

        With ``finite=True`` (the default) ``nan`` and ``inf`` count as not a number. Decimal
        numbers (``-12``, ``3.5``) are parsed vectorised; anything else goes through Python's
        ``float`` and, failing that, raises :class:`~recai.errors.DataError` with the line.
        """
        c = self._col(name)
        if self._buf is None:
            return self._floats_of_text(name, self.text(name), finite)
        out = np.empty(self._n, dtype=np.float64)
        slow: list[np.ndarray] = []
        for lo, hi in self._slices():
            s, n = self._spans(c, lo, hi)
            whole, ok = _digits(self._buf, s, n)
            if ok.all():
                out[lo:hi] = whole
                continue
            values, ok = _decimals(self._buf, s, n)
            out[lo:hi] = values
            if not ok.all():
                slow.append(np.flatnonzero(~ok) + lo)
        if slow:
            rows = np.concatenate(slow)
            out[rows] = self._floats_slow(name, c, rows, finite)
        return out

    def _floats_slow(self, name: str, c: int, rows: np.ndarray, finite: bool) -> np.ndarray:
        """The rows the vectorised parser left out (exponents, ``nan``, spaces, junk), parsed
        with Python's ``float`` rules a slice at a time; the first bad value names its line."""
        assert self._buf is not None and self._ends is not None
        ncol = len(self.types)
        values = np.empty(len(rows), dtype=np.float64)
        for lo in range(0, len(rows), _ROWS):
            at = rows[lo : lo + _ROWS].astype(np.int64) * ncol + c
            ends = self._ends[at].astype(np.int64)
            if c > 0:
                starts = self._ends[at - 1].astype(np.int64) + 1
            else:
                starts = np.where(at > 0, self._ends[np.maximum(at - 1, 0)].astype(np.int64) + 1, 0)
            texts = _joined(self._buf, starts, ends - starts).decode("utf-8").split("\n")[:-1]
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
    def factorize(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(uniques, codes)``: the distinct tokens of column ``name`` and each row's index.

        ``uniques`` (an object array of ``str``) is sorted: tokens that are all a number after
        a shared prefix (``"7"``, ``"42"`` or ``"u7"``, ``"u42"``) by that number, others by text
        (digit-only tokens with leading zeros by value, then text). Vectorised over the bytes.
        """
        c = self._col(name)
        if self._buf is None or not self._n:
            return _factorize_strings(self.text(name))
        found = self._factorize_numbered(c)
        if found is None:
            found = self._factorize_bytes(c)
        return found

    def codes(self, name: str, vocabulary: Sequence[str] | np.ndarray) -> np.ndarray:
        """The index in ``vocabulary`` of each row's token in column ``name``, ``-1`` if absent.

        For example the catalog index of every interaction's item:
        ``table.codes("item_id", catalog.ids)``. A token listed twice in ``vocabulary`` gets the
        later index.
        """
        words = list(map(str, np.asarray(vocabulary, dtype=object).tolist()))
        c = self._col(name)
        numbered = self._numbered(c) if self._buf is not None and self._n else None
        if numbered is not None:
            prefix, values = numbered
            known = _numbered_strings(words, prefix)
            if known is not None:
                return _lookup(values, known)
        uniques, codes = self.factorize(name)
        index = {t: i for i, t in enumerate(words)}
        remap = np.fromiter(
            (index.get(t, -1) for t in uniques.tolist()), dtype=np.int64, count=len(uniques)
        )
        return remap[codes] if len(codes) else np.zeros(0, dtype=np.int64)

    def _numbered(self, c: int) -> tuple[bytes, np.ndarray] | None:
        """``(prefix, numbers)`` when every token of column ``c`` is one prefix and a number
        without leading zeros (``"u42"``, ``"42"``), else ``None``."""
        assert self._buf is not None
        spans = (self._spans(c, lo, hi) for lo, hi in self._slices())
        return _numbered_spans(self._buf, spans, self._n)

    def _factorize_numbered(self, c: int) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`factorize` for numbered tokens (see :meth:`_numbered`), or ``None``."""
        numbered = self._numbered(c)
        if numbered is None:
            return None
        prefix, values = numbered
        uniq, codes = _factorize_ints(values)
        tokens = np.empty(len(uniq), dtype=object)
        tokens[:] = list(map(prefix.decode("utf-8").__add__, map(str, uniq.tolist())))
        return tokens, codes

    def _factorize_bytes(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Any tokens: a zero-padded fixed-width byte row per token, read as 64-bit words.

        One word: :func:`numpy.unique` on it (big-endian words sort like the bytes). More: a
        hash of the words, checked for collisions (then :func:`numpy.unique` on the bytes).
        """
        assert self._buf is not None
        width = 1
        for lo, hi in self._slices():
            width = max(width, int(self._spans(c, lo, hi)[1].max(initial=0)))
        width = -(-width // 8) * 8
        if width * self._n > 1 << 30:  # a few very long fields: strings are cheaper
            return _factorize_strings(self.text(list(self.types)[c]))
        fixed = np.zeros((self._n, width), dtype=np.uint8)
        for lo, hi in self._slices():
            s, n = self._spans(c, lo, hi)
            for j in range(int(n.max(initial=0))):
                live = j < n
                fixed[lo:hi, j] = np.where(live, self._buf[np.where(live, s + j, 0)], 0)
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


def _numbered_strings(words: list[str], prefix: bytes) -> np.ndarray | None:
    """The numbers of ``words`` if each is ``prefix`` and a number without leading zeros."""
    if not words:
        return np.zeros(0, dtype=np.int64)
    joined = "\n".join(words)
    if not joined.isascii():
        return None
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    buf = np.frombuffer(joined.encode("ascii") + b"\n", dtype=np.uint8)
    starts = np.cumsum(lengths + 1) - lengths - 1
    spans = ((starts[i : i + _ROWS], lengths[i : i + _ROWS]) for i in range(0, len(words), _ROWS))
    found = _numbered_spans(buf, spans, len(words))
    if found is None or found[0] != prefix:
        return None
    return found[1]


def _lookup(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """For each of ``values``, its position in ``known`` (the last one if repeated), else -1."""
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    if not len(known):
        return np.full(len(values), -1, dtype=np.int64)
    lo, hi = int(known.min()), int(known.max())
    if hi - lo <= max(1 << 20, 4 * len(known)):  # a table from value to position
        table = np.full(hi - lo + 2, -1, dtype=np.int64)  # the last slot: out of range
        if (np.diff(known) > 0).all():  # distinct (and sorted): a plain assignment
            table[known - lo] = np.arange(len(known))
        else:  # a repeated value maps to its last position
            np.maximum.at(table, known - lo, np.arange(len(known)))
        inside = (values >= lo) & (values <= hi)
        return table[np.where(inside, values - lo, hi - lo + 1)]
    order = np.argsort(known, kind="stable")
    ranked = known[order]
    at = np.searchsorted(ranked, values, side="right") - 1
    ok = (at >= 0) & (ranked[np.maximum(at, 0)] == values)
    return np.where(ok, order[np.maximum(at, 0)], -1)


def _factorize_ints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``, by a lookup table when the range is small."""
    if not len(values):
        return values, np.zeros(0, dtype=np.int64)
    lo, hi = int(values.min()), int(values.max())
    if hi - lo <= max(1 << 20, len(values)):  # a table of the values present
        present = np.zeros(hi - lo + 1, dtype=bool)
        present[values - lo] = True
        uniq = np.flatnonzero(present) + lo
        index = np.cumsum(present, dtype=np.int64) - 1
        return uniq, index[values - lo]
    uniq, codes = np.unique(values, return_inverse=True)
    return uniq, codes.reshape(-1)


def _digits(buf: np.ndarray, start: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned integers written in ``buf[start:start+n]``; ``ok`` is False where a byte is
    not a digit (or there is none)."""
    value = np.zeros(len(start), dtype=np.int64)
    ok = n > 0
    last = len(buf) - 1
    short = int(n.min(initial=0))
    for j in range(int(n.max(initial=0))):
        if j < short:  # every field has this byte
            d = buf[start + j] - np.uint8(48)
            ok &= d < 10
            value *= 10
            value += d
            continue
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
    parts = []
    for off in range(0, len(buf), _SCAN):
        pos = np.flatnonzero(buf[off : off + _SCAN] <= _NL).astype(dtype)  # tabs, breaks, rarely
        pos += off  # another control byte (dropped below)
        parts.append(pos)
    delims = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    del parts
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
