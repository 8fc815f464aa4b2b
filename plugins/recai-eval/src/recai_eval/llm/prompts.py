"""Prompt templates of the LLM tasks, and how items are written into them.

Templates are Python format strings with named placeholders (write a literal brace as ``{{``);
every task accepts its own ``template`` (and ``system_prompt``) in place of the defaults below,
and checks at construction that a custom template uses only the placeholders it fills.
Items are written as their title, optionally followed by catalog fields:
``Heat (1995) | genres: Action, Crime``.

>>> from recai.data import Catalog
>>> cat = Catalog(ids=[1], titles=["Heat (1995)"], fields={"genres": [("Action", "Crime")]})
>>> item_text(cat, 0, ["genres"])
'Heat (1995) | genres: Action, Crime'
>>> render("Pick {k} of: {items}", {"k", "items"}, k=2, items="a, b")
'Pick 2 of: a, b'
"""

from __future__ import annotations

import math
import string
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from recai.data import Catalog
from recai.errors import DataError

__all__ = [
    "item_text",
    "numbered",
    "bulleted",
    "lettered",
    "render",
    "check_template",
    "check_fields",
    "DEFAULT_SYSTEM",
    "RETRIEVAL",
    "RANKING",
    "CF_CHOICE",
    "SEQ_CHOICE",
    "EXPLAIN",
    "JUDGE_SYSTEM",
    "JUDGE",
    "SIMULATOR",
    "RECOMMENDER",
    "GREETING",
    "HISTORY_LINE",
    "EMBEDDING_QUERY",
]

FIELD_SEPARATOR = " | "

DEFAULT_SYSTEM = (
    "You are a recommender system. Follow the requested answer format exactly and write "
    "nothing else."
)

RETRIEVAL = (
    "A user has interacted with these items, oldest first:\n{history}\n\n"
    "Recommend the {k} items this user is most likely to choose next, most likely first. "
    "Recommend only items the user has not interacted with. Write one title per line, "
    "numbered from 1 to {k}, and nothing else."
)

RANKING = (
    "A user has interacted with these items, oldest first:\n{history}\n\n"
    "Here are {n} candidate items, in random order:\n{candidates}\n\n"
    "Rank all {n} candidates by how likely the user is to choose each one next, most likely "
    "first. Use each candidate title exactly once, copied exactly, and no other titles. Write "
    "one title per line, numbered from 1 to {n}, and nothing else."
)

CF_CHOICE = (
    "A user has interacted with these items, in no particular order:\n{history}\n\n"
    "Which one of the following {n} items has this user also interacted with?\n{options}\n\n"
    "Answer with the letter ({letters}) of one option only."
)

SEQ_CHOICE = (
    "A user has interacted with these items, oldest first:\n{history}\n\n"
    "Which one of the following {n} items is the user most likely to choose next?\n{options}\n\n"
    "Answer with the letter ({letters}) of one option only."
)

EXPLAIN = (
    "A user has interacted with these items, oldest first:\n{history}\n\n"
    "The recommender system recommends this item to the user: {item}\n\n"
    "Explain to the user, in at most {words} words, why this item suits them."
)

JUDGE_SYSTEM = (
    "You are an impartial judge of explanations written by two recommender assistants, A and "
    "B, for the same user and the same recommended item. Score each explanation from 1 (poor) "
    "to 3 (good) on three aspects:\n"
    "- informativeness: does it tell what the item really is, with correct and specific "
    "features?\n"
    "- persuasiveness: does it point to features this user, judging by their history, cares "
    "about?\n"
    "- helpfulness: does it help the user decide whether to choose the item?\n"
    "Ignore the order in which the explanations appear, their length and the assistants' "
    "names. Think briefly, then give your scores as JSON and your overall verdict:\n"
    '{{"A": {{"informativeness": 2, "persuasiveness": 2, "helpfulness": 2}}, '
    '"B": {{"informativeness": 2, "persuasiveness": 2, "helpfulness": 2}}}}\n'
    'followed by "[[A]]" if A is better, "[[B]]" if B is better, or "[[C]]" for a tie.'
)

JUDGE = (
    "[User history, oldest first]\n{history}\n\n[Recommended item]\n{item}\n\n"
    "[Explanation of assistant A]\n{answer_a}\n[End of explanation A]\n\n"
    "[Explanation of assistant B]\n{answer_b}\n[End of explanation B]"
)

SIMULATOR = (
    "You play a user who chats with a recommender system. Items you enjoyed before: "
    "{history}.\nYou are secretly looking for this item: {target}.\n"
    "Rules for every message you write:\n"
    "- Never say the title of the item you are looking for.\n"
    "- If the recommender recommends that item, accept it and thank them.\n"
    "- If it recommends other items, decline them and describe what you are looking for.\n"
    "- If it asks about your taste, describe the item you are looking for without naming it.\n"
    "Write only your next message as the user, in one or two sentences."
)

RECOMMENDER = (
    "You are a recommender system chatting with a user. If you do not know enough about what "
    "the user wants, ask about their preferences. Once you know enough, recommend {k} items as "
    "a numbered list with one title per line."
)

GREETING = "Hello! What are you looking for today?"

HISTORY_LINE = "Items this user enjoyed before, oldest first: {history}."
"""Added to an LLM recommender's system prompt when conversation.v1 shares the history."""

EMBEDDING_QUERY = "A user who has interacted with these items, oldest first: {history}"


def _value_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (tuple, list, set, frozenset)):
        parts = [str(v) for v in value if v is not None]
        return ", ".join(parts) if parts else None
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(float(value)):
            return None
        return f"{float(value):g}"
    text = str(value).strip()
    return text or None


def item_text(catalog: Catalog, item: int, fields: Sequence[str] = ()) -> str:
    """An item as prompts show it: the title, then ``" | field: value"`` for each field set."""
    parts = [catalog.title(int(item))]
    for name in fields:
        value = _value_text(catalog.fields[name][int(item)])
        if value is not None:
            parts.append(f"{name}: {value}")
    return FIELD_SEPARATOR.join(parts)


def numbered(lines: Sequence[str]) -> str:
    """``1. first`` / ``2. second`` ... one per line."""
    return "\n".join(f"{i}. {t}" for i, t in enumerate(lines, 1))


def bulleted(lines: Sequence[str]) -> str:
    """``- first`` / ``- second`` ... one per line."""
    return "\n".join(f"- {t}" for t in lines)


def lettered(lines: Sequence[str]) -> str:
    """``A. first`` / ``B. second`` ... one per line."""
    return "\n".join(f"{string.ascii_uppercase[i]}. {t}" for i, t in enumerate(lines))


def _names(template: str) -> set[str]:
    names = set()
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            names.add(name.split(".")[0].split("[")[0])
    return names


def check_template(template: str, allowed: Collection[str], what: str = "template") -> str:
    """``template`` unchanged, or ``ValueError`` naming placeholders it may not use."""
    try:
        names = _names(template)
    except ValueError as e:
        raise ValueError(
            f"{what} is not a valid format string ({e}); write literal braces as {{{{ }}}}"
        ) from None
    unknown = sorted(n for n in names if n not in allowed)
    if unknown or "" in names:
        shown = ", ".join("{" + n + "}" for n in sorted(allowed))
        bad = ", ".join("{" + n + "}" for n in unknown) or "{}"
        raise ValueError(
            f"{what} uses {bad}; it may use {shown} (write literal braces as {{{{ }}}})"
        )
    return template


def render(template: str, allowed: Collection[str], **values: Any) -> str:
    """Fill ``template``; only names in ``allowed`` may appear in it."""
    check_template(template, allowed)
    return template.format(**values)


def check_fields(catalog: Catalog, fields: Sequence[str]) -> None:
    """``DataError`` when a field to show is not a column of the catalog."""
    missing = [f for f in fields if f not in catalog.fields]
    if missing:
        have = ", ".join(catalog.fields) or "none"
        raise DataError(
            f"the catalog has no field {missing[0]!r} to show in prompts (fields: {have})"
        )
