"""MovieLens-1M from the GroupLens release: ``ratings.dat``, ``movies.dat``, ``users.dat``.

Fields are separated by ``::``, text is Latin-1 (titles such as "Misérables, Les (1995)")::

    ratings.dat  UserID::MovieID::Rating::Timestamp
    movies.dat   MovieID::Title::Genres          (genres separated by "|")
    users.dat    UserID::Gender::Age::Occupation::Zip-code

``Age`` and ``Occupation`` are codes; the release's README lists them, and they are decoded here
(``age`` keeps the code, which is the lower bound of the age group, ``age_group`` the group's
name, ``occupation`` the occupation's name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

import recai
from recai.data import Catalog, Dataset
from recai.errors import DataError

from .assemble import UserTable, assemble, make_catalog, make_users, stripped
from .movielens import CITATION, LICENCE, title_year
from .problems import BAD_VALUE, OnError, Problems
from .tabular import read_interactions
from .textio import iter_split_chunks
from .values import Unparsed, multi_column, text_column

__all__ = ["MovieLens1M", "load_movielens_1m", "OCCUPATIONS", "AGE_GROUPS", "GENRES_1M"]

NAME = "movielens-1m"
OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
"""Occupation codes 0-20 of ``users.dat`` (code 0 is "other" or not specified)."""
AGE_GROUPS = {
    1: "under 18",
    18: "18-24",
    25: "25-34",
    35: "35-44",
    45: "45-49",
    50: "50-55",
    56: "56+",
}
"""Age codes of ``users.dat`` and the groups they stand for."""
GENRES_1M = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
    "Western",
)  # fmt: skip


def _columns(path: Path, problems: Problems, n_fields: int) -> tuple[list[list[str]], np.ndarray]:
    cols: list[list[str]] = [[] for _ in range(n_fields)]
    lines = []
    for _, chunk, chunk_lines in iter_split_chunks(
        path, problems, sep="::", n_fields=n_fields, encoding="latin-1"
    ):
        for acc, col in zip(cols, chunk, strict=True):
            acc.extend(col)
        lines.append(chunk_lines)
    return cols, np.concatenate(lines)


def read_movies(path: Path, problems: Problems) -> Catalog:
    """``movies.dat``: ids, titles (with their year), years and genres."""
    (ids, titles, genres), lines = _columns(path, problems, 3)
    titles = stripped(titles)
    years = np.array([title_year(t) or np.nan for t in titles], dtype=float)
    return make_catalog(
        stripped(ids),
        titles,
        {"year": years, "genres": multi_column(genres, sep="|")},
        problems,
        path=str(path),
        lines=lines,
        descriptions={
            "title": "the film's title with its release year, as MovieLens writes it",
            "year": "year of release, from the title (NaN when the title has none)",
            "genres": "list of genres, from: " + ", ".join(GENRES_1M),
        },
    )


def read_users(path: Path, problems: Problems, unparsed: Unparsed) -> UserTable:
    """``users.dat``: gender, age (code and group), occupation (name) and zip code."""
    (ids, gender, age, occupation, zip_code), lines = _columns(path, problems, 5)
    keep = np.ones(len(ids), dtype=bool)
    ages = np.full(len(ids), np.nan)
    jobs: list[str | None] = []
    for row, (a, o) in enumerate(zip(stripped(age), stripped(occupation), strict=True)):
        if not (a.isdigit() and int(a) in AGE_GROUPS) or not (
            o.isdigit() and int(o) < len(OCCUPATIONS)
        ):
            problems.report(
                BAD_VALUE,
                f"age code must be one of {sorted(AGE_GROUPS)} and occupation code 0-20, "
                f"found {a!r} and {o!r}",
                path=str(path),
                line=int(lines[row]),
            )
            keep[row] = False
            jobs.append(None)
            continue
        ages[row] = int(a)
        jobs.append(OCCUPATIONS[int(o)])
    groups = [AGE_GROUPS.get(int(a)) if not np.isnan(a) else None for a in ages]
    fields = {
        "gender": text_column(gender),
        "age": ages,
        "age_group": text_column(groups),
        "occupation": text_column(jobs),
        "zip_code": text_column(zip_code),
    }
    ids = stripped(ids)
    if not keep.all():
        ids = [u for u, k in zip(ids, keep, strict=True) if k]
        fields = {k: v[keep] for k, v in fields.items()}
        lines = lines[keep]
    return make_users(
        ids,
        fields,
        problems,
        path=str(path),
        lines=lines,
        descriptions={
            "gender": "M or F",
            "age": "lower bound of the age group, in years (1 stands for under 18)",
            "age_group": "age group: " + ", ".join(AGE_GROUPS.values()),
            "occupation": "occupation, one of: " + ", ".join(OCCUPATIONS),
            "zip_code": "US zip code as given",
        },
    )


def load_movielens_1m(folder: Path | str, *, on_error: OnError = "raise") -> Dataset:
    """MovieLens-1M from a folder holding ``ratings.dat`` and ``movies.dat`` (``users.dat``
    optional)."""
    base = Path(folder).expanduser()
    if not base.is_dir():
        raise DataError(
            "not a folder (expected one holding ratings.dat and movies.dat)", path=str(base)
        )
    problems = Problems(on_error)
    unparsed = Unparsed()
    catalog = read_movies(base / "movies.dat", problems)
    builder = read_interactions(
        base / "ratings.dat",
        problems,
        sep="::",
        n_fields=4,
        user=0,
        item=1,
        rating=2,
        timestamp=3,
        encoding="latin-1",
    )
    files = [base / "ratings.dat", base / "movies.dat"]
    users = None
    if (base / "users.dat").is_file():
        users = read_users(base / "users.dat", problems, unparsed)
        files.append(base / "users.dat")
    info: dict[str, Any] = {
        "source": f"GroupLens ml-1m release in {base}",
        "format": "GroupLens ml-1m (::-separated, Latin-1)",
        "files": [str(f) for f in files],
        "licence": LICENCE,
        "citation": CITATION,
        "feedback": "explicit ratings 1-5 with Unix timestamps; every rating counts as an interaction",
    }
    return assemble(NAME, catalog, builder, problems, info=info, users=users, unparsed=unparsed)


class MovieLens1M(recai.DatasetSource):
    """MovieLens-1M (GroupLens Research): about a million ratings of 3,900 films by 6,040 users,
    with the users' gender, age group, occupation and zip code.

    The data may not be redistributed: download ``ml-1m.zip`` from
    https://grouplens.org/datasets/movielens/1m/, unzip it and pass the folder as ``path``.
    """

    def __init__(
        self,
        path: Annotated[
            str, Field(description="the unzipped ml-1m folder (ratings.dat, movies.dat, users.dat)")
        ],
        on_error: OnError = "raise",
    ) -> None:
        self.path = path
        self.on_error = on_error

    def load(self) -> Dataset:
        return load_movielens_1m(self.path, on_error=self.on_error)

    def __repr__(self) -> str:
        return f"MovieLens1M(path={self.path!r})"
