"""JSON-schema-constrained decoding for ``hf.v1``, built on ``llguidance``.

:class:`JSONConstraint` is a bindable logits processor (see :mod:`recai_hf.logits`): at every step
each row may only take tokens that keep its text a prefix of a JSON value matching the schema,
and once the value is complete only the end-of-sequence token. A reply that ends by itself
(``finish_reason == "stop"``) therefore parses and validates; a reply cut by ``max_tokens`` is a
prefix of one (give strings a ``maxLength`` and arrays a ``maxItems`` to bound the length).

Why a library: matching a grammar against a 49k-token byte-level BPE vocabulary at every step
(tokens that cross lexeme boundaries, escapes, numbers split over tokens) is the hard part, and
``llguidance`` (the Rust engine behind Guidance, also used by vLLM, SGLang and llama.cpp) does
it in well under a millisecond per row with an Earley parser over a lexer, from a JSON schema.
It is one self-contained wheel with no dependencies (no torch pin), and it works offline: its
tokenizer is built from the loaded transformers tokenizer.

**Supported schemas** are those ``llguidance`` compiles: ``type`` (object, array, string,
integer, number, boolean, null, and lists of them), ``properties``, ``required``,
``additionalProperties`` (true/false/schema), ``items``, ``prefixItems``, ``minItems``,
``maxItems``, ``enum``, ``const``, ``anyOf``, ``oneOf`` (as ``anyOf``), ``allOf`` (merged),
``$ref``/``$defs``, ``minLength``, ``maxLength``, ``pattern`` and some ``format`` values on
strings, ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum`` on numbers; and
``uniqueItems`` on arrays whose items are an ``enum`` of strings, reached from the root through
``properties`` and ``items`` (enforced by :mod:`recai_hf.uniqueitems` on top of the grammar: a
token that would repeat an item, or start one that can only become a used item, is banned).
A schema with a keyword it cannot enforce (other ``uniqueItems``, ``not``, ``if``/``then``...) is refused when
the constraint is made (``RecaiError`` naming the problem), never silently loosened, unless
``lenient=True`` (then the keyword is ignored and the reply may break it: validate it with
``chat(..., json_schema=schema)``, which also puts the schema into the prompt).

Objects come out with their properties in schema order, every required one present; with
``compact=True`` (the default) no whitespace is allowed between tokens, which keeps a small
model from padding its reply with spaces and newlines until ``max_tokens`` runs out.

>>> JSONConstraint({"type": "object", "properties": {"k": {"type": "integer"}}})
JSONConstraint({'type': 'object', 'properties': {'k': {'type': 'integer'}}})
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from recai.errors import RecaiError

from .logits import GenerationContext
from .structured import check_schema
from .uniqueitems import UniqueTracker, split_unique

if TYPE_CHECKING:
    import torch

__all__ = ["JSONConstraint", "JSONProcessor"]

_TOKENIZERS: dict[tuple[int, int, tuple[int, ...]], tuple[Any, Any]] = {}
_TOKENIZER_LOCK = threading.Lock()
_BYTES: dict[tuple[int, int], tuple[Any, list[bytes], np.ndarray]] = {}


def _token_bytes(context: GenerationContext) -> tuple[list[bytes], np.ndarray]:
    """Each token's bytes, and which tokens hold a ``[`` (kept per tokenizer)."""
    key = (id(context.tokenizer), context.vocab_size)
    with _TOKENIZER_LOCK:
        hit = _BYTES.get(key)
        if hit is not None and hit[0] is context.tokenizer:
            return hit[1], hit[2]
        from .constrained import token_bytes

        data = token_bytes(context.tokenizer, context.vocab_size)
        for e in context.eos_token_ids:
            if 0 <= e < len(data):
                data[e] = b""
        opens = np.array([b"[" in d for d in data], dtype=bool)
        _BYTES[key] = (context.tokenizer, data, opens)
        return data, opens


def _llguidance() -> Any:
    try:
        import llguidance
    except ImportError:  # pragma: no cover - a dependency of recai-hf
        raise RecaiError(
            "JSON-constrained decoding needs llguidance: pip install llguidance"
        ) from None
    return llguidance


def _ll_tokenizer(context: GenerationContext) -> Any:
    """llguidance's view of the call's tokenizer (about 2 s to build: kept per tokenizer)."""
    key = (id(context.tokenizer), context.vocab_size, tuple(context.eos_token_ids))
    with _TOKENIZER_LOCK:
        hit = _TOKENIZERS.get(key)
        if hit is not None and hit[0] is context.tokenizer:
            return hit[1]
        import llguidance.hf

        try:
            ll = llguidance.hf.from_tokenizer(
                context.tokenizer,
                n_vocab=context.vocab_size,
                eos_token=list(context.eos_token_ids),
            )
        except ValueError as e:
            raise RecaiError(f"JSONConstraint needs a fast (Rust) tokenizer: {e}") from None
        _TOKENIZERS[key] = (context.tokenizer, ll)
        return ll


class JSONConstraint:
    """Constrain every reply to one JSON value valid for ``schema`` (a bindable processor).

    ``compact``: no whitespace between tokens (default); ``lenient``: ignore schema keywords the
    engine cannot enforce instead of refusing the schema. Use it as
    ``llm.chat(messages, logits_processors=[JSONConstraint(schema)])``; adding
    ``json_schema=schema`` too puts the schema into the prompt (the model then knows what the
    keys mean) and validates the result with ``jsonschema``.
    """

    def __init__(self, schema: dict[str, Any], *, compact: bool = True, lenient: bool = False):
        check_schema(schema)
        ll = _llguidance()
        self.schema = schema
        self.compact = compact
        self.lenient = lenient
        options: dict[str, Any] = {"whitespace_flexible": not compact, "lenient": lenient}
        self.unique, grammar_schema = split_unique(schema)
        try:
            self.grammar = ll.LLMatcher.grammar_from_json_schema(
                json.dumps(grammar_schema), overrides=options
            )
        except ValueError as e:
            raise RecaiError(f"json schema not usable for constrained decoding: {e}") from None
        is_error, messages = ll.LLMatcher.validate_grammar_with_warnings(self.grammar)
        if is_error:
            raise RecaiError(
                "json schema not supported by constrained decoding: "
                + "; ".join(messages)
                + " (JSONConstraint(..., lenient=True) ignores unsupported keywords)"
            )
        self.warnings = list(messages)
        self.bound: list[JSONProcessor] = []

    def __repr__(self) -> str:
        return f"JSONConstraint({self.schema!r})"

    def bind(self, context: GenerationContext) -> JSONProcessor:
        """The processor of one ``generate`` call: one grammar matcher per row."""
        ll = _llguidance()
        tokenizer = _ll_tokenizer(context)
        template = ll.LLMatcher(tokenizer, self.grammar, log_level=0)
        if template.is_error():
            raise RecaiError(f"json schema not usable: {template.get_error()}")
        proc = JSONProcessor(template, context, self.unique)
        self.bound = [*self.bound[-7:], proc]
        return proc


class JSONProcessor:
    """Per-call state of :class:`JSONConstraint`: a matcher per row, fed each new token.

    ``errors`` lists rows whose token the grammar refused (only possible when another processor
    overrode this one); such a row is then ended. With enforced ``uniqueItems`` a
    :class:`~recai_hf.uniqueitems.UniqueTracker` per row bans the tokens that would repeat an
    item; ``stats`` counts the steps it checked, the tokens it tried and banned, and its seconds,
    and the tokens :meth:`forced` found (the one token allowed).
    """

    def __init__(self, template: Any, context: GenerationContext, unique: Any = None):
        ll = _llguidance()
        self.context = context
        self.matchers = [template.deep_copy() for _ in range(context.batch_size)]
        self.finished = [False] * context.batch_size
        self.errors: list[tuple[int, str]] = []
        self.words = (context.vocab_size + 31) // 32
        self.bitmask = np.zeros((context.batch_size, self.words), dtype=np.int32)
        self.executor = ll.LLExecutor()
        self.eos = set(context.eos_token_ids)
        self.seen = 0
        self.trackers: list[UniqueTracker] | None = None
        self.stats = {"steps": 0, "checked": 0, "banned": 0, "seconds": 0.0, "forced": 0}
        self._mask: tuple[int, torch.Tensor] | None = None  # (generated tokens, allowed)
        if unique is not None:
            self.trackers = [UniqueTracker(unique) for _ in range(context.batch_size)]
            self.token_bytes, self.opens = _token_bytes(context)

    def _feed(self, tokens: list[int]) -> None:
        for b, tok in enumerate(tokens):
            if self.finished[b]:
                continue
            m = self.matchers[b]
            if tok in self.eos:
                self.finished[b] = True
                continue
            if self.trackers is not None and not self.trackers[b].feed(self.token_bytes[tok]):
                self.errors.append((b, "an item of a uniqueItems array was repeated"))
            if not m.consume_token(tok):
                self.errors.append((b, m.get_error()))
                self.finished[b] = True

    def _allowed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``(rows, words * 32)`` booleans: the tokens each row may take after ``input_ids``
        (its new tokens are fed first). Kept for the current length, so :meth:`forced` and the
        call that follows at the same step compute the mask once."""
        import torch

        start = self.context.prompt_length
        generated = input_ids.shape[1] - start
        if self._mask is not None and self._mask[0] == generated:
            return self._mask[1]
        if generated > self.seen:
            new = input_ids[:, start + self.seen :].tolist()
            for k in range(generated - self.seen):
                self._feed([row[k] for row in new])
            self.seen = generated
        live = [b for b in range(len(self.matchers)) if not self.finished[b]]
        self.bitmask.fill(0)
        if live:
            import llguidance.numpy as lnp

            lnp.fill_next_token_bitmask_par(
                self.executor, [(self.matchers[b], b) for b in live], self.bitmask
            )
            if self.trackers is not None:
                self._unique(live)
        words = self.bitmask.view(np.uint32)
        for b in range(len(self.matchers)):
            if self.finished[b]:  # an ended row only pads
                for e in self.eos:
                    words[b, e // 32] |= np.uint32(1 << (e % 32))
        allowed = np.unpackbits(self.bitmask.view(np.uint8), bitorder="little")
        mask = torch.from_numpy(allowed.reshape(len(self.matchers), -1)).bool()
        self._mask = (generated, mask)
        return mask

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        mask = self._allowed(input_ids)[:, : scores.shape[1]]
        return scores.masked_fill(~mask.to(scores.device), float("-inf"))

    def forced(self, input_ids: torch.Tensor) -> int | None:
        """The token a one-row call must take after ``input_ids`` whatever the model's logits,
        when the grammar (and ``uniqueItems``) leave exactly one; None when several (or none)
        are allowed. Greedy decoding under this processor alone picks that token, so the
        backend appends it without running the model for it (``fast_forward``)."""
        if len(self.matchers) != 1:
            return None
        mask = self._allowed(input_ids)[0, : self.context.vocab_size]
        found = mask.nonzero()
        if int(found.shape[0]) != 1:
            return None
        self.stats["forced"] += 1
        return int(found[0, 0])

    def _unique(self, live: list[int]) -> None:
        """Clear the bits of the tokens that would repeat an item of a uniqueItems array."""
        import time

        start = time.perf_counter()
        assert self.trackers is not None
        words = self.bitmask.view(np.uint32)
        for b in live:
            tracker = self.trackers[b]
            if tracker.done:
                continue
            bits = np.unpackbits(self.bitmask[b].view(np.uint8), bitorder="little")
            allowed = bits[: len(self.token_bytes)].astype(bool)
            if not tracker.in_unique():
                allowed &= self.opens  # only a token that opens an array can reach one
            ids = np.flatnonzero(allowed)
            self.stats["steps"] += 1
            self.stats["checked"] += len(ids)
            data = self.token_bytes
            for t in ids.tolist():
                if not tracker.allows(data[t]):
                    words[b, t // 32] &= np.uint32(~(1 << (t % 32)) & 0xFFFFFFFF)
                    self.stats["banned"] += 1
        self.stats["seconds"] += time.perf_counter() - start
