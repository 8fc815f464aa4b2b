"""What the ranking evaluators leave in the run folder besides their report.

- ``stages/<stage>.per_user.npz``: per-user metric values of every system (see
  :mod:`recai_eval.peruser`), for paired comparisons with ``recai eval A B``;
- ``<stage>.png``: a bar chart of the metrics with their intervals, next to ``metrics.json`` and
  ``report.md`` (the report links it in a note, so ``report.md`` shows it).
"""

from __future__ import annotations

import numpy as np

from recai.runtime import RunContext

from .charts import metrics_chart
from .peruser import per_user_file, save_per_user

__all__ = ["write_outputs"]


def write_outputs(
    ctx: RunContext,
    stage: str,
    *,
    unit: str,
    units: np.ndarray,
    columns: list[str],
    values: dict[str, np.ndarray],
    metrics: dict[str, dict[str, float]],
    intervals: dict[str, dict[str, tuple[float, float]]],
    title: str,
    per_user: bool,
    chart: bool,
) -> tuple[dict[str, str], list[str]]:
    """Write the per-user file and the chart; return ``(info entries, notes)`` for the report."""
    info: dict[str, str] = {}
    notes: list[str] = []
    if per_user:
        rel = per_user_file(stage)
        save_per_user(ctx.path(*rel.split("/")), unit, units, columns, values)
        info["per_user"] = rel
    if chart:
        name = f"{stage}.png"
        drawn = metrics_chart(ctx.path(name), metrics, intervals, title=title)
        if drawn is None:
            notes.append("No chart: matplotlib is not installed (pip install matplotlib).")
        else:
            info["chart"] = name
            notes.append(f"Chart (95% intervals as whiskers): ![{stage}]({name})")
    return info, notes
