"""Training data for the ranker from simulator logs: impressions + outcomes, time-respecting.

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
    """``(X, y, visit)`` for the impressions of visits with ``start <= timestamp < end``.

    ``X`` uses the logged row and position (``features.use_slot``); ``y`` is the play;
    ``visit`` the visit index. ``max_rows`` subsamples impressions uniformly (``rng``).
    """
    s = log.shown  # type: ignore[attr-defined]
    req = requests_from_log(log)
    ts = req.timestamp[s.visit]
    keep = np.ones(len(s.visit), dtype=bool)
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
    visits = np.unique(s.visit[idx])
    Xs, ys, vs = [], [], []
    for lo in range(0, visits.size, chunk):
        vchunk = visits[lo:lo + chunk]
        sub = req.subset(vchunk)
        scores = {src.name: src.score(sub) for src in sources}
        sel = idx[np.isin(s.visit[idx], vchunk)]
        local = np.searchsorted(vchunk, s.visit[sel])
        Xs.append(features.build(sub, local, s.title[sel], scores, row=s.row_index[sel],
                                 position=s.position[sel]))
        ys.append(s.play[sel].astype(np.int64))
        vs.append(s.visit[sel])
    F = len(features.names)
    if not Xs:
        return np.zeros((0, F), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(Xs), np.concatenate(ys), np.concatenate(vs)
