"""Your own data: an interactions file (CSV or JSON lines) and an optional items file, with a
column mapping in the recipe.

The interactions file names a user and an item per row, optionally a rating and a time. The items
file has one row per item: its id, a title, and any columns you declare in ``fields`` with their
kind:

=========== ====================================================================
kind        becomes
=========== ====================================================================
``number``  float, ``NaN`` when empty or not a number (counted in ``info["unparsed"]``)
``price``   float from ``12.99``, ``"$1,299.00"``; text with "free" is 0
``category`` text (``None`` when empty), one value of a few
``text``    free text (``None`` when empty)
``multi``   tuple of text: a JSON list, or text split on ``sep`` (default ``|``)
``date``    ``datetime64[D]`` read with ``format`` (default: ISO and common forms)
=========== ====================================================================

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "events.csv").write_text("user,item,stars\\nu1,b,4\\nu2,a,5\\n")
>>> _ = (d / "items.csv").write_text('item,title,genres\\na,"Heat, the film",Crime|Drama\\nb,Up,\\n')
>>> data = CsvDataset(
...     interactions=str(d / "events.csv"), items=str(d / "items.csv"), user="user", item="item",
...     rating="stars", fields={"genres": "multi"}).dataset()
>>> data.catalog.titles.tolist(), data.catalog.fields["genres"].tolist()
(['Heat, the film', 'Up'], [('Crime', 'Drama'), ()])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import recai
from recai.data import Catalog, Dataset
from recai.errors import DataError

from .assemble import InteractionsBuilder, assemble, catalog_from_inter, make_catalog
from .problems import BAD_VALUE, MALFORMED, MISSING, OnError, Problems
from .tabular import parse_times, read_interactions, time_unit
from .textio import iter_csv_rows, iter_json_lines
from .values import (
    DATE_FORMATS,
    Unparsed,
    as_id,
    as_number,
    as_text,
    date_column,
    float_column,
    multi_column,
    price_column,
    text_column,
)

__all__ = ["CsvDataset", "JsonlDataset", "FieldSpec", "FieldKind", "load_csv", "load_jsonl"]

FieldKind = Literal["number", "price", "category", "text", "multi", "date"]


class FieldSpec(BaseModel):
    """How to read one item column: ``{kind = "multi", column = "Genres", sep = ","}``."""

    model_config = ConfigDict(extra="forbid")

    kind: FieldKind = "text"
    column: str | None = Field(
        None, description="column (or JSON key) in the items file; default: the field's name"
    )
    sep: str | None = Field(
        None, description="separator of a multi field given as text; default '|'"
    )
    format: str | None = Field(
        None, description="strptime format of a date field; default: common forms"
    )
    description: str | None = Field(None, description="what the column holds, for prompts")


FieldsParam = Annotated[
    dict[str, FieldKind | FieldSpec] | None,
    Field(
        description="item columns to keep: name -> kind, or name -> {kind, column, sep, format, description}"
    ),
]


def _specs(fields: Mapping[str, Any] | None) -> dict[str, FieldSpec]:
    out = {}
    for name, spec in (fields or {}).items():
        if name == "title":
            raise DataError("'title' is not a field: set the title param to the title column")
        if isinstance(spec, str):
            spec = FieldSpec(kind=spec)
        elif isinstance(spec, Mapping):
            spec = FieldSpec(**spec)
        out[name] = spec
    return out


def _convert(values: list[Any], name: str, spec: FieldSpec, unparsed: Unparsed) -> np.ndarray:
    kind = spec.kind
    if kind == "number":
        return float_column(values, unparsed, name)
    if kind == "price":
        return price_column(values, unparsed, name)
    if kind == "multi":
        return multi_column(values, sep=spec.sep or "|")
    if kind == "date":
        return date_column(
            values, unparsed, name, formats=(spec.format,) if spec.format else DATE_FORMATS
        )
    return text_column(values)


def _items(
    ids: list[Any],
    titles: list[Any],
    raw: dict[str, list[Any]],
    lines: list[int],
    specs: dict[str, FieldSpec],
    problems: Problems,
    unparsed: Unparsed,
    path: Path,
) -> Catalog:
    fields = {name: _convert(raw[name], name, spec, unparsed) for name, spec in specs.items()}
    return make_catalog(
        ids,
        [as_text(t) for t in titles],
        fields,
        problems,
        path=str(path),
        lines=lines,
        descriptions={n: s.description for n, s in specs.items() if s.description},
    )


def _csv_items(
    path: Path,
    problems: Problems,
    unparsed: Unparsed,
    *,
    item: str,
    title: str | None,
    specs: dict[str, FieldSpec],
    sep: str,
    quote: str | None,
    encoding: str,
) -> Catalog:
    rows = iter_csv_rows(path, problems, sep=sep, quote=quote, encoding=encoding)
    try:
        _, header = next(rows)
    except StopIteration:
        raise DataError("the file has no header line", path=str(path)) from None
    header = [h.strip() for h in header]
    title = _title_column(header, title, path)
    wanted = {
        "item": item,
        **({"title": title} if title else {}),
        **{n: s.column or n for n, s in specs.items()},
    }
    missing = sorted({c for c in wanted.values() if c not in header})
    if missing:
        raise DataError(
            f"the header lacks the column(s) {', '.join(map(repr, missing))} "
            f"(it has: {', '.join(map(repr, header))}); check the column mapping",
            path=str(path),
            line=1,
        )
    pos = {key: header.index(col) for key, col in wanted.items()}
    ids, titles, lines = [], [], []
    raw: dict[str, list[Any]] = {n: [] for n in specs}
    for line, row in rows:
        if len(row) != len(header):
            problems.report(
                MALFORMED,
                f"expected {len(header)} fields, found {len(row)}",
                path=str(path),
                line=line,
            )
            continue
        token = row[pos["item"]].strip()
        if not token:
            problems.report(MISSING, "the item id is empty", path=str(path), line=line)
            continue
        ids.append(token)
        titles.append(row[pos["title"]] if title else None)
        lines.append(line)
        for n in specs:
            raw[n].append(row[pos[n]])
    return _items(ids, titles, raw, lines, specs, problems, unparsed, path)


def _title_column(columns: list[str], title: str | None, path: Path) -> str | None:
    if title is None:
        return "title" if "title" in columns else None
    if title not in columns:
        raise DataError(
            f"no title column {title!r} (it has: {', '.join(map(repr, columns))})",
            path=str(path),
            line=1,
        )
    return title


def _info(
    kind: str, interactions: Path, items: Path | None, used: dict[str, Any]
) -> dict[str, Any]:
    return {
        "source": f"{kind} files given in the recipe",
        "files": [str(interactions)] + ([str(items)] if items else []),
        "columns": used,
        "feedback": "each row of the interactions file is an interaction",
    }


def load_csv(
    interactions: Path | str,
    items: Path | str | None = None,
    *,
    user: str = "user_id",
    item: str = "item_id",
    rating: str | None = None,
    timestamp: str | None = None,
    time_format: str = "unix",
    item_id: str | None = None,
    title: str | None = None,
    fields: Mapping[str, Any] | None = None,
    delimiter: str = ",",
    quote: str | None = '"',
    encoding: str = "utf-8",
    columns: list[str] | None = None,
    name: str = "csv",
    on_error: OnError = "raise",
) -> Dataset:
    """Interactions (and items) from delimited text files: see :class:`CsvDataset`."""
    problems = Problems(on_error)
    unparsed = Unparsed()
    specs = _specs(fields)
    inter_path = Path(interactions).expanduser()
    items_path = Path(items).expanduser() if items else None
    catalog = None
    if items_path is not None:
        catalog = _csv_items(
            items_path,
            problems,
            unparsed,
            item=item_id or item,
            title=title,
            specs=specs,
            sep=delimiter,
            quote=quote,
            encoding=encoding,
        )
    elif specs:
        raise DataError("item fields need an items file: set the items param")
    if columns is not None:
        index = {c: i for i, c in enumerate(columns)}
        for what, col in (
            ("user", user),
            ("item", item),
            ("rating", rating),
            ("timestamp", timestamp),
        ):
            if col is not None and col not in index:
                raise DataError(f"the {what} column {col!r} is not among columns {columns}")
        pick: dict[str, Any] = {
            "user": index[user],
            "item": index[item],
            "rating": None if rating is None else index[rating],
            "timestamp": None if timestamp is None else index[timestamp],
        }
    else:
        pick = {"user": user, "item": item, "rating": rating, "timestamp": timestamp}
    builder = read_interactions(
        inter_path,
        problems,
        sep=delimiter,
        header=columns is None,
        n_fields=None if columns is None else len(columns),
        encoding=encoding,
        quote=quote,
        time_format=time_format,
        **pick,
    )
    if catalog is None:
        catalog = catalog_from_inter(builder)
    used = {
        "user": user,
        "item": item,
        "rating": rating,
        "timestamp": timestamp,
        "time_format": time_format,
    }
    info = _info("CSV", inter_path, items_path, used)
    return assemble(name, catalog, builder, problems, info=info, unparsed=unparsed)


def _jsonl_items(
    path: Path,
    problems: Problems,
    unparsed: Unparsed,
    *,
    item: str,
    title: str | None,
    specs: dict[str, FieldSpec],
) -> Catalog:
    ids, titles, lines = [], [], []
    raw: dict[str, list[Any]] = {n: [] for n in specs}
    title_key = title or "title"
    for line, obj in iter_json_lines(path, problems):
        token = as_id(obj.get(item))
        if token is None:
            problems.report(MISSING, f"the item has no id {item!r}", path=str(path), line=line)
            continue
        ids.append(token)
        titles.append(obj.get(title_key))
        lines.append(line)
        for n, s in specs.items():
            raw[n].append(obj.get(s.column or n))
    if title is not None and not any(t is not None for t in titles):
        raise DataError(f"no item has the title key {title!r}", path=str(path))
    return _items(ids, titles, raw, lines, specs, problems, unparsed, path)


def _json_times(
    values: list[Any], lines: list[int], problems: Problems, path: str, fmt: str
) -> tuple[np.ndarray, np.ndarray]:
    """Times from JSON values: numbers for ``unix``/``unix_ms``, text otherwise."""
    if fmt in ("unix", "unix_ms"):
        out = np.zeros(len(values))
        keep = np.ones(len(values), dtype=bool)
        for row, v in enumerate(values):
            x = as_number(v)
            if x is None:
                keep[row] = False
                reason = MISSING if v in (None, "") else BAD_VALUE
                problems.report(
                    reason, f"timestamp must be a number, found {v!r}", path=path, line=lines[row]
                )
            else:
                out[row] = x / 1000.0 if fmt == "unix_ms" else x
        return out, keep
    text = ["" if v is None else str(v) for v in values]
    times, kept = parse_times(
        text, np.asarray(lines), problems, path=path, column="timestamp", fmt=fmt
    )
    return times, np.ones(len(values), dtype=bool) if kept is None else kept


def load_jsonl(
    interactions: Path | str,
    items: Path | str | None = None,
    *,
    user: str = "user_id",
    item: str = "item_id",
    rating: str | None = None,
    timestamp: str | None = None,
    time_format: str = "unix",
    item_id: str | None = None,
    title: str | None = None,
    fields: Mapping[str, Any] | None = None,
    encoding: str = "utf-8",
    name: str = "jsonl",
    on_error: OnError = "raise",
) -> Dataset:
    """Interactions (and items) from JSON-lines files: see :class:`JsonlDataset`."""
    problems = Problems(on_error)
    unparsed = Unparsed()
    specs = _specs(fields)
    inter_path = Path(interactions).expanduser()
    items_path = Path(items).expanduser() if items else None
    catalog = None
    if items_path is not None:
        catalog = _jsonl_items(
            items_path, problems, unparsed, item=item_id or item, title=title, specs=specs
        )
    elif specs:
        raise DataError("item fields need an items file: set the items param")
    spath = str(inter_path)
    users, item_tokens, ratings, times, lines = [], [], [], [], []
    for line, obj in iter_json_lines(inter_path, problems, encoding=encoding):
        u, i = as_id(obj.get(user)), as_id(obj.get(item))
        if u is None or i is None:
            key = user if u is None else item
            problems.report(
                MISSING,
                f"the row has no {key!r} id (found {obj.get(key)!r})",
                path=spath,
                line=line,
            )
            continue
        r = None
        if rating is not None:
            r = as_number(obj.get(rating))
            if r is None:
                v = obj.get(rating)
                reason = MISSING if v in (None, "") else BAD_VALUE
                problems.report(
                    reason, f"rating must be a number, found {v!r}", path=spath, line=line
                )
                continue
        users.append(u)
        item_tokens.append(i)
        ratings.append(r)
        times.append(obj.get(timestamp) if timestamp is not None else None)
        lines.append(line)
    keep = np.ones(len(lines), dtype=bool)
    time_values = None
    if timestamp is not None:
        time_values, keep = _json_times(times, lines, problems, spath, time_format)
    builder = InteractionsBuilder(
        spath,
        problems,
        ratings=rating is not None,
        timestamps=timestamp is not None,
        rating_column=rating or "rating",
        time_column=timestamp or "timestamp",
        time_unit=time_unit(time_format),
    )
    builder.add_rows(
        users,
        item_tokens,
        np.asarray(lines, dtype=np.int64),
        ratings=np.asarray(ratings, dtype=np.float64) if rating is not None else None,
        timestamps=time_values,
        keep=keep,
    )
    if catalog is None:
        catalog = catalog_from_inter(builder)
    used = {
        "user": user,
        "item": item,
        "rating": rating,
        "timestamp": timestamp,
        "time_format": time_format,
    }
    info = _info("JSON-lines", inter_path, items_path, used)
    return assemble(name, catalog, builder, problems, info=info, unparsed=unparsed)


_INTERACTIONS = Field(description="the interactions file (plain or .gz)")
_ITEMS = Field(
    description="the items file (one row per item); default: none, items are the ids seen"
)
_USER = Field(description="user id column")
_ITEM = Field(description="item id column")
_RATING = Field(description="rating column (numbers); default: none")
_TIME = Field(description="time column; default: none")
_TIME_FORMAT = Field(
    description="unix (seconds), unix_ms, iso, or a strptime format such as %d/%m/%Y %H:%M"
)
_ITEM_ID = Field(description="item id column of the items file; default: same as item")
_TITLE = Field(
    description="title column of the items file; default: 'title' when present, else the ids"
)


class CsvDataset(recai.DatasetSource):
    """Interactions (and items) from CSV or other delimited text, with a column mapping.

    ``delimiter`` may be any string (``","``, ``"\\t"``, ``"::"``); ``quote`` follows the CSV
    rules (set it to ``None`` for files without quoting). Without a header line, give the
    interactions file's ``columns``; the items file always has a header.
    """

    def __init__(
        self,
        interactions: Annotated[str, _INTERACTIONS],
        items: Annotated[str | None, _ITEMS] = None,
        user: Annotated[str, _USER] = "user_id",
        item: Annotated[str, _ITEM] = "item_id",
        rating: Annotated[str | None, _RATING] = None,
        timestamp: Annotated[str | None, _TIME] = None,
        time_format: Annotated[str, _TIME_FORMAT] = "unix",
        item_id: Annotated[str | None, _ITEM_ID] = None,
        title: Annotated[str | None, _TITLE] = None,
        fields: FieldsParam = None,
        delimiter: Annotated[str, Field(min_length=1, description="field separator")] = ",",
        quote: Annotated[str | None, Field(description="quote character; None: no quoting")] = '"',
        encoding: Annotated[str, Field(description="text encoding, e.g. utf-8, latin-1")] = "utf-8",
        columns: Annotated[
            list[str] | None,
            Field(
                max_length=10_000,
                description="column names of an interactions file without header",
            ),
        ] = None,
        name: Annotated[str, Field(description="the dataset's name")] = "csv",
        on_error: OnError = "raise",
    ) -> None:
        self.options: dict[str, Any] = {
            "user": user,
            "item": item,
            "rating": rating,
            "timestamp": timestamp,
            "time_format": time_format,
            "item_id": item_id,
            "title": title,
            "fields": fields,
            "delimiter": delimiter,
            "quote": quote,
            "encoding": encoding,
            "columns": columns,
            "name": name,
            "on_error": on_error,
        }
        self.interactions, self.items = interactions, items

    def load(self) -> Dataset:
        return load_csv(self.interactions, self.items, **self.options)

    def __repr__(self) -> str:
        return f"CsvDataset(interactions={self.interactions!r})"


class JsonlDataset(recai.DatasetSource):
    """Interactions (and items) from JSON-lines files (one object per line), with a key mapping.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "events.jsonl"
    >>> _ = f.write_text('{"u": 1, "i": "x", "t": "2024-01-02"}\\n')
    >>> JsonlDataset(interactions=str(f), user="u", item="i", timestamp="t",
    ...              time_format="iso").dataset().interactions.timestamps.tolist()
    [1704153600]
    """

    def __init__(
        self,
        interactions: Annotated[str, _INTERACTIONS],
        items: Annotated[str | None, _ITEMS] = None,
        user: Annotated[str, _USER] = "user_id",
        item: Annotated[str, _ITEM] = "item_id",
        rating: Annotated[str | None, _RATING] = None,
        timestamp: Annotated[str | None, _TIME] = None,
        time_format: Annotated[str, _TIME_FORMAT] = "unix",
        item_id: Annotated[str | None, _ITEM_ID] = None,
        title: Annotated[str | None, _TITLE] = None,
        fields: FieldsParam = None,
        encoding: Annotated[str, Field(description="text encoding, e.g. utf-8")] = "utf-8",
        name: Annotated[str, Field(description="the dataset's name")] = "jsonl",
        on_error: OnError = "raise",
    ) -> None:
        self.options: dict[str, Any] = {
            "user": user,
            "item": item,
            "rating": rating,
            "timestamp": timestamp,
            "time_format": time_format,
            "item_id": item_id,
            "title": title,
            "fields": fields,
            "encoding": encoding,
            "name": name,
            "on_error": on_error,
        }
        self.interactions, self.items = interactions, items

    def load(self) -> Dataset:
        return load_jsonl(self.interactions, self.items, **self.options)

    def __repr__(self) -> str:
        return f"JsonlDataset(interactions={self.interactions!r})"
