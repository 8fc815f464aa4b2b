"""The agent's LLM re-ranking stage: the brain re-orders the ranker's head in scoring mode.

After the ranking tool orders the bus by preference (the :class:`recai.Ranker` scoring the
user's profile), an :class:`LLMReranker` takes the first ``top`` items (20) and asks the brain
how likely each one is as the user's next choice, the way recai-eval's ``llm-ranking.v1`` does in
``mode = "score"`` (RecAI's 20-candidate protocol; DOKE's knowledge in the prompt):

**The protocol.** One prompt per ranking call::

    [system] You are a recommender system. ...
    [system] <knowledge: the agent's KnowledgePrompter on the history and these candidates,
              cut to ``knowledge_tokens``>
    [user]   A user has interacted with these items, oldest first:
             1. Heat (1995)
             ...
             The user now asks: "something tense from the 90s"
             Here are 20 candidate items, in random order:
             - Fargo (1996)
             ...
             Which one of the candidates is the user most likely to choose next? Answer with
             its title only.

and one ``score_continuations(messages, titles)`` pass: the log-probability of each
candidate's title as the answer (recai-hf's backend reads the prompt once and scores the 20
titles in a batch off its cache). The candidates are shown in a seeded random order, not the
ranker's, so the brain's position bias does not echo the ranker. ``norm`` turns the
log-probability into the brain's score: ``"calibrated"`` (default) subtracts the title's
log-probability after the question alone (what the history, request and knowledge add, not how
short or common the title is; these per-title priors are kept across turns, so only titles not
seen before cost a second, short pass), ``"per_char"`` divides by the title's length,
``"sum"`` keeps it.

**Blending.** The brain's order and the ranker's are combined by position (Borda):
``(1 - weight) * (1 - r / (n - 1)) + weight * (1 - b / (n - 1))`` for the item's place ``r``
in the ranker's order and ``b`` in the brain's, ties to the ranker. Positions, not scores:
SASRec logits, ItemKNN sums, popularity counts and log-probabilities have unrelated scales,
and positions make them comparable without calibrating either. ``weight = 1`` replaces the
ranker's order with the brain's, ``0`` keeps the ranker's (the call is still made and
recorded). The default 0.25 lets the brain reorder near neighbours in the ranker's order, not
overturn it: measured on MovieLens-100K (``benchmarks/bench_rerank.py``: ItemKNN's top 20 for
all 155 users whose held-out film is in it, no request), the embedded SmolLM2-135M alone ranks
at chance (NDCG@10 0.214 against the ranker's 0.332; a random order gives 0.23; 0.217 with
knowledge), costs 0.063 [0.017, 0.108] at weight 0.5 (0.054 [0.008, 0.099] with knowledge)
and nothing significant at 0.25 (-0.014 [-0.039, +0.013]; with knowledge -0.010 [-0.034,
+0.014]); a stronger brain, or a request the ranker cannot read, is what a larger weight is for.

**Knowledge budget.** The knowledge text keeps whole lines while it fits ``knowledge_tokens``
(counted by the brain's ``count_tokens`` where it has one, else four characters a token); a
block header left without any of its lines is dropped too.

**Never breaking a turn.** A backend that cannot score (its class does not implement
``score_continuations``, or the call raises ``NotImplementedError``) leaves the ranker's order,
with a note, and is not asked again; any other failure (an error, scores that are not one
finite-or-minus-infinity number per title) leaves the ranker's order for that call, with a
note. A failing knowledge prompter only leaves the knowledge out.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

import recai
from recai.types import ItemList, Message

if TYPE_CHECKING:
    from .tools import TurnState

__all__ = [
    "QUESTION",
    "SYSTEM",
    "LLMReranker",
    "RerankOutcome",
    "RerankParams",
    "blend_positions",
    "cut_to_budget",
]

#: The system message of the re-ranking prompt.
SYSTEM = (
    "You are a recommender system. From what a user chose before and what they ask for now, "
    "you pick the item they will most likely choose next."
)
#: The question whose answer, scored, is each candidate's title (recai-eval's scoring question).
QUESTION = (
    "Which one of the candidates is the user most likely to choose next? "
    "Answer with its title only."
)
#: Most characters of the request quoted in the prompt.
MAX_REQUEST_CHARS = 500


class RerankParams(recai.Params):
    """How the brain re-ranks the ranker's head (``interecagent.v1``'s ``rerank`` table)."""

    top: int = Field(
        20, ge=2, le=100, description="how many of the ranker's first items the brain re-orders"
    )
    weight: float = Field(
        0.25,
        ge=0,
        le=1,
        description="the brain's share in the blended order (by position): 1 replaces the "
        "ranker's order with the brain's, 0 keeps the ranker's",
    )
    knowledge_tokens: int = Field(
        300,
        ge=0,
        le=100_000,
        description="most tokens of the knowledge block in the prompt (whole lines kept; 0: "
        "no knowledge)",
    )
    history: int = Field(
        10, ge=0, le=200, description="most recent items of the user's profile listed"
    )
    norm: Literal["calibrated", "per_char", "sum"] = Field(
        "calibrated",
        description="a title's score: its log-probability minus its log-probability after "
        "the question alone ('calibrated'), divided by its length ('per_char'), or as is "
        "('sum')",
    )
    seed: int = Field(
        0, ge=0, le=2**32 - 1, description="seeds the order the candidates are shown in"
    )


@dataclass
class RerankOutcome:
    """What one re-ranking did: the new order of the head (catalog indices), whether the brain's
    scores were used (``applied``), the brain's score per item, the knowledge's tokens (before
    and after the cut), the calls and seconds in the brain, and a one-line note for the trace."""

    ids: list[int]
    applied: bool
    note: str
    scores: dict[int, float] = field(default_factory=dict)
    knowledge_tokens: int = 0
    knowledge_tokens_before: int = 0
    calls: int = 0
    seconds: float = 0.0
    moved: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "top": len(self.ids),
            "moved": self.moved,
            "knowledge_tokens": self.knowledge_tokens,
            "knowledge_tokens_before": self.knowledge_tokens_before,
            "calls": self.calls,
            "seconds": round(self.seconds, 4),
            "llm_scores": {str(i): round(s, 4) for i, s in self.scores.items()},
        }


class LLMReranker:
    """Re-orders the ranker's first ``params.top`` items by the brain's scores (see the module
    docstring for the protocol). ``llm``: any :class:`recai.LLMBackend`; ``knowledge``: the
    agent's :class:`recai.KnowledgePrompter` (fitted by the agent), or None. Safe to share
    between threads (one re-ranking per call; the per-title priors are kept under a lock)."""

    def __init__(
        self,
        llm: recai.LLMBackend,
        knowledge: recai.KnowledgePrompter | None = None,
        params: RerankParams | None = None,
        **overrides: Any,
    ):
        self.llm = llm
        self.knowledge = knowledge
        base = params if params is not None else RerankParams()
        self.params = (
            RerankParams.model_validate({**base.model_dump(), **overrides}) if overrides else base
        )
        self._lock = threading.Lock()
        self._priors: dict[str, float] = {}
        self._cannot_score = type(llm).score_continuations is recai.LLMBackend.score_continuations

    # -- the prompt -------------------------------------------------------------------------------
    def count(self, text: str) -> int:
        """Tokens of ``text`` as a system message of the brain (its ``count_tokens`` where it has
        one, else four characters a token)."""
        counter = getattr(self.llm, "count_tokens", None)
        if callable(counter):
            try:
                return int(counter([Message.system(text)])) - int(counter([Message.system("")]))
            except Exception:  # a counter that fails: the rule of thumb
                pass
        return math.ceil(len(text) / 4)

    def shown_order(self, ids: Sequence[int]) -> list[int]:
        """The candidates in the order the prompt lists them: a permutation seeded by ``seed``
        and the items (the same set always in the same order)."""
        items = sorted(int(i) for i in ids)
        seed = (int(self.params.seed) * 1_000_003 + sum(items) * 7_919 + len(items)) % 2**32
        rng = np.random.default_rng(seed)
        return [items[j] for j in rng.permutation(len(items)).tolist()]

    def messages(
        self,
        titles: Callable[[int], str],
        history: Sequence[int],
        shown: Sequence[int],
        request: str,
        knowledge: str = "",
    ) -> list[Message]:
        """The scoring prompt (see the module docstring); ``titles`` names a catalog index."""
        hist = list(history)[-self.params.history :] if self.params.history else []
        lines = [f"{n}. {titles(i)}" for n, i in enumerate(hist, 1)]
        parts = [
            "A user has interacted with these items, oldest first:\n"
            + ("\n".join(lines) if lines else "(none yet)")
        ]
        request = " ".join(request.split())[:MAX_REQUEST_CHARS]
        if request:
            parts.append(f'The user now asks: "{request}"')
        parts.append(
            f"Here are {len(shown)} candidate items, in random order:\n"
            + "\n".join(f"- {titles(i)}" for i in shown)
        )
        parts.append(QUESTION)
        out = [Message.system(SYSTEM)]
        if knowledge:
            out.append(Message.system(knowledge))
        out.append(Message.user("\n\n".join(parts)))
        return out

    # -- re-ranking -------------------------------------------------------------------------------
    def rerank(self, ids: Sequence[int] | np.ndarray, state: TurnState) -> RerankOutcome:
        """The first ``top`` of ``ids`` (the ranker's order) re-ordered; never raises."""
        head = [int(i) for i in np.asarray(ids).reshape(-1)[: self.params.top].tolist()]
        if len(head) < 2:
            return RerankOutcome(head, False, "rerank: fewer than two items, nothing to re-order")
        if self._cannot_score:
            return RerankOutcome(
                head,
                False,
                f"rerank: {type(self.llm).__name__} cannot score continuations; the ranker's "
                "order kept",
            )
        catalog = state.catalog

        def title(i: int) -> str:
            return str(catalog.titles[i])

        history = [int(i) for i in state.profile_history().tolist()]
        shown = self.shown_order(head)
        request = getattr(state, "request", "") or ""
        notes: list[str] = []
        text, before, after = self._knowledge(history, shown, request, notes)
        messages = self.messages(title, history, shown, request, text)
        names = [title(i) for i in shown]
        start = time.perf_counter()
        calls = 0
        try:
            calls += 1
            raw = self._scores(messages, names)
            if self.params.norm == "calibrated":
                prior, more = self._priors_of(names)
                calls += more
                raw = [s - p for s, p in zip(raw, prior, strict=True)]
            elif self.params.norm == "per_char":
                raw = [s / max(1, len(n)) for s, n in zip(raw, names, strict=True)]
        except NotImplementedError as exc:
            with self._lock:
                self._cannot_score = True
            return RerankOutcome(
                head,
                False,
                f"rerank: {type(self.llm).__name__} cannot score continuations "
                f"({_one_line(exc)}); the ranker's order kept",
                calls=calls,
                seconds=time.perf_counter() - start,
                knowledge_tokens=after,
                knowledge_tokens_before=before,
            )
        except Exception as exc:  # a failing brain must not end the turn
            return RerankOutcome(
                head,
                False,
                f"rerank failed ({type(exc).__name__}: {_one_line(exc)}); the ranker's order kept",
                calls=calls,
                seconds=time.perf_counter() - start,
                knowledge_tokens=after,
                knowledge_tokens_before=before,
            )
        seconds = time.perf_counter() - start
        by_item = dict(zip(shown, raw, strict=True))
        llm_scores = [by_item[i] for i in head]
        order = blend_positions(llm_scores, float(self.params.weight))
        new = [head[j] for j in order]
        moved = sum(a != b for a, b in zip(head, new, strict=True))
        knowledge_note = ""
        if self.knowledge is not None:
            knowledge_note = f", knowledge {after} tokens"
            if after < before:
                knowledge_note += f" (cut from {before})"
        notes.insert(
            0,
            f"rerank: the brain scored the top {len(head)} ({self.params.norm}, weight "
            f"{self.params.weight:g}{knowledge_note}, {calls} call{'s' if calls > 1 else ''}, "
            f"{seconds:.2f} s); {moved} of {len(head)} places changed",
        )
        return RerankOutcome(
            new,
            True,
            "; ".join(notes),
            scores={i: float(by_item[i]) for i in head},
            knowledge_tokens=after,
            knowledge_tokens_before=before,
            calls=calls,
            seconds=seconds,
            moved=moved,
        )

    def _knowledge(
        self, history: list[int], shown: list[int], request: str, notes: list[str]
    ) -> tuple[str, int, int]:
        """The knowledge block cut to the budget, with its tokens before and after the cut."""
        if self.knowledge is None or self.params.knowledge_tokens <= 0:
            return "", 0, 0
        try:
            text = self.knowledge.knowledge(
                history=ItemList(np.asarray(history, dtype=np.int64)),
                candidates=ItemList(np.asarray(shown, dtype=np.int64)),
                query=request or None,
            )
        except Exception as exc:  # knowledge is an extra: the brain scores without it
            notes.append(f"knowledge prompter failed ({type(exc).__name__}: {_one_line(exc)})")
            return "", 0, 0
        if not text:
            return "", 0, 0
        return cut_to_budget(text, int(self.params.knowledge_tokens), self.count)

    def _scores(self, messages: list[Message], continuations: list[str]) -> list[float]:
        scores = self.llm.score_continuations(messages, continuations)
        values = [float(s) for s in scores]
        if len(values) != len(continuations):
            raise ValueError(f"{len(values)} scores for {len(continuations)} titles")
        if any(math.isnan(v) or v == math.inf for v in values):
            raise ValueError(f"unusable scores {values[:5]!r}...")
        return [max(v, -1e4) for v in values]  # -inf: as good as impossible

    def _priors_of(self, names: list[str]) -> tuple[list[float], int]:
        """Each title's log-probability after the question alone (kept across turns), and the
        calls it took (0 when every title was seen before)."""
        with self._lock:
            missing = [n for n in dict.fromkeys(names) if n not in self._priors]
        calls = 0
        if missing:
            bare = [Message.system(SYSTEM), Message.user(QUESTION)]
            got = self._scores(bare, missing)
            calls = 1
            with self._lock:
                if len(self._priors) > 100_000:
                    self._priors.clear()
                self._priors.update(zip(missing, got, strict=True))
        with self._lock:
            return [self._priors[n] for n in names], calls


def blend_positions(llm_scores: Sequence[float], weight: float) -> list[int]:
    """The blended order of ``n`` items given in the ranker's order, by position (Borda): the
    item at ranker place ``r`` and brain place ``b`` (by ``llm_scores``, higher first, ties to
    the ranker) gets ``(1 - weight) * (1 - r/(n-1)) + weight * (1 - b/(n-1))``; ties to the
    ranker.

    >>> blend_positions([0.1, 0.9, 0.5], 1.0), blend_positions([0.1, 0.9, 0.5], 0.0)
    ([1, 2, 0], [0, 1, 2])
    >>> blend_positions([-9.0, -9.0, -9.0, -9.0, 0.0], 0.5)  # the brain likes the last best
    [0, 1, 4, 2, 3]
    """
    n = len(llm_scores)
    if n < 2:
        return list(range(n))
    brain = sorted(range(n), key=lambda j: (-float(llm_scores[j]), j))
    place = [0] * n
    for b, j in enumerate(brain):
        place[j] = b
    span = n - 1
    value = [(1 - weight) * (1 - r / span) + weight * (1 - place[r] / span) for r in range(n)]
    return sorted(range(n), key=lambda r: (-round(value[r], 12), r))


def cut_to_budget(text: str, budget: int, count: Callable[[str], int]) -> tuple[str, int, int]:
    """``text`` cut to ``budget`` tokens (``count`` counts them) by whole lines, keeping their
    order; a header (a line not starting with ``-``) left with none of its lines after it is
    dropped, and the lines of a header that does not fit go with it. Lines are taken while
    their own counts fit, then the whole text's count decides (dropping the last lines).
    Returns ``(text, tokens before, tokens after)``.

    >>> four = lambda s: -(-len(s) // 4)
    >>> cut_to_budget("About:\\n- aaaa\\n- bbbb\\nLinks:\\n- cccc", 5, four)
    ('About:\\n- aaaa', 9, 4)
    """
    total = count(text)
    if total <= budget:
        return text, total, total
    lines = text.split("\n")
    kept: list[str] = []
    used = 0
    skipping = False  # the current block's header did not fit: nor do its lines
    for line in lines:
        header = bool(line.strip()) and not line.lstrip().startswith("-")
        if header:
            skipping = False
        elif skipping:
            continue
        cost = count(line + "\n")
        if used + cost > budget:
            skipping = skipping or header
            continue  # a later, shorter line may still fit
        kept.append(line)
        used += cost

    def render(chosen: list[str]) -> str:
        out: list[str] = []
        for n, line in enumerate(chosen):
            is_header = line.strip() and not line.lstrip().startswith("-")
            nxt = chosen[n + 1] if n + 1 < len(chosen) else None
            if is_header and (nxt is None or not nxt.lstrip().startswith("-")):
                continue  # a header with no line of its own under it
            out.append(line)
        return "\n".join(out).strip("\n")

    cut = render(kept)
    while kept and count(cut) > budget:  # the exact count (the model's tokenizer) decides
        kept.pop()
        cut = render(kept)
    return cut, total, count(cut) if cut else 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__
