r"""Exact win probabilities of independent normal draws: the Thompson-sampling image propensity.

Thompson sampling draws one score per variant, :math:`X_k \sim N(\mu_k, \sigma_k^2)`
independently, and shows the largest. The probability that variant :math:`k` wins is

.. math::

    P(k = \arg\max_j X_j) = \int_{-\infty}^{\infty} \frac{1}{\sigma_k}
        \varphi\Big(\frac{x - \mu_k}{\sigma_k}\Big)
        \prod_{j \ne k} \Phi\Big(\frac{x - \mu_j}{\sigma_j}\Big)\, dx .

How it is computed, for a whole page at once (every title a row, 3-8 variants, padded):

1. **Pruning.** With :math:`b` the variant of largest mean, variant :math:`j` can only win by
   beating :math:`b`, so :math:`P(j) \le \Phi\big((\mu_j - \mu_b)/\sqrt{\sigma_j^2 +
   \sigma_b^2}\big)`. Variants with a bound below :data:`PRUNE` get probability 0 and leave the
   other variants' products (each dropped variant moves every other probability by at most its
   own bound: at most :math:`2 \cdot 7 \cdot` :data:`PRUNE` in all).
2. **Closed forms.** One variant left: probability 1. Two: :math:`P(a) = \Phi\big((\mu_a -
   \mu_b)/\sqrt{\sigma_a^2 + \sigma_b^2}\big)`, exact.
3. **Quadrature** for three or more: the trapezoidal rule on a uniform grid over
   :math:`[x_{lo}, \max_j(\mu_j + 6.5\sigma_j)]` (:data:`TAIL`), with :math:`x_{lo}` one Newton
   step from :math:`\max_j(\mu_j - 6.5\sigma_j)` towards the point where the CDF of the maximum,
   :math:`F(x) = \prod_j \Phi_j(x)`, is :math:`\Phi(-6.5)` (:math:`\log F` is concave, so the
   step never overshoots): every integrand is below :math:`F'`, so each variant loses less than
   :math:`\Phi(-6.5) = 4 \cdot 10^{-11}` outside the range. The step is
   :math:`\sigma_{\min}/2` (:data:`STEP`): the integrands are narrower than the variants'
   posteriors (the maximum of several draws is), and this step gives about 1e-10. For
   analytic, rapidly decaying integrands the trapezoidal rule converges geometrically
   (Trefethen and Weideman, SIAM Review 2014). All (title, variant) pairs of the page share
   one ``(pairs, Q)`` array: one ``ndtr`` and one ``exp`` per pair and grid point, the product of
   a title's CDFs by ``multiply.reduceat``, the leave-one-out product by dividing out the
   variant's own CDF (at least :math:`\Phi(-6.5)` on the grid, so no underflow). Means are taken
   relative to each title's best, so large offsets cost no precision. The titles run in one or
   two passes (split by grid size where that saves the most work).
4. **Self-check.** A title's win probabilities must sum to 1; titles off by more than
   :data:`TOLERANCE` are recomputed with the step halved (up to :data:`MAX_GRID` points, which
   suffices while a title's sds differ by less than a factor of about 300; past that a
   ``RuntimeWarning`` says how far off the row is). Then every row is divided by its sum (the
   mass of the truncated tails).

Accuracy: every probability within 1e-9 of adaptive Gauss-Kronrod quadrature
(``scipy.integrate.quad``, ~1e-13) and of 30-digit ``mpmath`` quadrature
(``tests/artwork/test_argmax.py``; the largest deviation seen over ~650 random rows of 3-8
variants, sd ratios up to 1000, is 7e-11); the closed form for two variants; ``1/k`` for ``k``
exchangeable variants to 1e-12. A page of 200 titles costs about ``pairs x 28`` ``ndtr``
evaluations (``benchmarks/bench_artwork.py``).

Example
-------
>>> import numpy as np
>>> p = normal_argmax_probabilities(np.array([[0.0, 0.0, -np.inf]]), np.ones((1, 3)))
>>> np.round(p, 12).tolist()
[[0.5, 0.5, 0.0]]
>>> p = normal_argmax_probabilities(np.zeros((1, 4)), np.ones((1, 4)))   # symmetric
>>> bool(np.abs(p - 0.25).max() < 1e-12)
True
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import log_ndtr, ndtr, ndtri

#: Largest accepted deviation of a row's total win probability from 1.
TOLERANCE = 1e-9
#: Half-width of the integration range in posterior sds (tail mass below 4e-11 per variant).
TAIL = 6.5
#: Grid step = smallest sd of the row / STEP (about 1e-10 from the trapezoidal rule).
STEP = 2.0
#: Variants whose win probability is provably below this are given probability 0.
PRUNE = 1e-13
#: Newton steps that raise the lower end of the range to where the maximum's CDF is Phi(-TAIL).
NEWTON = 1
#: Overhead of one more pass over a group of titles, in (pair x grid point) evaluations.
PASS_COST = 3000
#: Largest grid (points per row).
MAX_GRID = 8193
#: Grid sizes for rows far off the bulk of a page (the smallest that reaches their step).
_LADDER = np.array(sorted({2 ** j + 1 for j in range(3, 14)}
                          | {3 * 2 ** (j - 1) + 1 for j in range(3, 13)}))
_INV_SQRT2PI = float(1.0 / np.sqrt(2.0 * np.pi))
_Z_PRUNE = float(ndtri(PRUNE))


def normal_argmax_probabilities(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """``P(k wins)`` for every row of ``mean``/``sd`` ``(B, K)``; ``mean = -inf`` marks padding
    (probability 0); ``sd > 0`` where valid. Returns ``(B, K)``; each row sums to 1."""
    mu = np.asarray(mean, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    if mu.ndim != 2 or sd.shape != mu.shape:
        raise ValueError(f"mean, sd: expected equal (B, K) shapes, got {mu.shape}, {sd.shape}")
    if np.isnan(mu).any() or (mu == np.inf).any():
        raise ValueError("mean: must be finite or -inf (padding)")
    B, K = mu.shape
    out = np.zeros((B, K))
    if B == 0:
        return out
    valid = mu > -np.inf
    if not valid.any(axis=1).all():
        raise ValueError("mean: every row needs at least one finite mean")
    if (valid & ~((sd > 0) & (sd < np.inf))).any():
        raise ValueError("sd: must be positive and finite")

    # 1. prune variants that cannot win (bound below PRUNE); the best mean always stays
    r = np.arange(B)
    best = np.argmax(mu, axis=1)                       # padding is -inf
    mb, sb = mu[r, best], sd[r, best]
    with np.errstate(invalid="ignore"):
        active = (mu - mb[:, None]) / np.sqrt(sd * sd + (sb * sb)[:, None]) > _Z_PRUNE
    n_act = active.sum(axis=1)

    # 2. closed forms: one or two variants left
    one = n_act == 1
    out[r[one], best[one]] = 1.0
    two = np.flatnonzero(n_act == 2)
    if two.size:
        rows, cols = np.nonzero(active[two])
        a, b = cols[0::2], cols[1::2]
        t = two[rows[0::2]]
        z = (mu[t, a] - mu[t, b]) / np.hypot(sd[t, a], sd[t, b])
        out[t, a], out[t, b] = ndtr(z), ndtr(-z)

    # 3. quadrature over the (title, variant) pairs of the rows with 3+ variants left
    many = np.flatnonzero(n_act >= 3)
    if many.size:
        rows, cols = np.nonzero(active[many])       # row-major: each row's pairs contiguous
        m = mu[many[rows], cols] - mb[many[rows]]    # centred on the best mean: small numbers
        s = sd[many[rows], cols]
        count = n_act[many]
        starts = np.cumsum(count) - count
        lo = _lower_end(m, s, rows, starts, np.maximum.reduceat(m - TAIL * s, starts))
        hi = np.maximum.reduceat(m + TAIL * s, starts)
        need = np.minimum(np.ceil((hi - lo) * STEP / np.minimum.reduceat(s, starts)) + 1,
                          MAX_GRID)
        # the bulk (need within 2x the median) in one or two passes, split where that costs
        # the fewest grid points (a pass costs about PASS_COST points of overhead); the rest
        # (rows with far narrower posteriors than their range) by grid size
        bulk = need <= 2.0 * np.sort(need)[need.size // 2]           # 2x the median
        groups = _split(need, count, np.flatnonzero(bulk))
        if not bulk.all():
            size = _LADDER[np.minimum(np.searchsorted(_LADDER, need), _LADDER.size - 1)]
            groups += [(int(q), np.flatnonzero(~bulk & (size == q)))
                       for q in np.unique(size[~bulk])]
        p = np.empty(m.size)
        while groups:
            Q, sel = groups.pop()
            if sel.size == many.size:
                pm: np.ndarray | slice = slice(None)
            else:
                keep = np.zeros(many.size, dtype=bool)
                keep[sel] = True
                pm = np.repeat(keep, count)
            c = count[sel]
            val, tot = _integrate(m[pm], s[pm], c, lo[sel], hi[sel], max(Q, 9))
            dev = np.abs(tot - 1.0)
            bad = dev > TOLERANCE
            if bad.any():
                if Q < MAX_GRID:
                    groups.append((min(MAX_GRID, 2 * Q - 1), sel[bad]))
                else:
                    warnings.warn(
                        f"normal_argmax_probabilities: {int(bad.sum())} row(s) reach only "
                        f"{dev.max():.1e} (not {TOLERANCE:g}) on the largest grid: their sds "
                        "differ by a factor of hundreds or more", RuntimeWarning, stacklevel=2)
            p[pm] = val / np.repeat(tot, c)          # the truncated tails
        out[many[rows], cols] = p
    return out


def _split(need: np.ndarray, count: np.ndarray, rows: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``[(Q, rows)]``: ``rows`` in one pass (``Q`` = their largest need) or two (split by
    need where ``sum_pass Q * pairs`` plus the cost of a second pass is smallest)."""
    order = rows[np.argsort(need[rows], kind="stable")]
    q = need[order]
    pairs = np.cumsum(count[order])
    cost = q[:-1] * pairs[:-1] + q[-1] * (pairs[-1] - pairs[:-1]) + PASS_COST
    if cost.size == 0 or cost.min() >= q[-1] * pairs[-1]:
        return [(int(q[-1]), np.sort(order))]
    k = int(np.argmin(cost)) + 1
    return [(int(q[k - 1]), np.sort(order[:k])), (int(q[-1]), np.sort(order[k:]))]


def _lower_end(m: np.ndarray, s: np.ndarray, rows: np.ndarray, starts: np.ndarray,
               x: np.ndarray) -> np.ndarray:
    """Raise each row's lower end ``x`` (where ``F(x) = prod_j Phi_j(x) <= Phi(-TAIL)``) towards
    the root of ``log F(x) = log Phi(-TAIL)`` by Newton steps: ``log F`` is concave and
    increasing, so from the left every step stays left of the root (``F`` below the target)."""
    target = float(log_ndtr(-TAIL))
    for _ in range(NEWTON):
        z = (x[rows] - m) / s
        lc = log_ndtr(z)
        g = np.add.reduceat(lc, starts) - target
        d = np.add.reduceat(np.exp(-0.5 * z * z - lc) / s, starts) * _INV_SQRT2PI
        x = x - np.minimum(g, 0.0) / d
    return x


def _integrate(m: np.ndarray, s: np.ndarray, count: np.ndarray, lo: np.ndarray,
               hi: np.ndarray, Q: int) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoid estimates of the win probabilities of pairs ``(m, s)`` (sorted by row, ``count``
    pairs per row) on a grid of ``Q`` points over each row's ``[lo, hi]``; and the row totals."""
    rows = np.repeat(np.arange(count.size), count)
    starts = np.cumsum(count) - count
    dz = ((hi - lo) / (Q - 1))[rows] / s
    z = np.multiply.outer(dz, np.arange(Q, dtype=np.float64))            # (P, Q)
    z += ((lo[rows] - m) / s)[:, None]
    cdf = ndtr(z)
    # leave-one-out product: the row's product over its own CDF. No CDF underflows: the grid
    # starts at or above max_j(mu_j - TAIL sd_j), so every z >= -TAIL on it
    others = np.multiply.reduceat(cdf, starts, axis=0)[rows]
    others /= cdf
    z *= z
    z *= -0.5
    np.exp(z, out=z)
    z *= others
    w = np.ones(Q)
    w[0] = w[-1] = 0.5
    val = (z @ w) * dz * _INV_SQRT2PI
    return val, np.add.reduceat(val, starts)
