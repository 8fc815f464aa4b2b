"""An encoder over any OpenAI-compatible embeddings endpoint (OpenAI, Azure-style proxies, vLLM,
llama.cpp, Ollama, text-embeddings-inference...), through the official ``openai`` client.

Keys follow the kernel's rules (:mod:`recai.secrets`, shared with recai-openai): a key is never a
parameter; ``api_key_env`` names the environment variable that holds it; a ``base_url`` carrying
credentials or a ``model`` shaped like a key is refused without repeating the value; every error
text has the key and anything shaped like a key removed.

The ``openai`` package is imported when an encoder is built.

>>> OpenAIEncoder.__name__
'OpenAIEncoder'
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from recai.errors import RecaiError
from recai.secrets import check_base_url, check_env_name, check_not_a_key, redact

from .encoder import Encoder, TextKind

__all__ = ["OpenAIEncoder"]

_DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIEncoder(Encoder):
    """Vectors from ``POST {base_url}/embeddings``, ``batch_size`` texts a request, normalised."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        dimensions: int | None = None,
        batch_size: int = 256,
        timeout: float = 60.0,
        max_retries: int = 4,
        query_prefix: str = "",
        passage_prefix: str = "",
        normalize: bool = True,
    ) -> None:
        import openai

        self.model = check_not_a_key(model)
        resolved = base_url or os.environ.get("OPENAI_BASE_URL") or _DEFAULT_BASE_URL
        check_base_url(resolved)
        self.base_url = resolved.rstrip("/")
        self.api_key_env = check_env_name(api_key_env)
        key = os.environ.get(api_key_env, "").strip() or None
        if key is None and urlsplit(self.base_url).hostname == "api.openai.com":
            raise RecaiError(
                f"embedding.openai.v1: the environment variable {api_key_env} is not set; put the "
                f"key for {self.base_url} in it (or name another variable with api_key_env)"
            )
        self._secrets = [key]
        self.dimensions = dimensions
        self.batch_size = int(batch_size)
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.normalize = bool(normalize)
        self._openai = openai
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=key or "EMPTY",
            timeout=timeout,
            max_retries=int(max_retries),
        )
        self.dim = int(dimensions or 0)  # known after the first request when not given

    def identity(self) -> dict[str, Any]:
        return {
            "encoder": "openai",
            "model": self.model,
            "base_url": self.base_url,
            "dimensions": self.dimensions,
            "query_prefix": self.query_prefix,
            "passage_prefix": self.passage_prefix,
            "normalize": self.normalize,
        }

    def __repr__(self) -> str:
        return f"OpenAIEncoder(model={self.model!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the HTTP connection pool of this encoder's client."""
        self._client.close()

    def __enter__(self) -> OpenAIEncoder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            with contextlib.suppress(Exception):  # at interpreter shutdown: nothing to close
                client.close()

    def _request(self, batch: list[str]) -> np.ndarray:
        kw: dict[str, Any] = {"model": self.model, "input": batch, "encoding_format": "float"}
        if self.dimensions is not None:
            kw["dimensions"] = self.dimensions
        try:
            answer = self._client.embeddings.create(**kw)
        except self._openai.APIStatusError as e:
            raise RecaiError(
                f"embedding.openai.v1: {self.base_url}/embeddings answered {e.status_code}: "
                f"{redact(str(e.message), self._secrets)}"
            ) from None
        except self._openai.APIError as e:
            raise RecaiError(
                f"embedding.openai.v1: request to {self.base_url}/embeddings failed: "
                f"{type(e).__name__}: {redact(str(e), self._secrets)}"
            ) from None
        rows = sorted(answer.data, key=lambda d: d.index)
        if len(rows) != len(batch):
            raise RecaiError(
                f"embedding.openai.v1: sent {len(batch)} texts, the server returned "
                f"{len(rows)} embeddings"
            )
        return np.asarray([r.embedding for r in rows], dtype=np.float32)

    def encode(self, texts: Sequence[str], kind: TextKind = "passage") -> np.ndarray:
        prefix = self.query_prefix if kind == "query" else self.passage_prefix
        items = [prefix + str(t) for t in texts]
        parts = [
            self._request(items[i : i + self.batch_size])
            for i in range(0, len(items), self.batch_size)
        ]
        if not parts:
            return np.empty((0, self.dim), dtype=np.float32)
        out = np.concatenate(parts)
        if self.dim and out.shape[1] != self.dim:
            raise RecaiError(
                f"embedding.openai.v1: the server returned {out.shape[1]}-dimensional vectors, "
                f"expected {self.dim}"
            )
        self.dim = int(out.shape[1])
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
