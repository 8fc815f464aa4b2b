"""recai.recipe.pick: one component of a role from a checked recipe, the one it has or the one
named, and one readable error (exit code 2) for a wrong choice."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import recai
from recai.errors import RecaiError
from recai.plugins import PluginManager
from recai.recipe import Plan, check, load_recipe, pick, pick_optional, playing
from recai.roles import Role


@pytest.fixture
def pm(recai_pm: PluginManager) -> PluginManager:
    return recai_pm


def plan_of(tmp_path: Path, text: str) -> Plan:
    path = tmp_path / "r.toml"
    path.write_text(textwrap.dedent(text))
    return check(load_recipe(path))


TWO_RANKERS = """
    [components.data]
    use = "synthetic.v1"
    [components.rnd]
    use = "random.v1"
    [components.other]
    use = "random.v1"
    params = { seed = 2 }
"""


def test_the_only_component_of_the_role_is_picked(pm: PluginManager, tmp_path: Path) -> None:
    plan = plan_of(tmp_path, TWO_RANKERS)
    assert pick(plan, Role.DATASET, None, "--dataset") == "data"
    assert pick(plan, "ranker", "other", "--component") == "other"
    assert playing(plan, recai.Ranker) == ["rnd", "other"]  # recipe order, role by class too


def test_several_without_a_name_is_a_user_error_listing_them(
    pm: PluginManager, tmp_path: Path
) -> None:
    plan = plan_of(tmp_path, TWO_RANKERS)
    with pytest.raises(RecaiError) as caught:
        pick(plan, Role.RANKER, None, "--component", verb="serve")
    assert str(caught.value) == (
        f"{tmp_path / 'r.toml'}: name the ranker to serve, --component NAME (it has 2: rnd, other)"
    )
    assert caught.value.exit_code == 2
    with pytest.raises(RecaiError, match=r"r\.toml: name the ranker to use \(it has 2"):
        pick(plan, Role.RANKER, None)  # no option: the sentence reads without one


def test_none_of_the_role_is_an_error_for_pick_and_none_for_pick_optional(
    pm: PluginManager, tmp_path: Path
) -> None:
    plan = plan_of(tmp_path, TWO_RANKERS)
    with pytest.raises(RecaiError, match=r"name the agent to chat with, -c NAME \(it has none\)$"):
        pick(plan, Role.AGENT, None, "-c", verb="chat with")
    assert pick_optional(plan, Role.AGENT, None, "--component") is None
    with pytest.raises(RecaiError, match=r"--component 'x' is not an agent\. agents: none$"):
        pick_optional(plan, Role.AGENT, "x", "--component")


def test_a_misspelt_name_gets_a_did_you_mean(pm: PluginManager, tmp_path: Path) -> None:
    plan = plan_of(tmp_path, TWO_RANKERS)
    with pytest.raises(RecaiError) as caught:
        pick(plan, Role.RANKER, "rdn", "--component")
    assert str(caught.value) == (
        f"{tmp_path / 'r.toml'}: --component 'rdn' is not a ranker. Did you mean 'rnd'? "
        "rankers: rnd, other"
    )


def test_a_component_of_another_role_says_what_it_is(pm: PluginManager, tmp_path: Path) -> None:
    plan = plan_of(tmp_path, TWO_RANKERS)
    with pytest.raises(RecaiError) as caught:
        pick(plan, Role.DATASET, "rnd", "--dataset")
    assert str(caught.value) == (
        f"{tmp_path / 'r.toml'}: --dataset 'rnd' is not a dataset: it is a retriever and ranker "
        "(random.v1). datasets: data"
    )
    with pytest.raises(RecaiError, match=r": component 'rnd' is not a dataset: it is"):
        pick(plan, Role.DATASET, "rnd")  # no option: the component by name


def test_a_component_of_another_role_gets_no_guess_at_another_name(
    pm: PluginManager, tmp_path: Path
) -> None:
    plan = plan_of(tmp_path, TWO_RANKERS + '    [components.rnd2]\n    use = "synthetic.v1"\n')
    with pytest.raises(RecaiError) as caught:
        pick(plan, Role.RANKER, "rnd2", "--component")
    assert "it is a dataset (synthetic.v1)" in str(caught.value)
    assert "Did you mean" not in str(caught.value)  # not 'rnd': 'rnd2' was meant as itself
