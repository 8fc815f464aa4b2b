"""The params models of openai.v1 and azure-openai.v1, and the server's x-should-retry header."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

import recai
from recai.errors import ParamsError
from recai.schema import recipe_schema
from recai.testing import modules_imported_by_listing
from recai.types import Message
from recai_openai import backend as backend_module
from recai_openai.backend import AzureOpenAIBackend, OpenAIBackend
from recai_openai.errors import LLMRequestError
from recai_openai.params import AzureOpenAIParams, ClientParams, OpenAIParams

KEY_ENV = "RECAI_OPENAI_TEST_KEY"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-0123456789abcdefSECRET")


def spec(name: str) -> Any:
    return recai.get_plugin_manager().registry().get(name).spec


def test_the_specs_carry_the_params_models() -> None:
    assert spec("openai.v1").params is OpenAIParams
    assert spec("azure-openai.v1").params is AzureOpenAIParams
    assert OpenAIBackend.params_model is OpenAIParams
    assert AzureOpenAIBackend.params_model is AzureOpenAIParams


def test_shared_settings_are_declared_once() -> None:
    shared = set(ClientParams.model_fields)
    assert {"timeout", "max_retries", "max_retry_after", "prices", "json_mode"} <= shared
    assert issubclass(OpenAIParams, ClientParams) and issubclass(AzureOpenAIParams, ClientParams)
    # what each subclass declares itself (everything else is inherited)
    assert set(OpenAIParams.__annotations__) == {"model", "base_url"}
    assert set(AzureOpenAIParams.__annotations__) == {
        "deployment",
        "endpoint",
        "api_version",
        "model",
        "api_key_env",  # Azure's key lives in another variable by default
    }
    assert AzureOpenAIParams.model_fields["api_key_env"].default == "AZURE_OPENAI_API_KEY"
    assert not AzureOpenAIParams.model_fields["model"].is_required()
    assert OpenAIParams.model_fields["model"].is_required()


@pytest.mark.parametrize("model", [OpenAIParams, AzureOpenAIParams])
def test_every_field_is_described_in_the_recipe_schema(model: type) -> None:
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"
    schema = recipe_schema(recai.get_plugin_manager().registry())
    props = schema["$defs"][model.__name__]["properties"]
    assert set(props) == set(model.model_fields)
    assert all(p.get("description") for p in props.values())
    assert schema["$defs"][model.__name__]["additionalProperties"] is False


def test_each_backend_refuses_the_other_ones_keys() -> None:
    with pytest.raises(ParamsError, match="base_url: unknown key"):
        recai.create("llm_backend", "azure-openai.v1", deployment="d", base_url="http://x/v1")
    with pytest.raises(ParamsError, match="deployment: unknown key"):
        recai.create("llm_backend", "openai.v1", model="m", deployment="d")


def test_direct_construction_is_checked_like_a_recipe() -> None:
    bad = {"model": "m", "timeout": 0, "windw": 3, "api_key_env": KEY_ENV}
    with pytest.raises(ParamsError) as built:
        recai.create("llm_backend", "openai.v1", **bad)
    with pytest.raises(ParamsError) as direct:
        OpenAIBackend(**bad)
    assert str(direct.value) == str(built.value)
    assert "timeout: Input should be greater than 0" in str(direct.value)
    assert "windw: unknown key" in str(direct.value)
    with pytest.raises(ParamsError, match="deployment: required key is missing"):
        AzureOpenAIBackend(endpoint="http://127.0.0.1:9")
    llm = OpenAIBackend(model="m", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV)
    assert llm.params == OpenAIParams(
        model="m", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV
    )


def test_listing_the_backends_imports_neither_openai_nor_the_backend() -> None:
    heavy = ["openai", "httpx2", "jsonschema", "recai_openai.backend"]
    assert modules_imported_by_listing("openai", heavy, expect="azure-openai.v1") == []


# -- x-should-retry ----------------------------------------------------------------------------
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def scripted(monkeypatch: pytest.MonkeyPatch, answers: list[tuple[int, dict[str, str]]]) -> list:
    """An openai.v1 whose HTTP transport answers ``(status, headers)`` in turn (then 200s)."""
    seen: list[httpx2.Request] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if len(seen) <= len(answers):
            status, headers = answers[len(seen) - 1]
            body = {"error": {"message": f"scripted {status}", "type": "server_error"}}
            return httpx2.Response(status, json=body, headers=headers)
        return httpx2.Response(200, json=ANSWER)

    client = openai.DefaultHttpxClient(transport=httpx2.MockTransport(handle))
    monkeypatch.setattr(backend_module, "_http_client", lambda: client)
    return seen


def make() -> Any:
    return recai.create(
        "llm_backend",
        "openai.v1",
        model="m",
        base_url="http://127.0.0.1:9/v1",
        api_key_env=KEY_ENV,
        max_retries=3,
        backoff_base=0.01,
        backoff_max=0.02,
    )


def test_x_should_retry_false_stops_a_retryable_status(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = scripted(monkeypatch, [(503, {"x-should-retry": "false"})])
    with pytest.raises(
        LLMRequestError, match=r"HTTP 503: scripted 503 \(not retried; the server sent "
    ) as info:
        make().chat([Message.user("x")])
    assert info.value.attempts == 1 and len(seen) == 1


def test_x_should_retry_true_retries_a_client_error(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = scripted(monkeypatch, [(400, {"x-should-retry": "true"}), (500, {})])
    llm = make()
    assert llm.chat([Message.user("x")]).text == "hi"
    assert len(seen) == 3 and llm.totals()["retries"] == 2
