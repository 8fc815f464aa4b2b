"""Entry point of recai-classic: registers the models (imports nothing heavy)."""

from __future__ import annotations

import recai

POPULARITY = recai.ComponentSpec(
    name="popularity.v1",
    factory="recai_classic.popularity:Popularity",
    summary="Most popular items first: items scored by their training interaction count.",
)
ITEMKNN = recai.ComponentSpec(
    name="itemknn.v1",
    factory="recai_classic.itemknn:ItemKNN",
    summary="Item-based CF: sum of co-occurrence cosine similarities to the user's items.",
)


@recai.hookimpl
def recai_rankers():
    yield POPULARITY
    yield ITEMKNN


@recai.hookimpl
def recai_retrievers():
    yield POPULARITY
    yield ITEMKNN
