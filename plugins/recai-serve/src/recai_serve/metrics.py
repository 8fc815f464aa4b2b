"""Request counts and latency percentiles per route, for ``GET /metrics``.

:class:`MetricsMiddleware` times every HTTP request from its arrival to the last byte of its
answer (a streamed chat answer: to ``[DONE]``) and files it under its route's template
(``GET /v1/items/{item_id}/similar``), so that ids in paths do not make a route per item;
paths no route matches are counted together as ``unmatched``. :class:`Metrics` keeps, per
route, the count, the count per status and the latest :data:`WINDOW` latencies, from which
p50/p95/p99 are read.

>>> m = Metrics()
>>> for ms in range(1, 101):
...     m.record("GET /health", 200, ms / 1000)
>>> row = m.snapshot()["routes"]["GET /health"]
>>> row["count"], row["p50_ms"], row["p95_ms"]
(100, 50.5, 95.05)
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware", "WINDOW", "percentile"]

WINDOW = 10_000
"""Latencies kept per route (the newest): the percentiles describe recent traffic."""


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ascending values, linearly interpolated (numpy's
    default method).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    """
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


class _Route:
    __slots__ = ("count", "statuses", "latencies", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.statuses: Counter[int] = Counter()
        self.latencies: deque[float] = deque(maxlen=WINDOW)
        self.seconds = 0.0


class Metrics:
    """Per-route counters and latencies (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self._agents: dict[str, dict[str, int]] = {}
        self._turn_seconds: dict[str, deque[float]] = {}
        self.started = time.time()
        self.in_flight = 0

    def record(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            row = self._routes.get(route)
            if row is None:
                row = self._routes[route] = _Route()
            row.count += 1
            row.statuses[status] += 1
            row.latencies.append(seconds)
            row.seconds += seconds

    def record_turn(self, agent: str, llm_calls: int, seconds: float, items: int) -> None:
        """An agent answered a turn: its LLM calls, its own seconds and how many items."""
        with self._lock:
            row = self._agents.get(agent)
            if row is None:
                row = self._agents[agent] = {"turns": 0, "llm_calls": 0, "items": 0}
                self._turn_seconds[agent] = deque(maxlen=WINDOW)
            row["turns"] += 1
            row["llm_calls"] += llm_calls
            row["items"] += items
            self._turn_seconds[agent].append(seconds)

    def snapshot(self) -> dict[str, Any]:
        """``{"uptime_s", "in_flight", "routes": {route: {"count", "errors", "status",
        "p50_ms", "p95_ms", "p99_ms", "mean_ms"}}, "agents": {agent: {"turns", "llm_calls",
        "llm_calls_per_turn", "items_per_turn", "p50_s", "p95_s"}}}`` (an agent's seconds are
        its own, without waiting for a slot)."""
        with self._lock:
            rows = {
                k: (r.count, dict(r.statuses), sorted(r.latencies), r.seconds)
                for k, r in self._routes.items()
            }
            turns = {k: (dict(v), sorted(self._turn_seconds[k])) for k, v in self._agents.items()}
            in_flight = self.in_flight
        agents = {}
        for name, (row, secs) in sorted(turns.items()):
            n = max(row["turns"], 1)
            agents[name] = {
                "turns": row["turns"],
                "llm_calls": row["llm_calls"],
                "llm_calls_per_turn": round(row["llm_calls"] / n, 3),
                "items_per_turn": round(row["items"] / n, 3),
                "p50_s": round(percentile(secs, 50), 4),
                "p95_s": round(percentile(secs, 95), 4),
            }
        routes = {}
        for key, (count, statuses, lat, total) in sorted(rows.items()):
            routes[key] = {
                "count": count,
                "errors": sum(n for s, n in statuses.items() if s >= 400),
                "status": {str(s): n for s, n in sorted(statuses.items())},
                "p50_ms": round(percentile(lat, 50) * 1000, 3),
                "p95_ms": round(percentile(lat, 95) * 1000, 3),
                "p99_ms": round(percentile(lat, 99) * 1000, 3),
                "mean_ms": round(total / count * 1000, 3) if count else 0.0,
            }
        return {
            "uptime_s": round(time.time() - self.started, 3),
            "in_flight": in_flight,
            "routes": routes,
            "agents": agents,
        }

    def prometheus(self) -> str:
        """The snapshot in Prometheus' text format (``GET /metrics?format=prometheus``)."""
        snap = self.snapshot()
        lines = [
            "# HELP recai_requests_total HTTP requests answered, by route and status.",
            "# TYPE recai_requests_total counter",
        ]
        for route, row in snap["routes"].items():
            for status, n in row["status"].items():
                lines.append(
                    f'recai_requests_total{{route="{_label(route)}",status="{status}"}} {n}'
                )
        lines += [
            "# HELP recai_request_seconds Request latency quantiles over the latest requests.",
            "# TYPE recai_request_seconds summary",
        ]
        for route, row in snap["routes"].items():
            for q, key in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
                lines.append(
                    f'recai_request_seconds{{route="{_label(route)}",quantile="{q}"}} '
                    f"{row[key] / 1000:.6f}"
                )
            lines.append(f'recai_request_seconds_count{{route="{_label(route)}"}} {row["count"]}')
        lines += [
            "# HELP recai_agent_turns_total Turns answered, by agent.",
            "# TYPE recai_agent_turns_total counter",
            *(
                f'recai_agent_turns_total{{agent="{_label(a)}"}} {r["turns"]}'
                for a, r in snap["agents"].items()
            ),
            "# HELP recai_agent_llm_calls_total LLM calls the agents' turns made.",
            "# TYPE recai_agent_llm_calls_total counter",
            *(
                f'recai_agent_llm_calls_total{{agent="{_label(a)}"}} {r["llm_calls"]}'
                for a, r in snap["agents"].items()
            ),
            "# HELP recai_in_flight Requests being answered now.",
            "# TYPE recai_in_flight gauge",
            f"recai_in_flight {snap['in_flight']}",
        ]
        return "\n".join(lines) + "\n"


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class MetricsMiddleware:
    """ASGI middleware timing each request under its route's template in ``metrics``."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def route_of(self, scope: Scope) -> str:
        method = scope.get("method", "GET")
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                path = getattr(route, "path", None) or scope.get("path", "")
                return f"{method} {path}"
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [499]  # no answer began: the client left

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        metrics = self.metrics
        with metrics._lock:
            metrics.in_flight += 1
        try:
            await self.app(scope, receive, timed)
        except Exception:
            status[0] = 500
            raise
        finally:
            with metrics._lock:
                metrics.in_flight -= 1
            metrics.record(self.route_of(scope), status[0], time.perf_counter() - started)
