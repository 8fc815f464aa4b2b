"""agent-ranking.v1 with simulation = "llm" and the real embedded model (hf.v1,
SmolLM2-135M-Instruct) writing the requests: no request the agent gets names its target, and the
requests the model wrote or that replaced its are what the agent got."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_onestep import (  # type: ignore[import-not-found]  # beside this file
    PLACES,
    TARGETS,
    TITLES,
    Placer,
    make_films,
)

import recai
from recai.runtime import RunContext
from recai_eval.llm.onestep import AgentRankingEvaluator
from recai_eval.llm.scoring import core_title, mentions_title

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def model() -> Any:
    if "hf.v1" not in recai.get_plugin_manager().registry():
        pytest.skip("hf.v1 (recai-hf) is not installed")
    return recai.create("llm_backend", "hf.v1", threads=1)


def test_the_embedded_model_writes_requests_that_never_name_the_target(
    model: Any, tmp_path: Path
) -> None:
    films = make_films()
    agent = Placer(films.catalog, PLACES)
    ev = AgentRankingEvaluator(
        recai.DatasetSource.of(films),
        agent,
        simulation="llm",
        simulator=model,
        n_candidates=4,
        k=[1, 3],
        samples=6,
        bootstrap=0,
        max_tokens=60,
        concurrency=1,
    )
    report = ev.evaluate(RunContext(tmp_path / "run", seed=7, progress=False))
    row = report.metrics["Placer"]
    lines = (tmp_path / "run" / "llm-results" / "AgentRankingEvaluator.jsonl").read_text()
    records = [json.loads(line) for line in lines.splitlines()]
    assert len(records) == 6 and report.info["measured_samples"] == 6
    for conversation in agent._seen:
        user = json.loads(conversation[0].content)["user"]
        assert not mentions_title(conversation[1].content, core_title(TITLES[TARGETS[user]]))
    written = [r for r in records if not r["leaked"] and not r["simulator_failed"]]
    assert row["leak_rate"] + row["simulator_failure_rate"] == pytest.approx(1 - len(written) / 6)
    sent = {json.loads(c[0].content)["user"]: c[1].content for c in agent._seen}
    assert all(sent[r["user"]] == r["request"] for r in records)  # the agent got what was kept
    for r in records:  # shown when the test runs with -s: what the model wrote
        print(r["user"], r["leaked"], r["simulator_failed"], repr(r["request"]))
