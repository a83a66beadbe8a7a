"""Score-based policies and bandits: one contract suite on every implementation, exact
propensities against brute force and empirical frequencies, learning on a toy bandit, and
invalid-input tables."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from scipy import stats

from reelpick.policies import (
    AnnotatedPageBatch,
    EpsilonGreedyPolicy,
    GreedyPolicy,
    GreedyWinnerPolicy,
    LinUCBPolicy,
    PopularityScorer,
    SoftmaxPolicy,
    ThompsonSamplingPolicy,
    action_dist,
    gumbel_rank_marginals,
    normal_rank_marginals,
    plackett_luce_list_probability,
    visit_context,
)
from reelpick.world import Catalog, ExactPolicy, Policy, VisitBatch, World, WorldConfig

T_SMALL = 60


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldConfig.preset("small", n_titles=T_SMALL, page_rows=2, page_positions=3),
                 seed=5)


@pytest.fixture(scope="module")
def visits(world: World) -> VisitBatch:
    v = world.draw_visits(120, np.random.default_rng(0))
    return max((b for _, b in world.batches(v)), key=len)


class NoisyScorer:
    """Member-dependent scores (a fixed random table), so pages differ per visit."""

    def __init__(self, n_members: int, n_titles: int, seed: int = 0) -> None:
        self.table = np.random.default_rng(seed).normal(size=(n_members, n_titles))

    def score(self, visits: VisitBatch) -> np.ndarray:
        return self.table[visits.member]


def _trained_bandit(cls, world: World, **kw):
    pol = cls(n_titles=world.config.n_titles, **kw)
    log = world.simulate(EpsilonGreedyPolicy(epsilon=1.0), 300, seed=1)
    return pol.fit_pages(log.logged_pages())


def _policies(world: World) -> list:
    sc = NoisyScorer(world.config.n_members, world.config.n_titles)
    return [
        GreedyPolicy(sc),
        EpsilonGreedyPolicy(sc, epsilon=0.3),
        EpsilonGreedyPolicy(sc, epsilon=0.5, pool_size=12),
        SoftmaxPolicy(sc, temperature=0.7, n_candidates=12),
        SoftmaxPolicy(sc, temperature=2.0, n_candidates=None),
        GreedyWinnerPolicy((("noisy", sc), ("pop", PopularityScorer())), epsilon=0.2),
        _trained_bandit(LinUCBPolicy, world),
        _trained_bandit(ThompsonSamplingPolicy, world, n_candidates=10, noise=0.3),
    ]


IDS = ["greedy", "eps-greedy", "eps-greedy-pool", "softmax-12", "softmax-all", "winner",
       "linucb", "thompson"]


@pytest.fixture(scope="module", params=range(len(IDS)), ids=IDS)
def policy(request, world):
    return _policies(world)[request.param]


class TestContract:
    def test_protocol(self, policy) -> None:
        assert isinstance(policy, Policy) and isinstance(policy, ExactPolicy)

    def test_page_is_valid_and_reproducible(self, policy, visits) -> None:
        a = policy.choose(visits, np.random.default_rng(1))
        a.check(visits)
        assert isinstance(a, AnnotatedPageBatch)
        b = policy.choose(visits, np.random.default_rng(1))
        np.testing.assert_array_equal(a.titles, b.titles)
        np.testing.assert_array_equal(a.propensity, b.propensity)

    def test_propensity_equals_marginal(self, policy, visits) -> None:
        page = policy.choose(visits, np.random.default_rng(2))
        m = policy.marginals(visits)
        i, s = np.nonzero(page.titles >= 0)
        np.testing.assert_allclose(page.propensity[i, s], m.title_slot[i, page.titles[i, s], s],
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(m.slot_row, page.row_index[0])
        np.testing.assert_array_equal(m.slot_position, page.position[0])

    def test_propensities_sum_to_one(self, policy, visits) -> None:
        """Over the action space: every slot holds exactly one title, every title at most one
        slot, nothing unavailable."""
        ad = action_dist(policy, visits)
        assert ad.shape == (len(visits), visits.catalog.n_titles, visits.n_slots)
        np.testing.assert_allclose(ad.sum(axis=1), 1.0, atol=1e-9)
        assert (ad.sum(axis=2) <= 1 + 1e-9).all() and (ad >= -1e-15).all()
        assert (ad[~visits.available[visits.country]] == 0).all()

    def test_frequencies_match_propensities(self, policy, visits) -> None:
        """Chi-square per (visit, slot) over many draws; Bonferroni over the tests."""
        sub = visits.subset(np.arange(2))
        m = policy.marginals(sub).title_slot
        n, T, S = m.shape
        reps = 3000
        big = sub.subset(np.repeat(np.arange(n), reps))
        t = policy.choose(big, np.random.default_rng(3)).titles.reshape(n, reps, S)
        pvals = []
        for i in range(n):
            for s in range(S):
                obs = np.bincount(t[i, :, s], minlength=T)
                exp = m[i, :, s] * reps
                assert obs[exp == 0].sum() == 0, "a title with propensity 0 was shown"
                keep = exp > 0
                if keep.sum() < 2:
                    continue
                pvals.append(stats.chisquare(obs[keep], exp[keep] * obs.sum() / exp.sum())
                             .pvalue)
        if pvals:
            assert min(pvals) > 1e-3 / len(pvals)


# ---------------------------------------------------------------------- exact identities
def _brute_force_pl(u: np.ndarray, S: int) -> tuple[np.ndarray, dict]:
    w = np.exp(u)
    marg = np.zeros((u.size, S))
    lists = {}
    for perm in itertools.permutations(range(u.size), S):
        p, rem = 1.0, w.sum()
        for t in perm:
            p *= w[t] / rem
            rem -= w[t]
        lists[perm] = p
        for r, t in enumerate(perm):
            marg[t, r] += p
    return marg, lists


@pytest.mark.parametrize("u", [[0.3, -1.2, 2.0, 0.5, 0.0], [0, 0, 0, 0], [5.0, -5.0, 0.0, 1.0,
                                                                          2.0, 3.0]])
def test_plackett_luce_equals_brute_force(u) -> None:
    u = np.asarray(u, dtype=float)
    S = min(3, u.size)
    marg, lists = _brute_force_pl(u, S)
    np.testing.assert_allclose(gumbel_rank_marginals(u[None], S)[0], marg, atol=1e-10)
    assert abs(sum(lists.values()) - 1) < 1e-12
    perms = np.array(list(lists))
    got = plackett_luce_list_probability(np.tile(u, (len(perms), 1)), perms)
    np.testing.assert_allclose(got, list(lists.values()), rtol=1e-12)


def test_softmax_list_propensity_matches_marginals_and_frequency(world, visits) -> None:
    """The list propensity of a sampled page equals PL; summing list probabilities of all
    pages that put t in slot s reproduces the per-slot marginal (brute force, 5 candidates)."""
    pol = SoftmaxPolicy(NoisyScorer(world.config.n_members, T_SMALL), n_candidates=5)
    sub = visits.subset(np.arange(1))
    small = sub.with_layout(1, 3)
    pool, u = pol.logits(small)
    marg = pol.marginals(small).title_slot[0]
    acc = np.zeros_like(marg)
    total = 0.0
    for perm in itertools.permutations(range(5), 3):
        titles = pool[0, list(perm)][None]
        p = pol.list_propensity(small, titles)[0]
        total += p
        for s, t in enumerate(titles[0]):
            acc[t, s] += p
    assert abs(total - 1) < 1e-12
    np.testing.assert_allclose(acc, marg, atol=1e-10)


def test_normal_rank_marginals_match_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    mu, sd = rng.normal(size=(1, 6)), rng.uniform(0.2, 1.0, (1, 6))
    m = normal_rank_marginals(mu, sd, 4)[0]
    reps = 200_000
    rank = np.argsort(-(mu + sd * rng.standard_normal((reps, 6))), axis=1)[:, :4]
    freq = np.stack([np.bincount(rank[:, r], minlength=6) for r in range(4)], axis=1) / reps
    se = np.sqrt(m * (1 - m) / reps) + 1e-12
    assert (np.abs(freq - m) <= 4.5 * se).all()
    np.testing.assert_allclose(m.sum(axis=0), 1.0, atol=1e-9)


def test_epsilon_greedy_identity(world, visits) -> None:
    sc = NoisyScorer(world.config.n_members, T_SMALL)
    eps = 0.25
    page = EpsilonGreedyPolicy(sc, epsilon=eps).choose(visits, np.random.default_rng(4))
    greedy = GreedyPolicy(sc).choose(visits, np.random.default_rng(4)).titles
    a = visits.n_available()[:, None]
    np.testing.assert_allclose(page.propensity, (1 - eps) * (page.titles == greedy) + eps / a)
    assert set(page.source) <= {"greedy", "explore"}


def test_greedy_winner_logs_the_most_confident_model(world, visits) -> None:
    sc = NoisyScorer(world.config.n_members, T_SMALL)
    low = NoisyScorer(world.config.n_members, T_SMALL, seed=1)
    low.table = low.table - 100.0
    pol = GreedyWinnerPolicy((("low", low), ("noisy", sc)))
    page = pol.choose(visits, np.random.default_rng(0))
    assert (page.source == "noisy").all() and (pol.winners(visits) == "noisy").all()
    np.testing.assert_array_equal(page.titles, GreedyPolicy(sc).pages(visits))


def test_logged_action_dist_covers_every_visit(world) -> None:
    pol = EpsilonGreedyPolicy(epsilon=0.2)
    log = world.simulate(pol, 50, seed=2)
    ad = world.logged_action_dist(pol, log)
    assert ad.shape == (50, world.config.n_titles, world.config.n_slots)
    s = log.shown
    np.testing.assert_allclose(ad[s.visit, s.title, s.slot], s.propensity)


# ---------------------------------------------------------------------- bandits learn
def _toy_visits(device: np.ndarray, n_arms: int) -> VisitBatch:
    n = device.size
    cat = Catalog(n_variants=np.ones(n_arms, dtype=np.int64), is_series=np.zeros(n_arms, bool),
                  duration=np.full(n_arms, 3600.0), genre_onehot=np.eye(n_arms, 4),
                  art_offset=np.arange(n_arms + 1), popularity=np.zeros(n_arms))
    z = np.zeros(n, dtype=np.int64)
    return VisitBatch(member=z, timestamp=z, device=device, country=z, hour=z + 20,
                      day_of_week=z, cell=z.astype(np.int8), day=0,
                      available=np.ones((1, n_arms), bool), catalog=cat, n_rows=1,
                      n_positions=1)


@pytest.mark.parametrize("cls,kw", [(LinUCBPolicy, {"alpha": 0.5}),
                                    (ThompsonSamplingPolicy, {"noise": 0.5})],
                         ids=["linucb", "thompson"])
def test_bandit_learns_best_arm_per_context(cls, kw) -> None:
    """Arm 3 is best on TVs, arm 1 on phones; after online learning both are found."""
    rates = np.array([[0.1, 0.2, 0.3, 0.6, 0.2], [0.2, 0.55, 0.1, 0.2, 0.3]])
    pol = cls(n_titles=5, l2=1.0, **kw)
    rng = np.random.default_rng(0)
    for _ in range(150):
        dev = rng.integers(0, 2, 20)
        vb = _toy_visits(dev, 5)
        page = pol.choose(vb, rng)
        arm = page.titles[:, 0]
        reward = (rng.random(20) < rates[dev, arm]).astype(float)
        pol.partial_fit(visit_context(dev, vb.hour, vb.day_of_week), arm, reward)
    dev = np.repeat([0, 1], 200)
    arm = pol.choose(_toy_visits(dev, 5), rng).titles[:, 0]
    assert (arm[dev == 0] == 3).mean() > 0.9 and (arm[dev == 1] == 1).mean() > 0.9
    assert pol.n_obs_ == 3000


def test_fit_starts_over_and_partial_fit_accumulates() -> None:
    x = visit_context(np.array([0, 1]), np.array([9, 21]), np.array([0, 6]))
    a = LinUCBPolicy(n_titles=3).fit(x, np.array([0, 1]), np.array([1.0, 0.0]))
    b = LinUCBPolicy(n_titles=3).partial_fit(x[:1], np.array([0]), np.array([1.0]))
    b.partial_fit(x[1:], np.array([1]), np.array([0.0]))
    np.testing.assert_allclose(a.theta_, b.theta_)
    a.fit(x[:1], np.array([0]), np.array([1.0]))
    assert a.n_obs_ == 1


# ---------------------------------------------------------------------- invalid inputs
INVALID = [
    (lambda: EpsilonGreedyPolicy(epsilon=1.5), ValueError, "epsilon"),
    (lambda: EpsilonGreedyPolicy(pool_size=0), ValueError, "pool_size"),
    (lambda: EpsilonGreedyPolicy(scorer=object()), TypeError, "scorer"),
    (lambda: SoftmaxPolicy(temperature=0.0), ValueError, "temperature"),
    (lambda: SoftmaxPolicy(temperature=float("inf")), ValueError, "temperature"),
    (lambda: SoftmaxPolicy(n_candidates=0), ValueError, "n_candidates"),
    (lambda: GreedyWinnerPolicy(()), ValueError, "at least one"),
    (lambda: GreedyWinnerPolicy((("a", PopularityScorer()), ("a", PopularityScorer()))),
     ValueError, "unique"),
    (lambda: GreedyWinnerPolicy((("a", PopularityScorer()),), confidence="median"),
     ValueError, "confidence"),
    (lambda: LinUCBPolicy(n_titles=0), ValueError, "n_titles"),
    (lambda: LinUCBPolicy(n_titles=3, l2=0), ValueError, "l2"),
    (lambda: ThompsonSamplingPolicy(n_titles=3, noise=-1), ValueError, "noise"),
    (lambda: LinUCBPolicy(n_titles=3, position_weights=(1.0, 0.0)), ValueError,
     "position_weights"),
    (lambda: LinUCBPolicy(n_titles=3).partial_fit(np.ones((2, 3)), np.array([0, 1]),
                                                  np.ones(2)), ValueError, "contexts"),
    (lambda: LinUCBPolicy(n_titles=3).partial_fit(visit_context([0], [1], [1]), np.array([7]),
                                                  np.ones(1)), ValueError, "titles"),
    (lambda: LinUCBPolicy(n_titles=3, position_weights=(1.0,)).partial_fit(
        visit_context([0], [1], [1]), np.array([0]), np.ones(1)), ValueError, "slots"),
    (lambda: gumbel_rank_marginals(np.array([[np.nan, 1.0]]), 1), ValueError, "logits"),
    (lambda: gumbel_rank_marginals(np.array([[-np.inf, -np.inf]]), 1), ValueError,
     "at least one"),
    (lambda: normal_rank_marginals(np.zeros((1, 2)), np.array([[1.0, 0.0]]), 1), ValueError,
     "sd"),
    (lambda: action_dist(object(), None), TypeError, "marginals"),
]


@pytest.mark.parametrize("make,err,match", INVALID)
def test_invalid_inputs(make, err, match) -> None:
    with pytest.raises(err, match=match):
        make()


def test_exploring_logger_refuses_a_stochastic_base(world, visits) -> None:
    """ExploringPolicy's propensities assume a deterministic base: a base whose own
    propensities are below 1 is refused by name; propensities that are 1 up to rounding pass."""
    from reelpick.policies import ExploringPolicy

    stochastic = SoftmaxPolicy(PopularityScorer(), temperature=1.0, name="soft")
    with pytest.raises(ValueError, match="base policy 'soft' is not deterministic"):
        ExploringPolicy(stochastic, epsilon=0.1).choose(visits, np.random.default_rng(0))

    class AlmostOne:
        name, version = "almost", "v1"

        def choose(self, v, rng):
            page = GreedyPolicy().choose(v, rng)
            return dataclasses.replace(page, propensity=page.propensity * (1 - 1e-12))

    page = ExploringPolicy(AlmostOne(), epsilon=0.1).choose(visits, np.random.default_rng(0))
    assert ((page.propensity > 0) & (page.propensity <= 1)).all()
