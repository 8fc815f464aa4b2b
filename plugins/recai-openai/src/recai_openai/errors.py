"""Errors of recai-openai: what failed, where, after how many attempts — and never the key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from recai.errors import RecaiError

if TYPE_CHECKING:
    from recai.types import Completion

__all__ = ["LLMRequestError", "LLMStreamError", "LLMOutputError"]


class LLMRequestError(RecaiError):
    """A request to the server failed, after the retries it was given where it was retried.

    ``status`` is the HTTP status (None for timeouts, connection errors and unreadable bodies),
    ``attempts`` how many requests were sent, ``reason`` the server's message (keys redacted).
    """

    def __init__(
        self, message: str, *, status: int | None = None, attempts: int = 1, reason: str = ""
    ):
        super().__init__(message)
        self.status = status
        self.attempts = attempts
        self.reason = reason


class LLMStreamError(LLMRequestError):
    """A streamed answer broke off: the connection closed or the stream ended unfinished.

    ``partial`` is the text received before it broke (not cached).
    """

    def __init__(self, message: str, *, partial: str = "", attempts: int = 1):
        super().__init__(message, attempts=attempts)
        self.partial = partial


class LLMOutputError(RecaiError):
    """The model's answers stayed invalid (not JSON, or not matching the schema) after repairs.

    ``completions`` keeps the replies, as recai-hf's ``StructuredOutputError`` does: from
    ``chat``, one completion (the last invalid reply, with the usage and latency of every
    attempt); from ``chat_batch``, one per conversation in input order (the valid answers and the
    last invalid tries). ``failed`` lists the indices of the invalid ones. A caller that scores
    answers (recai-eval's ``SchemaCaller``) reads the reply as the model's answer, a miss rather
    than no answer.
    """

    def __init__(
        self,
        message: str,
        *,
        completions: Sequence[Completion] = (),
        failed: Sequence[int] = (),
    ):
        super().__init__(message)
        self.completions = list(completions)
        self.failed = list(failed)
