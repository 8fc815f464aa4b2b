"""No secret reaches the response cache's file: not the API key (from the environment, sent in
the ``Authorization`` header, or pasted into a message), not a bearer token, not a value
registered as a secret (as a recipe's ``${VAR}`` values are). openai.v1 talks to a real server on
loopback (recai-serve's :class:`LLMServer`); the cache is a real SQLite file, read back as bytes
(the database and its write-ahead log)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from test_openai_cache_damage import KEY_ENV, make

import recai
from recai.secrets import forget_secrets, known_secrets, register
from recai.types import Completion, Message, Usage
from recai_openai.cache import ResponseCache
from recai_serve.server import LLMServer

KEY = "sk-test-secret-9f8e7d6c5b4a3210"
TOKEN = "tok.4c2d9e1f7a"  # a bearer token of another service: no sk- shape, not registered
DATA_DIR = "/srv/private/ml-data-7731"  # a value a recipe took from the environment


class Careful(recai.LLMBackend):
    """Answers ``ok: <n characters>``, or echoes a message that asks for it."""

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        text = messages[-1].content
        said = f"echo: {text}" if text.startswith("repeat") else f"ok: {len(text)}"
        return Completion(said, usage=Usage(3, 2))


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with LLMServer({"echo": Careful()}) as s:  # the model make() asks for
        yield s


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(KEY_ENV, KEY)
    before = known_secrets()
    forget_secrets()  # the key is registered by the backend that reads it, not here
    register([DATA_DIR])
    yield
    forget_secrets()
    register(before)


def on_disk(folder: Path) -> bytes:
    """Every byte of the cache's files (the database, its -wal and -shm)."""
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def leaks(data: bytes) -> list[str]:
    return [s for s in (KEY, TOKEN, DATA_DIR) if s.encode() in data]


MESSAGE = (
    f"my key is {KEY}; the other service wants Authorization: Bearer {TOKEN}; "
    f"the data is under {DATA_DIR}"
)


def test_a_request_holding_secrets_is_stored_redacted_and_still_found(
    server: Any, tmp_path: Path
) -> None:
    path = tmp_path / "cache" / "answers.sqlite"
    llm = make(server, path)
    first = llm.chat([Message.user(MESSAGE)], temperature=0.0)
    assert first.text == f"ok: {len(MESSAGE)}"
    streamed = "".join(llm.stream([Message.system("be brief"), Message.user(MESSAGE)]))
    assert streamed == first.text
    assert leaks(on_disk(path.parent)) == []
    llm.close()
    cache = ResponseCache(path)
    stored = cache.requests()
    assert len(stored) == 2
    content = stored[0]["messages"][-1]["content"]
    assert content == (
        "my key is ***; the other service wants Authorization: Bearer ***; the data is under ***"
    )
    cache.close()
    # the row's key is the request as sent: a rerun is answered from the file
    again = make(server, path)
    sent = server.stats.requests
    assert again.chat([Message.user(MESSAGE)], temperature=0.0).text == first.text
    assert server.stats.requests == sent and again.totals()["cached_calls"] == 1
    again.close()
    assert leaks(on_disk(path.parent)) == []


def test_an_answer_holding_a_secret_is_returned_but_not_stored(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "cache" / "answers.sqlite"
    llm = make(server, path)
    asked = [f"repeat {KEY}", f"repeat {DATA_DIR}"]
    for text in asked:
        assert llm.chat([Message.user(text)], temperature=0.0).text == f"echo: {text}"
    assert llm.chat([Message.user("repeat nothing secret")]).text == "echo: repeat nothing secret"
    assert llm._cache.withheld == 2 and llm._cache.stats()["withheld"] == 2
    assert len(llm._cache) == 1
    assert leaks(on_disk(path.parent)) == []
    sent = server.stats.requests
    assert llm.chat([Message.user(asked[0])], temperature=0.0).text == f"echo: {asked[0]}"
    assert server.stats.requests == sent + 1  # asked again: nothing was kept
    llm.close()


def test_put_redacts_what_any_caller_hands_it(tmp_path: Path) -> None:
    """The cache, not only the backend, keeps secrets out: a request with the key in a header
    of its own, and the key in an answer's tool call."""
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    request = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "extra_headers": {"Authorization": f"Bearer {KEY}", "api-key": KEY},
    }
    answer = {"text": "hi", "finish_reason": "stop", "usage": [1, 1], "model": "m"}
    cache.put("k1", request, answer)
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": f'"{KEY}"'}}
    cache.put("k2", request, {**answer, "finish_reason": "tool_calls", "tool_calls": [call]})
    assert cache.get("k1") == answer and cache.get("k2") is None and cache.withheld == 1
    assert cache.requests()[0]["extra_headers"] == {"Authorization": "Bearer ***", "api-key": "***"}
    cache.close()
    assert leaks(on_disk(tmp_path)) == []
