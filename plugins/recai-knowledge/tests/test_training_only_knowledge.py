"""Every knowledge type reads the training split only: held-out interactions change nothing,
and a training interaction does change something (so the check can fail). Plus the role
contract of the recai test kit for the types that need no other component."""

from __future__ import annotations

import numpy as np
import pytest
from knowledgekit import film_split

import recai
from recai.testing import KnowledgePrompterContract
from recai.types import ItemList
from recai_knowledge.attributes import AttributesKnowledge
from recai_knowledge.collab import CooccurrenceKnowledge, I2IKnowledge, U2IKnowledge
from recai_knowledge.composite import CompositeKnowledge
from recai_knowledge.kgpaths import KGPathsKnowledge
from recai_knowledge.recency import RecencyKnowledge


class CountingRanker(recai.Ranker):
    """Scores items by how often they occur in the split it was fitted on (training part)."""

    def fit(self, split: recai.Split) -> None:
        self.counts = np.bincount(split.train.items, minlength=split.dataset.n_items) * 1.0

    def score(self, histories, items=None, *, users=None):  # type: ignore[no-untyped-def]
        cols = np.arange(len(self.counts)) if items is None else np.asarray(items)
        return np.tile(self.counts[cols], (len(histories), 1))


class CountingVectors(CountingRanker):
    """Item vectors from the split it was fitted on: item i's column of the users x items
    0/1 matrix of the training part."""

    def fit(self, split: recai.Split) -> None:
        super().fit(split)
        self.vectors = np.zeros((split.dataset.n_items, split.train.n_users))
        self.vectors[split.train.items, split.train.users] = 1.0

    def item_embeddings(self) -> np.ndarray:
        return self.vectors


def every_type() -> list[recai.KnowledgePrompter]:
    return [
        AttributesKnowledge(),
        CooccurrenceKnowledge(min_count=1),
        I2IKnowledge(min_count=1, scope="all"),
        I2IKnowledge(scope="all", measure="embedding", ranker=CountingVectors()),
        U2IKnowledge(ranker=CountingRanker()),
        KGPathsKnowledge(max_degree=3),
        RecencyKnowledge(min_trend_count=1, recent=2),
        CompositeKnowledge(
            blocks=[{"prompter": AttributesKnowledge()}, {"prompter": I2IKnowledge(min_count=1)}]
        ),
    ]


def texts(split: recai.Split) -> list[str]:
    out = []
    for k in every_type():
        k.fit(split)
        out.append(
            k.knowledge(history=ItemList([3, 4, 6, 0]), candidates=ItemList([1, 2, 5, 7, 3]))
        )
    return out


def test_held_out_interactions_change_no_knowledge() -> None:
    base = texts(film_split(test={0: [5], 3: [0]}))
    assert all(base)  # every type says something here
    # many more held-out events, with items and times the training log never had together
    other = texts(film_split(test={0: [5, 3, 4], 1: [7, 6], 3: [0, 1, 2], 4: [6], 5: [2, 5]}))
    assert other == base


def test_a_training_interaction_does_change_it() -> None:
    import knowledgekit

    base = texts(film_split())
    saved = dict(knowledgekit.TRAIN)
    # three users also chose Aliens, and u3 Collateral
    knowledgekit.TRAIN.update({1: [0, 1, 5, 7], 2: [0, 2, 5, 7], 3: [3, 4, 7, 2]})
    try:
        changed = texts(film_split())
    finally:
        knowledgekit.TRAIN.clear()
        knowledgekit.TRAIN.update(saved)
    differs = [a != b for a, b in zip(base, changed, strict=True)]
    # the graph's paths do not depend on interactions; every other type does
    assert differs == [True, True, True, True, True, False, True, True]


class TestAttributesContract(KnowledgePrompterContract):
    name = "knowledge-attributes.v1"
    distribution = "recai-knowledge"


class TestCooccurrenceContract(KnowledgePrompterContract):
    name = "knowledge-cooccurrence.v1"
    distribution = "recai-knowledge"


class TestI2IContract(KnowledgePrompterContract):
    name = "knowledge-i2i.v1"
    distribution = "recai-knowledge"


class TestRecencyContract(KnowledgePrompterContract):
    name = "knowledge-recency.v1"
    distribution = "recai-knowledge"


def test_every_type_is_registered() -> None:
    from recai.plugins import get_plugin_manager

    names = set(get_plugin_manager().registry().names("knowledge_prompter"))
    assert {
        "knowledge-attributes.v1",
        "knowledge-cooccurrence.v1",
        "knowledge-i2i.v1",
        "knowledge-u2i.v1",
        "knowledge-kgpaths.v1",
        "knowledge-recency.v1",
        "knowledge-composite.v1",
    } <= names


@pytest.mark.parametrize("name", ["knowledge-kgpaths.v1", "knowledge-attributes.v1"])
def test_bad_params_name_the_key(name: str) -> None:
    with pytest.raises(recai.ParamsError, match="max_facts"):
        recai.create("knowledge_prompter", name, max_facts=0)
