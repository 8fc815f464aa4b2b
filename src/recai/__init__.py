"""recai: LLMs and classic recommenders as one plugin framework.

The kernel defines roles, the plugin registry, recipes and shared data types; every technique is a
plugin. The public API, in three lines::

    recipe = recai.load_recipe("examples/quickstart.toml")   # read + check the shape
    built = recai.build(recipe)                               # resolve names, build components
    ranker = recai.create("ranker", "random.v1", seed=3)      # one component, no recipe

``import recai`` is cheap: names below are imported on first use, and no heavy library (torch,
transformers, faiss, openai, scikit-learn) is ever imported by the kernel.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from .commands import CommandSpec
    from .data import Catalog, Dataset, Interactions, Split
    from .errors import (
        DataError,
        DuplicateComponentError,
        ParamsError,
        PluginLoadError,
        QueryError,
        RecaiError,
        RecipeError,
        RoleMismatchError,
        UnknownComponentError,
        UnknownIdError,
    )
    from .hookspecs import hookimpl
    from .plugins import PluginManager, get_plugin_manager
    from .progress import Progress
    from .recipe import Built, Recipe, build, load_recipe
    from .roles import (
        Agent,
        DatasetSource,
        Evaluator,
        Explainer,
        KnowledgePrompter,
        LLMBackend,
        Ranker,
        Retriever,
        Role,
    )
    from .runtime import RunContext, ensure_fitted, run
    from .specs import ComponentSpec, Params
    from .types import Completion, Explanation, ItemList, Message, Query, Report, Usage

_LAZY = {
    "hookimpl": "hookspecs",
    "ComponentSpec": "specs",
    "CommandSpec": "commands",
    "Params": "specs",
    "PluginManager": "plugins",
    "get_plugin_manager": "plugins",
    "Role": "roles",
    "LLMBackend": "roles",
    "Retriever": "roles",
    "Ranker": "roles",
    "KnowledgePrompter": "roles",
    "Explainer": "roles",
    "Evaluator": "roles",
    "DatasetSource": "roles",
    "Agent": "roles",
    "ItemList": "types",
    "Message": "types",
    "Completion": "types",
    "Usage": "types",
    "Query": "types",
    "Explanation": "types",
    "Report": "types",
    "Catalog": "data",
    "Interactions": "data",
    "Dataset": "data",
    "Split": "data",
    "Recipe": "recipe",
    "Built": "recipe",
    "load_recipe": "recipe",
    "build": "recipe",
    "RunContext": "runtime",
    "run": "runtime",
    "ensure_fitted": "runtime",
    "RecaiError": "errors",
    "RecipeError": "errors",
    "UnknownComponentError": "errors",
    "DuplicateComponentError": "errors",
    "PluginLoadError": "errors",
    "RoleMismatchError": "errors",
    "ParamsError": "errors",
    "DataError": "errors",
    "QueryError": "errors",
    "UnknownIdError": "errors",
    "Progress": "progress",
}

__all__ = ["__version__", "create", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'recai' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def create(role: Any, name: str, /, **params: Any) -> Any:
    """Build one registered component without a recipe.

    ``role`` is a role name (``"ranker"``) or class (``recai.Ranker``); ``params`` are checked
    against the component's params model, and role-typed params take objects.

    >>> rnd = create("ranker", "random.v1", seed=7, n_items=10)
    >>> len(rnd.rank([1, 2], k=3))
    3
    """
    from .plugins import get_plugin_manager

    return get_plugin_manager().create(role, name, **params)
