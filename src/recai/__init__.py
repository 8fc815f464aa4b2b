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
    # `Name as Name`: re-exported for type checkers (at run time the names load lazily below)
    from .commands import CommandSpec as CommandSpec
    from .data import (
        Catalog as Catalog,
        Dataset as Dataset,
        Interactions as Interactions,
        Split as Split,
    )
    from .errors import (
        DataError as DataError,
        DuplicateComponentError as DuplicateComponentError,
        ParamsError as ParamsError,
        PluginLoadError as PluginLoadError,
        QueryError as QueryError,
        RecaiError as RecaiError,
        RecipeError as RecipeError,
        RoleMismatchError as RoleMismatchError,
        UnknownComponentError as UnknownComponentError,
        UnknownIdError as UnknownIdError,
    )
    from .hookspecs import hookimpl as hookimpl
    from .plugins import PluginManager as PluginManager, get_plugin_manager as get_plugin_manager
    from .progress import Progress as Progress
    from .recipe import Built as Built, Recipe as Recipe, build as build, load_recipe as load_recipe
    from .roles import (
        Agent as Agent,
        DatasetSource as DatasetSource,
        Evaluator as Evaluator,
        Explainer as Explainer,
        KnowledgePrompter as KnowledgePrompter,
        LLMBackend as LLMBackend,
        Ranker as Ranker,
        Retriever as Retriever,
        Role as Role,
    )
    from .runtime import RunContext as RunContext, ensure_fitted as ensure_fitted, run as run
    from .specs import ComponentSpec as ComponentSpec, Params as Params
    from .types import (
        AgentTurn as AgentTurn,
        Completion as Completion,
        Explanation as Explanation,
        ItemList as ItemList,
        Message as Message,
        Query as Query,
        Report as Report,
        ToolCall as ToolCall,
        Usage as Usage,
    )

_LAZY = {
    "hookimpl": "hookspecs",
    "ComponentSpec": "specs",
    "CommandSpec": "commands",
    "Params": "specs",
    "Configurable": "specs",
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
    "ToolCall": "types",
    "Usage": "types",
    "Query": "types",
    "Explanation": "types",
    "Report": "types",
    "AgentTurn": "types",
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
