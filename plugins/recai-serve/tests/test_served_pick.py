"""``recai serve RECIPE --component`` chooses the agent as ``recai chat`` / ``recai mcp`` do
(``recai_agent.cli.build_agent``): both call :func:`recai.recipe.pick`, so a wrong choice reads
the same from every command (compared here, word for word)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recai.errors import RecaiError

RECIPE = (
    '[components.data]\nuse = "synthetic.v1"\nparams = { n_users = 30, n_items = 20 }\n'
    '[components.pop]\nuse = "random.v1"\n'
    '[components.shop]\nuse = "ranker-agent.v1"\nparams = { dataset = "data", ranker = "pop" }\n'
    '[components.store]\nuse = "ranker-agent.v1"\nparams = { dataset = "data", ranker = "pop" }\n'
)


def refusal(call: object) -> RecaiError:
    with pytest.raises(RecaiError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)
    return caught.value


@pytest.mark.integration  # ranker-agent.v1 and build_agent of recai-agent
@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("shpo", "--component 'shpo' is not an agent. Did you mean 'shop'? agents: shop, store"),
        (
            "pop",
            "--component 'pop' is not an agent: it is a retriever and ranker (random.v1). "
            "agents: shop, store",
        ),
    ],
)
def test_serve_and_chat_refuse_a_wrong_agent_in_the_same_words(
    tmp_path: Path, name: str, says: str
) -> None:
    pytest.importorskip("recai_agent")
    from recai_agent.cli import build_agent
    from recai_serve.served import served_from_recipe

    recipe = tmp_path / "two.toml"
    recipe.write_text(RECIPE)
    served = refusal(lambda: served_from_recipe(str(recipe), component=name, out=tmp_path))
    chat = refusal(lambda: build_agent(str(recipe), name, str(tmp_path), verb="serve", log=str))
    assert str(served) == str(chat) == f"{recipe}: {says}"


@pytest.mark.integration
def test_a_wrong_dataset_names_the_option_and_what_it_is(tmp_path: Path) -> None:
    from recai_serve.served import served_from_recipe

    recipe = tmp_path / "two.toml"
    recipe.write_text(RECIPE)
    error = refusal(lambda: served_from_recipe(str(recipe), dataset="shop", out=tmp_path))
    assert str(error) == (
        f"{recipe}: --dataset 'shop' is not a dataset: it is an agent (ranker-agent.v1). "
        "datasets: data"
    )
