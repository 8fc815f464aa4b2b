"""The params of ``openai.v1`` and ``azure-openai.v1``, declared once.

:class:`ClientParams` holds the settings both backends share (timeouts, retries, concurrency,
prices, cache, JSON answers); :class:`OpenAIParams` adds the server (``model``, ``base_url``) and
:class:`AzureOpenAIParams` the Azure deployment (``deployment``, ``endpoint``, ``api_version``).
The specs in :mod:`recai_openai.plugin` hand these models to recai, so recipes are checked
against them (every problem at once, with its key path), ``recai recipe schema`` describes them,
and the backends' constructors validate their keyword arguments with the same models.

Keys are never params: ``api_key_env`` *names* the environment variable that holds the key, and
a value shaped like a key where a name or URL belongs is refused without being repeated.

This module imports pydantic and recai only (recai imports it to list components).

>>> OpenAIParams(model="gpt-4o-mini").max_retries
4
>>> AzureOpenAIParams(deployment="gpt4o-prod").api_key_env
'AZURE_OPENAI_API_KEY'
>>> sorted(set(AzureOpenAIParams.model_fields) - set(OpenAIParams.model_fields))
['api_version', 'deployment', 'endpoint']
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from recai.secrets import BaseURL, EnvName, ModelName
from recai.specs import Params

from .accounting import ModelPrice

__all__ = ["ClientParams", "OpenAIParams", "AzureOpenAIParams"]

DAY = 86_400.0
"""The longest wait any setting may ask for, in seconds."""


class ClientParams(Params):
    """Settings shared by every backend of this package."""

    api_key_env: EnvName = Field(
        "OPENAI_API_KEY",
        description="NAME of the environment variable holding the API key (never the key "
        "itself); a server other than OpenAI's may need none",
    )
    timeout: float = Field(
        60.0,
        gt=0,
        le=DAY,
        description="seconds to wait for an answer (for streams: between chunks); at most a day",
    )
    connect_timeout: float = Field(
        10.0, gt=0, le=DAY, description="seconds to wait for a connection; at most a day"
    )
    max_retries: int = Field(
        4,
        ge=0,
        le=100,
        description="retries of a request that failed with HTTP 408, 409, 429 or 5xx, a timeout "
        "or a connection error (0: none)",
    )
    backoff_base: float = Field(
        0.5,
        ge=0,
        le=DAY,
        description="seconds: the wait before retry n is drawn from [b/2, b], "
        "b = min(backoff_max, backoff_base * 2^(n-1))",
    )
    backoff_max: float = Field(30.0, ge=0, le=DAY, description="seconds: the longest backoff wait")
    max_retry_after: float = Field(
        120.0,
        ge=0,
        le=DAY,
        description="seconds: the longest Retry-After honoured; a server asking for more gets an "
        "error, not a retry",
    )
    max_concurrency: int = Field(
        8,
        ge=1,
        le=1024,
        description="requests in flight at once, from all threads using the backend",
    )
    prices: dict[str, ModelPrice] | None = Field(
        None,
        description="US dollars per million tokens by model: {model: {input, output}}; "
        "unpriced models are counted, not costed",
    )
    cache: str | None = Field(
        None,
        description="path of a SQLite file of answers keyed by the whole request (none: no cache)",
    )
    json_mode: Literal["auto", "schema", "object", "prompt"] = Field(
        "auto",
        description="how JSON answers are asked for: response_format with the schema ('schema'), "
        "JSON mode plus the schema in the prompt ('object'), the prompt only ('prompt'), or "
        "'schema' falling back to 'prompt' when the server refuses it ('auto')",
    )
    json_strict: bool = Field(False, description="OpenAI's strict flag for json_schema answers")
    json_repairs: int = Field(
        2,
        ge=0,
        le=100,
        description="how many times an invalid JSON answer is sent back to be corrected",
    )
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens",
        description="the request field for max_tokens (newer OpenAI models take "
        "max_completion_tokens)",
    )
    stream_usage: bool = Field(
        True, description="ask streams for a final usage chunk (stream_options.include_usage)"
    )


class OpenAIParams(ClientParams):
    """``openai.v1``: any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama, recai serve)."""

    model: ModelName = Field(description="model name sent to the server")
    base_url: BaseURL = Field(
        None,
        description="server URL ending in /v1 (default: $OPENAI_BASE_URL, else "
        "https://api.openai.com/v1)",
    )


class AzureOpenAIParams(ClientParams):
    """``azure-openai.v1``: an Azure OpenAI deployment."""

    deployment: ModelName = Field(description="the Azure deployment name")
    endpoint: BaseURL = Field(
        None,
        description="https://<resource>.openai.azure.com (default: $AZURE_OPENAI_ENDPOINT)",
    )
    api_version: str | None = Field(
        None,
        description="Azure OpenAI API version (default: $OPENAI_API_VERSION, else 2024-10-21)",
    )
    model: ModelName | None = Field(
        None,
        description="the model behind the deployment, for prices and the cache (default: the "
        "deployment)",
    )
    api_key_env: EnvName = Field(
        "AZURE_OPENAI_API_KEY",
        description="NAME of the environment variable holding the Azure key (never the key itself)",
    )
