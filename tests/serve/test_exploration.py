"""Per-slot epsilon-greedy: exact marginal propensities, checked against Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.serve.exploration import epsilon_greedy


def test_marginals_match_the_formula(rng: np.random.Generator) -> None:
    greedy, pool, eps = np.array([0, 1, 2]), np.arange(3, 9), 0.4
    n = 20_000
    counts = np.zeros((9, 3))
    for _ in range(n):
        titles, prop, explored = epsilon_greedy(greedy, pool, eps, rng)
        assert len(set(titles.tolist())) == 3
        counts[titles, np.arange(3)] += 1
        expect = np.where(explored, eps / len(pool), 1 - eps)
        np.testing.assert_allclose(prop, expect)
    freq = counts / n
    exact = np.zeros((9, 3))
    exact[greedy, np.arange(3)] = 1 - eps
    exact[3:, :] = eps / len(pool)
    np.testing.assert_allclose(freq, exact, atol=0.015)


def test_greedy_when_epsilon_zero_or_pool_small(rng: np.random.Generator) -> None:
    g = np.array([4, 2, 7])
    for pool, eps in ((np.arange(10, 20), 0.0), (np.array([9, 10]), 0.5)):
        titles, prop, explored = epsilon_greedy(g, pool, eps, rng)
        assert titles.tolist() == g.tolist() and (prop == 1).all() and not explored.any()


def test_epsilon_one_explores_every_slot(rng: np.random.Generator) -> None:
    titles, prop, explored = epsilon_greedy(np.arange(3), np.arange(3, 13), 1.0, rng)
    assert explored.all() and np.allclose(prop, 0.1) and set(titles) <= set(range(3, 13))


@pytest.mark.parametrize("eps", [-0.1, 1.5])
def test_bad_epsilon(rng: np.random.Generator, eps: float) -> None:
    with pytest.raises(ValueError, match="epsilon"):
        epsilon_greedy(np.arange(2), np.arange(2, 5), eps, rng)


def test_distinct_draws_are_uniform_and_distinct(rng: np.random.Generator) -> None:
    from reelpick.serve.exploration import distinct

    for n, k in ((50, 3), (10, 8), (5, 5)):  # rejection (k small) and rng.choice (k large)
        counts = np.zeros((k, n))
        for _ in range(4_000):
            d = distinct(rng, n, k)
            assert len(set(d.tolist())) == k and (0 <= d).all() and (d < n).all()
            counts[np.arange(k), d] += 1
        np.testing.assert_allclose(counts / 4_000, 1 / n, atol=0.035)  # every slot uniform
    assert len(distinct(rng, 7, 0)) == 0
    with pytest.raises(ValueError):
        distinct(rng, 3, 4)


def test_distinct_outside_a_bit_set(rng: np.random.Generator) -> None:
    from reelpick.serve.exploration import distinct_outside, keep_outside

    candidates = np.arange(2, 40)
    out = np.zeros(64, bool)
    out[[2, 3, 10, 39]] = True  # excluded: three candidates and the last one
    bits = np.packbits(out, bitorder="little").tobytes()
    pool = [v for v in range(2, 40) if not out[v]]
    counts = np.zeros(64)
    for _ in range(3_000):
        d = distinct_outside(rng, candidates, bits, 4)
        assert d is not None and len(set(d.tolist())) == 4 and not out[d].any()
        counts[d] += 1
    np.testing.assert_allclose(counts[pool] / 3_000, 4 / len(pool), atol=0.03)
    assert keep_outside([2, 5, 5, 3, 6], bits, 2) == [5, 6]
    assert keep_outside([2, 5, 5], bits, 2) is None
