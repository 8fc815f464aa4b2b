"""Every LLM task end to end against a real local model (integration; slow on a CPU).

The backend is the registered LLM backend ``hf.v1`` (recai-hf) with SmolLM2-135M-Instruct, or
any backend named by ``RECAI_TEST_LLM`` (for example an OpenAI-compatible server on loopback
through recai-openai) with params from ``RECAI_TEST_LLM_PARAMS`` (JSON). The test skips, saying
why, while no such backend is registered.

Run: ``pytest -m integration plugins/recai-eval/tests/test_llm_real_model.py``.

A model this small is mostly wrong; the test checks that real answers flow through every stage
(prompts, calls, cache, parsing, grounding, error rates, failures), not that they are good.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

import recai
from recai.data import synthetic_dataset
from recai.runtime import RunContext
from recai.types import Report

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BACKEND = os.environ.get("RECAI_TEST_LLM", "hf.v1")
DEFAULT_PARAMS = {"model": "HuggingFaceTB/SmolLM2-135M-Instruct"}


@pytest.fixture(scope="module")
def llm() -> recai.LLMBackend:
    registry = recai.get_plugin_manager().registry()
    if BACKEND not in registry:
        pytest.skip(
            f"no LLM backend {BACKEND!r} is registered: install recai-hf (hf.v1, with "
            "SmolLM2-135M-Instruct available locally) or set RECAI_TEST_LLM to an installed "
            "backend and RECAI_TEST_LLM_PARAMS to its params as JSON"
        )
    params = json.loads(os.environ.get("RECAI_TEST_LLM_PARAMS", "") or json.dumps(DEFAULT_PARAMS))
    return recai.create("llm_backend", BACKEND, **params)


@pytest.fixture(scope="module")
def source() -> recai.DatasetSource:
    registry = recai.get_plugin_manager().registry()
    if "movielens-100k.v1" in registry:
        try:
            return recai.create("dataset", "movielens-100k.v1")
        except recai.RecaiError:
            pass  # the data files are not here: fall back to synthetic titles
    return recai.DatasetSource.of(synthetic_dataset(n_users=40, n_items=80, seed=0))


SMALL = {"samples": 3, "max_history": 5, "bootstrap": 50, "concurrency": 1, "batch_size": 4}


def check(report: Report, out: Path) -> dict[str, float]:
    (row,) = list(report.metrics.values())[:1]
    assert all(isinstance(v, float) and math.isfinite(v) for v in row.values())
    assert all(
        0.0 <= v <= 1.0 for k, v in row.items() if k.endswith("_rate") or k.startswith("Hit")
    )
    assert "failure_rate" in row and report.info["samples"] == 3
    assert report.info["failures"] == len(report.info["failed_samples"])
    records = [json.loads(x) for x in Path(report.info["results_file"]).read_text().splitlines()]
    assert len(records) == 3
    return row


def run_twice(make: Any, tmp_path: Path) -> Report:
    """Run once, then again on the same run folder: the rerun must answer from the cache."""
    first = make().evaluate(RunContext(tmp_path, seed=0, progress=False))
    assert first.info["requests"]["calls"] > 0
    again = make().evaluate(RunContext(tmp_path, seed=0, progress=False))
    failed_calls = first.info["requests"]["failed"]
    assert again.info["requests"]["calls"] == failed_calls  # only failed calls are asked again
    if not failed_calls:
        assert again.metrics == first.metrics
    return first


def test_retrieval(llm: Any, source: Any, tmp_path: Path) -> None:
    from recai_eval.llm.retrieval import LLMRetrievalEvaluator

    report = run_twice(
        lambda: LLMRetrievalEvaluator(source, llm, n_recommend=5, max_tokens=120, **SMALL), tmp_path
    )
    row = check(report, tmp_path)
    assert {
        "Hit@5",
        "NDCG@5",
        "nonexistent_rate",
        "duplicate_rate",
        "in_history_rate",
        "copy_rate",
    } <= set(row)
    assert report.info["mentions"]["total"] > 0  # the model wrote something that reads as a list


def test_ranking(llm: Any, source: Any, tmp_path: Path) -> None:
    from recai_eval.llm.ranking import LLMRankingEvaluator

    report = run_twice(
        lambda: LLMRankingEvaluator(source, llm, n_candidates=10, max_tokens=200, **SMALL), tmp_path
    )
    row = check(report, tmp_path)
    assert {"out_of_candidates_rate", "copy_rate"} <= set(row)


@pytest.mark.parametrize("task", ["cf", "seq"])
def test_multiple_choice(llm: Any, source: Any, tmp_path: Path, task: str) -> None:
    from recai_eval.llm.choice import CFRankingMCEvaluator, SeqRankingMCEvaluator

    cls = CFRankingMCEvaluator if task == "cf" else SeqRankingMCEvaluator
    report = run_twice(lambda: cls(source, llm, max_tokens=16, **SMALL), tmp_path)
    row = check(report, tmp_path)
    assert row["accuracy"] + row["out_of_candidates_rate"] + row["failure_rate"] <= 1.0 + 1e-9


def test_explanation(llm: Any, source: Any, tmp_path: Path) -> None:
    from recai_eval.llm.explanation import ExplanationEvaluator

    report = run_twice(
        lambda: ExplanationEvaluator(
            source, llm, llm, llm, words=40, max_tokens=80, judge_max_tokens=160, **SMALL
        ),
        tmp_path,
    )
    rows = list(report.metrics.values())
    assert len(rows) == 2
    total = (
        rows[0]["win_rate"] + rows[0]["tie_rate"] + rows[0]["loss_rate"] + rows[0]["failure_rate"]
    )
    assert total == pytest.approx(1.0)


def test_conversation(llm: Any, source: Any, tmp_path: Path) -> None:
    from recai_eval.llm.conversation import ConversationEvaluator

    report = run_twice(
        lambda: ConversationEvaluator(source, llm, llm, max_turns=2, max_tokens=80, **SMALL),
        tmp_path,
    )
    row = check(report, tmp_path)
    assert 1.0 <= row["AT@2"] <= 3.0 and {"Hit@2", "leak_rate"} <= set(row)
