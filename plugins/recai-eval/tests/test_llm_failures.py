"""A failure is never a result (issue 17 item 1): unanswered samples, the failure threshold, and
damaged answer caches.

The LLM tasks run for real on the test kit's tiny dataset, against backends that fail the way
real ones do (every call, some calls, with a key in the message, with a user's error or the
environment's); the answer cache is a real file, damaged in the ways files get damaged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import recai
from recai.damaged import DamagedFileWarning
from recai.errors import ParamsError, RecaiError
from recai.runtime import RunContext
from recai.testing import make_tiny_dataset
from recai.types import Completion, ItemList, Message, Query, Usage
from recai_eval.llm.base import LLMStageError
from recai_eval.llm.cache import AnswerCache
from recai_eval.llm.choice import SeqRankingMCEvaluator
from recai_eval.llm.conversation import ConversationEvaluator
from recai_eval.llm.embedding import EmbeddingRetrievalEvaluator
from recai_eval.llm.explanation import ExplanationEvaluator
from recai_eval.llm.ranking import LLMRankingEvaluator
from recai_eval.llm.retrieval import LLMRetrievalEvaluator
from recai_eval.llm.runner import LLMCaller, Runner

KEY_ENV = "RECAI_EVAL_FAILURES_TEST_KEY"
KEY = "tok-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"  # not shaped like an OpenAI key: redacted by value


class WrongKey(RecaiError):
    """What a client raises for an HTTP 401 (it carries the status, as recai-openai's does)."""

    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.status = status


LISTED = set("-0123456789")


class Sorter(recai.LLMBackend):
    """Answers every conversation with its bulleted and numbered lines sorted, numbered (a
    deterministic ranking); fails the requests ``fail`` says, and keeps what it was asked."""

    def __init__(self, fail: Any = None, api_key_env: str | None = None):
        self.fail = fail or (lambda i, text: None)
        self.api_key_env = api_key_env
        self._asked: list[str] = []  # private: the description (and cache keys) stay the same

    @property
    def asked(self) -> list[str]:
        return self._asked

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        text = "\n".join(m.content for m in messages)
        error = self.fail(len(self.asked), text)
        self.asked.append(text)
        if error is not None:
            raise error
        lines = sorted(line.split(" ", 1)[-1] for line in text.splitlines() if line[:1] in LISTED)
        return Completion(
            "\n".join(f"{i}. {t}" for i, t in enumerate(lines, 1)) or "B", usage=Usage(3, 3)
        )


@pytest.fixture(scope="module")
def source() -> recai.DatasetSource:
    return recai.DatasetSource.of(make_tiny_dataset())


def ctx(tmp_path: Path, name: str = "run") -> RunContext:
    return RunContext(tmp_path / name, seed=3, progress=False)


def ranking(source: Any, llm: Any, **params: Any) -> LLMRankingEvaluator:
    return LLMRankingEvaluator(
        source, llm, samples=20, bootstrap=0, n_candidates=8, concurrency=1, **params
    )


def always(error: Exception) -> Any:
    return lambda i, text: error


def first(n: int, error: Exception) -> Any:
    return lambda i, text: error if i < n else None


# -- every sample failed ---------------------------------------------------------------------------
def test_all_samples_failing_is_an_error_not_a_zero_result(source: Any, tmp_path: Path) -> None:
    llm = Sorter(always(ConnectionError("[Errno 111] Connection refused")))
    with pytest.raises(LLMStageError) as caught:
        ranking(source, llm).evaluate(ctx(tmp_path))
    e = caught.value
    assert (e.failed, e.samples, e.exit_code) == (20, 20, 1)
    text = str(e)
    assert "20 of 20 samples failed (no sample got an answer)" in text
    assert (
        "first (sample 0, user" in text
        and "ConnectionError: [Errno 111] Connection refused" in text
    )
    assert "\n" not in text  # one paragraph
    # nothing was written as if it were a result, nothing failed was cached
    assert not (tmp_path / "run" / "llm-results").exists()
    cache = tmp_path / "run" / "llm-cache" / "LLMRankingEvaluator.jsonl"
    assert not cache.exists() or cache.read_text() == ""


def test_all_failing_raises_even_when_any_share_is_allowed(source: Any, tmp_path: Path) -> None:
    llm = Sorter(always(TimeoutError("read timed out")))
    with pytest.raises(LLMStageError, match="no sample got an answer"):
        ranking(source, llm, max_failed_share=1.0).evaluate(ctx(tmp_path))


def test_a_users_error_exits_2_and_its_key_is_redacted(
    source: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    llm = Sorter(
        always(WrongKey(f"HTTP 401: Incorrect API key provided: {KEY}\n(check it)")),
        api_key_env=KEY_ENV,
    )
    with pytest.raises(LLMStageError) as caught:
        ranking(source, llm).evaluate(ctx(tmp_path))
    assert caught.value.exit_code == 2
    assert KEY not in str(caught.value) and "Incorrect API key provided: ***" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (WrongKey("model not found", status=404), 2),
        (WrongKey("rate limited", status=429), 1),  # the server's trouble, not the user's
        (WrongKey("bad gateway", status=502), 1),
        (WrongKey("connection refused", status=None), 1),  # type: ignore[arg-type]
        (RecaiError("the model name is not a model"), 2),
        (RuntimeError("CUDA out of memory"), 1),
    ],
)
def test_exit_code_says_whose_failure_it_is(
    source: Any, tmp_path: Path, error: Exception, code: int
) -> None:
    with pytest.raises(LLMStageError) as caught:
        ranking(source, Sorter(always(error))).evaluate(ctx(tmp_path))
    assert caught.value.exit_code == code


@pytest.mark.parametrize(
    "make",
    [
        lambda src, llm: LLMRetrievalEvaluator(src, llm, samples=6, bootstrap=0),
        lambda src, llm: SeqRankingMCEvaluator(src, llm, samples=6, bootstrap=0),
        lambda src, llm: ExplanationEvaluator(src, llm, llm, llm, samples=6, bootstrap=0),
        lambda src, llm: ConversationEvaluator(src, llm, llm, samples=6, bootstrap=0),
    ],
    ids=["retrieval", "choice", "explanation", "conversation"],
)
def test_every_llm_task_refuses_to_report_when_nothing_answered(
    source: Any, tmp_path: Path, make: Any
) -> None:
    with pytest.raises(LLMStageError, match="6 of 6 samples failed"):
        make(source, Sorter(always(OSError("network is unreachable")))).evaluate(ctx(tmp_path))


def test_embedding_task_refuses_when_the_retriever_always_raises(
    source: Any, tmp_path: Path
) -> None:
    class Down(recai.Retriever):
        def retrieve(
            self, query: Query, k: int = 10, *, candidates: ItemList | None = None
        ) -> ItemList:
            raise ConnectionError("embeddings server is down")

    with pytest.raises(LLMStageError, match="embeddings server is down"):
        EmbeddingRetrievalEvaluator(source, Down(), samples=6, bootstrap=0).evaluate(ctx(tmp_path))


def test_embedding_task_exit_code_follows_the_retrievers_error(source: Any, tmp_path: Path) -> None:
    class Refused(recai.Retriever):
        def retrieve(
            self, query: Query, k: int = 10, *, candidates: ItemList | None = None
        ) -> ItemList:
            raise WrongKey("HTTP 401 from the embeddings endpoint")

    with pytest.raises(LLMStageError) as caught:
        EmbeddingRetrievalEvaluator(source, Refused(), samples=6, bootstrap=0).evaluate(
            ctx(tmp_path)
        )
    assert caught.value.exit_code == 2


# -- some samples failed ---------------------------------------------------------------------------
def test_more_than_the_share_fails_and_the_rerun_asks_exactly_the_failed(
    source: Any, tmp_path: Path
) -> None:
    flaky = Sorter(first(5, ConnectionError("reset by peer")))  # 5 of 20 > 0.1
    with pytest.raises(LLMStageError, match=r"5 of 20 samples failed \(more than max_failed_share"):
        ranking(source, flaky).evaluate(ctx(tmp_path))
    failed_prompts = flaky.asked[:5]
    well = Sorter()
    report = ranking(source, well).evaluate(ctx(tmp_path))
    assert sorted(well.asked) == sorted(failed_prompts)  # exactly the failed ones, once each
    assert report.info["unanswered_samples"] == 0 and report.info["measured_samples"] == 20
    clean = ranking(source, Sorter()).evaluate(ctx(tmp_path, "uninterrupted"))
    assert report.metrics == clean.metrics


def test_the_share_is_a_bound_not_a_strict_limit(source: Any, tmp_path: Path) -> None:
    # 2 of 20 = 0.1: allowed; 3 of 20 is not
    report = ranking(source, Sorter(first(2, ConnectionError("x")))).evaluate(ctx(tmp_path, "a"))
    assert report.info["unanswered_samples"] == 2
    with pytest.raises(LLMStageError):
        ranking(source, Sorter(first(3, ConnectionError("x")))).evaluate(ctx(tmp_path, "b"))
    with pytest.raises(LLMStageError, match="max_failed_share = 0"):
        ranking(source, Sorter(first(1, ConnectionError("x"))), max_failed_share=0).evaluate(
            ctx(tmp_path, "c")
        )


def test_below_the_share_metrics_are_over_the_answered_samples(source: Any, tmp_path: Path) -> None:
    clean = ranking(source, Sorter()).evaluate(ctx(tmp_path, "clean"))
    flaky = Sorter(first(3, ConnectionError("reset by peer")))
    report = ranking(source, flaky, max_failed_share=0.5).evaluate(ctx(tmp_path))
    info = report.info
    assert (info["samples"], info["unanswered_samples"], info["measured_samples"]) == (20, 3, 17)
    assert info["retry_on_rerun"] is True
    assert "3 of 20 samples got no answer" in report.notes[0]
    assert "the metrics are over the other 17" in report.notes[0]
    # the metrics are those of the 17 answered samples, not 3 misses in 20
    answered = [r for r in read_records(tmp_path / "run") if "error" not in r]
    assert len(answered) == 17
    hit10 = np.mean([r["rank"] is not None and r["rank"] < 10 for r in answered])
    assert report.metrics["Sorter"]["Hit@10"] == pytest.approx(hit10)
    # and the rerun asks the 3 again, and ends where an uninterrupted run ends
    again = Sorter()
    rerun = ranking(source, again, max_failed_share=0.5).evaluate(ctx(tmp_path))
    assert sorted(again.asked) == sorted(flaky.asked[:3])
    assert rerun.metrics == clean.metrics and "retry_on_rerun" not in rerun.info


def test_keys_in_errors_stay_out_of_reports_and_result_files(
    source: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    leaky = Sorter(first(2, WrongKey(f"rejected key {KEY}", status=503)), api_key_env=KEY_ENV)
    report = ranking(source, leaky).evaluate(ctx(tmp_path))
    assert report.info["unanswered_samples"] == 2
    assert KEY not in json.dumps(report.to_dict()) and "rejected key ***" in report.notes[0]
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def read_records(run: Path) -> list[dict[str, Any]]:
    path = run / "llm-results" / "LLMRankingEvaluator.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_conversation_rerun_replays_answered_turns_and_asks_the_failed_turn(
    source: Any, tmp_path: Path
) -> None:
    class Talker(Sorter):
        """A simulator whose message depends on the whole conversation (so on the user)."""

        def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
            text = "\n".join(m.content for m in messages)
            self.asked.append(text)
            return Completion(f"something like conversation {hash(text) % 10**6}", model="talk")

    sim = Talker()
    calls = {"n": 0}

    def recommender_fails_once(i: int, text: str) -> Exception | None:
        calls["n"] += 1
        return ConnectionError("gone") if calls["n"] == 4 else None

    rec = Sorter(recommender_fails_once)
    make = lambda s, r: ConversationEvaluator(  # noqa: E731
        source, r, s, samples=6, max_turns=2, bootstrap=0, max_failed_share=0.5, concurrency=1
    )
    first_report = make(sim, rec).evaluate(ctx(tmp_path))
    assert first_report.info["unanswered_samples"] == 1
    sim2, rec2 = Talker(), Sorter()
    rerun = make(sim2, rec2).evaluate(ctx(tmp_path))
    # the turn that failed is asked again; the dialogue then goes on (at most one more turn)
    assert rec2.asked[0] == rec.asked[3] and len(rec2.asked) <= 2 and len(sim2.asked) <= 1
    clean = make(Talker(), Sorter()).evaluate(ctx(tmp_path, "uninterrupted"))
    assert rerun.metrics == clean.metrics and rerun.info["unanswered_samples"] == 0


# -- params ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf"), "half", [0.1], True])
def test_max_failed_share_is_checked_with_its_key(source: Any, bad: Any) -> None:
    with pytest.raises(ParamsError, match="max_failed_share"):
        LLMRankingEvaluator(source, Sorter(), max_failed_share=bad)


def test_max_failed_share_is_refused_in_a_recipe_with_its_path(tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        textwrap.dedent(
            """
            [components.data]
            use = "synthetic.v1"
            [components.llm]
            use = "openai.v1"
            params = { model = "m", base_url = "http://127.0.0.1:9/v1" }
            [components.rank]
            use = "llm-ranking.v1"
            params = { dataset = "data", llm = "llm", max_failed_share = 2 }
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "recai", "recipe", "check", str(recipe)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "components.rank.params.max_failed_share" in done.stderr
    assert "Traceback" not in done.stderr


# -- the runner and the answer cache ---------------------------------------------------------------
def conv(text: str) -> list[Message]:
    return [Message.user(text)]


def test_failed_answers_never_reach_the_cache_file(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    llm = Sorter(lambda i, text: RuntimeError("boom") if "bad" in text else None)
    Runner(AnswerCache(path)).run(LLMCaller(llm), [conv("- good"), conv("- bad"), conv("- ok")])
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 2 and all(isinstance(x["text"], str) for x in lines)
    assert not any("boom" in json.dumps(x) for x in lines)


def test_a_failed_single_request_batch_is_not_sent_twice() -> None:
    class Batching(Sorter):
        def chat_batch(self, conversations: Any, **options: Any) -> list[Completion]:
            return [self.chat(c, **options) for c in conversations]

    llm = Batching(always(ConnectionError("refused")))
    answers = Runner(AnswerCache(None), batch_size=1).run(LLMCaller(llm), [conv("a"), conv("b")])
    assert [a.ok for a in answers] == [False, False] and len(llm.asked) == 2
    retried = Batching(always(ConnectionError("refused")))
    Runner(AnswerCache(None), batch_size=1, retries=2).run(LLMCaller(retried), [conv("a")])
    assert len(retried.asked) == 3  # 1 + retries, not more


def damaged_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, DamagedFileWarning)]


def open_cache(path: Path) -> tuple[AnswerCache, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache = AnswerCache(path)
        for i in range(3):  # using it does not report it again
            cache.put(f"new{i}", {"text": "t"})
            cache.get(f"new{i}")
    return cache, damaged_warnings(caught)


def test_a_folder_where_the_cache_file_should_be_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    (path / "inside").mkdir(parents=True)
    cache, said = open_cache(path)
    assert len(said) == 1 and str(path) in said[0] and "folder" in said[0]
    assert (tmp_path / "c.jsonl.corrupt-1" / "inside").is_dir()
    assert path.is_file() and len(path.read_text().splitlines()) == 3


def test_garbage_lines_are_reported_once_and_the_file_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    good = json.dumps({"key": "a", "text": "kept"})
    path.write_bytes(
        b"\x00\xff\xfe binary\n"
        + good.encode()
        + b'\n[1, 2]\n"just a string"\n{"key": 7, "text": "int key"}\n{"text": "no key"}\nnull\n'
        + b'{"key": "b", "text": null}\n{"key": "c"}\n'
    )
    cache, said = open_cache(path)
    assert cache.bad_lines == 8 and cache.get("a")["text"] == "kept" and cache.get("b") is None
    assert len(said) == 1 and "8 unreadable line(s)" in said[0] and str(path) in said[0]
    assert (tmp_path / "c.jsonl.corrupt-1").read_bytes().startswith(b"\x00\xff")
    again, said_again = open_cache(path)  # rebuilt: the next run is quiet
    assert said_again == [] and again.bad_lines == 0 and again.get("a")["text"] == "kept"


def test_binary_junk_without_a_newline_is_damage_not_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    junk = bytes(range(256)) * 40  # no complete line: all of it would pass for a torn last line
    path.write_bytes(junk.replace(b"\n", b" "))
    cache, said = open_cache(path)
    assert len(said) == 1 and "1 unreadable line(s)" in said[0]
    assert (tmp_path / "c.jsonl.corrupt-1").stat().st_size == len(junk)


def test_a_torn_last_answer_is_cut_off_quietly(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    cache = AnswerCache(path)
    cache.put("a", {"text": "whole"})
    cache.put("b", {"text": "torn"})
    path.write_bytes(path.read_bytes()[:-9])  # killed while appending "b"
    again, said = open_cache(path)
    assert said == [] and again.repaired and again.get("a") and again.get("b") is None


def test_a_fifo_in_place_of_the_cache_does_not_hang(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    os.mkfifo(path)
    cache, said = open_cache(path)
    assert len(said) == 1 and "not a regular file" in said[0]
    assert path.is_file() and cache.get("new0") is not None


def test_a_cache_folder_that_is_a_file_is_worked_around(source: Any, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "llm-cache").write_text("not a folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = ranking(source, Sorter()).evaluate(ctx(tmp_path))
    said = damaged_warnings(caught)
    assert len(said) == 1 and "in memory" in said[0]
    assert report.info["measured_samples"] == 20 and report.info["cache"]["bypassed"]


def test_a_cache_that_cannot_be_written_keeps_answers_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    cache = AnswerCache(path)
    cache.put("first", {"text": "written"})
    path.unlink()
    path.mkdir()  # appending now fails
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(5):
            cache.put(f"k{i}", {"text": f"v{i}"})
    said = damaged_warnings(caught)
    assert len(said) == 1 and "cannot be written" in said[0]
    assert cache.get("k4")["text"] == "v4" and cache.stats()["bypassed"]


def test_a_damaged_cache_fails_no_sample(source: Any, tmp_path: Path) -> None:
    clean = ranking(source, Sorter()).evaluate(ctx(tmp_path, "clean"))
    ranking(source, Sorter()).evaluate(ctx(tmp_path))
    path = tmp_path / "run" / "llm-cache" / "LLMRankingEvaluator.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:5]) + "{{{ torn in the middle\n" + "".join(lines[5:]))
    again = Sorter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = ranking(source, again).evaluate(ctx(tmp_path))
    assert len(damaged_warnings(caught)) == 1
    assert again.asked == [] and report.metrics == clean.metrics
    assert report.info["cache"]["moved_to"].endswith(".corrupt-1")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_an_unreadable_cache_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"key": "a", "text": "old answer"}) + "\n")
    path.chmod(0o000)
    cache, said = open_cache(path)
    assert len(said) == 1 and "cannot be read" in said[0] and str(path) in said[0]
    assert cache.moved_to == tmp_path / "c.jsonl.corrupt-1" and cache.get("new2") is not None


def test_a_cache_path_that_cannot_be_resolved_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    os.symlink(path, path)  # a link to itself: opening it fails (ELOOP), also for root
    cache, said = open_cache(path)
    assert len(said) == 1 and str(path) in said[0]
    assert (tmp_path / "c.jsonl.corrupt-1").is_symlink()
    assert path.is_file() and cache.get("new2") is not None
