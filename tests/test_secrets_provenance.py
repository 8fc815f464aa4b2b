"""Secrets stay in the environment (issue 17 item 4): a value a recipe took from ``${ENV}`` is
never in the run folder's name, its files, an error, a log line or a progress line.

Every test sets the secret in the environment, runs the real command line (in this process, or
as ``python -m recai`` where only installed plugins are needed) and greps everything it could
have leaked into: the whole temporary folder (file contents and names) and stdout/stderr.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import support_plugin

import recai
from recai import cli, secrets
from recai.errors import DataError, RecaiError, UnknownIdError
from recai.plugins import PluginManager
from recai.progress import Progress
from recai.runtime import RunContext, atomic_write_text, run
from recai.types import Report

TOKEN = "tok-Zq7XwP4k9mB2vL"  # not key-shaped: only provenance can hide it
PRIVATE_DIR_NAME = "client_acme_private"


def leaks(secret: str, root: Path, *texts: str) -> list[str]:
    """Where ``secret`` (in any case) turns up: file and folder names under ``root``, file
    contents (bytes), and ``texts``."""
    needle = secret.lower()
    found = []
    for p in [root, *root.rglob("*")]:
        if needle in p.name.lower():
            found.append(f"name: {p}")
        if p.is_file() and not p.is_symlink() and needle.encode() in p.read_bytes().lower():
            found.append(f"content: {p}")
    found += [f"text #{i}" for i, t in enumerate(texts) if needle in t.lower()]
    return found


class Leaky(recai.Evaluator):
    """Puts ``path`` everywhere an evaluator can: report, files, logs, progress, or raises."""

    def __init__(self, path: str = "", mode: str = "report"):
        self.path = path
        self.mode = mode

    def evaluate(self, ctx):
        if self.mode == "crash":
            raise RuntimeError(f"cannot open {self.path}")
        if self.mode == "notes":
            error = RuntimeError("could not read the data")
            error.add_note(f"while reading {self.path}")
            raise error
        if self.mode == "data-error":
            raise DataError("no such file", path=self.path)
        if self.mode == "log-exception":
            try:
                raise OSError(f"[Errno 2] No such file or directory: '{self.path}'")
            except OSError:
                logging.getLogger("recai_leaky").exception("reading failed")
        logging.getLogger("recai_leaky").warning("reading %s", self.path)
        logging.getLogger("httpx").warning("HTTP Request: GET %s", self.path)
        for _ in ctx.progress(range(3), desc=f"reading {self.path}"):
            pass
        ctx.write_text("llm-results/a.jsonl", json.dumps({"path": self.path}) + "\n")
        ctx.write_json(Path("llm-results") / "b.json", {"path": self.path, self.path: 1})
        atomic_write_text(ctx.path("llm-results", "c.txt"), f"plain {self.path}\n")
        ctx.path("named", f"{Path(self.path).name}.txt").write_text("x")
        return Report(
            "",
            {"model": {"hit@5": 0.123456}, self.path: {"hit@5": 0.5}},
            info={"path": self.path, "count": 123456, "nested": [{"p": self.path}]},
            notes=[f"read {self.path}"],
        )


class LeakyPlugin:
    @recai.hookimpl
    def recai_evaluators(self):
        yield recai.ComponentSpec(name="leaky.v1", factory=Leaky, summary="Leaks on purpose.")


@pytest.fixture
def pm(recai_pm: PluginManager) -> PluginManager:
    recai_pm.register(support_plugin, name="support")
    recai_pm.register(LeakyPlugin(), name="leaky")
    return recai_pm


def leaky_recipe(tmp_path: Path, *, mode: str = "report", head: str = "", stem: str = "r") -> Path:
    f = tmp_path / f"{stem}.toml"
    f.write_text(
        f'{head}\n[components.leak]\nuse = "leaky.v1"\n'
        f'params = {{ path = "${{LEAK_DIR}}/ratings.csv", mode = "{mode}" }}\n'
    )
    return f


@pytest.fixture
def leak_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "data" / PRIVATE_DIR_NAME
    monkeypatch.setenv("LEAK_DIR", str(d))
    monkeypatch.setenv("RECAI_PROGRESS_INTERVAL", "0")
    return d


def recai_cmd(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command line, in a fresh process with ``env`` added."""
    return subprocess.run(
        [sys.executable, "-m", "recai", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "RECAI_PROGRESS_INTERVAL": "0", **env},
        cwd=cwd,
        timeout=180,
    )


CSV_RECIPE = """\
name = {name}
description = {description}

[components.data]
use = "csv.v1"
params = {{ interactions = {interactions}, name = {dataset} }}

[components.rnd]
use = "random.v1"

[components.e]
use = "ranking.v1"
params = {{ dataset = "data", models = ["rnd"], k = [5] }}
"""


def csv_recipe(
    tmp_path: Path,
    *,
    name: str = '"plain"',
    description: str = '"a run"',
    interactions: str = '"${DATA_DIR}/ratings.csv"',
    dataset: str = '"mydata"',
    stem: str = "r",
) -> Path:
    f = tmp_path / f"{stem}.toml"
    f.write_text(
        CSV_RECIPE.format(
            name=name, description=description, interactions=interactions, dataset=dataset
        )
    )
    return f


def data_dir(tmp_path: Path, name: str = PRIVATE_DIR_NAME) -> Path:
    d = tmp_path / "data" / name
    d.mkdir(parents=True)
    rows = [f"{u},{i}" for u in range(1, 9) for i in range(1, 6) if (u + i) % 3]
    (d / "ratings.csv").write_text("user_id,item_id\n" + "\n".join(rows) + "\n")
    return d


# -- the registry ---------------------------------------------------------------------------------


def test_registry_keeps_only_values_worth_hiding() -> None:
    assert secrets.register(["abc12", "123456789", "true", "0.001", "   x  ", TOKEN]) == 1
    assert secrets.known_secrets() == {TOKEN}
    text = f"k=123456789 flag=true id=abc12 key={TOKEN} KEY={TOKEN.upper()}"
    assert secrets.redact_known(text) == "k=123456789 flag=true id=abc12 key=*** KEY=***"


def test_registry_finds_escaped_encoded_and_normalised_forms(tmp_path: Path) -> None:
    value = 'a"b\\c/d private-value'
    secrets.register([value, str(tmp_path / "x" / ".." / "client_dir_42") + "/"])
    from urllib.parse import quote

    for form in (
        json.dumps(value),
        repr(value),
        quote(value, safe=""),
        str(tmp_path / "client_dir_42"),
    ):
        assert "private" not in secrets.redact_known(form) and "client_dir_42" not in (
            secrets.redact_known(form)
        ), form


def test_a_secret_cut_short_by_a_message_is_hidden_too() -> None:
    secrets.register([TOKEN, "-----BEGIN KEY-----\nAAAAbbbbCCCCdddd1234\n-----END KEY-----"])
    assert secrets.redact_known(f"key {TOKEN[:12]}... refused") == "key ***... refused"
    assert secrets.redact_known(f"key {TOKEN[:10]}\u2026") == "key ***\u2026"
    assert secrets.redact_known(("x" * 30 + " " + TOKEN)[:38]) == "x" * 30 + " ***"
    assert secrets.redact_known("bad line AAAAbbbbCCCCdddd1234 in key") == "bad line *** in key"
    assert secrets.redact_known("ends with tok-Z") == "ends with tok-Z"  # too short to tell


def test_a_key_read_from_the_environment_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_KEY", f"  {TOKEN}  ")
    assert secrets.read_key("SOME_SERVICE_KEY") == TOKEN
    assert secrets.redact_known(f"401 for {TOKEN}") == "401 for ***"


def test_recipe_env_values_are_the_substituted_parts_not_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = str(tmp_path)
    monkeypatch.setenv("HOME_LIKE", home)
    monkeypatch.setenv("DATA_DIR", f"{home}/{PRIVATE_DIR_NAME}")
    monkeypatch.setenv("API_TOKEN", TOKEN)
    monkeypatch.delenv("UNSET_VAR", raising=False)
    recipe = recai.load_recipe(
        {
            "name": "n",
            "components": {
                "a": {
                    "use": "random.v1",
                    "params": {
                        "path": "${DATA_DIR}/x.csv",
                        "other": "${UNSET_VAR:-default_written_in_file}",
                        "list": ["k=${API_TOKEN}"],
                    },
                }
            },
        }
    )
    values = secrets.register_recipe(recipe)
    # HOME_LIKE only occurs inside DATA_DIR's value: not a part of its own
    assert values == {f"{home}/{PRIVATE_DIR_NAME}", TOKEN}
    assert "default_written_in_file" not in "".join(secrets.known_secrets())


def test_secret_values_recorded_by_the_loader_win(monkeypatch: pytest.MonkeyPatch) -> None:
    class Loaded:
        secret_values = frozenset({"exact-value-123", "short"})
        secret_paths = frozenset({"name"})

    assert secrets.recipe_env_values(Loaded()) == {"exact-value-123"}


def test_loading_a_recipe_registers_exactly_its_environment_values() -> None:
    # the loader's own record: values given through env= (not os.environ) are known too, and a
    # recipe that is only checked, never run, already hides them
    env = {"DS": "hidden-dataset-name", "TOK": TOKEN, "LIKE_HOME": "/srv/private-data"}
    recipe = recai.load_recipe(
        {
            "components": {
                "a": {
                    "use": "random.v1",
                    "params": {"p": "${LIKE_HOME}/x", "q": "${NOPE:-written-default-1}"},
                },
                "b": {"use": "${DS}", "params": {"key": "${TOK}"}},
            }
        },
        env=env,
    )
    assert recipe.secret_values == {"hidden-dataset-name", TOKEN, "/srv/private-data"}
    assert secrets.known_secrets() >= recipe.secret_values
    assert "written-default-1" not in secrets.known_secrets()
    assert secrets.redact_known("no such file: /srv/private-data/x") == "no such file: ***/x"


def test_recipe_check_hides_an_environment_value_in_its_messages(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('[components.data]\nuse = "${DS_NAME}"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "recai", "recipe", "check", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "DS_NAME": "movielens-secret-name-99"},
    )
    assert proc.returncode == 2
    assert "components.data.use" in proc.stderr
    assert "movielens-secret-name-99" not in proc.stdout + proc.stderr


# -- the run folder's name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        '"${SECRET_NAME}"',
        '"exp-${SECRET_NAME}-2"',
        '"${SHORT_NAME}"',
        '"${SHORT_NAME}${SECRET_NAME}"',
    ],
    ids=["whole", "partial", "short-value", "two-variables"],
)
def test_a_name_from_the_environment_does_not_name_the_run_folder(
    tmp_path: Path, name: str
) -> None:
    data_dir(tmp_path)
    f = csv_recipe(tmp_path, name=name, stem="experiment")
    env = {
        "SECRET_NAME": TOKEN,
        "SHORT_NAME": "ab12",
        "DATA_DIR": str(tmp_path / "data" / PRIVATE_DIR_NAME),
    }
    res = recai_cmd("run", str(f), "--no-progress", env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["experiment"]
    assert "comes from the environment" in res.stderr and "runs/experiment" in res.stderr
    for secret in (TOKEN, "ab12", PRIVATE_DIR_NAME):
        assert not leaks(secret, tmp_path / "runs", res.stdout, res.stderr)


def test_a_written_name_equal_to_a_secret_does_not_name_the_folder(
    pm: PluginManager, leak_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LEAK_DIR", TOKEN)
    f = leaky_recipe(tmp_path, head=f'name = "{TOKEN}"')
    assert cli.main(["run", str(f), "--no-progress"]) == 0
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r"]
    assert not leaks(TOKEN, tmp_path / "runs")


def test_the_python_api_with_a_built_recipe_names_no_folder_after_a_secret(
    pm: PluginManager, leak_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUN_NAME", TOKEN)
    recipe = recai.load_recipe(leaky_recipe(tmp_path, head='name = "${RUN_NAME}"', stem="api"))
    result = run(recai.build(recipe), progress=False)
    assert result.out_dir == Path("runs") / "api" and result.notes
    assert not leaks(TOKEN, tmp_path / "runs", result.to_markdown())
    assert json.loads((result.metrics_path).read_text())["recipe"]["name"] == "***"


# -- metrics.json, report.md, stages/*, files evaluators write -----------------------------------


def test_env_values_reach_no_file_of_a_real_cli_run(tmp_path: Path) -> None:
    data_dir(tmp_path)
    f = csv_recipe(
        tmp_path,
        name='"${RUN_NAME}"',
        description='"for ${CLIENT} only"',
        dataset='"${DATASET_NAME}"',
    )
    env = {
        "RUN_NAME": "run-name-from-env",
        "CLIENT": "client-acme-corp",
        "DATASET_NAME": "dataset-name-secret",
        "DATA_DIR": str(tmp_path / "data" / PRIVATE_DIR_NAME),
    }
    res = recai_cmd("run", str(f), env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    metrics = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())
    assert metrics["stages"]["e"]["metrics"]["rnd"]["Hit@5"] >= 0  # the numbers are all there
    for secret in env.values():
        assert not leaks(secret, tmp_path / "runs", res.stdout, res.stderr), secret


def test_an_evaluators_report_files_and_file_names_hold_no_secret(
    pm: PluginManager, leak_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli.main(["run", str(leaky_recipe(tmp_path)), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert not leaks(PRIVATE_DIR_NAME, out, printed.out, printed.err)
    stage = json.loads((out / "stages" / "leak.json").read_text())["report"]
    assert stage["metrics"]["model"]["hit@5"] == 0.123456 and stage["info"]["count"] == 123456
    assert stage["info"]["path"] == "***/ratings.csv" and stage["notes"] == ["read ***/ratings.csv"]
    assert json.loads((out / "llm-results" / "b.json").read_text())["path"] == "***/ratings.csv"
    assert (out / "llm-results" / "c.txt").read_text() == "plain ***/ratings.csv\n"
    assert [p.name for p in (out / "named").iterdir()] == ["ratings.csv.txt"]


def test_a_secret_with_quotes_and_backslashes_keeps_json_valid(
    pm: PluginManager, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = 'Xyzzy"Plugh\\Frotz/Gnusto", "x'
    monkeypatch.setenv("LEAK_DIR", odd)
    out = tmp_path / "out"
    assert cli.main(["run", str(leaky_recipe(tmp_path)), "--out", str(out), "--no-progress"]) == 0
    for p in [*out.rglob("*.json")]:
        data = json.loads(p.read_text())  # still valid JSON
        assert "plugh" not in json.dumps(data).lower(), p
    for part in ("plugh", "frotz", "gnusto"):
        assert not leaks(part, out)


def test_a_stage_file_from_before_is_redacted_when_resumed(
    pm: PluginManager, leak_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    recipe = recai.load_recipe(leaky_recipe(tmp_path))
    run(recipe, out, progress=False)
    stage_file = out / "stages" / "leak.json"
    saved = json.loads(stage_file.read_text())
    saved["report"]["notes"] = [f"old note {leak_dir}"]  # as an older recai wrote it
    stage_file.write_text(json.dumps(saved))
    secrets.forget_secrets()
    result = run(recai.load_recipe(leaky_recipe(tmp_path)), out, progress=False)
    assert result.resumed == ["leak"]
    assert not leaks(PRIVATE_DIR_NAME, out / "metrics.json", result.to_markdown())
    assert not leaks(PRIVATE_DIR_NAME, out / "report.md")


def test_run_context_redact_and_writers_for_evaluators(tmp_path: Path) -> None:
    secrets.register([TOKEN])
    ctx = RunContext(tmp_path, seed=0)
    report = ctx.redact(Report("e", {TOKEN: {"m": 1.0}}, info={"k": (TOKEN, 2)}, notes=[TOKEN]))
    assert report.metrics == {"***": {"m": 1.0}} and report.info["k"] == ("***", 2)
    assert ctx.redact(f"x{TOKEN}x") == "x***x" and ctx.redact([{TOKEN: 1}]) == [{"***": 1}]
    ctx.write_text("a/b.txt", TOKEN)
    ctx.write_json(tmp_path / "c.json", {"v": TOKEN.lower()})
    assert not leaks(TOKEN, tmp_path)


# -- error messages -------------------------------------------------------------------------------


def test_a_missing_file_under_an_env_folder_is_reported_without_it(tmp_path: Path) -> None:
    f = csv_recipe(tmp_path)
    env = {"DATA_DIR": str(tmp_path / "nowhere" / PRIVATE_DIR_NAME)}
    res = recai_cmd("run", str(f), "--out", str(tmp_path / "o"), env=env, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "ratings.csv" in res.stderr and "not found" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) <= 3
    assert not leaks(PRIVATE_DIR_NAME, tmp_path / "o", res.stdout, res.stderr)


def test_a_relative_env_folder_is_hidden_in_its_absolute_form(tmp_path: Path) -> None:
    f = csv_recipe(tmp_path)
    res = recai_cmd(
        "--debug", "run", str(f), "--out", str(tmp_path / "o"),
        env={"DATA_DIR": f"./nowhere/../{PRIVATE_DIR_NAME}"},
        cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2 and "Traceback" in res.stderr  # --debug shows it, redacted
    assert not leaks(PRIVATE_DIR_NAME, tmp_path / "o", res.stdout, res.stderr)


@pytest.mark.parametrize(
    ("mode", "code", "expected"),
    [
        ("crash", 1, "internal error: RuntimeError: cannot open ***/ratings.csv"),
        ("notes", 1, "while reading ***/ratings.csv"),
        ("data-error", 2, "recai: error: ***/ratings.csv: no such file"),
    ],
)
@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_errors_raised_by_a_component_hide_the_env_value(
    pm: PluginManager,
    leak_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    code: int,
    expected: str,
    debug: bool,
) -> None:
    f = leaky_recipe(tmp_path, mode=mode)
    argv = ["--debug"] * debug + ["run", str(f), "--out", str(tmp_path / "o")]
    assert cli.main(argv) == code
    printed = capsys.readouterr()
    assert expected in printed.err
    assert ("Traceback" in printed.err) == debug
    assert not leaks(PRIVATE_DIR_NAME, tmp_path / "o", printed.out, printed.err)


def test_recai_errors_hide_registered_secrets_wherever_printed() -> None:
    secrets.register([TOKEN])
    for error in (
        RecaiError(f"bad {TOKEN}"),
        DataError("unreadable", path=f"/data/{TOKEN}/x.csv", line=3),
        UnknownIdError(f"no item {TOKEN!r}", kind="item", key=TOKEN),
    ):
        assert TOKEN not in str(error) and "***" in str(error)
    # a key written in a file (not from the environment) is still shown by errors
    assert "sk-abcdef123456" in str(RecaiError("key sk-abcdef123456 refused"))


@pytest.mark.parametrize("where", ["main", "thread"])
def test_an_uncaught_exception_in_a_script_hides_registered_secrets(where: str) -> None:
    code = f"""
import threading
from recai import secrets
secrets.register([{TOKEN!r}])
def fail():
    raise RuntimeError("cannot reach https://{TOKEN}.example/v1")
if {where!r} == "thread":
    t = threading.Thread(target=fail)
    t.start()
    t.join()
else:
    fail()
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "RuntimeError: cannot reach https://***.example/v1" in res.stderr
    assert TOKEN not in res.stderr and "Traceback" in res.stderr


# -- logs -----------------------------------------------------------------------------------------


def test_log_records_of_every_logger_hide_the_env_value(
    pm: PluginManager, leak_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    out = tmp_path / "out"
    assert (
        cli.main(["run", str(leaky_recipe(tmp_path, mode="log-exception")), "--out", str(out)]) == 0
    )
    names = {r.name for r in caplog.records}
    assert {"recai_leaky", "httpx"} <= names
    assert "reading ***/ratings.csv" in caplog.text
    assert "No such file or directory" in caplog.text  # the logged exception, redacted
    assert PRIVATE_DIR_NAME not in caplog.text
    assert all(PRIVATE_DIR_NAME not in r.getMessage() for r in caplog.records)


def test_log_lines_on_stderr_hide_the_env_value(
    pm: PluginManager, leak_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    try:
        assert cli.main(["run", str(leaky_recipe(tmp_path)), "--out", str(tmp_path / "o")]) == 0
    finally:
        logging.getLogger().removeHandler(handler)
    assert "reading ***/ratings.csv" in stream.getvalue()
    assert not leaks(PRIVATE_DIR_NAME, tmp_path / "o", stream.getvalue(), *capsys.readouterr())


def test_the_redacting_filter_cleans_records_made_by_hand() -> None:
    secrets.register([TOKEN])
    record = logging.LogRecord(
        "x", logging.INFO, "f.py", 1, "token %s in %r", (TOKEN, [TOKEN]), None
    )
    assert secrets.RedactingFilter().filter(record)
    assert record.getMessage() == "token *** in ['***']"


def test_log_args_and_exceptions_are_redacted_at_creation(caplog: pytest.LogCaptureFixture) -> None:
    secrets.register([TOKEN])
    log = logging.getLogger("recai_openai")
    with caplog.at_level(logging.DEBUG, logger="recai_openai"):
        log.debug("request to %(url)s", {"url": f"https://{TOKEN}.example/v1"})
        try:
            raise ValueError(f"bad key {TOKEN}")
        except ValueError:
            log.exception("failed")
    assert TOKEN not in caplog.text and "https://***.example/v1" in caplog.text
    assert "ValueError: bad key ***" in caplog.text


def test_warnings_are_redacted_when_formatted() -> None:
    secrets.register([TOKEN])
    text = warnings.formatwarning(f"cache at {TOKEN} is damaged", UserWarning, "x.py", 3)
    assert TOKEN not in text and "cache at *** is damaged" in text


# -- progress -------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_lines_hide_secrets_in_the_name_and_fields() -> None:
    secrets.register([TOKEN])
    log = io.StringIO()
    with Progress(total=2, desc=f"reading {TOKEN}", interval=0, stream=log) as bar:
        bar.update(source=TOKEN)
        bar.update(**{TOKEN: 1})
        assert TOKEN not in bar.line()
    assert TOKEN not in log.getvalue() and "reading ***" in log.getvalue()


def test_progress_bars_hide_secrets() -> None:
    secrets.register([TOKEN])
    term = Terminal()
    with Progress(total=3, desc=f"reading {TOKEN}", stream=term) as bar:
        bar.update(source=TOKEN)
    assert TOKEN not in term.getvalue() and "reading ***" in term.getvalue()


def test_progress_hides_key_shapes_too() -> None:
    log = io.StringIO()
    with Progress(total=1, desc="calling with sk-abcdef1234567", interval=0, stream=log) as bar:
        bar.update(header="Bearer abc.def.ghi")
    assert "sk-abcdef" not in log.getvalue() and "abc.def.ghi" not in log.getvalue()


def test_progress_of_a_run_hides_the_env_value(
    pm: PluginManager, leak_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", str(leaky_recipe(tmp_path)), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "reading ***/ratings.csv: 3/3" in err  # the progress lines are there, redacted
    assert PRIVATE_DIR_NAME not in err


def test_progress_in_a_worker_thread_hides_secrets() -> None:
    import threading

    secrets.register([TOKEN])  # the registry is per process, not per thread or context
    log = io.StringIO()

    def work() -> None:
        for _ in Progress(range(2), desc=f"worker {TOKEN}", interval=0, stream=log):
            pass

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert "worker ***: 2/2" in log.getvalue() and TOKEN not in log.getvalue()
