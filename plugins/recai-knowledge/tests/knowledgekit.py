"""A hand-made film fixture for recai-knowledge's tests: eight films, a training log whose
co-occurrence counts are easy to check by hand, held-out events, and a small knowledge graph.

Items (index: title, genres, year)::

    0 Heat (1995)        Action, Crime      4 Babe (1995)    Comedy
    1 Ronin (1998)       Action, Thriller   5 Fargo (1996)   Crime, Drama
    2 Collateral (2004)  Crime, Thriller    6 Alien (1979)   Sci-Fi, Horror
    3 Toy Story (1995)   Animation, Comedy  7 Aliens (1986)  Sci-Fi, Action

Training log (user: items in time order)::

    u0: 0 1 2    u1: 0 1 5    u2: 0 2 5    u3: 3 4    u4: 3 4 0    u5: 6 7 1

so n = [4, 3, 2, 2, 2, 2, 1, 1] users per item; c(0,1) = c(0,2) = c(0,5) = c(3,4) = 2, and
cos(0,1) = 2/sqrt(12) = 0.577, cos(0,2) = cos(0,5) = 2/sqrt(8) = 0.707, cos(3,4) = 1.

Graph: Heat and Collateral are directed by Michael Mann; Heat and Ronin have the actor Robert
De Niro; Toy Story has a production company (unnamed); Alien has the sequel Aliens; Alien and
Aliens have one director each; every film has the country United States (a hub).
"""

from __future__ import annotations

import numpy as np

from recai.data import Catalog, Dataset, Interactions, KnowledgeGraph, Split

TITLES = [
    "Heat (1995)",
    "Ronin (1998)",
    "Collateral (2004)",
    "Toy Story (1995)",
    "Babe (1995)",
    "Fargo (1996)",
    "Alien (1979)",
    "Aliens (1986)",
]
GENRES = [
    ("Action", "Crime"),
    ("Action", "Thriller"),
    ("Crime", "Thriller"),
    ("Animation", "Comedy"),
    ("Comedy",),
    ("Crime", "Drama"),
    ("Sci-Fi", "Horror"),
    ("Sci-Fi", "Action"),
]
YEARS = [1995.0, 1998.0, 2004.0, 1995.0, 1995.0, 1996.0, 1979.0, 1986.0]
TRAIN = {0: [0, 1, 2], 1: [0, 1, 5], 2: [0, 2, 5], 3: [3, 4], 4: [3, 4, 0], 5: [6, 7, 1]}
DAY = 86_400


def catalog() -> Catalog:
    return Catalog(
        ids=[str(i + 1) for i in range(len(TITLES))],
        titles=TITLES,
        fields={"genres": np.array(GENRES + [()], dtype=object)[:-1], "year": np.array(YEARS)},
    )


def graph(n_items: int = 8) -> KnowledgeGraph:
    films = [f"m.film{i}" for i in range(n_items)]
    others = ["m.mann", "m.deniro", "m.pixar", "m.usa", "m.scott", "m.cameron"]
    entities = films + others
    names = [None] * n_items + ["Michael Mann", "Robert De Niro", None, "United States", None, None]
    relations = [
        "film.film.actor",
        "film.film.country",
        "film.film.directed_by",
        "film.film.production_companies",
        "film.film.sequel",
    ]
    e = {name: i for i, name in enumerate(entities)}
    r = {name: i for i, name in enumerate(relations)}
    triples = [
        ("m.film0", "film.film.directed_by", "m.mann"),
        ("m.film2", "film.film.directed_by", "m.mann"),
        ("m.film0", "film.film.actor", "m.deniro"),
        ("m.film1", "film.film.actor", "m.deniro"),
        ("m.film3", "film.film.production_companies", "m.pixar"),
        ("m.film6", "film.film.directed_by", "m.scott"),
        ("m.film7", "film.film.directed_by", "m.cameron"),
        ("m.film6", "film.film.sequel", "m.film7"),
    ] + [(f, "film.film.country", "m.usa") for f in films]
    return KnowledgeGraph(
        heads=[e[h] for h, _, _ in triples],
        relations=[r[x] for _, x, _ in triples],
        tails=[e[t] for _, _, t in triples],
        entities=np.array(entities, dtype=object),
        relation_names=np.array(relations, dtype=object),
        item_entity=np.arange(n_items),
        entity_names=np.array(names, dtype=object),
    )


def interactions(events: dict[int, list[int]], start: int = 0) -> tuple[list, list, list, list]:
    users, items, times, ratings = [], [], [], []
    for u, row in events.items():
        for k, i in enumerate(row):
            users.append(u)
            items.append(i)
            times.append(start + (10 * u + k) * DAY)
            ratings.append(float(1 + (u + i) % 5))
    return users, items, times, ratings


def film_split(test: dict[int, list[int]] | None = None, with_kg: bool = True) -> Split:
    """The fixture's split: ``TRAIN`` for training, ``test`` (default: u0 -> Fargo, u3 ->
    Heat) held out after it."""
    test = {0: [5], 3: [0]} if test is None else test
    cat = catalog()
    tu, ti, tt, tr = interactions(TRAIN)
    su, si, st, sr = interactions(test, start=1_000 * DAY)
    n_users = 6
    everything = Interactions(
        tu + su, ti + si, n_users=n_users, n_items=8, timestamps=tt + st, ratings=tr + sr
    )
    data = Dataset("films", cat, everything, kg=graph() if with_kg else None)
    train = Interactions(tu, ti, n_users=n_users, n_items=8, timestamps=tt, ratings=tr)
    held = Interactions(su, si, n_users=n_users, n_items=8, timestamps=st, ratings=sr)
    return Split(data, train, held, None, "custom")
