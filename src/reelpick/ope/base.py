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
from typing import Any, ClassVar, Literal

import numpy as np

from reelpick.ope.estimate import (
    CIMethod,
    ClusterRuns,
    ClusterStatAccumulator,
    DiagnosticsAccumulator,
    Estimate,
    Moments,
    StatAccumulator,
    interval,
    reliability_flags,
    warn_diagnostics,
    warn_unreliable,
)
from reelpick.ope.feedback import (
    LoggedFeedback,
    _check_rows,
    check_reward_hat,
    check_shape,
    is_broadcast_rows,
    row_cells,
    scan_action_dist,
    scan_block,
)

__all__ = ["ClusterBy", "Estimator", "OffPolicyEvaluation", "RoundInputs", "evaluate_policy"]

#: how the analytic interval (and the bootstrap) groups rounds: by ``slate_id`` or not at all
ClusterBy = Literal["slate", "round"]

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
    return (pi * q) @ np.ones(pi.shape[1])   # faster than einsum("ij,ij->i") for few actions


class RoundInputs:
    """One validated batch and the per-round quantities estimators share (computed lazily).

    ``pi_logged`` = :math:`\\pi_e(a_i|x_i[,k_i])` (gathered in the same pass over
    ``action_dist`` that validates it); ``w`` = :math:`\\pi_e(a_i|x_i[,k_i]) /
    \\pi_0(a_i|x_i[,k_i])`; ``wr`` = :math:`w_i r_i`; ``q_logged`` = :math:`\\hat q(x_i, a_i[,
    k_i])`; ``dm`` = :math:`\\sum_a \\pi_e(a|x_i)\\hat q(x_i, a)`. ``moments`` memoises sums and
    dot products of these columns, so estimators and diagnostics that share a column share its
    moments; ``clusters`` holds the block's cluster runs when the interval is clustered.
    """

    def __init__(self, feedback: LoggedFeedback, action_dist: Any,
                 reward_hat: Any = None) -> None:
        self.feedback = feedback
        self.action_dist, pi = scan_action_dist(feedback, action_dist)
        self.pi_logged: np.ndarray = pi  # type: ignore[assignment]
        self._reward_hat_raw = reward_hat
        self._flat_index: np.ndarray | None = None
        self._q_checked = False
        self.moments = Moments()
        self.clusters: ClusterRuns | None = None

    @classmethod
    def _block(cls, feedback: LoggedFeedback, dist: np.ndarray, pi: np.ndarray,
               flat_index: np.ndarray | None, reward_hat: np.ndarray | None,
               clusters: ClusterRuns | None) -> RoundInputs:
        """A block of a batch that ``OffPolicyEvaluation.update`` has checked and gathered
        (shapes checked once per batch; ``reward_hat``'s values are checked here, lazily)."""
        self = cls.__new__(cls)
        self.feedback, self.action_dist, self.pi_logged = feedback, dist, pi
        self._reward_hat_raw, self._flat_index = reward_hat, flat_index
        self._q_checked = True
        self.moments = Moments()
        self.clusters = clusters
        return self

    @cached_property
    def position(self) -> np.ndarray:
        return self.feedback.position_or_zero()

    @cached_property
    def reward_hat(self) -> np.ndarray:
        if not self._q_checked:
            return check_reward_hat(self.action_dist, self._reward_hat_raw,
                                    who="this estimator")
        q = self._reward_hat_raw
        if q is None:
            raise ValueError("this estimator needs reward_hat (a reward model's predictions) of "
                             f"shape {self.action_dist.shape}; see "
                             "reelpick.ope.cross_fit_reward_model")
        rows = q[:1] if is_broadcast_rows(q) else q
        # one sum in cache; only a non-finite sum (NaN, inf, or an overflow) needs the cell check
        if not np.isfinite(rows.sum()) and not np.isfinite(rows).all():
            raise ValueError("reward_hat must be finite; found NaN or inf")
        return q  # type: ignore[no-any-return]

    @property
    def has_reward_hat(self) -> bool:
        return self._reward_hat_raw is not None

    def pscore(self, who: str) -> np.ndarray:
        return self.feedback.require_pscore(who)

    @cached_property
    def w(self) -> np.ndarray:
        return self.pi_logged / self.feedback.require_pscore("importance weighting")

    @cached_property
    def wr(self) -> np.ndarray:
        """:math:`w_i r_i` (IPS's statistic, SNIPS's numerator)."""
        return self.w * self.feedback.reward

    @cached_property
    def w_moments(self) -> tuple[float, float, float]:
        """``(sum w, sum w**2, max w)`` of the unclipped weights (shared by the estimators
        that use them and the diagnostics)."""
        w = self.w
        return self.moments.sum(w), self.moments.dot(w, w), float(w.max())

    @cached_property
    def q_logged(self) -> np.ndarray:
        q = self.reward_hat
        if (self._flat_index is not None and q.shape == self.action_dist.shape
                and q.flags.c_contiguous):
            return np.take(q.reshape(-1), self._flat_index, mode="clip")
        return gather(q, self.feedback.action, self.position)

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
    #: one statistic per round (False: per slate, as the slate estimators): clustered
    #: intervals group rounds by slate
    per_round: ClassVar[bool] = True

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
        cluster: ClusterBy = "slate",
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
        cluster : ``"slate"`` (default): when ``feedback.slate_id`` is given, rounds of one
            slate are one cluster and the interval is cluster-robust (they share a context, so
            they are not independent); ``"round"``: every round independent.

        Returns
        -------
        :class:`~reelpick.ope.estimate.Estimate`; warns :class:`SupportWarning` /
        :class:`ExtremeWeightWarning` when the diagnostics call for it.
        """
        run = OffPolicyEvaluation([self], n_actions=feedback.n_actions,
                                  n_positions=_n_positions(feedback, action_dist), ci=ci,
                                  alpha=alpha, n_bootstrap=n_bootstrap,
                                  random_state=random_state, cluster=cluster)
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


_BLOCK_CELLS = 1 << 16  # action_dist cells per sub-block of OffPolicyEvaluation.update
_SUPER = 8              # sub-blocks per block (per-round work runs once per block)
_MIN_BLOCK_ROWS = 1 << 10
# a block has at least this many x _MIN_BLOCK_ROWS rows: with many cells per round (2,000
# titles x 50 slots) the sub-blocks sit at their 1,024-row floor and the fixed work of a block
# (weights, accumulators, slate runs) dominated: 32k-row blocks halve the time of 8M rounds
_MIN_BLOCK_SUBS = 32


def _sub_rows(dist: np.ndarray) -> int:
    """Rounds per cache-sized sub-block (``action_dist`` block of 512 KB, >= 1024 rows)."""
    cells = int(np.prod(dist.shape[1:])) if dist.ndim > 1 else 1
    return max(_MIN_BLOCK_ROWS, _BLOCK_CELLS // max(cells, 1))


def _block_rows(dist: np.ndarray) -> int:
    """Rounds per block of ``OffPolicyEvaluation.update`` (``_SUPER`` sub-blocks, at least
    ``_MIN_BLOCK_SUBS x _MIN_BLOCK_ROWS`` rows): the first block's mean is each accumulator's
    shift."""
    return max(_sub_rows(dist) * _SUPER, _MIN_BLOCK_SUBS * _MIN_BLOCK_ROWS)


def _n_positions(feedback: LoggedFeedback, action_dist: Any) -> int:
    shape = np.shape(action_dist)
    return max(int(feedback.n_positions or 1), shape[2] if len(shape) == 3 else 1)


def _group_order(slate_id: np.ndarray) -> np.ndarray | None:
    """``None`` when every slate's rows are adjacent, else a stable order grouping them."""
    if slate_id.shape[0] < 2:
        return None
    change = slate_id[1:] != slate_id[:-1]
    if not change.any() or np.all(slate_id[1:] >= slate_id[:-1]):
        return None
    if np.unique(slate_id).shape[0] == int(np.count_nonzero(change)) + 1:
        return None
    return np.argsort(slate_id, kind="stable")


def _take_rows(arr: np.ndarray, order: np.ndarray) -> np.ndarray:
    if is_broadcast_rows(arr):
        return arr
    return arr[order]


def _ratio_gradient(m: np.ndarray, num: int, den: int, size: int) -> np.ndarray:
    g = np.zeros(size)
    g[num] = 1.0 / m[den]
    g[den] = -m[num] / m[den] ** 2
    return g


class OffPolicyEvaluation:
    """Runs several estimators over one or many batches of the same log.

    ``cluster="slate"`` (default): when the feedback carries ``slate_id``, the rows of one slate
    (page, visit) form one cluster: the analytic interval uses the cluster-robust variance and
    the bootstrap draws one weight per cluster (:class:`~reelpick.ope.estimate.
    ClusterStatAccumulator`). Rows of a slate must be adjacent across batches (within one batch
    any order works: the batch is grouped first). ``cluster="round"``: rounds independent.

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
                 random_state: int = 0, cluster: ClusterBy = "slate") -> None:
        if not estimators:
            raise ValueError("give at least one estimator")
        names = [e.name for e in estimators]
        if len(set(names)) != len(names):
            raise ValueError(f"estimator names must be unique, got {names}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
        if cluster not in ("slate", "round"):
            raise ValueError(f"cluster must be 'slate' or 'round', got {cluster!r}")
        self.estimators = list(estimators)
        self.alpha = float(alpha)
        self.ci = ci
        self.cluster = cluster
        self._clustered: bool | None = None   # decided by the first batch
        self.accs: dict[str, StatAccumulator] = {
            e.name: StatAccumulator(e.n_stats, ci=ci, n_bootstrap=n_bootstrap,
                                    random_state=random_state)
            for e in self.estimators}
        self.diag = DiagnosticsAccumulator(n_actions, n_positions)
        self.n_actions = n_actions

    def _cluster_ids(self, feedback: LoggedFeedback) -> np.ndarray | None:
        has = self.cluster == "slate" and feedback.slate_id is not None
        if self._clustered is None:
            self._clustered = has
            if has:   # the same sums, plus the clusters'
                for est in self.estimators:
                    old = self.accs[est.name]
                    if est.per_round:
                        acc = ClusterStatAccumulator(old.m, ci=old.ci, n_bootstrap=old.B,
                                                     random_state=old.seed)
                        acc.shift, acc.n = old.shift, old.n
                        self.accs[est.name] = acc
        elif has != self._clustered:
            raise ValueError("slate_id must be given in every batch or in none (it decides "
                             "whether the interval is clustered by slate)")
        return feedback.slate_id if has else None

    def update(self, feedback: LoggedFeedback, action_dist: Any, reward_hat: Any = None, *,
               logging_dist: Any = None) -> None:
        """Add one batch of rounds (the next rounds of the log, in order)."""
        if feedback.n_actions != self.n_actions:
            raise ValueError(f"feedback has n_actions={feedback.n_actions}, expected "
                             f"{self.n_actions}")
        for est in self.estimators:
            est.check_batch(feedback)
        dist = np.asarray(action_dist)
        if not np.issubdtype(dist.dtype, np.floating):
            dist = dist.astype(np.float64)
        check_shape(feedback, dist)
        q = None if reward_hat is None else np.asarray(reward_hat)
        if q is not None:
            if not np.issubdtype(q.dtype, np.floating):
                q = q.astype(np.float64)
            if q.shape != dist.shape:
                check_reward_hat(dist, q, who="this estimator")   # raises, naming the shapes
        log = None if logging_dist is None else np.asarray(logging_dist)
        sid = self._cluster_ids(feedback)
        if sid is not None:
            order = _group_order(sid)
            if order is not None:   # rows of a slate scattered: group them (a copy)
                feedback, dist, q, log = (feedback.take(order), _take_rows(dist, order),
                                          None if q is None else _take_rows(q, order),
                                          None if log is None else _take_rows(log, order))
                sid = feedback.slate_id
        n = feedback.n_rounds
        # blocks of _SUPER cache-sized sub-blocks: action_dist is checked and gathered sub-block
        # by sub-block while it sits in cache; the per-round work (weights, statistics,
        # accumulators) runs once per block. Every array is read from memory once; the
        # accumulators are exact over any partition into blocks
        sub = _sub_rows(dist)
        block = _block_rows(dist) if all(e.streamable for e in self.estimators) else n
        broadcast = is_broadcast_rows(dist)
        if broadcast:
            _check_rows(dist[:1], "action_dist", 1e-6)
        cells = int(np.prod(dist.shape[1:]))
        row_start = np.arange(min(block, n), dtype=np.int64) * cells
        ones = np.ones(dist.shape[1])
        position = None
        if dist.ndim == 3:
            position = feedback.position_or_zero()
        prange = feedback.pscore_range if feedback.pscore is not None else None
        for lo in range(0, n, block):
            hi = min(lo + block, n)
            if lo == 0 and hi == n:
                fb, d, qb, lb = feedback, dist, q, log
                cell = row_cells(dist, feedback.action, position)
                sb = sid
            else:
                sl = slice(lo, hi)
                fb = feedback.rows(sl, pscore_range=prange)
                d, qb = dist[sl], None if q is None else q[sl]
                lb = None if log is None else log[sl]
                cell = row_cells(dist, fb.action, None if position is None else position[sl])
                sb = None if sid is None else sid[sl]
            pi, idx = scan_block(d, cell, ones, row_start, broadcast=broadcast, sub_rows=sub)
            if pi.dtype != np.float64:
                pi = pi.astype(np.float64)
            clusters = None if sb is None else ClusterRuns.from_ids(sb)
            self._update_inputs(RoundInputs._block(fb, d, pi, idx, qb, clusters), lb,
                                check=lo == 0)

    def _update_inputs(self, inp: RoundInputs, logging_dist: Any, *, check: bool = True
                       ) -> None:
        if check:   # once per batch: every block of it has the same inputs
            for est in self.estimators:
                est.check_inputs(inp)
        self.diag.update(inp, logging_dist)
        cache: dict[Any, Any] = {}   # one set of bootstrap draws per block
        for est in self.estimators:
            stats, weights = est.round_stats(inp)
            self.accs[est.name].update(stats, weights, cache, moments=inp.moments,
                                       clusters=inp.clusters if est.per_round else None)

    def _update_block(self, feedback: LoggedFeedback, action_dist: Any, reward_hat: Any,
                      logging_dist: Any) -> None:
        """One batch without cutting it into blocks (checks it in full)."""
        inp = RoundInputs(feedback, action_dist, reward_hat)
        sid = self._cluster_ids(feedback)
        inp.clusters = None if sid is None else ClusterRuns.from_ids(sid)
        self._update_inputs(inp, logging_dist)

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
            ess = acc.ess()
            flags = reliability_flags(diag, ess=ess, se=se, weighted=acc.has_weights,
                                      model_based=not est.needs_pscore)
            out[est.name] = Estimate(est.name, value, lo, hi, self.ci, self.alpha, se, ess,
                                     acc.n, diag, flags)
        if warn:
            warn_unreliable(list(out.values()), stacklevel=stacklevel + 1)
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
    cluster: ClusterBy = "slate",
) -> dict[str, Estimate]:
    """Run several estimators on the same log and target; shared work is done once
    (arguments as :meth:`Estimator.estimate_policy_value`).

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
                              alpha=alpha, n_bootstrap=n_bootstrap, random_state=random_state,
                              cluster=cluster)
    run.update(feedback, action_dist, reward_hat, logging_dist=logging_dist)
    return run.results(stacklevel=3)
