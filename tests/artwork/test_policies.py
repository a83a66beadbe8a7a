"""One contract suite on every image selector: exact propensities (sums, formulas, empirical
frequencies), Thompson win probabilities against Monte Carlo and brute-force order statistics,
and the page wrapper in the world."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from reelpick.artwork import (
    ArtworkSelector,
    EpsilonGreedyArtwork,
    LinUCBArtwork,
    ThompsonArtwork,
    UniformArtwork,
    WithArtwork,
    normal_argmax_probabilities,
)
from reelpick.policies import UniformPolicy, normal_rank_marginals
from reelpick.world import ExactPolicy

NAMES = ["egreedy", "linucb", "thompson", "best-image", "uniform"]


def page_titles(world, visits, rng, k=7):
    avail = np.flatnonzero(visits.available[visits.country[0]])
    t = np.stack([rng.choice(avail, k, replace=False) for _ in range(len(visits))])
    t[0, -1] = -1                                                      # an empty slot
    return t


@pytest.mark.parametrize("name", NAMES)
def test_probabilities_are_distributions(name, fitted, world, visits, catalog, rng):
    sel = fitted[name]
    assert isinstance(sel, ArtworkSelector)
    titles = page_titles(world, visits, rng)
    p = sel.probabilities(visits, titles)
    _, valid = catalog.pad(titles)
    assert p.shape == valid.shape
    assert np.all(p[~valid] == 0)
    tot = p.sum(axis=2)
    np.testing.assert_allclose(tot[titles >= 0], 1.0, atol=1e-9)
    assert np.all(tot[titles < 0] == 0)


@pytest.mark.parametrize("name", NAMES)
def test_select_reports_its_probability(name, fitted, world, visits, rng):
    sel = fitted[name]
    titles = page_titles(world, visits, rng)
    p = sel.probabilities(visits, titles)
    ch = sel.select(visits, titles, np.random.default_rng(3))
    shown = titles >= 0
    assert ch.artworks.shape == titles.shape
    got = np.take_along_axis(p, ch.artworks[..., None], axis=2)[..., 0]
    np.testing.assert_allclose(ch.propensity[shown], got[shown], rtol=1e-12)
    assert np.all(ch.propensity[~shown] == 1.0) and np.all(ch.artworks[~shown] == 0)
    again = sel.select(visits, titles, np.random.default_rng(3))        # explicit seeds
    np.testing.assert_array_equal(again.artworks, ch.artworks)


@pytest.mark.parametrize("name", NAMES)
def test_empirical_frequencies_match_propensities(name, fitted, world, visits, rng):
    """Chi-square of 4,000 draws per (visit, title) against the stated distribution."""
    sel = fitted[name]
    titles = page_titles(world, visits, rng, k=3)[:2]
    vb = visits.subset(np.array([0, 1]))
    reps = 4_000
    big = vb.subset(np.repeat([0, 1], reps))
    t = np.repeat(titles, reps, axis=0)
    ch = sel.select(big, t, np.random.default_rng(9))
    p = sel.probabilities(vb, titles)
    for i in range(2):
        for s in range(titles.shape[1]):
            if titles[i, s] < 0:
                continue
            a = ch.artworks[i * reps:(i + 1) * reps, s]
            exp = p[i, s] * reps
            obs = np.bincount(a, minlength=exp.size).astype(float)
            assert np.all(obs[exp == 0] == 0)
            keep = exp > 0
            if keep.sum() < 2:
                continue
            chi = (((obs - exp) ** 2)[keep] / exp[keep]).sum()
            assert stats.chi2.sf(chi, keep.sum() - 1) > 1e-4, (name, i, s, obs, exp)


def test_epsilon_greedy_formula(fitted, world, visits, rng):
    sel = fitted["egreedy"]
    titles = page_titles(world, visits, rng)
    mean, _, valid = sel.posterior(visits.member, visits.device, titles)
    p = sel.probabilities(visits, titles)
    best = np.argmax(np.where(valid, mean, -np.inf), axis=2)
    nv = valid.sum(axis=2)
    eps = sel.config.epsilon
    expect = np.where(valid, eps / np.maximum(nv, 1)[..., None], 0.0)
    np.put_along_axis(expect, best[..., None],
                      np.take_along_axis(expect, best[..., None], axis=2) + (1 - eps), axis=2)
    shown = titles >= 0
    np.testing.assert_allclose(p[shown], expect[shown], atol=1e-12)


def test_linucb_is_greedy_on_the_upper_bound(fitted, world, visits, rng):
    sel = LinUCBArtwork(fitted["linucb"].catalog, world.config.n_members, alpha=2.0)
    sel.A_, sel.b_ = fitted["linucb"].A_.copy(), fitted["linucb"].b_.copy()
    sel.history_ = fitted["linucb"].history_
    sel._solve()
    titles = page_titles(world, visits, rng)
    mean, sd, valid = sel.posterior(visits.member, visits.device, titles)
    p = sel.probabilities(visits, titles)
    best = np.argmax(np.where(valid, mean + 2.0 * sd, -np.inf), axis=2)
    shown = titles >= 0
    assert np.all(np.take_along_axis(p, best[..., None], axis=2)[..., 0][shown] == 1.0)


def test_thompson_propensity_is_the_win_probability(fitted, world, visits, rng):
    sel = fitted["thompson"]
    titles = page_titles(world, visits, rng)
    mean, sd, valid = sel.posterior(visits.member, visits.device, titles)
    p = sel.probabilities(visits, titles)
    shown = titles >= 0
    mu = np.where(valid, mean, -np.inf)[shown]
    s = (sel.config.noise * sd)[shown]
    # Monte Carlo with 40,000 draws per title (first two visits): within 5 standard errors
    mu, s, ps = mu[:12], s[:12], p[shown][:12]
    n_mc = 40_000
    draws = mu[:, None, :] + s[:, None, :] * rng.standard_normal((mu.shape[0], n_mc,
                                                                  mu.shape[1]))
    win = np.argmax(draws, axis=2)
    freq = np.stack([np.bincount(w, minlength=mu.shape[1]) for w in win]) / n_mc
    se = np.sqrt(ps * (1 - ps) / n_mc) + 1e-6
    assert np.all(np.abs(freq - ps) < 5 * se)


def test_argmax_probabilities_match_order_statistics(rng):
    mu = rng.normal(0, 1, (50, 6))
    sd = rng.uniform(0.05, 2.0, (50, 6))
    mu[::4, 4:] = -np.inf
    p = normal_argmax_probabilities(mu, sd)
    ref = normal_rank_marginals(mu, sd, 1)[:, :, 0]
    np.testing.assert_allclose(p, ref, atol=1e-8)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(p[::4, 4:] == 0)


def test_argmax_two_variants_closed_form(rng):
    mu = rng.normal(0, 1, (30, 2))
    sd = rng.uniform(0.1, 1.5, (30, 2))
    p = normal_argmax_probabilities(mu, sd)
    exact = stats.norm.cdf((mu[:, 0] - mu[:, 1]) / np.hypot(sd[:, 0], sd[:, 1]))
    np.testing.assert_allclose(p[:, 0], exact, atol=1e-9)


def test_uniform_sticky_is_per_member_and_title(world, visits):
    sel = UniformArtwork(sticky=True, seed=4)
    titles = np.tile(np.flatnonzero(visits.available[visits.country[0]])[:10], (len(visits), 1))
    a = sel.select(visits, titles, np.random.default_rng(0))
    b = sel.select(visits, titles, np.random.default_rng(1))
    np.testing.assert_array_equal(a.artworks, b.artworks)                # same member, title
    nv = world.entities.n_variants[titles]
    np.testing.assert_allclose(a.propensity, 1 / nv)
    # uniform over the assignment: 40,000 (member, title) pairs, chi-square per variant count
    m = np.repeat(np.arange(400), 100)
    t = np.tile(np.arange(100), 400)
    from reelpick.artwork.selector import sticky_uniform
    u = sticky_uniform(m, t, 4)
    counts = np.bincount((u * 5).astype(int), minlength=5)
    assert stats.chisquare(counts).pvalue > 1e-4


@pytest.mark.parametrize("name", ["thompson", "egreedy", "uniform"])
def test_with_artwork_exact_value_matches_sampling(name, fitted, world):
    pol = WithArtwork(UniformPolicy(), fitted[name])
    assert isinstance(pol, ExactPolicy)
    exact = world.policy_value(pol, n_visits=300, method="exact")
    mc = world.policy_value(pol, n_visits=300, method="monte_carlo")
    assert abs(exact.incremental_plays - mc.incremental_plays) < 4 * mc.incremental_plays_se
    marg = pol.marginals(world.make_visits([0, 1], world.config.start + 3600))
    off = world.entities.art_offset
    sums = np.add.reduceat(marg.artwork, off[:-1], axis=1)
    np.testing.assert_allclose(sums, 1.0, atol=1e-9)


def test_unfitted_bandits_are_the_prior(catalog, world, visits, rng):
    titles = page_titles(world, visits, rng)
    shown = titles >= 0
    eg = EpsilonGreedyArtwork(catalog, world.config.n_members, epsilon=0.0)
    assert np.all(eg.select(visits, titles, rng).artworks[shown] == 0)  # ties -> variant 0
    ts = ThompsonArtwork(catalog, world.config.n_members)
    mean, _, valid = ts.posterior(visits.member, visits.device, titles)
    assert np.all(mean == 0)                                            # prior mean
    np.testing.assert_allclose(ts.probabilities(visits, titles).sum(axis=2)[shown], 1.0)
