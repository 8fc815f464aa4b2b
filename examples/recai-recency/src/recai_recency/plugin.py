"""Entry point of the plugin: registers the component, imports nothing heavy."""

from collections.abc import Iterator

import recai


@recai.hookimpl
def recai_rankers() -> Iterator[recai.ComponentSpec]:
    yield recai.ComponentSpec(
        name="recency-popularity.v1",
        factory="recai_recency.model:RecencyPopularity",
        summary="Popularity with exponential time decay: recent interactions count more.",
    )
