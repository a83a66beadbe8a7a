"""One contract suite run on every basic policy, plus their specific propensities."""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.policies import PopularPolicy, UniformPolicy, sample_uniform_pages
from reelpick.world import ExactPolicy, Policy, PromotionPolicy, World, WorldConfig

POLICIES = [UniformPolicy(), UniformPolicy(artwork="first"), PopularPolicy(),
            PopularPolicy(epsilon=0.3, artwork="random"), PromotionPolicy()]
IDS = ["uniform", "uniform-first-art", "popular", "popular-eps", "promotion"]


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldConfig.preset("small", n_titles=80, series_share=0.5), seed=3)


@pytest.fixture(scope="module")
def visits(world: World):
    v = world.draw_visits(200, np.random.default_rng(0))
    return max((b for _, b in world.batches(v)), key=len)


@pytest.mark.parametrize("policy", POLICIES, ids=IDS)
class TestContract:
    def test_protocol(self, policy) -> None:
        assert isinstance(policy, Policy) and isinstance(policy, ExactPolicy)

    def test_page_is_valid_and_reproducible(self, policy, visits) -> None:
        a = policy.choose(visits, np.random.default_rng(1))
        a.check(visits)
        b = policy.choose(visits, np.random.default_rng(1))
        np.testing.assert_array_equal(a.titles, b.titles)
        np.testing.assert_array_equal(a.artworks, b.artworks)

    def test_propensity_equals_marginal(self, policy, visits) -> None:
        page = policy.choose(visits, np.random.default_rng(2))
        m = policy.marginals(visits)
        i, s = np.nonzero(page.titles >= 0)
        np.testing.assert_allclose(page.propensity[i, s], m.title_slot[i, page.titles[i, s], s])
        art = visits.catalog.art_offset[page.titles[i, s]] + page.artworks[i, s]
        np.testing.assert_allclose(page.artwork_propensity[i, s], m.artwork[i, art])
        np.testing.assert_array_equal(m.slot_row, page.row_index[0])
        np.testing.assert_array_equal(m.slot_position, page.position[0])

    def test_marginals_are_distributions(self, policy, visits) -> None:
        m = policy.marginals(visits)
        np.testing.assert_allclose(m.title_slot.sum(axis=1), 1.0)       # each slot: one title
        assert (m.title_slot.sum(axis=2) <= 1 + 1e-12).all()           # each title: <= 1 slot
        avail = visits.available[visits.country]
        assert (m.title_slot[~avail] == 0).all()
        per_title = np.add.reduceat(m.artwork, visits.catalog.art_offset[:-1], axis=1)
        np.testing.assert_allclose(per_title, 1.0)

    def test_frequencies_match_marginals(self, policy, visits) -> None:
        """Empirical P(title t in slot s) over many draws lies within 4 SE of the marginal."""
        sub = visits.subset(np.arange(3))
        m = policy.marginals(sub).title_slot
        rng = np.random.default_rng(3)
        reps = 4000
        counts = np.zeros_like(m)
        n, T, S = m.shape
        for _ in range(reps // 200):
            big = sub.subset(np.repeat(np.arange(n), 200))
            t = policy.choose(big, rng).titles.reshape(n, 200, S)
            for i in range(n):
                for s in range(S):
                    counts[i, :, s] += np.bincount(t[i, :, s], minlength=T)
        freq = counts / reps
        se = np.sqrt(m * (1 - m) / reps) + 1e-12
        assert (np.abs(freq - m) <= 4 * se + 1e-9).all()


def test_uniform_propensity_is_one_over_available(visits) -> None:
    page = UniformPolicy().choose(visits, np.random.default_rng(0))
    expected = np.broadcast_to(1.0 / visits.n_available()[:, None], page.propensity.shape)
    np.testing.assert_allclose(page.propensity, expected)


def test_popular_is_deterministic_top(visits) -> None:
    page = PopularPolicy().choose(visits, np.random.default_rng(0))
    assert (page.propensity == 1).all() and (page.artwork_propensity == 1).all()
    pop = visits.catalog.popularity
    for i in range(len(visits)):
        avail = visits.available_titles(visits.country[i])
        top = avail[np.argsort(-pop[avail], kind="stable")][: visits.n_slots]
        np.testing.assert_array_equal(page.titles[i], top)


def test_promotion_rho_moves_with_mood_and_cell(visits) -> None:
    pol = PromotionPolicy()
    base = visits.subset(np.zeros(4, dtype=int))
    from dataclasses import replace
    vb = replace(base, mood=np.array([0, 1, 0, 1]), cell=np.array([0, 0, 1, 1]))
    rho = pol.rho(vb)
    assert rho[0] < rho[1] < rho[3] and rho[0] < rho[2] < rho[3]


def test_small_catalogue_leaves_empty_slots() -> None:
    pool = np.array([[True, True, False, True, False]])
    titles, size = sample_uniform_pages(pool, np.zeros(50, dtype=int), 4,
                                        np.random.default_rng(0))
    assert (size == 3).all()
    assert (titles[:, 3] == -1).all()
    assert (np.sort(titles[:, :3], axis=1) == [0, 1, 3]).all()


def test_fast_path_sampling_is_uniform() -> None:
    """Large pools use draws-with-rejection; every (title, slot) cell stays at 1/A."""
    A, S, n = 40, 5, 40_000
    titles, _ = sample_uniform_pages(np.ones((1, A), bool), np.zeros(n, dtype=int), S,
                                     np.random.default_rng(1))
    assert (np.sort(titles, axis=1)[:, 1:] != np.sort(titles, axis=1)[:, :-1]).all()
    freq = np.stack([np.bincount(titles[:, s], minlength=A) for s in range(S)]) / n
    assert np.abs(freq - 1 / A).max() < 4 * np.sqrt(1 / A / n)


@pytest.mark.parametrize("make, match", [
    (lambda: UniformPolicy(artwork="best"), "artwork: use one of"),
    (lambda: PopularPolicy(epsilon=1.5), r"epsilon: must be in \[0, 1\]"),
    (lambda: PopularPolicy(epsilon=-0.1), "epsilon: must be in"),
    (lambda: PromotionPolicy(artwork=""), "artwork: use one of"),
])
def test_invalid_parameters(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()
