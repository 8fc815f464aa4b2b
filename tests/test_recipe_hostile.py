"""Hostile recipes and arguments (issue 17, item 3): what ``recipe check`` accepts also runs.

Every case goes through the real command line (:func:`recai.cli.main`) on files in
``tmp_path`` and must end in one readable paragraph naming the file and the line, key or option,
exit code 2, no traceback, quickly and in bounded memory.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
import support_plugin
from pydantic import Field

import recai
from recai import cli
from recai.errors import ParamsError
from recai.plugins import PluginManager
from recai.recipe import loader
from recai.specs import SEED_MAX, Params
from recai.types import Report

QUICK = 2.0
"""Seconds a refusal may take in process (they take 0.01 to 0.5 s on a busy 2-core machine)."""


# -- a small plugin: an evaluator that seeds numpy and torch-like generators, factories that
# -- refuse their arguments themselves or fail deeper down ----------------------------------------
class SeedUser(recai.Evaluator):
    """Seeds what the ecosystem seeds with the run's seed; fails if a seed is unusable."""

    def __init__(self, dataset: recai.DatasetSource, seed: int = 0) -> None:
        self.dataset = dataset
        self.seed = seed

    def evaluate(self, ctx: Any) -> Report:
        np.random.RandomState(ctx.seed)  # 0 .. 2**32 - 1 only
        np.random.default_rng(ctx.seed)  # no negative seeds
        np.random.RandomState(self.seed)
        n = self.dataset.dataset().n_users
        return Report(evaluator="", metrics={"seeded": {"users": float(n)}}, info={})


class Picky:
    """Refuses a combination of its arguments in its own code, as many constructors do."""

    def __init__(self, low: int = 0, high: int = 1) -> None:
        if low > high:
            raise ValueError(f"low ({low}) must not exceed high ({high})")
        self.low, self.high = low, high


def _helper(x: int) -> int:
    raise ValueError(f"internal failure with {x}")


class Buggy:
    """Fails inside a helper: a bug of the plugin, not a problem of the recipe."""

    def __init__(self, x: int = 1) -> None:
        self.x = _helper(x)


class _HostilePlugin:
    @recai.hookimpl
    def recai_evaluators(self) -> Iterator[recai.ComponentSpec]:
        yield recai.ComponentSpec("seeduser.v1", SeedUser, "Seeds numpy with the run's seed.")

    @recai.hookimpl
    def recai_rankers(self) -> Iterator[recai.ComponentSpec]:
        yield recai.ComponentSpec("picky.v1", Picky, "Refuses low > high.")
        yield recai.ComponentSpec("buggy.v1", Buggy, "Fails deep inside.")


@pytest.fixture
def pm(recai_pm: PluginManager) -> PluginManager:
    recai_pm.register(support_plugin, name="support")
    recai_pm.register(_HostilePlugin(), name="hostile")
    return recai_pm


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    start = time.perf_counter()
    code = cli.main(args)
    took = time.perf_counter() - start
    out, err = capsys.readouterr()
    return code, out + err, took


def _refused(
    args: list[str], capsys: pytest.CaptureFixture[str], *expected: str, exit_code: int = 2
) -> str:
    code, text, took = _cli(args, capsys)
    assert code == exit_code, f"exit {code}: {text}"
    assert "Traceback" not in text and "internal error" not in text, text
    assert "RecursionError" not in text and "MemoryError" not in text, text
    for part in expected:
        assert part in text, f"{part!r} not in: {text}"
    assert took < QUICK, f"took {took:.2f} s: {text}"
    return text


SEEDED = """
[components.data]
use = "synthetic.v1"
params = {{ n_users = 20, n_items = 15 }}
[components.seeds]
use = "seeduser.v1"
params = {{ dataset = "data"{params} }}
[run]
seed = {seed}
"""


def _seeded(tmp_path: Path, seed: str = "0", params: str = "") -> Path:
    path = tmp_path / "seeded.toml"
    path.write_text(SEEDED.format(seed=seed, params=params))
    return path


# -- 1. values that check accepted and run then crashed on -----------------------------------------
@pytest.mark.parametrize(
    ("seed", "params", "key"),
    [
        ("-1", "", "run.seed (line 9)"),
        ("4294967296", "", "run.seed (line 9)"),
        ("99999999999999999999", "", "run.seed (line 9)"),
        ("0", ", seed = -5", "components.seeds.params.seed (line 7)"),
        ("0", ", seed = 18446744073709551616", "components.seeds.params.seed (line 7)"),
        ("nan", "", "run.seed (line 9)"),
        ("inf", "", "run.seed (line 9)"),
    ],
)
def test_check_and_run_refuse_the_same_unusable_seed(
    pm: PluginManager,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    seed: str,
    params: str,
    key: str,
) -> None:
    path = _seeded(tmp_path, seed, params)
    checked = _refused(["recipe", "check", str(path)], capsys, str(path), key)
    ran = _refused(["run", str(path), "--out", str(tmp_path / "out")], capsys, str(path), key)
    assert checked.splitlines()[:2] == ran.splitlines()[:2]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seed", ["0", str(SEED_MAX)])
def test_every_seed_check_accepts_runs(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: str
) -> None:
    path = _seeded(tmp_path, seed, f", seed = {seed}")
    code, text, _ = _cli(["recipe", "check", str(path)], capsys)
    assert code == 0, text
    code, text, _ = _cli(
        ["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"], capsys
    )
    assert code == 0, text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inf", "finite"),
        ("-inf", "finite"),
        ("nan", "finite"),
        ("[1, inf]", "components.e.params.k[1] (line 7): not a finite number"),
        ("[1, 18446744073709551616]", "k[1] (line 7): 18446744073709551616 is too large"),
        ("{ a = [{ b = nan }] }", "components.e.params.k.a[0].b (line 7): not a finite"),
        ("-9223372036854775809", "integers must fit in 64 bits"),
    ],
)
def test_unusable_numbers_in_any_param_are_refused_with_the_key(
    pm: PluginManager,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    value: str,
    message: str,
) -> None:
    path = tmp_path / "numbers.toml"
    path.write_text(
        '[components.data]\nuse = "synthetic.v1"\n[components.rnd]\nuse = "random.v1"\n'
        f'[components.e]\nuse = "hitrate.v1"\nparams = {{ dataset = "data", models = ["rnd"], k = {value} }}\n'
    )
    for args in (["recipe", "check", str(path)], ["run", str(path), "--out", str(tmp_path / "o")]):
        _refused(args, capsys, "components.e.params.k", "(line 7)", message)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ('"../../escape"', "cannot contain '/'"),
        ('"a/b"', "cannot contain '/'"),
        ('".hidden"', "start with '.'"),
        ('""', "the name is empty"),
        ('"a\\u0000b"', "control character"),
        ('"line\\nbreak"', "control character"),
        (f'"{"é" * 60}"', "120 bytes long"),
    ],
)
def test_a_recipe_name_that_cannot_name_the_run_folder_is_refused_by_check(
    pm: PluginManager,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    message: str,
) -> None:
    path = tmp_path / "named.toml"
    path.write_text(f'name = {name}\n[components.rnd]\nuse = "random.v1"\n')
    _refused(["recipe", "check", str(path)], capsys, "name (line 1)", message)


def test_a_factory_that_refuses_its_arguments_is_a_recipe_problem(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "picky.toml"
    path.write_text(
        '[components.data]\nuse = "synthetic.v1"\n[components.p]\nuse = "picky.v1"\n'
        "params = { low = 5, high = 2 }\n"
        '[components.e]\nuse = "hitrate.v1"\nparams = { dataset = "data", models = ["p"] }\n'
    )
    _refused(
        ["run", str(path), "--out", str(tmp_path / "o")],
        capsys,
        "components.p (line 3)",
        "picky.v1 refused its params: low (5) must not exceed high (2)",
    )


def test_a_failure_deep_inside_a_factory_is_still_reported_as_a_bug(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "buggy.toml"
    path.write_text(
        '[components.data]\nuse = "synthetic.v1"\n[components.b]\nuse = "buggy.v1"\n'
        '[components.e]\nuse = "hitrate.v1"\nparams = { dataset = "data", models = ["b"] }\n'
    )
    code, text, _ = _cli(["run", str(path), "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and "internal failure with 1" in text and "buggy.v1" in text


def test_params_refuse_unusable_numbers_from_python_too() -> None:
    class Sized(Params):
        size: Annotated[int, Field(ge=1)] = 1
        rate: float = 0.5
        seed: int = 0
        sizes: list[int] = []

    for kwargs, part in [
        ({"rate": float("inf")}, "rate"),
        ({"rate": float("nan")}, "rate"),
        ({"size": 2**64}, "64 bits"),
        ({"seed": -1}, "a seed must be 0 .. 4294967295"),
        ({"seed": 2**32}, "a seed must be 0 .. 4294967295"),
        ({"sizes": [1, 2**70]}, "at sizes[1]"),
    ]:
        with pytest.raises(
            ParamsError, match=r"(?s)invalid parameters for Sized.*" + re.escape(part)
        ):
            Sized.from_call("Sized", (), kwargs)
    assert Sized.from_call("Sized", (), {"seed": SEED_MAX, "size": 2**63 - 1}).seed == SEED_MAX


# -- 2. parsing: deep nesting, alias bombs, too many values, odd numbers and bytes ------------------
def _bomb(levels: int) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for name in "bcdefghijklm"[:levels]:
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        prev = name
    return text


HOSTILE_TEXTS = {
    "deep_list.json": ('{"components": ' + "[" * 900 + "]" * 900 + "}", "line 1, column 79"),
    "open_brackets.json": ("[" * 100_000, "line 1, column 65"),
    "deep_string_decoy.json": ('{"a": "' + "[" * 200 + '", "b": ' + "[" * 70, "line 1, column 279"),
    "deep_array.toml": ("a = " + "[" * 900 + "]" * 900 + "\n", "line 1, column 69"),
    "deep_inline.toml": ("a = " + "{b = " * 900 + "1" + "}" * 900 + "\n", "line 1, column 325"),
    "deep_dotted.toml": ("[" + ".".join(["a"] * 5000) + "]\nx = 1\n", "(line 1)"),
    "deep_flow.yaml": ("a: " + "[" * 900 + "]" * 900 + "\n", "line 1"),
    "deep_block.yaml": ("".join("  " * i + "k:\n" for i in range(900)), "line "),
    "deep_dashes.yaml": ("- " * 900 + "x\n", "line 1"),
    "deep_beyond_libyaml.yaml": ("a: " + "[" * 5000 + "\n", "line 1"),
    "alias_bomb.yaml": (_bomb(8), "line 5"),
    "alias_bomb_big.yaml": (_bomb(10), "line 5"),
    "deep_by_alias.yaml": (
        "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 40 + "*a" + "]" * 40 + "\n",
        "line 2",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TEXTS))
def test_deep_or_exploding_recipes_are_refused_quickly_with_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    text, where = HOSTILE_TEXTS[name]
    path = tmp_path / name
    path.write_text(text)
    tracemalloc.start()
    try:
        out = _refused(["recipe", "check", str(path)], capsys, str(path), where)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (
        "nested more than 64 levels" in out or f"more than {loader.MAX_VALUES:,} values" in out
    ), out
    assert len(out.strip().splitlines()) == 2, out  # the file, then one problem
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize(
    "name",
    ["many.json", "many.toml", "many.yaml", "many_block.yaml"],
)
def test_more_values_than_a_recipe_holds_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    n = 150_000
    texts = {
        "many.json": '{"a": [' + ",".join(["0"] * n) + "]}",
        "many.toml": "a = [" + ",".join(["0"] * n) + "]\n",
        "many.yaml": "a: [" + ",".join(["0"] * n) + "]\n",
        "many_block.yaml": "a:\n" + "- 0\n" * n,
    }
    path = tmp_path / name
    path.write_text(texts[name])
    _refused(["recipe", "check", str(path)], capsys, f"more than {loader.MAX_VALUES:,} values")


@pytest.mark.parametrize("suffix", [".json", ".toml", ".yaml"])
def test_an_integer_of_thousands_of_digits_names_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    digits = "9" * 5000
    text = {
        ".json": '{"components": {"x": {"use": "random.v1",\n "params": {"seed": '
        + digits
        + "}}}}",
        ".toml": '[components.x]\nuse = "random.v1"\nparams = { seed = ' + digits + " }\n",
        ".yaml": "components:\n  x:\n    use: random.v1\n    params: {seed: " + digits + "}\n",
    }[suffix]
    path = tmp_path / f"long{suffix}"
    path.write_text(text)
    out = _refused(["recipe", "check", str(path)], capsys, str(path), "digits")
    assert "set_int_max_str_digits" not in out


def test_a_recursive_alias_and_a_self_containing_dict_are_refused(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("components:\n  rnd: &rnd\n    use: random.v1\n    params:\n      x: [*rnd]\n")
    _refused(["recipe", "check", str(path)], capsys, "components.rnd.params.x[0] (line ", "itself")
    data: dict[str, Any] = {"components": {"rnd": {"use": "random.v1", "params": {}}}}
    data["components"]["rnd"]["params"]["me"] = data
    with pytest.raises(recai.RecipeError, match="contains itself"):
        recai.load_recipe(data)
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(recai.RecipeError, match="nested more than 64"):
        recai.load_recipe({"components": {"rnd": {"use": "random.v1", "params": {"d": deep}}}})


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'name = "ok"\n[components.x]\nuse = "r\xff"\n', "line 3, column 9"),
        (b"\xc3\x28", "line 1, column 1"),
        (b'name = "\xe2\x82"\n', "line 1, column 9"),
        (b"# caf\xc3\xa9 \xed\xa0\x80\n", "line 1, column 8"),
    ],
)
def test_invalid_utf8_names_line_column_and_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: bytes, where: str
) -> None:
    path = tmp_path / "bytes.toml"
    path.write_bytes(raw)
    _refused(["recipe", "check", str(path)], capsys, where, "not valid UTF-8", "at offset")


def test_utf16_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "wide.toml"
    path.write_bytes('name = "x"\n'.encode("utf-16"))
    _refused(["recipe", "check", str(path)], capsys, "UTF-16", "save it as UTF-8")


def test_the_yaml_fallback_without_libyaml_has_the_same_bounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    loader._yaml_loader.cache_clear()
    try:
        for name in ("deep_flow.yaml", "deep_block.yaml", "deep_dashes.yaml", "alias_bomb.yaml"):
            text, where = HOSTILE_TEXTS[name]
            path = tmp_path / name
            path.write_text(text)
            out = _refused(["recipe", "check", str(path)], capsys, where)
            assert "YAML syntax error" not in out
    finally:
        loader._yaml_loader.cache_clear()


# -- 3. recipe paths that are not regular files: refused before reading -----------------------------
def _check_in_thread(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """``recai recipe check path`` with a time limit: a FIFO must not block the command."""
    result: list[int] = []
    worker = threading.Thread(
        target=lambda: result.append(cli.main(["recipe", "check", str(path)]))
    )
    worker.daemon = True
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), f"recai recipe check {path} blocked"
    out, err = capsys.readouterr()
    assert result == [2], out + err
    return out + err


def test_a_fifo_is_refused_without_blocking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pipe.toml"
    os.mkfifo(path)
    assert "is a FIFO (named pipe), not a regular file" in _check_in_thread(path, capsys)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null", "/dev/stdin"])
def test_a_device_is_refused_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str
) -> None:
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    link = tmp_path / "device.json"
    link.symlink_to(device)
    out = _check_in_thread(link, capsys)
    assert "not a regular file" in out
    # named directly, without a recipe suffix, the kind of file is still what is said
    direct = _refused(["recipe", "check", device], capsys, device)
    assert "device" in direct or "unknown recipe file type" in direct


def test_a_directory_and_a_socket_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    _refused(["recipe", "check", str(folder)], capsys, "is a directory")
    sock_path = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.bind(str(sock_path))
        except OSError:
            pytest.skip("cannot bind a unix socket here")
        assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
        _refused(["recipe", "check", str(sock_path)], capsys, "is a socket")


def test_a_huge_file_is_refused_by_its_size_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "huge.toml"
    with open(path, "wb") as f:
        f.truncate(8 << 30)  # sparse: 8 GiB that would take minutes to read
    _refused(["recipe", "check", str(path)], capsys, "8,589,934,592 bytes", "at most 1,048,576")
    just_over = tmp_path / "over.toml"
    just_over.write_text("#" * (loader.MAX_BYTES + 1))
    _refused(["recipe", "check", str(just_over)], capsys, "1,048,577 bytes")


def test_paths_that_are_empty_or_missing_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _refused(["recipe", "check", ""], capsys, "the recipe path is empty")
    _refused(["run", ""], capsys, "the recipe path is empty")
    _refused(["recipe", "check", str(tmp_path / "none.toml")], capsys, "file not found")
    blocker = tmp_path / "file"
    blocker.write_text("")
    _refused(["recipe", "check", str(blocker / "r.toml")], capsys, "a part of the path is a file")
    _refused(["recipe", "check", str(tmp_path / ("x" * 300 + ".toml"))], capsys, "cannot read")


# -- 4. output options ------------------------------------------------------------------------------
@pytest.fixture
def small_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(
        '[components.data]\nuse = "synthetic.v1"\n[components.rnd]\nuse = "random.v1"\n'
        '[components.e]\nuse = "hitrate.v1"\nparams = { dataset = "data", models = ["rnd"] }\n'
    )
    return path


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("", "the path is empty; name a folder"),
        ("   ", "the path is empty; name a folder"),
        ("FILE", "is a file, not a folder"),
        ("/dev/null", "is a device, FIFO or socket, not a folder"),
    ],
)
def test_run_out_must_be_a_folder(
    pm: PluginManager,
    small_recipe: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    out: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    if out == "FILE":
        out = str(tmp_path / "a-file")
        Path(out).write_text("keep me")
    _refused(["run", str(small_recipe), "--out", out], capsys, "--out", message)
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "stages").exists()
    if out.endswith("a-file"):
        assert Path(out).read_text() == "keep me"


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("", "the path is empty; name a file"),
        ("DIR", "is a folder; name a file"),
        ("/dev/null", "is not a regular file"),
    ],
)
def test_schema_out_must_be_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str, message: str
) -> None:
    if out == "DIR":
        out = str(tmp_path)
    _refused(["recipe", "schema", "--shape-only", "--out", out], capsys, "--out", message)


def test_schema_out_that_cannot_be_written_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() == 0:
        target = "/proc/version"  # root can write nearly anywhere; not in /proc
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = str(locked / "schema.json")
    _refused(["recipe", "schema", "--shape-only", "--out", target], capsys, "cannot write")


def test_the_real_command_refuses_a_fifo_and_a_bomb_quickly(tmp_path: Path) -> None:
    """The same through a real process: exit code 2, one paragraph on stderr, no traceback."""
    fifo = tmp_path / "p.json"
    os.mkfifo(fifo)
    bomb = tmp_path / "b.yaml"
    bomb.write_text(_bomb(10))
    for path in (fifo, bomb):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "recai", "recipe", "check", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.perf_counter() - start
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"recai: error: {path}: 1 problem"), done.stderr
        assert "Traceback" not in done.stderr
        assert took < 15, took  # a process start, then a refusal in well under a second


# -- 5. recipes that make the checker itself slow or its report unreadable --------------------------
ALGORITHMIC = {
    "unknown_keys.toml": '[components.x]\nuse = "random.v1"\n'
    + "".join(f"u{i} = 1\n" for i in range(15_000)),
    "unknown_params.toml": '[components.x]\nuse = "random.v1"\n[components.x.params]\n'
    + "".join(f"u{i} = 1\n" for i in range(15_000)),
    "unknown_uses.toml": "".join(f'[components.c{i}]\nuse = "nosuch{i}.v1"\n' for i in range(8000)),
    "long_key.toml": '[components."' + "a" * 900_000 + '"]\nuse = "random.v1"\n',
    "long_requirement.toml": 'requires = ["a[' + "b," * 300_000 + '"]\n',
    "many_requirements.toml": "requires = [" + ",".join(['"recai>=0", "nosuch"'] * 6000) + "]\n",
    "bad_refs.toml": '[components.data]\nuse = "synthetic.v1"\n[components.e]\nuse = "hitrate.v1"\n'
    'params = { dataset = "data", models = ['
    + ",".join(f'"x{i}"' for i in range(15_000))
    + "] }\n",
    "many_unknown_refs.toml": "".join(
        f'[components.c{i}]\nuse = "random.v1"\n' for i in range(3000)
    )
    + '[components.data]\nuse = "synthetic.v1"\n[components.e]\nuse = "hitrate.v1"\n'
    + 'params = { dataset = "data", models = ['
    + ",".join(f'"x{i}"' for i in range(3000))
    + "] }\n",
    "many_unknown_stages.toml": "".join(
        f'[components.c{i}]\nuse = "random.v1"\n' for i in range(3000)
    )
    + "[run]\nstages = ["
    + ",".join(f'"s{i}"' for i in range(3000))
    + "]\n",
    "long_cycle.toml": "".join(
        f'[components.c{i}]\nuse = "filtered.v1"\nparams = {{ source = "c{(i + 1) % 3000}" }}\n'
        for i in range(3000)
    ),
}


@pytest.mark.parametrize("name", sorted(ALGORITHMIC))
def test_the_report_of_a_hostile_recipe_stays_short_and_quick(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    path = tmp_path / name
    path.write_text(ALGORITHMIC[name])
    out = _refused(["recipe", "check", str(path)], capsys, str(path))
    assert len(out.splitlines()) <= loader.MAX_PROBLEMS + 2, out[-500:]
    assert len(out) < 64_000, f"{len(out):,} characters"
    if len(out.splitlines()) == loader.MAX_PROBLEMS + 2:
        assert "more problems, not listed" in out.splitlines()[-1]


@pytest.mark.parametrize(("links", "ok"), [(60, True), (64, False), (3000, False)])
def test_a_chain_of_components_deeper_than_run_can_build_is_refused_by_check(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str], links: int, ok: bool
) -> None:
    path = tmp_path / "chain.toml"
    path.write_text(
        "".join(
            f'[components.c{i}]\nuse = "filtered.v1"\nparams = {{ source = "c{i + 1}" }}\n'
            for i in range(links)
        )
        + f'[components.c{links}]\nuse = "synthetic.v1"\nparams = {{ n_users = 20, n_items = 10 }}\n'
        '[components.r]\nuse = "random.v1"\n'
        '[components.e]\nuse = "hitrate.v1"\nparams = { dataset = "c0", models = ["r"] }\n'
    )
    if not ok:
        _refused(["recipe", "check", str(path)], capsys, "take each other more than 64 deep")
        _refused(["run", str(path), "--out", str(tmp_path / "o")], capsys, "more than 64 deep")
        return
    assert _cli(["recipe", "check", str(path)], capsys)[0] == 0
    code, text, _ = _cli(["run", str(path), "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert code == 0, text
