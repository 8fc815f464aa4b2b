"""``recai serve``: the command registered by recai-serve, in a child process and in-process.

The child serves a backend of a small plugin made here (a fake installed distribution), so the
command, its plugin lookup, its signals and its exit codes are all real.
"""

from __future__ import annotations

import ast
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import recai_serve.plugin
from recai.roles import LLMBackend
from recai.testing import fake_distribution
from recai.types import Completion

PLUGIN = """
import time
import recai
from recai.types import Completion, Usage

class Slowish(recai.LLMBackend):
    def __init__(self, word: str = "pong", sleep: float = 0.0):
        self.word = word
        self.sleep = float(sleep)

    def chat(self, messages, **options):
        time.sleep(self.sleep)
        return Completion(self.word + " " + messages[-1].content, usage=Usage(1, 2))

@recai.hookimpl
def recai_llm_backends():
    yield recai.ComponentSpec(name="pong.v1", factory=Slowish, summary="Answers pong.")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    fake_distribution(
        root, "recai-pong", entry_points={"pong": "pong_plugin"}, modules={"pong_plugin.py": PLUGIN}
    )
    return root


def _env(site: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "RECAI_PLUGINS": "pong,serve",
    }


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str], site: Path) -> tuple[subprocess.Popen, str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "recai", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(site),
        # A suite started in the background by a non-interactive shell (`cmd &`) inherits an
        # ignored SIGINT: give the server Ctrl-C's default, as a terminal would.
        preexec_fn=_default_sigint,
    )
    line = proc.stdout.readline()
    if "at http://" not in line:
        proc.kill()
        raise AssertionError(f"no address printed: {line!r} {proc.stderr.read()}")
    base_url = line.split(" at ", 1)[1].split()[0]
    host, port = base_url.removeprefix("http://").removesuffix("/v1").split(":")
    return proc, host, int(port)


def chat(host: str, port: int, text: str, model: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        body = {"model": model, "messages": [{"role": "user", "content": text}]}
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body))
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_the_plugin_registers_the_command(recai_installed_pm: Any) -> None:
    table = recai_installed_pm.commands()
    assert "serve" in table
    assert table.get("serve").plugin.distribution == "recai-serve"


def test_help_imports_no_web_framework() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from recai.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, "
        "contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "assert 'serve' in out.getvalue()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('starlette', 'uvicorn', 'anyio', 'h11', 'recai_serve')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    # at most the entry-point module (which imports only recai): no web framework, no server
    assert set(ast.literal_eval(out.stdout.strip())) <= {"recai_serve", "recai_serve.plugin"}


def test_cli_serves_a_registered_backend_until_sigterm(site: Path) -> None:
    proc, host, port = _start(["--use", "pong.v1", "-p", "word=ping", "--model-name", "pp"], site)
    try:
        status, body = chat(host, port, "x", "pp")
        assert status == 200 and body["choices"][0]["message"]["content"] == "ping x"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "POST /v1/chat/completions" in err and "stopped" in err


def test_cli_serves_a_recipe_component_quietly_until_ctrl_c(site: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[components.brain]\nuse = "pong.v1"\nparams = { word = "hey" }\n'
        '[components.rank]\nuse = "random.v1"\n'
    )
    proc, host, port = _start([str(recipe), "--quiet"], site)
    try:
        status, body = chat(host, port, "y", "brain")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert status == 200 and body["choices"][0]["message"]["content"] == "hey y"
    assert proc.returncode == 0 and "POST" not in err and "stopped" in err  # --quiet


def test_sigterm_during_a_request_answers_it_and_exits_0(site: Path) -> None:
    proc, host, port = _start(["--use", "pong.v1", "-p", "sleep=0.5", "--quiet"], site)
    answer: list[Any] = []
    try:
        t = threading.Thread(target=lambda: answer.append(chat(host, port, "z", "pong.v1")))
        t.start()
        time.sleep(0.2)  # the request is in the backend now
        proc.send_signal(signal.SIGTERM)
        t.join(10)
    finally:
        _, err = proc.communicate(timeout=10)
    assert (
        answer
        and answer[0][0] == 200
        and answer[0][1]["choices"][0]["message"]["content"] == "pong z"
    )
    assert proc.returncode == 0, err


class _Pong(LLMBackend):
    def __init__(self, word: str = "pong"):
        self.word = word

    def chat(self, messages, **options):
        return Completion(self.word)


class _PongPlugin:
    import recai as _recai

    @_recai.hookimpl
    def recai_llm_backends(self):
        yield self._recai.ComponentSpec(name="pong.v1", factory=_Pong, summary="Answers pong.")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "give a recipe file"),
        (["--use", "nope.v1"], "nope.v1"),
        (["--use", "pong.v1", "-p", "wrd=x"], "wrd"),
        (["--use", "pong.v1", "-p", "oops"], "expected KEY=VALUE"),
        (["--use", "pong.v1", "--api-key-env", "RECAI_TEST_UNSET_VARIABLE"], "is not set"),
        (["--use", "pong.v1", "--component", "x"], "--component picks a component of a recipe"),
        (["--use", "pong.v1", "--port", "99999"], "--port must be a whole number from 0 to 65535"),
        (
            ["--use", "pong.v1", "--max-concurrency", "-1"],
            "--max-concurrency must be a whole number from 0",
        ),
        (["--use", "pong.v1", "--host", "256.1.1.1"], "cannot listen on 256.1.1.1"),
        (
            ["RECIPE", "--component", "rank"],
            "'rank' is not an llm backend: it is a retriever and ranker (random.v1)",
        ),
        (["RECIPE", "--component", "brian"], "Did you mean 'brain'?"),
        (["RECIPE", "-p", "word=x"], "a recipe's component takes its params from the recipe"),
        (["RECIPE_NO_LLM"], "name the llm backend to use (it has none)"),
    ],
)
def test_cli_errors_exit_2(
    recai_pm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    from recai import cli

    recai_pm.register(_PongPlugin(), name="pong")
    recai_pm.register(recai_serve.plugin, name="serve", distribution="recai-serve")
    recipe = tmp_path / "r.toml"
    recipe.write_text('[components.brain]\nuse = "pong.v1"\n[components.rank]\nuse = "random.v1"\n')
    no_llm = tmp_path / "n.toml"
    no_llm.write_text('[components.rank]\nuse = "random.v1"\n')
    args = [
        str(recipe) if a == "RECIPE" else str(no_llm) if a == "RECIPE_NO_LLM" else a for a in args
    ]
    if "--port" not in args:
        args += ["--port", "0"]
    assert cli.main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert needle.lower() in err.lower(), err
    assert err.startswith("recai: error: ") and "Traceback" not in err


def test_a_busy_port_is_a_one_line_error(recai_pm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from recai import cli

    recai_pm.register(_PongPlugin(), name="pong")
    recai_pm.register(recai_serve.plugin, name="serve", distribution="recai-serve")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--use", "pong.v1", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"recai: error: cannot listen on 127.0.0.1:{port}: ") and "in use" in err
