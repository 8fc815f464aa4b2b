"""JSON output for a model with no JSON mode: ask, validate, and re-ask with the error.

``chat(..., json_schema=schema)`` on :class:`~recai_hf.backend.HFBackend` goes through
:func:`complete_json`:

1. the schema is added to the conversation as an instruction (appended to the system message;
   not when the backend's ``schema_prompt`` is off, for a model fine-tuned on its own prompt);
2. the reply's JSON value is found by the kernel's :func:`recai.jsontext.extract_json` (the whole
   text, a fenced block, or the first ``{``/``[`` that starts a complete value) and validated
   against the schema with ``jsonschema``;
3. a reply that fails is shown back to the model with the validation error, at most ``repairs``
   times; conversations still failing then raise :class:`StructuredOutputError`, which lists
   each failure (last reply and its errors) and keeps every completion.

A returned completion's ``text`` is the JSON value alone, as the model wrote it
(``json.loads(completion.text)`` works); ``usage`` and ``latency_s`` add up every attempt.

>>> schema_errors({"a": "x"}, {"type": "object", "properties": {"a": {"type": "integer"}}})
["$.a: 'x' is not of type 'integer'"]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from recai.errors import RecaiError
from recai.jsontext import JSONTextError, extract_json
from recai.types import Completion, Message

__all__ = [
    "StructuredOutputError",
    "JSONFailure",
    "check_schema",
    "complete_json",
    "schema_errors",
    "schema_instruction",
]


@dataclass(frozen=True)
class JSONFailure:
    """One conversation whose replies never matched the schema."""

    index: int
    text: str
    errors: tuple[str, ...]
    attempts: int


class StructuredOutputError(RecaiError):
    """Some replies were not valid JSON for the schema, even after the repair attempts.

    ``failures`` says which conversation (its index in the batch), the last reply and why;
    ``completions`` holds one completion per conversation (valid ones and the last invalid tries).
    """

    def __init__(self, failures: Sequence[JSONFailure], completions: Sequence[Completion]):
        self.failures = list(failures)
        self.completions = list(completions)
        n, total = len(self.failures), len(self.completions)
        lines = []
        for f in self.failures[:5]:
            reply = f.text if len(f.text) <= 200 else f.text[:200] + "..."
            lines.append(
                f"  - conversation {f.index} after {f.attempts} attempt(s): "
                f"{'; '.join(f.errors[:3])}\n    last reply: {reply!r}"
            )
        if n > 5:
            lines.append(f"  - ... and {n - 5} more")
        super().__init__(
            f"{n} of {total} replies are not valid JSON for the schema:\n" + "\n".join(lines)
        )


def check_schema(schema: dict[str, Any]) -> None:
    """Raise :class:`recai.RecaiError` when ``schema`` is not a valid JSON schema."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise RecaiError(f"json_schema is not a valid JSON schema: {e.message}") from None


def schema_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    """Why ``value`` does not match ``schema`` (empty when it does), one line per problem."""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    out = []
    for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
        out.append(f"{error.json_path}: {error.message}")
    return out


def schema_instruction(schema: dict[str, Any]) -> str:
    """The instruction added to the system message when a schema is asked for."""
    return (
        "Answer with one JSON value only, no other text, matching this JSON schema: "
        + json.dumps(schema, separators=(",", ":"))
    )


def with_instruction(messages: Sequence[Message], schema: dict[str, Any]) -> list[Message]:
    """``messages`` with the schema instruction appended to (or made into) the system message."""
    msgs = list(messages)
    instruction = schema_instruction(schema)
    if msgs and msgs[0].role == "system":
        return [Message("system", msgs[0].content.rstrip() + "\n\n" + instruction), *msgs[1:]]
    return [Message("system", instruction), *msgs]


def _repair_turns(text: str, errors: Sequence[str]) -> list[Message]:
    why = "; ".join(errors[:5])
    return [
        Message("assistant", text),
        Message(
            "user",
            f"That reply is not valid: {why}. Reply again with only the corrected JSON value.",
        ),
    ]


def _check(text: str, schema: dict[str, Any]) -> tuple[str | None, list[str]]:
    try:
        value, source = extract_json(text)
    except JSONTextError as e:
        return None, [str(e)]
    errors = schema_errors(value, schema)
    return (source, []) if not errors else (None, errors)


Generate = Callable[[list[list[Message]], list[int]], list[Completion]]


def complete_json(
    generate: Generate,
    conversations: Sequence[Sequence[Message]],
    schema: dict[str, Any],
    *,
    repairs: int = 2,
    instruct: bool = True,
) -> list[Completion]:
    """Completions whose text is JSON valid for ``schema``, re-asking invalid ones.

    ``generate(conversations, rows)`` completes a list of conversations (``rows`` are their
    indices in ``conversations``, for processors that need them). ``instruct=False`` leaves
    the schema out of the prompt (for a model fine-tuned on a prompt of its own, which the
    instruction would change). Raises :class:`StructuredOutputError` when some stay invalid
    after ``repairs`` re-asks.
    """
    check_schema(schema)
    asked = [with_instruction(c, schema) if instruct else list(c) for c in conversations]
    results: list[Completion | None] = [None] * len(asked)
    usage: list[Any] = [None] * len(asked)
    latency = [0.0] * len(asked)
    last_errors: dict[int, list[str]] = {}
    pending = list(range(len(asked)))
    attempts = 0
    while pending and attempts <= repairs:
        attempts += 1
        done = generate([asked[i] for i in pending], pending)
        if len(done) != len(pending):
            raise RuntimeError(f"generate returned {len(done)} completions for {len(pending)}")
        still = []
        for i, c in zip(pending, done, strict=True):
            usage[i] = c.usage if usage[i] is None else usage[i] + c.usage
            latency[i] += c.latency_s
            source, errors = _check(c.text, schema)
            if source is not None:
                results[i] = replace(c, text=source, usage=usage[i], latency_s=latency[i])
                continue
            results[i] = replace(c, usage=usage[i], latency_s=latency[i])
            last_errors[i] = errors
            asked[i] = [*asked[i], *_repair_turns(c.text, errors)]
            still.append(i)
        pending = still
    final = [c for c in results if c is not None]
    assert len(final) == len(results)
    if pending:
        failures = [JSONFailure(i, final[i].text, tuple(last_errors[i]), attempts) for i in pending]
        raise StructuredOutputError(failures, final)
    return final
