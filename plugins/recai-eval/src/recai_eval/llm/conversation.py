"""conversation.v1: a user-simulator LLM with a hidden target talks to a recommender.

RecLM-eval's *conversation* task. The simulator is told the user's history and a target item
(the user's held-out item) and must describe what it wants without naming it; the recommender
(an :class:`recai.Agent`, or an LLM backend given a recommender system prompt) asks or
recommends. The dialogue opens with the recommender's fixed ``greeting``; then each **turn** is
one simulator message and one recommender reply, up to ``max_turns``. A dialogue **hits** at
the first turn whose reply names the target: a listed title (numbered or bulleted line) that
grounds to it, or its full title written anywhere in the reply. Dialogues advance together, turn
by turn, so every turn's requests go out as one batch.

Metrics: ``Hit@N`` (share of dialogues that hit within ``N = max_turns`` turns) and ``AT@N``
(average turns to the hit, a miss counting ``N + 1``). Beside them: ``leak_rate`` (the simulator
wrote the target's title: the test was given away), ``nonexistent_rate``, ``duplicate_rate`` and
``in_history_rate`` over the recommender's listed titles (share of dialogues where some reply
shows the error), and ``failure_rate`` (the simulator said nothing; such a dialogue counts
as a miss). A dialogue in which a call raised has no result: it is left out of every metric and
asked again on a rerun, its earlier turns coming from the cache (:mod:`.base`).

**The scripted user** (``simulation = "scripted"``, :mod:`.scripted`) replaces the simulator LLM
with a deterministic one that reveals one attribute of the target per turn (the clues of
``script``: genres, decade, a similar item from the user's history, words of its description,
other fields), never its title: agents are compared offline and reproducibly.

**The user's history** (``share_history = true``): an agent's conversation starts with a system
message named ``recai_context`` whose content is JSON, ``{"user": <external user id>,
"history": [{"id": <external item id>, "title": ...}, ...]}`` (the whole history before the
target, oldest first, as a recommender that knows its logged-in user has it; an agent shows what
it wants of it); an LLM recommender gets the last ``max_history`` titles in a line of its system
prompt. An agent that
learns (a ``fit`` of its own, e.g. one wrapping a ranker) is fitted on the leave-one-out
training split first (``ctx.fit``, which fits its recipe dependencies too).

**Turn costs.** An agent that has ``respond(conversation)`` returning an object with ``text``
(and optionally ``llm_calls``, ``plan_valid``, ``tool_failures`` or a ``trace`` of steps with an
``error``) is asked through it; the metrics then add ``llm_calls_per_turn``, and where given
``plan_valid_rate`` and ``tool_failures_per_turn``. Every fresh agent reply is timed:
``seconds_per_turn`` (wall time of the call, with ``concurrency`` replies in flight at once;
set ``concurrency = 1`` for clean timings; cached turns have none). These are means over the
dialogues that have them (each dialogue's own mean per turn), with 95% intervals.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import recai
from recai.data.context import context_message
from recai.runtime import RunContext
from recai.types import Message, Report

from .base import Case, LLMTask, Session, fixed_text, sample_cases
from .cache import request_key
from .params import ConversationParams
from .parsing import listed_items
from .prompts import GREETING, HISTORY_LINE, RECOMMENDER, SIMULATOR, render
from .runner import AgentCaller, Answer, own_respond
from .scoring import core_title, error_flags, mean_and_intervals, mentions_title
from .scripted import Clue, ScriptedUser

#: The ``name`` of the system message that tells an agent the user's history.
#: Turn facts an agent's ``respond`` may report, summed per dialogue.
TURN_FACTS = ("llm_calls", "plan_valid", "tool_failures", "seconds")

__all__ = ["ConversationEvaluator"]


@dataclass
class Dialogue:
    case: Case
    simulator: list[Message]
    recommender: list[Message]
    turns: int = 0
    hit_turn: int | None = None
    failed: bool = False
    leaked: bool = False
    flags: dict[str, bool] = field(
        default_factory=lambda: {"nonexistent": False, "duplicate": False, "in_history": False}
    )
    clues: list[Clue] = field(default_factory=list)
    listed: bool = False
    #: fact -> (sum over the turns that reported it, number of such turns)
    facts: dict[str, list[float]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return not self.failed and self.hit_turn is None


class TurnCaller(AgentCaller):
    """Asks an agent, timing each reply and keeping the turn facts its ``respond`` reports
    (see the module docstring) in the cache record."""

    def ask(self, request: Sequence[Message]) -> tuple[str, dict[str, Any]]:
        start = time.perf_counter()
        respond = own_respond(self.component)
        if respond is None:
            reply = super().ask(request)
            return reply[0], {"seconds": time.perf_counter() - start}
        done = respond(list(request))
        seconds = time.perf_counter() - start
        text = getattr(done, "text", None)
        if not isinstance(text, str):
            raise TypeError(
                f"the agent's respond returned {type(done).__name__} without a text string"
            )
        return text, {"seconds": seconds, **turn_facts(done)}


def turn_facts(reply: Any) -> dict[str, float]:
    """The numbers a reply object reports: ``llm_calls``, ``plan_valid`` (0/1),
    ``tool_failures`` (or the steps of its ``trace`` with an ``error``)."""
    out: dict[str, float] = {}
    for name in ("llm_calls", "plan_valid", "tool_failures"):
        value = getattr(reply, name, None)
        if isinstance(value, bool | int | float) and np.isfinite(float(value)):
            out[name] = float(value)
    trace = getattr(reply, "trace", None)
    if "tool_failures" not in out and isinstance(trace, Sequence):
        out["tool_failures"] = float(sum(getattr(t, "error", None) is not None for t in trace))
    return out


class ConversationEvaluator(LLMTask):
    """Simulated conversations: Hit@N and AT@N of ``recommender`` against a simulated user.

    ``simulator_prompt`` may use ``{history}`` and ``{target}``; ``recommender_prompt`` (used
    when the recommender is an LLM backend) may use ``{k}``.
    """

    Params = ConversationParams
    positional = ("dataset", "recommender", "simulator")
    params: ConversationParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p = self.params
        self.simulator_prompt = SIMULATOR if p.simulator_prompt is None else p.simulator_prompt
        self.recommender_prompt = (
            RECOMMENDER if p.recommender_prompt is None else p.recommender_prompt
        )
        self.greeting = fixed_text(GREETING if p.greeting is None else p.greeting, "greeting")

    def _start(self, s: Session, case: Case, scripted: ScriptedUser | None) -> Dialogue:
        shown = case.shown(self.params.max_history)
        recommender = [Message.assistant(self.greeting)]
        if self.params.share_history and isinstance(self.params.recommender, recai.Agent):
            recommender.insert(0, self._context(s, case))
        if scripted is not None:
            clues = scripted.clues(case.user, case.target, case.history.tolist())
            return Dialogue(case, simulator=[], recommender=recommender, clues=clues)
        system = render(
            self.simulator_prompt,
            self.placeholders["simulator_prompt"],
            history="; ".join(s.items(shown)),
            target=s.item(case.target),
        )
        return Dialogue(
            case,
            simulator=[Message.system(system), Message.user(self.greeting)],
            recommender=recommender,
        )

    def _context(self, s: Session, case: Case) -> Message:
        # all of the history before the target, as a recommender that knows its user has it
        return context_message(s.external_user(case.user), case.history, s.catalog)

    def _recommender_request(self, s: Session, d: Dialogue) -> list[Message]:
        if isinstance(self.params.recommender, recai.LLMBackend):
            system = render(
                self.recommender_prompt,
                self.placeholders["recommender_prompt"],
                k=self.params.n_recommend,
            )
            if self.params.share_history:
                shown = s.items(d.case.shown(self.params.max_history))
                system += "\n" + HISTORY_LINE.format(history="; ".join(shown))
            return [Message.system(system), *d.recommender]
        return list(d.recommender)

    def _hits(self, s: Session, d: Dialogue, reply: str) -> bool:
        items = listed_items(reply)
        d.listed = bool(items)
        grounded = s.matcher.ground_all(items)
        if items:
            flags = error_flags(grounded, history=d.case.history.tolist())
            for kind, value in flags.items():
                d.flags[kind] = d.flags[kind] or value
        title = s.catalog.title(d.case.target)
        return int(d.case.target) in [g for g in grounded if g is not None] or mentions_title(
            reply, title
        )

    def _simulate(
        self, s: Session, active: list[Dialogue], turn: int, scripted: ScriptedUser | None
    ) -> list[Answer]:
        """The simulated user's messages at ``turn``."""
        if scripted is None:
            simulator = self.params.simulator
            assert simulator is not None  # the params require it without a script
            return s.ask(simulator, [d.simulator for d in active], f"simulator turn {turn}")
        return [
            Answer(scripted.message(d.case.user, d.case.target, d.clues, turn, d.listed))
            for d in active
        ]

    def _recommend(self, s: Session, speaking: list[Dialogue], turn: int) -> list[Answer]:
        """The recommender's replies at ``turn``; an agent's turn facts go to its dialogue."""
        recommender = self.params.recommender
        requests = [self._recommender_request(s, d) for d in speaking]
        if not isinstance(recommender, recai.Agent):
            return s.ask(recommender, requests, f"recommender turn {turn}")
        caller = TurnCaller(recommender, dict(s.options))
        # keyed as the runner keys them, before the calls (an agent may change as it answers)
        keys = [
            request_key(caller.description, caller.payload(r), caller.options) for r in requests
        ]
        answers = s.runner.run(caller, requests, desc=f"{s.stage}: recommender turn {turn}")
        for d, key, answer in zip(speaking, keys, answers, strict=True):
            if not answer.ok or answer.cached:
                continue
            record = s.cache.get(key) or {}
            for name in TURN_FACTS:
                value = record.get(name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    total = d.facts.setdefault(name, [0.0, 0.0])
                    total[0] += float(value)
                    total[1] += 1
        return answers

    def evaluate(self, ctx: RunContext) -> Report:
        s = Session(self, ctx)
        p = self.params
        if isinstance(p.recommender, recai.Agent):
            ctx.fit(p.recommender, s.split)  # a no-op for an agent that does not learn
        scripted = (
            ScriptedUser(s.catalog, s.split.train, p.script, seed=s.seed)
            if p.simulation == "scripted"
            else None
        )
        cases, counts = sample_cases(s.data, s.split, p.samples, s.seed)
        dialogues = [self._start(s, c, scripted) for c in cases]
        hits_by_turn = [0] * p.max_turns
        for turn in range(1, p.max_turns + 1):
            active = [d for d in dialogues if d.active]
            if not active:
                break
            said = self._simulate(s, active, turn, scripted)
            speaking = []
            for d, answer in zip(active, said, strict=True):
                text = (answer.text or "").strip()
                if not answer.ok:
                    d.failed = True
                    s.no_answer(d.case, f"simulator turn {turn}", answer)
                    continue
                if not text:
                    d.failed = True
                    s.fail(d.case, f"simulator turn {turn}", "empty message")
                    continue
                d.leaked = d.leaked or mentions_title(
                    text, core_title(s.catalog.title(d.case.target))
                )
                d.simulator.append(Message.assistant(text))
                d.recommender.append(Message.user(text))
                speaking.append(d)
            replies = self._recommend(s, speaking, turn)
            for d, answer in zip(speaking, replies, strict=True):
                if not answer.ok:
                    d.failed = True
                    s.no_answer(d.case, f"recommender turn {turn}", answer)
                    continue
                text = answer.text or ""
                d.turns = turn
                d.recommender.append(Message.assistant(text))
                d.simulator.append(Message.user(text))
                if self._hits(s, d, text):
                    d.hit_turn = turn
                    hits_by_turn[turn - 1] += 1

        n = p.max_turns
        hit = np.array([d.hit_turn is not None for d in dialogues], dtype=np.float64)
        turns = np.array(
            [d.hit_turn if d.hit_turn is not None else n + 1 for d in dialogues], dtype=np.float64
        )
        cases = [d.case for d in dialogues]
        accuracy, intervals = mean_and_intervals(
            s.measured(cases, {f"Hit@{n}": hit, f"AT@{n}": turns}), p.bootstrap, s.seed
        )
        columns = {
            "leak_rate": np.array([d.leaked for d in dialogues], dtype=np.float64),
            **{
                f"{kind}_rate": np.array([d.flags[kind] for d in dialogues], dtype=np.float64)
                for kind in ("nonexistent", "duplicate", "in_history")
            },
            "failure_rate": np.array([d.failed for d in dialogues], dtype=np.float64),
        }
        errors, _ = mean_and_intervals(s.measured(cases, columns), 0, s.seed)
        costs, cost_intervals, cost_info = self._turn_costs(s, dialogues)
        intervals.update(cost_intervals)
        for d in dialogues:
            s.record(
                d.case,
                hit_turn=d.hit_turn,
                turns=d.turns,
                failed=d.failed,
                leaked=d.leaked,
                flags=d.flags,
                clues=[c.text for c in d.clues] if scripted is not None else None,
                turn_facts={k: v[0] / v[1] for k, v in d.facts.items() if v[1]},
                dialogue=[m.to_dict() for m in d.recommender],
            )
        name = ctx.name_of(p.recommender)
        told = (
            f"knows its last {p.max_history} history items and "
            if scripted is None
            else f"(scripted, no LLM: one clue per turn from {', '.join(p.script)}, never the "
            "title) "
        )
        protocol = (
            f"leave-one-out by time; a simulated user who {told}secretly wants its held-out "
            f"item talks with the recommender for up to {n} turns; hit when a reply names the "
            f"item (listed title grounded by {s.matcher.method} >= {s.matcher.threshold}, or the "
            f"full title in the text); AT@{n} counts a miss as {n + 1} turns"
            + (
                "; the recommender is told the user's history (an LLM its last "
                f"{p.max_history} items)"
                if p.share_history
                else ""
            )
        )
        info = s.info(
            protocol,
            len(dialogues),
            counts,
            task="conversation",
            max_turns=n,
            recommender=self.describe(p.recommender),
            simulation=p.simulation,
            simulator=(scripted.describe() if scripted is not None else self.describe(p.simulator)),
            share_history=p.share_history,
            hits_by_turn=hits_by_turn,
            max_history=p.max_history,
            fields=list(p.fields),
            turn_costs=cost_info,
        )
        notes: list[str] = []
        leaks = int(columns["leak_rate"].sum())
        if leaks:
            notes.append(f"The simulator named its target in {leaks} dialogues (see leak_rate).")
        return s.report(
            {name: {**accuracy, **errors, **costs}},
            info,
            {name: intervals} if intervals else None,
            notes,
        )

    def _turn_costs(
        self, s: Session, dialogues: list[Dialogue]
    ) -> tuple[dict[str, float], dict[str, tuple[float, float]], dict[str, Any]]:
        """Per-turn means of the turn facts over the dialogues that reported them."""
        names = {
            "llm_calls": "llm_calls_per_turn",
            "plan_valid": "plan_valid_rate",
            "tool_failures": "tool_failures_per_turn",
            "seconds": "seconds_per_turn",
        }
        means: dict[str, float] = {}
        intervals: dict[str, tuple[float, float]] = {}
        info: dict[str, Any] = {}
        for fact, metric in names.items():
            have = [
                d for d in dialogues if fact in d.facts and d.facts[fact][1] and s.answered(d.case)
            ]
            if not have:
                continue
            column = np.array([d.facts[fact][0] / d.facts[fact][1] for d in have])
            mean, interval = mean_and_intervals({metric: column}, self.params.bootstrap, s.seed)
            means.update(mean)
            intervals.update(interval)
            info[metric] = {
                "dialogues": len(have),
                "turns": int(sum(d.facts[fact][1] for d in have)),
            }
        return means, intervals, info
