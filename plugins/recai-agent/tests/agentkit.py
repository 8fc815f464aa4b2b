"""A small film dataset for the agent's tests: real-looking titles, genres and years, and users
whose histories stay inside genre clusters (so item similarity and rankers learn something)."""

from __future__ import annotations

import numpy as np

from recai.data import Catalog, Dataset, Interactions
from recai.data.split import leave_one_out

FILMS = [
    ("Alien (1979)", 1979, ("Horror", "Sci-Fi")),
    ("Aliens (1986)", 1986, ("Action", "Sci-Fi", "Thriller")),
    ("Terminator, The (1984)", 1984, ("Action", "Sci-Fi", "Thriller")),
    ("Blade Runner (1982)", 1982, ("Film-Noir", "Sci-Fi")),
    ("Matrix, The (1999)", 1999, ("Action", "Sci-Fi", "Thriller")),
    ("Contact (1997)", 1997, ("Drama", "Sci-Fi")),
    ("Gattaca (1997)", 1997, ("Drama", "Sci-Fi", "Thriller")),
    ("Star Wars (1977)", 1977, ("Action", "Adventure", "Sci-Fi")),
    ("Toy Story (1995)", 1995, ("Animation", "Children's", "Comedy")),
    ("Aladdin (1992)", 1992, ("Animation", "Children's", "Musical")),
    ("Lion King, The (1994)", 1994, ("Animation", "Children's", "Musical")),
    ("Babe (1995)", 1995, ("Children's", "Comedy", "Drama")),
    ("Fargo (1996)", 1996, ("Crime", "Drama", "Thriller")),
    ("Heat (1995)", 1995, ("Action", "Crime", "Thriller")),
    ("Godfather, The (1972)", 1972, ("Action", "Crime", "Drama")),
    ("Pulp Fiction (1994)", 1994, ("Crime", "Drama")),
    ("Usual Suspects, The (1995)", 1995, ("Crime", "Thriller")),
    ("Scream (1996)", 1996, ("Horror", "Thriller")),
    ("Shining, The (1980)", 1980, ("Horror",)),
    ("Psycho (1960)", 1960, ("Horror", "Romance", "Thriller")),
    ("Casablanca (1942)", 1942, ("Drama", "Romance", "War")),
    ("Sleepless in Seattle (1993)", 1993, ("Comedy", "Romance")),
    ("When Harry Met Sally... (1989)", 1989, ("Comedy", "Romance")),
    ("Annie Hall (1977)", 1977, ("Comedy", "Romance")),
]
CLUSTERS = [
    [0, 1, 2, 3, 4, 5, 6, 7],
    [8, 9, 10, 11],
    [12, 13, 14, 15, 16],
    [17, 18, 19, 0],
    [20, 21, 22, 23],
]


def film_catalog() -> Catalog:
    return Catalog(
        ids=[str(i + 1) for i in range(len(FILMS))],
        titles=[t for t, _, _ in FILMS],
        fields={"year": [float(y) for _, y, _ in FILMS], "genres": [g for _, _, g in FILMS]},
        descriptions={"year": "year of release", "genres": "list of genres"},
    )


def film_dataset(n_users: int = 60, seed: int = 0) -> Dataset:
    """Each user watches 6-9 films, mostly from one cluster, in a cluster-specific order."""
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        cluster = CLUSTERS[u % len(CLUSTERS)]
        n = int(rng.integers(6, 10))
        seq = list(cluster) + [int(x) for x in rng.choice(len(FILMS), 3, replace=False)]
        seq = list(dict.fromkeys(seq))[:n]
        for t, i in enumerate(seq):
            users.append(u)
            items.append(i)
            times.append(float(1_000_000 + 1000 * u + t))
    inter = Interactions(users, items, n_users=n_users, n_items=len(FILMS), timestamps=times)
    return Dataset("films", film_catalog(), inter)


def film_split(seed: int = 0):  # type: ignore[no-untyped-def]
    return leave_one_out(film_dataset(seed=seed))
