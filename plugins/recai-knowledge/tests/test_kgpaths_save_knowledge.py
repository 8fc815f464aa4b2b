"""knowledge-kgpaths.v1's saved fit: the relation LLM's verdicts are kept with the fit's files
(written atomically) and a reload applies them without asking the model again."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from knowledgekit import film_split
from test_relation_llm_knowledge import OPEN, PREFERS, YesNo

import recai
from recai.errors import DataError
from recai.types import Completion, ItemList, Message
from recai_knowledge.kgpaths import KGPathsKnowledge


@pytest.fixture(scope="module")
def split() -> recai.Split:
    return film_split()


class Mute(recai.LLMBackend):
    """A relation LLM that must not be asked (a reload)."""

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:
        raise AssertionError("the saved verdicts are not re-judged")

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        raise AssertionError("the saved verdicts are not re-judged")


def texts(k: KGPathsKnowledge, split: recai.Split) -> list[str]:
    """The knowledge for each item as the history, every other item a candidate, and for each
    training user's history."""
    n = split.dataset.n_items
    out = []
    for i in range(n):
        others = np.array([j for j in range(n) if j != i])
        out.append(k.knowledge(history=ItemList([i]), candidates=ItemList(others)))
    for user in np.unique(split.train.users).tolist():
        hist = split.train.items[split.train.users == user]
        out.append(k.knowledge(history=ItemList(hist), candidates=ItemList(np.arange(n))))
    return out


def test_the_verdicts_are_saved_and_a_reload_does_not_ask_the_model(
    split: recai.Split, tmp_path: Path
) -> None:
    llm = YesNo(PREFERS, bias=5.0)
    fitted = KGPathsKnowledge(relation_llm=llm, relation_keep=0.4, **OPEN)
    fitted.fit(split)
    asked = len(llm.asked)
    assert asked == 6  # the content-free question and five kinds
    fitted.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fit.json",
        "graph.npz",
        "relation_llm.json",
    ]
    saved = json.loads((tmp_path / "relation_llm.json").read_text())
    assert saved["kept"] == ["director", "sequel"] and saved["method"] == "yes-no"
    assert saved["detail"]["country"]["margin"] == pytest.approx(-2.0)

    loaded = KGPathsKnowledge(relation_llm=Mute(), relation_keep=0.4, **OPEN)
    loaded.load(tmp_path)  # Mute fails the test if it is asked
    assert loaded.describe() == fitted.describe()
    assert loaded.relation_stats == fitted.relation_stats
    assert texts(loaded, split) == texts(fitted, split)
    assert any(texts(fitted, split))  # the comparison is not of empty texts
    assert len(llm.asked) == asked


def test_the_runtime_caches_the_fit_and_the_next_run_loads_it(
    split: recai.Split, tmp_path: Path
) -> None:
    from recai.runtime import RunContext

    llm = YesNo(PREFERS, bias=5.0)
    first = RunContext(tmp_path, progress=False).fit(
        KGPathsKnowledge(relation_llm=llm, relation_margin=0.5, **OPEN), split
    )
    (art,) = list((tmp_path / "artifacts").iterdir())
    assert (art / "DONE").exists() and (art / "relation_llm.json").exists()
    # the same judge, fresh (a used YesNo's public ``asked`` list is part of its description)
    again = YesNo(PREFERS, bias=5.0)
    second = RunContext(tmp_path, progress=False).fit(
        KGPathsKnowledge(relation_llm=again, relation_margin=0.5, **OPEN), split
    )
    assert llm.asked and not again.asked  # loaded, not judged again
    assert second.describe()["relation_llm"] == first.describe()["relation_llm"]
    assert texts(second, split) == texts(first, split)


def test_without_relation_llm_nothing_to_judge_and_the_fit_still_round_trips(
    split: recai.Split, tmp_path: Path
) -> None:
    fitted = KGPathsKnowledge()
    fitted.fit(split)
    fitted.save(tmp_path)
    assert not (tmp_path / "relation_llm.json").exists()
    loaded = KGPathsKnowledge()
    loaded.load(tmp_path)
    assert texts(loaded, split) == texts(fitted, split)
    # a fit saved without verdicts cannot stand in for one with a relation LLM
    with pytest.raises(DataError, match="has no relation_llm verdicts, but relation_llm is set"):
        KGPathsKnowledge(relation_llm=Mute()).load(tmp_path)


def test_the_files_are_written_atomically(
    split: recai.Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted = KGPathsKnowledge(relation_llm=YesNo(PREFERS), **OPEN)
    fitted.fit(split)

    def fails(*args: Any, **kwargs: Any) -> None:
        args[0].write(b"PK partial")  # a writer dying halfway
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", fails)
    with pytest.raises(OSError, match="No space left"):
        fitted.save(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no partial graph.npz, no temporary file


def test_a_damaged_or_foreign_save_is_a_data_error(split: recai.Split, tmp_path: Path) -> None:
    fitted = KGPathsKnowledge(relation_llm=YesNo(PREFERS), **OPEN)
    fitted.fit(split)
    fitted.save(tmp_path)
    # verdicts for other kinds (another graph or other params) are refused, not re-judged
    saved = json.loads((tmp_path / "relation_llm.json").read_text())
    saved["kinds"] = ["director", "genre"]
    (tmp_path / "relation_llm.json").write_text(json.dumps(saved))
    with pytest.raises(DataError, match="saved relation_llm verdicts judged the kinds director"):
        KGPathsKnowledge(relation_llm=Mute(), **OPEN).load(tmp_path)
    (tmp_path / "graph.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read the saved fit in .*delete the folder"):
        KGPathsKnowledge(relation_llm=Mute(), **OPEN).load(tmp_path)
    with pytest.raises(DataError, match="cannot read the saved fit"):
        KGPathsKnowledge().load(tmp_path / "nothing")
