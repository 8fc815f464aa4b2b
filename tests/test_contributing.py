"""CONTRIBUTING.md's listing of the example plugin is the code CI runs, byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- file: (?P<path>[^ ]+) -->\n```[a-z]*\n(?P<body>.*?)```", re.S)


def test_every_listed_file_matches_the_example() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    blocks = {m["path"]: m["body"] for m in BLOCK.finditer(text)}
    example = ROOT / "examples" / "recai-recency"
    on_disk = {
        str(p.relative_to(ROOT))
        for p in example.rglob("*")
        if p.is_file() and p.suffix in (".py", ".toml") and "__pycache__" not in p.parts
    }
    assert set(blocks) == on_disk, "CONTRIBUTING.md must list every file of the example plugin"
    for path, body in blocks.items():
        assert (ROOT / path).read_text() == body, (
            f"{path} differs from its listing in CONTRIBUTING.md"
        )


def test_hooks_named_in_contributing_exist() -> None:
    from recai.roles import Role

    text = (ROOT / "CONTRIBUTING.md").read_text()
    named = set(re.findall(r"`(recai_[a-z_]+)\(\)`", text))
    assert named == {r.hook for r in Role} | {"recai_commands"}


def _snippets(text: str) -> dict[str, str]:
    """Python blocks of CONTRIBUTING.md whose first line names a file (``# src/pkg/mod.py``)."""
    out: dict[str, str] = {}
    for body in re.findall(r"```python\n(.*?)```", text, re.S):
        first = body.splitlines()[0]
        if re.match(r"# (src/)?[\w/]*\w+\.py$", first):
            out.setdefault(first[2:], body)
    return out


def test_params_and_command_snippets_run_as_written(tmp_path: Path) -> None:
    """Sections 1.3.1 (a Configurable component with inherited params models) and 1.4.1 (a
    command) work as a plugin built from their snippets alone."""
    import os
    import subprocess
    import sys

    from recai.testing import fake_distribution

    snippets = _snippets((ROOT / "CONTRIBUTING.md").read_text())
    pkg = "src/recai_mytools/"
    modules = {
        "recai_mytools/__init__.py": "",
        "recai_mytools/params.py": snippets[pkg + "params.py"],
        "recai_mytools/recent.py": snippets[pkg + "recent.py"],
        "recai_mytools/cli.py": snippets["cli.py"],
        # the two plugin.py snippets (components, then the command hook) as one module
        "recai_mytools/plugin.py": snippets[pkg + "plugin.py"]
        + snippets["plugin.py"].split("\n", 1)[1],
    }
    fake_distribution(
        tmp_path,
        "recai-mytools",
        version="0.1.0",
        entry_points={"mytools": "recai_mytools.plugin"},
        modules=modules,
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "RECAI_PLUGINS": "mytools",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120
        )

    hello = run("-m", "recai", "hello", "world", "-p", "k=3")
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout.strip() == "hello world {'k': '3'}"
    helped = run("-m", "recai", "--help")
    assert "Say hello. [recai-mytools 0.1.0]" in helped.stdout
    probe = (
        "import recai, inspect\n"
        "from recai.data import synthetic_dataset\n"
        "src = recai.DatasetSource.of(synthetic_dataset())\n"
        "r = recai.create('ranker', 'recent-popular.v1', dataset=src, window=30)\n"
        "print(type(r.params).__name__, r.params.window, r.params.decay, r.params.min_count)\n"
        "from recai_mytools.recent import RecentPopular\n"
        "print(RecentPopular(src).params.window)\n"
        "try:\n"
        "    RecentPopular(src, windw=3)\n"
        "except recai.ParamsError as e:\n"
        "    print(str(e).splitlines()[1].strip(' -'))\n"
        "print(inspect.signature(RecentPopular))\n"
    )
    out = run("-c", probe)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "RecentPopularParams 30 0.0 1"
    assert lines[1] == "50"  # the subclass's default
    assert lines[2].startswith("windw: unknown key (did you mean 'window'?")
    assert lines[3].startswith("(dataset: recai.roles.DatasetSource, *, window: int = 50")
