"""RecLM-emb task generators: seeded, condition-violating hard negatives, no leakage into tests."""

from __future__ import annotations

import json

import numpy as np
import pytest

import recai
from recai import cli
from recai.data import synthetic_dataset
from recai.errors import DataError, RecaiError
from recai.types import ItemList
from recai_emb.evaluate import bootstrap_mean, evaluate_examples, example_metrics
from recai_emb.taskdata import Condition, TaskData, heldout_items, short_title
from recai_emb.tasks import (
    RULE_TASKS,
    TASKS,
    Example,
    generate,
    misspell,
    read_examples,
    write_examples,
)

ITEM_TASKS = ("fa2i", "sa2i", "nm2i", "vc2i", "na2i", "t2i")
HISTORY_TASKS = ("uh2i", "i2i", "uq2i")


@pytest.fixture(scope="module")
def data() -> TaskData:
    return TaskData.from_dataset(
        synthetic_dataset(n_users=80, n_items=60, seed=3), item_holdout=0.25
    )


def rows(examples: list[Example]) -> list[str]:
    return [json.dumps(e.to_json(), sort_keys=True) for e in examples]


def test_every_rule_task_is_registered_and_makes_examples(data):
    assert set(RULE_TASKS) <= set(TASKS)
    examples, report = generate(data, RULE_TASKS, 20, seed=0, negatives=2)
    for t in RULE_TASKS:
        assert report[t]["made"] == 20, (t, report[t])
        made = [e for e in examples if e.task == t]
        assert all(e.query.strip() for e in made)
        assert all(e.pos not in e.negs for e in made)
        for e in made:
            if e.condition is None or t == "uq2i":
                assert len(e.negs) == 2, t
            else:  # fewer only when fewer training items violate the condition
                violators = ~e.condition.mask(data) & ~data.heldout
                assert len(e.negs) == min(2, int(violators.sum())), (t, e.query)


def test_same_seed_same_examples_other_seed_other_examples(data):
    a, _ = generate(data, RULE_TASKS, 15, seed=7, negatives=2)
    b, _ = generate(data, RULE_TASKS, 15, seed=7, negatives=2)
    c, _ = generate(data, RULE_TASKS, 15, seed=8, negatives=2)
    assert rows(a) == rows(b)
    assert rows(a) != rows(c)
    # a task's examples do not depend on which other tasks are generated with it
    alone, _ = generate(data, ["na2i"], 15, seed=7, negatives=2)
    assert rows(alone) == rows([e for e in a if e.task == "na2i"])


def test_hard_negatives_violate_the_condition_and_positives_meet_it(data):
    examples, _ = generate(data, RULE_TASKS, 30, seed=1, negatives=3)
    checked = 0
    for e in examples:
        if e.condition is None:
            continue
        mask = e.condition.mask(data)
        assert mask[e.pos], (e.task, e.query)
        assert not mask[e.negs].any(), (e.task, e.query, e.negs)
        checked += 1
    assert checked >= 4 * 30  # fa2i, sa2i, vc2i, na2i, uq2i all carry conditions


def test_negation_queries_exclude_a_label_the_positive_lacks(data):
    examples, _ = generate(data, ["na2i"], 30, seed=2, negatives=2)
    for e in examples:
        (exc,) = e.condition.exclude
        assert exc in e.query and exc not in data.labels[e.pos]
        assert all(exc in data.labels[n] or not e.condition.mask(data)[n] for n in e.negs)


def test_training_never_touches_held_out_items_or_test_events(data):
    train, _ = generate(data, RULE_TASKS, 40, part="train", seed=0, negatives=2)
    held = set(np.flatnonzero(data.heldout).tolist())
    for e in train:
        if e.task in ITEM_TASKS:
            assert e.pos not in held and not (set(e.negs) & held), e.task
    # history tasks: the target is a later training event of the same user
    for e in train:
        if e.task in HISTORY_TASKS:
            assert e.pos in set(data.split.train.history(e.user).tolist())
    test, _ = generate(data, RULE_TASKS, 40, part="test", seed=0)
    for e in test:
        if e.task in ITEM_TASKS:
            assert e.pos in held
        else:
            assert e.pos == int(data.split.test.history(e.user)[0])
    train_pairs = {(e.user, e.pos) for e in train if e.task in HISTORY_TASKS}
    test_pairs = {(e.user, e.pos) for e in test if e.task in HISTORY_TASKS}
    repeats = {
        (u, i) for u, i in test_pairs if i in set(data.split.train.history(u).tolist())
    }  # a user who had the item before may meet it again; nothing else may be shared
    assert not (train_pairs & test_pairs) - repeats


def test_test_item_queries_ask_about_each_held_out_item_once(data):
    test, report = generate(data, ["t2i"], 1000, part="test", seed=0)
    assert len(test) == int(data.heldout.sum()) == report["t2i"]["made"]
    assert len({e.pos for e in test}) == len(test)


def test_heldout_items_are_seeded():
    a, b = heldout_items(100, 0.2, 1), heldout_items(100, 0.2, 2)
    assert a.sum() == b.sum() == 20
    assert (a == heldout_items(100, 0.2, 1)).all() and (a != b).any()
    with pytest.raises(DataError):
        heldout_items(10, 1.5)


def test_conditions():
    data = TaskData.from_dataset(synthetic_dataset(n_users=20, n_items=15))
    years = data.years
    cond = Condition(year=(2005.0, None))
    assert (cond.mask(data) == (years >= 2005)).all()
    label = sorted(data.labels[0])[0]
    both = Condition(include=(label,), exclude=(label,))
    assert not both.mask(data).any()
    assert Condition.from_dict(cond.to_dict()) == cond


def test_misspellings_and_titles():
    rng = np.random.default_rng(0)
    typos = {misspell("Independence Day", rng) for _ in range(20)}
    assert "Independence Day" not in typos and len(typos) > 5
    assert misspell("Up", rng) == "Up"
    assert short_title("Postino, Il (1994)") == "Il Postino"


def test_write_and_read_examples(tmp_path, data):
    examples, _ = generate(data, ["uh2i", "sa2i"], 5, seed=0)
    path = write_examples(tmp_path / "x.jsonl", examples, data.texts)
    got = read_examples(path)
    assert [r["pos"] for r in got] == [data.texts[e.pos] for e in examples]
    assert [Example.from_json(r).to_json() for r in got] == [e.to_json() for e in examples]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(got[0]) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        read_examples(bad)
    bad.write_text(json.dumps({"query": "q"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: .*pos"):
        read_examples(bad)


def test_unknown_task_is_named(data):
    with pytest.raises(RecaiError, match="Did you mean 'na2i'"):
        generate(data, ["na2"], 3)


def test_tasks_need_columns_the_catalog_has():
    ds = synthetic_dataset(n_users=20, n_items=15)
    ds.catalog.fields.clear()
    data = TaskData.from_dataset(ds)
    examples, report = generate(data, ["sa2i", "vc2i", "t2i"], 5)
    assert "unavailable" in report["sa2i"] and "unavailable" in report["vc2i"]
    assert report["t2i"]["made"] == 5 and len(examples) == 5


def test_command_line(tmp_path, capsys):
    def main(argv):
        return cli.main(["emb", "tasks", *argv])

    assert main(["--dataset", "synthetic.v1", "--out", str(tmp_path), "--per-task", "4"]) == 0
    train = read_examples(tmp_path / "train.jsonl")
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(train) == sum(r["made"] for r in report["train"].values())
    assert main(["--out", str(tmp_path), "--tasks", "nope"]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--per-task", "0"]) == 2
    weighted = tmp_path / "weighted"
    args = ["--dataset", "synthetic.v1", "--out", str(weighted), "--per-task", "4"]
    assert main([*args, "--count", "uh2i=9", "--count", "t2i=0"]) == 0
    made = json.loads((weighted / "report.json").read_text())["train"]
    assert made["uh2i"]["made"] == 9 and made["t2i"]["made"] == 0 and made["i2i"]["made"] == 4
    capsys.readouterr()
    assert main([*args, "--count", "uh2i"]) == 2
    assert "--count wants TASK=N" in capsys.readouterr().err
    assert main([*args, "--count", "uh2j=3"]) == 2
    assert "Did you mean 'uh2i'" in capsys.readouterr().err


def test_counts_weight_the_mix_and_leave_other_tasks_alone(data):
    plain, _ = generate(data, RULE_TASKS, 10, seed=4)
    weighted, report = generate(data, RULE_TASKS, 10, seed=4, counts={"uh2i": 25, "t2i": 3})
    assert report["uh2i"]["made"] == 25 and report["t2i"]["made"] == 3
    assert report["i2i"]["made"] == 10
    same = [e for e in plain if e.task == "i2i"]
    assert rows(same) == rows([e for e in weighted if e.task == "i2i"])
    with pytest.raises(RecaiError, match="not generated: uq2i"):
        generate(data, ["uh2i"], 10, counts={"uq2i": 3})
    with pytest.raises(RecaiError, match="whole numbers"):
        generate(data, ["uh2i"], 10, counts={"uh2i": -1})


# -- evaluation -----------------------------------------------------------------------------------
def test_example_metrics(data):
    e = Example("t2i", "q", pos=3, negs=[], kind="id")
    m = example_metrics(e, [5, 3, 1], data, [1, 10])
    assert m == {
        "hit@1": 0.0,
        "ndcg@1": 0.0,
        "hit@10": 1.0,
        "ndcg@10": pytest.approx(1 / np.log2(3)),
    }
    cond = Condition(include=(sorted(data.labels[0])[0],))
    mask = cond.mask(data)
    good, bad = np.flatnonzero(mask)[:2], np.flatnonzero(~mask)[:2]
    c = Example("sa2i", "q", pos=int(good[0]), negs=[], kind="condition", condition=cond)
    assert example_metrics(c, [*good, *bad], data, [4])["coverage@4"] == 0.5
    assert example_metrics(c, [*good], data, [4])["coverage@4"] == 0.5  # a short list misses


class Oracle(recai.Retriever):
    """Returns a fixed answer per query text, with the excluded items first (to be removed)."""

    def __init__(self, answers):
        self.answers = answers

    def retrieve(self, query, k=10, *, candidates=None):
        return ItemList(self.answers[query.text][:k])


def test_evaluate_examples_removes_excluded_items(data):
    e = Example("uh2i", "history", pos=4, negs=[], exclude=[1, 2])
    vals = evaluate_examples(Oracle({"history": [1, 2, 9, 4]}), [e], data, [2])
    assert vals == [{"hit@2": 1.0, "ndcg@2": pytest.approx(1 / np.log2(3))}]


def test_bootstrap_interval_narrows_with_more_queries():
    rng = np.random.default_rng(0)
    small = bootstrap_mean(rng.random(30) < 0.5, 500, seed=1)[1]
    large = bootstrap_mean(rng.random(3000) < 0.5, 500, seed=1)[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 4
