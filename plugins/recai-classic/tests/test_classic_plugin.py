"""The entry point of recai-classic registers its components without importing their modules."""

from __future__ import annotations

from recai.testing import modules_imported_by_listing

HEAVY = ("scipy", "recai_classic.itemknn", "recai_classic.popularity")


def test_listing_components_imports_nothing_heavy():
    assert modules_imported_by_listing("classic", HEAVY, expect="itemknn.v1") == []
