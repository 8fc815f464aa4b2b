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
