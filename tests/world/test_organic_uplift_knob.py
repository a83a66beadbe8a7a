"""The organic-vs-uplift knob (``organic_popularity_weight``, ``saturation``): exact equations,
the configured direction and size in the logs, and exact policy values with it on."""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.policies import PopularPolicy, UniformPolicy
from reelpick.world import World, WorldConfig

KNOB = dict(organic_popularity_weight=2.0, saturation=1.0)


def _visits(world: World, n: int = 200):
    return world.draw_visits(n, np.random.default_rng(5))


def _batch(world: World):
    return next(iter(world.batches(_visits(world))))[1]


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def test_off_by_default_and_validated() -> None:
    cfg = WorldConfig.preset("small")
    assert cfg.organic_popularity_weight == 0.0 and cfg.saturation == 0.0
    for name in KNOB:
        with pytest.raises(ValueError, match=name):
            WorldConfig.preset("small", **{name: -0.1})


def test_saturation_lowers_the_uplift_logit_by_kappa_times_popularity() -> None:
    off, on = (World(WorldConfig.preset("small", saturation=s), seed=4) for s in (0.0, 1.5))
    vb = _batch(off)
    T = off.entities.n_titles
    titles = np.tile(np.arange(T), (len(vb), 1))
    art = np.zeros_like(titles)
    state = off.initial_state()
    vf = off.dynamics.features(vb, state)
    _, up0, _ = off.dynamics.pair(vb, vf, state, titles, off.entities.art_offset[titles] + art)
    _, up1, _ = on.dynamics.pair(vb, vf, state, titles, on.entities.art_offset[titles] + art)
    ok = up0 > 0
    pop = off.dynamics.popularity(vb.day)
    got = _logit(up1[ok]) - _logit(up0[ok])
    np.testing.assert_allclose(got, np.broadcast_to(-1.5 * pop, up0.shape)[ok], atol=1e-8)


def test_organic_weight_concentrates_search_on_popular_titles() -> None:
    off, on = (World(WorldConfig.preset("small", organic_popularity_weight=w), seed=4)
               for w in (0.0, 2.0))
    vb = _batch(off)
    T = off.entities.n_titles
    titles = np.tile(np.arange(T), (len(vb), 1))
    p_off = off.organic_probability(vb, titles)
    p_on = on.organic_probability(vb, titles)
    # the search still ends in exactly one organic play with probability sigma_s(z)
    np.testing.assert_allclose(p_on.sum(axis=1), p_off.sum(axis=1), rtol=1e-9)
    pop = off.dynamics.popularity(vb.day)
    top = pop >= np.quantile(pop, 0.9)
    share = lambda p: p[:, top].sum() / p.sum()  # noqa: E731
    # seed 4: 6% -> 28% of the organic mass on the 10% most popular titles
    assert share(p_on) > 3 * share(p_off) and share(p_on) > share(p_off) + 0.15, (
        share(p_on), share(p_off))


def test_knob_in_the_logs_high_organic_titles_have_low_uplift() -> None:
    """Logged organic plays go to popular titles, while the true uplift of showing them falls:
    the correlation between a title's organic and page play rates turns negative."""
    world = World(WorldConfig.preset("small", **KNOB), seed=8)
    log = world.simulate(UniformPolicy(), n_visits=6_000, seed=8)
    T = world.entities.n_titles
    org = np.bincount(log.organic_title, minlength=T) / log.n_visits
    s = log.shown
    n = np.bincount(s.title, minlength=T)
    up = np.bincount(s.title, weights=s.uplift, minlength=T) / np.maximum(n, 1)
    seen = n > 50
    pop = world.dynamics.popularity(0)
    top = seen & (pop >= np.quantile(pop[seen], 0.9))
    assert org[top].sum() / org.sum() > 0.25  # 10% of titles take a quarter of organic plays
    assert up[top].mean() < 0.7 * up[seen & ~top].mean()
    assert np.corrcoef(org[seen], up[seen])[0, 1] < 0


@pytest.mark.parametrize("policy", [UniformPolicy(), PopularPolicy(epsilon=0.2)])
def test_exact_policy_value_matches_monte_carlo_with_the_knob(policy) -> None:
    world = World(WorldConfig.preset("small", **KNOB), seed=3)
    exact = world.policy_value(policy, n_visits=300, seed=2, method="exact")
    # monte carlo integrates outcomes exactly for each sampled page; its mean over pages must
    # agree with the exact marginal value within sampling error
    mc = world.policy_value(policy, n_visits=300, seed=2, method="monte_carlo")
    assert abs(exact.incremental_plays - mc.incremental_plays) < 4 * mc.incremental_plays_se
    assert exact.plays - exact.incremental_plays == pytest.approx(
        mc.plays - mc.incremental_plays, rel=1e-12)
