"""The roles a component can play, as abstract base classes.

Six roles come from the design: :class:`LLMBackend`, :class:`Retriever`, :class:`Ranker`,
:class:`KnowledgePrompter`, :class:`Explainer`, :class:`Evaluator`. Two more kinds have a seat of
their own: :class:`DatasetSource` (loads a :class:`~recai.data.Dataset`) and :class:`Agent`
(a conversational recommender composing other components).

A component class subclasses the role it plays (a class may play several, e.g. a model that is both
a ranker and a retriever). Role classes double as **component references** in params models: a
field annotated ``llm: LLMBackend`` accepts an ``LLMBackend`` object in Python, and the *name* of
another component inside a recipe, which the kernel resolves, type-checks and builds first.
"""

from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel
from pydantic_core import core_schema

from . import specs

if TYPE_CHECKING:
    import numpy as np

    from .data import Dataset, Split
    from .runtime import RunContext
    from .types import AgentTurn, Completion, Explanation, ItemList, Message, Query, Report

__all__ = [
    "Role",
    "Component",
    "LLMBackend",
    "Retriever",
    "Ranker",
    "KnowledgePrompter",
    "Explainer",
    "Evaluator",
    "DatasetSource",
    "Agent",
    "PendingRef",
]


class Role(str, Enum):
    """A kind of component. The value is the name used in recipes, the CLI and ``recai.create``."""

    LLM_BACKEND = "llm_backend"
    RETRIEVER = "retriever"
    RANKER = "ranker"
    KNOWLEDGE_PROMPTER = "knowledge_prompter"
    EXPLAINER = "explainer"
    EVALUATOR = "evaluator"
    DATASET = "dataset"
    AGENT = "agent"

    @property
    def hook(self) -> str:
        """Name of the hook through which plugins register components of this role."""
        return _HOOKS[self]

    @property
    def cls(self) -> type[Component]:
        """The abstract base class of this role."""
        return _CLASSES[self]

    @property  # shadows str.title: Role.LLM_BACKEND.title == "llm backend"
    def title(self) -> str:  # type: ignore[override]
        return self.value.replace("_", " ")

    @property
    def a(self) -> str:
        """The title with its article: ``"a ranker"``, ``"an llm backend"``."""
        return with_article(self.title)

    @property
    def plural(self) -> str:
        """The title in the plural: ``"rankers"``, ``"knowledge prompters"``, ``"llm backends"``."""
        return self.title + ("es" if self.title.endswith("s") else "s")

    @classmethod
    def parse(cls, value: Role | str | type) -> Role:
        """A role from its value (``"ranker"``), its hook name, or its class (``Ranker``)."""
        if isinstance(value, Role):
            return value
        if isinstance(value, type):
            for role in cls:
                if value is role.cls:
                    return role
            from .errors import UnknownRoleError

            hint = (
                " (recai.Dataset is data; the role is recai.DatasetSource)"
                if value.__name__ == "Dataset"
                else ""
            )
            raise UnknownRoleError(f"{value.__name__} is not a recai role class{hint}")
        text = str(value).strip().lower().replace("-", "_").replace(" ", "_")
        for role in cls:
            if text in (role.value, role.hook, role.value + "s"):
                return role
        import difflib

        from .errors import UnknownRoleError

        names = [r.value for r in cls]
        close = difflib.get_close_matches(text, names, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownRoleError(f"unknown role {value!r}.{hint} Choose one of: {', '.join(names)}")


def with_article(noun: str) -> str:
    """``"a ranker"``, ``"an evaluator"``, ``"an llm backend"`` (said "an el-el-em")."""
    return ("an " if noun[:1] in "aeiou" or noun.startswith("llm") else "a ") + noun


class PendingRef:
    """Stands in for a referenced component while a recipe is checked but not yet built."""

    __slots__ = ("name", "use")

    def __init__(self, name: str, use: str):
        self.name = name
        self.use = use

    def __repr__(self) -> str:
        return f"<component {self.name!r} ({self.use}), not built yet>"


def describe_component(component: Any) -> Any:
    """A stable, JSON-able description of a component, for cache keys and params dumps.

    A component built from a spec is its registered name and params (nested components described
    the same way); one built by hand is its class, simple public attributes and, when it has
    pydantic ``params`` (a :class:`recai.Configurable`, or any ``self.params`` model), those
    params with nested components described the same way — so two hand-built components of one
    class with different params get different cache keys. Keep mutable state (counters, caches)
    in attributes whose names start with ``_``, or the description, and every cache keyed by it,
    changes as the object is used.
    """
    if isinstance(component, PendingRef):
        return component.name
    built_as = getattr(component, "_recai_built_as", None)
    if built_as is not None:
        return {"use": built_as[0], "params": built_as[1]}
    simple = (int, float, str, bool, type(None))
    params = getattr(component, "params", None)
    kind: type = type(component)
    skip = _neutral_names(kind)
    if isinstance(params, BaseModel):
        skip = skip | specs.neutral_fields(type(params))
    attrs = {
        k: v
        for k, v in sorted(getattr(component, "__dict__", {}).items())
        if not k.startswith("_")
        and k not in skip
        and (
            isinstance(v, simple)
            or (isinstance(v, (list, tuple)) and all(isinstance(x, simple) for x in v))
        )
    }
    out: dict[str, Any] = {
        "class": f"{type(component).__module__}.{type(component).__qualname__}",
        "attrs": attrs,
    }
    if isinstance(params, BaseModel):
        # fields typed with a role class serialise through this function (Component's schema);
        # a component in a field typed otherwise (Any, object) is described here, not dumped
        out["params"] = params.model_dump(
            mode="json", fallback=_describe_or_repr, exclude=set(skip)
        )
    return out


@functools.lru_cache(maxsize=256)
def _neutral_names(cls: type) -> frozenset[str]:
    """The params a class's constructor declares with :func:`recai.specs.neutral` (none when
    its signature cannot be read as a params model)."""
    try:
        return specs.neutral_fields(specs.params_from_signature(cls))
    except Exception:  # noqa: BLE001 - any class may be described; most have no such params
        return frozenset()


def _describe_or_repr(value: Any) -> Any:
    """How a params dump shows a value pydantic cannot serialise: a component (or a
    :class:`PendingRef`) by its description, anything else by its ``repr`` (as
    :meth:`recai.ComponentSpec.build` does)."""
    if isinstance(value, (Component, PendingRef)):
        return describe_component(value)
    return repr(value)


def _validate_reference(
    expected: type[Component], value: Any, info: core_schema.ValidationInfo
) -> Any:
    if isinstance(value, expected):
        return value
    context = info.context or {}
    resolve = context.get("recai_resolve") if isinstance(context, dict) else None
    if isinstance(value, str):
        if resolve is None:
            raise ValueError(
                f"{value!r} names a component, which only works inside a recipe; "
                f"pass a {expected.__name__} object instead"
            )
        obj = resolve(value, expected)
        if not isinstance(obj, (expected, PendingRef)):
            raise ValueError(
                f"component {value!r} is a {type(obj).__name__}, not a {expected.__name__}"
            )
        return obj
    if isinstance(value, PendingRef):
        return value
    role = getattr(expected, "role", None)
    what = f"{role.a} component ({expected.__name__})" if role else expected.__name__
    if resolve is not None:
        raise ValueError(
            f"expected the name of {what} defined in this recipe, got {type(value).__name__}"
        )
    raise ValueError(f"expected {what}, got {type(value).__name__}")


class Component(ABC):
    """Base class of every role. Subclass a role class, not this one.

    **Saving a fit** (optional, for components that learn): a component with both methods below
    has its fit cached by the runtime and reused by the next ``recai run``.

    - ``save(self, directory: pathlib.Path) -> None`` writes the fitted state into
      ``directory``, an existing empty folder (write nothing outside it).
    - ``load(self, directory: pathlib.Path) -> None`` reads that state back into ``self``:
      **instance methods**, not class or static methods; what ``load`` returns is ignored.

    What the runtime does, in :meth:`recai.RunContext.fit` (which evaluators call): it keys the
    fit by a fingerprint of the component (registered name, params with nested components,
    providing distribution), the data (:meth:`recai.data.Split.fingerprint`: dataset name,
    catalog ids, interactions and split protocol) and the run's seed. If
    ``<run>/artifacts/<fingerprint>/`` holds a finished save, it builds the component from the
    recipe as always (``__init__`` with the same params) and calls ``load(folder)`` **instead of**
    ``fit`` — so after ``load`` the object must score exactly as after ``fit``, and ``load`` gets no
    split: what scoring needs (catalog size, training histories, ...) must be in the folder. Else
    it calls ``fit(split)``, then ``save`` into a new temporary folder, which is renamed to
    ``artifacts/<fingerprint>/`` once complete. Either way the object is then marked as fitted on
    that split, so :func:`recai.ensure_fitted` does not fit it again.

    The fingerprint is the folder's name: a component need not store it. To refuse, in a ``load``
    called by hand, a state saved for other data, store ``split.dataset.catalog.fingerprint()``
    (what item index ``i`` means) or ``split.fingerprint()`` in the folder and compare (as
    recai-classic's models do in ``model.json``). The ``RankerContract`` and
    ``RetrieverContract`` check the round trip: fit, save, load into a fresh object built with
    the same params, same scores.
    """

    role: ClassVar[Role]

    def fit(self, split: Split) -> None:  # noqa: B027 - optional hook, no-op by default
        """Learn from ``split.train`` (and ``split.valid`` for early stopping). No-op by default."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            lambda value, info: _validate_reference(cls, value, info),
            serialization=core_schema.plain_serializer_function_ser_schema(describe_component),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: Any, handler: Any) -> dict[str, Any]:
        role = getattr(cls, "role", None)
        what = role.title if role is not None else "any"
        return {
            "type": "string",
            "description": f"name of a {what} component defined in this recipe",
            "x-recai-role": role.value if role is not None else None,
        }


class LLMBackend(Component):
    """A chat model: messages in, a :class:`~recai.types.Completion` out.

    Optional hooks a server (``recai serve``) uses when a backend has them: ``context_length``
    (an ``int`` attribute, or ``None`` when unknown) and ``count_tokens(messages) -> int`` let it
    refuse a prompt beyond the model's context with a 400 before generating; with ``"cancel"`` in
    :attr:`capabilities`, ``chat``/``chat_batch``/``stream`` accept ``cancel=`` (anything with
    ``is_set()``, e.g. a ``threading.Event``) and stop at the next token once it is set (the
    completion's ``finish_reason`` is then ``"cancelled"``), so a client that left or a shutdown
    frees the model at once.

    **Tool calling.** A backend with ``"tools"`` in :attr:`capabilities` takes two more options
    in ``chat`` (and ``chat_batch``): ``tools=``, a list of OpenAI function specs
    (``{"type": "function", "function": {"name", "description", "parameters": <JSON schema of
    an object>}}``; :func:`recai.types.function_tool` builds one, :func:`recai.types.check_tools`
    checks them) and ``tool_choice=`` (``"auto"``, the default; ``"none"``; ``"required"``; or
    ``{"type": "function", "function": {"name": ...}}``). The calls the model asks for come back
    in :attr:`Completion.tool_calls <recai.types.Completion>` (:class:`~recai.types.ToolCall`:
    ``id``, ``name``, ``arguments`` as JSON text) with ``finish_reason`` ``"tool_calls"``; send
    them back as ``completion.as_message()`` followed by one ``Message.tool(result, call.id)``
    per call. Without the capability, pass no ``tools=``: callers check
    ``"tools" in backend.capabilities``; a backend with ``"json_schema"`` gains it when wrapped
    in :class:`recai.toolcalls.SchemaToolCalling` (the tools become a JSON schema it decodes
    under, as ``recai serve`` does for such a backend).
    """

    role = Role.LLM_BACKEND

    #: Optional capabilities this backend supports: ``"stream"``, ``"json_schema"``,
    #: ``"logprobs"``, ``"cancel"`` (the ``cancel=`` keyword above), ``"tools"`` (the
    #: ``tools=`` and ``tool_choice=`` options above; answers carry ``tool_calls``).
    capabilities: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> Completion:
        """Complete one conversation."""

    def chat_batch(
        self, conversations: Sequence[Sequence[Message]], **options: Any
    ) -> list[Completion]:
        """Complete many conversations; backends override this to batch or run concurrently."""
        return [self.chat(c, **options) for c in conversations]

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[str]:
        """Yield the completion in pieces; the default yields it whole."""
        yield self.chat(messages, **options).text

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        """Log-probability of each continuation after ``messages`` (where the backend can)."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot score continuations by log-probability"
        )


class Retriever(Component):
    """Finds items for a :class:`~recai.types.Query` (text, seed items or a user's history).

    Implement :meth:`retrieve`; ``fit(split)`` when it learns from data. Items are catalog
    **indices** ``0..n_items-1`` (``ItemList.ids``), never external ids. To have its fit cached
    by ``recai run``, implement ``save(self, directory)`` and ``load(self, directory)`` as
    instance methods: the runtime calls ``load`` on a freshly built object **instead of**
    ``fit`` when a saved fit for the same component, params, data and seed exists (the whole
    protocol: :class:`Component`).
    """

    role = Role.RETRIEVER

    @abstractmethod
    def retrieve(
        self, query: Query, k: int = 10, *, candidates: ItemList | None = None
    ) -> ItemList:
        """The ``k`` best items for ``query``, best first, restricted to ``candidates`` if given.

        ``query.text`` (free text), ``query.items`` (seed items, an ``ItemList``) and
        ``query.user`` (a user index) may each be set; ``candidates`` is an ``ItemList`` of
        catalog indices. Return at most ``k`` distinct items (fewer when fewer qualify).
        """

    def retrieve_batch(
        self, queries: Sequence[Query], k: int = 10, *, candidates: ItemList | None = None
    ) -> list[ItemList]:
        return [self.retrieve(q, k, candidates=candidates) for q in queries]


class Ranker(Component):
    """Scores items for users given their histories (item indices in time order).

    Implement :meth:`score`; ``fit(split)`` when it learns from data; :meth:`rank` comes for
    free. Items are catalog **indices** ``0..n_items-1``, never external ids (map those with
    ``catalog.index(id)``). To have its fit cached by ``recai run``, implement
    ``save(self, directory)`` and ``load(self, directory)`` as instance methods: the runtime
    calls ``load`` on a freshly built object **instead of** ``fit`` when a saved fit for the
    same component, params, data and seed exists, so scores after ``load`` must equal those after
    ``fit`` (the whole protocol: :class:`Component`).
    """

    role = Role.RANKER

    @abstractmethod
    def score(
        self,
        histories: Sequence[np.ndarray],
        items: np.ndarray | None = None,
        *,
        users: np.ndarray | None = None,
    ) -> np.ndarray:
        """Scores for a batch of users, higher is better.

        ``histories[b]`` holds user ``b``'s item indices in time order; ``users`` their user
        indices where the model knows users (matrix factorisation). ``items`` is ``None`` (score the
        whole catalog: shape ``(B, n_items)``), a shared candidate vector of shape ``(C,)``, or
        per-user candidates of shape ``(B, C)``; the result then has shape ``(B, C)``.
        Candidate indices outside ``0..n_items-1`` are an error (``DataError`` or ``IndexError``),
        never silently scored.
        """

    def rank(
        self,
        history: np.ndarray | Sequence[int],
        candidates: ItemList | None = None,
        k: int | None = None,
        *,
        user: int | None = None,
        exclude_history: bool = True,
    ) -> ItemList:
        """The best ``k`` items for one user, best first (history items excluded by default).

        ``history``: the user's item indices in time order (an array or a list); ``candidates``:
        an ``ItemList`` of item indices to rank (``None``: the whole catalog); ``k=None``: all.
        """
        import numpy as np

        from .types import ItemList

        hist = np.asarray(history, dtype=np.int64)
        users = None if user is None else np.asarray([user])
        if candidates is None:
            scores = self.score([hist], None, users=users)[0]
            return ItemList.from_scores(scores, k, exclude=hist if exclude_history else None)
        cand = candidates.ids
        scores = self.score([hist], cand, users=users)[0]
        ranked = ItemList(cand, scores)
        if exclude_history:
            ranked = ranked.exclude(hist)
        return ranked.top(k)


class KnowledgePrompter(Component):
    """Writes domain knowledge (attributes, collaborative signals, KG paths) into prompt text."""

    role = Role.KNOWLEDGE_PROMPTER

    @abstractmethod
    def knowledge(
        self,
        *,
        history: ItemList | None = None,
        candidates: ItemList | None = None,
        query: str | None = None,
    ) -> str:
        """A block of text to place in a prompt; empty when there is nothing to say."""

    def augment(self, messages: Sequence[Message], **context: Any) -> list[Message]:
        """``messages`` with the knowledge inserted as a system message before the last turn.

        ``context`` goes to :meth:`knowledge` unchanged, so it takes the same keywords
        (``history=``, ``candidates=``: ``ItemList`` of item indices; ``query=``: text); without
        knowledge to add (empty text) the messages come back unchanged.
        """
        from .types import Message

        text = self.knowledge(**context)
        if not text:
            return list(messages)
        msgs = list(messages)
        return msgs[:-1] + [Message("system", text)] + msgs[-1:]


class Explainer(Component):
    """Explains why an item suits a user (or why a target model recommends it)."""

    role = Role.EXPLAINER

    @abstractmethod
    def explain(self, history: ItemList, item: int) -> Explanation:
        """An explanation of ``item`` for a user with ``history``."""


class Evaluator(Component):
    """Measures components and returns a :class:`~recai.types.Report`. Recipes run evaluators."""

    role = Role.EVALUATOR

    @abstractmethod
    def evaluate(self, ctx: RunContext) -> Report:
        """Run the evaluation. Use ``ctx`` for fitting with caching, seeds, progress and files."""


class DatasetSource(Component):
    """Loads a :class:`~recai.data.Dataset` (a catalog plus interactions)."""

    role = Role.DATASET

    _loaded: Dataset | None = None

    @abstractmethod
    def load(self) -> Dataset:
        """Read the data. Called once; :meth:`dataset` caches the result."""

    def dataset(self) -> Dataset:
        """The loaded dataset (loaded on first use)."""
        if self._loaded is None:
            self._loaded = self.load()
        return self._loaded

    @staticmethod
    def of(dataset: Dataset) -> DatasetSource:
        """A source that serves an in-memory :class:`~recai.data.Dataset` (for Python and tests).

        >>> from recai.data import synthetic_dataset
        >>> DatasetSource.of(synthetic_dataset()).dataset().name
        'synthetic'
        """
        return _InMemory(dataset)


class _InMemory(DatasetSource):
    def __init__(self, dataset: Dataset):
        self._loaded = dataset

    def load(self) -> Dataset:
        assert self._loaded is not None
        return self._loaded

    def __repr__(self) -> str:
        return (
            f"DatasetSource.of({self._loaded.name!r})"
            if self._loaded is not None
            else "DatasetSource.of(?)"
        )


class Agent(Component):
    """A conversational recommender that composes other components."""

    role = Role.AGENT

    @abstractmethod
    def reply(self, conversation: Sequence[Message]) -> Message:
        """The agent's next message after ``conversation`` (which ends with a user turn)."""

    def respond(
        self,
        conversation: Sequence[Message],
        *,
        on_text: Callable[[str], None] | None = None,
    ) -> AgentTurn:
        """The next turn with what comes with it: items, trace, plan, costs, profile (a server,
        a page and recai-eval read them). ``on_text`` receives the reply's text in pieces as
        it is written (streaming); every piece, joined, is the turn's ``text``.

        The default asks :meth:`reply` and reports its text alone, in one piece; an agent that
        knows its items overrides this."""
        from .types import AgentTurn

        start = time.perf_counter()
        text = self.reply(conversation).content
        if on_text is not None and text:
            on_text(text)
        return AgentTurn(text, seconds=time.perf_counter() - start)

    def remember(
        self, user: str, *, liked: Sequence[str] = (), disliked: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Add feedback to ``user``'s long-term profile (external item ids they liked or
        disliked) and return the profile; with no feedback, return it unchanged. A server's
        like and dislike buttons call this.

        The default keeps no profile: it raises :class:`NotImplementedError`, which a server
        reports as a request error naming the agent."""
        raise NotImplementedError(f"{type(self).__name__} keeps no user profile")


_HOOKS = {
    Role.LLM_BACKEND: "recai_llm_backends",
    Role.RETRIEVER: "recai_retrievers",
    Role.RANKER: "recai_rankers",
    Role.KNOWLEDGE_PROMPTER: "recai_knowledge_prompters",
    Role.EXPLAINER: "recai_explainers",
    Role.EVALUATOR: "recai_evaluators",
    Role.DATASET: "recai_datasets",
    Role.AGENT: "recai_agents",
}
_CLASSES: dict[Role, type[Component]] = {
    Role.LLM_BACKEND: LLMBackend,
    Role.RETRIEVER: Retriever,
    Role.RANKER: Ranker,
    Role.KNOWLEDGE_PROMPTER: KnowledgePrompter,
    Role.EXPLAINER: Explainer,
    Role.EVALUATOR: Evaluator,
    Role.DATASET: DatasetSource,
    Role.AGENT: Agent,
}
