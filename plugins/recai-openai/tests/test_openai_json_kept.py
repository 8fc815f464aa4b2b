"""An answer that stays invalid for a JSON schema is kept: ``LLMOutputError.completions``.

Against a real OpenAI-compatible server on loopback (``recai serve``'s :class:`LLMServer`) and the
real ``openai`` client, as the other recai-openai tests: a model that gives up on the schema still
answered, so an evaluation scores its reply (a miss) instead of counting no answer.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import recai
from recai.errors import RecaiError
from recai.roles import LLMBackend
from recai.types import Completion, Message, Usage
from recai_openai.errors import LLMOutputError
from recai_serve.server import LLMServer

KEY_ENV = "RECAI_OPENAI_TEST_KEY"
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["answer", "n"],
}
BAD = '{"answer": "ok", "n": "two"'  # cut short and "two" is no integer: never valid


class Picky(LLMBackend):
    """Valid JSON when the first user message says "good", else :data:`BAD`, however often it
    is asked to repair; usage 5 + 5 per reply."""

    def chat(self, messages: Any, **options: Any) -> Completion:
        first = next(m.content for m in messages if m.role == "user")
        text = json.dumps({"answer": first, "n": 2}) if "good" in first else BAD
        return Completion(text, "stop", Usage(5, 5))


@pytest.fixture(scope="module")
def server() -> Any:
    with LLMServer({"picky": Picky()}) as s:
        yield s


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch, server: LLMServer) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-0123456789abcdefSECRET")
    server.stats.reset()


def make(server: LLMServer, **params: Any) -> Any:
    defaults = {
        "model": "picky",
        "base_url": server.base_url,
        "api_key_env": KEY_ENV,
        "json_mode": "prompt",
        "json_repairs": 2,
    }
    return recai.create("llm_backend", "openai.v1", **{**defaults, **params})


def conv(text: str) -> list[Message]:
    return [Message.system("Answer in JSON."), Message.user(text)]


def test_chat_keeps_the_last_invalid_reply_with_the_cost_of_every_attempt(
    server: LLMServer,
) -> None:
    llm = make(server)
    with pytest.raises(LLMOutputError, match=r"in 3 attempt\(s\) \(2 repair\(s\)\)") as info:
        llm.chat(conv("bad"), json_schema=SCHEMA)
    e = info.value
    assert isinstance(e, RecaiError) and e.exit_code == 2
    assert e.failed == [0] and len(e.completions) == 1
    (kept,) = e.completions
    assert kept.text == BAD and kept.finish_reason == "stop"
    assert (kept.usage.prompt_tokens, kept.usage.completion_tokens) == (15, 15)  # 3 attempts
    assert kept.model and kept.latency_s > 0
    assert server.stats.requests == 3


@pytest.mark.parametrize("concurrency", [1, 3])
def test_chat_batch_keeps_every_reply_in_order_when_some_stay_invalid(
    server: LLMServer, concurrency: int
) -> None:
    llm = make(server, max_concurrency=concurrency)
    texts = ["good 0", "bad 1", "good 2", "bad 3", "good 4"]
    with pytest.raises(
        LLMOutputError,
        match=r"^2 of 5 conversations got no valid JSON for the schema \(conversations 1, 3\); "
        r"the first: .*no valid JSON for the schema in 3 attempt",
    ) as info:
        llm.chat_batch([conv(t) for t in texts], json_schema=SCHEMA)
    e = info.value
    assert e.failed == [1, 3]
    assert [c.text for c in e.completions] == [
        json.dumps({"answer": "good 0", "n": 2}),
        BAD,
        json.dumps({"answer": "good 2", "n": 2}),
        BAD,
        json.dumps({"answer": "good 4", "n": 2}),
    ]
    assert [c.usage.completion_tokens for c in e.completions] == [5, 15, 5, 15, 5]
    assert server.stats.requests == 3 + 2 * 3  # every conversation answered, none given up


def test_a_batch_of_one_raises_the_conversations_own_error(server: LLMServer) -> None:
    llm = make(server, max_concurrency=4)
    with pytest.raises(LLMOutputError, match=r"^openai.*gave no valid JSON") as info:
        llm.chat_batch([conv("bad")], json_schema=SCHEMA)
    assert [c.text for c in info.value.completions] == [BAD]


def test_recai_eval_schema_caller_scores_the_kept_reply(server: LLMServer) -> None:
    constrained = pytest.importorskip("recai_eval.llm.constrained")
    caller = constrained.SchemaCaller(make(server), {"max_tokens": 50})
    text, extra = caller.ask((conv("bad"), SCHEMA))
    # an answer (a miss when scored), not an error that counts the sample unanswered
    assert text == BAD
    assert extra["usage"] == [15, 15]
    assert extra["schema_error"].startswith("LLMOutputError: ")
