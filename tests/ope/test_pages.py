"""Page estimators (``reelpick.ope.pages``) against closed forms and simulated truth.

The synthetic logger mixes a base page, uniform pages and the page of a randomly drawn pool
candidate (as the loop's ``PoolExploringPolicy``), with exact propensities; rewards are drawn
from known per-slot probabilities, so every target's true value is known exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.ope.pages import examination_curve, slot_match, title_on_page, whole_page

T, S, K = 40, 6, 3
EU, EP = 0.1, 0.3


def _world(rng: np.random.Generator, n: int):
    """Visits with attractions theta (n, T), candidate pages (n, K, S), a base page (n, S)."""
    theta = rng.beta(1.0, 4.0, size=(n, T))
    pool = np.stack([np.stack([rng.permutation(T)[:S] for _ in range(n)]) for _ in range(K)],
                    axis=1)
    # candidates overlap: candidate 1 copies candidate 0's first three slots
    pool[:, 1, :3] = pool[:, 0, :3]
    for i in range(n):  # keep pages duplicate-free
        rest = [t for t in pool[i, 1, 3:] if t not in pool[i, 0, :3]]
        extra = [t for t in rng.permutation(T) if t not in pool[i, 0, :3] and t not in rest]
        pool[i, 1, 3:] = (rest + extra)[:3]
    base = pool[:, 2].copy()
    base[:, ::-1] = pool[:, 2]  # the shipped page: candidate 2's titles in reverse order
    return theta, pool, base


def _log(rng, theta, pool, base, e):
    n = theta.shape[0]
    u = rng.random(n)
    pick = rng.integers(0, K, n)
    titles = base.copy()
    uni = u < EU
    for i in np.flatnonzero(uni):
        titles[i] = rng.permutation(T)[:S]
    fp = (u >= EU) & (u < EU + EP)
    titles[fp] = pool[fp, pick[fp]]
    p = np.take_along_axis(theta, titles, axis=1) * e[None, :]
    plays = (rng.random(p.shape) < p).astype(float)
    return titles, plays, fp


def _slot_prop(titles, base, pool):
    return EU / T + (1 - EU - EP) * (titles == base) + EP * (pool == titles[:, None]).mean(1)


def _page_prop(page, base, pool):
    return ((1 - EU - EP) * (page == base).all(1)
            + EP * (pool == page[:, None]).all(2).mean(1))


E = 0.9 ** np.arange(S)


def test_slot_match_is_unbiased_and_covers() -> None:
    rng = np.random.default_rng(0)
    theta, pool, base = _world(rng, 150)
    target = pool[:, 1]
    truth = (np.take_along_axis(theta, target, axis=1) * E).sum(1).mean()
    mu = _slot_prop(target, base, pool)
    ips, dr, cover = [], [], 0
    q = np.take_along_axis(theta, target, axis=1) * E * 0.8  # a biased reward model
    for _ in range(300):
        titles, plays, _ = _log(rng, theta, pool, base, E)
        est = slot_match(titles, plays, target, mu, q_target=q)
        ips.append(est["ips"].value)
        dr.append(est["dr"].value)
        cover += est["dr"].lo <= truth <= est["dr"].hi
    for vals in (ips, dr):
        assert abs(np.mean(vals) - truth) < 4 * np.std(vals) / np.sqrt(len(vals))
    assert 0.88 <= cover / 300 <= 0.99
    assert np.std(dr) < np.std(ips)  # the model (even biased) removes variance


def test_whole_page_handles_non_additive_rewards_and_replay() -> None:
    """Reward = 1 if any slot is played (not additive): whole-page estimators stay unbiased."""
    rng = np.random.default_rng(1)
    theta, pool, base = _world(rng, 150)
    target = pool[:, 0]
    p_none = np.prod(1 - np.take_along_axis(theta, target, axis=1) * E, axis=1)
    truth = float((1 - p_none).mean())
    mu = _page_prop(target, base, pool)
    cond = (pool == target[:, None]).all(2).mean(1)
    snips, replay = [], []
    for _ in range(300):
        titles, plays, fp = _log(rng, theta, pool, base, E)
        reward = plays.max(axis=1)
        match = (titles == target).all(1)
        snips.append(whole_page(reward, match, mu)["snips"].value)
        replay.append(whole_page(reward[fp], match[fp], cond[fp])["snips"].value)
    for vals in (snips, replay):
        assert abs(np.mean(vals) - truth) < 0.02  # SNIPS: O(1/n) bias only


def test_title_on_page_is_unbiased_under_pbm() -> None:
    """Target = candidate 0's titles in another order: slot matches are rare, on-page matches
    are not; under the position-based model the rescaled estimator is unbiased."""
    rng = np.random.default_rng(2)
    theta, pool, base = _world(rng, 150)
    target = pool[:, 0, ::-1]
    truth = (np.take_along_axis(theta, target, axis=1) * E).sum(1).mean()
    on_page = (EU * S / T + (1 - EU - EP) * (target[:, :, None] == base[:, None, :]).any(2)
               + EP * (target[:, :, None, None] == pool[:, None, :, :]).any(3).mean(2))
    vals = []
    for _ in range(300):
        titles, plays, _ = _log(rng, theta, pool, base, E)
        vals.append(title_on_page(titles, plays, target, on_page, examination=E)["ips"].value)
    assert abs(np.mean(vals) - truth) < 4 * np.std(vals) / np.sqrt(len(vals))
    slot_hits = (titles == target).mean()
    assert slot_hits < 0.2  # the exact-slot estimator would see few matches here


def test_on_policy_closed_form() -> None:
    """Target = logged page with propensity 1: IPS = SNIPS = the mean reward, CI = the sample
    mean's normal interval."""
    rng = np.random.default_rng(3)
    titles = np.stack([rng.permutation(T)[:S] for _ in range(50)])
    plays = (rng.random((50, S)) < 0.3).astype(float)
    est = slot_match(titles, plays, titles, np.ones((50, S)))
    per = plays.sum(1)
    assert est["ips"].value == pytest.approx(per.mean())
    assert est["snips"].value == pytest.approx(per.mean())
    assert est["ips"].se == pytest.approx(per.std(ddof=1) / np.sqrt(50))
    assert est["ips"].ess == pytest.approx(50.0)
    assert est["ips"].matched == pytest.approx(S)


def test_examination_curve_recovers_geometric_decay() -> None:
    rng = np.random.default_rng(4)
    R, P = 3, 5
    e = np.outer(0.8 ** np.arange(R), 0.9 ** np.arange(P))
    n = 200_000
    row, pos = rng.integers(0, R, n), rng.integers(0, P, n)
    theta = rng.beta(2, 8, n)
    play = (rng.random(n) < e[row, pos] * theta).astype(float)
    est = examination_curve(row, pos, play, R, P)
    assert est.max() == pytest.approx(1.0)
    np.testing.assert_allclose(est, e, rtol=0.06)


def test_validation() -> None:
    t = np.array([[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="propensity"):
        slot_match(t, np.ones((2, 2)), t, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        slot_match(t, np.ones((2, 3)), t, np.ones((2, 2)))
    with pytest.raises(ValueError, match="propensity"):
        whole_page(np.ones(2), np.array([True, False]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="examination"):
        title_on_page(t, np.ones((2, 2)), t, np.ones((2, 2)), examination=np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="play"):
        examination_curve(np.zeros(3, int), np.zeros(3, int), np.zeros(3), 1, 1)
