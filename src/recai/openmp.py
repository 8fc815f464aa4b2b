"""OpenMP's wait policy for everything recai runs: idle threads sleep instead of spinning.

torch runs CPU work on a team of OpenMP threads, and by default the idle ones spin while they
wait for the next parallel region. A fit (SASRec) or a decode (SmolLM2) made of many small
regions then burns whatever CPU it gets on a machine shared with other work. Measured on two
cores at load about 4: two SASRec epochs took 47.7 s (48 CPU seconds) spinning and 10.2 s
(10.8 CPU seconds) passive, the same in ``recai mcp``'s background fit (30-81 s against
9.4-10.7 s), ``recai serve``'s start-up 75.8 s against 11.0 s, and a SmolLM2 planner decoding
on 2 spinning threads about 4x slower than on 1. ``OMP_WAIT_POLICY=ACTIVE`` restores spinning.
"""

from __future__ import annotations

import os
import sys

__all__ = ["POLICY", "passive_openmp"]

#: The wait policy set unless the environment names one.
POLICY = "PASSIVE"


def passive_openmp() -> bool:
    """Set ``OMP_WAIT_POLICY`` to :data:`POLICY` unless the environment chose a policy; OpenMP
    reads it once, when torch is first imported, so this works only before that. Returns
    whether it was set now. Every ``recai`` command calls it; servers built without the CLI
    (``served_from_recipe``, an MCP server started by a client) call it too."""
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = POLICY
    return True
