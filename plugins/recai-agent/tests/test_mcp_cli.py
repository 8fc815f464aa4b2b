"""``recai mcp`` as an MCP client starts it: a child process on a small recipe (the film catalog,
ItemKNN, a rules-only brain and a test Explainer from a plugin made here as a fake installed
distribution), driven by the official SDK's own clients over stdio and over streamable HTTP; and
its option errors."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from agentkit import FILMS, film_recipe

from recai import cli
from recai.testing import fake_distribution, fresh_plugin_manager, use_plugin_manager

TESTS = Path(__file__).resolve().parent
TITLES = [t for t, _, _ in FILMS]
KEY_VAR = "RECAI_TEST_MCP_KEY"

PLUGIN = """
import time
import numpy as np
import recai
import agentkit


class FilmsSource(agentkit.FilmsSource):
    def load(self):
        print("a stray print while the dataset loads")  # must not reach the protocol
        return super().load()


class RulesBrain(agentkit.RulesBrain):
    def chat(self, messages, **options):
        print("a stray print from the brain")  # nor this, while serving
        return super().chat(messages, **options)


class BecauseParams(recai.Params):
    dataset: recai.DatasetSource


class Because(recai.Configurable, recai.Explainer):
    # names the item and the history's last item, so the test sees what it was given

    Params = BecauseParams

    def explain(self, history, item):
        catalog = self.params.dataset.dataset().catalog
        last = catalog.title(int(history.ids[-1]))
        return recai.Explanation(item, f"{catalog.title(item)} follows {last}", {"n": len(history)})


class SlowRanker(recai.Ranker):
    # popularity, after a fit that takes a while

    def __init__(self, seconds: float = 6.0):
        self.seconds = float(seconds)
        self.counts = None

    def fit(self, split):
        time.sleep(self.seconds)
        self.counts = np.bincount(split.train.items, minlength=split.dataset.n_items)

    def score(self, histories, items=None, *, users=None):
        ids = np.arange(len(self.counts)) if items is None else np.asarray(items)
        return np.tile(self.counts[ids].astype(float), (len(histories), 1))


@recai.hookimpl
def recai_rankers():
    yield recai.ComponentSpec(name="slow-ranker.v1", factory=SlowRanker, summary="Slow fit.")


@recai.hookimpl
def recai_datasets():
    yield recai.ComponentSpec(name="films.v1", factory=FilmsSource, summary="Test films.")


@recai.hookimpl
def recai_explainers():
    yield recai.ComponentSpec(name="because.v1", factory=Because, summary="Test explainer.")


@recai.hookimpl
def recai_llm_backends():
    yield recai.ComponentSpec(name="rules-brain.v1", factory=RulesBrain, summary="Test brain.")
"""

RECIPE = film_recipe(
    "mcp-test", more='[components.because]\nuse = "because.v1"\nparams = { dataset = "films" }\n'
)


SLOW_RECIPE = """
name = "mcp-slow"
[components.films]
use = "films.v1"
[components.brain]
use = "rules-brain.v1"
[components.slow]
use = "slow-ranker.v1"
[components.agent]
use = "interecagent.v1"
params = { dataset = "films", llm = "brain", ranker = "slow", k = 3 }
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    fake_distribution(
        root,
        "recai-films",
        entry_points={"films": "films_plugin"},
        modules={"films_plugin.py": PLUGIN},
    )
    (root / "mcp.toml").write_text(RECIPE)
    (root / "slow.toml").write_text(SLOW_RECIPE)
    return root


def _env(site: Path) -> dict[str, str]:
    path = [str(site), str(TESTS), os.environ.get("PYTHONPATH", "")]
    return {
        "PYTHONPATH": os.pathsep.join(p for p in path if p),
        "RECAI_PLUGINS": "films,agent,classic",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


async def _drive(client: Any) -> dict[str, Any]:
    """Lists the tools and calls each (and a hostile and a bad call): the results by name."""
    out: dict[str, Any] = {"tools": [t.name for t in (await client.list_tools()).tools]}

    async def call(label: str, tool: str, args: dict[str, Any]) -> None:
        result = await client.call_tool(tool, args)
        out[label] = (result.is_error, result.structured_content or result.content[0].text)

    await call("describe", "describe_catalog", {})
    await call("lookup", "lookup", {"sql": "SELECT title FROM items WHERE year < 1970"})
    await call("filter", "filter_items", {"genres": ["Animation"], "k": 10})
    await call("similar", "similar_items", {"items": ["Heat (1995)"], "k": 3})
    await call("recommend", "recommend", {"history": ["Alien", "Aliens"], "k": 3})
    await call("details", "item_details", {"items": ["8"]})
    await call("explain", "explain", {"item": "Farggo", "history": ["Alien", "Heat"]})
    await call("unexplained", "explain", {"item": "Zorgon the Unwatchable", "history": ["Alien"]})
    await call("chat", "chat", {"message": "comedies from the 1990s", "user": "2"})
    session = out["chat"][1]["session"] if not out["chat"][0] else None
    await call("chat2", "chat", {"message": "more please", "session": session})
    await call("feedback", "feedback", {"item": "Fargo", "value": "like", "session": session})
    await call("hostile", "lookup", {"sql": "DELETE FROM items"})
    await call("bad", "recommend", {"history": ["Alien"], "k": -3})
    await call("after", "lookup", {"sql": "SELECT count(*) FROM items"})
    return out


def _check(out: dict[str, Any]) -> None:
    assert set(out["tools"]) >= {
        "describe_catalog",
        "lookup",
        "filter_items",
        "similar_items",
        "recommend",
        "item_details",
        "explain",
        "chat",
    }
    labels = ("describe", "lookup", "filter", "similar", "recommend", "details", "explain", "chat")
    for label in labels:
        assert out[label][0] is False, (label, out[label])
    assert out["describe"][1]["items"] == len(FILMS)
    assert out["lookup"][1]["rows"] == [["Psycho (1960)"], ["Casablanca (1942)"]] or sorted(
        out["lookup"][1]["rows"]
    ) == [["Casablanca (1942)"], ["Psycho (1960)"]]
    animated = {t for t, _, g in FILMS if "Animation" in g}
    assert {i["title"] for i in out["filter"][1]["items"]} == animated
    assert len(out["similar"][1]["items"]) == 3
    assert all(i["title"] in TITLES for i in out["similar"][1]["items"])
    rec = [i["title"] for i in out["recommend"][1]["items"]]
    assert len(rec) == 3 and not {"Alien (1979)", "Aliens (1986)"} & set(rec)
    assert out["details"][1]["items"][0]["title"] == "Star Wars (1977)"
    explained = out["explain"][1]  # the recipe's only Explainer, on a grounded misspelt title
    assert explained["text"] == "Fargo (1996) follows Heat (1995)", explained
    assert explained["item"] == {"id": "13", "title": "Fargo (1996)"}
    assert explained["explainer"] == "because" and explained["evidence"] == {"n": 2}
    error, text = out["unexplained"]
    assert error and text.startswith("explain: ") and "'Zorgon the Unwatchable'" in text
    assert "\n" not in text and "Traceback" not in text
    chat = out["chat"][1]
    assert chat["items"] and all(i["title"] in TITLES for i in chat["items"])
    assert out["chat2"][0] is False and out["chat2"][1]["session"] == chat["session"]
    assert out["feedback"][0] is False
    assert out["feedback"][1]["profile"]["liked"][0]["title"] == "Fargo (1996)"
    error, text = out["hostile"]
    assert error and text.startswith("lookup: ") and "only reading" in text and "\n" not in text
    error, text = out["bad"]
    assert error and "argument 'k'" in text and "\n" not in text
    assert out["after"] == (False, out["after"][1]) and out["after"][1]["rows"] == [[len(FILMS)]]


def test_stdio_server_answers_the_sdk_client(site: Path, tmp_path: Path) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "recai", "mcp", str(site / "mcp.toml"), "--out", str(tmp_path / "fit")],
        env=_env(site),
        cwd=str(tmp_path),
    )
    errlog = tmp_path / "stderr.txt"

    async def go() -> dict[str, Any]:
        with errlog.open("w") as err:
            async with Client(stdio_client(params, errlog=err), read_timeout_seconds=60) as client:
                return await _drive(client)

    out = anyio.run(go)
    _check(out)
    stderr = errlog.read_text()
    assert "recai mcp: fitting agent" in stderr and "serving agent's tools over stdio" in stderr
    assert "a stray print while the dataset loads" in stderr  # diverted, the protocol held
    assert "a stray print from the brain" in stderr
    assert "Traceback" not in stderr


def test_stdio_answers_at_once_while_the_models_are_fitted(site: Path, tmp_path: Path) -> None:
    """A client's handshake and the catalog tools do not wait for a first fit (MCP clients
    give a server a minute or so to start); recommend waits for it, then answers."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "recai", "mcp", str(site / "slow.toml"), "--out", str(tmp_path / "fit")],
        env=_env(site),
        cwd=str(tmp_path),
    )

    async def go() -> tuple[Any, float, Any, Any]:
        with (tmp_path / "stderr.txt").open("w") as err:
            async with Client(stdio_client(params, errlog=err), read_timeout_seconds=120) as c:
                start = time.monotonic()
                before = (await c.call_tool("describe_catalog", {})).structured_content
                looked = await c.call_tool("lookup", {"sql": "SELECT count(*) FROM items"})
                quick = time.monotonic() - start
                rec = await c.call_tool("recommend", {"history": ["Alien"], "k": 3})
                after = (await c.call_tool("describe_catalog", {})).structured_content
                return before, quick, (looked.is_error, rec.is_error, rec.structured_content), after

    before, quick, (lookup_error, rec_error, rec), after = anyio.run(go)
    assert before["ready"] is False and quick < 5.0 and lookup_error is False
    assert rec_error is False and len(rec["items"]) == 3  # waited for the fit
    assert after["ready"] is True
    assert "agent fitted in" in (tmp_path / "stderr.txt").read_text()


@pytest.fixture()
def http_server(site: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {**os.environ, **_env(site), KEY_VAR: "s3cret-key"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recai",
            "mcp",
            str(site / "mcp.toml"),
            "--transport",
            "http",
            "--port",
            "0",
            "--api-key-env",
            KEY_VAR,
            "--out",
            str(tmp_path / "fit"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(tmp_path),
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if " at http://" not in line:
        proc.kill()
        raise AssertionError(f"no address printed: {line!r} {proc.communicate()[1]}")
    url = line.split(" at ", 1)[1].split()[0]
    try:
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _post(url: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    host, _, rest = url.removeprefix("http://").partition("/")
    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        body = body or {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        conn.request(
            "POST",
            "/" + rest,
            body=json.dumps(body),
            headers={
                "content-type": "application/json",
                "accept": "application/json, text/event-stream",
                **headers,
            },
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_http_server_answers_the_sdk_client_with_the_key_and_refuses_without(
    http_server: tuple[subprocess.Popen[str], str],
) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    proc, url = http_server
    assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
    for headers in ({}, {"authorization": "Bearer wrong"}, {"x-api-key": "nope"}):
        status, body = _post(url, headers)
        assert status == 401, (headers, status, body)
        assert "API key" in json.loads(body)["error"]["message"]
    explain = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "explain", "arguments": {"item": "Fargo", "history": ["Alien"]}},
    }
    status, body = _post(url, {"authorization": "Bearer wrong"}, explain)
    assert status == 401 and b"Fargo" not in body, (status, body)

    async def go() -> dict[str, Any]:
        http = httpx2.AsyncClient(
            headers={"Authorization": "Bearer s3cret-key"}, timeout=httpx2.Timeout(60)
        )
        async with http, Client(streamable_http_client(url, http_client=http)) as client:
            return await _drive(client)

    _check(anyio.run(go))
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0 and time.monotonic() - start < 20, stderr
    assert "recai mcp: stopped" in stderr and "Traceback" not in stderr


# -- option errors (in-process, through the real command table) ------------------------------------
@pytest.fixture()
def films_pm(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("RECAI_PLUGINS", "films,agent,classic")
    with use_plugin_manager(fresh_plugin_manager(autoload=True)):
        yield


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--transport", "pigeon"], "--transport must be stdio or http, not 'pigeon'"),
        (["--transport", "http", "--port", "99999"], "--port must be a whole number"),
        (["--transport", "http", "--api-key-env", "RECAI_TEST_UNSET_VARIABLE"], "is not set"),
        (["--api-key-env", KEY_VAR], "guards the http transport"),
        (["--port", "9000"], "--host and --port are for --transport http"),
        (["-c", "brain"], "--component 'brain' is not an agent"),
        (["-c", "agnet"], "Did you mean 'agent'?"),
        (["--tools", "lookup,recomend"], "'recomend', which is no tool. Did you mean 'recommend'?"),
        (["--tools", " , "], "--tools names no tool"),
        (["--explainer", "becuase"], "'becuase' is not an Explainer component. Did you mean"),
        (["--tools", "lookup", "--explainer", "because"], "--explainer is for the explain tool"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(
    films_pm: None,
    site: Path,
    argv: list[str],
    says: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RECAI_TEST_UNSET_VARIABLE", raising=False)
    monkeypatch.setenv(KEY_VAR, "k")
    code = cli.main(["mcp", str(site / "mcp.toml"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and says in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_tools_explain_without_an_explainer_is_one_line_and_exit_2(
    films_pm: None, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["mcp", str(site / "slow.toml"), "--tools", "recommend,explain"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--tools names explain, but agent 'agent'" in err, err
    assert "no Explainer component" in err and len(err.splitlines()) == 1


def test_a_missing_recipe_is_one_line_and_exit_2(
    films_pm: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["mcp", str(tmp_path / "nope.toml")])
    err = capsys.readouterr().err.strip()
    # the kernel's recipe report: one paragraph naming the file and the problem
    assert code == 2 and "nope.toml" in err and "file not found" in err, err
    assert "\n\n" not in err and "Traceback" not in err


def test_help_names_the_tools_and_imports_no_sdk() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from recai.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, "
        "contextlib.suppress(SystemExit):\n"
        "    main(['mcp', '--help'])\n"
        "assert 'Model Context Protocol' in ' '.join(out.getvalue().split()), out.getvalue()\n"
        "assert '--explainer NAME' in out.getvalue() and 'explain,' in out.getvalue()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('mcp', 'starlette', 'uvicorn', 'httpx2')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
