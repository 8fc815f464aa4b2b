"""The save/load round trip of the Ranker and Retriever contracts: a component that saves and loads
itself must score and retrieve alike after ``load`` into a fresh object, as on a cached run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import recai
from recai.data import Split
from recai.testing import RankerContract, RetrieverContract, make_tiny_dataset
from recai.types import ItemList, Query


class Counts(recai.Ranker, recai.Retriever):
    """Popularity (training counts) that saves and loads itself: the protocol done right."""

    def __init__(self, smoothing: float = 0.0):
        self.smoothing = smoothing
        self._counts: np.ndarray | None = None

    def fit(self, split: Split) -> None:
        self._counts = split.train.item_counts() + self.smoothing

    def score(self, histories, items=None, *, users=None):
        counts = self._fitted()
        s = np.tile(counts, (len(histories), 1)).astype(float)
        if items is None:
            return s
        items = np.asarray(items)
        if items.size and (items.min() < 0 or items.max() >= len(counts)):
            raise recai.DataError("candidate outside the catalog")
        return s[:, items] if items.ndim == 1 else np.take_along_axis(s, items, axis=1)

    def retrieve(self, query: Query, k: int = 10, *, candidates: ItemList | None = None):
        scores = self.score([np.zeros(0, dtype=np.int64)])[0]
        ranked = ItemList.from_scores(scores, None)
        if candidates is not None:
            ranked = ranked.restrict(candidates.ids)
        return ranked.top(k)

    def _fitted(self) -> np.ndarray:
        if self._counts is None:
            raise RuntimeError("not fitted")
        return self._counts

    def save(self, directory: Path) -> None:
        np.save(Path(directory) / "counts.npy", self._fitted())

    def load(self, directory: Path) -> None:
        self._counts = np.load(Path(directory) / "counts.npy")


class Forgetful(Counts):
    """Loads without the smoothing fit added: scores after load differ from the fitted ones."""

    def load(self, directory: Path) -> None:
        self._counts = np.load(Path(directory) / "counts.npy") - self.smoothing


class ByClass(Counts):
    """The protocol misread: load as a classmethod returning a new object."""

    @classmethod
    def load(cls, directory: Path) -> ByClass:  # type: ignore[override]
        obj = cls()
        obj._counts = np.load(Path(directory) / "counts.npy")
        return obj


class SaveOnly(Counts):
    load = None  # type: ignore[assignment]


class Plugin:
    @recai.hookimpl
    def recai_rankers(self):
        yield recai.ComponentSpec(name="counts.v1", factory=Counts, summary="Counts.")

    @recai.hookimpl
    def recai_retrievers(self):
        yield recai.ComponentSpec(name="counts.v1", factory=Counts, summary="Counts.")


class TestCountsRanker(RankerContract):
    """The whole contract, round trip included, passes for a component that does it right."""

    name = "counts.v1"
    params = {"smoothing": 0.5}
    plugin = Plugin()


class TestCountsRetriever(RetrieverContract):
    name = "counts.v1"
    params = {"smoothing": 0.5}
    plugin = Plugin()


class _Request:
    """Stands in for pytest's ``request``: serves ``fresh_component``."""

    def __init__(self, fresh: Any):
        self.fresh = fresh

    def getfixturevalue(self, name: str) -> Any:
        assert name == "fresh_component"
        return self.fresh


@pytest.fixture(scope="module")
def split() -> Split:
    return recai.data.leave_one_out(make_tiny_dataset())


def fitted(cls: type[Counts], split: Split) -> Counts:
    obj = cls(smoothing=0.5)
    obj.fit(split)
    return obj


def round_trip(contract: type, cls: type[Counts], split: Split, tmp_path: Path) -> None:
    check = contract()
    check.name = f"{cls.__name__.lower()}.v1"
    request = _Request(cls(smoothing=0.5))
    if contract is RankerContract:
        check.test_save_load_round_trip(fitted(cls, split), split, request, tmp_path)
    else:
        check.test_save_load_round_trip(fitted(cls, split), split.dataset, request, tmp_path)


def test_the_round_trip_passes_for_a_faithful_load(split: Split, tmp_path: Path) -> None:
    round_trip(RankerContract, Counts, split, tmp_path / "r")
    round_trip(RetrieverContract, Counts, split, tmp_path / "q")


def test_a_load_that_does_not_restore_the_scores_fails_the_ranker_contract(
    split: Split, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError) as failed:
        round_trip(RankerContract, Forgetful, split, tmp_path)
    message = str(failed.value)
    assert "forgetful.v1: after save() and load() into a new object, full-catalog scores " in (
        message
    )
    assert "load(directory) must restore everything scoring uses" in message


def test_a_load_that_does_not_restore_the_scores_fails_the_retriever_contract(
    split: Split, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match=r"forgetful.v1: after save\(\) and load\(\) .* other"):
        round_trip(RetrieverContract, Forgetful, split, tmp_path)


def test_load_as_a_classmethod_is_refused_with_the_reason(split: Split, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"ByClass.load is a classmethod: the runtime calls"):
        round_trip(RankerContract, ByClass, split, tmp_path)


def test_save_without_load_is_refused(split: Split, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"SaveOnly has save\(\) but no load\(\)"):
        round_trip(RankerContract, SaveOnly, split, tmp_path)


def test_components_without_save_and_load_skip_it(split: Split, tmp_path: Path) -> None:
    class Plain(recai.Ranker):
        def score(self, histories, items=None, *, users=None):
            return np.zeros((len(histories), 3))

    with pytest.raises(pytest.skip.Exception, match="no save\\(\\)/load\\(\\)"):
        RankerContract().test_save_load_round_trip(Plain(), split, _Request(None), tmp_path)
