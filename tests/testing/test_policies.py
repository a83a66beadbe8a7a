"""The page-policy contract suite (:func:`reelpick.testing.check_policy`) on every policy of
:mod:`reelpick.policies`, on the simulator's visits and on toy visits."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace

import numpy as np
import pytest

import reelpick.policies as P
from reelpick.decision import PageBatch, Policy, VisitBatch
from reelpick.testing import check_policy, toy_visits
from reelpick.world import World, WorldConfig

WORLD = World(WorldConfig.preset("small"), seed=1)

#: Policies that need arguments, built from the number of titles (everything else in
#: reelpick.policies is built with its defaults).
WITH_ARGUMENTS = {
    "LinUCBPolicy": lambda T: P.LinUCBPolicy(n_titles=T),
    "ThompsonSamplingPolicy": lambda T: P.ThompsonSamplingPolicy(n_titles=T),
    "ExploringPolicy": lambda T: P.ExploringPolicy(P.GreedyPolicy(), 0.2),
    "CachedPagePolicy": lambda T: P.CachedPagePolicy(P.GreedyPolicy()),
    "PoolExploringPolicy": lambda T: P.PoolExploringPolicy(
        P.GreedyPolicy(), 0.1, 0.2, pool=(P.PopularPolicy(), P.GreedyPolicy(name="greedy-2"))),
    "GreedyWinnerPolicy": lambda T: P.GreedyWinnerPolicy(
        (("pop", P.PopularityScorer()), ("pop-2", P.PopularityScorer()))),
}


def _policy_classes() -> list[str]:
    return sorted(n for n in P.__all__ if inspect.isclass(getattr(P, n))
                  and callable(getattr(getattr(P, n), "choose", None)))


def _default_constructible() -> list[str]:
    out = []
    for n in _policy_classes():
        try:
            getattr(P, n)()
        except TypeError:
            continue
        out.append(n)
    return out


def make_policy(name: str, n_titles: int) -> Policy:
    if name in WITH_ARGUMENTS:
        return WITH_ARGUMENTS[name](n_titles)
    return getattr(P, name)()


@pytest.fixture(scope="module", params=["world", "toy"])
def visits(request) -> VisitBatch:
    if request.param == "world":
        return WORLD.make_visits(np.arange(16), WORLD.config.start + 5 * 3600,
                                 device=["tv", "mobile"] * 8)
    return toy_visits(12, 40, seed=4)


def test_every_policy_class_is_covered():
    missing = set(_policy_classes()) - set(_default_constructible()) - set(WITH_ARGUMENTS)
    assert not missing, f"policies the suite cannot build: {sorted(missing)}"
    assert {"UniformPolicy", "GreedyPolicy", "SoftmaxPolicy"} <= set(_default_constructible())


@pytest.mark.parametrize("name", _policy_classes())
def test_every_policy_meets_the_contract(name, visits):
    check_policy(make_policy(name, visits.catalog.n_titles), visits)


def test_a_learned_bandit_meets_the_contract():
    log = WORLD.simulate(P.UniformPolicy(), n_visits=300, seed=2)
    for cls in (P.LinUCBPolicy, P.ThompsonSamplingPolicy):
        policy = cls(n_titles=WORLD.config.n_titles).fit_pages(log.logged_pages())
        check_policy(policy, WORLD.make_visits(np.arange(8), WORLD.config.start + 3600))


def test_pool_exploring_with_a_stochastic_pool(visits):
    """A stochastic pool policy (softmax): the logged propensities are the marginals over its
    draws too (tests/policies/test_pool_exploring.py checks them against frequencies), here
    with 4,000 draws (a sharper check than the default 400)."""
    check_policy(P.PoolExploringPolicy(P.GreedyPolicy(), 0.1, 0.2, pool=(P.SoftmaxPolicy(),)),
                 visits, n_draws=4000)


@dataclass(frozen=True)
class _ClaimsCertainty:
    """Broken on purpose: uniform pages logged with propensity 1."""

    name: str = "claims-certainty"

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        page = P.UniformPolicy().choose(visits, rng)
        return replace(page, propensity=np.ones(page.titles.shape))


@dataclass(frozen=True)
class _ShowsUnavailable:
    """Broken on purpose: puts a title unavailable in the first visit's country on its page."""

    name: str = "shows-unavailable"

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        page = P.UniformPolicy().choose(visits, rng)
        titles = page.titles.copy()
        titles[0, 0] = np.flatnonzero(~visits.available[visits.country[0]])[0]
        return replace(page, titles=titles)


@dataclass(frozen=True)
class _UnseededRandom:
    """Broken on purpose: draws from its own generator, not the one it is given."""

    name: str = "unseeded"

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        return P.UniformPolicy().choose(visits, np.random.default_rng())


@pytest.mark.parametrize("policy, message", [
    (_ClaimsCertainty(), "shown on .* pages for one visit, logged propensity 1.000"),
    (_ShowsUnavailable(), "invalid page: .*not available"),
    (_UnseededRandom(), "same seed gave different pages"),
])
def test_the_suite_catches_broken_policies(policy, message):
    visits = toy_visits(12, 40, seed=4)
    with pytest.raises(AssertionError, match=f"^{policy.name}: .*{message}"):
        check_policy(policy, visits)


@dataclass(frozen=True)
class _Understates:
    """Broken on purpose: an exploring policy that logs 80% of its true propensities."""

    name: str = "understates"

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        page = P.ExploringPolicy(P.GreedyPolicy(), 0.2).choose(visits, rng)
        return replace(page, propensity=0.8 * page.propensity)


def test_the_frequency_check_passes_exact_policies_for_every_seed():
    """The check is an exact binomial test per (title, slot) with a family-wise level of 1e-4,
    so exact policies pass on every seed at the default 400 draws (with 5 normal standard
    errors, rare pairs failed 1-3 seeds in 30), and an understatement by 20% is caught."""
    visits = WORLD.make_visits(np.arange(16), WORLD.config.start + 5 * 3600,
                               device=["tv", "mobile"] * 8)
    exact = (P.ExploringPolicy(P.GreedyPolicy(), 0.2),
             P.PoolExploringPolicy(P.GreedyPolicy(), 0.1, 0.2,
                                   pool=(P.PopularPolicy(), P.GreedyPolicy(name="greedy-2"))),
             P.PoolExploringPolicy(P.GreedyPolicy(), 0.1, 0.2, pool=(P.SoftmaxPolicy(),)))
    for seed in range(30):
        for policy in exact:
            check_policy(policy, visits, seed=seed)
        with pytest.raises(AssertionError, match="propensities are not exact"):
            check_policy(_Understates(), visits, seed=seed)
