"""Microsoft RecAI's own data format (RecLM-emb, and the Steam copy its README links to).

Two files in one folder:

``metadata.json``
    One JSON object per line; **line n describes item id n** (ids count from 1; RecAI reserves
    id 0 for padding). Recognised keys, with the aliases RecAI's preprocessing accepts:
    ``title`` (``TitleName``, ``app_name``; required), ``tags`` (``GPT_tags`` as one
    comma-separated string, ``popular_tags``, ``genres``), ``game_details`` (``specs``; a list
    or a comma-separated string), ``publisher`` (``PublisherCurated``), ``developer``
    (``DeveloperCurated``), ``PrimaryGenre``, ``SubGenre``, ``price`` (``SuggestPrice``),
    ``release_date`` (``ReleaseDateCurated``; ``2018-01-04`` or ``January 4, 2018``) and
    ``description`` (``ProductDescription``, ``desc_snippet``, ``game_description``).
``sequential_data.txt``
    One user per line: ``user_id item_id item_id ...``, space-separated, items in the order the
    user met them (RecAI holds the last one out for testing). There are no timestamps, so the
    dataset's interactions have none and histories keep the file order.

A blank line in ``metadata.json`` would shift every later id, so it is a problem, not skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

import recai
from recai.data import Catalog, Dataset
from recai.errors import DataError

from .assemble import InteractionsBuilder, assemble, make_catalog
from .problems import BAD_VALUE, MALFORMED, MISSING, UNKNOWN_ITEM, OnError, Problems
from .textio import iter_lines, read_text
from .values import Unparsed, as_text, date_column, multi_column, price_column, text_column

__all__ = ["RecAIFormat", "load_recai_format", "ALIASES"]

ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("TitleName", "app_name", "title"),
    "tags": ("GPT_tags", "tags", "popular_tags", "genres"),
    "game_details": ("specs", "game_details"),
    "publisher": ("PublisherCurated", "publisher"),
    "developer": ("DeveloperCurated", "developer"),
    "primary_genre": ("PrimaryGenre",),
    "sub_genre": ("SubGenre",),
    "price": ("SuggestPrice", "price"),
    "release_date": ("ReleaseDateCurated", "release_date"),
    "description": ("ProductDescription", "desc_snippet", "game_description", "description"),
}
"""Each catalog column and the metadata keys it is read from, first present wins (RecAI's order)."""

_DESCRIPTIONS = {
    "tags": "tags or genres of the item",
    "game_details": "features of the game (e.g. Single-player, Steam Achievements)",
    "publisher": "the publisher",
    "developer": "the developer",
    "primary_genre": "the primary genre",
    "sub_genre": "the sub-genre",
    "price": "price (NaN when not given as a number)",
    "release_date": "date of release (NaT when unknown)",
    "description": "a description of the item",
}
_SPLIT = {"GPT_tags": ",", "game_details": ","}  # keys whose value is one comma-separated string


def _first(obj: dict, keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        value = obj.get(key)
        if value not in (None, "", []):
            return key, value
    return None, None


def _multi(key: str | None, value: Any) -> Any:
    if key in _SPLIT and isinstance(value, str):
        return value.split(_SPLIT[key])
    return value


def read_metadata(path: Path, problems: Problems, unparsed: Unparsed) -> Catalog:
    """``metadata.json`` -> catalog with ids ``"1"``..``"n"`` (line n is item n)."""
    text = read_text(path, problems)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    values: dict[str, list[Any]] = {col: [] for col in ALIASES}
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        obj: Any = None
        if line.strip():
            try:
                obj = json.loads(line)
            except ValueError as e:
                problems.report(MALFORMED, f"not a JSON object: {e}", path=str(path), line=number)
        else:
            problems.report(
                MALFORMED,
                "blank line (line n describes item n: ids would shift)",
                path=str(path),
                line=number,
            )
        if obj is not None and not isinstance(obj, dict):
            problems.report(
                MALFORMED,
                f"expected a JSON object, found {type(obj).__name__}",
                path=str(path),
                line=number,
            )
        obj = obj if isinstance(obj, dict) else {}
        if obj and _first(obj, ALIASES["title"])[1] is None:
            problems.report(
                MISSING,
                f"the item has no title (keys: {', '.join(ALIASES['title'])})",
                path=str(path),
                line=number,
            )
        for col, keys in ALIASES.items():
            key, value = _first(obj, keys)
            if key is not None:
                seen.add(col)
            values[col].append(_multi(key, value) if col in ("tags", "game_details") else value)
    n = len(lines)
    builders = {
        "tags": lambda v: multi_column(v),
        "game_details": lambda v: multi_column(v),
        "price": lambda v: price_column(v, unparsed, "price"),
        "release_date": lambda v: date_column(
            v, unparsed, "release_date", formats=("%Y-%m-%d", "%B %d, %Y", "%b %d, %Y")
        ),
    }
    fields = {
        col: builders.get(col, text_column)(values[col])
        for col in ALIASES
        if col != "title" and col in seen
    }
    ids = [str(i) for i in range(1, n + 1)]
    titles = [as_text(t) for t in values["title"]]
    return make_catalog(
        ids,
        titles,
        fields,
        problems,
        path=str(path),
        lines=list(range(1, n + 1)),
        descriptions={k: v for k, v in _DESCRIPTIONS.items() if k in fields},
    )


def read_sequences(path: Path, n_items: int, problems: Problems) -> InteractionsBuilder:
    """``sequential_data.txt`` -> interactions in file order (no timestamps)."""
    builder = InteractionsBuilder(str(path), problems)
    spath = str(path)
    for number, line in iter_lines(path, problems):
        tokens = line.split()
        if len(tokens) < 2:
            problems.report(
                MALFORMED, "expected a user id and at least one item id", path=spath, line=number
            )
            continue
        user, items = tokens[0], tokens[1:]
        bad = [t for t in items if not t.isdigit()]
        if bad:
            problems.report(
                BAD_VALUE,
                f"item ids must be whole numbers, found {bad[0]!r}",
                path=spath,
                line=number,
            )
            continue
        outside = [t for t in items if not 1 <= int(t) <= n_items]
        if outside:
            pad = " (0 is RecAI's padding id)" if outside[0] == "0" else ""
            problems.report(
                UNKNOWN_ITEM,
                f"item id {outside[0]} is not in metadata.json (ids 1..{n_items}){pad}",
                path=spath,
                line=number,
                count=len(outside),
            )
            items = [t for t in items if 1 <= int(t) <= n_items]
        for item in items:
            builder.add(user, str(int(item)), number)
    return builder


def load_recai_format(folder: Path | str, *, on_error: OnError = "raise") -> Dataset:
    """A dataset in RecAI's format from ``folder`` (``metadata.json``, ``sequential_data.txt``)."""
    base = Path(folder).expanduser()
    if not base.is_dir():
        raise DataError(
            "not a folder (expected one holding metadata.json and sequential_data.txt)",
            path=str(base),
        )
    problems = Problems(on_error)
    unparsed = Unparsed()
    catalog = read_metadata(base / "metadata.json", problems, unparsed)
    builder = read_sequences(base / "sequential_data.txt", catalog.n_items, problems)
    info: dict[str, Any] = {
        "source": f"RecAI-format files in {base}",
        "format": "Microsoft RecAI (RecLM-emb): metadata.json + sequential_data.txt "
        "(https://github.com/microsoft/RecAI/tree/main/RecLM-emb)",
        "files": [str(base / "sequential_data.txt"), str(base / "metadata.json")],
        "feedback": "each item in a user's sequence is an interaction; no timestamps, "
        "histories keep the file's order",
        "item_ids": "catalog ids '1'..'n' are RecAI's 1-based item ids (id 0 is padding)",
    }
    return assemble(
        base.name or "recai-format", catalog, builder, problems, info=info, unparsed=unparsed
    )


class RecAIFormat(recai.DatasetSource):
    """A dataset in Microsoft RecAI's format: ``metadata.json`` (line n = item n) and
    ``sequential_data.txt`` (``user item item ...`` per line, in order).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "metadata.json").write_text('{"title": "Portal"}\\n{"app_name": "Doom"}\\n')
    >>> _ = (d / "sequential_data.txt").write_text("1 2 1\\n")
    >>> data = RecAIFormat(path=str(d)).dataset()
    >>> [data.catalog.title(i) for i in data.interactions.history(0)]
    ['Doom', 'Portal']
    """

    def __init__(
        self,
        path: Annotated[
            str, Field(description="folder holding metadata.json and sequential_data.txt")
        ],
        on_error: OnError = "raise",
    ) -> None:
        self.path, self.on_error = path, on_error

    def load(self) -> Dataset:
        return load_recai_format(self.path, on_error=self.on_error)

    def __repr__(self) -> str:
        return f"RecAIFormat(path={self.path!r})"
