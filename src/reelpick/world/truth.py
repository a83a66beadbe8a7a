"""Ground-truth measurements of a simulated run (they read the world's hidden quantities, so
they live with the world: nothing outside it sees the truth).

Example
-------
>>> from reelpick.policies import UniformPolicy
>>> from reelpick.world import World, WorldConfig
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> tf = online_take_fraction(world.simulate(UniformPolicy(), 300))
>>> bool(tf.ci_low < tf.value < tf.ci_high)
True
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from reelpick.artwork.evaluation import TakeFraction

__all__ = ["online_take_fraction"]


def online_take_fraction(log: object, *, alpha: float = 0.05, use_truth: bool = True
                         ) -> TakeFraction:
    """The take fraction of an online run (:class:`~reelpick.world.SimulationLog`):
    ``sum p_play / impressions`` (``use_truth``; else the sampled plays), with a delta-method
    interval treating visits as the independent units."""
    s = log.shown  # type: ignore[attr-defined]
    y = s.p_play if use_truth else s.play.astype(float)
    n_vis = int(log.n_visits)  # type: ignore[attr-defined]
    num = np.bincount(s.visit, weights=y, minlength=n_vis)
    den = np.bincount(s.visit, minlength=n_vis).astype(float)
    value = num.sum() / den.sum()
    resid = num - value * den
    se = math.sqrt(resid.var(ddof=1) * n_vis) / den.sum() if n_vis > 1 else math.nan
    z = float(norm.ppf(1 - alpha / 2))
    return TakeFraction(float(value), float(se), float(value - z * se), float(value + z * se),
                        int(den.sum()), n_vis)
