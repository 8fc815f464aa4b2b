"""The response cache never turns a damaged file into failed requests, and never stores a failure
(issue 17 item 1).

openai.v1 talks to a real server on loopback (recai-serve's :class:`LLMServer`, faults from
:mod:`recai.testing.faults`); the cache is a real SQLite file, damaged as files get damaged.
"""

from __future__ import annotations

import os
import sqlite3
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import recai
from recai.damaged import DamagedFileWarning
from recai.testing.faults import FaultPlan
from recai.types import Completion, Message, Usage
from recai_openai.cache import ResponseCache, valid_answer
from recai_openai.errors import LLMRequestError
from recai_serve.server import LLMServer

KEY_ENV = "RECAI_OPENAI_DAMAGE_TEST_KEY"
KEY = "sk-test-damage-0123456789abcdef"


class Echo(recai.LLMBackend):
    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        return Completion(f"echo: {messages[-1].content}", usage=Usage(2, 2))


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    faults = FaultPlan()
    with LLMServer({"echo": Echo()}, middleware=[faults.middleware]) as s:
        s.faults = faults
        yield s


@pytest.fixture(autouse=True)
def _fresh(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    server.faults.clear()
    server.stats.reset()


def make(server: Any, cache: Path) -> Any:
    return recai.create(
        "llm_backend",
        "openai.v1",
        model="echo",
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        max_retries=0,
        cache=str(cache),
    )


def ask(llm: Any, text: str = "hi") -> str:
    return str(llm.chat([Message.user(text)], temperature=0.0).text)


def fill(path: Path, rows: int = 2000) -> None:
    """A cache of many pages (so that damage lands in the middle of the data)."""
    cache = ResponseCache(path)
    answer = {"text": "x" * 300, "finish_reason": "stop", "usage": [1, 1], "model": "echo"}
    for i in range(rows):
        cache.put(f"k{i}", {"padding": "y" * 200}, answer)
    cache.close()


class Said:
    """The DamagedFileWarnings raised inside the block."""

    def __enter__(self) -> list[str]:
        self._cm = warnings.catch_warnings(record=True)
        self._caught = self._cm.__enter__()
        warnings.simplefilter("always")
        self.messages: list[str] = []
        return self.messages

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)
        self.messages += [
            str(w.message) for w in self._caught if issubclass(w.category, DamagedFileWarning)
        ]


def test_failed_requests_are_never_cached(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    llm = make(server, path)
    server.faults.add("500")
    with pytest.raises(LLMRequestError, match="HTTP 500"):
        ask(llm)
    assert len(ResponseCache(path)) == 0
    assert ask(llm) == "echo: hi" and server.stats.requests == 2  # asked again, answered
    assert ask(make(server, path)) == "echo: hi" and server.stats.requests == 2  # now cached


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(os.urandom(5000)),
        lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 50),  # a cut-off header
        lambda p: (p / "sub").mkdir(parents=True),
        lambda p: os.mkfifo(p),
        lambda p: os.symlink(p, p),
    ],
    ids=["garbage", "truncated-header", "folder", "fifo", "link-loop"],
)
def test_a_damaged_file_is_reported_once_moved_aside_and_rebuilt(
    server: Any, tmp_path: Path, damage: Any
) -> None:
    path = tmp_path / "c.sqlite"
    damage(path)
    with Said() as said:
        llm = make(server, path)
        answers = [ask(llm, f"q{i}") for i in range(3)]
    assert answers == ["echo: q0", "echo: q1", "echo: q2"]
    assert len(said) == 1 and str(path) in said[0] and "corrupt-1" in said[0]
    assert os.path.lexists(tmp_path / "c.sqlite.corrupt-1") and KEY not in said[0]
    with Said() as quiet:
        assert ask(make(server, path), "q1") == "echo: q1"
    assert quiet == [] and server.stats.requests == 3  # rebuilt: the next backend reads it


def test_a_truncated_database_is_rebuilt(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    fill(path)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with Said() as said:
        assert ask(make(server, path)) == "echo: hi"
    assert len(said) == 1 and "moved aside" in said[0]


def test_damage_found_on_a_later_read_is_recovered_once(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    fill(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:  # the schema page is fine; data pages in the middle are not
        f.seek(size // 2)
        f.write(b"\xff" * 65536)
    with Said() as said:
        cache = ResponseCache(path)
        assert cache.moved_to is None  # opening saw nothing wrong
        found = [cache.get(f"k{i}") for i in range(2000)]
        cache.put("new", {}, {"text": "t", "finish_reason": "stop", "usage": [1, 1], "model": "m"})
    assert len(said) == 1 and "damaged" in said[0] and cache.moved_to is not None
    assert found.count(None) > 0 and cache.get("new") is not None
    with Said() as quiet:
        llm = make(server, path)
        assert [ask(llm, "a"), ask(llm, "a")] == ["echo: a", "echo: a"]
    assert quiet == [] and server.stats.requests == 1


def test_rows_that_are_no_answer_are_misses_and_get_replaced(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    llm = make(server, path)
    ask(llm, "a"), ask(llm, "b"), ask(llm, "c")
    llm.close()
    with sqlite3.connect(path) as db:
        keys = [k for (k,) in db.execute("SELECT key FROM answers ORDER BY created")]
        db.execute("UPDATE answers SET answer = '{not json' WHERE key = ?", (keys[0],))
        db.execute("UPDATE answers SET answer = '[1, 2]' WHERE key = ?", (keys[1],))
        db.execute(
            "UPDATE answers SET answer = ? WHERE key = ?",
            ('{"text": null, "finish_reason": "stop", "usage": [1], "model": "echo"}', keys[2]),
        )
    db.close()
    server.stats.reset()
    with Said() as said:
        again = make(server, path)
        assert [ask(again, t) for t in "abc"] == ["echo: a", "echo: b", "echo: c"]
    assert server.stats.requests == 3 and len(said) == 1 and "no valid answer" in said[0]
    with Said() as quiet:
        assert [ask(make(server, path), t) for t in "abc"] == ["echo: a", "echo: b", "echo: c"]
    assert quiet == [] and server.stats.requests == 3  # replaced by the answers


def test_a_stale_write_ahead_log_goes_aside_with_its_database(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(os.urandom(3000))
    Path(f"{path}-wal").write_bytes(os.urandom(3000))
    with Said() as said:
        cache = ResponseCache(path)
    assert len(said) == 1 and len(cache) == 0
    assert (tmp_path / "c.sqlite-wal.corrupt-1").exists()


def test_valid_answer_shapes() -> None:
    chat = {"text": "t", "finish_reason": "stop", "usage": [1, 2], "model": "m"}
    assert valid_answer(chat) and valid_answer({"scores": [-1.5, 0], "usage": [3, 0], "model": "m"})
    for bad in (
        None,
        [],
        {**chat, "usage": [1, -2]},
        {**chat, "usage": [True, 1]},
        {**chat, "model": 5},
        {k: v for k, v in chat.items() if k != "finish_reason"},
        {"scores": ["x"], "usage": [1, 0], "model": "m"},
    ):
        assert not valid_answer(bad), bad
