"""The off-policy estimator contract suite (:func:`reelpick.testing.check_estimator`) on every
estimator of :data:`reelpick.ope.ESTIMATORS`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from reelpick.ope import ESTIMATORS, IPS, SNIPS
from reelpick.testing import check_estimator, uniform_slate_log


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_estimator_meets_the_contract(name):
    check_estimator(ESTIMATORS[name]())


def test_the_uniform_log_has_the_stated_value():
    """IPS on a much longer log lands on ``value_per_round`` (the suite's truth is right)."""
    log = uniform_slate_log(60_000, seed=3)
    est = IPS().estimate_policy_value(log.feedback, log.action_dist)
    assert abs(est.value - log.value_per_round) < 3 * est.se
    assert log.value_per_slate == pytest.approx(3 * log.value_per_round)
    assert np.allclose(log.action_dist.sum(axis=1), 1.0)


@dataclass(frozen=True, kw_only=True)
class _NaiveMean(IPS):
    """Broken on purpose: the logged mean reward, whatever the target."""

    name = "naive"

    def round_stats(self, inp):
        return inp.feedback.reward, None


@dataclass(frozen=True, kw_only=True)
class _Unordered(SNIPS):
    """Broken on purpose: depends on the order of the rows."""

    name = "unordered"

    def round_stats(self, inp):
        stats, w = super().round_stats(inp)
        ramp = np.linspace(0.5, 1.5, inp.feedback.n_rounds)
        return tuple(c * ramp for c in stats), w


@pytest.mark.parametrize("estimator, message", [
    (_NaiveMean(), "the 99% interval .* misses the true value"),
    (_Unordered(), "reordering the rows changed the value"),
])
def test_the_suite_catches_broken_estimators(estimator, message):
    with pytest.raises(AssertionError, match=message):
        check_estimator(estimator)
