"""The scripted user simulator of ``conversation.v1`` (``simulation = "scripted"``).

A deterministic stand-in for the LLM that plays the user: it knows the hidden target and the
user's history, and reveals the target **one clue per turn**, never its title, so that agents are
compared offline, without an LLM for the user, and reproducibly (the same seed writes the same
messages). The clues, in the order ``script`` gives (each kind may repeat to reveal more; the
default is genres, decade, similar, words, fields, similar, words):

- ``genres``: up to three values of the catalog's genre-like field (``genres``, ``genre``,
  ``categories``, ``category``, ``main_category`` or ``tags``, the first present; else the first
  multi-valued field): *"I'm looking for something with genres Comedy and Romance."*
- ``decade``: from a ``year`` field or the first date field: *"It should be from the 1990s."*
- ``similar``: the history item closest to the target (most genre values shared, then most
  users in common in the training interactions, then the most recent), named by its title:
  *"Something similar to Heat (1995), which I liked."* A second ``similar`` names the next one.
- ``words``: three distinctive words of the target's free-text field (a description: the first
  text field averaging over 60 characters), rarest in the catalog first, never words of its
  title; a second ``words`` gives the next three.
- ``fields``: the next other field with a value (a categorical field such as ``developer`` or
  ``brand``, or another multi-valued one such as ``tags``): *"Its developer should be Valve."*

Kinds the catalog cannot serve (no date, no description) and clues that would name the target
(a developer called like the game) are skipped. The first message opens with the first clue;
each later one declines the listed items, if the reply listed any, and gives the next clue; once
the clues run out, the user sums them all up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from recai.data import Catalog, Interactions

from .scoring import core_title, mentions_title

__all__ = ["ClueKind", "CLUE_KINDS", "DEFAULT_SCRIPT", "Clue", "ScriptedUser"]

ClueKind = Literal["genres", "decade", "similar", "words", "fields"]
CLUE_KINDS: tuple[ClueKind, ...] = ("genres", "decade", "similar", "words", "fields")
#: The default script: every kind once, then a second similar item and more words.
DEFAULT_SCRIPT: tuple[ClueKind, ...] = (*CLUE_KINDS, "similar", "words")

GENRE_FIELDS = ("genres", "genre", "categories", "category", "main_category", "tags")
YEAR_FIELDS = ("year", "release_year")
#: Mean length above which a text field is a description (free text), not a category.
TEXT_LENGTH = 60
MAX_VALUES = 3
WORDS_PER_CLUE = 3
_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?")
_WORD = re.compile(r"[a-z][a-z'-]{3,}")
_STOP_WORDS = """about above after again against also among another because been before being below
    between both cannot could does doing down during each even every from further have having
    here hers herself himself into itself just like made make many more most much must near
    only other ours ourselves over same should some such than that their theirs them
    themselves then there these they this those through under until very were what when where
    which while whom will with within would your yours yourself yourselves world story film
    movie game book product item new first one two three life young finds must"""
_STOP = frozenset(_STOP_WORDS.split())

OPENERS = ("Hi! ", "Hello. ", "")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "genres": (
        "I'm looking for something with {field} {values}.",
        "Can you suggest something with {field} {values}?",
        "I'd like something in {values}.",
    ),
    "decade": (
        "It should be from the {decade}s.",
        "Ideally something from the {decade}s.",
        "I'd prefer one from the {decade}s.",
    ),
    "similar": (
        "Something similar to {title}, which I liked.",
        "I enjoyed {title}; something like that.",
        "I'd like something in the spirit of {title}.",
    ),
    "words": (
        "It should be about {words}.",
        "Think {words}.",
        "Something that has to do with {words}.",
    ),
    "fields": ("Its {field} should be {value}.", "I'd like its {field} to be {value}."),
}
DECLINES = ("None of those, thanks.", "No, not those.", "I don't want any of these.")
ANSWERS = ("", "Sure. ", "Let me say more. ")
SUMMARY = "To sum up what I want: {clues}"


@dataclass(frozen=True)
class Clue:
    """One revealed attribute: its kind and the sentence that says it."""

    kind: str
    text: str


def _and(values: Sequence[str]) -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(float(value))
    if isinstance(value, np.datetime64):
        return bool(np.isnat(value))
    if isinstance(value, tuple | list):
        return not value
    return isinstance(value, str) and not value.strip()


class ScriptedUser:
    """Writes the scripted user's messages for one catalog (see the module docstring).

    ``train`` holds the interactions the user co-occurrence of ``similar`` is counted on (the
    training split: no held-out item counts). Thread-safe after construction; everything is a
    pure function of the seed, the user, the target, the history and the turn.
    """

    def __init__(
        self,
        catalog: Catalog,
        train: Interactions,
        script: Sequence[str] = DEFAULT_SCRIPT,
        *,
        seed: int = 0,
    ):
        self.catalog = catalog
        self.train = train
        self.script = [str(k) for k in script]
        self.seed = int(seed)
        fields = catalog.fields
        self.genre_field = next((f for f in GENRE_FIELDS if f in fields), None)
        multi = [f for f, col in fields.items() if _kind(col) == "multi"]
        if self.genre_field is None and multi:
            self.genre_field = multi[0]
        self.year_field = next(
            (f for f in YEAR_FIELDS if f in fields and _kind(fields[f]) == "number"), None
        ) or next((f for f, col in fields.items() if _kind(col) == "date"), None)
        self.text_field = next((f for f, col in fields.items() if _kind(col) == "text"), None)
        self.other_fields = [
            f
            for f, col in fields.items()
            if f != self.genre_field and _kind(col) in ("category", "multi")
        ]
        self._idf: dict[str, float] | None = None
        self._item_users: dict[int, set[int]] | None = None

    def describe(self) -> dict[str, Any]:
        """What the simulator uses of the catalog (for the report)."""
        return {
            "simulator": "scripted",
            "script": list(self.script),
            "genre_field": self.genre_field,
            "year_field": self.year_field,
            "text_field": self.text_field,
            "other_fields": list(self.other_fields),
        }

    # -- the clues --------------------------------------------------------------------------------
    def clues(self, user: int, target: int, history: Sequence[int]) -> list[Clue]:
        """The clues revealed to the agent, in order, for ``user`` seeking ``target``."""
        rng = np.random.default_rng([self.seed, int(user), int(target), 11])
        title = core_title(self.catalog.title(int(target)))
        used: dict[str, int] = {}
        out: list[Clue] = []
        for kind in self.script:
            nth = used.get(kind, 0)
            used[kind] = nth + 1
            text = self._clue(kind, nth, int(target), history)
            if text is None:
                continue
            template = TEMPLATES[kind][int(rng.integers(len(TEMPLATES[kind])))]
            sentence = template.format(**text)
            if mentions_title(sentence, title):  # never give the title away
                continue
            out.append(Clue(kind, sentence))
        return out

    def _clue(
        self, kind: str, nth: int, target: int, history: Sequence[int]
    ) -> dict[str, str] | None:
        fields = self.catalog.fields
        if kind == "genres":
            if nth or self.genre_field is None:
                return None
            values = _values(fields[self.genre_field][target])[:MAX_VALUES]
            if not values:
                return None
            return {"field": self.genre_field.replace("_", " "), "values": _and(values)}
        if kind == "decade":
            if nth or self.year_field is None:
                return None
            year = _year(fields[self.year_field][target])
            return None if year is None else {"decade": str(year // 10 * 10)}
        if kind == "similar":
            ranked = self.similar(target, history)
            return None if nth >= len(ranked) else {"title": self.catalog.title(ranked[nth])}
        if kind == "words":
            words = self.words(target)[nth * WORDS_PER_CLUE : (nth + 1) * WORDS_PER_CLUE]
            return {"words": _and(words)} if words else None
        if kind == "fields":
            have = [
                f for f in self.other_fields if _values(fields[f][target])
            ]  # fields with a value for this item
            if nth >= len(have):
                return None
            name = have[nth]
            return {
                "field": name.replace("_", " "),
                "value": _and(_values(fields[name][target])[:MAX_VALUES]),
            }
        raise ValueError(f"unknown clue kind {kind!r}; choose from {', '.join(CLUE_KINDS)}")

    def similar(self, target: int, history: Sequence[int]) -> list[int]:
        """History items by closeness to ``target``, closest first (see the module docstring)."""
        target_title = core_title(self.catalog.title(target)).lower()
        genres = (
            set(_values(self.catalog.fields[self.genre_field][target]))
            if self.genre_field is not None
            else set()
        )
        fans = self._users_of(target)
        seen: set[int] = set()
        scored = []
        for position, item in enumerate(int(i) for i in history):
            if item == target or item in seen:
                continue
            seen.add(item)
            if core_title(self.catalog.title(item)).lower() == target_title:
                continue
            theirs = (
                set(_values(self.catalog.fields[self.genre_field][item]))
                if self.genre_field is not None
                else set()
            )
            union = genres | theirs
            jaccard = len(genres & theirs) / len(union) if union else 0.0
            common = len(fans & self._users_of(item))
            scored.append((-jaccard, -common, -position, item))
        return [item for *_, item in sorted(scored)]

    def words(self, target: int) -> list[str]:
        """Distinctive words of the target's description, rarest in the catalog first."""
        if self.text_field is None:
            return []
        text = self.catalog.fields[self.text_field][target]
        if not _is_text(text):
            return []
        idf = self._document_frequencies()
        title_words = set(_WORD.findall(self.catalog.title(target).lower()))
        found = {
            w for w in _WORD.findall(str(text).lower()) if w not in _STOP and w not in title_words
        }
        return sorted(found, key=lambda w: (-idf.get(w, 0.0), w))

    def _document_frequencies(self) -> dict[str, float]:
        if self._idf is None:
            assert self.text_field is not None
            counts: dict[str, int] = {}
            docs = 0
            for text in self.catalog.fields[self.text_field]:
                if _is_text(text):
                    docs += 1
                    for w in set(_WORD.findall(str(text).lower())):
                        counts[w] = counts.get(w, 0) + 1
            self._idf = {w: math.log((1 + docs) / (1 + c)) for w, c in counts.items()}
        return self._idf

    def _users_of(self, item: int) -> set[int]:
        if self._item_users is None:
            by_item: dict[int, set[int]] = {}
            for u, i in zip(self.train.users.tolist(), self.train.items.tolist(), strict=True):
                by_item.setdefault(int(i), set()).add(int(u))
            self._item_users = by_item
        return self._item_users.get(int(item), set())

    # -- the messages -----------------------------------------------------------------------------
    def message(
        self, user: int, target: int, clues: Sequence[Clue], turn: int, listed: bool
    ) -> str:
        """The user's message at ``turn`` (1-based); ``listed``: the agent's last reply listed
        items (they are declined)."""
        rng = np.random.default_rng([self.seed, int(user), int(target), int(turn)])
        if turn == 1:
            lead = OPENERS[int(rng.integers(len(OPENERS)))]
        elif listed:
            lead = DECLINES[int(rng.integers(len(DECLINES)))] + " "
        else:
            lead = ANSWERS[int(rng.integers(len(ANSWERS)))]
        if not clues:
            return lead + "Can you recommend something for me?"
        if turn <= len(clues):
            return lead + clues[turn - 1].text
        return lead + SUMMARY.format(clues=" ".join(c.text for c in clues))


def _kind(column: Any) -> str:
    """``number``, ``date``, ``multi``, ``category``, ``text`` or ``other``."""
    array = np.asarray(column) if not isinstance(column, np.ndarray) else column
    if array.dtype.kind in "fiu":
        return "number"
    if array.dtype.kind == "M":
        return "date"
    values = [v for v in array.tolist()[:2000] if not _missing(v)]
    if not values:
        return "other"
    if all(isinstance(v, tuple | list) for v in values):
        return "multi"
    if all(isinstance(v, str) for v in values):
        if all(_DATE.match(v) for v in values):
            return "date"
        mean = sum(len(v) for v in values) / len(values)
        if mean > TEXT_LENGTH:
            return "text"
        # a value (nearly) every item has its own is an identifier, not an attribute
        return "other" if len(values) > 20 and len(set(values)) > 0.9 * len(values) else "category"
    return "other"


def _values(value: Any) -> list[str]:
    if _missing(value):
        return []
    if isinstance(value, tuple | list):
        return [str(v) for v in value if _is_text(v)]
    return [str(value)] if _is_text(value) else []


def _year(value: Any) -> int | None:
    if _missing(value):
        return None
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[Y]").astype(np.int64)) + 1970
    if isinstance(value, str):  # dates kept as text
        found = re.match(r"\s*(\d{4})", value)
        return int(found.group(1)) if found else None
    try:
        year = int(float(value))
    except (TypeError, ValueError):
        return None
    return year if 1000 <= year <= 3000 else None
