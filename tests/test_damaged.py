"""recai.damaged: damaged rebuildable files are set aside (never overwritten) and reported in one
paragraph (issue 17 item 1)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from recai.damaged import DamagedFileWarning, report_damaged, set_aside


def test_set_aside_takes_the_first_free_number_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    (tmp_path / "answers.jsonl.corrupt-1").write_text("an earlier damaged copy")
    path.write_text("damaged now")
    assert set_aside(path) == tmp_path / "answers.jsonl.corrupt-2"
    assert (tmp_path / "answers.jsonl.corrupt-1").read_text() == "an earlier damaged copy"
    assert (tmp_path / "answers.jsonl.corrupt-2").read_text() == "damaged now"
    assert not path.exists()


def test_set_aside_moves_folders_and_dangling_links(tmp_path: Path) -> None:
    folder = tmp_path / "cache.sqlite"
    (folder / "inside").mkdir(parents=True)
    assert set_aside(folder) == tmp_path / "cache.sqlite.corrupt-1"
    link = tmp_path / "loop"
    link.symlink_to(link)
    assert set_aside(link) == tmp_path / "loop.corrupt-1"
    assert (tmp_path / "loop.corrupt-1").is_symlink()


def test_set_aside_answers_none_when_it_cannot_move(tmp_path: Path) -> None:
    assert set_aside(tmp_path / "missing") is None
    assert set_aside(tmp_path / "no-such-folder" / "file") is None


def test_report_damaged_is_one_paragraph_of_the_right_category() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = report_damaged("/x/c.sqlite", "is not\na database", "moved aside;\n  rebuilt")
    assert [w.category for w in caught] == [DamagedFileWarning]
    assert (
        text == str(caught[0].message) == ("/x/c.sqlite: is not a database; moved aside; rebuilt")
    )


def test_damaged_file_warning_is_a_user_warning() -> None:
    with pytest.warns(UserWarning, match="c.jsonl"):
        report_damaged(Path("c.jsonl"), "unreadable", "bypassed")
