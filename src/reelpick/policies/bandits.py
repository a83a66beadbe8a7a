r"""Contextual bandits over titles for page slots: LinUCB and linear Thompson sampling.

Each title :math:`t` is an arm with its own ridge regression on the visit context
:math:`x \in \mathbb R^d` (:func:`visit_context`: intercept, device, time of day, weekend), the
"disjoint" model of Li et al. (WWW 2010):

.. math::

    A_t = \lambda I + \sum_{i: t_i = t} w_i^2 x_i x_i^\top, \quad
    b_t = \sum_{i: t_i = t} w_i r_i x_i, \quad \hat\theta_t = A_t^{-1} b_t,

where :math:`r_i` is the play of impression :math:`i` and :math:`w_i` the examination weight of
its slot (``position_weights``; 1 when ``None``), i.e. :math:`E[r] = w\,\theta_t^\top x`, a
position-based model. A page holds the ``S`` arms with the highest index, best first:

LinUCB
    :math:`\hat\theta_t^\top x + \alpha \sqrt{x^\top A_t^{-1} x}`; deterministic, so
    :math:`P(t \text{ in slot } s) = [t = g_s]` (wrap it in
    :class:`~reelpick.policies.EpsilonGreedyPolicy` for exploration with exact propensities:
    a :class:`LinUCBPolicy` is also a :class:`~reelpick.policies.Scorer`).
Thompson sampling (Agrawal and Goyal, ICML 2013)
    one draw per arm, :math:`\tilde r_t \sim N(\hat\theta_t^\top x,\; v^2 x^\top A_t^{-1} x)`;
    the draws are independent across arms, so the per-slot propensity
    :math:`P(t \text{ at rank } r)` is the exact order-statistics integral of
    :func:`~reelpick.policies.order_stats.normal_rank_marginals` over the ``n_candidates``
    arms with the highest posterior mean (a deterministic pool).

Both learn in batch (:meth:`fit`, which starts over) and online (:meth:`partial_fit`), from
arrays or straight from logged pages, the shared contract
(:class:`~reelpick.decision.tables.LoggedPages`, :meth:`fit_pages`).

Example
-------
>>> import numpy as np
>>> pol = LinUCBPolicy(n_titles=3, alpha=0.0)
>>> x = visit_context(np.array([0, 0]), np.array([20, 20]), np.array([1, 1]))
>>> pol = pol.fit(x, titles=np.array([1, 2]), rewards=np.array([1.0, 0.0]))
>>> int(np.argmax(pol.expected_reward(x[:1])[0]))
1
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelpick.data.schema import DEVICES
from reelpick.decision import Marginals, VisitBatch
from reelpick.decision.tables import LoggedPages
from reelpick.policies.base import AnnotatedPageBatch, greedy_pages, grid_page, onehot_marginal
from reelpick.policies.order_stats import normal_rank_marginals

#: Names of the :func:`visit_context` columns.
CONTEXT_FEATURES: tuple[str, ...] = ("intercept", *(f"device={d}" for d in DEVICES),
                                     "afternoon", "evening", "night", "weekend")


def visit_context(device: np.ndarray, hour: np.ndarray, day_of_week: np.ndarray) -> np.ndarray:
    """``(n, d)`` context vectors: intercept, device one-hot, afternoon (12-17), evening
    (18-23), night (0-5) and weekend indicators (names in :data:`CONTEXT_FEATURES`)."""
    device, hour, dow = (np.asarray(a) for a in (device, hour, day_of_week))
    n = device.shape[0]
    x = np.zeros((n, len(CONTEXT_FEATURES)))
    x[:, 0] = 1.0
    x[np.arange(n), 1 + device] = 1.0
    x[:, 5] = (hour >= 12) & (hour < 18)
    x[:, 6] = hour >= 18
    x[:, 7] = hour < 6
    x[:, 8] = dow >= 5
    return x


@dataclass(frozen=True)
class BanditConfig:
    """``l2`` ridge prior precision :math:`\\lambda`; ``alpha`` LinUCB width; ``noise`` the TS
    posterior scale :math:`v`; ``n_candidates`` TS pool size (``None`` = every available
    title); ``position_weights`` examination weight per slot (``None`` = all 1)."""

    n_titles: int
    l2: float = 1.0
    alpha: float = 1.0
    noise: float = 0.5
    n_candidates: int | None = 50
    position_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.n_titles < 1:
            raise ValueError(f"n_titles: must be >= 1, got {self.n_titles!r}")
        if not self.l2 > 0:
            raise ValueError(f"l2: must be > 0, got {self.l2!r}")
        if not self.alpha >= 0:
            raise ValueError(f"alpha: must be >= 0, got {self.alpha!r}")
        if not self.noise > 0:
            raise ValueError(f"noise: must be > 0, got {self.noise!r}")
        if self.n_candidates is not None and self.n_candidates < 1:
            raise ValueError(f"n_candidates: must be >= 1 or None, got {self.n_candidates!r}")
        if self.position_weights is not None and any(w <= 0 for w in self.position_weights):
            raise ValueError("position_weights: must all be > 0")


class _LinearArms:
    """Shared state and learning of the two bandits (per-title ridge regressions)."""

    name = "bandit"
    version = "v1"

    def __init__(self, *, n_titles: int, l2: float = 1.0, alpha: float = 1.0,
                 noise: float = 0.5, n_candidates: int | None = 50,
                 position_weights: tuple[float, ...] | None = None, name: str | None = None
                 ) -> None:
        self.config = BanditConfig(n_titles, l2, alpha, noise, n_candidates,
                                   None if position_weights is None else tuple(position_weights))
        if name is not None:
            self.name = name
        self._reset()

    def _reset(self) -> None:
        T, d = self.config.n_titles, len(CONTEXT_FEATURES)
        self.A_ = np.tile(np.eye(d) * self.config.l2, (T, 1, 1))
        self.b_ = np.zeros((T, d))
        self.n_obs_ = 0
        self._solve()

    def _solve(self) -> None:
        self.A_inv_ = np.linalg.inv(self.A_)
        self.theta_ = np.einsum("tde,te->td", self.A_inv_, self.b_)

    # ------------------------------------------------------------------ learning
    def fit(self, contexts: np.ndarray, titles: np.ndarray, rewards: np.ndarray,
            slots: np.ndarray | None = None) -> _LinearArms:
        """Forget everything, then :meth:`partial_fit`. Returns ``self``."""
        self._reset()
        return self.partial_fit(contexts, titles, rewards, slots)

    def partial_fit(self, contexts: np.ndarray, titles: np.ndarray, rewards: np.ndarray,
                    slots: np.ndarray | None = None) -> _LinearArms:
        """Add impressions: ``contexts (m, d)``, ``titles (m,)``, ``rewards (m,)`` and,
        with ``position_weights``, their ``slots (m,)``. Returns ``self``."""
        x = np.asarray(contexts, dtype=np.float64)
        t = np.asarray(titles)
        r = np.asarray(rewards, dtype=np.float64)
        d = len(CONTEXT_FEATURES)
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"contexts: expected shape (m, {d}), got {x.shape}")
        if t.shape != (x.shape[0],) or r.shape != t.shape:
            raise ValueError(f"titles, rewards: expected shape ({x.shape[0]},), got "
                             f"{t.shape}, {r.shape}")
        if t.size and (t.min() < 0 or t.max() >= self.config.n_titles):
            raise ValueError(f"titles: must lie in 0..{self.config.n_titles - 1}")
        if not np.isfinite(r).all():
            raise ValueError("rewards: must be finite")
        w = np.ones(t.size)
        pw = self.config.position_weights
        if pw is not None:
            if slots is None:
                raise ValueError("slots: required when position_weights is set")
            sl = np.asarray(slots)
            if sl.shape != t.shape or (sl.size and (sl.min() < 0 or sl.max() >= len(pw))):
                raise ValueError(f"slots: expected ({t.size},) values in 0..{len(pw) - 1}")
            w = np.asarray(pw)[sl]
        xw = x * w[:, None]
        np.add.at(self.A_, t, xw[:, :, None] * xw[:, None, :])
        np.add.at(self.b_, t, xw * r[:, None])
        self.n_obs_ += int(t.size)
        self._solve()
        return self

    def fit_pages(self, pages: LoggedPages, *, partial: bool = False) -> _LinearArms:
        """Learn from logged pages' shown slots and plays (the context of each page;
        ``slot`` for ``position_weights``)."""
        v = pages.visit
        x = visit_context(pages.device[v], pages.hour[v], pages.day_of_week[v])
        fn = self.partial_fit if partial else self.fit
        return fn(x, pages.title, pages.play.astype(float), pages.slot)

    # ------------------------------------------------------------------ prediction
    def expected_reward(self, contexts: np.ndarray) -> np.ndarray:
        """Posterior mean :math:`\\hat\\theta_t^\\top x` for every title, ``(n, T)``."""
        return np.asarray(contexts) @ self.theta_.T

    def uncertainty(self, contexts: np.ndarray) -> np.ndarray:
        """:math:`\\sqrt{x^\\top A_t^{-1} x}` for every title, ``(n, T)``."""
        x = np.asarray(contexts)
        xx = (x[:, :, None] * x[:, None, :]).reshape(len(x), -1)
        q = xx @ self.A_inv_.reshape(self.config.n_titles, -1).T
        return np.sqrt(np.maximum(q, 1e-18))

    def _contexts(self, visits: VisitBatch) -> np.ndarray:
        if visits.catalog.n_titles != self.config.n_titles:
            raise ValueError(f"visits: catalogue has {visits.catalog.n_titles} titles, the "
                             f"bandit {self.config.n_titles}")
        return visit_context(visits.device, visits.hour, visits.day_of_week)

    @staticmethod
    def _slots(visits: VisitBatch) -> tuple[np.ndarray, np.ndarray]:
        s = np.arange(visits.n_slots)
        return s // visits.n_positions, s % visits.n_positions

    @staticmethod
    def _art(visits: VisitBatch) -> np.ndarray:
        cat = visits.catalog
        row = np.zeros(int(cat.art_offset[-1]))
        row[cat.art_offset[:-1]] = 1.0
        return np.broadcast_to(row, (len(visits), row.size))


class LinUCBPolicy(_LinearArms):
    """LinUCB over titles (see the module docstring); deterministic pages, propensity 1."""

    name = "linucb"

    def score(self, visits: VisitBatch) -> np.ndarray:
        """The upper confidence index of every title, ``(n, T)`` (a :class:`Scorer`)."""
        x = self._contexts(visits)
        return self.expected_reward(x) + self.config.alpha * self.uncertainty(x)

    def _pages(self, visits: VisitBatch) -> np.ndarray:
        s = self.score(visits)
        return greedy_pages(s, np.broadcast_to(visits.available[visits.country], s.shape),
                            visits)

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> AnnotatedPageBatch:
        del rng
        titles = self._pages(visits)
        return grid_page(titles, visits, np.ones(titles.shape), "LinUCB")

    def marginals(self, visits: VisitBatch) -> Marginals:
        m = onehot_marginal(self._pages(visits), visits.catalog.n_titles)
        return Marginals(m, *self._slots(visits), self._art(visits))


class ThompsonSamplingPolicy(_LinearArms):
    """Linear Thompson sampling over titles with exact per-slot propensities (module
    docstring)."""

    name = "thompson"

    def posterior(self, visits: VisitBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(pool, mean, sd)``, each ``(n, K)``: the candidate arms (``-1`` = padding, mean
        ``-inf``) and the mean and sd of their sampled scores."""
        x = self._contexts(visits)
        mean = self.expected_reward(x)
        sd = self.config.noise * self.uncertainty(x)
        avail = visits.available[visits.country]
        key = np.where(avail, mean, -np.inf)
        n, T = key.shape
        k = T if self.config.n_candidates is None else min(self.config.n_candidates, T)
        pool = (np.argpartition(-key, k - 1, axis=1)[:, :k] if k < T
                else np.tile(np.arange(T), (n, 1)))
        pk = np.take_along_axis(key, pool, axis=1)
        order = np.lexsort((pool, -pk), axis=1)
        pool = np.take_along_axis(pool, order, axis=1)
        pm = np.take_along_axis(key, pool, axis=1)
        ps = np.take_along_axis(sd, pool, axis=1)
        if not np.isfinite(pm[:, 0]).all():
            raise ValueError("visits: a visit has no available title")
        return np.where(np.isfinite(pm), pool, -1), pm, ps

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> AnnotatedPageBatch:
        pool, mean, sd = self.posterior(visits)
        n, K = mean.shape
        S = visits.n_slots
        k = min(S, K)
        draw = np.where(np.isfinite(mean), mean + sd * rng.standard_normal((n, K)), -np.inf)
        rank = np.argsort(-draw, axis=1, kind="stable")[:, :k]
        marg = normal_rank_marginals(mean, sd, k)
        rows = np.arange(n)[:, None]
        ok = np.isfinite(mean[rows, rank])
        titles = np.full((n, S), -1, dtype=np.int64)
        prop = np.ones((n, S))
        titles[:, :k] = np.where(ok, pool[rows, rank], -1)
        prop[:, :k] = np.where(ok, marg[rows, rank, np.arange(k)[None, :]], 1.0)
        return grid_page(titles, visits, prop, "Thompson")

    def marginals(self, visits: VisitBatch) -> Marginals:
        pool, mean, sd = self.posterior(visits)
        n, K = mean.shape
        k = min(visits.n_slots, K)
        marg = normal_rank_marginals(mean, sd, k)
        m = np.zeros((n, visits.catalog.n_titles, visits.n_slots))
        i, j = np.nonzero(pool >= 0)
        m[i, pool[i, j], :k] = marg[i, j]
        return Marginals(m, *self._slots(visits), self._art(visits))
