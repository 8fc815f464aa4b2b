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
EASE = recai.ComponentSpec(
    name="ease.v1",
    factory="recai_classic.ease:EASE",
    summary="EASE: closed-form dense item-item regression (ridge), scores = history @ B.",
)
BPR = recai.ComponentSpec(
    name="bpr.v1",
    factory="recai_classic.bpr:BPR",
    summary="BPR-MF (PyTorch): user and item embeddings trained with pairwise ranking loss.",
)
SASREC = recai.ComponentSpec(
    name="sasrec.v1",
    factory="recai_classic.sasrec:SASRec",
    summary="SASRec (PyTorch): causal self-attention over the history predicts the next item.",
)
MODELS = (POPULARITY, ITEMKNN, EASE, BPR, SASREC)


@recai.hookimpl
def recai_rankers():
    yield from MODELS


@recai.hookimpl
def recai_retrievers():
    yield from MODELS
