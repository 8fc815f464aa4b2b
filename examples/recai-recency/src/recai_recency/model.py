"""The ranker: each interaction counts 0.5 ** (age / half_life) at the time of the last one."""

from collections.abc import Sequence
from typing import Annotated

import numpy as np
from pydantic import Field

import recai


class RecencyPopularity(recai.Ranker):
    """Scores items by time-decayed interaction counts in the training data.

    >>> from recai.data import leave_one_out, synthetic_dataset
    >>> model = RecencyPopularity(half_life_days=7)
    >>> model.fit(leave_one_out(synthetic_dataset()))
    >>> model.rank([0, 1, 2], k=3).ids.shape
    (3,)
    """

    def __init__(
        self,
        half_life_days: Annotated[
            float, Field(gt=0, le=1_000_000, description="days after which a weight halves")
        ] = 30.0,
    ):
        self.half_life_days = half_life_days
        self.weights: np.ndarray | None = None

    def fit(self, split: recai.Split) -> None:
        train = split.train
        if train.timestamps is None:
            raise recai.DataError("recency-popularity.v1 needs timestamps in the training data")
        age_days = (train.timestamps.max() - train.timestamps) / 86_400.0
        decay = 0.5 ** (age_days / self.half_life_days)
        self.weights = np.bincount(train.items, weights=decay, minlength=train.n_items)

    def score(
        self,
        histories: Sequence[np.ndarray],
        items: np.ndarray | None = None,
        *,
        users: np.ndarray | None = None,
    ) -> np.ndarray:
        if self.weights is None:
            raise RuntimeError("recency-popularity.v1 is not fitted: call fit(split) first")
        scores = np.broadcast_to(self.weights, (len(histories), len(self.weights)))
        if items is None:
            return np.array(scores)
        items = np.asarray(items)
        if items.ndim == 1:
            return scores[:, items]
        return np.take_along_axis(scores, items, axis=1)
