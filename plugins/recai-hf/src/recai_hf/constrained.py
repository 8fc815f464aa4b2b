"""Catalog-constrained decoding: a token prefix tree over item titles and an item-span processor.

RecLM-cgen's idea: let the model write free text, but once it opens an **item span** (after an
opening delimiter such as ``<item>``), allow only token continuations that spell a catalog title
followed by the closing delimiter; after the span closes, text is free again. No item is named
twice in one reply. Every title written inside a span is then in the catalog, by construction.

Three pieces:

- :class:`TokenTrie` (built by :func:`compile_trie`): every title tokenized **in the context it is
  generated in** (after the opening delimiter, with the closing delimiter appended, so byte-pair
  merges across either boundary come out as the model would write them), compiled once into flat
  numpy arrays: children of each node in CSR order sorted by token, a sorted ``(node, token)`` key
  table for ``searchsorted`` look-ups, and for each node the range ``[lo, hi)`` of the titles
  below it (titles are numbered in the trie's lexicographic order, so a subtree is a range).
  Compiled tries are kept in memory and, with ``cache_dir``, on disk (``.npz``, written atomically),
  keyed by the titles, the delimiters and the tokenizer's own fingerprint.
- :class:`CatalogConstraint`: a bindable logits processor (see :mod:`recai_hf.logits`). ``mode=
  "span"`` gives free text with constrained spans; ``mode="list"`` makes the whole reply a list of
  titles, each followed by ``separator`` (``n_items`` of them, or any number >= 1). Each
  ``generate`` step is a few tensor operations over the whole batch: the next node of every row by
  one ``searchsorted``, the allowed tokens of every row by gathering its children's CSR slices,
  and the titles a row already named removed by comparing each child's ``[lo, hi)`` with that
  row's used titles (a child stays allowed while some title below it is unused). Outside spans, a
  byte automaton over the vocabulary (one table lookup per row and step) notices when the text
  ends with the opening delimiter.
- :func:`recommend_constrained`: ``n`` catalog items for a conversation, grounded back to item
  indices.

>>> vocab = {"<i>": 1, "Heat": 2, "Up": 3, "</i>": 4, " and": 5}
>>> tok = ToyTokenizer(vocab)
>>> c = CatalogConstraint(["Heat", "Up"], open="<i>", close="</i>")
>>> trie = c.compile(tok)
>>> trie.paths()
[[2, 4], [3, 4]]
>>> c.parse("<i>Heat</i> and <i>Up</i>").items
[0, 1]
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from recai.errors import RecaiError
from recai.runtime import atomic_write_file

from .logits import GenerationContext

if TYPE_CHECKING:
    import torch

    from recai.roles import LLMBackend
    from recai.types import Completion, Message

__all__ = [
    "CatalogConstraint",
    "Recommendation",
    "SpanParse",
    "ToyTokenizer",
    "TokenTrie",
    "compile_trie",
    "recommend_constrained",
    "token_bytes",
    "tokenizer_fingerprint",
]

_FORMAT = 1  # bump when the compiled layout or the tokenization rule changes
_MEMORY: OrderedDict[str, TokenTrie] = OrderedDict()
_MEMORY_SIZE = 8
_LOCK = threading.Lock()


# -- tokenizers -----------------------------------------------------------------------------------
class ToyTokenizer:
    """A tiny whole-word tokenizer over a fixed vocabulary, for examples and tests.

    Text is split greedily into the longest vocabulary entries; an unknown character raises.
    Implements the few calls the constraint needs (``__call__``, ``convert_ids_to_tokens``,
    ``__len__``).

    >>> ToyTokenizer({"a": 0, "ab": 1, "c": 2})("abca")["input_ids"]
    [1, 2, 0]
    """

    def __init__(self, vocab: dict[str, int]):
        self.vocab = dict(vocab)
        self._by_id = {i: t for t, i in self.vocab.items()}
        self._longest = max(len(t) for t in self.vocab)
        self.all_special_ids: list[int] = []

    def __len__(self) -> int:
        return max(self._by_id) + 1

    def encode(self, text: str) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            for n in range(min(self._longest, len(text) - i), 0, -1):
                if text[i : i + n] in self.vocab:
                    ids.append(self.vocab[text[i : i + n]])
                    i += n
                    break
            else:
                raise ValueError(f"ToyTokenizer cannot encode {text[i:]!r}")
        return ids

    def __call__(self, text: str | list[str], add_special_tokens: bool = False) -> dict[str, Any]:
        if isinstance(text, str):
            return {"input_ids": self.encode(text)}
        return {"input_ids": [self.encode(t) for t in text]}

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str | None]:
        return [self._by_id.get(int(i)) for i in ids]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return "".join(self._by_id.get(int(i), "") for i in ids)


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, reversed: the character of each byte -> the byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    return type(decoder).__name__ == "ByteLevel"


def token_bytes(tokenizer: Any, vocab_size: int | None = None) -> list[bytes]:
    """The bytes each token id stands for (``b""`` for ids the tokenizer does not have).

    Byte-level BPE vocabularies (GPT-2, SmolLM2, Llama 3, Qwen) map each character back through
    GPT-2's byte alphabet; SentencePiece ones turn ``▁`` into a space and ``<0xNN>`` into that
    byte; anything else is decoded token by token. Special tokens count as their text.

    >>> token_bytes(ToyTokenizer({"a": 0, "bc": 2}))
    [b'a', b'', b'bc']
    """
    n = vocab_size if vocab_size is not None else len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(min(n, len(tokenizer)))))
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    out: list[bytes] = []
    if _is_byte_level(tokenizer):
        table = _byte_decoder()
        for i, p in enumerate(pieces):
            if p is None:
                out.append(b"")
            elif i in special or any(c not in table for c in p):
                out.append(p.encode("utf-8"))
            else:
                out.append(bytes(table[c] for c in p))
    elif any(p is not None and p.startswith("▁") for p in pieces):  # SentencePiece
        for p in pieces:
            if p is None:
                out.append(b"")
            elif len(p) == 6 and p.startswith("<0x") and p.endswith(">"):
                out.append(bytes([int(p[3:5], 16)]))
            else:
                out.append(p.replace("▁", " ").encode("utf-8"))
    elif isinstance(tokenizer, ToyTokenizer):
        out = [(p or "").encode("utf-8") for p in pieces]
    else:
        out = [tokenizer.decode([i]).encode("utf-8") for i in range(len(pieces))]
    out.extend(b"" for _ in range(n - len(out)))
    return out


_FINGERPRINTS: dict[int, tuple[Any, str]] = {}


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of the tokenizer's full definition (vocabulary, merges, normalizer, added tokens).

    >>> len(tokenizer_fingerprint(ToyTokenizer({"a": 0})))
    64
    """
    cached = _FINGERPRINTS.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        text = backend.to_str()
    elif isinstance(tokenizer, ToyTokenizer):
        text = json.dumps(sorted(tokenizer.vocab.items()))
    else:
        text = json.dumps(sorted(tokenizer.get_vocab().items()))
    extra = json.dumps([type(tokenizer).__name__, len(tokenizer)])
    digest = hashlib.sha256((text + extra).encode("utf-8")).hexdigest()
    _FINGERPRINTS[id(tokenizer)] = (tokenizer, digest)
    return digest


# -- the trie -------------------------------------------------------------------------------------
@dataclass(eq=False)
class TokenTrie:
    """Titles as token paths, compiled into flat arrays (see the module docstring).

    Node 0 is the root. ``child_start[n]:child_start[n + 1]`` are the edges out of node ``n``, with
    ``edge_token`` sorted within each node and ``edge_child`` the node each edge leads to;
    ``edge_key = parent << 32 | token`` is sorted, for vectorised look-ups. A path is a title
    plus the closing text; ``node_leaf[n]`` is the path ending at ``n`` (``-1`` if none); paths are
    numbered in lexicographic token order, so the paths below ``n`` are ``node_lo[n]:node_hi[n]``.
    ``leaf_items[leaf_start[p]:leaf_start[p + 1]]`` are the titles (indices into the list given)
    whose path is ``p``: equal titles share a path. ``info`` counts what the build did.
    """

    child_start: np.ndarray
    edge_token: np.ndarray
    edge_child: np.ndarray
    edge_key: np.ndarray
    node_lo: np.ndarray
    node_hi: np.ndarray
    node_leaf: np.ndarray
    leaf_start: np.ndarray
    leaf_items: np.ndarray
    key: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return int(self.node_lo.shape[0])

    @property
    def n_paths(self) -> int:
        return int(self.leaf_start.shape[0] - 1)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return sum(int(getattr(self, f).nbytes) for f in _ARRAYS)

    def children(self, node: int) -> tuple[np.ndarray, np.ndarray]:
        """Tokens and child nodes of ``node``."""
        a, b = int(self.child_start[node]), int(self.child_start[node + 1])
        return self.edge_token[a:b], self.edge_child[a:b]

    def step(self, nodes: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """The child of each ``nodes[i]`` along ``tokens[i]`` (``-1`` where there is none)."""
        keys = (np.asarray(nodes, dtype=np.int64) << 32) | np.asarray(tokens, dtype=np.int64)
        at = np.searchsorted(self.edge_key, keys)
        at_c = np.minimum(at, len(self.edge_key) - 1)
        found = (at < len(self.edge_key)) & (self.edge_key[at_c] == keys)
        return np.where(found, self.edge_child[at_c], -1)

    def paths(self) -> list[list[int]]:
        """Every path's tokens, in path order (for inspection and tests)."""
        parent = np.zeros(self.n_nodes, dtype=np.int64)
        token = np.zeros(self.n_nodes, dtype=np.int64)
        counts = np.diff(self.child_start)
        parent[self.edge_child] = np.repeat(np.arange(self.n_nodes), counts)
        token[self.edge_child] = self.edge_token
        out = []
        for leaf_node in np.argsort(np.where(self.node_leaf >= 0, self.node_leaf, 1 << 40)):
            if self.node_leaf[leaf_node] < 0:
                break
            path, n = [], int(leaf_node)
            while n != 0:
                path.append(int(token[n]))
                n = int(parent[n])
            out.append(path[::-1])
        return out

    def save(self, path: str | Path) -> None:
        """Write the trie to ``path`` (``.npz``) atomically: a temporary file, then a rename."""
        meta = json.dumps({"format": _FORMAT, "key": self.key, "info": self.info})

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
                np.savez(f, meta=np.array(meta), **{k: getattr(self, k) for k in _ARRAYS})

        atomic_write_file(path, write)

    @classmethod
    def load(cls, path: str | Path) -> TokenTrie:
        """Read a trie written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path}: trie format {meta.get('format')}, expected {_FORMAT}")
            arrays = {k: z[k] for k in _ARRAYS}
        return cls(**arrays, key=meta["key"], info=meta["info"])


_ARRAYS = (
    "child_start",
    "edge_token",
    "edge_child",
    "edge_key",
    "node_lo",
    "node_hi",
    "node_leaf",
    "leaf_start",
    "leaf_items",
)


def _trie_key(titles: Sequence[str], tokenizer: Any, prefix: str, suffix: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([_FORMAT, tokenizer_fingerprint(tokenizer), prefix, suffix]).encode())
    for t in titles:
        h.update(b"\x00" + str(t).encode("utf-8"))
    return h.hexdigest()


def _tokenize_paths(
    titles: Sequence[str], tokenizer: Any, prefix: str, suffix: str
) -> tuple[list[list[int]], dict[str, int]]:
    """Each title's tokens as generated after ``prefix``, with ``suffix`` appended."""
    counts = {"merged_with_prefix": 0}
    texts = [prefix + t + suffix for t in titles]
    full = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    if not prefix:
        return [list(f) for f in full], counts
    head = list(tokenizer(prefix, add_special_tokens=False)["input_ids"])
    out: list[list[int]] = []
    alone: list[int] = []
    for i, f in enumerate(full):
        if list(f[: len(head)]) == head:
            out.append(list(f[len(head) :]))
        else:  # the title's first bytes merged with the prefix: tokenize it on its own
            out.append([])
            alone.append(i)
    if alone:
        counts["merged_with_prefix"] = len(alone)
        apart = tokenizer([titles[i] + suffix for i in alone], add_special_tokens=False)
        for i, ids in zip(alone, apart["input_ids"], strict=True):
            out[i] = list(ids)
    return out, counts


def compile_trie(
    titles: Sequence[str],
    tokenizer: Any,
    *,
    prefix: str = "",
    suffix: str = "",
    cache_dir: str | Path | None = None,
) -> TokenTrie:
    """Compile the token trie of ``titles`` (each tokenized as ``prefix + title + suffix`` minus
    the tokens of ``prefix``), or fetch it from the memory or ``cache_dir`` cache.

    Empty titles are left out and counted in ``info["skipped_empty"]``; equal titles share one
    path (``info["duplicate_titles"]``); a title whose path is a proper prefix of another's is
    ``info["shadowed"]`` (the shorter one ends the span first). ``info["compile_s"]`` is the time
    of the compilation itself, ``info["source"]`` says where the trie came from.

    >>> tok = ToyTokenizer({"a": 1, "b": 2, "c": 3, ";": 4})
    >>> t = compile_trie(["ab", "ac", "b", "ab"], tok, suffix=";")
    >>> t.n_paths, t.n_nodes, t.info["duplicate_titles"], t.leaf_items.tolist()
    (3, 8, 1, [0, 3, 1, 2])
    """
    titles = [str(t) if t is not None else "" for t in titles]
    key = _trie_key(titles, tokenizer, prefix, suffix)
    with _LOCK:
        hit = _MEMORY.get(key)
        if hit is not None:
            _MEMORY.move_to_end(key)
            hit.info["source"] = "memory"
            return hit
    file = Path(cache_dir) / f"trie-{key[:32]}.npz" if cache_dir is not None else None
    trie = None
    if file is not None and file.is_file():
        try:
            trie = TokenTrie.load(file)
            if trie.key != key:
                trie = None
            else:
                trie.info["source"] = "disk"
        except (OSError, ValueError, KeyError):
            trie = None  # unreadable or from another version: rebuilt and rewritten
    if trie is None:
        start = time.perf_counter()
        paths, counts = _tokenize_paths(titles, tokenizer, prefix, suffix)
        trie = _build(paths)
        trie.key = key
        trie.info.update(counts)
        trie.info.update(
            n_titles=len(titles),
            prefix=prefix,
            suffix=suffix,
            compile_s=round(time.perf_counter() - start, 6),
            source="compiled",
        )
        if file is not None:
            trie.save(file)
    with _LOCK:
        _MEMORY[key] = trie
        while len(_MEMORY) > _MEMORY_SIZE:
            _MEMORY.popitem(last=False)
    return trie


def _build(paths: Sequence[Sequence[int]]) -> TokenTrie:
    keep = np.array([i for i, p in enumerate(paths) if len(p) > 0], dtype=np.int64)
    lengths = np.array([len(paths[i]) for i in keep], dtype=np.int64)
    n, width = len(keep), int(lengths.max()) if len(keep) else 0
    m = np.full((n, width), -1, dtype=np.int64)
    if n:
        flat = np.fromiter((t for i in keep for t in paths[i]), dtype=np.int64, count=lengths.sum())
        rows = np.repeat(np.arange(n), lengths)
        cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        m[rows, cols] = flat
    order = np.lexsort(m.T[::-1]) if n else np.zeros(0, dtype=np.int64)
    s, lengths, items = m[order], lengths[order], keep[order]
    valid = np.arange(width)[None, :] < lengths[:, None]
    differs = np.ones((n, width), dtype=bool)
    if n > 1:
        differs[1:] = np.logical_or.accumulate(s[1:] != s[:-1], axis=1)
    new = differs & valid  # (row, depth) where a node first appears
    ids = np.zeros((n, width), dtype=np.int64)
    ids[new] = np.arange(1, int(new.sum()) + 1)  # row-major: ids grow down each column
    ids = np.maximum.accumulate(ids, axis=0) if n else ids
    ids = np.where(valid, ids, 0)
    n_nodes = int(new.sum()) + 1
    row_new = np.ones(n, dtype=bool)
    if n > 1:
        row_new[1:] = (s[1:] != s[:-1]).any(axis=1)
    leaf_of_row = np.cumsum(row_new) - 1
    n_paths = int(row_new.sum())
    # edges: one per new node
    r, d = np.nonzero(new)
    child = ids[r, d]
    parent = np.where(d > 0, ids[r, np.maximum(d - 1, 0)], 0)
    token = s[r, d]
    eorder = np.lexsort((token, parent))
    parent, token, child = parent[eorder], token[eorder], child[eorder]
    child_start = np.zeros(n_nodes + 1, dtype=np.int64)
    np.add.at(child_start, parent + 1, 1)
    child_start = np.cumsum(child_start)
    # subtree ranges of paths: rows sharing a prefix are contiguous
    node_lo = np.full(n_nodes, n_paths, dtype=np.int64)
    node_hi = np.zeros(n_nodes, dtype=np.int64)
    vr, vd = np.nonzero(valid)
    np.minimum.at(node_lo, ids[vr, vd], leaf_of_row[vr])
    np.maximum.at(node_hi, ids[vr, vd], leaf_of_row[vr] + 1)
    node_lo[0], node_hi[0] = 0, n_paths
    node_leaf = np.full(n_nodes, -1, dtype=np.int64)
    if n:
        node_leaf[ids[np.arange(n), lengths - 1]] = leaf_of_row
    leaf_start = np.zeros(n_paths + 1, dtype=np.int64)
    np.add.at(leaf_start, leaf_of_row + 1, 1)
    leaf_start = np.cumsum(leaf_start)
    shadowed = int(((node_leaf >= 0) & (np.diff(child_start) > 0)).sum())
    return TokenTrie(
        child_start=child_start,
        edge_token=token.astype(np.int64),
        edge_child=child.astype(np.int64),
        edge_key=(parent << 32) | token,
        node_lo=node_lo,
        node_hi=node_hi,
        node_leaf=node_leaf,
        leaf_start=leaf_start,
        leaf_items=items.astype(np.int64),
        info={
            "n_paths": n_paths,
            "n_nodes": n_nodes,
            "n_edges": int(len(token)),
            "max_path_tokens": width,
            "skipped_empty": int(len(paths) - n),
            "duplicate_titles": int(n - n_paths),
            "shadowed": shadowed,
        },
    )


# -- the opening-delimiter automaton --------------------------------------------------------------
_OPENERS: OrderedDict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()


def _opener_tables(tokenizer: Any, opener: str, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(next_state, bad)`` over the vocabulary for spotting ``opener`` at the end of the text.

    State ``s`` = how many bytes of the opener the text ends with (KMP). ``next_state[s, t]`` is
    the state after token ``t`` (``len(opener)`` = the opener just ended, exactly at the end of
    ``t``); ``bad[s, t]`` marks tokens that would end the opener inside themselves (and go on
    with more text, which the trie could not follow): they are banned outside spans.
    """
    key = (tokenizer_fingerprint(tokenizer), opener, vocab_size)
    hit = _OPENERS.get(key)
    if hit is not None:
        return hit
    pattern = opener.encode("utf-8")
    size = len(pattern)
    dfa = np.zeros((size, 256), dtype=np.int64)  # KMP automaton over bytes
    dfa[0, pattern[0]] = 1
    back = 0
    for s in range(1, size):
        dfa[s] = dfa[back]
        dfa[s, pattern[s]] = s + 1
        back = int(dfa[back, pattern[s]])
    pieces = token_bytes(tokenizer, vocab_size)
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    longest = int(lengths.max()) if len(pieces) else 0
    mat = np.zeros((len(pieces), max(longest, 1)), dtype=np.uint8)
    flat = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    rows = np.repeat(np.arange(len(pieces)), lengths)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    mat[rows, cols] = flat
    nxt = np.zeros((size, len(pieces)), dtype=np.int64)
    bad = np.zeros((size, len(pieces)), dtype=bool)
    for s0 in range(size):
        st = np.full(len(pieces), s0, dtype=np.int64)
        done = np.zeros(len(pieces), dtype=bool)
        for j in range(longest):
            live = (j < lengths) & ~done
            if not live.any():
                break
            step = dfa[np.minimum(st, size - 1), mat[:, j]]
            st = np.where(live, step, st)
            hit_now = live & (st == size)
            bad[s0] |= hit_now & (j < lengths - 1)
            done |= hit_now
        nxt[s0] = st
    _OPENERS[key] = (nxt, bad)
    while len(_OPENERS) > _MEMORY_SIZE:
        _OPENERS.popitem(last=False)
    return nxt, bad


# -- parsing --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpanParse:
    """Items found in a reply: ``items`` (indices into the constraint's titles, in order),
    their ``titles``, ``unknown`` (span texts that are no title: only without the constraint),
    ``repeated`` (titles named again, left out of ``items``) and ``unfinished`` (the text of a
    span cut off by ``max_tokens``, or ``None``)."""

    items: list[int]
    titles: list[str]
    unknown: list[str]
    repeated: list[str]
    unfinished: str | None


# -- the constraint -------------------------------------------------------------------------------
class CatalogConstraint:
    """Constrain generation to catalog titles (a bindable logits processor).

    ``titles`` (and optional ``ids``, the external ids returned by grounding; default: indices).
    ``mode="span"``: free text; after ``open`` only a title then ``close`` can follow.
    ``mode="list"``: the reply is titles, each followed by ``separator``, nothing else; exactly
    ``n_items`` of them when given (then end of sequence), otherwise the model may stop after
    any complete item. ``no_repeat``: a title is named at most once per reply. ``exclude``:
    titles never to name (indices into ``titles``; e.g. the user's history), one list for every
    conversation, or one list per conversation of the ``chat_batch`` call (see
    :meth:`excluding`). ``cache_dir``: keep compiled tries on disk as well as in memory.

    Use it as ``llm.chat(messages, logits_processors=[constraint])``, then
    ``constraint.parse(text)`` (or :func:`recommend_constrained` for both). ``constraint.bound``
    holds the processors of the last call (their ``stats`` count items, broken spans and rows
    that ran out of titles).
    """

    def __init__(
        self,
        titles: Sequence[str],
        *,
        ids: Sequence[Any] | None = None,
        mode: Literal["span", "list"] = "span",
        open: str = "<item>",
        close: str = "</item>",
        separator: str = "\n",
        n_items: int | None = None,
        no_repeat: bool = True,
        exclude: Sequence[int] | Sequence[Sequence[int]] | None = None,
        cache_dir: str | Path | None = None,
    ):
        if mode not in ("span", "list"):
            raise RecaiError(f"mode must be 'span' or 'list', got {mode!r}")
        if mode == "span" and (not open or not close):
            raise RecaiError("mode='span' needs non-empty open and close delimiters")
        if mode == "list" and not separator:
            raise RecaiError("mode='list' needs a non-empty separator")
        if n_items is not None and n_items < 1:
            raise RecaiError(f"n_items must be at least 1, got {n_items}")
        self.titles = [str(t) if t is not None else "" for t in titles]
        if ids is not None and len(ids) != len(self.titles):
            raise RecaiError(f"{len(ids)} ids for {len(self.titles)} titles")
        self.ids = list(ids) if ids is not None else None
        self.mode = mode
        self.open, self.close, self.separator = open, close, separator
        self.n_items = n_items
        self.no_repeat = no_repeat
        self.cache_dir = cache_dir
        self.bound: list[ItemSpanProcessor] = []
        self._index: dict[str, int] | None = None
        self._tries: dict[int, tuple[Any, TokenTrie]] = {}
        self.exclude = self._check_exclude(exclude)

    def _check_exclude(
        self, exclude: Sequence[int] | Sequence[Sequence[int]] | None
    ) -> list[np.ndarray] | None:
        """``exclude`` as one array per conversation (a single array: the same for all)."""
        if exclude is None:
            return None
        rows: list[Any] = list(exclude)
        flat = all(np.ndim(r) == 0 for r in rows)
        if flat:
            rows = [rows]
        out = []
        n = len(self.titles)
        for k, r in enumerate(rows):
            try:
                a = np.asarray(r, dtype=np.int64).reshape(-1)
            except (TypeError, ValueError):
                raise RecaiError(
                    f"exclude must hold title indices (integers), got {r!r}"
                    + ("" if flat else f" for conversation {k}")
                ) from None
            bad = a[(a < 0) | (a >= n)]
            if len(bad):
                raise RecaiError(
                    f"exclude names title index {int(bad[0])}, outside 0..{n - 1}"
                    + ("" if flat else f" (conversation {k})")
                )
            out.append(a)
        return out

    def excluding(self, exclude: Sequence[int] | Sequence[Sequence[int]]) -> CatalogConstraint:
        """This constraint, banning ``exclude`` as well: a list of title indices (every
        conversation) or one such list per conversation of the next call. Shares the compiled
        tries, so it costs nothing to make one per request.

        >>> c = CatalogConstraint(["Heat (1995)", "Up (2009)"], mode="list")
        >>> [a.tolist() for a in c.excluding([[0], [1]]).exclude]
        [[0], [1]]
        """
        other = copy.copy(self)
        other.bound = []
        other.exclude = self._check_exclude(exclude)
        return other

    @classmethod
    def from_catalog(cls, catalog: Any, **options: Any) -> CatalogConstraint:
        """The constraint over a :class:`recai.data.Catalog`'s titles, grounding to its ids."""
        return cls(list(catalog.titles), ids=list(catalog.ids), **options)

    def __repr__(self) -> str:
        excl = f", exclude={len(self.exclude)} list(s)" if self.exclude is not None else ""
        return f"CatalogConstraint({len(self.titles)} titles, mode={self.mode!r}{excl})"

    @property
    def _prefix_suffix(self) -> tuple[str, str]:
        if self.mode == "span":
            return self.open, self.close
        return self.separator, self.separator

    def compile(self, tokenizer: Any) -> TokenTrie:
        """The trie of these titles for ``tokenizer`` (compiled once, then cached)."""
        held = self._tries.get(id(tokenizer))
        if held is not None and held[0] is tokenizer:
            return held[1]
        prefix, suffix = self._prefix_suffix
        trie = compile_trie(
            self.titles, tokenizer, prefix=prefix, suffix=suffix, cache_dir=self.cache_dir
        )
        self._tries[id(tokenizer)] = (tokenizer, trie)
        return trie

    def bind(self, context: GenerationContext) -> ItemSpanProcessor:
        """The processor of one ``generate`` call (per-row state over the shared trie)."""
        trie = self.compile(context.tokenizer)
        tables = None
        if self.mode == "span":
            tables = _opener_tables(context.tokenizer, self.open, context.vocab_size)
        proc = ItemSpanProcessor(self, trie, context, tables)
        self.bound = [*self.bound[-7:], proc]
        return proc

    # grounding
    def _title_index(self) -> dict[str, int]:
        if self._index is None:
            index: dict[str, int] = {}
            for i, t in enumerate(self.titles):
                index.setdefault(t, i)
            self._index = index
        return self._index

    def ground(self, item: int) -> Any:
        """The id of title index ``item`` (the index itself when no ``ids`` were given)."""
        return self.ids[item] if self.ids is not None else item

    def parse(self, text: str) -> SpanParse:
        """The titles in a reply, as indices into ``titles`` (exact match; first of equal ones).

        >>> c = CatalogConstraint(["Heat (1995)", "Up (2009)"], mode="list")
        >>> p = c.parse("Up (2009)\\nHeat (1995)\\nUp (2009)\\nJaws\\nHea")
        >>> p.items, p.repeated, p.unknown
        ([1, 0], ['Up (2009)'], ['Jaws', 'Hea'])
        """
        spans: list[str] = []
        unfinished = None
        if self.mode == "list":
            spans = [s.strip() for s in text.split(self.separator)]
            spans = [s for s in spans if s]
        else:
            pos = 0
            while True:
                a = text.find(self.open, pos)
                if a < 0:
                    break
                b = text.find(self.close, a + len(self.open))
                if b < 0:
                    unfinished = text[a + len(self.open) :]
                    break
                spans.append(text[a + len(self.open) : b])
                pos = b + len(self.close)
        index = self._title_index()
        items: list[int] = []
        unknown: list[str] = []
        repeated: list[str] = []
        seen: set[int] = set()
        for s in spans:
            i = index.get(s)
            if i is None:
                unknown.append(s)
            elif i in seen:
                repeated.append(s)
            else:
                seen.add(i)
                items.append(i)
        return SpanParse(items, [self.titles[i] for i in items], unknown, repeated, unfinished)


class ItemSpanProcessor:
    """The per-call processor made by :meth:`CatalogConstraint.bind` (see the module docstring).

    Per row: ``node`` (``-1`` outside a span), the opener automaton's state, how many items are
    done, the path numbers used so far, and whether the row has ended. ``stats``: ``items``
    (completed), ``broken`` (a token left the trie: another processor overrode this one),
    ``exhausted`` (a row had no unused title left and was ended).
    """

    def __init__(
        self,
        owner: CatalogConstraint,
        trie: TokenTrie,
        context: GenerationContext,
        tables: tuple[np.ndarray, np.ndarray] | None,
    ):
        import torch

        self.trie = trie
        self.context = context
        self.list_mode = owner.mode == "list"
        self.n_items = owner.n_items
        self.no_repeat = owner.no_repeat
        dev = torch.device(context.device) if context.device is not None else torch.device("cpu")
        self.device = dev
        b = context.batch_size

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, device=dev)

        self.child_start, self.edge_token = t(trie.child_start), t(trie.edge_token)
        self.edge_child, self.edge_key = t(trie.edge_child), t(trie.edge_key)
        self.node_lo, self.node_hi, self.node_leaf = (
            t(trie.node_lo),
            t(trie.node_hi),
            t(trie.node_leaf),
        )
        self.eos = torch.tensor(list(context.eos_token_ids), dtype=torch.long, device=dev)
        self.ends = torch.tensor(
            sorted({*context.eos_token_ids, context.pad_token_id}), dtype=torch.long, device=dev
        )
        if tables is not None:
            nxt, bad = tables
            self.next_state = t(nxt)
            self.opener_len = int(nxt.shape[0])
            self.any_bad = bool(bad.any())
            states, tokens = np.nonzero(bad)  # row-major: grouped by state, tokens sorted
            counts = np.bincount(states, minlength=self.opener_len + 1)
            self.bad_tokens = t(tokens.astype(np.int64))
            self.bad_count = t(counts.astype(np.int64))
            self.bad_start = t((np.cumsum(counts) - counts).astype(np.int64))
        else:
            self.next_state = None
            self.opener_len = 0
            self.any_bad = False
        start = 0 if self.list_mode else -1
        self.node = torch.full((b,), start, dtype=torch.long, device=dev)
        self.state = torch.zeros(b, dtype=torch.long, device=dev)
        self.count = torch.zeros(b, dtype=torch.long, device=dev)
        # paths a row may not take (left-aligned, -1 after): the excluded ones, then with
        # no_repeat the ones it named; ``fill`` counts them
        banned = _banned_paths(owner, trie, context)
        width = max(4, max((len(x) for x in banned), default=0))
        used = np.full((b, width), -1, dtype=np.int64)
        for r, x in enumerate(banned):
            used[r, : len(x)] = x
        self.used = t(used)
        self.fill = t(np.array([len(x) for x in banned] or [0] * b, dtype=np.int64))
        self.finished = torch.zeros(b, dtype=torch.bool, device=dev)
        self.seen = 0
        self.stats = {"items": 0, "broken": 0, "exhausted": 0}

    # state update -----------------------------------------------------------------------------
    def _advance(self, tok: torch.Tensor) -> None:
        import torch

        live = ~self.finished
        ending = torch.isin(tok, self.eos)
        in_span = live & (self.node >= 0)
        if bool(in_span.any()):
            keys = (self.node.clamp(min=0) << 32) | tok
            at = torch.searchsorted(self.edge_key, keys)
            at_c = at.clamp(max=len(self.edge_key) - 1)
            found = (at < len(self.edge_key)) & (self.edge_key[at_c] == keys)
            child = torch.where(found, self.edge_child[at_c], -1)
            broken = in_span & ~found & ~ending  # ending: the row ran out of titles
            self.stats["broken"] += int(broken.sum())
            leaf = torch.where(found, self.node_leaf[child.clamp(min=0)], -1)
            done = in_span & (leaf >= 0)
            if bool(done.any()):
                rows = torch.nonzero(done).squeeze(1)
                if self.no_repeat:  # remember the path so that no later step offers it
                    need = int(self.fill[rows].max()) + 1
                    if need > self.used.shape[1]:
                        grow = torch.full(
                            (self.used.shape[0], max(need, 2 * self.used.shape[1])),
                            -1,
                            dtype=torch.long,
                            device=self.device,
                        )
                        grow[:, : self.used.shape[1]] = self.used
                        self.used = grow
                    self.used[rows, self.fill[rows]] = leaf[rows]
                    self.fill[rows] += 1
                self.count[rows] += 1
                self.stats["items"] += int(rows.numel())
            after = 0 if self.list_mode else -1
            if self.list_mode and self.n_items is not None:
                after_t = torch.where(self.count >= self.n_items, -1, 0)
            else:
                after_t = torch.full_like(self.node, after)
            new_node = torch.where(done, after_t, child)
            self.node = torch.where(in_span, new_node, self.node)
        if self.next_state is not None:
            free = live & (self.node < 0) & ~in_span
            if bool(free.any()):
                st = self.next_state[self.state.clamp(max=self.opener_len - 1), tok]
                opened = free & (st == self.opener_len)
                self.state = torch.where(free, torch.where(opened, 0, st), self.state)
                self.node = torch.where(opened, 0, self.node)
        self.finished |= live & ending

    # masking ------------------------------------------------------------------------------------
    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        generated = input_ids.shape[1] - self.context.prompt_length
        for k in range(self.seen, generated):
            self._advance(input_ids[:, self.context.prompt_length + k].to(self.device))
        self.seen = max(self.seen, generated)
        neg = float("-inf")
        live = ~self.finished
        in_span = live & (self.node >= 0)
        out = scores
        if self.list_mode:
            ended = live & (self.node < 0)  # n_items reached: only end of sequence
            if bool(ended.any()):
                done = ended.nonzero().squeeze(1)
                kept = out[done][:, self.eos]
                out = out.index_fill(0, done, neg)
                out[done[:, None], self.eos[None, :]] = kept
        elif self.any_bad:
            free = live & (self.node < 0) & (self.bad_count[self.state] > 0)
            if bool(free.any()):
                rows = free.nonzero().squeeze(1)
                st = self.state[rows]
                starts, counts = self.bad_start[st], self.bad_count[st]
                total = int(counts.sum())
                row_of = torch.repeat_interleave(rows, counts, output_size=total)
                offset = torch.repeat_interleave(
                    starts - (torch.cumsum(counts, 0) - counts), counts, output_size=total
                )
                out = out.clone()
                out[row_of, self.bad_tokens[torch.arange(total, device=self.device) + offset]] = neg
        if not bool(in_span.any()):
            return out
        rows = torch.nonzero(in_span).squeeze(1)
        nodes = self.node[rows]
        starts = self.child_start[nodes]
        counts = self.child_start[nodes + 1] - starts
        total = int(counts.sum())
        row_of = torch.repeat_interleave(rows, counts, output_size=total)
        offset = torch.repeat_interleave(
            starts - (torch.cumsum(counts, 0) - counts), counts, output_size=total
        )
        edges = torch.arange(total, device=self.device) + offset
        tokens = self.edge_token[edges]
        if bool((self.fill[rows] > 0).any()):
            children = self.edge_child[edges]
            lo, hi = self.node_lo[children], self.node_hi[children]
            used = self.used[row_of]
            taken = ((used >= lo[:, None]) & (used < hi[:, None])).sum(1)
            alive = (hi - lo) > taken
            row_of, tokens = row_of[alive], tokens[alive]
        if self.list_mode and self.n_items is None:  # any complete list may end here
            may_end = in_span & (self.node == 0) & (self.count > 0)
            if bool(may_end.any()):
                ends = may_end.nonzero().squeeze(1)
                row_of = torch.cat([row_of, ends.repeat_interleave(len(self.eos))])
                tokens = torch.cat([tokens, self.eos.repeat(len(ends))])
        empty = in_span & (torch.bincount(row_of, minlength=len(self.node)) == 0)
        if bool(empty.any()):  # every title below this node is used: end the reply
            self.stats["exhausted"] += int(empty.sum())
            ends = empty.nonzero().squeeze(1)
            row_of = torch.cat([row_of, ends.repeat_interleave(len(self.eos))])
            tokens = torch.cat([tokens, self.eos.repeat(len(ends))])
        masked = out.index_fill(0, rows, neg)  # whole rows at once: much faster than a mask
        masked[row_of, tokens] = scores[row_of, tokens]
        return masked


def _banned_paths(
    owner: CatalogConstraint, trie: TokenTrie, context: GenerationContext
) -> list[np.ndarray]:
    """Per generated row, the trie paths of the titles its conversation excludes."""
    b = context.batch_size
    if owner.exclude is None:
        return [np.zeros(0, dtype=np.int64)] * b
    path_of = np.full(len(owner.titles), -1, dtype=np.int64)
    path_of[trie.leaf_items] = np.repeat(np.arange(trie.n_paths), np.diff(trie.leaf_start))
    lists = owner.exclude
    out = []
    for r in range(b):
        conv = context.rows[r] if r < len(context.rows) else r
        if len(lists) == 1:
            x = lists[0]
        elif conv < len(lists):
            x = lists[conv]
        else:
            raise RecaiError(
                f"exclude has {len(lists)} lists (one per conversation), but the call has "
                f"conversation {conv}"
            )
        p = path_of[x]
        out.append(np.unique(p[p >= 0]))  # empty titles have no path
    return out


# -- convenience ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recommendation:
    """What :func:`recommend_constrained` returns: catalog ``items`` (indices into the titles),
    their ``ids`` and ``titles``, the raw ``completion`` and the ``parse`` of its text."""

    items: list[int]
    ids: list[Any]
    titles: list[str]
    completion: Completion
    parse: SpanParse


def recommend_constrained(
    backend: LLMBackend,
    messages: Sequence[Message],
    catalog: Any,
    n: int = 10,
    *,
    separator: str = "\n",
    max_tokens: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    exclude: Sequence[int] | None = None,
    cache_dir: str | Path | None = None,
) -> Recommendation:
    """``n`` distinct catalog titles for a conversation, generated under the catalog constraint.

    ``catalog`` is a :class:`recai.data.Catalog` (grounded to its ids) or a list of titles
    (grounded to indices). The reply is ``n`` titles, each followed by ``separator``;
    ``max_tokens`` defaults to ``n`` times the longest title path, enough to always finish.
    ``exclude``: items never to recommend (indices into the catalog or the title list, e.g.
    the user's history). ``backend`` must accept ``logits_processors`` (``hf.v1`` does). Pass the same
    :class:`CatalogConstraint` repeatedly (use the class directly) to skip even the cache lookup.
    """
    if hasattr(catalog, "titles") and hasattr(catalog, "ids"):
        constraint = CatalogConstraint.from_catalog(
            catalog,
            mode="list",
            separator=separator,
            n_items=n,
            exclude=exclude,
            cache_dir=cache_dir,
        )
    else:
        constraint = CatalogConstraint(
            list(catalog),
            mode="list",
            separator=separator,
            n_items=n,
            exclude=exclude,
            cache_dir=cache_dir,
        )
    if "logits_processors" not in getattr(backend, "capabilities", ()):
        raise RecaiError(
            f"{type(backend).__name__} does not take logits processors: use hf.v1 (recai-hf)"
        )
    if max_tokens is None:
        tokenizer = getattr(backend, "tokenizer", None)
        longest = constraint.compile(tokenizer).info["max_path_tokens"] if tokenizer else 64
        max_tokens = n * longest + 1
    completion = backend.chat(  # type: ignore[call-arg]
        messages,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        logits_processors=[constraint],
    )
    parsed = constraint.parse(completion.text)
    return Recommendation(
        items=parsed.items,
        ids=[constraint.ground(i) for i in parsed.items],
        titles=parsed.titles,
        completion=completion,
        parse=parsed,
    )
