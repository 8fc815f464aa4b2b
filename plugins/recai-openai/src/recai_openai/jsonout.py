"""JSON answers: asking for them, reading them, and checking them against a schema.

A caller asks for JSON with ``chat(..., json_schema=schema)``; ``json_schema={}`` asks for any
JSON object (JSON mode). How the server is asked depends on the backend's ``json_mode``:

- ``"schema"``: ``response_format = {"type": "json_schema", ...}`` (OpenAI, vLLM, llama.cpp's
  server and recent Ollama constrain decoding to the schema);
- ``"object"``: ``response_format = {"type": "json_object"}`` plus the schema in a system
  message (servers with a JSON mode but no schemas);
- ``"prompt"``: no ``response_format``; the schema only in a system message (servers without
  either);
- ``"auto"`` (default): ``"schema"``, falling back to ``"prompt"`` for the rest of the
  backend's life when the server refuses ``response_format`` with a 400.

Whatever the mode, the answer is read with the kernel's :func:`recai.jsontext.extract_json`
(code fences and text around one JSON value are tolerated) and validated with ``jsonschema``; an invalid answer is sent back with the problem
and a request to correct it, up to ``json_repairs`` times. The completion's text is the JSON
value, re-serialised.

>>> schema = {"type": "object", "required": ["n"]}
>>> parse_and_check('Sure! ```json\\n{"n": 3}\\n```', schema)
({'n': 3}, None)
>>> parse_and_check('{"n": "three"}', {"properties": {"n": {"type": "integer"}}})[1]
"at $.n: 'three' is not of type 'integer'"
>>> parse_and_check('{"n": 3', schema)[1]
"the reply's JSON does not parse: Expecting ',' delimiter at line 1, column 8"
"""

from __future__ import annotations

import json
from typing import Any

from recai.jsontext import JSONTextError, extract_json

__all__ = ["parse_and_check", "instruction", "repair_request", "response_format"]


def response_format(
    schema: dict[str, Any], mode: str, strict: bool = False
) -> dict[str, Any] | None:
    """The ``response_format`` to send for ``schema`` in ``mode`` (None: send none)."""
    if mode == "prompt":
        return None
    if mode == "object" or not schema:
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": strict},
    }


def instruction(schema: dict[str, Any]) -> str:
    """The system message that asks for JSON (matching ``schema`` when it is not empty)."""
    if not schema:
        return "Reply with one JSON object and nothing else: no explanation, no code fences."
    return (
        "Reply with one JSON value and nothing else (no explanation, no code fences) that matches "
        "this JSON schema:\n" + json.dumps(schema, ensure_ascii=False)
    )


def repair_request(problem: str) -> str:
    """The user message that sends an invalid answer back."""
    return (
        f"That reply is not valid: {problem}. Reply again with only the corrected JSON, and "
        "nothing else."
    )


def parse_and_check(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """``(value, None)`` for a valid answer, ``(None, problem)`` otherwise.

    An empty ``schema`` accepts any JSON object.
    """
    try:
        value = extract_json(text, kind="any" if schema else "object").value
    except JSONTextError as e:
        return None, str(e)
    if not schema:
        return value, None
    from jsonschema import exceptions, validators

    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except exceptions.SchemaError as e:
        raise ValueError(f"json_schema is not a valid JSON schema: {e.message}") from None
    best = exceptions.best_match(cls(schema).iter_errors(value))
    if best is None:
        return value, None
    return None, f"at {best.json_path}: {best.message}"
