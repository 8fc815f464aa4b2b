"""The entry point of recai-eval registers its components without importing their modules."""

from __future__ import annotations

from recai.testing import modules_imported_by_listing

HEAVY = (
    "numpy",
    "scipy",
    "matplotlib",
    "recai_eval.ranking",
    "recai_eval.metrics",
    "recai_eval.candidates",
    "recai_eval.llm.base",
    "recai_eval.llm.runner",
    "recai_eval.llm.params",  # named by the specs as a lazy "module:Model" string
)


def test_listing_components_imports_nothing_heavy():
    assert modules_imported_by_listing("eval", HEAVY, expect="conversation.v1") == []
