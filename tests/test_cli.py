"""The recai command line: exit codes, messages, output formats, start-up cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import support_plugin

from recai import cli
from recai.plugins import PluginManager

HEAVY = (
    "torch",
    "transformers",
    "faiss",
    "openai",
    "sklearn",
    "onnxruntime",
    "onnx",
    "starlette",
    "uvicorn",
    "fastapi",
    "pyarrow",
    "sqlglot",
)


def recai_cmd(
    *args: str, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "recai", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def pm(recai_pm: PluginManager) -> PluginManager:
    recai_pm.register(support_plugin, name="support")
    return recai_pm


def test_version() -> None:
    out = recai_cmd("--version")
    assert out.returncode == 0 and out.stdout.strip().startswith("recai 0.")


def test_help_is_fast() -> None:
    recai_cmd("--help")  # warm the file cache
    start = time.perf_counter()
    out = recai_cmd("--help")
    elapsed = time.perf_counter() - start
    assert out.returncode == 0 and "plugins" in out.stdout and "recipe" in out.stdout
    assert elapsed < 1.0, f"recai --help took {elapsed:.2f} s"


def test_bad_arguments_exit_2() -> None:
    out = recai_cmd("frobnicate")
    assert out.returncode == 2 and "invalid choice" in out.stderr
    assert recai_cmd("run").returncode == 2  # missing FILE
    assert recai_cmd().returncode == 2  # no command: help, exit 2


def test_plugins_table_and_json(pm: PluginManager, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plugins"]) == 0
    text = capsys.readouterr().out
    assert "distribution" in text and "recai" in text
    assert "rankers:" in text and "random.v1" in text and "scaled.v1" in text
    assert cli.main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = {c["name"]: c for c in data["components"]}
    assert set(names["random.v1"]["roles"]) == {"ranker", "retriever"}
    assert names["random.v1"]["distribution"] == "recai"
    assert data["failures"] == [] and data["conflicts"] == []


def test_plugins_lists_failures(pm: PluginManager, capsys: pytest.CaptureFixture[str]) -> None:
    class Typo:
        def recai_rankerss(self):
            return []

    pm.register(Typo(), name="typo", distribution="recai-typo", version="9.9")
    assert cli.main(["plugins"]) == 0
    text = capsys.readouterr().out
    assert "Problems:" in text and "recai-typo 9.9" in text and "recai_rankerss" in text
    assert cli.main(["plugins", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["failures"][0]["plugin"] == "typo"


def test_recipe_check_ok(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "r.toml"
    f.write_text(
        '[components.rnd]\nuse = "random.v1"\n[components.big]\nuse = "scaled.v1"\nparams = { base = "rnd" }\n'
    )
    assert cli.main(["recipe", "check", str(f)]) == 0
    assert "OK" in capsys.readouterr().out


def test_user_error_exit_2_without_traceback(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "r.toml"
    f.write_text('[components.rnd]\nuse = "randum.v1"\n')
    assert cli.main(["recipe", "check", str(f)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("recai: error: ")
        and "Did you mean 'random.v1'" in err
        and "Traceback" not in err
    )
    assert cli.main(["--debug", "recipe", "check", str(f)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_internal_error_exit_1(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import recai

    class Crash(recai.Evaluator):
        def evaluate(self, ctx):
            raise ZeroDivisionError("a bug in a plugin")

    class P:
        @recai.hookimpl
        def recai_evaluators(self):
            yield recai.ComponentSpec(name="crash.v1", factory=Crash, summary="Crashes.")

    pm.register(P(), name="p")
    f = tmp_path / "r.toml"
    f.write_text('[components.e]\nuse = "crash.v1"\n')
    assert cli.main(["run", str(f), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert (
        "internal error: ZeroDivisionError: a bug in a plugin" in err
        and "--debug" in err
        and "Traceback" not in err
    )
    assert cli.main(["--debug", "run", str(f), "--out", str(tmp_path / "o")]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_run_writes_files(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "r.toml"
    f.write_text(
        'name = "cli"\n[components.data]\nuse = "synthetic.v1"\n[components.rnd]\nuse = "random.v1"\n'
        '[components.e]\nuse = "hitrate.v1"\nparams = { dataset = "data", models = ["rnd"] }\n'
    )
    out = tmp_path / "o"
    assert cli.main(["run", str(f), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| rnd |" in printed and "metrics.json" in printed
    assert (
        json.loads((out / "metrics.json").read_text())["stages"]["e"]["metrics"]["rnd"]["hit@5"]
        >= 0
    )
    assert cli.main(["run", str(f), "--out", str(out), "--no-progress"]) == 0
    assert "resumed" in capsys.readouterr().out


def test_run_stage_picks_stages_and_a_wrong_name_is_exit_2(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "r.toml"
    f.write_text(
        '[components.data]\nuse = "synthetic.v1"\n[components.rnd]\nuse = "random.v1"\n'
        '[components.a]\nuse = "hitrate.v1"\nparams = { dataset = "data", models = ["rnd"] }\n'
        '[components.b]\nuse = "hitrate.v1"\nparams = { dataset = "data", models = ["rnd"], k = 3 }\n'
    )
    out = tmp_path / "o"
    assert cli.main(["run", str(f), "--out", str(out), "--no-progress", "--stage", "b"]) == 0
    capsys.readouterr()
    assert list(json.loads((out / "metrics.json").read_text())["stages"]) == ["b"]
    assert cli.main(["run", str(f), "--out", str(out), "--no-progress", "--stage", "c"]) == 2
    err = capsys.readouterr().err
    assert "'c' is not a stage of this recipe; its stages: a, b" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_schema_lists_installed_components(
    pm: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["recipe", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    decl = schema["$defs"]["ComponentDecl"]
    assert "random.v1" in decl["properties"]["use"]["enum"]
    rule = next(r for r in decl["allOf"] if r["if"]["properties"]["use"]["const"] == "scaled.v1")
    params_ref = rule["then"]["properties"]["params"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["$defs"][params_ref]["properties"]) == {"base", "weight"}
    assert cli.main(["recipe", "schema", "--shape-only"]) == 0
    assert "allOf" not in json.loads(capsys.readouterr().out)["$defs"]["ComponentDecl"]


@pytest.mark.parametrize(
    "code", ["import recai", "import recai.cli, recai.plugins, recai.recipe, recai.runtime"]
)
def test_kernel_imports_no_heavy_library(code: str) -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    loaded = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in out.stderr.splitlines()
        if "|" in line
    }
    assert not loaded & set(HEAVY), f"kernel imported {loaded & set(HEAVY)}"


@pytest.mark.parametrize("args", [["plugins"], ["--help"], ["plugins", "--json"]])
def test_listing_imports_no_heavy_library(args: list[str]) -> None:
    """`recai plugins` and `recai --help`, with every installed plugin loaded, stay light: checked
    on sys.modules afterwards, which also sees modules that entry points load through importlib
    (``-X importtime`` reports only import statements)."""
    code = (
        "import contextlib, io, json, sys\n"
        "from recai.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({args!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = {m.split(".")[0] for m in json.loads(out.stdout)}
    assert not loaded & set(HEAVY), f"`recai {' '.join(args)}` imported {loaded & set(HEAVY)}"
    assert "recai_eval" in loaded  # the plugins were loaded, so the check means something


def test_unwritable_output_folder_is_a_user_error(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "r.toml"
    f.write_text(
        '[components.data]\nuse = "synthetic.v1"\n[components.rnd]\nuse = "random.v1"\n'
        '[components.e]\nuse = "hitrate.v1"\nparams = { dataset = "data", models = ["rnd"] }\n'
    )
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["run", str(f), "--out", str(blocker / "out")]) == 2
    assert "cannot write results to" in capsys.readouterr().err


def test_commands_let_idle_openmp_threads_sleep_unless_told_otherwise() -> None:
    code = (
        "import os, sys; from recai.cli import main; main(['plugins']); "
        "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip().splitlines()[-1] == "PASSIVE False"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip().splitlines()[-1] == "ACTIVE False"
