"""The kernel's built-in components pass the role contracts of the test kit."""

from __future__ import annotations

from recai.testing import DatasetContract, RankerContract, RetrieverContract


class TestRandomRanker(RankerContract):
    name = "random.v1"
    params = {"seed": 3}
    distribution = "recai"


class TestRandomRetriever(RetrieverContract):
    name = "random.v1"
    supports_text = True
    distribution = "recai"


class TestSyntheticDataset(DatasetContract):
    name = "synthetic.v1"
    params = {"n_users": 20, "n_items": 15}
    distribution = "recai"
