"""Hand-labelled requests for the slot extractor's F1 on MovieLens-100K (written for this test,
before measuring; varied phrasings, misspellings, negations, decades, titles in and out of quotes).

Each entry: (request, labels). Labels name exact catalog genres and titles; ``years`` is the
inclusive (min, max) the request means (None for an open end); keys left out are empty.
"""

from __future__ import annotations

from typing import Any

LABELLED: list[tuple[str, dict[str, Any]]] = [
    ("I want a funny movie", {"intent": "recommend", "genres": ["Comedy"]}),
    (
        "recommend me some sci-fi from the 80s",
        {"intent": "recommend", "genres": ["Sci-Fi"], "years": (1980, 1989)},
    ),
    (
        "Any good horror films from the nineties?",
        {"intent": "recommend", "genres": ["Horror"], "years": (1990, 1999)},
    ),
    ("something like Toy Story", {"intent": "recommend", "liked": ["Toy Story (1995)"]}),
    (
        "I loved The Godfather, what else should I watch?",
        {"intent": "recommend", "liked": ["Godfather, The (1972)"]},
    ),
    (
        "a romantic comedy please, nothing too sad",
        {"intent": "recommend", "genres": ["Romance", "Comedy"]},
    ),
    (
        "no horror, I get scared easily. maybe an adventure?",
        {"intent": "recommend", "genres": ["Adventure"], "not_genres": ["Horror"]},
    ),
    ("anything but westerns", {"intent": "recommend", "not_genres": ["Western"]}),
    (
        "Show me thrillers released after 1995",
        {"intent": "recommend", "genres": ["Thriller"], "years": (1996, None)},
    ),
    (
        "war movies between 1960 and 1980",
        {"intent": "recommend", "genres": ["War"], "years": (1960, 1980)},
    ),
    (
        "I hated Titanic. Recommend a drama that is nothing like it",
        {"intent": "recommend", "genres": ["Drama"], "disliked": ["Titanic (1997)"]},
    ),
    ("my kids want a cartoon", {"intent": "recommend", "genres": ["Children's", "Animation"]}),
    ("Who directed Fargo?", {"intent": "lookup", "mentioned": ["Fargo (1996)"]}),
    ("what year did Braveheart come out", {"intent": "lookup", "mentioned": ["Braveheart (1995)"]}),
    ("hello!", {"intent": "chat"}),
    ("thanks, that's all for today", {"intent": "chat"}),
    (
        'similar to "The Silence of the Lambs" but less gory',
        {"intent": "recommend", "liked": ["Silence of the Lambs, The (1991)"]},
    ),
    (
        "I'm into crime stories and film noir",
        {"intent": "recommend", "genres": ["Crime", "Film-Noir"]},
    ),
    ("a documentary about music", {"intent": "recommend", "genres": ["Documentary"]}),
    (
        "any hidden gems in the mystery genre?",
        {"intent": "recommend", "genres": ["Mystery"], "popular": False},
    ),
    (
        "the most popular action movies",
        {"intent": "recommend", "genres": ["Action"], "popular": True},
    ),
    ("fantasy with dragons and wizards", {"intent": "recommend", "genres": ["Fantasy"]}),
    (
        "I'd like a musical from the fifties",
        {"intent": "recommend", "genres": ["Musical"], "years": (1950, 1959)},
    ),
    (
        "Give me sci fi but not action",
        {"intent": "recommend", "genres": ["Sci-Fi"], "not_genres": ["Action"]},
    ),
    (
        "comedies from before 1970",
        {"intent": "recommend", "genres": ["Comedy"], "years": (None, 1969)},
    ),
    (
        "movies like Star Wars and Raiders of the Lost Ark",
        {"intent": "recommend", "liked": ["Star Wars (1977)", "Raiders of the Lost Ark (1981)"]},
    ),
    (
        "somthing scary from the late 90s",
        {"intent": "recommend", "genres": ["Horror"], "years": (1996, 1999)},
    ),
    ("a good thriler", {"intent": "recommend", "genres": ["Thriller"]}),
    ("Recomend a comdy", {"intent": "recommend", "genres": ["Comedy"]}),
    (
        "I really enjoyed Pulp Fiction and Reservoir Dogs",
        {"intent": "recommend", "liked": ["Pulp Fiction (1994)", "Reservoir Dogs (1992)"]},
    ),
    (
        "not in the mood for romance tonight, something with action",
        {"intent": "recommend", "genres": ["Action"], "not_genres": ["Romance"]},
    ),
    (
        "a family film we can all watch, no violence",
        {"intent": "recommend", "genres": ["Children's"]},
    ),
    ("what genre is Casablanca?", {"intent": "lookup", "mentioned": ["Casablanca (1942)"]}),
    ("tell me about Twelve Monkeys", {"intent": "lookup", "mentioned": ["Twelve Monkeys (1995)"]}),
    ("movies from 1994", {"intent": "recommend", "years": (1994, 1994)}),
    ("an underrated western", {"intent": "recommend", "genres": ["Western"], "popular": False}),
    (
        "I couldn't stand Independence Day, give me smarter sci-fi",
        {
            "intent": "recommend",
            "genres": ["Sci-Fi"],
            "disliked": ["Independence Day (ID4) (1996)"],
        },
    ),
    (
        "Horror is not my thing. Something animated?",
        {"intent": "recommend", "genres": ["Animation"], "not_genres": ["Horror"]},
    ),
    (
        "I want an adventure for kids, not a musical",
        {"intent": "recommend", "genres": ["Adventure", "Children's"], "not_genres": ["Musical"]},
    ),
    (
        "mid-80s action comedies",
        {"intent": "recommend", "genres": ["Action", "Comedy"], "years": (1983, 1986)},
    ),
    (
        "a suspenseful mystery from the 1940s",
        {"intent": "recommend", "genres": ["Thriller", "Mystery"], "years": (1940, 1949)},
    ),
    (
        "something in the vein of Blade Runner",
        {"intent": "recommend", "liked": ["Blade Runner (1982)"]},
    ),
    (
        "I liked Groundhog Day, but I hate romance",
        {"intent": "recommend", "liked": ["Groundhog Day (1993)"], "not_genres": ["Romance"]},
    ),
    ("recent dramas please", {"intent": "recommend", "genres": ["Drama"], "years": (1994, None)}),
    ("hey, how are you?", {"intent": "chat"}),
    ("classic film-noir", {"intent": "recommend", "genres": ["Film-Noir"]}),
    (
        "Anything like 'Men in Black' without the aliens?",
        {"intent": "recommend", "liked": ["Men in Black (1997)"]},
    ),
    (
        "scifi movies that aren't horror",
        {"intent": "recommend", "genres": ["Sci-Fi"], "not_genres": ["Horror"]},
    ),
    ("I'm a big fan of Jurassic Park", {"intent": "recommend", "liked": ["Jurassic Park (1993)"]}),
    (
        "give me a war film, no comedies and no dramas",
        {"intent": "recommend", "genres": ["War"], "not_genres": ["Comedy", "Drama"]},
    ),
]
