"""Which distribution provides which well-known component family.

Used only for the install hint of an unknown name ("provided by recai-classic, which is not
installed"). Every in-repo plugin lists its families here; a test keeps this table in step with
what the plugins register.
"""

from __future__ import annotations

KNOWN_FAMILIES: dict[str, str] = {
    # recai-classic
    "popularity": "recai-classic",
    "itemknn": "recai-classic",
    "ease": "recai-classic",
    "bpr": "recai-classic",
    "sasrec": "recai-classic",
    # recai-datasets
    "movielens-100k": "recai-datasets",
    "movielens-1m": "recai-datasets",
    "movielens-latest": "recai-datasets",
    "recbole-atomic": "recai-datasets",
    "amazon-2018": "recai-datasets",
    "amazon-2023": "recai-datasets",
    "steam": "recai-datasets",
    "recai-format": "recai-datasets",
    "csv": "recai-datasets",
    "jsonl": "recai-datasets",
    # recai-eval
    "ranking": "recai-eval",
    "candidate-ranking": "recai-eval",
    "llm-retrieval": "recai-eval",
    "llm-ranking": "recai-eval",
    "cf-ranking-mc": "recai-eval",
    "seq-ranking-mc": "recai-eval",
    "explanation": "recai-eval",
    "conversation": "recai-eval",
    "embedding-ranking": "recai-eval",
    "embedding-retrieval": "recai-eval",
    # recai-openai
    "openai": "recai-openai",
    "azure-openai": "recai-openai",
    # recai-hf
    "hf": "recai-hf",
    "transformers": "recai-hf",
    # recai-emb
    "embedding": "recai-emb",
    # recai-agent
    "interecagent": "recai-agent",
    # recai-knowledge
    "knowledge": "recai-knowledge",
    # recai-gen
    "reclm-gen": "recai-gen",
    # recai-explainer
    "recexplainer": "recai-explainer",
}


def family(name: str) -> str:
    """``"sasrec.v1"`` -> ``"sasrec"``; ``"knowledge.i2i.v1"`` -> ``"knowledge"``."""
    return name.split(".", 1)[0]


def distribution_for(name: str) -> str | None:
    return KNOWN_FAMILIES.get(family(name))
