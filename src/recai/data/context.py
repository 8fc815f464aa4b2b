"""The user context message: how an evaluator, a server or an app tells an agent who it talks to.

An :class:`~recai.roles.Agent` sees only a conversation. When the caller knows the user, the
conversation starts with a system message named :data:`CONTEXT_NAME` whose content is JSON::

    {"user": <external user id or null>, "history": [{"id": <item id>, "title": <title>}, ...]}

the history oldest first, ids being the catalog's external ids. recai-eval's ``conversation.v1``
writes it (``share_history = true``) and recai-agent's agents read it; a third-party agent or a
front-end uses the same two functions.

>>> from recai.data import Catalog
>>> from recai.types import Message
>>> cat = Catalog(ids=["7", "9"], titles=["Heat (1995)", "Fargo (1996)"])
>>> m = context_message("u1", [1, 0], cat)
>>> m.name, json.loads(m.content)["history"][0]
('recai_context', {'id': '9', 'title': 'Fargo (1996)'})
>>> user_context([m, Message.user("hi")], cat)
UserContext(user='u1', history=[1, 0])
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

_SHAPE = '{"user": ..., "history": [{"id": ..., "title": ...}, ...]}'


@dataclass(frozen=True)
class UserContext:
    """What a context message says: the user's external id (if given) and history (catalog
    indices, oldest first)."""

    user: Any
    history: list[int]


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # a numpy scalar as a Python value
    return item() if callable(item) and not isinstance(value, (str, bytes)) else value


def context_message(user: Any, history: Iterable[int], catalog: Catalog) -> Message:
    """The context message for ``user`` with ``history`` (catalog indices, oldest first; at most
    the newest :data:`MAX_CONTEXT_ITEMS`)."""
    items = [
        {"id": _plain(catalog.ids[int(i)]), "title": catalog.title(int(i))}
        for i in list(history)[-MAX_CONTEXT_ITEMS:]
    ]
    body = {"user": _plain(user), "history": items}
    return Message("system", json.dumps(body, ensure_ascii=False), name=CONTEXT_NAME)


def is_context(message: Message) -> bool:
    """Whether ``message`` is a context message (agents leave it out of what the LLM sees)."""
    return message.role == "system" and message.name == CONTEXT_NAME


def user_context(conversation: Sequence[Message], catalog: Catalog) -> UserContext | None:
    """The context message of ``conversation`` read against ``catalog`` (``None`` without one).

    A context message that is not the JSON above, or that names an item the catalog lacks,
    raises :class:`recai.RecaiError` naming what is wrong (the agent and whoever wrote the
    message do not share a dataset).
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
        history = []
        for n, entry in enumerate(entries[-MAX_CONTEXT_ITEMS:]):
            item_id = entry.get("id") if isinstance(entry, dict) else entry
            try:
                history.append(catalog.index(item_id))
            except (KeyError, TypeError):
                raise RecaiError(
                    f"the {CONTEXT_NAME!r} system message names item id {item_id!r} "
                    f"(history[{n}]), which this agent's catalog does not have: build the agent "
                    "on the dataset of whoever wrote the message (the evaluator's dataset)"
                ) from None
        return UserContext(body.get("user"), history)
    return None
