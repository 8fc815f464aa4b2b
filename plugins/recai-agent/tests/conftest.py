"""Fixtures shared by recai-agent's tests (module-scoped, as each module had them): the film
fixture's split and an ItemKNN fitted on it, and MovieLens-100K's catalog."""

from __future__ import annotations

import pytest
from agentkit import film_split

import recai
from recai.data import Catalog


@pytest.fixture(scope="module")
def split():  # type: ignore[no-untyped-def]
    return film_split()


@pytest.fixture(scope="module")
def knn(split):  # type: ignore[no-untyped-def]
    from recai_classic.itemknn import ItemKNN

    model = ItemKNN(neighbors=10)
    model.fit(split)
    return model


@pytest.fixture(scope="module")
def ml() -> Catalog:
    try:
        return recai.create("dataset", "movielens-100k.v1", kg=False).dataset().catalog
    except recai.errors.RecaiError as e:  # pragma: no cover - recai-datasets not installed
        pytest.skip(f"movielens-100k.v1 is not available: {e}")
