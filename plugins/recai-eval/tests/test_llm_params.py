"""The LLM tasks' params models: one base, inherited; handed to the specs; what recipes, the schema
and Python users see of them."""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import recai
from recai.errors import ParamsError, RecipeError
from recai.recipe import build, check, recipe_from_dict
from recai.runtime import RunContext, run
from recai.schema import recipe_schema
from recai.types import Completion, Message
from recai_eval.llm import params as P
from recai_eval.llm.conversation import ConversationEvaluator
from recai_eval.llm.embedding import EmbeddingRankingEvaluator
from recai_eval.llm.explanation import ExplanationEvaluator
from recai_eval.llm.ranking import LLMRankingEvaluator
from recai_eval.llm.retrieval import LLMRetrievalEvaluator

MODELS = {
    "llm-retrieval.v1": P.LLMRetrievalParams,
    "llm-ranking.v1": P.LLMRankingParams,
    "cf-ranking-mc.v1": P.ChoiceParams,
    "seq-ranking-mc.v1": P.ChoiceParams,
    "explanation.v1": P.ExplanationParams,
    "conversation.v1": P.ConversationParams,
    "embedding-ranking.v1": P.EmbeddingRankingParams,
    "embedding-retrieval.v1": P.EmbeddingRetrievalParams,
}
SHARED = ("dataset", "samples", "seed", "max_history", "fields", "bootstrap")
ASKING = ("max_tokens", "temperature", "concurrency", "batch_size", "retries", "cache")


class Echo(recai.LLMBackend):
    """Lists the numbered or bulleted lines of the last message in reverse order."""

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        lines = re.findall(r"(?m)^(?:\d+\.|-) (.*)$", messages[-1].content)
        return Completion("\n".join(f"{i}. {t}" for i, t in enumerate(lines[::-1], 1)) or "?")


class EchoPlugin:
    """A test plugin: ``echo.v1``, an LLM backend."""

    @recai.hookimpl
    def recai_llm_backends(self):
        yield recai.ComponentSpec(name="echo.v1", factory=Echo, summary="Echo for tests.")


@pytest.fixture
def pm(recai_installed_pm: Any) -> Any:
    recai_installed_pm.register(EchoPlugin(), name="echo")
    return recai_installed_pm


@pytest.fixture
def source() -> recai.DatasetSource:
    return recai.create("dataset", "synthetic.v1", n_users=40, n_items=30, seed=1)


# -- one base, inherited ---------------------------------------------------------------------------
def test_every_task_model_inherits_the_shared_settings_from_one_base() -> None:
    for model in MODELS.values():
        assert issubclass(model, P.LLMTaskParams)
        assert list(model.model_fields)[: len(SHARED)] == list(SHARED)
        for name in SHARED:  # declared once, in the base: same constraints and description
            assert model.model_fields[name].description == (
                P.LLMTaskParams.model_fields[name].description
            )
    asking = [m for m in MODELS.values() if issubclass(m, P.AskingParams)]
    assert len(set(asking)) == 5  # every task but the two embedding ones asks an LLM
    for model in asking:
        assert set(ASKING) <= set(model.model_fields)
    assert not set(ASKING) & set(P.EmbeddingRankingParams.model_fields)
    assert "grounding" not in P.ExplanationParams.model_fields  # a judge grounds no titles
    assert issubclass(P.EmbeddingRankingParams, P.EmbeddingRetrievalParams)


def test_a_task_overrides_a_default_without_repeating_the_rest() -> None:
    defaults = {
        m: m.model_fields["max_tokens"].default
        for m in MODELS.values()
        if "max_tokens" in m.model_fields
    }
    assert defaults[P.LLMRetrievalParams] == 400 and defaults[P.LLMRankingParams] == 600
    assert defaults[P.ChoiceParams] == 64 and defaults[P.ConversationParams] == 300
    assert P.ExplanationParams.model_fields["samples"].default == 50
    assert P.LLMRankingParams.model_fields["samples"].default == 100


def test_the_specs_hold_the_models(pm: Any) -> None:
    registry = pm.registry()
    for name, model in MODELS.items():
        spec = registry.get(name, "evaluator").spec
        assert spec.params == f"recai_eval.llm.params:{model.__name__}", name  # lazy
        assert spec.params_model() is model


def test_placeholders_come_from_the_template_fields() -> None:
    assert LLMRankingEvaluator.placeholders == {
        "system_prompt": frozenset(),
        "template": frozenset({"history", "candidates", "n"}),
    }
    assert ExplanationEvaluator.placeholders["judge_template"] == frozenset(
        {"history", "item", "answer_a", "answer_b"}
    )
    assert ConversationEvaluator.placeholders["recommender_prompt"] == frozenset({"k"})


# -- Python users ----------------------------------------------------------------------------------
def test_direct_use_by_position_keyword_or_model(source: Any) -> None:
    llm = Echo()
    a = LLMRankingEvaluator(source, llm, samples=5, n_candidates=8)
    b = LLMRankingEvaluator(dataset=source, llm=llm, samples=5, n_candidates=8)
    c = LLMRankingEvaluator(P.LLMRankingParams(dataset=source, llm=llm, samples=5, n_candidates=8))
    assert a.params == b.params == c.params
    assert a.params.llm is llm and a.params.concurrency == 4
    sig = inspect.signature(LLMRankingEvaluator)
    assert list(sig.parameters)[:2] == ["dataset", "llm"]
    assert sig.parameters["n_candidates"].default == 20
    assert sig.parameters["n_candidates"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(ExplanationEvaluator).parameters)[:4] == [
        "dataset",
        "llm",
        "baseline",
        "judge",
    ]


def test_direct_use_refuses_unknown_and_invalid_keywords(source: Any) -> None:
    with pytest.raises(ParamsError) as e:
        LLMRankingEvaluator(source, Echo(), n_candidats=5, threshold=2)
    text = str(e.value)
    assert "n_candidats: unknown key (did you mean 'n_candidates'?" in text
    assert "threshold:" in text  # every problem at once
    with pytest.raises(ParamsError, match="windw: unknown key"):
        recai.create("evaluator", "llm-retrieval.v1", dataset=source, llm=Echo(), windw=3)
    with pytest.raises(ParamsError, match="retriever: .*names a component"):
        EmbeddingRankingEvaluator(source, "brain")
    with pytest.raises(TypeError, match="takes 2 positional"):
        LLMRetrievalEvaluator(source, Echo(), 10)
    with pytest.raises(TypeError, match="multiple values for argument 'llm'"):
        LLMRetrievalEvaluator(source, Echo(), llm=Echo())


# -- the recipe schema -----------------------------------------------------------------------------
def test_the_schema_gives_every_field_with_description_and_default(pm: Any) -> None:
    schema = recipe_schema(pm.registry())
    rules = schema["$defs"]["ComponentDecl"]["allOf"]
    by_name = {r["if"]["properties"]["use"]["const"]: r["then"] for r in rules}
    for name, model in MODELS.items():
        ref = by_name[name]["properties"]["params"]["$ref"].split("/")[-1]
        params = schema["$defs"][ref]
        assert set(params["properties"]) == set(model.model_fields), name
        assert params["additionalProperties"] is False
        for field, prop in params["properties"].items():
            assert prop.get("description"), f"{name}.{field} has no description"
            if not model.model_fields[field].is_required():
                assert "default" in prop, f"{name}.{field} has no default"
        assert set(params["required"]) == {
            f for f, info in model.model_fields.items() if info.is_required()
        }
    ranking = schema["$defs"][
        by_name["llm-ranking.v1"]["properties"]["params"]["$ref"].split("/")[-1]
    ]
    assert ranking["properties"]["llm"]["x-recai-role"] == "llm_backend"
    assert ranking["properties"]["n_candidates"]["maximum"] == 100


# -- recipes: references, key paths, results ----------------------------------------------------------
def _recipe(**rank_params: Any) -> dict[str, Any]:
    return {
        "components": {
            "data": {"use": "synthetic.v1", "params": {"n_users": 40, "n_items": 30, "seed": 1}},
            "brain": {"use": "echo.v1"},
            "rank": {
                "use": "llm-ranking.v1",
                "params": {"dataset": "data", "llm": "brain", "samples": 6, "bootstrap": 0}
                | rank_params,
            },
            "talk": {
                "use": "conversation.v1",
                "params": {
                    "dataset": "data",
                    "recommender": "brain",
                    "simulator": "brain",
                    "samples": 3,
                    "max_turns": 1,
                    "bootstrap": 0,
                },
            },
        }
    }


def test_recipe_references_resolve_through_the_models(pm: Any) -> None:
    plan = check(recipe_from_dict(_recipe()))
    assert plan.deps["rank"] == {"data", "brain"}
    assert plan.deps["talk"] == {"data", "brain"}
    built = build(recipe_from_dict(_recipe()))
    assert built["rank"].params.llm is built["brain"]
    assert built["rank"].params.dataset is built["data"]
    assert built["talk"].params.simulator is built["brain"]


def test_recipe_errors_name_the_key_path(pm: Any) -> None:
    with pytest.raises(RecipeError) as e:
        check(recipe_from_dict(_recipe(llm="data", samples="many", n_candidats=5)))
    text = str(e.value)
    assert "components.rank.params.llm:" in text and "needs an llm backend" in text
    assert "components.rank.params.samples:" in text
    assert "components.rank.params.n_candidats: unknown key (did you mean 'n_candidates'?" in text
    with pytest.raises(RecipeError, match=r"components.rank.params.llm: .*Did you mean 'brain'"):
        check(recipe_from_dict(_recipe(llm="brian")))


def test_a_recipe_gives_what_the_class_gives(pm: Any, source: Any, tmp_path: Path) -> None:
    result = run(recipe_from_dict(_recipe()), tmp_path / "recipe", progress=False)
    ctx = RunContext(out_dir=tmp_path / "direct", seed=0, progress=False)
    direct = LLMRankingEvaluator(source, Echo(), samples=6, bootstrap=0).evaluate(ctx)
    (row,) = direct.metrics.values()
    assert result.reports["rank"].metrics["brain"] == row
