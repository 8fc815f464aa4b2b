"""Top-k ranking metrics as pure, vectorised numpy functions.

Two ways in, one set of definitions:

- **one relevant item per row** (leave-one-out, 1 + N candidates): every metric is a function of
  that item's **rank**, the number of unmasked items ranked above it (:func:`target_ranks`,
  :func:`metric_values`);
- **top-k lists** (any number of relevant items per user): :func:`top_k` turns a score matrix
  into each row's best ``k`` items, :func:`list_hits` marks the relevant ones and
  :func:`list_metric_values` computes the same metrics from those marks; :func:`coverage`,
  :func:`novelty_values` and :func:`arp_values` describe the lists themselves.

Intervals and paired comparisons of these per-user values come from the kernel
(:mod:`recai.stats`); :func:`bootstrap_intervals` and :func:`paired_bootstrap` are re-exported here.

Ties always go to the **lower item index**, so results are deterministic and agree with
:meth:`recai.ItemList.top`. With one relevant item the two ways give identical values.

Definitions at cut-off ``k``, for a user with ``R`` relevant items and hits ``h_1..h_k``
(``h_j = 1`` when the item at position ``j`` is relevant): Hit = ``[any h_j]``;
Recall = ``sum h / R``; Precision = ``sum h / k``; NDCG = ``sum h_j / log2(j + 1)`` divided by
the same sum for ``min(R, k)`` hits at the top; MRR = ``1 / j`` of the first hit; MAP (RecBole's
AP@k) = ``sum_j h_j * precision@j / min(R, k)``. With ``R = 1``, Recall = Hit and MAP = MRR.

>>> import numpy as np
>>> scores = np.array([[0.1, 0.9, 0.5, 0.3]])
>>> target_ranks(scores, np.array([2])).tolist()
[1]
>>> values = metric_values(np.array([1]), [2], ["hit", "ndcg"])
>>> {name: round(float(v[0]), 4) for name, v in values.items()}
{'Hit@2': 1.0, 'NDCG@2': 0.6309}
>>> top_k(scores, 2).tolist()
[[1, 2]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recai.stats import bootstrap_intervals, paired_bootstrap

__all__ = [
    "METRICS",
    "ACCURACY",
    "BEYOND_ACCURACY",
    "MISSED",
    "metric_name",
    "target_ranks",
    "metric_values",
    "top_k",
    "list_hits",
    "list_metric_values",
    "coverage",
    "self_information",
    "novelty_values",
    "arp_values",
    "bootstrap_intervals",
    "paired_bootstrap",
]

METRICS: dict[str, str] = {
    "recall": "Recall",
    "ndcg": "NDCG",
    "hit": "Hit",
    "mrr": "MRR",
    "precision": "Precision",
    "map": "MAP",
    "coverage": "Coverage",
    "novelty": "Novelty",
    "arp": "ARP",
}
"""Metric keys, and the names reports use (``NDCG@10``)."""

ACCURACY: tuple[str, ...] = ("recall", "ndcg", "hit", "mrr", "precision", "map")
"""Metrics of how well the relevant items are ranked (one value per user, in ``[0, 1]``)."""

BEYOND_ACCURACY: tuple[str, ...] = ("coverage", "novelty", "arp")
"""Metrics of the recommended lists themselves: catalog coverage, novelty, popularity bias."""

MISSED = np.iinfo(np.int64).max
"""The rank given to a target that cannot be recommended (it is masked)."""


def metric_name(metric: str, k: int) -> str:
    """``("ndcg", 10)`` -> ``"NDCG@10"``."""
    return f"{METRICS[metric]}@{k}"


def _check(metrics: Sequence[str], ks: Sequence[int], allowed: Sequence[str]) -> None:
    for metric in metrics:
        if metric not in allowed:
            raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(allowed)}")
    for k in ks:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")


# -- one relevant item: ranks ------------------------------------------------------------------
def target_ranks(
    scores: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """0-based rank of each row's target item among its unmasked items.

    ``scores`` has shape ``(users, items)``; ``targets`` holds one item (column) index per row;
    ``mask`` (boolean, same shape as ``scores``) marks items removed from the ranking, such as the
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
    NDCG@k = Hit@k / log2(rank + 2) (the ideal DCG is 1); MRR@k = MAP@k = Hit@k / (rank + 1).
    """
    _check(metrics, ks, ACCURACY)
    r = np.asarray(ranks, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for metric in metrics:
        for k in ks:
            hit = (r < k).astype(np.float64)
            if metric in ("hit", "recall"):
                value = hit
            elif metric == "precision":
                value = hit / k
            elif metric == "ndcg":
                value = hit / np.log2(np.where(hit > 0, r, 0.0) + 2.0)
            else:  # mrr, map
                value = hit / (np.where(hit > 0, r, 0.0) + 1.0)
            out[metric_name(metric, k)] = value
    return out


# -- top-k lists -------------------------------------------------------------------------------
def top_k(
    scores: np.ndarray,
    k: int,
    mask_rows: np.ndarray | None = None,
    mask_cols: np.ndarray | None = None,
) -> np.ndarray:
    """Each row's ``k`` best columns, best first; ties go to the lower column index.

    ``mask_rows``/``mask_cols`` (equal-length index arrays) name cells removed from the ranking,
    such as each user's history. A row with fewer than ``k`` unmasked columns is padded with
    ``-1``. ``-inf`` scores rank last but are listed; NaN on an unmasked cell is an error.
    ``scores`` is only read. Cost: a negated copy, one partition and one boolean pass over
    the matrix; no full sort and no ``(users, items)`` index matrix.

    >>> top_k(np.array([[0.2, 0.5, 0.5, 0.9], [1.0, 0.0, 3.0, 2.0]]), 3, [1], [2]).tolist()
    [[3, 1, 2], [3, 0, 1]]
    """
    s = np.asarray(scores)
    if s.dtype != np.float32 and s.dtype != np.float64:
        s = s.astype(np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be a (users, items) matrix, got shape {s.shape}")
    n_rows, n_cols = s.shape
    out = np.full((n_rows, k), -1, dtype=np.int64)
    kk = min(k, n_cols)
    if n_rows == 0 or kk <= 0:
        return out
    masked = mask_rows is not None and len(mask_rows) > 0
    work = np.negative(s)  # best first = smallest first
    if masked:
        work[mask_rows, mask_cols] = np.inf
    # NaN anywhere makes the row sum NaN (so does +inf with -inf): check those rows exactly
    with np.errstate(invalid="ignore", over="ignore"):
        row_sums = work.sum(axis=1)
    suspects = np.flatnonzero(np.isnan(row_sums))
    bad = [int(r) for r in suspects if np.isnan(work[r]).any()]
    if bad:
        raise ValueError(
            f"scores contain NaN ({len(bad)} rows, the first is row {bad[0]}: "
            f"{int(np.isnan(work[bad[0]]).sum())} of {n_cols} unmasked items)"
        )
    if kk < n_cols:
        work.partition(kk - 1, axis=1)
    threshold = -(work[:, kk - 1] if kk < n_cols else work.max(axis=1))  # k-th best score
    del work
    size = n_rows * n_cols
    buf = np.zeros(-(-size // 8) * 8, dtype=bool)  # whole 8-byte words: scanned as uint64
    chosen = buf[:size].reshape(n_rows, n_cols)
    np.greater_equal(s, threshold[:, None], out=chosen)
    if masked:
        chosen[mask_rows, mask_cols] = False
    # find the chosen cells word by word: most 8-cell words are all False
    words = np.flatnonzero(buf.view(np.uint64))
    word_i, offset = np.nonzero(buf.reshape(-1, 8)[words])
    rows, cols = np.divmod(words[word_i] * 8 + offset, n_cols)  # row-major, columns ascending
    values = s[rows, cols]
    # a row with more than k cells at or above its threshold has ties at the threshold:
    # keep the lower columns among the tied ones
    tied = values == threshold[rows]
    counts = np.bincount(rows, minlength=n_rows)
    if counts.max(initial=0) > kk:
        n_tied = np.bincount(rows, weights=tied, minlength=n_rows).astype(np.int64)
        need = kk - (counts - n_tied)
        cum = np.cumsum(tied)
        before = np.concatenate(([0], cum))[np.cumsum(counts) - counts]  # ties before each row
        keep = ~tied | (cum - before[rows] <= need[rows])
        rows, cols, values = rows[keep], cols[keep], values[keep]
        counts = np.bincount(rows, minlength=n_rows)
    order = np.lexsort((cols, -values.astype(np.float64), rows))  # row, best, lower index
    starts = np.cumsum(counts) - counts
    position = np.arange(len(rows)) - np.repeat(starts, counts)
    out[rows[order], position] = cols[order]
    return out


def list_hits(lists: np.ndarray, rel_indptr: np.ndarray, rel_items: np.ndarray) -> np.ndarray:
    """Boolean ``(rows, k)``: whether ``lists[r, j]`` is relevant to row ``r``.

    Row ``r``'s relevant items are ``rel_items[rel_indptr[r]:rel_indptr[r + 1]]`` (a CSR layout,
    any order, duplicates allowed). Padding (``-1``) is never relevant.

    >>> list_hits(np.array([[3, 1, -1], [0, 2, 1]]), np.array([0, 2, 3]), np.array([1, 5, 2]))
    array([[False,  True, False],
           [False,  True, False]])
    """
    lists = np.asarray(lists, dtype=np.int64)
    n_rows = lists.shape[0]
    rel_indptr = np.asarray(rel_indptr, dtype=np.int64)
    rel_items = np.asarray(rel_items, dtype=np.int64)
    if rel_indptr.shape != (n_rows + 1,):
        raise ValueError(f"rel_indptr needs {n_rows + 1} entries, got {rel_indptr.shape}")
    width = int(max(lists.max(initial=0), rel_items.max(initial=0))) + 1
    rel_rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(rel_indptr))
    keys = np.sort(rel_rows * width + rel_items)
    probe = np.arange(n_rows, dtype=np.int64)[:, None] * width + lists
    if not len(keys):
        return np.zeros(lists.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
    return (keys[pos] == probe) & (lists >= 0)


def list_metric_values(
    hits: np.ndarray, n_relevant: np.ndarray, ks: Sequence[int], metrics: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per-row accuracy metrics from top-k hit marks, keyed ``"NDCG@10"`` (metric, then k).

    ``hits`` is ``(rows, K)`` with ``K >= max(ks)`` (position 0 is the best item);
    ``n_relevant`` the number of relevant items of each row (at least 1; relevant items that
    were masked still count, so they lower Recall, NDCG and MAP).

    >>> v = list_metric_values(np.array([[0, 1, 1]]), np.array([2]), [3], ["recall", "map"])
    >>> {name: round(float(x[0]), 4) for name, x in v.items()}
    {'Recall@3': 1.0, 'MAP@3': 0.5833}
    """
    _check(metrics, ks, ACCURACY)
    h = np.asarray(hits, dtype=np.float64)
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    if h.ndim != 2 or n_rel.shape != (h.shape[0],):
        raise ValueError(f"need hits (rows, K) and one count per row; got {h.shape}, {n_rel.shape}")
    if len(ks) and max(ks) > h.shape[1]:
        raise ValueError(f"hits cover the top {h.shape[1]} positions; k = {max(ks)} needs more")
    if (n_rel < 1).any():
        raise ValueError("every row needs at least one relevant item")
    position = np.arange(1, h.shape[1] + 1, dtype=np.float64)
    discount = 1.0 / np.log2(position + 1.0)
    ideal = np.cumsum(discount)
    cum_hits = np.cumsum(h, axis=1)
    first = np.argmax(h > 0, axis=1)
    any_hit = h.any(axis=1)
    out: dict[str, np.ndarray] = {}
    for metric in metrics:
        for k in ks:
            found = cum_hits[:, k - 1]
            best = np.minimum(n_rel, k)
            if metric == "hit":
                value = (found > 0).astype(np.float64)
            elif metric == "recall":
                value = found / n_rel
            elif metric == "precision":
                value = found / k
            elif metric == "ndcg":
                value = (h[:, :k] @ discount[:k]) / ideal[best.astype(np.int64) - 1]
            elif metric == "mrr":
                value = np.where(any_hit & (first < k), 1.0 / (first + 1.0), 0.0)
            else:  # map
                precision_at = cum_hits[:, :k] / position[:k]
                value = (precision_at * h[:, :k]).sum(axis=1) / best
            out[metric_name(metric, k)] = value
    return out


def coverage(lists: np.ndarray, n_items: int, k: int) -> float:
    """Fraction of the ``n_items`` catalog items that appear in at least one row's top ``k``.

    >>> coverage(np.array([[0, 1], [0, 2], [0, -1]]), n_items=10, k=1)
    0.1
    """
    top = np.asarray(lists)[:, :k]
    seen = np.zeros(n_items, dtype=bool)
    seen[top[top >= 0]] = True
    return float(seen.sum() / n_items) if n_items else 0.0


def self_information(item_counts: np.ndarray) -> np.ndarray:
    """``-log2`` of each item's share of the training events, Laplace-smoothed.

    The share of item ``i`` is ``(count_i + 1) / (events + items)``, so items never seen in
    training get a finite, large value instead of infinity.

    >>> self_information(np.array([6, 0])).round(3).tolist()
    [0.193, 3.0]
    """
    c = np.asarray(item_counts, dtype=np.float64)
    return -np.log2((c + 1.0) / (c.sum() + len(c)))


def _list_means(lists: np.ndarray, k: int, per_item: np.ndarray) -> np.ndarray:
    top = np.asarray(lists)[:, :k]
    valid = top >= 0
    values = np.where(valid, per_item[np.where(valid, top, 0)], 0.0)
    n = valid.sum(axis=1)
    return np.where(n > 0, values.sum(axis=1) / np.maximum(n, 1), 0.0)


def novelty_values(lists: np.ndarray, k: int, item_counts: np.ndarray) -> np.ndarray:
    """Per row: mean :func:`self_information` (bits) of its top-``k`` items (0 for an empty list).

    >>> novelty_values(np.array([[1, 0]]), 2, np.array([6, 0])).round(4).tolist()
    [1.5963]
    """
    return _list_means(lists, k, self_information(item_counts))


def arp_values(lists: np.ndarray, k: int, item_counts: np.ndarray) -> np.ndarray:
    """Per row: average recommendation popularity, the mean number of training events of its
    top-``k`` items (Abdollahpouri et al., 2019); 0 for an empty list.

    >>> arp_values(np.array([[1, 0], [0, -1]]), 2, np.array([6, 0])).tolist()
    [3.0, 6.0]
    """
    return _list_means(lists, k, np.asarray(item_counts, dtype=np.float64))
