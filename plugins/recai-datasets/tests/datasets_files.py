"""Tiny hand-written files in the real formats, for the loader tests (never copies of real data).

Each writer makes a folder under the given root and returns it. The quirks of the real files are
kept: Latin-1 titles (MovieLens 100K and 1M), quoted titles with commas (MovieLens latest), gzip
and HTML entities (Amazon), Python dict literals (Steam), 1-based line = item id (RecAI).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

# -- MovieLens-100K, RecBole atomic files ---------------------------------------------------------
ATOMIC_INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ATOMIC_ITEM = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
ATOMIC_USER = "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
ATOMIC_KG = "head_id:token\trelation_id:token\ttail_id:token\n"
ATOMIC_LINK = "item_id:token\tentity_id:token\n"

ML100K_ITEMS = [
    "1\tToy Story\t1995\tAnimation Children's Comedy",
    "2\tGoldenEye\t1995\tAction Adventure Thriller",
    "3\tunkonwn\tunkonwn\tunknown",
]
ML100K_RATINGS = ["10\t1\t4\t100", "10\t2\t3\t90", "7\t2\t5\t50", "7\t3\t1\t60", "2\t1\t2\t70"]
ML100K_USERS = [
    "2\t53\tF\tother\t94043",
    "7\t57\tM\tadministrator\t91344",
    "10\t53\tM\tlawyer\t90703",
]
ML100K_KG = [
    "m.toy\tfilm.film.genre\tm.animation",
    "m.toy\tfilm.film.directed_by\tm.lasseter",
    "m.golden\tfilm.film.genre\tm.action",
]
ML100K_LINK = ["1\tm.toy", "2\tm.golden"]


def write_ml100k_atomic(
    root: Path,
    ratings: list[str] | None = None,
    items: list[str] | None = None,
    *,
    users: list[str] | None = None,
    kg: list[str] | None = None,
    link: list[str] | None = None,
) -> Path:
    """``ml-100k.inter`` and ``.item`` (plus ``.user``, ``.kg``, ``.link`` when given)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "ml-100k.item").write_text(
        ATOMIC_ITEM + "\n".join(items if items is not None else ML100K_ITEMS) + "\n"
    )
    (root / "ml-100k.inter").write_text(
        ATOMIC_INTER + "\n".join(ratings if ratings is not None else ML100K_RATINGS) + "\n"
    )
    if users is not None:
        (root / "ml-100k.user").write_text(ATOMIC_USER + "\n".join(users) + "\n")
    if kg is not None:
        (root / "ml-100k.kg").write_text(ATOMIC_KG + "\n".join(kg) + "\n")
    if link is not None:
        (root / "ml-100k.link").write_text(ATOMIC_LINK + "\n".join(link) + "\n")
    return root


# -- MovieLens-100K, the GroupLens release ---------------------------------------------------------
def _flags(*genres: int) -> str:
    return "|".join("1" if g in genres else "0" for g in range(19))


GROUPLENS_ITEMS = [
    f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|{_flags(3, 4, 5)}",
    f"2|Misérables, Les (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Mis%E9rables%2C%20Les%20%281995%29|{_flags(8, 12)}",
    f"3|unknown||||{_flags(0)}",
]
GROUPLENS_RATINGS = ["196\t1\t3\t881250949", "186\t2\t3\t891717742", "196\t3\t1\t881250950"]
GROUPLENS_USERS = ["186|39|F|executive|00000", "196|49|M|writer|55105"]


def write_ml100k_grouplens(
    root: Path,
    ratings: list[str] | None = None,
    items: list[str] | None = None,
    users: list[str] | None = None,
) -> Path:
    """``u.data`` (tab), ``u.item`` and ``u.user`` (pipe, Latin-1), as GroupLens ships them."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "u.data").write_text(
        "\n".join(ratings if ratings is not None else GROUPLENS_RATINGS) + "\n"
    )
    item_text = "\n".join(items if items is not None else GROUPLENS_ITEMS) + "\n"
    (root / "u.item").write_bytes(item_text.encode("latin-1"))
    user_text = "\n".join(users if users is not None else GROUPLENS_USERS) + "\n"
    (root / "u.user").write_bytes(user_text.encode("latin-1"))
    return root


# -- MovieLens-1M --------------------------------------------------------------------------------
ML1M_MOVIES = [
    "1::Toy Story (1995)::Animation|Children's|Comedy",
    "73::Misérables, Les (1995)::Drama|Musical",
    "3952::Contender, The (2000)::Drama|Thriller",
]
ML1M_RATINGS = [
    "1::1::5::978824268",
    "1::73::3::978300760",
    "6040::1::4::956703932",
    "6040::3952::2::956704056",
]
ML1M_USERS = ["1::F::1::10::48067", "6040::M::25::6::11106"]


def write_ml1m(
    root: Path,
    ratings: list[str] | None = None,
    movies: list[str] | None = None,
    users: list[str] | None = None,
) -> Path:
    """``ratings.dat``, ``movies.dat``, ``users.dat``: ``::``-separated, Latin-1."""
    root.mkdir(parents=True, exist_ok=True)
    for name, lines in (
        ("ratings.dat", ratings if ratings is not None else ML1M_RATINGS),
        ("movies.dat", movies if movies is not None else ML1M_MOVIES),
        ("users.dat", users if users is not None else ML1M_USERS),
    ):
        (root / name).write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return root


# -- MovieLens latest ------------------------------------------------------------------------------
ML_LATEST_MOVIES = [
    "movieId,title,genres",
    "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy",
    '11,"American President, The (1995)",Comedy|Drama|Romance',
    '193609,"Andrew Dice Clay: Dice Rules (1991)",Comedy',
    "176601,Black Mirror,(no genres listed)",
]
ML_LATEST_RATINGS = [
    "userId,movieId,rating,timestamp",
    "1,1,4.0,964982703",
    "1,11,3.5,964981247",
    "610,1,5.0,1479544998",
    "610,176601,0.5,1493848402",
]
ML_LATEST_TAGS = [
    "userId,movieId,tag,timestamp",
    "2,11,politics,1445714994",
    '18,11,"funny, clever",1457474829',
    "62,11,politics,1528843929",
    "62,1,pixar,1528843890",
]
ML_LATEST_LINKS = [
    "movieId,imdbId,tmdbId",
    "1,0114709,862",
    "11,0112346,9087",
    "193609,0101726,",
    "176601,2085059,42269",
]


def write_ml_latest(
    root: Path,
    ratings: list[str] | None = None,
    movies: list[str] | None = None,
    *,
    tags: list[str] | None = None,
    links: list[str] | None = None,
) -> Path:
    """``ratings.csv``, ``movies.csv`` (quoted titles), ``tags.csv``, ``links.csv`` (UTF-8)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, lines in (
        ("ratings.csv", ratings if ratings is not None else ML_LATEST_RATINGS),
        ("movies.csv", movies if movies is not None else ML_LATEST_MOVIES),
        ("tags.csv", tags if tags is not None else ML_LATEST_TAGS),
        ("links.csv", links if links is not None else ML_LATEST_LINKS),
    ):
        (root / name).write_text("\n".join(lines) + "\n")
    return root


# -- JSON lines (Amazon), Python literals (Steam) ---------------------------------------------------
def write_lines(path: Path, records: list, *, gz: bool = False, literal: bool = False) -> Path:
    """One record per line: JSON (``json.dumps``) or a Python literal (``repr``); strings are
    written as they are. ``gz`` compresses the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(
        (r if isinstance(r, str) else repr(r) if literal else json.dumps(r)) + "\n" for r in records
    )
    if gz:
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text)
    return path


AMAZON_2018_REVIEWS = [
    {
        "overall": 5.0,
        "verified": True,
        "reviewTime": "09 13, 2009",
        "reviewerID": "A3HVRXV0LVJN7",
        "asin": "0078764343",
        "style": {"Format:": " Hardcover"},
        "reviewerName": "Jo",
        "reviewText": "Great.",
        "summary": "Five Stars",
        "unixReviewTime": 1252800000,
    },
    {
        "overall": 3.0,
        "reviewerID": "A2SUAM1J3GNN3B",
        "asin": "0000013714",
        "unixReviewTime": 1252886400,
    },
    {
        "overall": 4.0,
        "reviewerID": "A3HVRXV0LVJN7",
        "asin": "0000013714",
        "unixReviewTime": 1262304000,
    },
]
AMAZON_2018_META = [
    {
        "category": ["Books", "Literature &amp; Fiction"],
        "tech1": "",
        "description": ["A story.", "", "Second part."],
        "fit": "",
        "title": "Harry &amp; Sally",
        "also_buy": ["B071WSK6R8"],
        "brand": "Penguin",
        "feature": [],
        "rank": "190,234 in Books (",
        "main_cat": "Books",
        "date": "",
        "price": "$1,299.00",
        "asin": "0000013714",
    },
    {
        "category": [],
        "description": [],
        "title": "",
        "brand": "",
        "main_cat": '<img src="https://images-na.ssl-images-amazon.com/x.png" class="nav-categ-image" alt="Digital Music"/>',
        "price": "$5.00 - $9.00",
        "asin": "0078764343",
    },
    {"asin": "B000000NEW", "title": "Never reviewed", "price": "", "category": ["Books"]},
]

AMAZON_2023_REVIEWS = [
    {
        "rating": 5.0,
        "title": "Such a lovely scent",
        "text": "This spray is really nice.",
        "images": [],
        "asin": "B00YQ6X8EO",
        "parent_asin": "B00YQ6X8EO",
        "user_id": "AGKHLEW2SOWHNMFQIJGBECAF7INQ",
        "timestamp": 1588687728923,
        "helpful_vote": 0,
        "verified_purchase": True,
    },
    {
        "rating": 4.0,
        "asin": "B07X",
        "parent_asin": "B081TJ8YS3",
        "user_id": "AGKHLEW2SOWHNMFQIJGBECAF7INQ",
        "timestamp": 1588615855070,
    },
    {
        "rating": 1.0,
        "asin": "B081",
        "parent_asin": "B081TJ8YS3",
        "user_id": "AE74DYR3QUGVPZJ3P7RFWBGIX7XQ",
        "timestamp": 1589665266052,
    },
]
AMAZON_2023_META = [
    {
        "main_category": "All Beauty",
        "title": "Howard LC0008 Leather Conditioner, 8-Ounce (4-Pack)",
        "average_rating": 4.8,
        "rating_number": 10,
        "features": [],
        "description": [],
        "price": None,
        "images": [],
        "videos": [],
        "store": "Howard Products",
        "categories": [],
        "details": {
            "Package Dimensions": "7.1 x 5.5 x 3 inches; 2.38 Pounds",
            "UPC": "617390882781",
        },
        "parent_asin": "B00YQ6X8EO",
        "bought_together": None,
    },
    {
        "main_category": "All Beauty",
        "title": "Yes to Tomatoes Detoxifying Charcoal Cleanser",
        "average_rating": 4.5,
        "rating_number": 3,
        "features": ["Clears pores"],
        "description": ["Charcoal cleanser.", "For every skin."],
        "price": 9.99,
        "store": "Yes To",
        "categories": ["Beauty & Personal Care", "Skin Care", "Face"],
        "details": {"Date First Available": "March 5, 2016"},
        "parent_asin": "B081TJ8YS3",
    },
]

STEAM_REVIEWS = [
    {
        "username": "Chaos Syren",
        "hours": 0.1,
        "products": 41,
        "product_id": "725280",
        "page_order": 0,
        "date": "2017-12-17",
        "text": "This would not be acceptable as an entertainment even back in the day",
        "early_access": False,
        "page": 1,
    },
    {
        "username": "₮ʜᴇ Wᴀʀᴛᴏɴ",
        "hours": 51.1,
        "products": 769,
        "product_id": "328100",
        "page_order": 0,
        "date": "2017-12-27",
        "text": "looks like a facebook game",
        "early_access": False,
        "page": 1,
    },
    {
        "username": "Chaos Syren",
        "hours": 2.0,
        "product_id": "328100",
        "date": "2017-12-17",
        "text": "it's 'fine'",
        "early_access": False,
        "page": 2,
        "compensation": "Product received for free",
        "user_id": "76561198007483075",
    },
]
STEAM_GAMES = [
    {
        "publisher": "Kotoshiro",
        "genres": ["Action", "Casual", "Indie", "Simulation", "Strategy"],
        "app_name": "Lost Summoner Kitty",
        "title": "Lost Summoner Kitty",
        "url": "http://store.steampowered.com/app/761140/Lost_Summoner_Kitty/",
        "release_date": "2018-01-04",
        "tags": ["Strategy", "Action", "Indie", "Casual", "Simulation"],
        "discount_price": 4.49,
        "reviews_url": "http://steamcommunity.com/app/761140/reviews/?browsefilter=mostrecent&p=1",
        "specs": ["Single-player"],
        "price": 4.99,
        "early_access": False,
        "id": "761140",
        "developer": "Kotoshiro",
    },
    {
        "publisher": "Poolians.com",
        "genres": ["Free to Play", "Indie", "Simulation", "Sports"],
        "app_name": "Real Pool 3D - Poolians",
        "title": "Real Pool 3D - Poolians",
        "release_date": "2017-12-27",
        "tags": ["Free to Play", "Simulation"],
        "specs": ["Single-player", "Multi-player"],
        "price": "Free to Play",
        "early_access": False,
        "id": "328100",
        "developer": "Poolians.com",
    },
    {
        "genres": ["Action"],
        "app_name": "弹炸人2222",
        "title": "弹炸人2222",
        "release_date": "Soon..",
        "price": 0.99,
        "early_access": False,
        "id": "725280",
        "developer": "彼岸领域",
    },
]

AUSTRALIAN_REVIEWS = [
    {
        "user_id": "76561197970982479",
        "user_url": "http://steamcommunity.com/profiles/76561197970982479",
        "reviews": [
            {
                "funny": "",
                "posted": "Posted November 5, 2011.",
                "last_edited": "",
                "item_id": "1250",
                "helpful": "No ratings yet",
                "recommend": True,
                "review": "Simple yet with great replayability.",
            },
            {
                "funny": "",
                "posted": "Posted July 15, 2011.",
                "last_edited": "",
                "item_id": "22200",
                "helpful": "No ratings yet",
                "recommend": True,
                "review": "It's unique and worth a playthrough.",
            },
        ],
    },
    {
        "user_id": "js41637",
        "user_url": "http://steamcommunity.com/id/js41637",
        "reviews": [
            {
                "funny": "",
                "posted": "Posted June 24, 2014.",
                "item_id": "251610",
                "recommend": True,
                "review": "I know what you think.",
            }
        ],
    },
]

RECAI_METADATA = [
    {
        "app_name": "Lost Summoner Kitty",
        "tags": ["Strategy", "Action"],
        "price": 4.99,
        "release_date": "2018-01-04",
        "developer": "Kotoshiro",
        "specs": ["Single-player"],
        "description": "Catch cats.",
    },
    {
        "TitleName": "Halo",
        "GPT_tags": "shooter, sci-fi",
        "SuggestPrice": "19.99",
        "ReleaseDateCurated": "November 15, 2001",
        "PublisherCurated": "Xbox Game Studios",
        "PrimaryGenre": "Shooter",
    },
    {
        "title": "Real Pool 3D",
        "genres": ["Sports"],
        "price": "Free to Play",
        "release_date": "Soon..",
    },
]
RECAI_SEQUENCES = ["1 1 2 3", "2 3 1", "7 2"]


def write_recai(
    root: Path, metadata: list | None = None, sequences: list[str] | None = None
) -> Path:
    """``metadata.json`` (line n = item n) and ``sequential_data.txt``."""
    write_lines(root / "metadata.json", metadata if metadata is not None else RECAI_METADATA)
    (root / "sequential_data.txt").write_text(
        "\n".join(sequences if sequences is not None else RECAI_SEQUENCES) + "\n"
    )
    return root
