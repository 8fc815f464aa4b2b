"""Saved fits of the knowledge types other than kgpaths (attributes, cooccurrence, i2i, u2i,
recency): ``save`` writes the fit atomically with the catalog's and the data's fingerprints,
``load`` into a fresh prompter (no split) writes exactly the text the fitted one writes, and
``recai run``'s context loads it instead of fitting on the next run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from knowledgekit import film_split
from test_facts_knowledge import ScriptedRanker, VectorRanker

import recai
from recai.errors import DataError
from recai.runtime import RunContext
from recai.types import ItemList
from recai_knowledge.attributes import AttributesKnowledge
from recai_knowledge.base import FactPrompter, NotFittedError
from recai_knowledge.collab import CooccurrenceKnowledge, I2IKnowledge, U2IKnowledge
from recai_knowledge.recency import RecencyKnowledge


@pytest.fixture(scope="module")
def split() -> recai.Split:
    return film_split()


#: Each type in the forms whose fitted state differs (a fresh ranker per call: it is fitted).
MAKERS: dict[str, Callable[[], FactPrompter]] = {
    "attributes": lambda: AttributesKnowledge(),
    "attributes-genres": lambda: AttributesKnowledge(fields=["genres"], items="both"),
    "cooccurrence-cosine": lambda: CooccurrenceKnowledge(neighbours=2, min_count=1),
    "cooccurrence-count": lambda: CooccurrenceKnowledge(measure="count", min_count=1),
    "i2i-cosine": lambda: I2IKnowledge(recent=3, min_count=1),
    "i2i-count-all": lambda: I2IKnowledge(measure="count", scope="all", min_count=1),
    "i2i-embedding": lambda: I2IKnowledge(measure="embedding", ranker=VectorRanker()),
    "u2i": lambda: U2IKnowledge(ranker=ScriptedRanker(), top=3),
    "recency": lambda: RecencyKnowledge(recent=2, min_lift=0.0, trend_days=25, trend_ratio=1.0),
}


def texts(k: FactPrompter, split: recai.Split) -> list[str]:
    """The knowledge for each item as the history, every other item a candidate, and for each
    training user's history with every item a candidate."""
    n = split.dataset.n_items
    out = []
    for i in range(n):
        others = np.array([j for j in range(n) if j != i])
        out.append(k.knowledge(history=ItemList([i]), candidates=ItemList(others)))
    for user in np.unique(split.train.users).tolist():
        hist = split.train.items[split.train.users == user]
        out.append(k.knowledge(history=ItemList(hist), candidates=ItemList(np.arange(n))))
    return out


def reloaded(make: Callable[[], FactPrompter], folder: Path) -> FactPrompter:
    """A fresh prompter loaded from ``folder``; a ranker it reads is fitted apart, as the
    runtime does with a recipe's components."""
    k = make()
    ranker = getattr(k.params, "ranker", None)
    if ranker is not None:
        ranker.fit(film_split())
    k.load(folder)
    return k


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_a_loaded_fit_writes_the_same_text(kind: str, split: recai.Split, tmp_path: Path) -> None:
    make = MAKERS[kind]
    fitted = make()
    fitted.fit(split)
    fitted.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.json", "fit.npz"]
    meta = json.loads((tmp_path / "fit.json").read_text())
    assert meta["name"] == fitted.name and meta["format"] == 1
    assert meta["catalog"] == split.dataset.catalog.fingerprint()
    assert meta["data"] == split.fingerprint()
    loaded = reloaded(make, tmp_path)
    before = texts(fitted, split)
    assert sum(bool(t) for t in before) >= 5  # the comparison is not of empty texts
    assert texts(loaded, split) == before


def test_the_catalog_fields_a_type_reads_come_back_with_their_types(
    split: recai.Split, tmp_path: Path
) -> None:
    fitted = AttributesKnowledge()
    fitted.fit(split)
    fitted.save(tmp_path)
    loaded = reloaded(AttributesKnowledge, tmp_path)
    cat, orig = loaded.catalog, split.dataset.catalog
    assert cat.fingerprint() == orig.fingerprint()
    assert cat.titles.tolist() == orig.titles.tolist()
    assert cat.fields["genres"].tolist() == orig.fields["genres"].tolist()  # tuples stay tuples
    assert cat.fields["genres"].dtype == object
    assert cat.fields["year"].dtype == orig.fields["year"].dtype
    assert loaded.facts(history=ItemList([0]), candidates=ItemList([1, 5])) == fitted.facts(
        history=ItemList([0]), candidates=ItemList([1, 5])
    )


def test_the_runtime_loads_the_fit_instead_of_fitting(
    split: recai.Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = RunContext(tmp_path, progress=False).fit(CooccurrenceKnowledge(min_count=1), split)
    (art,) = list((tmp_path / "artifacts").iterdir())
    assert (art / "DONE").exists() and (art / "fit.npz").exists()

    def no_fit(self: Any, split: Any) -> None:
        raise AssertionError("the saved fit is loaded, not fitted again")

    monkeypatch.setattr(CooccurrenceKnowledge, "_fit", no_fit)
    second = RunContext(tmp_path, progress=False).fit(CooccurrenceKnowledge(min_count=1), split)
    assert texts(second, split) == texts(first, split)
    # built by hand with other params: its own key (describe_component includes the params), so
    # it is fitted into a folder of its own; a load by hand of the other params' folder is refused
    monkeypatch.undo()
    RunContext(tmp_path, progress=False).fit(CooccurrenceKnowledge(min_count=2), split)
    assert len(list((tmp_path / "artifacts").iterdir())) == 2
    with pytest.raises(DataError, match=r"other params \(min_count 1 there, 2 here\)"):
        CooccurrenceKnowledge(min_count=2).load(art)


def test_the_files_are_written_atomically(
    split: recai.Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted = I2IKnowledge(min_count=1)
    fitted.fit(split)

    def fails(*args: Any, **kwargs: Any) -> None:
        args[0].write(b"PK partial")  # a writer dying halfway
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", fails)
    with pytest.raises(OSError, match="No space left"):
        fitted.save(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no partial fit.npz, no temporary file, no fit.json


def test_an_unfitted_prompter_has_nothing_to_save(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError, match="not fitted; nothing to save"):
        RecencyKnowledge().save(tmp_path)


def test_a_damaged_foreign_or_mismatched_save_is_a_data_error(
    split: recai.Split, tmp_path: Path
) -> None:
    fitted = CooccurrenceKnowledge(neighbours=2, min_count=1)
    fitted.fit(split)
    fitted.save(tmp_path)
    # another type's folder
    with pytest.raises(DataError, match=r"is 'knowledge-cooccurrence.v1' format 1; this reads"):
        RecencyKnowledge().load(tmp_path)
    # the same type with other params
    with pytest.raises(DataError, match=r"other params \(neighbours 2 there, 3 here\)"):
        CooccurrenceKnowledge(neighbours=3, min_count=1).load(tmp_path)
    # a state that does not match the params (a damaged or hand-edited fit.json)
    meta = json.loads((tmp_path / "fit.json").read_text())
    (tmp_path / "fit.json").write_text(json.dumps({**meta, "params": None}))
    with pytest.raises(DataError, match=r"fitted with other params: the neighbour table"):
        CooccurrenceKnowledge(neighbours=3, min_count=1).load(tmp_path)
    # fit.json of another catalog
    meta = json.loads((tmp_path / "fit.json").read_text())
    (tmp_path / "fit.json").write_text(json.dumps({**meta, "catalog": "0123456789abcdef"}))
    with pytest.raises(DataError, match=r"not the '0123456789abcdef' it was fitted on"):
        CooccurrenceKnowledge(neighbours=2, min_count=1).load(tmp_path)
    (tmp_path / "fit.json").write_text(json.dumps(meta))
    CooccurrenceKnowledge(neighbours=2, min_count=1).load(tmp_path)  # restored: loads again
    (tmp_path / "fit.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"cannot read the saved fit in .*delete the folder"):
        CooccurrenceKnowledge(neighbours=2, min_count=1).load(tmp_path)
    with pytest.raises(DataError, match="cannot read the saved fit"):
        AttributesKnowledge().load(tmp_path / "nothing")
