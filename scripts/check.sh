#!/usr/bin/env bash
# Run recai's quality gates (lint, format, types), setting up .venv first; CI runs this before
# the tests. The gates: `ruff check .`, `ruff format --check .` and `mypy`, which reads
# [tool.mypy] in pyproject.toml: the kernel (src/recai) strict, every plugin's src with all
# functions annotated. All gates run; the exit status is 1 when any fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
venv=${RECAI_VENV:-.venv}

failed=()
gate() {
  echo "check: $*" >&2
  "$@" || failed+=("$*")
}
gate "$venv/bin/ruff" check .
gate "$venv/bin/ruff" format --check .
gate "$venv/bin/python" -m mypy
if [ ${#failed[@]} -gt 0 ]; then
  printf 'check: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "check: all gates passed" >&2
