"""recai-eval: evaluators for recai (full-catalog ranking metrics, ...).

The components are registered through :mod:`recai_eval.plugin`; use them by name in a recipe
(``use = "ranking.v1"``). The metric core is plain numpy in :mod:`recai_eval.metrics`.
"""

__version__ = "0.1.0"
