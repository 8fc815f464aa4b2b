"""When to try a request again, and how long to wait first.

Retried: HTTP 408, 409, 429 and every 5xx, timeouts, and connection errors (refused, reset,
closed before the answer). Not retried: other 4xx (the request itself is wrong: a bad key, an
unknown model, a bad parameter), and a 200 whose body is not valid JSON. A server's
``x-should-retry: true`` or ``false`` header overrides the status (as in the ``openai`` SDK).

The wait before retry ``n`` (1, 2, ...) is exponential backoff with jitter:
``b = min(backoff_max, backoff_base * 2 ** (n - 1))``, then a uniform draw from ``[b / 2, b]``
("equal jitter": never zero, and clients that failed together spread out). When the server
says how long to wait (``Retry-After`` in seconds or as an HTTP date, or ``retry-after-ms``),
the wait is that long plus a uniform draw from ``[0, min(1, 0.1 * that)]`` — never shorter than
the server asked. A server asking for more than ``max_retry_after`` seconds is not retried: the
error says what it asked for.

Why not the ``openai`` SDK's own retries (``OpenAI(max_retries=n)``; the backends create their
clients with ``max_retries=0``)? They retry the same failures and honour ``Retry-After``, but
``benchmarks/bench_openai_retries.py`` (results in docs/performance.md) measured what they
cannot do: a server's ``Retry-After: 3`` is waited for in full (3.01 s) whatever the caller's
limit (the SDK's is fixed at 120 s); its errors do not say how many attempts were made ("Error
code: 503 - ...", "Request timed out."); its backoff is fixed at 0.5 s doubling to 8 s (no
setting); and it waits exactly what ``Retry-After`` says, so 16 clients refused together came back within 17 ms
of each other (this policy's jitter: 48 ms). This module is the small layer those needs take.

>>> import random
>>> policy = RetryPolicy(max_retries=3, backoff_base=1.0, backoff_max=10.0)
>>> rng = random.Random(0)
>>> [round(policy.wait(n, None, rng), 2) for n in (1, 2, 3)]
[0.92, 1.76, 2.84]
>>> policy.wait(1, 2.0, rng) >= 2.0
True
>>> policy.retryable(503, {}), policy.retryable(503, {"x-should-retry": "false"})
(True, False)
>>> policy.retryable(400, {}), policy.retryable(400, {"x-should-retry": "true"})
(False, True)
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["RetryPolicy", "retry_after_seconds", "RETRY_STATUSES"]

#: Statuses worth another try besides every 5xx.
RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry (``max_retries``; 0: never) and how long to wait."""

    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 120.0

    def wait(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        if retry_after is not None:
            return retry_after + rng.uniform(0.0, min(1.0, 0.1 * retry_after))
        b = min(self.backoff_max, self.backoff_base * 2 ** (retry - 1))
        return rng.uniform(b / 2, b)

    @staticmethod
    def retryable_status(status: int) -> bool:
        """Whether a failure with HTTP ``status`` is worth another try, by its status alone."""
        return status in RETRY_STATUSES or status >= 500

    def retryable(self, status: int, headers: Any) -> bool:
        """Whether to try again after HTTP ``status``: the server's ``x-should-retry`` header
        when it says ``true`` or ``false``, else :meth:`retryable_status`."""
        said = _header(headers, "x-should-retry")
        if said in ("true", "false"):
            return said == "true"
        return self.retryable_status(status)


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """Seconds a response asks the client to wait, from ``retry-after-ms`` or ``Retry-After``.

    >>> retry_after_seconds({"retry-after": "1.5"})
    1.5
    >>> retry_after_seconds({"retry-after-ms": "250"})
    0.25
    >>> retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0)
    10.0
    >>> retry_after_seconds({}) is None
    True
    """
    if headers is None:
        return None
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = _header(headers, "retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _header(headers: Any, name: str) -> str | None:
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    if value is None and isinstance(headers, dict):  # a plain dict: match names case-blind
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return None if value is None else str(value).strip()
