"""Hook specifications: one hook per kind of component, and one for ``recai`` subcommands.

A plugin implements any of these with :data:`recai.hookimpl`; each returns (or yields) an iterable of
:class:`~recai.specs.ComponentSpec`. The role of a component is the hook that yields it; a component
playing two roles (a model that both ranks and retrieves) is yielded by both hooks under one name.

>>> import recai
>>> @recai.hookimpl
... def recai_rankers():
...     yield recai.ComponentSpec(name="mine.v1", factory="my_pkg.models:Mine", summary="My ranker.")
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .commands import CommandSpec
    from .specs import ComponentSpec

PROJECT = "recai"
"""The pluggy project name, which is also the entry-point group plugins register under."""

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def recai_llm_backends() -> Iterable[ComponentSpec]:
    """Chat models (:class:`recai.roles.LLMBackend`)."""


@hookspec
def recai_retrievers() -> Iterable[ComponentSpec]:
    """Item retrievers (:class:`recai.roles.Retriever`)."""


@hookspec
def recai_rankers() -> Iterable[ComponentSpec]:
    """Item rankers (:class:`recai.roles.Ranker`)."""


@hookspec
def recai_knowledge_prompters() -> Iterable[ComponentSpec]:
    """Knowledge prompters (:class:`recai.roles.KnowledgePrompter`)."""


@hookspec
def recai_explainers() -> Iterable[ComponentSpec]:
    """Explainers (:class:`recai.roles.Explainer`)."""


@hookspec
def recai_evaluators() -> Iterable[ComponentSpec]:
    """Evaluators (:class:`recai.roles.Evaluator`)."""


@hookspec
def recai_datasets() -> Iterable[ComponentSpec]:
    """Dataset loaders (:class:`recai.roles.DatasetSource`)."""


@hookspec
def recai_agents() -> Iterable[ComponentSpec]:
    """Conversational agents (:class:`recai.roles.Agent`)."""


@hookspec
def recai_commands() -> Iterable[CommandSpec]:
    """``recai`` subcommands (:class:`recai.commands.CommandSpec`): ``recai NAME ...``."""
