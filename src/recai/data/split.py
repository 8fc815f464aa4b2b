"""Splits of a dataset into train / validation / test, and the protocols that make them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .dataset import Dataset
from .interactions import Interactions

__all__ = ["Split", "leave_one_out"]


@dataclass(eq=False)
class Split:
    """Train / validation / test interactions of one dataset, and the protocol that made them.

    ``protocol`` is a short name (``leave_one_out``) and ``details`` its parameters, so every
    reported number can say how it was measured.
    """

    dataset: Dataset
    train: Interactions
    test: Interactions | None
    valid: Interactions | None = None
    protocol: str = "custom"
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def full(cls, dataset: Dataset) -> Split:
        """Everything is training data (for serving a model, not for measuring it)."""
        return cls(dataset, dataset.interactions, None, None, "full", {})

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.details.items())
        return f"{self.protocol}({extra})" if extra else self.protocol

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.dataset.fingerprint().encode())
        h.update(self.describe().encode())
        for part in (self.train, self.valid, self.test):
            h.update((part.fingerprint() if part is not None else "-").encode())
        return h.hexdigest()[:16]


def leave_one_out(dataset: Dataset) -> Split:
    """Per user in time order: last event -> test, second-to-last -> valid, the rest -> train.

    Users with two events give one to train and one to test; users with one event keep it in train.
    Ties in time keep the order of the source file.
    """
    inter = dataset.interactions
    indptr, _, order = inter.csr()
    counts = np.diff(indptr)
    role = np.zeros(len(inter), dtype=np.int8)  # 0 train, 1 valid, 2 test
    last = indptr[1:] - 1
    has_test = counts >= 2
    role[order[last[has_test]]] = 2
    has_valid = counts >= 3
    role[order[last[has_valid] - 1]] = 1
    return Split(
        dataset,
        train=inter.select(role == 0),
        valid=inter.select(role == 1),
        test=inter.select(role == 2),
        protocol="leave_one_out",
        details={"order": "time" if inter.timestamps is not None else "file"},
    )
