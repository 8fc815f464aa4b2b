"""``llm-ranking.v1``'s generation mode under a JSON schema: the list's items are an enum of the
prompt's candidate titles.

A small model asked in words for a ranked list of 20 titles writes numbering, invented titles,
a few of the candidates or none (SmolLM2-135M: the held-out film in no list). With a backend
that takes ``json_schema`` (``"json_schema"`` in its capabilities), the task instead asks for
``{"ranking": [title, ...]}`` under :func:`ranking_schema`: every item is one of **this**
prompt's candidate titles (an ``enum`` compiled per prompt) and there are exactly ``n`` of them
(``minItems = maxItems = n``). recai-hf's ``hf.v1`` decodes under it (llguidance: a token that
would leave the schema is never taken), so every answer grounds to the candidates; recai-openai's
``openai.v1`` sends it as ``response_format`` (the server constrains, or the answer is checked
and sent back to be corrected).

``uniqueItems: true`` is asked only of a backend that enforces it while decoding (says
``"json_unique_items"`` in its capabilities: recai-hf's ``hf.v1``, which bans every token that
would repeat a title or start one that can only become a used title), so that every answer is
a permutation of the candidates. Other backends get the schema without it: a grammar engine
that cannot enforce it would only validate afterwards and re-ask (a small model fails again),
and OpenAI's strict structured outputs do not support the keyword. Their answers may repeat a
title. :func:`ranking_of` reads an answer as a **full
ranking**: each candidate at its first mention, repeats dropped, and the candidates the answer
left out appended in their shown (random) order, so the held-out item always has a rank and a
model that names only a few titles is compared with chance on the rest. How many were appended
is recorded per answer; ``complete_rate`` in the report is the share of answers that named every
candidate exactly once on their own.

A reply that is not valid JSON (cut by ``max_tokens``; a server without constrained decoding)
is read as far as it goes: its quoted strings, in order. When the backend gives up after its
repair attempts and keeps the replies (recai-hf's ``StructuredOutputError.completions``), the
last reply is the answer, as the model's result, and is cached like any other.

>>> ranking_schema(["Heat (1995)", "Fargo (1996)"])["properties"]["ranking"]["items"]
{'type': 'string', 'enum': ['Heat (1995)', 'Fargo (1996)']}
>>> ranking_schema(["Heat (1995)"], unique=True)["properties"]["ranking"]["uniqueItems"]
True
>>> read_titles('{"ranking": ["Fargo (1996)", "Heat (1995)"]}')
['Fargo (1996)', 'Heat (1995)']
>>> read_titles('{"ranking":["Fargo (1996)","Heat (19')  # cut by max_tokens
['Fargo (1996)']
>>> ranking_of([11, None, 11, 12], [10, 11, 12, 13])
([11, 12, 10, 13], 2)
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from recai.jsontext import JSONTextError, extract_json
from recai.roles import LLMBackend
from recai.types import Message

from .base import Case, Session
from .lists import ListScores, snippet
from .runner import Answer, Caller, _from_completion, error_text
from .scoring import error_flags

__all__ = [
    "JSON_RANKING",
    "KEY",
    "UNIQUE_ITEMS",
    "enforces_unique",
    "with_unique",
    "SchemaCaller",
    "ranking_schema",
    "read_titles",
    "ground_in_candidates",
    "ranking_of",
    "score_schema_answers",
    "takes_schema",
]

#: The property of the answer object that holds the ranked titles.
KEY = "ranking"

#: The default prompt of generation mode under the schema (the schema itself names the titles).
JSON_RANKING = (
    "A user has interacted with these items, oldest first:\n{history}\n\n"
    "Here are {n} candidate items, in random order:\n{candidates}\n\n"
    "Rank all {n} candidates by how likely the user is to choose each one next, most likely "
    'first. Answer with a JSON object whose "ranking" lists the {n} candidate titles, each '
    "exactly once, copied exactly."
)

#: The capability of a backend that enforces ``uniqueItems`` (string enums) while decoding.
UNIQUE_ITEMS = "json_unique_items"

_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def takes_schema(llm: Any) -> bool:
    """Whether ``llm`` is a backend that takes ``json_schema`` (says so in its capabilities)."""
    return isinstance(llm, LLMBackend) and "json_schema" in getattr(llm, "capabilities", ())


def enforces_unique(llm: Any) -> bool:
    """Whether ``llm`` enforces ``uniqueItems`` of string enums while decoding."""
    return UNIQUE_ITEMS in getattr(llm, "capabilities", ())


def ranking_schema(titles: Sequence[str], *, unique: bool = False) -> dict[str, Any]:
    """``{"ranking": [...]}`` with exactly ``len(titles)`` items, each one of ``titles``.

    An object at the top (OpenAI's structured outputs want one), no extra properties; titles
    two candidates share are listed once in the enum, and the list then has as many items as
    distinct titles. ``unique``: ask for ``uniqueItems`` (only of a backend that
    :func:`enforces_unique`), which makes every valid answer a permutation of the titles.
    """
    distinct = list(dict.fromkeys(titles))
    n = len(distinct) if unique else len(titles)
    ranking: dict[str, Any] = {
        "type": "array",
        "items": {"type": "string", "enum": distinct},
        "minItems": n,
        "maxItems": n,
    }
    if unique:
        ranking["uniqueItems"] = True
    return {
        "type": "object",
        "properties": {KEY: ranking},
        "required": [KEY],
        "additionalProperties": False,
    }


def with_unique(schema: dict[str, Any]) -> dict[str, Any]:
    """A :func:`ranking_schema` asking for ``uniqueItems`` (the same schema when it does, or
    when it is no ranking schema)."""
    ranking = schema.get("properties", {}).get(KEY)
    if not isinstance(ranking, dict) or ranking.get("uniqueItems") is True:
        return schema
    items = ranking.get("items")
    titles = items.get("enum") if isinstance(items, dict) else None
    if not isinstance(titles, list):
        return schema
    return ranking_schema([str(t) for t in titles], unique=True)


def read_titles(text: str | None) -> list[str]:
    """The titles of an answer, in order: the ``ranking`` list of its JSON object (or a bare
    JSON list), else the quoted strings of a reply that is not valid JSON (cut short), without
    the ``"ranking"`` key. Empty when there are none."""
    if not isinstance(text, str) or not text.strip():
        return []
    try:
        value: Any = extract_json(text).value
    except JSONTextError:
        value = None
    if isinstance(value, dict):
        lowered = {str(k).strip().lower(): v for k, v in value.items()}
        value = lowered.get(KEY)
        if value is None:  # another key: the first list of the object
            value = next((v for v in lowered.values() if isinstance(v, list)), None)
    if isinstance(value, list):
        return [v.strip() for v in value if isinstance(v, str) and v.strip()]
    out = []
    for m in _STRING.finditer(text):
        try:
            found = json.loads(f'"{m.group(1)}"')
        except ValueError:
            continue
        if found.strip() and found.strip().lower() != KEY:
            out.append(found.strip())
    return out


def ground_in_candidates(
    s: Session, titles: Sequence[str], candidates: Sequence[int]
) -> list[int | None]:
    """The item each title names: the next candidate of that exact title not named yet (two
    candidates may share a title), else the candidate of that title named already (a repeat),
    else the catalog's grounding (for a server that did not constrain: an item outside the
    candidates, or ``None``)."""
    by_title: dict[str, list[int]] = {}
    for candidate in candidates:
        by_title.setdefault(s.catalog.title(int(candidate)), []).append(int(candidate))
    used: set[int] = set()
    out: list[int | None] = []
    for title in titles:
        same = by_title.get(title)
        item: int | None
        if same:
            fresh = [i for i in same if i not in used]
            item = fresh[0] if fresh else same[0]
        else:
            item = s.matcher.ground(title)[0]
        if item is not None:
            used.add(item)
        out.append(item)
    return out


def ranking_of(grounded: Sequence[int | None], candidates: Sequence[int]) -> tuple[list[int], int]:
    """The full ranking an answer gives: candidates at their first mention, then those it left
    out in their shown order; and how many were left out (appended)."""
    allowed = [int(c) for c in candidates]
    members = set(allowed)
    named = list(dict.fromkeys(int(g) for g in grounded if g is not None and int(g) in members))
    chosen = set(named)
    rest = [c for c in allowed if c not in chosen]
    return named + rest, len(rest)


class SchemaCaller(Caller):
    """Asks an :class:`~recai.LLMBackend` for JSON under a schema of its own per request;
    requests are ``(messages, schema)``, the schema is part of the cache key.

    One request per ``chat`` call: the schemas differ from prompt to prompt, and a backend's
    ``chat_batch`` decodes a whole batch under one schema. A ranking schema is sent with
    ``uniqueItems`` when the backend :func:`enforces_unique` (:func:`with_unique`; the schema
    sent is the one in the cache key).
    """

    def __init__(self, llm: LLMBackend, options: dict[str, Any] | None = None):
        super().__init__(llm, {k: v for k, v in (options or {}).items() if v is not None})
        self.unique = enforces_unique(llm)

    def schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The schema sent for a request's schema."""
        return with_unique(schema) if self.unique else schema

    def payload(self, request: tuple[Sequence[Message], dict[str, Any]]) -> Any:
        messages, schema = request
        return {"messages": [m.to_dict() for m in messages], "json_schema": self.schema(schema)}

    def ask(self, request: tuple[Sequence[Message], dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        messages, schema = request
        schema = self.schema(schema)
        try:
            done = self.component.chat(list(messages), json_schema=schema, **self.options)
        except Exception as e:
            kept = getattr(e, "completions", None)  # the replies a backend gave up on
            if not isinstance(kept, list) or len(kept) != 1:
                raise
            text, extra = _from_completion(kept[0])
            return text, {**extra, "schema_error": error_text(e, self.secrets)}
        return _from_completion(done)


def score_schema_answers(
    s: Session,
    cases: Sequence[Case],
    answers: Sequence[Answer],
    orders: Sequence[Sequence[int]],
) -> ListScores:
    """Read every answer as a full ranking of its candidates (see the module docstring).

    The error flags are over the titles the model wrote; ``complete`` says whether it named
    every candidate exactly once on its own. Failures are recorded in the session: an answer
    with no title counts as a miss (unusable), a call that raised as no answer.
    """
    out = ListScores()
    for case, answer, shown in zip(cases, answers, orders, strict=True):
        order = [int(o) for o in shown]
        base: dict[str, Any] = {"cached": answer.cached, "candidates": order}
        if not answer.ok:
            s.no_answer(case, "answer", answer)
            s.record(case, **base, error=answer.error)
            out.add_failed()
            continue
        titles = read_titles(answer.text)
        if not titles:
            error = f"no candidate titles in the answer: {snippet(answer.text or '')!r}"
            s.fail(case, "parse", error)
            s.record(case, **base, answer=answer.text, error=error)
            out.add_failed()
            continue
        grounded = ground_in_candidates(s, titles, order)
        flags = error_flags(grounded, history=case.history.tolist(), candidates=order, order=order)
        ranking, appended = ranking_of(grounded, order)
        rank = ranking.index(int(case.target))
        out.ranks.append(rank)
        out.flags.append(flags)
        out.mentions += len(titles)
        out.grounded += sum(g is not None for g in grounded)
        out.complete.append(appended == 0 and len(titles) == len(order))
        out.named.append(len(order) - appended)
        s.record(
            case,
            **base,
            answer=answer.text,
            mentions=titles,
            items=grounded,
            ranking=ranking,
            appended=appended,
            rank=rank,
            flags=flags,
        )
    return out
