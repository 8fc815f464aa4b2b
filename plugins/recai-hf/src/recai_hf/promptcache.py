"""The key/value caches of an ``hf.v1`` backend's recent prompts (``prompt_cache``).

An agent sends its model the same long instruction again and again, with only the end of the
prompt new. :class:`PromptCache` keeps the key/value cache of the last few prompts (a small LRU,
bounded in number and in bytes); for a new prompt it finds the kept one sharing the longest
token prefix and returns a copy of that cache cut to the shared tokens, so the model reads only
the tokens after them. The copy is the caller's to extend: the kept cache is never changed.

Only caches that ``crop`` cuts back exactly (full attention; see ``backend._croppable``) belong
here: the backend checks that before it adds one. Nothing here imports torch or transformers at
import time; the cache objects are handled through :func:`fork` and their ``crop``.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PromptCache", "common_prefix", "fork"]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def fork(cache: Any) -> Any:
    """A copy of ``cache`` that can be extended, cut or repeated without changing ``cache``.

    Where every layer is a plain transformers ``DynamicLayer`` (it never writes into its
    tensors: ``update`` concatenates, ``crop`` slices, batch repeats and selections make new
    tensors), a new cache object with new layer objects sharing the tensors: nothing is copied.
    Any other cache (static, offloaded, quantized layers, ...) is deep-copied.
    """
    layers = getattr(cache, "layers", None)
    plain = False
    if isinstance(layers, list) and layers and not getattr(cache, "offloading", False):
        try:
            from transformers.cache_utils import DynamicLayer
        except ImportError:  # pragma: no cover - a cache object means transformers is there
            DynamicLayer = None  # noqa: N806
        plain = DynamicLayer is not None and all(type(layer) is DynamicLayer for layer in layers)
    if not plain or not isinstance(layers, list):
        return copy.deepcopy(cache)
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in layers]
    return out


@dataclass
class _Entry:
    ids: tuple[int, ...]
    cache: Any
    nbytes: int


class PromptCache:
    """The key/value caches of the last ``entries`` token sequences, at most ``budget`` bytes.

    ``add`` keeps a sequence's cache (the oldest go first when either bound would be passed; one
    larger than the budget is not kept); ``match`` gives a copy of the cache of a new prompt's
    longest kept prefix, at least ``min_tokens`` long and one token short of the whole prompt at
    most (the model must read one token to give the next token's logits). Not thread-safe: the
    backend calls it under the lock that serialises its model.
    """

    def __init__(self, entries: int, budget: int, *, min_tokens: int = 16):
        if entries < 1 or budget < 1:
            raise ValueError(f"entries and budget must be positive, got {entries}, {budget}")
        self.entries = int(entries)
        self.budget = int(budget)
        self.min_tokens = max(1, int(min_tokens))
        self._kept: OrderedDict[int, _Entry] = OrderedDict()  # newest last
        self._next = 0
        self.hits = 0
        self.misses = 0
        self.reused_tokens = 0  # prompt tokens not read again, over all hits

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def nbytes(self) -> int:
        """Bytes of the kept caches (as the backend measured them when adding)."""
        return sum(e.nbytes for e in self._kept.values())

    def stats(self) -> dict[str, int]:
        """Kept entries and bytes, hits, misses and prompt tokens reused so far."""
        return {
            "entries": len(self._kept),
            "bytes": self.nbytes,
            "hits": self.hits,
            "misses": self.misses,
            "reused_tokens": self.reused_tokens,
        }

    def clear(self) -> None:
        """Forget every kept cache (the counters stay)."""
        self._kept.clear()

    def longest(self, ids: Sequence[int]) -> tuple[int, int | None]:
        """``(tokens, key)`` of the kept sequence sharing the longest prefix with ``ids``, capped
        at ``len(ids) - 1``; ``(0, None)`` when none shares ``min_tokens``."""
        best, key = 0, None
        for k, entry in self._kept.items():
            n = min(common_prefix(entry.ids, ids), len(ids) - 1)
            if n >= best:  # on a tie, the newest (it comes later)
                best, key = n, k
        return (best, key) if best >= self.min_tokens else (0, None)

    def match(self, ids: Sequence[int]) -> tuple[int, Any] | None:
        """``(n, cache)``: a :func:`fork` of the cache of the longest kept prefix of ``ids``, cut to
        its first ``n`` tokens; None (a miss) when no kept sequence shares ``min_tokens``."""
        n, key = self.longest(ids)
        if key is None:
            self.misses += 1
            return None
        entry = self._kept[key]
        self._kept.move_to_end(key)
        cache = fork(entry.cache)
        extra = len(entry.ids) - n
        if extra > 0:
            cache.crop(-extra)
        self.hits += 1
        self.reused_tokens += n
        return n, cache

    def add(self, ids: Sequence[int], cache: Any, nbytes: int) -> bool:
        """Keep ``cache``, which holds the keys and values of exactly ``ids``; the caller hands
        it over (it must not change it afterwards: keep a :func:`fork` to go on with). A kept sequence that ``ids`` extends, or that
        equals it, is dropped (the new one holds it). False when it is larger than the budget."""
        if nbytes > self.budget or not ids:
            return False
        ids = tuple(int(t) for t in ids)
        for k in [k for k, e in self._kept.items() if ids[: len(e.ids)] == e.ids]:
            del self._kept[k]
        while self._kept and (
            len(self._kept) >= self.entries or self.nbytes + nbytes > self.budget
        ):
            self._kept.popitem(last=False)
        self._kept[self._next] = _Entry(ids, cache, int(nbytes))
        self._next += 1
        return True
