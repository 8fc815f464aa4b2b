"""The entry point of recai-classic registers its components without importing their modules."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY = ("scipy", "recai_classic.itemknn", "recai_classic.popularity")


def test_listing_components_imports_nothing_heavy():
    code = (
        "import sys, recai; reg = recai.get_plugin_manager().registry(); "
        "assert 'itemknn.v1' in reg, reg.names(); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    env = {**os.environ, "RECAI_PLUGINS": "classic", "RECAI_STRICT_PLUGINS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
