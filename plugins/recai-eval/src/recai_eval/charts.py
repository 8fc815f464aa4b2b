"""PNG bar charts of metrics with confidence-interval error bars (matplotlib, Agg canvas).

matplotlib is imported only when a chart is drawn. :func:`metrics_chart` returns ``None``
instead of failing when matplotlib is not installed, so an evaluation never fails for a chart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["metrics_chart", "CHART_SKIPS"]

CHART_SKIPS: tuple[str, ...] = ("Novelty@", "ARP@")
"""Metric name prefixes left out of charts: not on the ``[0, 1]`` scale of the others."""


def metrics_chart(
    path: Path | str,
    metrics: Mapping[str, Mapping[str, float]],
    intervals: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    *,
    title: str = "",
    columns: Sequence[str] | None = None,
) -> Path | None:
    """Grouped bars: one group per metric column, one bar per system, CI whiskers where known.

    ``metrics[system][column]`` as in :class:`recai.Report`; columns default to every column
    on the ``[0, 1]`` scale (Novelty and ARP are left out). The file is written atomically.
    Returns the path, or ``None`` when matplotlib is missing or there is nothing to draw.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    import numpy as np

    intervals = intervals or {}
    systems = list(metrics)
    if columns is None:
        columns = []
        for row in metrics.values():
            columns += [c for c in row if c not in columns and not c.startswith(CHART_SKIPS)]
    columns = list(columns)
    if not systems or not columns:
        return None
    width = 0.8 / len(systems)
    x = np.arange(len(columns), dtype=np.float64)
    # the object API with the Agg canvas: no pyplot, no global backend switch, no window
    fig = Figure(figsize=(max(6.0, 0.9 * len(columns) + 2.0), 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, system in enumerate(systems):
        values = _finite([metrics[system].get(c) for c in columns])
        low = np.full(len(columns), np.nan)
        high = np.full(len(columns), np.nan)
        for j, c in enumerate(columns):
            ci = intervals.get(system, {}).get(c)
            if ci is not None:
                low[j], high[j] = _finite([ci[0], ci[1]])
        with np.errstate(over="ignore", invalid="ignore"):
            err = np.vstack([values - low, high - values])
            err = np.where(np.isfinite(err), np.maximum(err, 0.0), np.nan)  # NaN: no whisker
        ax.bar(
            x + (i - (len(systems) - 1) / 2) * width,
            np.nan_to_num(values),
            width,
            yerr=err,
            capsize=2,
            label=system,
        )
    ax.set_xticks(x)
    ax.set_xticklabels(columns, rotation=30, ha="right")
    ax.set_ylabel("value (whiskers: 95% interval)" if intervals else "value")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, Path(path))


def _finite(values: Sequence[object]) -> np.ndarray:
    """Values as float64, ``NaN`` (nothing drawn) for missing, infinite or absurd ones: a chart
    of damaged metrics draws what it can instead of failing."""
    import numpy as np

    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        try:
            x = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            continue
        if abs(x) < 1e12:  # (False for NaN and infinities)
            out[i] = x
    return out


def _save(fig: object, path: Path) -> Path:
    from recai.runtime import atomic_write_file

    return atomic_write_file(path, lambda tmp: fig.savefig(tmp, format="png"))  # type: ignore[attr-defined]
