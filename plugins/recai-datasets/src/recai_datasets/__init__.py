"""recai-datasets: dataset sources for recai (MovieLens, RecBole atomic folders, Amazon, Steam,
RecAI's format, your own CSV or JSON lines).

The components are registered through :mod:`recai_datasets.plugin`; use them by name in a recipe
(``use = "movielens-100k.v1"``), with ``recai.create("dataset", "csv.v1", ...)``, or directly::

    from recai_datasets.movielens import MovieLens100K
    data = MovieLens100K().dataset()

Every loader takes ``on_error = "raise" | "skip"`` (see :mod:`recai_datasets.problems`).
"""

__version__ = "0.1.0"
