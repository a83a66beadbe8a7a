r"""Offline and online take fraction of an artwork policy: replay, IPS/SNIPS/DR, and the truth.

The **take fraction** is plays per impression of the titles shown (Netflix's image metric); the
artwork policy changes only the image, so the title's exposure is common to all policies and
the estimators work on artwork rows (:mod:`reelpick.artwork.feedback`).

Replay (Li et al., WSDM 2011; Netflix's image "replay")
    On image-explore logs (each row's image uniform over the title's :math:`n_i` variants), keep
    the rows where the new policy shows the logged image and take their play rate. For a
    stochastic policy each row counts with its probability :math:`\pi(a_i)`; when titles have
    different numbers of variants a row is kept with probability :math:`1/n_i`, so it is
    re-weighted by :math:`n_i`:

    .. math::

        \hat V_{\mathrm{replay}} = \frac{\sum_i \pi(a_i \mid x_i, t_i)\, n_i\, r_i}
                                        {\sum_i \pi(a_i \mid x_i, t_i)\, n_i},

    which is the plain matched play rate when every title has the same number of variants and,
    in general, exactly SNIPS with :math:`w_i = \pi(a_i)/(1/n_i)` (so it is computed by
    :class:`reelpick.ope.SNIPS`, delta-method interval).
Intervals
    Cluster-robust by member x title by default (``cluster``; :meth:`ArtworkRows.clusters`):
    image-explore shows a member the same (sticky) image of a title at every impression, so
    a pair's impressions are matched or not together and are not independent draws; treating
    them as independent makes the interval too narrow.
IPS, SNIPS, DR
    :func:`evaluate_artwork_policy` runs any :mod:`reelpick.ope` estimators with
    ``action`` = variant, ``pscore`` = artwork propensity and ``action_dist`` = the policy's
    image distribution (``selector.row_probabilities(rows)``); they also work on logs of a
    non-uniform (e.g. epsilon-greedy) image policy.
Online truth
    :func:`reelpick.world.truth.online_take_fraction` (the simulator's side: it reads the
    world's exact play probabilities) averages the play probability of every impression of an
    online run, a ratio over visits with a delta-method interval, as a :class:`TakeFraction`.

Example
-------
>>> import numpy as np
>>> from reelpick.world import World, WorldConfig
>>> from reelpick.policies import UniformPolicy
>>> from reelpick.artwork import ArtworkRows, UniformArtwork, image_explore
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> log = world.simulate(image_explore(UniformPolicy()), n_visits=300)
>>> rows = ArtworkRows.from_pages(log.logged_pages(), world.entities.art_offset,
...                               world.members()["member_id"])
>>> est = replay_take_fraction(rows, UniformArtwork().row_probabilities(rows))
>>> bool(abs(est.value - rows.play.mean()) < 1e-12)      # replaying the logger: its own rate
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from reelpick.artwork.feedback import ArtworkRows
from reelpick.ope import DM, DR, IPS, SNDR, SNIPS, Estimate, evaluate_policy
from reelpick.ope.base import Estimator

_ESTIMATORS: dict[str, type[Estimator]] = {"ips": IPS, "snips": SNIPS, "dm": DM, "dr": DR,
                                           "sndr": SNDR}


def _target(rows: ArtworkRows, target: np.ndarray) -> np.ndarray:
    p = np.asarray(target, dtype=np.float64)
    V = int(rows.n_variants.max())
    if p.ndim != 2 or p.shape[0] != len(rows) or p.shape[1] < V:
        raise ValueError(f"target: expected shape ({len(rows)}, >= {V}), got {p.shape}")
    k = np.arange(p.shape[1])
    if (p[k[None, :] >= rows.n_variants[:, None]] > 1e-12).any():
        raise ValueError("target: puts probability on variants a title does not have")
    if (np.abs(p.sum(axis=1) - 1.0) > 1e-6).any() or (p < 0).any():
        raise ValueError("target: each row must be a probability distribution")
    return p


def replay_take_fraction(rows: ArtworkRows, target: np.ndarray, *, alpha: float = 0.05,
                         cluster: str = "member_title") -> Estimate:
    """Replay estimate of the take fraction of the policy whose image distribution for each
    logged row is ``target (m, V)`` (module docstring). Needs image-explore logs. The interval
    is cluster-robust over ``cluster`` (:meth:`ArtworkRows.clusters`; default: member x
    title, the unit the sticky image-explore assignment randomises)."""
    if not isinstance(rows, ArtworkRows):
        raise TypeError(f"rows: expected ArtworkRows, got {type(rows).__name__}")
    if len(rows) == 0:
        raise ValueError("rows: empty")
    if not rows.is_uniform:
        raise ValueError("replay needs image-explore logs (pscore = 1 / n_variants on every "
                         "row); use evaluate_artwork_policy (IPS/SNIPS/DR) instead")
    p = _target(rows, target)
    fb = rows.feedback(p.shape[1], cluster=cluster)
    est = SNIPS().estimate_policy_value(fb, p, alpha=alpha)
    return dataclasses.replace(est, estimator="replay")


def evaluate_artwork_policy(rows: ArtworkRows, target: np.ndarray,
                            estimators: Sequence[str] = ("replay", "ips", "snips", "dr"), *,
                            reward_hat: np.ndarray | None = None, alpha: float = 0.05,
                            cluster: str = "member_title") -> dict[str, Estimate]:
    """Take-fraction estimates of an artwork policy from artwork rows.

    ``target (m, V)``: the policy's image distribution per row (``selector.row_probabilities``);
    ``estimators``: any of ``replay`` (image-explore logs only), ``ips``, ``snips``, ``dm``,
    ``dr``, ``sndr``; ``reward_hat (m, V)``: predicted play per variant for the model-based
    ones (e.g. :func:`model_reward_hat` of a bandit fitted on *other* data); ``cluster``: the
    rows that share randomness (:meth:`ArtworkRows.clusters`; intervals are cluster-robust).
    """
    unknown = sorted(set(estimators) - set(_ESTIMATORS) - {"replay"})
    if unknown:
        raise ValueError(f"estimators: unknown {unknown}; use replay, {', '.join(_ESTIMATORS)}")
    p = _target(rows, target)
    out: dict[str, Estimate] = {}
    if "replay" in estimators:
        out["replay"] = replay_take_fraction(rows, p, alpha=alpha, cluster=cluster)
    rest = [_ESTIMATORS[e]() for e in estimators if e != "replay"]
    if rest:
        if any(e.needs_reward_hat for e in rest) and reward_hat is None:
            raise ValueError("dm/dr/sndr need reward_hat (m, V); see model_reward_hat")
        rh = None if reward_hat is None else np.asarray(reward_hat, dtype=np.float64)
        if rh is not None and rh.shape != p.shape:
            raise ValueError(f"reward_hat: expected shape {p.shape}, got {rh.shape}")
        out.update(evaluate_policy(rows.feedback(p.shape[1], cluster=cluster), p, rest, rh,
                                   alpha=alpha))
    return {k: out[k] for k in estimators}


def model_reward_hat(bandit: object, rows: ArtworkRows) -> np.ndarray:
    """``(m, V)`` predicted play of every variant of each row's title: a fitted artwork
    bandit's posterior mean clipped to [0, 1] (0 on padding)."""
    mean, _, valid = bandit.posterior(rows.member, rows.device,  # type: ignore[attr-defined]
                                      rows.title[:, None])
    return np.where(valid[:, 0], np.clip(mean[:, 0], 0.0, 1.0), 0.0)


@dataclasses.dataclass(frozen=True)
class TakeFraction:
    """A take fraction (plays per impression) with its ``1 - alpha`` interval over visits."""

    value: float
    se: float
    ci_low: float
    ci_high: float
    n_impressions: int
    n_visits: int

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)
