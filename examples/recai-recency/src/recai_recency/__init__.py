"""recai-recency: popularity that forgets, as a recai ranker.

The package imports nothing on purpose: recai imports ``recai_recency.plugin`` (and so this file)
just to list components, so the model lives in ``recai_recency.model``, imported when built.
"""
