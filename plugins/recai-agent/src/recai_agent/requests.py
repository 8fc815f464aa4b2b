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

import hashlib
import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recai.data import Catalog
from recai.data.grounding import Grounder, normalize_text
from recai.errors import DataError

from .plan import MAX_TITLE_ENUM, plan_from_slots, plan_schema, validate_plan
from .slots import CatalogFacts, Slots

__all__ = [
    "KINDS",
    "Request",
    "Split",
    "generate",
    "read_jsonl",
    "write_jsonl",
]

Split = Literal["train", "test"]

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
            if len(out) >= MAX_TITLES:
                break
            s = said_title(str(catalog.titles[i]))
            if s is None or len(said_by[normalize_text(s)]) > 1:
                continue  # a remake or a namesake: "Heat" would not say which
            ids, _ = grounder.titles.top(s, 1)
            if not len(ids) or int(ids[0]) != i:
                continue  # the grounder would not find it from what the user says
            out.append((i, s))
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
        phrase = self.rng.choice(YEAR_PHRASES[kind][0 if self.split == "train" else 1])
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
        if "{w}" in phrase and d not in _DECADE_WORDS:
            phrase = YEAR_PHRASES["decade"][0][0]
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
_POPULAR = ("most popular", "well-known", "popular", "most watched", "famous", "blockbuster", "best known")  # fmt: skip
_UNPOPULAR = ("hidden gem", "underrated", "lesser-known", "obscure", "little-known")


def _popularity(template: str) -> bool | None:
    low = template.lower()
    if any(w in low for w in _UNPOPULAR):
        return False
    if any(w in low for w in _POPULAR):
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
    """``n`` labelled requests of ``split`` (``"train"`` or ``"test"``: disjoint template
    families, year phrasings, genre synonyms and seed titles) over ``catalog``.

    ``counts`` (interactions per item) makes seed titles the best-known ones; ``kinds`` limits
    the kinds drawn (weights :data:`WEIGHTS`). Requests are distinct; kinds a catalog cannot
    express (no titles, no years, no genre field) are skipped. Deterministic for ``(catalog,
    split, n, seed, counts, kinds)``. Raises :class:`~recai.errors.DataError` when ``split`` is
    unknown or the catalog supports fewer than ``n`` distinct requests."""
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
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
    family = 0 if split == "train" else 1
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
        templates = TEMPLATES[base][family]
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
