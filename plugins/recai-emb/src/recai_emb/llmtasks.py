"""RecLM-emb's LLM-written tasks, through any :class:`recai.LLMBackend`, with an answer cache.

| task | the LLM writes | positive | hard negatives |
|---|---|---|---|
| ``us2i`` | a summary of a user's taste from their history (no titles) | the user's next item | popular items the user never had |
| ``as2i`` | a request for an item with given labels and year (no title) | the item | items lacking one of the labels |
| ``dialogue`` | a short user/assistant conversation looking for an item like a given one | the item | popular items |

Parts and held-out items follow :mod:`recai_emb.tasks` (history tasks read training events;
item tasks use non-held-out items for training, held-out ones for evaluation). An answer that
is empty, or that names the item it is about, is skipped and counted.

Every answer is cached in a JSONL file (``{"key": ..., "text": ...}`` a line; the key hashes the
backend's description, the messages and the generation settings): the file is rewritten under a
temporary name and renamed after every batch, so it is always whole, and a second run asks the
LLM nothing it already answered. A local model (``hf.v1`` with the embedded SmolLM2) or any
OpenAI-compatible API can write the tasks.

>>> from recai.data import synthetic_dataset
>>> from recai.types import Completion
>>> import recai, tempfile
>>> class Echo(recai.LLMBackend):
...     def chat(self, messages, **options):
...         return Completion("someone who likes slow-burn stories")
>>> data = TaskData.from_dataset(synthetic_dataset(n_users=20, n_items=15))
>>> cache = LLMTaskCache(tempfile.mkdtemp() + "/answers.jsonl")
>>> examples, report = generate_llm(data, Echo(), ["us2i"], 3, cache=cache)
>>> len(examples), examples[0].query
(3, 'someone who likes slow-burn stories')
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recai.errors import RecaiError
from recai.roles import LLMBackend, describe_component
from recai.runtime import atomic_write_text
from recai.types import Message

from .taskdata import Condition, TaskData, short_title, stable_seed
from .tasks import Example, Part, _history_negatives, _label_phrase, _noun, _sample, _user_targets

__all__ = ["LLM_TASKS", "LLMTaskCache", "generate_llm"]

LLM_TASKS = ("us2i", "as2i", "dialogue")
"""The LLM-written tasks."""


class LLMTaskCache:
    """LLM answers by key, in a JSONL file rewritten atomically (see the module docstring).

    Lines that cannot be read (a file edited by hand) are skipped and counted in ``unreadable``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.answers: dict[str, str] = {}
        self.unreadable = 0
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    self.answers[str(row["key"])] = str(row["text"])
                except (ValueError, KeyError, TypeError):
                    self.unreadable += 1

    def get(self, key: str) -> str | None:
        return self.answers.get(key)

    def put_many(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Add answers and rewrite the file (temporary name, then rename)."""
        if not pairs:
            return
        self.answers.update(pairs)
        lines = [
            json.dumps({"key": k, "text": v}, ensure_ascii=False) for k, v in self.answers.items()
        ]
        atomic_write_text(self.path, "\n".join(lines) + "\n")


def _key(llm: LLMBackend, messages: list[Message], settings: dict[str, Any]) -> str:
    blob = json.dumps(
        {"llm": describe_component(llm), "messages": [m.to_dict() for m in messages], **settings},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


SYSTEM = "You write short, natural requests and descriptions for a recommender. Never name titles."


def _prompt_us2i(data: TaskData, history: np.ndarray) -> str:
    return (
        f"Here are the {_noun(data)}s a user chose, oldest first: {data.history_text(history)}.\n"
        "In one or two sentences, describe what this user likes, without naming any title."
    )


def _prompt_as2i(data: TaskData, item: int) -> str:
    parts = [f"labels: {_label_phrase(sorted(data.labels[item]))}"]
    if np.isfinite(data.years[item]):
        parts.append(f"year: {int(data.years[item])}")
    return (
        f"Write one sentence a person might type to find a {_noun(data)} with these attributes "
        f"({'; '.join(parts)}). Do not name any title."
    )


def _prompt_dialogue(data: TaskData, item: int) -> str:
    labels = _label_phrase(sorted(data.labels[item])) or "any kind"
    return (
        f"Write a short conversation (2 to 4 lines, each starting with 'User:' or 'Assistant:') "
        f'in which a user looks for a {_noun(data)} like "{data.title(item)}" ({labels}). '
        "The title must not appear. End with the user's last request."
    )


def generate_llm(
    data: TaskData,
    llm: LLMBackend,
    tasks: Sequence[str] = LLM_TASKS,
    n_per_task: int = 50,
    *,
    part: Part = "train",
    seed: int = 0,
    negatives: int = 1,
    cache: LLMTaskCache | None = None,
    max_tokens: int = 96,
    batch: int = 8,
) -> tuple[list[Example], dict[str, dict[str, Any]]]:
    """Examples of the LLM-written ``tasks`` and a report per task (``made``, ``skipped``,
    ``llm_calls``, ``cached``)."""
    out: list[Example] = []
    report: dict[str, dict[str, Any]] = {}
    settings = {"max_tokens": max_tokens, "temperature": 0.0}
    for name in tasks:
        if name not in LLM_TASKS:
            raise RecaiError(f"unknown LLM task {name!r}: choose from {', '.join(LLM_TASKS)}")
        rng = np.random.default_rng(stable_seed("llm-task", name, part, seed))
        skipped: dict[str, int] = {}
        plans: list[tuple[Example, str]] = []
        if name == "us2i":
            triples, skipped = _user_targets(data, part, n_per_task, rng, lambda i: True)
            for u, hist, target in triples:
                negs = _history_negatives(data, rng, u, target, negatives)
                ex = Example(
                    name,
                    "",
                    target,
                    negs,
                    "id",
                    exclude=sorted(set(hist.tolist())),
                    user=u,
                    part=part,
                )
                plans.append((ex, _prompt_us2i(data, hist)))
        else:
            pool = data.item_pool(part)
            items = [int(i) for i in pool if data.labels[int(i)]]
            if len(items) < len(pool):
                skipped["item has no labels"] = len(pool) - len(items)
            neg_pool = np.zeros(data.n_items, dtype=bool)
            neg_pool[data.item_pool("train")] = True
            for item in [items[int(j)] for j in rng.permutation(len(items))[:n_per_task]]:
                allowed = neg_pool.copy()
                allowed[item] = False
                if name == "as2i":
                    cond = Condition(include=tuple(sorted(data.labels[item])))
                    negs = _sample(rng, allowed & ~cond.mask(data), negatives, data.popularity())
                    ex = Example(name, "", item, negs, "both", cond, part=part)
                    plans.append((ex, _prompt_as2i(data, item)))
                else:
                    negs = _sample(rng, allowed, negatives, data.popularity())
                    ex = Example(name, "", item, negs, "id", part=part)
                    plans.append((ex, _prompt_dialogue(data, item)))
        calls = cached = 0
        for start in range(0, len(plans), batch):
            chunk = plans[start : start + batch]
            convs = [[Message.system(SYSTEM), Message.user(p)] for _, p in chunk]
            keys = [_key(llm, c, settings) for c in convs]
            todo = [i for i, k in enumerate(keys) if cache is None or cache.get(k) is None]
            answers: dict[int, str] = {}
            if todo:
                done = llm.chat_batch(
                    [convs[i] for i in todo], max_tokens=max_tokens, temperature=0.0, seed=seed
                )
                calls += len(todo)
                answers = {i: c.text for i, c in zip(todo, done, strict=True)}
                if cache is not None:
                    cache.put_many([(keys[i], answers[i]) for i in todo])
            for i, (ex, _) in enumerate(chunk):
                if i in answers:
                    text: str | None = answers[i]
                else:
                    text = cache.get(keys[i]) if cache is not None else None
                    cached += 1
                text = " ".join(str(text or "").split())
                if not text:
                    skipped["empty answer"] = skipped.get("empty answer", 0) + 1
                    continue
                if name != "us2i" and short_title(data.title(ex.pos)).lower() in text.lower():
                    skipped["answer names the item"] = skipped.get("answer names the item", 0) + 1
                    continue
                ex.query = text
                out.append(ex)
        report[name] = {
            "made": sum(e.task == name for e in out),
            "skipped": skipped,
            "llm_calls": calls,
            "cached": cached,
        }
    if cache is not None and cache.unreadable:
        report["cache"] = {"unreadable_lines": cache.unreadable}
    return out, report
