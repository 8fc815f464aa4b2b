"""Long-term user profiles: the items each user liked and disliked, kept across conversations.

:class:`ProfileStore` keeps, per user (the external id a ``recai_context`` message names), one
verdict per item: liked or disliked, the latest one winning, with where it came from
(``"feedback"``: a like or dislike button through :meth:`recai.Agent.remember`; ``"dialogue"``:
what a turn read from the conversation and its plan) and when. In memory by default; with a
path, a SQLite file that survives restarts and is shared by every process that opens it
(WAL journal, one transaction per update, so a crash loses no earlier verdict and never leaves
half of one).

The agent reads a user's profile at the start of every turn whose context names the user (the
liked items join the profile the ranking tool reads, the disliked ones are never listed) and
writes the turn's verdicts back at its end. What the user says in the current conversation wins
over what is stored.

>>> store = ProfileStore()
>>> store.update("u1", liked=["7", "9"], disliked=["3"])
>>> store.update("u1", disliked=["9"])          # changed their mind
>>> store.get("u1")
Profile(liked=['7'], disliked=['3', '9'])
>>> store.get("nobody")
Profile(liked=[], disliked=[])
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from recai.errors import RecaiError

__all__ = ["Profile", "ProfileStore", "ProfileStoreError"]

#: Most verdicts kept per user (the oldest go first): a profile is a summary, not a log.
MAX_ITEMS = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    user TEXT NOT NULL,
    item TEXT NOT NULL,
    liked INTEGER NOT NULL CHECK (liked IN (0, 1)),
    source TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (user, item)
)
"""


class ProfileStoreError(RecaiError):
    """The profile store file cannot be opened or is not a profile store."""


@dataclass
class Profile:
    """A user's verdicts: external item ids liked and disliked, oldest first."""

    liked: list[str] = field(default_factory=list)
    disliked: list[str] = field(default_factory=list)


class ProfileStore:
    """Verdicts per user, in memory (``path`` None) or in a SQLite file (see the module
    docstring). Thread-safe."""

    def __init__(self, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        self._memory: dict[str, dict[str, tuple[bool, str, float]]] = {}
        self._conn: sqlite3.Connection | None = None
        if self.path is not None:
            self._conn = self._open(self.path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(verdicts)")}
        except (OSError, sqlite3.Error) as e:
            raise ProfileStoreError(
                f"profile_store {str(path)!r} cannot be used as a SQLite profile store: {e}"
            ) from None
        if not {"user", "item", "liked", "source", "at"} <= columns:
            conn.close()
            raise ProfileStoreError(
                f"profile_store {str(path)!r} has a 'verdicts' table that is not recai-agent's "
                f"(columns {sorted(columns)}); name another file"
            )
        return conn

    def get(self, user: str) -> Profile:
        """The user's profile (empty for a user never seen)."""
        with self._lock:
            if self._conn is None:
                rows = sorted(
                    (
                        (at, item, liked)
                        for item, (liked, _, at) in self._memory.get(user, {}).items()
                    ),
                )
            else:
                rows = list(
                    self._conn.execute(
                        "SELECT at, item, liked FROM verdicts WHERE user = ? ORDER BY at, rowid",
                        (user,),
                    )
                )
        out = Profile()
        for _, item, liked in rows:
            (out.liked if liked else out.disliked).append(str(item))
        return out

    def update(
        self,
        user: str,
        *,
        liked: Iterable[str] = (),
        disliked: Iterable[str] = (),
        source: str = "feedback",
    ) -> None:
        """Record verdicts for ``user`` (an item in both lists counts as disliked: the later
        word); an item's new verdict replaces its old one."""
        now = time.time()
        verdicts: dict[str, bool] = {str(i): True for i in liked}
        verdicts.update({str(i): False for i in disliked})
        if not verdicts:
            return
        with self._lock:
            if self._conn is None:
                mine = self._memory.setdefault(user, {})
                for n, (item, verdict) in enumerate(verdicts.items()):
                    mine.pop(item, None)
                    mine[item] = (verdict, source, now + n * 1e-6)
                while len(mine) > MAX_ITEMS:
                    mine.pop(min(mine, key=lambda i: mine[i][2]))
                return
            with self._conn:  # one transaction
                self._conn.executemany(
                    "INSERT INTO verdicts (user, item, liked, source, at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (user, item) DO UPDATE SET liked = excluded.liked, "
                    "source = excluded.source, at = excluded.at",
                    [
                        (user, item, int(verdict), source, now + n * 1e-6)
                        for n, (item, verdict) in enumerate(verdicts.items())
                    ],
                )
                self._conn.execute(
                    "DELETE FROM verdicts WHERE user = ? AND item NOT IN (SELECT item FROM "
                    "verdicts WHERE user = ? ORDER BY at DESC LIMIT ?)",
                    (user, user, MAX_ITEMS),
                )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
