"""Components that ship with the kernel, registered through the same hooks as any plugin.

They are deliberately few: a random baseline (the floor every recommender must beat) and a small
seeded synthetic dataset (so a recipe and the test kit run with nothing else installed).
"""

from __future__ import annotations

from .hookspecs import hookimpl
from .specs import ComponentSpec

RANDOM = ComponentSpec(
    name="random.v1",
    factory="recai.baselines:RandomRecommender",
    summary="Uniformly random scores: the chance-level baseline.",
)


@hookimpl
def recai_rankers():
    yield RANDOM


@hookimpl
def recai_retrievers():
    yield RANDOM


@hookimpl
def recai_datasets():
    yield ComponentSpec(
        name="synthetic.v1",
        factory="recai.baselines:SyntheticDataset",
        summary="Small seeded synthetic dataset with popularity and sequential structure.",
    )
