"""The simulator: schema-valid logs, reproducibility, and its own ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelpick.data import IMPRESSIONS, INTERACTIONS, MEMBERS, OUTCOMES, TITLES, join_outcomes
from reelpick.data.loaders import load_table
from reelpick.policies import PopularPolicy, UniformPolicy
from reelpick.world import PageBatch, PromotionPolicy, World, WorldConfig

#: Member state has no effect (no short-term interest, no novelty): the truth is static.
STATIC = dict(recent_weight=0.0, seen_penalty=0.0)


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldConfig.preset("small"), seed=11)


@pytest.fixture(scope="module")
def log(world: World):
    return world.simulate(UniformPolicy(), n_visits=600, seed=3)


def test_logs_validate(world: World, log, tmp_path) -> None:
    imp = IMPRESSIONS.validate(log.impressions(), source="impressions")
    out = OUTCOMES.validate(log.outcomes(), source="outcomes")
    inter = INTERACTIONS.validate(log.interactions(), source="interactions")
    titles = TITLES.validate(world.titles(), source="titles")
    members = MEMBERS.validate(world.members(), source="members")
    assert len(imp) == 600 * world.config.n_slots == len(out)
    assert set(imp["title_id"]) <= set(titles["title_id"])
    assert set(inter["member_id"]) <= set(members["member_id"])
    assert set(imp["artwork_id"]) <= set(world.artworks()["artwork_id"])
    joined = join_outcomes(imp, out)
    assert joined["play"].sum() == (inter["source"] == "page").sum()
    assert "mood" not in imp.columns  # the confounder is hidden
    assert inter["timestamp"].is_monotonic_increasing
    paths = log.write(tmp_path)
    for name, schema in (("impressions", IMPRESSIONS), ("outcomes", OUTCOMES),
                         ("interactions", INTERACTIONS)):
        back = load_table(paths[name], schema)
        assert len(back) == len({"impressions": imp, "outcomes": out,
                                 "interactions": inter}[name])


def test_same_seed_same_world_and_logs() -> None:
    cfg = WorldConfig.preset("small")
    a = World(cfg, seed=5).simulate(PromotionPolicy(), 300)
    b = World(cfg, seed=5).simulate(PromotionPolicy(), 300)
    for name in ("impressions", "outcomes", "interactions", "truth"):
        pd.testing.assert_frame_equal(getattr(a, name)(), getattr(b, name)())
    pd.testing.assert_frame_equal(World(cfg, seed=5).titles(), World(cfg, seed=5).titles())
    c = World(cfg, seed=6).simulate(PromotionPolicy(), 300)
    assert not a.impressions()["title_id"].equals(c.impressions()["title_id"])


def test_uniform_propensity_is_one_over_available(world: World, log) -> None:
    s, v = log.shown, log.visits
    day = np.floor_divide(v.timestamp - world.config.start, 86_400)
    n_avail = np.array([world.dynamics.available(int(d))[c].sum()
                        for d, c in zip(day, v.country)])
    np.testing.assert_allclose(s.propensity, 1.0 / n_avail[s.visit])
    nv = world.entities.n_variants[s.title]
    np.testing.assert_allclose(s.artwork_propensity, 1.0 / nv)


def test_titles_not_shown_before_release(world: World) -> None:
    log = world.simulate(UniformPolicy(), n_visits=2000, seed=1)
    s = log.shown
    day = np.floor_divide(log.visits.timestamp[s.visit] - world.config.start, 86_400)
    assert (world.entities.release_day[s.title] <= day).all()
    assert (world.entities.release_day > 0).any()  # new titles do arrive
    new = world.entities.release_day[s.title] > 0
    assert new.any()


def test_truth_identities(world: World) -> None:
    vb = world.make_visits([0, 1, 2, 3], world.config.start + 3 * 86_400 + 40_000,
                           device=["tv", "mobile", "web", "tablet"], mood=[0, 1, 0, 1])
    T = world.config.n_titles
    titles = np.tile(np.arange(T), (4, 1))
    p0 = world.organic_probability(vb, titles)
    rate = np.where(vb.mood > 0, world.config.mood_search_rate, world.config.search_rate)
    np.testing.assert_allclose(p0.sum(axis=1), rate)  # organic mass = search rate
    p = world.play_probability(vb, titles, row=1, position=2)
    up = world.uplift(vb, titles, row=1, position=2)
    np.testing.assert_allclose(p - p0, up)
    assert (up >= 0).all() and (p <= 1).all()
    avail = vb.available[vb.country]
    assert (p[~avail] == 0).all() and (p[avail] > 0).all()
    e = world.dynamics.examination(1, 2)
    np.testing.assert_allclose(world.uplift(vb, titles) * e, up)


def test_logged_truth_matches_truth_api() -> None:
    world = World(WorldConfig.preset("small", **STATIC), seed=2)
    log = world.simulate(UniformPolicy(), n_visits=300, seed=4)
    s, v = log.shown, log.visits
    day = np.floor_divide(v.timestamp - world.config.start, 86_400)
    first = np.flatnonzero(day == day[0])
    vb = world.make_visits(v.member[first], v.timestamp[first], device=v.device[first],
                           hour=v.hour[first], day_of_week=v.day_of_week[first],
                           mood=v.mood[first])
    sel = np.isin(s.visit, first)
    S = world.config.n_slots
    titles = s.title[sel].reshape(-1, S)
    variants = log.artwork_rank[s.artwork[sel]].reshape(-1, S)
    rows, pos = s.row_index[sel].reshape(-1, S), s.position[sel].reshape(-1, S)
    p = world.play_probability(vb, titles, variants, row=rows, position=pos)
    np.testing.assert_allclose(p.ravel(), s.p_play[sel])


def _z(observed: float, expected: float, se: float) -> float:
    return abs(observed - expected) / se


@pytest.mark.parametrize("policy", [UniformPolicy(), PromotionPolicy(), PopularPolicy(0.3)],
                         ids=lambda p: p.name)
def test_logged_play_rate_inside_ci_of_exact_value(policy) -> None:
    world = World(WorldConfig.preset("small", **STATIC), seed=7)
    n = 6000
    log = world.simulate(policy, n_visits=n, seed=8)
    value = world.policy_value(policy, n_visits=n, seed=8)  # same seed: the same visits
    assert value.method == "exact"
    plays = (np.bincount(log.shown.visit, weights=log.shown.play, minlength=n)
             + np.bincount(log.organic_visit, minlength=n))
    assert _z(plays.mean(), value.plays, plays.std() / np.sqrt(n)) < 4
    watch = (np.bincount(log.shown.visit, weights=log.shown.watch_seconds, minlength=n)
             + np.bincount(log.organic_visit, weights=log.organic_watch, minlength=n))
    assert _z(watch.mean(), value.watch_seconds, watch.std() / np.sqrt(n)) < 4
    page_plays = np.bincount(log.shown.visit, weights=log.shown.play - log.shown.p_organic,
                             minlength=n)
    assert _z(page_plays.mean(), value.incremental_plays, page_plays.std() / np.sqrt(n)) < 4


@pytest.mark.parametrize("policy", [UniformPolicy(), PromotionPolicy(), PopularPolicy(0.2)],
                         ids=lambda p: p.name)
def test_exact_value_agrees_with_monte_carlo(world: World, policy) -> None:
    exact = world.policy_value(policy, n_visits=1500, seed=9, method="exact")
    mc = world.policy_value(policy, n_visits=1500, seed=9, method="monte_carlo")
    assert (exact.method, mc.method) == ("exact", "monte_carlo")
    for f in ("plays", "watch_seconds", "incremental_plays"):
        assert _z(getattr(mc, f), getattr(exact, f), getattr(mc, f + "_se")) < 4, f


def test_deterministic_policy_exact_equals_monte_carlo(world: World) -> None:
    exact = world.policy_value(PopularPolicy(), n_visits=500, seed=1, method="exact")
    mc = world.policy_value(PopularPolicy(), n_visits=500, seed=1, method="monte_carlo")
    assert exact.plays == pytest.approx(mc.plays, rel=1e-10)
    assert exact.watch_seconds == pytest.approx(mc.watch_seconds, rel=1e-10)


def test_empty_page_has_no_incremental_plays(world: World) -> None:
    class Nothing:
        name = "nothing"

        def choose(self, visits, rng):
            t = np.full((len(visits), visits.n_slots), -1)
            return PageBatch.grid(t, n_rows=visits.n_rows, n_positions=visits.n_positions,
                                  propensity=np.ones(t.shape))

    v = world.policy_value(Nothing(), n_visits=400)
    assert v.incremental_plays == 0 and v.method == "monte_carlo"
    assert 0 < v.plays <= world.config.mood_search_rate
    log = world.simulate(Nothing(), n_visits=400)
    assert log.n_impressions == 0 and log.organic_title.size > 0


@pytest.mark.parametrize("call, error, match", [
    (lambda w: w.simulate(object(), 10), TypeError, "lacks name/choose"),
    (lambda w: w.simulate(UniformPolicy(), 0), ValueError, "n_visits: must be a positive"),
    (lambda w: w.policy_value(UniformPolicy(), 10, method="guess"), ValueError, "method: use"),
    (lambda w: w.make_visits([10**6], w.config.start), ValueError, "member: indices"),
    (lambda w: w.make_visits([0, 1], [w.config.start, w.config.start + 2 * 86_400]),
     ValueError, "one simulated day"),
    (lambda w: w.make_visits([0], w.config.start, device="phone"), ValueError,
     "device: unknown device 'phone'"),
])
def test_invalid_calls(world: World, call, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call(world)


def test_policy_value_exact_needs_marginals(world: World) -> None:
    class OnlyChoose:
        name = "x"

        def choose(self, visits, rng):
            return UniformPolicy().choose(visits, rng)

    with pytest.raises(ValueError, match="has no marginals"):
        world.policy_value(OnlyChoose(), 10, method="exact")


def test_bad_page_is_rejected(world: World) -> None:
    class Duplicates:
        name = "dup"

        def choose(self, visits, rng):
            page = UniformPolicy().choose(visits, rng)
            t = page.titles.copy()
            t[:, 1] = t[:, 0]
            return PageBatch.grid(t, n_rows=visits.n_rows, n_positions=visits.n_positions,
                                  propensity=page.propensity)

    with pytest.raises(ValueError, match="appears twice"):
        world.simulate(Duplicates(), 10)
