"""Entry point of recai-serve: registers the ``recai serve`` command (imports only recai).

The command's module (:mod:`recai_serve.cli`, and with it Starlette and uvicorn) is imported
only when ``recai serve`` runs, so ``recai --help`` lists it without importing any of them.
"""

from __future__ import annotations

from collections.abc import Iterator

import recai


@recai.hookimpl
def recai_commands() -> Iterator[recai.CommandSpec]:
    yield recai.CommandSpec(
        name="serve",
        factory="recai_serve.cli:configure",
        summary="serve a recipe's agents (chat, sessions, REST, OpenAPI) or an LLM backend over the OpenAI API (loopback by default)",
    )
