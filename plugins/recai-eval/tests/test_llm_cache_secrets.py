"""The answer cache of the LLM tasks writes no value a recipe took from ``${ENV}`` (issue 17,
item 4): requests hold prompts built from recipe params, answers may repeat them."""

from __future__ import annotations

from pathlib import Path

from recai import secrets
from recai_eval.llm.cache import AnswerCache, request_key

SECRET = "prompt-from-the-environment-7731"


def test_cached_requests_and_answers_are_written_without_registered_secrets(
    tmp_path: Path,
) -> None:
    secrets.register([SECRET])
    path = tmp_path / "llm-cache" / "rank.jsonl"
    cache = AnswerCache(path)
    messages = [
        {"role": "system", "content": f"You are {SECRET}."},
        {"role": "user", "content": "hi"},
    ]
    key = request_key({"class": "LLM"}, messages, {"max_tokens": 5})
    cache.put(key, {"text": f"As {SECRET}, I say hello", "request": messages})
    cache.put("other", {"text": "plain answer", "request": [{"role": "user", "content": "x"}]})
    written = path.read_text(encoding="utf-8")
    assert SECRET not in written and written.count("***") == 2
    again = AnswerCache(path)
    assert again.get(key)["text"] == "As ***, I say hello"  # the key is a hash: it still hits
    assert again.get("other")["text"] == "plain answer"  # other answers are untouched
    assert cache.get(key)["text"] == f"As {SECRET}, I say hello"  # this run keeps its answer
