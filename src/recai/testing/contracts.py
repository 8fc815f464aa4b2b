"""Contract tests per role: what every component of a role promises, as reusable test classes.

Subclass one in a ``Test*`` class and set ``name`` (and ``params``); override the ``component``
fixture when building the component needs more than params (a server, another component).
Class attributes switch off checks that do not apply, each documented where it is defined.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from ..data import Dataset, Split, leave_one_out
from ..errors import DataError, ParamsError
from ..plugins import PluginManager
from ..registry import Registered, Registry
from ..roles import DatasetSource, Role
from ..runtime import RunContext
from ..specs import NAME_PATTERN
from ..types import Completion, Explanation, ItemList, Message, Query, Report
from .helpers import fresh_plugin_manager, make_tiny_dataset, use_plugin_manager

__all__ = [
    "ComponentContract",
    "RankerContract",
    "RetrieverContract",
    "LLMBackendContract",
    "KnowledgePrompterContract",
    "ExplainerContract",
    "EvaluatorContract",
    "DatasetContract",
    "AgentContract",
]


class ComponentContract:
    """Checks every registered component passes, whatever its role.

    Class attributes to set in your ``Test*`` subclass:

    - ``name``: registered name of the component under test, e.g. ``"popularity.v1"`` (required).
    - ``params``: params to build it with (default ``{}``).
    - ``distribution``: the distribution that must provide it, e.g. ``"recai-classic"``; checks the
      installed entry point (default ``None``: not checked).
    - ``plugin``: a plugin object (module) to register into a fresh manager instead of loading the
      installed entry points (default ``None``).
    - ``fit``: whether the ``component`` fixture fits the component on ``split`` (default ``True``).

    Fixtures you can use or override: ``plugin_manager``, ``registry``, ``entry`` (the registry
    entry; ``entry.build(params)`` validates params and builds, and role-typed params accept
    objects), ``dataset`` (the tiny dataset), ``dataset_source`` (it, as a
    :class:`~recai.roles.DatasetSource` to pass where a component takes a dataset), ``split``
    (its leave-one-out split), ``component`` (built from ``params``, fitted if ``fit``) and
    ``fresh_component`` (built the same way, not fitted: the save/load round trip loads into it).
    Override ``component`` when building needs more than params, e.g. another component, and
    ``fresh_component`` with it when the component can ``save``/``load``::

        @pytest.fixture
        def component(self, entry, dataset_source, split):
            obj = entry.build({"dataset": dataset_source, **self.params})
            obj.fit(split)
            return obj

        @pytest.fixture
        def fresh_component(self, entry, dataset_source):  # a second, unfitted object
            return entry.build({"dataset": dataset_source, **self.params})
    """

    #: Registered name of the component under test, e.g. ``"popularity.v1"``.
    name: ClassVar[str]
    #: The role under test (set by each role's contract).
    role: ClassVar[Role]
    #: Params to build it with.
    params: ClassVar[dict[str, Any]] = {}
    #: If set, the distribution that must provide the component (checks the entry point).
    distribution: ClassVar[str | None] = None
    #: A plugin object (module) to register into a fresh manager instead of loading entry points.
    plugin: ClassVar[Any] = None
    #: Whether the component learns from data: the ``component`` fixture then fits it on ``split``.
    fit: ClassVar[bool] = True

    # -- fixtures (override to customise) ----------------------------------------------------------
    @pytest.fixture
    def plugin_manager(self) -> Any:
        pm = (
            fresh_plugin_manager(self.plugin)
            if self.plugin is not None
            else fresh_plugin_manager(autoload=True)
        )
        with use_plugin_manager(pm):
            yield pm

    @pytest.fixture
    def registry(self, plugin_manager: PluginManager) -> Registry:
        return plugin_manager.registry()

    @pytest.fixture
    def entry(self, registry: Registry) -> Registered:
        return registry.get(self.name, self.role)

    @pytest.fixture(scope="class")
    @classmethod
    def dataset(cls) -> Dataset:
        return make_tiny_dataset()

    @pytest.fixture(scope="class")
    @classmethod
    def split(cls, dataset: Dataset) -> Split:
        return leave_one_out(dataset)

    @pytest.fixture(scope="class")
    @classmethod
    def dataset_source(cls, dataset: Dataset) -> DatasetSource:
        return DatasetSource.of(dataset)

    @pytest.fixture
    def component(self, entry: Registered, split: Split) -> Any:
        obj = entry.build(self.params, role=self.role)
        if self.fit:
            obj.fit(split)
        return obj

    @pytest.fixture
    def fresh_component(self, entry: Registered) -> Any:
        """A new, unfitted component built like ``component``: what ``load`` restores into.

        Requested only by the save/load round trip, and only for components with both methods.
        """
        try:
            return entry.build(self.params, role=self.role)
        except ParamsError as e:
            pytest.fail(
                f"cannot build a fresh {self.name} from params alone for the save/load round "
                f"trip:\n{e}\nOverride the fresh_component fixture to build it as your component "
                "fixture does, without fitting it"
            )

    def saved_and_loaded(self, component: Any, request: Any, tmp_path: Path) -> Any:
        """``component`` saved into a folder and loaded into ``fresh_component``, as the runtime
        does on a cached run; skips components without ``save``/``load``."""
        has = {m: callable(getattr(component, m, None)) for m in ("save", "load")}
        if not any(has.values()):
            pytest.skip("no save()/load(): the runtime fits this component on every run")
        missing = [m for m, ok in has.items() if not ok]
        assert not missing, (
            f"{type(component).__name__} has {'load' if missing == ['save'] else 'save'}() but no "
            f"{missing[0]}(): the runtime caches a fit only when a component has both"
        )
        for method in ("save", "load"):
            raw = inspect.getattr_static(type(component), method, None)
            assert not isinstance(raw, (classmethod, staticmethod)), (
                f"{type(component).__name__}.{method} is a {type(raw).__name__}: the runtime calls "
                f"component.{method}(directory) on the object it built from the recipe and ignores "
                "what load returns; make it an instance method that restores into self"
            )
        folder = tmp_path / "saved-model"
        folder.mkdir(parents=True)  # the runtime hands save() an existing, empty folder
        component.save(folder)
        assert any(folder.iterdir()), f"{type(component).__name__}.save() wrote nothing"
        fresh = request.getfixturevalue("fresh_component")
        assert fresh is not component, "fresh_component must build a new object"
        fresh.load(folder)
        return fresh

    # -- checks -----------------------------------------------------------------------------------
    def test_registered_with_a_versioned_name(self, entry: Registered) -> None:
        assert NAME_PATTERN.match(entry.name), f"{entry.name!r} is not a versioned lowercase name"
        assert self.role in entry.roles

    def test_summary_is_one_line(self, entry: Registered) -> None:
        assert entry.summary.strip() and "\n" not in entry.summary.strip()

    def test_provided_by_the_expected_distribution(self, entry: Registered) -> None:
        if self.distribution is None:
            pytest.skip("no distribution named by the test class")
        assert entry.plugin.distribution == self.distribution, (
            f"{self.name} comes from {entry.plugin.label}, expected {self.distribution}"
        )

    def test_params_model_forbids_unknown_keys(self, entry: Registered) -> None:
        model = entry.spec.params_model()
        assert model.model_config.get("extra") == "forbid"
        with pytest.raises(ParamsError, match="definitely_not_a_param"):
            entry.spec.validate_params({**self.params, "definitely_not_a_param": 1})

    def test_params_have_a_json_schema(self, entry: Registered) -> None:
        schema = entry.spec.params_model().model_json_schema()
        assert schema.get("type") == "object"

    def test_plays_its_role(self, component: Any) -> None:
        assert isinstance(component, self.role.cls)


_ACTUAL = "\n(ACTUAL: the loaded object, DESIRED: the fitted one)"


def _finite(a: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(a)))


class RankerContract(ComponentContract):
    """What a :class:`~recai.roles.Ranker` promises.

    Checks: full-catalog scores of shape ``(B, n_items)`` and finite; shared ``(C,)`` and per-user
    ``(B, C)`` candidates; candidate scores equal to the full scores of those items; candidates
    outside the catalog refused with an error; a batch equal
    to one user at a time; deterministic scores; ``rank`` returns ``k`` distinct items, best
    first, without history items, restricted to candidates when given; a user without history.

    A component with ``save``/``load`` must survive the round trip the runtime makes when it
    reuses a cached fit: fitted, saved into a folder and loaded into a fresh object built with the
    same params, it gives the same scores and rankings (skipped without ``save``/``load``; see
    :class:`recai.Ranker` for the protocol).

    Switches (class attributes): ``consistent_candidate_scores = True`` (set False if scoring a
    subset legitimately differs from the full scores), ``supports_empty_history = True``,
    ``rtol = 1e-5`` (tolerance of score comparisons).
    """

    role = Role.RANKER
    #: Whether scores of a candidate subset equal the full-catalog scores of those items.
    consistent_candidate_scores: ClassVar[bool] = True
    #: Whether a user with an empty history can be scored.
    supports_empty_history: ClassVar[bool] = True
    #: Relative tolerance for score comparisons (batch vs single, candidates vs full).
    rtol: ClassVar[float] = 1e-5

    def _batch(self, split: Split, n: int = 5) -> tuple[list[np.ndarray], np.ndarray]:
        users = np.arange(min(n, split.dataset.n_users))
        return split.train.histories(users), users

    def test_scores_full_catalog(self, component: Any, split: Split) -> None:
        hist, users = self._batch(split)
        scores = np.asarray(component.score(hist, None, users=users))
        assert scores.shape == (len(hist), split.dataset.n_items)
        assert _finite(scores)

    def test_scores_shared_candidates(self, component: Any, split: Split) -> None:
        hist, users = self._batch(split)
        cand = np.array([3, 0, 7, 1], dtype=np.int64) % split.dataset.n_items
        sub = np.asarray(component.score(hist, cand, users=users))
        assert sub.shape == (len(hist), len(cand))
        assert _finite(sub)
        if self.consistent_candidate_scores:
            full = np.asarray(component.score(hist, None, users=users))
            np.testing.assert_allclose(sub, full[:, cand], rtol=self.rtol, atol=1e-6)

    def test_scores_per_user_candidates(self, component: Any, split: Split) -> None:
        hist, users = self._batch(split, 3)
        rng = np.random.default_rng(0)
        cand = rng.integers(0, split.dataset.n_items, size=(len(hist), 6))
        sub = np.asarray(component.score(hist, cand, users=users))
        assert sub.shape == cand.shape
        if self.consistent_candidate_scores:
            full = np.asarray(component.score(hist, None, users=users))
            np.testing.assert_allclose(
                sub, np.take_along_axis(full, cand, axis=1), rtol=self.rtol, atol=1e-6
            )

    def test_batch_equals_one_at_a_time(self, component: Any, split: Split) -> None:
        hist, users = self._batch(split, 4)
        together = np.asarray(component.score(hist, None, users=users))
        for b in range(len(hist)):
            alone = np.asarray(component.score([hist[b]], None, users=users[b : b + 1]))[0]
            np.testing.assert_allclose(alone, together[b], rtol=self.rtol, atol=1e-6)

    def test_deterministic(self, component: Any, split: Split) -> None:
        hist, users = self._batch(split)
        a = np.asarray(component.score(hist, None, users=users))
        b = np.asarray(component.score(hist, None, users=users))
        np.testing.assert_array_equal(a, b)

    def test_rank_returns_top_k_without_history(self, component: Any, split: Split) -> None:
        hist = split.train.history(0)
        k = min(5, split.dataset.n_items - len(set(hist.tolist())))
        ranked = component.rank(hist, k=k, user=0)
        assert isinstance(ranked, ItemList)
        assert len(ranked) == k
        assert len(set(ranked.ids.tolist())) == k, "duplicate items in a ranking"
        assert not set(ranked.ids.tolist()) & set(hist.tolist()), "history items were recommended"
        assert ranked.scores is not None and np.all(np.diff(ranked.scores) <= 0), (
            "not sorted best first"
        )
        assert ranked.ids.min() >= 0 and ranked.ids.max() < split.dataset.n_items

    def test_rank_respects_candidates(self, component: Any, split: Split) -> None:
        cand = ItemList(np.arange(0, split.dataset.n_items, 3))
        ranked = component.rank(split.train.history(1), cand, k=None, user=1, exclude_history=False)
        assert set(ranked.ids.tolist()) == set(cand.ids.tolist())

    def test_rejects_items_outside_the_catalog(self, component: Any, split: Split) -> None:
        hist, users = self._batch(split, 1)
        with pytest.raises((DataError, IndexError, ValueError)):
            component.score(hist, np.array([0, split.dataset.n_items + 5]), users=users)

    def test_save_load_round_trip(
        self, component: Any, split: Split, request: Any, tmp_path: Path
    ) -> None:
        loaded = self.saved_and_loaded(component, request, tmp_path)
        hist, users = self._batch(split)
        why = (
            f"{self.name}: after save() and load() into a new object, {{}} differ from the fitted "
            "model's: load(directory) must restore everything scoring uses (the runtime calls it "
            "instead of fit on a cached run)"
        )
        np.testing.assert_allclose(
            np.asarray(loaded.score(hist, None, users=users)),
            np.asarray(component.score(hist, None, users=users)),
            rtol=self.rtol,
            atol=1e-6,
            err_msg=why.format("full-catalog scores") + _ACTUAL,
        )
        cand = np.array([3, 0, 7, 1], dtype=np.int64) % split.dataset.n_items
        np.testing.assert_allclose(
            np.asarray(loaded.score(hist, cand, users=users)),
            np.asarray(component.score(hist, cand, users=users)),
            rtol=self.rtol,
            atol=1e-6,
            err_msg=why.format("candidate scores") + _ACTUAL,
        )
        k = min(10, split.dataset.n_items)
        before = component.rank(split.train.history(0), k=k, user=0).ids.tolist()
        after = loaded.rank(split.train.history(0), k=k, user=0).ids.tolist()
        assert after == before, why.format(f"rankings ({after} vs {before})")

    def test_empty_history(self, component: Any, split: Split) -> None:
        if not self.supports_empty_history:
            pytest.skip("component declares it cannot score users without history")
        scores = np.asarray(
            component.score([np.empty(0, dtype=np.int64)], None, users=np.array([0]))
        )
        assert scores.shape == (1, split.dataset.n_items)
        assert _finite(scores)


class RetrieverContract(ComponentContract):
    """What a :class:`~recai.roles.Retriever` promises.

    Checks, for each query of :meth:`queries`: at most ``k`` distinct items in the catalog, sorted
    best first when scored, and at least one; ``k`` larger than the catalog; results restricted to
    ``candidates``; ``retrieve_batch`` equal to ``retrieve`` one query at a time.

    A component with ``save``/``load`` must survive the round trip the runtime makes when it
    reuses a cached fit: fitted, saved into a folder and loaded into a fresh object built with the
    same params, it retrieves the same items with the same scores (skipped without
    ``save``/``load``; see :class:`recai.Retriever` for the protocol).

    Switches (class attributes): ``supports_items = True`` (queries with seed items,
    ``Query(items=...)``), ``supports_text = False`` (free-text queries, ``Query(text=...)``),
    ``rtol = 1e-5`` (tolerance of score comparisons). Override :meth:`queries` to test other
    queries.
    """

    role = Role.RETRIEVER
    #: Whether free-text queries are supported (``Query(text=...)``).
    supports_text: ClassVar[bool] = False
    #: Whether item/history queries are supported (``Query(items=...)``).
    supports_items: ClassVar[bool] = True
    #: Relative tolerance for score comparisons (after save and load).
    rtol: ClassVar[float] = 1e-5

    def queries(self, dataset: Dataset) -> list[Query]:
        out = []
        if self.supports_items:
            out.append(Query(items=ItemList(dataset.interactions.history(0)[:3])))
        if self.supports_text:
            out.append(Query(text=dataset.catalog.title(0)))
        return out

    def _check(self, result: Any, k: int, n_items: int) -> None:
        assert isinstance(result, ItemList)
        assert len(result) <= k
        ids = result.ids.tolist()
        assert len(set(ids)) == len(ids), "duplicate items"
        assert all(0 <= i < n_items for i in ids)
        if result.scores is not None:
            assert np.all(np.diff(result.scores) <= 0), "not sorted best first"

    def test_retrieves_k_items(self, component: Any, dataset: Dataset) -> None:
        for q in self.queries(dataset):
            res = component.retrieve(q, 5)
            self._check(res, 5, dataset.n_items)
            assert len(res) > 0

    def test_k_larger_than_catalog(self, component: Any, dataset: Dataset) -> None:
        for q in self.queries(dataset):
            self._check(
                component.retrieve(q, dataset.n_items + 10), dataset.n_items + 10, dataset.n_items
            )

    def test_restricted_to_candidates(self, component: Any, dataset: Dataset) -> None:
        cand = ItemList(np.arange(1, dataset.n_items, 4))
        for q in self.queries(dataset):
            res = component.retrieve(q, 5, candidates=cand)
            self._check(res, 5, dataset.n_items)
            assert set(res.ids.tolist()) <= set(cand.ids.tolist())

    def test_batch_matches_single(self, component: Any, dataset: Dataset) -> None:
        qs = self.queries(dataset)
        batch = component.retrieve_batch(qs, 5)
        assert [b.ids.tolist() for b in batch] == [
            component.retrieve(q, 5).ids.tolist() for q in qs
        ]

    def test_save_load_round_trip(
        self, component: Any, dataset: Dataset, request: Any, tmp_path: Path
    ) -> None:
        loaded = self.saved_and_loaded(component, request, tmp_path)
        for q in self.queries(dataset):
            before, after = component.retrieve(q, 10), loaded.retrieve(q, 10)
            why = (
                f"{self.name}: after save() and load() into a new object, {q} retrieves "
                f"{{}}: load(directory) must restore everything retrieval uses (the runtime calls "
                "it instead of fit on a cached run)"
            )
            assert after.ids.tolist() == before.ids.tolist(), why.format(
                f"{after.ids.tolist()}, the fitted model {before.ids.tolist()}"
            )
            if before.scores is not None:
                assert after.scores is not None, why.format("items without scores")
                np.testing.assert_allclose(
                    after.scores,
                    before.scores,
                    rtol=self.rtol,
                    atol=1e-6,
                    err_msg=why.format("other scores") + _ACTUAL,
                )


class LLMBackendContract(ComponentContract):
    """What an :class:`~recai.roles.LLMBackend` promises. Override ``component`` to point it at a model.

    Checks: ``chat`` returns a :class:`~recai.types.Completion` with text, finish reason, token
    counts and latency; ``chat_batch`` keeps order and length; ``stream`` yields text pieces.
    Switch: ``max_tokens = 8`` (keep small: the checks run a real model).
    """

    role = Role.LLM_BACKEND
    fit = False
    #: Maximum tokens asked for in the checks (keep small: these run a real model).
    max_tokens: ClassVar[int] = 8

    def messages(self) -> list[Message]:
        return [Message.system("You are terse."), Message.user("Name one colour.")]

    def test_chat_returns_a_completion(self, component: Any) -> None:
        c = component.chat(self.messages(), max_tokens=self.max_tokens, temperature=0.0, seed=0)
        assert isinstance(c, Completion)
        assert isinstance(c.text, str)
        assert isinstance(c.finish_reason, str) and c.finish_reason
        assert c.usage.prompt_tokens >= 0 and c.usage.completion_tokens >= 0
        assert c.latency_s >= 0

    def test_chat_batch_keeps_order_and_length(self, component: Any) -> None:
        convs = [self.messages(), [Message.user("Say yes.")]]
        out = component.chat_batch(convs, max_tokens=self.max_tokens, temperature=0.0, seed=0)
        assert len(out) == 2 and all(isinstance(c, Completion) for c in out)

    def test_stream_yields_text(self, component: Any) -> None:
        pieces = list(
            component.stream(self.messages(), max_tokens=self.max_tokens, temperature=0.0, seed=0)
        )
        assert pieces and all(isinstance(p, str) for p in pieces)


class KnowledgePrompterContract(ComponentContract):
    """What a :class:`~recai.roles.KnowledgePrompter` promises.

    Checks: ``knowledge`` returns text; ``augment`` keeps the user's last turn last.
    """

    role = Role.KNOWLEDGE_PROMPTER

    def test_knowledge_is_text(self, component: Any, split: Split) -> None:
        text = component.knowledge(
            history=ItemList(split.train.history(0)), candidates=ItemList(np.arange(5))
        )
        assert isinstance(text, str)

    def test_augment_keeps_the_last_turn_last(self, component: Any, split: Split) -> None:
        msgs = [Message.system("You recommend items."), Message.user("What next?")]
        out = component.augment(
            msgs, history=ItemList(split.train.history(0)), candidates=ItemList(np.arange(5))
        )
        assert out[-1] == msgs[-1]
        assert all(isinstance(m, Message) for m in out)
        assert len(out) >= len(msgs)


class ExplainerContract(ComponentContract):
    """What an :class:`~recai.roles.Explainer` promises.

    Checks: ``explain`` returns an :class:`~recai.types.Explanation` of the item asked about, with
    non-empty text.
    """

    role = Role.EXPLAINER

    def test_explains_an_item(self, component: Any, split: Split) -> None:
        e = component.explain(ItemList(split.train.history(0)), 2)
        assert isinstance(e, Explanation)
        assert e.item == 2
        assert isinstance(e.text, str) and e.text.strip()


class EvaluatorContract(ComponentContract):
    """What an :class:`~recai.roles.Evaluator` promises. Override ``component`` to give it data.

    Checks: ``evaluate`` returns a non-empty :class:`~recai.types.Report` of finite numbers whose
    ``info`` says how it was measured, and which survives ``to_dict``/``from_dict``.
    Switch: ``required_info = ("dataset", "protocol", "samples", "seed")``.
    """

    role = Role.EVALUATOR
    fit = False
    #: Keys every report's ``info`` must hold, so a number always says how it was measured.
    required_info: ClassVar[tuple[str, ...]] = ("dataset", "protocol", "samples", "seed")

    @pytest.fixture
    def report(self, component: Any, tmp_path: Any) -> Any:  # a Report: the tests check it
        return component.evaluate(RunContext(tmp_path, seed=0, progress=False))

    def test_returns_a_report(self, report: Report) -> None:
        assert isinstance(report, Report)
        assert report.metrics, "empty report"
        for system, ms in report.metrics.items():
            assert isinstance(system, str)
            for metric, value in ms.items():
                assert isinstance(metric, str)
                assert isinstance(value, (int, float)) and math.isfinite(value), (
                    f"{system}/{metric} = {value!r}"
                )

    def test_report_says_how_it_was_measured(self, report: Report) -> None:
        missing = [k for k in self.required_info if k not in report.info]
        assert not missing, f"report.info lacks {missing}"

    def test_report_round_trips(self, report: Report) -> None:
        assert Report.from_dict(report.to_dict()).to_dict() == report.to_dict()
        assert report.to_markdown().strip()


class DatasetContract(ComponentContract):
    """What a :class:`~recai.roles.DatasetSource` promises.

    Checks: ``load`` returns a consistent :class:`~recai.data.Dataset` (indices in range, string
    titles); loading twice gives the same data; histories are in time order.
    """

    role = Role.DATASET
    fit = False

    @pytest.fixture
    def loaded(self, component: Any) -> Any:  # a Dataset: the tests check it
        return component.load()

    def test_loads_a_consistent_dataset(self, loaded: Dataset) -> None:
        assert isinstance(loaded, Dataset)
        inter = loaded.interactions
        assert loaded.n_items == len(loaded.catalog) > 0
        assert len(inter) > 0
        assert inter.items.min() >= 0 and inter.items.max() < loaded.n_items
        assert inter.users.min() >= 0 and inter.users.max() < loaded.n_users
        assert all(isinstance(t, str) for t in loaded.catalog.titles[:50])

    def test_loading_twice_gives_the_same_data(self, component: Any, loaded: Dataset) -> None:
        assert component.load().fingerprint() == loaded.fingerprint()

    def test_histories_are_in_time_order(self, loaded: Dataset) -> None:
        inter = loaded.interactions
        if inter.timestamps is None:
            pytest.skip("no timestamps")
        indptr, _, order = inter.csr()
        ts = inter.timestamps[order]
        same_user = np.repeat(np.arange(inter.n_users), np.diff(indptr))
        step_ok = (np.diff(ts) >= 0) | (np.diff(same_user) != 0)
        assert bool(np.all(step_ok))


class AgentContract(ComponentContract):
    """What an :class:`~recai.roles.Agent` promises. Override ``component`` to wire its parts.

    Checks: ``reply`` answers a user turn with a non-empty assistant message.
    """

    role = Role.AGENT
    fit = False

    def test_replies_with_an_assistant_message(self, component: Any) -> None:
        reply = component.reply([Message.user("Recommend me something to watch tonight.")])
        assert isinstance(reply, Message)
        assert (
            reply.role == "assistant" and isinstance(reply.content, str) and reply.content.strip()
        )
