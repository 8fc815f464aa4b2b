"""Any RecBole atomic dataset folder: ``<name>.inter`` plus optional ``.item``, ``.user``,
``.kg`` and ``.link``, as a recai :class:`~recai.data.Dataset`.

Atomic files are tab-separated with a typed header (``user_id:token  rating:float``). Columns
become catalog and user columns by type: ``token`` -> text (``None`` when empty), ``token_seq``
-> tuple of the space-separated tokens, ``float`` -> float (``NaN`` when empty or unreadable,
counted in ``info["unparsed"]``), ``float_seq`` -> tuple of floats.

The column mapping follows RecBole's defaults (``user_id``, ``item_id``, ``rating``,
``timestamp``; a title from the first of ``title``, ``movie_title``, ``name``, ``item_name``,
``app_name`` present); every part can be set in the params.

Strict reading goes through :func:`recai_datasets.atomic.read_atomic`; with ``on_error="skip"``
the same format is read line by line, so bad lines are counted instead of fatal. Strict reading
also converts columns once per distinct value (numbers vectorised), not once per row, so a
million items load in seconds; both readings give the same dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

import recai
from recai.data import Catalog, Dataset, KnowledgeGraph
from recai.errors import DataError

from .assemble import (
    InteractionsBuilder,
    UserTable,
    assemble,
    build_kg,
    catalog_from_inter,
    factorize,
    make_catalog,
    make_users,
    numbers,
    stripped,
)
from .atomic import COLUMN_TYPES, AtomicTable, read_atomic
from .problems import OnError, Problems
from .textio import iter_split_chunks
from .values import Unparsed, float_column, float_values, multi_column, text_column

__all__ = [
    "RecBoleAtomic",
    "load_atomic",
    "read_table",
    "atomic_column",
    "TITLE_FIELDS",
]

TITLE_FIELDS = ("title", "movie_title", "name", "item_name", "app_name")
"""Item columns tried, in order, for the title when ``title_field`` is not set."""


def _parse_header(names: Sequence[str], path: Path) -> dict[str, str]:
    types: dict[str, str] = {}
    for spec in names:
        name, sep, kind = spec.strip().rpartition(":")
        if not sep or not name or kind not in COLUMN_TYPES:
            raise DataError(
                f"header field {spec!r} is not 'name:type' with a type among "
                f"{', '.join(COLUMN_TYPES)} (is this a RecBole atomic file?)",
                path=str(path),
                line=1,
            )
        if name in types:
            raise DataError(f"column {name!r} appears twice in the header", path=str(path), line=1)
        types[name] = kind
    return types


def read_table(path: Path | str, problems: Problems, required: Sequence[str] = ()) -> AtomicTable:
    """Read an atomic file under the ``problems`` policy; ``required`` columns must exist.

    Strict: :func:`~recai_datasets.atomic.read_atomic` (vectorised, first bad line raises).
    Lenient: lines with the wrong number of fields (or not UTF-8) are counted and left out. The
    header must be well formed in either mode (line 1 of the error).
    """
    path = Path(path)
    if not problems.lenient:
        return read_atomic(path, required=required)
    header: list[str] = []
    columns: list[list[str]] = []
    lines: list[np.ndarray] = []
    for names, cols, chunk_lines in iter_split_chunks(path, problems, sep="\t", header=True):
        header = names
        if not columns:
            columns = [[] for _ in cols]
        for acc, col in zip(columns, cols, strict=True):
            acc.extend(col)
        lines.append(chunk_lines)
    types = _parse_header(header, path)
    missing = [c for c in required if c not in types]
    if missing:
        have = ", ".join(f"{n}:{t}" for n, t in types.items())
        raise DataError(
            f"the header lacks the column(s) {', '.join(missing)} (it has: {have})",
            path=str(path),
            line=1,
        )
    return AtomicTable(path, types, dict(zip(types, columns, strict=True)), np.concatenate(lines))


def atomic_column(table: AtomicTable, name: str, unparsed: Unparsed | None = None) -> np.ndarray:
    """Column ``name`` converted by its atomic type (see the module docstring).

    A table that keeps the file's bytes (:func:`~recai_datasets.atomic.read_atomic`) is
    converted once per distinct value, numbers vectorised; one of strings (the lenient reading),
    once per row. Both give the same column and the same ``unparsed`` counts.
    """
    kind = table.types[name]
    if table.keeps_bytes:
        return _column_by_value(table, name, kind, unparsed)
    raw = table.text(name)
    if kind == "token":
        return text_column(raw)
    if kind == "token_seq":
        return multi_column(raw, sep=" ")
    if kind == "float":
        return float_column(raw, unparsed, name)
    out = np.empty(len(raw), dtype=object)  # float_seq
    bad = 0
    for row, value in enumerate(raw):
        seq = _float_seq(value)
        out[row] = () if seq is None else seq
        bad += seq is None
    if unparsed is not None:
        unparsed.add(name, bad)
    return out


def _float_seq(value: str) -> tuple[float, ...] | None:
    """A ``float_seq`` field as a tuple, ``None`` if a part is not a number."""
    try:
        return tuple(float(x) for x in value.split())
    except ValueError:
        return None


def _column_by_value(
    table: AtomicTable, name: str, kind: str, unparsed: Unparsed | None
) -> np.ndarray:
    """:func:`atomic_column` converting each distinct value once (rows share the result)."""
    if kind == "float":
        values, rows = table.decimals(name)
        if len(rows):  # empty fields, nan, exponents, junk: by Python's rules, once per text
            texts, codes = table.distinct(name, rows)
            numbers, bad = float_values(texts)
            _count(unparsed, name, bad, codes)
            values[rows] = numbers[codes]
        return values
    texts, codes = table.distinct(name)
    if kind == "token":
        converted = text_column(texts)
    elif kind == "token_seq":
        converted = multi_column(texts, sep=" ")
    else:  # float_seq
        seqs = [_float_seq(t) for t in texts]
        converted = np.empty(len(seqs), dtype=object)
        converted[:] = [() if seq is None else seq for seq in seqs]
        _count(unparsed, name, np.array([seq is None for seq in seqs], dtype=bool), codes)
    return converted[codes]


def _count(unparsed: Unparsed | None, name: str, bad: np.ndarray, codes: np.ndarray) -> None:
    """Count under ``name`` the rows whose distinct value (``codes``) is ``bad``."""
    if unparsed is not None and bad.any():
        unparsed.add(name, int(np.bincount(codes, minlength=len(bad))[bad].sum()))


def _stripped_column(table: AtomicTable, name: str) -> Sequence[str]:
    """Column ``name`` as :func:`~recai_datasets.assemble.stripped` text; rows with the same
    text share one string when the table keeps the file's bytes."""
    if not table.keeps_bytes:
        return stripped(table.text(name))
    texts, codes = table.distinct(name)
    out = np.empty(len(texts), dtype=object)
    out[:] = stripped(texts) if table.spaced(name) else texts  # else nothing to strip
    return out[codes]


def _pick(
    types: dict[str, str], wanted: str | None, default: str | None, path: Path, what: str
) -> str | None:
    """The column for ``what``: ``wanted`` if set (it must exist), else ``default`` if present."""
    if wanted is not None:
        if wanted not in types:
            have = ", ".join(types)
            raise DataError(
                f"no {what} column {wanted!r} in the header (it has: {have})",
                path=str(path),
                line=1,
            )
        return wanted
    return default if default in types else None


def read_items(
    path: Path,
    problems: Problems,
    unparsed: Unparsed,
    *,
    item_field: str,
    title_field: str | None,
) -> Catalog:
    """The catalog from a ``.item`` file: every column but id and title becomes a field."""
    table = read_table(path, problems, required=(item_field,))
    title = (
        title_field
        if title_field is not None
        else next((f for f in TITLE_FIELDS if f in table.types), None)
    )
    if title is not None and title not in table.types:
        raise DataError(f"no title column {title!r} in the header", path=str(path), line=1)
    ids = stripped(table.text(item_field))
    titles = _stripped_column(table, title) if title else [None] * len(ids)
    fields = {
        n: atomic_column(table, n, unparsed) for n in table.types if n not in (item_field, title)
    }
    descriptions = {
        n: f"{n} ({kind} column of the RecBole item file)" for n, kind in table.types.items()
    }
    table.release()  # the file's bytes go before the catalog is made
    return make_catalog(
        ids,
        titles,
        fields,
        problems,
        path=str(path),
        lines=table.lines,
        descriptions={k: v for k, v in descriptions.items() if k in fields},
    )


def read_users(path: Path, problems: Problems, unparsed: Unparsed, *, user_field: str) -> UserTable:
    """Users from a ``.user`` file: every column but the id becomes a user column."""
    table = read_table(path, problems, required=(user_field,))
    ids = stripped(table.text(user_field))
    fields = {n: atomic_column(table, n, unparsed) for n in table.types if n != user_field}
    table.release()  # the file's bytes go before the users are made
    return make_users(ids, fields, problems, path=str(path), lines=table.lines)


def _factorize(table: AtomicTable, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Ids of column ``name``; stripped of spaces when any has them. Codes are ``int32`` where
    they fit (half the memory of a column of ``int64``)."""
    found = table.factorize(name, dtype=np.int32)
    if table.spaced(name):  # (known at once for numbered ids, checked after factorizing them)
        return factorize(stripped(table.text(name)))
    return found


def _coded_items(
    table: AtomicTable, name: str, catalog: Catalog | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Items of column ``name`` as ``(catalog ids + ids the catalog lacks, codes)``, coded against
    the catalog without a string per row or per item; ``None`` (factorize instead) for lenient
    reading, without an item file, or when ids have spaces around them (stripped first)."""
    if catalog is None or not table.keeps_bytes:
        return None
    small = catalog.n_items + len(table) <= np.iinfo(np.int32).max  # (ids it lacks included)
    codes = table.codes(name, catalog.ids, dtype=np.int32 if small else np.int64)
    if table.spaced(name):
        return None
    unknown = np.flatnonzero(codes < 0)
    vocabulary = catalog.ids
    if len(unknown):  # left for assemble to report, after the other files are read
        texts, extra = table.distinct(name, unknown)
        codes[unknown] = catalog.n_items + extra
        lacking = np.empty(len(texts), dtype=object)
        lacking[:] = texts
        vocabulary = np.concatenate((catalog.ids.astype(object), lacking))
    return vocabulary, codes


def read_inter(
    path: Path,
    problems: Problems,
    *,
    user_field: str,
    item_field: str,
    rating_field: str | None,
    timestamp_field: str | None,
    catalog: Catalog | None = None,
) -> tuple[InteractionsBuilder, dict[str, str | None]]:
    """Interactions from a ``.inter`` file, and the columns used for each part.

    With the ``catalog`` of the item file, strict reading codes items against it directly.
    """
    table = read_table(path, problems, required=(user_field, item_field))
    rating = _pick(table.types, rating_field, "rating", path, "rating")
    timestamp = _pick(table.types, timestamp_field, "timestamp", path, "timestamp")
    builder = InteractionsBuilder(
        str(path),
        problems,
        ratings=rating is not None,
        timestamps=timestamp is not None,
        rating_column=rating or "rating",
        time_column=timestamp or "timestamp",
    )
    users = _factorize(table, user_field)  # (no errors: the numbers below raise first anyway)
    items = _coded_items(table, item_field, catalog) or _factorize(table, item_field)
    keep = None  # rows to keep (lenient reading: those with good numbers)
    values = {}
    for part, column in (("rating", rating), ("timestamp", timestamp)):
        if column is None:
            continue
        if problems.lenient:
            values[part], ok = numbers(
                table.text(column), table.lines, problems, path=str(path), column=column
            )
            if ok is not None:
                keep = ok if keep is None else keep & ok
        elif part == "rating":
            values[part] = table.floats(column, dtype=np.float32)  # as Interactions keeps them
        else:
            values[part] = table.floats(column)
    table.release()  # the file's bytes go before the interactions are put together
    builder.add_coded(
        users,
        items,
        table.lines,
        ratings=values.get("rating"),
        timestamps=values.get("timestamp"),
        keep=keep,
    )
    used = {"user": user_field, "item": item_field, "rating": rating, "timestamp": timestamp}
    return builder, used


def read_kg(
    kg_path: Path,
    link_path: Path,
    catalog: Catalog,
    problems: Problems,
    *,
    item_field: str = "item_id",
) -> KnowledgeGraph:
    """A knowledge graph from ``.kg`` (``head_id relation_id tail_id``) and ``.link``
    (``item_id entity_id``) files."""
    kg = read_table(kg_path, problems, required=("head_id", "relation_id", "tail_id"))
    link = read_table(link_path, problems, required=(item_field, "entity_id"))
    return build_kg(
        kg.factorize("head_id"),
        kg.factorize("relation_id"),
        kg.factorize("tail_id"),
        stripped(link.text(item_field)),
        stripped(link.text("entity_id")),
        catalog,
        problems,
        link_lines=link.lines,
        link_path=str(link_path),
    )


def load_atomic(
    folder: Path | str,
    name: str | None = None,
    *,
    user_field: str = "user_id",
    item_field: str = "item_id",
    rating_field: str | None = None,
    timestamp_field: str | None = None,
    title_field: str | None = None,
    kg: bool = True,
    on_error: OnError = "raise",
) -> Dataset:
    """A RecBole atomic dataset from ``folder`` (files named ``<name>.<suffix>``; ``name``
    defaults to the folder's name). See :class:`RecBoleAtomic` for the params."""
    base = Path(folder).expanduser()
    if not base.is_dir():
        raise DataError("not a folder (expected one holding <name>.inter)", path=str(base))
    name = name or base.name
    problems = Problems(on_error)
    unparsed = Unparsed()
    inter_path = base / f"{name}.inter"
    if not inter_path.is_file():
        found = sorted(p.name for p in base.glob("*.inter"))
        hint = f"; the folder has {', '.join(found)}: set name" if found else ""
        raise DataError(f"no {name}.inter in the folder{hint}", path=str(base))
    files = [str(inter_path)]
    item_path = base / f"{name}.item"
    catalog = None
    if item_path.is_file():
        catalog = read_items(
            item_path, problems, unparsed, item_field=item_field, title_field=title_field
        )
        files.append(str(item_path))
    builder, used = read_inter(
        inter_path,
        problems,
        user_field=user_field,
        item_field=item_field,
        rating_field=rating_field,
        timestamp_field=timestamp_field,
        catalog=catalog,
    )
    if catalog is None:
        catalog = catalog_from_inter(builder)
    users = None
    user_path = base / f"{name}.user"
    if user_path.is_file():
        users = read_users(user_path, problems, unparsed, user_field=user_field)
        files.append(str(user_path))
    graph = None
    kg_path, link_path = base / f"{name}.kg", base / f"{name}.link"
    if kg and kg_path.is_file() and link_path.is_file():
        graph = read_kg(kg_path, link_path, catalog, problems, item_field=item_field)
        files += [str(kg_path), str(link_path)]
    info: dict[str, Any] = {
        "source": f"RecBole atomic files {name}.* in {base}",
        "files": files,
        "format": "RecBole atomic files (https://recbole.io/docs/user_guide/data/atomic_files.html)",
        "columns": used,
    }
    return assemble(
        name, catalog, builder, problems, info=info, users=users, kg=graph, unparsed=unparsed
    )


class RecBoleAtomic(recai.DatasetSource):
    """Any RecBole atomic dataset folder (``<name>.inter``, optional ``.item``, ``.user``,
    ``.kg`` + ``.link``).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "toy"; d.mkdir()
    >>> _ = (d / "toy.inter").write_text("user_id:token\\titem_id:token\\ttimestamp:float\\n1\\ta\\t5\\n")
    >>> RecBoleAtomic(path=str(d)).dataset().stats()["interactions"]
    1
    """

    def __init__(
        self,
        path: Annotated[str, Field(description="folder holding <name>.inter and friends")],
        name: Annotated[
            str | None, Field(description="the files' common name; default: the folder's name")
        ] = None,
        user_field: str = "user_id",
        item_field: str = "item_id",
        rating_field: Annotated[
            str | None, Field(description="default: 'rating' when the .inter file has it")
        ] = None,
        timestamp_field: Annotated[
            str | None, Field(description="default: 'timestamp' when the .inter file has it")
        ] = None,
        title_field: Annotated[
            str | None,
            Field(
                description=f"item column holding titles; default: the first of {', '.join(TITLE_FIELDS)}"
            ),
        ] = None,
        kg: Annotated[
            bool, Field(description="load <name>.kg and <name>.link when present")
        ] = True,
        on_error: OnError = "raise",
    ) -> None:
        self.path = path
        self.name = name
        self.user_field = user_field
        self.item_field = item_field
        self.rating_field = rating_field
        self.timestamp_field = timestamp_field
        self.title_field = title_field
        self.kg = kg
        self.on_error = on_error

    def load(self) -> Dataset:
        return load_atomic(
            self.path,
            self.name,
            user_field=self.user_field,
            item_field=self.item_field,
            rating_field=self.rating_field,
            timestamp_field=self.timestamp_field,
            title_field=self.title_field,
            kg=self.kg,
            on_error=self.on_error,
        )

    def __repr__(self) -> str:
        return f"RecBoleAtomic(path={self.path!r})"
