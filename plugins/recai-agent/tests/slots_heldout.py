"""A second hand-labelled set, written after the extractor's rules were settled and measured
once without changing a rule for it (the first set, slots_labelled.py, was used while writing
the rules). Same format as slots_labelled.LABELLED."""

from __future__ import annotations

from typing import Any

HELD_OUT: list[tuple[str, dict[str, Any]]] = [
    ("got any good flicks with robots?", {"intent": "recommend", "genres": ["Sci-Fi"]}),
    ("a rom-com for date night", {"intent": "recommend", "genres": ["Romance", "Comedy"]}),
    (
        "Looking for a heist movie, nothing older than 1985",
        {"intent": "recommend", "genres": ["Crime"], "years": (1985, None)},
    ),
    (
        "my daughter loved The Lion King, anything similar?",
        {"intent": "recommend", "liked": ["Lion King, The (1994)"]},
    ),
    (
        "i really did not like Batman Forever",
        {"intent": "recommend", "disliked": ["Batman Forever (1995)"]},
    ),
    (
        "Drama or mystery, ideally from the sixties",
        {"intent": "recommend", "genres": ["Drama", "Mystery"], "years": (1960, 1969)},
    ),
    (
        "something suspenseful but with no gore or violence",
        {"intent": "recommend", "genres": ["Thriller"], "not_genres": ["Horror"]},
    ),
    ("Which year was Amadeus released?", {"intent": "lookup", "mentioned": ["Amadeus (1984)"]}),
    ("good morning", {"intent": "chat"}),
    (
        "What's a lesser known war film?",
        {"intent": "recommend", "genres": ["War"], "popular": False},
    ),
    ("I want to laugh tonight", {"intent": "recommend", "genres": ["Comedy"]}),
    ("anything except cartoons", {"intent": "recommend", "not_genres": ["Animation"]}),
    (
        "films like Die Hard or Speed",
        {"intent": "recommend", "liked": ["Die Hard (1988)", "Speed (1994)"]},
    ),
    (
        "a western made before 1970",
        {"intent": "recommend", "genres": ["Western"], "years": (None, 1969)},
    ),
    ("recommend a famous musical", {"intent": "recommend", "genres": ["Musical"], "popular": True}),
    ("I'm in the mood for a detective story", {"intent": "recommend", "genres": ["Mystery"]}),
    (
        "not a horror fan. maybe some fantasy?",
        {"intent": "recommend", "genres": ["Fantasy"], "not_genres": ["Horror"]},
    ),
    ("movies from 1977 to 1983", {"intent": "recommend", "years": (1977, 1983)}),
    (
        "an animated film that adults will enjoy too",
        {"intent": "recommend", "genres": ["Animation"]},
    ),
    (
        "Anything like 'The Usual Suspects'?",
        {"intent": "recommend", "liked": ["Usual Suspects, The (1995)"]},
    ),
    (
        "I've seen Forrest Gump a hundred times, what else is there",
        {"intent": "recommend", "liked": ["Forrest Gump (1994)"]},
    ),
    ("thank you so much!", {"intent": "chat"}),
    (
        "sci fi thriller from the late 90s",
        {"intent": "recommend", "genres": ["Sci-Fi", "Thriller"], "years": (1996, 1999)},
    ),
    (
        "documentaries, but skip anything about war",
        {"intent": "recommend", "genres": ["Documentary"], "not_genres": ["War"]},
    ),
    (
        "a scary film like Alien",
        {"intent": "recommend", "genres": ["Horror"], "liked": ["Alien (1979)"]},
    ),
    ("what genre is Vertigo", {"intent": "lookup", "mentioned": ["Vertigo (1958)"]}),
    (
        "an adventure from the early 80s like Raiders of the Lost Ark",
        {
            "intent": "recommend",
            "genres": ["Adventure"],
            "years": (1980, 1983),
            "liked": ["Raiders of the Lost Ark (1981)"],
        },
    ),
    (
        "some underrated comedies from the 70s",
        {"intent": "recommend", "genres": ["Comedy"], "years": (1970, 1979), "popular": False},
    ),
    (
        "a love story that isn't a musical",
        {"intent": "recommend", "genres": ["Romance"], "not_genres": ["Musical"]},
    ),
    (
        "crime films, I couldn't stand Natural Born Killers",
        {"intent": "recommend", "genres": ["Crime"], "disliked": ["Natural Born Killers (1994)"]},
    ),
]
