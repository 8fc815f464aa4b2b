#!/usr/bin/env bash
# The main job on the embedded default (no API key, no network): set up .venv, then fit and
# evaluate recommenders on MovieLens-100K under leave-one-out full ranking.
# Results: runs/quickstart/metrics.json and runs/quickstart/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "${RECAI_VENV:-.venv}/bin/recai" run examples/quickstart.toml --out runs/quickstart "$@"
