"""Every recipe recai-agent documents passes ``recai recipe check`` (both passes: the schema and
the components, with their params, built against the installed plugins)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
RECIPES = sorted((ROOT / "plugins" / "recai-agent" / "examples").glob("*.toml")) + [
    ROOT / "examples" / "agent.toml"
]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_the_example_recipe_checks(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"RECAI_LLM_MODEL": "any-model", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "recai", "recipe", "check", str(recipe)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert ": OK" in done.stdout


def test_the_openai_table_needs_the_model_named_and_says_so() -> None:
    recipe = ROOT / "plugins" / "recai-agent" / "examples" / "agent-scripted-openai.toml"
    done = subprocess.run(
        [sys.executable, "-m", "recai", "recipe", "check", str(recipe)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 2
    assert "RECAI_LLM_MODEL" in done.stderr and "Traceback" not in done.stderr
