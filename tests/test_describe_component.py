"""describe_component: the description that keys fits and caches, for spec-built and hand-built
components (a hand-built component's pydantic params are part of it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from pydantic import ConfigDict, Field

import recai
from recai.plugins import PluginManager
from recai.roles import describe_component
from recai.runtime import RunContext
from recai.specs import ComponentSpec, neutral


@pytest.fixture
def pm(recai_pm: PluginManager) -> PluginManager:
    return recai_pm


class WindowParams(recai.Params):
    window: int = Field(3, ge=1)
    base: recai.Ranker | None = None


class WindowRanker(recai.Configurable, recai.Ranker):
    """Counts items in a window of the history; saves and loads its counts (a fit to cache)."""

    Params = WindowParams
    fits = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counts: np.ndarray | None = None

    def fit(self, split: Any) -> None:
        type(self).fits += 1
        self._counts = split.train.item_counts().astype(float) * self.params.window

    def score(self, histories: Any, items: Any = None, *, users: Any = None) -> np.ndarray:
        assert self._counts is not None
        return np.tile(self._counts, (len(histories), 1))

    def save(self, directory: Path) -> None:
        np.save(Path(directory) / "counts.npy", self._counts)

    def load(self, directory: Path) -> None:
        self._counts = np.load(Path(directory) / "counts.npy")


class AnyParams(recai.Params):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    inner: Any = None


class HoldsAny(recai.Configurable, recai.Ranker):
    Params = AnyParams

    def score(self, histories: Any, items: Any = None, *, users: Any = None) -> np.ndarray:
        return np.zeros((len(histories), 1))


class Plain(recai.Ranker):
    def __init__(self, tag: str = "x") -> None:
        self.tag = tag

    def score(self, histories: Any, items: Any = None, *, users: Any = None) -> np.ndarray:
        return np.zeros((len(histories), 1))


def test_hand_built_components_with_other_params_get_other_artifact_folders(
    tmp_path: Path, tiny_split: Any
) -> None:
    ctx = RunContext(tmp_path, progress=False)
    WindowRanker.fits = 0
    small, big = WindowRanker(window=2), WindowRanker(window=5)
    ctx.fit(small, tiny_split)
    ctx.fit(big, tiny_split)
    folders = sorted(p.name for p in (tmp_path / "artifacts").iterdir())
    assert WindowRanker.fits == 2 and len(folders) == 2
    assert not np.array_equal(small._counts, big._counts)  # big did not load small's fit
    again = WindowRanker(window=5)
    RunContext(tmp_path, progress=False).fit(again, tiny_split)
    assert WindowRanker.fits == 2 and np.array_equal(again._counts, big._counts)  # reused


def test_hand_built_params_are_in_the_description() -> None:
    d = describe_component(WindowRanker(window=4))
    assert d == {
        "class": f"{__name__}.WindowRanker",
        "attrs": {},
        "params": {"window": 4, "base": None},
    }


def test_nested_components_in_params_are_described_not_dumped(
    pm: PluginManager, tiny_split: Any
) -> None:
    spec_built = recai.create("ranker", "random.v1", seed=1)
    outer = WindowRanker(window=2, base=spec_built)
    assert describe_component(outer)["params"]["base"] == describe_component(spec_built)
    a = WindowRanker(base=WindowRanker(window=1))
    b = WindowRanker(base=WindowRanker(window=9))
    assert describe_component(a)["params"]["base"]["params"]["window"] == 1
    fp = tiny_split.fingerprint()
    ctx = RunContext(Path("unused"), progress=False)
    assert ctx.fingerprint(a, fp) != ctx.fingerprint(b, fp)
    # a component in a field typed Any (not a role class) is described the same way
    held = HoldsAny(inner=WindowRanker(window=7))
    assert describe_component(held)["params"]["inner"] == describe_component(WindowRanker(window=7))


def test_spec_built_and_paramless_descriptions_do_not_change(pm: PluginManager) -> None:
    # the exact forms before params were added for hand-built components: existing artifact
    # folders of recipe components (and of hand-built objects without params) keep their keys
    rnd = recai.create("ranker", "random.v1", seed=1)
    assert describe_component(rnd) == {
        "use": "random.v1",
        "params": {"seed": 1, "n_items": None},
    }
    assert describe_component(Plain(tag="a")) == {
        "class": f"{__name__}.Plain",
        "attrs": {"tag": "a"},
    }


class FastParams(recai.Params):
    window: int = Field(3, ge=1)
    threads: int = neutral(1, ge=1)


class Fast(recai.Configurable, recai.Ranker):
    """A Configurable whose ``threads`` param changes how fast it runs, not what it answers."""

    Params = FastParams

    def score(self, histories: Any, items: Any = None, *, users: Any = None) -> np.ndarray:
        return np.zeros((len(histories), 1))


class FastBySignature(recai.Ranker):
    def __init__(
        self, window: int = 3, threads: Annotated[int | None, neutral(ge=1)] = None
    ) -> None:
        self.window, self.threads = window, threads

    def score(self, histories: Any, items: Any = None, *, users: Any = None) -> np.ndarray:
        return np.zeros((len(histories), 1))


def test_neutral_params_are_left_out_of_every_description(tiny_split: Any) -> None:
    # hand-built, params model: threads does not change the key, window does
    assert describe_component(Fast(threads=1)) == describe_component(Fast(threads=8))
    assert describe_component(Fast(window=2)) != describe_component(Fast(window=3))
    assert "threads" not in describe_component(Fast(threads=8))["params"]
    # hand-built, params read from the constructor's signature: the attribute is left out too
    assert describe_component(FastBySignature(threads=4)) == {
        "class": f"{__name__}.FastBySignature",
        "attrs": {"window": 3},
    }
    # built from a spec (as a recipe builds it): the same
    spec = ComponentSpec("fast-by-signature.v1", FastBySignature, "test")
    one, two = spec.build({"threads": 1}), spec.build({"threads": 2, "window": 3})
    assert (
        describe_component(one)
        == describe_component(two)
        == {
            "use": "fast-by-signature.v1",
            "params": {"window": 3},
        }
    )
    assert describe_component(spec.build({"window": 5}))["params"] == {"window": 5}
    # so a saved fit is found again under other threads
    fp = tiny_split.fingerprint()
    ctx = RunContext(Path("unused"), progress=False)
    assert ctx.fingerprint(Fast(threads=1), fp) == ctx.fingerprint(Fast(threads=3), fp)
    # the bound still holds
    with pytest.raises(recai.ParamsError):
        spec.build({"threads": 0})
