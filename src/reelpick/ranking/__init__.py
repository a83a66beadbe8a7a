"""From candidates to a page: candidate sources, ranker features, the LightGBM ranker and page
composition (see ``docs/policies.md``).

Layers: :mod:`~reelpick.ranking.history` (catalogue, history snapshot, requests) ->
:mod:`~reelpick.ranking.sources` -> :mod:`~reelpick.ranking.features` ->
:mod:`~reelpick.ranking.ranker` -> :mod:`~reelpick.ranking.page` ->
:mod:`~reelpick.ranking.policy` (world policies); :mod:`~reelpick.ranking.training` builds
training data from logged pages.
"""

from reelpick.ranking.features import FeatureBuilder
from reelpick.ranking.history import Catalogue, History, Requests
from reelpick.ranking.page import ROW_KINDS, ComposedPages, PageComposer, PageConfig
from reelpick.ranking.policy import RankerPagePolicy, RankerScorer
from reelpick.ranking.ranker import Ranker, RankerConfig
from reelpick.ranking.sources import (
    DAILY_SEQ_PARAMS,
    BecauseYouWatchedSource,
    CandidateSource,
    ContinueWatchingSource,
    ModelSource,
    TrendingSource,
    default_sources,
)
from reelpick.ranking.training import requests_from_pages, training_rows, training_set

__all__ = [
    "BecauseYouWatchedSource",
    "CandidateSource",
    "Catalogue",
    "ComposedPages",
    "ContinueWatchingSource",
    "FeatureBuilder",
    "History",
    "ModelSource",
    "PageComposer",
    "PageConfig",
    "ROW_KINDS",
    "Ranker",
    "RankerConfig",
    "RankerPagePolicy",
    "RankerScorer",
    "Requests",
    "TrendingSource",
    "DAILY_SEQ_PARAMS",
    "default_sources",
    "requests_from_pages",
    "training_rows",
    "training_set",
]
