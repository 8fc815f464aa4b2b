"""The test kit's fixtures work in any test (no conftest.py), and a split can be built by hand as
recai.testing.pytest_plugin's docstring shows."""

from __future__ import annotations

import numpy as np

import recai
from recai.baselines import RandomRecommender
from recai.data import Dataset, Split, leave_one_out, random_split, temporal_split
from recai.plugins import PluginManager
from recai.roles import DatasetSource


def test_dataset_source_is_the_tiny_dataset(
    dataset_source: DatasetSource, tiny_dataset: Dataset
) -> None:
    assert isinstance(dataset_source, DatasetSource)
    assert dataset_source.dataset() is tiny_dataset


def test_dataset_source_goes_where_a_component_takes_a_dataset(
    dataset_source: DatasetSource, recai_pm: PluginManager, tiny_dataset: Dataset
) -> None:
    filtered = recai.create("dataset", "filtered.v1", source=dataset_source, k_core=2)
    data = filtered.dataset()
    assert data.name.startswith(tiny_dataset.name) and len(data.interactions) > 0


def test_tiny_split_is_leave_one_out_of_tiny_dataset(tiny_split: Split, tiny_dataset) -> None:
    assert tiny_split.dataset is tiny_dataset
    assert tiny_split.fingerprint() == leave_one_out(tiny_dataset).fingerprint()


def test_splits_by_hand_as_the_docstring_shows(tiny_dataset: Dataset) -> None:
    split = temporal_split(tiny_dataset, valid=0.1, test=0.2)
    assert split.train.timestamps.max() < split.test.timestamps.min()
    loo = leave_one_out(tiny_dataset)
    assert len(loo.test) == tiny_dataset.n_users  # every tiny user has at least two events
    held = random_split(tiny_dataset, test=0.2, by="user", seed=1)
    assert len(held.train) + len(held.valid) + len(held.test) == len(tiny_dataset.interactions)
    inter = tiny_dataset.interactions
    early = inter.timestamps < inter.timestamps.max()
    mine = Split(tiny_dataset, train=inter.select(early), test=inter.select(~early))
    assert len(mine.train) + len(mine.test) == len(inter) and len(mine.test) >= 1
    assert mine.valid is None and mine.protocol == "custom"
    # a model fits on a hand-made split like on any other
    model = RandomRecommender(seed=0)
    model.fit(mine)
    assert np.asarray(model.score([mine.train.history(0)])).shape == (1, tiny_dataset.n_items)
