"""The answer cache and the runner: resumed runs cost nothing, concurrency stays bounded,
native batches are used, and every failure is kept."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import recai
from recai.types import Completion, Message, Usage
from recai_eval.llm.cache import AnswerCache, request_key
from recai_eval.llm.runner import Answer, LLMCaller, Runner, caller_for


def conv(text: str) -> list[Message]:
    return [Message.system("be brief"), Message.user(text)]


class CountingLLM(recai.LLMBackend):
    """Answers ``echo: <last user message>``; raises for messages containing ``boom``.

    Its counters are private: the cache key describes a hand-built backend by its public simple
    attributes, which must not change between runs.
    """

    def __init__(self, delay: float = 0.0, fail_first: int = 0):
        self.delay = delay
        self._fail_first = fail_first
        self._calls: list[str] = []
        self._options: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._active = 0
        self._max_active = 0

    calls = property(lambda self: self._calls)
    options = property(lambda self: self._options)
    max_active = property(lambda self: self._max_active)

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        text = messages[-1].content
        with self._lock:
            self._calls.append(text)
            self._options.append(options)
            self._active += 1
            self._max_active = max(self._max_active, self._active)
            flaky = self._fail_first > 0
            self._fail_first -= 1 if flaky else 0
        try:
            if self.delay:
                time.sleep(self.delay)
            if "boom" in text or flaky:
                raise RuntimeError(f"cannot answer {text!r}")
            return Completion(f"echo: {text}", usage=Usage(3, 2), model="counting")
        finally:
            with self._lock:
                self._active -= 1


class BatchingLLM(CountingLLM):
    """Overrides ``chat_batch`` (native batching); a batch holding ``boom`` raises whole."""

    def __init__(self) -> None:
        super().__init__()
        self._batches: list[int] = []

    batches = property(lambda self: self._batches)

    def chat_batch(
        self, conversations: Sequence[Sequence[Message]], **options: Any
    ) -> list[Completion]:
        self._batches.append(len(conversations))
        if any("boom" in c[-1].content for c in conversations):
            raise RuntimeError("batch failed")
        return [Completion(f"batched: {c[-1].content}") for c in conversations]


# -- the cache file -------------------------------------------------------------------------------
def test_request_keys_depend_on_everything_asked() -> None:
    msgs = [m.to_dict() for m in conv("hi")]
    key = request_key({"class": "A"}, msgs, {"max_tokens": 5, "temperature": 0.0})
    assert key == request_key({"class": "A"}, msgs, {"temperature": 0.0, "max_tokens": 5})
    assert key != request_key({"class": "B"}, msgs, {"max_tokens": 5, "temperature": 0.0})
    assert key != request_key({"class": "A"}, msgs, {"max_tokens": 6, "temperature": 0.0})
    assert key != request_key(
        {"class": "A"}, [m.to_dict() for m in conv("ho")], {"max_tokens": 5, "temperature": 0.0}
    )


def test_cache_survives_a_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    cache = AnswerCache(path)
    for i in range(3):
        cache.put(f"k{i}", {"text": f"answer {i}"})
    raw = path.read_bytes()
    path.write_bytes(raw[:-15])  # a crash in the middle of writing the last line
    again = AnswerCache(path)
    assert again.repaired and again.loaded == 2 and again.bad_lines == 0
    assert again.get("k1")["text"] == "answer 1" and again.get("k2") is None
    again.put("k2", {"text": "answer 2 again"})  # appends cleanly after the cut
    lines = path.read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["k0", "k1", "k2"]
    assert not AnswerCache(path).repaired


def test_cache_skips_and_counts_unreadable_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"key": "a", "text": "x"}\nnot json\n{"text": "no key"}\n{"key": "b", "text": "y"}\n'
    )
    cache = AnswerCache(path)
    assert (cache.loaded, cache.bad_lines, len(cache)) == (2, 2, 2)
    assert cache.stats()["bad_lines"] == 2


def test_memory_cache_writes_no_file(tmp_path: Path) -> None:
    cache = AnswerCache(None)
    cache.put("k", {"text": "v"})
    assert cache.get("k")["text"] == "v" and cache.stats()["file"] is None


# -- the runner -----------------------------------------------------------------------------------
def test_second_run_makes_no_calls_and_failures_are_not_cached(tmp_path: Path) -> None:
    llm = CountingLLM()
    requests = [conv("a"), conv("boom"), conv("b"), conv("a")]  # "a" twice: asked once
    runner = Runner(AnswerCache(tmp_path / "c.jsonl"), concurrency=2)
    first = runner.run(LLMCaller(llm, {"max_tokens": 8}), requests)
    assert [a.text for a in first] == ["echo: a", None, "echo: b", "echo: a"]
    assert first[1].error == "RuntimeError: cannot answer 'boom'"
    assert sorted(llm.calls) == ["a", "b", "boom"]
    assert runner.stats["calls"] == 3 and runner.stats["failed"] == 1

    llm.calls.clear()
    again = Runner(AnswerCache(tmp_path / "c.jsonl"), concurrency=2)
    second = again.run(LLMCaller(llm, {"max_tokens": 8}), requests)
    assert llm.calls == ["boom"]  # only the failed request is asked again
    assert [a.cached for a in second] == [True, False, True, True]
    assert again.stats["cached"] == 3 and again.stats["calls"] == 1

    llm.calls.clear()
    Runner(AnswerCache(tmp_path / "c.jsonl")).run(LLMCaller(llm, {"max_tokens": 9}), requests[:1])
    assert llm.calls == ["a"]  # other options: other key


def test_cache_records_hold_the_request_and_the_usage(tmp_path: Path) -> None:
    Runner(AnswerCache(tmp_path / "c.jsonl")).run(
        LLMCaller(CountingLLM(), {"temperature": 0.0}), [conv("q")]
    )
    (record,) = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert (
        record["text"] == "echo: q" and record["usage"] == [3, 2] and record["model"] == "counting"
    )
    assert record["request"][-1] == {"role": "user", "content": "q"}


def test_none_options_are_left_to_the_backend() -> None:
    llm = CountingLLM()
    Runner(AnswerCache(None)).run(
        LLMCaller(llm, {"max_tokens": None, "temperature": 0.2}), [conv("x")]
    )
    assert llm.options == [{"temperature": 0.2}]


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_overlaps_and_never_exceeds_the_limit(limit: int) -> None:
    llm = CountingLLM(delay=0.05)
    start = time.perf_counter()
    answers = Runner(AnswerCache(None), concurrency=limit).run(
        LLMCaller(llm), [conv(str(i)) for i in range(9)]
    )
    elapsed = time.perf_counter() - start
    assert all(a.ok for a in answers) and [a.text for a in answers] == [
        f"echo: {i}" for i in range(9)
    ]
    assert llm.max_active == limit
    if limit > 1:
        assert elapsed < 9 * 0.05 * 0.8  # requests overlapped in time


def test_native_batches_come_in_chunks_and_a_bad_batch_is_split() -> None:
    llm = BatchingLLM()
    caller = LLMCaller(llm)
    assert caller.native_batch and not LLMCaller(CountingLLM()).native_batch
    runner = Runner(AnswerCache(None), batch_size=4, concurrency=8)
    texts = ["a", "b", "c", "boom", "d", "e", "f", "g", "h", "i"]
    answers = runner.run(caller, [conv(t) for t in texts])
    assert llm.batches == [4, 4, 2]
    assert llm.calls == ["a", "b", "c", "boom"]  # the failed chunk, asked one by one
    assert [a.ok for a in answers] == [t != "boom" for t in texts]
    assert answers[0].text == "echo: a" and answers[4].text == "batched: d"


def test_retries_recover_flaky_calls() -> None:
    flaky = CountingLLM(fail_first=2)
    answers = Runner(AnswerCache(None), retries=1, concurrency=1).run(
        LLMCaller(flaky), [conv("a"), conv("b")]
    )
    assert [a.text for a in answers] == [None, "echo: b"]  # "a" failed twice, "b" once then ok
    assert flaky.calls == ["a", "a", "b"]


def test_progress_sees_every_request() -> None:
    seen: list[int] = []

    def progress(iterable: Any, desc: str = "", total: int | None = None) -> Any:
        seen.append(total or 0)
        yield from iterable

    Runner(AnswerCache(None), progress=progress).run(
        LLMCaller(CountingLLM()), [conv("a"), conv("b")]
    )
    assert seen == [2]


def test_wrong_return_types_fail_the_sample() -> None:
    class Broken(recai.LLMBackend):
        def chat(self, messages: Sequence[Message], **options: Any) -> Any:
            return "just a string"

    (answer,) = Runner(AnswerCache(None)).run(LLMCaller(Broken()), [conv("a")])
    assert answer == Answer(None, "TypeError: the backend returned str, not a recai.Completion")


def test_agents_and_explainers_are_asked_too(tmp_path: Path) -> None:
    class Parrot(recai.Agent):
        def reply(self, conversation: Sequence[Message]) -> Message:
            return Message.assistant(conversation[-1].content.upper())

    class Because(recai.Explainer):
        def explain(self, history: recai.ItemList, item: int) -> recai.Explanation:
            return recai.Explanation(item, f"because of {history.ids.tolist()}")

    runner = Runner(AnswerCache(tmp_path / "c.jsonl"))
    assert runner.run(caller_for(Parrot()), [[Message.user("hi")]])[0].text == "HI"
    assert runner.run(caller_for(Because()), [([1, 2], 3)])[0].text == "because of [1, 2]"
    assert runner.run(caller_for(Because()), [([1, 2], 3)])[0].cached
    with pytest.raises(TypeError, match="cannot ask"):
        caller_for(object())
