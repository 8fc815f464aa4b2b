"""MovieLens-100K: from the atomic files in the ``recbole`` wheel, or GroupLens's own files.

``recbole==1.2.1`` ships ``recbole/dataset_example/ml-100k/`` with ``ml-100k.inter``, ``.item``,
``.user``, ``.kg`` (Freebase triples) and ``.link`` (item -> Freebase entity). The files are found
through the package's import location *without importing it* (importing recbole imports torch),
so installing the wheel with ``--no-deps`` is enough.

A folder passed as ``path`` may instead hold the original GroupLens release (``u.data``,
``u.item``, ``u.user``: tab- and pipe-separated, Latin-1); the format is detected from the file
names. ``ml-100k.kg`` and ``ml-100k.link`` next to either format add the knowledge graph.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

import recai
from recai.data import Catalog, Dataset
from recai.errors import DataError

from .assemble import UserTable, assemble, make_catalog, make_users, stripped
from .problems import BAD_VALUE, OnError, Problems
from .recbole import read_inter, read_kg, read_table
from .tabular import read_interactions
from .textio import iter_split_chunks
from .values import Unparsed, date_column, float_column, text_column

__all__ = [
    "MovieLens100K",
    "bundled_folder",
    "load_movielens_100k",
    "detect_format",
    "LICENCE",
    "CITATION",
    "GENRES",
    "title_year",
]

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
KG_SOURCE = (
    "knowledge graph: Freebase triples and item-entity links as shipped in the recbole wheel "
    "(ml-100k.kg, ml-100k.link); RecBole's knowledge-aware data builds on the KB4Rec linkage "
    "(W. X. Zhao et al. 2019. KB4Rec: A Data Set for Linking Knowledge Bases with Recommender "
    "Systems. Data Intelligence 1(2))"
)
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
"""The 19 genre flags of ``u.item``, in file order (``unknown`` is left out of ``genres``)."""

_TITLE_YEAR = re.compile(r"\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")
_UNKNOWN = {"unknown", "unkonwn", ""}  # the bundled item file spells one missing value "unkonwn"
GENRE_DESCRIPTION = "list of genres, from: " + ", ".join(GENRES[1:])


def title_year(title: str) -> int | None:
    """The year at the end of a MovieLens title: ``"Heat (1995)"`` -> 1995.

    >>> title_year("Toy Story (1995)"), title_year("Babylon 5 (1994\u20131998)"), title_year("x")
    (1995, 1994, None)
    """
    found = _TITLE_YEAR.search(title)
    return int(found.group(1)) if found else None


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
            "(or pass path = a folder holding ml-100k.inter and ml-100k.item, or u.data and u.item)"
        )
    for loc in locations:
        folder = Path(loc) / "dataset_example" / "ml-100k"
        if folder.is_dir():
            return folder
    raise DataError(
        f"the installed recbole package has no dataset_example/ml-100k folder (looked in "
        f"{', '.join(locations)}); install the version that bundles it: {INSTALL_HINT}"
    )


def detect_format(folder: Path) -> str:
    """``"grouplens"`` (``u.data`` + ``u.item``) or ``"atomic"`` (``ml-100k.inter`` + ``.item``)."""
    if (folder / "u.data").is_file() or (folder / "u.item").is_file():
        return "grouplens"
    if (folder / "ml-100k.inter").is_file() or (folder / "ml-100k.item").is_file():
        return "atomic"
    raise DataError(
        "expected the GroupLens files u.data and u.item, or the RecBole atomic files "
        "ml-100k.inter and ml-100k.item, in the folder",
        path=str(folder),
    )


def _item_descriptions(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "title": "the film's title with its release year, as MovieLens writes it",
        "year": "year of release (NaN when unknown)",
        "genres": GENRE_DESCRIPTION,
        **(extra or {}),
    }


_USER_DESCRIPTIONS = {
    "age": "age in years",
    "gender": "M or F",
    "occupation": "occupation, e.g. technician, student, educator",
    "zip_code": "US zip code (some are not numeric)",
}


# -- RecBole atomic files (the wheel) ----------------------------------------------------------
def _atomic_items(path: Path, problems: Problems) -> Catalog:
    table = read_table(path, problems, required=("item_id",))
    n = len(table)
    names = table.text("movie_title") if "movie_title" in table.types else [""] * n
    years = np.full(n, np.nan)
    if "release_year" in table.types:
        for row, token in enumerate(table.text("release_year")):
            token = token.strip()
            if len(token) == 4 and token.isdigit():  # the file also has "unkonwn" and "V"
                years[row] = int(token)
    raw_genres = table.text("class") if "class" in table.types else [""] * n
    genres = np.empty(n, dtype=object)
    genres[:] = [
        tuple(g for g in value.split(" ") if g and g not in _UNKNOWN) for value in raw_genres
    ]
    titles = []
    for row, name in enumerate(names):
        name = name.strip()
        if name in _UNKNOWN:
            name = "unknown"
        year = title_year(name)
        if year is not None:  # e.g. "Land Before Time III: ... (1995)", whose year column is "V"
            if np.isnan(years[row]):
                years[row] = year
            titles.append(name)
        elif not np.isnan(years[row]):
            titles.append(f"{name} ({int(years[row])})")
        else:
            titles.append(name)
    return make_catalog(
        stripped(table.text("item_id")),
        titles,
        {"year": years, "genres": genres},
        problems,
        path=str(path),
        lines=table.lines,
        descriptions=_item_descriptions(),
    )


def _atomic_users(path: Path, problems: Problems, unparsed: Unparsed) -> UserTable:
    table = read_table(path, problems, required=("user_id",))
    fields = {}
    if "age" in table.types:
        fields["age"] = float_column(table.text("age"), unparsed, "age")
    for col in ("gender", "occupation", "zip_code"):
        if col in table.types:
            fields[col] = text_column(table.text(col))
    return make_users(
        stripped(table.text("user_id")),
        fields,
        problems,
        path=str(path),
        lines=table.lines,
        descriptions={k: v for k, v in _USER_DESCRIPTIONS.items() if k in fields},
    )


# -- the GroupLens release -----------------------------------------------------------------------
def _grouplens_items(path: Path, problems: Problems, unparsed: Unparsed) -> Catalog:
    spath = str(path)
    ids: list[str] = []
    titles: list[str] = []
    dates: list[str] = []
    urls: list[str] = []
    genres: list[tuple[str, ...]] = []
    lines: list[int] = []
    for _, cols, chunk_lines in iter_split_chunks(
        path, problems, sep="|", n_fields=24, encoding="latin-1"
    ):
        for row, line in enumerate(chunk_lines.tolist()):
            flags = [cols[5 + g][row].strip() for g in range(19)]
            if any(f not in ("0", "1") for f in flags):
                problems.report(
                    BAD_VALUE,
                    f"the 19 genre flags must be 0 or 1, found {'|'.join(flags)}",
                    path=spath,
                    line=line,
                )
                continue
            ids.append(cols[0][row].strip())
            titles.append(cols[1][row].strip())
            dates.append(cols[2][row].strip())
            urls.append(cols[4][row].strip())
            genres.append(tuple(GENRES[g] for g in range(1, 19) if flags[g] == "1"))
            lines.append(line)
    release = date_column(dates, unparsed, "release_date", formats=("%d-%b-%Y",))
    years = np.where(
        np.isnat(release), np.nan, release.astype("datetime64[Y]").astype(float) + 1970
    )
    for row, title in enumerate(titles):
        if np.isnan(years[row]) and title_year(title) is not None:
            years[row] = title_year(title)
    genre_col = np.empty(len(genres), dtype=object)
    genre_col[:] = genres
    return make_catalog(
        ids,
        titles,
        {
            "year": years,
            "genres": genre_col,
            "release_date": release,
            "imdb_url": text_column(urls),
        },
        problems,
        path=spath,
        lines=lines,
        descriptions=_item_descriptions(
            {
                "release_date": "date of release (NaT when unknown)",
                "imdb_url": "the film's IMDb address",
            }
        ),
    )


def _grouplens_users(path: Path, problems: Problems, unparsed: Unparsed) -> UserTable:
    ids: list[str] = []
    cols5: list[list[str]] = [[], [], [], []]
    lines: list[np.ndarray] = []
    for _, cols, chunk_lines in iter_split_chunks(
        path, problems, sep="|", n_fields=5, encoding="latin-1"
    ):
        ids.extend(v.strip() for v in cols[0])
        for acc, col in zip(cols5, cols[1:], strict=True):
            acc.extend(col)
        lines.append(chunk_lines)
    fields = {
        "age": float_column(cols5[0], unparsed, "age"),
        "gender": text_column(cols5[1]),
        "occupation": text_column(cols5[2]),
        "zip_code": text_column(cols5[3]),
    }
    return make_users(
        ids,
        fields,
        problems,
        path=str(path),
        lines=np.concatenate(lines),
        descriptions=_USER_DESCRIPTIONS,
    )


def load_movielens_100k(
    folder: Path | str | None = None, *, kg: bool = True, on_error: OnError = "raise"
) -> Dataset:
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
                "not a folder (expected one holding u.data and u.item, or ml-100k.inter and "
                "ml-100k.item)",
                path=str(base),
            )
        source = f"files in {base}"
    fmt = detect_format(base)
    problems = Problems(on_error)
    unparsed = Unparsed()
    users = None
    if fmt == "atomic":
        catalog = _atomic_items(base / "ml-100k.item", problems)
        builder, _ = read_inter(
            base / "ml-100k.inter",
            problems,
            user_field="user_id",
            item_field="item_id",
            rating_field="rating",
            timestamp_field="timestamp",
        )
        files = [base / "ml-100k.inter", base / "ml-100k.item"]
        if (base / "ml-100k.user").is_file():
            users = _atomic_users(base / "ml-100k.user", problems, unparsed)
            files.append(base / "ml-100k.user")
    else:
        catalog = _grouplens_items(base / "u.item", problems, unparsed)
        builder = read_interactions(
            base / "u.data", problems, sep="\t", n_fields=4, user=0, item=1, rating=2, timestamp=3
        )
        files = [base / "u.data", base / "u.item"]
        if (base / "u.user").is_file():
            users = _grouplens_users(base / "u.user", problems, unparsed)
            files.append(base / "u.user")
    graph = None
    if kg and (base / "ml-100k.kg").is_file() and (base / "ml-100k.link").is_file():
        graph = read_kg(base / "ml-100k.kg", base / "ml-100k.link", catalog, problems)
        files += [base / "ml-100k.kg", base / "ml-100k.link"]
    info: dict[str, Any] = {
        "source": source,
        "format": "RecBole atomic files" if fmt == "atomic" else "GroupLens ml-100k release",
        "files": [str(f) for f in files],
        "licence": LICENCE,
        "citation": CITATION,
        "feedback": "explicit ratings 1-5 with Unix timestamps; every rating counts as an interaction",
    }
    if graph is not None:
        info["kg_source"] = KG_SOURCE
    return assemble(
        NAME, catalog, builder, problems, info=info, users=users, kg=graph, unparsed=unparsed
    )


class MovieLens100K(recai.DatasetSource):
    """MovieLens-100K: 943 users, 1,682 films, 100,000 ratings (GroupLens Research), with the
    users' age, gender, occupation and zip code and, from RecBole's files, a Freebase knowledge
    graph.

    Read from the ``recbole==1.2.1`` wheel's bundled atomic files, or from ``path``: a folder with
    ``ml-100k.inter``/``.item``/``.user`` (atomic) or ``u.data``/``u.item``/``u.user`` (GroupLens).
    """

    def __init__(
        self,
        path: Annotated[
            str | None,
            Field(
                description="folder holding ml-100k.inter + ml-100k.item (RecBole) or u.data + "
                "u.item (GroupLens); default: the copy in the recbole wheel"
            ),
        ] = None,
        kg: Annotated[
            bool, Field(description="load the knowledge graph when its files are there")
        ] = True,
        on_error: OnError = "raise",
    ) -> None:
        self.path = path
        self.kg = kg
        self.on_error = on_error

    def load(self) -> Dataset:
        return load_movielens_100k(self.path, kg=self.kg, on_error=self.on_error)

    def __repr__(self) -> str:
        where = f"path={self.path!r}" if self.path else "bundled"
        return f"MovieLens100K({where})"
