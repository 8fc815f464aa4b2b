"""agent-retrieval.v1 and agent-ranking.v1: InteRecAgent's one-turn protocols for any agent.

InteRecAgent (arXiv 2308.16505) measures agents also in **one turn**: a user's single request
describes a hidden target item by its attributes, never its title, and the agent answers once.

- **retrieval** (``agent-retrieval.v1``): the agent recommends over the whole catalog, asked
  for ``n_recommend`` items (5); ``Recall@k`` is the share of requests whose target is among
  the first ``k`` items of the reply (with one target per request, Recall@k is Hit@k);
- **ranking** (``agent-ranking.v1``): the agent is given the target and ``n_candidates - 1``
  (19) negatives, in a random order, and must order all of them; ``NDCG@n`` of the target
  (``n = n_candidates``) and ``Hit@k`` (k = 1, 5). Every listed item keeps its slot, one
  outside the candidates too (as in ``llm-ranking.v1``: listing other items pushes the target
  down); a target the reply leaves out is a miss (NDCG 0), as in RecAI's evaluation;
  ``coverage`` says what share of the candidates the replies ordered.

**The protocol.** Users are sampled as in every LLM task (:mod:`.base`: leave-one-out by time,
the held-out item is the target). Negatives are drawn with the task's seed among the items the
user never interacted with (:func:`.ranking.candidate_sets`, as ``llm-ranking.v1``; users with
too few such items are left out and counted; the same seed draws the same candidates in the
same order as ``llm-ranking.v1``, so an agent and a bare LLM are compared on the same lists). The agent gets a conversation of two messages:
the ``recai_context`` system message (:mod:`recai.data.context`) with the user's id and whole
history (``share_history``; else no user and an empty history), ``k`` (the number of items
wanted: ``n_recommend``, or all ``n_candidates``) and, for ranking, ``candidates`` (their ids and
titles in the shown order); then the user's request. ``list_candidates = true`` also lists the
candidates in the request text, for an agent that does not read its context message.

**The request.** ``simulation = "scripted"`` (default, no LLM): the clues of ``script`` that
:class:`~.scripted.ScriptedUser` gives about the target (genres, decade, a similar item from
the user's history, words of its description, other fields; never its title) said in one
message, deterministic under the seed: *"Hi! I'm looking for something with genres Action and
Thriller. It should be from the 1990s. Something similar to Heat (1995), which I liked."*
``simulation = "llm"``: the ``simulator`` backend rewrites those clues as a request in its own
words (``simulator_prompt``, placeholder ``{attributes}``; it is never shown the title). A
request that names the target (its title without the parenthesised parts, as words) or is
empty is replaced by the scripted one and counted in ``leak_rate`` or
``simulator_failure_rate``: the test is never given away, and the agent is not charged for the
simulator's failure.

**Reading the reply.** An agent with ``respond(conversation)`` returning an object whose
``items`` is a list of dicts with an integer ``"index"`` (recai-agent's replies) is read from
those items, in order; any other reply from its text: the numbered or bulleted lines
(:func:`~.parsing.listed_items`, as ``conversation.v1``), each grounded in the catalog by the
task's title matcher, an ungrounded one keeping its slot; without such lines, the answer read as
a list (:func:`~.parsing.parse_list`: lines, ``;`` or commas) when one of its parts names a
catalog item (prose such as *"Sorry, no idea."* is no list). A reply with no item at all is
unusable: a miss, counted in ``failure_rate``. Error rates as the list tasks: ``nonexistent_rate`` (a mention no title
matches), ``duplicate_rate``, ``in_history_rate`` and, for ranking, ``out_of_candidates_rate``.

**Costs.** The agent's reply objects may report ``llm_calls``, ``plan_valid`` and
``tool_failures`` (or a ``trace`` whose steps have an ``error``): the report gives
``llm_calls_per_request``, ``plan_valid_rate`` and ``tool_failures_per_request`` over the
requests that have them (also when answered from the cache). Every fresh reply is timed:
``seconds_per_request`` (with ``concurrency`` replies in flight at once; set ``concurrency = 1``
for clean timings; cached replies have none). All with 95% bootstrap intervals.

**Caching.** Requests and replies are cached as in the other LLM tasks (the items and costs of a
reply are kept in its cache record): a rerun reads them back, and asks again only the requests
that raised.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from recai.data.context import context_message
from recai.runtime import RunContext
from recai.types import Message, Report

from ..metrics import MISSED
from .base import Case, LLMTask, Session, error_columns, sample_cases
from .cache import request_key
from .conversation import turn_facts
from .lists import snippet
from .params import AgentRankingParams, AgentRetrievalParams, AgentTurnParams
from .parsing import listed_items, parse_list
from .prompts import bulleted, render
from .ranking import candidate_sets
from .runner import AgentCaller, Answer, own_respond
from .scoring import core_title, error_flags, mean_and_intervals, mentions_title, target_rank
from .scripted import Clue, ScriptedUser

__all__ = [
    "AgentRetrievalEvaluator",
    "AgentRankingEvaluator",
    "ReplyCaller",
    "reply_items",
    "SIMULATOR_PROMPT",
]

#: The simulator's system prompt (``simulation = "llm"``); ``{attributes}``: the clues.
SIMULATOR_PROMPT = (
    "You play a user of a recommender system. You are looking for one item you cannot name; "
    "what you know about it:\n{attributes}\n"
    "Write the one short message (one to three sentences) in which you ask the recommender for "
    "it, in your own words, using these facts. Never write the item's name or title. Write only "
    "the message."
)
SIMULATOR_ASK = "Write your message to the recommender."
#: Appended to a ranking request with ``list_candidates = true``.
CANDIDATES_TEXT = "\n\nRank all {n} of these candidates, best first:\n{candidates}"

#: Facts a reply object may report, averaged per request, and the metric each becomes.
COSTS = {
    "llm_calls": "llm_calls_per_request",
    "plan_valid": "plan_valid_rate",
    "tool_failures": "tool_failures_per_request",
    "seconds": "seconds_per_request",
}


def reply_items(reply: Any) -> list[int] | None:
    """The catalog indices a reply object lists (``reply.items``: dicts with an integer
    ``"index"``), in order; ``None`` when it has no ``items`` list (read its text instead).

    >>> from types import SimpleNamespace as NS
    >>> reply_items(NS(items=[{"index": 4, "title": "Heat"}, {"index": 1}])), reply_items(NS())
    ([4, 1], None)
    """
    items = getattr(reply, "items", None)
    if not isinstance(items, list | tuple):
        return None
    out = []
    for n, item in enumerate(items):
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, np.integer):
            index = int(index)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise TypeError(
                f"the agent's reply items[{n}] has no catalog index (a dict with an integer "
                f"'index' >= 0 is needed, got {snippet(repr(item))})"
            )
        out.append(index)
    return out


class ReplyCaller(AgentCaller):
    """Asks an agent for one reply: through ``respond`` where it has one (keeping the reply's
    items and costs in the cache record), else ``reply``; every reply is timed."""

    def ask(self, request: Sequence[Message]) -> tuple[str, dict[str, Any]]:
        start = time.perf_counter()
        respond = own_respond(self.component)
        if respond is None:
            text, _ = super().ask(request)
            return text, {"seconds": time.perf_counter() - start}
        done = respond(list(request))
        seconds = time.perf_counter() - start
        said = getattr(done, "text", None)
        if not isinstance(said, str):
            raise TypeError(
                f"the agent's respond returned {type(done).__name__} without a text string"
            )
        extra: dict[str, Any] = {"seconds": seconds, **turn_facts(done)}
        items = reply_items(done)
        if items is not None:
            extra["items"] = items
        return said, extra


@dataclass
class Request:
    """One sampled user's request and what came of it."""

    case: Case
    text: str = ""
    candidates: list[int] | None = None
    leaked: bool = False
    simulator_failed: bool = False
    items: list[int | None] | None = None  # None: no answer, or an unusable one
    source: Literal["items", "text"] | None = None
    mentions: list[str] = field(default_factory=list)
    facts: dict[str, float] = field(default_factory=dict)


class _AgentTurnTask(LLMTask):
    """What both one-turn protocols share (see the module docstring)."""

    Params: ClassVar[type[AgentTurnParams]] = AgentTurnParams
    positional = ("dataset", "agent")
    params: AgentTurnParams
    #: ``"retrieval"`` or ``"ranking"``.
    protocol: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p = self.params
        self.simulator_prompt = (
            SIMULATOR_PROMPT if p.simulator_prompt is None else p.simulator_prompt
        )
        self.k: list[int] = sorted({int(x) for x in p.k})  # type: ignore[attr-defined]

    # -- what the two protocols set differently ------------------------------------------------
    def _cases(
        self, s: Session, cases: list[Case]
    ) -> tuple[list[Case], list[list[int] | None], int]:
        """The cases kept, their candidates (``None`` for retrieval) and how many were dropped."""
        return cases, [None] * len(cases), 0

    def _wanted(self) -> int:
        """How many items the agent is asked for (the context's ``k``)."""
        raise NotImplementedError

    def _metrics(
        self, s: Session, requests: list[Request], ranks: list[int]
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    # -- the requests --------------------------------------------------------------------------
    def _write_requests(self, s: Session, requests: list[Request], scripted: ScriptedUser) -> None:
        """The request text of each case: scripted, or the simulator's (checked)."""
        clues: list[list[Clue]] = []
        for r in requests:
            c = r.case
            said = scripted.clues(c.user, c.target, c.history.tolist())
            clues.append(said)
            merged = [Clue("request", " ".join(x.text for x in said))] if said else []
            r.text = scripted.message(c.user, c.target, merged, 1, False)
        if self.params.simulation != "llm":
            return
        simulator = self.params.simulator
        assert simulator is not None  # the params require it with simulation = "llm"
        asks = [
            [
                Message.system(
                    render(
                        self.simulator_prompt,
                        self.placeholders["simulator_prompt"],
                        attributes="\n".join(f"- {x.text}" for x in said)
                        or "- nothing in particular",
                    )
                ),
                Message.user(SIMULATOR_ASK),
            ]
            for said in clues
        ]
        answers = s.ask(simulator, asks, "simulator")
        for r, answer in zip(requests, answers, strict=True):
            if not answer.ok:
                s.no_answer(r.case, "simulator", answer)
                continue
            text = " ".join((answer.text or "").split())
            title = core_title(s.catalog.title(r.case.target))
            if not text:
                r.simulator_failed = True
            elif mentions_title(text, title):
                r.leaked = True
            else:
                r.text = text

    def _conversation(self, s: Session, r: Request) -> list[Message]:
        c = r.case
        share = self.params.share_history
        context = context_message(
            s.external_user(c.user) if share else None,
            c.history if share else [],
            s.catalog,
            candidates=r.candidates,
            k=self._wanted(),
        )
        text = r.text
        if r.candidates is not None and getattr(self.params, "list_candidates", False):
            text += CANDIDATES_TEXT.format(
                n=len(r.candidates),
                candidates=bulleted([s.catalog.title(i) for i in r.candidates]),
            )
        return [context, Message.user(text)]

    # -- asking and reading the agent ----------------------------------------------------------
    def _ask_agent(self, s: Session, requests: list[Request]) -> list[Answer]:
        caller = ReplyCaller(self.params.agent, dict(s.options))
        conversations = [self._conversation(s, r) for r in requests]
        # keyed as the runner keys them, before the calls (an agent may change as it answers)
        keys = [
            request_key(caller.description, caller.payload(c), caller.options)
            for c in conversations
        ]
        answers = s.runner.run(caller, conversations, desc=f"{s.stage}: agent")
        for r, key, answer in zip(requests, keys, answers, strict=True):
            if not answer.ok:
                continue
            record = s.cache.get(key) or {}
            for name in COSTS:
                value = record.get(name)
                if name == "seconds" and answer.cached:
                    continue  # timed in another run
                if isinstance(value, int | float) and not isinstance(value, bool):
                    r.facts[name] = float(value)
            items = record.get("items")
            if isinstance(items, list) and all(
                isinstance(i, int) and not isinstance(i, bool) for i in items
            ):
                r.items = [i if 0 <= i < s.catalog.n_items else None for i in items]
                r.source = "items"
        return answers

    def _read(self, s: Session, r: Request, answer: Answer) -> None:
        """The items of a reply that has no ``items`` list, from its text."""
        text = answer.text or ""
        r.source = "text"
        mentions = listed_items(text)
        if mentions:
            r.mentions, r.items = mentions, s.matcher.ground_all(mentions)
            return
        # no numbered or bulleted lines: the answer read as a list, if it names a catalog item
        mentions = parse_list(text, score=s.matcher.score, threshold=s.matcher.threshold)
        grounded = s.matcher.ground_all(mentions) if mentions else []
        found = any(g is not None for g in grounded)
        r.mentions, r.items = (mentions, grounded) if found else ([], [])

    # -- the run ---------------------------------------------------------------------------------
    def evaluate(self, ctx: RunContext) -> Report:
        s = Session(self, ctx)
        p = self.params
        ctx.fit(p.agent, s.split)  # a no-op for an agent that does not learn
        scripted = ScriptedUser(s.catalog, s.split.train, p.script, seed=s.seed)
        sampled, counts = sample_cases(s.data, s.split, p.samples, s.seed)
        cases, candidates, dropped = self._cases(s, sampled)
        requests = [Request(c, candidates=cand) for c, cand in zip(cases, candidates, strict=True)]
        self._write_requests(s, requests, scripted)
        asking = [r for r in requests if s.answered(r.case)]
        answers = self._ask_agent(s, asking)
        ranks: list[int] = []
        flags: list[dict[str, bool] | None] = []
        by_request = {id(r): a for r, a in zip(asking, answers, strict=True)}
        for r in requests:
            answer = by_request.get(id(r))  # None: the simulator gave no request
            if answer is not None and not answer.ok:
                s.no_answer(r.case, "agent", answer)
            elif answer is not None and r.items is None:
                self._read(s, r, answer)
            if answer is not None and answer.ok and not r.items:
                s.fail(r.case, "agent", f"no items in the reply: {snippet(answer.text or '')!r}")
            found = list(r.items or [])
            if answer is None or not answer.ok or not found:
                ranks.append(int(MISSED))
                flags.append(None)
            else:
                ranks.append(target_rank(found, r.case.target))
                flags.append(
                    error_flags(found, history=r.case.history.tolist(), candidates=r.candidates)
                )
            rank = ranks[-1]
            s.record(
                r.case,
                request=r.text,
                leaked=r.leaked,
                simulator_failed=r.simulator_failed,
                candidates=r.candidates,
                answer=None if answer is None else answer.text,
                cached=None if answer is None else answer.cached,
                read_from=r.source,
                mentions=r.mentions or None,
                items=r.items,
                rank=None if rank == int(MISSED) else rank,
                flags=flags[-1],
                costs=r.facts or None,
            )
        cases = [r.case for r in requests]
        accuracy, intervals = mean_and_intervals(
            s.measured(cases, self._metrics(s, requests, ranks)), p.bootstrap, s.seed
        )
        kinds = ["nonexistent", "duplicate", "in_history"]
        if self.protocol == "ranking":
            kinds.append("out_of_candidates")
        failed = np.array([f is None for f in flags], dtype=np.float64)
        columns = {**error_columns(flags, kinds), "failure_rate": failed}
        if p.simulation == "llm":
            columns["leak_rate"] = np.array([r.leaked for r in requests], dtype=np.float64)
            columns["simulator_failure_rate"] = np.array(
                [r.simulator_failed for r in requests], dtype=np.float64
            )
        errors, _ = mean_and_intervals(s.measured(cases, columns), 0, s.seed)
        costs, cost_intervals, cost_info = self._costs(s, requests)
        intervals.update(cost_intervals)
        name = ctx.name_of(p.agent)
        read = {
            "items": sum(r.source == "items" for r in requests),
            "text": sum(r.source == "text" for r in requests),
        }
        info = s.info(
            self._protocol_text(s),
            len(requests),
            counts,
            task=f"agent-{self.protocol}",
            k=self.k,
            asked_for=self._wanted(),
            agent=self.describe(p.agent),
            simulation=p.simulation,
            script=list(p.script),
            simulator=(
                scripted.describe() if p.simulation == "scripted" else self.describe(p.simulator)
            ),
            share_history=p.share_history,
            dropped_users=dropped,
            read_from=read,
            costs=cost_info,
            **self._extra_info(),
        )
        notes: list[str] = []
        if dropped:
            notes.append(
                f"{dropped} sampled users had too few items left to draw the negatives and were "
                "left out."
            )
        notes.extend(self._notes(accuracy, errors))
        leaks = sum(r.leaked for r in requests)
        if leaks:
            notes.append(
                f"The simulator named the target in {leaks} requests; the scripted request was "
                "sent instead (see leak_rate)."
            )
        return s.report(
            {name: {**accuracy, **errors, **costs}},
            info,
            {name: intervals} if intervals else None,
            notes,
        )

    def _costs(
        self, s: Session, requests: list[Request]
    ) -> tuple[dict[str, float], dict[str, tuple[float, float]], dict[str, Any]]:
        """Means of the reply costs over the requests that reported them."""
        means: dict[str, float] = {}
        intervals: dict[str, tuple[float, float]] = {}
        info: dict[str, Any] = {}
        for fact, metric in COSTS.items():
            have = [r for r in requests if fact in r.facts and s.answered(r.case)]
            if not have:
                continue
            column = np.array([r.facts[fact] for r in have])
            mean, interval = mean_and_intervals({metric: column}, self.params.bootstrap, s.seed)
            means.update(mean)
            intervals.update(interval)
            info[metric] = {"requests": len(have)}
        return means, intervals, info

    def _protocol_text(self, s: Session) -> str:
        p = self.params
        request = (
            f"one request from the scripted user's clues ({', '.join(p.script)}), never the title"
            if p.simulation == "scripted"
            else f"one request written by the simulator LLM from the clues ({', '.join(p.script)})"
            ", never the title (checked: one naming it is replaced by the scripted request)"
        )
        return (
            f"leave-one-out by time; the held-out item is the hidden target; {request}; "
            + self._task_text()
            + f"; items read from the reply's items, else its listed titles grounded by "
            f"{s.matcher.method} >= {s.matcher.threshold}"
            + ("; the agent is told the user's history" if p.share_history else "")
        )

    def _task_text(self) -> str:
        raise NotImplementedError

    def _extra_info(self) -> dict[str, Any]:
        return {}

    def _notes(self, accuracy: dict[str, float], errors: dict[str, float]) -> list[str]:
        return []


class AgentRetrievalEvaluator(_AgentTurnTask):
    """One request, one reply over the whole catalog: Recall@k of the hidden target (see
    :mod:`recai_eval.llm.onestep`)."""

    Params = AgentRetrievalParams
    params: AgentRetrievalParams
    protocol = "retrieval"

    def _wanted(self) -> int:
        return int(self.params.n_recommend)

    def _metrics(
        self, s: Session, requests: list[Request], ranks: list[int]
    ) -> dict[str, np.ndarray]:
        r = np.asarray(ranks, dtype=np.int64)
        return {f"Recall@{k}": (r < k).astype(np.float64) for k in self.k}

    def _task_text(self) -> str:
        return (
            f"the agent recommends {self.params.n_recommend} items over the whole catalog; "
            "Recall@k: the target among the reply's first k items"
        )

    def _extra_info(self) -> dict[str, Any]:
        return {"n_recommend": int(self.params.n_recommend)}


class AgentRankingEvaluator(_AgentTurnTask):
    """One request with candidates (the hidden target and sampled negatives), one reply that
    orders them: NDCG@n and Hit@k of the target (see :mod:`recai_eval.llm.onestep`)."""

    Params = AgentRankingParams
    params: AgentRankingParams
    protocol = "ranking"

    def _cases(
        self, s: Session, cases: list[Case]
    ) -> tuple[list[Case], list[list[int] | None], int]:
        kept, orders, dropped = candidate_sets(
            s, cases, self.params.n_candidates, self.params.negatives
        )
        return kept, list(orders), dropped

    def _wanted(self) -> int:
        return int(self.params.n_candidates)

    def _metrics(
        self, s: Session, requests: list[Request], ranks: list[int]
    ) -> dict[str, np.ndarray]:
        r = np.asarray(ranks, dtype=np.int64)
        n = self.params.n_candidates
        hit = {f"Hit@{k}": (r < k).astype(np.float64) for k in self.k}
        inside = r < n
        ndcg = np.zeros(len(r), dtype=np.float64)
        ndcg[inside] = 1.0 / np.log2(r[inside] + 2.0)
        coverage = np.array(
            [
                len({i for i in (q.items or []) if i is not None} & set(q.candidates or [])) / n
                for q in requests
            ],
            dtype=np.float64,
        )
        return {f"NDCG@{n}": ndcg, **hit, "coverage": coverage}

    def _task_text(self) -> str:
        p = self.params
        return (
            f"the agent orders {p.n_candidates} candidates (the target and {p.n_candidates - 1} "
            f"{p.negatives} negatives the user never interacted with, in a random order, given in "
            "its context message"
            + (" and listed in the request" if p.list_candidates else "")
            + f"); NDCG@{p.n_candidates} and Hit@k of the target, a target left out a miss"
        )

    def _notes(self, accuracy: dict[str, float], errors: dict[str, float]) -> list[str]:
        outside = errors.get("out_of_candidates_rate", 0.0)
        coverage = accuracy.get("coverage", 1.0)
        if outside <= 0.5 or coverage >= 0.5:
            return []
        hint = (
            ""
            if self.params.list_candidates
            else "; list_candidates = true lists them in the request text too"
        )
        return [
            f"The replies ordered {coverage:.0%} of the candidates on average and "
            f"{outside:.0%} of them listed other items: the agent does not seem to read the "
            f"'candidates' of its recai_context message{hint}."
        ]

    def _extra_info(self) -> dict[str, Any]:
        p = self.params
        return {
            "n_candidates": int(p.n_candidates),
            "negatives": p.negatives,
            "list_candidates": p.list_candidates,
        }
