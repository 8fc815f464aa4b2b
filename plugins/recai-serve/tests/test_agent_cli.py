"""``recai serve RECIPE`` with agent components, in a child process: the recipe's agent is built
and fitted through the kernel's recipe runtime (the fit cached under --out), served with its
ranker's REST routes; sessions kept in a SQLite file survive a restart of the command; the
options are checked (exit 2, one line naming the option)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest

from recai.testing import fake_distribution

PLUGIN = """
import recai
from recai.data.context import user_context
from recai.types import AgentTurn, Message

class ShopParams(recai.Params):
    dataset: recai.DatasetSource
    ranker: recai.Ranker

class Shop(recai.Agent):
    def __init__(self, dataset, ranker):
        self.dataset = dataset
        self.ranker = ranker
        self.fits = 0

    def fit(self, split):
        recai.ensure_fitted(self.ranker, split)
        self.fits += 1

    def reply(self, conversation):
        return Message.assistant(self.respond(conversation).text)

    def respond(self, conversation, *, on_text=None):
        catalog = self.dataset.dataset().catalog
        ctx = user_context(conversation, catalog)
        top = self.ranker.rank(ctx.history if ctx else [], k=2)
        turns = sum(1 for m in conversation if m.role == "user")
        text = f"turn {turns} (fitted {self.fits}): {catalog.title(int(top.ids[0]))}"
        if on_text is not None:
            on_text(text)
        items = [{"id": str(catalog.ids[i]), "title": catalog.title(int(i))} for i in top.ids]
        return AgentTurn(text, items)

@recai.hookimpl
def recai_agents():
    yield recai.ComponentSpec(name="shop.v1", factory=Shop, params=ShopParams, summary="A shop.")
"""

RECIPE = """
name = "shopping"
[components.data]
use = "synthetic.v1"
[components.pop]
use = "random.v1"
[components.shop]
use = "shop.v1"
params = { dataset = "data", ranker = "pop" }
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    fake_distribution(
        root,
        "recai-shop",
        entry_points={"shoptest": "shop_plugin"},
        modules={"shop_plugin.py": PLUGIN},
    )
    return root


def _env(site: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "RECAI_PLUGINS": "shoptest,serve",
    }


def _start(
    args: list[str], site: Path, cwd: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "recai", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_env(site), **(env or {})},
        cwd=cwd,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if " at http://" not in line:
        proc.kill()
        raise AssertionError(f"no address printed: {line!r} {proc.communicate()[1]}")
    return proc, line.split(" at ", 1)[1].split()[0]


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


def test_a_recipe_with_an_agent_is_served_fitted_with_sessions_that_survive_a_restart(
    site: Path, tmp_path: Path
) -> None:
    (tmp_path / "shop.toml").write_text(RECIPE)
    store = tmp_path / "sessions.db"
    args = ["shop.toml", "--sessions", str(store), "--quiet"]
    proc, base = _start(args, site, tmp_path)
    try:
        c = openai.OpenAI(base_url=base, api_key="none", max_retries=0)
        first = c.chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "hello"}],
            user="u1",
            extra_body={"session": "new"},
        )
        recai: dict[str, Any] = first.model_extra["recai"]
        assert first.choices[0].message.content.startswith("turn 1 (fitted 1): ")
        assert recai["items"][0]["attributes"]  # the catalog's columns, from the recipe's data
        import urllib.request

        req = urllib.request.Request(
            base + "/recommend",
            json.dumps({"user": "u1", "k": 3}).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            recommended = json.loads(resp.read())
        assert recommended["model"] == "pop" and len(recommended["items"]) == 3
    finally:
        err = _stop(proc)
    assert "fitting on all of synthetic" in err
    assert "(cached under runs/shop-serve/artifacts)" in err and "fitted in" in err
    proc, base = _start(args, site, tmp_path)
    try:
        c = openai.OpenAI(base_url=base, api_key="none", max_retries=0)
        second = c.chat.completions.create(
            model="shop",
            messages=[{"role": "user", "content": "again"}],
            extra_body={"session": recai["session"]},
            stream=True,
        )
        text = "".join(ch.choices[0].delta.content or "" for ch in second if ch.choices)
    finally:
        _stop(proc)
    assert text.startswith("turn 2 ")  # the first turn came back from the file


def _status(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_it_listens_on_loopback_and_api_key_env_guards_every_path(
    site: Path, tmp_path: Path
) -> None:
    (tmp_path / "shop.toml").write_text(RECIPE)
    key = "cli-key-3f9a"
    args = ["shop.toml", "--api-key-env", "SHOP_SERVE_KEY", "--quiet"]
    proc, base = _start(args, site, tmp_path, {"SHOP_SERVE_KEY": key})
    try:
        assert base.startswith("http://127.0.0.1:")  # the default address: loopback only
        root = base.removesuffix("/v1")
        for path in ("/", "/static/app.js", "/health", "/metrics", "/v1/models", "/docs", "/x"):
            status, headers, body = _status(root + path)
            assert status == 401, path
            assert headers["www-authenticate"] == 'Basic realm="recai", charset="UTF-8"'
            assert json.loads(body)["error"]["code"] == "invalid_api_key"
        token = base64.b64encode(f"me:{key}".encode()).decode()
        status, headers, page = _status(root + "/", {"Authorization": f"Basic {token}"})
        assert status == 200 and b"<title>recai chat</title>" in page
        status, _, listing = _status(base + "/models", {"Authorization": f"Bearer {key}"})
        assert status == 200 and [m["id"] for m in json.loads(listing)["data"]] == ["shop"]
        c = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
        answer = c.chat.completions.create(
            model="shop", messages=[{"role": "user", "content": "hi"}]
        )
        assert (answer.choices[0].message.content or "").startswith("turn 1 ")
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base, api_key="guess", max_retries=0).models.list()
    finally:
        _stop(proc)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--cors", "example.com"], "--cors"),
        (["--dataset", "nope"], "--dataset"),
        (["--request-timeout", "0"], "--request-timeout"),
        (["--session-ttl", "abc"], "--session-ttl"),
        (["--component", "nope"], "--component"),
        (["--model-name", "x"], "--model-name"),
    ],
)
def test_bad_options_exit_2_naming_them(site: Path, tmp_path: Path, extra: list[str], named: str):
    (tmp_path / "shop.toml").write_text(RECIPE)
    out = subprocess.run(
        [sys.executable, "-m", "recai", "serve", "shop.toml", "--port", "0", *extra],
        capture_output=True,
        text=True,
        env=_env(site),
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert named in out.stderr and "Traceback" not in out.stderr


@pytest.mark.integration  # ranker-agent.v1 of recai-agent, through the registry
def test_a_recipe_with_two_datasets_needs_dataset_named(tmp_path: Path) -> None:
    from recai.errors import RecaiError
    from recai_serve.served import served_from_recipe

    recipe = tmp_path / "two.toml"
    recipe.write_text(
        '[components.a]\nuse = "synthetic.v1"\n[components.b]\nuse = "synthetic.v1"\n'
        'params = { seed = 1 }\n[components.pop]\nuse = "random.v1"\n'
        '[components.shop]\nuse = "ranker-agent.v1"\nparams = { dataset = "a", ranker = "pop" }\n'
    )
    with pytest.raises(RecaiError, match=r"--dataset NAME \(it has 2: a, b\)"):
        served_from_recipe(str(recipe), out=tmp_path / "runs")
    served, _ = served_from_recipe(str(recipe), dataset="b", out=tmp_path / "runs")
    assert list(served.agents) == ["shop"] and served.dataset.name == "synthetic"
    assert list(served.rankers) == ["pop"]


def test_serving_a_recipe_lets_idle_openmp_threads_sleep_unless_told_otherwise(tmp_path):
    code = (
        "import os, sys\n"
        "from recai.errors import RecaiError\n"
        "from recai_serve.served import served_from_recipe\n"
        "try:\n"
        f"    served_from_recipe({str(tmp_path / 'missing.toml')!r})\n"
        "except RecaiError:\n"
        "    pass\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    bare = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bare.stdout.split() == ["PASSIVE", "False"], bare.stderr[-2000:]
    chosen = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
        capture_output=True,
        text=True,
    )
    assert chosen.stdout.split() == ["ACTIVE", "False"], chosen.stderr[-2000:]
