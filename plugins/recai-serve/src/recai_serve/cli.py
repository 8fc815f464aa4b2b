"""``recai serve``: one LLM backend over the OpenAI API (registered by :mod:`.plugin`).

The backend is a recipe's component (``recai serve recipe.toml -c brain``) or a registered name
with its params (``recai serve --use hf.v1 -p max_tokens=64``). The server is
:class:`~recai_serve.server.LLMServer` in the foreground: SIGINT (Ctrl-C) or SIGTERM stops it
and the command exits 0. Requests in flight get up to 10 s to finish; a second signal stops
waiting for them (a backend call already running still ends first: a thread cannot be
interrupted). uvicorn's own warnings and errors are printed as one line each.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``recai serve``'s arguments to ``parser`` (the kernel's command hook calls this)."""
    parser.description = (
        "Serve one LLM backend component over the OpenAI-compatible API: POST "
        "/v1/chat/completions (streaming too), POST /v1/completions (prompt scoring), GET "
        "/v1/models, GET /health, and Azure's /openai/deployments/NAME/... paths. Name it by a "
        "recipe and --component, or by --use NAME with -p KEY=VALUE params. Stops on Ctrl-C or "
        "SIGTERM."
    )
    parser.add_argument(
        "recipe", nargs="?", help="recipe file whose LLM backend component to serve"
    )
    parser.add_argument(
        "--component",
        "-c",
        help="the recipe's component to serve (needed if it has several LLM backends)",
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
    parser.add_argument(
        "--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)"
    )
    parser.add_argument(
        "--model-name", help="the model name clients send (default: the component or --use name)"
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=1,
        help="backend calls at once (default 1, as local models are rarely thread-safe; "
        "0: up to 64)",
    )
    parser.add_argument(
        "--api-key-env", metavar="VAR", help="require the key held by this environment variable"
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
    if not 0 <= args.port <= 65535:
        raise RecaiError(f"--port must be from 0 to 65535 (0 picks a free one), got {args.port}")
    if args.max_concurrency < 0:
        raise RecaiError(
            f"--max-concurrency must be 0 (up to 64) or more, got {args.max_concurrency}"
        )
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise RecaiError(
                f"--api-key-env {args.api_key_env}: that environment variable is not set (or empty)"
            )
    if args.recipe is not None:
        if args.param:
            raise RecaiError(
                "--param gives the params of --use; a recipe's component takes its params "
                "from the recipe"
            )
        backend, label = component_from_recipe(args.recipe, Role.LLM_BACKEND, args.component)
    else:
        if args.component is not None:
            raise RecaiError(
                "--component picks a component of a recipe; with --use, give its params with -p"
            )
        params = parse_params(args.param, example="max_tokens=64")
        backend = get_plugin_manager().create(Role.LLM_BACKEND, args.use, **params)
        label = args.use
    model = args.model_name or label

    def log(line: str) -> None:
        print(f"recai serve: {line}", file=sys.stderr, flush=True)

    from .server import LLMServer

    try:
        server = LLMServer(
            backend,
            model=model,
            host=args.host,
            port=args.port,
            max_concurrency=args.max_concurrency or None,
            api_key=api_key,
            log=None if args.quiet else log,
        )
    except OSError as e:
        raise RecaiError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    if args.host not in _LOOPBACK and api_key is None:
        log(f"warning: listening on {args.host} without --api-key-env and without TLS")
    print(
        f"recai serve: {label} as model {model!r} at {server.base_url} (Ctrl-C stops)", flush=True
    )
    signals = 0

    def stop(signum: int, frame: Any) -> None:
        nonlocal signals
        signals += 1
        server.stop(force=signals > 1)  # a second signal does not wait for requests in flight

    _one_line_logs("uvicorn", log)
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, stop) for sig in handled}
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("recai serve: stopped", file=sys.stderr, flush=True)
    return 0


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
