"""From rows read out of files to a :class:`recai.data.Dataset`: the steps every loader shares.

1. :func:`make_catalog` checks item ids are unique (a repeat names both lines);
2. :class:`InteractionsBuilder` collects ``(user, item, rating, timestamp)`` rows with the line
   each came from, chunk by chunk or row by row;
3. :func:`assemble` maps item ids to catalog indices (an unknown id names its line), orders users
   (as in the user file, else by id, numeric ids by value), and puts the skip counts into
   ``info["skipped"]``.

>>> from recai_datasets.problems import Problems
>>> p = Problems()
>>> cat = make_catalog(["a", "b", "c"], ["A", "B", "C"], {}, p, path="items.csv")
>>> b = InteractionsBuilder("ratings.csv", p, ratings=True)
>>> b.add("10", "b", 2, rating=4.0)
>>> b.add("9", "a", 3, rating=5.0)
>>> data = assemble("demo", cat, b, p, info={})
>>> data.user_ids.tolist(), data.interactions.items.tolist(), data.info["skipped"]
(['9', '10'], [1, 0], {})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recai.data import Catalog, Dataset, Interactions, KnowledgeGraph
from recai.data.interactions import (
    RATING_LIMIT,
    implausible_ratings,
    implausible_times,
    why_implausible_time,
)
from recai.errors import DataError

from .atomic import index_of, numbered_tokens
from .problems import (
    BAD_VALUE,
    DUPLICATE_ITEM,
    DUPLICATE_USER,
    IMPLAUSIBLE_RATING,
    IMPLAUSIBLE_TIME,
    MISSING,
    UNKNOWN_ITEM,
    UNKNOWN_USER,
    Problems,
)
from .values import Unparsed

__all__ = [
    "make_catalog",
    "UserTable",
    "make_users",
    "InteractionsBuilder",
    "assemble",
    "build_kg",
    "numbers",
    "factorize",
    "whole_seconds",
    "stripped",
    "catalog_from_inter",
]


def stripped(tokens: Sequence[str]) -> list[str]:
    """The tokens without surrounding spaces (a quick check first: most files have none)."""
    joined = "\x00".join(tokens)
    if " " in joined or "\t" in joined or "\xa0" in joined:
        return [t.strip() for t in tokens]
    return list(tokens)


def _dedupe(
    ids: Sequence[str],
    lines: Sequence[int] | np.ndarray | None,
    problems: Problems,
    path: str | None,
    reason: str,
    what: str,
) -> np.ndarray | None:
    """Rows to keep (first occurrence of each id), or ``None`` when ids are already unique."""
    if len(set(ids)) == len(ids):
        return None
    seen: dict[str, int] = {}
    keep = np.ones(len(ids), dtype=bool)
    for row, token in enumerate(ids):
        first = seen.setdefault(token, row)
        if first != row:
            where = f" (first on line {lines[first]})" if lines is not None else ""
            problems.report(
                reason,
                f"{what} id {token!r} appears again{where}",
                path=path,
                line=None if lines is None else int(lines[row]),
            )
            keep[row] = False
    return keep


def _take(values: Any, keep: np.ndarray) -> Any:
    arr = values if isinstance(values, np.ndarray) else _objects(values)
    return arr[keep]


def _ratings(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ratings as ``float64``, or ``float32`` when they come so."""
    values = np.asarray(values)
    return values if values.dtype == np.float32 else values.astype(np.float64, copy=False)


def _strings(values: Sequence[Any] | np.ndarray) -> list[str]:
    """``values`` as a list of ``str`` (a quick check first: they mostly are already)."""
    values = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return values if set(map(type, values)) <= {str} else [str(v) for v in values]


def _objects(values: Sequence[Any]) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1:
        return values.copy()
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def make_catalog(
    ids: Sequence[str],
    titles: Sequence[str | None],
    fields: dict[str, np.ndarray],
    problems: Problems,
    *,
    path: str | None = None,
    lines: Sequence[int] | np.ndarray | None = None,
    descriptions: dict[str, str] | None = None,
) -> Catalog:
    """A catalog in file order; a repeated id is a problem (skip mode keeps the first).

    A missing title becomes the item's id, so every title is a string.
    """
    keep = _dedupe(ids, lines, problems, path, DUPLICATE_ITEM, "item")
    id_arr = _objects(_strings(ids))
    if len(titles) != len(ids) or not all(titles):  # a missing title: the id instead
        titles = [t if t else str(i) for i, t in zip(ids, titles, strict=True)]
    title_arr = _objects(titles)
    cols = dict(fields)
    if keep is not None:
        id_arr, title_arr = id_arr[keep], title_arr[keep]
        cols = {k: _take(v, keep) for k, v in cols.items()}
    return Catalog(ids=id_arr, titles=title_arr, fields=cols, descriptions=dict(descriptions or {}))


@dataclass(eq=False)
class UserTable:
    """Users from a user file: ids in file order and their columns."""

    ids: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    path: str | None = None


def make_users(
    ids: Sequence[str],
    fields: dict[str, np.ndarray],
    problems: Problems,
    *,
    path: str | None = None,
    lines: Sequence[int] | np.ndarray | None = None,
    descriptions: dict[str, str] | None = None,
) -> UserTable:
    """A user table in file order; a repeated id is a problem (skip mode keeps the first)."""
    keep = _dedupe(ids, lines, problems, path, DUPLICATE_USER, "user")
    id_arr = _objects([str(i) for i in ids])
    cols = dict(fields)
    if keep is not None:
        id_arr = id_arr[keep]
        cols = {k: _take(v, keep) for k, v in cols.items()}
    return UserTable(id_arr, cols, dict(descriptions or {}), path)


def numbers(
    tokens: Sequence[str],
    lines: np.ndarray,
    problems: Problems,
    *,
    path: str,
    column: str,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Text fields as float64 (all at once when they parse), and the rows to keep.

    A field that is empty or not a finite number is a problem naming its line; the second value
    is ``None`` when every row is fine, else a boolean mask of the rows to keep.
    """
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        values = None
    if values is not None and bool(np.isfinite(values).all()):
        return values, None
    out = np.zeros(len(tokens))
    keep = np.ones(len(tokens), dtype=bool)
    for row, raw in enumerate(tokens):
        try:
            x = float(raw)
        except ValueError:
            x = float("nan")
        if np.isfinite(x):
            out[row] = x
            continue
        keep[row] = False
        if raw.strip():
            problems.report(
                BAD_VALUE,
                f"{column} must be a number, found {raw!r}",
                path=path,
                line=int(lines[row]),
            )
        else:
            problems.report(MISSING, f"{column} is empty", path=path, line=int(lines[row]))
    return out, keep


def whole_seconds(timestamps: np.ndarray) -> np.ndarray:
    """int64 when every timestamp is a whole number (Unix seconds), else float64 unchanged."""
    if timestamps.dtype.kind != "f" or not len(timestamps):
        return timestamps
    step = 1 << 20  # checked in slices: no temporary as long as the column
    for lo in range(0, len(timestamps), step):
        part = timestamps[lo : lo + step]
        if not (np.array_equal(part, np.round(part)) and np.abs(part).max() < 2**53):
            return timestamps
    return timestamps.astype(np.int64)


def factorize(tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(uniques, codes)``; ids of digits only sort by value ("2" before "10"), others as text.

    Numbered ids (``"u7"``, ``"42"``: see :func:`~recai_datasets.atomic.numbered_tokens`) are
    ordered vectorised, without a dictionary.

    >>> uniques, codes = factorize(["u2", "u10", "u2"])
    >>> uniques.tolist(), codes.tolist()
    (['u10', 'u2'], [1, 0, 1])
    """
    tokens = tokens if isinstance(tokens, list) else list(tokens)
    found = numbered_tokens(tokens)
    if found is not None:
        return _factorize_numbered(tokens, *found)
    uniq = list(dict.fromkeys(tokens))
    if all(t.isdigit() for t in uniq):
        uniq.sort(key=int)
    else:
        uniq.sort()
    index = {t: i for i, t in enumerate(uniq)}
    codes = np.fromiter(map(index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    return _objects(uniq), codes


def _factorize_numbered(
    tokens: list[str], prefix: str, numbers: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`factorize` for tokens that are ``prefix`` and a number without leading zeros."""
    values, first, codes = np.unique(numbers, return_index=True, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64, copy=False)
    if prefix:  # as text: the digits compare left-aligned, and a shorter one first on a tie
        digits = np.ones(len(values), dtype=np.int64)
        for power in range(1, 18):
            digits += values >= 10**power
        order = np.lexsort((digits, values * 10 ** (18 - digits)))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        codes, first = rank[codes], first[order]
    uniques = np.empty(len(first), dtype=object)
    uniques[:] = [tokens[i] for i in first.tolist()]
    return uniques, codes


class _Vocabulary:
    """Tokens in the order of their codes; the dictionary from token to code is made only when
    needed (tokens that come coded, from one file, are never looked up one by one)."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self._index: dict[str, int] | None = {}

    def _lookup(self) -> dict[str, int]:
        if self._index is None:
            self._index = {}
            for i, token in enumerate(self.tokens):
                self._index.setdefault(token, i)
        return self._index

    def code(self, tokens: Sequence[str]) -> np.ndarray:
        """The code of each token, new ones numbered as they come."""
        index = self._lookup()
        for token in dict.fromkeys(tokens):
            if token not in index:
                index[token] = len(self.tokens)
                self.tokens.append(token)
        return np.fromiter(map(index.__getitem__, tokens), dtype=np.int64, count=len(tokens))

    def recode(self, uniques: list[str], codes: np.ndarray) -> np.ndarray:
        """``codes`` into distinct ``uniques`` as codes of this vocabulary."""
        codes = np.asarray(codes)
        if codes.dtype.kind not in "iu":
            codes = codes.astype(np.int64)
        if not self.tokens:  # the first tokens keep their codes (and their integer type)
            self.tokens = list(uniques)
            self._index = None
            return codes
        lut = self.code(uniques)
        return lut[codes] if len(codes) else np.zeros(0, dtype=np.int64)


def _number_text(x: float) -> str:
    """A value as the file most likely wrote it: whole numbers as digits, others in full."""
    if np.isfinite(x) and float(x).is_integer() and abs(x) < 1e18:
        return str(int(x))
    return f"{x:.15g}"


def _where(column: str) -> str:
    """A column for messages: ``column 'stars'``, or ``field 3`` for files without a header."""
    return column if column.startswith("field ") else f"column {column!r}"


_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "text": 1.0}
"""How files write times (Unix seconds, milliseconds, dates as text), and the length of their
unit in seconds."""


class InteractionsBuilder:
    """Collects interactions read from one file: ids as text, with the line of every row.

    Use :meth:`add` per row (JSON files) or :meth:`add_rows` per chunk of columns (delimited
    files). Ids are coded as they arrive, so memory grows with the rows, not with the text.

    Every loader's ratings and timestamps pass here, so this is where their plausibility is
    checked, once for all loaders (the checks are the kernel's,
    :func:`recai.data.interactions.implausible_times`): a time outside 1970-01-01 .. 2100-01-01
    UTC, or a rating beyond ``±1e9``, is a problem naming the file, line and column (raised, or
    skipped and counted as ``"implausible time"`` / ``"implausible rating"``). ``time_column``
    and ``rating_column`` name the columns in messages; ``time_unit`` (``"s"`` or ``"ms"``) is
    how the file wrote times (``"text"``: dates; values reach the builder in seconds), so a
    message shows the value as written.
    """

    def __init__(
        self,
        path: str,
        problems: Problems,
        *,
        ratings: bool = False,
        timestamps: bool = False,
        rating_column: str = "rating",
        time_column: str = "timestamp",
        time_unit: str = "s",
    ) -> None:
        self.path = str(path)
        self.problems = problems
        self.has_ratings = ratings
        self.has_timestamps = timestamps
        self.rating_column = rating_column
        self.time_column = time_column
        if time_unit not in _TIME_UNITS:
            raise ValueError(f"time_unit must be one of {list(_TIME_UNITS)}, not {time_unit!r}")
        self.time_unit = time_unit
        self._users = _Vocabulary()
        self._items = _Vocabulary()
        self._chunks: list[tuple[np.ndarray, ...]] = []
        self._pending: tuple[list, list, list, list, list] = ([], [], [], [], [])

    def add(
        self,
        user: str,
        item: str,
        line: int,
        *,
        rating: float | None = None,
        timestamp: float | None = None,
    ) -> None:
        """One row (values already checked by the caller)."""
        users, items, lines, ratings, times = self._pending
        users.append(user)
        items.append(item)
        lines.append(line)
        ratings.append(rating)
        times.append(timestamp)
        if len(users) >= 1 << 20:
            self._flush()

    def _flush(self) -> None:
        users, items, lines, ratings, times = self._pending
        if users:
            self.add_rows(
                users,
                items,
                np.asarray(lines, dtype=np.int64),
                ratings=np.asarray(ratings, dtype=np.float64) if self.has_ratings else None,
                timestamps=np.asarray(times, dtype=np.float64) if self.has_timestamps else None,
            )
        self._pending = ([], [], [], [], [])

    def _plausible(
        self,
        lines: np.ndarray,
        ratings: np.ndarray | None,
        timestamps: np.ndarray | None,
        keep: np.ndarray | None,
    ) -> np.ndarray | None:
        """``keep`` without the rows whose time or rating is implausible (reported)."""
        for values, mask_of, reason in (
            (timestamps, implausible_times, IMPLAUSIBLE_TIME),
            (ratings, implausible_ratings, IMPLAUSIBLE_RATING),
        ):
            if values is None or not len(values):
                continue
            bad = mask_of(values)
            if keep is not None:
                bad &= keep
            rows = np.flatnonzero(bad)
            if not len(rows):
                continue
            row = int(rows[0])
            if reason == IMPLAUSIBLE_TIME:
                message = self._time_message(float(values[row]))
            else:
                message = (
                    f"rating {_number_text(float(values[row]))} in {_where(self.rating_column)} "
                    f"is not a plausible rating: ratings must lie within ±{RATING_LIMIT:g}"
                )
            more = f" ({len(rows):,} rows of this chunk)" if len(rows) > 1 else ""
            self.problems.report(
                reason, message + more, path=self.path, line=int(lines[row]), count=len(rows)
            )
            keep = ~bad if keep is None else keep & ~bad
        return keep

    def _time_message(self, seconds: float) -> str:
        unit = self.time_unit
        day = ""
        if np.isfinite(seconds) and abs(seconds) < 1e15:
            day = str(np.datetime64(int(np.floor(seconds)), "s")).replace("T00:00:00", "")
        if unit == "text":
            why = why_implausible_time(np.datetime64(int(seconds), "s")) if day else "infinite"
            shown = day or _number_text(seconds)
        else:
            written = seconds / _TIME_UNITS[unit] if np.isfinite(seconds) else seconds
            why = why_implausible_time(written, unit=unit)
            shown = _number_text(written) + (" ms" if unit == "ms" else "")
            shown += f" (= {day} UTC)" if day else ""
        return (
            f"time {shown} in {_where(self.time_column)} is not a plausible time: {why} (times "
            "must lie from 1970-01-01 up to 2100-01-01 UTC)"
        )

    def add_rows(
        self,
        users: Sequence[str],
        items: Sequence[str],
        lines: np.ndarray,
        *,
        ratings: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
        keep: np.ndarray | None = None,
    ) -> None:
        """A chunk of rows; ``keep`` (a boolean mask) leaves out rows the caller found bad."""
        keep = self._plausible(lines, ratings, timestamps, keep)
        if keep is not None and not keep.all():
            users = [u for u, k in zip(users, keep.tolist(), strict=True) if k]
            items = [i for i, k in zip(items, keep.tolist(), strict=True) if k]
            lines = lines[keep]
            ratings = None if ratings is None else ratings[keep]
            timestamps = None if timestamps is None else timestamps[keep]
        self._chunks.append(
            (
                self._users.code(users),
                self._items.code(items),
                np.asarray(lines, dtype=np.int64),
                np.asarray(ratings, dtype=np.float64) if ratings is not None else np.zeros(0),
                np.asarray(timestamps, dtype=np.float64) if timestamps is not None else np.zeros(0),
            )
        )

    def add_coded(
        self,
        users: tuple[np.ndarray, np.ndarray],
        items: tuple[np.ndarray, np.ndarray],
        lines: np.ndarray,
        *,
        ratings: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
        keep: np.ndarray | None = None,
    ) -> None:
        """A chunk of rows whose ids come factorized: ``(uniques, codes)`` for users and items,
        ``uniques`` distinct (as :meth:`recai_datasets.atomic.AtomicTable.factorize` gives them).
        ``ratings`` may come as ``float32`` (what :class:`recai.data.Interactions` keeps).
        """
        self._flush()
        u, i = (
            vocabulary.recode(_strings(uniques), codes)
            for (uniques, codes), vocabulary in ((users, self._users), (items, self._items))
        )
        lines = np.asarray(lines, dtype=np.int64)
        keep = self._plausible(lines, ratings, timestamps, keep)
        if keep is not None and not keep.all():
            u, i, lines = u[keep], i[keep], lines[keep]
            ratings = None if ratings is None else ratings[keep]
            timestamps = None if timestamps is None else timestamps[keep]
        self._chunks.append(
            (
                u,
                i,
                lines,
                _ratings(ratings) if ratings is not None else np.zeros(0),
                np.asarray(timestamps, dtype=np.float64) if timestamps is not None else np.zeros(0),
            )
        )

    def columns(
        self,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``(user codes, item codes, lines, ratings or None, timestamps or None)``; codes are
        integers (``int32`` or ``int64``), lines ``int64``."""
        self._flush()
        if len(self._chunks) == 1:  # one chunk (a whole file at once): its arrays, not copies
            users, items, lines, ratings, times = self._chunks[0]
        else:
            parts = list(zip(*self._chunks, strict=True)) if self._chunks else [[]] * 5
            cat = [np.concatenate(p) if len(p) else np.zeros(0, dtype=np.int64) for p in parts]
            users, items, lines, ratings, times = cat
        return (
            users,
            items,
            lines.astype(np.int64, copy=False),
            ratings if self.has_ratings else None,
            times if self.has_timestamps else None,
        )

    @property
    def user_tokens(self) -> list[str]:
        """User ids in order of their codes."""
        self._flush()
        return list(self._users.tokens)

    @property
    def item_tokens(self) -> list[str]:
        """Item ids in order of their codes."""
        self._flush()
        return list(self._items.tokens)


def catalog_from_inter(builder: InteractionsBuilder) -> Catalog:
    """Without an item file: the items named by the interactions, titled by their ids."""
    ids, _ = factorize(builder.item_tokens)
    return Catalog(ids=ids, titles=ids.copy())


def _catalog_index(tokens: list[str], catalog: Catalog) -> np.ndarray:
    """The catalog index of each token (``-1`` if absent); quick when the tokens begin with the
    catalog's ids (items coded against the catalog, as the RecBole loader codes them)."""
    ids = catalog.ids.tolist()
    if len(tokens) < len(ids) or tokens[: len(ids)] != ids:
        return index_of(tokens, ids)
    lut = np.arange(len(tokens), dtype=np.int64)
    lut[len(ids) :] = index_of(tokens[len(ids) :], ids)
    return lut


def _report_rows(
    problems: Problems,
    reason: str,
    rows: np.ndarray,
    lines: np.ndarray,
    message: Callable[[int, int], str],
    path: str,
) -> None:
    """Report the rows in ``rows``: strict mode raises on the first, lenient counts them all."""
    if len(rows):
        first = int(rows[0])
        text = message(first, len(rows))
        problems.report(reason, text, path=path, line=int(lines[first]), count=len(rows))


def assemble(
    name: str,
    catalog: Catalog,
    builder: InteractionsBuilder,
    problems: Problems,
    *,
    info: dict[str, Any],
    users: UserTable | None = None,
    kg: KnowledgeGraph | None = None,
    unparsed: Unparsed | None = None,
) -> Dataset:
    """The dataset: rows mapped to catalog indices, users ordered, skips and gaps reported.

    Items without interactions are kept. Users come from ``users`` (in file order, with their
    columns) when given, else from the interactions (ids sorted; numeric ids by value).
    """
    user_codes, item_codes, lines, ratings, times = builder.columns()
    path = builder.path
    item_tokens = builder.item_tokens
    lut = _catalog_index(item_tokens, catalog)
    items = lut[item_codes] if len(item_codes) else np.zeros(0, dtype=np.int64)
    keep = items >= 0
    unknown = np.flatnonzero(~keep)
    _report_rows(
        problems,
        UNKNOWN_ITEM,
        unknown,
        lines,
        lambda row, n: (
            f"item id {item_tokens[item_codes[row]]!r} is not in the item file "
            f"({n:,} line(s) name items it lacks)"
        ),
        path,
    )
    user_tokens = builder.user_tokens
    if users is not None:
        ulut = index_of(user_tokens, users.ids)
        user_idx = ulut[user_codes] if len(user_codes) else np.zeros(0, dtype=np.int64)
        missing_user = np.flatnonzero(keep & (user_idx < 0))
        _report_rows(
            problems,
            UNKNOWN_USER,
            missing_user,
            lines,
            lambda row, n: (
                f"user id {user_tokens[user_codes[row]]!r} is not in the user file "
                f"({n:,} line(s) name users it lacks)"
            ),
            path,
        )
        keep &= user_idx >= 0
        user_ids = users.ids
        user_idx = user_idx[keep]
        user_fields, user_desc = users.fields, users.descriptions
    else:
        kept = user_codes if keep.all() else user_codes[keep]
        seen = np.zeros(len(user_tokens), dtype=bool)
        seen[kept] = True
        if seen.all():
            user_ids, remap = factorize(user_tokens)
        else:
            present = np.flatnonzero(seen)
            user_ids, codes = factorize([user_tokens[c] for c in present.tolist()])
            remap = np.zeros(len(user_tokens), dtype=np.int64)
            remap[present] = codes
        del seen
        user_idx = remap[kept]
        del kept
        user_fields, user_desc = {}, {}
    if not keep.all():
        items = items[keep]
        ratings = None if ratings is None else ratings[keep]
        times = None if times is None else times[keep]
    if not len(items):
        skipped = ", ".join(f"{n:,} x {reason}" for reason, n in problems.counts.items())
        detail = f" left after skipping {skipped}" if skipped else ""
        raise DataError(f"no interactions{detail}", path=path)
    inter = Interactions(
        user_idx,
        items,
        n_users=len(user_ids),
        n_items=catalog.n_items,
        timestamps=None if times is None else whole_seconds(times),
        ratings=ratings,
    )
    problems.finish(info, name)
    if unparsed is not None:
        info["unparsed"] = unparsed.counts
    return Dataset(
        name=name,
        catalog=catalog,
        interactions=inter,
        user_ids=user_ids,
        info=info,
        kg=kg,
        user_fields=dict(user_fields),
        user_descriptions=dict(user_desc),
    )


def build_kg(
    heads: tuple[np.ndarray, np.ndarray],
    relations: tuple[np.ndarray, np.ndarray],
    tails: tuple[np.ndarray, np.ndarray],
    link_items: Sequence[str],
    link_entities: Sequence[str],
    catalog: Catalog,
    problems: Problems,
    *,
    link_lines: Sequence[int] | np.ndarray | None = None,
    link_path: str | None = None,
    entity_names: dict[str, str] | None = None,
) -> KnowledgeGraph:
    """A knowledge graph from triples and ``item id -> entity id`` links.

    ``heads``, ``relations`` and ``tails`` come factorized, ``(uniques, codes)`` (see
    :func:`factorize`). Entities and relations are indexed in sorted order of their ids. A link
    naming an item that is not in the catalog, or a second link for one item, is a problem on
    the link file.
    """
    head_ids = [str(t) for t in np.asarray(heads[0], dtype=object).tolist()]
    tail_ids = [str(t) for t in np.asarray(tails[0], dtype=object).tolist()]
    entities = sorted(set(head_ids).union(tail_ids, link_entities))
    eindex = {e: i for i, e in enumerate(entities)}
    rel_names = sorted(str(t) for t in np.asarray(relations[0], dtype=object).tolist())
    rindex = {r: i for i, r in enumerate(rel_names)}

    def _remap(uniques: list[str], codes: np.ndarray, index: dict[str, int]) -> np.ndarray:
        lut = np.fromiter(map(index.__getitem__, uniques), dtype=np.int64, count=len(uniques))
        return lut[codes] if len(codes) else np.zeros(0, dtype=np.int64)

    h = _remap(head_ids, heads[1], eindex)
    t = _remap(tail_ids, tails[1], eindex)
    r = _remap(
        [str(x) for x in np.asarray(relations[0], dtype=object).tolist()], relations[1], rindex
    )
    item_entity = np.full(catalog.n_items, -1, dtype=np.int64)
    index = {token: i for i, token in enumerate(catalog.ids.tolist())}
    for row, (item, entity) in enumerate(zip(link_items, link_entities, strict=True)):
        line = None if link_lines is None else int(link_lines[row])
        i = index.get(item)
        if i is None:
            problems.report(
                UNKNOWN_ITEM,
                f"linked item id {item!r} is not in the item file",
                path=link_path,
                line=line,
            )
            continue
        if item_entity[i] >= 0:
            problems.report(
                DUPLICATE_ITEM, f"item id {item!r} is linked twice", path=link_path, line=line
            )
            continue
        item_entity[i] = eindex[entity]
    names = None
    if entity_names:
        names = _objects([entity_names.get(e) for e in entities])
    return KnowledgeGraph(
        heads=h,
        relations=r,
        tails=t,
        entities=_objects(entities),
        relation_names=_objects(rel_names),
        item_entity=item_entity,
        entity_names=names,
    )
