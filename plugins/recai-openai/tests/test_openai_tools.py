"""openai.v1's tool calling against a real OpenAI-compatible server on loopback (``recai
serve``): ``tools``/``tool_choice`` sent as OpenAI's, ``tool_calls`` read back into the
Completion, calls and results sent back in OpenAI's message shapes, cached with the tools in
the key, and mistakes in ``tools`` named before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import recai
from recai.errors import RecaiError
from recai.roles import LLMBackend
from recai.types import Completion, Message, ToolCall, Usage, function_tool
from recai_openai.cache import valid_answer
from recai_serve.server import LLMServer

KEY_ENV = "RECAI_OPENAI_TOOLS_KEY"

FILTER = function_tool(
    "hard_filter",
    {
        "type": "object",
        "properties": {"genres": {"type": "array", "items": {"type": "string"}}},
        "required": ["genres"],
    },
    "Keep the films of these genres.",
)
MAP = function_tool("map", None, "Turn the items into titles.")


class Native(LLMBackend):
    """A server-side model with its own tool calling: calls hard_filter with the genre it
    finds in the last user message, answers text after a tool result, and records what it got."""

    capabilities = frozenset({"tools"})

    def __init__(self) -> None:
        self.calls: list[tuple[list[Message], dict[str, Any]]] = []

    def chat(self, messages, **options):
        self.calls.append((list(messages), options))
        last = messages[-1]
        tools = options.get("tools")
        if last.role == "tool" or not tools or options.get("tool_choice") == "none":
            return Completion(f"done: {last.content}", "stop", Usage(4, 2))
        names = [t["function"]["name"] for t in tools]
        choice = options.get("tool_choice")
        name = choice["function"]["name"] if isinstance(choice, dict) else names[0]
        args = {"genres": [last.content.split()[-1].title()]} if name == "hard_filter" else {}
        call = ToolCall(f"call_{len(self.calls)}", name, json.dumps(args))
        return Completion("", "tool_calls", Usage(4, 9), tool_calls=[call])


class Scripted(LLMBackend):
    """Decodes JSON under a schema (recai serve offers the tools that way)."""

    capabilities = frozenset({"json_schema"})

    def chat(self, messages, *, json_schema=None, **options):
        assert json_schema is not None
        return Completion('{"name": "map", "arguments": {}}', "stop", Usage(3, 3))


@pytest.fixture(scope="module")
def native() -> Native:
    return Native()


@pytest.fixture(scope="module")
def server(native: Native) -> Any:
    with LLMServer({"native": native, "scripted": Scripted()}) as s:
        yield s


def make(server: LLMServer, model: str = "native", **params: Any) -> Any:
    return recai.create(
        "llm_backend",
        "openai.v1",
        model=model,
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        max_retries=0,
        **params,
    )


def test_openai_v1_has_the_tools_capability() -> None:
    from recai_openai.backend import OpenAIBackend

    assert "tools" in OpenAIBackend.capabilities


def test_tool_calls_come_back_in_the_completion(server: LLMServer, native: Native) -> None:
    llm = make(server)
    c = llm.chat([Message.user("something funny, a comedy")], tools=[FILTER, MAP])
    assert c.finish_reason == "tool_calls" and c.text == ""
    assert c.tool_calls == [
        ToolCall(f"call_{len(native.calls)}", "hard_filter", c.tool_calls[0].arguments)
    ]
    assert c.tool_calls[0].args() == {"genres": ["Comedy"]}
    assert c.usage.completion_tokens == 9
    _, options = native.calls[-1]
    assert [t["function"]["name"] for t in options["tools"]] == ["hard_filter", "map"]
    assert options["tools"][0]["function"]["parameters"] == FILTER["function"]["parameters"]
    assert options["tool_choice"] == "auto"  # recai serve's default, as OpenAI's


def test_tool_choice_is_sent(server: LLMServer, native: Native) -> None:
    llm = make(server)
    named = {"type": "function", "function": {"name": "map"}}
    c = llm.chat([Message.user("x")], tools=[FILTER, MAP], tool_choice=named)
    assert c.tool_calls[0].name == "map"
    assert native.calls[-1][1]["tool_choice"] == named
    c = llm.chat([Message.user("x")], tools=[FILTER], tool_choice="none")
    assert c.tool_calls == [] and c.text == "done: x" and c.finish_reason == "stop"
    llm.chat([Message.user("x")], tools=[FILTER], parallel_tool_calls=False)
    assert native.calls[-1][1]["parallel_tool_calls"] is False
    llm.chat([Message.user("x")], tools=[FILTER])
    assert "parallel_tool_calls" not in native.calls[-1][1]


def test_calls_and_results_go_back_in_openai_shape(server: LLMServer, native: Native) -> None:
    llm = make(server)
    conv = [Message.system("You recommend films."), Message.user("I want a thriller")]
    first = llm.chat(conv, tools=[FILTER, MAP])
    conv += [first.as_message(), Message.tool("12 items kept", first.tool_calls[0].id)]
    second = llm.chat(conv, tools=[FILTER, MAP])
    assert second.text == "done: 12 items kept" and second.tool_calls == []
    seen, _ = native.calls[-1]
    assert seen[2].role == "assistant" and seen[2].tool_calls == tuple(first.tool_calls)
    assert seen[3] == Message.tool("12 items kept", first.tool_calls[0].id)


def test_a_server_that_offers_tools_as_json_answers_calls(server: LLMServer) -> None:
    c = make(server, "scripted").chat([Message.user("titles please")], tools=[FILTER, MAP])
    assert c.finish_reason == "tool_calls" and c.tool_calls[0].name == "map"
    assert c.tool_calls[0].args() == {}


def test_tool_calls_are_cached_with_the_tools_in_the_key(
    server: LLMServer, native: Native, tmp_path: Path
) -> None:
    path = tmp_path / "answers.sqlite"
    llm = make(server, cache=str(path))
    ask = [Message.user("a western")]
    first = llm.chat(ask, tools=[FILTER, MAP])
    sent = len(native.calls)
    again = make(server, cache=str(path)).chat(ask, tools=[FILTER, MAP])
    assert len(native.calls) == sent  # a hit: nothing sent
    assert again.tool_calls == first.tool_calls and again.finish_reason == "tool_calls"
    llm.chat(ask, tools=[MAP, FILTER])  # other tools (order matters to a model): a miss
    assert len(native.calls) == sent + 1
    llm.chat(ask, tools=[FILTER, MAP], tool_choice="required")
    assert len(native.calls) == sent + 2
    llm.chat(ask)  # no tools at all: a miss
    assert len(native.calls) == sent + 3


def test_cached_answers_with_bad_tool_calls_are_no_answers() -> None:
    good = {"text": "", "finish_reason": "tool_calls", "usage": [1, 1], "model": "m"}
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    assert valid_answer({**good, "tool_calls": [call]})
    assert not valid_answer({**good, "tool_calls": [{"id": "c", "function": {"name": "f"}}]})
    assert not valid_answer({**good, "tool_calls": "f()"})


def test_a_json_answer_that_calls_a_tool_returns_the_call(server: LLMServer) -> None:
    llm = make(server)
    schema = {"type": "object", "properties": {"steps": {"type": "array"}}}
    c = llm.chat([Message.user("a drama")], tools=[FILTER], json_schema=schema)
    assert c.tool_calls[0].args() == {"genres": ["Drama"]}


@pytest.mark.parametrize(
    ("tools", "choice", "needle"),
    [
        ([{"type": "function", "function": {"name": "two words"}}], None, "tools[0].function.name"),
        ([FILTER], "maybe", "tool_choice must be"),
        ([FILTER], {"type": "function", "function": {"name": "map"}}, "not in tools"),
        (None, "required", "tool_choice is given without tools"),
        ([FILTER], None, "parallel_tool_calls must be true or false"),
    ],
)
def test_bad_tools_are_named_before_anything_is_sent(
    server: LLMServer, tools: Any, choice: Any, needle: str
) -> None:
    requests = server.stats.requests
    parallel = "often" if "parallel" in needle else None
    with pytest.raises(RecaiError) as e:
        make(server).chat(
            [Message.user("x")], tools=tools, tool_choice=choice, parallel_tool_calls=parallel
        )
    assert needle in str(e.value) and str(e.value).startswith("openai.v1: ")
    assert server.stats.requests == requests


def test_stream_with_tools_says_to_use_chat(server: LLMServer) -> None:
    with pytest.raises(RecaiError, match="use chat|pass tools to chat"):
        list(make(server).stream([Message.user("x")], tools=[FILTER]))


def test_azure_sends_tools_through_the_deployment_path(
    native: Native, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-0123456789abcdef")  # Azure always sends a key
    with LLMServer({"dep": native}) as s:
        llm = recai.create(
            "llm_backend",
            "azure-openai.v1",
            deployment="dep",
            endpoint=s.url,
            api_key_env=KEY_ENV,
            max_retries=0,
        )
        c = llm.chat([Message.user("a musical")], tools=[FILTER])
    assert c.tool_calls[0].args() == {"genres": ["Musical"]}
    assert native.calls[-1][1]["tools"][0]["function"]["name"] == "hard_filter"
