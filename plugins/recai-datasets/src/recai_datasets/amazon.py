"""Amazon reviews from McAuley's lab: the 2018 release and the 2023 release (JSON lines, plain
or gzip-compressed).

2018 (https://nijianmo.github.io/amazon/)::

    reviews  {"reviewerID": "A2SUAM1J3GNN3B", "asin": "0000013714", "overall": 5.0,
              "unixReviewTime": 1252800000, ...}
    meta     {"asin": "0000013714", "title": "...", "brand": "...", "price": "$12.99",
              "category": ["Books", ...], "description": ["...", ...], "main_cat": "...", ...}

2023 (https://amazon-reviews-2023.github.io/)::

    reviews  {"user_id": "AGKH...", "parent_asin": "B00YQ6X8EO", "rating": 5.0,
              "timestamp": 1588687728923, ...}                  (milliseconds)
    meta     {"parent_asin": "B00YQ6X8EO", "title": "...", "main_category": "All Beauty",
              "categories": [...], "price": 12.99 or null, "store": "...", "details": {...}, ...}

Each review is an interaction (user, item, star rating, time in Unix seconds). The metadata
file is optional: without it the catalog holds the reviewed items, titled by their ids. With it,
a review of an item the metadata lacks is a problem (``on_error = "skip"`` counts and drops such
reviews: the 2023 release has reviews of items without metadata). Items without a title are
titled by their id and counted in ``info["items_without_title"]``; text fields are HTML-unescaped
(``&amp;`` -> ``&``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

import recai
from recai.data import Catalog, Dataset

from .assemble import InteractionsBuilder, assemble, catalog_from_inter, make_catalog
from .problems import BAD_VALUE, MISSING, OnError, Problems
from .textio import iter_json_lines
from .values import (
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

__all__ = ["Amazon2018", "Amazon2023", "load_amazon_2018", "load_amazon_2023", "read_reviews"]

CITATION_2018 = (
    "Jianmo Ni, Jiacheng Li, Julian McAuley. 2019. Justifying recommendations using "
    "distantly-labeled reviews and fine-grained aspects. EMNLP-IJCNLP 2019."
)
CITATION_2023 = (
    "Yupeng Hou, Jiacheng Li, Zhankui He, An Yan, Xiusi Chen, Julian McAuley. 2024. Bridging "
    "Language and Items for Retrieval and Recommendation. arXiv:2403.03952."
)
TERMS = (
    "Amazon review data collected by Julian McAuley's lab (UCSD) for research; the authors "
    "publish no licence: see {url} before sharing it"
)
_ALT = re.compile(r'alt="([^"]*)"')


def read_reviews(
    path: Path,
    problems: Problems,
    *,
    user: str,
    item: str,
    rating: str,
    timestamp: str,
    time_unit: str = "s",
    literal: bool = False,
) -> InteractionsBuilder:
    """Review lines -> interactions; a line lacking a key or with a bad value is a problem.

    ``time_unit`` is the file's time unit: ``"s"`` (Unix seconds) or ``"ms"`` (milliseconds).
    """
    builder = InteractionsBuilder(
        str(path),
        problems,
        ratings=True,
        timestamps=True,
        rating_column=rating,
        time_column=timestamp,
        time_unit=time_unit,
    )
    time_scale = 0.001 if time_unit == "ms" else 1.0
    for line, obj in iter_json_lines(path, problems, literal=literal):
        u, i = as_id(obj.get(user)), as_id(obj.get(item))
        r, t = as_number(obj.get(rating)), as_number(obj.get(timestamp))
        if u is None or i is None or r is None or t is None:
            bad = next(
                k for k, v in ((user, u), (item, i), (rating, r), (timestamp, t)) if v is None
            )
            reason, what = (
                (MISSING, "lacks") if obj.get(bad) in (None, "") else (BAD_VALUE, "has a bad")
            )
            problems.report(
                reason, f"the review {what} {bad!r}: {obj.get(bad)!r}", path=str(path), line=line
            )
            continue
        builder.add(u, i, line, rating=r, timestamp=t * time_scale)
    return builder


def _read_meta(path: Path, problems: Problems, key: str) -> tuple[list[str], list[dict], list[int]]:
    ids: list[str] = []
    objs: list[dict] = []
    lines: list[int] = []
    for line, obj in iter_json_lines(path, problems):
        token = as_id(obj.get(key))
        if token is None:
            problems.report(MISSING, f"the item lacks its id {key!r}", path=str(path), line=line)
            continue
        ids.append(token)
        objs.append(obj)
        lines.append(line)
    return ids, objs, lines


def _main_category(value: Any) -> str | None:
    """``main_cat`` is sometimes an HTML image tag: its ``alt`` text is the category."""
    text = as_text(value, unescape=True)
    if text and text.startswith("<"):
        found = _ALT.search(text)
        return (found.group(1).strip() or None) if found else None
    return text


def _catalog(
    ids: list[str],
    objs: list[dict],
    lines: list[int],
    fields: dict[str, np.ndarray],
    descriptions: dict[str, str],
    problems: Problems,
    path: Path,
    info: dict[str, Any],
) -> Catalog:
    titles = [as_text(o.get("title"), unescape=True) for o in objs]
    info["items_without_title"] = sum(t is None for t in titles)
    return make_catalog(
        ids, titles, fields, problems, path=str(path), lines=lines, descriptions=descriptions
    )


def load_amazon_2018(
    reviews: Path | str,
    meta: Path | str | None = None,
    *,
    name: str = "amazon-2018",
    on_error: OnError = "raise",
) -> Dataset:
    """Amazon 2018 reviews (and metadata): see the module docstring."""
    problems = Problems(on_error)
    unparsed = Unparsed()
    reviews = Path(reviews).expanduser()
    info: dict[str, Any] = {
        "source": "Amazon review data (2018), https://nijianmo.github.io/amazon/",
        "files": [str(reviews)],
        "licence": TERMS.format(url="https://nijianmo.github.io/amazon/"),
        "citation": CITATION_2018,
        "feedback": "each review is an interaction, with its star rating (1-5) and Unix time",
    }
    catalog = None
    if meta is not None:
        meta = Path(meta).expanduser()
        ids, objs, lines = _read_meta(meta, problems, "asin")
        fields = {
            "brand": text_column((o.get("brand") for o in objs), unescape=True),
            "price": price_column([o.get("price") for o in objs], unparsed, "price"),
            "categories": multi_column((o.get("category") for o in objs), unescape=True),
            "main_category": text_column(_main_category(o.get("main_cat")) for o in objs),
            "description": text_column((o.get("description") for o in objs), unescape=True),
        }
        descriptions = {
            "brand": "brand name",
            "price": "price in US dollars at the time of the crawl (NaN when not given as one "
            "amount)",
            "categories": "category path, from the broadest (e.g. Books > Literature & Fiction)",
            "main_category": "the store department",
            "description": "the product description",
        }
        catalog = _catalog(ids, objs, lines, fields, descriptions, problems, meta, info)
        info["files"].append(str(meta))
    builder = read_reviews(
        reviews,
        problems,
        user="reviewerID",
        item="asin",
        rating="overall",
        timestamp="unixReviewTime",
    )
    if catalog is None:
        catalog = catalog_from_inter(builder)
    return assemble(name, catalog, builder, problems, info=info, unparsed=unparsed)


def _details(value: Any) -> str | None:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else None
    return as_text(value)


def load_amazon_2023(
    reviews: Path | str,
    meta: Path | str | None = None,
    *,
    name: str = "amazon-2023",
    on_error: OnError = "raise",
) -> Dataset:
    """Amazon 2023 reviews (and metadata): see the module docstring."""
    problems = Problems(on_error)
    unparsed = Unparsed()
    reviews = Path(reviews).expanduser()
    info: dict[str, Any] = {
        "source": "Amazon Reviews 2023, https://amazon-reviews-2023.github.io/",
        "files": [str(reviews)],
        "licence": TERMS.format(url="https://amazon-reviews-2023.github.io/"),
        "citation": CITATION_2023,
        "feedback": "each review is an interaction, with its star rating (1-5) and time "
        "(milliseconds in the file, seconds here); items are parent_asin",
    }
    catalog = None
    if meta is not None:
        meta = Path(meta).expanduser()
        ids, objs, lines = _read_meta(meta, problems, "parent_asin")
        details: list[Any] = [
            o.get("details") if isinstance(o.get("details"), dict) else {} for o in objs
        ]
        fields = {
            "main_category": text_column((o.get("main_category") for o in objs), unescape=True),
            "categories": multi_column((o.get("categories") for o in objs), unescape=True),
            "price": price_column([o.get("price") for o in objs], unparsed, "price"),
            "store": text_column((o.get("store") for o in objs), unescape=True),
            "average_rating": float_column(
                [o.get("average_rating") for o in objs], unparsed, "average_rating"
            ),
            "rating_number": float_column(
                [o.get("rating_number") for o in objs], unparsed, "rating_number"
            ),
            "release_date": date_column(
                [d.get("Date First Available") for d in details], unparsed, "release_date"
            ),
            "description": text_column((o.get("description") for o in objs), unescape=True),
            "details": text_column(_details(o.get("details")) for o in objs),
        }
        descriptions = {
            "main_category": "the store department",
            "categories": "category path, from the broadest",
            "price": "price in US dollars (NaN when not given)",
            "store": "the seller or brand",
            "average_rating": "mean star rating on the product page",
            "rating_number": "number of ratings on the product page",
            "release_date": "the 'Date First Available' detail (NaT when not given)",
            "description": "the product description",
            "details": "further product details, as a JSON object",
        }
        catalog = _catalog(ids, objs, lines, fields, descriptions, problems, meta, info)
        info["files"].append(str(meta))
    builder = read_reviews(
        reviews,
        problems,
        user="user_id",
        item="parent_asin",
        rating="rating",
        timestamp="timestamp",
        time_unit="ms",
    )
    if catalog is None:
        catalog = catalog_from_inter(builder)
    return assemble(name, catalog, builder, problems, info=info, unparsed=unparsed)


_REVIEWS = Field(description="the reviews file (JSON lines, plain or .gz)")
_META = Field(description="the metadata file (JSON lines, plain or .gz); default: none")


class Amazon2018(recai.DatasetSource):
    """Amazon review data (2018, Ni, Li & McAuley): one category's reviews and metadata files.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "Books.json"
    >>> _ = f.write_text('{"reviewerID": "A1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1}\\n')
    >>> Amazon2018(reviews=str(f)).dataset().catalog.ids.tolist()
    ['B1']
    """

    def __init__(
        self,
        reviews: Annotated[str, _REVIEWS],
        meta: Annotated[str | None, _META] = None,
        name: Annotated[str, Field(description="the dataset's name")] = "amazon-2018",
        on_error: OnError = "raise",
    ) -> None:
        self.reviews, self.meta, self.name, self.on_error = reviews, meta, name, on_error

    def load(self) -> Dataset:
        return load_amazon_2018(self.reviews, self.meta, name=self.name, on_error=self.on_error)

    def __repr__(self) -> str:
        return f"Amazon2018(reviews={self.reviews!r})"


class Amazon2023(recai.DatasetSource):
    """Amazon Reviews 2023 (Hou et al.): one category's reviews and metadata files."""

    def __init__(
        self,
        reviews: Annotated[str, _REVIEWS],
        meta: Annotated[str | None, _META] = None,
        name: Annotated[str, Field(description="the dataset's name")] = "amazon-2023",
        on_error: OnError = "raise",
    ) -> None:
        self.reviews, self.meta, self.name, self.on_error = reviews, meta, name, on_error

    def load(self) -> Dataset:
        return load_amazon_2023(self.reviews, self.meta, name=self.name, on_error=self.on_error)

    def __repr__(self) -> str:
        return f"Amazon2023(reviews={self.reviews!r})"
