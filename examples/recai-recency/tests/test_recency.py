"""Tests of the example plugin: the ranker contract, plus what makes this ranker itself."""

import numpy as np

from recai.data import Dataset, Interactions, Split
from recai.testing import RankerContract


class TestRecencyPopularity(RankerContract):
    name = "recency-popularity.v1"
    params = {"half_life_days": 10.0}
    distribution = "recai-recency"  # checks the entry point of the installed distribution


def test_recent_interactions_count_more(tiny_dataset: Dataset) -> None:
    import recai

    day = 86_400
    # item 0: two old interactions; item 1: one recent interaction
    train = Interactions(
        [0, 1, 2], [0, 0, 1], n_users=3, n_items=tiny_dataset.n_items, timestamps=[0, 0, 100 * day]
    )
    split = Split(tiny_dataset, train=train, test=None)
    model = recai.create("ranker", "recency-popularity.v1", half_life_days=10.0)
    model.fit(split)
    scores = model.score([np.array([], dtype=np.int64)])[0]
    assert scores[1] > scores[0] > 0
    slow = recai.create("ranker", "recency-popularity.v1", half_life_days=10_000.0)
    slow.fit(split)
    one_old_item = slow.score([np.array([5])])[0]
    assert one_old_item[0] > one_old_item[1]  # long memory: counts win
