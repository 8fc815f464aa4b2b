"""Good recipes: TOML, YAML and JSON are equivalent; environment interpolation; the recipe schema.

``tests/recipes/good/demo.{toml,yaml,json}`` are the same recipe in three formats: they must load
into equal models, check and build into the same graph, and run to the same metrics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import support_plugin
from pydantic import BaseModel, field_validator

import recai
from recai import cli
from recai.errors import RecipeError
from recai.plugins import PluginManager
from recai.recipe import Built, check, load_recipe, recipe_from_dict
from recai.runtime import run

GOOD = Path(__file__).parent / "recipes" / "good"
FORMATS = ["toml", "yaml", "json"]
DEMO = {fmt: GOOD / f"demo.{fmt}" for fmt in FORMATS}

SECRET = "sk-live-Zq7XwP4k9mB2"
SECRET_CORE = "Zq7XwP4k9mB2"


@pytest.fixture
def pm(recai_pm: PluginManager) -> PluginManager:
    """The built-ins and the support plugin, as the process-wide manager."""
    recai_pm.register(support_plugin, name="support")
    return recai_pm


def _shape(built: Built) -> dict[str, Any]:
    """Each built component's class and attributes, with other components replaced by their names."""

    def describe(value: Any) -> Any:
        name = built.name_of(value)
        if name is not None:
            return f"<component {name}>"
        if isinstance(value, (list, tuple)):
            return [describe(v) for v in value]
        if isinstance(value, dict):
            return {k: describe(v) for k, v in value.items()}
        if isinstance(value, BaseModel):
            return {"model": type(value).__name__, **value.model_dump()}
        return value

    return {
        name: {"class": type(obj).__name__, **describe(vars(obj))} for name, obj in built.items()
    }


# -- the same recipe in three formats --------------------------------------------------------------


def test_the_three_files_exist() -> None:
    for path in DEMO.values():
        assert path.is_file(), path


def test_formats_load_into_equal_models() -> None:
    dumps = {fmt: load_recipe(path).model_dump() for fmt, path in DEMO.items()}
    assert dumps["toml"] == dumps["yaml"] == dumps["json"]
    # and the model is what the files say, not three equally wrong readings
    recipe = load_recipe(DEMO["yaml"])
    assert recipe.name == "formats"
    assert list(recipe.components) == [
        "data",
        "rnd",
        "big",
        "other",
        "mix",
        "tuned",
        "llm",
        "bot",
        "hits",
        "hits10",
    ]
    assert recipe.components["big"].params == {"base": "rnd", "weight": 2.5}
    assert recipe.components["tuned"].params["optim"] == {"lr": 0.001, "kind": "sgd"}
    assert recipe.components["llm"].params == {"prefix": "> "}
    assert recipe.run.stages == ["hits", "hits10"] and recipe.run.seed == 11
    assert recipe.source == str(DEMO["yaml"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_checks_ok(fmt: str, pm: PluginManager) -> None:
    plan = check(load_recipe(DEMO[fmt]), pm.registry())
    assert plan.stages == ("hits", "hits10")
    assert set(plan.order) == set(load_recipe(DEMO[fmt]).components)
    assert plan.deps["mix"] == {"big", "other"}
    assert plan.deps["hits"] == {"data", "rnd", "big", "mix", "tuned"}
    # every component comes after what it takes
    for name, deps in plan.deps.items():
        assert all(plan.order.index(d) < plan.order.index(name) for d in deps)


def test_formats_check_to_the_same_plan(pm: PluginManager) -> None:
    plans = {fmt: check(load_recipe(path), pm.registry()) for fmt, path in DEMO.items()}
    for fmt in ("yaml", "json"):
        assert plans[fmt].order == plans["toml"].order
        assert plans[fmt].deps == plans["toml"].deps
        assert plans[fmt].stages == plans["toml"].stages
        assert {n: e.name for n, e in plans[fmt].resolved.items()} == {
            n: e.name for n, e in plans["toml"].resolved.items()
        }


def test_formats_build_the_same_graph(pm: PluginManager) -> None:
    shapes = {fmt: _shape(recai.build(load_recipe(path))) for fmt, path in DEMO.items()}
    assert shapes["toml"] == shapes["yaml"] == shapes["json"]
    built = recai.build(load_recipe(DEMO["json"]))
    assert built["big"].base is built["rnd"] and built["big"].weight == 2.5
    assert built["mix"].parts == [built["big"], built["other"]]
    assert built["bot"].llm is built["llm"] and built["bot"].ranker is built["mix"]
    assert built["tuned"].optim.kind == "sgd" and built["tuned"].optim.lr == 0.001
    assert built["hits"].models == [built["rnd"], built["big"], built["mix"], built["tuned"]]


def _metrics(out: Path) -> dict[str, Any]:
    data = json.loads((out / "metrics.json").read_text())
    return {
        "seed": data["seed"],
        "recipe_name": data["recipe"]["name"],
        "stages": {
            name: {k: v for k, v in stage.items() if k != "seconds"}
            for name, stage in data["stages"].items()
        },
    }


def test_formats_run_to_the_same_metrics(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = {}
    for fmt, path in DEMO.items():
        out = tmp_path / fmt
        code = cli.main(["run", str(path), "--out", str(out), "--no-progress"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert f"wrote {out / 'metrics.json'}" in captured.out
        metrics[fmt] = _metrics(out)
    assert metrics["toml"] == metrics["yaml"] == metrics["json"]
    stages = metrics["toml"]["stages"]
    assert list(stages) == ["hits", "hits10"]
    assert set(stages["hits"]["metrics"]) == {"rnd", "big", "mix", "tuned"}
    assert set(stages["hits10"]["metrics"]) == {"other", "mix"}
    assert all(0.0 <= m["hit@5"] <= 1.0 for m in stages["hits"]["metrics"].values())
    # scaling a ranker does not change its ranking
    assert stages["hits"]["metrics"]["big"] == stages["hits"]["metrics"]["rnd"]
    assert metrics["toml"]["seed"] == 11


def test_runtime_run_matches_the_command_line(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(load_recipe(DEMO["yaml"]), tmp_path / "api", progress=False)
    assert result.metrics_path.is_file()
    assert (
        cli.main(["run", str(DEMO["toml"]), "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    )
    capsys.readouterr()
    assert _metrics(tmp_path / "api") == _metrics(tmp_path / "cli")


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_command_prints_the_build_order(
    fmt: str, pm: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["recipe", "check", str(DEMO[fmt])])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    order = check(load_recipe(DEMO[fmt]), pm.registry()).order
    first = out.splitlines()[0]
    assert first.startswith(f"{DEMO[fmt]}: OK")
    assert "10 component(s)" in first
    assert first.endswith("build order: " + ", ".join(order))
    assert "stages: hits, hits10" in out


# -- environment variables -------------------------------------------------------------------------


def test_env_file_interpolation(pm: PluginManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAI_TEST_SEED", "5")
    monkeypatch.setenv("AMOUNT", "must not be used")
    for var in ("RECAI_TEST_USERS", "RECAI_TEST_PREFIX", "RECAI_TEST_MODEL"):
        monkeypatch.delenv(var, raising=False)
    recipe = load_recipe(GOOD / "env.toml")
    assert recipe.description == "Prices look like ${AMOUNT}; this is not interpolated."
    assert recipe.components["rnd"].params == {"seed": "5"}
    assert recipe.components["data"].params["n_users"] == "20"  # the default
    assert recipe.components["llm"].params == {"prefix": "default> "}
    assert recipe.components["hits"].params["models"] == ["rnd"]
    built = recai.build(recipe)
    assert built["rnd"].seed == 5  # "5" from the environment, validated as the int it must be
    assert built["data"].n_users == 20
    assert built["llm"].prefix == "default> "
    assert built["hits"].models == [built["rnd"]]

    monkeypatch.setenv("RECAI_TEST_PREFIX", "env> ")
    monkeypatch.setenv("RECAI_TEST_USERS", "12")
    recipe = load_recipe(GOOD / "env.toml")
    assert recipe.components["llm"].params == {"prefix": "env> "}
    assert recai.build(recipe)["data"].n_users == 12


def test_env_file_needs_its_variable(
    pm: PluginManager, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RECAI_TEST_SEED", raising=False)
    assert cli.main(["recipe", "check", str(GOOD / "env.toml")]) == 2
    err = capsys.readouterr().err
    assert "components.rnd.params.seed (line 11)" in err
    assert "environment variable RECAI_TEST_SEED is not set" in err
    monkeypatch.setenv("RECAI_TEST_SEED", "3")
    assert cli.main(["recipe", "check", str(GOOD / "env.toml")]) == 0
    assert "build order:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
        ("${A}${B}", {"A": "x", "B": "y"}, "xy"),
        ("${A:-fallback}", {}, "fallback"),
        ("${A:-fallback}", {"A": "set"}, "set"),
        ("${A:-}", {}, ""),
        ("${A:-}", {"A": ""}, ""),
        ("${A}", {"A": ""}, ""),
        ("${A:-a:-b}", {}, "a:-b"),
        ("$${A}", {"A": "x"}, "${A}"),
        ("$${A} and ${A}", {"A": "x"}, "${A} and x"),
        ("$${not a name}", {}, "${not a name}"),
        ("cost: $5", {}, "cost: $5"),
        ("{A}", {"A": "x"}, "{A}"),
    ],
)
def test_interpolation(text: str, env: dict[str, str], expected: str) -> None:
    recipe = recipe_from_dict(
        {"components": {"llm": {"use": "echo.v1", "params": {"prefix": text}}}}, env=env
    )
    assert recipe.components["llm"].params["prefix"] == expected


def test_interpolation_reaches_every_string_and_nothing_else() -> None:
    data = {
        "name": "${N}",
        "requires": ["${R:-recai}"],
        "components": {
            "t": {
                "use": "${U}",
                "params": {"tags": ["${N}", 3, True], "optim": {"kind": "${K}"}, "hidden": 4},
            },
        },
        "run": {"stages": ["${S:-t}"], "seed": 3},
    }
    env = {"N": "nm", "U": "tuned.v1", "K": "sgd"}
    recipe = recipe_from_dict(data, env=env)
    assert recipe.name == "nm" and recipe.requires == ["recai"]
    assert recipe.components["t"].use == "tuned.v1"
    assert recipe.components["t"].params == {
        "tags": ["nm", 3, True],
        "optim": {"kind": "sgd"},
        "hidden": 4,
    }
    assert recipe.run.stages == ["t"] and recipe.run.seed == 3
    assert recipe.secret_paths == {
        "name",
        "requires[0]",
        "components.t.use",
        "components.t.params.tags[0]",
        "components.t.params.optim.kind",
        "run.stages[0]",
    }
    assert data["name"] == "${N}"  # the input is not modified


def test_env_is_read_from_the_process_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAI_TEST_PREFIX", "from-process")
    recipe = recipe_from_dict(
        {"components": {"llm": {"use": "echo.v1", "params": {"prefix": "${RECAI_TEST_PREFIX}"}}}}
    )
    assert recipe.components["llm"].params["prefix"] == "from-process"


def test_all_env_problems_are_reported_together() -> None:
    data = {
        "components": {
            "llm": {
                "use": "echo.v1",
                "params": {"prefix": "${MISSING_ONE}${MISSING_TWO}${bad name}"},
            }
        }
    }
    with pytest.raises(RecipeError) as info:
        recipe_from_dict(data, env={})
    message = str(info.value)
    assert "3 problems" in message
    assert "MISSING_ONE is not set" in message and "MISSING_TWO is not set" in message
    assert "'${bad name}' is not a valid environment reference" in message


# -- values from the environment are never echoed --------------------------------------------------

SECRET_CASES = {
    "wrong type": (
        '[components.rnd]\nuse = "random.v1"\nparams = { seed = "${RECAI_TEST_SECRET}" }\n',
        "components.rnd.params.seed",
    ),
    "wrong type, float": (
        '[components.rnd]\nuse = "random.v1"\n[components.big]\nuse = "scaled.v1"\n'
        'params = { base = "rnd", weight = "${RECAI_TEST_SECRET}" }\n',
        "components.big.params.weight",
    ),
    "inside a list": (
        '[components.rnd]\nuse = "random.v1"\nparams = { n_items = ["${RECAI_TEST_SECRET}"] }\n',
        "components.rnd.params.n_items",
    ),
    "inside a nested table": (
        '[components.t]\nuse = "tuned.v1"\nparams = { optim = { kind = "${RECAI_TEST_SECRET}" } }\n',
        "components.t.params.optim.kind",
    ),
    "part of a value": (
        '[components.t]\nuse = "tuned.v1"\nparams = { hidden = "n-${RECAI_TEST_SECRET}" }\n',
        "components.t.params.hidden",
    ),
    "component name": ('[components.x]\nuse = "${RECAI_TEST_SECRET}"\n', "components.x.use"),
    "reference": (
        '[components.big]\nuse = "scaled.v1"\nparams = { base = "${RECAI_TEST_SECRET}" }\n',
        "components.big.params.base",
    ),
    "reference in a list": (
        '[components.data]\nuse = "synthetic.v1"\n[components.rnd]\nuse = "random.v1"\n[components.eval]\nuse = "hitrate.v1"\n'
        'params = { dataset = "data", models = ["rnd", "${RECAI_TEST_SECRET}"] }\n',
        "components.eval.params.models[1]",
    ),
    "stage": (
        '[components.rnd]\nuse = "random.v1"\n[run]\nstages = ["${RECAI_TEST_SECRET}"]\n',
        "run.stages[0]",
    ),
    "run seed": (
        '[components.rnd]\nuse = "random.v1"\n[run]\nseed = "${RECAI_TEST_SECRET}"\n',
        "run.seed",
    ),
    "requirement": (
        'requires = ["${RECAI_TEST_SECRET}"]\n[components.rnd]\nuse = "random.v1"\n',
        "requires[0]",
    ),
    "requirement with a version": (
        'requires = ["recai>=99,${RECAI_TEST_SECRET}"]\n[components.rnd]\nuse = "random.v1"\n',
        "requires[0]",
    ),
}


@pytest.mark.parametrize("case", list(SECRET_CASES))
def test_values_from_the_environment_are_not_echoed(
    case: str,
    pm: PluginManager,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text, where = SECRET_CASES[case]
    monkeypatch.setenv("RECAI_TEST_SECRET", SECRET)
    path = tmp_path / "secret.toml"
    path.write_text(text)
    assert cli.main(["recipe", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert where in err, err
    assert SECRET_CORE not in err, err
    with pytest.raises(RecipeError) as info:
        recai.build(load_recipe(path))
    assert SECRET_CORE not in str(info.value)
    assert all(SECRET_CORE not in p.message for p in info.value.problems)


@pytest.mark.parametrize("value", ["1", "a", "rnd"])
def test_short_env_values_are_not_echoed_either(
    value: str,
    pm: PluginManager,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECAI_TEST_SECRET", value)
    path = tmp_path / "short.toml"
    path.write_text(
        '[components.rnd]\nuse = "random.v1"\n[components.data]\nuse = "synthetic.v1"\n'
        '[components.eval]\nuse = "hitrate.v1"\nparams = { dataset = "${RECAI_TEST_SECRET}", models = ["rnd"], k = "x${RECAI_TEST_SECRET}" }\n'
    )
    assert cli.main(["recipe", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "components.eval.params.dataset" in err and "components.eval.params.k" in err
    assert f"'{value}'" not in err and f"'x{value}'" not in err, err


def test_values_written_in_the_file_are_still_echoed(
    pm: PluginManager,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECAI_TEST_SECRET", SECRET)
    path = tmp_path / "mixed.toml"
    path.write_text(
        '[components.rnd]\nuse = "random.v1"\nparams = { seed = "${RECAI_TEST_SECRET}", n_items = "many" }\n'
    )
    assert cli.main(["recipe", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err
    assert "components.rnd.params.n_items (line 3): Input should be a valid integer" in err
    assert "(got 'many')" in err
    assert SECRET_CORE not in err


# -- the recipe schema -----------------------------------------------------------------------------


def test_schema_lists_the_registered_components(
    pm: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["recipe", "schema"]) == 0
    out = capsys.readouterr().out
    schema = json.loads(out)
    decl = schema["$defs"]["ComponentDecl"]
    names = pm.registry().names()
    assert decl["properties"]["use"]["enum"] == names
    assert {
        "random.v1",
        "synthetic.v1",
        "scaled.v1",
        "tuned.v1",
        "hitrate.v1",
        "echo.v1",
        "chatbot.v1",
        "mixed.v1",
    } <= set(names)
    rules = {rule["if"]["properties"]["use"]["const"]: rule["then"] for rule in decl["allOf"]}
    assert set(rules) == set(names)
    assert "properties" in rules["scaled.v1"] and "params" in rules["scaled.v1"]["properties"]
    assert set(schema["properties"]) == {"name", "description", "requires", "components", "run"}
    assert schema["additionalProperties"] is False


def test_schema_of_the_shape_only_and_to_a_file(
    pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["recipe", "schema", "--shape-only"]) == 0
    shape = json.loads(capsys.readouterr().out)
    assert "enum" not in shape["$defs"]["ComponentDecl"]["properties"]["use"]
    target = tmp_path / "schema.json"
    assert cli.main(["recipe", "schema", "--out", str(target)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and f"wrote {target}" in captured.err
    written = json.loads(target.read_text())
    assert written["$defs"]["ComponentDecl"]["properties"]["use"]["enum"] == pm.registry().names()


def test_good_recipes_satisfy_the_schema_enum(
    pm: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every `use` in the good recipes is one of the names the schema offers."""
    assert cli.main(["recipe", "schema"]) == 0
    enum = set(
        json.loads(capsys.readouterr().out)["$defs"]["ComponentDecl"]["properties"]["use"]["enum"]
    )
    for path in DEMO.values():
        assert {c.use for c in load_recipe(path).components.values()} <= enum


class _KeyedParams(recai.Params):
    api_key: str

    @field_validator("api_key")
    @classmethod
    def _looks_like_a_key(cls, value: str) -> str:
        if not value.startswith("key-"):
            raise ValueError(f"{value!r} does not look like an API key")  # a validator that echoes
        return value


class _KeyedPlugin:
    @recai.hookimpl
    def recai_llm_backends(self):
        yield recai.ComponentSpec(
            name="keyed.v1",
            factory=support_plugin.EchoLLM,
            summary="Needs a key.",
            params=_KeyedParams,
        )


def test_a_plugin_validator_does_not_echo_env_values(
    pm: PluginManager,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pm.register(_KeyedPlugin(), name="keyed")
    monkeypatch.setenv("RECAI_TEST_SECRET", SECRET)
    path = tmp_path / "keyed.yaml"
    path.write_text(
        "components:\n  llm:\n    use: keyed.v1\n    params:\n      api_key: ${RECAI_TEST_SECRET}\n"
    )
    assert cli.main(["recipe", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "components.llm.params.api_key (line 5)" in err
    assert "does not look like an API key" in err
    assert SECRET_CORE not in err
    # the same value written in the file is echoed: it is no secret (in a fresh process: once
    # loaded from the environment a value stays registered, and hidden, for the process)
    from recai import secrets

    secrets.forget_secrets()
    monkeypatch.delenv("RECAI_TEST_SECRET")
    path.write_text(
        f"components:\n  llm:\n    use: keyed.v1\n    params:\n      api_key: {SECRET}\n"
    )
    assert cli.main(["recipe", "check", str(path)]) == 2
    assert SECRET in capsys.readouterr().err
