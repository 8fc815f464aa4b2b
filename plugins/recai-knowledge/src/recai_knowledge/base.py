"""What every knowledge type shares: facts with a utility, fitting on the training split, checks.

A knowledge type is a :class:`FactPrompter`: ``fit(split)`` reads the catalog (and the knowledge
graph) of ``split.dataset`` and the interactions of ``split.train`` only, never ``split.valid``
or ``split.test``; :meth:`FactPrompter.facts` returns the :class:`Fact` s it knows for one
request (a user's ``history`` and the ``candidates``, both :class:`recai.ItemList` s of catalog
indices), each with a *utility* from 0 to 1: how much it says about these candidates for this
user. :meth:`FactPrompter.knowledge` (the :class:`recai.KnowledgePrompter` method) writes the
type's header and its ``max_facts`` most useful facts, in the type's own order;
``knowledge-composite.v1`` instead pools the facts of several types and keeps the most useful
within a token budget.

**Saving the fit** (the :class:`recai.Component` protocol: ``recai run`` keeps a fit under
``<run>/artifacts/<fingerprint>/`` and calls ``load`` instead of ``fit`` on the next run):
:meth:`FactPrompter.save` writes ``fit.npz`` (the catalog's ids and titles, the catalog fields
the type reads at request time, and the type's fitted arrays: counts, co-occurrence matrix,
item vectors) and then ``fit.json`` (format, type, the catalog's fingerprint, the training
data's fingerprint, the type's fitted scalars), each atomically. :meth:`FactPrompter.load`
rebuilds the same state, so the prompter writes exactly the text it wrote after ``fit``; a
folder of another type or format, a file that does not read, or a catalog that does not match
its fingerprint is a :class:`recai.errors.DataError` naming the folder. A ranker a type reads
(``knowledge-u2i.v1``, ``knowledge-i2i.v1`` with ``measure = "ranker"``) is not in the folder:
it is a component of its own, fitted or loaded by the runtime before the prompter.
``knowledge-kgpaths.v1`` saves its graph its own way.

>>> approx_tokens("four"), approx_tokens(""), approx_tokens("x" * 9)
(1, 0, 3)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

import recai
from recai.data import Catalog, Split
from recai.errors import DataError, RecaiError
from recai.specs import Configurable
from recai.types import ItemList

__all__ = [
    "Fact",
    "FactPrompter",
    "KnowledgeParams",
    "NotFittedError",
    "FIT_FORMAT",
    "approx_tokens",
    "value_text",
    "select_facts",
]


def approx_tokens(text: str) -> int:
    """Tokens of ``text`` by the usual rule of thumb for English BPE tokenizers: one per four
    characters, rounded up (0 for empty text)."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class Fact:
    """One line of knowledge: its text, its utility for this request (0 to 1) and the catalog
    items it is about (candidates, history items)."""

    text: str
    utility: float = 1.0
    items: tuple[int, ...] = ()


#: The version of the files :meth:`FactPrompter.save` writes (``fit.json``'s ``format``).
FIT_FORMAT = 1


class NotFittedError(RecaiError):
    """A knowledge prompter was asked for knowledge before ``fit(split)``."""


class KnowledgeParams(recai.Params):
    """What every knowledge type takes."""

    max_facts: int = Field(
        10, ge=1, le=10_000, description="most facts written by knowledge() (the most useful)"
    )
    header: str | None = Field(
        None,
        max_length=1_000,
        description="the line written before the facts; default: the type's own; '' for none",
    )


def value_text(value: Any) -> str | None:
    """A catalog value as prompt text (``None`` when missing): tuples joined by commas, whole
    numbers without a decimal point, ``NaN``/``NaT``/empty as missing.

    >>> value_text(("Action", "Crime")), value_text(1995.0), value_text(float("nan")), value_text(2.5)
    ('Action, Crime', '1995', None, '2.5')
    """
    if value is None:
        return None
    if isinstance(value, (tuple, list, set, frozenset)):
        parts = [str(v) for v in value if v is not None and str(v).strip()]
        return ", ".join(parts) if parts else None
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    if isinstance(value, (float, np.floating, int, np.integer)) and not isinstance(value, bool):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else f"{number:g}"
    text = str(value).strip()
    return text or None


def select_facts(facts: Sequence[Fact], limit: int) -> list[Fact]:
    """The ``limit`` most useful facts (ties: the earlier), in their original order."""
    if len(facts) <= limit:
        return list(facts)
    order = sorted(range(len(facts)), key=lambda i: (-facts[i].utility, i))[:limit]
    return [facts[i] for i in sorted(order)]


class FactPrompter(Configurable, recai.KnowledgePrompter):
    """Base of the knowledge types (see the module docstring). A subclass sets ``Params``,
    ``name`` and ``default_header`` and implements :meth:`_fit` and :meth:`_facts`."""

    Params: ClassVar[type[recai.Params]] = KnowledgeParams
    #: The registered name, for messages.
    name: ClassVar[str] = "knowledge"
    #: The line before the facts unless ``header`` says otherwise.
    default_header: ClassVar[str] = ""

    params: Any
    catalog: Catalog

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fitted = False

    # -- fitting ----------------------------------------------------------------------------------
    def fit(self, split: Split) -> None:
        """Read ``split.dataset``'s catalog and ``split.train`` (never valid or test)."""
        self.catalog = split.dataset.catalog
        self._fit(split)
        self._data_fingerprint: Any = split.fingerprint  # hashed when saved, not on every fit
        self._fitted = True

    def _fit(self, split: Split) -> None:
        """What the type learns from ``split.train`` (and the dataset's catalog and graph)."""

    # -- saving the fit ---------------------------------------------------------------------------
    def _saved_fields(self) -> list[str]:
        """The catalog fields the type reads at request time (saved with the fit)."""
        return []

    def _state(self) -> dict[str, Any]:
        """The fitted state: name -> a numpy array (into ``fit.npz``), or a JSON value, or
        None (into ``fit.json``)."""
        return {}

    def _restore(self, state: dict[str, Any]) -> None:
        """Set the fitted state from what :meth:`_state` returned (arrays read back as arrays)."""

    def save(self, directory: Path | str) -> None:
        """Write the fit into ``directory`` (see the module docstring): ``fit.npz``, then
        ``fit.json``, each atomically."""
        from recai.runtime import atomic_write_file, atomic_write_json

        if not self._fitted:
            raise NotFittedError(f"{self.name}: not fitted; nothing to save")
        folder = Path(directory)
        catalog = self.catalog
        arrays: dict[str, np.ndarray] = {
            "catalog.ids": np.asarray([str(i) for i in catalog.ids.tolist()], dtype=str),
            "catalog.titles": np.asarray([str(t) for t in catalog.titles.tolist()], dtype=str),
        }
        kinds: dict[str, str] = {}
        for name in self._saved_fields():
            col = np.asarray(catalog.fields[name])
            if col.dtype == object:  # text, categories, tuples of values: JSON per item
                kinds[name] = "json"
                arrays[f"field.{name}"] = np.asarray(
                    [json.dumps(_plain_value(v), ensure_ascii=False) for v in col.tolist()],
                    dtype=str,
                )
            else:  # numbers, booleans, dates
                kinds[name] = "array"
                arrays[f"field.{name}"] = col
        values: dict[str, Any] = {}
        for key, value in self._state().items():
            if isinstance(value, np.ndarray):
                if value.dtype == object:
                    raise TypeError(f"{self.name}: state {key!r} is an object array")
                arrays[f"state.{key}"] = value
            else:
                values[key] = value

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]

        atomic_write_file(folder / "fit.npz", write)
        atomic_write_json(
            folder / "fit.json",
            {
                "format": FIT_FORMAT,
                "name": self.name,
                "catalog": catalog.fingerprint(),
                "data": (
                    self._data_fingerprint()
                    if callable(self._data_fingerprint)
                    else self._data_fingerprint
                ),
                "params": self._params_dump(),
                "fields": kinds,
                "state": values,
            },
        )

    def _params_dump(self) -> dict[str, Any]:
        """The params as JSON (components by their description), kept with a saved fit."""
        dumped = self.params.model_dump(mode="json")
        return dict(json.loads(json.dumps(dumped, default=str)))

    def load(self, directory: Path | str) -> None:
        """Read a fit written by :meth:`save` (no split needed); the prompter then writes what
        it wrote after ``fit``. A fit saved with other params is refused (the runtime keys a
        recipe's fits by their params; a prompter built by hand is checked here)."""
        folder = Path(directory)
        again = "delete the folder to fit again"
        try:
            meta = json.loads((folder / "fit.json").read_text(encoding="utf-8"))
            with np.load(folder / "fit.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            kinds = dict(meta["fields"])
            fields: dict[str, Any] = {}
            for name, kind in kinds.items():
                col = arrays[f"field.{name}"]
                if kind == "json":
                    col = np.asarray(
                        [_python_value(json.loads(v)) for v in col.tolist()] + [None], dtype=object
                    )[:-1]  # the sentinel keeps tuples as elements
                fields[name] = col
            catalog = Catalog(
                ids=arrays["catalog.ids"].astype(object),
                titles=arrays["catalog.titles"].astype(object),
                fields=fields,
            )
            state = dict(meta["state"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"{self.name}: cannot read the saved fit in {folder}: {exc}; {again}"
            ) from None
        if meta.get("format") != FIT_FORMAT or meta.get("name") != self.name:
            raise DataError(
                f"{self.name}: the saved fit in {folder} is {meta.get('name')!r} format "
                f"{meta.get('format')!r}; this reads {self.name!r} format {FIT_FORMAT}; {again}"
            )
        saved_params = meta.get("params")
        if saved_params is not None and saved_params != self._params_dump():
            mine = self._params_dump()
            diff = sorted(
                k for k in set(mine) | set(saved_params) if mine.get(k) != saved_params.get(k)
            )
            said = "; ".join(
                f"{k} {json.dumps(saved_params.get(k))} there, {json.dumps(mine.get(k))} here"
                for k in diff[:3]
            )
            raise DataError(
                f"{self.name}: the saved fit in {folder} was fitted with other params ({said}); "
                f"{again}"
            )
        if catalog.fingerprint() != meta.get("catalog"):
            raise DataError(
                f"{self.name}: the saved fit in {folder} holds a catalog whose fingerprint "
                f"{catalog.fingerprint()} is not the {meta.get('catalog')!r} it was fitted on "
                f"(a damaged or mixed folder); {again}"
            )
        for key, value in arrays.items():
            if key.startswith("state."):
                state[key[len("state.") :]] = value
        self.catalog = catalog
        self._data_fingerprint = meta.get("data")
        try:
            self._restore(state)
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(
                f"{self.name}: the saved fit in {folder} is incomplete or was fitted with "
                f"other params: {exc}; {again}"
            ) from None
        self._fitted = True

    def _chosen_fields(self, split: Split, chosen: Sequence[str] | None) -> list[str]:
        """The catalog fields a type reads: ``chosen`` (its ``fields`` param), or every field
        when None; a field the catalog lacks is a :class:`DataError` naming it and the
        catalog's fields."""
        available = list(self.catalog.fields)
        names = list(available if chosen is None else chosen)
        missing = [n for n in names if n not in available]
        if missing:
            raise DataError(
                f"{self.name}: fields: the catalog of {split.dataset.name!r} has no field "
                f"{missing[0]!r}; its fields: {', '.join(available) or '(none)'}"
            )
        return names

    @property
    def n_items(self) -> int:
        return int(self.catalog.n_items)

    # -- asking -----------------------------------------------------------------------------------
    @property
    def header(self) -> str:
        given = self.params.header
        return self.default_header if given is None else str(given)

    def facts(
        self,
        *,
        history: ItemList | None = None,
        candidates: ItemList | None = None,
        query: str | None = None,
    ) -> list[Fact]:
        """Every fact this type knows for the request, in the type's order (utilities 0..1)."""
        if not self._fitted:
            raise NotFittedError(
                f"{self.name}: not fitted; call fit(split) first (in a recipe, the evaluator or "
                "agent that uses it fits it on its training split)"
            )
        hist = self._ids(history, "history")
        cands = self._ids(candidates, "candidates")
        return self._facts(hist, cands, query)

    def _facts(self, history: np.ndarray, candidates: np.ndarray, query: str | None) -> list[Fact]:
        raise NotImplementedError

    def knowledge(
        self,
        *,
        history: ItemList | None = None,
        candidates: ItemList | None = None,
        query: str | None = None,
    ) -> str:
        """The header and the ``max_facts`` most useful facts, one per line ("" when none)."""
        facts = select_facts(
            self.facts(history=history, candidates=candidates, query=query),
            int(self.params.max_facts),
        )
        return render_block(self.header, [f.text for f in facts])

    def _ids(self, items: ItemList | Sequence[int] | np.ndarray | None, what: str) -> np.ndarray:
        if items is None:
            return np.zeros(0, dtype=np.int64)
        ids = items.ids if isinstance(items, ItemList) else np.asarray(items)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise DataError(
                f"{self.name}: {what} must be catalog indices (integers), got {ids.dtype}"
            )
        ids = ids.astype(np.int64, copy=False).ravel()
        bad = ids[(ids < 0) | (ids >= self.n_items)]
        if bad.size:
            raise DataError(
                f"{self.name}: {what} item {int(bad[0])} is not a catalog index "
                f"(0..{self.n_items - 1}); pass catalog indices, not external ids"
            )
        return ids

    def title(self, item: int) -> str:
        return str(self.catalog.title(int(item)))


def _plain_value(value: Any) -> Any:
    """A catalog value as JSON: tuples as lists, numpy scalars as Python ones."""
    if isinstance(value, (tuple, list)):
        return [_plain_value(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _python_value(value: Any) -> Any:
    """What :func:`_plain_value` wrote, back: lists as tuples."""
    if isinstance(value, list):
        return tuple(_python_value(v) for v in value)
    return value


def render_block(header: str, lines: Sequence[str]) -> str:
    """``header`` then ``- line`` per line; "" when there are no lines."""
    if not lines:
        return ""
    body = "\n".join(f"- {line}" for line in lines)
    return f"{header}\n{body}" if header else body


def recent(history: np.ndarray, n: int) -> np.ndarray:
    """The last ``n`` distinct items of ``history``, most recent first."""
    out: list[int] = []
    seen: set[int] = set()
    for item in history[::-1].tolist():
        if item not in seen:
            seen.add(item)
            out.append(item)
            if len(out) >= n:
                break
    return np.asarray(out, dtype=np.int64)


def scaled(values: np.ndarray) -> np.ndarray:
    """``values`` divided by their largest (all zeros stay zeros), clipped to 0..1."""
    values = np.asarray(values, dtype=np.float64)
    top = float(values.max()) if values.size else 0.0
    if top <= 0:
        return np.zeros_like(values)
    return np.clip(values / top, 0.0, 1.0)
