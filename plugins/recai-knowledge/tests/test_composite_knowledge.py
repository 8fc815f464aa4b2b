"""knowledge-composite.v1: blocks in order, the most useful facts first, the budget kept."""

from __future__ import annotations

import pytest
from knowledgekit import film_split

import recai
from recai.errors import ParamsError
from recai.types import ItemList, Message
from recai_knowledge.attributes import AttributesKnowledge
from recai_knowledge.base import Fact, FactPrompter, approx_tokens
from recai_knowledge.collab import I2IKnowledge
from recai_knowledge.composite import CompositeKnowledge
from recai_knowledge.kgpaths import KGPathsKnowledge

HISTORY = ItemList([3, 6, 0])
CANDIDATES = ItemList([2, 5, 7, 1, 4])


@pytest.fixture(scope="module")
def split() -> recai.Split:
    return film_split()


def build(split: recai.Split, **params: object) -> CompositeKnowledge:
    blocks = params.pop("blocks", None) or [
        {"prompter": KGPathsKnowledge(max_degree=3), "weight": 1.0},
        {"prompter": AttributesKnowledge(stats=False), "weight": 0.5},
    ]
    k = CompositeKnowledge(blocks=blocks, **params)
    k.fit(split)
    return k


def test_a_large_budget_keeps_every_block_in_order(split: recai.Split) -> None:
    k = build(split, max_tokens=10_000)
    text = k.knowledge(history=HISTORY, candidates=CANDIDATES)
    kg, attrs = text.split("\n\n")
    assert kg.startswith("Knowledge-graph links from this user's items to the candidates:\n")
    assert attrs.startswith("About these items:\n- Collateral (2004): genres Crime, Thriller")
    assert len(attrs.splitlines()) == 6  # header + the 5 candidates


@pytest.mark.parametrize("budget", [5, 30, 60, 90, 140, 200])
def test_the_budget_is_respected(split: recai.Split, budget: int) -> None:
    k = build(split, max_tokens=budget)
    text = k.knowledge(history=HISTORY, candidates=CANDIDATES)
    assert approx_tokens(text) <= budget
    if budget >= 30:
        assert text  # something fits


def test_the_most_useful_facts_win_a_short_budget(split: recai.Split) -> None:
    # 40 tokens: the graph's header (17) and one fact (18); the sequel, a direct link, is best
    text = build(split, max_tokens=40).knowledge(history=HISTORY, candidates=CANDIDATES)
    assert text.splitlines() == [
        "Knowledge-graph links from this user's items to the candidates:",
        "- Aliens (1986): is the sequel of Alien (1979) (in this user's history)",
    ]
    # weigh the attributes far above: now they take the budget
    blocks = [
        {"prompter": KGPathsKnowledge(max_degree=3), "weight": 0.1},
        {"prompter": AttributesKnowledge(stats=False), "weight": 10.0, "template": "{facts}"},
    ]
    text = build(split, max_tokens=30, blocks=blocks).knowledge(
        history=HISTORY, candidates=CANDIDATES
    )
    assert text.startswith("- ") and "genres" in text and "Knowledge-graph" not in text


def test_selection_depends_on_the_user(split: recai.Split) -> None:
    blocks = [{"prompter": I2IKnowledge(recent=3, neighbours=1), "template": "{facts}"}]
    k = build(split, max_tokens=25, blocks=blocks)
    # Toy Story's neighbour Babe (cosine 1.0) beats Heat's (0.71) for a Toy Story fan ...
    assert "Toy Story (1995) also chose: Babe" in k.knowledge(
        history=ItemList([0, 3]), candidates=CANDIDATES
    )
    # ... and for a Heat fan without Toy Story the budget goes to Heat
    assert "Heat (1995) also chose: Collateral" in k.knowledge(
        history=ItemList([0]), candidates=CANDIDATES
    )


class CountingLLM(recai.LLMBackend):
    """A backend whose tokens are words (its count_tokens), for the exact budget."""

    def chat(self, messages, **options):  # type: ignore[no-untyped-def]
        raise AssertionError("not called")

    def count_tokens(self, messages: list[Message]) -> int:
        return sum(len(m.content.split()) for m in messages) + 3


def test_an_llms_own_count_is_respected(split: recai.Split) -> None:
    k = build(split, max_tokens=20, llm=CountingLLM())
    text = k.knowledge(history=HISTORY, candidates=CANDIDATES)
    assert text and len(text.split()) <= 20


class Plain(recai.KnowledgePrompter):
    def knowledge(self, *, history=None, candidates=None, query=None):  # type: ignore[no-untyped-def]
        return "Plain fact one.\nPlain fact two."


def test_any_knowledge_prompter_is_one_fact(split: recai.Split) -> None:
    blocks = [{"prompter": Plain()}, {"prompter": AttributesKnowledge(fields=["year"])}]
    text = build(split, max_tokens=1000, blocks=blocks).knowledge(candidates=ItemList([6]))
    assert text.startswith("Plain fact one.\nPlain fact two.\n\nAbout these items:\n- Alien")


def test_bad_blocks_are_named() -> None:
    with pytest.raises(ParamsError, match=r"blocks\[0\]\.template: must contain \{facts\}"):
        CompositeKnowledge(blocks=[{"prompter": Plain(), "template": "no placeholder"}])
    with pytest.raises(ParamsError, match=r"blocks\[0\]\.template: may use only the placeholder"):
        CompositeKnowledge(blocks=[{"prompter": Plain(), "template": "{facts} {user}"}])
    with pytest.raises(ParamsError, match="blocks"):
        CompositeKnowledge(blocks=[])
    with pytest.raises(ParamsError, match="max_tokens"):
        CompositeKnowledge(blocks=[{"prompter": Plain()}], max_tokens=0)


def test_a_recipe_wires_blocks_by_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    recipe = tmp_path / "k.toml"
    recipe.write_text(
        """
[components.attrs]
use = "knowledge-attributes.v1"
params.fields = ["year"]

[components.knowledge]
use = "knowledge-composite.v1"
params.max_tokens = 50
params.blocks = [{ prompter = "attrs", weight = 2.0 }]
"""
    )
    built = recai.build(recai.load_recipe(recipe))
    k = built["knowledge"]
    assert k.params.blocks[0].prompter is built["attrs"]
    k.fit(film_split())
    assert k.knowledge(candidates=ItemList([0])) == (
        "About these items:\n- Heat (1995): year 1995; chosen by 4 users in the log (top 12%), "
        "mean rating 2.75"
    )


class Many(FactPrompter):
    """Five equally useful facts (or one less useful one, with few=True)."""

    name = "many"

    def __init__(self, tag: str, utility: float, n: int) -> None:
        super().__init__()
        self._tag, self._utility, self._n = tag, utility, n

    def _facts(self, history, candidates, query):  # type: ignore[no-untyped-def]
        return [Fact(f"{self._tag}{i}", self._utility) for i in range(self._n)]


@pytest.mark.parametrize(("diversity", "expected"), [(1.0, 3), (0.8, 2)])
def test_diversity_keeps_one_type_from_taking_the_budget(
    split: recai.Split, diversity: float, expected: int
) -> None:
    blocks = [
        {"prompter": Many("a", 1.0, 5), "template": "{facts}"},
        {"prompter": Many("b", 0.9, 1), "template": "{facts}"},
    ]
    # each fact "- a0\n" costs 2 tokens, a block's separator 1: room for three facts
    k = build(split, max_tokens=7, blocks=blocks, diversity=diversity)
    text = k.knowledge(candidates=ItemList([0]))
    assert text.count("- a") == expected
    assert ("- b0" in text) == (diversity < 1.0)
