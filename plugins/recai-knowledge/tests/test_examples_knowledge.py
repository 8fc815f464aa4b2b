"""The ablation recipes recai-knowledge documents pass ``recai recipe check`` (schema and
components built against the installed plugins), with the defaults and with the quick-check
sizes their comments give."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import recai

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "plugins" / "recai-knowledge" / "examples"


def check(recipe: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recai", "recipe", "check", str(recipe)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", **env},
        timeout=120,
    )


@pytest.mark.parametrize("recipe", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_the_example_recipe_checks(recipe: Path) -> None:
    done = check(recipe, RECAI_LLM_MODEL="any-model", SAMPLES="3", GENERATE_SAMPLES="1")
    assert done.returncode == 0, done.stderr
    assert ": OK" in done.stdout


def test_the_ablation_compares_every_type_and_the_composite() -> None:
    recipe = recai.load_recipe(EXAMPLES / "ablation.toml")
    comps = recipe.components
    wanted = ["attributes", "cooccurrence", "i2i", "u2i", "kgpaths", "recency", "all"]
    for stage in ("ranking_score", "ranking_generate"):
        assert comps[stage].params["knowledge"] == wanted
    assert comps["ranking_score"].params["mode"] == "score"
    assert {b["prompter"] for b in comps["all"].params["blocks"]} == set(wanted[:-1])


def test_the_variants_pair_each_new_form_with_the_old_one() -> None:
    comps = recai.load_recipe(EXAMPLES / "variants.toml").components
    assert comps["ranking_score"].params["knowledge"] == [
        "kgpaths",
        "kgpaths_llm",
        "i2i",
        "i2i_emb",
    ]
    assert comps["kgpaths_llm"].params["relation_llm"] == "brain"
    assert comps["i2i_emb"].params["measure"] == "embedding"
    assert comps["i2i_emb"].params["ranker"] == "sasrec"


def test_a_bad_sample_size_is_named() -> None:
    done = check(EXAMPLES / "ablation.toml", SAMPLES="lots")
    assert done.returncode == 2 and "samples" in done.stderr and "Traceback" not in done.stderr
