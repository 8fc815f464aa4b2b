"""recai.toolcalls: tool calling for backends that decode JSON under a schema. The schema the
tools become, how answers are read back into calls, how earlier calls and results are written
as text, and SchemaToolCalling, which gives such a backend the "tools" capability."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from recai.roles import LLMBackend
from recai.toolcalls import (
    SchemaToolCalling,
    ToolCallError,
    render_tool_messages,
    tool_plan,
)
from recai.types import Completion, Message, ToolCall, Usage, function_tool

jsonschema = pytest.importorskip("jsonschema")

FILTER = function_tool(
    "hard_filter",
    {
        "type": "object",
        "properties": {
            "genres": {"type": "array", "items": {"enum": ["Comedy", "Drama"]}},
            "year_min": {"type": "integer"},
        },
        "required": ["genres"],
    },
    "Keep the films of these genres.",
)
MAP = function_tool("map", None, "Turn the items on the bus into titles.")


class JSONBrain(LLMBackend):
    """Answers each request with the next scripted JSON value, checked against the schema it
    was given as a constrained decoder would guarantee (jsonschema); records what it got."""

    capabilities = frozenset({"json_schema", "cancel"})

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.seen: list[tuple[list[Message], dict[str, Any]]] = []

    def chat(self, messages, **options):
        self.seen.append((list(messages), options))
        schema = options.get("json_schema")
        if schema is None:
            return Completion("plain text", "stop", Usage(2, 2))
        value = self.answers.pop(0)
        if isinstance(value, str):
            return Completion(value, "length", Usage(3, 3))
        jsonschema.validate(value, schema)
        return Completion(json.dumps(value), "stop", Usage(3, 5))

    def count_tokens(self, messages) -> int:
        return 7 * len(messages)

    def stream(self, messages, **options):
        yield from ("plain", " text")


def test_the_schema_has_a_branch_per_function_and_a_text_answer_under_auto() -> None:
    plan = tool_plan([FILTER, MAP])
    assert plan is not None and plan.choice == "auto"
    branches = plan.schema()["anyOf"]
    assert [b["properties"].get("name") for b in branches] == [
        {"const": "hard_filter"},
        {"const": "map"},
        None,
    ]
    # undeclared keys closed off; an open "any object" stays open
    assert branches[0]["properties"]["arguments"]["additionalProperties"] is False
    assert branches[1]["properties"]["arguments"] == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }
    assert branches[2]["properties"] == {"content": {"type": "string"}}
    one = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    assert tool_plan([one], "required").schema()["properties"]["arguments"] == {"type": "object"}


def test_required_drops_the_text_branch_and_a_named_choice_keeps_its_own() -> None:
    required = tool_plan([FILTER, MAP], "required").schema()
    assert len(required["anyOf"]) == 2
    named = tool_plan([FILTER, MAP], {"type": "function", "function": {"name": "map"}})
    assert named.schema()["properties"]["name"] == {"const": "map"}
    assert "- map:" in named.instruction() and "hard_filter" not in named.instruction()
    assert tool_plan([FILTER], "none") is None and tool_plan(None) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([{"function": {"name": "a b"}}],), r"tools\[0\].function.name"),
        (([FILTER], "required", "yes"), "parallel_tool_calls must be true or false"),
        (([], "required"), "no tools are given"),
        (([FILTER], {"type": "function", "function": {"name": "map"}}), "not in tools"),
    ],
)
def test_tool_plan_names_the_bad_field(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tool_plan(*args)


def test_answers_become_calls_text_or_an_error() -> None:
    plan = tool_plan([FILTER, MAP])
    call = plan.answer(Completion('{"name": "hard_filter", "arguments": {"genres": ["Drama"]}}'))
    assert call.finish_reason == "tool_calls" and call.text == ""
    assert call.tool_calls[0].args() == {"genres": ["Drama"]}
    assert call.tool_calls[0].id.startswith("call_")
    assert plan.answer(Completion('{"content": "Hi!"}')).text == "Hi!"
    assert plan.answer(Completion("no JSON at all")).text == "no JSON at all"  # auto: as text
    assert plan.answer(Completion('{"name": "drop_table", "arguments": {}}')).tool_calls == []
    forced = tool_plan([FILTER, MAP], "required")
    with pytest.raises(ToolCallError, match="cut off by max_tokens"):
        forced.answer(Completion('{"name": "ma', "length"))
    named = tool_plan([FILTER, MAP], {"type": "function", "function": {"name": "map"}})
    with pytest.raises(ToolCallError, match="no call to map"):
        named.answer(Completion('{"name": "hard_filter", "arguments": {"genres": []}}'))


def test_parallel_calls_are_a_bounded_list() -> None:
    plan = tool_plan([FILTER, MAP], "required", True, max_calls=2)
    listed = plan.schema()["properties"]["tool_calls"]
    assert (listed["minItems"], listed["maxItems"]) == (1, 2)
    three = {"tool_calls": [{"name": "map", "arguments": {}}] * 3}
    calls = plan.answer(Completion(json.dumps(three))).tool_calls
    assert len(calls) == 2 and calls[0].id != calls[1].id  # cut to max_calls
    named = tool_plan([FILTER, MAP], {"type": "function", "function": {"name": "map"}}, True)
    assert not named.several  # a named function is one call


def test_history_is_written_as_the_json_asked_for() -> None:
    a, b = ToolCall("c1", "hard_filter", '{"genres": ["Comedy"]}'), ToolCall("c2", "map", "{}")
    conv = [
        Message.user("a comedy"),
        Message.assistant("Filtering.", [a, b]),
        Message.tool("12 kept", "c1"),
        Message.tool("Heat (1995)", "c2", name="map"),
        Message.user("thanks"),
    ]
    out = render_tool_messages(conv)
    assert [m.role for m in out] == ["user", "assistant", "user", "user"]
    assert out[1].content.splitlines() == [
        "Filtering.",
        '{"name": "hard_filter", "arguments": {"genres": ["Comedy"]}}',
        '{"name": "map", "arguments": {}}',
    ]
    assert out[2].content == (
        "Result of hard_filter (call c1):\n12 kept\n\nResult of map (call c2):\nHeat (1995)"
    )
    assert all(not m.tool_calls and m.tool_call_id is None for m in out)
    listed = render_tool_messages(conv, listed=True)[1].content.splitlines()[1]
    assert [c["name"] for c in json.loads(listed)["tool_calls"]] == ["hard_filter", "map"]


def test_schema_tool_calling_gives_a_json_backend_native_style_calls() -> None:
    brain = JSONBrain(
        {"name": "hard_filter", "arguments": {"genres": ["Comedy"], "year_min": 1990}},
        {"content": "Here are comedies."},
    )
    llm = SchemaToolCalling(brain)
    assert llm.capabilities == {"json_schema", "cancel", "tools"}
    assert "tools" not in JSONBrain.capabilities  # the class is untouched
    conv = [Message.system("You recommend films."), Message.user("90s comedies")]
    stop = threading.Event()
    first = llm.chat(conv, tools=[FILTER, MAP], max_tokens=64, cancel=stop)
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls[0].args() == {"genres": ["Comedy"], "year_min": 1990}
    seen, options = brain.seen[-1]
    assert options["max_tokens"] == 64 and options["cancel"] is stop
    assert seen[0].content.startswith("You recommend films.\n\nYou can call these tools")
    conv += [first.as_message(), Message.tool("40 kept", first.tool_calls[0].id)]
    second = llm.chat(conv, tools=[FILTER, MAP])
    assert second.text == "Here are comedies." and second.tool_calls == []
    assert brain.seen[-1][0][-1].content.startswith("Result of hard_filter (call call_")
    # without tools: a plain chat, the history still written as text
    assert llm.chat(conv).text == "plain text"
    assert "json_schema" not in brain.seen[-1][1]
    assert [m.role for m in brain.seen[-1][0]] == ["system", "user", "assistant", "user"]
    assert llm.count_tokens(conv) == 28  # the backend's own attributes
    assert "".join(llm.stream(conv)) == "plain text"


def test_schema_tool_calling_refuses_what_it_cannot_do() -> None:
    class Plain(LLMBackend):
        def chat(self, messages, **options):
            return Completion("x")

    with pytest.raises(TypeError, match='no "json_schema" capability'):
        SchemaToolCalling(Plain())
    llm = SchemaToolCalling(JSONBrain("{cut"))
    with pytest.raises(ValueError, match="json_schema cannot be combined with tools"):
        llm.chat([Message.user("x")], tools=[MAP], json_schema={"type": "object"})
    with pytest.raises(ToolCallError, match="no call to one of the tools"):
        llm.chat([Message.user("x")], tools=[MAP], tool_choice="required")


def test_parameters_with_refs_still_resolve_inside_the_answer_schema() -> None:
    """pydantic writes parameters with $defs and #/$defs/... references; embedded under the
    answer's anyOf they would point at nothing, so they move to the answer's $defs."""
    genre_ref = {
        "type": "object",
        "$defs": {"Genre": {"enum": ["Comedy", "Drama"]}, "Node": {
            "type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        "properties": {
            "genre": {"$ref": "#/$defs/Genre"},
            "chain": {"$ref": "#/$defs/Node"},
            "same": {"enum": [{"$ref": "#/not/a/schema"}]},  # data, left alone
        },
        "required": ["genre"],
    }  # fmt: skip
    plain = function_tool("plain", {"type": "object", "properties": {"x": {"type": "integer"}}})
    plan = tool_plan([function_tool("pick", genre_ref), plain])
    schema = plan.schema()
    pick = schema["$defs"]["fn_pick"]
    assert schema["anyOf"][0]["properties"]["arguments"] == {"$ref": "#/$defs/fn_pick"}
    assert pick["properties"]["genre"] == {"$ref": "#/$defs/fn_pick/$defs/Genre"}
    assert pick["$defs"]["Node"]["properties"]["next"] == {"$ref": "#/$defs/fn_pick/$defs/Node"}
    assert pick["properties"]["same"] == {"enum": [{"$ref": "#/not/a/schema"}]}
    assert "fn_plain" not in schema["$defs"]  # no refs: inline
    good = {"name": "pick", "arguments": {"genre": "Drama", "chain": {"next": {}}}}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "pick", "arguments": {"genre": "Horror"}}, schema)
    named = tool_plan([function_tool("pick", genre_ref)], "required").schema()
    jsonschema.validate(good, named)  # one branch: its $defs at the top
