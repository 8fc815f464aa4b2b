"""Each knowledge type on the hand-made film fixture (knowledgekit): facts checked by hand."""

from __future__ import annotations

import knowledgekit
import numpy as np
import pytest
from knowledgekit import film_split

import recai
from recai.errors import DataError, ParamsError
from recai.types import ItemList
from recai_knowledge.attributes import AttributesKnowledge
from recai_knowledge.base import NotFittedError
from recai_knowledge.collab import CooccurrenceKnowledge, I2IKnowledge, U2IKnowledge
from recai_knowledge.recency import RecencyKnowledge


@pytest.fixture(scope="module")
def split() -> recai.Split:
    return film_split()


def fitted(obj: recai.KnowledgePrompter, split: recai.Split) -> recai.KnowledgePrompter:
    obj.fit(split)
    return obj


class ScriptedRanker(recai.Ranker):
    """A ranker whose scores are fixed per item (higher index: higher score, item 5 first)."""

    def score(self, histories, items=None, *, users=None):  # type: ignore[no-untyped-def]
        base = np.arange(8, dtype=np.float64)
        base[5] = 100.0
        cols = np.arange(8) if items is None else np.asarray(items)
        out = base[cols]
        return np.tile(out, (len(histories), 1)) if out.ndim == 1 else out

    fitted_on: list[str] = []

    def fit(self, split):  # type: ignore[no-untyped-def]
        self.fitted_on.append(split.fingerprint())


# -- attributes -------------------------------------------------------------------------------------
def test_attributes_tell_fields_and_training_counts(split: recai.Split) -> None:
    k = fitted(AttributesKnowledge(), split)
    text = k.knowledge(history=ItemList([0, 1]), candidates=ItemList([2, 0]))
    lines = text.splitlines()
    assert lines[0] == "About these items:"
    # Collateral: 2 training users (u0 rated 1 + (0+2)%5 = 3, u2 rated 1 + (2+2)%5 = 5); 6 of
    # the 8 items have 2 users or more, so no "top" share is told (only up to 50%)
    assert lines[1] == (
        "- Collateral (2004): genres Crime, Thriller; year 2004; chosen by 2 users in the log, "
        "mean rating 4.00"
    )
    # Heat: 4 users, the most of any item (1 of 8: top 12%); ratings 1, 2, 3, 5 -> 2.75
    assert lines[2] == (
        "- Heat (1995): genres Action, Crime; year 1995; chosen by 4 users in the log (top 12%), "
        "mean rating 2.75"
    )


def test_attributes_utility_follows_the_users_genres(split: recai.Split) -> None:
    k = fitted(AttributesKnowledge(), split)
    facts = k.facts(history=ItemList([0, 1]), candidates=ItemList([4, 2]))  # Action/Crime fan
    by_item = {f.items[0]: f.utility for f in facts}
    assert by_item[2] > by_item[4]  # Collateral (Crime, Thriller) over Babe (Comedy)
    assert k.knowledge(history=ItemList([0]), candidates=ItemList([])) == ""


def test_attributes_fields_chosen_and_unknown_field_named(split: recai.Split) -> None:
    k = fitted(AttributesKnowledge(fields=["year"], stats=False), split)
    assert k.knowledge(candidates=ItemList([6])) == "About these items:\n- Alien (1979): year 1979"
    with pytest.raises(DataError, match="fields: the catalog of 'films' has no field 'genre'"):
        AttributesKnowledge(fields=["genre"]).fit(split)


def test_not_fitted_and_bad_items_are_one_readable_error(split: recai.Split) -> None:
    with pytest.raises(NotFittedError, match="knowledge-attributes.v1: not fitted"):
        AttributesKnowledge().knowledge(candidates=ItemList([1]))
    k = fitted(AttributesKnowledge(), split)
    with pytest.raises(DataError, match=r"candidates item 8 is not a catalog index \(0..7\)"):
        k.knowledge(candidates=ItemList([1, 8]))


# -- co-occurrence ----------------------------------------------------------------------------------
def test_cooccurrence_names_what_a_candidates_users_also_chose(split: recai.Split) -> None:
    k = fitted(CooccurrenceKnowledge(neighbours=3, min_count=1), split)
    text = k.knowledge(history=ItemList([2]), candidates=ItemList([0]))
    # Heat: 4 users; by cosine Collateral 0.707 and Fargo 0.707 (tie: lower index), Ronin 0.577
    assert text.splitlines()[1] == (
        "- Heat (1995): 4 users chose it; of them, 50% Collateral (2004) (this user chose it), "
        "50% Fargo (1996), 50% Ronin (1998) also chose those"
    )


def test_cooccurrence_by_count_and_min_count(split: recai.Split) -> None:
    k = fitted(CooccurrenceKnowledge(neighbours=5, min_count=2, measure="count"), split)
    # Ronin (3 users) shares 2 users with Heat only; everything else once
    text = k.knowledge(candidates=ItemList([1]))
    assert text.endswith(
        "- Ronin (1998): 3 users chose it; of them, 67% Heat (1995) also chose that"
    )


def test_cooccurrence_utility_is_closeness_to_the_history(split: recai.Split) -> None:
    k = fitted(CooccurrenceKnowledge(min_count=1), split)
    facts = k.facts(history=ItemList([3]), candidates=ItemList([0, 4]))
    by_item = {f.items[0]: f.utility for f in facts}
    assert by_item[4] == 1.0 and by_item[0] < 0.5  # Babe always with Toy Story; Heat once


# -- I2I ---------------------------------------------------------------------------------------------
def test_i2i_cosine_among_candidates(split: recai.Split) -> None:
    k = fitted(I2IKnowledge(recent=2, neighbours=2), split)
    text = k.knowledge(history=ItemList([3, 0]), candidates=ItemList([1, 2, 4, 6]))
    lines = text.splitlines()
    # most recent first: Heat -> Collateral 0.71, Ronin 0.58; Toy Story -> Babe 1.00
    assert lines[1] == (
        "- users who chose Heat (1995) also chose: Collateral (2004) (similarity 0.71); "
        "Ronin (1998) (similarity 0.58)"
    )
    assert (
        lines[2] == "- users who chose Toy Story (1995) also chose: Babe (1995) (similarity 1.00)"
    )


def test_i2i_counts_over_all_items_leave_the_history_out(split: recai.Split) -> None:
    k = fitted(I2IKnowledge(recent=1, neighbours=3, scope="all", measure="count"), split)
    text = k.knowledge(history=ItemList([2, 0]))
    assert text.splitlines()[1] == (
        "- users who chose Heat (1995) also chose: Ronin (1998) (2 users); Fargo (1996) (2 users)"
    )  # Collateral is in the history; Toy Story and Babe share one user only (min_count 2)


def test_i2i_from_a_rankers_item_to_item_scores(split: recai.Split) -> None:
    ranker = ScriptedRanker()
    k = fitted(I2IKnowledge(recent=1, neighbours=1, measure="ranker", ranker=ranker), split)
    text = k.knowledge(history=ItemList([0]), candidates=ItemList([1, 5]))
    assert text.splitlines()[1] == "- after Heat (1995), the model expects: Fargo (1996) (100%)"
    assert ranker.fitted_on == [split.fingerprint()]


class VectorRanker(ScriptedRanker):
    """ScriptedRanker with hand-made item vectors (set by fit): cosines to Heat (item 0) are
    Ronin 0.71, Collateral 0, Fargo 0.98, Aliens -1."""

    def fit(self, split):  # type: ignore[no-untyped-def]
        super().fit(split)
        v = np.zeros((8, 2))
        v[:, 1] = 1.0
        v[0], v[1], v[2], v[5], v[7] = [1, 0], [1, 1], [0, 1], [1, 0.2], [-1, 0]
        self.vectors = v

    def item_embeddings(self) -> np.ndarray:
        return self.vectors.copy()


def test_i2i_from_item_embeddings_cosine(split: recai.Split) -> None:
    ranker = VectorRanker()
    k = fitted(I2IKnowledge(recent=1, neighbours=3, measure="embedding", ranker=ranker), split)
    assert ranker.fitted_on[-1] == split.fingerprint()  # the model is fitted on this split
    text = k.knowledge(history=ItemList([0]), candidates=ItemList([1, 2, 5, 7]))
    # Collateral (cosine 0) and Aliens (-1) say nothing: no similarity
    assert text.splitlines()[1] == (
        "- closest to Heat (1995) in a recommender's learned item space: Fargo (1996) "
        "(cosine 0.98); Ronin (1998) (cosine 0.71)"
    )
    strict = I2IKnowledge(recent=1, measure="embedding", ranker=VectorRanker(), min_similarity=0.9)
    text = fitted(strict, split).knowledge(history=ItemList([0]), candidates=ItemList([1, 5]))
    assert text.splitlines()[1].endswith(": Fargo (1996) (cosine 0.98)")


def test_i2i_embedding_needs_item_vectors(split: recai.Split) -> None:
    with pytest.raises(ParamsError, match=r"ranker: .*ScriptedRanker has no item_embeddings") as e:
        I2IKnowledge(measure="embedding", ranker=ScriptedRanker())
    assert e.value.exit_code == 2
    if "itemknn.v1" in recai.get_plugin_manager().registry():  # as a recipe builds it
        knn = recai.create("ranker", "itemknn.v1")
        with pytest.raises(ParamsError, match=r"itemknn.v1 has no item_embeddings\(\)"):
            recai.create("knowledge_prompter", "knowledge-i2i.v1", measure="embedding", ranker=knn)

    class Short(VectorRanker):
        def item_embeddings(self) -> np.ndarray:
            return self.vectors[:5]

    with pytest.raises(DataError, match=r"shape \(5, 2\); expected one row per catalog item"):
        I2IKnowledge(measure="embedding", ranker=Short()).fit(split)


def test_i2i_from_a_fitted_bpr_models_embeddings(split: recai.Split) -> None:
    if "bpr.v1" not in recai.get_plugin_manager().registry():
        pytest.skip("bpr.v1 (recai-classic) is not installed")
    bpr = recai.create("ranker", "bpr.v1", factors=4, epochs=5, seed=0)
    k = fitted(I2IKnowledge(recent=1, neighbours=1, measure="embedding", ranker=bpr), split)
    # fitted on the training split only: user 0 trained on Heat, Ronin, Collateral, not the
    # held-out Fargo
    assert bpr.training_history(0).tolist() == [0, 1, 2]  # type: ignore[attr-defined]
    vectors = bpr.item_embeddings()  # type: ignore[attr-defined]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cands = np.array([3, 4, 5, 6, 7])
    cosine = unit[cands] @ unit[1]
    best = int(cands[np.argmax(cosine)])
    text = k.knowledge(history=ItemList([1]), candidates=ItemList(cands))
    assert cosine.max() > 0  # seed 0: some candidate is close to Ronin, so a fact is told
    assert text.splitlines()[1] == (
        f"- closest to Ronin (1998) in a recommender's learned item space: "
        f"{knowledgekit.TITLES[best]} (cosine {cosine.max():.2f})"
    )


def test_i2i_from_a_fitted_sasrec_models_item_vectors(split: recai.Split) -> None:
    if "sasrec.v1" not in recai.get_plugin_manager().registry():
        pytest.skip("sasrec.v1 (recai-classic) is not installed")
    sasrec = recai.create(
        "ranker", "sasrec.v1", hidden=8, heads=1, blocks=1, max_len=5, epochs=2, seed=0
    )
    k = fitted(I2IKnowledge(recent=2, neighbours=2, measure="embedding", ranker=sasrec), split)
    vectors = sasrec.item_embeddings()  # type: ignore[attr-defined]
    assert vectors.shape[0] == 8  # one row per catalog item (no padding row)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    history, cands = np.array([0, 6]), np.array([1, 2, 3, 4, 5, 7])
    facts = k.facts(history=ItemList(history), candidates=ItemList(cands))
    for fact in facts:  # each names its history item's two closest candidates, best first
        item = fact.items[0]
        cosine = unit[cands] @ unit[item]
        order = np.argsort(-cosine, kind="stable")[:2]
        order = order[cosine[order] > 0]
        assert fact.items[1:] == tuple(int(cands[j]) for j in order)
    assert {f.items[0] for f in facts} == {
        item for item in (6, 0) if (unit[cands] @ unit[item]).max() > 0
    }


def test_i2i_bad_params_are_named() -> None:
    with pytest.raises(ParamsError, match="ranker"):
        I2IKnowledge(measure="ranker")
    with pytest.raises(ParamsError, match="scope"):
        recai.create("knowledge_prompter", "knowledge-i2i.v1", scope="everything")
    with pytest.raises(ParamsError, match="neighbours"):
        I2IKnowledge(neighbours=0)
    with pytest.raises(ParamsError, match="ranker: measure = 'embedding' reads"):
        I2IKnowledge(measure="embedding")
    with pytest.raises(ParamsError, match="min_similarity: applies to measure = 'embedding'"):
        I2IKnowledge(min_similarity=0.5)


# -- U2I ---------------------------------------------------------------------------------------------
def test_u2i_tells_the_rankers_top_candidates_in_its_order(split: recai.Split) -> None:
    k = fitted(U2IKnowledge(ranker=ScriptedRanker(), top=2, label="SASRec"), split)
    text = k.knowledge(history=ItemList([0]), candidates=ItemList([1, 5, 7, 2]))
    assert text == (
        "SASRec ranks these candidates highest for this user:\n"
        "- rank 1 of 4: Fargo (1996)\n- rank 2 of 4: Aliens (1986)"
    )


def test_u2i_needs_a_ranker() -> None:
    with pytest.raises(ParamsError, match="ranker"):
        recai.create("knowledge_prompter", "knowledge-u2i.v1")


# -- recency -----------------------------------------------------------------------------------------
def test_recency_notes_last_items_focus_and_trends(split: recai.Split) -> None:
    k = fitted(RecencyKnowledge(recent=2, min_trend_count=1, fields=["genres"]), split)
    text = k.knowledge(history=ItemList([3, 4, 6, 7]), candidates=ItemList([0, 1, 3]))
    lines = text.splitlines()
    assert lines[1] == "- this user's last items, most recent first: Aliens (1986); Alien (1979)"
    assert lines[2] == "- genres of the last 2 items: Sci-Fi 2 (earlier history: Sci-Fi 0%)"
    # the trend window: the last 30 days of the log (days 22..52) hold 8 of its 17 events;
    # Toy Story's 2 events (days 30 and 40) are both inside: 100% >= 2 x 47%
    assert lines[3] == (
        "- Toy Story (1995) is trending: 100% of its interactions came in the last 30 days of "
        "the log (all items: 47%)"
    )
    assert len(lines) == 4  # Heat 1 of 4 and Ronin 1 of 3 inside: not trending
