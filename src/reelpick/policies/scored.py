r"""Policies that turn a :class:`~reelpick.policies.base.Scorer` into pages with exact
propensities: greedy, epsilon-greedy and softmax (Plackett-Luce).

Per visit, with candidate scores :math:`s_t` (``-inf`` = not a candidate), ``S`` slots and the
greedy page :math:`g = (g_0, \dots, g_{S-1})` (candidates by descending score):

Greedy
    :math:`P(t \text{ in slot } s) = [t = g_s]` (propensity 1).
Epsilon-greedy
    with probability :math:`\epsilon` a uniform page from the pool :math:`\mathcal A` (the
    available titles, or the ``pool_size`` best candidates), otherwise the greedy page:

    .. math:: P(t \text{ in slot } s) = (1 - \epsilon)\,[t = g_s] + \epsilon / |\mathcal A|
              \quad (t \in \mathcal A).
Softmax / Plackett-Luce (Plackett 1975; Luce 1959)
    over the pool :math:`\mathcal C` (all candidates, or the ``n_candidates`` best) with
    logits :math:`u_t = s_t / \tau` (clipped to :math:`u_t \ge \max u - \Delta`):

    .. math:: P(\pi) = \prod_{r=0}^{S-1}
              \frac{e^{u_{\pi_r}}}{\sum_{j \in \mathcal C \setminus \{\pi_0..\pi_{r-1}\}}
              e^{u_j}}

    for the whole ranked list :math:`\pi` (:func:`plackett_luce_list_probability`), and the
    per-slot marginal :math:`P(t \text{ at rank } r)` exactly by the order-statistics integral
    of :mod:`reelpick.policies.order_stats` (sampling is Gumbel-top-``S``: rank
    :math:`u_t + G_t`, :math:`G_t` standard Gumbel). ``page.propensity`` is the per-slot
    marginal; :meth:`SoftmaxPolicy.list_propensity` gives the list probability.

Example
-------
>>> import numpy as np
>>> from reelpick.world import World, WorldConfig
>>> world = World(WorldConfig.preset("small"), seed=1)
>>> vb = world.make_visits([0], world.config.start + 3600)
>>> page = EpsilonGreedyPolicy(epsilon=0.2).choose(vb, np.random.default_rng(0))
>>> a = vb.n_available()[0]
>>> bool(np.isclose(page.propensity[0, 0], 0.8 + 0.2 / a) or
...      np.isclose(page.propensity[0, 0], 0.2 / a))
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reelpick.decision import Marginals, VisitBatch
from reelpick.policies.base import (
    AnnotatedPageBatch,
    PopularityScorer,
    Scorer,
    candidate_scores,
    greedy_pages,
    grid_page,
    onehot_marginal,
)
from reelpick.policies.basic import _uniform_marginal, sample_uniform_pages
from reelpick.policies.order_stats import gumbel_rank_marginals


def _slots(visits: VisitBatch) -> tuple[np.ndarray, np.ndarray]:
    s = np.arange(visits.n_slots)
    return s // visits.n_positions, s % visits.n_positions


def _art(visits: VisitBatch) -> np.ndarray:
    cat = visits.catalog
    row = np.zeros(int(cat.art_offset[-1]))
    row[cat.art_offset[:-1]] = 1.0
    return np.broadcast_to(row, (len(visits), row.size))


def _check_scorer(scorer: object) -> None:
    if not isinstance(scorer, Scorer):
        raise TypeError(f"scorer: {type(scorer).__name__} has no score(visits) method")


@dataclass(frozen=True)
class GreedyPolicy:
    """The ``S`` best candidates by score, row by row (propensity 1). Default scorer: observable
    popularity."""

    scorer: Scorer = field(default_factory=PopularityScorer)
    name: str = "greedy"
    version: str = "v1"

    def __post_init__(self) -> None:
        _check_scorer(self.scorer)

    def pages(self, visits: VisitBatch) -> np.ndarray:
        s, cand = candidate_scores(self.scorer, visits)
        return greedy_pages(s, cand, visits)

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> AnnotatedPageBatch:
        del rng
        titles = self.pages(visits)
        return grid_page(titles, visits, np.ones(titles.shape), "Top picks")

    def marginals(self, visits: VisitBatch) -> Marginals:
        m = onehot_marginal(self.pages(visits), visits.catalog.n_titles)
        return Marginals(m, *_slots(visits), _art(visits))


@dataclass(frozen=True)
class EpsilonGreedyPolicy:
    r"""Greedy page with probability :math:`1 - \epsilon`, a uniform page from the pool with
    probability :math:`\epsilon`: :math:`P = (1-\epsilon)[t = g_s] + \epsilon / |\mathcal A|`.

    ``pool_size=None``: the pool is every available title; an integer keeps the ``pool_size``
    best candidates (deterministic given the scores; must be >= the page size).
    """

    scorer: Scorer = field(default_factory=PopularityScorer)
    epsilon: float = 0.1
    pool_size: int | None = None
    name: str = "epsilon-greedy"
    version: str = "v1"

    def __post_init__(self) -> None:
        _check_scorer(self.scorer)
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon: must be in [0, 1], got {self.epsilon!r}")
        if self.pool_size is not None and self.pool_size < 1:
            raise ValueError(f"pool_size: must be >= 1 or None, got {self.pool_size!r}")

    def _parts(self, visits: VisitBatch) -> tuple[np.ndarray, np.ndarray]:
        """Greedy titles ``(n, S)`` and the pool mask ``(n, T)``."""
        s, cand = candidate_scores(self.scorer, visits)
        greedy = greedy_pages(s, cand, visits)
        avail = visits.available[visits.country]
        if self.pool_size is None:
            return greedy, avail
        if self.pool_size < visits.n_slots:
            raise ValueError(f"pool_size: must be >= the page size {visits.n_slots}, "
                             f"got {self.pool_size}")
        wide = greedy_pages(s, cand, _resized(visits, self.pool_size))
        pool = np.zeros_like(avail)
        i, j = np.nonzero(wide >= 0)
        pool[i, wide[i, j]] = True
        return greedy, pool

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> AnnotatedPageBatch:
        greedy, pool = self._parts(visits)
        n = len(visits)
        explore = rng.random(n) < self.epsilon
        uni, size = sample_uniform_pages(pool, np.arange(n), visits.n_slots, rng)
        titles = np.where(explore[:, None], uni, greedy)
        prop = ((1 - self.epsilon) * (titles == greedy)
                + self.epsilon * pool[np.arange(n)[:, None], np.maximum(titles, 0)]
                / np.maximum(size, 1)[:, None])
        return grid_page(titles, visits, prop, "Top picks",
                         source=np.where(explore, "explore", "greedy"))

    def marginals(self, visits: VisitBatch) -> Marginals:
        greedy, pool = self._parts(visits)
        m = ((1 - self.epsilon) * onehot_marginal(greedy, visits.catalog.n_titles)
             + self.epsilon * _uniform_marginal(pool, pool.sum(axis=1), visits.n_slots))
        return Marginals(m, *_slots(visits), _art(visits))


def _resized(visits: VisitBatch, n_slots: int) -> VisitBatch:
    """The same visits with a one-row page of ``n_slots`` (to pick the top of a pool)."""
    return visits.with_layout(1, n_slots)


def plackett_luce_list_probability(logits: np.ndarray, ranking: np.ndarray) -> np.ndarray:
    r"""Probability of each whole ranked list under Plackett-Luce.

    ``logits (n, K)`` (``-inf`` = excluded), ``ranking (n, S)`` indices into ``K`` (``-1`` =
    empty, only at the end). Returns ``(n,)``:
    :math:`\prod_r e^{u_{\pi_r}} / \sum_{j \notin \pi_{<r}} e^{u_j}`.

    >>> import numpy as np
    >>> float(plackett_luce_list_probability(np.log([[2.0, 1.0, 1.0]]), np.array([[0, 1]]))[0])
    0.25
    """
    u = np.asarray(logits, dtype=np.float64)
    r = np.asarray(ranking)
    n, K = u.shape
    mx = np.where(np.isfinite(u), u, -np.inf).max(axis=1, keepdims=True)
    w = np.exp(u - mx)
    rem = w.sum(axis=1)
    logp = np.zeros(n)
    for s in range(r.shape[1]):
        ok = r[:, s] >= 0
        ws = np.where(ok, w[np.arange(n), np.maximum(r[:, s], 0)], 1.0)
        logp += np.where(ok, np.log(ws) - np.log(np.maximum(rem, 1e-300)), 0.0)
        rem = rem - np.where(ok, ws, 0.0)
    return np.exp(logp)


@dataclass(frozen=True)
class SoftmaxPolicy:
    r"""Plackett-Luce (softmax without replacement) over the candidates with temperature
    ``temperature``: logits :math:`u_t = s_t / \tau`, clipped below at
    :math:`\max u - \text{max\_gap}` (the clipped logits define the policy, so propensities
    stay exact). ``n_candidates`` keeps the best candidates only (``None`` = all available
    candidates); exact per-slot marginals cost :math:`O(Q K S \log K)` per visit
    (:mod:`reelpick.policies.order_stats`), so keep ``K`` to a few hundred.
    """

    scorer: Scorer = field(default_factory=PopularityScorer)
    temperature: float = 1.0
    n_candidates: int | None = 100
    max_gap: float = 30.0
    name: str = "softmax"
    version: str = "v1"

    def __post_init__(self) -> None:
        _check_scorer(self.scorer)
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature: must be positive and finite, got "
                             f"{self.temperature!r}")
        if self.n_candidates is not None and self.n_candidates < 1:
            raise ValueError(f"n_candidates: must be >= 1 or None, got {self.n_candidates!r}")
        if not self.max_gap > 0:
            raise ValueError(f"max_gap: must be > 0, got {self.max_gap!r}")

    def logits(self, visits: VisitBatch) -> tuple[np.ndarray, np.ndarray]:
        """``(pool, logits)``: the candidate titles ``(n, K)`` (``-1`` = padding) and their
        clipped logits ``(n, K)`` (``-inf`` on padding)."""
        s, cand = candidate_scores(self.scorer, visits)
        n, T = s.shape
        k = T if self.n_candidates is None else min(self.n_candidates, T)
        key = np.where(cand, s, -np.inf)
        if k < T:
            pool = np.argpartition(-key, k - 1, axis=1)[:, :k]
        else:
            pool = np.tile(np.arange(T), (n, 1))
        pk = np.take_along_axis(key, pool, axis=1)
        order = np.lexsort((pool, -pk), axis=1)
        pool = np.take_along_axis(pool, order, axis=1)
        pk = np.take_along_axis(pk, order, axis=1)
        if not np.isfinite(pk[:, 0]).all():
            raise ValueError("scorer: a visit has no candidate title")
        u = pk / self.temperature
        u = np.where(np.isfinite(u), np.maximum(u, u[:, :1] - self.max_gap), -np.inf)
        width = int(np.isfinite(u).sum(axis=1).max())
        pool = np.where(np.isfinite(u), pool, -1)[:, :width]
        return pool, u[:, :width]

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> AnnotatedPageBatch:
        pool, u = self.logits(visits)
        n, K = u.shape
        S = visits.n_slots
        g = u - np.log(-np.log(rng.random((n, K))))
        k = min(S, K)
        rank = np.argsort(-g, axis=1, kind="stable")[:, :k]
        marg = gumbel_rank_marginals(u, k)
        rows = np.arange(n)[:, None]
        titles = np.full((n, S), -1, dtype=np.int64)
        prop = np.ones((n, S))
        ok = np.isfinite(u[rows, rank])
        titles[:, :k] = np.where(ok, pool[rows, rank], -1)
        prop[:, :k] = np.where(ok, marg[rows, rank, np.arange(k)[None, :]], 1.0)
        return grid_page(titles, visits, prop, "For you")

    def list_propensity(self, visits: VisitBatch, titles: np.ndarray) -> np.ndarray:
        """P(the whole ranked page ``titles (n, S)``) under this policy, ``(n,)``."""
        pool, u = self.logits(visits)
        n = len(visits)
        idx = np.full(titles.shape, -1, dtype=np.int64)
        for s in range(titles.shape[1]):
            hit = (pool == titles[:, s:s + 1]) & (titles[:, s:s + 1] >= 0)
            idx[:, s] = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
        bad = (idx < 0) & (titles >= 0)
        p = plackett_luce_list_probability(u, idx)
        return np.where(bad.any(axis=1), 0.0, p) if n else p

    def marginals(self, visits: VisitBatch) -> Marginals:
        pool, u = self.logits(visits)
        n, K = u.shape
        S = visits.n_slots
        k = min(S, K)
        marg = gumbel_rank_marginals(u, k)
        m = np.zeros((n, visits.catalog.n_titles, S))
        i, j = np.nonzero(pool >= 0)
        m[i, pool[i, j], :k] = marg[i, j]
        return Marginals(m, *_slots(visits), _art(visits))
