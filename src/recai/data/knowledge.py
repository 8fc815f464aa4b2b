"""A knowledge graph over entities, with catalog items linked to entities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError

__all__ = ["KnowledgeGraph"]


@dataclass(eq=False)
class KnowledgeGraph:
    """Triples ``(head, relation, tail)`` as index arrays, plus what the indices mean.

    ``entities[e]`` is entity ``e``'s external id (e.g. a Freebase mid) and ``entity_names[e]``
    its readable name where known (``None`` otherwise); ``relation_names[r]`` names relation ``r``;
    ``item_entity[i]`` is the entity of catalog item ``i`` (``-1``: not linked).
    """

    heads: np.ndarray
    relations: np.ndarray
    tails: np.ndarray
    entities: np.ndarray
    relation_names: np.ndarray
    item_entity: np.ndarray
    entity_names: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.heads = np.asarray(self.heads, dtype=np.int64)
        self.relations = np.asarray(self.relations, dtype=np.int64)
        self.tails = np.asarray(self.tails, dtype=np.int64)
        self.entities = np.asarray(self.entities, dtype=object)
        self.relation_names = np.asarray(self.relation_names, dtype=object)
        self.item_entity = np.asarray(self.item_entity, dtype=np.int64)
        n = len(self.heads)
        if len(self.relations) != n or len(self.tails) != n:
            raise DataError("knowledge graph: heads, relations and tails differ in length")
        ne, nr = len(self.entities), len(self.relation_names)
        for name, arr, bound in (
            ("heads", self.heads, ne),
            ("tails", self.tails, ne),
            ("relations", self.relations, nr),
        ):
            if n and (arr.min() < 0 or arr.max() >= bound):
                raise DataError(f"knowledge graph: {name} index out of range 0..{bound - 1}")
        linked = self.item_entity[self.item_entity >= 0]
        if linked.size and linked.max() >= ne:
            raise DataError("knowledge graph: item_entity refers to an unknown entity")
        if self.entity_names is not None and len(self.entity_names) != ne:
            raise DataError("knowledge graph: entity_names must have one entry per entity")
        self._csr: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.heads)

    @property
    def n_entities(self) -> int:
        return len(self.entities)

    @property
    def n_relations(self) -> int:
        return len(self.relation_names)

    def _adjacency(self) -> tuple[np.ndarray, np.ndarray]:
        if self._csr is None:
            order = np.argsort(self.heads, kind="stable")
            indptr = np.zeros(self.n_entities + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.heads, minlength=self.n_entities), out=indptr[1:])
            self._csr = (indptr, order)
        return self._csr

    def out_edges(self, entity: int) -> tuple[np.ndarray, np.ndarray]:
        """``(relations, tails)`` of the triples whose head is ``entity``."""
        indptr, order = self._adjacency()
        rows = order[indptr[entity] : indptr[entity + 1]]
        return self.relations[rows], self.tails[rows]

    def label(self, entity: int) -> str:
        """The readable name of an entity, or its external id."""
        if self.entity_names is not None and self.entity_names[entity]:
            return str(self.entity_names[entity])
        return str(self.entities[entity])

    def item_facts(self, item: int) -> list[tuple[str, str]]:
        """``[(relation name, tail label), ...]`` for a catalog item (empty when not linked)."""
        e = int(self.item_entity[item]) if 0 <= item < len(self.item_entity) else -1
        if e < 0:
            return []
        rels, tails = self.out_edges(e)
        return [
            (str(self.relation_names[r]), self.label(int(t)))
            for r, t in zip(rels, tails, strict=True)
        ]
