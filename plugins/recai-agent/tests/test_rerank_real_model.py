"""The re-ranking stage with the real embedded brain (hf.v1, SmolLM2-135M-Instruct) on the film
fixture. Skips, saying why, when the model wheel is not installed. Slow: about 15 s on two
shared CPU cores (the model's load, then two scoring passes of 20 titles).

What SmolLM2 does here (measured while writing this test, weight 1, calibrated): for a fan of
Alien and Aliens asking for "an animated musical for my kids", ItemKNN's top 20 has its first
children's film at place 9; the brain puts The Lion King second, with or without the genres in
its prompt, and leaves the other three children's films mid-list (places 11-18). A 135M model
reads the request a little and the knowledge hardly at all: the test checks the stage works
end to end with a real tokenizer and real log-probabilities, and that the request moves the
order, not that the brain is a good ranker."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from agentkit import FILMS

import recai
from recai.data import Split
from recai.data.grounding import Grounder
from recai.roles import KnowledgePrompter, Ranker
from recai.types import ItemList
from recai_agent.bus import CandidateBus
from recai_agent.rerank import LLMReranker
from recai_agent.tools import RankingTool, TurnState

TITLES = [t for t, _, _ in FILMS]
KIDS = [i for i, (_, _, genres) in enumerate(FILMS) if "Children's" in genres]


class Genres(KnowledgePrompter):
    def knowledge(
        self,
        *,
        history: ItemList | None = None,
        candidates: ItemList | None = None,
        query: str | None = None,
    ) -> str:
        assert candidates is not None
        return "Genres of the candidates:\n" + "\n".join(
            f"- {TITLES[i]}: {', '.join(FILMS[i][2])}" for i in candidates.ids.tolist()
        )


@pytest.mark.slow
@pytest.mark.integration
def test_the_embedded_brain_re_ranks_the_rankers_head_towards_the_request(
    embedded_llm: recai.LLMBackend, split: Split, knn: Ranker
) -> None:
    catalog = split.dataset.catalog
    request = "an animated musical for my kids"

    def run(reranker: LLMReranker | None) -> tuple[list[int], TurnState]:
        state = TurnState(catalog, Grounder(catalog), liked=[0, 1], request=request)
        bus = CandidateBus(len(FILMS))
        res = RankingTool(knn, reranker=reranker).run(bus, {"by": "preference"}, state)
        assert res.ok, res.error
        return bus.ids.tolist(), state

    base, _ = run(None)
    start = time.perf_counter()
    reranker = LLMReranker(embedded_llm, Genres(), weight=1.0, knowledge_tokens=150)
    ids, state = run(reranker)
    seconds = time.perf_counter() - start
    detail = state.trace[-1].detail["rerank"]  # type: ignore[index]
    print(f"\n{state.trace[-1].note}\n{[TITLES[i] for i in ids[:5]]}")
    assert detail["applied"], state.trace[-1].note
    assert sorted(ids[:20]) == sorted(base[:20]) and ids[20:] == base[20:]
    scores = list(detail["llm_scores"].values())
    assert all(math.isfinite(s) for s in scores) and len(set(scores)) > 10
    # the knowledge was cut to its budget as the model's own tokenizer counts it
    assert detail["knowledge_tokens"] <= 150 < detail["knowledge_tokens_before"]
    assert state.llm_calls == 2 and seconds < 120  # the prompt and the titles' priors
    # the request moves a children's film up: the ranker's first is at place 9
    first_kid = min(ids.index(k) for k in KIDS)
    assert first_kid < min(base.index(k) for k in KIDS)
    assert first_kid <= 2, [TITLES[i] for i in ids[:5]]
    # a second turn over the same titles costs one call (the priors are kept)
    _, again = run(reranker)
    assert again.llm_calls == 1
    assert np.isfinite(again.llm_seconds)
