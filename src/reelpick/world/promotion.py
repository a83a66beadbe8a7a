r"""The world's confounded logger: a promotion policy that sees the hidden mood.

A production team that reacts to something the analyst never logs is what makes plays
confounded; in the simulator that something is the visit's hidden binge mood
(:class:`~reelpick.world.policy.WorldVisits`), so the logger that reads it lives here, beside
the truth, and nothing outside :mod:`reelpick.world` can use it by mistake. The randomised
promotion ``cell`` is observable and logged: the instrument of :mod:`reelpick.causal`.

Example
-------
>>> from reelpick.world import PromotionPolicy, World, WorldConfig
>>> world = World(WorldConfig.preset("small"), seed=1)
>>> log = world.simulate(PromotionPolicy(), n_visits=50)
>>> bool((log.impressions()["propensity"] > 0).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelpick.decision import Marginals, PageBatch, VisitBatch
from reelpick.policies.basic import (
    _artwork_marginals,
    _artworks,
    _check_artwork,
    _uniform_marginal,
    sample_uniform_pages,
)
from reelpick.world.policy import hidden_mood


@dataclass(frozen=True)
class PromotionPolicy:
    r"""A logging policy for causal studies: it promotes series in binge mood and in the
    promotion cell.

    With probability :math:`\rho = \sigma(\alpha_0 + \alpha_z z + \alpha_c c)` (hidden mood
    :math:`z`, randomised cell :math:`c`) the page is a uniform page of the available *series*
    (``A_s`` of them), otherwise a uniform page of all ``A`` available titles:

    .. math:: P(t \text{ in slot } s) = \rho\,[t \in \text{series}] / A_s + (1 - \rho) / A.

    When ``A_s`` is smaller than the page, :math:`\rho = 0`. The mood confounds (it also raises
    series plays, by ``mood_series_logit`` in the world); the cell is an instrument.
    """

    base: float = -1.5
    mood_effect: float = 2.0
    cell_effect: float = 1.5
    artwork: str = "random"
    name: str = "promotion"
    version: str = "v1"

    def __post_init__(self) -> None:
        _check_artwork(self.artwork)

    def rho(self, visits: VisitBatch) -> np.ndarray:
        """(n,) probability of a series page."""
        x = self.base + self.mood_effect * hidden_mood(visits) + self.cell_effect * visits.cell
        series = visits.available & visits.catalog.is_series[None, :]
        enough = series.sum(axis=1)[visits.country] >= visits.n_slots
        return np.where(enough, 1.0 / (1.0 + np.exp(-x)), 0.0)

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        K = visits.available.shape[0]
        series = visits.available & visits.catalog.is_series[None, :]
        rho = self.rho(visits)
        promo = rng.random(len(visits)) < rho
        pool = np.concatenate([visits.available, series])
        titles, _ = sample_uniform_pages(pool, visits.country + K * promo, visits.n_slots, rng)
        a = visits.available.sum(axis=1)[visits.country][:, None]
        a_s = np.maximum(series.sum(axis=1)[visits.country], 1)[:, None]
        is_s = visits.catalog.is_series[np.where(titles >= 0, titles, 0)]
        prop = rho[:, None] * is_s / a_s + (1 - rho[:, None]) / np.maximum(a, 1)
        art, art_p = _artworks(titles, visits, self.artwork, rng)
        return PageBatch.grid(titles, n_rows=visits.n_rows, n_positions=visits.n_positions,
                              propensity=np.where(titles >= 0, prop, 1.0), artworks=art,
                              artwork_propensity=art_p,
                              row_labels=tuple(f"For you {r + 1}" for r in range(visits.n_rows)))

    def marginals(self, visits: VisitBatch) -> Marginals:
        S = visits.n_slots
        pool = visits.available[visits.country]
        series = pool & visits.catalog.is_series[None, :]
        rho = self.rho(visits)[:, None, None]
        ts = ((1 - rho) * _uniform_marginal(pool, pool.sum(axis=1), S)
              + rho * _uniform_marginal(series, series.sum(axis=1), S))
        slots = np.arange(S)
        return Marginals(ts, slots // visits.n_positions, slots % visits.n_positions,
                         _artwork_marginals(visits, self.artwork))
