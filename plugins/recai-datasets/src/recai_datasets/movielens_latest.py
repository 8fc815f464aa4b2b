"""MovieLens "latest" (``ml-latest`` and ``ml-latest-small``) from the GroupLens CSV files.

UTF-8 CSV with a header line; titles with a comma are quoted (``"American President, The
(1995)"``)::

    ratings.csv  userId,movieId,rating,timestamp      (half-star ratings 0.5-5.0)
    movies.csv   movieId,title,genres                 (genres separated by "|")
    tags.csv     userId,movieId,tag,timestamp         (optional -> the ``tags`` column)
    links.csv    movieId,imdbId,tmdbId                (optional -> ``imdb_id``, ``tmdb_id``)

A film's ``tags`` are the distinct tags users gave it, most used first (ties: first given first).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

import recai
from recai.data import Catalog, Dataset
from recai.errors import DataError

from .assemble import assemble, make_catalog
from .movielens import CITATION, LICENCE, title_year
from .problems import MALFORMED, UNKNOWN_ITEM, OnError, Problems
from .tabular import read_interactions
from .textio import iter_csv_rows
from .values import multi_column, text_column

__all__ = ["MovieLensLatest", "load_movielens_latest", "NO_GENRES"]

NAME = "movielens-latest"
NO_GENRES = "(no genres listed)"
"""What ``movies.csv`` writes for a film without genres (read as ``()``)."""


def _csv(
    path: Path, problems: Problems, required: tuple[str, ...]
) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """Header positions of the ``required`` columns and the rows (with their lines)."""
    rows = iter_csv_rows(path, problems)
    try:
        _, header = next(rows)
    except StopIteration:
        raise DataError("the file has no header line", path=str(path)) from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"the header lacks the column(s) {', '.join(missing)} (it has: {', '.join(header)})",
            path=str(path),
            line=1,
        )
    out = []
    for line, row in rows:
        if len(row) != len(header):
            problems.report(
                MALFORMED,
                f"expected {len(header)} comma-separated fields, found {len(row)} "
                "(is a field with a comma unquoted?)",
                path=str(path),
                line=line,
            )
            continue
        out.append((line, row))
    return {c: header.index(c) for c in required}, out


def read_movies(path: Path, problems: Problems) -> Catalog:
    """``movies.csv``: the catalog (titles, years from titles, genres)."""
    pos, rows = _csv(path, problems, ("movieId", "title", "genres"))
    ids = [row[pos["movieId"]].strip() for _, row in rows]
    titles = [row[pos["title"]].strip() for _, row in rows]
    genres = [row[pos["genres"]].strip() for _, row in rows]
    genres = ["" if g == NO_GENRES else g for g in genres]
    years = np.array([title_year(t) or np.nan for t in titles], dtype=float)
    return make_catalog(
        ids,
        titles,
        {"year": years, "genres": multi_column(genres, sep="|")},
        problems,
        path=str(path),
        lines=[line for line, _ in rows],
        descriptions={
            "title": "the film's title with its release year, as MovieLens writes it",
            "year": "year of release, from the title (NaN when the title has none)",
            "genres": "list of genres (e.g. Comedy, Drama, Sci-Fi, IMAX)",
        },
    )


def read_tags(path: Path, catalog: Catalog, problems: Problems) -> np.ndarray:
    """``tags.csv`` -> per film, its distinct tags, most used first."""
    pos, rows = _csv(path, problems, ("movieId", "tag"))
    index = {token: i for i, token in enumerate(catalog.ids.tolist())}
    counts: list[Counter[str]] = [Counter() for _ in range(catalog.n_items)]
    for line, row in rows:
        movie = row[pos["movieId"]].strip()
        i = index.get(movie)
        if i is None:
            problems.report(
                UNKNOWN_ITEM, f"movie id {movie!r} is not in movies.csv", path=str(path), line=line
            )
            continue
        tag = row[pos["tag"]].strip()
        if tag:
            counts[i][tag] += 1
    out = np.empty(catalog.n_items, dtype=object)
    out[:] = [tuple(t for t, _ in c.most_common()) for c in counts]
    return out


def read_links(path: Path, catalog: Catalog, problems: Problems) -> dict[str, np.ndarray]:
    """``links.csv`` -> ``imdb_id`` and ``tmdb_id`` (text, as written: IMDb ids keep zeros)."""
    pos, rows = _csv(path, problems, ("movieId", "imdbId", "tmdbId"))
    index = {token: i for i, token in enumerate(catalog.ids.tolist())}
    imdb: list[str | None] = [None] * catalog.n_items
    tmdb: list[str | None] = [None] * catalog.n_items
    for line, row in rows:
        movie = row[pos["movieId"]].strip()
        i = index.get(movie)
        if i is None:
            problems.report(
                UNKNOWN_ITEM, f"movie id {movie!r} is not in movies.csv", path=str(path), line=line
            )
            continue
        imdb[i] = row[pos["imdbId"]]
        tmdb[i] = row[pos["tmdbId"]]
    return {"imdb_id": text_column(imdb), "tmdb_id": text_column(tmdb)}


def load_movielens_latest(
    folder: Path | str, *, tags: bool = True, links: bool = True, on_error: OnError = "raise"
) -> Dataset:
    """MovieLens latest from a folder holding ``ratings.csv`` and ``movies.csv`` (``tags.csv``
    and ``links.csv`` are read when present and asked for)."""
    base = Path(folder).expanduser()
    if not base.is_dir():
        raise DataError(
            "not a folder (expected one holding ratings.csv and movies.csv)", path=str(base)
        )
    problems = Problems(on_error)
    catalog = read_movies(base / "movies.csv", problems)
    files = [base / "ratings.csv", base / "movies.csv"]
    fields, descriptions = dict(catalog.fields), dict(catalog.descriptions)
    if tags and (base / "tags.csv").is_file():
        fields["tags"] = read_tags(base / "tags.csv", catalog, problems)
        descriptions["tags"] = "tags users gave the film, most used first"
        files.append(base / "tags.csv")
    if links and (base / "links.csv").is_file():
        fields.update(read_links(base / "links.csv", catalog, problems))
        descriptions["imdb_id"] = "IMDb id (https://www.imdb.com/title/tt<imdb_id>)"
        descriptions["tmdb_id"] = "The Movie Database id (None when unknown)"
        files.append(base / "links.csv")
    catalog = Catalog(catalog.ids, catalog.titles, fields, descriptions)
    builder = read_interactions(
        base / "ratings.csv",
        problems,
        sep=",",
        header=True,
        user="userId",
        item="movieId",
        rating="rating",
        timestamp="timestamp",
    )
    info: dict[str, Any] = {
        "source": f"GroupLens MovieLens latest release in {base}",
        "format": "GroupLens ml-latest / ml-latest-small CSV files",
        "files": [str(f) for f in files],
        "licence": LICENCE,
        "citation": CITATION,
        "feedback": "explicit ratings 0.5-5.0 in half stars with Unix timestamps; every rating "
        "counts as an interaction",
    }
    return assemble(NAME, catalog, builder, problems, info=info)


class MovieLensLatest(recai.DatasetSource):
    """MovieLens latest (``ml-latest-small`` or the full ``ml-latest``, GroupLens Research):
    half-star ratings, films with genres, user-given tags and IMDb/TMDB links.

    The data may not be redistributed: download it from https://grouplens.org/datasets/movielens/,
    unzip it and pass the folder as ``path``.
    """

    def __init__(
        self,
        path: Annotated[
            str, Field(description="the unzipped folder (ratings.csv, movies.csv, ...)")
        ],
        tags: Annotated[bool, Field(description="read tags.csv into a 'tags' column")] = True,
        links: Annotated[
            bool, Field(description="read links.csv into 'imdb_id' and 'tmdb_id'")
        ] = True,
        on_error: OnError = "raise",
    ) -> None:
        self.path = path
        self.tags = tags
        self.links = links
        self.on_error = on_error

    def load(self) -> Dataset:
        return load_movielens_latest(
            self.path, tags=self.tags, links=self.links, on_error=self.on_error
        )

    def __repr__(self) -> str:
        return f"MovieLensLatest(path={self.path!r})"
