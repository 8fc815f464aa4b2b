"""Top-k ranking metrics with one relevant item per user, as pure functions over score matrices.

With a single relevant item, every top-k metric is a function of that item's **rank**: the
number of unmasked items ranked above it. Items above it are those with a higher score, and
those with an equal score and a lower item index (ties go to the lower index, so results are
deterministic and agree with :meth:`recai.ItemList.top`). Computing the rank by counting is
exact, needs no sort, and is ``O(users x items)`` per batch.

>>> import numpy as np
>>> scores = np.array([[0.1, 0.9, 0.5, 0.3]])
>>> target_ranks(scores, np.array([2])).tolist()
[1]
>>> values = metric_values(np.array([1]), [2], ["hit", "ndcg"])
>>> {name: round(float(v[0]), 4) for name, v in values.items()}
{'Hit@2': 1.0, 'NDCG@2': 0.6309}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "METRICS",
    "MISSED",
    "metric_name",
    "target_ranks",
    "metric_values",
    "bootstrap_intervals",
]

METRICS: dict[str, str] = {
    "recall": "Recall",
    "ndcg": "NDCG",
    "hit": "Hit",
    "mrr": "MRR",
    "precision": "Precision",
}
"""Metric keys accepted by :func:`metric_values`, and the names reports use (``NDCG@10``)."""


MISSED = np.iinfo(np.int64).max
"""The rank given to a target that cannot be recommended (it is masked)."""


def metric_name(metric: str, k: int) -> str:
    """``("ndcg", 10)`` -> ``"NDCG@10"``."""
    return f"{METRICS[metric]}@{k}"


def target_ranks(
    scores: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """0-based rank of each row's target item among its unmasked items.

    ``scores`` has shape ``(users, items)``; ``targets`` holds one item index per row; ``mask``
    (boolean, same shape as ``scores``) marks items removed from the ranking, such as the
    user's history. A masked target can never be recommended: its rank is :data:`MISSED` (a miss
    at every k). ``-inf`` scores are allowed; NaN scores are an error.
    """
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets, dtype=np.int64)
    if s.ndim != 2 or t.shape != (s.shape[0],):
        raise ValueError(
            f"need scores (users, items) and one target per user; got {s.shape} and {t.shape}"
        )
    n_users, n_items = s.shape
    if n_users and (t.min() < 0 or t.max() >= n_items):
        raise ValueError(f"target item indices must lie in 0..{n_items - 1}")
    rows = np.arange(n_users)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != s.shape:
            raise ValueError(f"mask has shape {mask.shape}, scores {s.shape}")
    nan = np.isnan(s) if mask is None else np.isnan(s) & ~mask
    if nan.any():
        raise ValueError(
            f"scores contain NaN ({int(nan.sum())} values in {int(nan.any(axis=1).sum())} rows)"
        )
    own = s[rows, t][:, None]
    before = (s > own) | ((s == own) & (np.arange(n_items)[None, :] < t[:, None]))
    if mask is not None:
        before &= ~mask
    ranks = before.sum(axis=1)
    if mask is not None:
        ranks[mask[rows, t]] = MISSED
    return ranks


def metric_values(
    ranks: np.ndarray, ks: Sequence[int], metrics: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per-user metric values from target ranks, keyed ``"NDCG@10"``, metric by metric, then k.

    With one relevant item: Hit@k = Recall@k = [rank < k]; Precision@k = Hit@k / k;
    NDCG@k = Hit@k / log2(rank + 2) (the ideal DCG is 1); MRR@k = Hit@k / (rank + 1).
    """
    r = np.asarray(ranks, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for metric in metrics:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
        for k in ks:
            if k < 1:
                raise ValueError(f"k must be at least 1, got {k}")
            hit = (r < k).astype(np.float64)
            if metric in ("hit", "recall"):
                value = hit
            elif metric == "precision":
                value = hit / k
            elif metric == "ndcg":
                value = hit / np.log2(np.where(hit > 0, r, 0.0) + 2.0)
            else:  # mrr
                value = hit / (np.where(hit > 0, r, 0.0) + 1.0)
            out[metric_name(metric, k)] = value
    return out


def bootstrap_intervals(
    values: np.ndarray, resamples: int, seed: int, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean of each column of ``values`` (users x metrics).

    Users are resampled with replacement ``resamples`` times from ``np.random.default_rng(seed)``;
    the same seed draws the same resamples, so intervals of several systems are paired.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    n, m = v.shape
    if n == 0 or resamples < 1:
        nan = np.full(m, np.nan)
        return nan, nan.copy()
    rng = np.random.default_rng(seed)
    chunk = max(1, (1 << 22) // n)
    means = np.empty((resamples, m))
    for start in range(0, resamples, chunk):
        c = min(chunk, resamples - start)
        draws = rng.integers(0, n, size=(c, n))
        counts = np.bincount((draws + (np.arange(c) * n)[:, None]).ravel(), minlength=c * n)
        means[start : start + c] = counts.reshape(c, n) @ v / n
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail], axis=0)
    return low, high
