"""The entry point of recai-datasets registers its components without importing their modules."""

from __future__ import annotations

from recai.testing import fresh_plugin_manager, modules_imported_by_listing

MODULES = (
    "atomic",
    "assemble",
    "amazon",
    "generic",
    "movielens",
    "movielens_1m",
    "movielens_latest",
    "problems",
    "recai_format",
    "recbole",
    "steam",
    "tabular",
    "textio",
    "values",
)
HEAVY = ("recbole", "pandas", *(f"recai_datasets.{m}" for m in MODULES))
NAMES = {
    "movielens-100k.v1",
    "movielens-1m.v1",
    "movielens-latest.v1",
    "recbole-atomic.v1",
    "amazon-2018.v1",
    "amazon-2023.v1",
    "steam.v1",
    "recai-format.v1",
    "csv.v1",
    "jsonl.v1",
}


def test_listing_components_imports_nothing_heavy():
    assert modules_imported_by_listing("datasets", HEAVY, expect="movielens-100k.v1") == []


def test_every_loader_is_registered_as_a_dataset():
    reg = fresh_plugin_manager(autoload=True).registry()
    mine = {e.name for e in reg.all("dataset") if e.plugin.distribution == "recai-datasets"}
    assert mine == NAMES


def test_readme_recipe_snippets_check(tmp_path):
    """Every ```toml block of the README is a valid recipe part (names and params checked)."""
    import re
    from pathlib import Path

    from recai.recipe import check, load_recipe

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= len(NAMES)
    reg = fresh_plugin_manager(autoload=True).registry()
    used = set()
    for n, block in enumerate(blocks):
        f = tmp_path / f"r{n}.toml"
        f.write_text(f'name = "readme-{n}"\n' + block)
        plan = check(load_recipe(f), reg)
        used |= {c.use for c in load_recipe(f).components.values()}
        assert plan.order
    assert used == NAMES  # a snippet for every component
