"""recai.assets: files inside installed packages, found without importing the package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from recai.assets import find_in_package, package_dirs


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path holding ``shipped_model`` (whose ``__init__`` must never run) and a
    namespace package ``shipped_ns`` split over two folders."""
    pkg = tmp_path / "site" / "shipped_model"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('shipped_model was imported')\n")
    (pkg / "model" / "config.json").write_text("{}")
    (pkg / "b.gguf").write_bytes(b"GGUF")
    (pkg / "a.gguf").write_bytes(b"GGUF")
    (tmp_path / "site" / "single_module.py").write_text("x = 1\n")
    for side in ("one", "two"):
        ns = tmp_path / side / "shipped_ns"
        ns.mkdir(parents=True)
        (ns / f"{side}.bin").write_bytes(b"")
        monkeypatch.syspath_prepend(str(tmp_path / side))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return tmp_path


def test_finds_files_and_folders_without_importing(site: Path) -> None:
    pkg = site / "site" / "shipped_model"
    assert package_dirs("shipped_model") == [pkg]
    assert find_in_package("shipped_model", "model/config.json") == pkg / "model" / "config.json"
    assert find_in_package("shipped_model", "model") == pkg / "model"
    assert find_in_package("shipped_model", "*.gguf") == pkg / "a.gguf"  # sorted: the first
    assert find_in_package("shipped_model", "**/config.json") == pkg / "model" / "config.json"
    assert "shipped_model" not in sys.modules


def test_absent_package_or_file_is_none(site: Path) -> None:
    assert find_in_package("shipped_model", "*.safetensors") is None
    assert find_in_package("not_installed_anywhere", "*.gguf") is None
    assert package_dirs("not_installed_anywhere") == []
    assert package_dirs("single_module") == []  # a module has no folder to ship files in


def test_namespace_package_folders_are_searched_in_order(site: Path) -> None:
    assert [p.parent.name for p in package_dirs("shipped_ns")] == ["two", "one"]
    assert find_in_package("shipped_ns", "one.bin") == site / "one" / "shipped_ns" / "one.bin"
    assert find_in_package("shipped_ns", "*.bin") == site / "two" / "shipped_ns" / "two.bin"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="not a top-level package name"):
        package_dirs("recai.data")  # find_spec would import recai first
    for pattern in ("", "/etc/passwd", "../outside.gguf"):
        with pytest.raises(ValueError, match="relative path inside the package"):
            find_in_package("recai", pattern)
