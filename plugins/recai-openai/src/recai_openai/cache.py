"""Answers on disk, keyed by the full request, so that a rerun is free and reproduces exactly.

A key is the SHA-256 of the canonical JSON of everything that decides the answer: the endpoint
(chat or prompt scoring), the server (``base_url``; for Azure also the deployment and API
version) and the whole request body — model, messages, and every option sent (``max_tokens``,
``temperature``, ``stop``, ``seed``, ``response_format``, ...). Whether the answer was streamed
is not part of it (the same text either way). The API key is not part of it and is never
stored: the same request with another key of the same account is the same request.

The store is one SQLite file (write-ahead log, one transaction per answer): a crash loses at
most the answer being written, never an earlier one, and several threads — or several
processes running evaluations side by side — can share it. Each row keeps the request it
answers, so a cache file says exactly what was asked.

Sampling (``temperature > 0``) is cached too: that is what makes a rerun reproduce exactly. To
draw fresh samples, change the ``seed``, or use another cache file (or none).

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "answers.sqlite"
>>> key = request_key("chat", "http://127.0.0.1:8000/v1", {"model": "m", "messages": []})
>>> cache = ResponseCache(path)
>>> cache.put(key, {"model": "m", "messages": []}, {"text": "hi"})
>>> ResponseCache(path).get(key)
{'text': 'hi'}
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recai.errors import RecaiError

__all__ = ["ResponseCache", "request_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    answer TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def request_key(endpoint: str, server: str | Mapping[str, Any], body: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``endpoint``, ``server`` and the request ``body``.

    >>> a = request_key("chat", "u", {"model": "m", "temperature": 0.0})
    >>> a == request_key("chat", "u", {"temperature": 0.0, "model": "m"})
    True
    >>> a == request_key("chat", "u", {"model": "m", "temperature": 0.5})
    False
    """
    text = json.dumps(
        {"v": 1, "endpoint": endpoint, "server": server, "body": body},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """A SQLite file of answers by request key; safe to share between threads and processes."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise RecaiError(f"cannot open the response cache {self.path}: {e}") from None
        self._lock = threading.Lock()
        #: Lookups answered from the file, and lookups that missed, since this object was made.
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict[str, Any] | None:
        """The answer stored under ``key``, or None."""
        with self._lock:
            row = self._conn.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, request: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
        """Store ``answer`` to ``request`` under ``key`` (replacing an earlier one)."""
        req = json.dumps(request, sort_keys=True, ensure_ascii=False)
        ans = json.dumps(answer, ensure_ascii=False)
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT OR REPLACE INTO answers (key, request, answer, created) "
                    "VALUES (?, ?, ?, ?)",
                    (key, req, ans, time.time()),
                )
            except sqlite3.Error as e:
                raise RecaiError(f"cannot write to the response cache {self.path}: {e}") from None

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def requests(self) -> list[dict[str, Any]]:
        """Every stored request (oldest first): what a cache file says was asked."""
        with self._lock:
            rows = self._conn.execute("SELECT request FROM answers ORDER BY created").fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"
