"""Conversations the server keeps: a chat client sends only its new message and a session id.

A :class:`Session` is an id, the user it speaks for (an external user id or None), the messages
so far (the client's and the agent's, without the server's ``recai_context`` message, which is
written afresh for every turn) and when it was created and last used. An agent's message also
keeps, under ``"recai"``, what its turn showed besides the text (the items with their
attributes, the plan, the tool trace, ...: see :data:`TURN_KEY`), so a page opened later on the
session shows the turn as it was answered; the agent is given the text only. Two stores:

- :class:`MemorySessions`: in the server's memory; a session unused for ``ttl`` seconds is
  forgotten, and beyond ``max_sessions`` the least recently used go first.
- :class:`SQLiteSessions`: a SQLite file (``recai serve --sessions FILE``) that survives a
  restart. Each turn is written in one transaction (the whole conversation replaced, with
  its time), so a crash leaves the session as it was before or after the turn, never half
  written; the file is in WAL mode so readers never wait for a writer. Expiry applies too.

Session ids are 128 random bits (:func:`secrets.token_urlsafe`): holding one is what lets a
client continue a conversation, so they cannot be guessed.

>>> store = MemorySessions(ttl=60)
>>> s = store.create("u1")
>>> s.messages.append({"role": "user", "content": "hi"})
>>> store.save(s)
>>> store.get(s.id).messages
[{'role': 'user', 'content': 'hi'}]
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from recai.errors import RecaiError

__all__ = [
    "Session",
    "SessionStore",
    "MemorySessions",
    "SQLiteSessions",
    "new_session_id",
    "DEFAULT_TTL",
    "MAX_SESSION_MESSAGES",
    "MAX_SESSION_CHARS",
    "MAX_SESSION_TURN_CHARS",
    "TURN_KEY",
]

DEFAULT_TTL = 24 * 3600.0
"""Seconds a session may stay unused before it is forgotten (``--session-ttl``)."""

MAX_SESSION_MESSAGES = 200
"""Messages a session keeps (the oldest are dropped beyond this; an agent reads the recent
turns, and a conversation must not grow without bound on the server)."""

MAX_SESSION_CHARS = 200_000
"""Characters of message contents a session keeps (the oldest messages are dropped beyond
this, the newest always kept): with :class:`MemorySessions`' ``max_sessions`` this bounds the
memory sessions can take."""


MAX_SESSION_TURN_CHARS = 400_000
"""Characters (as JSON) of the turns' ``"recai"`` data a session keeps: beyond this the oldest
turns lose it (their text stays), so the items and traces of a long conversation do not grow
without bound either."""

TURN_KEY = "recai"
"""The key of an agent's message under which a session keeps its turn's items, plan and trace
(not part of OpenAI's message; :meth:`recai.types.Message.from_dict` ignores it)."""


def new_session_id() -> str:
    """A fresh session id: 128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


@dataclass
class Session:
    """One kept conversation: ``messages`` as OpenAI message dicts, oldest first."""

    id: str
    user: str | None
    messages: list[dict[str, Any]] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    def trim(
        self,
        most: int = MAX_SESSION_MESSAGES,
        chars: int = MAX_SESSION_CHARS,
        turn_chars: int = MAX_SESSION_TURN_CHARS,
    ) -> None:
        """Keep the newest ``most`` messages of at most ``chars`` characters together (the
        newest message always), starting at a user message where one is left; then drop the
        :data:`TURN_KEY` data of the oldest messages until what is left of it takes at most
        ``turn_chars`` characters as JSON.

        >>> s = Session("x", None, [{"role": r, "content": "ab"} for r in ("user", "assistant") * 3])
        >>> s.trim(most=3); [m["role"] for m in s.messages]
        ['user', 'assistant']
        >>> s.trim(chars=3); [m["role"] for m in s.messages]
        ['assistant']
        >>> s = Session("y", None, [{"role": "assistant", "content": "a", TURN_KEY: {"n": n}}
        ...                         for n in range(3)])
        >>> s.trim(turn_chars=20); [TURN_KEY in m for m in s.messages]
        [False, True, True]
        """
        kept = self.messages[-most:]
        total = sum(len(str(m.get("content") or "")) for m in kept)
        start = 0
        while total > chars and start < len(kept) - 1:
            total -= len(str(kept[start].get("content") or ""))
            start += 1
        kept = kept[start:]
        if len(kept) < len(self.messages):
            first = next((i for i, m in enumerate(kept) if m.get("role") == "user"), None)
            kept = kept[first:] if first is not None else kept[-1:]
        self.messages = kept
        sizes = [
            (i, len(json.dumps(m[TURN_KEY], ensure_ascii=False, default=str)))
            for i, m in enumerate(kept)
            if TURN_KEY in m
        ]
        total = sum(size for _, size in sizes)
        for i, size in sizes:  # oldest first
            if total <= turn_chars:
                break
            kept[i] = {k: v for k, v in kept[i].items() if k != TURN_KEY}
            total -= size


class SessionStore(Protocol):
    """Where sessions live. Methods are blocking and thread-safe (the app calls them in
    worker threads)."""

    ttl: float

    def create(self, user: str | None) -> Session:
        """A new, empty session for ``user`` (not stored until :meth:`save`)."""
        ...

    def get(self, session_id: str) -> Session | None:
        """The session, or None when there is none (never was, or expired)."""
        ...

    def save(self, session: Session) -> None:
        """Store ``session`` (its messages trimmed, ``updated`` set to now), atomically."""
        ...

    def delete(self, session_id: str) -> bool:
        """Forget the session; whether there was one."""
        ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


def _check_ttl(ttl: float) -> float:
    if not (0 < ttl < math.inf):
        raise RecaiError(f"the session expiry must be positive seconds, got {ttl}")
    return float(ttl)


class MemorySessions:
    """Sessions in memory: forgotten after ``ttl`` seconds unused, at most ``max_sessions``
    (the least recently used go first)."""

    def __init__(self, ttl: float = DEFAULT_TTL, max_sessions: int = 100_000):
        if max_sessions < 1:
            raise RecaiError(f"max_sessions must be at least 1, got {max_sessions}")
        self.ttl = _check_ttl(ttl)
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str | None) -> Session:
        return Session(new_session_id(), user)

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            self._expire()
            found = self._sessions.get(session_id)
            if found is None:
                return None
            # a copy: a turn that fails leaves the stored conversation as it was
            return Session(found.id, found.user, list(found.messages), found.created, found.updated)

    def save(self, session: Session) -> None:
        session.trim()
        session.updated = time.time()
        stored = Session(
            session.id, session.user, list(session.messages), session.created, session.updated
        )
        with self._lock:
            self._sessions[session.id] = stored
            self._sessions.move_to_end(session.id)
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)

    def delete(self, session_id: str) -> bool:
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def _expire(self) -> None:
        cutoff = time.time() - self.ttl
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.updated >= cutoff:
                break
            self._sessions.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._sessions)

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS recai_sessions (
    id TEXT PRIMARY KEY,
    user TEXT,
    messages TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS recai_sessions_updated ON recai_sessions (updated);
"""


class SQLiteSessions:
    """Sessions in a SQLite file, kept across restarts; expired after ``ttl`` seconds unused.

    A file that is not a SQLite database (or not writable) is refused at once with a
    :class:`~recai.errors.RecaiError` naming it."""

    def __init__(self, path: str | Path, ttl: float = DEFAULT_TTL):
        self.ttl = _check_ttl(ttl)
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=10
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise RecaiError(
                f"--sessions {self.path}: cannot use it as a SQLite session store ({e})"
            ) from None
        self._expire()

    def create(self, user: str | None) -> Session:
        return Session(new_session_id(), user)

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, user, messages, created, updated FROM recai_sessions "
                "WHERE id = ? AND updated >= ?",
                (session_id, time.time() - self.ttl),
            ).fetchone()
        if row is None:
            return None
        return Session(row[0], row[1], json.loads(row[2]), row[3], row[4])

    def save(self, session: Session) -> None:
        session.trim()
        session.updated = time.time()
        text = json.dumps(session.messages, ensure_ascii=False)
        with self._lock:
            # one transaction: the turn is stored whole or not at all
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO recai_sessions (id, user, messages, created, updated) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                    "user = excluded.user, messages = excluded.messages, updated = excluded.updated",
                    (session.id, session.user, text, session.created, session.updated),
                )
                self._db.execute(
                    "DELETE FROM recai_sessions WHERE updated < ?", (time.time() - self.ttl,)
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def delete(self, session_id: str) -> bool:
        with self._lock:
            cursor = self._db.execute("DELETE FROM recai_sessions WHERE id = ?", (session_id,))
            return cursor.rowcount > 0

    def _expire(self) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM recai_sessions WHERE updated < ?", (time.time() - self.ttl,)
            )

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM recai_sessions WHERE updated >= ?",
                (time.time() - self.ttl,),
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
