"""Steam reviews and game metadata from McAuley's lab (the data SASRec and RecAI use).

The files hold one **Python dict literal** per line (single quotes, ``True``/``False``), read
with :func:`ast.literal_eval` (never ``eval``), plain or gzip-compressed.

``steam_reviews.json.gz`` (Pathak, Gupta & McAuley 2017; SASRec's "Steam")::

    {'username': 'Chaos Syren', 'hours': 0.1, 'product_id': '725280', 'date': '2017-12-17',
     'text': '...', 'early_access': False, ...}

Each review is an interaction of ``username`` (the key SASRec's and RecAI's preprocessing use;
``user_id`` is missing on most lines) with ``product_id`` at ``date`` (a day: midnight UTC, so
reviews of one day keep their file order). There is no rating.

``australian_user_reviews.json.gz`` (Kang & McAuley 2018) is also read: one user per line,
``{'user_id': ..., 'reviews': [{'item_id': ..., 'posted': 'Posted November 5, 2011.', ...}]}``.
A ``posted`` date without a year (recent reviews are written "Posted June 24.") is a bad value.

``steam_games.json.gz`` (optional) gives the catalog: ``id``, ``app_name`` (the title; ``title``
when ``app_name`` is missing), ``genres``, ``tags``, ``specs``, ``price`` (a number, or text such
as "Free To Play", read as 0), ``release_date``, ``developer``, ``publisher``. A game line
without an ``id`` is a problem (``on_error = "skip"`` counts them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

import recai
from recai.data import Catalog, Dataset
from recai.errors import DataError

from .assemble import InteractionsBuilder, assemble, catalog_from_inter, make_catalog
from .problems import BAD_VALUE, MALFORMED, MISSING, OnError, Problems
from .textio import find_file, iter_json_lines
from .values import (
    Unparsed,
    as_id,
    as_text,
    date_column,
    multi_column,
    price_column,
    text_column,
    unix_seconds,
)

__all__ = ["Steam", "load_steam", "REVIEW_FILES", "GAME_FILES"]

REVIEW_FILES = (
    "steam_reviews.json.gz",
    "steam_reviews.json",
    "australian_user_reviews.json.gz",
    "australian_user_reviews.json",
)
"""Review files looked for in ``path``, in this order."""
GAME_FILES = ("steam_games.json.gz", "steam_games.json")
"""Game metadata files looked for in ``path``."""
CITATION = (
    "Apurva Pathak, Kshitij Gupta, Julian McAuley. 2017. Generating and personalizing bundle "
    "recommendations on Steam. SIGIR 2017. Wang-Cheng Kang, Julian McAuley. 2018. "
    "Self-attentive sequential recommendation. ICDM 2018."
)
_POSTED = re.compile(r"^\s*Posted\s+(.*?)\.?\s*$")


def _posted(text: Any) -> int | None:
    """``"Posted November 5, 2011."`` -> Unix seconds of that day (``None`` without a year)."""
    found = _POSTED.match(text) if isinstance(text, str) else None
    if not found:
        return None
    for fmt in ("%B %d, %Y", "%b %d, %Y"):
        day = unix_seconds(found.group(1), fmt)
        if day is not None:
            return day
    return None


def read_reviews(path: Path, problems: Problems) -> tuple[InteractionsBuilder, str]:
    """Interactions from either review file format; also says which format it was."""
    builder = InteractionsBuilder(
        str(path), problems, timestamps=True, time_column="date", time_unit="text"
    )
    fmt = ""
    spath = str(path)
    for line, obj in iter_json_lines(path, problems, literal=True):
        if "reviews" in obj and "user_id" in obj:  # australian_user_reviews: one user per line
            fmt = fmt or "australian_user_reviews"
            builder.time_column = "posted"
            user = as_id(obj.get("user_id"))
            if user is None or not isinstance(obj["reviews"], list):
                problems.report(
                    MALFORMED, "expected a user_id and a list of reviews", path=spath, line=line
                )
                continue
            for review in obj["reviews"]:
                item = as_id(review.get("item_id")) if isinstance(review, dict) else None
                day = _posted(review.get("posted")) if isinstance(review, dict) else None
                if item is None or day is None:
                    what = review.get("posted") if isinstance(review, dict) else review
                    problems.report(
                        BAD_VALUE,
                        f"a review of user {user!r} lacks an item_id or a 'Posted <Month> <day>, "
                        f"<year>.' date: {what!r}",
                        path=spath,
                        line=line,
                    )
                    continue
                builder.add(user, item, line, timestamp=day)
            continue
        fmt = fmt or "steam_reviews"
        user, item = as_id(obj.get("username")), as_id(obj.get("product_id"))
        day = unix_seconds(obj["date"]) if isinstance(obj.get("date"), str) else None
        if user is None or item is None or day is None:
            key = "username" if user is None else "product_id" if item is None else "date"
            reason = MISSING if obj.get(key) in (None, "") else BAD_VALUE
            problems.report(
                reason, f"the review has no usable {key!r}: {obj.get(key)!r}", path=spath, line=line
            )
            continue
        builder.add(user, item, line, timestamp=day)
    return builder, fmt


def read_games(path: Path, problems: Problems, unparsed: Unparsed) -> Catalog:
    """The catalog from ``steam_games``: see the module docstring for the columns."""
    ids: list[str] = []
    objs: list[dict] = []
    lines: list[int] = []
    for line, obj in iter_json_lines(path, problems, literal=True):
        token = as_id(obj.get("id"))
        if token is None:
            problems.report(MISSING, "the game has no 'id'", path=str(path), line=line)
            continue
        ids.append(token)
        objs.append(obj)
        lines.append(line)
    titles = [as_text(o.get("app_name")) or as_text(o.get("title")) for o in objs]
    fields = {
        "genres": multi_column(o.get("genres") for o in objs),
        "tags": multi_column(o.get("tags") for o in objs),
        "specs": multi_column(o.get("specs") for o in objs),
        "price": price_column([o.get("price") for o in objs], unparsed, "price"),
        "release_date": date_column(
            [o.get("release_date") for o in objs], unparsed, "release_date"
        ),
        "developer": text_column(o.get("developer") for o in objs),
        "publisher": text_column(o.get("publisher") for o in objs),
    }
    return make_catalog(
        ids,
        titles,
        fields,
        problems,
        path=str(path),
        lines=lines,
        descriptions={
            "title": "the game's name on Steam",
            "genres": "genres on the store page",
            "tags": "user-defined tags, most popular first",
            "specs": "features such as Single-player, Steam Achievements",
            "price": "price in US dollars (0 for free games; NaN when not given as a number)",
            "release_date": "date of release (NaT when unknown)",
            "developer": "the developer",
            "publisher": "the publisher",
        },
    )


def load_steam(
    folder: Path | str,
    *,
    reviews: str | None = None,
    games: str | None = None,
    on_error: OnError = "raise",
) -> Dataset:
    """Steam from ``folder`` (file names: see :data:`REVIEW_FILES`, :data:`GAME_FILES`, or
    ``reviews`` / ``games``)."""
    base = Path(folder).expanduser()
    if not base.is_dir():
        raise DataError("not a folder (expected one holding steam_reviews.json.gz)", path=str(base))
    review_path = base / reviews if reviews else find_file(base, *REVIEW_FILES)
    if review_path is None:
        raise DataError(
            f"no review file in the folder (looked for {', '.join(REVIEW_FILES)})", path=str(base)
        )
    game_path = base / games if games else find_file(base, *GAME_FILES)
    problems = Problems(on_error)
    unparsed = Unparsed()
    catalog = read_games(game_path, problems, unparsed) if game_path is not None else None
    builder, fmt = read_reviews(review_path, problems)
    if catalog is None:
        catalog = catalog_from_inter(builder)
    files = [str(review_path)] + ([str(game_path)] if game_path is not None else [])
    info: dict[str, Any] = {
        "source": f"Steam data (https://cseweb.ucsd.edu/~jmcauley/datasets.html#steam_data) in {base}",
        "format": f"{fmt or 'steam reviews'} (Python dict literals per line)",
        "files": files,
        "licence": "collected by Julian McAuley's lab (UCSD) for research; no licence is published: "
        "see https://cseweb.ucsd.edu/~jmcauley/datasets.html before sharing it",
        "citation": CITATION,
        "feedback": "each review is an interaction at the day it was written (midnight UTC); "
        "no ratings",
    }
    return assemble("steam", catalog, builder, problems, info=info, unparsed=unparsed)


class Steam(recai.DatasetSource):
    """Steam reviews (as in SASRec and RecAI) with game metadata, from McAuley's lab.

    ``path`` is a folder holding ``steam_reviews.json.gz`` (or ``australian_user_reviews``) and,
    optionally, ``steam_games.json.gz``; ``.json`` without ``.gz`` works too.
    """

    def __init__(
        self,
        path: Annotated[str, Field(description="folder holding the review (and game) files")],
        reviews: Annotated[
            str | None, Field(description="review file name in path; default: the first found")
        ] = None,
        games: Annotated[
            str | None, Field(description="game file name in path; default: steam_games.json[.gz]")
        ] = None,
        on_error: OnError = "raise",
    ) -> None:
        self.path, self.reviews, self.games, self.on_error = path, reviews, games, on_error

    def load(self) -> Dataset:
        return load_steam(self.path, reviews=self.reviews, games=self.games, on_error=self.on_error)

    def __repr__(self) -> str:
        return f"Steam(path={self.path!r})"
