"""Entry point of recai-knowledge (imports only recai): the knowledge prompters."""

from __future__ import annotations

import recai

PROMPTERS = [
    recai.ComponentSpec(
        name="knowledge-attributes.v1",
        factory="recai_knowledge.attributes:AttributesKnowledge",
        summary="Item attributes from the catalog (genres, year, tags, price) and the log's counts.",
    ),
    recai.ComponentSpec(
        name="knowledge-cooccurrence.v1",
        factory="recai_knowledge.collab:CooccurrenceKnowledge",
        summary="Global co-occurrence: what each candidate's users also chose.",
    ),
    recai.ComponentSpec(
        name="knowledge-i2i.v1",
        factory="recai_knowledge.collab:I2IKnowledge",
        summary="History-based I2I: top co-occurring items of the user's recent items.",
    ),
    recai.ComponentSpec(
        name="knowledge-u2i.v1",
        factory="recai_knowledge.collab:U2IKnowledge",
        summary="User-to-item: a ranker's (e.g. SASRec's) top candidates for this user.",
    ),
    recai.ComponentSpec(
        name="knowledge-kgpaths.v1",
        factory="recai_knowledge.kgpaths:KGPathsKnowledge",
        summary="Knowledge-graph paths from the user's recent items to the candidates.",
    ),
    recai.ComponentSpec(
        name="knowledge-recency.v1",
        factory="recai_knowledge.recency:RecencyKnowledge",
        summary="Recency notes: the user's last items, their recent focus, trending candidates.",
    ),
    recai.ComponentSpec(
        name="knowledge-composite.v1",
        factory="recai_knowledge.composite:CompositeKnowledge",
        summary="Several knowledge types in ordered blocks, the most useful facts within a budget.",
    ),
]


@recai.hookimpl
def recai_knowledge_prompters() -> list[recai.ComponentSpec]:
    return list(PROMPTERS)
