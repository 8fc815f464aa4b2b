"""The baselines a user would try before InteRecAgent, each an :class:`recai.Agent`.

- ``ranker-agent.v1``: a classic :class:`recai.Ranker` alone (SASRec by default in the examples):
  the top ``k`` items for the user's history, ignoring what the user writes. Items it listed
  earlier in the dialogue are not listed again (the user declined them), so each turn shows the
  next ``k``.
- ``llm-agent.v1``: the bare LLM (the brain) asked to recommend; the titles it lists are grounded
  to the catalog (fuzzy title match, ``threshold``) and only those that ground are shown.
- ``chatrec.v1``: Chat-Rec (Gao et al. 2023, arXiv 2303.14524): the user's history and the
  dialogue make a :class:`recai.Query` for a retriever (an embedding retriever, ItemKNN, ...),
  whose top ``n_candidates`` the LLM chooses ``k`` from, by writing them (``mode =
  "generate"``) or, for a small model, by the log-probability of each candidate's title after
  the request (``mode = "score"``, one ``score_continuations`` call).

Every reply lists real catalog titles, numbered (``1. Heat (1995)``), so recai-eval's
``conversation.v1`` grounds them; :meth:`Baseline.respond` also returns the items (catalog index,
external id, title), the LLM calls made and the seconds taken, which ``conversation.v1`` reports
per turn.

**The user's history.** An :class:`recai.Agent` is given only the conversation. An evaluator
(``conversation.v1`` with ``share_history = true``) or an application that knows the user puts a
*context message* first: a system message named ``recai_context`` whose content is JSON,
``{"user": "196", "history": [{"id": "50", "title": "Star Wars (1977)"}, ...]}`` (external item
ids, oldest first; :mod:`recai.data.context`). :func:`user_context` reads it; every agent leaves it out of what it sends to
an LLM. Without it the history is empty: ``ranker-agent.v1`` then shows the most popular items.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

import recai
from recai.data import Catalog, Dataset, Grounder
from recai.data.context import (
    CONTEXT_NAME,
    UserContext,
    context_message,
    user_context,
)
from recai.data.grounding import FuzzyIndex, normalize_text
from recai.specs import Seed
from recai.types import ItemList, Message, Query

#: Most items one reply lists (a context message's ``k`` or candidates beyond it are cut).
MAX_LISTED = 100

__all__ = [
    "CONTEXT_NAME",
    "UserContext",
    "user_context",
    "context_message",
    "listed_lines",
    "BaselineReply",
    "Baseline",
    "RankerAgent",
    "LLMAgent",
    "ChatRec",
]

_MARKER = re.compile(r"^\s*(?:\(?\d{1,3}[.):]|[-*•+])\s+(.+?)\s*$")
_EMPHASIS = re.compile(r"[*_`]+")
_QUOTED = re.compile(r"^[\"“'«](.+?)[\"”'»]")
_SEPARATORS = (" - ", " – ", " — ", ": ", " -- ", " | ", " because ", " by ")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def listed_lines(text: str) -> list[str]:
    """The numbered or bulleted lines of ``text``, without markers and emphasis.

    >>> listed_lines("Try these:\\n1. **Heat (1995)**\\n2) Fargo - dark\\n- Up\\nEnjoy!")
    ['Heat (1995)', 'Fargo - dark', 'Up']
    """
    out = []
    for line in str(text).splitlines():
        found = _MARKER.match(line)
        if found:
            item = _EMPHASIS.sub("", found.group(1)).strip()
            if item:
                out.append(item)
    return out


def _readings(mention: str) -> list[str]:
    """A listed line and the parts of it that may be the title alone."""
    out = [mention]
    quoted = _QUOTED.match(mention)
    if quoted:
        out.append(quoted.group(1))
    for sep in _SEPARATORS:
        head = mention.split(sep, 1)[0].strip()
        if head and head != mention:
            out.append(head)
    return out


@dataclass
class BaselineReply(recai.AgentTurn):
    """One turn of a baseline: the kernel's :class:`recai.AgentTurn` (text, the items it lists,
    what the turn cost); ``items`` holds ``{"id": external id, "index": catalog index, "title":
    title}`` per listed item, in order."""


# -- params ----------------------------------------------------------------------------------------
class BaselineParams(recai.Params):
    """What every baseline takes."""

    dataset: recai.DatasetSource = Field(description="the dataset whose catalog the agent names")
    k: int = Field(5, ge=1, le=100, description="items listed per reply")
    exclude_shown: bool = Field(
        True,
        description="do not list again items the agent listed earlier in the dialogue (the "
        "user declined them)",
    )


class RankerAgentParams(BaselineParams):
    """``ranker-agent.v1``: a ranker's top ``k`` for the user's history."""

    ranker: recai.Ranker = Field(description="the ranker that scores the user's history")


class LLMParams(BaselineParams):
    """What the baselines that ask an LLM take."""

    llm: recai.LLMBackend = Field(description="the LLM (the brain)")
    max_history: int = Field(
        20, ge=0, le=10_000, description="most recent history items shown to the LLM"
    )
    max_tokens: int = Field(300, ge=1, le=1_048_576, description="most tokens the LLM may write")
    temperature: float = Field(0.0, ge=0, le=2, description="sampling temperature (0: greedy)")
    seed: Seed = Field(0, description="sampling seed passed to the LLM")
    threshold: float = Field(
        0.6,
        gt=0,
        le=1,
        description="lowest title-match score (blend) that grounds a written title to an item",
    )
    system_prompt: str | None = Field(
        None,
        max_length=20_000,
        description="replaces the default instructions; may use {k} (and {{ }} for braces)",
    )


class LLMAgentParams(LLMParams):
    """``llm-agent.v1``: the bare LLM recommends."""


class ChatRecParams(LLMParams):
    """``chatrec.v1``: retriever candidates, the LLM picks."""

    retriever: recai.Retriever = Field(
        description="finds the candidates (embedding.v1, itemknn.v1, ...)"
    )
    n_candidates: int = Field(20, ge=1, le=1000, description="candidates the LLM chooses from")
    query: Literal["history+dialogue", "history", "dialogue"] = Field(
        "history+dialogue",
        description="what the retriever is asked with: the user's history (items), the "
        "user's messages (text), or both; a query the retriever refuses falls back to the "
        "others, and to the most popular items when the user has no history",
    )
    mode: Literal["generate", "score"] = Field(
        "generate",
        description="'generate': the LLM writes its picks; 'score': candidates ordered by the "
        "log-probability of their title after the request (one score_continuations call; for "
        "small models)",
    )
    fill: bool = Field(
        True,
        description="when the LLM picks fewer than k candidates, fill the list in the "
        "retriever's order",
    )


# -- the agents ------------------------------------------------------------------------------------
DEFAULT_PROMPT = (
    "You are a recommender system chatting with a user. Recommend {k} items the user is likely "
    "to want, as a numbered list with one exact title per line and nothing else on the line."
)
CHATREC_TASK = (
    "Candidates the user is likely to like, numbered:\n{candidates}\n\n"
    "Choose the {k} candidates that best fit what the user asks for. Write them as a numbered "
    "list, one exact candidate title per line."
)
HISTORY_LINE = "Items this user enjoyed before, oldest first: {history}."


class Baseline(recai.Configurable, recai.Agent):
    """What the baselines share: the catalog, the context, the reply (see the module
    docstring). Subclasses implement :meth:`recommend`."""

    Params: ClassVar[type[BaselineParams]] = BaselineParams
    positional: ClassVar[tuple[str, ...]] = ("dataset",)
    params: BaselineParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._data: Dataset | None = None
        self._lock = threading.Lock()
        self._titles: dict[str, list[int]] | None = None
        self._grounder: Grounder | None = None
        self._popular: np.ndarray | None = None

    # -- shared state, built once (replies may run in several threads) --------------------------
    @property
    def data(self) -> Dataset:
        with self._lock:
            if self._data is None:
                self._data = self.params.dataset.dataset()
            return self._data

    @property
    def catalog(self) -> Catalog:
        return self.data.catalog

    @property
    def grounder(self) -> Grounder:
        catalog = self.catalog
        with self._lock:
            if self._grounder is None:
                self._grounder = Grounder(catalog)
                self._grounder.titles  # noqa: B018 - build the index now, under the lock
            return self._grounder

    def _by_title(self, title: str) -> list[int]:
        catalog = self.catalog
        with self._lock:
            if self._titles is None:
                index: dict[str, list[int]] = {}
                for i, t in enumerate(catalog.titles):
                    index.setdefault(normalize_text(str(t)), []).append(i)
                self._titles = index
            return self._titles.get(normalize_text(title), [])

    def popular(self) -> np.ndarray:
        """Items by training interactions, most first (all interactions before :meth:`fit`)."""
        data = self.data
        with self._lock:
            if self._popular is None:
                self._popular = _by_count(data.interactions.items, data.n_items)
            return self._popular

    def fit(self, split: recai.Split) -> None:
        """Count popularity on ``split.train`` (the fallback for a user without history)."""
        self._popular = _by_count(split.train.items, split.dataset.n_items)

    # -- a turn -----------------------------------------------------------------------------------
    def reply(self, conversation: Sequence[Message]) -> Message:
        return Message.assistant(self.respond(conversation).text)

    def respond(
        self,
        conversation: Sequence[Message],
        *,
        on_text: Callable[[str], None] | None = None,
    ) -> BaselineReply:
        """The reply to ``conversation`` with its items, LLM calls and seconds (``on_text``
        gets the whole text at once: a baseline writes it from its items)."""
        start = time.perf_counter()
        context = user_context(conversation, self.catalog)
        history = context.history if context is not None else []
        given: list[int] | None = getattr(context, "candidates", None) or None
        asked: int | None = getattr(context, "k", None)
        shown = self.shown(conversation) if self.params.exclude_shown and not given else []
        dialogue = [m for m in conversation if not (m.role == "system" and m.name == CONTEXT_NAME)]
        k = min(asked or (len(given) if given else self.params.k), MAX_LISTED)
        if given:  # the caller gives the items to order: every one is listed (up to k)
            items, calls = self.order(dialogue, history, list(given))
            items = _first([*items, *given], [], min(k, len(given)))
        else:
            items, calls = self.recommend(dialogue, history, shown, k)
        text = self.write(items)
        if on_text is not None and text:
            on_text(text)
        found = [
            {
                "id": _plain(self.catalog.ids[i]),
                "index": int(i),
                "title": self.catalog.title(int(i)),
            }
            for i in items
        ]
        return BaselineReply(text, found, llm_calls=calls, seconds=time.perf_counter() - start)

    def recommend(
        self, dialogue: list[Message], history: list[int], shown: list[int], k: int
    ) -> tuple[list[int], int]:
        """At most ``k`` catalog indices to list (``k``: the context's when it gave one, else
        ``params.k``), and the LLM calls made."""
        raise NotImplementedError

    def order(
        self, dialogue: list[Message], history: list[int], candidates: list[int]
    ) -> tuple[list[int], int]:
        """The given ``candidates`` in the order to list them (the caller restricted the turn
        to them: a one-turn ranking protocol), and the LLM calls made. Items left out are
        listed after, in the order given."""
        raise NotImplementedError

    def shown(self, conversation: Sequence[Message]) -> list[int]:
        """Items the agent listed in its earlier replies (by exact title)."""
        out: list[int] = []
        for m in conversation:
            if m.role == "assistant":
                for line in listed_lines(m.content):
                    out.extend(self._by_title(line))
        return out

    def write(self, items: Sequence[int]) -> str:
        if not len(items):
            return (
                "I have nothing to recommend yet. Tell me more about what you are looking for: "
                "a genre, a period, or something you enjoyed?"
            )
        lines = "\n".join(f"{n}. {self.catalog.title(int(i))}" for n, i in enumerate(items, 1))
        return f"Here is what I recommend:\n{lines}"

    def _keep(
        self, ranked: Sequence[int], history: Sequence[int], shown: Sequence[int], k: int
    ) -> list[int]:
        """``ranked`` without duplicates, history and shown items, cut to ``k``."""
        return _first(ranked, [*history, *shown], k)


def _first(ranked: Sequence[int], banned: Sequence[int], n: int) -> list[int]:
    """The first ``n`` distinct items of ``ranked`` that are not ``banned``."""
    skip = {int(i) for i in banned}
    out: list[int] = []
    for i in ranked:
        if int(i) not in skip:
            skip.add(int(i))
            out.append(int(i))
            if len(out) == n:
                break
    return out


def _by_count(items: np.ndarray, n_items: int) -> np.ndarray:
    counts = np.bincount(np.asarray(items, dtype=np.int64), minlength=n_items)
    return np.argsort(-counts, kind="stable")


class RankerAgent(Baseline):
    """``ranker-agent.v1``: the ranker's top ``k`` for the user's history (see the module
    docstring); without a history, the most popular items."""

    Params = RankerAgentParams
    positional = ("dataset", "ranker")
    params: RankerAgentParams

    def fit(self, split: recai.Split) -> None:
        super().fit(split)
        recai.ensure_fitted(self.params.ranker, split)

    def recommend(
        self, dialogue: list[Message], history: list[int], shown: list[int], k: int
    ) -> tuple[list[int], int]:
        want = k + len(set(shown))
        if not history:
            return self._keep(self.popular()[:want].tolist(), history, shown, k), 0
        ranked = self.params.ranker.rank(np.asarray(history, dtype=np.int64), k=want)
        return self._keep(ranked.ids.tolist(), history, shown, k), 0

    def order(
        self, dialogue: list[Message], history: list[int], candidates: list[int]
    ) -> tuple[list[int], int]:
        """The candidates by the ranker's scores for the history (by popularity without)."""
        cands = np.asarray(candidates, dtype=np.int64)
        if history:
            scores = np.asarray(
                self.params.ranker.score([np.asarray(history, dtype=np.int64)], cands)[0],
                dtype=np.float64,
            ).reshape(-1)
        else:
            rank_of = np.empty(self.data.n_items, dtype=np.float64)
            rank_of[self.popular()] = -np.arange(self.data.n_items, dtype=np.float64)
            scores = rank_of[cands]
        scores = np.where(np.isfinite(scores), scores, -np.inf)
        return [int(cands[j]) for j in np.lexsort((np.arange(len(cands)), -scores))], 0


class _Asks(Baseline):
    """A baseline that asks an LLM: its prompt and grounding."""

    params: LLMParams

    def instructions(self, history: Sequence[int], k: int | None = None) -> str:
        """The system prompt for a user with ``history``, asking for ``k`` items (default
        ``params.k``)."""
        p = self.params
        prompt = DEFAULT_PROMPT if p.system_prompt is None else p.system_prompt
        text = prompt.replace("{k}", str(k or p.k)).replace("{{", "{").replace("}}", "}")
        shown = list(history)[-p.max_history :] if p.max_history else []
        if shown:
            titles = "; ".join(self.catalog.title(int(i)) for i in shown)
            text += "\n" + HISTORY_LINE.format(history=titles)
        return text

    def ask(self, messages: list[Message]) -> str:
        p = self.params
        done = p.llm.chat(messages, max_tokens=p.max_tokens, temperature=p.temperature, seed=p.seed)
        return done.text or ""

    def ground(self, text: str) -> list[int]:
        """The catalog items of the listed lines of ``text`` that ground (in order)."""
        out: list[int] = []
        for line in listed_lines(text):
            best, score = -1, 0.0
            for reading in _readings(line):
                found = self.grounder.items(reading, 1, threshold=self.params.threshold)
                scores = found.scores
                if scores is not None and len(found) and float(scores[0]) > score:
                    best, score = int(found.ids[0]), float(scores[0])
            if best >= 0:
                out.append(best)
        return out


class LLMAgent(_Asks):
    """``llm-agent.v1``: the LLM recommends; its listed titles are grounded to the catalog."""

    Params = LLMAgentParams
    positional = ("dataset", "llm")
    params: LLMAgentParams

    def recommend(
        self, dialogue: list[Message], history: list[int], shown: list[int], k: int
    ) -> tuple[list[int], int]:
        system = Message.system(self.instructions(history, k))
        text = self.ask([system, *[m for m in dialogue if m.role != "system"]])
        return self._keep(self.ground(text), history, shown, k), 1

    def order(
        self, dialogue: list[Message], history: list[int], candidates: list[int]
    ) -> tuple[list[int], int]:
        """The candidates the LLM lists when shown them all, in its order."""
        listing = "\n".join(f"{n}. {self.catalog.title(i)}" for n, i in enumerate(candidates, 1))
        task = CHATREC_TASK.format(candidates=listing, k=len(candidates))
        system = Message.system(self.instructions(history) + "\n\n" + task)
        text = self.ask([system, *[m for m in dialogue if m.role != "system"]])
        wanted = set(candidates)
        return [i for i in self.ground(text) if i in wanted], 1


class ChatRec(_Asks):
    """``chatrec.v1``: retriever candidates from history and dialogue, the LLM picks ``k``."""

    Params = ChatRecParams
    positional = ("dataset", "llm", "retriever")
    params: ChatRecParams

    def fit(self, split: recai.Split) -> None:
        super().fit(split)
        recai.ensure_fitted(self.params.retriever, split)

    def candidates(
        self, dialogue: list[Message], history: list[int], shown: list[int]
    ) -> list[int]:
        """The retriever's top ``n_candidates`` (history and shown items left out)."""
        p = self.params
        said = " ".join(m.content for m in dialogue if m.role == "user").strip()[-4000:]
        items = ItemList(history) if history else None
        text = said or None
        asks = {  # the query asked for first, then what else there is
            "history+dialogue": [(items, text), (items, None), (None, text)],
            "history": [(items, None), (items, text), (None, text)],
            "dialogue": [(None, text), (items, text), (items, None)],
        }[p.query]
        want = p.n_candidates + len(set(history)) + len(set(shown))
        ranked = self.popular()[:want].tolist()  # nothing to ask with: the popular items
        refused: Exception | None = None
        for seeds, words in asks:
            if seeds is None and words is None:
                continue
            try:
                found = self.params.retriever.retrieve(Query(text=words, items=seeds), want)
            except (ValueError, recai.RecaiError) as e:  # e.g. itemknn.v1 takes no text alone
                refused = e
                continue
            ranked, refused = found.ids.tolist(), None
            break
        if refused is not None and history:  # without a history the popular items stand in
            raise recai.RecaiError(
                f"chatrec.v1: the retriever answers no query this turn can make ({refused})"
            ) from None
        banned = [*history, *shown]
        kept = _first(ranked, banned, p.n_candidates)
        if len(kept) < p.n_candidates:  # a retriever that found few: popular items after them
            kept = _first([*kept, *self.popular()[:want].tolist()], banned, p.n_candidates)
        return kept

    def order(
        self, dialogue: list[Message], history: list[int], candidates: list[int]
    ) -> tuple[list[int], int]:
        """The given candidates in place of the retriever's, picked (or scored) by the LLM."""
        return self._choose(dialogue, history, [], list(candidates), len(candidates))

    def recommend(
        self, dialogue: list[Message], history: list[int], shown: list[int], k: int
    ) -> tuple[list[int], int]:
        return self._choose(dialogue, history, shown, None, k)

    def _choose(
        self,
        dialogue: list[Message],
        history: list[int],
        shown: list[int],
        given: list[int] | None,
        k: int,
    ) -> tuple[list[int], int]:
        p = self.params
        cands = given if given is not None else self.candidates(dialogue, history, shown)
        if not cands:
            return [], 0
        titles = [self.catalog.title(i) for i in cands]
        turns = [m for m in dialogue if m.role != "system"]
        if p.mode == "score":  # each candidate is scored as the reply's first line
            messages = [Message.system(self.instructions(history)), *turns]
            picks = self._by_score(messages, cands, titles)
        else:
            listing = "\n".join(f"{n}. {t}" for n, t in enumerate(titles, 1))
            task = CHATREC_TASK.format(candidates=listing, k=min(k, len(cands)))
            messages = [Message.system(self.instructions(history, k) + "\n\n" + task), *turns]
            picks = self._pick(self.ask(messages), cands, titles)
        if p.fill:
            picks = [*picks, *cands]
        if given is not None:
            return _first(picks, [], k), 1
        return self._keep(picks, history, shown, k), 1

    def _by_score(self, messages: list[Message], cands: list[int], titles: list[str]) -> list[int]:
        scores = self.params.llm.score_continuations(messages, [f"1. {t}" for t in titles])
        if len(scores) != len(cands):
            raise recai.RecaiError(
                f"chatrec.v1: the LLM scored {len(scores)} continuations for {len(cands)} "
                "candidates"
            )
        order = sorted(
            range(len(cands)),
            key=lambda j: (-(scores[j] if math.isfinite(scores[j]) else -math.inf), j),
        )
        return [cands[j] for j in order]

    def _pick(self, text: str, cands: list[int], titles: list[str]) -> list[int]:
        """The candidates the LLM wrote, by number or by title (fuzzy, among the candidates)."""
        index = FuzzyIndex(titles)
        out: list[int] = []
        for line in listed_lines(text):
            number = re.fullmatch(r"(\d{1,4})[.)]?", line.strip())
            if number and 1 <= int(number.group(1)) <= len(cands):
                out.append(cands[int(number.group(1)) - 1])
                continue
            best, score = -1, 0.0
            for reading in _readings(line):
                ids, scores = index.top(reading, 1)
                if len(ids) and float(scores[0]) >= self.params.threshold and scores[0] > score:
                    best, score = int(ids[0]), float(scores[0])
            if best >= 0:
                out.append(cands[best])
        return out
