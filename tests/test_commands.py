"""The command hook: plugins add `recai` subcommands, listed by `recai --help` with their
distribution, imported only when run; broken, clashing or misnamed commands are reported and
skipped; a plugin's own bug is reported as the plugin's, not as recai's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import recai
from recai.commands import CommandSpec, parse_params
from recai.testing import fake_distribution, fresh_plugin_manager

HELLO_PLUGIN = """
import recai

@recai.hookimpl
def recai_commands():
    yield recai.CommandSpec(name="hello", factory="hello_cli:configure", summary="Say hello.")
    yield recai.CommandSpec(name="crash", factory="hello_cli:configure_crash", summary="Has a bug.")
"""

HELLO_CLI = """
import argparse

import recai

def configure(parser):
    parser.add_argument("who")
    parser.add_argument("--shout", action="store_true")
    parser.set_defaults(func=run)

def run(args):
    if args.who == "nobody":
        raise recai.RecaiError("hello: say hello to somebody")
    text = f"hello {args.who}"
    print(text.upper() if args.shout else text)
    return 0

def configure_crash(parser):
    parser.set_defaults(func=crash)

def crash(args):
    return {}["missing"]
"""

BROKEN_PLUGIN = """
import recai

@recai.hookimpl
def recai_commands():
    yield recai.CommandSpec(name="broken", factory="broken_cli:configure", summary="Never loads.")
    yield recai.CommandSpec(name="run", factory="broken_cli:configure", summary="Takes over run.")
    yield recai.CommandSpec(name="Bad Name", factory="broken_cli:configure", summary="Misnamed.")
    yield recai.CommandSpec(name="hello", factory="broken_cli:configure", summary="Clashes.")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    fake_distribution(
        root,
        "recai-hello",
        version="1.2.3",
        entry_points={"hello": "hello_plugin"},
        modules={"hello_plugin.py": HELLO_PLUGIN, "hello_cli.py": HELLO_CLI},
    )
    fake_distribution(
        root,
        "recai-broken",
        version="0.0.1",
        entry_points={"broken": "broken_plugin"},
        modules={"broken_plugin.py": BROKEN_PLUGIN, "broken_cli.py": "import no_such_module\n"},
    )
    return root


def recai_cmd(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "recai", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
    )


def test_plugin_command_runs_with_its_arguments(site: Path) -> None:
    out = recai_cmd(site, "hello", "world", "--shout", RECAI_PLUGINS="hello")
    assert out.returncode == 0 and out.stdout.strip() == "HELLO WORLD", out.stderr
    bad = recai_cmd(site, "hello", RECAI_PLUGINS="hello")  # missing argument: argparse, exit 2
    assert bad.returncode == 2 and "usage: recai hello" in bad.stderr


def test_user_error_of_a_plugin_command_exits_2_without_traceback(site: Path) -> None:
    out = recai_cmd(site, "hello", "nobody", RECAI_PLUGINS="hello")
    assert out.returncode == 2
    assert out.stderr.strip() == "recai: error: hello: say hello to somebody"


def test_help_lists_plugin_commands_with_their_distribution(site: Path) -> None:
    out = recai_cmd(site, "--help", RECAI_PLUGINS="hello")
    assert out.returncode == 0
    assert "hello" in out.stdout and "Say hello. [recai-hello 1.2.3]" in out.stdout
    assert "run" in out.stdout and "plugins" in out.stdout  # the kernel's own


def test_help_imports_no_command_module_and_nothing_heavy(site: Path) -> None:
    probe = (
        "import sys, contextlib, io\n"
        "from recai import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        cli.main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(sys.modules))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    modules = eval(out.stdout)  # a printed list of module names
    assert "hello_cli" not in modules and "broken_cli" not in modules
    plugin_modules = [m for m in modules if m.startswith("recai_")]
    # only the entry-point modules (and their package), never the modules that do the work
    assert all(m.count(".") == 0 or m.endswith(".plugin") for m in plugin_modules), plugin_modules
    heavy = ("torch", "transformers", "faiss", "openai", "sklearn", "onnxruntime", "starlette")
    assert not [m for m in modules if m.split(".")[0] in heavy]


def test_broken_misnamed_and_clashing_commands_are_reported_and_skipped(site: Path) -> None:
    help_out = recai_cmd(site, "--help")
    assert help_out.returncode == 0
    assert "Plugin problems" in help_out.stdout
    assert "'recai run' is a command of recai itself" in help_out.stdout
    assert "command 'Bad Name'" in help_out.stdout
    # the broken module is only found out when the command runs
    out = recai_cmd(site, "broken")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert (
        "command 'broken' from recai-broken 0.0.1 failed to load: ModuleNotFoundError" in out.stderr
    )
    clash = recai_cmd(site, "hello", "x")
    assert clash.returncode == 2
    assert "command 'hello' is provided by recai-hello 1.2.3" in clash.stderr
    assert "recai-broken 0.0.1" in clash.stderr
    # the kernel's run is untouched, and the rest of recai keeps working
    assert recai_cmd(site, "run", "--help").stdout.startswith("usage: recai run")
    listing = recai_cmd(site, "plugins", "--json")
    data = json.loads(listing.stdout)
    assert {c["name"] for c in data["commands"]} >= {"broken"}
    assert data["command_conflicts"][0]["name"] == "hello"


def test_a_plugin_bug_names_the_plugin(site: Path) -> None:
    out = recai_cmd(site, "crash", RECAI_PLUGINS="hello")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "recai: error in the plugin recai-hello 1.2.3 (hello_cli, line" in out.stderr
    assert "in crash): KeyError: 'missing'" in out.stderr
    assert "This is a bug in recai-hello" in out.stderr and "internal error" not in out.stderr
    debug = recai_cmd(site, "--debug", "crash", RECAI_PLUGINS="hello")
    assert "Traceback" in debug.stderr


def test_command_specs_from_python() -> None:
    class Plugin:
        @recai.hookimpl
        def recai_commands(self):
            yield CommandSpec(name="one", factory=lambda parser: None, summary="One.")
            yield "not a spec"

    pm = fresh_plugin_manager(Plugin())
    table = pm.commands()
    assert list(table) == ["one"]
    assert any("not a recai.CommandSpec" in f.reason for f in pm.failures)
    strict = fresh_plugin_manager(strict=True)
    with pytest.raises(recai.PluginLoadError, match="not a recai.CommandSpec"):
        strict.register(Plugin(), name="p")
        strict.commands()


def test_parse_params() -> None:
    assert parse_params(["a=1", "b=[1]", "c=x=y"]) == {"a": "1", "b": [1], "c": "x=y"}
    with pytest.raises(recai.RecaiError, match="expected KEY=VALUE"):
        parse_params(["novalue"])


def test_unknown_param_did_you_mean_from_python() -> None:
    with pytest.raises(recai.ParamsError) as err:
        recai.create("ranker", "random.v1", sed=3)
    assert "sed: unknown key (did you mean 'seed'? allowed keys: seed, n_items)" in str(err.value)
