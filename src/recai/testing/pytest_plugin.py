"""pytest fixtures of the recai test kit (loaded automatically through the ``pytest11`` entry point).

Any test can ask for them by name, no ``conftest.py`` needed: ``recai_pm``, ``recai_installed_pm``,
``tiny_dataset``, ``tiny_split`` and ``dataset_source``. Inside a contract class
(``recai.testing.RankerContract`` and friends) ``dataset``, ``split`` and ``dataset_source``
are the class's own, built from its ``dataset`` fixture.

A split other than leave-one-out is built by hand from a dataset, with the protocols of
:mod:`recai.data` or from explicit rows::

    from recai.data import Split, leave_one_out, random_split, temporal_split

    def test_on_a_temporal_split(tiny_dataset):
        split = temporal_split(tiny_dataset, valid=0.1, test=0.2)  # one global time line
        loo = leave_one_out(tiny_dataset)  # per user: last event test, the one before valid
        held = random_split(tiny_dataset, test=0.2, by="user", seed=1)
        inter = tiny_dataset.interactions
        early = inter.timestamps < inter.timestamps.max()  # a boolean mask over the events
        mine = Split(tiny_dataset, train=inter.select(early), test=inter.select(~early))
        ...

``Split(dataset, train, test, valid=None)`` takes :class:`~recai.data.Interactions` of the same
dataset (``select`` keeps rows by mask or index); ``split.valid`` is what models early-stop on.

Every test starts and ends with no registered secrets (:func:`recai.secrets.forget_secrets`):
loading a recipe registers the values it took from ``${ENV}`` process-wide, and a value left
by one test would be redacted from the output of the next.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .. import secrets as _secrets
from ..data import Dataset, Split, leave_one_out
from ..plugins import PluginManager
from ..roles import DatasetSource
from .helpers import fresh_plugin_manager, make_tiny_dataset, use_plugin_manager


@pytest.fixture(autouse=True)
def _recai_no_registered_secrets() -> Iterator[None]:
    _secrets.forget_secrets()
    yield
    _secrets.forget_secrets()


@pytest.fixture
def recai_pm() -> Iterator[PluginManager]:
    """A fresh plugin manager with only the built-ins, installed as the process-wide manager.

    Register test plugins with ``recai_pm.register(module_or_object)``.
    """
    pm = fresh_plugin_manager()
    with use_plugin_manager(pm):
        yield pm


@pytest.fixture
def recai_installed_pm() -> Iterator[PluginManager]:
    """A fresh manager that loads the installed plugins through their entry points."""
    pm = fresh_plugin_manager(autoload=True)
    with use_plugin_manager(pm):
        yield pm


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    """30 users, 25 items, about 300 events; seeded (do not modify it in a test)."""
    return make_tiny_dataset()


@pytest.fixture(scope="session")
def tiny_split(tiny_dataset: Dataset) -> Split:
    """Leave-one-out split of :func:`tiny_dataset`."""
    return leave_one_out(tiny_dataset)


@pytest.fixture(scope="session")
def dataset_source(tiny_dataset: Dataset) -> DatasetSource:
    """:func:`tiny_dataset` as a :class:`~recai.DatasetSource`, for components whose params take
    a dataset (``entry.build({"dataset": dataset_source})``, ``Cls(dataset=dataset_source)``)."""
    return DatasetSource.of(tiny_dataset)
