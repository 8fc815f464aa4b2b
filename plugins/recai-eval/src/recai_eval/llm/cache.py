"""Model answers on disk: one JSON object per line, appended as each answer arrives.

A run asks the same questions again when it is resumed or repeated; :class:`AnswerCache` makes
those questions free. Only answers are stored, never failures: a request that raised is asked
again by the next run. Each answer is one line ``{"key": ..., "text": ..., ...}`` written with a
single ``write`` followed by ``flush`` and ``fsync``, so a crash can at worst leave the *last*
line incomplete. Reading tolerates exactly that: an incomplete last line is cut off (the file is
truncated back to its last complete line, so the next append starts clean) and counted in
:attr:`AnswerCache.repaired` — when it begins like an answer; anything else there is damage. Anything else that cannot be read is **damage**, reported once and
never turned into failed samples (:mod:`recai.damaged`):

- unreadable lines elsewhere (not JSON, not UTF-8, no string ``key`` and ``text``) are counted in
  :attr:`AnswerCache.bad_lines`; the file is moved aside to ``<name>.corrupt-<n>`` and rewritten
  with the readable answers (atomically), so the next run starts clean;
- a file that cannot be read at all (a directory in its place, no read permission, an I/O
  error) is moved aside and the cache starts empty;
- when the file cannot be moved aside or written (a read-only folder, a full disk), the cache
  keeps answers in memory for this run and says so once.

Keys come from :func:`request_key`: a hash of what was asked (messages or another payload), the
generation options and a description of the answering component, so changing any of them asks
again.

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
import stat
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recai.damaged import report_damaged, set_aside
from recai.runtime import atomic_write_text
from recai.secrets import redact_data

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


#: How every line this cache writes begins (``json.dumps`` keeps the ``key`` first).
_LINE_START = b'{"key": '


def _problem(e: OSError) -> str:
    return e.strerror or type(e).__name__


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
        #: Where a damaged file was moved (``<name>.corrupt-<n>``), if it was.
        self.moved_to: Path | None = None
        #: Why the file is not written (answers then stay in memory), if it is not.
        self.bypassed: str | None = None
        if self.path is not None:
            self._load(self.path)

    # -- reading ----------------------------------------------------------------------------------
    def _load(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._bypass(f"cannot create its folder ({_problem(e)})")
            return
        if not os.path.lexists(path):
            return
        try:
            if not stat.S_ISREG(path.stat().st_mode):  # a folder, a FIFO (reading would block)
                kind = "a folder" if path.is_dir() else "not a regular file"
                self._damaged(f"is {kind}", rewrite=False)
                return
            data = path.read_bytes()
        except OSError as e:
            self._damaged(f"cannot be read ({_problem(e)})", rewrite=False)
            return
        end = data.rfind(b"\n") + 1  # everything after the last newline is an incomplete line
        self.repaired = end < len(data)
        if self.repaired and not data[end:].startswith(_LINE_START[: len(data) - end]):
            self.bad_lines += 1  # not the start of an answer cut off while appending: damage
        for raw in data[:end].split(b"\n"):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
                key = entry["key"]
                if not isinstance(key, str) or not isinstance(entry.get("text"), str):
                    raise TypeError("no string key and text")
            except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                self.bad_lines += 1
                continue
            self._entries[key] = entry
            self.loaded += 1
        if self.bad_lines:
            self._damaged(
                f"{self.bad_lines} unreadable line(s) (not JSON, or no key and text) among "
                f"{self.loaded + self.bad_lines}",
                rewrite=True,
            )
        elif self.repaired:  # a crash while appending: cut the torn line off, quietly
            try:
                with open(path, "r+b") as f:
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                self._bypass(f"cannot cut off its incomplete last line ({_problem(e)})")

    def _damaged(self, problem: str, *, rewrite: bool) -> None:
        """Move the damaged file aside and start a clean one (with the readable answers)."""
        assert self.path is not None
        moved = set_aside(self.path)
        if moved is None:
            self._bypass(f"{problem}, and it cannot be moved aside")
            return
        self.moved_to = moved
        kept = ""
        if rewrite and self._entries:
            kept = f" with the {len(self._entries)} readable answer(s)"
            try:
                atomic_write_text(self.path, "".join(self._line(e) for e in self._entries.values()))
            except OSError as e:
                self._bypass(
                    f"{problem}; moved aside to {moved.name}, but a new file cannot be written "
                    f"({_problem(e)})"
                )
                return
        report_damaged(
            self.path,
            f"the answer cache is damaged: {problem}",
            f"moved aside to {moved.name}; starting a clean cache{kept} (failed and lost answers "
            "are asked again)",
        )

    def _bypass(self, problem: str) -> None:
        """Keep answers in memory only, and say so once."""
        if self.bypassed is None:
            self.bypassed = problem
            report_damaged(
                self.path or "<memory>",
                f"the answer cache {problem}",
                "answers are kept in memory for this run only",
            )

    # -- the store --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored record for ``key``, or ``None``."""
        return self._entries.get(key)

    @staticmethod
    def _line(entry: Mapping[str, Any]) -> str:
        # the request (a prompt built from a recipe value that came from ${ENV}) and the answer
        # (a model repeating it) are written without the registered secrets
        clean = redact_data(json.loads(json.dumps(entry, default=_default)), shapes="none")
        return json.dumps(clean, ensure_ascii=False) + "\n"

    def put(self, key: str, record: Mapping[str, Any]) -> None:
        """Store ``record`` under ``key`` and append it to the file (flushed and synced).

        A write that fails (a full disk, a file that became read-only) never fails the answer:
        it is kept in memory, and the problem is reported once.
        """
        entry = {"key": key, **record}
        line = self._line(entry)
        with self._lock:
            self._entries[key] = entry
            self.written += 1
            if self.path is None or self.bypassed is not None:
                return
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(line)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                self._bypass(f"cannot be written ({_problem(e)})")

    def stats(self) -> dict[str, Any]:
        """What happened to the file, for reports."""
        return {
            "file": None if self.path is None else str(self.path),
            "loaded": self.loaded,
            "written": self.written,
            "bad_lines": self.bad_lines,
            "repaired_last_line": self.repaired,
            "moved_to": None if self.moved_to is None else str(self.moved_to),
            "bypassed": self.bypassed,
        }

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        return f"AnswerCache({len(self)} answers, {where})"
