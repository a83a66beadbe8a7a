"""Scorers of p(play | history) behind one :class:`Recommender` interface."""

from reelpick.models.base import (
    NotFittedError,
    Recommendations,
    Recommender,
    UnknownMemberError,
    available_models,
    load_model,
    make_model,
)
from reelpick.models.blend import TrendBlend
from reelpick.models.factorization import ALS, BPR
from reelpick.models.knn import ItemKNN
from reelpick.models.popular import MostPopular

_LAZY = {"SequenceConfig": "sequence", "SequenceRecommender": "sequence",
         "StackConfig": "stack", "StackRanker": "stack"}


def __getattr__(name: str) -> object:
    """The sequence model imports torch (seconds, hundreds of MB) and the stack LightGBM: load
    them on first use only."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"reelpick.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'reelpick.models' has no attribute {name!r}")

__all__ = [
    "ALS",
    "BPR",
    "ItemKNN",
    "MostPopular",
    "NotFittedError",
    "Recommendations",
    "Recommender",
    "SequenceConfig",
    "SequenceRecommender",
    "StackConfig",
    "StackRanker",
    "TrendBlend",
    "UnknownMemberError",
    "available_models",
    "load_model",
    "make_model",
]
