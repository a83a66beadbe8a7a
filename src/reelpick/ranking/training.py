"""Training data for the ranker from logged impressions + outcomes, time-respecting.

The features of an impression at time ``tau`` come from a :class:`History` snapshot taken at
``as_of <= tau`` (e.g. the start of the training window), so no row sees its own future; the
ranker is then evaluated on a later window with a later snapshot
(``benchmarks/bench_ranker.py``).

Example
-------
>>> from reelpick.world import World, WorldConfig
>>> from reelpick.policies import UniformPolicy
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> log = world.simulate(UniformPolicy(), 300)
>>> requests_from_log(log).member.shape
(300,)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reelpick.ranking.features import FeatureBuilder
from reelpick.ranking.history import Requests
from reelpick.ranking.sources import CandidateSource


def requests_from_log(log: object) -> Requests:
    """One request per logged visit of a :class:`~reelpick.world.SimulationLog`."""
    return Requests.from_visits(log.visits)  # type: ignore[attr-defined]


def training_set(log: object, features: FeatureBuilder, sources: Sequence[CandidateSource], *,
                 start: int | None = None, end: int | None = None, max_rows: int | None = None,
                 rng: np.random.Generator | None = None, chunk: int = 1024
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, visit)`` for the impressions of a simulation log (see :func:`training_rows`)."""
    s = log.shown  # type: ignore[attr-defined]
    return training_rows(requests_from_log(log), s.visit, s.title, s.row_index, s.position,
                         s.play, features, sources, start=start, end=end, max_rows=max_rows,
                         rng=rng, chunk=chunk)


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
