"""Many policies as Ray tasks: the same values and logs as running them one by one."""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.distributed.simulate import simulate_many
from reelpick.policies import EpsilonGreedyPolicy, PopularPolicy, UniformPolicy
from reelpick.world import World, WorldConfig


@pytest.fixture(scope="module")
def world():
    return World(WorldConfig.preset("small"), seed=2)


def _policies():
    return {"uniform": UniformPolicy(), "popular": PopularPolicy(),
            "eps": EpsilonGreedyPolicy()}


def test_ray_tasks_equal_local_runs(world, ray_cluster):
    kw = dict(value_visits=150, simulate_visits=120, seed=5)
    local = simulate_many(world, _policies(), **kw)
    ray_ = simulate_many(world, _policies(), backend="ray", num_workers=2, **kw)
    assert [r.name for r in ray_] == ["uniform", "popular", "eps"]
    for a, b in zip(local, ray_):
        assert a.value == b.value  # every float, bit for bit
        assert a.n_impressions == b.n_impressions
        for f in ("title", "play", "propensity", "watch_seconds"):
            np.testing.assert_array_equal(getattr(a.log.shown, f), getattr(b.log.shown, f))
        np.testing.assert_array_equal(a.log.organic_title, b.log.organic_title)
    # and equal to calling the world directly
    assert local[1].value == world.policy_value(PopularPolicy(), 150, seed=5)


def test_logs_written_per_policy(world, tmp_path):
    runs = simulate_many(world, [UniformPolicy()], value_visits=None, simulate_visits=50,
                         out=tmp_path)
    assert runs[0].log is None and runs[0].value is None
    assert (tmp_path / "uniform" / "impressions.parquet").exists()
    assert runs[0].summary()["n_impressions"] == 50 * world.config.n_slots


def test_errors(world):
    with pytest.raises(ValueError, match="unique"):
        simulate_many(world, [UniformPolicy(), UniformPolicy()])
    with pytest.raises(ValueError, match="value_visits"):
        simulate_many(world, [UniformPolicy()], value_visits=None)
    with pytest.raises(TypeError, match="Policy"):
        simulate_many(world, {"x": object()})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="backend"):
        simulate_many(world, [UniformPolicy()], backend="threads")
