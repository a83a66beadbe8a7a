"""Credit assignment: the play is credited to the image given the shown title; the title
decision (titles, slots, title propensities) is untouched by any image policy."""

from __future__ import annotations

import numpy as np

from reelpick.artwork import (
    ArtworkRows,
    LinUCBArtwork,
    WithArtwork,
    evaluate_artwork_policy,
    image_explore,
)
from reelpick.ope import IPS, LoggedFeedback
from reelpick.policies import PopularPolicy, UniformPolicy
from reelpick.world.truth import online_take_fraction


def test_wrapper_keeps_the_title_decision(fitted, world):
    vb = world.make_visits(np.arange(20), world.config.start + 86_400 + 3600)
    base = UniformPolicy(artwork="random").choose(vb, np.random.default_rng(5))
    page = WithArtwork(UniformPolicy(artwork="random"), fitted["thompson"]).choose(
        vb, np.random.default_rng(5))
    np.testing.assert_array_equal(page.titles, base.titles)
    np.testing.assert_array_equal(page.propensity, base.propensity)
    assert page.row_labels == base.row_labels
    m0 = UniformPolicy().marginals(vb)
    m1 = WithArtwork(UniformPolicy(), fitted["thompson"]).marginals(vb)
    np.testing.assert_array_equal(m0.title_slot, m1.title_slot)


def test_title_rows_identical_whatever_the_image_policy(world, catalog, explore_rows):
    """Same seed, two image policies that use no randomness: every title-level column the
    ranker learns from (title, slot, title propensity) is identical; only images differ."""
    lin = LinUCBArtwork(catalog, world.config.n_members, alpha=0.0).fit(explore_rows)
    a = world.simulate(image_explore(UniformPolicy(artwork="first"), seed=2), 400, seed=8)
    b = world.simulate(WithArtwork(UniformPolicy(artwork="first"), lin), 400, seed=8)
    for col in ("visit", "slot", "title", "propensity"):
        np.testing.assert_array_equal(getattr(a.shown, col), getattr(b.shown, col))
    assert (a.shown.artwork != b.shown.artwork).any()


def test_rows_carry_the_artwork_propensity_only(world, catalog):
    log = world.simulate(image_explore(PopularPolicy(epsilon=0.3)), 300, seed=4)
    rows = ArtworkRows.from_pages(log.logged_pages(), catalog.art_offset,
                                  world.members()["member_id"])
    np.testing.assert_array_equal(rows.pscore, log.shown.artwork_propensity)
    np.testing.assert_array_equal(rows.title_propensity, log.shown.propensity)
    assert len(rows) == log.n_impressions                       # one row per impression
    # organic plays of titles not on the page are nobody's image's doing
    n_plays = len(log.interactions())
    assert rows.play.sum() == log.shown.play.sum() < n_plays


def test_ips_with_image_weights_recovers_the_online_take_fraction(fitted, world, catalog):
    """Logged under a non-uniform title policy: weighting by the image propensity alone
    estimates the new image policy's take fraction; multiplying in the title propensity (crediting
    the title choice) does not."""
    title_policy = PopularPolicy(epsilon=0.3)
    log = world.simulate(image_explore(title_policy, seed=3), 3_000, seed=31)
    rows = ArtworkRows.from_pages(log.logged_pages(), catalog.art_offset,
                                  world.members()["member_id"])
    target = fitted["egreedy"]
    p = target.row_probabilities(rows)
    est = evaluate_artwork_policy(rows, p, ["ips"])["ips"]
    truth = online_take_fraction(world.simulate(WithArtwork(title_policy, target), 3_000,
                                                seed=31))
    assert abs(est.value - truth.value) < 4 * np.hypot(est.se, truth.se)
    wrong = LoggedFeedback(action=rows.variant, reward=rows.play.astype(float),
                           pscore=rows.pscore * rows.title_propensity, n_actions=p.shape[1])
    bad = IPS().estimate_policy_value(wrong, p)
    assert bad.value > 3 * truth.value
