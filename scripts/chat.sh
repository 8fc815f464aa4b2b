#!/usr/bin/env bash
# The main job on the embedded default (no API key, no network): set up .venv, then talk to
# InteRecAgent on MovieLens-100K (examples/agent.toml: SmolLM2-135M-Instruct plans and writes,
# SQL + ItemKNN + SASRec recommend). The first run fits the models (a few minutes on two cores,
# with progress) and caches them under runs/agent-chat.
#   In a terminal:          an interactive chat (an empty line or Ctrl-D ends it).
#   Without a terminal:     a short scripted conversation, printed with items and trace.
#   With arguments:         passed to `recai chat examples/agent.toml` (e.g. -m "..." --json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
recai="${RECAI_VENV:-.venv}/bin/recai"
if [ "$#" -gt 0 ]; then
    exec "$recai" chat examples/agent.toml "$@"
elif [ -t 0 ] && [ -t 1 ]; then
    exec "$recai" chat examples/agent.toml
else
    exec "$recai" chat examples/agent.toml --trace \
        --message "I'd like some 90s sci-fi films" \
        --message "I loved Star Wars and Alien, something like those" \
        --message "no horror please, and something more recent"
fi
