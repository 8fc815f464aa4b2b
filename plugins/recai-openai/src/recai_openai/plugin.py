"""Entry point of recai-openai: registers the LLM backends (imports nothing heavy).

The params models come from :mod:`recai_openai.params` (pydantic and recai only), imported when
recai asks for the backends; the backends themselves (and ``openai``) load when one is built.
"""

from __future__ import annotations

import recai


@recai.hookimpl
def recai_llm_backends():
    from recai_openai.params import AzureOpenAIParams, OpenAIParams

    yield recai.ComponentSpec(
        name="openai.v1",
        factory="recai_openai.backend:OpenAIBackend",
        params=OpenAIParams,
        summary="Any OpenAI-compatible chat server (OpenAI, vLLM, llama.cpp, Ollama, recai serve): "
        "retries, concurrency, costs, response cache.",
    )
    yield recai.ComponentSpec(
        name="azure-openai.v1",
        factory="recai_openai.backend:AzureOpenAIBackend",
        params=AzureOpenAIParams,
        summary="An Azure OpenAI deployment (endpoint, deployment, api-version), with the same "
        "retries, costs and cache as openai.v1.",
    )
