"""A dataset: catalog, interactions, and where they came from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError
from .catalog import Catalog
from .ids import IdIndex
from .interactions import Interactions
from .knowledge import KnowledgeGraph

__all__ = ["Dataset"]


@dataclass(eq=False)
class Dataset:
    """A catalog, interactions and the facts about where they came from.

    Optional parts: ``user_ids`` (external ids of users ``0..n_users-1``), ``user_fields``
    (columns about users, e.g. age or occupation, with ``user_descriptions``), ``kg`` (a
    :class:`~recai.data.KnowledgeGraph` linked to the catalog's items) and ``info`` (source,
    licence, citation: say where the data came from).
    """

    name: str
    catalog: Catalog
    interactions: Interactions
    user_ids: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    kg: KnowledgeGraph | None = None
    user_fields: dict[str, Any] = field(default_factory=dict)
    user_descriptions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.interactions.n_items != self.catalog.n_items:
            raise DataError(
                f"dataset {self.name}: interactions index {self.interactions.n_items} items "
                f"but the catalog has {self.catalog.n_items}"
            )
        if self.user_ids is not None and len(self.user_ids) != self.interactions.n_users:
            raise DataError(
                f"dataset {self.name}: {len(self.user_ids)} user ids for {self.interactions.n_users} users"
            )
        for col, values in self.user_fields.items():
            if len(values) != self.interactions.n_users:
                raise DataError(
                    f"dataset {self.name}: user column {col!r} has {len(values)} values for {self.interactions.n_users} users"
                )
        if self.kg is not None and len(self.kg.item_entity) != self.catalog.n_items:
            raise DataError(
                f"dataset {self.name}: the knowledge graph links {len(self.kg.item_entity)} items, the catalog has {self.catalog.n_items}"
            )
        self._users: IdIndex | None = None

    def user_index(self, external_id: Any) -> int:
        """The user index ``0..n_users-1`` of an external user id (from ``user_ids``).

        Without ``user_ids`` a user's id is its index. An unknown id raises
        :class:`~recai.errors.UnknownIdError` (a ``KeyError``) saying what was probably meant,
        e.g. ``7`` where the ids are strings (``"7"``).

        >>> from recai.data import synthetic_dataset
        >>> synthetic_dataset(n_users=5, n_items=4).user_index("u3")
        3
        """
        if self._users is None:
            ids = (
                self.user_ids
                if self.user_ids is not None
                else np.arange(self.interactions.n_users, dtype=np.int64)
            )
            self._users = IdIndex(np.asarray(ids), kind="user", owner=f"dataset {self.name}")
        return self._users.lookup(external_id)

    @property
    def n_users(self) -> int:
        return self.interactions.n_users

    @property
    def n_items(self) -> int:
        return self.catalog.n_items

    def stats(self) -> dict[str, Any]:
        n = len(self.interactions)
        return {
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "density": n / max(1, self.n_users * self.n_items),
        }

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.name.encode())
        h.update(self.catalog.fingerprint().encode())
        h.update(self.interactions.fingerprint().encode())
        return h.hexdigest()[:16]
