"""The Python API: create, load_recipe, build; components used directly; lookup errors."""

from __future__ import annotations

import numpy as np
import pytest
import support_plugin

import recai
from recai.errors import (
    InvalidSpecError,
    ParamsError,
    RecipeError,
    RoleMismatchError,
    UnknownComponentError,
)
from recai.plugins import PluginManager
from recai.specs import ComponentSpec, params_from_signature


@pytest.fixture
def pm(recai_pm: PluginManager) -> PluginManager:
    recai_pm.register(support_plugin, name="support")
    return recai_pm


def test_create_validates_params(pm: PluginManager) -> None:
    r = recai.create("ranker", "random.v1", seed=5, n_items=20)
    assert r.seed == 5
    with pytest.raises(ParamsError) as err:
        recai.create("ranker", "random.v1", seed="five")
    assert "seed" in str(err.value) and "random.v1" in str(err.value)
    with pytest.raises(ParamsError, match="unknown key"):
        recai.create("ranker", "random.v1", sed=5)


def test_create_accepts_role_class_and_objects_for_references(pm: PluginManager) -> None:
    base = recai.create(recai.Ranker, "random.v1", n_items=10)
    scaled = recai.create("ranker", "scaled.v1", base=base, weight=3.0)
    np.testing.assert_allclose(scaled.score([np.array([1])]), 3 * base.score([np.array([1])]))


def test_reference_params_refuse_wrong_objects_and_names(pm: PluginManager) -> None:
    with pytest.raises(ParamsError, match="expected a ranker component"):
        recai.create("ranker", "scaled.v1", base=support_plugin.EchoLLM())
    with pytest.raises(ParamsError, match="only works inside a recipe"):
        recai.create("ranker", "scaled.v1", base="rnd")


def test_unknown_name_did_you_mean_and_available(pm: PluginManager) -> None:
    with pytest.raises(UnknownComponentError) as err:
        recai.create("ranker", "randon.v1")
    msg = str(err.value)
    assert "Did you mean 'random.v1'" in msg
    assert (
        "Available rankers:" in msg
        and "random.v1 (recai 0.1.0)" in msg
        and "scaled.v1 (plugin 'support')" in msg
    )


def test_unknown_name_other_version(pm: PluginManager) -> None:
    with pytest.raises(UnknownComponentError, match="Did you mean 'random.v1'"):
        recai.create("ranker", "random.v7")


GHOST = """
import recai

@recai.hookimpl
def recai_rankers():
    yield recai.ComponentSpec(name="ghostrank.v1", factory="recai.baselines:RandomRecommender", summary="Boo.")
"""


def test_unknown_name_hints_at_installed_plugins_that_are_not_loaded(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel suggests no distribution of its own accord: the hint names what is installed
    and why it is not loaded, and never tells anyone to pip install a name."""
    from recai.testing import fake_distribution, fresh_plugin_manager

    fake_distribution(
        tmp_path,
        "recai-ghost",
        version="0.3.0",
        entry_points={"ghost": "ghost_plugin"},
        modules={"ghost_plugin.py": GHOST},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    blocked = fresh_plugin_manager(autoload=True, block=["ghost"])
    with pytest.raises(UnknownComponentError) as err:
        blocked.create("ranker", "ghostrank.v1")
    msg = str(err.value)
    assert "recai-ghost 0.3.0 (it is blocked by RECAI_BLOCK_PLUGINS)" in msg
    assert "pip install" not in msg
    off = fresh_plugin_manager(autoload=False)
    with pytest.raises(UnknownComponentError, match=r"recai-ghost 0.3.0[^(]*\(this plugin manager"):
        off.create("ranker", "ghostrank.v1")
    loaded = fresh_plugin_manager(autoload=True)
    assert loaded.create("ranker", "ghostrank.v1") is not None
    with pytest.raises(UnknownComponentError) as err:
        loaded.create("ranker", "nothing-like-it.v1")
    assert "not loaded" not in str(err.value) and "pip install" not in str(err.value)


def test_component_name_given_to_a_param_that_takes_no_components(pm: PluginManager) -> None:
    class Cat(recai.Retriever):
        def __init__(self, dataset: recai.Dataset):
            self.dataset = dataset

        def retrieve(self, query, k=10, *, candidates=None):
            raise NotImplementedError

    class P:
        @recai.hookimpl
        def recai_retrievers(self):
            yield ComponentSpec(name="cat.v1", factory=Cat, summary="Takes data, not a component.")

    pm.register(P(), name="p")
    recipe = recai.load_recipe(
        {
            "components": {
                "data": {"use": "synthetic.v1"},
                "c": {"use": "cat.v1", "params": {"dataset": "data"}},
            }
        }
    )
    with pytest.raises(
        RecipeError,
        match=r"components.c.params.dataset: .*does not take components.*recai.DatasetSource \(not recai.Dataset",
    ):
        recai.build(recipe)


def test_known_name_wrong_role(pm: PluginManager) -> None:
    with pytest.raises(RoleMismatchError) as err:
        recai.create("llm_backend", "random.v1")
    assert "'random.v1' (recai 0.1.0) is a retriever and ranker, not an llm backend" in str(
        err.value
    )
    assert "echo.v1" in str(err.value)  # the available LLM backends are listed


def test_unknown_role() -> None:
    with pytest.raises(ValueError, match="Choose one of: llm_backend, retriever, ranker"):
        recai.create("recommender", "random.v1")
    with pytest.raises(recai.RecaiError, match="Did you mean 'retriever'"):
        recai.create("retreiver", "random.v1")


def test_dataset_source_of_a_dataset(tiny_dataset) -> None:
    src = recai.DatasetSource.of(tiny_dataset)
    assert isinstance(src, recai.DatasetSource) and src.dataset() is tiny_dataset


def test_unknown_name_names_failed_plugins(pm: PluginManager) -> None:
    class Typo:
        def recai_rankerz(self):
            return []

    pm.register(Typo(), name="typo", distribution="recai-typo")
    with pytest.raises(UnknownComponentError, match="recai-typo.*recai_rankerz"):
        recai.create("ranker", "whatever.v1")


def test_classes_usable_without_registry() -> None:
    from recai.baselines import RandomRecommender

    r = RandomRecommender(seed=1, n_items=8)
    top = r.rank([0, 1], k=3)
    assert len(top) == 3 and not {0, 1} & set(top.ids.tolist())


def test_params_from_signature() -> None:
    class Thing:
        def __init__(self, a: int, b: list[str] | None = None, c: float = 0.5):
            pass

    model = params_from_signature(Thing, "thing.v1")
    assert set(model.model_fields) == {"a", "b", "c"}
    assert model.model_fields["a"].is_required()
    assert model.model_config["extra"] == "forbid"

    class Untyped:
        def __init__(self, a):
            pass

    with pytest.raises(InvalidSpecError, match="no type annotation"):
        params_from_signature(Untyped)

    class Star:
        def __init__(self, **kw: int):
            pass

    with pytest.raises(InvalidSpecError, match="explicit params model"):
        params_from_signature(Star)


def test_lazy_factory_import_error_names_component() -> None:
    spec = ComponentSpec(name="ghost.v1", factory="no_such_module_here:Thing", summary="x")
    with pytest.raises(InvalidSpecError, match="ghost.v1.*no_such_module_here"):
        spec.load_factory()


def test_factory_returning_wrong_type_is_caught(pm: PluginManager) -> None:
    class Plugin:
        @recai.hookimpl
        def recai_rankers(self):
            yield ComponentSpec(
                name="liar.v1", factory=support_plugin.EchoLLM, summary="Not a ranker."
            )

    pm.register(Plugin(), name="liar")
    with pytest.raises(RoleMismatchError, match="does not subclass recai.Ranker"):
        recai.create("ranker", "liar.v1")


def test_build_recipe_graph_in_dependency_order(pm: PluginManager) -> None:
    recipe = recai.load_recipe(
        {
            "components": {
                "bot": {"use": "chatbot.v1", "params": {"llm": "brain", "ranker": "mix"}},
                "mix": {"use": "mixed.v1", "params": {"parts": ["big", "rnd"]}},
                "big": {"use": "scaled.v1", "params": {"base": "rnd", "weight": 2}},
                "rnd": {"use": "random.v1", "params": {"n_items": 12}},
                "brain": {"use": "echo.v1"},
            }
        }
    )
    built = recai.build(recipe)
    order = built.plan.order
    assert order.index("rnd") < order.index("big") < order.index("mix") < order.index("bot")
    assert order.index("brain") < order.index("bot")
    assert built["mix"].parts[0] is built["big"] and built["mix"].parts[1] is built["rnd"]
    assert built["big"].base is built["rnd"]  # shared, built once
    assert built["bot"].ranker is built["mix"]
    assert built["bot"].reply([recai.Message.user("hi there")]).content == "HI THERE"
    only = recai.build(recipe, only=["big"])
    assert set(only) == {"big", "rnd"}


def test_build_reports_all_problems_at_once(pm: PluginManager) -> None:
    recipe = recai.load_recipe(
        {
            "components": {
                "a": {"use": "scaled.v1", "params": {"base": "b"}},
                "b": {"use": "scaled.v1", "params": {"base": "a"}},
                "c": {"use": "scaled.v1", "params": {"base": "brain"}},
                "d": {"use": "nonexistent.v1"},
                "brain": {"use": "echo.v1"},
            }
        }
    )
    with pytest.raises(RecipeError) as err:
        recai.build(recipe)
    msg = str(err.value)
    assert "3 problems" in msg
    assert "cycle: a -> b -> a" in msg or "cycle: b -> a -> b" in msg
    assert (
        "components.c.params.base: 'brain' is an llm backend (echo.v1), but this parameter needs a ranker"
        in msg
    )
    assert "components.d.use: unknown component 'nonexistent.v1'" in msg


def test_item_list_basics() -> None:
    il = recai.ItemList([5, 2, 9, 1], scores=[0.1, 0.9, 0.9, 0.3])
    assert il.sorted().ids.tolist() == [2, 9, 1, 5]  # ties by lower index
    assert il.top(2).ids.tolist() == [2, 9]
    assert il.exclude([9]).ids.tolist() == [5, 2, 1]
    assert il.restrict([1, 5]).ids.tolist() == [5, 1]
    assert recai.ItemList.from_scores([0.5, 0.1, 0.9], k=2, exclude=[2]).ids.tolist() == [0, 1]
    assert recai.ItemList.from_scores([0.5, 0.1, 0.9], k=5, candidates=[1, 2]).ids.tolist() == [
        2,
        1,
    ]
    with pytest.raises(TypeError, match="integer"):
        recai.ItemList(["a"])
    with pytest.raises(ValueError, match="same shape"):
        recai.ItemList([1, 2], scores=[1.0])


def test_item_list_top_matches_full_sort() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=200).astype(float)  # many ties
    il = recai.ItemList(np.arange(200), scores)
    for k in (1, 7, 50, 199):
        assert il.top(k).ids.tolist() == il.sorted().ids[:k].tolist()


def test_report_markdown_and_round_trip() -> None:
    rep = recai.Report(
        evaluator="eval",
        metrics={"pop": {"NDCG@10": 0.1234567}, "knn": {"NDCG@10": 0.2}},
        intervals={"pop": {"NDCG@10": (0.1, 0.15)}},
        info={"dataset": "ml-100k", "protocol": "loo", "samples": 943, "seed": 0},
    )
    md = rep.to_markdown()
    assert "| pop | 0.1235 [0.1000, 0.1500] |" in md and "**samples**: 943" in md
    assert recai.Report.from_dict(rep.to_dict()).to_dict() == rep.to_dict()


def test_message_from_dict_errors() -> None:
    assert recai.Message.from_dict({"role": "user", "content": "x"}) == recai.Message.user("x")
    with pytest.raises(ValueError, match="lacks the key 'content'"):
        recai.Message.from_dict({"role": "user"})
    with pytest.raises(ValueError, match="unknown role"):
        recai.Message.from_dict({"role": "robot", "content": "x"})


def test_report_markdown_summarises_long_info() -> None:
    rep = recai.Report("e", {"m": {"x": 1.0}}, info={"failed_samples": list(range(50)), "seed": 0})
    md = rep.to_markdown()
    assert "**failed_samples**: 50 entries (listed in metrics.json)" in md and "**seed**: 0" in md


def test_union_reference_problems_are_reported_once(pm: PluginManager) -> None:
    """A value checked against each member of `Ranker | Retriever` gives one problem, not one per
    member: a misspelt name once, a dataset where a model belongs as 'a ranker or a retriever'."""

    class Compare(recai.Evaluator):
        def __init__(self, models: list[recai.Ranker | recai.Retriever]):
            self.models = models

        def evaluate(self, ctx):
            raise NotImplementedError

    class P:
        @recai.hookimpl
        def recai_evaluators(self):
            yield ComponentSpec(name="compare.v1", factory=Compare, summary="Takes models.")

    pm.register(P(), name="p")
    recipe = recai.load_recipe(
        {
            "components": {
                "data": {"use": "synthetic.v1"},
                "pop": {"use": "random.v1"},
                "eval": {"use": "compare.v1", "params": {"models": ["popp", "data", "pop"]}},
            }
        }
    )
    with pytest.raises(RecipeError) as err:
        recai.build(recipe)
    problems = [str(p) for p in err.value.problems]
    assert len(problems) == 2, problems
    assert "models[0]: no component named 'popp' in this recipe. Did you mean 'pop'?" in problems[0]
    assert problems[1].endswith(
        "models[1]: 'data' is a dataset (synthetic.v1), but this parameter needs a ranker or a "
        "retriever"
    )


def test_params_model_given_as_a_lazy_string(pm: PluginManager) -> None:
    """`params="module:Model"` keeps listing free of the module that holds the model."""
    good = ComponentSpec(
        name="lazy.v1",
        factory="recai.baselines:RandomRecommender",
        summary="Lazy params.",
        params="support_plugin:TunedParams",
    )
    assert good.problems() == [] and good.params_model() is support_plugin.TunedParams
    bad = ComponentSpec(name="lazy.v1", factory="x:y", summary="s", params="no colon")
    assert "must be a model class or a 'module:Model' string" in bad.problems()[0]
    missing = ComponentSpec(name="lazy.v1", factory="x:y", summary="s", params="no_such_mod:M")
    with pytest.raises(recai.RecaiError, match="cannot import its params model 'no_such_mod:M'"):
        missing.params_model()
    loose = ComponentSpec(name="lazy.v1", factory="x:y", summary="s", params="pydantic:BaseModel")
    with pytest.raises(recai.RecaiError, match="must forbid unknown keys"):
        loose.params_model()


def test_configurable_class_is_its_own_params_model(pm: PluginManager) -> None:
    """A `recai.Configurable` factory names its params model: the spec needs no `params=`, the
    class takes keywords, a ready model or positional fields, and refuses misspelt keys alike."""
    from pydantic import Field

    class WindowParams(recai.Params):
        window: int = Field(3, ge=1, description="items of history")
        base: recai.Ranker | None = None

    class Windowed(recai.Configurable, recai.Ranker):
        Params = WindowParams
        positional = ("window",)

        def score(self, histories, items=None, *, users=None):
            raise NotImplementedError

    class P:
        @recai.hookimpl
        def recai_rankers(self):
            yield ComponentSpec(name="windowed.v1", factory=Windowed, summary="Configurable.")

    pm.register(P(), name="p")
    assert pm.registry().get("windowed.v1").spec.params_model() is WindowParams
    assert recai.create("ranker", "windowed.v1", window=5).params.window == 5
    assert Windowed(7).params.window == 7 and Windowed(WindowParams(window=2)).params.window == 2
    with pytest.raises(ParamsError, match="did you mean 'window'"):
        Windowed(windw=2)
    with pytest.raises(ParamsError, match="did you mean 'window'"):
        recai.create("ranker", "windowed.v1", windw=2)
    with pytest.raises(TypeError, match="takes 1 positional argument"):
        Windowed(1, 2)
    import inspect

    assert str(inspect.signature(Windowed)).startswith("(window: int = 3, *, base:")
