"""Estimators: identities, ground truth, intervals, diagnostics and invalid inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from reelpick.ope import (
    DM,
    DR,
    ESTIMATORS,
    IPS,
    SNDR,
    SNIPS,
    ClippedIPS,
    ExtremeWeightWarning,
    LoggedFeedback,
    PositionBasedIPS,
    PseudoInverse,
    Replay,
    SupportWarning,
    SwitchDR,
    evaluate_policy,
)
from tests.ope._synthetic import Bandit, target_policy

SEED = 20261127


@pytest.fixture(scope="module")
def bandit() -> Bandit:
    return Bandit.make(seed=3)


@pytest.fixture(scope="module")
def logged(bandit):
    fb, x = bandit.log(5000, seed=SEED)
    return fb, x


def _target(bandit, x, kind="greedy"):
    return target_policy(bandit, kind)[x]


# --- identities -----------------------------------------------------------------------------

def test_dr_with_zero_reward_model_is_ips(bandit, logged):
    fb, x = logged
    pi = _target(bandit, x)
    res = evaluate_policy(fb, pi, [IPS(), DR(), SwitchDR(tau=1e12)], np.zeros(pi.shape))
    assert res["dr"].value == pytest.approx(res["ips"].value, rel=1e-12)
    assert res["switch_dr"].value == pytest.approx(res["ips"].value, rel=1e-12)
    assert res["dr"].se == pytest.approx(res["ips"].se, rel=1e-9)


def test_dm_is_mean_of_reward_model_under_target(bandit, logged, rng):
    fb, x = logged
    pi = _target(bandit, x)
    q = rng.random(pi.shape)
    est = DM().estimate_policy_value(fb, pi, q)
    assert est.value == pytest.approx(float(np.mean(np.sum(pi * q, axis=1))), rel=1e-12)
    assert est.ess == fb.n_rounds


def test_dr_with_perfect_reward_model_is_dm(bandit, logged):
    """A model that predicts every observed reward exactly leaves no residual: DR == DM."""
    fb, x = logged
    pi = _target(bandit, x)
    q = np.tile(bandit.mu[x].mean(axis=1, keepdims=True), (1, bandit.n_actions))
    q[np.arange(fb.n_rounds), fb.action] = fb.reward
    res = evaluate_policy(fb, pi, [DM(), DR(), SNDR()], q)
    assert res["dr"].value == pytest.approx(res["dm"].value, rel=1e-12)
    assert res["sndr"].value == pytest.approx(res["dm"].value, rel=1e-12)


def test_snips_within_reward_range_and_equals_ips_when_weights_average_one(rng):
    n = 400
    fb = LoggedFeedback(action=rng.integers(0, 3, n), reward=rng.uniform(-2.0, 5.0, n),
                        pscore=rng.uniform(0.05, 1.0, n), n_actions=3)
    for _ in range(20):
        pi = rng.dirichlet(np.full(3, 0.3), size=n)
        v = SNIPS().estimate_policy_value(fb, pi).value
        assert fb.reward.min() <= v <= fb.reward.max()
    # a target whose weights average exactly one: IPS == SNIPS
    fb1 = LoggedFeedback(action=[0, 1, 0, 1], reward=[1.0, 3.0, 2.0, 0.0], pscore=[0.5] * 4,
                         n_actions=2)
    pi = np.array([[0.25, 0.75], [0.75, 0.25], [0.75, 0.25], [0.25, 0.75]])
    res = evaluate_policy(fb1, pi, [IPS(), SNIPS()])
    assert res["snips"].value == pytest.approx(res["ips"].value, rel=1e-12)


def test_clipped_ips_with_huge_threshold_is_ips(bandit, logged):
    fb, x = logged
    pi = _target(bandit, x)
    res = evaluate_policy(fb, pi, [IPS(), ClippedIPS(max_weight=1e12)])
    assert res["clipped_ips"].value == pytest.approx(res["ips"].value, rel=1e-12)
    small = ClippedIPS(max_weight=0.5).estimate_policy_value(fb, pi)
    assert small.value <= res["ips"].value


def test_switch_dr_with_tiny_threshold_is_dm(bandit, logged, rng):
    fb, x = logged
    pi = _target(bandit, x)
    q = rng.random(pi.shape)
    res = evaluate_policy(fb, pi, [DM(), SwitchDR(tau=1e-12)], q)
    assert res["switch_dr"].value == pytest.approx(res["dm"].value, rel=1e-12)


def test_replay_on_uniform_logs_matches_obp_definition(rng):
    n = 3000
    a = rng.integers(0, 4, n)
    r = (rng.random(n) < 0.2 + 0.1 * a).astype(float)
    fb = LoggedFeedback(action=a, reward=r, pscore=np.full(n, 0.25), n_actions=4)
    pi = np.eye(4)[rng.integers(0, 4, n)]
    match = pi[np.arange(n), a] == 1
    est = Replay().estimate_policy_value(fb, pi)
    assert est.value == pytest.approx(r[match].mean(), rel=1e-12)
    # on uniform logs, replay == SNIPS for any target
    pi2 = rng.dirichlet(np.ones(4), size=n)
    res = evaluate_policy(fb, pi2, [Replay(), SNIPS()])
    assert res["replay"].value == pytest.approx(res["snips"].value, rel=1e-12)


def test_constant_target_broadcast_equals_materialised(bandit, logged):
    fb, _ = logged
    p = np.array([0.1, 0.2, 0.3, 0.4])
    q = np.broadcast_to(np.array([0.3, 0.1, 0.5, 0.2]), (fb.n_rounds, 4))
    ests = [IPS(), SNIPS(), DM(), DR(), SNDR(), SwitchDR(tau=3.0)]
    a = evaluate_policy(fb, np.broadcast_to(p, (fb.n_rounds, 4)), ests, q)
    b = evaluate_policy(fb, np.tile(p, (fb.n_rounds, 1)), ests, np.ascontiguousarray(q))
    for name in a:
        assert a[name].value == pytest.approx(b[name].value, rel=1e-12)
        assert a[name].ci_high == pytest.approx(b[name].ci_high, rel=1e-9)


# --- ground truth ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["greedy", "uniform", "anti"])
def test_ips_and_dr_unbiased_with_calibrated_intervals(bandit, kind):
    """Across seeds the true value falls inside 95% intervals about 95% of the time, and the
    mean estimate is within 3 standard errors of the truth."""
    truth = bandit.value(target_policy(bandit, kind))
    n_seeds, hits, values = 200, {"ips": 0, "dr": 0}, {"ips": [], "dr": []}
    q_model = np.clip(bandit.mu + 0.1, 0, 1)   # a biased reward model: DR must still be unbiased
    for s in range(n_seeds):
        fb, x = bandit.log(800, seed=SEED + s)
        pi = target_policy(bandit, kind)[x]
        res = evaluate_policy(fb, pi, [IPS(), DR()], q_model[x])
        for k in hits:
            hits[k] += res[k].ci_low <= truth <= res[k].ci_high
            values[k].append(res[k].value)
    for k in hits:
        coverage = hits[k] / n_seeds
        assert 0.89 <= coverage <= 0.99, (k, coverage)
        v = np.asarray(values[k])
        assert abs(v.mean() - truth) < 3 * v.std() / math.sqrt(n_seeds), k


def test_bootstrap_interval_close_to_analytic_and_seeded(bandit, logged):
    fb, x = logged
    pi = _target(bandit, x)
    ests = [IPS(), SNIPS()]
    an = evaluate_policy(fb, pi, ests)
    b1 = evaluate_policy(fb, pi, ests, ci="bootstrap", n_bootstrap=400, random_state=1)
    b2 = evaluate_policy(fb, pi, ests, ci="bootstrap", n_bootstrap=400, random_state=1)
    b3 = evaluate_policy(fb, pi, ests, ci="bootstrap", n_bootstrap=400, random_state=2)
    for k in an:
        assert b1[k].ci_method == "bootstrap"
        assert (b1[k].ci_low, b1[k].ci_high) == (b2[k].ci_low, b2[k].ci_high)
        assert b1[k].ci_low != b3[k].ci_low
        width = an[k].ci_high - an[k].ci_low
        assert b1[k].ci_high - b1[k].ci_low == pytest.approx(width, rel=0.2)
        assert b1[k].ci_low < an[k].value < b1[k].ci_high


# --- diagnostics ----------------------------------------------------------------------------

def test_diagnostics_and_ess(bandit, logged):
    fb, x = logged
    pi = _target(bandit, x)
    est = IPS().estimate_policy_value(fb, pi)
    w = pi[np.arange(fb.n_rounds), fb.action] / fb.pscore
    d = est.diagnostics
    assert d.pscore_min == fb.pscore.min() and d.pscore_max == fb.pscore.max()
    assert d.weight_mean == pytest.approx(w.mean())
    assert d.weight_std == pytest.approx(w.std())
    assert d.weight_max == pytest.approx(w.max())
    assert est.ess == pytest.approx(w.sum() ** 2 / (w ** 2).sum())
    assert d.unsupported_mass == 0.0
    assert set(est.to_dict()) >= {"value", "ci_low", "ci_high", "ess", "diagnostics"}


def test_warns_loudly_about_mass_outside_support():
    fb = LoggedFeedback(action=[0, 1, 0, 1], reward=[1.0, 0.0, 1.0, 0.0], pscore=[0.5] * 4,
                        n_actions=3)
    pi = np.tile([0.2, 0.2, 0.6], (4, 1))          # action 2 is never logged
    with pytest.warns(SupportWarning, match="60.00% of the target"):
        est = IPS().estimate_policy_value(fb, pi)
    assert est.diagnostics.unsupported_mass == pytest.approx(0.6)
    logging = np.tile([0.5, 0.5, 0.0], (4, 1))
    with pytest.warns(SupportWarning, match="logging_dist"):
        IPS().estimate_policy_value(fb, pi, logging_dist=logging)


def test_warns_about_tiny_ess(rng):
    n = 1000
    pscore = np.full(n, 0.5)
    pscore[0] = 1e-6
    fb = LoggedFeedback(action=np.zeros(n, int), reward=np.ones(n), pscore=pscore, n_actions=2)
    with pytest.warns(ExtremeWeightWarning, match="effective sample size"):
        IPS().estimate_policy_value(fb, np.tile([1.0, 0.0], (n, 1)))


def test_no_warning_on_healthy_log(bandit, logged):
    fb, x = logged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        IPS().estimate_policy_value(fb, _target(bandit, x))


# --- ranked lists ---------------------------------------------------------------------------

def _slate_log(rng, n_slates, n_items=5, length=3, theta=None):
    """Uniform logging with repeats (a product over slots), additive position-based clicks."""
    theta = rng.uniform(0.05, 0.5, n_items) if theta is None else theta
    exam = np.array([1.0, 0.6, 0.3])[:length]
    items = rng.integers(0, n_items, (n_slates, length))
    clicks = (rng.random((n_slates, length)) < theta[items] * exam).astype(float)
    fb = LoggedFeedback(action=items.ravel(), reward=clicks.ravel(),
                        pscore=np.full(items.size, 1.0 / n_items), n_actions=n_items,
                        position=np.tile(np.arange(length), n_slates),
                        slate_id=np.repeat(np.arange(n_slates), length))
    return fb, theta, exam


def test_slate_estimators_unbiased_for_a_deterministic_ranking(rng):
    theta = np.array([0.5, 0.4, 0.3, 0.2, 0.1])
    target = np.zeros((5, 3))
    target[[4, 0, 2], [0, 1, 2]] = 1.0                     # shows items 4, 0, 2
    exam = np.array([1.0, 0.6, 0.3])
    truth = float(theta[4] * exam[0] + theta[0] * exam[1] + theta[2] * exam[2])
    vals = {"pb_ips": [], "pseudo_inverse": []}
    for s in range(30):
        fb, _, _ = _slate_log(np.random.default_rng(SEED + s), 4000, theta=theta)
        pi = np.broadcast_to(target, (fb.n_rounds, 5, 3))
        res = evaluate_policy(fb, pi, [PositionBasedIPS(), PseudoInverse()])
        for k in vals:
            vals[k].append(res[k].value)
            assert res[k].n_rounds == 4000
    for k, v in vals.items():
        v = np.asarray(v)
        assert abs(v.mean() - truth) < 4 * v.std() / math.sqrt(len(v)), k


def test_slate_estimators_without_slate_id_are_ips(rng):
    fb, _, _ = _slate_log(rng, 300)
    from dataclasses import replace

    fb = replace(fb, slate_id=None)
    pi = np.broadcast_to(rng.dirichlet(np.ones(5), size=3).T, (fb.n_rounds, 5, 3))
    res = evaluate_policy(fb, pi, [IPS(), PositionBasedIPS(), PseudoInverse()])
    assert res["pb_ips"].value == pytest.approx(res["ips"].value, rel=1e-12)
    assert res["pseudo_inverse"].value == pytest.approx(res["ips"].value, rel=1e-12)


# --- invalid inputs -------------------------------------------------------------------------

GOOD = dict(action=[0, 1], reward=[1.0, 0.0], pscore=[0.5, 0.5], n_actions=2)


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"action": [[0, 1]]}, ValueError, "action must be 1-D"),
    ({"action": [0, 2]}, ValueError, r"action must lie in \[0, n_actions=2\)"),
    ({"action": [0.5, 1]}, ValueError, "action must hold integers"),
    ({"action": []}, ValueError, "at least one round"),
    ({"reward": [1.0]}, ValueError, "reward has 1 rounds but action has 2"),
    ({"reward": [1.0, np.nan]}, ValueError, "reward must be finite"),
    ({"reward": ["a", "b"]}, ValueError, "reward must be numeric"),
    ({"pscore": [0.0, 0.5]}, ValueError, r"pscore must lie in \(0, 1\]"),
    ({"pscore": [0.5, 1.5]}, ValueError, r"pscore must lie in \(0, 1\]"),
    ({"n_actions": 0}, ValueError, "n_actions must be >= 1"),
    ({"n_actions": 2.0}, TypeError, "n_actions must be an int"),
    ({"position": [0, -1]}, ValueError, "position must be >= 0"),
    ({"position": [0, 3], "n_positions": 2}, ValueError, "n_positions=2 but position reaches 3"),
    ({"n_positions": 3}, ValueError, "n_positions > 1 needs a position array"),
    ({"context": np.zeros((3, 2))}, ValueError, "context must have shape"),
    ({"context": [[np.inf], [0.0]]}, ValueError, "context must be finite"),
    ({"slate_id": [0]}, ValueError, "slate_id has 1 rounds"),
])
def test_invalid_feedback(change, error, message):
    with pytest.raises(error, match=message):
        LoggedFeedback(**{**GOOD, **change})


@pytest.mark.parametrize(("estimator", "action_dist", "reward_hat", "message"), [
    (IPS(), np.ones((2, 2)), None, "must sum to 1 over actions"),
    (IPS(), np.array([[1.5, -0.5], [0.5, 0.5]]), None, "finite probabilities >= 0"),
    (IPS(), np.full((3, 2), 0.5), None, r"shape \(n_rounds=2, n_actions=2"),
    (IPS(), np.full((2, 3), 1 / 3), None, r"shape \(n_rounds=2, n_actions=2"),
    (IPS(), np.full(2, 0.5), None, "must be 2-D"),
    (IPS(), np.full((2, 2, 2), 0.5), None, "3-D action_dist needs feedback.position"),
    (DR(), np.full((2, 2), 0.5), None, "dr needs reward_hat"),
    (DM(), np.full((2, 2), 0.5), np.zeros((2, 3)), "reward_hat must have the shape"),
    (DM(), np.full((2, 2), 0.5), np.full((2, 2), np.nan), "reward_hat must be finite"),
    (Replay(), np.full((2, 2), 0.5), None, None),
])
def test_invalid_estimator_inputs(estimator, action_dist, reward_hat, message):
    fb = LoggedFeedback(**GOOD)
    if message is None:  # valid: a smoke row
        estimator.estimate_policy_value(fb, action_dist, reward_hat)
        return
    with pytest.raises(ValueError, match=message):
        estimator.estimate_policy_value(fb, action_dist, reward_hat)


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda: ClippedIPS(max_weight=0), ValueError, "max_weight must be > 0"),
    (lambda: ClippedIPS(max_weight="x"), TypeError, "max_weight must be a number"),
    (lambda: SwitchDR(tau=-1.0), ValueError, "tau must be > 0"),
    (lambda: DR(max_weight=0.0), ValueError, "max_weight must be > 0"),
    (lambda: IPS(1.0), TypeError, "positional"),
])
def test_invalid_hyperparameters(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ci": "wald"}, "ci must be 'analytic' or 'bootstrap'"),
    ({"alpha": 1.5}, r"alpha must lie in \(0, 1\)"),
    ({"ci": "bootstrap", "n_bootstrap": 1}, "n_bootstrap must be >= 2"),
])
def test_invalid_interval_options(kwargs, message):
    fb = LoggedFeedback(**GOOD)
    with pytest.raises(ValueError, match=message):
        IPS().estimate_policy_value(fb, np.full((2, 2), 0.5), **kwargs)


def test_missing_pscore_and_non_uniform_replay():
    fb = LoggedFeedback(action=[0, 1], reward=[1.0, 0.0], pscore=None, n_actions=2)
    with pytest.raises(ValueError, match="ips needs logged propensities"):
        IPS().estimate_policy_value(fb, np.full((2, 2), 0.5))
    DM().estimate_policy_value(fb, np.full((2, 2), 0.5), np.zeros((2, 2)))  # DM needs none
    fb2 = LoggedFeedback(action=[0, 1], reward=[1.0, 0.0], pscore=[0.5, 0.2], n_actions=2)
    with pytest.raises(ValueError, match="replay needs uniformly random logs"):
        Replay().estimate_policy_value(fb2, np.full((2, 2), 0.5))


def test_registry_names_match():
    assert {n: c.name for n, c in ESTIMATORS.items()} == {n: n for n in ESTIMATORS}
    assert {"replay", "ips", "clipped_ips", "snips", "dm", "dr", "sndr", "switch_dr",
            "pb_ips", "pseudo_inverse"} == set(ESTIMATORS)


@pytest.mark.parametrize("ci", ["analytic", "bootstrap"])
def test_cache_blocks_do_not_change_results(bandit, logged, monkeypatch, ci):
    """update() cuts large batches into cache-sized blocks; any block size gives the same."""
    import reelpick.ope.base as base

    fb, x = logged
    pi = _target(bandit, x)
    q = np.clip(bandit.mu[x] + 0.05, 0, 1)
    ests = [IPS(), ClippedIPS(max_weight=2.0), SNIPS(), DM(), DR(), SNDR(), SwitchDR(tau=2.0)]
    kw = dict(ci=ci, n_bootstrap=100, random_state=1)
    whole = evaluate_policy(fb, pi, ests, q, **kw)
    monkeypatch.setattr(base, "_BLOCK_CELLS", 4 * 777)
    monkeypatch.setattr(base, "_MIN_BLOCK_ROWS", 1)
    blocked = evaluate_policy(fb, pi, ests, q, **kw)
    for name, est in whole.items():
        b = blocked[name]
        for field in ("value", "ci_low", "ci_high", "se", "ess"):
            assert getattr(b, field) == pytest.approx(getattr(est, field), rel=1e-10,
                                                      abs=1e-13), (name, field)
    db, dw = blocked["ips"].diagnostics.to_dict(), whole["ips"].diagnostics.to_dict()
    assert db == pytest.approx(dw, rel=1e-12)
