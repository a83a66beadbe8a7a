"""Replay and OPE of the take fraction: a toy case with a known answer, identities with
reelpick.ope, and agreement with the online truth in the world."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from reelpick.artwork import (
    ArtworkRows,
    WithArtwork,
    evaluate_artwork_policy,
    model_reward_hat,
    replay_take_fraction,
)
from reelpick.ope import Replay
from reelpick.policies import UniformPolicy
from reelpick.world.truth import online_take_fraction


def toy_rows(n_variants=(2, 4), reps=3):
    """Per member and replicate: 4 impressions of title 0 (variants 0,1,0,1) and 4 of title 1
    (variants 0..3); rewards r(m, t, a) = [a == m % n_t] (member m likes variant m % n_t)."""
    cols = {k: [] for k in ("visit", "member", "title", "variant", "n_variants", "play")}
    v = 0
    for m in range(4):
        for _ in range(reps):
            for t, nv in enumerate(n_variants):
                for j in range(4):
                    a = j % nv
                    for k, x in zip(cols, (v, m, t, a, nv, int(a == m % nv))):
                        cols[k].append(x)
            v += 1
    c = {k: np.array(x) for k, x in cols.items()}
    n = c["visit"].size
    off = np.concatenate([[0], np.cumsum(n_variants)])
    return ArtworkRows(visit=c["visit"], member=c["member"], device=np.zeros(n, int),
                       hour=np.zeros(n, int), day_of_week=np.zeros(n, int), title=c["title"],
                       artwork=off[c["title"]] + c["variant"], variant=c["variant"],
                       n_variants=c["n_variants"], slot=np.zeros(n, int), play=c["play"],
                       watch_seconds=np.zeros(n), pscore=1.0 / c["n_variants"],
                       title_propensity=np.ones(n))


def target_for(rows, choose):
    V = int(rows.n_variants.max())
    p = np.zeros((len(rows), V))
    p[np.arange(len(rows)), choose(rows)] = 1.0
    return p


def test_replay_toy_known_answer():
    rows = toy_rows()
    # the personalised policy shows every member the variant they like: take fraction 1
    perfect = target_for(rows, lambda r: r.member % r.n_variants)
    assert replay_take_fraction(rows, perfect).value == pytest.approx(1.0)
    # always variant 0: liked by members 0, 2 on title 0 (1/2) and member 0 on title 1 (1/4);
    # both titles have 4 impressions per member -> (1/2 + 1/4) / 2
    first = target_for(rows, lambda r: np.zeros(len(r), int))
    assert replay_take_fraction(rows, first).value == pytest.approx(0.375)
    # the unweighted match rate would over-count the 2-variant title: (2*1/2 + 1*1/4) / 3
    match = rows.variant == 0
    assert rows.play[match].mean() == pytest.approx(1.25 / 3)


def test_replay_equals_ope_replay_with_equal_variant_counts():
    rows = toy_rows(n_variants=(3, 3))
    p = target_for(rows, lambda r: (r.member + r.title) % 3)
    ours = replay_take_fraction(rows, p)
    theirs = Replay().estimate_policy_value(rows.feedback(), p)
    assert ours.value == pytest.approx(theirs.value, abs=1e-12)
    assert ours.estimator == "replay"


def test_replay_of_the_logger_is_its_play_rate(explore_rows, fitted):
    p = fitted["uniform"].row_probabilities(explore_rows)
    assert replay_take_fraction(explore_rows, p).value == pytest.approx(explore_rows.play.mean())


def test_replay_and_dr_within_ci_of_online_truth(fitted, world, catalog):
    """Evaluate on a fresh image-explore log; truth = the policy run online on the same
    visits (frozen, history from training)."""
    from reelpick.artwork import image_explore
    log = world.simulate(image_explore(UniformPolicy(), seed=5), 4_000, seed=77)
    rows = ArtworkRows.from_pages(log.logged_pages(), catalog.art_offset,
                                  world.members()["member_id"])
    pol = fitted["egreedy"]
    p = pol.row_probabilities(rows)
    res = evaluate_artwork_policy(rows, p, ["replay", "ips", "dr"],
                                  reward_hat=model_reward_hat(fitted["thompson"], rows))
    truth = online_take_fraction(world.simulate(WithArtwork(UniformPolicy(), pol), 4_000,
                                                seed=77))
    for name, est in res.items():
        assert abs(est.value - truth.value) < 4 * np.hypot(est.se, truth.se), name
    assert res["replay"].value == pytest.approx(
        evaluate_artwork_policy(rows, p, ["snips"])["snips"].value)
    # DR is no worse than IPS here (the reward model explains some variance)
    assert res["dr"].se <= res["ips"].se * 1.05


def sticky_rows(rng, n_members=60, n_titles=15, n_variants=4, repeats=8):
    """Image-explore rows with sticky images: each (member, title) pair gets one uniformly
    random variant and is shown ``repeats`` times; P(play) = p[m, t, a]."""
    m, t = np.meshgrid(np.arange(n_members), np.arange(n_titles), indexing="ij")
    m, t = m.ravel(), t.ravel()
    a = rng.integers(0, n_variants, m.size)
    m, t, a = (np.repeat(x, repeats) for x in (m, t, a))
    n = m.size
    return ArtworkRows(visit=np.arange(n), member=m, device=np.zeros(n, int),
                       hour=np.zeros(n, int), day_of_week=np.zeros(n, int), title=t,
                       artwork=t * n_variants + a, variant=a,
                       n_variants=np.full(n, n_variants), slot=np.zeros(n, int),
                       play=np.zeros(n, np.int8), watch_seconds=np.zeros(n),
                       pscore=np.full(n, 1.0 / n_variants), title_propensity=np.ones(n))


def test_replay_interval_covers_with_sticky_images():
    """Rows of one (member, title) share their sticky image, so they are matched or not
    together: an interval that treats rows as independent is too narrow; the default one,
    clustered by member x title, covers the same-log truth at its nominal rate."""
    rng = np.random.default_rng(0)
    p_play = rng.uniform(0.0, 1.0, (60, 15, 4))         # very different pairs: strong effect
    hits = {"member_title": 0, "row": 0}
    reps = 300
    for _ in range(reps):
        rows = sticky_rows(rng)
        rows = dataclasses.replace(
            rows, play=(rng.random(len(rows)) < p_play[rows.member, rows.title,
                                                       rows.variant]).astype(np.int8))
        target = target_for(rows, lambda r: (r.member + r.title) % 4)
        truth = p_play[rows.member, rows.title, (rows.member + rows.title) % 4].mean()
        for by in hits:
            est = replay_take_fraction(rows, target, cluster=by)
            hits[by] += est.ci_low <= truth <= est.ci_high
    assert hits["member_title"] / reps >= 0.92, hits
    assert hits["row"] / reps <= 0.85, hits


def test_clusters_group_the_right_rows():
    rows = toy_rows()
    mt = rows.clusters("member_title")
    same = (rows.member[:, None] == rows.member) & (rows.title[:, None] == rows.title)
    assert np.array_equal(mt[:, None] == mt, same)
    assert rows.clusters("row") is None
    np.testing.assert_array_equal(rows.clusters("visit"), rows.visit)
    assert rows.feedback(cluster="member").slate_id is not None
    p = target_for(rows, lambda r: r.member % r.n_variants)
    a = replay_take_fraction(rows, p, cluster="row")
    b = replay_take_fraction(rows, p)
    assert a.value == b.value
