"""``recai serve``: a recipe's agents, or one LLM backend, over HTTP (registered by :mod:`.plugin`).

A recipe with agent components (``recai serve examples/agent.toml``) serves its agents on the
OpenAI chat API with sessions, its LLM backends beside them, and the REST API over its
rankers, retrievers and explainers (:class:`~recai_serve.server.AgentServer`); the learning
components are fitted on all of the dataset once and cached under ``--out``. Otherwise the
backend is a recipe's LLM component (``recai serve recipe.toml -c brain``) or a registered name
with its params (``recai serve --use hf.v1 -p max_tokens=64``). The server is
:class:`~recai_serve.server.LLMServer` in the foreground: SIGINT (Ctrl-C) or SIGTERM stops it
and the command exits 0. Requests still waiting for the backend are cancelled at once;
those being generated get ``--shutdown-timeout`` seconds (10) to finish, then are cancelled
(a 503; a backend that takes ``cancel=``, as ``hf.v1``, stops at its next token). A second
signal cancels everything at once and exits 0 within seconds, even if a backend call cannot be
interrupted. uvicorn's own warnings and errors are printed as one line each.

Every numeric option is checked as it is parsed: a bad one exits 2 with a line naming it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

_LOOPBACK = ("127.0.0.1", "localhost", "::1")

EXIT_GRACE = 3.0
"""Seconds after a second signal (or after the first signal's shutdown time and the cancelled
calls' grace) that the process waits for backend threads before it exits anyway."""


def _number(option: str, text: str, kind: type, low: float, high: float, what: str) -> Any:
    """``text`` of ``option`` as ``kind`` from ``low`` to ``high``; a :class:`RecaiError`
    naming the option otherwise (NaN and infinity are out of every range)."""
    from recai.errors import RecaiError

    try:
        value = kind(str(text).strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise RecaiError(f"{option} must be {what}, got {str(text)[:40]!r}")
    return value


def _checked(args: argparse.Namespace) -> dict[str, Any]:
    """The numeric options, checked before anything is built (exit 2 naming the first bad)."""
    seconds = "a number of seconds more than 0 and at most 86400"
    out: dict[str, Any] = {
        "port": _number(
            "--port",
            args.port,
            int,
            0,
            65535,
            "a whole number from 0 to 65535 (0 picks a free one)",
        ),
        "max_concurrency": _number(
            "--max-concurrency",
            args.max_concurrency,
            int,
            0,
            4096,
            "a whole number from 0 (up to 64 at once) to 4096",
        ),
        "shutdown_timeout": _number(
            "--shutdown-timeout", args.shutdown_timeout, float, 1e-3, 86400, seconds
        ),
        "queue_timeout": None,
        "max_prompt_tokens": None,
        "max_tokens": None,
    }
    if args.queue_timeout is not None:
        out["queue_timeout"] = _number(
            "--queue-timeout", args.queue_timeout, float, 1e-3, 86400, seconds
        )
    out["request_timeout"] = _number(
        "--request-timeout", args.request_timeout, float, 1e-3, 86400, seconds
    )
    out["max_queue"] = _number(
        "--max-queue", args.max_queue, int, 0, 10**6, "a whole number from 0 to 10^6"
    )
    out["session_ttl"] = _number(
        "--session-ttl", args.session_ttl, float, 1, 10**8, "a number of seconds from 1 to 10^8"
    )
    for option, key, value in (
        ("--max-prompt-tokens", "max_prompt_tokens", args.max_prompt_tokens),
        ("--max-tokens-limit", "max_tokens", args.max_tokens_limit),
    ):
        if value is not None:
            out[key] = _number(option, value, int, 1, 10**9, "a whole number from 1 to 10^9")
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``recai serve``'s arguments to ``parser`` (the kernel's command hook calls this)."""
    parser.description = (
        "Serve a recipe's agents (POST /v1/chat/completions with sessions and streaming, "
        "POST /v1/feedback, the REST API: /v1/recommend, /v1/items/ID/similar, /v1/search, "
        "/v1/explain; /metrics, /openapi.json, /docs, the chat page at /), or one LLM backend "
        "component over the OpenAI-compatible API: POST /v1/chat/completions (streaming too), "
        "POST /v1/completions (prompt scoring), GET /v1/models, GET /health, and Azure's "
        "/openai/deployments/NAME/... paths. Name it by a recipe (and --component), or by --use "
        "NAME with -p KEY=VALUE params. Stops on Ctrl-C or SIGTERM."
    )
    parser.add_argument(
        "recipe",
        nargs="?",
        help="recipe file: its agents are served (with its LLM backends and models), else its "
        "LLM backend",
    )
    parser.add_argument(
        "--component",
        "-c",
        help="the recipe's agent or LLM backend to serve (an LLM backend: only it, as before)",
    )
    parser.add_argument(
        "--use", help="registered name of an LLM backend to serve instead, e.g. hf.v1"
    )
    parser.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a param of --use (repeatable)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", default="8000", help="port (default 8000; 0 picks a free one)")
    parser.add_argument(
        "--model-name", help="the model name clients send (default: the component or --use name)"
    )
    parser.add_argument(
        "--max-concurrency",
        default="1",
        help="backend calls at once (default 1, as local models are rarely thread-safe; "
        "0: up to 64)",
    )
    parser.add_argument(
        "--queue-timeout",
        metavar="SECONDS",
        help="longest wait for a backend slot; then a 503 with Retry-After (default: no limit)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        default="10",
        metavar="SECONDS",
        help="on SIGINT/SIGTERM, how long requests being generated may finish before they are "
        "cancelled (default 10)",
    )
    parser.add_argument(
        "--max-prompt-tokens",
        metavar="N",
        help="refuse longer prompts with a 400 (default: the model's context)",
    )
    parser.add_argument(
        "--max-tokens-limit",
        metavar="N",
        help="refuse a larger max_tokens with a 400 (default: what the model's context leaves)",
    )
    parser.add_argument(
        "--api-key-env", metavar="VAR", help="require the key held by this environment variable"
    )
    agents = parser.add_argument_group("serving agents (a recipe with agent components)")
    agents.add_argument(
        "--sessions",
        metavar="FILE",
        help="keep chat sessions in this SQLite file, across restarts (default: in memory)",
    )
    agents.add_argument(
        "--session-ttl",
        default="86400",
        metavar="SECONDS",
        help="forget a session unused this long (default 86400, a day)",
    )
    agents.add_argument(
        "--max-queue",
        default="256",
        metavar="N",
        help="agent turns that may wait for a slot; more get a 429 at once (default 256)",
    )
    agents.add_argument(
        "--request-timeout",
        default="300",
        metavar="SECONDS",
        help="stop an agent turn running longer (at its next sentence) and answer 504 "
        "(default 300)",
    )
    agents.add_argument(
        "--cors",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let web pages of this origin call the server (repeatable; default: none)",
    )
    agents.add_argument(
        "--dataset", help="the recipe's dataset to serve (needed if it has several)"
    )
    agents.add_argument(
        "--out",
        metavar="DIR",
        help="folder for fitted models (default runs/<recipe name>-serve); reused next time",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no request log on stderr")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the backend, serve it until a signal, return 0."""
    from recai.commands import component_from_recipe, parse_params
    from recai.errors import RecaiError
    from recai.plugins import get_plugin_manager
    from recai.roles import Role

    if (args.recipe is None) == (args.use is None):
        raise RecaiError(
            "recai serve: give a recipe file (and --component NAME) or --use NAME, not both"
        )
    numbers = _checked(args)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise RecaiError(
                f"--api-key-env {args.api_key_env}: that environment variable is not set (or empty)"
            )

    def log(line: str) -> None:
        print(f"recai serve: {line}", file=sys.stderr, flush=True)

    if args.recipe is not None:
        if args.param:
            raise RecaiError(
                "--param gives the params of --use; a recipe's component takes its params "
                "from the recipe"
            )
        if _serves_agents(args.recipe, args.component):
            return _serve_agents(args, numbers, api_key, log)
        backend, label = component_from_recipe(args.recipe, Role.LLM_BACKEND, args.component)
    else:
        if args.component is not None:
            raise RecaiError(
                "--component picks a component of a recipe; with --use, give its params with -p"
            )
        params = parse_params(args.param, example="max_tokens=64")
        backend = get_plugin_manager().create(Role.LLM_BACKEND, args.use, **params)
        label = args.use
    for option, value in (
        ("--sessions", args.sessions),
        ("--dataset", args.dataset),
        ("--out", args.out),
        ("--cors", args.cors),
    ):
        if value:
            raise RecaiError(
                f"{option} is for serving agents; this serves the LLM backend {label!r} (a "
                "recipe with agent components serves them)"
            )
    model = args.model_name or label

    from .protocol import Limits
    from .server import LLMServer

    limits = Limits(
        max_prompt_tokens=numbers["max_prompt_tokens"], max_tokens=numbers["max_tokens"]
    )
    try:
        server = LLMServer(
            backend,
            model=model,
            host=args.host,
            port=numbers["port"],
            max_concurrency=numbers["max_concurrency"] or None,
            queue_timeout=numbers["queue_timeout"],
            shutdown_timeout=numbers["shutdown_timeout"],
            limits=limits,
            api_key=api_key,
            log=None if args.quiet else log,
        )
    except OSError as e:
        raise RecaiError(
            f"cannot listen on {args.host}:{numbers['port']}: {e.strerror or e}"
        ) from None
    if args.host not in _LOOPBACK and api_key is None:
        log(f"warning: listening on {args.host} without --api-key-env and without TLS")
    print(
        f"recai serve: {label} as model {model!r} at {server.base_url} (Ctrl-C stops)", flush=True
    )
    return _serve(server, numbers, log)


def _serves_agents(recipe: str, component: str | None) -> bool:
    """Whether ``recai serve RECIPE`` serves agents: the recipe has agent components and
    ``--component`` names none of its LLM backends."""
    from recai.plugins import get_plugin_manager
    from recai.recipe import check, load_recipe
    from recai.roles import Role

    plan = check(load_recipe(recipe), get_plugin_manager().registry())
    agents = [n for n, e in plan.resolved.items() if Role.AGENT in e.roles]
    if not agents:
        return False
    if component is None or component in agents:
        return True
    entry = plan.resolved.get(component)
    return entry is None or Role.LLM_BACKEND not in entry.roles


def _serve_agents(
    args: argparse.Namespace, numbers: dict[str, Any], api_key: str | None, log: Any
) -> int:
    """Serve the recipe's agents (and what else it serves) until a signal; return 0."""
    from recai.errors import RecaiError

    from .protocol import Limits
    from .served import served_from_recipe
    from .server import AgentServer
    from .sessions import MemorySessions, SQLiteSessions

    if args.model_name:
        raise RecaiError(
            "--model-name renames the one LLM backend served; agents are served under their "
            "recipe names"
        )
    for origin in args.cors:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise RecaiError(
                f"--cors {origin[:80]!r}: an origin is scheme://host[:port], e.g. "
                "http://localhost:3000"
            )
    sessions: Any
    if args.sessions:
        sessions = SQLiteSessions(args.sessions, ttl=numbers["session_ttl"])
    else:
        sessions = MemorySessions(ttl=numbers["session_ttl"])
    served, _ = served_from_recipe(
        args.recipe, component=args.component, dataset=args.dataset, out=args.out, log=log
    )
    limits = Limits(
        max_prompt_tokens=numbers["max_prompt_tokens"], max_tokens=numbers["max_tokens"]
    )
    try:
        server = AgentServer(
            served,
            host=args.host,
            port=numbers["port"],
            max_concurrency=numbers["max_concurrency"] or None,
            queue_timeout=numbers["queue_timeout"],
            max_queue=numbers["max_queue"],
            request_timeout=numbers["request_timeout"],
            shutdown_timeout=numbers["shutdown_timeout"],
            limits=limits,
            api_key=api_key,
            sessions=sessions,
            cors_origins=args.cors,
            log=None if args.quiet else log,
        )
    except OSError as e:
        sessions.close()
        raise RecaiError(
            f"cannot listen on {args.host}:{numbers['port']}: {e.strerror or e}"
        ) from None
    if args.host not in _LOOPBACK and api_key is None:
        log(f"warning: listening on {args.host} without --api-key-env and without TLS")
    others = [
        f"{kind} {', '.join(table)}"
        for kind, table in (
            ("LLM backends", served.backends),
            ("rankers", served.rankers),
            ("retrievers", served.retrievers),
            ("explainers", served.explainers),
        )
        if table
    ]
    print(
        f"recai serve: agents {', '.join(served.agents)}"
        + (f" (with {'; '.join(others)})" if others else "")
        + f" at {server.base_url} (chat page {server.url}/, API docs {server.url}/docs; "
        "Ctrl-C stops)",
        flush=True,
    )
    return _serve(server, numbers, log)


def _serve(server: Any, numbers: dict[str, Any], log: Any) -> int:
    """Run ``server`` in the foreground until SIGINT/SIGTERM; return 0."""
    from .server import CANCEL_GRACE

    signals = 0

    def stop(signum: int, frame: Any) -> None:
        nonlocal signals
        signals += 1
        force = signals > 1  # a second signal does not wait for requests in flight
        server.stop(force=force)
        # whatever a backend thread does, the process ends: at once after a second signal,
        # else after the shutdown time and the cancelled calls' grace
        wait = EXIT_GRACE if force else numbers["shutdown_timeout"] + CANCEL_GRACE + EXIT_GRACE
        timer = threading.Timer(wait, _exit_now, args=(server,))
        timer.daemon = True
        timer.start()

    _one_line_logs("uvicorn", log)
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, stop) for sig in handled}
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if server.backend_calls:  # a backend that cannot be cancelled is still generating
        _exit_now(server)
    print("recai serve: stopped", file=sys.stderr, flush=True)
    return 0


def _exit_now(server: Any) -> None:
    """End the process with status 0 without waiting for backend threads: a thread still in
    the model while the interpreter shuts down can abort the process (SIGABRT)."""
    print(
        f"recai serve: stopped ({server.backend_calls} backend call(s) abandoned)",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    os._exit(0)


class _OneLine(logging.Formatter):
    """A log record as one line: the message, and the exception's type and text (no traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage().strip()
        if record.exc_info and record.exc_info[1] is not None:
            e = record.exc_info[1]
            text += f" ({type(e).__name__}{': ' + str(e) if str(e) else ''})"
        return text


def _one_line_logs(name: str, log: Any) -> None:
    """Send the warnings and errors of logger ``name`` (uvicorn's) to ``log``, one line each."""

    class _ToLog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            log(self.format(record))

    handler = _ToLog(logging.WARNING)
    handler.setFormatter(_OneLine())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.propagate = False
