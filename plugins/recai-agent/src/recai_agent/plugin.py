"""Entry point of recai-agent (imports only recai); components and commands are registered here
as they land."""

from __future__ import annotations

import recai

RANKER_AGENT = recai.ComponentSpec(
    name="ranker-agent.v1",
    factory="recai_agent.baselines:RankerAgent",
    summary="Baseline: a ranker's top k for the user's history, ignoring the dialogue.",
)
LLM_AGENT = recai.ComponentSpec(
    name="llm-agent.v1",
    factory="recai_agent.baselines:LLMAgent",
    summary="Baseline: the bare LLM recommends; its listed titles are grounded to the catalog.",
)
CHATREC = recai.ComponentSpec(
    name="chatrec.v1",
    factory="recai_agent.baselines:ChatRec",
    summary="Baseline Chat-Rec: retriever top-20 from history and dialogue, the LLM picks k.",
)
AGENTS = [RANKER_AGENT, LLM_AGENT, CHATREC]


@recai.hookimpl
def recai_agents():
    yield from AGENTS
