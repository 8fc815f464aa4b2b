"""openai.v1 against a real local model: ``recai serve --use hf.v1`` (SmolLM2-135M-Instruct).

The server is the ``recai serve`` command in its own process, serving recai-hf's ``hf.v1``; the
client is openai.v1. Skipped, saying why, when hf.v1 is not registered or its model is missing.

Run: ``pytest -m integration plugins/recai-openai/tests/test_openai_hf_integration.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import recai
from recai.types import Message, function_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if "hf.v1" not in recai.get_plugin_manager().registry():
        pytest.skip(
            "hf.v1 is not registered: install recai-hf (plugins/recai-hf) to serve a local model"
        )
    log = tmp_path_factory.mktemp("serve") / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recai",
                "serve",
                "--use",
                "hf.v1",
                "-p",
                "max_tokens=24",
                "--model-name",
                "smollm2",
                "--port",
                "0",
                "--max-concurrency",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = proc.stdout.readline()
        if " at http://" not in line:
            proc.wait(timeout=60)
            reason = Path(log).read_text().strip().splitlines()[-1:] or ["(no message)"]
            pytest.skip(f"recai serve --use hf.v1 did not start: {reason[0]}")
        try:
            yield line.split(" at ", 1)[1].split()[0]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert proc.returncode == 0, Path(log).read_text()


@pytest.fixture(scope="module")
def llm(served: str) -> Any:
    return recai.create(
        "llm_backend",
        "openai.v1",
        model="smollm2",
        base_url=served,
        api_key_env="RECAI_NO_KEY_NEEDED",
        timeout=300,
        max_retries=0,
    )


def test_chat_stream_and_batch_through_the_server(llm: Any) -> None:
    messages = [Message.system("You are terse."), Message.user("Name one colour.")]
    c = llm.chat(messages, max_tokens=8, temperature=0.0, seed=0)
    assert c.text.strip() and c.model == "smollm2"
    assert c.usage.prompt_tokens > 5 and 0 < c.usage.completion_tokens <= 8
    assert c.finish_reason in ("stop", "length")
    pieces = list(llm.stream(messages, max_tokens=8, temperature=0.0))
    assert "".join(pieces) == c.text  # greedy decoding: the same answer, in pieces
    out = llm.chat_batch([messages, [Message.user("Say yes.")]], max_tokens=4, temperature=0.0)
    assert len(out) == 2 and all(o.text.strip() for o in out)
    assert out[0].text == llm.chat(messages, max_tokens=4, temperature=0.0).text
    t = llm.totals()
    assert t["calls"] == 5 and t["prompt_tokens"] > 0 and t["completion_tokens"] > 0


def test_tool_calls_through_the_server(llm: Any) -> None:
    """openai.v1's tools against recai serve's hf.v1, which decodes the call under the tools'
    schema: a named call comes back with arguments its parameters accept, and the call and
    its result go back for the next turn (the model then calls again or answers: either way a
    well-formed Completion)."""
    genres = ["Comedy", "Drama", "Sci-Fi", "Horror"]
    films = function_tool(
        "search_films",
        {"type": "object", "properties": {"genre": {"enum": genres}}, "required": ["genre"]},
        "Find films of a genre.",
    )
    conv = [Message.user("Recommend me some sci-fi films.")]
    named = {"type": "function", "function": {"name": "search_films"}}
    c = llm.chat(conv, tools=[films], tool_choice=named, max_tokens=40, temperature=0.0)
    assert c.finish_reason == "tool_calls"
    (call,) = c.tool_calls
    assert call.name == "search_films" and call.args()["genre"] in genres
    conv += [c.as_message(), Message.tool("Alien (1979), Blade Runner (1982)", call.id)]
    after = llm.chat(conv, tools=[films], max_tokens=40, temperature=0.0)
    assert after.finish_reason in ("tool_calls", "stop", "length")
    assert after.tool_calls or after.text.strip()
