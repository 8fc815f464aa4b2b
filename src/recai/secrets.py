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

Secrets by provenance. A value that a recipe took from the environment (``${NAME}``: an API key,
but also a whole ``name``, a path built as ``"${DATA_DIR}/x.csv"``, a ``base_url``, any param)
stays in the environment. :func:`register_recipe` (called by :func:`recai.run`) adds such values
to a process-wide registry, and every channel recai writes to applies it: error messages
(``RecaiError.__str__`` and the CLI's report), the files of a run folder (``RunContext.redact``
and its writing helpers), log records (a record factory installed with the first secret) and
warnings, progress lines. :func:`redact_known` and :func:`redact_data` apply it to text and to
JSON-like data.

A value is registered only when it is at least :data:`MIN_SECRET_LENGTH` characters long and
is not a plain number or boolean: shorter values ("data", "prod", "8080") are ordinary words and
digits that would be blanked out of every message and report without hiding anything worth a
secret, and numbers or booleans configure behaviour (``k``, a seed, a port) while replacing their
digits would corrupt metrics. A default written in the recipe (``${NAME:-default}``) is not a
secret: it is in the file already.

>>> Redactor(["sk-test-123456789"]).redact("401: Incorrect API key provided: sk-test-123456789")
'401: Incorrect API key provided: ***'
>>> Redactor([]).redact("Authorization: Bearer abc.def")
'Authorization: Bearer ***'
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import traceback
import warnings
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

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
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "register",
    "register_recipe",
    "recipe_env_values",
    "known_secrets",
    "forget_secrets",
    "redact_known",
    "redact_data",
    "Shapes",
    "RedactingFilter",
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
    """The key held by environment variable ``env_name`` (None when unset or empty).

    The key is registered as a secret (:func:`register`): from then on no error, log line,
    progress line or run file of this process shows it."""
    value = os.environ.get(env_name, "").strip()
    if value:
        register([value])
    return value or None


class Redactor:
    """Removes secrets from text: the given ones verbatim, and anything shaped like a key."""

    def __init__(self, secrets: Iterable[str | None]):
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        text = _registry.redact(text)
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


# -- secrets by provenance: the process-wide registry --------------------------------------------

MIN_SECRET_LENGTH = 6
"""Shortest value (after stripping blanks) that the registry keeps (see the module docstring)."""

REDACTED = "***"
"""What a secret is replaced with in text."""

_PLAIN_VALUE = re.compile(
    r"(?i)[+-]?(\d[\d_]*\.?\d*|\.\d+)(e[+-]?\d+)?|true|false|yes|no|on|off|null|none|nan|[+-]?inf(inity)?"
)


def _qualifies(value: str) -> bool:
    v = value.strip()
    return len(v) >= MIN_SECRET_LENGTH and not _PLAIN_VALUE.fullmatch(v)


def _variants(value: str) -> set[str]:
    """The forms in which ``value`` can turn up in a message: as given, stripped, with blanks
    squeezed, escaped for JSON or a Python repr, percent-encoded in a URL, and, for a path, as
    normalised, absolute and resolved paths."""
    out: set[str] = set()
    lines = [line.strip() for line in value.splitlines()] if "\n" in value else []
    for v in {value, value.strip(), " ".join(value.split()), *lines}:
        if not _qualifies(v):
            continue
        out |= {
            v,
            json.dumps(v)[1:-1],
            json.dumps(v, ensure_ascii=False)[1:-1],
            repr(v)[1:-1],
            quote(v, safe=""),
            quote(v, safe="/:@"),
            quote_plus(v),
        }
        if os.sep in v or "/" in v or v.startswith(("~", ".")):
            try:
                expanded = os.path.expanduser(v)
                paths = {os.path.normpath(v), expanded, os.path.abspath(expanded)}
                paths.add(os.path.realpath(expanded))
            except (OSError, ValueError):  # an odd path: its plain forms are enough
                paths = set()
            out |= {p.rstrip("/\\") or p for p in paths}
    return {x for x in out if _qualifies(x)}


class _Registry:
    """The secrets of this process and one compiled pattern that finds any of their forms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: frozenset[str] = frozenset()
        self.pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> int:
        with self._lock:
            new = {v for v in values if isinstance(v, str) and _qualifies(v)} - self.values
            if not new:
                return 0
            self.values = self.values | new
            forms = set().union(*(_variants(v) for v in self.values))
            alternatives = sorted(forms, key=len, reverse=True)
            self.pattern = re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE)
        _install_hooks()
        return len(new)

    def clear(self) -> None:
        with self._lock:
            self.values = frozenset()
            self.pattern = None

    def redact(self, text: str, mark: str = REDACTED) -> str:
        pattern = self.pattern
        if pattern is None or not text:
            return text
        return self._cut_off(pattern.sub(mark, text), mark)

    def _cut_off(self, text: str, mark: str) -> str:
        """Hide the start of a secret (at least :data:`MIN_SECRET_LENGTH` characters of it)
        that a message cut short: followed by ``...`` or ``…``, or at the very end of the text
        (``message[:500]``)."""
        tails = [t for t in ("...", "\u2026") if t in text]
        end = text[-200:].lower()
        lowered = text.lower() if tails else ""
        for value in self.values:
            v = value.strip().lower()
            for k in range(len(v) - 1, MIN_SECRET_LENGTH - 1, -1):
                head = v[:k]
                for tail in tails:
                    at = lowered.find(head + tail)
                    while at >= 0:
                        text = text[:at] + mark + text[at + k :]
                        lowered = text.lower()
                        at = lowered.find(head + tail)
                if end.endswith(head):
                    text = text[: len(text) - k] + mark
                    end = text[-200:].lower()
                    lowered = text.lower() if tails else ""
        return text


_registry = _Registry()


def register(values: Iterable[str | None]) -> int:
    """Add secret ``values`` to the process-wide registry; returns how many were new.

    Values shorter than :data:`MIN_SECRET_LENGTH`, numbers and booleans are not kept.
    """
    return _registry.add(v for v in values if v)


def known_secrets() -> frozenset[str]:
    """The registered secret values (for tests and diagnostics; never print them)."""
    return _registry.values


def forget_secrets() -> None:
    """Empty the registry (tests use it to start clean)."""
    _registry.clear()


def _walk(data: Any, where: str = "") -> Iterable[tuple[str, Any]]:
    """``(key path, value)`` of every leaf, with the key paths of the recipe loader."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _walk(v, f"{where}.{k}" if where else str(k))
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            yield from _walk(v, f"{where}[{i}]")
    else:
        yield where, data


def _env_parts(text: str, env: Mapping[str, str]) -> set[str]:
    """The environment values that make up ``text`` (a string built from ``${...}``): the longest
    first, a shorter one only where it occurs outside the longer ones (``${HOME}`` inside the
    ``${DATA_DIR}`` that holds it is not a part of its own)."""
    found = sorted(
        {v for v in env.values() if isinstance(v, str) and _qualifies(v) and v in text},
        key=len,
        reverse=True,
    )
    covered = [False] * len(text)
    parts: set[str] = set()
    for v in found:
        spans = [m.start() for m in re.finditer(re.escape(v), text)]
        if any(not all(covered[i : i + len(v)]) for i in spans):
            parts.add(v)
            for i in spans:
                covered[i : i + len(v)] = [True] * len(v)
    return parts


def recipe_env_values(recipe: Any, env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The values that ``recipe`` (a loaded :class:`~recai.recipe.Recipe`) took from ``${...}``.

    The loader's exact record (``recipe.secret_values``) where it keeps one; otherwise, for each
    key path in ``recipe.secret_paths``, the environment values (``env``, default ``os.environ``)
    that the string at that path is made of. A default written in the recipe is in none of them.
    """
    exact = getattr(recipe, "secret_values", None)
    if exact is not None:
        return frozenset(v for v in exact if isinstance(v, str) and _qualifies(v))
    paths = frozenset(getattr(recipe, "secret_paths", frozenset()))
    if not paths:
        return frozenset()
    env = os.environ if env is None else env
    values: set[str] = set()
    for where, value in _walk(recipe.model_dump(mode="python")):
        if where in paths and value is not None:
            values |= _env_parts(str(value), env)
    return frozenset(values)


def register_recipe(recipe: Any, env: Mapping[str, str] | None = None) -> frozenset[str]:
    """Register the values ``recipe`` took from the environment (:func:`recipe_env_values`);
    returns them."""
    values = recipe_env_values(recipe, env)
    register(values)
    return values


_SK_SHAPE = _KEY_SHAPES[0]


Shapes = Literal["all", "keys", "none"]
"""Which shapes :func:`redact_known` removes besides the registered secrets: ``"all"`` (keys,
bearer tokens, ``api_key=...``: logs and progress), ``"keys"`` (``sk-...`` keys only: files,
where a ``Bearer`` in an item title or a long hash is data) or ``"none"`` (errors: the loader
echoes a value written in the file so the user can see what is wrong; a value from the
environment is still hidden)."""


def redact_known(text: str, *, shapes: Shapes = "all", mark: str = REDACTED) -> str:
    """``text`` without any registered secret (in any of its forms, in any case) and without
    what ``shapes`` names (see :data:`Shapes`).

    >>> redact_known("Authorization: Bearer abc.def")
    'Authorization: Bearer ***'
    """
    if not isinstance(text, str):
        return text
    text = _registry.redact(text, mark)
    if shapes != "none":
        text = _SK_SHAPE.sub(mark, text)
    if shapes == "all":
        for pattern in _KEY_SHAPES[1:]:
            text = pattern.sub(lambda m: m.group(1) + mark, text)
    return text


def redact_data(data: Any, *, shapes: Shapes = "keys") -> Any:
    """``data`` (JSON-like: dicts, lists, tuples, strings, numbers) with every string, keys
    included, passed through :func:`redact_known`; numbers and other values are kept as they are
    (redacting serialised JSON text instead could cut through numbers and quotes)."""
    if isinstance(data, str):
        return redact_known(data, shapes=shapes)
    if isinstance(data, dict):
        return {
            redact_data(k, shapes=shapes): redact_data(v, shapes=shapes) for k, v in data.items()
        }
    if isinstance(data, list):
        return [redact_data(v, shapes=shapes) for v in data]
    if isinstance(data, tuple):
        return tuple(redact_data(v, shapes=shapes) for v in data)
    if isinstance(data, os.PathLike):  # a path that holds a secret is written as text
        text = os.fspath(data)
        clean = redact_known(str(text), shapes=shapes)
        return data if clean == text else clean
    return data


# -- logs and warnings ---------------------------------------------------------------------------


def _redact_record(record: logging.LogRecord) -> None:
    if _registry.pattern is None:
        return
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string is logging's to report
        return
    clean = redact_known(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        clean = redact_known(text)
        if clean != text:
            record.exc_text = clean
    if record.stack_info:
        record.stack_info = redact_known(record.stack_info)


class RedactingFilter(logging.Filter):
    """A logging filter that removes registered secrets and key shapes from each record's
    message, exception and stack text. recai installs the same redaction process-wide (a log
    record factory) with the first registered secret; add this filter to a handler of your own
    to have it there regardless."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


_hooks_installed = False


def _install_hooks() -> None:
    """Redact every log record (whichever logger: recai's, a plugin's, httpx's) when it is
    created, every warning when it is formatted, and the traceback of an uncaught exception
    (of the process or of a thread, where their default hooks are in place). Installed once,
    with the first secret."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
    logging.getLogger("recai").addFilter(RedactingFilter())
    format_warning = warnings.formatwarning

    def formatwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        line: str | None = None,
    ) -> str:
        return redact_known(format_warning(message, category, filename, lineno, line))

    warnings.formatwarning = formatwarning
    if sys.excepthook is sys.__excepthook__:  # not where IPython or a debugger has its own

        def excepthook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
            text = "".join(traceback.format_exception(kind, value, tb))
            sys.stderr.write(redact_known(text, shapes="none"))

        sys.excepthook = excepthook
    if threading.excepthook is threading.__excepthook__:

        def thread_excepthook(args: Any) -> None:
            if args.exc_type is SystemExit:
                return
            name = args.thread.name if args.thread is not None else "?"
            text = "".join(
                traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)
            )
            sys.stderr.write(redact_known(f"Exception in thread {name}:\n{text}", shapes="none"))

        threading.excepthook = thread_excepthook
