"""Data types every component reads: :class:`Catalog`, :class:`Interactions`, :class:`Dataset`,
:class:`Split`, and what the kernel does with them.

Items and users are addressed by **contiguous indices** (``0..n-1``); the catalog and the dataset's
``user_ids`` map them back to external ids. Interaction arrays are plain numpy; user histories are
a CSR view sorted by time (ties keep file order).

Besides the types: split protocols (:func:`leave_one_out`, :func:`temporal_split`,
:func:`random_split`), filters that report what they remove (:func:`min_rating`,
:func:`deduplicate`, :func:`k_core`, :func:`apply_filters`), deterministic negative sampling for
candidate protocols (:func:`sample_candidates`), a read-only SQLite mirror of a catalog that is
safe for SQL written by an LLM (:class:`CatalogDB`) and fuzzy grounding of free text in titles
and field values (:class:`Grounder`). Loaders for real formats are dataset plugins.
"""

from .catalog import Catalog
from .dataset import Dataset
from .filters import (
    FilterReport,
    FilterStep,
    apply_filters,
    deduplicate,
    k_core,
    min_rating,
    subset_catalog,
)
from .grounding import FuzzyIndex, Grounder, Match, normalize_text
from .interactions import Interactions
from .knowledge import KnowledgeGraph
from .sampling import Candidates, sample_candidates
from .split import Split, leave_one_out, random_split, recbole_time_keys, temporal_split
from .sql import CatalogDB, QueryError, QueryResult
from .synthetic import synthetic_dataset, write_atomic

__all__ = [
    "Catalog",
    "Interactions",
    "Dataset",
    "KnowledgeGraph",
    "Split",
    "leave_one_out",
    "temporal_split",
    "random_split",
    "recbole_time_keys",
    "synthetic_dataset",
    "write_atomic",
    "FilterStep",
    "FilterReport",
    "min_rating",
    "deduplicate",
    "k_core",
    "apply_filters",
    "subset_catalog",
    "Candidates",
    "sample_candidates",
    "CatalogDB",
    "QueryError",
    "QueryResult",
    "FuzzyIndex",
    "Grounder",
    "Match",
    "normalize_text",
]
