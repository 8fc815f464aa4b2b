"""The entry point of recai-datasets registers its components without importing their modules."""

from __future__ import annotations

from recai.testing import modules_imported_by_listing

HEAVY = ("recbole", "recai_datasets.movielens", "recai_datasets.atomic")


def test_listing_components_imports_nothing_heavy():
    assert modules_imported_by_listing("datasets", HEAVY, expect="movielens-100k.v1") == []
