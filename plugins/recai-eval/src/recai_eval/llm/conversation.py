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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import recai
from recai.runtime import RunContext
from recai.types import Message, Report

from .base import Case, LLMTask, Session, fixed_text, sample_cases
from .params import ConversationParams
from .parsing import listed_items
from .prompts import GREETING, RECOMMENDER, SIMULATOR, render
from .scoring import core_title, error_flags, mean_and_intervals, mentions_title

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

    @property
    def active(self) -> bool:
        return not self.failed and self.hit_turn is None


class ConversationEvaluator(LLMTask):
    """Simulated conversations: Hit@N and AT@N of ``recommender`` against ``simulator``.

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

    def _start(self, s: Session, case: Case) -> Dialogue:
        system = render(
            self.simulator_prompt,
            self.placeholders["simulator_prompt"],
            history="; ".join(s.items(case.shown(self.params.max_history))),
            target=s.item(case.target),
        )
        return Dialogue(
            case,
            simulator=[Message.system(system), Message.user(self.greeting)],
            recommender=[Message.assistant(self.greeting)],
        )

    def _recommender_request(self, d: Dialogue) -> list[Message]:
        if isinstance(self.params.recommender, recai.LLMBackend):
            system = render(
                self.recommender_prompt,
                self.placeholders["recommender_prompt"],
                k=self.params.n_recommend,
            )
            return [Message.system(system), *d.recommender]
        return list(d.recommender)

    def _hits(self, s: Session, d: Dialogue, reply: str) -> bool:
        items = listed_items(reply)
        grounded = s.matcher.ground_all(items)
        if items:
            flags = error_flags(grounded, history=d.case.history.tolist())
            for kind, value in flags.items():
                d.flags[kind] = d.flags[kind] or value
        title = s.catalog.title(d.case.target)
        return int(d.case.target) in [g for g in grounded if g is not None] or mentions_title(
            reply, title
        )

    def evaluate(self, ctx: RunContext) -> Report:
        s = Session(self, ctx)
        cases, counts = sample_cases(s.data, s.split, self.params.samples, s.seed)
        dialogues = [self._start(s, c) for c in cases]
        hits_by_turn = [0] * self.params.max_turns
        for turn in range(1, self.params.max_turns + 1):
            active = [d for d in dialogues if d.active]
            if not active:
                break
            said = s.ask(
                self.params.simulator, [d.simulator for d in active], f"simulator turn {turn}"
            )
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
            replies = s.ask(
                self.params.recommender,
                [self._recommender_request(d) for d in speaking],
                f"recommender turn {turn}",
            )
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

        n = self.params.max_turns
        hit = np.array([d.hit_turn is not None for d in dialogues], dtype=np.float64)
        turns = np.array(
            [d.hit_turn if d.hit_turn is not None else n + 1 for d in dialogues], dtype=np.float64
        )
        cases = [d.case for d in dialogues]
        accuracy, intervals = mean_and_intervals(
            s.measured(cases, {f"Hit@{n}": hit, f"AT@{n}": turns}), self.params.bootstrap, s.seed
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
        for d in dialogues:
            s.record(
                d.case,
                hit_turn=d.hit_turn,
                turns=d.turns,
                failed=d.failed,
                leaked=d.leaked,
                flags=d.flags,
                dialogue=[m.to_dict() for m in d.recommender],
            )
        name = ctx.name_of(self.params.recommender)
        protocol = (
            f"leave-one-out by time; a simulated user who knows its last {self.params.max_history} "
            f"history items and secretly wants its held-out item talks with the recommender for "
            f"up to {n} turns; hit when a reply names the item (listed title grounded by "
            f"{s.matcher.method} >= {s.matcher.threshold}, or the full title in the text); "
            f"AT@{n} counts a miss as {n + 1} turns"
        )
        info = s.info(
            protocol,
            len(dialogues),
            counts,
            task="conversation",
            max_turns=n,
            recommender=self.describe(self.params.recommender),
            simulator=self.describe(self.params.simulator),
            hits_by_turn=hits_by_turn,
            max_history=self.params.max_history,
            fields=list(self.params.fields),
        )
        notes: list[str] = []
        leaks = int(columns["leak_rate"].sum())
        if leaks:
            notes.append(f"The simulator named its target in {leaks} dialogues (see leak_rate).")
        return s.report(
            {name: {**accuracy, **errors}}, info, {name: intervals} if intervals else None, notes
        )
