"""Components that ship with the kernel, registered through the same hooks as any plugin.

They are deliberately few: a random baseline (the floor every recommender must beat), a small
seeded synthetic dataset (so a recipe and the test kit run with nothing else installed) and a
filter over any other dataset component (implicit feedback, deduplication, k-core).
"""

from __future__ import annotations

from collections.abc import Iterator

from .hookspecs import hookimpl
from .specs import ComponentSpec

RANDOM = ComponentSpec(
    name="random.v1",
    factory="recai.baselines:RandomRecommender",
    summary="Uniformly random scores: the chance-level baseline.",
)


@hookimpl
def recai_rankers() -> Iterator[ComponentSpec]:
    yield RANDOM


@hookimpl
def recai_retrievers() -> Iterator[ComponentSpec]:
    yield RANDOM


@hookimpl
def recai_datasets() -> Iterator[ComponentSpec]:
    yield ComponentSpec(
        name="synthetic.v1",
        factory="recai.baselines:SyntheticDataset",
        summary="Small seeded synthetic dataset with popularity and sequential structure.",
    )
    yield ComponentSpec(
        name="filtered.v1",
        factory="recai.baselines:FilteredDataset",
        summary="Another dataset, filtered: deduplicated, ratings >= a threshold, k-core; reported.",
    )
