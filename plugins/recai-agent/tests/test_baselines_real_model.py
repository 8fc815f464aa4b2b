"""The LLM baselines with the real embedded brain (hf.v1, SmolLM2-135M-Instruct): every title a
reply lists is a real catalog title, from the retriever's candidates for Chat-Rec."""

from __future__ import annotations

from typing import Any

import pytest

import recai
from recai.data import Dataset, Split
from recai.types import Message
from recai_agent.baselines import context_message, listed_lines

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def brain() -> recai.LLMBackend:
    if "hf.v1" not in recai.get_plugin_manager().registry():
        pytest.skip("hf.v1 (recai-hf) is not installed")
    return recai.create("llm_backend", "hf.v1", threads=1)


def _conversation(dataset: Dataset, user: int) -> list[Message]:
    history = dataset.interactions.history(user)[:-1]
    return [
        context_message(str(user), history, dataset.catalog),
        Message.assistant("Hello! What are you looking for today?"),
        Message.user("I'd like something in drama, from the 1990s."),
    ]


@pytest.mark.parametrize("mode", ["generate", "score"])
def test_chatrec_with_the_embedded_brain_lists_only_candidates(
    brain: Any, tiny_dataset: Dataset, tiny_split: Split, mode: str
) -> None:
    retriever = recai.create("retriever", "itemknn.v1", neighbors=20)
    agent = recai.create(
        "agent",
        "chatrec.v1",
        dataset=recai.DatasetSource.of(tiny_dataset),
        llm=brain,
        retriever=retriever,
        n_candidates=8,
        mode=mode,
        max_tokens=80,
    )
    agent.fit(tiny_split)
    conversation = _conversation(tiny_dataset, 3)
    history = tiny_dataset.interactions.history(3)[:-1].tolist()
    candidates = agent.candidates(conversation[1:], history, [])
    reply = agent.respond(conversation)
    assert len(reply.items) == 5 and reply.llm_calls == 1
    assert {it["index"] for it in reply.items} <= set(candidates)
    titles = set(tiny_dataset.catalog.titles.tolist())
    assert listed_lines(reply.text) and set(listed_lines(reply.text)) <= titles


def test_llm_agent_with_the_embedded_brain_names_only_catalog_titles(
    brain: Any, tiny_dataset: Dataset
) -> None:
    agent = recai.create(
        "agent",
        "llm-agent.v1",
        dataset=recai.DatasetSource.of(tiny_dataset),
        llm=brain,
        max_tokens=80,
    )
    reply = agent.respond(_conversation(tiny_dataset, 3))
    titles = set(tiny_dataset.catalog.titles.tolist())
    assert set(listed_lines(reply.text)) <= titles  # possibly none: the 135M model rarely lists
    assert reply.llm_calls == 1 and reply.text.strip()
