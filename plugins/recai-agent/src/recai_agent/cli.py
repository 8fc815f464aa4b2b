"""``recai chat RECIPE``: a conversation with a recipe's agent (interecagent.v1 or any Agent).

- In a terminal, without ``--message``: an interactive chat; the reply streams sentence by
  sentence as it is written and grounded. An empty line, ``exit`` or Ctrl-D ends it.
- ``--message TEXT`` (repeatable): a scripted conversation, run non-interactively; the replies
  are printed, or with ``--json`` one JSON object with, per turn, the text, the items with their
  evidence, the trace of tool calls, the plan, the LLM calls and the seconds.
- Without a terminal and without ``--message``, each line of standard input is one message.

The agent's learning parts (ranker, similarity) are fitted on all the dataset's interactions
once and cached under ``--out`` (``runs/<recipe name>-chat`` by default), so the next chat
starts at once. ``--user ID`` starts the conversation as that user of the dataset (their
history reaches the agent in the ``recai_context`` message).

Idle OpenMP threads sleep instead of spinning (:func:`passive_openmp`): torch's models (SASRec)
run thousands of small parallel regions per batch, and between them a spinning team burns the
CPU it is given; on a two-core machine shared with other work a SASRec fit then used 4.5 times
the CPU of its work and took as much longer (47.7 s against 10.2 s for two epochs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from recai.errors import RecaiError
from recai.openmp import passive_openmp

if TYPE_CHECKING:
    from recai.recipe import Plan

__all__ = ["AgentBuild", "configure", "run", "build_agent", "default_out", "passive_openmp"]

#: Longest message accepted, in characters.
MAX_MESSAGE_CHARS = 4000
#: Most messages in one scripted conversation.
MAX_MESSAGES = 100


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``recai chat``'s arguments to ``parser`` (the kernel's command hook calls this)."""
    parser.description = (
        "Chat with a recipe's agent (e.g. examples/agent.toml: InteRecAgent on MovieLens-100K "
        "with the embedded SmolLM2 brain). Interactive in a terminal; --message TEXT (repeatable) "
        "runs a scripted conversation and prints the replies (--json: items, evidence, trace, "
        "LLM calls and seconds per turn)."
    )
    parser.add_argument("recipe", help="recipe file with an agent component")
    parser.add_argument(
        "--component", "-c", help="the recipe's agent to chat with (needed if it has several)"
    )
    parser.add_argument(
        "--message",
        "-m",
        action="append",
        default=None,
        metavar="TEXT",
        help="a user message (repeatable: one per turn); runs without a terminal",
    )
    parser.add_argument("--json", action="store_true", help="print the turns as one JSON object")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="after each reply, print how it was made: the plan, each tool call (input, items "
        "left, milliseconds), the LLM calls and the seconds",
    )
    parser.add_argument(
        "--user", help="chat as this user of the dataset (external id): their history is known"
    )
    parser.add_argument(
        "--out",
        help="folder for fitted models (default runs/<recipe name>-chat); reused next time",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    messages = _messages(args)
    passive_openmp()
    agent, name, out = _build(args)
    context = _context(agent, args.user) if args.user is not None else []
    if messages is None:
        if sys.stdin.isatty():
            return _interactive(agent, name, context)
        messages = [line.strip() for line in sys.stdin if line.strip()][:MAX_MESSAGES]
        if not messages:
            raise RecaiError("recai chat: no --message given and nothing on standard input")
    turns = []
    conversation: list[Any] = list(context)
    from recai.types import Message

    for text in messages:
        conversation.append(Message.user(text))
        start = time.perf_counter()
        reply = _respond(agent, conversation)
        conversation.append(Message.assistant(reply["text"]))
        reply.setdefault("seconds", round(time.perf_counter() - start, 4))
        turns.append({"user": text, **reply})
        if not args.json:
            print(f"you: {text}")
            print(f"{name}: {reply['text']}")
            if args.trace:
                print(_trace_text(reply))
            print()
    if args.json:
        body = {"recipe": str(args.recipe), "agent": name, "fitted_in": str(out), "turns": turns}
        print(json.dumps(body, indent=2, ensure_ascii=False, default=_jsonable))
    return 0


def _messages(args: argparse.Namespace) -> list[str] | None:
    if args.message is None:
        return None
    if len(args.message) > MAX_MESSAGES:
        raise RecaiError(
            f"recai chat: {len(args.message)} --message options, more than {MAX_MESSAGES}"
        )
    for n, text in enumerate(args.message, 1):
        if not text.strip():
            raise RecaiError(f"recai chat: --message number {n} is empty")
        if len(text) > MAX_MESSAGE_CHARS:
            raise RecaiError(
                f"recai chat: --message number {n} has {len(text):,} characters, more than "
                f"{MAX_MESSAGE_CHARS:,}"
            )
    return list(args.message)


def _build(args: argparse.Namespace) -> tuple[Any, str, Path]:
    """The recipe's agent, fitted (with its parts) on all the dataset's interactions."""

    def log(line: str) -> None:
        print(f"recai chat: {line}", file=sys.stderr)

    agent, name, fit, _ = build_agent(
        args.recipe, args.component, args.out, verb="chat with", log=log
    )
    if fit is not None:
        fit()
    return agent, name, default_out(args.recipe, args.out)


def default_out(recipe_path: str, out: str | None) -> Path:
    """The folder whose ``artifacts`` cache the agent's fits (``runs/<recipe>-chat``, shared by
    ``recai chat`` and ``recai mcp``)."""
    return Path(out) if out else Path("runs") / f"{Path(str(recipe_path)).stem}-chat"


class AgentBuild(NamedTuple):
    """What :func:`build_agent` gives: the agent, its recipe name, what fits it (None when
    nothing learns) and the other components asked for with ``also``, by recipe name."""

    agent: Any
    name: str
    fit: Callable[[], None] | None
    also: dict[str, Any]


def build_agent(
    recipe_path: str,
    component: str | None,
    out: str | None,
    *,
    verb: str = "serve",
    log: Callable[[str], None] = print,
    also: Sequence[str] | Callable[[Plan, str], Sequence[str]] = (),
) -> AgentBuild:
    """The recipe's agent (the one it has, or ``component``), its name, and what fits it (with
    its parts) on all the dataset's interactions, cached under :func:`default_out` (None when
    nothing learns). A recipe without that agent is a :class:`RecaiError` naming the agents it
    has (``verb``: what the command does with it, for the message).

    ``also``: other components of the recipe built with the agent (one build: they share its
    dataset and models) and fitted with it when they learn; their names, or what picks them
    from the checked recipe once the agent is chosen (``also(plan, agent_name)``; it raises
    the :class:`RecaiError` of a bad choice). One that reads another dataset than the agent's
    is refused by name."""
    from recai.data import Split
    from recai.plugins import get_plugin_manager
    from recai.recipe import build, check, load_recipe, pick
    from recai.roles import Role
    from recai.runtime import RunContext

    recipe = load_recipe(recipe_path)
    pm = get_plugin_manager()
    plan = check(recipe, pm.registry())
    name = pick(plan, Role.AGENT, component, "--component", verb=verb)
    wanted = also(plan, name) if callable(also) else [also] if isinstance(also, str) else also
    others = [n for n in dict.fromkeys(wanted) if n != name]
    unknown = [n for n in others if n not in plan.resolved]
    if unknown:
        raise RecaiError(
            f"{recipe.source}: no component {unknown[0]!r} to build with agent {name!r}; "
            f"components: {', '.join(plan.resolved)}"
        )
    built = build(recipe, pm, only=[name, *others])
    agent = built[name]
    dataset = getattr(getattr(agent, "params", None), "dataset", None)
    role = {  # for the messages: "explainer why"
        n: next((r.title for r in Role if r in plan.resolved[n].roles), "component") for n in others
    }
    for n in others:
        theirs = getattr(getattr(built[n], "params", None), "dataset", None)
        if theirs is not None and dataset is not None and theirs is not dataset:
            raise RecaiError(
                f"{recipe.source}: {role[n]} {n!r} reads dataset "
                f"{built.name_of(theirs)!r}, agent {name!r} dataset {built.name_of(dataset)!r}: "
                "the tools name the items of one catalog"
            )
    parts = {n: built[n] for n in others}
    learners = [obj for obj in (agent, *parts.values()) if callable(getattr(obj, "fit", None))]
    if dataset is None or not learners:
        return AgentBuild(agent, name, None, parts)
    folder = default_out(recipe_path, out)
    seed = recipe.run.seed if recipe.run is not None else 0
    with_them = " and ".join(f"{role[n]} {n}" for n in others)

    def fit() -> None:
        ctx = RunContext(folder, seed=seed, built=built, progress=True)  # lines when not a tty
        fitting = f"{name} and {with_them}" if with_them else name
        log(f"fitting {fitting} (cached under {folder}/artifacts)")
        start = time.perf_counter()
        split = Split.full(dataset.dataset())
        for obj in learners:
            ctx.fit(obj, split)
        took = f"{name} fitted in {time.perf_counter() - start:.1f} s"
        log(took + (f" ({with_them} too)" if with_them else ""))

    return AgentBuild(agent, name, fit, parts)


def _context(agent: Any, user: str) -> list[Any]:
    import numpy as np

    from .baselines import context_message

    dataset = agent.params.dataset.dataset()
    ids = dataset.user_ids
    where = None
    if ids is not None:
        hits = np.flatnonzero(np.asarray(ids).astype(str) == str(user))
        where = int(hits[0]) if len(hits) else None
    elif str(user).isdigit() and int(user) < dataset.interactions.n_users:
        where = int(user)
    if where is None:
        raise RecaiError(f"recai chat: --user {user!r} is not a user of dataset {dataset.name!r}")
    inter = dataset.interactions
    rows = np.flatnonzero(inter.users == where)
    if inter.timestamps is not None:
        rows = rows[np.argsort(inter.timestamps[rows], kind="stable")]
    return [context_message(user, inter.items[rows].tolist(), dataset.catalog)]


def _respond(agent: Any, conversation: list[Any], on_text: Any = None) -> dict[str, Any]:
    if hasattr(agent, "respond"):
        kwargs = {"on_text": on_text} if on_text is not None else {}
        try:
            reply = agent.respond(conversation, **kwargs)
        except TypeError:
            reply = agent.respond(conversation)
        if hasattr(reply, "to_dict"):
            return dict(reply.to_dict())
        return {k: getattr(reply, k) for k in ("text", "items", "llm_calls", "seconds")}
    return {"text": agent.reply(conversation).content}


def _interactive(agent: Any, name: str, context: list[Any]) -> int:
    from recai.types import Message

    print(f"Chatting with {name}. An empty line, 'exit' or Ctrl-D ends.", file=sys.stderr)
    conversation: list[Any] = list(context)
    while True:
        try:
            text = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not text or text.lower() in ("exit", "quit"):
            return 0
        conversation.append(Message.user(text[:MAX_MESSAGE_CHARS]))
        print(f"{name}> ", end="", flush=True)

        streamed: list[str] = []

        def show(piece: str, streamed: list[str] = streamed) -> None:
            streamed.append(piece)
            print(piece, end="", flush=True)

        reply = _respond(agent, conversation, on_text=show)
        if not streamed:  # an agent that does not stream
            print(reply["text"], end="")
        print("\n")
        conversation.append(Message.assistant(reply["text"]))


def _trace_text(reply: dict[str, Any]) -> str:
    """How a reply was made, for people: ``  [plan: hard_filter > ranking > map | valid]``, one
    line per tool call, then the calls and the time."""
    lines = []
    plan = reply.get("plan")
    if isinstance(plan, dict):
        tools = " > ".join(str(s.get("tool")) for s in plan.get("steps", []))
        valid = reply.get("plan_valid")
        state = "" if valid is None else (" | valid" if valid else " | invalid, repaired")
        lines.append(f"  [plan: {tools or 'none'}{state}]")
    for step in reply.get("trace") or []:
        step = step if isinstance(step, dict) else _jsonable(step)
        arg = json.dumps(step.get("input"), ensure_ascii=False, default=str)
        arg = arg if len(arg) <= 100 else arg[:97] + "..."
        err = f" ERROR {step['error']}" if step.get("error") else ""
        lines.append(
            f"  [{step.get('tool')} {arg} -> {step.get('out_size')} items, "
            f"{1000 * float(step.get('seconds') or 0):.0f} ms{err}]"
        )
    seconds = float(reply.get("seconds") or 0)
    llm = reply.get("llm_seconds")
    spent = f"{seconds:.1f} s" + (f", {float(llm):.1f} s in the LLM" if llm is not None else "")
    calls = reply.get("llm_calls", "?")
    lines.append(f"  [{calls} LLM call{'' if calls == 1 else 's'}, {spent}]")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)
