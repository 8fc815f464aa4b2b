"""Uncertainty and paired comparisons of per-user (or per-query) metric values.

Every evaluator that reports a mean over users needs the same few tools, so they live here, in
the kernel, for every plugin to share:

- :func:`bootstrap_intervals`: percentile bootstrap interval of each column's mean;
- :func:`paired_bootstrap`: the mean difference of two systems measured on the same rows, with
  its bootstrap interval and a two-sided p-value;
- :func:`paired_test`: a paired t-test or Wilcoxon signed-rank test (scipy, imported only
  when called), or a sign-flip permutation test where scipy is not installed.

Resampling draws from ``np.random.default_rng(seed)``: one seed draws the same resamples for
every system, so intervals computed separately are still paired, and results are reproducible
to the bit.

>>> import numpy as np
>>> values = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
>>> low, high = bootstrap_intervals(values, 200, seed=0)
>>> bool((low <= values.mean(axis=0)).all() and (values.mean(axis=0) <= high).all())
True
>>> r = paired_bootstrap(np.zeros(40), np.full(40, 0.5), 200, seed=0)
>>> float(r["delta"][0]), float(r["p"][0])
(0.5, 0.005)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["PairedTest", "bootstrap_intervals", "paired_bootstrap", "paired_test"]

PairedTest = Literal["t", "wilcoxon"]
"""The tests :func:`paired_test` runs: the paired t-test or the Wilcoxon signed-rank test."""


def _resample_means(v: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, columns)``: column means of ``resamples`` bootstrap resamples of rows."""
    n, m = v.shape
    rng = np.random.default_rng(seed)
    chunk = max(1, (1 << 22) // n)
    means = np.empty((resamples, m))
    for start in range(0, resamples, chunk):
        c = min(chunk, resamples - start)
        draws = rng.integers(0, n, size=(c, n))
        counts = np.bincount((draws + (np.arange(c) * n)[:, None]).ravel(), minlength=c * n)
        means[start : start + c] = counts.reshape(c, n) @ v / n
    return means


def bootstrap_intervals(
    values: np.ndarray, resamples: int, seed: int, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean of each column of ``values`` (users x metrics).

    Users are resampled with replacement ``resamples`` times from ``np.random.default_rng(seed)``;
    the same seed draws the same resamples, so intervals of several systems are paired. A 1-D
    ``values`` is one column. No rows or no resamples give NaN bounds.

    >>> low, high = bootstrap_intervals(np.array([0.0, 1.0, 1.0, 1.0]), 1000, seed=1)
    >>> float(low[0]) < 0.75 < float(high[0]) <= 1.0
    True
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    n, m = v.shape
    if n == 0 or resamples < 1:
        nan = np.full(m, np.nan)
        return nan, nan.copy()
    means = _resample_means(v, resamples, seed)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail], axis=0)
    return low, high


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, resamples: int, seed: int, level: float = 0.95
) -> dict[str, np.ndarray]:
    """Paired bootstrap of the mean difference ``b - a`` per column (rows are shared users).

    Returns ``delta`` (the observed mean difference), ``low``/``high`` (percentile interval)
    and ``p`` (two-sided bootstrap p-value: twice the smaller share of resampled differences on
    either side of 0, at least ``1 / resamples``).

    >>> a = np.zeros((50, 1)); b = np.ones((50, 1))
    >>> r = paired_bootstrap(a, b, 200, seed=0)
    >>> float(r["delta"][0]), float(r["low"][0]), float(r["p"][0])
    (1.0, 1.0, 0.005)
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim == 1:
        x, y = x[:, None], y[:, None]
    if x.shape != y.shape:
        raise ValueError(f"paired values need the same shape, got {x.shape} and {y.shape}")
    d = y - x
    n, m = d.shape
    if n == 0 or resamples < 1:
        nan = np.full(m, np.nan)
        return {"delta": nan, "low": nan.copy(), "high": nan.copy(), "p": nan.copy()}
    means = _resample_means(d, resamples, seed)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail], axis=0)
    below = (means <= 0).mean(axis=0)
    above = (means >= 0).mean(axis=0)
    p = np.clip(2.0 * np.minimum(below, above), 1.0 / resamples, 1.0)
    return {"delta": d.mean(axis=0), "low": low, "high": high, "p": p}


def paired_test(
    a: np.ndarray, b: np.ndarray, test: PairedTest = "t", seed: int = 0
) -> tuple[str, float]:
    """``(name, two-sided p)`` of a paired test of ``b - a`` (1-D arrays of one metric).

    ``"t"``: the paired t-test; ``"wilcoxon"``: the Wilcoxon signed-rank test (both from scipy;
    identical pairs give p = 1). Without scipy: a sign-flip permutation test of the mean
    difference (10,000 flips, seeded). Fewer than 2 pairs give p = NaN.

    >>> name, p = paired_test(np.zeros(30), np.ones(30))
    >>> name, p < 0.001
    ('paired t-test', True)
    """
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if len(d) < 2:
        return ("none (fewer than 2 pairs)", float("nan"))
    try:
        from scipy import stats
    except ImportError:
        return ("sign-flip permutation", _sign_flip(d, seed))
    if test == "wilcoxon":
        if not np.any(d):
            return ("Wilcoxon signed-rank", 1.0)
        return ("Wilcoxon signed-rank", float(stats.wilcoxon(d).pvalue))
    if np.allclose(d, d[0]):  # no variance: the t statistic is undefined
        return ("paired t-test", 1.0 if d[0] == 0 else 0.0)
    return ("paired t-test", float(stats.ttest_rel(b, a).pvalue))


def _sign_flip(d: np.ndarray, seed: int, flips: int = 10_000) -> float:
    """Two-sided p of a sign-flip permutation test of ``mean(d) == 0`` (``(count + 1) / (flips + 1)``)."""
    observed = abs(d.mean())
    if observed == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    count = 0
    for start in range(0, flips, 500):
        n = min(500, flips - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(n, len(d)))
        count += int((np.abs(signs @ d / len(d)) >= observed - 1e-12).sum())
    return (count + 1) / (flips + 1)
