#!/usr/bin/env bash
# Run recai's whole test suite (kernel, plugins, example plugin, doctests), setting up .venv first.
# Arguments go to pytest: scripts/test.sh -m "not slow"   (skip model training)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "${RECAI_VENV:-.venv}/bin/python" -m pytest "$@"
