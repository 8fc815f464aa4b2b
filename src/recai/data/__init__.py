"""Data types every component reads: :class:`Catalog`, :class:`Interactions`, :class:`Dataset`,
:class:`Split`.

Items and users are addressed by **contiguous indices** (``0..n-1``); the catalog and the dataset's
``user_ids`` map them back to external ids. Interaction arrays are plain numpy; user histories are
a CSR view sorted by time (ties keep file order).

Only the types and the split protocols every technique needs live here; loaders for real formats
are dataset plugins.
"""

from .catalog import Catalog
from .dataset import Dataset
from .interactions import Interactions
from .knowledge import KnowledgeGraph
from .split import Split, leave_one_out
from .synthetic import synthetic_dataset

__all__ = ["Catalog", "Interactions", "Dataset", "KnowledgeGraph", "Split", "leave_one_out", "synthetic_dataset"]
