"""llm-ranking.v1's generation mode under the JSON schema of each prompt's candidate titles
(``constrain``), against backends that take ``json_schema`` and answer the way a constrained
small model does: the titles in some order, repeats, a reply cut by max_tokens, a reply the
backend gave up on after its repairs.

Uses the six-user movie fixture of test_llm_tasks (five events each, the last held out)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from test_llm_tasks import TARGET, TITLES, candidates_in, ctx_for, make_dataset, user_of

import recai
from recai.errors import ParamsError, RecaiError
from recai.types import Completion, Message
from recai_eval.llm.constrained import (
    KEY,
    UNIQUE_ITEMS,
    ground_in_candidates,
    ranking_of,
    ranking_schema,
    read_titles,
)
from recai_eval.llm.ranking import LLMRankingEvaluator

N = 10


@pytest.fixture(scope="module")
def source() -> recai.DatasetSource:
    return recai.DatasetSource.of(make_dataset())


class GaveUp(RecaiError):
    """What recai-hf's StructuredOutputError looks like to the task: it keeps the replies."""

    def __init__(self, completions: list[Completion]) -> None:
        super().__init__("1 of 1 replies are not valid JSON for the schema")
        self.completions = completions


def answer(user: int, shown: list[str]) -> str | Exception:
    """What each user's model writes, from the titles the prompt shows (in their order)."""
    target = TITLES[TARGET[user]]
    rest = [t for t in shown if t != target]
    if user == 0:  # a clean ranking: the target first, the rest reversed
        return json.dumps({KEY: [target, *rest[::-1]]})
    if user == 1:  # a small model's loop: two titles over and over, the target not among them
        return json.dumps({KEY: [rest[0], rest[1]] * (N // 2)})
    if user == 2:  # cut by max_tokens after three titles, the target third
        return '{"ranking":["' + rest[3] + '","' + rest[2] + '","' + target + '","' + rest[0][:4]
    if user == 3:  # the backend gave up after its repairs; its last reply names the target 2nd
        return GaveUp([Completion('{"ranking":["' + rest[5] + '","' + target + '"]}', model="m")])
    if user == 4:
        return json.dumps({KEY: []})  # nothing to read: unusable
    return ConnectionError("server went away")  # user 5: no answer


class Constrained(recai.LLMBackend):
    """A backend that takes json_schema: answers by :func:`answer`, keeps every schema."""

    capabilities = frozenset({"json_schema"})

    def __init__(self) -> None:
        self._asked: list[tuple[int, list[Message], dict[str, Any] | None]] = []

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        msgs = list(messages)
        user = user_of(msgs[-1].content)
        schema = options.get("json_schema")
        self._asked.append((user, msgs, schema))
        got = answer(user, candidates_in(msgs[-1].content))
        if isinstance(got, Exception):
            raise got
        return Completion(got, model="m")


def ndcg(rank: int) -> float:
    return 1 / math.log2(rank + 2) if rank < 10 else 0.0


def run(llm: Any, source: Any, tmp_path: Path, **params: Any) -> Any:
    task = LLMRankingEvaluator(
        source, llm, samples=6, n_candidates=N, bootstrap=0, max_failed_share=0.5, **params
    )
    return task.evaluate(ctx_for(tmp_path))


def records_of(report: Any) -> dict[str, dict[str, Any]]:
    lines = Path(report.info["results_file"]).read_text().splitlines()
    return {r["user"]: r for r in map(json.loads, lines)}


def test_each_prompt_gets_the_schema_of_its_own_candidate_titles(
    source: Any, tmp_path: Path
) -> None:
    llm = Constrained()
    report = run(llm, source, tmp_path)
    assert len(llm._asked) == 6
    for _, msgs, schema in llm._asked:
        shown = candidates_in(msgs[-1].content)
        assert schema == ranking_schema(shown)
        items = schema["properties"][KEY]
        assert items["items"]["enum"] == shown and items["minItems"] == items["maxItems"] == N
        assert '"ranking"' in msgs[-1].content  # the JSON prompt, not the numbered-list one
    assert report.info["constrained"] is True
    assert "enum" in report.info["protocol"]


def test_answers_are_read_as_full_rankings_by_hand(source: Any, tmp_path: Path) -> None:
    llm = Constrained()
    report = run(llm, source, tmp_path)
    shown = {u: candidates_in(m[-1].content) for u, m, _ in llm._asked}
    recs = records_of(report)
    # u1 named two titles: the other eight follow in their shown order, the target among them
    target1 = TITLES[TARGET[1]]
    rest1 = [t for t in shown[1] if t != target1]
    order1 = [rest1[0], rest1[1], *[t for t in shown[1] if t not in rest1[:2]]]
    ranks = {0: 0, 1: order1.index(target1), 2: 2, 3: 1, 4: int(1e9)}
    for u, rank in ranks.items():
        if u == 4:
            continue
        rec = recs[f"u{u}"]
        assert rec["rank"] == rank
        assert sorted(rec["ranking"]) == sorted(TITLES.index(t) for t in shown[u])  # all N
    assert recs["u1"]["appended"] == N - 2 and recs["u0"]["appended"] == 0
    target2 = TITLES[TARGET[2]]
    rest2 = [t for t in shown[2] if t != target2]
    assert recs["u2"]["mentions"] == [rest2[3], rest2[2], target2]  # the unfinished 4th: dropped
    assert recs["u2"]["appended"] == N - 3
    row = report.metrics["Constrained"]
    measured = [0, 1, 2, 3, 4]  # u5 got no answer: left out
    assert row["NDCG@10"] == pytest.approx(sum(ndcg(ranks[u]) for u in measured) / 5)
    assert row["Hit@1"] == pytest.approx(1 / 5)
    assert row["complete_rate"] == pytest.approx(1 / 5)  # u0 only named all ten on its own
    assert row["duplicate_rate"] == pytest.approx(1 / 5)  # u1
    assert row["out_of_candidates_rate"] == row["in_history_rate"] == 0.0
    assert row["nonexistent_rate"] == 0.0
    assert row["failure_rate"] == pytest.approx(1 / 5)  # u4: nothing to read
    # distinct candidates named by the model itself: 10, 2, 3, 2 and u4's none
    assert report.info["candidates_named"] == {"Constrained": (10 + 2 + 3 + 2 + 0) / 5}
    failures = {(f["user"], f["stage"], f["answered"]) for f in report.info["failed_samples"]}
    assert failures == {("u4", "parse", True), ("u5", "answer", False)}


def test_a_reply_the_backend_gave_up_on_is_the_models_answer_and_cached(
    source: Any, tmp_path: Path
) -> None:
    first = run(Constrained(), source, tmp_path)
    assert records_of(first)["u3"]["rank"] == 1
    again_llm = Constrained()
    again = run(again_llm, source, tmp_path)
    assert [u for u, _, _ in again_llm._asked] == [5]  # only the unanswered one is asked again
    assert again.metrics == first.metrics
    cache = (tmp_path / "run" / "llm-cache").glob("*.jsonl")
    lines = [json.loads(x) for f in cache for x in f.read_text().splitlines()]
    assert any("schema_error" in rec for rec in lines)


def test_never_asks_in_words_and_caches_apart(source: Any, tmp_path: Path) -> None:
    run(Constrained(), source, tmp_path)
    llm = Constrained()
    report = run(llm, source, tmp_path, constrain="never")
    assert len(llm._asked) == 6  # nothing from the constrained answers' cache
    assert all(schema is None for _, _, schema in llm._asked)
    assert all("numbered from 1" in m[-1].content for _, m, _ in llm._asked)
    assert report.info["constrained"] is False


def test_a_backend_without_json_schema_is_asked_in_words(source: Any, tmp_path: Path) -> None:
    class Plain(Constrained):
        capabilities = frozenset()

        def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
            assert "json_schema" not in options
            shown = candidates_in(list(messages)[-1].content)
            return Completion("\n".join(f"{i}. {t}" for i, t in enumerate(shown, 1)), model="m")

    report = run(Plain(), source, tmp_path)
    assert report.info["constrained"] is False
    assert report.metrics["Plain"]["complete_rate"] == 1.0  # every answer lists all ten
    assert report.info["candidates_named"] == {"Plain": 10.0}
    with pytest.raises(RecaiError, match=r"constrain = 'always'.*'json_schema' is not in"):
        run(Plain(), source, tmp_path / "b", constrain="always")


def test_uniqueitems_is_asked_only_of_a_backend_that_enforces_it(
    source: Any, tmp_path: Path
) -> None:
    class Unique(Constrained):
        capabilities = frozenset({"json_schema", UNIQUE_ITEMS})

    plain = Constrained()
    run(plain, source, tmp_path)
    assert all("uniqueItems" not in s["properties"][KEY] for _, _, s in plain._asked)
    llm = Unique()
    report = run(llm, source, tmp_path)  # the same cache folder: the schema is in the key
    assert len(llm._asked) == 6
    for _, msgs, schema in llm._asked:
        shown = candidates_in(msgs[-1].content)
        assert schema == ranking_schema(shown, unique=True)
        ranking = schema["properties"][KEY]
        assert ranking["uniqueItems"] is True and ranking["minItems"] == N
    assert report.info["constrained"] is True


def test_a_unique_schema_of_shared_titles_asks_one_item_per_distinct_title() -> None:
    schema = ranking_schema(["Up", "Heat", "Up"], unique=True)
    ranking = schema["properties"][KEY]
    assert ranking["items"]["enum"] == ["Up", "Heat"]
    assert ranking["minItems"] == ranking["maxItems"] == 2  # three would be unsatisfiable
    assert ranking_schema(["Up", "Heat", "Up"])["properties"][KEY]["minItems"] == 3


def test_constrain_is_for_generation_mode_only(source: Any) -> None:
    with pytest.raises(ParamsError, match="constrain"):
        LLMRankingEvaluator(source, Constrained(), mode="score", constrain="never")
    with pytest.raises(ParamsError, match="constrain"):
        LLMRankingEvaluator(source, Constrained(), constrain="sometimes")


def test_titles_two_candidates_share_name_both() -> None:
    class S:  # the bits of a Session that grounding reads
        class catalog:  # noqa: N801
            @staticmethod
            def title(i: int) -> str:
                return {10: "Twin (1990)", 11: "Twin (1990)", 12: "Solo (1991)"}[i]

        class matcher:  # noqa: N801
            @staticmethod
            def ground(text: str) -> tuple[int | None, float]:
                return (99, 0.9) if text == "Elsewhere" else (None, 0.0)

    got = ground_in_candidates(S(), ["Twin (1990)", "Twin (1990)", "Twin (1990)"], [10, 11, 12])  # type: ignore[arg-type]
    assert got == [10, 11, 10]  # the third is a repeat
    assert ground_in_candidates(S(), ["Elsewhere", "Nowhere"], [10, 11, 12]) == [99, None]  # type: ignore[arg-type]
    assert ranking_of([99, 12, None, 12], [10, 11, 12]) == ([12, 10, 11], 2)
    assert ranking_schema(["Twin (1990)", "Twin (1990)", "Solo (1991)"])["properties"][KEY][
        "items"
    ]["enum"] == ["Twin (1990)", "Solo (1991)"]


@pytest.mark.parametrize(
    ("text", "titles"),
    [
        ('{"ranking": ["A (1990)", "B \\"Q\\" (1991)"]}', ["A (1990)", 'B "Q" (1991)']),
        ('["A (1990)", "B (1991)"]', ["A (1990)", "B (1991)"]),
        ('Sure: {"Ranking": ["A (1990)"]}', ["A (1990)"]),
        ('{"ranking": ["A (1990)", "B', ["A (1990)"]),
        ("no JSON here", []),
        ("", []),
    ],
)
def test_read_titles(text: str, titles: list[str]) -> None:
    assert read_titles(text) == titles


@pytest.mark.slow
@pytest.mark.integration
def test_smollm2_under_the_schema_names_only_candidates(tmp_path: Path) -> None:
    """The embedded 135M model through hf.v1 (recai-hf), 3 users of ML-100K (or synthetic
    titles): every title it writes is one of the prompt's candidates."""
    registry = recai.get_plugin_manager().registry()
    if "hf.v1" not in registry:
        pytest.skip("recai-hf (hf.v1) is not installed")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    llm = recai.create("llm_backend", "hf.v1", threads=1)
    try:
        data = recai.create("dataset", "movielens-100k.v1")
    except (recai.RecaiError, KeyError):
        from recai.data import synthetic_dataset

        data = recai.DatasetSource.of(synthetic_dataset(n_users=40, n_items=80, seed=0))
    report = LLMRankingEvaluator(
        data, llm, samples=3, max_history=10, bootstrap=0, max_tokens=400, concurrency=1
    ).evaluate(ctx_for(tmp_path))
    row = next(iter(report.metrics.values()))
    assert report.info["constrained"] is True
    assert row["failure_rate"] == 0.0 and report.info["unanswered_samples"] == 0
    assert row["out_of_candidates_rate"] == 0.0 and row["in_history_rate"] == 0.0
    for rec in records_of(report).values():
        assert set(rec["items"]) <= set(rec["candidates"])
        assert sorted(rec["ranking"]) == sorted(rec["candidates"])


class EnumEcho(recai.LLMBackend):
    """A served model that decodes under a JSON schema: writes the schema's enum reversed."""

    capabilities = frozenset({"json_schema"})

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        schema = options.get("json_schema")
        assert schema is not None, "asked in words"
        titles = schema["properties"][KEY]["items"]["enum"]
        return Completion(json.dumps({KEY: titles[::-1]}), model="echo")


def test_through_openai_v1_the_schema_travels_as_response_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real HTTP: openai.v1 against recai-serve's LLMServer on loopback; the schema arrives as
    response_format, the served model decodes under it, every answer is a whole ranking."""
    server_mod = pytest.importorskip("recai_serve.server", reason="needs recai-serve")
    if "openai.v1" not in recai.get_plugin_manager().registry():
        pytest.skip("needs recai-openai (openai.v1)")
    bodies: list[dict[str, Any]] = []

    def keep(app: Any) -> Any:
        async def kept(scope: Any, receive: Any, send: Any) -> None:
            chunks: list[bytes] = []

            async def reading() -> Any:
                message = await receive()
                if message["type"] == "http.request":
                    chunks.append(message.get("body", b""))
                return message

            await app(scope, reading, send)
            if scope["type"] == "http" and scope["path"].endswith("/completions"):
                bodies.append(json.loads(b"".join(chunks)))

        return kept

    with server_mod.LLMServer({"echo": EnumEcho()}, middleware=[keep]) as server:
        monkeypatch.setenv("RECAI_TEST_CONSTRAINED_KEY", "sk-local")
        recipe = {
            "name": "constrained",
            "components": {
                "data": {"use": "synthetic.v1", "params": {"n_users": 30, "n_items": 50}},
                "llm": {
                    "use": "openai.v1",
                    "params": {
                        "model": "echo",
                        "base_url": server.base_url,
                        "api_key_env": "RECAI_TEST_CONSTRAINED_KEY",
                        "max_retries": 0,
                    },
                },
                "rank": {
                    "use": "llm-ranking.v1",
                    "params": {"dataset": "data", "llm": "llm", "samples": 4, "n_candidates": 8},
                },
            },
            "run": {"stages": ["rank"], "seed": 0},
        }
        result = recai.run(recai.load_recipe(recipe), tmp_path / "run", progress=False)
    report = result.reports["rank"]
    row = next(iter(report.metrics.values()))
    assert report.info["constrained"] is True and report.info["measured_samples"] == 4
    assert row["complete_rate"] == 1.0 and row["failure_rate"] == 0.0
    assert len(bodies) == 4
    for body in bodies:
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema"
        enum = fmt["json_schema"]["schema"]["properties"][KEY]["items"]["enum"]
        assert enum == candidates_in(body["messages"][-1]["content"]) and len(enum) == 8
    for rec in records_of(report).values():  # the reversed enum, as the model wrote it
        assert rec["ranking"] == rec["candidates"][::-1] and rec["appended"] == 0
