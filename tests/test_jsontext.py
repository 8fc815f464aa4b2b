"""recai.jsontext.extract_json: the JSON value in a model's reply, or an error that says why not."""

from __future__ import annotations

import json

import pytest

from recai.errors import RecaiError
from recai.jsontext import FoundJSON, JSONTextError, extract_json


@pytest.mark.parametrize(
    ("reply", "value", "source"),
    [
        ('{"a": [1, 2]}', {"a": [1, 2]}, '{"a": [1, 2]}'),
        ('  \n {"a": 1}\n', {"a": 1}, '{"a": 1}'),
        ("3", 3, "3"),  # a whole reply may be any JSON value
        ('"yes"', "yes", '"yes"'),
        ('Sure! ```json\n{"a": 1}\n``` Done.', {"a": 1}, '{"a": 1}'),
        ("```\n[1, 2]\n```", [1, 2], "[1, 2]"),
        ("```JSON [true]```", [True], "[true]"),
        ('Here: {"a": 1} and {"b": 2}', {"a": 1}, '{"a": 1}'),  # the first value
        ('{"a": {"b": "}"}} trailing }', {"a": {"b": "}"}}, '{"a": {"b": "}"}}'),
        ('text {broken {"ok": true}', {"ok": True}, '{"ok": true}'),
        ('Answer: [{"a": 1}] ok', [{"a": 1}], '[{"a": 1}]'),  # the outer value, not the inner
        ('I pick 2. {"n": 2}', {"n": 2}, '{"n": 2}'),  # a number and prose are not the answer
    ],
)
def test_finds_the_value_and_its_source(reply: str, value: object, source: str) -> None:
    found = extract_json(reply)
    assert found == FoundJSON(value, source)
    assert found == (value, source)  # unpacks as (value, text)
    assert json.loads(found.text) == value and found.text in reply


def test_kind_passes_over_values_of_another_kind() -> None:
    assert extract_json('[1, 2] then {"a": 1}', kind="object").value == {"a": 1}
    assert extract_json('{"a": [1]} and [2]', kind="array").value == [1]  # inside the object
    assert extract_json('{"A": {"x": 1}}', kind="object").value == {"A": {"x": 1}}
    with pytest.raises(JSONTextError, match=r"^the reply's JSON is an array, not an object$"):
        extract_json("[1, 2]", kind="object")
    with pytest.raises(JSONTextError, match=r"^the reply's JSON is a number, not an object$"):
        extract_json("42", kind="object")
    with pytest.raises(ValueError, match="kind must be one of any, object, array"):
        extract_json("{}", kind="dict")  # type: ignore[arg-type]


def test_errors_say_what_was_wrong() -> None:
    with pytest.raises(JSONTextError, match=r"^the reply holds no JSON value$") as no_json:
        extract_json("no json here, sorry")
    assert no_json.value.reply == "no json here, sorry"
    with pytest.raises(JSONTextError, match=r"holds no JSON value \(it is empty\)"):
        extract_json("  \n")
    with pytest.raises(
        JSONTextError,
        match=r"^the reply's JSON does not parse: Expecting ',' delimiter at line 1, column 28$",
    ):
        extract_json('{"answer": "ok", "n": "two"')  # cut off
    with pytest.raises(JSONTextError, match="Expecting value at line 1, column 7"):
        extract_json('{"a": ')


def test_a_parse_error_is_placed_in_the_whole_reply() -> None:
    """The reason comes from the attempt that got furthest, its line and column counted in the
    reply (not in the fenced block)."""
    reply = 'Sure:\n```json\n{"a": 1,}\n```'
    with pytest.raises(JSONTextError) as e:
        extract_json(reply)
    assert str(e.value) == (
        "the reply's JSON does not parse: Expecting property name enclosed in double quotes "
        "at line 3, column 9"
    )
    assert reply.splitlines()[2][8] == "}"


def test_the_error_is_a_recai_error_and_a_value_error() -> None:
    with pytest.raises(RecaiError):
        extract_json("nothing")
    with pytest.raises(ValueError):
        extract_json("nothing")
    with pytest.raises(TypeError, match="needs a str, got NoneType"):
        extract_json(None)  # type: ignore[arg-type]


def test_max_starts_bounds_the_scan() -> None:
    reply = "{x " * 25 + '{"a": 1}'
    with pytest.raises(JSONTextError, match="does not parse"):
        extract_json(reply)
    assert extract_json(reply, max_starts=30).value == {"a": 1}


def test_nesting_too_deep_is_an_error_not_a_crash() -> None:
    with pytest.raises(JSONTextError):
        extract_json("[" * 100_000)
