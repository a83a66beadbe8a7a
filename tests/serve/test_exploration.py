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
