"""pytest fixtures of the recai test kit (loaded automatically through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..data import Dataset, Split, leave_one_out
from ..plugins import PluginManager
from .helpers import fresh_plugin_manager, make_tiny_dataset, use_plugin_manager


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
