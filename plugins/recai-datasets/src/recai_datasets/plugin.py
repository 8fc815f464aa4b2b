"""Entry point of recai-datasets: registers the dataset sources (imports nothing heavy)."""

from __future__ import annotations

import recai


@recai.hookimpl
def recai_datasets():
    yield recai.ComponentSpec(
        name="movielens-100k.v1",
        factory="recai_datasets.movielens:MovieLens100K",
        summary="MovieLens-100K ratings and films (GroupLens), from the recbole wheel's files.",
    )
