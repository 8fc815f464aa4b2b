"""Entry point of the plugin: registers the component, imports nothing heavy."""

import recai


@recai.hookimpl
def recai_rankers():
    yield recai.ComponentSpec(
        name="recency-popularity.v1",
        factory="recai_recency.model:RecencyPopularity",
        summary="Popularity with exponential time decay: recent interactions count more.",
    )
