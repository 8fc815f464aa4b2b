"""Entry point of recai-hf: registers the local transformers backend (imports nothing heavy)."""

from __future__ import annotations

import recai

HF = recai.ComponentSpec(
    name="hf.v1",
    factory="recai_hf.backend:HFBackend",
    summary="Local transformers chat model (default SmolLM2-135M-Instruct, embedded): batched, "
    "streaming, JSON repair, log-prob scoring, logits processors.",
)


@recai.hookimpl
def recai_llm_backends():
    yield HF
