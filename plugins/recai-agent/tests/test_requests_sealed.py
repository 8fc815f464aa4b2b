"""The sealed request family: its own templates, year phrasings, genre synonyms, popularity
words and seed titles, none shared with train or test; gold plans that their targets ground
back to; and train and test generating exactly what they did before the family was added."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from agentkit import film_catalog  # type: ignore[import-not-found,unused-ignore]  # beside

from recai.data import Dataset
from recai.data.grounding import Grounder
from recai_agent.plan import ORDER, validate_plan
from recai_agent.plannereval import planner_schema
from recai_agent.requests import (
    _POPULAR,
    _SEALED_POPULAR,
    _SEALED_UNPOPULAR,
    _UNPOPULAR,
    GENRE_WORDS,
    KINDS,
    MAX_TITLES,
    SEALED_GENRE_WORDS,
    SEALED_TEMPLATES,
    SEALED_YEAR_PHRASES,
    TEMPLATES,
    YEAR_PHRASES,
    Request,
    Split,
    _Vocab,
    generate,
    main,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def ml(ml_dataset: Dataset) -> Dataset:
    return ml_dataset


@pytest.fixture(scope="module")
def counts(ml_counts: np.ndarray) -> np.ndarray:
    return ml_counts


@pytest.fixture(scope="module")
def sealed(ml: Dataset, counts: np.ndarray) -> list[Request]:
    return generate(ml.catalog, "sealed", 600, seed=0, counts=counts)


@pytest.fixture(scope="module")
def others(ml: Dataset, counts: np.ndarray) -> list[Request]:
    """The test set the benchmark measures and a large training set."""
    return [
        *generate(ml.catalog, "test", 600, seed=0, counts=counts),
        *generate(ml.catalog, "train", 3000, seed=1, counts=counts),
    ]


def _fingerprint(reqs: list[Request]) -> str:
    h = hashlib.sha256()
    for r in reqs:
        h.update((json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True) + "\n").encode())
    return h.hexdigest()[:16]


#: What train and test generated before the sealed family existed (commit 6a9edf4): adding it
#: must not move a single byte of them. Recompute only for a deliberate change of train/test.
BEFORE_ML: dict[tuple[Split, int], str] = {
    ("train", 0): "a1e6a73f214f8676",
    ("train", 1): "b93a891ef95a931f",
    ("train", 2): "dbf204113e2ed146",
    ("test", 0): "bf461e3abf52351a",
    ("test", 1): "2214dbe9a839450a",
    ("test", 2): "b565a6db8060c389",
}
BEFORE_FILMS: dict[tuple[Split, int], str] = {
    ("train", 0): "65082e4c9258dc34",
    ("train", 1): "677b4092a98db4ea",
    ("train", 2): "254882eb3818875a",
    ("test", 0): "9a05f7ce419865bb",
    ("test", 1): "659373a3316ac03b",
    ("test", 2): "23d44451ef19b274",
}


def test_train_and_test_generate_what_they_did_before_the_sealed_family(
    ml: Dataset, counts: np.ndarray
) -> None:
    for (split, seed), want in BEFORE_ML.items():
        got = _fingerprint(generate(ml.catalog, split, 300, seed=seed, counts=counts))
        assert got == want, (split, seed)
    films = film_catalog()
    for (split, seed), want in BEFORE_FILMS.items():
        assert _fingerprint(generate(films, split, 100, seed=seed)) == want, (split, seed)


def test_the_sealed_set_has_600_distinct_requests_of_every_kind(sealed: list[Request]) -> None:
    assert len(sealed) == 600
    assert len({r.request.lower() for r in sealed}) == 600
    assert {r.split for r in sealed} == {"sealed"}
    assert all(r.id.startswith("sealed-0-") for r in sealed)
    assert {r.template.split("/")[1] for r in sealed} == {"2"}
    kinds = Counter(r.kind for r in sealed)
    assert set(kinds) == set(KINDS), kinds
    assert all(kinds[k] >= 5 for k in KINDS), kinds
    used = {r.template for r in sealed}
    assert len(used) >= 0.9 * sum(len(t) for t in SEALED_TEMPLATES.values())


def test_sealed_gold_plans_follow_the_tool_order_and_targets_ground_back(
    ml: Dataset, sealed: list[Request]
) -> None:
    schema = planner_schema(ml.catalog)
    for r in sealed:
        tools = [s["tool"] for s in r.plan["steps"]]
        if r.kind == "chit_chat":
            assert tools == []
            continue
        assert tools == sorted(tools, key=ORDER.index) and tools[-2:] == ["ranking", "map"]
        got, problems = validate_plan(r.target, schema, ml.catalog)
        assert got is not None, (r.request, problems)
        assert got.to_dict() == r.plan, r.request


def test_sealed_popularity_words_set_the_ranking(sealed: list[Request]) -> None:
    pops = [r for r in sealed if r.kind == "popularity"]
    assert len(pops) >= 20
    for r in pops:
        rank = next(s["input"] for s in r.plan["steps"] if s["tool"] == "ranking")
        hidden = re.search(r"deep cuts|nobody has|under the radar|beaten path", r.request, re.I)
        assert rank == (
            {"by": "preference", "mode": "diversity"}
            if hidden
            else {"by": "popularity", "mode": "accuracy"}
        ), r.request
    assert any(r.slots["popular"] is False for r in pops)
    assert any(r.slots["popular"] is True for r in pops)


def test_sealed_year_phrasings_give_their_range(sealed: list[Request]) -> None:
    seen: Counter[str] = Counter()
    for r in sealed:
        low = r.request.lower()
        if r.kind == "misspelling" or not r.plan["steps"]:
            continue
        hard: dict[str, Any] = next(
            (s["input"] for s in r.plan["steps"] if s["tool"] == "hard_filter"), {}
        )
        lo, hi = hard.get("year_min"), hard.get("year_max")
        if m := re.search(r"\b(\d{4}) (?:and up|and beyond)\b", low):
            assert (lo, hi) == (int(m.group(1)), None), r.request
            seen["since"] += 1
        if m := re.search(r"\b(\d{4}) (?:or before|and older)\b", low):
            assert (lo, hi) == (None, int(m.group(1))), r.request
            seen["until"] += 1
        if m := re.search(r"\bpredating (\d{4})\b|\bbefore the year (\d{4})\b", low):
            assert (lo, hi) == (None, int(m.group(1) or m.group(2)) - 1), r.request
            seen["before"] += 1
        if m := re.search(r"\bfrom (\d{4}) till (\d{4})\b|\b(\d{4}) thru (\d{4})\b", low):
            a, b = (int(x) for x in m.groups() if x)
            assert (lo, hi) == (a, b), r.request
            seen["between"] += 1
        if m := re.search(r"\bfrom the (\d\d)'s\b|\bof (\d{4})s vintage\b", low):
            assert hi is not None and lo is not None and hi - lo == 9 and lo % 10 == 0
            assert str(lo).endswith(m.group(1) or m.group(2)), r.request
            seen["decade"] += 1
        if re.search(r"\bearly-\d\ds\b|\bfrom the start of the\b", low):
            assert lo is not None and hi == lo + 3 and lo % 10 == 0, r.request
            seen["early"] += 1
        if re.search(r"\blate-\d{4}s\b|\btail end of the\b", low):
            assert hi is not None and lo == hi - 3 and lo % 10 == 6, r.request
            seen["late"] += 1
    assert all(seen[k] >= 3 for k in ("since", "until", "before", "between", "decade")), seen
    assert seen["early"] + seen["late"] >= 3, seen


def test_sealed_shares_no_template_phrasing_synonym_or_popularity_word() -> None:
    def norm(t: str) -> str:
        return t.lower().strip(" ?!.")

    old = {norm(t) for fams in TEMPLATES.values() for fam in fams for t in fam}
    for kind, templates in SEALED_TEMPLATES.items():
        assert len(templates) == len(set(templates)), kind
        assert not {norm(t) for t in templates} & old, kind
    assert set(SEALED_TEMPLATES) == set(TEMPLATES)
    old_years = {p for fams in YEAR_PHRASES.values() for fam in fams for p in fam}
    assert set(SEALED_YEAR_PHRASES) == set(YEAR_PHRASES)
    for kind, phrases in SEALED_YEAR_PHRASES.items():
        assert phrases and not set(phrases) & old_years, kind
        # no train or test phrasing inside a sealed one, nor the other way round
        for p in phrases:
            assert not any(q in p or p in q for q in old_years), (kind, p)
    old_words = {w for adj, noun in GENRE_WORDS.values() for w in (*adj, *noun)}
    new_words = [w for adj, noun in SEALED_GENRE_WORDS.values() for w in (*adj, *noun)]
    assert len(new_words) == len(set(new_words))
    assert not set(new_words) & old_words
    assert set(SEALED_GENRE_WORDS) == set(GENRE_WORDS)
    for p in (*_SEALED_POPULAR, *_SEALED_UNPOPULAR):
        assert not any(p in q or q in p for q in (*_POPULAR, *_UNPOPULAR)), p
        assert not any(p in t.lower() for fams in TEMPLATES.values() for f in fams for t in f)


def _year_pattern(phrase: str) -> re.Pattern[str]:
    fill = {"a": r"\d{4}", "b": r"\d{4}", "d2": r"\d\d", "d4": r"\d{4}", "w": r"[a-z]+ies"}
    body = re.escape(phrase).replace(r"\{", "{").replace(r"\}", "}").format(**fill)
    return re.compile(r"\b" + body + r"(?![\w'-])")


def test_sealed_requests_share_no_text_title_or_year_phrasing_with_train_or_test(
    sealed: list[Request], others: list[Request]
) -> None:
    assert not {r.request.lower() for r in sealed} & {r.request.lower() for r in others}

    def titles(reqs: list[Request]) -> set[str]:
        return {t for r in reqs for t in r.slots["seeds"] + r.slots["unwanted"]}

    assert titles(sealed) and not titles(sealed) & titles(others)
    for fams in YEAR_PHRASES.values():
        for phrase in (*fams[0], *fams[1]):
            pattern = _year_pattern(phrase)
            assert not any(pattern.search(r.request.lower()) for r in sealed), phrase
    for phrases in SEALED_YEAR_PHRASES.values():
        for phrase in phrases:
            pattern = _year_pattern(phrase)
            assert not any(pattern.search(r.request.lower()) for r in others), phrase
            assert any(pattern.search(r.request.lower()) for r in sealed), phrase


def test_sealed_titles_are_the_next_best_known_after_train_and_test(
    ml: Dataset, counts: np.ndarray
) -> None:
    grounder = Grounder(ml.catalog)
    splits: tuple[Split, ...] = ("train", "test", "sealed")
    vocab = {s: _Vocab(ml.catalog, s, grounder, counts.astype(float)) for s in splits}
    ids = {s: {i for i, _ in v.titles} for s, v in vocab.items()}
    assert len(ids["sealed"]) >= 100
    assert not ids["sealed"] & (ids["train"] | ids["test"])
    assert not ids["train"] & ids["test"]
    # every sealed seed is less known than every train or test seed
    least = min(counts[i] for i in ids["train"] | ids["test"])
    assert max(counts[i] for i in ids["sealed"]) <= least
    assert len(ids["train"] | ids["test"]) == MAX_TITLES


def test_a_small_catalog_gets_a_sealed_set_with_held_out_titles() -> None:
    films = film_catalog()
    reqs = generate(films, "sealed", 100, seed=0)
    assert len(reqs) == 100 and {r.kind for r in reqs} == set(KINDS)
    train_titles = {t for r in generate(films, "train", 300, seed=0) for t in r.slots["seeds"]}
    sealed_titles = {t for r in reqs for t in r.slots["seeds"] + r.slots["unwanted"]}
    assert sealed_titles and all(t in films.titles for t in sealed_titles)
    assert not sealed_titles & train_titles  # too small for its own slice: the test half


def test_sealed_generation_is_deterministic_by_seed(
    ml: Dataset, counts: np.ndarray, sealed: list[Request]
) -> None:
    again = generate(ml.catalog, "sealed", 600, seed=0, counts=counts)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in sealed]
    other = generate(ml.catalog, "sealed", 100, seed=1, counts=counts)
    assert [r.request for r in other] != [r.request for r in sealed[:100]]


def test_the_command_writes_a_sealed_set_and_rejects_an_unknown_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sealed.jsonl"
    assert main([str(out), "--split", "sealed", "--n", "20"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 20 and {r["split"] for r in rows} == {"sealed"}
    capsys.readouterr()
    assert main([str(tmp_path / "x.jsonl"), "--split", "dev"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'dev'" in err and "sealed" in err, err
    assert not (tmp_path / "x.jsonl").exists()


def test_the_benchmark_rejects_an_unknown_split_in_one_line() -> None:
    got = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_planner.py"), "--split", "dev"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert got.returncode == 2, got.stderr
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and "'dev'" in lines[0] and "sealed" in lines[0], got.stderr
