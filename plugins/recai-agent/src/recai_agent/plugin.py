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
INTERECAGENT = recai.ComponentSpec(
    name="interecagent.v1",
    factory="recai_agent.agent:InterecAgent",
    summary="InteRecAgent: the LLM plans, recommenders are its tools, answers name only found items.",
)
AGENTS = [RANKER_AGENT, LLM_AGENT, CHATREC, INTERECAGENT]


@recai.hookimpl
def recai_agents():
    yield from AGENTS


@recai.hookimpl
def recai_commands():
    yield recai.CommandSpec(
        name="chat",
        factory="recai_agent.cli:configure",
        summary="chat with a recipe's agent (interactive, or --message TEXT ... [--json])",
    )
    yield recai.CommandSpec(
        name="mcp",
        factory="recai_agent.mcpserver:configure",
        summary="serve a recipe's agent and its tools as an MCP server (stdio, or HTTP on loopback)",
    )
    yield recai.CommandSpec(
        name="agent-tune",
        factory="recai_agent.tune:configure",
        summary="fine-tune a small model into the agent's planner on the CPU (TRL; checkpoints)",
    )
    yield recai.CommandSpec(
        name="agent-requests",
        factory="recai_agent.requests:configure",
        summary="write a labelled planner request set (JSONL), with LLM paraphrases of held-out "
        "requests",
    )
