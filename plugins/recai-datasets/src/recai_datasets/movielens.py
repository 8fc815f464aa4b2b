"""MovieLens-100K from the atomic files bundled in the ``recbole`` wheel (or a folder of them).

``recbole==1.2.1`` ships ``recbole/dataset_example/ml-100k/ml-100k.inter`` and ``ml-100k.item``.
The files are found through the package's import location *without importing it* (importing
recbole would import torch), so installing the wheel with ``--no-deps`` is enough.
"""

from __future__ import annotations

import importlib.util
import re
from itertools import repeat
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

import recai
from recai.data import Catalog, Dataset, Interactions
from recai.errors import DataError

from .atomic import AtomicTable, read_atomic

__all__ = ["MovieLens100K", "bundled_folder", "load_movielens_100k", "LICENCE", "CITATION"]

NAME = "movielens-100k"
INSTALL_HINT = "pip install --no-deps recbole==1.2.1"
LICENCE = (
    "MovieLens data from GroupLens Research (University of Minnesota); "
    "it may not be redistributed without permission "
    "(see https://grouplens.org/datasets/movielens/)."
)
CITATION = (
    'F. Maxwell Harper and Joseph A. Konstan. 2015. "The MovieLens Datasets: History and Context". '
    "ACM Transactions on Interactive Intelligent Systems (TiiS) 5(4): 19:1-19:19. "
    "https://doi.org/10.1145/2827872"
)

_INTER = "ml-100k.inter"
_ITEM = "ml-100k.item"
_TITLE_YEAR = re.compile(r"\((\d{4})\)$")
_UNKNOWN = {"unknown", "unkonwn", ""}  # the bundled file spells one missing value "unkonwn"


def bundled_folder() -> Path:
    """The ``ml-100k`` folder inside the installed ``recbole`` package (not imported)."""
    try:
        spec = importlib.util.find_spec("recbole")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DataError(
            "MovieLens-100K is read from the recbole wheel, which is not installed: "
            f"{INSTALL_HINT} "
            "(or pass path = a folder holding ml-100k.inter and ml-100k.item)"
        )
    for loc in locations:
        folder = Path(loc) / "dataset_example" / "ml-100k"
        if folder.is_dir():
            return folder
    raise DataError(
        f"the installed recbole package has no dataset_example/ml-100k folder (looked in "
        f"{', '.join(locations)}); install the version that bundles it: {INSTALL_HINT}"
    )


def _codes(tokens: list[str], index: dict[str, int]) -> np.ndarray:
    """``index[token]`` for every token, -1 where a token is not in ``index``."""
    return np.fromiter(map(index.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))


def _factorize(tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(uniques, codes)``; numeric tokens sort by value ("2" before "10"), others as text."""
    uniq = list(dict.fromkeys(tokens))
    if all(t.isdigit() for t in uniq):
        uniq.sort(key=int)
    else:
        uniq.sort()
    codes = _codes(tokens, {t: i for i, t in enumerate(uniq)})
    return np.asarray(uniq, dtype=object), codes


def _read_items(path: Path) -> Catalog:
    table = read_atomic(path, required=("item_id",))
    ids = table.text("item_id")
    seen: dict[str, int] = {}
    for row, token in enumerate(ids):
        if token in seen:
            raise DataError(
                f"item id {token!r} appears again (first on line {table.line_of(seen[token])})",
                path=str(path),
                line=table.line_of(row),
            )
        seen[token] = row
    n = len(ids)
    names = table.text("movie_title") if "movie_title" in table.types else [""] * n
    years = _years(table) if "release_year" in table.types else np.full(n, np.nan)
    genres = np.empty(n, dtype=object)
    raw_genres = table.text("class") if "class" in table.types else [""] * n
    for i, g in enumerate(raw_genres):
        genres[i] = tuple(x for x in g.split(" ") if x and x not in _UNKNOWN)
    titles = np.empty(n, dtype=object)
    for i, name in enumerate(names):
        name = name.strip()
        if name in _UNKNOWN:
            name = "unknown"
        found = _TITLE_YEAR.search(name)
        if found is not None:  # e.g. "Land Before Time III: ... (1995)", whose year column is "V"
            if not np.isfinite(years[i]):
                years[i] = int(found.group(1))
            titles[i] = name
        elif np.isfinite(years[i]):
            titles[i] = f"{name} ({int(years[i])})"
        else:
            titles[i] = name
    return Catalog(
        ids=np.asarray(ids, dtype=object),
        titles=titles,
        fields={"year": years, "genres": genres},
        descriptions={
            "title": "the film's title with its release year, as MovieLens writes it",
            "year": "year of release (NaN when unknown)",
            "genres": "list of genres, from: Action, Adventure, Animation, Children's, Comedy, "
            "Crime, Documentary, Drama, Fantasy, Film-Noir, Horror, Musical, Mystery, Romance, "
            "Sci-Fi, Thriller, War, Western",
        },
    )


def _years(table: AtomicTable) -> np.ndarray:
    """``release_year`` as floats, NaN where it is not a year (the file has "unkonwn" and "V")."""
    out = np.full(len(table), np.nan)
    for row, token in enumerate(table.text("release_year")):
        token = token.strip()
        if len(token) == 4 and token.isdigit():
            out[row] = int(token)
    return out


def _read_interactions(path: Path, catalog: Catalog) -> tuple[Interactions, np.ndarray]:
    table = read_atomic(path, required=("user_id", "item_id", "rating", "timestamp"))
    if not len(table):
        raise DataError("the file has a header but no interactions", path=str(path))
    ratings = table.floats("rating")
    timestamps = table.floats("timestamp")
    if np.array_equal(timestamps, np.round(timestamps)):
        timestamps = timestamps.astype(np.int64)
    tokens = table.text("item_id")
    items = _codes(tokens, {token: i for i, token in enumerate(catalog.ids.tolist())})
    unknown = np.flatnonzero(items < 0)
    if len(unknown):
        row = int(unknown[0])
        raise DataError(
            f"item id {tokens[row]!r} is not in the item file ({len(unknown)} line(s) name "
            "unknown items)",
            path=str(path),
            line=table.line_of(row),
        )
    user_ids, users = _factorize(table.text("user_id"))
    inter = Interactions(
        users,
        items,
        n_users=len(user_ids),
        n_items=catalog.n_items,
        timestamps=timestamps,
        ratings=ratings,
    )
    return inter, user_ids


def load_movielens_100k(folder: Path | str | None = None) -> Dataset:
    """MovieLens-100K from ``folder`` (default: the files bundled in the recbole wheel)."""
    if folder is None:
        base, source = (
            bundled_folder(),
            "recbole 1.2.1 wheel, dataset_example/ml-100k (atomic files)",
        )
    else:
        base = Path(folder).expanduser()
        if not base.is_dir():
            raise DataError(
                "not a folder (expected one holding ml-100k.inter and ml-100k.item)", path=str(base)
            )
        source = f"atomic files in {base}"
    catalog = _read_items(base / _ITEM)
    inter, user_ids = _read_interactions(base / _INTER, catalog)
    return Dataset(
        name=NAME,
        catalog=catalog,
        interactions=inter,
        user_ids=user_ids,
        info={
            "source": source,
            "files": [str(base / _INTER), str(base / _ITEM)],
            "licence": LICENCE,
            "citation": CITATION,
            "feedback": "explicit ratings 1-5 with Unix timestamps; "
            "every rating counts as an interaction",
        },
    )


class MovieLens100K(recai.DatasetSource):
    """MovieLens-100K: 943 users, 1,682 films, 100,000 ratings (GroupLens Research).

    Read from the ``recbole==1.2.1`` wheel's bundled atomic files, or from ``path``, a folder
    holding ``ml-100k.inter`` and ``ml-100k.item`` in the same format.
    """

    def __init__(
        self,
        path: Annotated[
            str | None,
            Field(
                description="folder holding ml-100k.inter and ml-100k.item; "
                "default: the copy in the recbole wheel"
            ),
        ] = None,
    ) -> None:
        self.path = path

    def load(self) -> Dataset:
        return load_movielens_100k(self.path)

    def __repr__(self) -> str:
        where = f"path={self.path!r}" if self.path else "bundled"
        return f"MovieLens100K({where})"
