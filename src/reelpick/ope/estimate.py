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
    "ClusterRuns",
    "ClusterStatAccumulator",
    "Diagnostics",
    "Estimate",
    "ExtremeWeightWarning",
    "Moments",
    "OPEWarning",
    "StatAccumulator",
    "SupportWarning",
    "UnreliableEstimateWarning",
    "studentized_interval",
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


class UnreliableEstimateWarning(OPEWarning):
    """An estimate's interval cannot be trusted (:attr:`Estimate.flags` says why): do not ship
    a policy on it."""


#: ``no_support``: the target puts more than this share of its mass on (action, position) pairs
#: outside the logging support (``Diagnostics.unsupported_mass``; with ``support_method =
#: "empirical"``, pairs the log never showed: near-zero support counts as none)
FLAG_UNSUPPORTED_MASS = 0.01
#: ``low_ess``: the estimator's importance weights have an effective sample size
#: :math:`(\sum w)^2 / \sum w^2` below this many rounds ...
FLAG_MIN_ESS = 100.0
#: ... or fewer expected non-zero rewards among them than this (ESS x the log's share of
#: rounds with a non-zero reward): with rare plays, 100 weighted rounds hold a handful of plays
FLAG_MIN_EVENTS = 20.0
#: ``heavy_tail``: the largest importance weight holds more than this share of the weights'
#: second moment, :math:`w_{max}^2 / \sum_i w_i^2`: one round can move the estimate by a
#: share of its interval that the normal approximation does not see
FLAG_WEIGHT_SHARE = 0.05
#: the flags :func:`reliability_flags` can raise, in order
FLAGS = ("no_support", "low_ess", "heavy_tail", "model_based", "no_variance")


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
    #: share of the rounds with a non-zero reward (for the ``low_ess`` flag)
    reward_nonzero_share: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """An estimated policy value with its interval.

    ``ci_low``/``ci_high`` bound a ``1 - alpha`` interval computed by ``ci_method``; ``ess`` is
    the effective sample size :math:`(\\sum_i w_i)^2 / \\sum_i w_i^2` of the weights this
    estimator uses (``n_rounds`` for DM); ``se`` the analytic standard error.

    ``flags`` names why the interval cannot be trusted (empty: :attr:`reliable`), from
    :data:`FLAGS`: ``"no_support"`` (more than :data:`FLAG_UNSUPPORTED_MASS` of the target's
    mass outside the logging support, or never shown in the log), ``"low_ess"`` (weights' ESS
    under :data:`FLAG_MIN_ESS`, or under :data:`FLAG_MIN_EVENTS` expected non-zero rewards),
    ``"heavy_tail"`` (the largest weight holds more than :data:`FLAG_WEIGHT_SHARE` of the
    weights' second moment), ``"model_based"`` (DM: the interval ignores the reward model's
    bias), ``"no_variance"`` (no finite, positive standard error). Every flag reads only the
    weights, the support and the log's overall reward rate, never the target's rewarded
    rounds, so keeping the unflagged estimates does not select lucky samples. A decision
    (``reelpick promote``) should refuse an estimate that is not ``reliable``.

    >>> Estimate("ips", 0.5, 0.4, 0.6, "analytic", 0.05, 0.05, 900.0, 1000).reliable
    True
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
    flags: tuple[str, ...] = ()

    @property
    def reliable(self) -> bool:
        """No flag raised: the interval is one a decision may rest on."""
        return not self.flags

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (
            "estimator", "value", "ci_low", "ci_high", "ci_method", "alpha", "se", "ess",
            "n_rounds", "reliable")}
        out["flags"] = list(self.flags)
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


class Moments:
    """Sums and dot products of per-round columns, memoised by array identity.

    Estimators that share a column (IPS and SNIPS both use ``w r``; every weighted estimator and
    the diagnostics use ``w``) then share its moments within a block. Every memoised array is
    kept alive by the memo, so an ``id`` is never reused while it serves as a key; build one
    ``Moments`` per block and drop it with the block.
    """

    __slots__ = ("_sums", "_dots", "_runs")

    def __init__(self) -> None:
        self._sums: dict[int, tuple[np.ndarray, float]] = {}
        self._dots: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, float]] = {}
        self._runs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def sum(self, a: np.ndarray) -> float:
        hit = self._sums.get(id(a))
        if hit is None:
            hit = self._sums[id(a)] = (a, float(a.sum()))
        return hit[1]

    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        key = (id(a), id(b)) if id(a) <= id(b) else (id(b), id(a))
        hit = self._dots.get(key)
        if hit is None:
            hit = self._dots[key] = (a, b, float(np.dot(a, b)))
        return hit[2]

    def run_sums(self, a: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Sums of ``a`` over runs of rows beginning at ``starts`` (cluster sums)."""
        hit = self._runs.get(id(a))
        if hit is None:
            hit = self._runs[id(a)] = (a, np.add.reduceat(a, starts) if a.size else
                                       np.zeros(0))
        return hit[1]


#: Poisson bootstrap weights shared by the accumulators of one batch: by row range
#: ``(start, stop)`` (independent rounds) or by ``("clusters", id(runs))`` (clustered rounds)
BootCache = dict[tuple[Any, int], Any]

#: below this ratio of the shifted to the raw second moment, a block's cross-products are
#: recomputed on shifted columns (cancellation would cost more than ~4 of 16 digits)
_CANCELLATION = 1e-4


class StatAccumulator:
    """Sufficient statistics of the mean of per-round statistics ``s`` ``(n_rounds, m)``.

    Keeps ``n``, the shifted sums :math:`\\sum (s_i - c)` and :math:`\\sum (s_i-c)(s_i-c)^\\top`
    (``c`` = the first batch's mean, for numerical stability), the weights' sums for the ESS and,
    when bootstrapping, the Poisson-weighted sums of every replicate. The state is additive
    over any partition of the rounds (same ``c``), which is what streaming and distributed
    runs rely on.
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
               boot_cache: BootCache | None = None, *,
               weight_moments: tuple[float, float, float] | None = None,
               moments: Moments | None = None, clusters: Any = None) -> None:
        """Add one batch: ``stats`` ``(k, m)`` (or ``m`` columns ``(k,)``; a ``(k,)`` array when
        ``m == 1``) and the weights behind them (``None``: no weights, ESS = rounds).
        ``weight_moments`` = ``(sum w, sum w**2, max w)`` when already known; ``moments``: a
        :class:`Moments` memo shared with other accumulators of the same block;
        ``clusters``: the block's cluster runs (:class:`ClusterStatAccumulator` only)."""
        cols = _columns(stats)
        if len(cols) != self.m:
            raise ValueError(f"expected {self.m} statistics per round, got {len(cols)}")
        k = cols[0].shape[0]
        if k == 0:
            return
        mo = moments if moments is not None else Moments()
        self._moments(cols, k, mo)
        if weights is not None:
            self.has_weights = True
            if weight_moments is None:
                self.w1 += mo.sum(weights)
                self.w2 += mo.dot(weights, weights)
            else:
                self.w1 += weight_moments[0]
                self.w2 += weight_moments[1]
        self._clusters(cols, clusters, mo)
        if self.ci == "bootstrap":
            self._bootstrap(cols, k, boot_cache, clusters, mo)
        self.n += k

    def _clusters(self, cols: list[np.ndarray], clusters: Any, mo: Moments) -> None:
        """Rounds are independent here (see :class:`ClusterStatAccumulator`)."""

    def _bootstrap(self, cols: list[np.ndarray], k: int,
                   boot_cache: BootCache | None, clusters: Any,
                   mo: Moments) -> None:
        key = (self.n, self.n + k)
        if boot_cache is not None and key in boot_cache:
            pw = boot_cache[key]
        else:
            pw = poisson_weights(self.seed, self.n, self.n + k, self.B)
            if boot_cache is not None:
                boot_cache[key] = pw
        self.boot_n += pw.sum(axis=1)
        self.boot_s += pw @ np.column_stack(cols)

    def _moments(self, cols: list[np.ndarray], k: int, mo: Moments | None = None) -> None:
        """Sums and cross-products of the columns shifted by the first batch's mean.

        From the raw moments (shared between estimators through ``mo``):
        :math:`\\sum (x-c)(y-d) = \\sum xy - c \\sum y - d \\sum x + k c d`; a block where that
        cancels more than :data:`_CANCELLATION` allows (a column nearly constant) is recomputed
        on the shifted columns. Callers pass cache-sized batches (see
        ``OffPolicyEvaluation.update``)."""
        mo = mo if mo is not None else Moments()
        m = self.m
        if m == 1:   # the common case, in scalars
            self._moments1(cols[0], k, mo)
            return
        sums = [mo.sum(c) for c in cols]
        if self.shift is None:
            self.shift = np.array(sums) / k
        h = self.shift.tolist()
        # small m: Python floats beat numpy's per-call overhead on every block
        cross = np.empty((m, m))
        exact = True
        for j in range(m):
            for i in range(j + 1):
                raw = mo.dot(cols[i], cols[j])
                c = raw - h[i] * sums[j] - h[j] * sums[i] + k * h[i] * h[j]
                if i == j and not c >= _CANCELLATION * (raw + k * h[i] * h[i]):
                    exact = False
                cross[i, j] = cross[j, i] = c
        sums_a = np.array(sums)
        if exact:
            shifted = sums_a - k * self.shift
        else:   # shifted columns: their sums and products keep every digit
            d = [c - h[j] for j, c in enumerate(cols)]
            shifted = np.array([float(x.sum()) for x in d])
            for j in range(m):
                for i in range(j + 1):
                    cross[i, j] = cross[j, i] = float(np.dot(d[i], d[j]))
        self.total += sums_a
        self.s1 += shifted
        self.s2 += cross

    def _moments1(self, x: np.ndarray, k: int, mo: Moments) -> None:
        total = mo.sum(x)
        if self.shift is None:
            self.shift = np.array([total / k])
        h = float(self.shift[0])
        raw = mo.dot(x, x)
        cross = raw - 2.0 * h * total + k * h * h
        shifted = total - k * h
        if not cross >= _CANCELLATION * (raw + k * h * h):
            d = x - h
            cross, shifted = float(np.dot(d, d)), float(d.sum())
        self.total[0] += total
        self.s1[0] += shifted
        self.s2[0, 0] += cross

    def mean(self) -> np.ndarray:
        return self.total / self.n

    def cov(self) -> np.ndarray:
        """``n`` x the covariance of the mean of the statistics (with independent rounds: their
        sample covariance), so that ``g @ cov() @ g / n`` is the delta-method variance."""
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


def _columns(stats: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(stats, np.ndarray) and stats.ndim == 2:
        return [stats[:, j] for j in range(stats.shape[1])]
    if isinstance(stats, np.ndarray):
        return [stats]
    return list(stats)


class ClusterRuns:
    """The clusters of a block of rounds as runs of adjacent rows: ``ids`` ``(g,)`` (the cluster
    of each run), ``starts`` ``(g,)`` (its first row in the block) and ``counts`` ``(g,)``.

    >>> r = ClusterRuns.from_ids(np.array([7, 7, 3, 3, 3, 9]))
    >>> r.ids.tolist(), r.starts.tolist(), r.counts.tolist()
    ([7, 3, 9], [0, 2, 5], [2, 3, 1])
    """

    __slots__ = ("ids", "starts", "counts")

    def __init__(self, ids: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> None:
        self.ids, self.starts, self.counts = ids, starts, counts

    @classmethod
    def from_ids(cls, cluster: np.ndarray) -> ClusterRuns:
        k = cluster.shape[0]
        if k == 0:
            z = np.zeros(0, dtype=np.int64)
            return cls(z, z, z)
        starts = np.concatenate([[0], np.flatnonzero(cluster[1:] != cluster[:-1]) + 1])
        counts = np.diff(np.append(starts, k))
        return cls(cluster[starts], starts, counts)


class ClusterStatAccumulator(StatAccumulator):
    """:class:`StatAccumulator` for rounds that are dependent within clusters (the rows of one
    slate / page / visit share its context) and independent across clusters.

    The analytic interval then uses the cluster-robust (CR1) variance of the mean,

    .. math::

        \\widehat{\\mathrm{Var}}(\\bar s) = \\frac{G}{G-1}\\,\\frac{1}{n^2}
            \\sum_{c=1}^{G} (S_c - n_c \\bar s)(S_c - n_c \\bar s)^\\top,
        \\qquad S_c = \\sum_{i \\in c} s_i,

    (Liang & Zeger 1986; Cameron & Miller 2015), which equals the independent-rounds formula
    when every cluster is one round; the Poisson bootstrap draws one weight per cluster, from a
    hash of the seed, the cluster id and the replicate (any partition or order of the rounds
    draws the same weights). Clusters are runs of adjacent rows with the same id; a run split
    across batches is joined (the first and last cluster stay open for that, see
    :meth:`merge`). Sufficient statistics (additive): ``G`` clusters, :math:`\\sum n_c^2`,
    :math:`\\sum n_c T_c` and :math:`\\sum T_c T_c^\\top` with :math:`T_c = S_c - n_c c`.
    """

    def __init__(self, n_stats: int, *, ci: CIMethod = "analytic", n_bootstrap: int = 1000,
                 random_state: int = 0) -> None:
        super().__init__(n_stats, ci=ci, n_bootstrap=n_bootstrap, random_state=random_state)
        self.G = 0
        self.c0 = 0.0
        self.c1 = np.zeros(n_stats)
        self.c2 = np.zeros((n_stats, n_stats))
        # open clusters [id, rows, raw sums (m,)]: the first (once a second one began) and last
        self.head: list[Any] | None = None
        self.tail: list[Any] | None = None

    def _clusters(self, cols: list[np.ndarray], clusters: Any, mo: Moments) -> None:
        if clusters is None:
            raise ValueError("a clustered accumulator needs the cluster of every round")
        sums = np.column_stack([mo.run_sums(c, clusters.starts) for c in cols])
        self._add_runs(clusters.ids, clusters.counts.astype(np.float64), sums)

    def _add_runs(self, ids: np.ndarray, counts: np.ndarray, sums: np.ndarray) -> None:
        """Runs of a block, in order: the first may continue the open last cluster; all but
        the last are complete; the last stays open."""
        g = ids.shape[0]
        lo = 0
        if self.tail is not None and g and ids[0] == self.tail[0]:
            self.tail[1] += counts[0]
            self.tail[2] = self.tail[2] + sums[0]
            lo = 1
        if lo == g:
            return
        if self.tail is not None:
            self._close(self.tail)
        if self.head is None and g - 1 > lo:   # the log's first cluster, complete
            self.head = [ids[lo], counts[lo], sums[lo].copy()]
            lo += 1
        self._finalise(counts[lo:g - 1], sums[lo:g - 1])
        self.tail = [ids[g - 1], counts[g - 1], sums[g - 1].copy()]

    def _close(self, rec: list[Any]) -> None:
        """A cluster that another one followed: it becomes the head or is finalised."""
        if self.head is None:
            self.head = rec
        else:
            self._finalise(np.array([rec[1]]), rec[2][None, :])
        self.tail = None

    def _finalise(self, counts: np.ndarray, sums: np.ndarray) -> None:
        if counts.shape[0] == 0:
            return
        shift = self.shift
        assert shift is not None  # set by _moments before any cluster closes
        t = sums - counts[:, None] * shift[None, :]
        self.G += counts.shape[0]
        self.c0 += float(counts @ counts)
        self.c1 += counts @ t
        self.c2 += t.T @ t

    def _open(self) -> list[list[Any]]:
        return [r for r in (self.head, self.tail) if r is not None]

    def n_clusters(self) -> int:
        return self.G + len(self._open())

    def cov(self) -> np.ndarray:
        G = self.n_clusters()
        if self.n < 2 or G < 2:
            return np.full((self.m, self.m), np.nan)
        c0, c1, c2 = self.c0, self.c1.copy(), self.c2.copy()
        for _, cnt, sm in self._open():
            t = sm - cnt * self.shift
            c0 += cnt * cnt
            c1 += cnt * t
            c2 += np.outer(t, t)
        delta = self.s1 / self.n                       # mean - shift
        dc = np.outer(delta, c1)
        v = c2 - dc - dc.T + c0 * np.outer(delta, delta)
        return v * (G / (G - 1)) / self.n

    def _bootstrap(self, cols: list[np.ndarray], k: int,
                   boot_cache: BootCache | None, clusters: Any,
                   mo: Moments) -> None:
        key = ("clusters", id(clusters))
        hit = None if boot_cache is None else boot_cache.get(key)
        if hit is None:
            hit = (clusters, cluster_poisson_weights(self.seed, clusters.ids, self.B))
            if boot_cache is not None:
                boot_cache[key] = hit
        pw = hit[1]
        sums = np.column_stack([mo.run_sums(c, clusters.starts) for c in cols])
        self.boot_n += pw @ clusters.counts.astype(np.float64)
        self.boot_s += pw @ sums

    def merge(self, later: ClusterStatAccumulator) -> None:
        """Add ``later``'s rounds (the rounds right after this one's, same shift): a cluster
        cut between the two is joined."""
        if later.n == 0:
            return
        if self.n == 0:
            self.__dict__.update({k: (v.copy() if isinstance(v, np.ndarray) else v)
                                  for k, v in later.__dict__.items()})
            self.head, self.tail = (None if r is None else [r[0], r[1], r[2].copy()]
                                    for r in (later.head, later.tail))
            return
        if self.shift is None or later.shift is None or not np.array_equal(self.shift,
                                                                            later.shift):
            raise ValueError("merge needs accumulators with the same shift")
        for name in ("total", "s1", "s2", "c1", "c2"):
            setattr(self, name, getattr(self, name) + getattr(later, name))
        self.n += later.n
        self.w1 += later.w1
        self.w2 += later.w2
        self.has_weights = self.has_weights or later.has_weights
        self.G += later.G
        self.c0 += later.c0
        if self.ci == "bootstrap":
            self.boot_n = self.boot_n + later.boot_n
            self.boot_s = self.boot_s + later.boot_s
        recs = [[r[0], r[1], r[2].copy()] for r in later._open()]
        if self.tail is not None and recs and recs[0][0] == self.tail[0]:
            self.tail[1] += recs[0][1]
            self.tail[2] = self.tail[2] + recs[0][2]
            recs = recs[1:]
        for r in recs:
            if self.tail is not None:
                self._close(self.tail)
            self.tail = r


def cluster_poisson_weights(seed: int, ids: np.ndarray, n_bootstrap: int) -> np.ndarray:
    """Poisson(1) bootstrap weights ``(n_bootstrap, len(ids))`` of clusters ``ids``: a
    counter-based hash (SplitMix64) of the seed, the id and the replicate, so the weight of a
    cluster does not depend on where or in which batch its rows come."""
    ids = np.asarray(ids).astype(np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        x = ids * np.uint64(0xD1B54A32D192ED03) ^ np.uint64((int(seed) * 0x9E3779B97F4A7C15)
                                                             % 2 ** 64)
        x = x[None, :] + np.arange(n_bootstrap, dtype=np.uint64)[:, None] * np.uint64(
            0xA24BAED4963EE407)
        x = _splitmix64(x)
    u = (x >> np.uint64(11)).astype(np.float64) * (1.0 / 2 ** 53)
    return np.searchsorted(_POISSON1_CDF, u, side="right").astype(np.float64)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def studentized_interval(x: np.ndarray, *, alpha: float = 0.05, n_bootstrap: int = 999,
                         seed: int = 0) -> tuple[float, float]:
    r"""``(low, high)``: the studentized (bootstrap-t) interval of the mean of ``x``.

    For heavy-tailed, skewed per-visit terms (importance weights times rewards) the normal
    interval :math:`\bar x \pm z\, s/\sqrt n` under-covers on one side: a sample short of
    the rare large terms has both a low mean *and* a low standard error, so the truth lies
    above the upper limit far more often than :math:`\alpha/2`. The bootstrap-t interval
    (Efron & Tibshirani 1993, ch. 12; Hall 1988) takes the quantiles of
    :math:`t^* = (\bar x^* - \bar x) / \widehat{se}^*` over the Poisson(1) bootstrap
    replicates of :class:`StatAccumulator` (:func:`poisson_weights`: row ``i``'s weights depend
    only on ``seed`` and ``i``, and are cached, so many targets' intervals on one log reuse
    them) and
    returns :math:`[\bar x - t^*_{1-\alpha/2}\, \widehat{se},\ \bar x - t^*_{\alpha/2}
    \,\widehat{se}]`: second-order accurate where the normal interval is first-order, and
    longer on the side of the tail. For symmetric terms it is close to the normal interval.

    ``x`` ``(n,)`` finite, ``n >= 2``; replicates whose weights put no mass on two distinct
    rows are skipped. Returns ``(nan, nan)`` when fewer than 10 replicates are usable.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.pareto(1.8, 5000) * (rng.random(5000) < 0.05)      # rare, heavy-tailed
    >>> lo, hi = studentized_interval(x)
    >>> m, se = x.mean(), x.std(ddof=1) / np.sqrt(x.size)
    >>> bool(hi - m > m - lo)               # longer towards the heavy tail
    True
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    if n < 2 or not np.isfinite(x).all():
        raise ValueError(f"x: need at least 2 finite values, got {n} "
                         f"({int((~np.isfinite(x)).sum())} not finite)")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: must be in (0, 1), got {alpha}")
    m = float(x.mean())
    se = float(x.std(ddof=1) / math.sqrt(n))
    if se == 0.0:
        return m, m
    xc = x - m                            # centred: no cancellation in the second moment
    acc = StatAccumulator(2, ci="bootstrap", n_bootstrap=n_bootstrap, random_state=seed)
    for lo in range(0, n, _BLOCK):        # one cached block of weights at a time
        acc.update([xc[lo:lo + _BLOCK], xc[lo:lo + _BLOCK] ** 2], None)
    tot = acc.boot_n
    d, m2 = acc.boot_means().T
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.maximum(m2 - d * d, 0.0) * tot / np.maximum(tot - 1.0, 1.0)
        ts = (d / np.sqrt(var / tot))[(tot >= 2) & (var > 0)]
    ts = ts[np.isfinite(ts)]
    if ts.size < 10:
        return math.nan, math.nan
    q_lo, q_hi = np.quantile(ts, [alpha / 2.0, 1.0 - alpha / 2.0])
    return m - float(q_hi) * se, m - float(q_lo) * se


_POISSON1_CDF = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(25)])


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
        self.nonzero = 0

    def update(self, inp: Any, logging_dist: np.ndarray | None = None) -> None:
        """Add one batch (a :class:`~reelpick.ope.base.RoundInputs`).

        Cheap by construction: the weight moments are shared with the estimators, the pscore
        range comes from validation, and the target mass per (action, position) -- needed only
        for pairs the log has never shown -- is computed only while such pairs exist.
        """
        fb = inp.feedback
        action, action_dist = fb.action, inp.action_dist
        self.n += action.shape[0]
        self.nonzero += int(np.count_nonzero(fb.reward))
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
            flat = (action if n_pos == 1
                    else action * n_pos + np.minimum(inp.position, n_pos - 1))
            self.count += np.bincount(flat, minlength=n_act * n_pos).reshape(n_act, n_pos)
            self.all_seen = bool(self.count.all())
            if not self.all_seen:  # some pair never shown so far: its target mass is needed
                self.mass += _mass_by_position(action_dist, inp.position, n_pos)
        if logging_dist is not None:
            position = inp.position
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
                               self.w2 / n, ess, unsupported, method, self.nonzero / n)
        nan = math.nan
        return Diagnostics(self.n, nan, nan, nan, nan, nan, nan, float(self.n), unsupported,
                           method, self.nonzero / n)


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


def reliability_flags(diag: Diagnostics | None, *, ess: float, se: float, weighted: bool,
                      model_based: bool) -> tuple[str, ...]:
    """The :data:`FLAGS` raised for one estimate (see :class:`Estimate`): ``ess`` of the
    weights the estimator uses, ``weighted`` = it uses importance weights, ``model_based`` = it
    rests on the reward model only.

    >>> d = Diagnostics(1000, 0.01, 0.5, 1.0, 3.0, 40.0, 10.0, 90.0, 0.0, "empirical", 0.2)
    >>> reliability_flags(d, ess=90.0, se=0.01, weighted=True, model_based=False)
    ('low_ess', 'heavy_tail')
    """
    out: list[str] = []
    if diag is not None and diag.unsupported_mass > FLAG_UNSUPPORTED_MASS:
        out.append("no_support")
    if weighted:
        events = ess * diag.reward_nonzero_share if diag is not None else math.nan
        if not ess >= FLAG_MIN_ESS or (math.isfinite(events) and events < FLAG_MIN_EVENTS):
            out.append("low_ess")
        if diag is not None and diag.n_rounds > 0 and diag.weight_second_moment > 0:
            share = diag.weight_max ** 2 / (diag.weight_second_moment * diag.n_rounds)
            if share > FLAG_WEIGHT_SHARE:
                out.append("heavy_tail")
    if model_based:
        out.append("model_based")
    if not (math.isfinite(se) and se > 0):
        out.append("no_variance")
    return tuple(out)


def warn_unreliable(estimates: Sequence[Estimate], *, stacklevel: int = 3) -> None:
    """One :class:`UnreliableEstimateWarning` naming the estimates flagged by the data
    (``model_based`` alone is a property of DM, not of this log: no warning)."""
    bad = [e for e in estimates if set(e.flags) - {"model_based"}]
    if not bad:
        return
    what = "; ".join(f"{e.estimator}: {', '.join(e.flags)}" for e in bad)
    warnings.warn(f"unreliable off-policy estimate ({what}): its interval cannot be trusted "
                  "(see Estimate.flags); do not ship a policy on it",
                  UnreliableEstimateWarning, stacklevel=stacklevel)


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
