"""recai-recency: popularity that forgets, as a recai ranker."""

from .model import RecencyPopularity

__all__ = ["RecencyPopularity"]
