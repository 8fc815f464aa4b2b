"""The embedding retrievers' params models: shared settings in one model, inherited by
``embedding.v1``, ``embedding.openai.v1`` and ``embedding.tuned.v1``; what recipes, the schema and
Python users see of them. Nothing here loads a model."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import recai
from recai.errors import ParamsError, RecipeError
from recai.recipe import build, check, recipe_from_dict
from recai.schema import recipe_schema
from recai_emb.index import IndexConfig
from recai_emb.retriever import (
    EmbeddingParams,
    EmbeddingRetriever,
    LocalEncoderParams,
    OpenAIEmbeddingParams,
    OpenAIEmbeddingRetriever,
    RetrieverParams,
    TextParams,
)
from recai_emb.tuned import TunedEmbeddingParams, TunedEmbeddingRetriever

MODELS = {
    "embedding.v1": EmbeddingParams,
    "embedding.openai.v1": OpenAIEmbeddingParams,
    "embedding.tuned.v1": TunedEmbeddingParams,
}
SHARED = ("dataset", "max_history", "index", "cache", "cache_dir")


def test_the_shared_settings_are_declared_once_and_inherited() -> None:
    for model in MODELS.values():
        assert issubclass(model, RetrieverParams)
        for name in SHARED:
            assert model.model_fields[name].description == (
                RetrieverParams.model_fields[name].description
            )
    assert issubclass(TunedEmbeddingParams, LocalEncoderParams)
    assert issubclass(EmbeddingParams, LocalEncoderParams) and issubclass(
        EmbeddingParams, TextParams
    )
    assert issubclass(OpenAIEmbeddingParams, TextParams)
    assert not issubclass(OpenAIEmbeddingParams, LocalEncoderParams)  # no local runtime
    # the tuned retriever shares the encoder runtime, not the texts its fine-tuning fixed
    shared = set(TunedEmbeddingParams.model_fields) & set(EmbeddingParams.model_fields)
    assert shared == set(LocalEncoderParams.model_fields)
    assert "template" not in TunedEmbeddingParams.model_fields
    assert TunedEmbeddingParams.model_fields["max_history"].default == 10
    assert EmbeddingParams.model_fields["max_history"].default == 20
    assert OpenAIEmbeddingParams.model_fields["batch_size"].default == 256


def test_the_specs_hold_the_models_without_importing_them_to_list(recai_installed_pm: Any) -> None:
    registry = recai_installed_pm.registry()
    for name, model in MODELS.items():
        spec = registry.get(name, "retriever").spec
        assert spec.params == f"{model.__module__}:{model.__name__}"  # a lazy string
        assert spec.params_model() is model
    # listing components imports neither the retrievers nor their params models: see
    # test_emb_units.test_listing_components_imports_nothing_heavy


def test_direct_use_by_keyword_position_or_model(tmp_path: Any) -> None:
    a = EmbeddingRetriever(model="folder", max_history=5, cache_dir=str(tmp_path))
    b = EmbeddingRetriever(None, "folder", max_history=5, cache_dir=str(tmp_path))
    c = EmbeddingRetriever(EmbeddingParams(model="folder", max_history=5, cache_dir=str(tmp_path)))
    assert a.params == b.params == c.params
    assert (a.model, a.max_history, a.index, a.exact_pool) == ("folder", 5, IndexConfig(), 4096)
    tuned = TunedEmbeddingRetriever(base="folder", steps=3)
    assert (tuned.model, tuned.base, tuned.steps, tuned.max_history) == ("folder", "folder", 3, 10)
    assert (tuned.template, tuned.pooling, tuned.query_prefix) == (
        EmbeddingParams().template,
        "auto",
        "",
    )
    sig = inspect.signature(OpenAIEmbeddingRetriever)
    assert list(sig.parameters)[:2] == ["model", "dataset"]
    assert sig.parameters["model"].default is inspect.Parameter.empty
    assert sig.parameters["timeout"].default == 60.0


def test_unknown_and_invalid_keywords_are_refused_with_hints() -> None:
    with pytest.raises(ParamsError) as e:
        EmbeddingRetriever(max_histroy=3, exact_pool=-1)
    text = str(e.value)
    assert "max_histroy: unknown key (did you mean 'max_history'?" in text
    assert "exact_pool:" in text
    with pytest.raises(ParamsError, match="step: unknown key \\(did you mean 'steps'"):
        recai.create("retriever", "embedding.tuned.v1", step=5)
    with pytest.raises(ParamsError, match="template: unknown key"):  # fixed by the fine-tuning
        TunedEmbeddingRetriever(template="{title}")
    with pytest.raises(ParamsError, match="tasks: unknown task 'nope'"):
        TunedEmbeddingRetriever(tasks=["nope"])
    with pytest.raises(ParamsError, match="history_template must contain"):
        OpenAIEmbeddingRetriever("m", history_template="no placeholder")


def test_the_schema_gives_every_field_with_description_and_default(recai_installed_pm: Any) -> None:
    schema = recipe_schema(recai_installed_pm.registry())
    rules = schema["$defs"]["ComponentDecl"]["allOf"]
    by_name = {r["if"]["properties"]["use"]["const"]: r["then"] for r in rules}
    for name, model in MODELS.items():
        ref = by_name[name]["properties"]["params"]["$ref"].split("/")[-1]
        params = schema["$defs"][ref]
        assert set(params["properties"]) == set(model.model_fields), name
        for field, prop in params["properties"].items():
            assert prop.get("description"), f"{name}.{field} has no description"
            if not model.model_fields[field].is_required():
                assert "default" in prop, f"{name}.{field} has no default"
    tuned = schema["$defs"][
        by_name["embedding.tuned.v1"]["properties"]["params"]["$ref"].split("/")[-1]
    ]
    assert tuned["properties"]["dataset"]["anyOf"][0]["x-recai-role"] == "dataset"
    assert tuned["properties"]["max_history"]["default"] == 10


def _recipe(**tuned: Any) -> dict[str, Any]:
    return {
        "components": {
            "data": {"use": "synthetic.v1", "params": {"n_users": 40, "n_items": 30, "seed": 1}},
            "base": {"use": "embedding.v1", "params": {"dataset": "data", "cache": False}},
            "tuned": {"use": "embedding.tuned.v1", "params": {"dataset": "data"} | tuned},
        }
    }


def test_recipe_references_resolve_through_the_models(recai_installed_pm: Any) -> None:
    plan = check(recipe_from_dict(_recipe()))
    assert plan.deps["base"] == {"data"} and plan.deps["tuned"] == {"data"}
    built = build(recipe_from_dict(_recipe(steps=2)))
    assert built["tuned"].dataset is built["data"]
    assert built["base"].params.dataset is built["data"]
    assert built["tuned"].steps == 2


def test_recipe_errors_name_the_key_path(recai_installed_pm: Any) -> None:
    with pytest.raises(RecipeError) as e:
        check(recipe_from_dict(_recipe(dataset="base", max_history="long", stesp=3)))
    text = str(e.value)
    assert "components.tuned.params.dataset:" in text and "needs a dataset" in text
    assert "components.tuned.params.max_history:" in text
    assert "components.tuned.params.stesp: unknown key (did you mean 'steps'?" in text
    with pytest.raises(RecipeError, match=r"components.tuned.params.index.kind"):
        check(recipe_from_dict(_recipe(index={"kind": "lsh"})))
