"""The exploring policy's propensities and the greedy feedback loop."""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.loop import DaySimulator, ExploringPolicy, PlayCountScorer
from reelpick.loop.pipeline import day_metrics
from reelpick.policies import GreedyPolicy, SoftmaxPolicy
from reelpick.world import World, WorldConfig


@pytest.fixture(scope="module")
def world():
    return World(WorldConfig.preset("small"), seed=3)


def test_exploring_propensities_are_exact(world):
    vb = world.make_visits(np.zeros(4000, int), world.config.start + 3600)
    eps = 0.3
    pol = ExploringPolicy(GreedyPolicy(), epsilon=eps)
    page = pol.choose(vb, np.random.default_rng(0))
    base = GreedyPolicy().pages(vb)
    A = vb.n_available()[:, None]
    expect = eps / A + (1 - eps) * (page.titles == base)
    assert np.allclose(page.propensity, expect)
    # frequency of the greedy title in slot 0 matches its propensity (4000 draws)
    hit = (page.titles[:, 0] == base[:, 0]).mean()
    p = eps / A[0, 0] + (1 - eps)
    assert abs(hit - p) < 4 * np.sqrt(p * (1 - p) / 4000)
    assert set(page.source) == {"explore", "greedy"}
    assert np.allclose(page.artwork_propensity * vb.catalog.n_variants[page.titles], 1.0)


def test_exploring_refuses_stochastic_bases(world):
    vb = world.make_visits([0, 1], world.config.start + 3600)
    with pytest.raises(ValueError, match="deterministic"):
        ExploringPolicy(SoftmaxPolicy(), epsilon=0.1).choose(vb, np.random.default_rng(0))
    with pytest.raises(ValueError, match="epsilon"):
        ExploringPolicy(GreedyPolicy(), epsilon=1.0)


def test_greedy_feedback_loop_never_widens_coverage():
    """No organic plays, fixed popularity, no new titles: the greedy recommender trained on its
    own logs can only re-show titles it showed on day 1, while exploration keeps widening."""
    cfg = WorldConfig.preset("small", search_rate=0.0, mood_search_rate=0.0,
                             new_release_boost=0.0, new_title_share=0.0)
    world = World(cfg, seed=5)
    shown, cover = [], {"greedy": [], "explore": []}
    for arm, eps in (("greedy", 0.0), ("explore", 0.2)):
        sim = DaySimulator(world, visits_per_day=300, days=6, seed=5)
        scorer = PlayCountScorer()
        base = GreedyPolicy(scorer)
        pol = base if eps == 0 else ExploringPolicy(base, eps)
        log = None
        for day in range(6):
            dl = sim.run_day(pol, day)
            cover[arm].append(day_metrics(world, dl)["coverage_shown"])
            if arm == "greedy":
                shown.append(set(np.unique(dl.log.shown.title)))
            from reelpick.loop import concat_logs
            log = dl.log if log is None else concat_logs([log, dl.log])
            scorer.fit(log, world.entities.genre_onehot, cfg.n_members)
    assert all(s <= shown[0] for s in shown[1:])
    assert max(cover["greedy"]) <= cover["greedy"][0] + 1e-12
    assert min(cover["explore"][1:]) > max(cover["greedy"])


def test_same_seed_same_visits(world):
    a = DaySimulator(world, visits_per_day=100, days=3, seed=1).visits(1)
    b = DaySimulator(world, visits_per_day=100, days=3, seed=1).visits(1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="day"):
        DaySimulator(world, visits_per_day=100, days=3, seed=1).run_day(GreedyPolicy(), 3)


def test_pool_exploring_propensities_are_exact(world):
    """Slot and page propensities of the candidate-pool logger match the frequencies of 6,000
    draws for one visit; without a pool the pool share is uniform."""
    from reelpick.loop import PoolExploringPolicy
    from reelpick.policies import PopularityScorer

    n = 6000
    vb = world.make_visits(np.zeros(n, int), world.config.start + 3600)
    cands = [GreedyPolicy(PopularityScorer(), name="pop"), GreedyPolicy(name="greedy2")]

    class Shifted:  # a third candidate: the popular page shifted by one slot
        name, version = "shifted", "v0"

        def choose(self, visits, rng):
            page = cands[0].choose(visits, rng)
            t = np.roll(page.titles, 1, axis=1)
            return type(page)(**{**page.__dict__, "titles": t})

    pol = PoolExploringPolicy(GreedyPolicy(name="base"), 0.1, 0.3, cands + [Shifted()])
    page = pol.choose(vb, np.random.default_rng(0))
    rec = pol.take_records()
    assert rec["pool"].shape == (n, 3, vb.n_slots)
    for k in range(3):
        target = rec["pool"][:, k]
        # page propensity: this candidate's page, or an identical one
        p = pol.page_propensity(target, rec["base"], rec["pool"])[0]
        freq = (page.titles == target).all(axis=1).mean()
        assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / n)
        # slot propensity of the candidate's title in slot 0
        ps = pol.slot_propensity(target, rec["base"], rec["pool"], rec["available"])[0, 0]
        f0 = (page.titles[:, 0] == target[:, 0]).mean()
        assert abs(f0 - ps) < 4 * np.sqrt(ps * (1 - ps) / n) + 1e-9
    assert np.allclose(page.propensity, pol.slot_propensity(page.titles, rec["base"],
                                                            rec["pool"], rec["available"]))
    assert {s.split(":")[0] for s in page.source} == {"explore", "pool", "base"}
    alone = PoolExploringPolicy(GreedyPolicy(name="base"), 0.1, 0.3)
    assert alone.shares == (pytest.approx(0.4), 0.0)
    page = alone.choose(vb, np.random.default_rng(1))
    assert abs((page.source == "explore").mean() - 0.4) < 0.03
    with pytest.raises(ValueError, match="epsilon"):
        PoolExploringPolicy(GreedyPolicy(), 0.5, 0.5)
