"""Answers on disk, keyed by the full request, so that a rerun is free and reproduces exactly.

A key is the SHA-256 of the canonical JSON of everything that decides the answer: the endpoint
(chat or prompt scoring), the server (``base_url``; for Azure also the deployment and API
version) and the whole request body — model, messages, and every option sent (``max_tokens``,
``temperature``, ``stop``, ``seed``, ``response_format``, ...). Whether the answer was streamed
is not part of it (the same text either way). The API key is not part of it and is never
stored: the same request with another key of the same account is the same request.

**No secret reaches the file** (:mod:`recai.secrets`). The copy of the request a row keeps is
redacted first (:func:`~recai.secrets.redact_data`): every value registered as a secret (the
backend's API key, which :func:`~recai.secrets.read_key` registers; any value a recipe took from
the environment) in any of its forms, and whatever is shaped like a key, a bearer token or an
``api_key=...``. The key of a row is the hash of the request as sent, so a rerun still finds it.
An answer that holds a secret (a model echoing one) is not stored at all, since a redacted copy
would replay another text than the server gave: it is returned, asked again next time, and
counted (:attr:`ResponseCache.withheld`).

The store is one SQLite file (write-ahead log, one transaction per answer): a crash loses at
most the answer being written, never an earlier one, and several threads — or several
processes running evaluations side by side — can share it. Each row keeps the request it
answers, so a cache file says what was asked (its secrets blanked out: below). Only answers are
stored: a request that failed (an HTTP error, a timeout, a broken stream) leaves nothing, and is sent again next time.

Sampling (``temperature > 0``) is cached too: that is what makes a rerun reproduce exactly. To
draw fresh samples, change the ``seed``, or use another cache file (or none).

**A damaged cache never fails a request** (:mod:`recai.damaged`). A file that is not a SQLite
database (garbage, truncated, malformed pages), a folder where the file should be, or a file
that cannot be opened is reported once (a :class:`~recai.damaged.DamagedFileWarning` naming the
path), moved aside to ``<name>.corrupt-<n>`` (with its ``-wal`` and ``-shm`` files) and replaced
by an empty cache — when it is found on opening, or later, on the first read that hits a damaged
page. A row that is not a valid answer (not JSON, or not the shape this package writes) is a
miss: reported once, asked again and replaced. When the file cannot be moved aside or written
(a read-only folder, a full disk, a database locked by another process for longer than the
timeout), the backend works without it (or without writing to it) and says so once.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "answers.sqlite"
>>> key = request_key("chat", "http://127.0.0.1:8000/v1", {"model": "m", "messages": []})
>>> cache = ResponseCache(path)
>>> answer = {"text": "hi", "finish_reason": "stop", "usage": [3, 1], "model": "m"}
>>> cache.put(key, {"model": "m", "messages": []}, answer)
>>> ResponseCache(path).get(key)["text"]
'hi'
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recai.damaged import report_damaged, set_aside
from recai.secrets import redact_data

__all__ = ["ResponseCache", "request_key", "valid_answer"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    answer TEXT NOT NULL,
    created REAL NOT NULL
)
"""
_HEADER = b"SQLite format 3\x00"
# SQLite's primary result codes that mean the file itself is damaged or is no database
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB


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


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def valid_answer(answer: Any) -> bool:
    """Whether ``answer`` has the shape the backends store: ``model`` (text), ``usage`` (two
    token counts) and either ``text`` with ``finish_reason`` and optional ``tool_calls``
    (OpenAI's shape) (chat) or ``scores`` (numbers).

    >>> valid_answer({"text": "hi", "finish_reason": "stop", "usage": [3, 1], "model": "m"})
    True
    >>> valid_answer({"text": None, "finish_reason": "stop", "usage": [3, 1], "model": "m"})
    False
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("model"), str):
        return False
    usage = answer.get("usage")
    if not (isinstance(usage, list) and len(usage) == 2 and all(_is_int(u) for u in usage)):
        return False
    if "scores" in answer:
        scores = answer["scores"]
        return isinstance(scores, list) and all(
            isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores
        )
    calls = answer.get("tool_calls", [])
    if not isinstance(calls, list) or not all(
        isinstance(c, dict)
        and isinstance(c.get("id"), str)
        and isinstance(c.get("function"), dict)
        and isinstance(c["function"].get("name"), str)
        and isinstance(c["function"].get("arguments"), str)
        for c in calls
    ):
        return False
    return isinstance(answer.get("text"), str) and isinstance(answer.get("finish_reason"), str)


def _code(e: sqlite3.Error) -> int:
    return int(getattr(e, "sqlite_errorcode", 0) or 0) & 0xFF


def _damage(e: sqlite3.Error) -> bool:
    """Whether ``e`` says the file is damaged (not merely busy, locked or read-only)."""
    return _code(e) in _DAMAGE_CODES or (
        not _code(e) and any(w in str(e) for w in ("malformed", "not a database"))
    )


class ResponseCache:
    """A SQLite file of answers by request key; safe to share between threads and processes.

    Counters: :attr:`hits` and :attr:`misses` (lookups since this object was made),
    :attr:`bad_rows` (rows that were no valid answer), :attr:`withheld` (answers not stored
    because they hold a secret), :attr:`moved_to` (where a damaged file went) and
    :attr:`bypassed` (why the file is not used, or not written, if it is not).
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.bad_rows = 0
        self.withheld = 0
        self.moved_to: Path | None = None
        self.bypassed: str | None = None
        self._read_only = False
        self._warned: set[str] = set()
        self._conn: sqlite3.Connection | None = self._open()

    # -- opening and recovering -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            conn.execute("SELECT key, answer FROM answers LIMIT 1").fetchall()
        except BaseException:
            conn.close()
            raise
        return conn

    def _problem(self) -> str | None:
        """What makes the file unusable before SQLite is asked (``None``: nothing seen)."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as e:
            return f"cannot be examined ({e.strerror or e})"
        if stat.S_ISDIR(info.st_mode):
            return "is a folder where the file should be"
        if not stat.S_ISREG(info.st_mode):
            return "is not a regular file"
        if info.st_size == 0:
            return None  # an empty file: SQLite makes a database of it
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(_HEADER))
        except OSError as e:
            return f"cannot be read ({e.strerror or e})"
        if head != _HEADER:
            return "is not a SQLite database (its first bytes are not SQLite's header)"
        return None

    def _open(self) -> sqlite3.Connection | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._bypass(f"its folder cannot be created ({e.strerror or e})")
            return None
        problem = self._problem()
        if problem is None:
            try:
                return self._connect()
            except sqlite3.Error as e:
                if not _damage(e) and _code(e) != 14:  # 14: SQLITE_CANTOPEN
                    self._bypass(f"cannot be used now ({e})")
                    return None
                problem = f"cannot be opened as a SQLite database ({e})"
            except OSError as e:
                problem = f"cannot be opened ({e.strerror or e})"
        return self._replace(problem)

    def _replace(self, problem: str) -> sqlite3.Connection | None:
        """Move the damaged file (and its -wal and -shm) aside and open an empty cache."""
        moved = set_aside(self.path)
        if moved is None:
            self._bypass(f"{problem}, and it cannot be moved aside")
            return None
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if os.path.lexists(side):
                set_aside(side)
        self.moved_to = moved
        try:
            conn = self._connect()
        except (sqlite3.Error, OSError) as e:
            self._bypass(
                f"{problem}; moved aside to {moved.name}, but a new one cannot be made ({e})"
            )
            return None
        report_damaged(
            self.path,
            f"the response cache {problem}",
            f"moved aside to {moved.name}; starting an empty cache (its requests are sent again)",
        )
        return conn

    def _bypass(self, problem: str) -> None:
        if self.bypassed is None:
            self.bypassed = problem
            report_damaged(
                self.path,
                f"the response cache {problem}",
                "working without it: every request goes to the server",
            )

    def _warn_once(self, what: str, problem: str, action: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            report_damaged(self.path, f"the response cache {problem}", action)

    def _failed(self, e: sqlite3.Error, doing: str) -> None:
        """A read or write failed: a damaged file is replaced, anything else is bypassed for
        this call (reported once). Called with the lock held."""
        if _damage(e):
            if self._conn is not None:
                self._conn.close()
            self._conn = self._replace(f"is damaged ({e})")
            return
        self._warn_once(doing, f"cannot be {doing} ({e})", "going on without it for this answer")

    # -- the store --------------------------------------------------------------------------------
    def get(self, key: str) -> dict[str, Any] | None:
        """The answer stored under ``key``, or ``None`` (also for a row that is no valid answer,
        and when the file cannot be read)."""
        with self._lock:
            if self._conn is None:
                self.misses += 1
                return None
            try:
                row = self._conn.execute(
                    "SELECT answer FROM answers WHERE key = ?", (key,)
                ).fetchone()
            except sqlite3.Error as e:
                self._failed(e, "read")
                row = None
            answer = None
            if row is not None:
                try:
                    answer = json.loads(row[0])
                except (ValueError, TypeError):
                    answer = None
                if not valid_answer(answer):
                    self.bad_rows += 1
                    self._warn_once(
                        "row",
                        "has rows that are no valid answer (not JSON, or not the shape this "
                        "package writes)",
                        "they are ignored, and replaced when their request is answered again",
                    )
                    answer = None
            if answer is None:
                self.misses += 1
                return None
            self.hits += 1
            return dict(answer)

    def put(self, key: str, request: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
        """Store ``answer`` to ``request`` under ``key`` (replacing an earlier one), the request
        redacted; an answer holding a secret is not stored (:attr:`withheld`). A write that
        fails never fails the answer: it is reported once."""
        if redact_data(dict(answer), shapes="keys") != dict(answer):
            with self._lock:
                self.withheld += 1
            return
        req = json.dumps(
            redact_data(dict(request), shapes="all"), sort_keys=True, ensure_ascii=False
        )
        ans = json.dumps(answer, ensure_ascii=False)
        with self._lock:
            for _ in range(2):  # a second try goes to the fresh file that replaced a damaged one
                conn = self._conn
                if conn is None or self._read_only:
                    return
                try:
                    conn.execute(
                        "INSERT OR REPLACE INTO answers (key, request, answer, created) "
                        "VALUES (?, ?, ?, ?)",
                        (key, req, ans, time.time()),
                    )
                    return
                except sqlite3.Error as e:
                    if _code(e) == 8:  # SQLITE_READONLY: keep reading, stop writing
                        self._read_only = True
                        self._warn_once(
                            "written", f"cannot be written ({e})", "new answers are not cached"
                        )
                        return
                    self._failed(e, "written")
                    if self._conn is conn:
                        return

    def __len__(self) -> int:
        with self._lock:
            if self._conn is None:
                return 0
            try:
                return int(self._conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
            except sqlite3.Error as e:
                self._failed(e, "read")
                return 0

    def requests(self) -> list[dict[str, Any]]:
        """Every stored request (oldest first): what a cache file says was asked."""
        with self._lock:
            if self._conn is None:
                return []
            try:
                rows = self._conn.execute("SELECT request FROM answers ORDER BY created").fetchall()
            except sqlite3.Error as e:
                self._failed(e, "read")
                return []
        out = []
        for (text,) in rows:
            try:
                out.append(json.loads(text))
            except (ValueError, TypeError):
                continue
        return out

    def stats(self) -> dict[str, Any]:
        """What happened to the file, for reports."""
        return {
            "file": str(self.path),
            "hits": self.hits,
            "misses": self.misses,
            "bad_rows": self.bad_rows,
            "withheld": self.withheld,
            "moved_to": None if self.moved_to is None else str(self.moved_to),
            "bypassed": self.bypassed,
        }

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"
