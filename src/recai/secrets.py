"""Keys stay out of params, logs, reprs and errors: the checks every plugin that talks to a keyed
service shares (recai-openai's chat backend, recai-emb's embeddings encoder, your plugin).

The rules, enforced here:

- A key is never a parameter. A component names the *environment variable* that holds it
  (``api_key_env = "OPENAI_API_KEY"``) and reads it when it is built. Params are kept by the
  component (``describe_component``), hashed into run and cache keys and shown in errors, so a
  key passed as a param — even through a recipe's ``${VAR}`` — would travel with them.
- A value that looks like a key where a name or a URL belongs is refused, and the error does not
  repeat it: an ``api_key_env`` that is not a variable name, a ``base_url`` with a user or
  password or a key in its query, a ``model`` shaped like an OpenAI key.
- Everything such a component puts into an error or a log line goes through :class:`Redactor`
  (or :func:`redact`), which removes the key itself and anything shaped like a key or a bearer
  token.

In a pydantic params model, :data:`EnvName`, :data:`BaseURL` and :data:`ModelName` apply the
checks to a field.

>>> Redactor(["sk-test-123456789"]).redact("401: Incorrect API key provided: sk-test-123456789")
'401: Incorrect API key provided: ***'
>>> Redactor([]).redact("Authorization: Bearer abc.def")
'Authorization: Bearer ***'
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from pydantic import AfterValidator, Field

__all__ = [
    "BaseURL",
    "EnvName",
    "ModelName",
    "Redactor",
    "redact",
    "check_env_name",
    "check_base_url",
    "check_not_a_key",
    "read_key",
    "looks_like_key",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# OpenAI keys (sk-..., sk-proj-...), Anthropic-style, generic long tokens after "Bearer"
_KEY_SHAPES = [
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(r"(?i)(api[-_]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"),
]
_SECRET_QUERY_KEYS = {"key", "api-key", "api_key", "apikey", "token", "access_token", "sig", "code"}


def looks_like_key(value: str) -> bool:
    """Whether ``value`` has the shape of an API key (``sk-...``) or a long opaque token.

    >>> looks_like_key("sk-proj-abcdefgh12345678"), looks_like_key("gpt-4o-mini")
    (True, False)
    """
    v = value.strip()
    if re.fullmatch(r"sk-[A-Za-z0-9_\-]{6,}", v):
        return True
    # 32+ characters of letters, digits, - and _ with no dot or slash: an opaque token, not a name
    return (
        bool(re.fullmatch(r"[A-Za-z0-9_\-]{32,}", v))
        and any(c.isdigit() for c in v)
        and any(c.isalpha() for c in v)
    )


def check_env_name(value: str) -> str:
    """``value`` if it is an environment variable name; the error never repeats the value."""
    if not _ENV_NAME.match(value):
        what = "looks like a key itself" if looks_like_key(value) else "is not a variable name"
        raise ValueError(
            "api_key_env is the NAME of the environment variable that holds the key (e.g. "
            f"OPENAI_API_KEY), not the key; the value given {what} (not shown). Put the key in "
            "the environment and name the variable here."
        )
    return value


def check_not_a_key(value: str) -> str:
    """``value`` unless it is shaped like an API key (the error does not repeat it)."""
    if looks_like_key(value):
        raise ValueError(
            "this value looks like an API key (not shown); keys are never parameters: put the key "
            "in an environment variable and name it with api_key_env"
        )
    return value


def check_base_url(value: str | None) -> str | None:
    """``value`` unless it carries credentials (a user/password, or a key in the query)."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        shown = value if not looks_like_key(value) and "@" not in value else "(not shown)"
        raise ValueError(
            f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {shown}"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "base_url carries a user name or password (not shown); keys go in the environment "
            "variable named by api_key_env"
        )
    bad = [k for k, _ in parse_qsl(parts.query) if k.lower() in _SECRET_QUERY_KEYS]
    if bad:
        raise ValueError(
            f"base_url carries a credential in its query ({bad[0]}=..., not shown); keys go in the "
            "environment variable named by api_key_env"
        )
    return value


def read_key(env_name: str) -> str | None:
    """The key held by environment variable ``env_name`` (None when unset or empty)."""
    value = os.environ.get(env_name, "").strip()
    return value or None


class Redactor:
    """Removes secrets from text: the given ones verbatim, and anything shaped like a key."""

    def __init__(self, secrets: Iterable[str | None]):
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        text = _KEY_SHAPES[0].sub("***", text)
        for pattern in _KEY_SHAPES[1:]:
            text = pattern.sub(lambda m: m.group(1) + "***", text)
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secret(s))"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without the given secrets and without anything shaped like a key.

    >>> redact("401 Incorrect API key provided: sk-abcdef123456", ["sk-abcdef123456"])
    '401 Incorrect API key provided: ***'
    """
    return Redactor(secrets).redact(text)


#: A params field naming the environment variable that holds a key (never the key).
EnvName = Annotated[str, AfterValidator(check_env_name)]
#: A params field holding an http(s) URL without credentials (or None).
BaseURL = Annotated[str | None, AfterValidator(check_base_url)]
#: A params field holding a model or deployment name that is not shaped like a key.
ModelName = Annotated[str, Field(min_length=1), AfterValidator(check_not_a_key)]
