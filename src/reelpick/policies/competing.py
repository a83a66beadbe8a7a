r"""Greedy winner among competing models: several models predict engagement, the most confident
one makes the page, and the page is logged with the winner's name.

Each model :math:`m` is a :class:`~reelpick.policies.Scorer` whose scores are predicted play
probabilities. Its confidence for a visit is the mean prediction over its own greedy page,
:math:`c_m = \frac1S \sum_s \hat p_m(g^m_s)` (``confidence="mean"``) or the best one
(``"max"``); the winner is :math:`m^* = \arg\max_m c_m` (ties: first model) and the page is
:math:`g^{m^*}`. Everything is deterministic given the models, so

.. math:: P(t \text{ in slot } s) = [t = g^{m^*}_s] \quad \text{(propensity 1)},

and ``page.source[i]`` names the winner (:meth:`GreedyWinnerPolicy.winners` recomputes it from
logged visits). For exploration on top, use ``epsilon``: with probability :math:`\epsilon` a
uniform page, :math:`P = (1-\epsilon)[t = g^{m^*}_s] + \epsilon / A`.

Example
-------
>>> import numpy as np
>>> from reelpick.world import World, WorldConfig
>>> from reelpick.policies import PopularityScorer
>>> world = World(WorldConfig.preset("small"), seed=1)
>>> vb = world.make_visits([0, 1], world.config.start + 3600)
>>> pol = GreedyWinnerPolicy((("pop", PopularityScorer()), ("flat", _Const(0.0))))
>>> pol.choose(vb, np.random.default_rng(0)).source.tolist()
['pop', 'pop']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelpick.decision import Marginals, VisitBatch
from reelpick.policies.base import (
    AnnotatedPageBatch,
    Scorer,
    candidate_scores,
    greedy_pages,
    grid_page,
    onehot_marginal,
)
from reelpick.policies.basic import _uniform_marginal, sample_uniform_pages


@dataclass(frozen=True)
class _Const:
    value: float

    def score(self, visits: VisitBatch) -> np.ndarray:
        return np.full((len(visits), visits.catalog.n_titles), self.value)


@dataclass(frozen=True)
class GreedyWinnerPolicy:
    """The most confident of ``models`` (``((name, scorer), ...)``) makes the page."""

    models: tuple[tuple[str, Scorer], ...]
    confidence: str = "mean"
    epsilon: float = 0.0
    name: str = "greedy-winner"
    version: str = "v1"

    def __post_init__(self) -> None:
        if len(self.models) < 1:
            raise ValueError("models: need at least one (name, scorer) pair")
        names = [m[0] for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"models: names must be unique, got {names}")
        for nm, sc in self.models:
            if not isinstance(sc, Scorer):
                raise TypeError(f"models: {nm!r} has no score(visits) method")
        if self.confidence not in ("mean", "max"):
            raise ValueError(f"confidence: use 'mean' or 'max', got {self.confidence!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon: must be in [0, 1], got {self.epsilon!r}")

    def _compete(self, visits: VisitBatch) -> tuple[np.ndarray, np.ndarray]:
        """``(winner index (n,), winner's page (n, S))``."""
        pages, conf = [], []
        for _, scorer in self.models:
            s, cand = candidate_scores(scorer, visits)
            page = greedy_pages(s, cand, visits)
            val = np.take_along_axis(s, np.maximum(page, 0), axis=1)
            val = np.where((page >= 0) & np.isfinite(val), val, np.nan)
            with np.errstate(all="ignore"):
                c = (np.nanmean(val, axis=1) if self.confidence == "mean"
                     else np.nanmax(val, axis=1))
            pages.append(page)
            conf.append(np.where(np.isfinite(c), c, -np.inf))
        win = np.argmax(np.stack(conf, axis=1), axis=1)
        return win, np.stack(pages, axis=1)[np.arange(len(visits)), win]

    def winners(self, visits: VisitBatch) -> np.ndarray:
        """``(n,)`` name of the model that makes each visit's page."""
        win, _ = self._compete(visits)
        return np.asarray([m[0] for m in self.models], dtype=object)[win]

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> AnnotatedPageBatch:
        win, greedy = self._compete(visits)
        names = np.asarray([m[0] for m in self.models], dtype=object)[win]
        titles, prop = greedy, np.ones(greedy.shape)
        if self.epsilon > 0:
            n = len(visits)
            explore = rng.random(n) < self.epsilon
            uni, a = sample_uniform_pages(visits.available, visits.country, visits.n_slots, rng)
            titles = np.where(explore[:, None], uni, greedy)
            prop = ((1 - self.epsilon) * (titles == greedy)
                    + self.epsilon / np.maximum(a, 1)[:, None])
        return grid_page(titles, visits, prop, "Top picks", source=names)

    def marginals(self, visits: VisitBatch) -> Marginals:
        _, greedy = self._compete(visits)
        m = onehot_marginal(greedy, visits.catalog.n_titles)
        if self.epsilon > 0:
            pool = visits.available[visits.country]
            m = ((1 - self.epsilon) * m
                 + self.epsilon * _uniform_marginal(pool, pool.sum(axis=1), visits.n_slots))
        s = np.arange(visits.n_slots)
        cat = visits.catalog
        art = np.zeros(int(cat.art_offset[-1]))
        art[cat.art_offset[:-1]] = 1.0
        return Marginals(m, s // visits.n_positions, s % visits.n_positions,
                         np.broadcast_to(art, (len(visits), art.size)))
