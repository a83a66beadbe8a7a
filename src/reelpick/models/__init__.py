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
from reelpick.models.factorization import ALS, BPR
from reelpick.models.knn import ItemKNN
from reelpick.models.popular import MostPopular

__all__ = [
    "ALS",
    "BPR",
    "ItemKNN",
    "MostPopular",
    "NotFittedError",
    "Recommendations",
    "Recommender",
    "UnknownMemberError",
    "available_models",
    "load_model",
    "make_model",
]
