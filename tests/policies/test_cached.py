"""CachedPagePolicy: the base policy at the start of the visit's bucket, remembered."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from reelpick.policies import CachedPagePolicy, PopularPolicy
from reelpick.world import World, WorldConfig


class _Counting:
    """A deterministic base whose page depends on the time (to see the bucket rule)."""

    name, version = "counting", "v1"

    def __init__(self) -> None:
        self.calls = 0
        self.inner = PopularPolicy()

    def choose(self, visits, rng):
        self.calls += len(visits)
        page = self.inner.choose(visits, rng)
        shift = (visits.timestamp // 60 % 3)[:, None]  # changes every minute
        titles = np.where(shift == 0, page.titles, page.titles[:, ::-1])
        return dataclasses.replace(page, titles=titles)


@pytest.fixture(scope="module")
def world():
    return World(WorldConfig.preset("small"), seed=4)


def test_cached_pages_equal_the_base_at_the_bucket_start(world) -> None:
    base = _Counting()
    cached = CachedPagePolicy(base, bucket_seconds=3600)
    t0 = world.config.start + 3 * 86_400 + 7 * 3600
    vb = world.make_visits(np.arange(12), t0 + 125)    # 2 minutes into the hour
    a = cached.choose(vb, np.random.default_rng(0))
    at_start = dataclasses.replace(vb, timestamp=vb.timestamp // 3600 * 3600)
    np.testing.assert_array_equal(a.titles, _Counting().choose(at_start, None).titles)
    # later in the same hour: served from the cache, the base is not called again
    later = dataclasses.replace(vb, timestamp=vb.timestamp + 1000)
    b = cached.choose(later, np.random.default_rng(1))
    np.testing.assert_array_equal(a.titles, b.titles)
    assert base.calls == 12 and cached.hits == 12 and cached.misses == 12
    # the next hour is a new key
    cached.choose(dataclasses.replace(vb, timestamp=vb.timestamp + 3600),
                  np.random.default_rng(2))
    assert base.calls == 24


def test_cache_evicts_beyond_its_size(world) -> None:
    base = _Counting()
    cached = CachedPagePolicy(base, max_entries=5)
    vb = world.make_visits(np.arange(8), world.config.start + 3600)
    cached.choose(vb, np.random.default_rng(0))
    assert len(cached._pages) == 5
    cached.choose(vb.subset(np.array([7])), np.random.default_rng(0))   # newest: kept
    assert base.calls == 8
    cached.choose(vb.subset(np.array([0])), np.random.default_rng(0))   # oldest: evicted
    assert base.calls == 9
    with pytest.raises(ValueError, match="max_entries"):
        CachedPagePolicy(base, max_entries=0)
