"""Results of off-policy estimation, confidence intervals, diagnostics and their warnings.

Every estimator in :mod:`reelpick.ope` reduces a batch of logged rounds to per-round statistics
:math:`s_i \\in \\mathbb{R}^m` and its value to a smooth function of their mean,
:math:`\\hat V = g(\\bar s)` (IPS: :math:`s_i = w_i r_i`, :math:`g = \\mathrm{id}`; SNIPS:
:math:`s_i = (w_i r_i, w_i)`, :math:`g(u, v) = u / v`). :class:`StatAccumulator` keeps the
sufficient statistics of that mean batch by batch, so a stream of batches gives the same estimate
as the whole array at once, and two intervals:

``analytic``
    normal approximation on the per-round influence terms (delta method):
    :math:`\\hat V \\pm z_{1-\\alpha/2} \\sqrt{\\nabla g^\\top \\hat\\Sigma \\nabla g / n}`,
    which for a linear estimator is the usual :math:`\\bar x \\pm z\\, s_x/\\sqrt n`.
``bootstrap``
    the Poisson bootstrap (each round enters replicate :math:`b` with weight
    :math:`\\mathrm{Poisson}(1)`; Hanley & MacGibbon 2006; Chamandy et al. 2012, "Estimating
    uncertainty for massive data streams"), percentile interval of
    :math:`g(\\bar s^{(b)})`. The weights of round :math:`i` depend only on the seed and
    :math:`i`, so streaming and in-memory runs draw the same replicates. Ratio estimators
    (SNIPS, SNDR, replay) are recomputed per replicate, normaliser included (obp keeps the
    normaliser fixed, which understates their spread).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.stats import norm

__all__ = [
    "CIMethod",
    "Diagnostics",
    "Estimate",
    "ExtremeWeightWarning",
    "OPEWarning",
    "StatAccumulator",
    "SupportWarning",
]

CIMethod = Literal["analytic", "bootstrap"]
_BLOCK = 4096  # rows per Poisson-bootstrap seed block


class OPEWarning(UserWarning):
    """Base class of the warnings :mod:`reelpick.ope` raises about an estimate's reliability."""


class SupportWarning(OPEWarning):
    """The target policy puts mass on actions the logging policy never takes (no support):
    importance-weighted estimates miss that mass and are biased."""


class ExtremeWeightWarning(OPEWarning):
    """Importance weights are so uneven that few rounds carry the estimate (tiny ESS)."""


@dataclass(frozen=True)
class Diagnostics:
    """Facts about the importance weights :math:`w_i = \\pi_e(a_i|x_i)/\\pi_0(a_i|x_i)`.

    ``unsupported_mass`` is the share of the target's probability mass on (action, position)
    pairs outside the logging support: the logging distribution's zeros when the logging
    distribution is known, otherwise the pairs never seen in the logs (``support_method =
    "empirical"``, an upper bound on the true share for a finite log).
    """

    n_rounds: int
    pscore_min: float
    pscore_max: float
    weight_mean: float
    weight_std: float
    weight_max: float
    weight_second_moment: float
    ess: float
    unsupported_mass: float
    support_method: str = "empirical"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """An estimated policy value with its interval.

    ``ci_low``/``ci_high`` bound a ``1 - alpha`` interval computed by ``ci_method``; ``ess`` is
    the effective sample size :math:`(\\sum_i w_i)^2 / \\sum_i w_i^2` of the weights this
    estimator uses (``n_rounds`` for DM); ``se`` the analytic standard error.
    """

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    ci_method: str
    alpha: float
    se: float
    ess: float
    n_rounds: int
    diagnostics: Diagnostics | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (
            "estimator", "value", "ci_low", "ci_high", "ci_method", "alpha", "se", "ess",
            "n_rounds")}
        out["diagnostics"] = None if self.diagnostics is None else self.diagnostics.to_dict()
        return out


def poisson_weights(seed: int, start: int, stop: int, n_bootstrap: int) -> np.ndarray:
    """Poisson(1) bootstrap weights ``(n_bootstrap, stop - start)`` of rounds ``start..stop-1``.

    Round ``i``'s weights come from the generator seeded with ``[seed, i // 4096]``, so any
    partition of the rounds into batches draws the same weights.
    """
    out = np.empty((n_bootstrap, stop - start), dtype=np.float64)
    pos = start
    while pos < stop:
        block = pos // _BLOCK
        b0, b1 = block * _BLOCK, (block + 1) * _BLOCK
        draws = _block_draws(seed, block, n_bootstrap)
        hi = min(stop, b1)
        out[:, pos - start:hi - start] = draws[:, pos - b0:hi - b0]
        pos = hi
    return out


@lru_cache(maxsize=8)
def _block_draws(seed: int, block: int, n_bootstrap: int) -> np.ndarray:
    draws = np.random.default_rng([seed, block]).poisson(1.0, size=(n_bootstrap, _BLOCK))
    draws = draws.astype(np.float64)
    draws.flags.writeable = False
    return draws


class StatAccumulator:
    """Sufficient statistics of the mean of per-round statistics ``s`` ``(n_rounds, m)``.

    Keeps ``n``, the shifted sums :math:`\\sum (s_i - c)` and :math:`\\sum (s_i-c)(s_i-c)^\\top`
    (``c`` = the first batch's mean, for numerical stability), the weights' sums for the ESS and,
    when bootstrapping, the Poisson-weighted sums of every replicate.
    """

    def __init__(self, n_stats: int, *, ci: CIMethod = "analytic", n_bootstrap: int = 1000,
                 random_state: int = 0) -> None:
        if ci not in ("analytic", "bootstrap"):
            raise ValueError(f"ci must be 'analytic' or 'bootstrap', got {ci!r}")
        if ci == "bootstrap" and n_bootstrap < 2:
            raise ValueError(f"n_bootstrap must be >= 2, got {n_bootstrap}")
        self.m, self.ci, self.B, self.seed = n_stats, ci, int(n_bootstrap), int(random_state)
        self.n = 0
        self.shift: np.ndarray | None = None
        self.total = np.zeros(n_stats)
        self.s1 = np.zeros(n_stats)
        self.s2 = np.zeros((n_stats, n_stats))
        self.w1 = 0.0
        self.w2 = 0.0
        self.has_weights = False
        if ci == "bootstrap":
            self.boot_n = np.zeros(self.B)
            self.boot_s = np.zeros((self.B, n_stats))

    def update(self, stats: np.ndarray | Sequence[np.ndarray], weights: np.ndarray | None,
               boot_cache: dict[tuple[int, int], np.ndarray] | None = None, *,
               weight_moments: tuple[float, float, float] | None = None) -> None:
        """Add one batch: ``stats`` ``(k, m)`` (or ``m`` columns ``(k,)``; a ``(k,)`` array when
        ``m == 1``) and the weights behind them (``None``: no weights, ESS = rounds).
        ``weight_moments`` = ``(sum w, sum w**2, max w)`` when already known."""
        if isinstance(stats, np.ndarray) and stats.ndim == 2:
            cols = [stats[:, j] for j in range(stats.shape[1])]
        elif isinstance(stats, np.ndarray):
            cols = [stats]
        else:
            cols = list(stats)
        if len(cols) != self.m:
            raise ValueError(f"expected {self.m} statistics per round, got {len(cols)}")
        k = cols[0].shape[0]
        if k == 0:
            return
        self._moments(cols, k)
        if weights is not None:
            self.has_weights = True
            if weight_moments is None:
                self.w1 += float(weights.sum())
                self.w2 += float(np.dot(weights, weights))
            else:
                self.w1 += weight_moments[0]
                self.w2 += weight_moments[1]
        if self.ci == "bootstrap":
            key = (self.n, self.n + k)
            if boot_cache is not None and key in boot_cache:
                pw = boot_cache[key]
            else:
                pw = poisson_weights(self.seed, self.n, self.n + k, self.B)
                if boot_cache is not None:
                    boot_cache[key] = pw
            self.boot_n += pw.sum(axis=1)
            self.boot_s += pw @ np.column_stack(cols)
        self.n += k

    def _moments(self, cols: list[np.ndarray], k: int) -> None:
        """Sums and cross-products of the columns shifted by the first batch's mean (numerical
        stability). Callers pass cache-sized batches (see ``OffPolicyEvaluation.update``)."""
        sums = np.array([float(c.sum()) for c in cols])
        if self.shift is None:
            self.shift = sums / k
        self.total += sums
        self.s1 += sums - k * self.shift
        d = [c - self.shift[j] for j, c in enumerate(cols)]
        for j in range(self.m):
            for i in range(j + 1):
                v = float(np.dot(d[i], d[j]))
                self.s2[i, j] += v
                if i != j:
                    self.s2[j, i] += v

    def mean(self) -> np.ndarray:
        return self.total / self.n

    def cov(self) -> np.ndarray:
        if self.n < 2:
            return np.full((self.m, self.m), np.nan)
        return (self.s2 - np.outer(self.s1, self.s1) / self.n) / (self.n - 1)

    def ess(self) -> float:
        if not self.has_weights:
            return float(self.n)
        return self.w1 ** 2 / self.w2 if self.w2 > 0 else 0.0

    def boot_means(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.boot_s / self.boot_n[:, None]


def interval(value: float, se: float, acc: StatAccumulator, value_fn: Any,
             alpha: float) -> tuple[float, float]:
    """``(low, high)``: the analytic (normal) or the Poisson-bootstrap percentile interval."""
    if acc.ci == "analytic":
        z = float(norm.ppf(1.0 - alpha / 2.0))
        return value - z * se, value + z * se
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = np.asarray(value_fn(acc.boot_means()), dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(reps, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


class DiagnosticsAccumulator:
    """Streams the facts of :class:`Diagnostics` (weights, propensities, support)."""

    def __init__(self, n_actions: int, n_positions: int) -> None:
        self.n = 0
        self.p_min, self.p_max = math.inf, -math.inf
        self.w1 = self.w2 = 0.0
        self.w_max = -math.inf
        self.has_w = False
        self.count = np.zeros((n_actions, n_positions))
        self.mass = np.zeros((n_actions, n_positions))
        self.all_seen = False
        self.unsupported_known = 0.0
        self.known = False

    def update(self, inp: Any, logging_dist: np.ndarray | None = None) -> None:
        """Add one batch (a :class:`~reelpick.ope.base.RoundInputs`).

        Cheap by construction: the weight moments are shared with the estimators, the pscore
        range comes from validation, and the target mass per (action, position) -- needed only
        for pairs the log has never shown -- is computed only while such pairs exist.
        """
        fb = inp.feedback
        action, position, action_dist = fb.action, inp.position, inp.action_dist
        self.n += action.shape[0]
        if fb.pscore is not None:
            self.has_w = True
            p_min, p_max = fb.pscore_range
            self.p_min, self.p_max = min(self.p_min, p_min), max(self.p_max, p_max)
            w1, w2, w_max = inp.w_moments
            self.w1 += w1
            self.w2 += w2
            self.w_max = max(self.w_max, w_max)
        if not self.all_seen:  # once every pair has been shown, nothing is left to count
            n_act, n_pos = self.count.shape
            flat = action if n_pos == 1 else action * n_pos + np.minimum(position, n_pos - 1)
            self.count += np.bincount(flat, minlength=n_act * n_pos).reshape(n_act, n_pos)
            self.all_seen = bool(self.count.all())
            if not self.all_seen:  # some pair never shown so far: its target mass is needed
                self.mass += _mass_by_position(action_dist, position, n_pos)
        if logging_dist is not None:
            self.known = True
            tgt = _at_position(action_dist, position)
            log = _at_position(np.asarray(logging_dist, dtype=np.float64), position)
            self.unsupported_known += float(np.sum(tgt * (log <= 0.0)))

    def result(self) -> Diagnostics:
        n = max(self.n, 1)
        if self.known:
            unsupported, method = self.unsupported_known / n, "logging_dist"
        else:
            unsupported, method = float(self.mass[self.count == 0].sum()) / n, "empirical"
        if self.has_w:
            mean = self.w1 / n
            var = max(self.w2 / n - mean ** 2, 0.0)
            ess = self.w1 ** 2 / self.w2 if self.w2 > 0 else 0.0
            return Diagnostics(self.n, self.p_min, self.p_max, mean, math.sqrt(var), self.w_max,
                               self.w2 / n, ess, unsupported, method)
        nan = math.nan
        return Diagnostics(self.n, nan, nan, nan, nan, nan, nan, float(self.n), unsupported,
                           method)


def _at_position(dist: np.ndarray, position: np.ndarray) -> np.ndarray:
    """``dist[i, :, position[i]]`` ``(n_rounds, n_actions)`` (``dist`` itself when 2-D)."""
    if dist.ndim == 2:
        return dist
    if dist.shape[0] > 1 and dist.strides[0] == 0:
        return dist[0].T[position]
    return dist[np.arange(dist.shape[0]), :, position]


def _mass_by_position(dist: np.ndarray, position: np.ndarray, n_pos: int) -> np.ndarray:
    """``(n_actions, n_positions)``: the target mass summed over rounds, per logged position
    (one pass over ``dist``)."""
    k = np.minimum(position, n_pos - 1)
    if dist.shape[0] > 1 and dist.strides[0] == 0:  # broadcast rows: counts x the row
        counts = np.bincount(k, minlength=n_pos).astype(np.float64)
        row = dist[0] if dist.ndim == 2 else dist[0][:, :n_pos]
        return row[:, None] * counts[None, :] if dist.ndim == 2 else row * counts[None, :]
    at = _at_position(dist, k) if dist.ndim == 3 else dist
    if n_pos == 1:
        return (np.ones(at.shape[0]) @ at)[:, None]
    sel = sp.csr_matrix((np.ones(k.shape[0]), (k, np.arange(k.shape[0]))),
                        shape=(n_pos, k.shape[0]))
    return np.asarray((sel @ at).T)


def warn_diagnostics(diag: Diagnostics, *, stacklevel: int = 3) -> None:
    """Warn loudly about unsupported target mass and tiny effective sample sizes."""
    if diag.unsupported_mass > 1e-9:
        warnings.warn(
            f"{diag.unsupported_mass:.2%} of the target policy's probability mass lies outside "
            f"the logging policy's support ({diag.support_method}): importance-weighted "
            "estimates (IPS, SNIPS, DR, ...) cannot see it and are biased; DM extrapolates it "
            "from the reward model",
            SupportWarning, stacklevel=stacklevel)
    if diag.n_rounds >= 100 and math.isfinite(diag.ess) and diag.ess < 0.01 * diag.n_rounds:
        warnings.warn(
            f"effective sample size {diag.ess:.1f} is under 1% of the {diag.n_rounds} rounds "
            f"(max weight {diag.weight_max:.3g}): the estimate rests on a handful of rounds",
            ExtremeWeightWarning, stacklevel=stacklevel)
