"""Token and cost accounting: what a backend has spent, by model.

Prices are given per model as US dollars per million tokens, input and output apart (the way
providers publish them), in the backend's ``prices`` param::

    [components.llm.params.prices]
    "gpt-4o-mini" = { input = 0.15, output = 0.60 }

A model's price is found by its exact name (the one asked for, then the one the server says
answered), else by the longest priced name that the answering model's name starts with
(``gpt-4o-mini`` prices ``gpt-4o-mini-2024-07-18``). Tokens of a model without a price are
counted, not costed, and listed in ``unpriced_models``. Answers from the response cache cost
nothing; they are counted apart (``cached_calls``, ``cached_cost_usd`` is what they would
have cost).

>>> meter = UsageMeter({"m": ModelPrice(input=1.0, output=2.0)})
>>> meter.record("m", "m", 1_000, 500)
>>> meter.record("m", "m", 1_000, 500, cached=True)
>>> t = meter.totals()
>>> t["calls"], t["cached_calls"], t["prompt_tokens"]
(1, 1, 1000)
>>> round(t["cost_usd"], 6), round(t["cached_cost_usd"], 6)
(0.002, 0.002)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ModelPrice", "UsageMeter"]


class ModelPrice(BaseModel):
    """US dollars per million tokens: ``input`` (prompt) and ``output`` (completion)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # at most a million dollars per million tokens: a bound far above any price, below which a
    # run's cost stays finite
    input: Annotated[float, Field(ge=0, le=1e6)]
    output: Annotated[float, Field(ge=0, le=1e6)]

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000


_FIELDS = (
    "calls",
    "cached_calls",
    "requests",
    "retries",
    "prompt_tokens",
    "completion_tokens",
    "cached_prompt_tokens",
    "cached_completion_tokens",
)


class UsageMeter:
    """Running totals, overall and by model; thread-safe."""

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None):
        self.prices = dict(prices or {})
        self._lock = threading.Lock()
        self._by_model: dict[str, dict[str, Any]] = {}
        self._requests = 0
        self._retries = 0

    def price_of(self, asked: str, answered: str | None = None) -> tuple[str, ModelPrice] | None:
        """The priced name and price for a call to ``asked`` answered by ``answered``."""
        for name in (asked, answered):
            if name and name in self.prices:
                return name, self.prices[name]
        target = answered or asked
        best = max((n for n in self.prices if target.startswith(n)), key=len, default=None)
        return (best, self.prices[best]) if best is not None else None

    def count_request(self, retry: bool = False) -> None:
        """One HTTP request sent (``retry``: it repeats a failed one)."""
        with self._lock:
            self._requests += 1
            self._retries += retry

    def record(
        self,
        asked: str,
        answered: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cached: bool = False,
    ) -> None:
        """One answered call (from the server, or from the cache when ``cached``)."""
        priced = self.price_of(asked, answered)
        cost = priced[1].cost(prompt_tokens, completion_tokens) if priced else None
        key = answered or asked
        with self._lock:
            m = self._by_model.setdefault(
                key,
                {f: 0 for f in _FIELDS if f not in ("requests", "retries")}
                | {
                    "cost_usd": 0.0,
                    "cached_cost_usd": 0.0,
                    "priced_as": priced[0] if priced else None,
                },
            )
            if cached:
                m["cached_calls"] += 1
                m["cached_prompt_tokens"] += prompt_tokens
                m["cached_completion_tokens"] += completion_tokens
                if cost is not None:
                    m["cached_cost_usd"] += cost
            else:
                m["calls"] += 1
                m["prompt_tokens"] += prompt_tokens
                m["completion_tokens"] += completion_tokens
                if cost is not None:
                    m["cost_usd"] += cost

    def by_model(self) -> dict[str, dict[str, Any]]:
        """Totals per answering model (a copy)."""
        with self._lock:
            return {k: dict(v) for k, v in self._by_model.items()}

    def totals(self) -> dict[str, Any]:
        """Overall totals: calls, cached_calls, requests (HTTP, retries included), retries,
        prompt/completion tokens, cost_usd (priced models only), cached_cost_usd, and the
        ``unpriced_models`` whose tokens are not in ``cost_usd``."""
        models = self.by_model()
        with self._lock:
            out: dict[str, Any] = {"requests": self._requests, "retries": self._retries}
        for f in _FIELDS:
            if f not in out:
                out[f] = sum(m[f] for m in models.values())
        out["cost_usd"] = sum(m["cost_usd"] for m in models.values())
        out["cached_cost_usd"] = sum(m["cached_cost_usd"] for m in models.values())
        out["unpriced_models"] = sorted(k for k, m in models.items() if m["priced_as"] is None)
        return out

    def reset(self) -> None:
        with self._lock:
            self._by_model.clear()
            self._requests = 0
            self._retries = 0
