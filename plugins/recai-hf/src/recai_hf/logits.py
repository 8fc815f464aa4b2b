"""The logits-processor hook of ``hf.v1``: how constrained decoding plugs into generation.

Every generating call of :class:`~recai_hf.backend.HFBackend` (``chat``, ``chat_batch``,
``stream``) takes ``logits_processors=[...]``, and :meth:`~recai_hf.backend.HFBackend.
with_logits_processors` returns a backend that applies some to every call (to hand a constrained
model to a component that only knows :class:`recai.LLMBackend`). A processor is one of two kinds:

- **plain**: a callable ``(input_ids, scores) -> scores`` on torch tensors, as in transformers
  (any ``transformers.LogitsProcessor`` works). ``input_ids`` is ``(batch, prompt_length + step)``
  and ``scores`` the next-token logits ``(batch, vocab)``; return them changed (``-inf`` bans a
  token). The same object serves every call, so it must keep no state between calls.
- **bindable**: an object with ``bind(context) -> processor``. The backend calls ``bind`` once per
  ``generate`` call with a :class:`GenerationContext` (tokenizer, where the generated tokens
  start, which conversation each row is) and uses the plain processor it returns for that call
  only. This is the shape for state compiled once and walked per call: a prefix tree over a
  catalog's titles compiled once per catalog, with per-row positions created in ``bind``; a JSON
  grammar with a per-row parser state.

Batches are **left-padded**: every row's prompt ends at column ``context.prompt_length - 1``, so
``input_ids[:, context.prompt_length:]`` are exactly the tokens generated so far, the same width for
every row. ``context.rows[b]`` is the index, in the list given to ``chat_batch``, of the
conversation in row ``b`` (``chat_batch`` sorts conversations by length and cuts them into
batches). Rows that finished keep being passed (padded with ``context.pad_token_id``): ignore them.

Two processors come ready: :class:`BanTokens` (plain) and :class:`ForceText` (bindable).

>>> import torch
>>> ban = BanTokens([1, 3])
>>> ban(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 4)).tolist()
[[0.0, -inf, 0.0, -inf]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

__all__ = [
    "BanTokens",
    "Bindable",
    "ForceText",
    "GenerationContext",
    "LogitsProcessorLike",
    "bind_all",
]

#: A plain processor: ``(input_ids, scores) -> scores``.
PlainProcessor = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class GenerationContext:
    """What a bindable processor learns about one ``generate`` call.

    ``prompt_length``: columns of the left-padded prompt block (generated tokens start there);
    ``rows[b]``: index of row ``b``'s conversation in the list the caller passed; ``vocab_size``:
    width of ``scores`` (it can exceed ``len(tokenizer)``); ``eos_token_ids``: the tokens that end
    a row; ``pad_token_id``: what fills finished rows.
    """

    tokenizer: Any
    prompt_length: int
    batch_size: int
    rows: tuple[int, ...]
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    vocab_size: int
    device: Any = "cpu"


@runtime_checkable
class Bindable(Protocol):
    """A processor with per-call state: ``bind(context)`` returns the plain processor of a call."""

    def bind(self, context: GenerationContext) -> PlainProcessor: ...


LogitsProcessorLike = PlainProcessor | Bindable


def bind_all(processors: Sequence[Any], context: GenerationContext) -> list[PlainProcessor]:
    """The plain processors of one call: bindable ones bound to ``context``, others as given."""
    out: list[PlainProcessor] = []
    for p in processors:
        if isinstance(p, Bindable):
            bound = p.bind(context)
            if not callable(bound):
                raise TypeError(
                    f"{type(p).__name__}.bind returned {type(bound).__name__}, not a callable"
                )
            out.append(bound)
        elif callable(p):
            out.append(p)
        else:
            raise TypeError(
                f"a logits processor must be callable (input_ids, scores) -> scores or have "
                f"bind(context); got {type(p).__name__}"
            )
    return out


class BanTokens:
    """Never generate the given token ids (plain processor).

    Ban words by their tokens: ``BanTokens(tok(" blue", add_special_tokens=False).input_ids[:1])``.
    """

    def __init__(self, token_ids: Sequence[int]):
        self.token_ids = [int(t) for t in token_ids]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        scores[:, self.token_ids] = float("-inf")
        return scores

    def __repr__(self) -> str:
        return f"BanTokens({self.token_ids!r})"


class ForceText:
    """Make every row generate exactly ``text`` and then stop (bindable processor).

    Useful to test a pipeline end to end with a known answer, and the smallest example of a
    bindable processor: ``bind`` tokenizes the text with the call's tokenizer and the returned
    processor reads its position from ``input_ids.shape[1] - context.prompt_length``.
    """

    def __init__(self, text: str):
        self.text = text

    def bind(self, context: GenerationContext) -> PlainProcessor:
        ids = context.tokenizer(self.text, add_special_tokens=False)["input_ids"]
        plan = [*ids, context.eos_token_ids[0]]

        def force(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            step = input_ids.shape[1] - context.prompt_length
            token = plan[min(step, len(plan) - 1)]
            forced = scores.new_full(scores.shape, float("-inf"))
            forced[:, token] = 0.0
            return forced

        return force

    def __repr__(self) -> str:
        return f"ForceText({self.text!r})"
