"""recai's test kit, for in-repo and third-party plugins.

**Contract test classes**, one per role: subclass one in a ``Test*`` class, say which component
to test, and pytest runs every check the role promises::

    from recai.testing import RankerContract

    class TestMyRanker(RankerContract):
        name = "myranker.v1"          # registered name
        params = {"alpha": 0.5}       # params to build it with
        distribution = "recai-myranker"  # optional: the distribution that must provide it

**Fixtures** (registered with pytest automatically through the ``pytest11`` entry point of the
``recai`` distribution): ``recai_pm`` (a fresh plugin manager with only built-ins, installed as
the process-wide manager for the test), ``recai_installed_pm`` (a fresh manager that loads the
installed entry points), ``tiny_dataset`` and ``tiny_split`` (a small seeded dataset and its
leave-one-out split) and ``dataset_source`` (the tiny dataset as a ``recai.DatasetSource``, for
components that take a dataset). Without pytest, :func:`make_tiny_dataset` and
``recai.data.leave_one_out`` give the same data::

    >>> from recai.data import leave_one_out
    >>> split = leave_one_out(make_tiny_dataset())
    >>> split.describe(), split.dataset.n_items
    ('leave_one_out(order=time, ties=file)', 25)

Other splits by hand: ``recai.data.temporal_split(dataset, valid=0.1, test=0.2)``,
``recai.data.random_split(dataset, test=0.2, by="user", seed=1)``, or
``recai.data.Split(dataset, train=inter.select(mask), test=inter.select(~mask))`` from a
boolean mask over ``dataset.interactions`` (see ``recai.testing.pytest_plugin``).
"""

from __future__ import annotations

from typing import Any

from .helpers import (
    fake_distribution,
    fresh_plugin_manager,
    make_tiny_dataset,
    modules_imported_by_listing,
    use_plugin_manager,
)


def __getattr__(name: str) -> Any:
    # the contract classes need pytest; the helpers above do not
    if name.endswith("Contract"):
        import importlib

        contracts = importlib.import_module(".contracts", __name__)
        if name in contracts.__all__:
            return getattr(contracts, name)
    raise AttributeError(f"module 'recai.testing' has no attribute {name!r}")


__all__ = [
    "ComponentContract",
    "RankerContract",
    "RetrieverContract",
    "LLMBackendContract",
    "KnowledgePrompterContract",
    "ExplainerContract",
    "EvaluatorContract",
    "DatasetContract",
    "AgentContract",
    "fresh_plugin_manager",
    "use_plugin_manager",
    "make_tiny_dataset",
    "fake_distribution",
    "modules_imported_by_listing",
]
