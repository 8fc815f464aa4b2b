"""Every component's params are bounded, so what ``recipe check`` accepts also runs (issue 17,
item 3).

The red team's ``k = [1000000000000]`` passed ``recipe check`` and asked numpy for 182 TiB at
run time. The kernel refuses non-finite numbers and integers beyond 64 bits everywhere; the
rest is each field's own bounds. :func:`test_every_numeric_param_has_an_upper_bound` makes that
hold by construction: it walks the params model of every component that the plugins in this
repository register and fails for any integer or number (also inside lists, tables and nested
models) without an upper bound, and for any list of numbers without a length bound, unless the
field is in :data:`ALLOWED` with its reason. The other tests run hostile values through the real
command line.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from recai import cli
from recai.plugins import PluginManager
from recai.specs import Params

DISTRIBUTIONS = {
    "recai",
    "recai-classic",
    "recai-datasets",
    "recai-emb",
    "recai-eval",
    "recai-hf",
    "recai-openai",
    "recai-recency",
}
"""The distributions in this repository that register components (recai-serve registers none)."""

ALLOWED: dict[tuple[str, str], str] = {
    # a threshold compared with each rating: it indexes, allocates and waits for nothing
    ("filtered.v1", "min_rating"): "a comparison threshold",
}
"""``(component, field path)`` of numbers that need no upper bound, each with its reason."""


def unbounded(schema: dict[str, Any]) -> Iterator[str]:
    """The paths (``k[]``, ``index.nlist``, ``prices.*.input``) of numbers without an upper
    bound and of lists of numbers without a length bound, in a pydantic JSON schema."""
    defs = schema.get("$defs", {})

    def numeric(node: Any, seen: tuple[str, ...]) -> bool:
        if not isinstance(node, dict):
            return False
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return name not in seen and numeric(defs.get(name), (*seen, name))
        if node.get("type") in ("integer", "number"):
            return True
        return any(numeric(n, seen) for k in ("anyOf", "oneOf", "allOf") for n in node.get(k, []))

    def walk(node: Any, path: str, seen: tuple[str, ...]) -> Iterator[str]:
        if not isinstance(node, dict):
            return
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                yield from walk(defs.get(name), path, (*seen, name))
        is_number = node.get("type") in ("integer", "number")
        fixed = {"enum", "const", "maximum", "exclusiveMaximum"} & node.keys()
        if is_number and not fixed:
            yield path
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for sub in node.get(key, []):
                yield from walk(sub, path, seen)
        if isinstance(node.get("items"), dict):
            if "maxItems" not in node and numeric(node["items"], seen):
                yield f"{path} (a list of numbers without max_length)"
            yield from walk(node["items"], f"{path}[]", seen)
        for key, sub in node.get("properties", {}).items():
            yield from walk(sub, f"{path}.{key}" if path else key, seen)
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}.*", seen)

    yield from dict.fromkeys(walk(schema, "", ()))  # each path once, in order


def kernel_seed(model: type[BaseModel], path: str) -> bool:
    """A top-level ``seed``/``*_seed`` field of a :class:`recai.Params` model: the kernel gives
    it 0 .. 2**32 - 1 whatever its annotation says."""
    return (
        issubclass(model, Params) and (path == "seed" or path.endswith("_seed")) and "." not in path
    )


# -- the walk itself can fail ------------------------------------------------------------------------
class _Inner(BaseModel):
    depth: int = Field(1, ge=1)
    bounded: int = Field(1, ge=1, le=9)


class _Toy(Params):
    count: int = Field(1, ge=1)
    ratio: float = Field(0.5, gt=0, lt=1)
    sizes: list[Annotated[int, Field(ge=1, le=10)]] = [1]
    maybe: Annotated[int, Field(ge=0)] | None = None
    table: dict[str, float] = {}
    inner: _Inner = _Inner()
    flag: bool = False
    seed: int = 0


def test_the_walk_finds_every_kind_of_unbounded_number() -> None:
    found = list(unbounded(_Toy.model_json_schema(mode="validation")))
    assert found == [
        "count",
        "sizes (a list of numbers without max_length)",
        "maybe",
        "table.*",
        "inner.depth",
        "seed",
    ]
    assert kernel_seed(_Toy, "seed") and not kernel_seed(_Inner, "seed")
    assert not kernel_seed(_Toy, "inner.seed")


# -- every component of every plugin in this repository -----------------------------------------------
def test_every_numeric_param_has_an_upper_bound(recai_installed_pm: PluginManager) -> None:
    assert not recai_installed_pm.unloaded(), recai_installed_pm.unloaded()
    entries = recai_installed_pm.registry().all()
    assert {e.plugin.distribution for e in entries} >= DISTRIBUTIONS
    problems, allowed_seen = [], set()
    for entry in entries:
        model = entry.spec.params_model()
        try:
            schema = model.model_json_schema(mode="validation")
        except Exception as e:  # noqa: BLE001 - a model the walk cannot read is a failure too
            problems.append(f"{entry.name}: no JSON schema to check ({type(e).__name__}: {e})")
            continue
        for path in unbounded(schema):
            if (entry.name, path) in ALLOWED:
                allowed_seen.add((entry.name, path))
            elif not kernel_seed(model, path):
                problems.append(f"{entry.name} ({entry.plugin.label}): {path}")
    assert not problems, "numbers without an upper bound:\n" + "\n".join(problems)
    stale = set(ALLOWED) - allowed_seen
    assert not stale, f"allow-list entries that are bounded or gone now: {sorted(stale)}"


# -- the red team's dataset case ------------------------------------------------------------------------
def test_datasets_stats_of_a_huge_synthetic_dataset_exits_2_naming_the_param(
    recai_installed_pm: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["datasets", "stats", "synthetic.v1", "-p", "n_users=100000000000000"]
    start = time.perf_counter()
    code = cli.main(argv)
    took = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2, err
    assert "n_users" in err and "10000000" in err and "Traceback" not in err, err
    assert took < 1.0, f"{took:.2f} s"  # measured 0.01 s
    # the same in a process of its own (was MemoryError, exit 1)
    proc = subprocess.run(
        [sys.executable, "-m", "recai", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert "n_users" in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr


def test_a_synthetic_dataset_of_too_many_events_is_refused_across_fields(
    recai_installed_pm: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["datasets", "stats", "synthetic.v1", "-p", "n_users=10000000", "-p", "mean_length=11"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "mean_length" in err and "110,000,000 interactions" in err, err


# -- hostile recipes over different plugins' components: check and run refuse alike ---------------------
DATA = '[components.data]\nuse = "synthetic.v1"\nparams = { n_users = 30, n_items = 20 }\n'


def _model_and_eval(use: str, params: str) -> str:
    return (
        f'{DATA}[components.m]\nuse = "{use}"\nparams = {{ {params} }}\n'
        '[components.e]\nuse = "ranking.v1"\nparams = { dataset = "data", models = ["m"] }\n'
    )


def _llm_task(llm: str, task_params: str) -> str:
    return (
        f'{DATA}[components.llm]\nuse = "hf.v1"\nparams = {{ {llm} }}\n'
        '[components.e]\nuse = "llm-ranking.v1"\n'
        f'params = {{ dataset = "data", llm = "llm", {task_params} }}\n'
    )


CASES = {
    # recipe text with {v}; the bad value; a good value; the key the error names
    "synthetic n_users": (
        '[components.data]\nuse = "synthetic.v1"\nparams = { n_users = {v} }\n'
        '[components.m]\nuse = "random.v1"\n'
        '[components.e]\nuse = "ranking.v1"\nparams = { dataset = "data", models = ["m"] }\n',
        "100000000000000",
        "30",
        "components.data.params.n_users",
    ),
    "random n_items": (_model_and_eval("random.v1", "n_items = {v}"), "10**12", "5", "n_items"),
    "candidate k beyond 1 + negatives": (
        f'{DATA}[components.m]\nuse = "random.v1"\n[components.e]\nuse = "candidate-ranking.v1"\n'
        'params = { dataset = "data", models = ["m"], negatives = 9, k = [{v}] }\n',
        "1000000000000",
        "10",
        "components.e.params.k",
    ),
    "bpr factors": (_model_and_eval("bpr.v1", "factors = {v}"), "1000000000", "8", "factors"),
    "bpr one batch too big": (
        _model_and_eval("bpr.v1", "factors = 4096, batch_size = 1000000, negatives = {v}"),
        "1000",
        "1",
        "components.m.params.negatives",
    ),
    "sasrec heads not dividing hidden": (
        _model_and_eval("sasrec.v1", "hidden = 64, heads = {v}"),
        "3",
        "4",
        "components.m.params.heads",
    ),
    "sasrec attention too big": (
        _model_and_eval("sasrec.v1", "max_len = 10000, batch_size = {v}"),
        "10000",
        "1",
        "components.m.params.batch_size",
    ),
    "ease max_items": (_model_and_eval("ease.v1", "max_items = {v}"), "10**12", "100", "max_items"),
    "itemknn neighbors": (
        _model_and_eval("itemknn.v1", "neighbors = {v}"),
        "9223372036854775807",
        "10",
        "neighbors",
    ),
    "embedding index nlist": (
        _model_and_eval("embedding.v1", 'index = { kind = "ivf", nlist = {v} }'),
        "10**12",
        "64",
        "components.m.params.index.nlist",
    ),
    "embedding batch": (
        _model_and_eval("embedding.v1", "batch_size = {v}"),
        "1000000000",
        "32",
        "batch_size",
    ),
    "recency half life": (
        _model_and_eval("recency-popularity.v1", "half_life_days = {v}"),
        "1e300",
        "7",
        "half_life_days",
    ),
    "llm task k": (_llm_task("", "k = [{v}]"), "1000000000000", "5", "components.e.params.k[0]"),
    "llm task 33 cut-offs": (
        _llm_task("", "k = [{v}]"),
        ", ".join(["1"] * 33),
        "1, 5",
        "components.e.params.k",
    ),
    "llm task samples": (_llm_task("", "samples = {v}"), "10**15", "10", "samples"),
    "llm task retries": (_llm_task("", "retries = {v}"), "1000000", "2", "retries"),
    "hf max_tokens": (_llm_task("max_tokens = {v}", "samples = 5"), "10**12", "64", "max_tokens"),
    "openai timeout": (
        f'{DATA}[components.llm]\nuse = "openai.v1"\nparams = {{ model = "m", timeout = {{v}} }}\n'
        '[components.e]\nuse = "llm-ranking.v1"\nparams = { dataset = "data", llm = "llm" }\n',
        "1e12",
        "30",
        "components.llm.params.timeout",
    ),
    "embedding tasks bootstrap": (
        f'{DATA}[components.m]\nuse = "embedding.v1"\n[components.e]\nuse = "embedding.tasks.v1"\n'
        'params = { dataset = "data", retrievers = ["m"], bootstrap = {v} }\n',
        "1000000000",
        "100",
        "components.e.params.bootstrap",
    ),
}


def _value(text: str) -> str:
    return str(eval(text)) if "**" in text else text  # noqa: S307 - our own literals


@pytest.mark.parametrize("case", list(CASES))
def test_check_and_run_refuse_an_unbounded_value_naming_its_key(
    recai_installed_pm: PluginManager,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    template, bad, good, key = CASES[case]
    path = tmp_path / "hostile.toml"
    path.write_text(template.replace("{v}", _value(good)))
    code = cli.main(["recipe", "check", str(path)])
    assert code == 0, capsys.readouterr()  # the recipe is sound but for the value
    capsys.readouterr()
    path.write_text(template.replace("{v}", _value(bad)))
    texts = []
    for argv in (["recipe", "check", str(path)], ["run", str(path), "--out", str(tmp_path / "o")]):
        start = time.perf_counter()
        code = cli.main(argv)
        took = time.perf_counter() - start
        out, err = capsys.readouterr()
        text = out + err
        assert code == 2, f"{argv[0]}: exit {code}: {text}"
        assert "components." in text and key in text and str(path) in text, text
        assert "Traceback" not in text and "internal error" not in text, text
        assert took < 5.0, f"{argv[0]} took {took:.2f} s"  # measured well under 1 s
        texts.append(text)
    assert not (tmp_path / "o").exists()
    assert texts[0].splitlines()[:2] == texts[1].splitlines()[:2]
