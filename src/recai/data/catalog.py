"""The item catalog: external ids, titles and further columns, addressed by contiguous indices."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError
from .ids import IdIndex

__all__ = ["Catalog"]


@dataclass(eq=False)
class Catalog:
    """The items: external ids, titles and further columns (genres, price, year, ...).

    ``ids`` are the external item ids, in the type the source gave them: datasets read from files
    keep them as **strings** (MovieLens item ``"50"``), so look items up with
    ``catalog.index("50")``. Everything else (interactions, rankers, ``ItemList``) addresses items
    by their **index** ``0..n_items-1``.

    ``descriptions`` says in words what each column holds, for use in LLM prompts. Columns in
    ``fields`` follow these conventions, so every consumer (SQL mirror, prompts, filters) reads
    them the same way:

    - numbers: float arrays with ``NaN`` for missing (integer arrays when nothing is missing);
    - categorical and free text: object arrays of ``str``, ``None`` for missing;
    - multi-valued (genres, tags): object arrays of tuples of ``str``, ``()`` for none;
    - dates: ``datetime64`` arrays, ``NaT`` for missing.
    """

    ids: np.ndarray
    titles: np.ndarray
    fields: dict[str, Any] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids)
        self.titles = np.asarray(self.titles, dtype=object)
        n = len(self.ids)
        if self.ids.ndim != 1:
            raise DataError("catalog ids must be one-dimensional")
        if len(self.titles) != n:
            raise DataError(f"catalog has {n} ids but {len(self.titles)} titles")
        for name, col in self.fields.items():
            if len(col) != n:
                raise DataError(f"catalog column {name!r} has {len(col)} values for {n} items")
        ids = self.ids.tolist()
        if len(set(ids)) != n:  # a set is ~10x faster than np.unique on object arrays
            seen: set[Any] = set()
            dup = []
            for x in ids:
                if x in seen:
                    dup.append(x)
                seen.add(x)
            dup = dup[:5]
            raise DataError(f"catalog item ids are not unique: {dup} appear more than once")
        self._index = IdIndex(
            self.ids, kind="item", owner="the catalog", titles=lambda: self.titles
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_items(self) -> int:
        return len(self.ids)

    def index(self, external_id: Any) -> int:
        """The catalog index of an external item id.

        An unknown id raises :class:`~recai.errors.UnknownIdError` (a ``KeyError``) whose message
        says what was probably meant:

        >>> catalog = Catalog(ids=np.array(["1", "50"], dtype=object), titles=["Toy Story", "Star Wars"])
        >>> catalog.index("50")
        1
        >>> catalog.index(50)
        Traceback (most recent call last):
        ...
        recai.errors.UnknownIdError: item id 50 is an int; the catalog's external ids are strings: did you mean '50'?
        """
        return self._index.lookup(external_id)

    def __contains__(self, external_id: object) -> bool:
        """Whether ``external_id`` is an item id of this catalog (``"50" in catalog``)."""
        return external_id in self._index

    def title(self, item: int) -> str:
        return str(self.titles[item])

    def fingerprint(self) -> str:
        """A short hash of the item ids in index order: what item index ``i`` means.

        Models store it when fitted and refuse to load against a catalog with another one.
        """
        if getattr(self, "_fingerprint", None) is None:
            h = hashlib.sha256(str(len(self.ids)).encode())
            for token in self.ids.tolist():
                h.update(b"\x1f" + str(token).encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def describe(self) -> str:
        """One line per column, for prompts: ``title: the item's name``."""
        lines = [f"title: {self.descriptions.get('title', 'the name of the item')}"]
        for name in self.fields:
            lines.append(f"{name}: {self.descriptions.get(name, name)}")
        return "\n".join(lines)
