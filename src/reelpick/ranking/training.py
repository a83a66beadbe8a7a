"""Training data for the ranker from logged pages (impressions + outcomes), time-respecting.

The features of an impression at time ``tau`` come from a :class:`History` snapshot taken at
``as_of <= tau`` (e.g. the start of the training window), so no row sees its own future; the
ranker is then evaluated on a later window with a later snapshot
(``benchmarks/bench_ranker.py``). The logs are the shared contract,
:class:`~reelpick.decision.tables.LoggedPages` (from the logged tables with
:func:`~reelpick.decision.tables.logged_pages`).

Example
-------
>>> import pandas as pd
>>> from reelpick.decision.tables import logged_pages
>>> imp = pd.DataFrame({"decision_id": ["d0", "d1", "d2"], "page_id": ["p0", "p0", "p1"],
...     "timestamp": [10, 10, 20], "member_id": ["ana", "ana", "bo"], "row": ["Top"] * 3,
...     "row_index": [0, 0, 0], "position": [0, 1, 0], "title_id": ["up", "coco", "up"],
...     "policy": ["uniform"] * 3, "propensity": [0.5, 0.5, 0.5], "device": ["tv"] * 3,
...     "country": ["GB"] * 3, "hour": [20, 20, 21], "day_of_week": [4, 4, 4], "play": [0, 1, 0]})
>>> pages = logged_pages(imp, title_ids=["up", "coco"])
>>> req = requests_from_pages(pages, ["bo", "ana"])
>>> req.member.tolist(), req.hour.tolist()
([1, 0], [20, 21])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from reelpick.data.vocab import Vocabulary
from reelpick.decision.tables import LoggedPages
from reelpick.ranking.features import FeatureBuilder
from reelpick.ranking.history import Requests
from reelpick.ranking.sources import CandidateSource


def requests_from_pages(pages: LoggedPages, members: Vocabulary | Sequence[str],
                        countries: Sequence[str] | None = None) -> Requests:
    """One request per logged page: ``member`` indexes ``members`` (the history's member
    order; ``-1`` for a member outside it), ``country`` indexes ``countries`` (default: the
    pages' own country order; a country outside it maps to 0)."""
    vocab = members if isinstance(members, Vocabulary) else Vocabulary(list(members))
    country = pages.country
    if countries is not None and tuple(countries) != tuple(pages.countries):
        k = pd.Index(list(countries)).get_indexer(np.asarray(pages.countries, dtype=object))
        country = np.maximum(k, 0)[pages.country] if len(pages.countries) else country
    return Requests(member=vocab.index(pages.member_id, missing="negative"),
                    timestamp=pages.timestamp, device=pages.device, country=country,
                    hour=pages.hour, day_of_week=pages.day_of_week)


def training_set(pages: LoggedPages, members: Vocabulary | Sequence[str],
                 features: FeatureBuilder, sources: Sequence[CandidateSource], *,
                 countries: Sequence[str] | None = None, start: int | None = None,
                 end: int | None = None, max_rows: int | None = None,
                 rng: np.random.Generator | None = None, chunk: int = 1024
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, visit)`` for the shown slots of ``pages`` (:func:`training_rows`; requests
    by :func:`requests_from_pages`, ``members`` and ``countries`` in the history's order)."""
    return training_rows(requests_from_pages(pages, members, countries), pages.visit,
                         pages.title, pages.row_index, pages.position, pages.play, features,
                         sources, start=start, end=end, max_rows=max_rows, rng=rng,
                         chunk=chunk)


def training_rows(requests: Requests, visit: np.ndarray, title: np.ndarray,
                  row_index: np.ndarray, position: np.ndarray, play: np.ndarray,
                  features: FeatureBuilder, sources: Sequence[CandidateSource], *,
                  start: int | None = None, end: int | None = None,
                  max_rows: int | None = None, rng: np.random.Generator | None = None,
                  chunk: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, visit)`` for the impressions (arrays ``(m,)``: ``visit`` into ``requests``,
    ``title``, ``row_index``, ``position``, ``play``) of visits with
    ``start <= timestamp < end``.

    ``X`` uses the logged row and position (``features.use_slot``); ``y`` is the play;
    ``visit`` the visit index. ``max_rows`` subsamples impressions uniformly (``rng``). Raises
    ``ValueError`` when the history snapshot is newer than an impression (the features would
    see the future).
    """
    visit, title = np.asarray(visit), np.asarray(title)
    ts = requests.timestamp[visit]
    keep = np.ones(len(visit), dtype=bool)
    if start is not None:
        keep &= ts >= start
    if end is not None:
        keep &= ts < end
    if features.history.as_of > ts[keep].min(initial=np.iinfo(np.int64).max):
        raise ValueError("training_set: the history snapshot is newer than the first "
                         "impression (features would see the future)")
    idx = np.flatnonzero(keep)
    if max_rows is not None and idx.size > max_rows:
        rng = rng or np.random.default_rng(0)
        idx = np.sort(rng.choice(idx, max_rows, replace=False))
    visits = np.unique(visit[idx])
    Xs, ys, vs = [], [], []
    for lo in range(0, visits.size, chunk):
        vchunk = visits[lo:lo + chunk]
        sub = requests.subset(vchunk)
        scores = {src.name: src.score(sub) for src in sources}
        sel = idx[np.isin(visit[idx], vchunk)]
        local = np.searchsorted(vchunk, visit[sel])
        Xs.append(features.build(sub, local, title[sel], scores, row=row_index[sel],
                                 position=position[sel]))
        ys.append(np.asarray(play)[sel].astype(np.int64))
        vs.append(visit[sel])
    F = len(features.names)
    if not Xs:
        return np.zeros((0, F), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(Xs), np.concatenate(ys), np.concatenate(vs)
