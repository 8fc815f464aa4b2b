"""``recai mcp`` fits the agent's models in a background thread beside the server: that fit must
cost no more than ``recai chat``'s fit of the same recipe. On a two-core machine shared with
other work, torch's OpenMP team spinning between its many small parallel regions burned three to
four times the CPU of the work itself, so a fit took that much longer; the server makes idle
OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE``), even though an MCP client starts it with a
bare environment."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from recai.testing import fake_distribution

PLUGIN = """
import recai
from recai.data import synthetic_dataset
from agentkit import RulesBrain


class Shelf(recai.DatasetSource):
    def load(self):
        return synthetic_dataset(n_users=400, n_items=600, mean_length=60, seed=1)


@recai.hookimpl
def recai_datasets():
    yield recai.ComponentSpec(name="shelf.v1", factory=Shelf, summary="Synthetic shelf.")


@recai.hookimpl
def recai_llm_backends():
    yield recai.ComponentSpec(name="rules-brain.v1", factory=RulesBrain, summary="Test brain.")
"""

RECIPE = """
name = "mcp-fit"
[components.shelf]
use = "shelf.v1"
[components.brain]
use = "rules-brain.v1"
[components.sasrec]
use = "sasrec.v1"
params = { hidden = 64, blocks = 2, max_len = 50, stride = 10, loss = "ce", epochs = 4, seed = 0 }
[components.knn]
use = "itemknn.v1"
[components.agent]
use = "interecagent.v1"
params = { dataset = "shelf", llm = "brain", ranker = "sasrec", similarity = "knn", k = 3 }
"""


def _site(root: Path) -> Path:
    fake_distribution(
        root,
        "recai-shelf",
        entry_points={"shelf": "shelf_plugin"},
        modules={"shelf_plugin.py": PLUGIN},
    )
    (root / "fit.toml").write_text(RECIPE)
    return root


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _fitted(log: str) -> float:
    found = re.search(r"agent fitted in ([0-9.]+) s", log)
    assert found, log[-2000:]
    return float(found.group(1))


def test_the_server_lets_idle_openmp_threads_sleep_unless_told_otherwise() -> None:
    code = (
        "import os, sys; from recai_agent.cli import passive_openmp; "
        "print(passive_openmp(), os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    bare = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bare.stdout.split() == ["True", "PASSIVE", "False"], bare.stderr
    chosen = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
        capture_output=True,
        text=True,
    )
    assert chosen.stdout.split() == ["False", "ACTIVE", "False"], chosen.stderr
    late = subprocess.run(  # torch already loaded: OpenMP has read its policy, nothing changes
        [sys.executable, "-c", "import torch; " + code], env=env, capture_output=True, text=True
    )
    assert late.stdout.split() == ["False", "None", "True"], late.stderr


@pytest.mark.slow
def test_the_background_fit_costs_no_more_cpu_than_a_single_threaded_direct_fit(
    tmp_path: Path,
) -> None:
    """The same recipe (SASRec on a synthetic catalog): ``recai chat``'s fit with one torch
    thread (no OpenMP team, so no spinning: the work itself) against ``recai mcp``'s background
    fit with torch's default threads, started by the SDK's client as an assistant starts it.
    CPU seconds of each whole process (the start-up is alike), not wall seconds: on a shared
    machine wall time follows the load, CPU time follows the work (and any spinning). A spinning
    team used 1.7 to 3.5 times the single thread's CPU; the margin is 1.45."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    site = _site(tmp_path / "site")
    recipe = str(site / "fit.toml")
    tests = str(Path(__file__).resolve().parent)
    plugins = {
        "PYTHONPATH": os.pathsep.join([str(site), tests]),
        "HF_HUB_OFFLINE": "1",
        "RECAI_PLUGINS": "shelf,agent,classic",
    }
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}

    before = _children_cpu()
    chat = subprocess.run(
        [
            sys.executable,
            "-m",
            "recai",
            "chat",
            recipe,
            "--out",
            str(tmp_path / "chat"),
            "--message",
            "hi",
        ],
        env={**env, **plugins, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert chat.returncode == 0, chat.stderr[-2000:]
    chat_cpu = _children_cpu() - before

    errlog = tmp_path / "mcp-stderr.txt"
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "recai", "mcp", recipe, "--out", str(tmp_path / "mcp")],
        env=plugins,  # the client's bare environment (PATH, HOME, ...) and these
    )

    async def serve() -> None:
        with errlog.open("w") as err:
            async with Client(stdio_client(params, errlog=err), read_timeout_seconds=1200) as c:
                result = await c.call_tool("recommend", {"history": ["i0", "i1"], "k": 3})
                assert not result.is_error, result.content[0].text

    before = _children_cpu()
    anyio.run(serve)
    mcp_cpu = _children_cpu() - before
    log = errlog.read_text()
    print(
        f"\nrecai chat (1 thread): fitted in {_fitted(chat.stderr):.1f} s, {chat_cpu:.1f} CPU s; "
        f"recai mcp (background): fitted in {_fitted(log):.1f} s, {mcp_cpu:.1f} CPU s"
    )
    assert mcp_cpu < 1.45 * chat_cpu, (mcp_cpu, chat_cpu)
