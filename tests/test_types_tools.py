"""Tool calling in the kernel's types: ToolCall, Completion.tool_calls, messages that carry calls
and their results, and the checks of OpenAI function specs (check_tools, function_tool)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from recai.types import (
    Completion,
    Message,
    ToolCall,
    Usage,
    check_tools,
    function_tool,
    tool_choice_name,
)


def test_completion_has_no_tool_calls_by_default_and_keeps_positional_fields() -> None:
    c = Completion("hi", "stop", Usage(1, 2), 0.5, "m")
    assert c.tool_calls == [] and c.model == "m" and c.latency_s == 0.5
    assert c.as_message() == Message("assistant", "hi")


def test_completion_with_calls_becomes_an_assistant_message_carrying_them() -> None:
    call = ToolCall("call_1", "hard_filter", json.dumps({"genres": ["Comedy"]}))
    c = Completion("", "tool_calls", tool_calls=[call])
    m = c.as_message()
    assert m.role == "assistant" and m.tool_calls == (call,)
    assert m.to_dict() == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "hard_filter", "arguments": '{"genres": ["Comedy"]}'},
            }
        ],
    }
    hash(m)  # messages stay hashable with calls


def test_message_round_trips_openai_tool_shapes() -> None:
    raw: list[dict[str, Any]] = [
        {"role": "user", "content": "a comedy"},
        {
            "role": "assistant",
            "content": None,  # what OpenAI sends beside tool_calls
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "3 items"},
    ]
    msgs = [Message.from_dict(d) for d in raw]
    assert msgs[1].content == "" and msgs[1].tool_calls[0].name == "f"
    assert msgs[2] == Message.tool("3 items", "c1")
    assert [Message.from_dict(m.to_dict()) for m in msgs] == msgs


def test_tool_call_from_dict_writes_object_arguments_as_json_text() -> None:
    call = ToolCall.from_dict({"id": "x", "name": "f", "arguments": {"k": [1, 2]}})
    assert call.arguments == '{"k": [1, 2]}' and call.args() == {"k": [1, 2]}
    with pytest.raises(ValueError, match="function.name"):
        ToolCall.from_dict({"id": "x", "function": {"arguments": "{}"}})
    with pytest.raises(TypeError, match="ToolCall.arguments"):
        ToolCall("x", "f", {"k": 1})  # type: ignore[arg-type]


def test_tool_call_args_names_the_call_when_arguments_are_no_json() -> None:
    with pytest.raises(ValueError, match=r"call 'c9' to 'lookup' are not valid JSON"):
        ToolCall("c9", "lookup", '{"sql": ').args()


def test_message_without_content_or_calls_is_refused() -> None:
    with pytest.raises(ValueError, match="content"):
        Message.from_dict({"role": "user"})
    with pytest.raises(ValueError, match="tool_calls must be a list"):
        Message.from_dict({"role": "assistant", "content": "", "tool_calls": "f()"})


def test_check_tools_normalises_specs_and_defaults_parameters() -> None:
    tools = check_tools(
        [
            {"type": "function", "function": {"name": "map", "description": "ids to titles"}},
            function_tool("lookup", {"type": "object", "properties": {"sql": {"type": "string"}}}),
        ],
        {"type": "function", "function": {"name": "lookup"}},
    )
    assert tools[0]["function"] == {
        "name": "map",
        "description": "ids to titles",
        "parameters": {"type": "object", "properties": {}},
    }
    assert tools[1]["function"]["parameters"]["properties"] == {"sql": {"type": "string"}}


@pytest.mark.parametrize(
    ("tools", "choice", "message"),
    [
        ({"name": "f"}, None, "tools must be a list"),
        (["f"], None, r"tools\[0\] must be an object"),
        ([{"type": "retrieval", "function": {"name": "f"}}], None, r"tools\[0\].type"),
        ([{"type": "function"}], None, r"tools\[0\].function must be an object"),
        ([{"function": {"name": "f g"}}], None, r"tools\[0\].function.name must be 1 to 64"),
        ([{"function": {"name": "x" * 65}}], None, r"tools\[0\].function.name"),
        ([{"function": {"name": "f"}}, {"function": {"name": "f"}}], None, "given twice"),
        ([{"function": {"name": "f", "parameters": []}}], None, "parameters must be a JSON"),
        (
            [{"function": {"name": "f", "parameters": {"type": "string"}}}],
            None,
            "must describe an object",
        ),
        ([{"function": {"name": "f", "description": 3}}], None, "description must be a string"),
        ([{"function": {"name": "f"}}], "sometimes", "tool_choice must be"),
        ([{"function": {"name": "f"}}], {"type": "function", "function": {"name": "g"}}, "'g'"),
        ([{"function": {"name": "f"}}], {"function": "f"}, "tool_choice must be"),
    ],
)
def test_check_tools_names_the_bad_field(tools: object, choice: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_tools(tools, choice)


def test_tool_choice_name_is_none_for_modes_and_the_name_for_a_function() -> None:
    assert tool_choice_name("required", {"f"}) is None
    assert tool_choice_name({"type": "function", "function": {"name": "f"}}, {"f"}) == "f"
