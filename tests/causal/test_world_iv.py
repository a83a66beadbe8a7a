"""On the simulated world with its confounder on: naive OLS is >= 30% off the true effect of an
impression, 2SLS with the logged experiment cell (and SGD-IV) recover it with CIs covering it."""

from __future__ import annotations

import pytest

from reelpick.causal import ols, two_stage_least_squares
from reelpick.causal.instruments import Logs, visit_design
from reelpick.causal.sgd import SGDIV, ArrayBatches
from reelpick.world import PromotionPolicy, World, WorldConfig

CFG = dict(uplift_bias=-4.0, recent_weight=0.0, seen_penalty=0.0, drift=0.0)


@pytest.fixture(scope="module")
def world_design():
    world = World(WorldConfig.preset("small", **CFG), seed=1)
    log = world.simulate(PromotionPolicy(), n_visits=40_000, seed=101)
    ser = world.entities.is_series
    tau = float(log.shown.uplift[ser[log.shown.title]].mean())  # truth per series impression
    return visit_design(Logs.from_simulation(log, world.titles()), treat="kind:series"), tau


def test_naive_ols_is_off_and_2sls_covers_the_truth(world_design) -> None:
    des, tau = world_design
    y, d, z, w = des.frames()
    naive = ols(y, d, w, cov_type="CR1", clusters=des.clusters)
    iv = two_stage_least_squares(y, d, z, w, cov_type="CR1", clusters=des.clusters)
    assert naive.params["exposure"] / tau - 1 >= 0.30
    ci = iv.conf_int().loc["exposure"]
    assert ci["lower"] < tau < ci["upper"], (iv.params, tau)
    assert abs(iv.params["exposure"] / tau - 1) < 0.15
    assert iv.first_stage.f_stat["exposure"] > 100


def test_sgd_iv_on_world_logs_agrees_with_2sls(world_design) -> None:
    des, tau = world_design
    y, d, z, w = des.frames()
    ref = two_stage_least_squares(y, d, z, w, cov_type="HC0")
    # context dummies as streamed controls (id effects: tests/causal/test_sgd.py)
    src = ArrayBatches(des.y, des.endog, des.instruments, dense=des.controls, batch_size=4096)
    res = SGDIV(epochs=3, cov_type="HC0").fit(src).result_
    # SGD stops after 3 epochs: agreement to a fraction of the standard error
    assert abs(res.params["d0"] - ref.params["exposure"]) < 0.5 * ref.std_errors["exposure"]
    ci = res.conf_int().loc["d0"]
    assert ci["lower"] < tau < ci["upper"]
