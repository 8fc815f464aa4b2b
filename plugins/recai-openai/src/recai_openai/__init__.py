"""recai-openai: a recai LLM backend over any OpenAI-compatible server.

``openai.v1`` talks to OpenAI, vLLM, llama.cpp's server, Ollama or ``recai serve`` through the
official ``openai`` client; ``azure-openai.v1`` to an Azure OpenAI deployment. Both live in
:mod:`recai_openai.backend`; this package imports nothing on purpose, because recai imports
:mod:`recai_openai.plugin` (and so this file) just to list components.
"""

__version__ = "0.1.0"
