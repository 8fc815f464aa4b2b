"""``recai mcp RECIPE``: the agent's tools as a Model Context Protocol server (the official
``mcp`` SDK), so any MCP-capable assistant can use a recipe's recommenders as tools.

The command builds the recipe's agent and serves at once; the agent's models are fitted as
``recai chat`` fits them (cached under ``--out``; progress on stderr, never on stdout, which is
the protocol in stdio mode) in the background, so a client's handshake and the catalog tools
answer while a first fit runs, and the tools that need the models wait for it. It serves:

- ``describe_catalog``: the catalog's columns with their kinds, values and ranges, and the
  ``items`` table an SQL look-up reads;
- ``lookup``: one read-only SQLite statement over the catalog mirror (names and values grounded
  to the catalog first, rows capped, time-bounded; anything but a read is refused);
- ``filter_items``: the items meeting conditions (genres, years, any categorical field, an SQL
  condition), most popular first;
- ``similar_items``: neighbours of items named by id or title, from the agent's similarity
  component;
- ``search_items``: the items nearest a text (the agent's text retriever, else title matching);
- ``recommend``: the agent's ranker on a history (items, or a user of the dataset or one
  ``feedback`` knows, with the likes and dislikes it gave), in accuracy or diversity mode,
  optionally within conditions;
- ``item_details``: every catalog field of items named by id or title;
- ``explain``: why an item (by id or title) suits a user (a history, a user of the dataset or a
  chat session's user, with the likes and dislikes ``feedback`` gave), from the recipe's
  Explainer component; served only when there is one:
  the one ``--explainer NAME`` names, else the agent's ``explainer`` param, else the recipe's
  only Explainer (the rule of ``recai serve``'s ``/v1/explain``);
- ``chat``: one turn with the whole agent (plan, tools, grounded reply), in a conversation the
  server keeps (``session``), optionally as a user of the dataset;
- ``feedback``: a like or dislike added to a user's long-term profile (agents that keep one).

Without an Explainer the ``explain`` tool is not listed at all (rather than listed and always
refusing): an assistant's model reads the tool list as what it can do, and a tool that can only
fail costs it context and a wasted call; ``--tools explain`` on such a recipe is a startup error.

Every tool takes typed arguments (the SDK publishes their JSON schema) and returns structured
content with item ids and titles. A bad argument or a refused statement is an MCP tool error with
one readable sentence; the server goes on.

Transports: ``--transport stdio`` (default: the client spawns the command) or ``http``
(streamable HTTP at ``http://HOST:PORT/mcp``, loopback by default; ``--api-key-env VAR`` makes
every request carry ``Authorization: Bearer <key>``).

CPU threads: as in ``recai chat``, idle OpenMP threads (torch's: the background fit's, the LLM's)
sleep instead of spinning (:func:`recai_agent.cli.passive_openmp`), so a fit beside the server's
other threads, or on a machine shared with other work, spends its CPU on the fit. An MCP client
starts the server with a bare environment, so the server sets this itself.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import inspect
import os
import re
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from recai.errors import RecaiError

from .cli import build_agent, passive_openmp

if TYPE_CHECKING:
    from recai.data import Catalog, Dataset
    from recai.recipe import Plan
    from recai.types import Message

    from .tools import BaseTool, ToolResult, TurnState

__all__ = [
    "TOOL_NAMES",
    "AgentToolbox",
    "ToolInputError",
    "build_for_mcp",
    "build_server",
    "configure",
    "run",
]

#: Most items one tool call lists.
MAX_K = 100
#: Most rows a look-up returns.
MAX_ROWS = 200
#: Most items named in one call (seeds, a history, details).
MAX_NAMED = 200
#: Longest chat message, in characters.
MAX_MESSAGE_CHARS = 4000
#: Longest wait of a tool for the models' fit, in seconds.
FIT_WAIT = 3600.0
#: Title matching (:func:`title_match`): the catalog matcher's score (0 to 1) that names an
#: item; a lower one that still does when it is this many times the next item's; and for a
#: misspelt name, the letters' similarity to one of the matcher's best candidates that names it
#: when the next candidate's is this much lower.
TITLE_MATCH = 0.5
TITLE_LEAD = 0.35
TITLE_MARGIN = 3.0
TITLE_CANDIDATES = 10
SPELLING_MATCH = 0.8
SPELLING_MARGIN = 0.05
#: Longest name (characters) matched by its letters (ML-100K's longest is 74).
SPELLING_LONGEST = 100
#: Conversations kept by the chat tool, and how long an idle one lives (seconds).
MAX_SESSIONS = 1000
SESSION_TTL = 3600.0
#: Most messages kept in one conversation (older ones are dropped, oldest first).
MAX_SESSION_MESSAGES = 200

_LOOPBACK = ("127.0.0.1", "localhost", "::1")

INSTRUCTIONS = (
    "Tools of a recommender system over one item catalog. Items are named by their id (as the "
    "tools return it) or their title. Start with describe_catalog to see the columns and their "
    "values; lookup answers questions about items with one SQLite SELECT over the items table; "
    "filter_items, similar_items, search_items and recommend find items; item_details gives "
    "every field of items; chat asks the whole conversational recommender (pass back the "
    "session it returns to continue a conversation)."
)


class ToolInputError(RecaiError):
    """A tool call that cannot be answered (a bad argument, a refused statement): its message is
    the MCP tool error the client reads."""


# -- structured outputs ----------------------------------------------------------------------------
class ItemRef(BaseModel):
    """An item of the catalog: its external id and its title."""

    id: str | int
    title: str


class FoundItem(ItemRef):
    """An item a tool found, with what put it there."""

    score: float | None = Field(None, description="the ranking or similarity score, if any")
    similar_to: list[str] = Field(
        default_factory=list, description="titles of the named items it is similar to"
    )
    why: list[str] = Field(default_factory=list, description="the steps that kept the item")


class Items(BaseModel):
    """Items found by a tool, in order, with notes on how the input was read."""

    items: list[FoundItem]
    total: int = Field(
        description="how many items met the conditions before the cut to k (a ranked or "
        "similar list stops at 500)"
    )
    named: list[ItemRef] = Field(
        default_factory=list, description="the catalog items the input's ids or titles matched"
    )
    notes: list[str] = Field(
        default_factory=list, description="how titles and values were matched, what fell back"
    )


class Column(BaseModel):
    """A column of the catalog's ``items`` table."""

    name: str
    kind: str = Field(description="key, id, title, number, date, text or multi (a list)")
    description: str
    values: list[str] = Field(
        default_factory=list, description="the distinct values of a categorical column (first 200)"
    )
    distinct: int = Field(0, description="how many distinct values it has (categorical columns)")
    min: float | str | None = None
    max: float | str | None = None
    side_table: str | None = Field(
        None, description="for a list column: the table (item, value) to join in SQL"
    )


class CatalogInfo(BaseModel):
    dataset: str
    items: int
    users: int
    interactions: int
    columns: list[Column]
    sql_schema: str = Field(description="the tables a lookup may read, as an LLM prompt shows them")
    components: dict[str, str | None] = Field(
        description="the agent's parts behind the tools: ranker, similarity, text retriever, "
        "explainer (None: not there)"
    )
    ready: bool = Field(
        description="whether the models are fitted; until then similar_items, search_items, "
        "recommend, explain and chat wait for them"
    )


class Rows(BaseModel):
    """The result of a look-up."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = Field(description="whether more rows matched than came back")
    items: list[ItemRef] = Field(
        default_factory=list, description="the catalog items among the rows (item or title column)"
    )
    sql: str = Field(description="the statement that ran (after grounding)")
    notes: list[str] = Field(default_factory=list)
    seconds: float


class ItemDetail(ItemRef):
    fields: dict[str, Any] = Field(description="every catalog field of the item")
    interactions: int = Field(description="how many interactions the dataset has with it")


class Details(BaseModel):
    items: list[ItemDetail]
    not_found: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class ChatItem(ItemRef):
    evidence: dict[str, Any] = Field(default_factory=dict)


class ChatTurn(BaseModel):
    """One turn of the agent."""

    session: str = Field(description="pass it back to continue this conversation")
    text: str
    items: list[ChatItem]
    plan: dict[str, Any] | None = None
    trace: list[dict[str, Any]] = Field(default_factory=list)
    llm_calls: int = 0
    seconds: float = 0.0
    profile: dict[str, Any] = Field(default_factory=dict)


class Profile(BaseModel):
    profile: dict[str, Any]


class ExplanationOut(BaseModel):
    """Why an item suits a user, from the recipe's Explainer."""

    item: ItemRef = Field(description="the item explained (the catalog item the input matched)")
    text: str = Field(description="the explanation")
    evidence: dict[str, Any] = Field(
        default_factory=dict, description="what the explainer based it on (its own keys)"
    )
    explainer: str = Field(description="the recipe's Explainer component that answered")
    history_items: int = Field(description="how many items the user's history had")
    named: list[ItemRef] = Field(
        default_factory=list, description="the catalog items the history's ids or titles matched"
    )
    notes: list[str] = Field(
        default_factory=list, description="how titles were matched, what was not found"
    )


# -- the tools, free of the SDK --------------------------------------------------------------------
@dataclass
class _Session:
    user: str | None
    messages: list[Message] = field(default_factory=list)
    used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


class AgentToolbox:
    """What the MCP tools do, over a built (and fitted) agent's components: each method takes
    plain arguments, returns a structured result and raises :class:`ToolInputError` with one
    readable sentence for anything it cannot answer.

    The agent's dataset gives the catalog (mirrored read-only in SQLite), its ``ranker``,
    ``similarity`` and ``text_retriever`` params the recommenders; the whole agent answers
    ``chat``. Model calls (ranking, similarity, chat turns) run one at a time: local models are
    rarely thread-safe; catalog look-ups run at once.
    """

    def __init__(
        self,
        agent: Any,
        *,
        name: str = "agent",
        max_sessions: int = MAX_SESSIONS,
        session_ttl: float = SESSION_TTL,
        explainer: tuple[str, Any] | None = None,
    ):
        params = getattr(agent, "params", None)
        source = getattr(params, "dataset", None)
        if source is None or not callable(getattr(source, "dataset", None)):
            raise RecaiError(
                f"recai mcp: agent {name!r} ({type(agent).__name__}) has no 'dataset' param; the "
                "tools serve the catalog of the agent's dataset"
            )
        from recai.data.grounding import Grounder
        from recai.data.sql import CatalogDB

        from .describe import columns_of
        from .tools import default_tools

        self.agent = agent
        self.name = name
        known: Any = getattr(agent, "data", None)  # InterecAgent's, loaded once
        self.data: Dataset = known if hasattr(known, "catalog") else source.dataset()
        self.catalog: Catalog = self.data.catalog
        budget = float(getattr(params, "sql_time_budget", 1.0) or 1.0)
        self.db = CatalogDB(self.catalog, time_budget=budget)
        self.grounder = Grounder(self.catalog)
        self.grounder.titles  # noqa: B018 - build the title index now, not in the first call
        self.ranker = getattr(params, "ranker", None)
        self.similarity = getattr(params, "similarity", None)
        self.text_retriever = getattr(params, "text_retriever", None)
        own = getattr(params, "explainer", None)  # an agent that takes one as a param
        if explainer is None and own is not None:
            explainer = ("explainer", own)
        #: the Explainer the explain tool uses, and its recipe name
        self.explainer: Any = explainer[1] if explainer else None
        self.explainer_name: str | None = explainer[0] if explainer else None
        self.popularity = np.bincount(
            np.asarray(self.data.interactions.items, dtype=np.int64),
            minlength=self.catalog.n_items,
        ).astype(np.float64)
        self.tools: dict[str, BaseTool] = default_tools(
            self.db,
            ranker=self.ranker,
            similarity=self.similarity,
            text_retriever=self.text_retriever,
            popularity=self.popularity,
            grounder=self.grounder,
            k=MAX_K,
        )
        self.tools["soft_filter"].keep = MAX_K * 5  # type: ignore[attr-defined]
        self.tools["ranking"].keep = MAX_K * 5  # type: ignore[attr-defined]
        self.columns = columns_of(self.db)
        self._by_id = {str(x): i for i, x in enumerate(self.catalog.ids.tolist())}
        self._by_title: dict[str, int] = {}
        for i, t in enumerate(self.catalog.titles.tolist()):
            self._by_title.setdefault(str(t), i)
        self._schema = self.db.schema_for_prompt()
        from .sqlground import SQLGrounder

        self._sql = SQLGrounder(self.db, self.grounder)
        self._users: dict[str, int] | None = None
        self._model_lock = threading.Lock()
        self._fitted = threading.Event()
        self._fitted.set()
        self._fit: Callable[[], None] | None = None
        self._fit_error: str | None = None
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._sessions_lock = threading.Lock()
        self.max_sessions = int(max_sessions)
        self.session_ttl = float(session_ttl)

    # -- catalog --------------------------------------------------------------------------------
    def describe_catalog(self) -> CatalogInfo:
        cols = [
            Column(
                name=c.name,
                kind=c.kind,
                description=c.description,
                values=c.values[:200],
                distinct=len(c.values),
                min=c.low,
                max=c.high,
                side_table=c.side_table,
            )
            for c in self.columns
        ]
        inter = self.data.interactions
        return CatalogInfo(
            dataset=str(self.data.name),
            items=self.catalog.n_items,
            users=int(inter.n_users),
            interactions=len(inter.items),
            columns=cols,
            sql_schema=self._schema,
            components={
                "ranker": _kind_of(self.ranker),
                "similarity": _kind_of(self.similarity),
                "text_retriever": _kind_of(self.text_retriever),
                "explainer": _kind_of(self.explainer),
            },
            ready=self.ready,
        )

    def lookup(self, sql: str, max_rows: int = 20) -> Rows:
        if not sql.strip():
            raise ToolInputError("lookup: 'sql' is empty; give one SELECT over the items table")
        notes: list[str] = []
        try:
            grounded, notes = self._sql.ground_query(sql)
        except RecaiError:
            grounded = sql  # the database says what is wrong with it, below
        try:
            res = self.db.query(grounded, max_rows=max_rows, max_bytes=256_000)
        except RecaiError as exc:
            read = f" (the statement was read as: {'; '.join(notes)})" if notes else ""
            raise ToolInputError(f"lookup: {_one_line(exc)}{read}") from None
        rows = [[_plain(v) for v in row] for row in res.rows]
        found: list[int] = []
        if "item" in res.columns:
            col = res.columns.index("item")
            found = [r[col] for r in rows if isinstance(r[col], int)]
            found = [i for i in found if 0 <= i < self.catalog.n_items]
        elif "id" in res.columns:
            col = res.columns.index("id")
            found = [self._by_id[str(r[col])] for r in rows if str(r[col]) in self._by_id]
        elif "title" in res.columns:
            col = res.columns.index("title")
            found = [self._by_title[r[col]] for r in rows if r[col] in self._by_title]
        return Rows(
            columns=list(res.columns),
            rows=rows,
            truncated=res.truncated,
            items=[self._ref(i) for i in dict.fromkeys(found)],
            sql=grounded,
            notes=notes,
            seconds=round(res.seconds, 6),
        )

    def item_details(self, items: Sequence[str | int]) -> Details:
        found, notes, missing = self._resolve(items, "items")
        inter = self.popularity
        out = [
            ItemDetail(
                id=_plain(self.catalog.ids[i]),
                title=self.catalog.title(i),
                fields={k: _value(v[i]) for k, v in self.catalog.fields.items()},
                interactions=int(inter[i]),
            )
            for i in found
        ]
        return Details(items=out, not_found=missing, notes=notes)

    # -- finding items --------------------------------------------------------------------------
    def filter_items(
        self,
        *,
        genres: Sequence[str] = (),
        not_genres: Sequence[str] = (),
        year_min: float | None = None,
        year_max: float | None = None,
        fields: dict[str, list[str]] | None = None,
        where: str | None = None,
        k: int = 10,
        offset: int = 0,
    ) -> Items:
        from .bus import CandidateBus

        bus = CandidateBus(self.catalog.n_items)
        state = self._state()
        notes = self._filter(bus, state, genres, not_genres, year_min, year_max, fields, where)
        if notes is None:
            raise ToolInputError(
                "filter_items: give at least one condition (genres, not_genres, year_min, "
                "year_max, fields or where)"
            )
        ids = bus.ids
        order = np.lexsort((ids, -self.popularity[ids]))
        ids = ids[order]
        head = ids[offset : offset + k].tolist()
        return Items(
            items=[self._found(i, bus, score=float(self.popularity[i]), seeds=False) for i in head],
            total=len(ids),
            notes=notes,
        )

    def similar_items(
        self,
        items: Sequence[str | int],
        *,
        k: int = 10,
        genres: Sequence[str] = (),
        not_genres: Sequence[str] = (),
        year_min: float | None = None,
        year_max: float | None = None,
    ) -> Items:
        from .bus import CandidateBus

        if self.similarity is None:
            raise ToolInputError(
                f"similar_items: agent {self.name!r} has no similarity component (its "
                "'similarity' param is not set)"
            )
        seeds, notes, missing = self._resolve(items, "items")
        bus = CandidateBus(self.catalog.n_items)
        state = self._state()
        more = self._filter(bus, state, genres, not_genres, year_min, year_max, None, None)
        notes += more or []
        with self._models("similar_items"):
            self._call("soft_filter", bus, {"seeds": seeds}, state)
        notes += _step_notes(state)
        head = [i for i in bus.ids.tolist() if i not in seeds]
        return Items(
            items=[self._found(i, bus) for i in head[:k]],
            total=len(head),
            named=[self._ref(i) for i in seeds],
            notes=notes + [f"not in the catalog: {m!r}" for m in missing],
        )

    def search_items(
        self,
        text: str,
        *,
        k: int = 10,
        genres: Sequence[str] = (),
        not_genres: Sequence[str] = (),
        year_min: float | None = None,
        year_max: float | None = None,
    ) -> Items:
        from .bus import CandidateBus

        if not text.strip():
            raise ToolInputError("search_items: 'text' is empty")
        bus = CandidateBus(self.catalog.n_items)
        state = self._state()
        notes = self._filter(bus, state, genres, not_genres, year_min, year_max, None, None) or []
        if self.text_retriever is None:
            notes.append("no text retriever: items whose titles match the text come first")
        with self._models("search_items"):
            self._call("soft_filter", bus, {"text": text[:500]}, state)
        notes += _step_notes(state)
        head = bus.ids.tolist()
        return Items(
            items=[self._found(i, bus, seeds=False) for i in head[:k]],
            total=len(head),
            notes=notes,
        )

    def recommend(
        self,
        *,
        history: Sequence[str | int] = (),
        user: str | None = None,
        k: int = 10,
        by: Literal["preference", "popularity", "similarity"] = "preference",
        mode: Literal["accuracy", "diversity"] = "accuracy",
        exclude: Sequence[str | int] = (),
        genres: Sequence[str] = (),
        not_genres: Sequence[str] = (),
        year_min: float | None = None,
        year_max: float | None = None,
    ) -> Items:
        from .bus import CandidateBus

        notes: list[str] = []
        seq: list[int] = []
        disliked: list[int] = []
        if user is not None:  # as explain reads them, and what they disliked is not offered
            seq, notes, disliked = self._liked_by(user)
        named: list[int] = []
        if history:
            named, more, missing = self._resolve(history, "history")
            notes += more + [f"not in the catalog: {m!r}" for m in missing]
            seq += [i for i in named if i not in seq]
        dropped: list[int] = []
        if exclude:
            dropped, more, _ = self._resolve(exclude, "exclude", strict=False)
            notes += more
        bus = CandidateBus(self.catalog.n_items)
        state = self._state()
        state.history = seq
        state.exclude = dropped + [i for i in disliked if i not in dropped]
        state.k = k
        notes += self._filter(bus, state, genres, not_genres, year_min, year_max, None, None) or []
        with self._models("recommend"):
            self._call("ranking", bus, {"by": by, "mode": mode}, state)
        notes += _step_notes(state)
        head = bus.ids.tolist()
        return Items(
            items=[self._found(i, bus) for i in head[:k]],
            total=len(head),
            named=[self._ref(i) for i in named],
            notes=notes,
        )

    def explain(
        self,
        item: str | int,
        *,
        user: str | None = None,
        history: Sequence[str | int] = (),
        session: str | None = None,
    ) -> ExplanationOut:
        """Why ``item`` suits a user whose history is ``user``'s in the dataset (or the chat
        ``session``'s user's), followed by ``history``."""
        from recai.types import ItemList

        if self.explainer is None:
            raise ToolInputError(
                f"explain: agent {self.name!r} has no explainer (add an Explainer component to "
                "the recipe)"
            )
        found, notes, _ = self._resolve([item], "item")
        index = found[0]
        if user is None and session is not None:
            user = self._known_session(session, "explain").user
        seq: list[int] = []
        if user is not None:
            seq, more, _ = self._liked_by(user)
            notes += more
        named: list[int] = []
        if history:
            named, more, missing = self._resolve(history, "history")
            notes += more + [f"not in the catalog: {m!r}" for m in missing]
            seq += [i for i in named if i not in seq]
        if not seq:
            whose = f"user {user!r} has no liked items; " if user is not None else ""
            raise ToolInputError(
                f"{whose}give the items the user liked ('history', by id or title) or a user of "
                "the dataset ('user') to explain the item for"
            )
        who = self.explainer_name
        with self._models("explain"):
            try:
                out = self.explainer.explain(ItemList(np.asarray(seq, dtype=np.int64)), index)
            except NotImplementedError as exc:
                raise ToolInputError(
                    f"the explainer {who!r} cannot explain this: {_one_line(exc)}"
                ) from None
            except (RecaiError, ValueError, TypeError, KeyError, IndexError) as exc:
                raise ToolInputError(
                    f"the explainer {who!r} refused: {type(exc).__name__}: {_one_line(exc)}"
                ) from None
        text = str(getattr(out, "text", "") or "").strip()
        if not text:
            raise ToolInputError(
                f"the explainer {who!r} gave no text for {self.catalog.title(index)!r}"
            )
        evidence = getattr(out, "evidence", None) or {}
        return ExplanationOut(
            item=self._ref(index),
            text=text,
            evidence={str(k): _jsonable(v) for k, v in dict(evidence).items()},
            explainer=str(who),
            history_items=len(seq),
            named=[self._ref(i) for i in named],
            notes=notes,
        )

    # -- the whole agent ------------------------------------------------------------------------
    def chat(
        self, message: str, *, session: str | None = None, user: str | None = None
    ) -> ChatTurn:
        from recai.types import Message

        if not message.strip():
            raise ToolInputError("chat: 'message' is empty")
        if len(message) > MAX_MESSAGE_CHARS:
            raise ToolInputError(
                f"chat: 'message' has {len(message):,} characters, more than {MAX_MESSAGE_CHARS:,}"
            )
        conv = self._session(session, user)
        sid, state = conv
        with state.lock:  # one turn at a time in a conversation
            if user is not None and state.user is not None and user != state.user:
                raise ToolInputError(
                    f"chat: session {sid!r} is user {state.user!r}'s conversation, not {user!r}'s"
                )
            conversation = self._context(state.user) + state.messages + [Message.user(message)]
            with self._models("chat"):
                reply = self.agent.respond(conversation)
            body = dict(reply.to_dict()) if hasattr(reply, "to_dict") else {"text": reply.text}
            state.messages += [Message.user(message), Message.assistant(str(body["text"]))]
            del state.messages[:-MAX_SESSION_MESSAGES]
            state.used = time.monotonic()
        items = [
            ChatItem(
                id=_plain(it.get("id")),
                title=str(it.get("title")),
                evidence=dict(it.get("evidence") or {}),
            )
            for it in body.get("items") or []
        ]
        return ChatTurn(
            session=sid,
            text=str(body["text"]),
            items=items,
            plan=body.get("plan"),
            trace=[s if isinstance(s, dict) else s.to_dict() for s in body.get("trace") or []],
            llm_calls=int(body.get("llm_calls") or 0),
            seconds=float(body.get("seconds") or 0.0),
            profile=dict(body.get("profile") or {}),
        )

    def feedback(
        self,
        item: str | int,
        value: Literal["like", "dislike"],
        *,
        user: str | None = None,
        session: str | None = None,
    ) -> Profile:
        if user is None and session is not None:
            user = self._known_session(session, "feedback").user
        if user is None:
            raise ToolInputError(
                "feedback: name the user ('user', or a 'session' started with a user)"
            )
        found, _, _ = self._resolve([item], "item")
        ref = str(_plain(self.catalog.ids[found[0]]))
        remember = getattr(self.agent, "remember", None)
        if remember is None:
            raise ToolInputError(f"feedback: agent {self.name!r} keeps no user profile")
        try:
            with self._model_lock:
                if value == "like":
                    profile = remember(user, liked=[ref])
                else:
                    profile = remember(user, disliked=[ref])
        except NotImplementedError:
            raise ToolInputError(f"feedback: agent {self.name!r} keeps no user profile") from None
        return Profile(profile=dict(profile))

    # -- fitting while serving -----------------------------------------------------------------
    def defer_fit(self, fit: Callable[[], None]) -> None:
        """Fit the agent's models with ``fit`` once :meth:`start_fit` is called (when the
        server starts), so an MCP client's handshake and the catalog tools answer at once; the
        tools that need the models wait for it."""
        self._fit = fit
        self._fitted.clear()

    def start_fit(self) -> None:
        """Start the deferred fit in a background thread (once; later calls do nothing)."""
        with self._sessions_lock:
            fit, self._fit = self._fit, None
        if fit is None:
            return

        def work() -> None:
            try:
                fit()
            except BaseException as exc:  # reported by every tool that needs the models
                self._fit_error = f"{type(exc).__name__}: {_one_line(exc)}"
                _log(f"fitting {self.name} failed: {self._fit_error}")
            finally:
                self._fitted.set()

        threading.Thread(target=work, name="recai-mcp-fit", daemon=True).start()

    @property
    def ready(self) -> bool:
        """Whether the models are fitted (and did not fail)."""
        return self._fitted.is_set() and self._fit_error is None

    @contextlib.contextmanager
    def _models(self, tool: str) -> Iterator[None]:
        """Waits for the fit, then holds the models (one call at a time)."""
        if not self._fitted.wait(FIT_WAIT):
            raise ToolInputError(f"{tool}: the agent's models are still being fitted; try later")
        if self._fit_error is not None:
            raise ToolInputError(f"{tool}: the agent could not be fitted ({self._fit_error})")
        with self._model_lock:
            yield

    # -- helpers --------------------------------------------------------------------------------
    def user_history(self, user: str) -> list[int]:
        """The dataset's history of ``user`` (external id), oldest first."""
        if self._users is None:
            ids = self.data.user_ids
            n = self.data.interactions.n_users
            names = (
                [str(u) for u in ids.tolist()] if ids is not None else [str(u) for u in range(n)]
            )
            self._users = {u: i for i, u in enumerate(names)}
        where = self._users.get(str(user))
        if where is None:
            raise ToolInputError(f"user {user!r} is not a user of dataset {self.data.name!r}")
        inter = self.data.interactions
        rows = np.flatnonzero(inter.users == where)
        if inter.timestamps is not None:
            rows = rows[np.argsort(inter.timestamps[rows], kind="stable")]
        return [int(i) for i in inter.items[rows].tolist()]

    def _liked_by(self, user: str) -> tuple[list[int], list[str], list[int]]:
        """What ``user`` liked, oldest first, and notes saying where it came from: their history
        in the dataset, then the items liked in the agent's long-term profile (the feedback
        tool's), without the items disliked there; and those disliked items. A user neither
        knows is an error (recommend and explain read a user this way)."""
        seq: list[int] = []
        notes: list[str] = []
        missing: ToolInputError | None = None
        try:
            seq = self.user_history(user)
            notes.append(f"user {user!r}: {len(seq)} items in the dataset's history")
        except ToolInputError as unknown:
            missing = unknown
        remember = getattr(self.agent, "remember", None)
        profile: dict[str, Any] = {}
        if remember is not None:
            try:
                with self._model_lock:
                    profile = dict(remember(str(user)) or {})
            except (NotImplementedError, RecaiError):
                profile = {}

        def indices(key: str) -> list[int]:
            refs = [str(e.get("id")) for e in profile.get(key) or [] if isinstance(e, dict)]
            return [self._by_id[r] for r in refs if r in self._by_id]

        liked, disliked = indices("liked"), set(indices("disliked"))
        if missing is not None and not liked:
            raise missing
        added = [i for i in liked if i not in seq]
        kept = [i for i in seq + added if i not in disliked]
        if added or len(kept) < len(seq) + len(added):
            notes.append(
                f"their profile: {len(added)} liked items added, "
                f"{len(seq) + len(added) - len(kept)} disliked left out"
            )
        return kept, notes, sorted(disliked)

    def _context(self, user: str | None) -> list[Message]:
        if user is None:
            return []
        from recai.data.context import context_message

        try:
            history = self.user_history(user)
        except ToolInputError:
            history = []  # a user the dataset does not know: the agent may still remember them
        return [context_message(user, history, self.catalog)]

    def _session(self, session: str | None, user: str | None) -> tuple[str, _Session]:
        now = time.monotonic()
        with self._sessions_lock:
            for sid in [s for s, v in self._sessions.items() if now - v.used > self.session_ttl]:
                del self._sessions[sid]
            if session is None or session == "new":
                while len(self._sessions) >= self.max_sessions:
                    self._sessions.popitem(last=False)
                sid = secrets.token_urlsafe(12)
                self._sessions[sid] = _Session(user)
                return sid, self._sessions[sid]
        found = self._known_session(session)
        return session, found

    def _known_session(self, session: str, tool: str = "chat") -> _Session:
        with self._sessions_lock:
            found = self._sessions.get(session)
            if found is None:
                raise ToolInputError(
                    f"{tool}: no conversation with session {session[:80]!r} (it ended after "
                    f"{self.session_ttl:.0f} s idle, or the server restarted); omit 'session' "
                    "to start one"
                )
            self._sessions.move_to_end(session)
            found.used = time.monotonic()
            return found

    def _state(self) -> TurnState:
        from .tools import TurnState

        return TurnState(self.catalog, self.grounder, k=MAX_K)

    def _call(self, tool: str, bus: Any, arg: Any, state: TurnState) -> ToolResult:
        result = self.tools[tool].run(bus, arg, state)
        if not result.ok:
            raise ToolInputError(f"{tool}: {result.error}")
        return result

    def _filter(
        self,
        bus: Any,
        state: TurnState,
        genres: Sequence[str],
        not_genres: Sequence[str],
        year_min: float | None,
        year_max: float | None,
        fields: dict[str, list[str]] | None,
        where: str | None,
    ) -> list[str] | None:
        """Narrows ``bus`` to the items meeting the conditions (None when there are none)."""
        arg: dict[str, Any] = {}
        if genres:
            arg["genres"] = list(genres)
        if not_genres:
            arg["not_genres"] = list(not_genres)
        if year_min is not None:
            arg["year_min"] = year_min
        if year_max is not None:
            arg["year_max"] = year_max
        for key, values in (fields or {}).items():
            if key.lower() in ("sql", "genres", "not_genres", "year_min", "year_max"):
                raise ToolInputError(f"fields: {key!r} has its own argument; use it instead")
            arg[key] = values
        if where is not None and where.strip():
            arg["sql"] = where
        if not arg:
            return None
        result = self._call("hard_filter", bus, arg, state)
        notes = [n for n in result.note.split("; ") if n]
        unknown = [
            n.removesuffix(", ignored") for n in notes if n.endswith("no such value, ignored")
        ]
        if unknown:  # a client asked for a value the catalog lacks: say so, do not drop it
            hint = self._values_hint(unknown[0].split(" ", 1)[0])
            raise ToolInputError("; ".join(unknown) + hint)
        return notes

    def _values_hint(self, column: str) -> str:
        col = next((c for c in self.columns if c.name == column), None)
        if col is None or not col.values:
            return ""
        more = f", ... ({len(col.values)} in all; describe_catalog lists them)"
        shown = ", ".join(col.values[:30]) + (more if len(col.values) > 30 else "")
        return f" ({column} values: {shown})"

    def _resolve(
        self, values: Sequence[str | int], what: str, *, strict: bool = True
    ) -> tuple[list[int], list[str], list[str]]:
        """Ids or titles to catalog indices: ``(found, notes, not found)``; with ``strict``,
        nothing found is an error."""
        if len(values) > MAX_NAMED:
            raise ToolInputError(f"{what}: {len(values)} entries, more than {MAX_NAMED}")
        found: list[int] = []
        notes: list[str] = []
        missing: list[str] = []
        for v in values:
            text = str(v).strip()
            i = self._by_id.get(text)
            if i is None and text:
                i = self._title(text[:300])
                if i is not None and self.catalog.title(i) != text:
                    notes.append(f"{text!r} read as {self.catalog.title(i)!r}")
            if i is None:
                missing.append(text)
            elif i not in found:
                found.append(i)
        if strict and not found:
            shown = ", ".join(repr(m[:60]) for m in missing[:5])
            raise ToolInputError(
                f"{what}: no catalog item has the id or a title like {shown or 'that'}"
            )
        return found, notes, missing

    def _title(self, text: str) -> int | None:
        """The item whose title ``text`` names, or None: see :func:`title_match`."""
        return title_match(self.grounder, text)

    def _ref(self, i: int) -> ItemRef:
        return ItemRef(id=_plain(self.catalog.ids[i]), title=self.catalog.title(i))

    def _found(
        self, i: int, bus: Any, *, score: float | None = None, seeds: bool = True
    ) -> FoundItem:
        ev = bus.evidence(i)
        value = ev.score if score is None else score
        return FoundItem(
            id=_plain(self.catalog.ids[i]),
            title=self.catalog.title(i),
            score=None if value is None or not np.isfinite(value) else round(float(value), 6),
            similar_to=[self.catalog.title(s) for s in ev.seeds] if seeds else [],
            why=list(ev.kept_by),
        )


def title_match(grounder: Any, text: str) -> int | None:
    """The catalog item whose title ``text`` names, or None.

    The catalog's fuzzy matcher (character 3-grams, :class:`recai.data.grounding.Grounder`)
    decides when its best scores :data:`TITLE_MATCH` (as the agent grounds titles), or
    :data:`TITLE_LEAD` and :data:`TITLE_MARGIN` times the runner-up's. Below that, a misspelt
    name ('Notoriuos', 'Batman Forevrr': a typo breaks up to three 3-grams, so a short title
    scores 0.3) is matched by its letters: the candidate among the matcher's best
    :data:`TITLE_CANDIDATES` whose name (no year, the trailing article in front) is within
    :data:`SPELLING_MATCH` by edit similarity (:func:`_spelling`) and :data:`SPELLING_MARGIN`
    above the next. On ML-100K, one typo (a letter dropped, doubled, changed or swapped) in the
    names of 400 random titles: 312 of them found at 0.5 alone, 388 this way (a second draw: 322
    and 389), with the same 2 (5) wrong, each a title another shares or contains; of 30 titles
    not in the catalog the same 9 match either way (all at 0.5: 'Die Hard 4', 'Her'). A title
    costs 0.11 ms instead of 0.07.
    """
    ids, scores = grounder.titles.top(text, TITLE_CANDIDATES)
    if not len(ids) or float(scores[0]) <= 0:
        return None
    best = float(scores[0])
    second = float(scores[1]) if len(scores) > 1 else 0.0
    if best >= TITLE_MATCH or (best >= TITLE_LEAD and best >= TITLE_MARGIN * second):
        return int(ids[0])
    query = _name_key(text)
    if not 4 <= len(query) <= SPELLING_LONGEST:
        return None
    titles = grounder.catalog.titles
    near = sorted(
        (
            (_spelling(query, _name_key(str(titles[i])), SPELLING_MATCH), int(i))
            for i, x in zip(ids, scores, strict=True)
            if x > 0
        ),
        reverse=True,
    )
    if near[0][0] < SPELLING_MATCH:
        return None
    if len(near) > 1 and near[0][0] - near[1][0] < SPELLING_MARGIN:
        return None
    return near[0][1]


_YEAR = re.compile(r"\s*\((?:\d{4}|\d{4}-\d{4})\)\s*$")
_ARTICLE = re.compile(r"^(.*), (the|a|an|la|le|les|l'|il|el|das|der|die)$")


def _name_key(title: str) -> str:
    """A title as a user types it: lower case, no year, a trailing article in front
    ('Omen, The (1976)' -> 'the omen'), single spaces."""
    text = " ".join(_YEAR.sub("", title.lower()).split())
    moved = _ARTICLE.match(text)
    return f"{moved.group(2)} {moved.group(1)}" if moved else text


def _spelling(a: str, b: str, least: float = 0.0) -> float:
    """1 - the optimal string alignment distance (edits and swaps of neighbours) over the
    longer length: 'notoriuos' and 'notorious' 0.89, 'slepeer' and 'sleeper' 0.86 but
    'sleepers' 0.75. Below ``least`` it stops early and says 0."""
    if a == b:
        return 1.0
    n, m = len(a), len(b)
    if not n or not m:
        return 0.0
    most = int((1.0 - least) * max(n, m) + 1e-9)  # the most edits that still reach ``least``
    if abs(n - m) > most:
        return 0.0
    before = list(range(m + 1))
    last = before
    for i in range(1, n + 1):
        row = [i] + [0] * m
        for j in range(1, m + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(before[j] + 1, row[j - 1] + 1, before[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], last[j - 2] + 1)
        if min(row) > most:  # every alignment has more edits already
            return 0.0
        last, before = before, row
    return 1.0 - before[m] / max(n, m)


def _step_notes(state: TurnState) -> list[str]:
    return [n for step in state.trace for n in step.note.split("; ") if n]


def _kind_of(component: Any) -> str | None:
    return None if component is None else type(component).__name__


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # a numpy scalar as a Python value
    if callable(item) and not isinstance(value, str | bytes):
        value = item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _value(value: Any) -> Any:
    """A catalog cell as JSON: tuples as lists, NaN and NaT as None, dates as ISO text."""
    if isinstance(value, tuple | list):
        return [_value(v) for v in value]
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    return _plain(value)


def _jsonable(value: Any) -> Any:
    """An explainer's evidence as JSON: mappings and sequences (arrays too) through, numpy
    scalars as Python values, anything else as its text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | np.ndarray):
        return [_jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    value = _value(value)
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return str(value)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:600] or type(exc).__name__


# -- the MCP server (the official SDK, imported here only) -----------------------------------------
ItemNames = Annotated[
    list[str | int],
    Field(
        min_length=1,
        max_length=MAX_NAMED,
        description="items by id (as the tools return them) or by title (matched to the catalog)",
    ),
]
Count = Annotated[int, Field(ge=1, le=MAX_K, description="how many items to list")]
Values = Annotated[
    list[str],
    Field(max_length=20, description="catalog values (describe_catalog lists them)"),
]
Year = Annotated[int | None, Field(ge=0, le=9999, description="a year (inclusive)")]
UserId = Annotated[
    str | None,
    Field(
        max_length=200,
        description="a user id of the dataset, or one given feedback: their history and their "
        "likes and dislikes are used",
    ),
]
Liked = Annotated[
    list[str | int],
    Field(max_length=MAX_NAMED, description="items the user liked, oldest first, by id or title"),
]
SessionId = Annotated[
    str | None,
    Field(max_length=200, description="a session returned by an earlier chat call"),
]

#: The tools, in the order they are listed.
TOOL_NAMES = (
    "describe_catalog",
    "lookup",
    "filter_items",
    "similar_items",
    "search_items",
    "recommend",
    "item_details",
    "explain",
    "chat",
    "feedback",
)

READ_ONLY = {"read_only_hint": True, "idempotent_hint": True, "open_world_hint": False}


def build_server(
    toolbox: AgentToolbox, *, name: str = "recai", tools: Sequence[str] | None = None
) -> Any:
    """An :class:`mcp.server.mcpserver.MCPServer` whose tools call ``toolbox``: all of
    :data:`TOOL_NAMES` (``explain`` only when the toolbox has an explainer), or those named in
    ``tools``."""
    chosen = set(TOOL_NAMES if tools is None else tools)
    if chosen - set(TOOL_NAMES):
        raise RecaiError(_unknown_tools(chosen))
    if toolbox.explainer is None:
        if tools is not None and "explain" in chosen:
            raise RecaiError(_no_explainer(toolbox.name))
        chosen.discard("explain")
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations
    from pydantic import ValidationError

    from . import __version__

    accepted: dict[str, list[str]] = {}

    class _Server(MCPServer):  # type: ignore[misc]
        """Arguments a tool does not take, or that fail its schema, are one-line tool errors."""

        async def call_tool(self, tool: str, arguments: dict[str, Any], context: Any = None) -> Any:
            known = accepted.get(tool)
            unknown = sorted(set(arguments or {}) - set(known or ()))
            if known is not None and unknown:
                raise ToolError(
                    f"{tool}: no argument {unknown[0]!r} (it takes: {', '.join(known) or 'none'})"
                )
            try:
                return await super().call_tool(tool, arguments, context)
            except ToolError as exc:
                if isinstance(exc.__cause__, ValidationError):
                    raise ToolError(_invalid(tool, exc.__cause__)) from exc.__cause__
                text = str(exc).removeprefix(f"Error executing tool {tool}: ")
                if not text.startswith(f"{tool}: "):
                    text = f"{tool}: {text}"
                raise ToolError(text) from exc.__cause__

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        toolbox.start_fit()  # the deferred fit starts with the server, once
        yield

    instructions = INSTRUCTIONS
    if "explain" in chosen:
        instructions += (
            " explain says why an item suits a user (their liked items, or a user of the dataset)."
        )
    server = _Server(
        name,
        instructions=instructions,
        version=__version__,
        log_level="WARNING",
        lifespan=lifespan,
    )

    def describe_catalog() -> CatalogInfo:
        """The catalog: its size, its columns (kind, meaning, distinct values of categorical
        columns, ranges of numbers and dates), the SQL tables a lookup reads, and which
        recommenders stand behind the tools."""
        return toolbox.describe_catalog()

    def lookup(
        sql: Annotated[
            str,
            Field(
                min_length=1,
                max_length=4000,
                description="one SQLite SELECT over the items table (and the side tables "
                "describe_catalog names), e.g. SELECT id, title, year FROM items WHERE ...",
            ),
        ],
        max_rows: Annotated[int, Field(ge=1, le=MAX_ROWS, description="most rows returned")] = 20,
    ) -> Rows:
        """Answer a question about items with one read-only SQL statement over the catalog.
        Column names, values and titles are matched to the catalog first (the notes say what
        changed); anything but a read is refused; long statements are stopped."""
        return toolbox.lookup(sql, max_rows)

    def filter_items(
        genres: Annotated[Values, Field(description="keep items with any of these genres")] = [],  # noqa: B006
        not_genres: Annotated[Values, Field(description="drop items with any of these")] = [],  # noqa: B006
        year_min: Year = None,
        year_max: Year = None,
        fields: Annotated[
            dict[str, list[str]] | None,
            Field(description="other categorical columns: {column: [values, any of them]}"),
        ] = None,
        where: Annotated[
            str | None,
            Field(max_length=1000, description="an SQLite condition over the items columns"),
        ] = None,
        k: Count = 10,
        offset: Annotated[int, Field(ge=0, le=100_000, description="skip this many first")] = 0,
    ) -> Items:
        """The items meeting all the conditions, most interacted-with first (score: the
        number of interactions)."""
        return toolbox.filter_items(
            genres=genres,
            not_genres=not_genres,
            year_min=year_min,
            year_max=year_max,
            fields=fields,
            where=where,
            k=k,
            offset=offset,
        )

    def similar_items(
        items: ItemNames,
        k: Count = 10,
        genres: Annotated[Values, Field(description="only items with any of these")] = [],  # noqa: B006
        not_genres: Annotated[Values, Field(description="no items with any of these")] = [],  # noqa: B006
        year_min: Year = None,
        year_max: Year = None,
    ) -> Items:
        """The items most similar to the given ones (the agent's item-similarity component),
        each with the given items it is similar to; optionally within conditions."""
        return toolbox.similar_items(
            items,
            k=k,
            genres=genres,
            not_genres=not_genres,
            year_min=year_min,
            year_max=year_max,
        )

    def search_items(
        text: Annotated[
            str,
            Field(
                min_length=2,
                max_length=500,
                description="what the items are like, in words, or part of a title",
            ),
        ],
        k: Count = 10,
        genres: Annotated[Values, Field(description="only items with any of these")] = [],  # noqa: B006
        not_genres: Annotated[Values, Field(description="no items with any of these")] = [],  # noqa: B006
        year_min: Year = None,
        year_max: Year = None,
    ) -> Items:
        """The items nearest a text, through the agent's text retriever (an embedding model);
        without one, the items whose titles match the text best. Optionally within
        conditions."""
        return toolbox.search_items(
            text,
            k=k,
            genres=genres,
            not_genres=not_genres,
            year_min=year_min,
            year_max=year_max,
        )

    def recommend(
        history: Liked = [],  # noqa: B006
        user: UserId = None,
        k: Count = 10,
        by: Annotated[
            Literal["preference", "popularity", "similarity"],
            Field(
                description="preference: the ranker on the history; popularity; similarity "
                "to the history"
            ),
        ] = "preference",
        mode: Annotated[
            Literal["accuracy", "diversity"],
            Field(description="diversity re-ranks the head to vary the genres"),
        ] = "accuracy",
        exclude: Annotated[
            list[str | int],
            Field(max_length=MAX_NAMED, description="items not to recommend (ids or titles)"),
        ] = [],  # noqa: B006
        genres: Annotated[Values, Field(description="only items with any of these")] = [],  # noqa: B006
        not_genres: Annotated[Values, Field(description="no items with any of these")] = [],  # noqa: B006
        year_min: Year = None,
        year_max: Year = None,
    ) -> Items:
        """Recommendations for a history (items, and/or a user: their history in the dataset
        with the likes and dislikes given through feedback) from the agent's ranker, without
        the history's own items nor the disliked ones; accuracy or diversity mode;
        optionally within conditions. Without a ranker or a history: by popularity (a note
        says so)."""
        return toolbox.recommend(
            history=history,
            user=user,
            k=k,
            by=by,
            mode=mode,
            exclude=exclude,
            genres=genres,
            not_genres=not_genres,
            year_min=year_min,
            year_max=year_max,
        )

    def item_details(items: ItemNames) -> Details:
        """Every catalog field of the given items (by id or title), and how many interactions
        each has."""
        return toolbox.item_details(items)

    def explain(
        item: Annotated[
            str | int,
            Field(description="the item to explain, by id or title (matched to the catalog)"),
        ],
        history: Liked = [],  # noqa: B006
        user: UserId = None,
        session: SessionId = None,
    ) -> ExplanationOut:
        """Why an item suits a user: the recipe's explainer on what the user liked (the items
        given, after the history of 'user', or of a chat 'session''s user, in the dataset and
        what they liked through feedback). Returns the explanation's text with the item's id
        and title."""
        return toolbox.explain(item, user=user, history=history, session=session)

    def chat(
        message: Annotated[
            str,
            Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="the user's message"),
        ],
        session: SessionId = None,
        user: UserId = None,
    ) -> ChatTurn:
        """One turn with the conversational recommender (it plans, runs its tools and answers
        naming only catalog items). Without 'session' a new conversation starts; pass the
        returned session to continue it. 'user' makes it that user's conversation."""
        return toolbox.chat(message, session=session, user=user)

    def feedback(
        item: Annotated[str | int, Field(description="the item, by id or title")],
        value: Literal["like", "dislike"],
        user: UserId = None,
        session: SessionId = None,
    ) -> Profile:
        """Add a like or dislike to a user's long-term profile (the user, or a chat session's
        user) and return the profile."""
        return toolbox.feedback(item, value, user=user, session=session)

    read_only = ToolAnnotations(**READ_ONLY)
    for fn, title, hints in (
        (describe_catalog, "Describe the catalog", read_only),
        (lookup, "Look up items with SQL", read_only),
        (filter_items, "Items by conditions", read_only),
        (similar_items, "Similar items", read_only),
        (search_items, "Search items by text", read_only),
        (recommend, "Recommend for a history", read_only),
        (item_details, "Item details", read_only),
        (explain, "Explain an item for a user", read_only),
        (chat, "Chat with the recommender", ToolAnnotations(open_world_hint=False)),
        (feedback, "Like or dislike an item", ToolAnnotations(open_world_hint=False)),
    ):
        if fn.__name__ not in chosen:
            continue
        server.add_tool(_guarded(fn), title=title, annotations=hints, structured_output=True)
        accepted[fn.__name__] = list(inspect.signature(fn).parameters)
    return server


def _unknown_tools(names: set[str]) -> str:
    import difflib

    wrong = sorted(names - set(TOOL_NAMES))
    close = difflib.get_close_matches(wrong[0], TOOL_NAMES, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (
        f"recai mcp: --tools names {', '.join(repr(w) for w in wrong)}, which "
        f"{'is' if len(wrong) == 1 else 'are'} no tool.{hint} tools: {', '.join(TOOL_NAMES)}"
    )


def _no_explainer(name: str) -> str:
    return (
        f"recai mcp: --tools names explain, but agent {name!r}'s recipe has no Explainer "
        "component (add one to the recipe; recai plugins lists the installed ones)"
    )


def _invalid(tool: str, error: Any) -> str:
    """A pydantic validation error of a tool's arguments as one sentence per argument."""
    parts = []
    for e in error.errors()[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != tool) or "arguments"
        got = e.get("input")
        shown = repr(got) if len(repr(got)) <= 60 else repr(got)[:57] + "..."
        parts.append(f"argument {where!r}: {e.get('msg', 'invalid')} (got {shown})")
    return f"{tool}: " + "; ".join(parts)


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` whose failures are MCP tool errors with one readable sentence (the SDK would hide
    an unexpected exception's text behind 'Error executing tool')."""
    import functools

    from mcp.server.mcpserver.exceptions import ToolError

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecaiError as exc:
            raise ToolError(_one_line(exc)) from None
        except Exception as exc:  # a component failing must not end the server
            raise ToolError(
                f"{fn.__name__} failed: {type(exc).__name__}: {_one_line(exc)}"
            ) from None

    return call


# -- the command -----------------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``recai mcp``'s arguments to ``parser`` (the kernel's command hook calls this)."""
    parser.description = (
        "Serve a recipe's agent and its tools (catalog description, SQL look-up, filters, "
        "similar items, recommendations, item details, explanations, chat) as a Model Context "
        "Protocol "
        "server, so any MCP-capable assistant can use them. stdio (the assistant starts this "
        "command) or streamable HTTP on loopback. The agent is fitted first (cached under --out)."
    )
    parser.add_argument("recipe", help="recipe file with an agent component")
    parser.add_argument(
        "--component", "-c", help="the recipe's agent to serve (needed if it has several)"
    )
    parser.add_argument(
        "--transport",
        default="stdio",
        help="stdio (default: messages on standard input and output) or http (streamable "
        "HTTP at http://HOST:PORT/mcp)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="http: address (default 127.0.0.1)")
    parser.add_argument("--port", default="8765", help="http: port (default 8765; 0: a free one)")
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="http: require 'Authorization: Bearer <key>' with the key this environment "
        "variable holds",
    )
    parser.add_argument(
        "--tools",
        metavar="NAME,...",
        help="serve only these tools (default all: " + ", ".join(TOOL_NAMES) + "; explain only "
        "with an Explainer); e.g. leave "
        "out chat and feedback to offer the recommenders without the LLM",
    )
    parser.add_argument(
        "--explainer",
        metavar="NAME",
        help="the recipe's Explainer component the explain tool uses (default: the agent's "
        "'explainer' param, else the recipe's only Explainer; without one there is no explain "
        "tool)",
    )
    parser.add_argument(
        "--out", help="folder for fitted models (default runs/<recipe name>-chat, as recai chat)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    transport = str(args.transport).strip().lower()
    if transport not in ("stdio", "http"):
        raise RecaiError(f"recai mcp: --transport must be stdio or http, not {args.transport!r}")
    port = _port(args.port)
    tools = None
    if args.tools is not None:
        tools = [t.strip() for t in str(args.tools).split(",") if t.strip()]
        if not tools:
            raise RecaiError("recai mcp: --tools names no tool; tools: " + ", ".join(TOOL_NAMES))
        if set(tools) - set(TOOL_NAMES):
            raise RecaiError(_unknown_tools(set(tools)))
    api_key = None
    if args.api_key_env:
        if transport != "http":
            raise RecaiError("recai mcp: --api-key-env guards the http transport; stdio has none")
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise RecaiError(
                f"recai mcp: --api-key-env {args.api_key_env}: that environment variable is not "
                "set (or empty)"
            )
    if transport == "stdio" and (args.host != "127.0.0.1" or str(args.port) != "8765"):
        raise RecaiError("recai mcp: --host and --port are for --transport http")
    passive_openmp()
    with _stdout_to_stderr():  # in stdio mode stdout is the protocol: nothing else may reach it
        agent, name, fit, explainer = build_for_mcp(
            args.recipe,
            args.component,
            args.out,
            explainer=getattr(args, "explainer", None),
            tools=tools,
            log=_log,
        )
        toolbox = AgentToolbox(agent, name=name, explainer=explainer)
        if fit is not None:
            toolbox.defer_fit(fit)
        server = build_server(toolbox, tools=tools)
    if transport == "stdio":
        import anyio

        _log(f"serving {name}'s tools over stdio")
        with _unbuffered_stdout():
            anyio.run(server.run_stdio_async)
        return 0
    toolbox.start_fit()  # stdout is no protocol here: fit at once, beside the server
    return _serve_http(server, name, args.host, port, api_key)


def build_for_mcp(
    recipe_path: str,
    component: str | None,
    out: str | None,
    *,
    explainer: str | None = None,
    tools: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Any, str, Callable[[], None] | None, tuple[str, Any] | None]:
    """:func:`recai_agent.cli.build_agent`'s agent, name and fit, and the Explainer the
    ``explain`` tool serves, ``(recipe name, component)`` or None.

    The Explainer: ``explainer`` (a recipe component name), else the one the agent's
    ``explainer`` param names, else the recipe's only Explainer component (the rule of ``recai
    serve``'s ``/v1/explain``); none when ``tools`` leaves ``explain`` out. It is built with the
    agent (one build: they share the dataset and models) and fitted with it when it learns.
    Every problem is a :class:`RecaiError` naming the recipe and the option.
    """
    import difflib

    from recai.roles import Role

    wanted = tools is None or "explain" in tools

    def pick(plan: Plan, name: str) -> list[str]:
        source = plan.recipe.source
        found = [n for n, e in plan.resolved.items() if Role.EXPLAINER in e.roles]
        listing = ", ".join(found) or "none"
        if explainer is not None:
            if not wanted:
                raise RecaiError(
                    "recai mcp: --explainer is for the explain tool, which --tools leaves out"
                )
            if explainer not in found:
                close = difflib.get_close_matches(explainer, found, n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise RecaiError(
                    f"{source}: --explainer {explainer!r} is not an Explainer component."
                    f"{hint} explainers: {listing}"
                )
            return [explainer]
        if not wanted:
            return []
        own = plan.recipe.components[name].params.get("explainer")
        if isinstance(own, str) and own in found:
            return [own]
        if len(found) == 1:
            return found
        if found:
            raise RecaiError(
                f"{source}: name the explainer of the explain tool, --explainer NAME (it "
                f"has {len(found)}: {listing}), or leave explain out with --tools"
            )
        if tools is not None:
            raise RecaiError(_no_explainer(name))
        return []

    agent, name, fit, also = build_agent(recipe_path, component, out, log=log, also=pick)
    return agent, name, fit, next(iter(also.items()), None)


def _port(text: str) -> int:
    try:
        port = int(str(text).strip())
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise RecaiError(
            f"recai mcp: --port must be a whole number from 0 to 65535 (0 picks a free one), "
            f"got {str(text)[:40]!r}"
        )
    return port


def _log(line: str) -> None:
    print(f"recai mcp: {line}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Everything written to standard output (by Python or by a library's C code) goes to
    standard error while the agent is built and fitted."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def _unbuffered_stdout() -> Iterator[None]:
    """``sys.stdout`` writes straight to descriptor 1 while serving: the SDK points that
    descriptor at stderr and keeps the protocol on a private copy, so a stray print lands on
    stderr at once (a buffered one would be flushed onto the protocol at exit)."""
    import io

    sys.stdout.flush()
    saved = sys.stdout
    raw = io.FileIO(1, "wb", closefd=False)
    sys.stdout = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", write_through=True)
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        sys.stdout = saved


def _serve_http(server: Any, name: str, host: str, port: int, api_key: str | None) -> int:
    import socket

    import uvicorn

    app = server.streamable_http_app(host=host)
    if api_key is not None:
        app = _KeyGuard(app, api_key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RecaiError(f"recai mcp: cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    bound = sock.getsockname()[1]
    if host not in _LOOPBACK and api_key is None:
        _log(f"warning: listening on {host} without --api-key-env and without TLS")
    shown = f"[{host}]" if ":" in host else host
    print(f"recai mcp: {name}'s tools at http://{shown}:{bound}/mcp (Ctrl-C stops)", flush=True)

    class _Server(uvicorn.Server):
        """SIGINT or SIGTERM stops serving (requests in flight get 10 s), a second one at once,
        and the command exits 0 (uvicorn's own handler re-raises the signal afterwards)."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True

    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10)
    _Server(config).run(sockets=[sock])
    _log("stopped")
    return 0


class _KeyGuard:
    """ASGI middleware: an HTTP request without ``Authorization: Bearer <key>`` (or
    ``X-API-Key: <key>``) gets a 401 before it reaches the MCP app."""

    def __init__(self, app: Any, key: str):
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        body = (
            b'{"error": {"message": "a valid API key is required: send Authorization: Bearer '
            b'<key>", "type": "invalid_request_error", "code": "invalid_api_key"}}'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Any) -> bool:
        given = b""
        for key, value in scope.get("headers") or []:
            if key == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
            elif key == b"x-api-key" and not given:
                given = value.strip()
        return hmac.compare_digest(given, self.key)
