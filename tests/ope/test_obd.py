"""Open Bandit Dataset: loader, the exact BTS distribution, and obp as a correctness oracle."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from reelpick.ope import DM, DR, IPS, SNDR, SNIPS, SupportWarning, SwitchDR, evaluate_policy
from reelpick.ope._obd_prior import BTS_PRIOR
from reelpick.ope.obd import bts_action_dist, bts_action_dist_mc, load_obd, obd_bts_action_dist
from reelpick.ope.reward_model import cross_fit_reward_model


@pytest.mark.parametrize("campaign", ["all", "men", "women"])
def test_bts_action_dist_is_a_distribution(campaign):
    p = obd_bts_action_dist(campaign)
    assert p.shape == (len(BTS_PRIOR[campaign]["alpha"]), 3)
    np.testing.assert_allclose(p.sum(axis=0), 1.0, atol=1e-9)
    assert np.all(p >= 0) and np.all(p.sum(axis=1) <= 1 + 1e-9)
    # more quadrature nodes change nothing
    prior = BTS_PRIOR[campaign]
    fine = bts_action_dist(np.array(prior["alpha"], float), np.array(prior["beta"], float),
                           n_nodes=16)
    np.testing.assert_allclose(p, fine, atol=1e-11)


def test_bts_exact_matches_monte_carlo_within_error():
    prior = BTS_PRIOR["men"]
    exact = obd_bts_action_dist("men")
    n_sim = 100_000
    mc = bts_action_dist_mc(prior["alpha"], prior["beta"], 3, n_sim=n_sim, random_state=7)
    sd = np.sqrt(exact * (1 - exact) / n_sim)
    assert np.all(np.abs(mc - exact) <= 5 * sd + 2e-5)


def test_bts_closed_form_two_arms():
    # P(Beta(a,1) > Beta(1,b)) has closed forms; two arms, one slot each ordering
    p = bts_action_dist([3.0, 1.0], [1.0, 1.0], len_list=2)
    np.testing.assert_allclose(p[:, 0], [0.75, 0.25], atol=1e-12)   # P(U^(1/3) > U) = 3/4
    np.testing.assert_allclose(p[:, 1], [0.25, 0.75], atol=1e-12)


@pytest.mark.parametrize(("args", "message"), [
    (([1.0, 1.0], [1.0]), "1-D of one length"),
    (([1.0, 0.0], [1.0, 1.0]), "must be > 0"),
    (([1.0, 1.0], [1.0, 1.0], 3), "len_list must lie in"),
])
def test_bts_invalid(args, message):
    with pytest.raises(ValueError, match=message):
        bts_action_dist(*args)


@pytest.mark.data
def test_load_obd(obd_dir):
    log = load_obd(obd_dir, "bts", "men")
    fb = log.feedback
    assert (fb.n_rounds, fb.n_actions, fb.n_positions) == (10_000, 34, 3)
    assert fb.context is not None and fb.context.shape[0] == 10_000
    assert log.action_context.shape == (34, 4)
    assert fb.reward.sum() == 69
    with pytest.raises(ValueError, match="campaign must be"):
        load_obd(obd_dir, "bts", "kids")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_obd(obd_dir / "nowhere", "bts", "men")


def _obp_feedback(obd_dir, behavior):
    obp_dataset = pytest.importorskip("obp.dataset")

    class OBD(obp_dataset.OpenBanditDataset):
        def pre_process(self):  # obp's item encoding breaks on pandas 3; context as obp's
            user_cols = self.data.columns.str.contains("user_feature")
            self.context = pd.get_dummies(self.data.loc[:, user_cols], drop_first=True).values
            self.action_context = None

    return OBD(behavior_policy=behavior, campaign="all",
               data_path=obd_dir).obtain_batch_bandit_feedback()


@pytest.mark.data
@pytest.mark.parametrize(("behavior", "target"), [("random", "bts"), ("bts", "random")])
def test_matches_obp_on_identical_inputs(obd_dir, behavior, target):
    """IPS, SNIPS, DM, DR, SNDR and Switch-DR equal obp 0.5.7's to 1e-9 on the OBD sample."""
    obp_ope = pytest.importorskip("obp.ope")
    bf = _obp_feedback(obd_dir, behavior)
    fb = load_obd(obd_dir, behavior, "all").feedback
    for key in ("action", "position", "reward", "pscore", "context"):
        np.testing.assert_array_equal(np.asarray(bf[key], float), getattr(fb, key))
    p = obd_bts_action_dist("all") if target == "bts" else np.full((80, 3), 1 / 80)
    dist = np.broadcast_to(p, (fb.n_rounds, 80, 3))
    q = cross_fit_reward_model(fb, random_state=0)
    with warnings.catch_warnings():  # bts logs miss 0.4% of (item, position) pairs
        warnings.simplefilter("ignore", SupportWarning)
        ours = evaluate_policy(fb, dist, [IPS(), SNIPS(), DM(), DR(), SNDR(), SwitchDR(tau=50.0)],
                               q)
    common = dict(reward=bf["reward"], action=bf["action"], position=bf["position"],
                  pscore=bf["pscore"], action_dist=np.ascontiguousarray(dist))
    theirs = {
        "ips": obp_ope.InverseProbabilityWeighting().estimate_policy_value(**common),
        "snips": obp_ope.SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(
            **common),
        "dm": obp_ope.DirectMethod().estimate_policy_value(
            position=bf["position"], action_dist=common["action_dist"],
            estimated_rewards_by_reg_model=q),
        "dr": obp_ope.DoublyRobust().estimate_policy_value(
            **common, estimated_rewards_by_reg_model=q),
        "sndr": obp_ope.SelfNormalizedDoublyRobust().estimate_policy_value(
            **common, estimated_rewards_by_reg_model=q),
        "switch_dr": obp_ope.SwitchDoublyRobust(lambda_=50.0).estimate_policy_value(
            **common, estimated_rewards_by_reg_model=q),
    }
    for name, value in theirs.items():
        assert ours[name].value == pytest.approx(value, abs=1e-9, rel=1e-9), name
