"""The estimator contract and the shared evaluation loop (in memory or batch by batch).

An :class:`Estimator` is a frozen dataclass of keyword-only hyperparameters with one public
method, :meth:`Estimator.estimate_policy_value`. Subclasses say how a batch of rounds becomes
per-round statistics (:meth:`Estimator.round_stats`) and how the mean of those statistics becomes
the value (:meth:`Estimator.value_from_means`, with its gradient for the analytic interval).
:class:`OffPolicyEvaluation` feeds batches to several estimators at once and computes the shared
quantities (importance weights, the DM term) once per batch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from reelpick.ope.estimate import (
    CIMethod,
    DiagnosticsAccumulator,
    Estimate,
    StatAccumulator,
    interval,
    warn_diagnostics,
)
from reelpick.ope.feedback import (
    LoggedFeedback,
    check_reward_hat,
    check_shape,
    is_broadcast_rows,
    scan_action_dist,
)

__all__ = ["Estimator", "OffPolicyEvaluation", "RoundInputs", "evaluate_policy"]

#: per-round statistics of a batch: ``(n, m)``, ``m`` columns ``(n,)``, or ``(n,)`` if m = 1
Stats = np.ndarray | tuple[np.ndarray, ...]


def gather(dist: np.ndarray, action: np.ndarray, position: np.ndarray) -> np.ndarray:
    """``dist[i, action[i][, position[i]]]`` ``(n_rounds,)``; one row read when broadcast."""
    if is_broadcast_rows(dist):
        row = dist[0]
        return row[action] if dist.ndim == 2 else row[action, position]
    idx = np.arange(dist.shape[0])
    return dist[idx, action] if dist.ndim == 2 else dist[idx, action, position]


def expected_under(pi: np.ndarray, q: np.ndarray, position: np.ndarray) -> np.ndarray:
    """:math:`\\sum_a \\pi(a|x_i[,k_i])\\, \\hat q(x_i,a[,k_i])` ``(n_rounds,)``."""
    n = pi.shape[0]
    if is_broadcast_rows(pi) and is_broadcast_rows(q):
        table = (pi[0] * q[0]).sum(axis=0)
        return np.full(n, float(table)) if pi.ndim == 2 else table[position]
    if pi.ndim == 3:
        from reelpick.ope.estimate import _at_position

        pi, q = _at_position(pi, position), _at_position(q, position)
    if is_broadcast_rows(pi):
        return q @ pi[0]
    if is_broadcast_rows(q):
        return pi @ q[0]
    return np.einsum("ij,ij->i", pi, q)


class RoundInputs:
    """One validated batch and the per-round quantities estimators share (computed lazily).

    ``pi_logged`` = :math:`\\pi_e(a_i|x_i[,k_i])` (gathered in the same pass over
    ``action_dist`` that validates it); ``w`` = :math:`\\pi_e(a_i|x_i[,k_i]) /
    \\pi_0(a_i|x_i[,k_i])`; ``q_logged`` = :math:`\\hat q(x_i, a_i[, k_i])`; ``dm`` =
    :math:`\\sum_a \\pi_e(a|x_i)\\hat q(x_i, a)`.
    """

    def __init__(self, feedback: LoggedFeedback, action_dist: Any,
                 reward_hat: Any = None) -> None:
        self.feedback = feedback
        self.action_dist, pi = scan_action_dist(feedback, action_dist)
        self.pi_logged: np.ndarray = pi  # type: ignore[assignment]
        self._reward_hat_raw = reward_hat
        self.position = feedback.position_or_zero()

    @cached_property
    def reward_hat(self) -> np.ndarray:
        return check_reward_hat(self.action_dist, self._reward_hat_raw, who="this estimator")

    @property
    def has_reward_hat(self) -> bool:
        return self._reward_hat_raw is not None

    def pscore(self, who: str) -> np.ndarray:
        return self.feedback.require_pscore(who)

    @cached_property
    def w(self) -> np.ndarray:
        return self.pi_logged / self.feedback.require_pscore("importance weighting")

    @cached_property
    def w_moments(self) -> tuple[float, float, float]:
        """``(sum w, sum w**2, max w)`` of the unclipped weights (shared by the estimators
        that use them and the diagnostics)."""
        w = self.w
        return float(w.sum()), float(np.dot(w, w)), float(w.max())

    @cached_property
    def q_logged(self) -> np.ndarray:
        return gather(self.reward_hat, self.feedback.action, self.position)

    @cached_property
    def dm(self) -> np.ndarray:
        return expected_under(self.action_dist, self.reward_hat, self.position)


@dataclass(frozen=True, kw_only=True)
class Estimator(ABC):
    """Base class: an off-policy estimator of :math:`V(\\pi_e) = E_x E_{a\\sim\\pi_e}[r]`.

    Subclasses define ``name``, :meth:`round_stats` (per-round statistics ``(n, n_stats)``
    and the importance weights they use, or ``None``), :meth:`value_from_means` (vectorised over
    leading axes) and :meth:`gradient` (of ``value_from_means``, for the analytic interval).
    """

    name: ClassVar[str] = "estimator"
    n_stats: ClassVar[int] = 1
    needs_pscore: ClassVar[bool] = True
    needs_reward_hat: ClassVar[bool] = False
    streamable: ClassVar[bool] = True

    def estimate_policy_value(
        self,
        feedback: LoggedFeedback,
        action_dist: np.ndarray,
        reward_hat: np.ndarray | None = None,
        *,
        ci: CIMethod = "analytic",
        alpha: float = 0.05,
        n_bootstrap: int = 1000,
        random_state: int = 0,
        logging_dist: np.ndarray | None = None,
    ) -> Estimate:
        """Estimate the target policy's value from ``feedback``.

        Parameters
        ----------
        feedback : the logged rounds (:class:`~reelpick.ope.feedback.LoggedFeedback`).
        action_dist : ``(n_rounds, n_actions[, n_positions])`` target action probabilities.
        reward_hat : ``(n_rounds, n_actions[, n_positions])`` reward-model predictions (DM, DR,
            SNDR, Switch-DR).
        ci : ``"analytic"`` (delta method) or ``"bootstrap"`` (seeded Poisson bootstrap).
        alpha : the interval covers ``1 - alpha``.
        n_bootstrap, random_state : bootstrap replicates and seed.
        logging_dist : optional ``(n_rounds, n_actions[, n_positions])`` logging
            probabilities, for the exact share of target mass outside the logging support.

        Returns
        -------
        :class:`~reelpick.ope.estimate.Estimate`; warns :class:`SupportWarning` /
        :class:`ExtremeWeightWarning` when the diagnostics call for it.
        """
        run = OffPolicyEvaluation([self], n_actions=feedback.n_actions,
                                  n_positions=_n_positions(feedback, action_dist), ci=ci,
                                  alpha=alpha, n_bootstrap=n_bootstrap,
                                  random_state=random_state)
        run.update(feedback, action_dist, reward_hat, logging_dist=logging_dist)
        return run.results(stacklevel=3)[self.name]

    @abstractmethod
    def round_stats(self, inp: RoundInputs) -> tuple[Stats, np.ndarray | None]:
        """``(stats, weights or None)`` of one batch: ``stats`` is ``(n, n_stats)``, a tuple of
        ``n_stats`` columns ``(n,)`` (no copy), or ``(n,)`` when ``n_stats == 1``."""

    def value_from_means(self, m: np.ndarray) -> np.ndarray:
        return m[..., 0]

    def gradient(self, m: np.ndarray) -> np.ndarray:
        g = np.zeros(self.n_stats)
        g[0] = 1.0
        return g

    def check_batch(self, feedback: LoggedFeedback) -> None:
        """Checks that need the whole batch at once (before it is cut into blocks)."""

    def check_inputs(self, inp: RoundInputs) -> None:
        """Fail early, naming the missing input."""
        if self.needs_pscore:
            inp.pscore(self.name)
        if self.needs_reward_hat and not inp.has_reward_hat:
            raise ValueError(
                f"{self.name} needs reward_hat (a reward model's predictions) of shape "
                f"{inp.action_dist.shape}; see reelpick.ope.cross_fit_reward_model")


_BLOCK_CELLS = 1 << 16  # action_dist cells per block of OffPolicyEvaluation.update
_MIN_BLOCK_ROWS = 1 << 10


def _block_rows(dist: np.ndarray) -> int:
    """Rounds per cache-sized block (``action_dist`` block of 512 KB, at least 1024 rows)."""
    cells = int(np.prod(dist.shape[1:])) if dist.ndim > 1 else 1
    return max(_MIN_BLOCK_ROWS, _BLOCK_CELLS // max(cells, 1))


def _n_positions(feedback: LoggedFeedback, action_dist: Any) -> int:
    shape = np.shape(action_dist)
    return max(int(feedback.n_positions or 1), shape[2] if len(shape) == 3 else 1)


def _ratio_gradient(m: np.ndarray, num: int, den: int, size: int) -> np.ndarray:
    g = np.zeros(size)
    g[num] = 1.0 / m[den]
    g[den] = -m[num] / m[den] ** 2
    return g


class OffPolicyEvaluation:
    """Runs several estimators over one or many batches of the same log.

    >>> import numpy as np
    >>> from reelpick.ope import IPS, SNIPS, LoggedFeedback
    >>> fb = LoggedFeedback(action=[0, 1, 0, 1], reward=[1.0, 0.0, 1.0, 1.0],
    ...                     pscore=[0.5] * 4, n_actions=2)
    >>> run = OffPolicyEvaluation([IPS(), SNIPS()], n_actions=2)
    >>> pi = np.broadcast_to([0.8, 0.2], (2, 2))
    >>> run.update(fb.take(slice(0, 2)), pi); run.update(fb.take(slice(2, 4)), pi)
    >>> {k: round(v.value, 3) for k, v in run.results().items()}
    {'ips': 0.9, 'snips': 0.9}
    """

    def __init__(self, estimators: Sequence[Estimator], *, n_actions: int, n_positions: int = 1,
                 ci: CIMethod = "analytic", alpha: float = 0.05, n_bootstrap: int = 1000,
                 random_state: int = 0) -> None:
        if not estimators:
            raise ValueError("give at least one estimator")
        names = [e.name for e in estimators]
        if len(set(names)) != len(names):
            raise ValueError(f"estimator names must be unique, got {names}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
        self.estimators = list(estimators)
        self.alpha = float(alpha)
        self.ci = ci
        self.accs = {e.name: StatAccumulator(e.n_stats, ci=ci, n_bootstrap=n_bootstrap,
                                             random_state=random_state)
                     for e in self.estimators}
        self.diag = DiagnosticsAccumulator(n_actions, n_positions)
        self.n_actions = n_actions

    def update(self, feedback: LoggedFeedback, action_dist: Any, reward_hat: Any = None, *,
               logging_dist: Any = None) -> None:
        """Add one batch of rounds (the next rounds of the log, in order)."""
        if feedback.n_actions != self.n_actions:
            raise ValueError(f"feedback has n_actions={feedback.n_actions}, expected "
                             f"{self.n_actions}")
        for est in self.estimators:
            est.check_batch(feedback)
        n = feedback.n_rounds
        dist = np.asarray(action_dist)
        block = _block_rows(dist)
        if n <= block or not all(e.streamable for e in self.estimators):
            self._update_block(feedback, dist, reward_hat, logging_dist)
            return
        # cache-sized blocks: every array is read from memory once, every intermediate stays in
        # cache; the accumulators are exact over any partition into blocks
        check_shape(feedback, dist)
        q = None if reward_hat is None else np.asarray(reward_hat)
        if q is not None and q.shape != dist.shape:
            check_reward_hat(dist, q, who="this estimator")
        log = None if logging_dist is None else np.asarray(logging_dist)
        for lo in range(0, n, block):
            sl = slice(lo, min(lo + block, n))
            self._update_block(feedback.rows(sl), dist[sl], None if q is None else q[sl],
                               None if log is None else log[sl])

    def _update_block(self, feedback: LoggedFeedback, action_dist: Any, reward_hat: Any,
                      logging_dist: Any) -> None:
        inp = RoundInputs(feedback, action_dist, reward_hat)
        for est in self.estimators:
            est.check_inputs(inp)
        self.diag.update(inp, logging_dist)
        cache: dict[tuple[int, int], np.ndarray] = {}   # one set of bootstrap draws per batch
        for est in self.estimators:
            stats, weights = est.round_stats(inp)
            moments = inp.w_moments if weights is not None and weights is inp.w else None
            self.accs[est.name].update(stats, weights, cache, weight_moments=moments)

    def results(self, *, warn: bool = True, stacklevel: int = 2) -> dict[str, Estimate]:
        """One :class:`Estimate` per estimator (by name); warns once about the diagnostics."""
        diag = self.diag.result()
        if warn:
            warn_diagnostics(diag, stacklevel=stacklevel + 1)
        out: dict[str, Estimate] = {}
        for est in self.estimators:
            acc = self.accs[est.name]
            if acc.n == 0:
                raise ValueError("no rounds were added")
            m = acc.mean()
            with np.errstate(invalid="ignore", divide="ignore"):
                value = float(est.value_from_means(m))
                g = est.gradient(m)
                var = float(g @ acc.cov() @ g) / acc.n
            se = math.sqrt(var) if var >= 0 else math.nan
            lo, hi = interval(value, se, acc, est.value_from_means, self.alpha)
            out[est.name] = Estimate(est.name, value, lo, hi, self.ci, self.alpha, se, acc.ess(),
                                     acc.n, diag)
        return out


def evaluate_policy(
    feedback: LoggedFeedback,
    action_dist: np.ndarray,
    estimators: Iterable[Estimator],
    reward_hat: np.ndarray | None = None,
    *,
    ci: CIMethod = "analytic",
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    random_state: int = 0,
    logging_dist: np.ndarray | None = None,
) -> dict[str, Estimate]:
    """Run several estimators on the same log and target; shared work is done once.

    >>> import numpy as np
    >>> from reelpick.ope import DM, DR, IPS, LoggedFeedback
    >>> fb = LoggedFeedback(action=[0, 1], reward=[1.0, 0.0], pscore=[0.5, 0.5], n_actions=2)
    >>> pi = np.array([[1.0, 0.0], [1.0, 0.0]])
    >>> res = evaluate_policy(fb, pi, [IPS(), DM(), DR()], reward_hat=np.full((2, 2), 0.5))
    >>> [round(res[k].value, 3) for k in ("ips", "dm", "dr")]
    [1.0, 0.5, 1.0]
    """
    ests = list(estimators)
    run = OffPolicyEvaluation(ests, n_actions=feedback.n_actions,
                              n_positions=_n_positions(feedback, action_dist), ci=ci,
                              alpha=alpha, n_bootstrap=n_bootstrap, random_state=random_state)
    run.update(feedback, action_dist, reward_hat, logging_dist=logging_dist)
    return run.results(stacklevel=3)
