"""knowledge-kgpaths.v1 on the film fixture's graph (knowledgekit): paths checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from knowledgekit import film_split

import recai
from recai.errors import DataError
from recai.types import ItemList
from recai_knowledge.kgpaths import FAR, KGPathsKnowledge


@pytest.fixture(scope="module")
def split() -> recai.Split:
    return film_split()


def fitted(split: recai.Split, **params: object) -> KGPathsKnowledge:
    k = KGPathsKnowledge(**params)
    k.fit(split)
    return k


def test_distances_over_the_pruned_graph(split: recai.Split) -> None:
    k = fitted(split, max_degree=3)  # United States (8 films) is a hub: not passed through
    d = k.distances(np.array([0, 6]), np.array([2, 1, 7, 5, 0]))
    # Heat: Collateral via Mann (2), Ronin via De Niro (2), Aliens none, Fargo none, itself 0
    # Alien: Aliens is its sequel (1)
    assert d.tolist() == [[2, 2, FAR, FAR, 0], [FAR, FAR, 1, FAR, FAR]]
    far = k.distances(np.array([2]), np.array([1]))
    assert far.tolist() == [[4]]  # Collateral - Mann - Heat - De Niro - Ronin


def test_paths_in_words_with_entity_names(split: recai.Split) -> None:
    k = fitted(split, max_degree=3)
    text = k.knowledge(history=ItemList([6, 0]), candidates=ItemList([2, 5, 7, 1]))
    assert text.splitlines() == [
        "Knowledge-graph links from this user's items to the candidates:",
        "- Collateral (2004): shares the director Michael Mann with Heat (1995) (in this user's "
        "history)",
        "- Aliens (1986): is the sequel of Alien (1979) (in this user's history)",
        "- Ronin (1998): shares the actor Robert De Niro with Heat (1995) (in this user's history)",
    ]  # Fargo has only the hub: no path


def test_four_hop_path_goes_through_a_film(split: recai.Split) -> None:
    k = fitted(split, max_degree=3)
    text = k.knowledge(history=ItemList([2]), candidates=ItemList([1]))
    assert text.splitlines()[1] == (
        "- Ronin (1998): shares the actor Robert De Niro with Heat (1995), which shares the "
        "director Michael Mann with Collateral (2004) (in this user's history)"
    )
    assert (
        fitted(split, max_degree=3, max_hops=3).knowledge(
            history=ItemList([2]), candidates=ItemList([1])
        )
        == ""
    )  # beyond the hop limit


def test_hubs_and_uninformative_relations_are_pruned(split: recai.Split) -> None:
    # country: every film shares the one entity -> informativeness 0, dropped by default
    assert fitted(split).relation_stats["film.film.country"] == {
        "triples": 8,
        "informativeness": 0.0,
        "kept": False,
        "why": "informativeness 0.000 < min_informativeness 0.25",
    }
    assert fitted(split).relation_stats["film.film.actor"]["why"] == (
        "passes frequency and informativeness"
    )
    assert fitted(split).distances(np.array([0]), np.array([5])).tolist() == [[FAR]]
    # kept (min_informativeness 0) and not a hub (max_degree 8): Fargo joins through the country
    k = fitted(split, min_informativeness=0.0, max_degree=8)
    text = k.knowledge(history=ItemList([0]), candidates=ItemList([5]))
    assert text.splitlines()[1] == (
        "- Fargo (1996): shares the country United States with Heat (1995) (in this user's history)"
    )


def test_unnamed_entities_are_said_by_their_role(split: recai.Split) -> None:
    from knowledgekit import graph

    kg = graph()
    kg.entity_names = None
    split.dataset.kg, saved = kg, split.dataset.kg
    try:
        k = fitted(split, max_degree=3)
    finally:
        split.dataset.kg = saved
    text = k.knowledge(history=ItemList([0]), candidates=ItemList([2]))
    assert "- Collateral (2004): shares a director with Heat (1995)" in text


def test_relations_chosen_by_name_and_unknown_names_refused(split: recai.Split) -> None:
    k = fitted(split, max_degree=3, exclude_relations=["film.film.directed_by"])
    assert k.distances(np.array([0]), np.array([2])).tolist() == [[FAR]]
    only = fitted(split, max_degree=3, relations=["film.film.sequel"])
    assert only.distances(np.array([6, 0]), np.array([7, 1])).tolist() == [[1, FAR], [FAR, FAR]]
    with pytest.raises(DataError, match="Did you mean 'film.film.directed_by'"):
        fitted(split, relations=["film.film.directed"])


def test_a_dataset_without_a_graph_is_one_readable_error() -> None:
    with pytest.raises(DataError, match="dataset 'films' has no knowledge graph"):
        KGPathsKnowledge().fit(film_split(with_kg=False))


def test_candidates_in_the_history_and_unlinked_items_say_nothing(split: recai.Split) -> None:
    k = fitted(split, max_degree=3)
    assert k.knowledge(history=ItemList([0]), candidates=ItemList([0])) == ""
    assert k.knowledge(history=ItemList([]), candidates=ItemList([2])) == ""


def test_sparse_and_dense_distances_agree(split: recai.Split, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    dense = fitted(split, max_degree=3)
    assert dense._dense is not None
    monkeypatch.setattr(KGPathsKnowledge, "dense_limit", 0)
    sparse = fitted(split, max_degree=3)
    assert sparse._dense is None
    everyone = np.arange(8)
    assert (
        sparse.distances(everyone, everyone).tolist()
        == dense.distances(everyone, everyone).tolist()
    )
    history, cands = ItemList([6, 0]), ItemList([2, 5, 7, 1])
    assert sparse.knowledge(history=history, candidates=cands) == dense.knowledge(
        history=history, candidates=cands
    )
