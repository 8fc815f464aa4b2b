"""The entry point of recai-eval registers its components without importing their modules."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY = ("scipy", "recai_eval.ranking", "recai_eval.metrics")


def test_listing_components_imports_nothing_heavy():
    code = (
        "import sys, recai; reg = recai.get_plugin_manager().registry(); "
        "assert 'ranking.v1' in reg, reg.names(); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    env = {**os.environ, "RECAI_PLUGINS": "eval", "RECAI_STRICT_PLUGINS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
