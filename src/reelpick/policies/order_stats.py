r"""Exact rank marginals of independent random scores: who lands in which slot of a ranked page.

Two randomised rankers here share one structure: each candidate :math:`k` draws an independent
score :math:`X_k` and the page shows the :math:`S` highest, best first.

* **Plackett-Luce / softmax** (:class:`~reelpick.policies.SoftmaxPolicy`): :math:`X_k = u_k +
  G_k` with :math:`G_k` standard Gumbel (the Gumbel-max trick; Yellott, J. Math. Psych. 1977).
* **Thompson sampling** (:class:`~reelpick.policies.ThompsonSamplingPolicy`): :math:`X_k \sim
  N(\mu_k, \sigma_k^2)`, one posterior draw per arm.

The probability that candidate :math:`k` is shown in slot (rank) :math:`r` is

.. math::

    P(\mathrm{rank}_k = r) = \int f_k(x)\,
        \Pr\Big[\textstyle\sum_{j \ne k} \mathbb 1[X_j > x] = r\Big]\,dx,

the density of :math:`X_k` times a Poisson-binomial probability over the other candidates. The
Poisson-binomial is built by dynamic programming, truncated to counts :math:`< S`; the
leave-one-out products for all :math:`k` come from a divide-and-conquer recursion in
:math:`O(Q\,K\,S\log K)` for :math:`K` candidates and :math:`Q` grid points. The integral uses
the trapezoidal rule on a uniform grid that covers every density to :math:`10^{-16}`; for these
analytic, rapidly decaying integrands the rule converges geometrically (Trefethen and Weideman,
SIAM Review 2014). The result checks itself: every rank :math:`r` below the number of candidates
must hold exactly one candidate, :math:`\sum_k P(\mathrm{rank}_k = r) = 1`; while the largest
deviation exceeds :data:`TOLERANCE` the step is halved (starting at 0.2 for Gumbel scores and
:math:`\sigma_{\min}/1.5` for normal ones). Tests compare with brute-force enumeration.

Example
-------
>>> import numpy as np
>>> m = gumbel_rank_marginals(np.log([[3.0, 1.0, 1.0]]), n_ranks=2)
>>> np.round(m[0, :, 0], 6).tolist()                 # rank 0 is the softmax
[0.6, 0.2, 0.2]
>>> np.round(m[0].sum(axis=0), 9).tolist()           # each rank holds one candidate
[1.0, 1.0]
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

#: First trapezoid step for Gumbel scores (halved until :data:`TOLERANCE` is met).
GUMBEL_STEP = 0.2
#: Largest deviation of a rank's total probability from 1 that is accepted.
TOLERANCE = 1e-9
#: Largest grid per row; past it the step is not refined further.
MAX_GRID = 4096


def _refined(compute, valid: np.ndarray, n_ranks: int, span: np.ndarray, step0: np.ndarray
             ) -> np.ndarray:
    """Run ``compute(Q)`` with a grid of ``Q`` points, halving the step until every rank below
    the number of valid candidates sums to 1 within :data:`TOLERANCE` (or the grid is full)."""
    need = np.arange(n_ranks)[None, :] < valid.sum(axis=1)[:, None]
    Q = int(min(MAX_GRID, max(16, np.ceil((span / step0).max()) + 1)))
    while True:
        out = compute(Q)
        err = np.abs(np.where(need, out.sum(axis=1) - 1.0, 0.0)).max(initial=0.0)
        if err <= TOLERANCE or Q >= MAX_GRID:
            return out
        Q = min(MAX_GRID, 2 * Q - 1)


def _loo_integrate(ahead: np.ndarray, dens: np.ndarray, n_ranks: int) -> np.ndarray:
    """``out[b, k, r] = sum_q dens[b, k, q] * PB_{-k}[b, q, r]``, where ``PB_{-k}`` is the
    Poisson-binomial of ``ahead[b, j, q]`` over ``j != k`` truncated to counts ``< n_ranks``.

    ``ahead``, ``dens`` : (B, K, Q); ``dens`` already multiplied by the quadrature weights.
    """
    B, K, Q = ahead.shape
    out = np.zeros((B, K, n_ranks))
    acc0 = np.zeros((B, Q, n_ranks))
    acc0[:, :, 0] = 1.0

    def absorb(acc: np.ndarray, lo: int, hi: int) -> np.ndarray:
        acc = acc.copy()
        for j in range(lo, hi):
            p = ahead[:, j, :, None]
            shifted = acc[..., :-1] * p
            acc *= 1.0 - p
            acc[..., 1:] += shifted
        return acc

    def rec(lo: int, hi: int, acc: np.ndarray) -> None:
        if hi - lo == 1:
            out[:, lo, :] = np.einsum("bq,bqr->br", dens[:, lo], acc)
            return
        mid = (lo + hi) // 2
        rec(lo, mid, absorb(acc, mid, hi))
        rec(mid, hi, absorb(acc, lo, mid))

    if K:
        rec(0, K, acc0)
    return out


def _chunked(fn, n_ranks: int, *arrays: np.ndarray) -> np.ndarray:
    """Apply ``fn`` to the distinct rows, in chunks (bounded memory; each chunk refines its
    own grid). Visits with identical parameters share one computation."""
    stacked = np.concatenate([np.where(np.isfinite(a), a, -1e308) for a in arrays], axis=1)
    uniq, first, inverse = np.unique(stacked, axis=0, return_index=True, return_inverse=True)
    if uniq.shape[0] < stacked.shape[0]:
        return _chunked_rows(fn, n_ranks, *(a[first] for a in arrays))[inverse.ravel()]
    return _chunked_rows(fn, n_ranks, *arrays)


def _chunked_rows(fn, n_ranks: int, *arrays: np.ndarray) -> np.ndarray:
    B, K = arrays[0].shape
    rows = max(1, 2_000_000 // max(1, K * 256))
    out = np.empty((B, K, n_ranks))
    for lo in range(0, B, rows):
        out[lo:lo + rows] = fn(*(a[lo:lo + rows] for a in arrays), n_ranks)
    return out


def gumbel_rank_marginals(logits: np.ndarray, n_ranks: int) -> np.ndarray:
    r"""``P(candidate k at rank r)`` under Plackett-Luce with ``logits`` (B, K); ``-inf`` marks
    padding. Returns (B, K, n_ranks).

    Uses :math:`P(X > x) = 1 - \exp(-e^{-(x-u)})` and
    :math:`f(x) = \exp(-(x - u) - e^{-(x - u)})` on the grid
    :math:`[\min u - 3.7, \max u + 38]`, first step :data:`GUMBEL_STEP`.
    """
    u = np.asarray(logits, dtype=np.float64)
    if u.ndim != 2:
        raise ValueError(f"logits: expected shape (B, K), got {u.shape}")
    B, K = u.shape
    valid = np.isfinite(u)
    if (np.isnan(u)).any() or (np.isposinf(u)).any():
        raise ValueError("logits: must be finite or -inf (padding)")
    if not valid.any(axis=1).all():
        raise ValueError("logits: every row needs at least one finite logit")
    if n_ranks < 1:
        raise ValueError(f"n_ranks: must be >= 1, got {n_ranks}")
    return _chunked(_gumbel, n_ranks, u)


def _gumbel(u: np.ndarray, n_ranks: int) -> np.ndarray:
    B = u.shape[0]
    valid = np.isfinite(u)
    hi = np.where(valid, u, -np.inf).max(axis=1) + 38.0
    lo = np.where(valid, u, np.inf).min(axis=1) - 3.7

    def compute(Q: int) -> np.ndarray:
        step = (hi - lo) / (Q - 1)
        x = lo[:, None] + step[:, None] * np.arange(Q)[None, :]          # (B, Q)
        z = np.where(valid[:, :, None], x[:, None, :] - u[:, :, None], np.inf)  # (B, K, Q)
        ez = np.exp(-z)
        ahead = -np.expm1(-ez)
        dens = np.exp(-z - ez) * step[:, None, None]
        return _loo_integrate(ahead, dens, n_ranks)

    return _refined(compute, valid, n_ranks, hi - lo, np.full(B, GUMBEL_STEP))


def normal_rank_marginals(mean: np.ndarray, sd: np.ndarray, n_ranks: int) -> np.ndarray:
    r"""``P(candidate k at rank r)`` when candidate ``k`` scores an independent
    :math:`N(\mathrm{mean}_k, \mathrm{sd}_k^2)` draw; ``mean = -inf`` marks padding; ``sd > 0``.
    Returns (B, K, n_ranks).

    Grid :math:`[\min(\mu - 8.5\sigma), \max(\mu + 8.5\sigma)]` with step
    :math:`\sigma_{\min} / 1.5` (at most :data:`MAX_GRID` points per row; beyond that the step
    stops shrinking, which only happens when the means spread over thousands of posterior sds).
    """
    mu = np.asarray(mean, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    if mu.ndim != 2 or sd.shape != mu.shape:
        raise ValueError(f"mean, sd: expected equal (B, K) shapes, got {mu.shape}, {sd.shape}")
    valid = np.isfinite(mu)
    if not valid.any(axis=1).all():
        raise ValueError("mean: every row needs at least one finite mean")
    if (sd[valid] <= 0).any() or not np.isfinite(sd[valid]).all():
        raise ValueError("sd: must be positive and finite")
    if n_ranks < 1:
        raise ValueError(f"n_ranks: must be >= 1, got {n_ranks}")
    return _chunked(_normal, n_ranks, mu, sd)


def _normal(mu: np.ndarray, sd: np.ndarray, n_ranks: int) -> np.ndarray:
    valid = np.isfinite(mu)
    s = np.where(valid, sd, 1.0)
    m = np.where(valid, mu, 0.0)
    hi = np.where(valid, m + 8.5 * s, -np.inf).max(axis=1)
    lo = np.where(valid, m - 8.5 * s, np.inf).min(axis=1)
    h = np.where(valid, s, np.inf).min(axis=1) / 1.5

    def compute(Q: int) -> np.ndarray:
        step = (hi - lo) / (Q - 1)
        x = lo[:, None] + step[:, None] * np.arange(Q)[None, :]
        z = (x[:, None, :] - m[:, :, None]) / s[:, :, None]
        ahead = np.where(valid[:, :, None], ndtr(-z), 0.0)
        dens = np.where(valid[:, :, None],
                        np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * s[:, :, None]), 0.0)
        return _loo_integrate(ahead, dens * step[:, None, None], n_ranks)

    return _refined(compute, valid, n_ranks, hi - lo, h)
