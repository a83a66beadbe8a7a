"""Thompson win probabilities (``normal_argmax_probabilities``) against independent references:
adaptive Gauss-Kronrod quadrature (scipy, ~1e-13), 30-digit mpmath quadrature (slow), closed
forms, symmetry and Monte Carlo; and the inverse-CDF draw that ThompsonArtwork uses."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import ndtr

from reelpick.artwork import normal_argmax_probabilities
from reelpick.artwork.argmax import PRUNE
from reelpick.artwork.bandits import _draw

#: the documented accuracy of every probability
TOL = 1e-9
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def quad_reference(mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """P(k wins) by adaptive quadrature of each variant's integral in its own standard units,
    with the other variants' CDF transitions as breakpoints (independent of the grid code).
    The means are taken relative to each row's largest (the probabilities are shift-invariant),
    so that large offsets cost no precision."""
    mu = mu - np.max(mu, axis=1, keepdims=True)
    out = np.zeros(mu.shape)
    for b in range(mu.shape[0]):
        idx = np.flatnonzero(np.isfinite(mu[b]))
        for a in idx:
            others = idx[idx != a]

            ma, sa, mo, so = mu[b, a], sd[b, a], mu[b, others], sd[b, others]

            def f(z, ma=ma, sa=sa, mo=mo, so=so):
                return math.exp(-0.5 * z * z) * _INV_SQRT2PI * ndtr((ma + sa * z - mo) / so
                                                                     ).prod()

            pts = np.clip((mu[b, others] - mu[b, a]) / sd[b, a], -11.9, 11.9)
            val, err = integrate.quad(f, -12.0, 12.0, points=np.unique(pts), epsabs=1e-15,
                                      epsrel=1e-13, limit=500)
            assert err < 1e-11
            out[b, a] = val
    return out


def cases(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {}
    mu, sd = rng.normal(0, 1, (12, 6)), rng.uniform(0.05, 2.0, (12, 6))
    mu[::4, 4:] = -np.inf                                         # trailing padding
    mu[1, 0] = -np.inf                                            # padding in front
    out["random"] = (mu, sd)
    out["close, 8 variants"] = (rng.normal(0, 0.3, (8, 8)), rng.uniform(0.5, 1.5, (8, 8)))
    out["sd ratio 100"] = (rng.normal(0, 1, (6, 5)), rng.uniform(0.02, 2.0, (6, 5)))
    out["posterior-like"] = (0.05 + rng.normal(0, 0.002, (8, 7)),
                             rng.uniform(0.0007, 0.001, (8, 7)))
    out["offset 1e3"] = (1e3 + rng.normal(0, 1e-3, (4, 4)), rng.uniform(5e-4, 1e-3, (4, 4)))
    tied = np.zeros((2, 5))
    tied[1, 3:] = 1.0
    out["ties"] = (tied, np.ones((2, 5)))
    far = np.array([[0.0, -0.5, -9.0, -30.0, 0.1], [0.0, 0.0, 0.0, -40.0, -np.inf]])
    out["far apart"] = (far, np.ones((2, 5)))
    return out


@pytest.mark.parametrize("name", list(cases()))
def test_matches_adaptive_quadrature(name):
    mu, sd = cases()[name]
    p = normal_argmax_probabilities(mu, sd)
    ref = quad_reference(mu, sd)
    np.testing.assert_allclose(p, ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all(p[~np.isfinite(mu)] == 0) and np.all(p >= 0)


@pytest.mark.slow
def test_matches_mpmath_30_digits():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 30
    rng = np.random.default_rng(5)
    mu, sd = rng.normal(0, 0.5, (3, 5)), rng.uniform(0.3, 1.5, (3, 5))
    p = normal_argmax_probabilities(mu, sd)
    for b in range(mu.shape[0]):
        for a in range(mu.shape[1]):
            def f(z, a=a, b=b):
                x = mp.mpf(mu[b, a]) + mp.mpf(sd[b, a]) * z
                v = mp.npdf(z)
                for j in range(mu.shape[1]):
                    if j != a:
                        v *= mp.ncdf((x - mp.mpf(mu[b, j])) / mp.mpf(sd[b, j]))
                return v
            ref = float(mp.quad(f, [-mp.inf, -4, 0, 4, mp.inf]))
            assert abs(p[b, a] - ref) < TOL


def test_closed_forms_and_symmetry(rng):
    mu, sd = rng.normal(0, 1, (30, 2)), rng.uniform(0.1, 1.5, (30, 2))
    p = normal_argmax_probabilities(mu, sd)
    exact = stats.norm.cdf((mu[:, 0] - mu[:, 1]) / np.hypot(sd[:, 0], sd[:, 1]))
    np.testing.assert_allclose(p[:, 0], exact, rtol=1e-14, atol=1e-16)
    for k in range(1, 9):                                         # k exchangeable variants
        q = normal_argmax_probabilities(np.full((1, k), 0.3), np.full((1, k), 0.7))
        np.testing.assert_allclose(q, 1.0 / k, rtol=0, atol=1e-12)
    one = normal_argmax_probabilities(np.array([[-np.inf, 2.0, -np.inf]]), np.ones((1, 3)))
    assert one.tolist() == [[0.0, 1.0, 0.0]]


def test_pruned_variants_are_zero_and_bounded():
    # variant 2 cannot win (bound far below PRUNE), variant 1 is close: 3 variants -> 2
    mu = np.array([[0.0, -0.2, -20.0], [0.0, -0.2, -7.0]])
    sd = np.ones((2, 3))
    p = normal_argmax_probabilities(mu, sd)
    assert p[0, 2] == 0.0
    bound = stats.norm.cdf(-20 / np.sqrt(2))
    assert bound < PRUNE
    np.testing.assert_allclose(p, quad_reference(mu, sd), rtol=0, atol=TOL)
    assert 0 < p[1, 2] < 1e-5                                      # not pruned: computed


def test_matches_monte_carlo(rng):
    mu, sd = rng.normal(0, 0.4, (4, 6)), rng.uniform(0.3, 1.2, (4, 6))
    p = normal_argmax_probabilities(mu, sd)
    n = 200_000
    for b in range(mu.shape[0]):
        win = np.argmax(mu[b] + sd[b] * rng.standard_normal((n, mu.shape[1])), axis=1)
        freq = np.bincount(win, minlength=mu.shape[1]) / n
        se = np.sqrt(p[b] * (1 - p[b]) / n) + 1e-9
        assert np.all(np.abs(freq - p[b]) < 5 * se)


def test_a_whole_page_at_once_equals_row_by_row(rng):
    """Grouping rows by grid size and refining some of them does not change any row."""
    mu = rng.normal(0, 1, (40, 8))
    sd = rng.uniform(0.05, 1.0, (40, 8)) * rng.choice([1.0, 0.02], (40, 1))   # mixed widths
    mu[rng.random((40, 8)) < 0.3] = -np.inf
    mu[:, 0] = 0.0
    page = normal_argmax_probabilities(mu, sd)
    single = np.vstack([normal_argmax_probabilities(mu[i:i + 1], sd[i:i + 1])
                        for i in range(40)])
    np.testing.assert_allclose(page, single, rtol=0, atol=TOL)
    np.testing.assert_allclose(page.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_inverse_cdf_draw():
    probs = np.array([[0.0, 0.25, 0.0, 0.75], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    u = np.array([0.0, 0.2499, 0.25, 0.999999, 1 - 2 ** -53])
    got = _draw(np.repeat(probs[:1], u.size, axis=0), u)
    assert got.tolist() == [1, 1, 3, 3, 3]                        # never a zero-probability one
    assert _draw(probs[1:], np.array([0.9, 0.5])).tolist() == [0, 0]
    rng = np.random.default_rng(0)
    p = np.tile([0.1, 0.0, 0.6, 0.3], (200_000, 1))
    freq = np.bincount(_draw(p, rng.random(p.shape[0])), minlength=4) / p.shape[0]
    np.testing.assert_allclose(freq, p[0], atol=0.004)


def test_warns_only_when_the_largest_grid_cannot_resolve_a_row(rng):
    mu, sd = rng.normal(0, 1, (20, 5)), rng.uniform(1.0, 300.0, (20, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                            # sds within 300x: no warning
        p = normal_argmax_probabilities(mu, sd)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    with pytest.warns(RuntimeWarning, match="largest grid"):
        p = normal_argmax_probabilities(np.array([[0.0, 0.3, 1.0]]),
                                        np.array([[1e-6, 1.0, 1.0]]))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
