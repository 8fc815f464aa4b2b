"""Model answers on disk: one JSON object per line, appended as each answer arrives.

A run asks the same questions again when it is resumed or repeated; :class:`AnswerCache` makes
those questions free. Each answer is one line ``{"key": ..., "text": ..., ...}`` written with a
single ``write`` followed by ``flush`` and ``fsync``, so a crash can at worst leave the *last*
line incomplete. Reading tolerates exactly that: an incomplete last line is cut off (the file is
truncated back to its last complete line, so the next append starts clean) and counted in
:attr:`AnswerCache.repaired`; an unreadable line elsewhere is skipped and counted in
:attr:`AnswerCache.bad_lines`. Keys come from :func:`request_key`: a hash of what was asked
(messages or another payload), the generation options and a description of the answering
component, so changing any of them asks again.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "answers.jsonl"
>>> cache = AnswerCache(path)
>>> key = request_key({"class": "MyLLM"}, [{"role": "user", "content": "hi"}], {"max_tokens": 5})
>>> cache.put(key, {"text": "hello"})
>>> AnswerCache(path).get(key)["text"]
'hello'
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["AnswerCache", "request_key"]


def _default(obj: Any) -> Any:
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return repr(obj)


def request_key(component: Any, payload: Any, options: Mapping[str, Any] | None = None) -> str:
    """A stable hash of (who answers, what is asked, with which options).

    ``component`` is a JSON-able description (``recai.roles.describe_component``), ``payload``
    the request (a list of message dicts, or any JSON-able value) and ``options`` the generation
    options. Keys do not depend on dict order.

    >>> a = request_key("m", [{"role": "user", "content": "x"}], {"temperature": 0.0})
    >>> a == request_key("m", [{"role": "user", "content": "x"}], {"temperature": 0.0})
    True
    >>> a == request_key("m", [{"role": "user", "content": "x"}], {"temperature": 1.0})
    False
    """
    text = json.dumps(
        {"component": component, "request": payload, "options": dict(options or {})},
        sort_keys=True,
        ensure_ascii=False,
        default=_default,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AnswerCache:
    """A key-value store of answers backed by an append-only JSONL file (or memory only).

    ``path=None`` keeps answers in memory for the life of the object. Safe to use from several
    threads: appends are serialised by a lock.
    """

    def __init__(self, path: Path | str | None):
        self.path = None if path is None else Path(path)
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        #: Lines read back from the file when it was opened.
        self.loaded = 0
        #: Unreadable complete lines that were skipped.
        self.bad_lines = 0
        #: Whether an incomplete last line was cut off when the file was opened.
        self.repaired = False
        #: Answers stored by this object.
        self.written = 0
        if self.path is not None:
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # everything after the last newline is an incomplete line
        if end < len(data):
            self.repaired = True
            with open(self.path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        for raw in data[:end].split(b"\n"):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
                key = entry["key"]
            except (ValueError, KeyError, TypeError):
                self.bad_lines += 1
                continue
            self._entries[str(key)] = entry
            self.loaded += 1

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored record for ``key``, or ``None``."""
        return self._entries.get(key)

    def put(self, key: str, record: Mapping[str, Any]) -> None:
        """Store ``record`` under ``key`` and append it to the file (flushed and synced)."""
        entry = {"key": key, **record}
        line = json.dumps(entry, ensure_ascii=False, default=_default) + "\n"
        with self._lock:
            self._entries[key] = entry
            self.written += 1
            if self.path is not None:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(line)
                    f.flush()
                    os.fsync(f.fileno())

    def stats(self) -> dict[str, Any]:
        """What happened to the file, for reports."""
        return {
            "file": None if self.path is None else str(self.path),
            "loaded": self.loaded,
            "written": self.written,
            "bad_lines": self.bad_lines,
            "repaired_last_line": self.repaired,
        }

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        return f"AnswerCache({len(self)} answers, {where})"
