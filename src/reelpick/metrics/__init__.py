"""Ranking metrics on full-catalogue top-k lists."""

from reelpick.metrics.ranking import (
    RankingResult,
    hits_at_k,
    ranking_metrics,
    truth_matrix,
)

__all__ = ["RankingResult", "hits_at_k", "ranking_metrics", "truth_matrix"]
