"""``knowledge-composite.v1``: several knowledge types in ordered blocks, within a token budget.

Each block names a knowledge prompter and how its facts are written (``template``, with
``{facts}``: the block's chosen facts, one ``- fact`` per line), a ``weight`` and at most
``max_facts``. Per request the composite pools every block's facts, scores each by
``weight x utility`` (the prompter's own measure of how much the fact says about these
candidates for this user: a path through a rare entity, a neighbour with a high cosine, a
candidate in the user's genres), and takes them best first while the text stays within
``max_tokens``; a block's template counts once its first fact is in. Each fact a block already
has discounts its next ones by ``diversity`` (0.8), so a type with many equally useful facts
(the attributes of 20 dramas for a drama fan) does not crowd out the others. The blocks are then
written in their order, each fact in its prompter's order. So the budget goes to the knowledge
that helps this request most, not to a split fixed per config.

Tokens are counted by ``llm.count_tokens`` when an ``llm`` with one is given (exactly what that
model will read; facts that do not fit are then dropped from the least useful), else by the
rule of thumb of one token per four characters.

A prompter that is not one of this plugin's types (any :class:`recai.KnowledgePrompter`) is one
fact: its whole text, utility 1.

.. code-block:: toml

    [components.knowledge]
    use = "knowledge-composite.v1"
    params.max_tokens = 300
    params.blocks = [
        { prompter = "kg", template = "Links between films:\\n{facts}", weight = 1.5 },
        { prompter = "attributes", max_facts = 20 },
    ]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator

import recai
from recai.data import Split
from recai.specs import Configurable
from recai.types import ItemList, Message

from .base import Fact, FactPrompter, approx_tokens

__all__ = ["Block", "CompositeKnowledge", "CompositeParams"]


class Block(recai.Params):
    """One block of the composite."""

    prompter: recai.KnowledgePrompter = Field(description="the knowledge prompter of this block")
    template: str | None = Field(
        None,
        max_length=2_000,
        description="how the block is written, with {facts} (its facts, one '- fact' per "
        "line); default: the prompter's header, then the facts",
    )
    weight: float = Field(1.0, gt=0, le=1_000, description="how much this block's facts count")
    max_facts: int | None = Field(
        None, ge=1, le=10_000, description="most facts of this block (default: the prompter's)"
    )

    @field_validator("template")
    @classmethod
    def _has_facts(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "{facts}" not in value:
            raise ValueError("must contain {facts}, where the block's facts go")
        rest = value.replace("{facts}", "")
        if "{" in rest.replace("{{", "") or "}" in rest.replace("}}", ""):
            raise ValueError(
                "may use only the placeholder {facts}; write a literal brace as {{ or }}"
            )
        return value


class CompositeParams(recai.Params):
    """``knowledge-composite.v1``."""

    blocks: Sequence[Block] = Field(
        min_length=1, max_length=50, description="the blocks, in the order they are written"
    )
    max_tokens: int = Field(
        400, ge=1, le=1_000_000, description="most tokens of the whole knowledge text"
    )
    llm: recai.LLMBackend | None = Field(
        None, description="counts tokens with this model's count_tokens, where it has one"
    )
    separator: str = Field("\n\n", max_length=20, description="between blocks")
    diversity: float = Field(
        0.8,
        gt=0,
        le=1,
        description="each fact a block already has multiplies the score of its next ones by "
        "this, so one type with many equally useful facts does not take the whole budget "
        "(1: no discount)",
    )


class CompositeKnowledge(Configurable, recai.KnowledgePrompter):
    """``knowledge-composite.v1`` (see the module docstring)."""

    Params = CompositeParams
    name = "knowledge-composite.v1"
    params: CompositeParams

    def fit(self, split: Split) -> None:
        """Fit every block's prompter on ``split`` (once each)."""
        for block in self.params.blocks:
            recai.ensure_fitted(block.prompter, split)

    # -- counting ---------------------------------------------------------------------------------
    def count(self, text: str) -> int:
        """Tokens of ``text`` (the llm's count where it has one, else the rule of thumb)."""
        llm = self.params.llm
        counter = getattr(llm, "count_tokens", None) if llm is not None else None
        if callable(counter):
            return int(counter([Message.system(text)])) - int(counter([Message.system("")]))
        return approx_tokens(text)

    # -- selecting --------------------------------------------------------------------------------
    def select(
        self,
        *,
        history: ItemList | None = None,
        candidates: ItemList | None = None,
        query: str | None = None,
    ) -> list[list[Fact]]:
        """The facts chosen for each block (see the module docstring)."""
        import heapq

        ranked: list[list[tuple[int, Fact]]] = []  # per block: (position, fact), best first
        for block in self.params.blocks:
            facts = _facts_of(block.prompter, history, candidates, query)
            limit = block.max_facts or _own_limit(block.prompter, len(facts))
            order = sorted(range(len(facts)), key=lambda i: (-facts[i].utility, i))[:limit]
            ranked.append([(i, facts[i]) for i in order])
        decay = float(self.params.diversity)
        weights = [float(b.weight) for b in self.params.blocks]
        # a heap of each block's next fact: (-score, block, rank in the block); a block's score
        # shrinks by `diversity` with every fact it already has in
        heap = [(-weights[b] * r[0][1].utility, b, 0) for b, r in enumerate(ranked) if r]
        heapq.heapify(heap)
        budget = int(self.params.max_tokens)
        sep = approx_tokens(self.params.separator)
        chosen: list[dict[int, Fact]] = [{} for _ in self.params.blocks]
        used = 0
        while heap:
            _, b, k = heapq.heappop(heap)
            i, fact = ranked[b][k]
            cost = approx_tokens(f"- {fact.text}\n")
            if not chosen[b]:
                cost += approx_tokens(self._frame(b)) + (sep if used else 0)
            if used + cost <= budget:
                chosen[b][i] = fact
                used += cost
            if k + 1 < len(ranked[b]):
                nxt = ranked[b][k + 1][1]
                score = weights[b] * nxt.utility * decay ** len(chosen[b])
                heapq.heappush(heap, (-score, b, k + 1))
        out = [[c[i] for i in sorted(c)] for c in chosen]
        if self.params.llm is not None and callable(getattr(self.params.llm, "count_tokens", None)):
            out = self._trim(out)
        return out

    def _trim(self, blocks: list[list[Fact]]) -> list[list[Fact]]:
        """Drop the least useful facts until the llm's count is within the budget."""
        while self.count(self._render(blocks)) > self.params.max_tokens:
            scored = [
                (self.params.blocks[b].weight * f.utility, b, k)
                for b, fs in enumerate(blocks)
                for k, f in enumerate(fs)
            ]
            worst = min(scored, default=None)
            if worst is None:
                break
            _, b, k = worst
            blocks[b] = blocks[b][:k] + blocks[b][k + 1 :]
        return blocks

    def _frame(self, b: int) -> str:
        """Block ``b``'s text around its facts."""
        block = self.params.blocks[b]
        if block.template is not None:
            return block.template.replace("{facts}", "").replace("{{", "{").replace("}}", "}")
        return _header_of(block.prompter) + "\n"

    def _render(self, blocks: list[list[Fact]]) -> str:
        parts = []
        for b, facts in enumerate(blocks):
            if not facts:
                continue
            block = self.params.blocks[b]
            if isinstance(block.prompter, FactPrompter):
                lines = "\n".join(f"- {f.text}" for f in facts)
            else:  # another prompter's text, as it wrote it
                lines = "\n".join(f.text for f in facts)
            if block.template is not None:
                parts.append(
                    block.template.replace("{{", "\0")
                    .replace("}}", "\1")
                    .replace("{facts}", lines)
                    .replace("\0", "{")
                    .replace("\1", "}")
                )
            else:
                header = _header_of(block.prompter)
                parts.append(f"{header}\n{lines}" if header else lines)
        return self.params.separator.join(parts)

    def knowledge(
        self,
        *,
        history: ItemList | None = None,
        candidates: ItemList | None = None,
        query: str | None = None,
    ) -> str:
        """The chosen facts, block by block ("" when none)."""
        return self._render(self.select(history=history, candidates=candidates, query=query))


def _facts_of(
    prompter: Any, history: ItemList | None, candidates: ItemList | None, query: str | None
) -> list[Fact]:
    if isinstance(prompter, FactPrompter):
        return prompter.facts(history=history, candidates=candidates, query=query)
    text = prompter.knowledge(history=history, candidates=candidates, query=query)
    return [Fact(text, 1.0)] if text else []


def _own_limit(prompter: Any, n: int) -> int:
    params = getattr(prompter, "params", None)
    limit = getattr(params, "max_facts", None)
    return int(limit) if isinstance(limit, int) else n


def _header_of(prompter: Any) -> str:
    return str(prompter.header) if isinstance(prompter, FactPrompter) else ""
