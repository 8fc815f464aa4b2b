"""InterecAgent on a dataset in Steam's own file format, read by recai-datasets' ``steam.v1``
loader (not built by hand): games with genres, tags, prices and release dates, users' reviews.
The agent's slots, filters and grounding come from whatever the catalog has, not from film
fields."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import recai
from recai.data.split import leave_one_out
from recai.roles import LLMBackend
from recai.types import Completion, Message
from recai_agent.agent import InterecAgent

GAMES = [  # (title, genres, price, release date)
    ("Stellar Tactics", ["Strategy", "Indie"], 4.99, "2018-03-01"),
    ("Empire Builder", ["Strategy", "Simulation"], 19.99, "2014-05-10"),
    ("Dungeon Delver", ["RPG", "Indie"], 9.99, "2017-09-12"),
    ("Dragon Saga", ["RPG", "Action"], 39.99, "2019-11-20"),
    ("Pixel Racer", ["Racing", "Casual"], 2.99, "2016-02-02"),
    ("Farm Days", ["Simulation", "Casual"], 14.99, "2015-07-07"),
    ("Puzzle Grove", ["Puzzle", "Casual", "Indie"], 1.99, "2018-08-08"),
    ("Siege Lords", ["Strategy", "Action"], 29.99, "2019-01-15"),
    ("Moon Colony", ["Strategy", "Simulation", "Indie"], 7.99, "2019-04-04"),
    ("Knight Errant", ["RPG"], 24.99, "2013-12-12"),
]


def write_steam(root: Path, n_users: int = 40) -> Path:
    """steam_games.json.gz and steam_reviews.json.gz as Steam's dumps write them (one Python
    literal per line); each user reviews 4-6 games, mostly of one genre."""
    rng = np.random.default_rng(0)
    games = [
        {
            "app_name": t,
            "title": t,
            "id": str(1000 + i),
            "genres": g,
            "tags": g,
            "price": p,
            "release_date": d,
            "publisher": "Tiny Studio",
        }
        for i, (t, g, p, d) in enumerate(GAMES)
    ]
    by_genre = {"Strategy": [0, 1, 7, 8], "RPG": [2, 3, 9], "Casual": [4, 5, 6]}
    reviews = []
    for u in range(n_users):
        pool = list(by_genre[list(by_genre)[u % 3]])
        extra = [int(x) for x in rng.choice(len(GAMES), 2, replace=False)]
        for k, i in enumerate(dict.fromkeys(pool + extra)):
            reviews.append(
                {
                    "username": f"player{u}",
                    "product_id": str(1000 + i),
                    "date": f"2019-{1 + k:02d}-{1 + u % 28:02d}",
                    "hours": 3.5,
                    "text": "fun",
                }
            )
    for name, rows in (("steam_games.json.gz", games), ("steam_reviews.json.gz", reviews)):
        (root / name).write_bytes(gzip.compress("".join(repr(r) + "\n" for r in rows).encode()))
    return root


class Brain(LLMBackend):
    """A brain that writes a plan naming values the catalog spells differently ('strategy',
    'under 10 dollars' as a price bound) and a reply naming a game that is on no bus."""

    capabilities = frozenset({"json_schema"})

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        if options.get("json_schema") is not None:
            plan = {
                "steps": [
                    {"tool": "hard_filter", "input": {"genres": ["strategy"]}},
                    {"tool": "ranking", "input": {"by": "popularity"}},
                    {"tool": "map", "input": {}},
                ]
            }
            return Completion(json.dumps(plan))
        return Completion("Try Dragon Saga (2019), it is the best! These games fit your request.")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = write_steam(tmp_path_factory.mktemp("steam"))
    return recai.create("dataset", "steam.v1", path=str(root))


def test_the_agent_recommends_from_a_steam_format_catalog(data: Any) -> None:
    split = leave_one_out(data.dataset())
    pop = recai.create("ranker", "popularity.v1")
    agent = InterecAgent(data, Brain(), ranker=pop, plan_decoding="generate")
    agent.fit(split)
    reply = agent.respond([Message.user("some strategy games released after 2017 please")])
    catalog = agent.catalog
    titles = {str(t) for t in catalog.titles}
    assert reply.items, reply.notes
    genres_field = next(f for f in ("genres", "tags") if f in catalog.fields)
    for item in reply.items:
        i = item["index"]
        assert "Strategy" in catalog.fields[genres_field][i]
        assert item["title"] in titles
    assert {x["title"] for x in reply.items} <= {"Stellar Tactics", "Siege Lords", "Moon Colony"}
    assert "Dragon Saga" not in reply.text  # named by the brain, on no bus: dropped
    assert all(s.error is None for s in reply.trace), reply.trace
