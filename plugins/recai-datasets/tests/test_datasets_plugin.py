"""The entry point of recai-datasets registers its components without importing their modules."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY = ("recbole", "recai_datasets.movielens", "recai_datasets.atomic")


def test_listing_components_imports_nothing_heavy():
    code = (
        "import sys, recai; reg = recai.get_plugin_manager().registry(); "
        "assert 'movielens-100k.v1' in reg, reg.names(); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    env = {**os.environ, "RECAI_PLUGINS": "datasets", "RECAI_STRICT_PLUGINS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
