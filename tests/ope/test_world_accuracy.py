"""Off-policy estimates on the simulated world against its exact truth (a fast version of the
accuracy section of ``benchmarks/bench_ope.py``, sharing its helpers: the estimand is stated in
``benchmarks/_world_sim.py``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from benchmarks import _world_sim as ws
from reelpick.ope import DM, DR, IPS, SNIPS, ExtremeWeightWarning

# Simulates, computes exact marginals and truth: about 5 s of CPU, so part of the default run.


@pytest.fixture(scope="module")
def world_run():
    world = ws.stationary_world("small", seed=3)
    targets = ws.target_policies(world, quick=True)
    log = world.simulate(ws.logging_policy(0.5), n_visits=3000, seed=21)
    fb = ws.slot_feedback(world, log)
    q = ws.slot_reward_hat(fb, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtremeWeightWarning)
        res = ws.evaluate_targets(world, log, targets, [IPS(), SNIPS(), DM(), DR()],
                                  reward_hat=q, fb=fb, alpha=0.01)
    truth = {k: ws.true_value(world, p, n_visits=2000)[0] for k, p in targets.items()}
    return res, truth


def test_truth_inside_ips_and_dr_intervals(world_run):
    res, truth = world_run
    for name, value in truth.items():
        for est in ("ips", "dr"):
            r = res[name][est]
            assert r.ci_low <= value <= r.ci_high, (name, est, value, r.value, r.ci_low)


def test_dr_ranks_targets_like_the_truth(world_run):
    res, truth = world_run
    names = list(truth)
    rho = spearmanr([res[k]["dr"].value for k in names], [truth[k] for k in names])[0]
    assert rho >= 0.9


def test_snips_stays_in_reward_range_and_dm_is_biased_without_support(world_run):
    res, truth = world_run
    for r in res.values():
        assert 0.0 <= r["snips"].value <= 1.0
    # the reward model has no member tastes: DM misses the oracle's personalisation by far
    assert res["greedy oracle"]["dm"].value < 0.8 * truth["greedy oracle"]
    assert np.isfinite(res["greedy oracle"]["dr"].se)
