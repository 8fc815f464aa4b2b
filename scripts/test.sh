#!/usr/bin/env bash
# Run recai's whole test suite (kernel, plugins, example plugin, doctests), setting up .venv first.
# Arguments go to pytest: scripts/test.sh -m "not slow"   (skip model training)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Debian's chromium + chromedriver for the chat page's browser test (installed once, with apt-get)
scripts/browser.sh || echo "test: no chromium; the page's browser tests will be skipped" >&2
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "${RECAI_VENV:-.venv}/bin/python" -m pytest "$@"
