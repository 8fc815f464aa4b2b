"""Entry point of recai-openai: registers the LLM backends (imports nothing heavy)."""

from __future__ import annotations

import recai


@recai.hookimpl
def recai_llm_backends():
    yield recai.ComponentSpec(
        name="openai.v1",
        factory="recai_openai.backend:OpenAIBackend",
        summary="Any OpenAI-compatible chat server (OpenAI, vLLM, llama.cpp, Ollama, recai serve): "
        "retries, concurrency, costs, response cache.",
    )
    yield recai.ComponentSpec(
        name="azure-openai.v1",
        factory="recai_openai.backend:AzureOpenAIBackend",
        summary="An Azure OpenAI deployment (endpoint, deployment, api-version), with the same "
        "retries, costs and cache as openai.v1.",
    )
