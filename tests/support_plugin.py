"""A plugin used by the kernel's tests: components whose params reference other components.

Test doubles only (an echoing LLM, wrapper rankers, a small hit-rate evaluator); they exist to
exercise recipe graphs, role checks and error messages. The tests register this module directly
or install it as a fake distribution with an entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import recai
from recai.data import leave_one_out
from recai.runtime import ensure_fitted
from recai.types import Completion, Message, Report, Usage


class EchoLLM(recai.LLMBackend):
    """Answers with the last user message, upper-cased (a test double)."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix

    def chat(self, messages, **options):
        last = [m for m in messages if m.role == "user"][-1].content
        text = self.prefix + last.upper()
        if options.get("max_tokens"):
            text = " ".join(text.split()[: options["max_tokens"]])
        return Completion(
            text=text, finish_reason="stop", usage=Usage(len(last.split()), len(text.split()))
        )


class Scaled(recai.Ranker):
    """``weight * base`` scores."""

    def __init__(self, base: recai.Ranker, weight: float = 1.0):
        self.base = base
        self.weight = weight

    def fit(self, split):
        ensure_fitted(self.base, split)

    def score(self, histories, items=None, *, users=None):
        return self.weight * np.asarray(self.base.score(histories, items, users=users))


class Mixed(recai.Ranker):
    """Sum of the scores of several rankers."""

    def __init__(self, parts: list[recai.Ranker]):
        self.parts = parts

    def fit(self, split):
        for p in self.parts:
            ensure_fitted(p, split)

    def score(self, histories, items=None, *, users=None):
        return sum(np.asarray(p.score(histories, items, users=users)) for p in self.parts)


class Chatbot(recai.Agent):
    """Replies through an LLM; optionally names the top item of a ranker."""

    def __init__(self, llm: recai.LLMBackend, ranker: recai.Ranker | None = None):
        self.llm = llm
        self.ranker = ranker

    def reply(self, conversation: Sequence[Message]) -> Message:
        return self.llm.chat(conversation).as_message()


class HitRate(recai.Evaluator):
    """Leave-one-out Hit@k of each model on a dataset (a small real evaluator for tests)."""

    def __init__(self, dataset: recai.DatasetSource, models: list[recai.Ranker], k: int = 5):
        self.dataset = dataset
        self.models = models
        self.k = k

    def evaluate(self, ctx):
        data = self.dataset.dataset()
        split = leave_one_out(data)
        users = np.unique(split.test.users)
        metrics = {}
        for model in self.models:
            ctx.fit(model, split)
            hits = 0
            for u, target in zip(split.test.users, split.test.items, strict=True):
                top = model.rank(split.train.history(u), k=self.k, user=int(u))
                hits += int(target in set(top.ids.tolist()))
            metrics[ctx.name_of(model)] = {f"hit@{self.k}": hits / len(users)}
        return Report(
            evaluator="",
            metrics=metrics,
            info={
                "dataset": data.name,
                "protocol": split.describe(),
                "samples": len(users),
                "seed": ctx.seed,
            },
        )


class Optim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = Field(0.01, gt=0)
    kind: Literal["adam", "sgd"] = "adam"


class TunedParams(recai.Params):
    hidden: int = Field(64, ge=1)
    dropout: float = Field(0.1, ge=0, le=1)
    optim: Optim = Optim()
    tags: list[str] = []


class Tuned(recai.Ranker):
    """A ranker with an explicit params model (nested model, bounds, literals)."""

    def __init__(self, hidden: int, dropout: float, optim: Optim, tags: list[str]):
        self.hidden, self.dropout, self.optim, self.tags = hidden, dropout, optim, tags
        self.n_items = 0

    def fit(self, split):
        self.n_items = split.dataset.n_items

    def score(self, histories, items=None, *, users=None):
        n = self.n_items if items is None else np.asarray(items).shape[-1]
        return np.zeros((len(histories), n))


def _spec(name, factory, summary, params=None):
    return recai.ComponentSpec(name=name, factory=factory, summary=summary, params=params)


@recai.hookimpl
def recai_llm_backends():
    yield _spec("echo.v1", EchoLLM, "Echoes the last user message (test double).")


@recai.hookimpl
def recai_rankers():
    yield _spec("scaled.v1", Scaled, "Scales another ranker's scores.")
    yield _spec("mixed.v1", Mixed, "Sums several rankers' scores.")
    yield _spec("tuned.v1", Tuned, "Ranker with an explicit params model.", TunedParams)


@recai.hookimpl
def recai_agents():
    yield _spec("chatbot.v1", Chatbot, "Replies through an LLM.")


@recai.hookimpl
def recai_evaluators():
    yield _spec("hitrate.v1", HitRate, "Leave-one-out hit rate.")
