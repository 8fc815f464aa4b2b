"""Test agents for the agent server's tests: real :class:`recai.Agent` subclasses over a real
synthetic dataset, fast and deterministic, that say in their replies what they were given."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from recai.data import Dataset, synthetic_dataset
from recai.data.context import user_context
from recai.roles import Agent
from recai.types import AgentTurn, Message

DATASET: Dataset = synthetic_dataset(n_users=30, n_items=40, seed=3)


class Shop(Agent):
    """Lists the first two catalog items the user has not seen, with evidence; its reply names
    the user, the last message and how many user turns it saw, and is written word by word
    through ``on_text`` (``pause`` seconds between words). Keeps profiles in memory."""

    def __init__(self, dataset: Dataset = DATASET, pause: float = 0.0):
        self.dataset = dataset
        self.pause = pause
        self.conversations: list[list[Message]] = []
        self.profiles: dict[str, dict[str, Any]] = {}
        self.stopped = threading.Event()  # on_text raised: the server stopped the turn
        self.finished = 0
        self._lock = threading.Lock()

    def reply(self, conversation):
        return Message.assistant(self.respond(conversation).text)

    def respond(self, conversation, *, on_text=None):
        start = time.perf_counter()
        with self._lock:
            self.conversations.append(list(conversation))
        catalog = self.dataset.catalog
        ctx = user_context(conversation, catalog)
        user = ctx.user if ctx is not None else None
        seen = set(ctx.history) if ctx is not None else set()
        picks = [i for i in range(catalog.n_items) if i not in seen][:2]
        turns = sum(1 for m in conversation if m.role == "user")
        last = conversation[-1].content
        text = (
            f"For {user}: you said {last} ({turns} turns). Try {catalog.title(picks[0])} "
            f"and {catalog.title(picks[1])}."
        )
        words = text.split(" ")
        try:
            for n, word in enumerate(words):
                if self.pause:
                    time.sleep(self.pause)
                if on_text is not None:
                    on_text(word if n == len(words) - 1 else word + " ")
        except BaseException:
            self.stopped.set()
            raise
        with self._lock:
            self.finished += 1
        items = [
            {"id": str(catalog.ids[i]), "title": catalog.title(i), "evidence": {"rule": "unseen"}}
            for i in picks
        ]
        trace = [{"tool": "unseen", "input": last, "output": len(picks), "seconds": 0.0}]
        profile = self.profiles.get(str(user), {}) if user is not None else {}
        return AgentTurn(
            text,
            items,
            trace=trace,
            plan={"steps": ["unseen"]},
            llm_calls=0,
            seconds=time.perf_counter() - start,
            profile=profile,
        )

    def remember(self, user, *, liked=(), disliked=()):
        catalog = self.dataset.catalog
        with self._lock:
            p = self.profiles.setdefault(user, {"user": user, "liked": [], "disliked": []})
            for key, ids in (("liked", liked), ("disliked", disliked)):
                for i in ids:
                    p[key].append({"id": i, "title": catalog.title(catalog.index(i))})
            return json.loads(json.dumps(p))


class Plain(Agent):
    """An agent with ``reply`` only: no items, no profile."""

    def reply(self, conversation):
        return Message.assistant("plain: " + conversation[-1].content)
