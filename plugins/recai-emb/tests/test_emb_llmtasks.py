"""LLM-written RecLM-emb tasks: any backend, answers cached in a JSONL file, skips counted."""

from __future__ import annotations

import json

import numpy as np
import pytest

import recai
from recai.data import synthetic_dataset
from recai.errors import RecaiError
from recai.types import Completion
from recai_emb.llmtasks import LLMTaskCache, generate_llm
from recai_emb.taskdata import TaskData


class Counting(recai.LLMBackend):
    """Answers with a description of the prompt's first words; counts the calls."""

    def __init__(self):
        self._calls = 0  # private: public attributes are part of the cache key

    @property
    def calls(self):
        return self._calls

    def chat(self, messages, **options):
        self._calls += 1
        prompt = messages[-1].content
        if "Bitter Meadow" in prompt:  # the dialogue prompt names the item: echo it (skipped)
            return Completion("User: I want Bitter Meadow")
        return Completion(f"wants something like {len(prompt)} characters of taste")


@pytest.fixture(scope="module")
def data():
    return TaskData.from_dataset(
        synthetic_dataset(n_users=40, n_items=30, seed=2), item_holdout=0.2
    )


def test_llm_tasks_use_the_backend_once_then_the_cache(tmp_path, data):
    llm = Counting()
    cache = LLMTaskCache(tmp_path / "answers.jsonl")
    ex1, rep1 = generate_llm(data, llm, n_per_task=6, cache=cache, negatives=2, batch=4)
    calls = llm.calls
    assert calls == sum(r["llm_calls"] for r in rep1.values()) > 0
    again = LLMTaskCache(tmp_path / "answers.jsonl")
    ex2, rep2 = generate_llm(data, llm, n_per_task=6, cache=again, negatives=2, batch=4)
    assert llm.calls == calls  # every answer came from the file
    assert [e.to_json() for e in ex1] == [e.to_json() for e in ex2]
    lines = (tmp_path / "answers.jsonl").read_text().splitlines()
    assert len(lines) == calls and all("key" in json.loads(x) for x in lines)
    for e in ex1:
        assert e.query and e.pos not in e.negs
        if e.task == "as2i":
            assert e.condition.mask(data)[e.pos] and not e.condition.mask(data)[e.negs].any()
        if e.task != "us2i":
            assert not data.heldout[e.pos] and not data.heldout[e.negs].any()


def test_answers_naming_the_item_are_skipped_and_counted(tmp_path, data):
    title = "Bitter Meadow"
    item = [i for i in range(data.n_items) if data.title(i) == title]
    _, rep = generate_llm(data, Counting(), ["dialogue"], 30, part="train")
    train_has_it = bool(item) and not data.heldout[item[0]] and data.labels[item[0]]
    assert rep["dialogue"]["skipped"].get("answer names the item", 0) == int(train_has_it)


def test_unreadable_cache_lines_are_counted(tmp_path, data):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"key": "a", "text": "x"}\n{torn\n')
    cache = LLMTaskCache(path)
    assert cache.answers == {"a": "x"} and cache.unreadable == 1
    _, rep = generate_llm(data, Counting(), ["us2i"], 2, cache=cache)
    assert rep["cache"] == {"unreadable_lines": 1}
    with pytest.raises(RecaiError, match="unknown LLM task"):
        generate_llm(data, Counting(), ["nope"], 2)


def test_test_part_targets_held_out_items(data):
    ex, _ = generate_llm(data, Counting(), ["as2i"], 50, part="test")
    assert ex and all(data.heldout[e.pos] for e in ex)
    assert len({e.pos for e in ex}) == len(ex)
    assert np.all([e.part == "test" for e in ex])


@pytest.mark.slow
@pytest.mark.integration
def test_the_embedded_local_model_writes_a_user_summary(tmp_path, data):
    pytest.importorskip("recai_hf")
    try:
        llm = recai.create("llm_backend", "hf.v1")
        ex, rep = generate_llm(
            data, llm, ["us2i"], 1, cache=LLMTaskCache(tmp_path / "a.jsonl"), max_tokens=24
        )
    except RecaiError as e:  # the model wheel is not installed
        pytest.skip(str(e))
    assert rep["us2i"]["llm_calls"] == 1
    assert len(ex) + sum(rep["us2i"]["skipped"].values()) == 1
    assert all(len(e.query) > 10 for e in ex)
