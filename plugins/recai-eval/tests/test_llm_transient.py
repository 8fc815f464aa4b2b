"""After a transient failure, a rerun sends exactly the failed samples and ends where an
uninterrupted run ends (issue 17 item 1, its bar).

Everything is real: ``recai.run`` of a recipe (synthetic dataset, ``openai.v1``,
``llm-ranking.v1``), the ``openai`` client, and an OpenAI-compatible server on loopback
(recai-serve's :class:`LLMServer` with a deterministic backend), whose faults come from
:mod:`recai.testing.faults`. Requests are counted where they arrive: an ASGI middleware in front
of the server keeps every completion request's body.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import recai
from recai.damaged import DamagedFileWarning
from recai.testing.faults import FaultPlan
from recai.types import Completion, Message, Usage
from recai_eval.llm.base import LLMStageError

LLMServer = pytest.importorskip("recai_serve.server", reason="needs recai-serve").LLMServer
if "openai.v1" not in recai.get_plugin_manager().registry():
    pytest.skip("needs recai-openai (openai.v1)", allow_module_level=True)

SAMPLES = 20
KEY_ENV = "RECAI_EVAL_TRANSIENT_KEY"
SERVER_KEY = "serverside-key-7d1e0c9b8a"
WRONG_KEY = "clientside-wrong-key-3f2a1b"


class SortingRanker(recai.LLMBackend):
    """Ranks the bulleted candidates of the prompt by title: deterministic, and right for some
    users and wrong for others."""

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        cands = sorted(x[2:] for x in messages[-1].content.splitlines() if x.startswith("- "))
        text = "\n".join(f"{i}. {t}" for i, t in enumerate(cands, 1))
        return Completion(text, usage=Usage(10, len(cands)), model="sorter")


class Arrivals:
    """ASGI middleware that keeps the body of every completion request that reaches the server."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def middleware(self, app: Any) -> Any:
        async def counted(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or not scope["path"].endswith("/completions"):
                await app(scope, receive, send)
                return
            chunks: list[bytes] = []

            async def reading() -> Any:
                message = await receive()
                if message["type"] == "http.request":
                    chunks.append(message.get("body", b""))
                return message

            try:
                await app(scope, reading, send)
            finally:
                self.bodies.append(b"".join(chunks))

        return counted

    def prompts(self) -> list[str]:
        return [json.loads(b)["messages"][-1]["content"] for b in self.bodies]


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    arrivals, faults = Arrivals(), FaultPlan()
    with LLMServer(
        {"sorter": SortingRanker()}, middleware=[arrivals.middleware, faults.middleware]
    ) as s:
        s.arrivals, s.faults = arrivals, faults
        yield s


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, WRONG_KEY)
    if "server" in request.fixturenames:
        s = request.getfixturevalue("server")
        s.faults.clear()
        s.arrivals.bodies.clear()


def recipe(base_url: str, **rank: Any) -> dict[str, Any]:
    llm = {
        "model": "sorter",
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "max_retries": 0,
        "timeout": 20,
        **rank.pop("llm", {}),
    }
    return {
        "name": "transient",
        "components": {
            "data": {
                "use": "synthetic.v1",
                "params": {"n_users": 40, "n_items": 60, "mean_length": 6},
            },
            "llm": {"use": "openai.v1", "params": llm},
            "rank": {
                "use": "llm-ranking.v1",
                "params": {
                    "dataset": "data",
                    "llm": "llm",
                    "samples": SAMPLES,
                    "n_candidates": 10,
                    "bootstrap": 0,
                    # the server's backend writes a numbered list: asked in words, not for
                    # the candidate-title JSON openai.v1 would send as response_format
                    "constrain": "never",
                    **rank,
                },
            },
        },
        "run": {"stages": ["rank"], "seed": 0},
    }


def run(base_url: str, out: Path, *, resume: bool = True, **rank: Any) -> Any:
    return recai.run(
        recai.load_recipe(recipe(base_url, **rank)), out, progress=False, resume=resume
    )


def metrics(result: Any) -> dict[str, Any]:
    return result.reports["rank"].metrics


@pytest.fixture(scope="module")
def uninterrupted(server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = run(server.base_url, tmp_path_factory.mktemp("clean") / "run")
    assert result.reports["rank"].info["measured_samples"] == SAMPLES
    return metrics(result)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_down_then_up(tmp_path: Path, uninterrupted: dict[str, Any]) -> None:
    port = free_port()  # nothing listens there yet: every connection is refused
    url = f"http://127.0.0.1:{port}/v1"
    out = tmp_path / "run"
    with pytest.raises(LLMStageError) as caught:
        run(url, out)
    e = caught.value
    assert (e.failed, e.samples, e.exit_code) == (SAMPLES, SAMPLES, 1)
    assert f"{SAMPLES} of {SAMPLES} samples failed" in str(e)
    assert str(e).count("connection failed") == 1  # not nested in an earlier batch's error
    assert not (out / "stages" / "rank.json").exists() and not (out / "metrics.json").exists()
    arrivals = Arrivals()
    with LLMServer({"sorter": SortingRanker()}, port=port, middleware=[arrivals.middleware]):
        result = run(url, out)
    assert len(arrivals.bodies) == SAMPLES and len(set(arrivals.prompts())) == SAMPLES
    assert result.resumed == [] and metrics(result) == uninterrupted


def test_failures_midway_rerun_sends_exactly_the_failed_requests(
    server: Any, tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    out = tmp_path / "run"
    server.faults.add("500", times=6)  # one request at a time: the first six fail
    with pytest.raises(LLMStageError, match=rf"6 of {SAMPLES} samples failed.*HTTP 500") as caught:
        run(server.base_url, out, batch_size=1)
    assert caught.value.exit_code == 1
    first = server.arrivals.prompts()
    assert len(first) == SAMPLES and not (out / "stages" / "rank.json").exists()
    server.arrivals.bodies.clear()
    result = run(server.base_url, out, batch_size=1)
    assert sorted(server.arrivals.prompts()) == sorted(first[:6])  # exactly those, once each
    assert metrics(result) == uninterrupted
    server.arrivals.bodies.clear()
    assert metrics(run(server.base_url, out, batch_size=1)) == uninterrupted  # resumed
    assert server.arrivals.bodies == []


def test_failures_in_concurrent_batches_are_retried_exactly(
    server: Any, tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    out = tmp_path / "run"
    server.faults.add("503", times=SAMPLES * 2)  # the server fails everything for a while
    with pytest.raises(LLMStageError):
        run(server.base_url, out)  # batches of 8, sent concurrently
    server.faults.clear()
    server.arrivals.bodies.clear()
    result = run(server.base_url, out)
    assert len(server.arrivals.bodies) == SAMPLES and metrics(result) == uninterrupted


def test_below_the_share_the_run_reports_honestly_and_the_next_asks_only_the_failed(
    server: Any, tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    out = tmp_path / "run"
    server.faults.add("502", times=2)
    result = run(server.base_url, out, batch_size=1)  # 2 of 20 = 0.1: within the default
    info = result.reports["rank"].info
    assert (info["unanswered_samples"], info["measured_samples"]) == (2, SAMPLES - 2)
    saved = json.loads((out / "metrics.json").read_text())["stages"]["rank"]
    assert saved["info"]["unanswered_samples"] == 2
    assert f"2 of {SAMPLES} samples got no answer" in (out / "report.md").read_text()
    failed = server.arrivals.prompts()[:2]
    server.arrivals.bodies.clear()
    again = run(server.base_url, out, batch_size=1)
    assert sorted(server.arrivals.prompts()) == sorted(failed)
    assert metrics(again) == uninterrupted


def test_damaged_caches_fail_no_sample(
    server: Any, tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    responses = tmp_path / "responses.sqlite"
    responses.write_bytes(b"SQLite format 2\x00" + os.urandom(4000))
    out = tmp_path / "run"
    (out / "llm-cache" / "rank.jsonl").mkdir(parents=True)  # a folder where the file should be
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(server.base_url, out, llm={"cache": str(responses)})
    said = [str(w.message) for w in caught if issubclass(w.category, DamagedFileWarning)]
    assert len(said) == 2, said
    assert any(str(responses) in m for m in said) and any("rank.jsonl" in m for m in said)
    assert metrics(result) == uninterrupted and len(server.arrivals.bodies) == SAMPLES
    assert (tmp_path / "responses.sqlite.corrupt-1").exists()


def cli(recipe_file: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "recai",
            "run",
            str(recipe_file),
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, KEY_ENV: WRONG_KEY},
    )


def write_recipe(path: Path, base_url: str, **rank: Any) -> Path:
    path.write_text(json.dumps(recipe(base_url, **rank)))
    return path


@pytest.mark.slow
def test_cli_wrong_key_exits_2_and_server_down_exits_1(tmp_path: Path) -> None:
    with LLMServer({"sorter": SortingRanker()}, api_key=SERVER_KEY) as keyed:
        done = cli(write_recipe(tmp_path / "keyed.json", keyed.base_url, samples=5), tmp_path / "a")
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert err.startswith("recai: error: stage 'rank': 5 of 5 samples failed") and "401" in err
    assert WRONG_KEY not in err and SERVER_KEY not in err and "Traceback" not in err
    assert len(err.splitlines()) == 1  # one paragraph
    assert not (tmp_path / "a" / "stages" / "rank.json").exists()

    url = f"http://127.0.0.1:{free_port()}/v1"
    done = cli(write_recipe(tmp_path / "down.json", url, samples=5), tmp_path / "b")
    assert done.returncode == 1, done.stderr
    err = done.stderr.strip()
    assert "5 of 5 samples failed" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
