r"""Exact win probabilities of independent normal draws: the Thompson-sampling image propensity.

Thompson sampling draws one score per variant, :math:`X_k \sim N(\mu_k, \sigma_k^2)`
independently, and shows the largest. The probability that variant :math:`k` wins is

.. math::

    P(k = \arg\max_j X_j) = \int_{-\infty}^{\infty} \frac{1}{\sigma_k}
        \varphi\Big(\frac{x - \mu_k}{\sigma_k}\Big)
        \prod_{j \ne k} \Phi\Big(\frac{x - \mu_j}{\sigma_j}\Big)\, dx .

It is computed by the trapezoidal rule on a uniform grid over
:math:`[\max_j(\mu_j - 6.5\sigma_j),\ \max_j(\mu_j + 6.5\sigma_j)]` (outside it lies less than
:math:`10^{-10}` of any integrand: below the left end the variant attaining it would have to
fall under its own :math:`-6.5\sigma`), with step at most :math:`\sigma_{\min}/1.2`. For
analytic, rapidly decaying integrands the trapezoidal rule converges geometrically (Trefethen
and Weideman, SIAM Review 2014): the error of a Gaussian with step :math:`h` is about
:math:`2 e^{-2\pi^2\sigma^2/h^2} \approx 10^{-12}`. The leave-one-out products come from prefix and
suffix products (no division), so a whole page costs :math:`O(B K Q)`. The result checks itself
— the win probabilities of a row sum to 1 — and the grid is doubled while the deviation exceeds
:data:`TOLERANCE`; then each row is divided by its sum (the mass of the truncated tails).
With 3-8 variants this is a few dozen grid points per title. Tests compare with
:func:`reelpick.policies.normal_rank_marginals` (rank 0) and with Monte Carlo.

Example
-------
>>> import numpy as np
>>> p = normal_argmax_probabilities(np.array([[0.0, 0.0, -np.inf]]), np.ones((1, 3)))
>>> np.round(p, 12).tolist()
[[0.5, 0.5, 0.0]]
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

#: Largest accepted deviation of a row's total win probability from 1.
TOLERANCE = 1e-9
#: Half-width of the integration range in posterior sds (tail mass below 1e-10).
TAIL = 6.5
#: Grid step = smallest sd / STEP (trapezoid error about 2 exp(-2 pi^2 STEP^2) ~ 1e-12).
STEP = 1.2
#: Largest grid (points per row).
MAX_GRID = 8193
_SQRT2PI = float(np.sqrt(2.0 * np.pi))


def normal_argmax_probabilities(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``P(k wins)`` for every row of ``mean``/``sd`` ``(B, K)``; ``mean = -inf`` marks padding
    (probability 0); ``sd > 0`` where valid. Returns ``(B, K)``; each row sums to 1."""
    mu = np.asarray(mean, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    if mu.ndim != 2 or sd.shape != mu.shape:
        raise ValueError(f"mean, sd: expected equal (B, K) shapes, got {mu.shape}, {sd.shape}")
    valid = np.isfinite(mu)
    if np.isnan(mu).any() or np.isposinf(mu).any():
        raise ValueError("mean: must be finite or -inf (padding)")
    if mu.shape[0] == 0:
        return np.zeros(mu.shape)
    if not valid.any(axis=1).all():
        raise ValueError("mean: every row needs at least one finite mean")
    if (sd[valid] <= 0).any() or not np.isfinite(sd[valid]).all():
        raise ValueError("sd: must be positive and finite")
    s = np.where(valid, sd, 1.0)
    m = np.where(valid, mu, 0.0)
    lo = np.where(valid, m - TAIL * s, -np.inf).max(axis=1)
    hi = np.where(valid, m + TAIL * s, -np.inf).max(axis=1)
    h = np.where(valid, s, np.inf).min(axis=1) / STEP
    need = np.clip(np.ceil((hi - lo) / h) + 1, 9, MAX_GRID)
    # rows that need similar grids share one computation (sizes rounded up to 2^j + 1)
    bucket = np.ceil(np.log2(need - 1)).astype(np.int64)
    out = np.zeros(mu.shape)
    for b in np.unique(bucket):
        rows = np.flatnonzero(bucket == b)
        Q = int(min(MAX_GRID, 2 ** int(b) + 1))
        while True:
            part = _integrate(m[rows], s[rows], valid[rows], lo[rows], hi[rows], Q)
            err = np.abs(part.sum(axis=1) - 1.0).max()
            if err <= TOLERANCE or Q >= MAX_GRID:
                break
            Q = min(MAX_GRID, 2 * Q - 1)
        out[rows] = part / part.sum(axis=1, keepdims=True)   # the truncated tails
    return out


def _integrate(m: np.ndarray, s: np.ndarray, valid: np.ndarray, lo: np.ndarray,
               hi: np.ndarray, Q: int) -> np.ndarray:
    B, K = m.shape
    step = (hi - lo) / (Q - 1)
    x = lo[:, None] + step[:, None] * np.arange(Q)[None, :]              # (B, Q)
    mT, sT, vT = m.T[:, :, None], s.T[:, :, None], valid.T[:, :, None]   # (K, B, 1)
    z = (x[None] - mT) / sT                                              # (K, B, Q)
    cdf = ndtr(z)
    cdf[~np.broadcast_to(vT, z.shape)] = 1.0
    pdf = np.exp(-0.5 * z * z)
    pdf *= np.where(vT, 1.0 / (_SQRT2PI * sT), 0.0)
    pdf[:, :, 0] *= 0.5                                                  # trapezoid ends
    pdf[:, :, -1] *= 0.5
    out = np.empty((K, B))
    pre = np.ones((B, Q))
    loo = np.empty((K, B, Q))
    for k in range(K):                                                   # prod_{j<k}
        loo[k] = pre
        pre = pre * cdf[k]
    suf = np.ones((B, Q))
    for k in range(K - 1, -1, -1):                                       # prod_{j>k}
        out[k] = np.einsum("bq,bq->b", pdf[k] * loo[k], suf)
        suf = suf * cdf[k]
    return out.T * step[:, None]
