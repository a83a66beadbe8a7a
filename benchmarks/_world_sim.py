"""Off-policy evaluation on the simulated world against exact true values (``bench_ope.py``,
and its fast version ``tests/ope/test_world_accuracy.py``).

The OPE round is one impression (visit ``v``, slot ``s``): action = the title shown, position =
the slot, reward = its play (0/1), ``pscore`` = the logging policy's exact per-slot propensity.
Plays of different slots are independent given the visit (``docs/world.md``), so the per-slot
(position-based) model holds exactly and IPS/DR are unbiased for

    V(pi) = (1 / S) E_v [ sum_s sum_t pi(t, s | v) P(play | t shown in s, v) ],

the **play rate per impression** of the target's pages (``S`` x V = expected page plays per
visit; organic plays of titles not on the page are excluded: no page can change them).
``true_value`` computes it exactly from the world's equations over a large sample of fresh
visits (its standard error is reported).

The world is made *stationary* (``recent_weight = seen_penalty = 0``): member state then does
not move plays, so a log made under one policy and the truth computed with the initial state
describe the same process. With state on, the target's own plays would shape later visits: a
feedback loop that no per-round off-policy estimator sees.

Artwork is not part of the action: every policy here shows each title's first variant, as the
logger does (``UniformPolicy(artwork="first")``), and the truth uses that variant.

The target's probabilities of every title in the logged slot, ``(n_rounds, n_titles)``, are
passed as a 2-D ``action_dist`` with ``position`` in the feedback (the 3-D form
``(n_rounds, T, S)`` would repeat every visit's ``(T, S)`` table ``S`` times).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from reelpick.ope import LoggedFeedback, SupportWarning, evaluate_policy
from reelpick.ope.reward_model import LinearRewardModel
from reelpick.policies import (
    EpsilonGreedyPolicy,
    GreedyPolicy,
    LinUCBPolicy,
    PopularityScorer,
    PopularPolicy,
    SoftmaxPolicy,
    ThompsonSamplingPolicy,
    UniformPolicy,
    visit_context,
)
from reelpick.world import World, WorldConfig


def stationary_world(preset: str = "small", seed: int = 0, **overrides: object) -> World:
    cfg = WorldConfig.preset(preset, recent_weight=0.0, seen_penalty=0.0, **overrides)
    return World(cfg, seed=seed)


@dataclass(frozen=True)
class RandomScorer:
    """Fixed random title scores (seeded), the same for every visit."""

    seed: int

    def score(self, visits):
        s = np.random.default_rng(self.seed).normal(size=visits.catalog.n_titles)
        return np.broadcast_to(s, (len(visits), s.size))


@dataclass(frozen=True)
class NegPopularityScorer:
    """The least popular titles first."""

    def score(self, visits):
        return np.broadcast_to(-visits.catalog.popularity, (len(visits), visits.catalog.n_titles))


@dataclass(frozen=True)
class ContextScorer:
    """Context-trending: popularity, short titles on mobile/tablet, series in the evening."""

    short_weight: float = 1.5
    series_weight: float = 1.0

    def score(self, visits):
        cat = visits.catalog
        short = -np.log(cat.duration)
        short = (short - short.mean()) / (short.std() + 1e-9)
        mobile = np.isin(visits.device, (1, 2)).astype(float)[:, None]
        evening = ((visits.hour >= 18) | (visits.hour < 2)).astype(float)[:, None]
        return (cat.popularity[None, :] + self.short_weight * mobile * short[None, :]
                + self.series_weight * evening * cat.is_series[None, :])


@dataclass(frozen=True)
class OracleScorer:
    """The world's true causal effect of showing each title to this visit (the best page)."""

    world: World

    def score(self, visits):
        t = np.broadcast_to(np.arange(visits.catalog.n_titles), (len(visits),
                                                                  visits.catalog.n_titles))
        return self.world.uplift(visits, t, np.zeros(t.shape, dtype=np.int64))


def logging_policy(epsilon: float = 0.5) -> EpsilonGreedyPolicy:
    return EpsilonGreedyPolicy(PopularityScorer(), epsilon=epsilon)


def target_policies(world: World, train_log=None, *, quick: bool = False,
                    thompson: bool = False) -> dict[str, object]:
    """Diverse targets: temperatures, epsilons, scorers (popularity, context, random, oracle,
    anti-popular), learned bandits, mixtures. ``quick``: five of them."""
    pop, ctx, oracle = PopularityScorer(), ContextScorer(), OracleScorer(world)
    out: dict[str, object] = {
        "uniform": UniformPolicy(artwork="first"),
        "greedy popularity": GreedyPolicy(pop),
        "softmax popularity t=1": SoftmaxPolicy(pop, temperature=1.0, n_candidates=60),
        "greedy oracle": GreedyPolicy(oracle),
        "softmax anti-popular t=1": SoftmaxPolicy(NegPopularityScorer(), temperature=1.0,
                                                  n_candidates=60),
    }
    if quick:
        return out
    out.update({
        "greedy random#1": GreedyPolicy(RandomScorer(1)),
        "popular eps=0.3": PopularPolicy(epsilon=0.3),
        "eps-greedy popularity 0.1": EpsilonGreedyPolicy(pop, epsilon=0.1),
        "eps-greedy popularity 0.9": EpsilonGreedyPolicy(pop, epsilon=0.9),
        "softmax popularity t=0.3": SoftmaxPolicy(pop, temperature=0.3, n_candidates=60),
        "softmax popularity t=3": SoftmaxPolicy(pop, temperature=3.0, n_candidates=60),
        "greedy anti-popular": GreedyPolicy(NegPopularityScorer()),
        "greedy context": GreedyPolicy(ctx),
        "softmax context t=0.5": SoftmaxPolicy(ctx, temperature=0.5, n_candidates=60),
        "greedy random#2": GreedyPolicy(RandomScorer(2)),
        "softmax random#3 t=0.5": SoftmaxPolicy(RandomScorer(3), temperature=0.5,
                                                n_candidates=60),
        "eps-greedy oracle 0.3": EpsilonGreedyPolicy(oracle, epsilon=0.3),
        "eps-greedy oracle 0.7": EpsilonGreedyPolicy(oracle, epsilon=0.7),
        "eps-greedy context 0.2": EpsilonGreedyPolicy(ctx, epsilon=0.2),
        "popular eps=0.7": PopularPolicy(epsilon=0.7),
        "eps-greedy random#4 0.5": EpsilonGreedyPolicy(RandomScorer(4), epsilon=0.5),
    })
    if train_log is not None:
        T = world.config.n_titles
        train_pages = train_log.logged_pages(n_titles=T)
        e = tuple(world.dynamics.examination(np.arange(world.config.n_slots)
                                             // world.config.page_positions,
                                             np.arange(world.config.n_slots)
                                             % world.config.page_positions))
        out["linucb (learned)"] = LinUCBPolicy(n_titles=T, alpha=0.5,
                                               position_weights=e).fit_pages(train_pages)
        if thompson:  # exact marginals per distinct context: seconds per 1000 visits
            out["thompson (learned)"] = ThompsonSamplingPolicy(
                n_titles=T, noise=0.5, n_candidates=40, position_weights=e).fit_pages(train_pages)
    return out


def slot_feedback(world: World, log) -> LoggedFeedback:
    """One round per impression; context = the visit context (device, daypart, weekend) and
    the country (one-hot); ``slate_id`` = the visit: its impressions share the member and the
    context, so the intervals are clustered by visit (visits are independent, impressions of
    one visit are not)."""
    sh, v = log.shown, log.visits
    ctx = visit_context(v.device[sh.visit], v.hour[sh.visit], v.day_of_week[sh.visit])
    country = np.eye(len(world.config.countries))[v.country[sh.visit]]
    return LoggedFeedback(action=sh.title, reward=sh.play.astype(float), pscore=sh.propensity,
                          n_actions=world.config.n_titles, position=sh.slot,
                          n_positions=world.config.n_slots,
                          context=np.column_stack([ctx[:, 1:], country]), slate_id=sh.visit)


def slot_action_dist(policy, world: World, log) -> np.ndarray:
    """``(n_rounds, n_titles)``: the target's probability of every title in the logged slot."""
    marg = world.logged_action_dist(policy, log)            # (n_visits, T, S)
    return marg[log.shown.visit, :, log.shown.slot]


def slot_reward_hat(fb: LoggedFeedback, *, n_folds: int = 2, seed: int = 0) -> np.ndarray:
    """Cross-fitted :class:`LinearRewardModel` (title + slot + context effects, logistic) at each
    round's own slot, ``(n_rounds, n_titles)``. Folds are drawn per visit (``slate_id``): no
    model sees another impression of a visit it predicts."""
    if fb.slate_id is None:
        folds = np.random.default_rng(seed).integers(0, n_folds, fb.n_rounds)
    else:
        _, visit = np.unique(fb.slate_id, return_inverse=True)
        folds = np.random.default_rng(seed).integers(0, n_folds, int(visit.max()) + 1)[visit]
    out = np.empty((fb.n_rounds, fb.n_actions))
    for f in range(n_folds):
        test = np.flatnonzero(folds == f)
        model = LinearRewardModel(fb.n_actions, fb.n_positions, interactions=False,
                                  l2=1.0).fit(fb.take(folds != f))
        for lo in range(0, test.size, 4096):
            idx = test[lo:lo + 4096]
            q = model.predict(fb.context[idx], idx.size)          # (k, T, S)
            out[idx] = q[np.arange(idx.size), :, fb.position[idx]]
    return out


def true_value(world: World, policy, *, n_visits: int = 20_000, seed: int = 999) -> tuple[
        float, float]:
    """Exact per-impression play rate of ``policy`` (see the module docstring) over
    ``n_visits`` fresh visits: ``(value, standard error over visits)``."""
    cfg = world.config
    visits = world.draw_visits(n_visits, np.random.default_rng([seed, 1]))
    slots = np.arange(cfg.n_slots)
    e = world.dynamics.examination(slots // cfg.page_positions, slots % cfg.page_positions)
    per_visit = np.empty(n_visits)
    for sl, vb in world.batches(visits):
        T = vb.catalog.n_titles
        t = np.broadcast_to(np.arange(T), (len(vb), T))
        art = np.zeros(t.shape, dtype=np.int64)
        p0 = world.organic_probability(vb, t)
        g = world.uplift(vb, t, art)                       # at row 0, position 0: e = 1
        m = policy.marginals(vb).title_slot                # (n, T, S)
        per_visit[sl] = (np.einsum("nts,nt->n", m, p0) + np.einsum("nts,nt,s->n", m, g, e))
    per_visit /= cfg.n_slots
    return float(per_visit.mean()), float(per_visit.std(ddof=1) / np.sqrt(n_visits))


def evaluate_targets(world: World, log, targets: dict[str, object], estimators, *,
                     reward_hat: np.ndarray | None = None, fb: LoggedFeedback | None = None,
                     alpha: float = 0.05, round_estimators=()) -> dict[str, dict]:
    """Every estimator on every target from one log: ``{target: {estimator: Estimate}}``
    (intervals clustered by visit). ``round_estimators`` are also run with independent-rounds
    intervals (``cluster="round"``), under ``name + "_iid"``."""
    fb = fb if fb is not None else slot_feedback(world, log)
    out = {}
    for name, pol in targets.items():
        dist = slot_action_dist(pol, world, log)
        with warnings.catch_warnings():
            # epsilon-greedy logging covers every available title in every slot: pairs a
            # short log has not shown yet are not outside the support
            warnings.simplefilter("ignore", SupportWarning)
            out[name] = evaluate_policy(fb, dist, estimators, reward_hat, alpha=alpha)
            if round_estimators:
                iid = evaluate_policy(fb, dist, list(round_estimators), reward_hat,
                                      alpha=alpha, cluster="round")
                out[name].update({f"{k}_iid": v for k, v in iid.items()})
    return out
