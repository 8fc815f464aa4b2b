"""hf.v1 ``score_continuations`` reads the prompt once and reuses its key/value cache for every
continuation (prefix-KV reuse), with the same numbers as scoring prompt + continuation per row.

On tiny random-init models built here from a config (no download, a second each): a Llama
(full attention: the cache is repeated once and cropped back after each batch) and a Mistral
whose sliding window is shorter than the prompt (its cache is copied per batch). The slow check
on the real SmolLM2 is ``test_score_prefix_model.py``.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from recai.types import Message
from recai_hf import backend as backend_module
from recai_hf.backend import HFBackend

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SPECIALS = ["<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PROMPT = [
    Message.system("You recommend films. " + "Known films: Alien, Heat, Brazil, Fargo. " * 3),
    Message.user("Which film for tonight?"),
]
# different lengths (in bytes = tokens here), an empty one and one-token ones, unsorted
CONTINUATIONS = [
    "Alien (1979)",
    "",
    "x",
    "The Matrix, because it is a classic",
    "Heat",
    "ab",
    "y",
    "Brazil (1985), a dystopian comedy by Terry Gilliam",
    "Fargo",
]


def _tokenizer() -> Any:
    """A byte-level tokenizer (every byte one token, no merges) with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for special in SPECIALS:
        vocab[special] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    fast.chat_template = CHATML
    return fast


def _build(folder: Path, kind: str) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    tok = _tokenizer()
    common = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    if kind == "llama":
        model: Any = LlamaForCausalLM(LlamaConfig(**common))
    else:  # a window of 8 tokens: far shorter than the prompt
        model = MistralForCausalLM(MistralConfig(sliding_window=8, **common))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="module")
def mistral_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("tiny-mistral"), "mistral")


def _full(llm: HFBackend, messages: list[Message], continuations: list[str]) -> list[float]:
    prompt, conts = llm._score_inputs(messages, continuations)
    return llm._score_full(prompt, conts)


class _Reads:
    """Records the shape of ``input_ids`` of every forward of a model."""

    def __init__(self, model: Any):
        self.shapes: list[tuple[int, int]] = []
        self.handle = model.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        self.shapes.append(tuple(kwargs["input_ids"].shape))


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_prefix_scores_equal_the_full_rows_on_a_full_attention_model(
    llama_dir: Path, batch_size: int
) -> None:
    llm = HFBackend(model=str(llama_dir), batch_size=batch_size).load()
    scores = llm.score_continuations(PROMPT, CONTINUATIONS)
    assert llm._prefix_scoring is True
    reference = _full(llm, PROMPT, CONTINUATIONS)
    assert scores == pytest.approx(reference, abs=1e-4)
    assert scores[1] == 0.0  # the empty continuation
    assert all(s < 0 for i, s in enumerate(scores) if i != 1)
    assert len(set(scores)) == len(scores)  # random weights: every continuation scores apart


def test_prefix_scores_equal_the_full_rows_past_a_sliding_window(mistral_dir: Path) -> None:
    llm = HFBackend(model=str(mistral_dir), batch_size=3).load()
    prompt, _ = llm._score_inputs(PROMPT, [])
    assert len(prompt) > 8 * 10  # the prompt is ten windows long
    scores = llm.score_continuations(PROMPT, CONTINUATIONS)
    assert llm._prefix_scoring is True
    assert scores == pytest.approx(_full(llm, PROMPT, CONTINUATIONS), abs=1e-4)


def test_the_prompt_is_read_once_and_each_batch_reads_only_its_continuations(
    llama_dir: Path,
) -> None:
    llm = HFBackend(model=str(llama_dir), batch_size=4).load()
    prompt, conts = llm._score_inputs(PROMPT, CONTINUATIONS)
    reads = _Reads(llm.hf_model)
    try:
        llm.score_continuations(PROMPT, CONTINUATIONS)
    finally:
        reads.handle.remove()
    lengths = sorted((len(c) for c in conts if c), reverse=True)  # 8 non-empty: 2 batches
    assert reads.shapes == [
        (1, len(prompt)),
        (4, lengths[0] - 1),  # a continuation's last token is never read
        (4, lengths[4] - 1),
    ]


def test_batches_shrink_to_keep_the_repeated_cache_within_its_budget(
    llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = HFBackend(model=str(llama_dir), batch_size=8).load()
    prompt, conts = llm._score_inputs(PROMPT, CONTINUATIONS)
    per_row = 2 * 2 * 2 * len(prompt) * 8 * 4  # layers, keys+values, kv heads, tokens, dim, fp32
    monkeypatch.setattr(backend_module, "PREFIX_CACHE_BUDGET", 3 * per_row + 100)
    reads = _Reads(llm.hf_model)
    try:
        scores = llm.score_continuations(PROMPT, CONTINUATIONS)
    finally:
        reads.handle.remove()
    # the prompt, then 8 in threes; the last batch holds the two one-token ones: no pass
    assert [rows for rows, _ in reads.shapes] == [1, 3, 3]
    assert scores == pytest.approx(_full(llm, PROMPT, CONTINUATIONS), abs=1e-4)


def test_one_token_continuations_need_no_pass_beyond_the_prompt(llama_dir: Path) -> None:
    llm = HFBackend(model=str(llama_dir), batch_size=2).load()
    reads = _Reads(llm.hf_model)
    try:
        scores = llm.score_continuations(PROMPT, ["a", "b", "", "c"])
    finally:
        reads.handle.remove()
    assert len(reads.shapes) == 1
    assert scores == pytest.approx(_full(llm, PROMPT, ["a", "b", "", "c"]), abs=1e-4)


def test_a_full_attention_cache_is_cropped_back_not_copied(
    llama_dir: Path, mistral_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies: list[Any] = []
    real_deepcopy = copy.deepcopy
    depth = [0]

    def counting(obj: Any, *args: Any) -> Any:  # deepcopy recurses through the module global
        if depth[0] == 0 and isinstance(obj, transformers.Cache):
            copies.append(type(obj).__name__)
        depth[0] += 1
        try:
            return real_deepcopy(obj, *args)
        finally:
            depth[0] -= 1

    monkeypatch.setattr(backend_module.copy, "deepcopy", counting)
    HFBackend(model=str(llama_dir), batch_size=2).load().score_continuations(PROMPT, CONTINUATIONS)
    assert copies == []
    # the sliding window cannot be cropped back: a copy per batch but the last (4 batches)
    HFBackend(model=str(mistral_dir), batch_size=2).load().score_continuations(
        PROMPT, CONTINUATIONS
    )
    assert copies == ["DynamicCache"] * 3


class _NoCacheModel(torch.nn.Module):  # type: ignore[misc]
    """A causal LM whose forward takes no cache (nothing to reuse)."""

    def __init__(self, inner: Any):
        super().__init__()
        self.inner = inner
        self.calls = 0

    @property
    def device(self) -> Any:
        return self.inner.device

    def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
        self.calls += 1
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)


class _TupleCacheModel(_NoCacheModel):
    """Takes ``past_key_values`` but returns the cache as plain tuples (no batch repeat)."""

    def forward(  # type: ignore[override]
        self,
        input_ids: Any,
        attention_mask: Any = None,
        position_ids: Any = None,
        past_key_values: Any = None,
        use_cache: bool | None = None,
    ) -> Any:
        self.calls += 1
        out = self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=True)
        legacy = tuple((k, v) for k, v, _ in out.cache)
        return SimpleNamespace(logits=out.logits, past_key_values=legacy)


@pytest.mark.parametrize("wrapper", [_NoCacheModel, _TupleCacheModel])
def test_a_model_whose_cache_cannot_be_shared_is_scored_row_by_row(
    llama_dir: Path, wrapper: type[_NoCacheModel]
) -> None:
    llm = HFBackend(model=str(llama_dir), batch_size=3).load()
    expected = llm.score_continuations(PROMPT, CONTINUATIONS)
    llm._model = wrapper(llm._model)
    scores = llm.score_continuations(PROMPT, CONTINUATIONS)
    assert llm._prefix_scoring is False
    assert scores == pytest.approx(expected, abs=1e-4)
    calls = llm._model.calls
    llm.score_continuations(PROMPT, CONTINUATIONS)  # remembered: no second attempt
    assert llm._model.calls - calls == 3  # 8 non-empty continuations in batches of 3


def test_nothing_to_score_runs_no_model(llama_dir: Path) -> None:
    llm = HFBackend(model=str(llama_dir)).load()
    reads = _Reads(llm.hf_model)
    try:
        assert llm.score_continuations(PROMPT, []) == []
        assert llm.score_continuations(PROMPT, ["", ""]) == [0.0, 0.0]
    finally:
        reads.handle.remove()
    assert reads.shapes == []


def test_concurrent_callers_get_their_own_scores(llama_dir: Path) -> None:
    llm = HFBackend(model=str(llama_dir), batch_size=2).load()
    other = [Message.user("Something else entirely, and longer: " * 4)]
    want = {
        "a": llm.score_continuations(PROMPT, CONTINUATIONS),
        "b": llm.score_continuations(other, CONTINUATIONS[::-1]),
    }
    got: dict[str, list[list[float]]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def work(name: str, messages: list[Message], conts: list[str]) -> None:
        try:
            for _ in range(5):
                got[name].append(llm.score_continuations(messages, conts))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=("a", PROMPT, CONTINUATIONS)),
        threading.Thread(target=work, args=("b", other, CONTINUATIONS[::-1])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    for name in ("a", "b"):
        assert len(got[name]) == 5
        for scores in got[name]:
            assert scores == pytest.approx(want[name], abs=1e-5)
