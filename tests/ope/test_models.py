"""Reward models (cross-fitting), propensity estimation and policy learning from logs."""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.errors import NotFittedError
from reelpick.ope import (
    DR,
    IPS,
    LinearRewardModel,
    LinearSoftmaxPolicy,
    LoggedFeedback,
    MultinomialLogit,
    cross_fit_reward_model,
    estimate_pscore,
    evaluate_policy,
)
from tests.ope._synthetic import Bandit, target_policy


@pytest.fixture(scope="module")
def logged():
    bandit = Bandit.make(seed=9, skew=1.0)
    fb, x = bandit.log(6000, seed=1)
    return bandit, fb, x


def test_cross_fit_reward_model_recovers_means(logged):
    bandit, fb, x = logged
    q = cross_fit_reward_model(fb, n_folds=3, random_state=0)
    assert q.shape == (fb.n_rounds, bandit.n_actions)
    # the contexts are one-hot, so action x context interactions can fit mu exactly
    assert np.abs(q - bandit.mu[x]).mean() < 0.05


def test_cross_fitting_is_out_of_fold():
    """A memorising model would predict each round's own reward; out-of-fold it cannot."""
    rng = np.random.default_rng(0)
    n = 400
    fb = LoggedFeedback(action=np.zeros(n, int), reward=(rng.random(n) < 0.5).astype(float),
                        pscore=np.ones(n), n_actions=1, context=rng.normal(size=(n, 50)))
    q = cross_fit_reward_model(fb, l2=1e-6, random_state=0)[:, 0]
    in_fold = LinearRewardModel(1, l2=1e-6).fit(fb).predict(fb.context, n)[:, 0, 0]
    err_out = np.mean((q - fb.reward) ** 2)
    err_in = np.mean((in_fold - fb.reward) ** 2)
    assert err_in < err_out


def test_reward_model_with_positions_shape():
    rng = np.random.default_rng(0)
    n = 600
    fb = LoggedFeedback(action=rng.integers(0, 4, n), reward=rng.normal(size=n),
                        pscore=np.full(n, 0.25), n_actions=4, position=rng.integers(0, 3, n),
                        context=rng.normal(size=(n, 2)))
    q = cross_fit_reward_model(fb, random_state=0)
    assert q.shape == (n, 4, 3)


def test_estimated_pscore_gives_near_unbiased_ips(logged):
    bandit, fb, x = logged
    from dataclasses import replace

    ps = estimate_pscore(fb, random_state=0)
    np.testing.assert_allclose(ps, fb.pscore, atol=0.05)
    pi = target_policy(bandit, "greedy")[x]
    est = IPS().estimate_policy_value(replace(fb, pscore=ps), pi)
    truth = bandit.value(target_policy(bandit, "greedy"))
    assert est.ci_low - 0.01 <= truth <= est.ci_high + 0.01


def test_multinomial_logit_requires_fit():
    with pytest.raises(NotFittedError, match="not fitted"):
        MultinomialLogit(3).predict_proba(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        MultinomialLogit(1)


def test_policy_learning_beats_logging_policy(logged):
    bandit, fb, x = logged
    best = bandit.value(np.eye(bandit.n_actions)[bandit.mu.argmax(axis=1)])
    logging_value = bandit.value(bandit.logging)
    for objective, penalty in (("ips", 0.0), ("snips", 0.0), ("snips", 1.0)):
        pol = LinearSoftmaxPolicy(bandit.n_actions, objective=objective,
                                  variance_penalty=penalty, l2=0.1, random_state=0).fit(fb)
        eye = np.eye(bandit.mu.shape[0])
        learnt = bandit.value(pol.action_dist(eye))
        assert learnt > logging_value + 0.5 * (best - logging_value), (objective, penalty)
    # and the off-policy estimate of the learnt policy (on fresh logs) is close to the truth
    fb2, x2 = bandit.log(6000, seed=2)
    res = evaluate_policy(fb2, pol.action_dist(fb2.context), [DR()],
                          cross_fit_reward_model(fb2, random_state=0))
    assert res["dr"].ci_low - 0.02 <= learnt <= res["dr"].ci_high + 0.02
    assert pol.rank(np.eye(5), 2).shape == (5, 2)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"objective": "dr"}, "objective must be"),
    ({"max_weight": 0.0}, "max_weight must be > 0"),
    ({"variance_penalty": -1.0}, "variance_penalty must be >= 0"),
    ({"n_actions": 1}, "n_actions must be >= 2"),
])
def test_policy_invalid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LinearSoftmaxPolicy(**{"n_actions": 3, **kwargs})
