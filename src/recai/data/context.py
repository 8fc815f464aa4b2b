"""The user context message: how an evaluator, a server or an app tells an agent who it talks to.

An :class:`~recai.roles.Agent` sees only a conversation. When the caller knows the user, the
conversation starts with a system message named :data:`CONTEXT_NAME` whose content is JSON::

    {"user": <external user id or null>, "history": [{"id": <item id>, "title": <title>}, ...]}

the history oldest first, ids being the catalog's external ids. Two optional keys say what the
caller wants of the next reply:

- ``"candidates": [{"id": ..., "title": ...}, ...]``: the items the agent must choose from and
  order (a ranking request: recai-eval's ``agent-ranking.v1`` gives the held-out item and 19
  sampled negatives, in a random order); an agent answers with these items only, all of them
  when ``k`` asks for that many;
- ``"k"``: how many items the reply should list (a positive integer).

recai-eval's ``conversation.v1`` writes it (``share_history = true``), ``agent-retrieval.v1`` and
``agent-ranking.v1`` write it with ``k`` (and ``candidates``), and recai-agent's agents read it;
a third-party agent or a front-end uses the same two functions.

>>> from recai.data import Catalog
>>> from recai.types import Message
>>> cat = Catalog(ids=["7", "9"], titles=["Heat (1995)", "Fargo (1996)"])
>>> m = context_message("u1", [1, 0], cat)
>>> m.name, json.loads(m.content)["history"][0]
('recai_context', {'id': '9', 'title': 'Fargo (1996)'})
>>> user_context([m, Message.user("hi")], cat)
UserContext(user='u1', history=[1, 0], candidates=None, k=None)
>>> asked = context_message(None, [], cat, candidates=[0, 1], k=2)
>>> user_context([asked], cat)
UserContext(user=None, history=[], candidates=[0, 1], k=2)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import RecaiError
from ..types import Message
from .catalog import Catalog

__all__ = [
    "CONTEXT_NAME",
    "MAX_CONTEXT_ITEMS",
    "UserContext",
    "context_message",
    "is_context",
    "user_context",
]

#: The ``name`` of the system message that carries the user's id and history.
CONTEXT_NAME = "recai_context"

#: Most history items a context message may carry (longer histories keep their newest items).
MAX_CONTEXT_ITEMS = 10_000

_SHAPE = (
    '{"user": ..., "history": [{"id": ..., "title": ...}, ...]} (optionally with "candidates": '
    '[{"id": ..., "title": ...}, ...] and "k": <positive integer>)'
)


@dataclass(frozen=True)
class UserContext:
    """What a context message says: the user's external id (if given), history (catalog
    indices, oldest first), and, when the caller asks for them, the candidates to order (catalog
    indices, in the order given) and how many items to list (``k``)."""

    user: Any
    history: list[int]
    candidates: list[int] | None = None
    k: int | None = None


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # a numpy scalar as a Python value
    return item() if callable(item) and not isinstance(value, (str, bytes)) else value


def _entries(items: Iterable[int], catalog: Catalog) -> list[dict[str, Any]]:
    return [{"id": _plain(catalog.ids[int(i)]), "title": catalog.title(int(i))} for i in items]


def _count(k: Any) -> bool:
    """Whether ``k`` is a positive integer (``True`` is not one)."""
    k = _plain(k)
    return isinstance(k, int) and not isinstance(k, bool) and k >= 1


def context_message(
    user: Any,
    history: Iterable[int],
    catalog: Catalog,
    *,
    candidates: Iterable[int] | None = None,
    k: int | None = None,
) -> Message:
    """The context message for ``user`` with ``history`` (catalog indices, oldest first; at most
    the newest :data:`MAX_CONTEXT_ITEMS`); ``candidates`` (catalog indices, at most
    :data:`MAX_CONTEXT_ITEMS`) and ``k`` (a positive integer) are added when given.

    A bad ``candidates`` or ``k`` raises :class:`recai.RecaiError` naming it.
    """
    body: dict[str, Any] = {
        "user": _plain(user),
        "history": _entries(list(history)[-MAX_CONTEXT_ITEMS:], catalog),
    }
    if candidates is not None:
        chosen = list(candidates)
        if len(chosen) > MAX_CONTEXT_ITEMS:
            raise RecaiError(
                f"context_message: {len(chosen):,} candidates, more than the "
                f"{MAX_CONTEXT_ITEMS:,} a context message may carry"
            )
        body["candidates"] = _entries(chosen, catalog)
    if k is not None:
        if not _count(k):
            raise RecaiError(f"context_message: k must be a positive integer, not {k!r}")
        body["k"] = int(_plain(k))
    return Message("system", json.dumps(body, ensure_ascii=False), name=CONTEXT_NAME)


def is_context(message: Message) -> bool:
    """Whether ``message`` is a context message (agents leave it out of what the LLM sees)."""
    return message.role == "system" and message.name == CONTEXT_NAME


def user_context(conversation: Sequence[Message], catalog: Catalog) -> UserContext | None:
    """The context message of ``conversation`` read against ``catalog`` (``None`` without one).

    A context message that is not the JSON above (a ``candidates`` that is no list, a ``k`` that
    is no positive integer), or that names an item the catalog lacks, raises
    :class:`recai.RecaiError` naming the key and entry that are wrong (for a missing item: the
    agent and whoever wrote the message do not share a dataset).
    """
    for message in conversation:
        if not is_context(message):
            continue
        try:
            body = json.loads(message.content)
        except ValueError as e:
            raise RecaiError(
                f"the {CONTEXT_NAME!r} system message is not JSON ({e}); it must be {_SHAPE}"
            ) from None
        entries = body.get("history") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise RecaiError(
                f"the {CONTEXT_NAME!r} system message has no list 'history'; it must be {_SHAPE}"
            )
        history = _indices(entries[-MAX_CONTEXT_ITEMS:], "history", catalog)
        candidates = None
        if body.get("candidates") is not None:
            given = body["candidates"]
            if not isinstance(given, list) or len(given) > MAX_CONTEXT_ITEMS:
                what = (
                    f"{len(given):,} entries, more than {MAX_CONTEXT_ITEMS:,}"
                    if isinstance(given, list)
                    else f"a {type(given).__name__}"
                )
                raise RecaiError(
                    f"the {CONTEXT_NAME!r} system message's 'candidates' is {what}; it must be "
                    f"a list of at most {MAX_CONTEXT_ITEMS:,} entries: {_SHAPE}"
                )
            candidates = _indices(given, "candidates", catalog)
        k = body.get("k")
        if k is not None and not _count(k):
            raise RecaiError(
                f"the {CONTEXT_NAME!r} system message's 'k' is {k!r}; it must be a positive "
                f"integer (how many items to list): {_SHAPE}"
            )
        return UserContext(body.get("user"), history, candidates, k)
    return None


def _indices(entries: Sequence[Any], key: str, catalog: Catalog) -> list[int]:
    """Catalog indices of ``entries`` (``{"id": ...}`` dicts or bare ids) under ``key``."""
    out = []
    for n, entry in enumerate(entries):
        item_id = entry.get("id") if isinstance(entry, dict) else entry
        try:
            out.append(catalog.index(item_id))
        except (KeyError, TypeError):
            raise RecaiError(
                f"the {CONTEXT_NAME!r} system message names item id {item_id!r} "
                f"({key}[{n}]), which this agent's catalog does not have: build the agent "
                "on the dataset of whoever wrote the message (the evaluator's dataset)"
            ) from None
    return out
