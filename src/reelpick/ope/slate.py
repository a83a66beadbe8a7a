"""Estimators for ranked lists (slates): position-based IPS and the pseudo-inverse estimator.

Rows are impressions (one item at one position); ``feedback.slate_id`` ``(n_rounds,)`` groups
the rows of one slate (page). ``action_dist`` is ``(n_rounds, n_actions, n_positions)``: the
target's marginal probability of showing each item at each position; ``pscore`` is the logging
policy's marginal probability of the logged item at the logged position. Both estimators report
the expected *slate* reward (sum over its slots); without ``slate_id`` each row is its own slate
and both reduce to IPS per impression.

These estimators need whole slates, so they run in memory only (``streamable = False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from reelpick.ope.base import Estimator, RoundInputs

__all__ = ["PositionBasedIPS", "PseudoInverse"]


def _slates(inp: RoundInputs) -> tuple[np.ndarray, int]:
    sid = inp.feedback.slate_id
    if sid is None:
        return np.arange(inp.feedback.n_rounds), inp.feedback.n_rounds
    _, inverse = np.unique(sid, return_inverse=True)
    return inverse, int(inverse.max()) + 1


@dataclass(frozen=True, kw_only=True)
class PositionBasedIPS(Estimator):
    """Position-based (independent) IPS: each slot's reward is weighted by the ratio of the
    target's and the logger's marginal probabilities of that item *at that slot*.

    .. math::

        \\hat V_{\\mathrm{PB\\text{-}IPS}} = \\frac{1}{n_s} \\sum_{s} \\sum_{k}
            \\frac{\\pi_e(a_{s,k} \\text{ at } k \\mid x_s)}{\\pi_0(a_{s,k} \\text{ at } k
            \\mid x_s)}\\, r_{s,k}

    Unbiased when the reward of a slot depends only on the item in it and its position (the
    position-based click model), however the other slots are filled.

    Reference: S. Li, Y. Abbasi-Yadkori, B. Kveton, S. Muthukrishnan, V. Vinay, Z. Wen.
    "Offline evaluation of ranking policies with click models." KDD 2018.

    >>> import numpy as np
    >>> from reelpick.ope import LoggedFeedback
    >>> fb = LoggedFeedback(action=[0, 1, 1, 0], reward=[1.0, 0.0, 1.0, 0.0], pscore=[0.5] * 4,
    ...                     n_actions=2, position=[0, 1, 0, 1], slate_id=[0, 0, 1, 1])
    >>> pi = np.broadcast_to(np.array([[1.0, 0.0], [0.0, 1.0]]), (4, 2, 2))
    >>> PositionBasedIPS().estimate_policy_value(fb, pi).value
    1.0
    """

    name: ClassVar[str] = "pb_ips"
    streamable: ClassVar[bool] = False
    per_round: ClassVar[bool] = False  # one statistic per slate: already clustered

    def round_stats(self, inp: RoundInputs) -> tuple[np.ndarray, np.ndarray | None]:
        slate, n_s = _slates(inp)
        w = inp.w
        total = np.bincount(slate, weights=w * inp.feedback.reward, minlength=n_s)
        return total[:, None], w


@dataclass(frozen=True, kw_only=True)
class PseudoInverse(Estimator):
    """Pseudo-inverse estimator for slates (Swaminathan et al. 2017): needs only the slate's
    total reward, assuming it is additive over slots (each slot adds an unobserved amount that
    depends on the item and the slot).

    .. math::

        \\hat V_{\\mathrm{PI}} = \\frac{1}{n_s} \\sum_s R_s \\Big( \\sum_{k=1}^{L_s}
            \\frac{\\pi_e(a_{s,k} \\text{ at } k \\mid x_s)}{\\pi_0(a_{s,k} \\text{ at } k
            \\mid x_s)} - L_s + 1 \\Big)

    where :math:`R_s = \\sum_k r_{s,k}` and :math:`L_s` is the slate's length. This closed form of
    :math:`q_\\pi^\\top \\Gamma^\\dagger \\mathbb{1}_s` holds when the logging policy fills the
    slots independently (a product of per-slot distributions, e.g. uniform with repeats); for
    uniform sampling without repetition over many items it is a close approximation.

    Reference: A. Swaminathan, A. Krishnamurthy, A. Agarwal, M. Dudík, J. Langford, D. Jose,
    I. Zitouni. "Off-policy evaluation for slate recommendation." NeurIPS 2017.

    >>> import numpy as np
    >>> from reelpick.ope import LoggedFeedback
    >>> fb = LoggedFeedback(action=[0, 1, 1, 0], reward=[1.0, 0.0, 1.0, 0.0], pscore=[0.5] * 4,
    ...                     n_actions=2, position=[0, 1, 0, 1], slate_id=[0, 0, 1, 1])
    >>> pi = np.broadcast_to(np.array([[1.0, 0.0], [0.0, 1.0]]), (4, 2, 2))
    >>> PseudoInverse().estimate_policy_value(fb, pi).value
    1.0
    """

    name: ClassVar[str] = "pseudo_inverse"
    streamable: ClassVar[bool] = False
    per_round: ClassVar[bool] = False  # one statistic per slate: already clustered

    def round_stats(self, inp: RoundInputs) -> tuple[np.ndarray, np.ndarray | None]:
        slate, n_s = _slates(inp)
        reward = np.bincount(slate, weights=inp.feedback.reward, minlength=n_s)
        length = np.bincount(slate, minlength=n_s)
        gamma = np.bincount(slate, weights=inp.w, minlength=n_s) - length + 1.0
        return (reward * gamma)[:, None], gamma
