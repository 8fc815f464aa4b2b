"""A labelled request set for the planner: requests generated from a catalog, each with its gold plan.

InteRecAgent measures a planner on requests of known meaning; recai generates them from the
catalog so any dataset gets its own set. :func:`generate` writes requests of these kinds
(:data:`KINDS`):

- ``chit_chat`` ("hello", "thanks"): no tools, the plan ``{"steps": []}``;
- ``genre``, ``years`` (a decade, an open or closed year range, "early 80s"), ``popularity``
  ("the most popular westerns", "hidden gems"): hard conditions;
- ``like_title`` ("something like Toy Story"): the soft filter's seed titles;
- ``profile`` ("something for me"): the user's taste alone; ``profile_intent``: taste plus a
  condition ("given what I like, a comedy");
- ``negation`` ("no horror", "I hated Titanic"): refused genres and unwanted titles;
- ``misspelling``: a request of another kind with one genre word or title misspelt;
- ``combined``: genre, years, a title and a refusal in one request.

Each request carries its **gold plan** in the agent's plan format (exactly what
:func:`recai_agent.plan.plan_from_slots` writes for the gold slots: catalog values and titles,
the tools in order) and its **target**: the same plan with titles as the request says them,
which is what a planner is trained to write (the agent grounds a written title to the catalog;
a catalog small enough for an enum of titles in the schema gets its exact titles here too;
a generated request is kept only when its target, validated and grounded by
:func:`~recai_agent.plan.validate_plan`, gives back the gold plan).

**Held out by construction**: every kind's sentence templates, year phrasings and genre synonyms
are split in two disjoint families, ``train`` and ``test``; seed titles are split too (by a
stable hash of the title). A split's random draws come from its own seed, so the phrasings used
for testing are never used for training and the score measures generalisation, not recall.
Output is deterministic for a given catalog, split and seed; :func:`write_jsonl` writes one
request per line.

**Sealed**: the rule extractor (:mod:`recai_agent.slots`) was later fixed by reading its errors
on the ``test`` family, so that family stopped being held out from the rules and its score
became optimistic. A third family, ``sealed``, has its own sentence templates
(:data:`SEALED_TEMPLATES`), year phrasings (:data:`SEALED_YEAR_PHRASES`), genre synonyms
(:data:`SEALED_GENRE_WORDS`, beside the genre's own name, which every family says) and
popularity words, none of them a train or test one, and its own seed titles (the next
best-known titles after the :data:`MAX_TITLES` that train and test split between them). Its
phrasings were written as users type requests, without reading the rules, and they stay as
first measured. **The rule: sealed requests are only ever measured.** Never read their errors
to fix the rules, never train on them, never tune a prompt or a threshold on them; a fix
found there unseals the family (write a new one, then). Adding the family changed nothing in
what ``train`` and ``test`` generate.

**Paraphrases**: :func:`paraphrase` has any LLM backend rewrite held-out requests and keeps a
rewrite only where :class:`ParaphraseChecker` finds the gold plan still right (every genre,
refusal, year range, title and popularity still said, read with the catalog's facts and its
fuzzy title grounding, not with the rule extractor, so the set is not bent toward what the
rules read). Kept rewrites have kind ``<kind>+paraphrase`` (reported apart) and the report
counts what was kept and why the rest was not. ``python -m recai_agent.requests OUT.jsonl
--paraphrase hf.v1`` writes a held-out set with them.

>>> from recai.data import Catalog
>>> cat = Catalog(ids=[1, 2, 3], titles=["Toy Story (1995)", "Scream (1996)", "Heat (1995)"],
...               fields={"genres": [("Animation", "Comedy"), ("Horror",), ("Action", "Crime")],
...                       "year": [1995, 1996, 1995]})
>>> reqs = generate(cat, "test", 40, seed=0)
>>> len(reqs), sorted({r.kind for r in reqs}) == sorted(KINDS)
(40, True)
>>> r = next(r for r in reqs if r.kind == "genre"); r.plan["steps"][-1]
{'tool': 'map', 'input': {}}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recai.data import Catalog
from recai.data.grounding import Grounder, normalize_text
from recai.errors import DataError, RecaiError
from recai.types import Message

from .plan import MAX_TITLE_ENUM, plan_from_slots, plan_schema, validate_plan
from .slots import GENRE_SYNONYMS, CatalogFacts, Slots

__all__ = [
    "KINDS",
    "PARAPHRASE",
    "ParaphraseChecker",
    "ParaphraseReport",
    "Request",
    "SEALED_GENRE_WORDS",
    "SEALED_TEMPLATES",
    "SEALED_YEAR_PHRASES",
    "SPLITS",
    "Split",
    "base_kind",
    "generate",
    "paraphrase",
    "read_jsonl",
    "write_jsonl",
]

Split = Literal["train", "test", "sealed"]
#: The request families (see the module docstring); ``sealed`` is only ever measured.
SPLITS: tuple[Split, ...] = ("train", "test", "sealed")

#: The kinds of request, in the order of :data:`WEIGHTS`.
KINDS = (
    "chit_chat",
    "genre",
    "years",
    "popularity",
    "like_title",
    "profile",
    "profile_intent",
    "negation",
    "misspelling",
    "combined",
)
#: How often each kind is drawn (chit-chat and profile-only have few distinct phrasings).
WEIGHTS = {
    "chit_chat": 0.05,
    "genre": 0.13,
    "years": 0.13,
    "popularity": 0.09,
    "like_title": 0.13,
    "profile": 0.04,
    "profile_intent": 0.09,
    "negation": 0.13,
    "misspelling": 0.11,
    "combined": 0.10,
}
#: The tools a generated plan uses (a planner under evaluation is offered these).
PLAN_TOOLS = ("hard_filter", "soft_filter", "ranking", "map")
#: Most seed titles drawn from (the best-known ones when interaction counts are given).
MAX_TITLES = 400

# -- phrasings: every list is (train family, test family), disjoint -------------------------------
# Placeholders: {g} a genre as an adjective ("a {g} film"), {G} as a noun phrase ("some {G}"),
# {g2}/{G2} a second genre, {ng}/{NG} a refused genre, {y} a year phrase, {t}/{t2} liked titles,
# {dt} a disliked title.
_Templates = tuple[tuple[str, ...], tuple[str, ...]]

TEMPLATES: dict[str, _Templates] = {
    "chit_chat": (
        (
            "hello",
            "hi there",
            "thanks a lot!",
            "good evening",
            "how are you today?",
            "bye for now",
            "that's all, thank you",
            "nice, cheers",
            "hi! how's your day?",
            "ok, thanks for the help",
        ),
        (
            "hey!",
            "good morning",
            "thank you so much",
            "see you later",
            "hello, how is it going?",
            "ok great, thanks",
            "have a nice day",
            "hiya",
            "many thanks, goodbye",
            "good afternoon to you",
        ),
    ),
    "genre": (
        (
            "recommend me a {g} movie",
            "I'd like to watch some {G}",
            "any good {G}?",
            "show me {G}",
            "I'm in the mood for a {g} film",
            "{G} please",
            "a {g} or {g2} movie",
            "I like {G} and {G2}",
        ),
        (
            "got any {G}?",
            "what {g} films would you suggest?",
            "find me a good {g} flick",
            "looking for {G} tonight",
            "I feel like watching a {g} movie",
            "suggest either {G} or {G2}",
            "in the mood for {G} or maybe {G2}",
        ),
    ),
    "years": (
        (
            "{G} {y}",
            "a {g} movie {y}",
            "films {y}",
            "recommend something {y}",
            "I want to see {G} {y}",
        ),
        (
            "any {G} {y}?",
            "I want a {g} flick {y}",
            "movies {y} please",
            "what's good {y}?",
            "show me a {g} picture {y}",
        ),
    ),
    "popularity": (
        (
            "the most popular {G}",
            "well-known {G}",
            "popular movies {y}",
            "some hidden gems",
            "underrated {G}",
            "lesser-known {g} films",
            "what are the most watched {G}?",
        ),
        (
            "famous {G}",
            "blockbuster {G}",
            "hidden gem {g} movies",
            "obscure {G} please",
            "the best known films {y}",
            "little-known {G}",
        ),
    ),
    "like_title": (
        (
            "something like {t}",
            "movies similar to {t}",
            "I loved {t}, what else?",
            "more like {t} and {t2}",
            "if I liked {t}, what should I watch?",
            "a {g} movie like {t}",
        ),
        (
            "anything in the spirit of {t}?",
            "I really enjoyed {t}. Recommend similar ones",
            "films resembling {t} or {t2}",
            "{t} was great, give me more like it",
            "{G} similar to {t}",
        ),
    ),
    "profile": (
        (
            "recommend me something",
            "what should I watch tonight?",
            "any suggestions for me?",
            "surprise me",
            "pick something I'd enjoy",
            "what's a good movie for me?",
        ),
        (
            "what would I like?",
            "got any recommendations?",
            "based on my taste, what next?",
            "find me something good to watch",
            "what do you think I should see?",
            "suggest a movie for me",
        ),
    ),
    "profile_intent": (
        (
            "something for me, maybe {G}",
            "given my history, I'd like a {g} film",
            "based on my taste, something {y}",
            "for me: a {g} movie {y}",
        ),
        (
            "knowing what I like, any {G}?",
            "for my taste, a {g} movie {y}",
            "what fits my profile {y}?",
            "pick {G} that suit me",
        ),
    ),
    "negation": (
        (
            "anything but {NG}",
            "no {NG} please",
            "I don't want {NG}",
            "a {g} movie, but no {NG}",
            "{G} without {NG}",
            "I hated {dt}. Recommend something else",
            "a {g} film, I didn't like {dt}",
        ),
        (
            "nothing with {NG}",
            "please skip {NG}",
            "I hate {NG}, suggest something else",
            "{G}, except {NG}",
            "{dt} was awful; show me {G}",
            "I couldn't stand {dt}, any other ideas?",
        ),
    ),
    "combined": (
        (
            "a {g} movie {y} like {t}, no {NG}",
            "{G} {y}, not {NG}",
            "something like {t} {y}",
        ),
        (
            "{G} {y} similar to {t} but no {NG}",
            "any {G} {y}? no {NG} though",
            "films {y} resembling {t}",
        ),
    ),
}

#: More training phrasings: a 135M model memorises a handful of templates within one epoch
#: (training loss 0.001) and then reads a held-out phrasing badly, so the training family is
#: much wider than the test family. Written as general English requests, not from the test
#: family; the tests check that no training template, year phrasing or request text is a test one.
MORE_TRAIN: dict[str, tuple[str, ...]] = {
    "chit_chat": (
        "hey there", "hello!", "thanks!", "thank you", "cheers", "good night", "goodbye",
        "ok thanks", "great, thank you", "hi, how are you?", "morning!", "that was helpful, thanks",
        "bye", "see ya", "much appreciated",
    ),
    "genre": (
        "can you recommend some {G}?", "what are some good {G}?", "I want to watch a {g} movie",
        "give me a {g} film", "do you have any {G}?", "I'd love a good {g} movie",
        "tonight I want {G}", "looking for a {g} film", "need a {g} movie for tonight",
        "could you suggest a {g} movie?", "let's watch some {G}", "I enjoy {G}",
        "recommend {G} or {G2}", "a {g} movie or maybe a {g2} one",
        "either {G} or {G2} would be fine", "I'm a big fan of {G}", "what {G} do you have?",
        "find a {g} movie for me", "pick a {g} film", "{g} and {g2} movies",
        "something {g}", "I'm craving {G}", "show me your best {G}",
    ),
    "years": (
        "a {g} film {y}", "any movies {y}?", "something {y} please", "I'd like a film {y}",
        "recommend a {g} movie {y}", "show me films {y}", "a good movie {y}",
        "looking for movies {y}", "{g} films {y} please", "can I get {G} {y}?",
        "give me something {y}", "{G} {y}, thanks",
    ),
    "popularity": (
        "crowd-pleasing {G}", "mainstream {g} movies", "the biggest {g} hits", "overlooked {G}",
        "niche {g} films", "under-the-radar {G}", "popular {G} please", "some well-known {G}",
        "any underrated {G}?", "a popular {g} movie {y}", "overlooked films {y}",
        "mainstream hits {y}", "some niche picks", "the most popular films",
    ),
    "like_title": (
        "I enjoyed {t}, anything similar?", "recommend movies like {t}", "what's similar to {t}?",
        "I'm a fan of {t}", "{t} is my favourite, more like that", "something in the style of {t}",
        "movies like {t} or {t2}", "loved {t} and {t2}, what next?",
        "I liked {t}. any suggestions?", "similar to {t} please", "a {g} film similar to {t}",
        "{G} like {t}", "my favourite is {t}, what else would I like?",
    ),
    "profile": (
        "recommend something for me", "what do you recommend?", "anything for me tonight?",
        "give me a recommendation", "I need something to watch", "what should I see next?",
        "help me pick a movie", "what would you pick for me?", "any movie ideas for me?",
    ),
    "profile_intent": (
        "something I'd like, {g} if possible", "a {g} movie that fits my taste",
        "what {G} would I like?", "using my history, a movie {y}", "given my taste, any {G} {y}?",
        "a {g} film I would enjoy", "for me, {G} please", "my kind of {g} movie",
    ),
    "negation": (
        "not {NG} please", "no {NG}, anything else", "I can't stand {NG}", "avoid {NG}",
        "keep {NG} out of it", "I'm not into {NG}", "{G} but not {NG}",
        "a {g} film without any {NG}", "please, no {NG}", "I did not enjoy {dt}, suggest others",
        "{dt} was terrible. what else?", "I disliked {dt}, recommend something else",
        "not a fan of {dt}; any {G}?", "{G} please, no {NG}", "anything except {NG}",
    ),
    "combined": (
        "{G} {y} like {t} but not {NG}", "a {g} film {y}, similar to {t}, no {NG}",
        "looking for {G} {y}, no {NG}", "movies {y} like {t}", "a {g} movie {y} without {NG}",
        "like {t}, {y}, no {NG}",
    ),
}  # fmt: skip
for _kind, _more in MORE_TRAIN.items():
    TEMPLATES[_kind] = (TEMPLATES[_kind][0] + _more, TEMPLATES[_kind][1])

#: Year phrasings: ``kind -> (train, test)``; {a}/{b} years, {d2} two-digit decade ("80"),
#: {d4} four-digit decade ("1980"), {w} the decade's word ("eighties").
YEAR_PHRASES: dict[str, _Templates] = {
    "decade": (("from the {d2}s", "from the {w}", "made in the {d4}s"), ("of the {d4}s", "in the {d2}s", "released in the {w}")),
    "after": (("released after {a}", "newer than {a}"), ("made after {a}", "post-{a}")),
    "since": (("from {a} onwards", "since {a}"), ("{a} or later", "from {a} on")),
    "before": (("before {a}", "older than {a}"), ("released before {a}", "pre-{a}")),
    "until": (("up to {a}", "{a} or earlier"), ("no later than {a}", "until {a}")),
    "between": (("between {a} and {b}", "from {a} to {b}"), ("{a}-{b}", "from {a} through {b}")),
    "early": (("from the early {d2}s",), ("early {d4}s",)),
    "late": (("from the late {d4}s",), ("late {d2}s",)),
}  # fmt: skip
#: More training year phrasings (see :data:`MORE_TRAIN`).
MORE_TRAIN_YEARS: dict[str, tuple[str, ...]] = {
    "decade": ("during the {w}", "from the {d4}s", "in the {w}"),
    "after": ("later than {a}", "after {a}"),
    "since": ("{a} and newer", "{a} onward", "starting from {a}", "no earlier than {a}"),
    "before": ("prior to {a}", "earlier than {a}"),
    "until": ("not after {a}", "{a} at the latest"),
    "between": ("{a} to {b}", "between the years {a} and {b}"),
    "early": ("in the early {w}", "the early {d2}s"),
    "late": ("in the late {w}", "the late {d4}s"),
}  # fmt: skip
for _kind, _more in MORE_TRAIN_YEARS.items():
    YEAR_PHRASES[_kind] = (YEAR_PHRASES[_kind][0] + _more, YEAR_PHRASES[_kind][1])
_DECADE_WORDS = {
    1920: "twenties",
    1930: "thirties",
    1940: "forties",
    1950: "fifties",
    1960: "sixties",
    1970: "seventies",
    1980: "eighties",
    1990: "nineties",
}

#: Genre words for common film genres: ``value -> (adjectives, noun phrases)``; the first of
#: each is shared by both families, the others alternate between train and test.
GENRE_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Action": (("action", "action-packed"), ("action movies", "action films", "action flicks")),
    "Adventure": (("adventure",), ("adventure films", "adventures", "adventure movies")),
    "Animation": (("animated", "cartoon", "animation"), ("cartoons", "animated films", "animated movies")),
    "Children's": (("children's", "kids", "family-friendly"), ("kids' movies", "children's films", "family films")),
    "Comedy": (("comedy", "funny", "hilarious", "comedic"), ("comedies", "funny movies", "comedy films")),
    "Crime": (("crime", "gangster", "heist"), ("crime movies", "gangster films", "crime films")),
    "Documentary": (("documentary",), ("documentaries", "docs", "documentary films")),
    "Drama": (("drama", "dramatic"), ("dramas", "drama films", "dramatic films")),
    "Fantasy": (("fantasy", "magical"), ("fantasy films", "fantasy movies", "magical films")),
    "Film-Noir": (("film noir", "noir"), ("film noir", "noirs", "noir films")),
    "Horror": (("horror", "scary", "creepy"), ("horror movies", "scary movies", "horror films")),
    "Musical": (("musical",), ("musicals", "musical films", "movie musicals")),
    "Mystery": (("mystery", "detective", "whodunit"), ("mysteries", "detective stories", "whodunits")),
    "Romance": (("romance", "romantic"), ("romances", "love stories", "romantic films")),
    "Sci-Fi": (("sci-fi", "science fiction", "scifi", "futuristic"), ("sci-fi", "science fiction films", "space movies")),
    "Thriller": (("thriller", "suspenseful", "suspense"), ("thrillers", "suspense films", "thriller movies")),
    "War": (("war", "military"), ("war movies", "war films", "military films")),
    "Western": (("western", "cowboy"), ("westerns", "cowboy movies", "western films")),
}  # fmt: skip
#: Genre values never asked for (a catalog's placeholder for a missing genre).
SKIP_VALUES = frozenset({"unknown", "(no genres listed)", "none", "other", ""})

# -- the sealed family: only ever measured (see the module docstring) ------------------------------
#: Sentence templates of the ``sealed`` family, same placeholders as :data:`TEMPLATES`; written
#: as requests people type, not from the rules, and left as first measured.
SEALED_TEMPLATES: dict[str, tuple[str, ...]] = {
    "chit_chat": (
        "yo", "evening!", "thx", "cool, that's everything", "catch you later",
        "appreciate it", "hello there, bot", "morning, how are things?",
        "brilliant, thank you kindly", "great chat, bye!",
    ),
    "genre": (
        "could you point me to a {g} movie worth watching?", "{G}. what have you got?",
        "I'm after a really good {g} film, any ideas", "it's movie night and everyone wants {G}",
        "which {G} would you put on for me?", "either a {g} film or a {g2} one would do",
        "{G} or {G2}, I can't decide", "need a {g} film to unwind with",
    ),
    "years": (
        "anything good {y}?", "I've been craving a {g} film {y}", "got something {y} for tonight?",
        "can you dig up a {g} movie {y}", "list some {G} {y}", "what should I watch {y}",
    ),
    "popularity": (
        "what are the {G} everyone has seen?", "show me the crowd favourites {y}",
        "I'm after some deep cuts in {G}", "{G} that nobody has heard of",
        "a {g} movie that flew under the radar", "which {G} were huge hits?",
        "off the beaten path {g} picks, please",
    ),
    "like_title": (
        "just watched {t} and loved it. what next?", "anything with the same vibe as {t}?",
        "I'm looking for films along the lines of {t}",
        "{t} and {t2} are two of my favourites, find me more",
        "recommend a {g} film for someone who loves {t}", "more in the vein of {t}, please",
    ),
    "profile": (
        "what do you reckon I'd enjoy?", "I'm bored, put something on for me",
        "you know my taste, what's next?", "any picks for me tonight?",
        "I don't know what to watch, help", "show me what you'd recommend for me",
    ),
    "profile_intent": (
        "with my tastes in mind, find me some {G}",
        "I'd like a {g} film that matches what I usually watch",
        "something {y} that I'd probably like", "which {G} {y} would suit someone like me?",
        "based on what I've rated, a {g} pick please",
    ),
    "negation": (
        "I'm sick of {NG}, show me anything else", "anything at all as long as it isn't {NG}",
        "{G} would be nice, just keep away from {NG}",
        "watched {dt} last week and hated it, what else have you got?",
        "{dt} bored me to tears. something different please",
        "a {g} movie would be great, but {NG} is a hard no",
    ),
    "combined": (
        "I'm after {G} {y}, a bit like {t}, and definitely no {NG}",
        "loved {t}; do you know {G} {y} in that style that aren't {NG}?",
        "{G} {y} in the same vein as {t}, but steer clear of {NG}",
        "what else {y} has the feel of {t} without being {NG}?",
    ),
}  # fmt: skip
#: Year phrasings of the ``sealed`` family (placeholders as in :data:`YEAR_PHRASES`).
SEALED_YEAR_PHRASES: dict[str, tuple[str, ...]] = {
    "decade": ("that came out in the {d4}s", "from the {d2}'s", "of {d4}s vintage", "straight out of the {w}"),
    "after": ("more recent than {a}", "that came out after the year {a}"),
    "since": ("{a} and up", "{a} and beyond", "from {a} forward", "made in {a} or after"),
    "before": ("from before the year {a}", "predating {a}"),
    "until": ("{a} or before", "{a} and older"),
    "between": ("from {a} till {b}", "{a} thru {b}"),
    "early": ("from the start of the {w}", "early-{d2}s"),
    "late": ("from the tail end of the {w}", "late-{d4}s"),
}  # fmt: skip
#: Genre synonyms of the ``sealed`` family: ``value -> (adjectives, noun phrases)``, said
#: beside the genre's own first word (:data:`GENRE_WORDS`), which every family shares.
SEALED_GENRE_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Action": (("high-octane", "adrenaline-fuelled"), ("action pictures", "shoot-em-ups")),
    "Adventure": (("swashbuckling", "adventurous"), ("adventure stories", "quest movies")),
    "Animation": (("hand-drawn", "cartoony"), ("animations", "animated features")),
    "Children's": (("kid-friendly", "child-friendly"), ("movies for kids", "films for children")),
    "Comedy": (("laugh-out-loud", "humorous"), ("comedy movies", "humorous films")),
    "Crime": (("mob", "cops-and-robbers"), ("mob movies", "crime stories")),
    "Documentary": (("non-fiction", "factual"), ("non-fiction films", "documentary movies")),
    "Drama": (("serious", "character-driven"), ("dramatic movies", "drama movies")),
    "Fantasy": (("sword-and-sorcery", "mythical"), ("fantasy stories", "fantasy epics")),
    "Film-Noir": (("noirish", "hardboiled"), ("noir movies", "noir classics")),
    "Horror": (("spooky", "terrifying"), ("horror flicks", "spooky films")),
    "Musical": (("song-and-dance", "singalong"), ("song-and-dance movies", "musical movies")),
    "Mystery": (("sleuth", "mysterious"), ("mystery movies", "mystery films")),
    "Romance": (("lovey-dovey", "swoon-worthy"), ("romance movies", "romantic movies")),
    "Sci-Fi": (("space-age", "dystopian"), ("science-fiction movies", "sci fi flicks")),
    "Thriller": (("nail-biting", "edge-of-your-seat"), ("suspense movies", "nail-biters")),
    "War": (("wartime", "battlefield"), ("combat movies", "battle films")),
    "Western": (("wild-west", "frontier"), ("cowboy films", "wild-west movies")),
}  # fmt: skip
#: Popularity words of the sealed templates (beside :data:`_POPULAR` / :data:`_UNPOPULAR`).
_SEALED_POPULAR = ("everyone has seen", "crowd favourites", "huge hits")
_SEALED_UNPOPULAR = ("deep cuts", "nobody has heard of", "under the radar", "off the beaten path")
#: How many seed titles the sealed family draws from (the best-known after train and test's).
_SEALED_TITLES = MAX_TITLES // 2


def _templates(kind: str, split: Split) -> tuple[str, ...]:
    return SEALED_TEMPLATES[kind] if split == "sealed" else TEMPLATES[kind][split != "train"]


def _year_phrases(kind: str, split: Split) -> tuple[str, ...]:
    if split == "sealed":
        return SEALED_YEAR_PHRASES[kind]
    return YEAR_PHRASES[kind][split != "train"]


_TITLE_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 '&:.,!?-]{1,40}$")
_ARTICLE = re.compile(r"^(.*), (The|A|An|Les|La|Le|Il|El|Das|Die|Der)$")


@dataclass
class Request:
    """One labelled request: the text, its kind and template family, the gold plan (catalog
    values and titles) and the target (titles as said), and the gold slots for the metrics."""

    id: str
    split: str
    kind: str
    template: str
    request: str
    plan: dict[str, Any]
    target: dict[str, Any]
    slots: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "split": self.split,
            "kind": self.kind,
            "template": self.template,
            "request": self.request,
            "plan": self.plan,
            "target": self.target,
            "slots": self.slots,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Request:
        return cls(
            id=str(d["id"]),
            split=str(d.get("split", "")),
            kind=str(d.get("kind", "")),
            template=str(d.get("template", "")),
            request=str(d["request"]),
            plan=dict(d["plan"]),
            target=dict(d.get("target") or d["plan"]),
            slots=dict(d.get("slots") or {}),
        )


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _family(values: Sequence[str], split: Split) -> list[str]:
    """The first value (shared) and every other one of the rest for ``split``."""
    if not values:
        return []
    rest = list(values[1:])
    part = rest[0::2] if split == "train" else rest[1::2]
    return [values[0], *part]


def said_title(title: str) -> str | None:
    """How a user says a catalog title: ``"Godfather, The (1972)"`` -> ``"The Godfather"``;
    ``None`` for titles no one would type (foreign alternates, symbols, very long)."""
    text = re.sub(r"\s*\((?:19|20)\d\d\)\s*$", "", str(title)).strip()
    m = _ARTICLE.match(text)
    if m:
        text = f"{m.group(2)} {m.group(1)}"
    if "(" in text or not _TITLE_OK.match(text):
        return None
    return text


class _Vocab:
    """What one split may say: genres with their words, titles with how they are said, years."""

    def __init__(
        self,
        catalog: Catalog,
        split: Split,
        grounder: Grounder,
        counts: np.ndarray | None,
    ) -> None:
        facts = CatalogFacts.of(catalog)
        self.facts = facts
        self.genre_field = facts.genre_field
        values = facts.categorical.get(facts.genre_field, []) if facts.genre_field else []
        self.genres: list[str] = [v for v in values if normalize_text(v) not in SKIP_VALUES]
        self.adj: dict[str, list[str]] = {}
        self.noun: dict[str, list[str]] = {}
        for v in self.genres:
            adj, noun = GENRE_WORDS.get(v, ((v.lower(),), (v.lower(),)))
            if split == "sealed":  # the genre's own word and the sealed synonyms
                more_adj, more_noun = SEALED_GENRE_WORDS.get(v, ((), ()))
                self.adj[v] = [adj[0], *more_adj]
                self.noun[v] = [noun[0], *more_noun]
                continue
            self.adj[v] = _family(adj, split)
            self.noun[v] = _family(noun, split)
        self.years = facts.years
        self.titles = self._titles(catalog, split, grounder, counts)

    @staticmethod
    def _titles(
        catalog: Catalog, split: Split, grounder: Grounder, counts: np.ndarray | None
    ) -> list[tuple[int, str]]:
        order = list(range(catalog.n_items))
        if counts is not None and len(counts) == catalog.n_items:
            order = [int(i) for i in np.argsort(-np.asarray(counts), kind="stable")]
        said_by: dict[str, list[int]] = {}
        for i in order:
            s = said_title(str(catalog.titles[i]))
            if s is not None:
                said_by.setdefault(normalize_text(s), []).append(i)
        out: list[tuple[int, str]] = []
        for i in order:
            if len(out) >= MAX_TITLES + (_SEALED_TITLES if split == "sealed" else 0):
                break
            s = said_title(str(catalog.titles[i]))
            if s is None or len(said_by[normalize_text(s)]) > 1:
                continue  # a remake or a namesake: "Heat" would not say which
            ids, _ = grounder.titles.top(s, 1)
            if not len(ids) or int(ids[0]) != i:
                continue  # the grounder would not find it from what the user says
            out.append((i, s))
        if split == "sealed":
            if len(out) >= MAX_TITLES + 20:  # the next best-known: no train or test seed
                return out[MAX_TITLES:]
            out = out[:MAX_TITLES]  # a catalog too small for its own slice: the test half
        if len(out) >= 20:  # enough to split: a held-out title is never a training seed
            want = 0 if split == "train" else 1
            out = [(i, s) for i, s in out if _stable(s) % 2 == want]
        return out


class _Draw:
    """One request being written: the placeholders' values and the gold slots."""

    def __init__(self, vocab: _Vocab, split: Split, rng: random.Random) -> None:
        self.vocab, self.split, self.rng = vocab, split, rng
        self.values: dict[str, str] = {}
        self.genres: list[str] = []
        self.not_genres: list[str] = []
        self.year_min: int | None = None
        self.year_max: int | None = None
        self.liked: list[int] = []
        self.disliked: list[int] = []
        self.said: dict[int, str] = {}
        self.popular: bool | None = None

    def _genre(self, exclude: Sequence[str]) -> str:
        pool = [g for g in self.vocab.genres if g not in exclude]
        if not pool:
            raise _Skip
        return self.rng.choice(pool)

    def genre(self, key: str) -> None:
        taken = [*self.genres, *self.not_genres]
        v = self._genre(taken)
        target = self.not_genres if key.lower().startswith("n") else self.genres
        target.append(v)
        if key.islower():
            self.values[key] = self.rng.choice(self.vocab.adj[v])
        else:
            self.values[key] = self.rng.choice(self.vocab.noun[v])

    def title(self, key: str) -> None:
        taken = {*self.liked, *self.disliked}
        pool = [(i, s) for i, s in self.vocab.titles if i not in taken]
        if not pool:
            raise _Skip
        i, s = self.rng.choice(pool)
        (self.disliked if key == "dt" else self.liked).append(i)
        self.said[i] = s
        self.values[key] = s

    def years(self) -> None:
        if self.vocab.years is None:
            raise _Skip
        lo_cat, hi_cat = self.vocab.years
        decades = [d for d in range(lo_cat // 10 * 10, hi_cat + 1, 10) if d + 5 <= hi_cat]
        decades = [d for d in decades if d >= 1920] or decades
        if not decades:
            raise _Skip
        kind = self.rng.choice(list(YEAR_PHRASES))
        phrase = self.rng.choice(_year_phrases(kind, self.split))
        # recent decades are asked for more often, as users do
        d = self.rng.choices(decades, weights=[1 + k for k in range(len(decades))])[0]
        a = self.rng.randint(max(lo_cat, d - 5), min(hi_cat, d + 9))
        b = self.rng.randint(a + 2, a + 12) if kind == "between" else a
        b = min(b, hi_cat)
        if kind == "between" and b <= a:
            raise _Skip
        lo, hi = {
            "decade": (d, d + 9),
            "after": (a + 1, None),
            "since": (a, None),
            "before": (None, a - 1),
            "until": (None, a),
            "between": (a, b),
            "early": (d, d + 3),
            "late": (d + 6, d + 9),
        }[kind]
        if "{w}" in phrase and d not in _DECADE_WORDS:  # no word for it: a phrasing in digits
            family = _year_phrases(kind, self.split)
            phrase = next((p for p in family if "{w}" not in p), phrase)
            if "{w}" in phrase:
                raise _Skip
        self.year_min, self.year_max = lo, hi
        self.values["y"] = phrase.format(
            a=a, b=b, d2=f"{d % 100:02d}", d4=str(d), w=_DECADE_WORDS.get(d, "")
        )

    def fill(self, template: str) -> str:
        for key in re.findall(r"\{(\w+)\}", template):
            if key in self.values:
                continue
            if key in ("g", "G", "g2", "G2", "ng", "NG"):
                self.genre(key)
            elif key in ("t", "t2", "dt"):
                self.title(key)
            elif key == "y":
                self.years()
        return template.format(**self.values)

    def slots(self, intent: str, catalog: Catalog) -> Slots:
        return Slots(
            intent="chat" if intent == "chat" else "recommend",
            genres=list(dict.fromkeys(self.genres)),
            not_genres=list(dict.fromkeys(self.not_genres)),
            year_min=self.year_min,
            year_max=self.year_max,
            liked=list(self.liked),
            disliked=list(self.disliked),
            popular=self.popular,
            genre_field=self.vocab.genre_field,
            titles={i: catalog.title(i) for i in self.said},
        )


class _Skip(Exception):
    """This draw does not fit the catalog (no title left, no years): draw again."""


#: Popularity words in the templates that mean "popular" and "not popular".
_POPULAR = ("most popular", "well-known", "popular", "most watched", "famous", "blockbuster", "best known", "crowd-pleasing", "mainstream", "biggest")  # fmt: skip
_UNPOPULAR = ("hidden gem", "underrated", "lesser-known", "obscure", "little-known", "overlooked", "niche", "under-the-radar")  # fmt: skip


def _popularity(template: str) -> bool | None:
    low = template.lower()
    if any(w in low for w in (*_UNPOPULAR, *_SEALED_UNPOPULAR)):
        return False
    if any(w in low for w in (*_POPULAR, *_SEALED_POPULAR)):
        return True
    return None


#: Words a misspelling leaves alone (they carry no slot).
_PLAIN_WORDS = frozenset({"movies", "films", "flicks", "stories", "pictures"})


def _misspell(word: str, rng: random.Random) -> str | None:
    """One typing slip in a word of at least five letters (not its first letter): two letters
    swapped, one dropped or one doubled."""
    spots = [m for m in re.finditer(r"[A-Za-z]{5,}", word) if m.group().lower() not in _PLAIN_WORDS]
    if not spots:
        return None
    m = rng.choice(spots)
    w = m.group()
    i = rng.randrange(1, len(w) - 1)
    how = rng.choice(("swap", "drop", "double"))
    if how == "swap" and w[i] != w[i + 1]:
        new = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    elif how == "drop":
        new = w[:i] + w[i + 1 :]
    else:
        new = w[:i] + w[i] + w[i:]
    return word[: m.start()] + new + word[m.end() :]


def _gold_slots(d: _Draw) -> dict[str, Any]:
    return {
        "genres": list(dict.fromkeys(d.genres)),
        "not_genres": list(dict.fromkeys(d.not_genres)),
        "year_min": d.year_min,
        "year_max": d.year_max,
        "popular": d.popular,
    }


def generate(
    catalog: Catalog,
    split: Split,
    n: int,
    *,
    seed: int = 0,
    counts: Sequence[float] | np.ndarray | None = None,
    kinds: Iterable[str] = KINDS,
) -> list[Request]:
    """``n`` labelled requests of ``split`` (``"train"``, ``"test"`` or ``"sealed"``: disjoint
    template families, year phrasings, genre synonyms and seed titles) over ``catalog``.

    ``counts`` (interactions per item) makes seed titles the best-known ones; ``kinds`` limits
    the kinds drawn (weights :data:`WEIGHTS`). Requests are distinct; kinds a catalog cannot
    express (no titles, no years, no genre field) are skipped. Deterministic for ``(catalog,
    split, n, seed, counts, kinds)``. Raises :class:`~recai.errors.DataError` when ``split`` is
    unknown or the catalog supports fewer than ``n`` distinct requests."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    wanted = [k for k in kinds]
    unknown = [k for k in wanted if k not in KINDS]
    if unknown:
        raise DataError(f"unknown request kinds {unknown} (kinds: {', '.join(KINDS)})")
    grounder = Grounder(catalog)
    vocab = _Vocab(
        catalog, split, grounder, None if counts is None else np.asarray(counts, dtype=float)
    )
    schema = plan_schema(list(PLAN_TOOLS), catalog)
    rng = random.Random(f"recai-requests:{split}:{seed}")
    family = SPLITS.index(split)
    weights = [WEIGHTS[k] for k in wanted]
    out: list[Request] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise DataError(
                f"the catalog supports only {len(out)} distinct {split} requests of kinds "
                f"{wanted}, {n} were asked for"
            )
        kind = rng.choices(wanted, weights=weights)[0]
        base = kind
        if kind == "misspelling":
            base = rng.choice(["genre", "years", "like_title", "negation", "popularity"])
        templates = _templates(base, split)
        template = rng.choice(templates)
        d = _Draw(vocab, split, rng)
        try:
            text = d.fill(template)
        except _Skip:
            continue
        if base == "popularity":
            d.popular = _popularity(template)
        if kind == "misspelling":
            slipped = _misspell_slot(text, d, rng)
            if slipped is None:
                continue
            text = slipped
        if split == "train" and base != "chit_chat":
            text = _dress(text, rng)
        if len(text) > 1 and text[0].islower() and rng.random() < 0.3:
            text = text[0].upper() + text[1:]
        key = normalize_text(text)
        if key in seen:
            continue
        intent = "chat" if base == "chit_chat" else "recommend"
        plan = plan_from_slots(d.slots(intent, catalog)).to_dict()
        target = _target(plan, d, catalog)
        if plan["steps"]:
            got, problems = validate_plan(target, schema, catalog, grounder)
            if got is None or got.to_dict() != plan:
                continue  # the target does not ground back to the gold plan: not kept
        seen.add(key)
        slots = _gold_slots(d)
        slots["seeds"] = [catalog.title(i) for i in d.liked]
        slots["unwanted"] = [catalog.title(i) for i in d.disliked]
        out.append(
            Request(
                id=f"{split}-{seed}-{len(out):05d}",
                split=split,
                kind=kind,
                template=f"{base}/{family}/{templates.index(template)}",
                request=text,
                plan=plan,
                target=target,
                slots=slots,
            )
        )
    return out


#: Openings and endings a training request may get (they carry no slot): the model learns to
#: read the request inside whatever a user wraps it in.
_OPENERS = ("hey, ", "hi, ", "ok, ", "so, ", "hmm, ", "well, ", "quick question: ", "could you help? ", "right, ")  # fmt: skip
_CLOSERS = (" please", " thanks", " thank you", "!", " :)", " if you can", ", cheers", "?")


def _dress(text: str, rng: random.Random) -> str:
    """A training request as users type it: sometimes an opening or an ending around it, all in
    lower case, or its last punctuation dropped (the test family gets none of this)."""
    if rng.random() < 0.3:
        text = rng.choice(_OPENERS) + text[0].lower() + text[1:]
    if rng.random() < 0.25 and text[-1:] not in "?!.":
        text += rng.choice(_CLOSERS)
    if rng.random() < 0.15:
        text = text.lower()
    elif rng.random() < 0.15 and text[-1:] in "?!.":
        text = text[:-1]
    return text


def _target(plan: dict[str, Any], d: _Draw, catalog: Catalog) -> dict[str, Any]:
    if catalog.n_items <= MAX_TITLE_ENUM:  # the schema's titles are an enum: write them so
        return json.loads(json.dumps(plan))
    said = {catalog.title(i): s for i, s in d.said.items()}
    target = json.loads(json.dumps(plan))
    for st in target["steps"]:
        for key in ("seeds", "unwanted"):
            if key in st["input"]:
                st["input"][key] = [said.get(t, t) for t in st["input"][key]]
    return target


def _misspell_slot(text: str, d: _Draw, rng: random.Random) -> str | None:
    """``text`` with one word of a slot (a genre word or a title) misspelt; the title's said form
    follows, so the target copies what the user typed."""
    keys = [k for k in d.values if k != "y" and _misspell(d.values[k], random.Random(0))]
    if not keys:
        return None
    key = rng.choice(keys)
    old = d.values[key]
    new = _misspell(old, rng)
    if new is None or new == old or old not in text:
        return None
    for i, s in list(d.said.items()):
        if s == old:
            d.said[i] = new
    return text.replace(old, new, 1)


def write_jsonl(requests: Iterable[Request], path: str | Path) -> int:
    """Write ``requests`` one JSON object a line; returns how many."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with p.open("w", encoding="utf-8") as f:
        for r in requests:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[Request]:
    """The requests of a JSONL file written by :func:`write_jsonl`; a bad line is a
    :class:`~recai.errors.DataError` naming the file and line."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"cannot read the request set: {e.strerror}", path=str(p)) from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if not isinstance(d, dict) or "request" not in d or "plan" not in d:
                raise ValueError('each line must be an object with "request" and "plan"')
            out.append(Request.from_dict(d))
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"not a labelled request ({e})", path=str(p), line=n) from None
    return out


# -- paraphrases of held-out requests ---------------------------------------------------------------
#: The ``kind`` suffix of a paraphrased request (``"genre+paraphrase"``), so results are
#: reported apart from the templates'.
PARAPHRASE = "+paraphrase"

PARAPHRASE_SYSTEM = (
    "You rewrite requests that a user sends to a recommender. Write the same request in other "
    "words, as a user would type it. Keep its meaning exactly: the same genres, the same years "
    "or decade, the same titles, the same things the user does not want, nothing added. Answer "
    "with the rewritten request only, on one line."
)


def base_kind(kind: str) -> str:
    """The template kind of a request's ``kind`` (``"genre+paraphrase"`` -> ``"genre"``)."""
    return kind.removesuffix(PARAPHRASE)


def _tokens(text: str) -> list[str]:
    """Lower-case words without accents or apostrophes (``"don't"`` -> ``dont``, ``"'80s"`` ->
    ``80s``); ``|`` for a clause break (``, ; . ! ? :``); ``@t`` for a masked title."""
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("\u2019", "'").replace("'", "").replace("&", " and ")
    return ["|" if t in ",;.!?:" else t for t in re.findall(r"@t|[0-9a-z]+|[,;.!?:]", text)]


def _phrase(text: str) -> tuple[str, ...]:
    return tuple(t for t in _tokens(text) if t != "|")


def _find(toks: Sequence[str], phrase: Sequence[str]) -> list[int]:
    n = len(phrase)
    return [i for i in range(len(toks) - n + 1) if tuple(toks[i : i + n]) == tuple(phrase)]


def _has(toks: Sequence[str], phrases: Iterable[Sequence[str]]) -> bool:
    return any(_find(toks, p) for p in phrases)


def _one_edit(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by one dropped, added, doubled or swapped letter, or one changed."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _phrases(*texts: str) -> list[tuple[str, ...]]:
    return [p for p in dict.fromkeys(_phrase(t) for t in texts) if p]


#: Words that refuse what follows them (within a clause): ``"no horror"``, ``"anything but"``.
_NEG_CUES = _phrases(
    "no", "not", "without", "except", "excluding", "exclude", "skip", "avoid", "nothing", "never",
    "hate", "hated", "dislike", "disliked", "nor", "besides", "minus", "don't", "doesn't",
    "isn't", "aren't", "can't", "couldn't", "won't", "didn't", "other than", "rather than",
    "instead of", "apart from", "aside from", "anything but", "everything but", "all but",
    "stay away", "steer clear", "leave out", "sick of", "tired of", "none",
)  # fmt: skip
#: Words that judge a title badly: ``"Titanic was awful"``.
_BAD_WORDS = _phrases(
    "awful", "terrible", "bad", "boring", "worst", "horrible", "dreadful", "garbage",
    "overrated", "disappointing", "disappointed", "bored", "waste", "hated", "hate", "disliked",
    "dislike", "regret", "sucked", "meh", "annoying",
)  # fmt: skip
#: Phrases with a refusal word that refuse nothing.
_NOT_REFUSALS = _phrases(
    "no later than", "no earlier than", "not after", "not before", "not popular",
    "not well known", "not famous", "none other than",
)  # fmt: skip
#: Words after which a clause turns away from a refusal: ``"no horror but a comedy"``.
_TURN = frozenset({"but", "just", "only", "rather", "instead", "though", "however", "|"})
_POPULAR_WORDS = _phrases(
    "popular", "well known", "famous", "blockbuster", "blockbusters", "most watched",
    "best known", "mainstream", "big hits", "crowd pleaser", "crowd pleasers", "widely seen",
)  # fmt: skip
_UNPOPULAR_WORDS = _phrases(
    "hidden gem", "hidden gems", "underrated", "lesser known", "obscure", "little known",
    "underground", "overlooked", "under the radar", "niche", "not well known", "less popular",
    "unpopular", "not popular", "unknown", "less known", "not famous", "unheard of",
)  # fmt: skip
#: Vague time words: they change the years a planner reads when the gold plan has none.
_TIME_WORDS = _phrases(
    "recent", "recently", "latest", "newest", "new releases", "old", "older", "oldies",
    "vintage", "classic", "classics", "modern", "contemporary", "retro", "decade", "century",
    "era", "old school",
)  # fmt: skip
#: Words that ask for recommendations (a chit-chat paraphrase has none of them).
_ASK_WORDS = _phrases(
    "recommend", "recommendation", "recommendations", "suggest", "suggestion", "suggestions",
    "movie", "movies", "film", "films", "flick", "flicks", "watch", "watching", "show me", "pick",
    "something", "anything", "game", "games", "play", "buy", "book", "books", "read",
)  # fmt: skip
#: Looser words that still ask (a profile-only paraphrase has one of these or of the above).
_ASK_LOOSE = _phrases(
    "what", "should", "for me", "taste", "like", "enjoy", "next", "ideas", "idea", "good", "see",
    "surprise", "fit", "suit", "love",
)  # fmt: skip

# year cues: before the year (the phrase ends right before it) and after it
_INCL_AFTER, _EXCL_AFTER, _INCL_BEFORE, _EXCL_BEFORE, _EXACT, _FROM = (
    "incl_after", "excl_after", "incl_before", "excl_before", "exact", "from",
)  # fmt: skip
_YEAR_BEFORE: list[tuple[tuple[str, ...], str]] = sorted(
    [
        *((p, _INCL_BEFORE) for p in _phrases("no later than", "not after", "up to", "up until", "until", "till", "through", "thru", "by")),
        *((p, _INCL_AFTER) for p in _phrases("no earlier than", "not before", "since", "starting", "starting in", "starting from", "beginning in", "as of")),
        *((p, _EXCL_AFTER) for p in _phrases("after", "post", "later than", "newer than", "more recent than", "younger than")),
        *((p, _EXCL_BEFORE) for p in _phrases("before", "pre", "prior to", "earlier than", "older than")),
        *((p, _EXACT) for p in _phrases("in", "of", "in the year")),
        *((p, _FROM) for p in _phrases("from", "from the year")),
    ],
    key=lambda x: -len(x[0]),
)  # fmt: skip
_YEAR_AFTER: list[tuple[tuple[str, ...], str]] = sorted(
    [
        *((p, _INCL_AFTER) for p in _phrases("onwards", "onward", "on", "or later", "or newer", "and later", "and newer", "and after", "or after", "and up", "or more recent", "and beyond", "plus")),
        *((p, _INCL_BEFORE) for p in _phrases("or earlier", "or older", "and earlier", "and older", "and before", "or before")),
    ],
    key=lambda x: -len(x[0]),
)  # fmt: skip
_WORD_DECADES = {w: d for d, w in _DECADE_WORDS.items()}


def _year_mentions(toks: Sequence[str]) -> list[tuple[int, str, int]]:
    """``(position, "year" | "decade", value)`` of each year or decade said."""
    out = []
    for i, t in enumerate(toks):
        m = re.fullmatch(r"(1[89]\d\d|20\d\d)(s?)", t)
        if m:
            v = int(m.group(1))
            if m.group(2) and v % 10 == 0:
                out.append((i, "decade", v))
            elif not m.group(2):
                out.append((i, "year", v))
            continue
        m = re.fullmatch(r"([0-9]0)s", t)
        if m:
            d = int(m.group(1))
            out.append((i, "decade", 1900 + d if d >= 20 else 2000 + d))
        elif t in _WORD_DECADES:
            out.append((i, "decade", _WORD_DECADES[t]))
    return out


def _clause_before(toks: Sequence[str], i: int, width: int) -> list[str]:
    out: list[str] = []
    for t in reversed(toks[max(0, i - width) : i]):
        if t == "|":
            break
        out.insert(0, t)
    return out


def _clause_after(toks: Sequence[str], i: int, width: int) -> list[str]:
    out: list[str] = []
    for t in toks[i + 1 : i + 1 + width]:
        if t == "|":
            break
        out.append(t)
    return out


def _said_years(toks: Sequence[str]) -> tuple[int | None, int | None] | None | str:
    """The year range a request says, read from its years, decades and their cue words:
    ``None`` when it says none, ``"unclear"`` when the reading is not certain."""
    found = _year_mentions(toks)
    if not found:
        return None
    if len(found) == 2 and all(k == "year" for _, k, _ in found):
        (i, _, a), (j, _, b) = found
        if a == b or not set(toks[i + 1 : j]) <= {"and", "to", "through", "thru", "until", "till"}:
            return "unclear"
        near = _clause_before(toks, i, 3)
        if any(c in (_EXCL_AFTER, _EXCL_BEFORE, _INCL_BEFORE) for c in _year_cues(near, [])):
            return "unclear"  # "after 1980 and before 1990": not a plain range
        return (min(a, b), max(a, b))
    if len(found) != 1:
        return "unclear"
    i, kind, v = found[0]
    before, after = _clause_before(toks, i, 6), _clause_after(toks, i, 3)
    mods = set()
    while before and before[-1] in ("the", "early", "late", "mid", "middle"):
        mods.add(before.pop())
    cues = _year_cues(before, after)
    if kind == "decade":
        if set(cues) - {_EXACT, _FROM}:
            return "unclear"  # "since the 80s", "before the 90s": not read here
        if mods >= {"early", "late"} or mods & {"mid", "middle"}:
            return "unclear"
        if "early" in mods:
            return (v, v + 3)
        if "late" in mods:
            return (v + 6, v + 9)
        return (v, v + 9)
    if mods - {"the"}:
        return "unclear"
    classes = set(cues) - {_EXACT}
    if _FROM in classes:  # "from 1995 on" is 1995 onwards; "from 1995" alone is not certain
        classes.discard(_FROM)
        if not classes:
            return "unclear"
    classes = classes or {_EXACT}
    if len(classes) > 1:
        return "unclear"
    return {
        _INCL_AFTER: (v, None),
        _EXCL_AFTER: (v + 1, None),
        _INCL_BEFORE: (None, v),
        _EXCL_BEFORE: (None, v - 1),
        _EXACT: (v, v),
    }[classes.pop()]


def _year_cues(before: Sequence[str], after: Sequence[str]) -> list[str]:
    cues = []
    for phrase, cls in _YEAR_BEFORE:  # the longest phrase ending right before the year
        if len(before) >= len(phrase) and tuple(before[len(before) - len(phrase) :]) == phrase:
            cues.append(cls)
            break
    for phrase, cls in _YEAR_AFTER:
        if tuple(after[: len(phrase)]) == phrase:
            cues.append(cls)
            break
    return cues


class ParaphraseChecker:
    """Whether a rewritten request may keep the original's gold plan, read against the gold
    slots with the catalog's facts and its fuzzy title grounding (not with the rule extractor,
    which would keep only what the rules can read):

    - every gold genre is still said (its value, a plural, a genre word or synonym, or a
      one-letter slip of one), not refused; every refused genre is said after a refusal word;
      no other genre of the catalog is said;
    - the years say the gold range (years, decades, "early"/"late", the cue words "after",
      "since", "before", "until", "between", read exactly; a vague "recent" or "classic" where
      the gold plan has no years is a change);
    - every seed and unwanted title is said as the user said it, or a span of the rewrite
      grounds to the same catalog item (top match, score at least ``title_score``); a disliked
      title is judged badly or refused, a liked one is not; a quoted title not in the plan is
      a change;
    - popularity words say the gold popularity; a refusal appears exactly where the gold plan
      refuses something; a chit-chat rewrite asks for nothing;
    - the rewrite's target (the gold plan with titles as now said), validated and grounded by
      :func:`~recai_agent.plan.validate_plan`, gives back the gold plan;
    - it is not a request already seen (the original, ``avoid``) nor a training template, and
      it is a request: not the instructions repeated ("genre Comedy; ..."), no remark on the
      request ("This user requests"), no statement ("The movie is based on a novel").

    :meth:`check` gives ``None`` (keep) or the reason it is rejected."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        grounder: Grounder | None = None,
        avoid: Iterable[str] = (),
        title_score: float = 0.6,
    ) -> None:
        self.catalog = catalog
        self.grounder = grounder or Grounder(catalog)
        self.title_score = title_score
        self.schema = plan_schema(list(PLAN_TOOLS), catalog)
        facts = CatalogFacts.of(catalog)
        values = facts.categorical.get(facts.genre_field, []) if facts.genre_field else []
        self.genre_phrases: dict[tuple[str, ...], set[str]] = {}
        for v in values:
            if normalize_text(v) in SKIP_VALUES:
                continue
            adj, noun = GENRE_WORDS.get(v, ((), ()))
            key = " ".join(_phrase(v))
            words = [v, *adj, *noun, *GENRE_SYNONYMS.get(key, ())]
            for w in words:
                for p in _phrases(w, *_plural_forms(w)):
                    self.genre_phrases.setdefault(p, set()).add(v)
        self.by_title: dict[str, int] = {}
        for i, t in enumerate(catalog.titles):
            self.by_title.setdefault(str(t), i)
        self.avoid = {normalize_text(t) for t in avoid}
        words = sorted(
            {w for v in values for group in GENRE_WORDS.get(v, ((v,), ())) for w in (v, *group)},
            key=len,
            reverse=True,
        )
        self.train_templates = [
            re.compile(_template_pattern(t, words), re.IGNORECASE)
            for fams in TEMPLATES.values()
            for t in fams[0]
        ]

    # -- the reading ------------------------------------------------------------------------------
    def genres_said(self, toks: Sequence[str]) -> list[tuple[int, int, set[str]]]:
        """``(start, end, genres)`` of each genre word, longest first, not overlapping."""
        taken = [False] * len(toks)
        out = []
        for p in sorted(self.genre_phrases, key=len, reverse=True):
            for i in _find(toks, p):
                if any(taken[i : i + len(p)]):
                    continue
                taken[i : i + len(p)] = [True] * len(p)
                out.append((i, i + len(p), self.genre_phrases[p]))
        return sorted(out, key=lambda x: x[0])

    def _slipped(self, toks: Sequence[str], genre: str) -> list[int]:
        """Positions of one-letter slips of ``genre``'s one-word forms of 5 letters or more."""
        words = [p[0] for p, gs in self.genre_phrases.items() if genre in gs and len(p) == 1]
        known = {p[0] for p in self.genre_phrases if len(p) == 1}
        return [
            i
            for i, t in enumerate(toks)
            if len(t) >= 4
            and t not in known
            and any(len(w) >= 5 and _one_edit(t, w) for w in words)
        ]

    @staticmethod
    def refused(toks: Sequence[str], start: int) -> bool:
        """Whether a refusal word comes before ``start`` in its clause (5 words at most, no
        turn such as "but" in between)."""
        before = _clause_before(toks, start, 6)
        for k in range(len(before) - 1, -1, -1):
            if any(tuple(before[max(0, k + 1 - len(p)) : k + 1]) == p for p in _NEG_CUES):
                return True  # a refusal ending here ("anything but", "rather than")
            if before[k] in _TURN:
                return False
        return False

    def _ground_title(
        self, text: str, item: int, said: str
    ) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """The character spans of ``text`` that say the title of ``item``: where ``said`` is
        (case and punctuation aside), else the best span of words that grounds to ``item``
        and that span with its neighbouring words of the title (slips included)."""
        words = [re.escape(w) for w in re.findall(r"[0-9A-Za-z]+", said)]
        if words:
            m = re.search(
                r"(?<![0-9A-Za-z])" + r"[\W_]*".join(words) + r"(?![0-9A-Za-z])",
                text,
                re.IGNORECASE,
            )
            if m:
                return m.span(), m.span()
        spans = [(m.start(), m.end()) for m in re.finditer(r"[^\s\"“”]+", text)]
        n = max(1, len(words))
        best: tuple[float, int, int] | None = None
        for length in range(max(1, n - 1), n + 2):
            for k in range(len(spans) - length + 1):
                a, b = spans[k][0], spans[k + length - 1][1]
                piece = text[a:b].strip(" ,.;:!?'\"")
                if not piece:
                    continue
                ids, scores = self.grounder.titles.top(piece, 1)
                good = len(ids) and int(ids[0]) == item and scores[0] >= self.title_score
                if good and (best is None or scores[0] > best[0]):
                    best = (float(scores[0]), a, b)
        if best is None:
            return None
        # the best-scoring span may leave out a slipped word ("The Crying" of "The Crying Gaem"):
        # take in each neighbouring word that is a word of the title, or one slip from one
        title_words = {w.lower() for w in re.findall(r"[0-9A-Za-z]+", self.catalog.title(item))}

        def of_title(a: int, b: int) -> bool:
            w = re.sub(r"[^0-9a-z]", "", text[a:b].lower())
            return bool(w) and (
                w in title_words or (len(w) >= 4 and any(_one_edit(w, t) for t in title_words))
            )

        k0 = next(k for k, sp in enumerate(spans) if sp[0] == best[1])
        k1 = next(k for k, sp in enumerate(spans) if sp[1] == best[2])
        while k0 > 0 and of_title(*spans[k0 - 1]):
            k0 -= 1
        while k1 + 1 < len(spans) and of_title(*spans[k1 + 1]):
            k1 += 1
        return (best[1], best[2]), (spans[k0][0], spans[k1][1])

    # -- the verdict ------------------------------------------------------------------------------
    def check(self, request: Request, text: str) -> tuple[str | None, dict[str, Any] | None]:
        """``(None, target)`` when ``text`` may keep ``request``'s gold plan (``target``: its
        plan with titles as ``text`` says them), else ``(reason, None)``."""
        gold = request.slots
        if not gold:
            raise DataError(f"request {request.id} has no gold slots: it cannot be paraphrased")
        text = text.strip()
        key = normalize_text(text)
        if not key:
            return "empty", None
        if key == normalize_text(request.request) or key in self.avoid:
            return "a request already in the set", None
        if len(text) > max(200, 3 * len(request.request) + 40) or "\n" in text:
            return "too long", None
        if any(p.fullmatch(text.rstrip(" .!?")) for p in self.train_templates):
            return "a training template", None
        # titles first: they are masked, so "Star Wars" is no war film and "1941" no year
        said = _said_titles(request)
        masked = text
        spans: list[tuple[int, int, int]] = []  # as grounded, and widened to the title's words
        wide: list[tuple[int, int, int]] = []
        for title in [*gold.get("seeds", []), *gold.get("unwanted", [])]:
            item = self.by_title.get(title)
            if item is None:
                return f"title {title!r} is not in the catalog", None
            found = self._ground_title(text, item, said.get(title, title))
            if found is None:
                return "a title is lost", None
            spans.append((*found[0], item))
            wide.append((*found[1], item))
        for a, b, _ in sorted(wide, reverse=True):
            masked = masked[:a] + " @t " + masked[b:]
        for q in re.findall(r"[\"“]([^\"”]{2,60})[\"”]", masked):
            if q.strip() and q.strip() != "@t":
                return "a quoted title not in the plan", None
        toks = _tokens(masked)
        reason = _not_a_request(text, toks, chat=not request.plan.get("steps"))
        if reason:
            return reason, None
        reason = self._check_words(gold, toks, not request.plan.get("steps"))
        if reason:
            return reason, None
        if not request.plan.get("steps"):
            return None, self._target(request, text, spans)  # chit-chat: nothing to ground
        for said_spans in dict.fromkeys([tuple(wide), tuple(spans)]):
            target = self._target(request, text, said_spans)
            got, _ = validate_plan(target, self.schema, self.catalog, self.grounder)
            if got is not None and got.to_dict() == request.plan:
                return None, target
        return "the plan does not ground back", None

    def _check_words(self, gold: dict[str, Any], toks: list[str], chat: bool) -> str | None:
        genres, refused = set(gold.get("genres", [])), set(gold.get("not_genres", []))
        found = self.genres_said(toks)
        scan = list(toks)  # for refusals: "not popular", "no later than" refuse nothing
        for p in _NOT_REFUSALS:
            for i in _find(scan, p):
                scan[i : i + len(p)] = [""] * len(p)
        for _, _, gs in found:
            if not gs & (genres | refused):
                return "adds a genre"
        for g in genres:
            at = [s for s, _, gs in found if g in gs] + self._slipped(toks, g)
            if not any(not self.refused(scan, s) for s in at):
                return "a genre is lost"
        for g in refused:
            at = [s for s, _, gs in found if g in gs] + self._slipped(toks, g)
            if not any(self.refused(scan, s) for s in at):
                return "a refusal is lost"
        for s, _, gs in found:  # a word of a wanted genre said as refused (or the reverse)
            if gs <= genres and self.refused(scan, s) and not gs & refused:
                return "a wanted genre is refused"
        years = _said_years(toks)
        want = (gold.get("year_min"), gold.get("year_max"))
        if want == (None, None):
            if years is not None or _has(toks, _TIME_WORDS):
                return "adds years"
        elif years != want:
            return "the years change"
        pop = gold.get("popular")
        unpop_at = [i for p in _UNPOPULAR_WORDS for i in _find(toks, p)]
        plain = [t if not any(i <= k < i + 3 for i in unpop_at) else "" for k, t in enumerate(toks)]
        says_pop, says_unpop = _has(plain, _POPULAR_WORDS), bool(unpop_at)
        if (says_pop, says_unpop) != (pop is True, pop is False):
            return "the popularity changes"
        titles_at = [i for i, t in enumerate(toks) if t == "@t"]
        n_seeds = len(gold.get("seeds", []))
        refusing = bool(refused) or bool(gold.get("unwanted"))
        neg_anywhere = [i for p in _NEG_CUES for i in _find(scan, p)]
        bad_anywhere = [i for p in _BAD_WORDS for i in _find(scan, p)]
        if not refusing and (neg_anywhere or bad_anywhere):
            return "adds a refusal"
        if gold.get("unwanted") and not (neg_anywhere or bad_anywhere):
            return "a refusal is lost"
        if n_seeds and not gold.get("unwanted"):
            for i in titles_at:
                after = _clause_after(toks, i, 3)
                if self.refused(scan, i) or _has(after, _BAD_WORDS):
                    return "a liked title is refused"
        asks = _has(toks, _ASK_WORDS)
        if chat and (found or years is not None or asks or titles_at):
            return "chit-chat asks for something"
        bare = not (genres or refused or want != (None, None) or pop is not None or titles_at)
        if not chat and bare and not (asks or _has(toks, _ASK_LOOSE)):
            return "no longer asks"
        return None

    def _target(
        self, request: Request, text: str, spans: Sequence[tuple[int, int, int]]
    ) -> dict[str, Any]:
        """The gold plan's target with each title as ``text`` says it (a catalog small enough
        for an enum of titles keeps the exact titles)."""
        target = json.loads(json.dumps(request.target))
        if self.catalog.n_items <= MAX_TITLE_ENUM:
            return target
        now = {self.catalog.title(item): text[a:b].strip(" ,.;:!?'\"") for a, b, item in spans}
        for st, gold_st in zip(target["steps"], request.plan["steps"], strict=False):
            for key in ("seeds", "unwanted"):
                if key in st["input"] and key in gold_st["input"]:
                    st["input"][key] = [
                        now.get(g, t)
                        for g, t in zip(gold_st["input"][key], st["input"][key], strict=False)
                    ]
        return target


#: Words of a remark on the request rather than a request ("This user requests: ...").
_META_WORDS = frozenset(
    {"request", "requests", "requested", "rewrite", "rewritten", "paraphrase", "user", "sentence"}
)
#: Verbs that make "The movie is based on a novel" a statement when it opens with these words.
_STATEMENT_OPENERS = frozenset({"the", "this", "that", "your", "it", "its", "he", "she", "they"})
_STATEMENT_VERBS = frozenset(
    {"is", "was", "are", "were", "has", "have", "had", "must", "will", "would", "can", "could"}
)
_ECHO = re.compile(
    r"must still say|\b(?:dis)?liked title\b|\bpopular titles\b|\blittle-known titles\b|"
    r"\bgenre [A-Z]|\bnot [A-Z][\w'-]*;|\byears \d{4} to \d{4}"
)


def _not_a_request(text: str, toks: Sequence[str], chat: bool) -> str | None:
    """Why a backend's answer is no user request (it repeats the instructions, remarks on the
    request, or states something), or ``None``."""
    if _ECHO.search(text):
        return "echoes the instructions"
    if _META_WORDS & set(toks):
        return "a remark on the request"
    if not chat and toks and toks[0] in _STATEMENT_OPENERS and _STATEMENT_VERBS & set(toks):
        return "a statement, not a request"
    return None


def _plural_forms(word: str) -> list[str]:
    last = word.split()[-1] if word.split() else ""
    if len(last) < 3 or not last.isalpha() or last.endswith("s"):
        return []
    if last.endswith("y") and last[-2:-1] not in "aeiou":
        return [word[:-1] + "ies"]
    return [word + "s", word + "es"] if last.endswith(("x", "ch", "sh")) else [word + "s"]


def _template_pattern(template: str, genre_words: Sequence[str]) -> str:
    """A regex that a request written from ``template`` matches in full (ends aside): a genre
    placeholder is one of ``genre_words`` (a plural too), ``{y}`` a training year phrasing, a
    title any text."""
    genre = (
        "(?:" + "|".join(re.escape(w) for w in genre_words) + ")(?:e?s)?" if genre_words else ".+?"
    )
    fill = {"a": r"\d{4}", "b": r"\d{4}", "d2": r"\d\d", "d4": r"\d{4}", "w": r"[a-z]+ies"}
    said = [
        "".join(fill.get(q.strip("{}"), "") if q.startswith("{") else re.escape(q) for q in bits)
        for fams in YEAR_PHRASES.values()
        for phrase in fams[0]
        for bits in [re.split(r"(\{\w+\})", phrase)]
    ]
    years = "(?:" + "|".join(said) + ")"
    parts = re.split(r"(\{\w+\})", template.rstrip(" .!?"))
    return "".join(
        re.escape(p)
        if not p.startswith("{")
        else genre
        if p.strip("{}").lower() in ("g", "g2", "ng")
        else years
        if p == "{y}"
        else ".+?"
        for p in parts
    )


def _said_titles(request: Request) -> dict[str, str]:
    """Gold catalog title -> the title as the request said it (from the target)."""
    out: dict[str, str] = {}
    for st, tst in zip(
        request.plan.get("steps", []), request.target.get("steps", []), strict=False
    ):
        for key in ("seeds", "unwanted"):
            for g, t in zip(
                st.get("input", {}).get(key, []), tst.get("input", {}).get(key, []), strict=False
            ):
                out[str(g)] = str(t)
    return out


@dataclass
class ParaphraseReport:
    """What :func:`paraphrase` did: the backend, how many rewrites were asked for and written,
    how many were kept (in all and per kind) and why the others were rejected."""

    backend: str
    models: list[str] = field(default_factory=list)
    requests: int = 0
    asked: int = 0
    kept: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    kept_by_kind: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "models": self.models,
            "requests": self.requests,
            "asked": self.asked,
            "kept": self.kept,
            "rejected": dict(sorted(self.rejected.items(), key=lambda x: -x[1])),
            "kept_by_kind": dict(sorted(self.kept_by_kind.items())),
            "seconds": round(self.seconds, 2),
        }

    def line(self) -> str:
        why = ", ".join(f"{k} {v}" for k, v in self.to_dict()["rejected"].items()) or "none"
        return (
            f"{self.backend}: {self.kept} of {self.asked} paraphrases of {self.requests} "
            f"requests kept in {self.seconds:.0f} s (rejected: {why})"
        )


def backend_name(llm: Any) -> str:
    """A backend's name as a recipe would say it (``hf.v1(model=smollm2)``), else its class."""
    built = getattr(llm, "_recai_built_as", None)
    if built is not None:
        model = (built[1] or {}).get("model") if isinstance(built[1], dict) else None
        return f"{built[0]}(model={model})" if model else str(built[0])
    return type(llm).__name__


def _hints(r: Request) -> str:
    s = r.slots
    out = [f"genre {g}" for g in s.get("genres", [])]
    out += [f"not {g}" for g in s.get("not_genres", [])]
    lo, hi = s.get("year_min"), s.get("year_max")
    if lo is not None and hi is not None:
        out.append(f"years {lo} to {hi}")
    elif lo is not None:
        out.append(f"years from {lo} on")
    elif hi is not None:
        out.append(f"years up to {hi}")
    said = _said_titles(r)
    out += [f'liked title "{said.get(t, t)}"' for t in s.get("seeds", [])]
    out += [f'disliked title "{said.get(t, t)}"' for t in s.get("unwanted", [])]
    if s.get("popular") is not None:
        out.append("popular titles" if s["popular"] else "little-known titles")
    return "; ".join(out)


def paraphrase_messages(r: Request, hints: bool = True) -> list[Message]:
    """The conversation that asks a backend to rewrite ``r`` (with the gold values as hints
    when ``hints``: the writer knows what must survive; the checker decides what does)."""
    user = f"Request: {r.request}"
    if hints and _hints(r):
        user += f"\nIt must still say: {_hints(r)}."
    return [Message.system(PARAPHRASE_SYSTEM), Message.user(user)]


def clean_paraphrase(text: str) -> str:
    """The rewritten request in a backend's answer: its first line, without a label
    (``"Rewritten request:"``), a list number or surrounding quotes."""
    for line in str(text).splitlines():
        line = line.strip()
        line = re.sub(r"^(?:\d+[.)]|[-*•])\s+", "", line)
        line = re.sub(
            r"^(?:here(?: is|'s)[^:]*|rewritten(?: request)?|paraphrase[d]?(?: request)?|"
            r"request|rewrite|answer|user)\s*:\s*",
            "",
            line,
            flags=re.IGNORECASE,
        ).strip()
        if len(line) >= 2 and line[0] in "\"'“" and line[-1] in "\"'”":
            line = line[1:-1].strip()
        if line:
            return line
    return ""


def paraphrase(
    requests: Sequence[Request],
    llm: Any,
    catalog: Catalog,
    *,
    per_request: int = 1,
    seed: int = 0,
    temperature: float = 0.7,
    max_tokens: int = 64,
    batch_size: int = 8,
    hints: bool = True,
    avoid: Iterable[str] = (),
    checker: ParaphraseChecker | None = None,
) -> tuple[list[Request], ParaphraseReport]:
    """Rewrites of held-out ``requests`` by any :class:`~recai.roles.LLMBackend` ``llm``,
    each kept only when :class:`ParaphraseChecker` finds its gold plan still right.

    A kept rewrite is a :class:`Request` of the same split with the gold plan and slots, the
    target's titles as the rewrite says them, ``kind`` + :data:`PARAPHRASE`, ``template`` +
    ``"/paraphrase"`` and id ``<id>-p<k>``. ``avoid``: texts no rewrite may be (the training
    requests); the originals are avoided too, and rewrites are distinct. ``per_request``
    rewrites are asked for each request (seeds ``seed``, ``seed + 1``, ...), ``batch_size``
    conversations per ``chat_batch`` call. Returns the kept requests and the report."""
    if per_request < 1 or batch_size < 1:
        raise DataError(
            f"per_request and batch_size must be at least 1 ({per_request}, {batch_size})"
        )
    held = [r for r in requests if r.split == "train"]
    if held:
        raise DataError(
            f"{len(held)} requests are from the training split (first: {held[0].id}): "
            "paraphrases are written for the held-out set only"
        )
    originals = [r.request for r in requests]
    checker = checker or ParaphraseChecker(catalog, avoid=[*avoid, *originals])
    report = ParaphraseReport(backend=backend_name(llm), requests=len(requests))
    reasons: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    models: dict[str, None] = {}
    seen: set[str] = set()
    out: list[Request] = []
    start = time.perf_counter()
    for k in range(per_request):
        for b in range(0, len(requests), batch_size):
            batch = requests[b : b + batch_size]
            convs = [paraphrase_messages(r, hints) for r in batch]
            answers = llm.chat_batch(
                convs, max_tokens=max_tokens, temperature=temperature, seed=seed + k
            )
            for r, answer in zip(batch, answers, strict=True):
                report.asked += 1
                if getattr(answer, "model", ""):
                    models[str(answer.model)] = None
                text = clean_paraphrase(answer.text)
                reason, target = checker.check(r, text)
                key = normalize_text(text)
                if reason is None and key in seen:
                    reason = "a duplicate"
                if reason is not None or target is None:
                    reasons[reason or "rejected"] += 1
                    continue
                seen.add(key)
                kinds[r.kind] += 1
                out.append(
                    Request(
                        id=f"{r.id}-p{k}",
                        split=r.split,
                        kind=base_kind(r.kind) + PARAPHRASE,
                        template=f"{r.template}/paraphrase",
                        request=text,
                        plan=json.loads(json.dumps(r.plan)),
                        target=target,
                        slots=json.loads(json.dumps(r.slots)),
                    )
                )
    report.seconds = time.perf_counter() - start
    report.kept = len(out)
    report.rejected = dict(reasons)
    report.kept_by_kind = dict(kinds)
    report.models = list(models)
    return out, report


# -- the command ----------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of the command that writes a labelled request set (``python -m
    recai_agent.requests``), optionally with paraphrases of its held-out requests."""
    parser.description = (
        "Write a labelled request set (JSONL) over a dataset's catalog; with --paraphrase, "
        "add rewrites of its held-out requests by an LLM backend, kept only where the gold "
        "plan still holds (kind '<kind>+paraphrase')."
    )
    parser.add_argument("out", help="JSONL file to write (the set, then the kept paraphrases)")
    parser.add_argument("--dataset", default="movielens-100k.v1", help="dataset of the catalog")
    parser.add_argument(
        "--split",
        default="test",
        help=f"the request family: {', '.join(SPLITS)} (sealed: only ever measured)",
    )
    parser.add_argument("--n", type=int, default=600, help="requests to generate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated requests")
    parser.add_argument("--paraphrase", metavar="BACKEND", help="llm_backend to rewrite with")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a param of the backend (repeatable; VALUE read as JSON where it parses)",
    )
    parser.add_argument(
        "--paraphrase-n", type=int, default=0, help="paraphrase the first N (0: all)"
    )
    parser.add_argument("--per-request", type=int, default=1, help="rewrites asked per request")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--no-hints", action="store_true", help="do not tell the backend the gold values"
    )
    parser.add_argument(
        "--avoid", help="JSONL of requests no paraphrase may repeat (the training set)"
    )
    parser.add_argument("--report", help="where the report goes (default: OUT.paraphrase.json)")
    parser.set_defaults(func=run)


def _param(text: str) -> tuple[str, Any]:
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise RecaiError(f"--param {text!r}: expected KEY=VALUE, e.g. --param threads=2")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def run(args: argparse.Namespace) -> int:
    import recai

    for name in ("n", "per_request", "batch_size"):
        if getattr(args, name) < 1:
            raise RecaiError(
                f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}"
            )
    if args.paraphrase_n < 0:
        raise RecaiError(f"--paraphrase-n must not be negative, got {args.paraphrase_n}")
    if args.split not in SPLITS:
        raise RecaiError(f"--split {args.split!r} is not a request family ({', '.join(SPLITS)})")
    params = dict(_param(p) for p in args.param)
    if params and not args.paraphrase:
        raise RecaiError("--param is for the --paraphrase backend: name one")
    if args.paraphrase and args.split != "test":
        raise RecaiError("--paraphrase rewrites held-out requests: use it with --split test")
    dataset = recai.create("dataset", args.dataset).dataset()
    catalog = dataset.catalog
    counts = np.bincount(dataset.interactions.items, minlength=catalog.n_items)
    reqs = generate(catalog, args.split, args.n, seed=args.seed, counts=counts)
    extra: list[Request] = []
    if args.paraphrase:
        avoid = [r.request for r in read_jsonl(args.avoid)] if args.avoid else []
        llm = recai.create("llm_backend", args.paraphrase, **params)
        some = reqs[: args.paraphrase_n] if args.paraphrase_n else reqs
        extra, report = paraphrase(
            some,
            llm,
            catalog,
            per_request=args.per_request,
            seed=args.seed,
            temperature=args.temperature,
            batch_size=args.batch_size,
            hints=not args.no_hints,
            avoid=avoid,
        )
        path = Path(args.report or f"{args.out}.paraphrase.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
        print(report.line())
    n = write_jsonl([*reqs, *extra], args.out)
    print(f"wrote {n} requests ({len(reqs)} generated, {len(extra)} paraphrases) to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recai_agent.requests")
    configure(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except RecaiError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
