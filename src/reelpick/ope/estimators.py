"""Off-policy estimators for bandit feedback: replay, IPS, clipped IPS, SNIPS, DM, DR, SNDR,
Switch-DR.

Notation: round :math:`i` has context :math:`x_i`, logged action :math:`a_i` (at position
:math:`k_i`), reward :math:`r_i` and logged propensity :math:`\\pi_0(a_i|x_i)` (``pscore``); the
target policy is ``action_dist`` :math:`\\pi_e(a|x_i)` ``(n_rounds, n_actions[, n_positions])``;
a reward model gives ``reward_hat`` :math:`\\hat q(x_i, a)` of the same shape. The importance
weight is :math:`w_i = \\pi_e(a_i|x_i)/\\pi_0(a_i|x_i)` and :math:`\\mathbb{E}_n` the mean over
rounds. With positions, every probability and prediction is read at the logged position
:math:`k_i` (the per-slot, "independent" model of obp and of Li et al. 2018).

Every estimator returns an :class:`~reelpick.ope.estimate.Estimate` (value, interval, ESS,
diagnostics):

>>> import numpy as np
>>> from reelpick.ope import IPS, LoggedFeedback
>>> fb = LoggedFeedback(action=[0, 1, 1, 0], reward=[1.0, 0.0, 1.0, 0.0], pscore=[0.5] * 4,
...                     n_actions=2)
>>> est = IPS().estimate_policy_value(fb, np.tile([0.9, 0.1], (4, 1)))
>>> round(est.value, 3), est.ci_method
(0.5, 'analytic')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from reelpick.ope.base import Estimator, RoundInputs, Stats, _ratio_gradient
from reelpick.ope.feedback import LoggedFeedback

__all__ = ["DM", "DR", "IPS", "SNDR", "SNIPS", "ClippedIPS", "Replay", "SwitchDR"]


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")


@dataclass(frozen=True, kw_only=True)
class Replay(Estimator):
    """Replay (Li, Chu, Langford & Wang 2011), Netflix's "replay play-rate": on uniformly random
    logs, the mean reward of the rounds where the target agrees with the log.

    .. math::

        \\hat V_{\\mathrm{replay}} = \\frac{\\sum_i \\pi_e(a_i|x_i)\\, r_i}
                                          {\\sum_i \\pi_e(a_i|x_i)}

    For a deterministic target this is the mean reward over matching rounds (obp's
    ``ReplayMethod``); for a stochastic one it is the expected replay (rejection sampling with
    acceptance probability :math:`\\pi_e(a_i|x_i)`). Unbiased (asymptotically) only when the
    logging policy is uniform, so it refuses logs whose ``pscore`` varies within a position.

    Reference: L. Li, W. Chu, J. Langford, X. Wang. "Unbiased offline evaluation of
    contextual-bandit-based news article recommendation algorithms." WSDM 2011.

    >>> import numpy as np
    >>> from reelpick.ope import LoggedFeedback
    >>> fb = LoggedFeedback(action=[0, 1, 0], reward=[1.0, 1.0, 0.0], pscore=[0.5] * 3,
    ...                     n_actions=2)
    >>> Replay().estimate_policy_value(fb, np.tile([1.0, 0.0], (3, 1))).value
    0.5
    """

    name: ClassVar[str] = "replay"
    n_stats: ClassVar[int] = 2

    def check_batch(self, feedback: LoggedFeedback) -> None:
        pscore, pos = feedback.require_pscore(self.name), feedback.position_or_zero()
        for k in np.unique(pos):
            p = pscore[pos == k]
            if p.max() - p.min() > 1e-9 * p.max():
                raise ValueError(
                    "replay needs uniformly random logs: pscore varies within position "
                    f"{int(k)} ({p.min():.3g}..{p.max():.3g}); use IPS/SNIPS/DR instead")

    def round_stats(self, inp: RoundInputs) -> tuple[Stats, np.ndarray | None]:
        pi = inp.pi_logged
        return (pi * inp.feedback.reward, pi), pi

    def value_from_means(self, m: np.ndarray) -> np.ndarray:
        return m[..., 0] / m[..., 1]

    def gradient(self, m: np.ndarray) -> np.ndarray:
        return _ratio_gradient(m, 0, 1, 2)


@dataclass(frozen=True, kw_only=True)
class IPS(Estimator):
    """Inverse propensity scoring (Horvitz & Thompson 1952; Precup et al. 2000; Strehl et al.
    2010): unbiased whenever the logging policy covers the target's support.

    .. math::

        \\hat V_{\\mathrm{IPS}} = \\mathbb{E}_n[w_i r_i], \\qquad
        w_i = \\frac{\\pi_e(a_i|x_i)}{\\pi_0(a_i|x_i)}

    Reference: D. Precup, R. Sutton, S. Singh. "Eligibility traces for off-policy policy
    evaluation." ICML 2000.

    >>> import numpy as np
    >>> from reelpick.ope import LoggedFeedback
    >>> fb = LoggedFeedback(action=[0, 1], reward=[1.0, 1.0], pscore=[0.5, 0.5], n_actions=2)
    >>> IPS().estimate_policy_value(fb, np.array([[1.0, 0.0], [1.0, 0.0]])).value
    1.0
    """

    name: ClassVar[str] = "ips"

    def round_stats(self, inp: RoundInputs) -> tuple[Stats, np.ndarray | None]:
        w = inp.w
        return w * inp.feedback.reward, w


@dataclass(frozen=True, kw_only=True)
class ClippedIPS(Estimator):
    """IPS with weights clipped at ``max_weight`` (Ionides 2008; Bottou et al. 2013): less
    variance for a downward bias on non-negative rewards.

    .. math::

        \\hat V_{\\mathrm{cIPS}} = \\mathbb{E}_n[\\min(w_i, \\lambda)\\, r_i]

    With :math:`\\lambda \\ge \\max_i w_i` it equals IPS.

    Reference: L. Bottou et al. "Counterfactual reasoning and learning systems: the example of
    computational advertising." JMLR 14, 2013.

    >>> import numpy as np
    >>> from reelpick.ope import LoggedFeedback
    >>> fb = LoggedFeedback(action=[0, 1], reward=[1.0, 1.0], pscore=[0.1, 0.5], n_actions=2)
    >>> ClippedIPS(max_weight=2.0).estimate_policy_value(fb, np.tile([0.5, 0.5], (2, 1))).value
    1.5
    """

    name: ClassVar[str] = "clipped_ips"
    max_weight: float = 100.0

    def __post_init__(self) -> None:
        _check_positive("max_weight", self.max_weight)

    def round_stats(self, inp: RoundInputs) -> tuple[Stats, np.ndarray | None]:
        w = np.minimum(inp.w, self.max_weight)
        return w * inp.feedback.reward, w


@dataclass(frozen=True, kw_only=True)
class SNIPS(Estimator):
    """Self-normalised IPS (Swaminathan & Joachims 2015b): IPS divided by the mean weight, so
    the estimate stays within the range of the observed rewards; consistent, slightly biased.

    .. math::

        \\hat V_{\\mathrm{SNIPS}} = \\frac{\\mathbb{E}_n[w_i r_i]}{\\mathbb{E}_n[w_i]}

    Reference: A. Swaminathan, T. Joachims. "The self-normalized estimator for counterfactual
    learning." NeurIPS 2015.

    >>> import numpy as np
    >>> from reelpick.ope import LoggedFeedback
    >>> fb = LoggedFeedback(action=[0, 1], reward=[1.0, 0.0], pscore=[0.5, 0.5], n_actions=2)
    >>> SNIPS().estimate_policy_value(fb, np.tile([0.75, 0.25], (2, 1))).value
    0.75
    """

    name: ClassVar[str] = "snips"
    n_stats: ClassVar[int] = 2

    def round_stats(self, inp: RoundInputs) -> tuple[Stats, np.ndarray | None]:
        w = inp.w
        return (w * inp.feedback.reward, w), w

    def value_from_means(self, m: np.ndarray) -> np.ndarray:
        return m[..., 0] / m[..., 1]

    def gradient(self, m: np.ndarray) -> np.ndarray:
        return _ratio_gradient(m, 0, 1, 2)


@dataclass(frozen=True, kw_only=True)
class DM(Estimator):
    """Direct method (Beygelzimer & Langford 2009): the reward model's mean under the target.

    .. math::

        \\hat V_{\\mathrm{DM}} = \\mathbb{E}_n\\Big[\\sum_a \\pi_e(a|x_i)\\, \\hat q(x_i, a)\\Big]

    Needs no propensities; biased as far as :math:`\\hat q` is. The interval covers sampling of
    contexts only, not the reward model's error.

    Reference: A. Beygelzimer, J. Langford. "The offset tree for learning with partial labels."
    KDD 2009.

    >>> import numpy as np
    >>> from reelpick.ope import LoggedFeedback
    >>> fb = LoggedFeedback(action=[0, 1], reward=[1.0, 0.0], pscore=None, n_actions=2)
    >>> q = np.array([[0.2, 0.6], [0.4, 0.8]])
    >>> DM().estimate_policy_value(fb, np.tile([0.5, 0.5], (2, 1)), q).value
    0.5
    """

    name: ClassVar[str] = "dm"
    needs_pscore: ClassVar[bool] = False
    needs_reward_hat: ClassVar[bool] = True

    def round_stats(self, inp: RoundInputs) -> tuple[Stats, np.ndarray | None]:
        return inp.dm, None


@dataclass(frozen=True, kw_only=True)
class DR(Estimator):
    """Doubly robust (Dudík, Langford & Li 2011): DM plus an importance-weighted correction of
    the reward model's residual; unbiased if either the propensities or the model are right.

    .. math::

        \\hat V_{\\mathrm{DR}} = \\mathbb{E}_n\\Big[\\sum_a \\pi_e(a|x_i)\\hat q(x_i,a)
            + w_i\\,\\big(r_i - \\hat q(x_i, a_i)\\big)\\Big]

    With :math:`\\hat q \\equiv 0` it is IPS; with a perfect model of the observed rewards it is
    DM. ``max_weight`` clips :math:`w_i` (default: no clipping).

    Reference: M. Dudík, J. Langford, L. Li. "Doubly robust policy evaluation and learning."
    ICML 2011.

    >>> import numpy as np
    >>> from reelpick.ope import LoggedFeedback
    >>> fb = LoggedFeedback(action=[0, 1], reward=[1.0, 0.0], pscore=[0.5, 0.5], n_actions=2)
    >>> DR().estimate_policy_value(fb, np.tile([1.0, 0.0], (2, 1)), np.zeros((2, 2))).value
    1.0
    """

    name: ClassVar[str] = "dr"
    needs_reward_hat: ClassVar[bool] = True
    max_weight: float = math.inf

    def __post_init__(self) -> None:
        _check_positive("max_weight", self.max_weight)

    def round_stats(self, inp: RoundInputs) -> tuple[Stats, np.ndarray | None]:
        w = inp.w if math.isinf(self.max_weight) else np.minimum(inp.w, self.max_weight)
        return inp.dm + w * (inp.feedback.reward - inp.q_logged), w


@dataclass(frozen=True, kw_only=True)
class SNDR(Estimator):
    """Self-normalised doubly robust: the DR correction divided by the mean weight (obp's
    ``SelfNormalizedDoublyRobust``; Kallus & Uehara 2019).

    .. math::

        \\hat V_{\\mathrm{SNDR}} = \\mathbb{E}_n\\Big[\\sum_a \\pi_e(a|x_i)\\hat q(x_i,a)\\Big]
            + \\frac{\\mathbb{E}_n[w_i (r_i - \\hat q(x_i, a_i))]}{\\mathbb{E}_n[w_i]}

    Reference: N. Kallus, M. Uehara. "Intrinsically efficient, stable, and bounded off-policy
    evaluation for reinforcement learning." NeurIPS 2019.

    >>> import numpy as np
    >>> from reelpick.ope import LoggedFeedback
    >>> fb = LoggedFeedback(action=[0, 1], reward=[1.0, 0.0], pscore=[0.5, 0.5], n_actions=2)
    >>> SNDR().estimate_policy_value(fb, np.tile([1.0, 0.0], (2, 1)), np.zeros((2, 2))).value
    1.0
    """

    name: ClassVar[str] = "sndr"
    n_stats: ClassVar[int] = 3
    needs_reward_hat: ClassVar[bool] = True

    def round_stats(self, inp: RoundInputs) -> tuple[Stats, np.ndarray | None]:
        w = inp.w
        return (inp.dm, w * (inp.feedback.reward - inp.q_logged), w), w

    def value_from_means(self, m: np.ndarray) -> np.ndarray:
        return m[..., 0] + m[..., 1] / m[..., 2]

    def gradient(self, m: np.ndarray) -> np.ndarray:
        return np.array([1.0, 1.0 / m[2], -m[1] / m[2] ** 2])


@dataclass(frozen=True, kw_only=True)
class SwitchDR(Estimator):
    """Switch doubly robust (Wang, Agarwal & Dudík 2017): the DR correction only where the
    weight is at most ``tau``; rounds with larger weights fall back to DM.

    .. math::

        \\hat V_{\\mathrm{SwitchDR}} = \\mathbb{E}_n\\Big[\\sum_a \\pi_e(a|x_i)\\hat q(x_i,a)
            + \\mathbb{1}[w_i \\le \\tau]\\, w_i\\,\\big(r_i - \\hat q(x_i, a_i)\\big)\\Big]

    ``tau = inf`` gives DR, ``tau`` below every weight gives DM.

    Reference: Y.-X. Wang, A. Agarwal, M. Dudík. "Optimal and adaptive off-policy evaluation in
    contextual bandits." ICML 2017.

    >>> import numpy as np
    >>> from reelpick.ope import LoggedFeedback
    >>> fb = LoggedFeedback(action=[0, 1], reward=[1.0, 0.0], pscore=[0.5, 0.5], n_actions=2)
    >>> q = np.full((2, 2), 0.25)
    >>> SwitchDR(tau=1.0).estimate_policy_value(fb, np.tile([1.0, 0.0], (2, 1)), q).value
    0.25
    """

    name: ClassVar[str] = "switch_dr"
    needs_reward_hat: ClassVar[bool] = True
    tau: float = 100.0

    def __post_init__(self) -> None:
        _check_positive("tau", self.tau)

    def round_stats(self, inp: RoundInputs) -> tuple[Stats, np.ndarray | None]:
        w = inp.w
        keep = w <= self.tau
        term = inp.dm + np.where(keep, w * (inp.feedback.reward - inp.q_logged), 0.0)
        return term, np.where(keep, w, 0.0)
