"""PoolExploringPolicy with a stochastic pool policy: the logged propensities are the exact
marginals over the pool policy's own randomness, checked against Monte-Carlo frequencies."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from reelpick.policies import GreedyPolicy, PoolExploringPolicy, PopularPolicy, SoftmaxPolicy
from reelpick.world import World, WorldConfig

N = 20_000


@pytest.fixture(scope="module")
def draws():
    """20,000 pages for copies of one visit; pool = a softmax (stochastic) and the popular
    page (deterministic), 30% of visits from the pool, 10% uniform."""
    world = World(WorldConfig.preset("small"), seed=2)
    one = world.make_visits(np.arange(1), world.config.start + 3600)
    copies = one.subset(np.zeros(N, dtype=np.int64))
    soft = SoftmaxPolicy(temperature=0.5)
    pol = PoolExploringPolicy(GreedyPolicy(name="base"), 0.1, 0.3, pool=(soft, PopularPolicy()))
    page = pol.choose(copies, np.random.default_rng(7))
    return pol, page, pol.take_records(), soft.marginals(one).title_slot[0]


def test_logged_propensities_match_monte_carlo_frequencies(draws) -> None:
    """Every (title, slot) is logged with one number, and it is the frequency with which the
    logger shows that title there (binomial test, Bonferroni over all pairs at 1e-3). Before
    the fix a softmax-drawn title was logged as if the softmax page were certain: its
    propensity depended on the draw (0.3 / 2 + ... or not), and frequencies disagreed."""
    _, page, _, _ = draws
    S = page.titles.shape[1]
    shown = page.titles >= 0
    key = page.titles[shown] * S + np.broadcast_to(np.arange(S), page.titles.shape)[shown]
    prop = page.propensity[shown]
    pairs, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    lo, hi = np.full(pairs.size, np.inf), np.full(pairs.size, -np.inf)
    np.minimum.at(lo, inv, prop)
    np.maximum.at(hi, inv, prop)
    np.testing.assert_allclose(lo, hi, rtol=1e-9)   # P(title in slot | visit) is one number
    # two-sided binomial p-values for every pair seen, and for all pairs never seen
    p_pair = np.array([stats.binomtest(int(c), N, float(p)).pvalue
                       for c, p in zip(counts, hi)])
    assert p_pair.min() > 1e-3 / pairs.size, (pairs[p_pair.argmin()], counts[p_pair.argmin()],
                                              hi[p_pair.argmin()] * N)
    # the pairs with enough mass: frequency within 4.5 standard errors of the propensity
    big = hi * N >= 50
    assert big.sum() > 30
    se = np.sqrt(hi * (1 - hi) / N)
    assert (np.abs(counts / N - hi)[big] < 4.5 * se[big]).all()


def test_the_stochastic_pool_term_is_its_marginal(draws) -> None:
    """Closed form: a title only the softmax can put in slot s (not the base's, not the
    popular page's) is logged with eu / A + (ep / 2) * softmax's marginal of it there."""
    pol, page, rec, soft_marg = draws
    assert rec["deterministic"].shape == (N, 2)
    assert not rec["deterministic"][:, 0].any() and rec["deterministic"][:, 1].all()
    base, popular, A = rec["base"][0], rec["pool"][0, 1], rec["available"][0]
    i, s = np.nonzero((page.titles >= 0) & (page.titles != base) & (page.titles != popular))
    t = page.titles[i, s]
    want = 0.1 / A + 0.3 / 2 * soft_marg[t, s]
    np.testing.assert_allclose(page.propensity[i, s], want, rtol=1e-9)
    assert (soft_marg[t, s] > 0).mean() > 0.5   # most of them are softmax draws


def test_a_stochastic_pool_policy_without_marginals_is_refused() -> None:
    class Sampled:   # a softmax that does not say its marginals
        name, version = "sampled", "v0"

        def choose(self, visits, rng):
            return SoftmaxPolicy().choose(visits, rng)

    world = World(WorldConfig.preset("small"), seed=2)
    vb = world.make_visits(np.arange(4), world.config.start + 3600)
    pol = PoolExploringPolicy(GreedyPolicy(), 0.1, 0.3, pool=(Sampled(),))
    with pytest.raises(ValueError, match="pool policy 'sampled' is stochastic"):
        pol.choose(vb, np.random.default_rng(0))
