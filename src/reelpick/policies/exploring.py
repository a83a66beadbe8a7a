r"""Exploring loggers: a deterministic page policy plus exploration, with exact propensities.

:class:`ExploringPolicy` serves a deterministic page policy and, for a share :math:`\epsilon` of
visits (drawn per visit), a uniformly random page (the exploration bucket). Images are drawn
uniformly per slot (``artwork_propensity = 1 / n_variants``) unless an ``artwork`` selector is
given. The propensity of the title shown in slot :math:`s` is exact:

.. math::

    P(t \text{ in } s \mid v) = \epsilon \cdot \frac{1}{A_v} + (1 - \epsilon)\,[t = b_s(v)]

(:math:`A_v` the titles available to the visit, :math:`b(v)` the base policy's page), and
``source`` marks each visit ``"explore"`` or the base policy's name.
:class:`PoolExploringPolicy` adds exploration over a pool of candidate policies.

Example
-------
>>> import numpy as np
>>> from reelpick.policies import GreedyPolicy
>>> from reelpick.world import World, WorldConfig
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> vb = world.make_visits(np.arange(50), world.config.start + 3600)
>>> page = ExploringPolicy(GreedyPolicy(), epsilon=0.5).choose(vb, np.random.default_rng(0))
>>> bool(((page.propensity > 0) & (page.propensity <= 1)).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reelpick.decision import Policy, VisitBatch
from reelpick.policies.base import AnnotatedPageBatch
from reelpick.policies.basic import sample_uniform_pages


def _deterministic_page(policy: Policy, visits: VisitBatch, rng: np.random.Generator
                        ) -> AnnotatedPageBatch:
    """``policy``'s pages, checked to be deterministic (propensity 1 on its own page): the
    exploring loggers' propensities assume it."""
    base = policy.choose(visits, rng)
    p = base.propensity[base.titles >= 0]
    if not (p == 1.0).all() and not np.allclose(p, 1.0):  # exact ones: the usual case, cheap
        raise ValueError(f"base policy {policy.name!r} is not deterministic "
                         "(propensities < 1): an exploring logger needs a deterministic base")
    return base


def _annotated(visits: VisitBatch, base: AnnotatedPageBatch, titles: np.ndarray,
               prop: np.ndarray, source: np.ndarray, rng: np.random.Generator,
               artwork: object | None = None, explored: np.ndarray | None = None
               ) -> AnnotatedPageBatch:
    """The served page: ``titles`` in ``base``'s layout, images from ``artwork``
    (``select(visits, titles, rng)``) or uniform over each title's variants. ``explored``
    ``(n,)``: the uniformly random pages, shown once, passed as ``once=`` to a selector that
    remembers image distributions (``remembers_pages``), so that they do not push the repeat
    pages' distributions out of its memo."""
    if artwork is not None:
        once = (explored is not None and explored.any()
                and getattr(artwork, "remembers_pages", False))
        kw = {"once": explored} if once else {}
        choice = artwork.select(visits, titles, rng, **kw)  # type: ignore[attr-defined]
        arts, aprop = choice.artworks, choice.propensity
    else:
        nv = visits.catalog.n_variants[np.where(titles >= 0, titles, 0)]
        arts = np.where(titles >= 0, (rng.random(titles.shape) * nv).astype(np.int64), 0)
        aprop = np.where(titles >= 0, 1.0 / nv, 1.0)
    score = getattr(base, "score", None)
    if score is not None:  # the base's score where its title stayed, NaN for explored ones
        score = np.where((titles == base.titles) & (titles >= 0), score, np.nan)
    return AnnotatedPageBatch(
        titles=titles, artworks=arts, row_index=base.row_index, position=base.position,
        propensity=prop, artwork_propensity=aprop, row_labels=base.row_labels,
        slot_label=getattr(base, "slot_label", None), source=source, score=score)


@dataclass(frozen=True, eq=False)
class ExploringPolicy:
    """``base`` pages with probability ``1 - epsilon``, uniform pages otherwise (module
    docstring). ``base`` must be deterministic (propensity 1 on its own page); ``artwork`` is an
    optional image selector (``select(visits, titles, rng)``) used instead of uniform images."""

    base: Policy
    epsilon: float
    artwork: object | None = None
    name: str = field(default="")

    def __post_init__(self) -> None:
        if not 0 <= self.epsilon < 1:
            raise ValueError(f"epsilon: must be in [0, 1), got {self.epsilon!r}")
        if not self.name:
            object.__setattr__(self, "name", f"{self.base.name}+explore")

    @property
    def version(self) -> str:
        return str(getattr(self.base, "version", "v0"))

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> AnnotatedPageBatch:
        n, S = len(visits), visits.n_slots
        base = _deterministic_page(self.base, visits, rng)
        explore = rng.random(n) < self.epsilon
        titles = base.titles.copy()
        if explore.any():
            idx = np.flatnonzero(explore)
            uni, _ = sample_uniform_pages(visits.available, visits.country[idx], S, rng)
            titles[idx] = uni
        A = visits.n_available().astype(float)
        match = (titles == base.titles) & (titles >= 0)
        prop = self.epsilon / np.maximum(A, 1)[:, None] + (1 - self.epsilon) * match
        prop = np.where(titles >= 0, np.minimum(prop, 1.0), 1.0)
        source = np.where(explore, "explore", str(self.base.name)).astype(object)
        return _annotated(visits, base, titles, prop, source, rng, self.artwork, explore)


class PoolExploringPolicy:
    r"""The production logging policy: the shipped ``base`` page, a uniformly random page for a
    share ``epsilon`` of visits, and for a share ``pool_epsilon`` the page of one candidate
    policy of ``pool`` drawn uniformly (exploration over the candidate pool: the next
    release's candidates, so every candidate's page has a known, non-negligible chance of
    being shown). Without a pool the pool share is served uniformly too.

    Exact marginal propensity of title :math:`t` in slot :math:`s` (``K`` pool policies,
    :math:`A_v` available titles, :math:`\epsilon_u` = ``epsilon``, :math:`\epsilon_p` =
    ``pool_epsilon``):

    .. math::

        P(t \text{ in } s \mid v) = (1 - \epsilon_u - \epsilon_p)[t = b_s(v)]
            + \frac{\epsilon_u}{A_v} + \frac{\epsilon_p}{K} \sum_k P_k(t \text{ in } s \mid v)

    where :math:`P_k(t \text{ in } s \mid v)` is pool policy ``k``'s own marginal: the
    indicator :math:`[t = c_{k,s}(v)]` of its page where that page is deterministic (every
    propensity 1), otherwise ``marginals(visits).title_slot[i, t, s]`` of a stochastic pool
    policy (an :class:`~reelpick.decision.ExactPolicy`, e.g. ``SoftmaxPolicy``; a stochastic
    one without ``marginals`` is refused, since its propensities of titles it did not draw are
    unknown). The draw of a stochastic pool policy is therefore part of the logger's
    randomness, and the logged propensity is the marginal over it, not the probability given
    the draw (:meth:`slot_propensity`; a page's probability is :meth:`page_propensity`).
    ``source`` is ``"explore"`` (uniform), ``"pool:<name>"`` or the base policy's name. Every
    call appends the base and pool pages to ``records`` (what offline evaluation needs; the
    caller takes them with :meth:`take_records`), with ``deterministic (n, K)``: which pool
    pages were deterministic (where the default indicators of :meth:`slot_propensity` and
    :meth:`page_propensity` are exact)."""

    _MARGINAL_CHUNK = 512   # visits per marginals() call of a stochastic pool policy

    def __init__(self, base: Policy, epsilon: float, pool_epsilon: float = 0.0,
                 pool: tuple[Policy, ...] | list[Policy] = (), *, name: str = "") -> None:
        if not 0 <= epsilon < 1 or not 0 <= pool_epsilon < 1 or epsilon + pool_epsilon >= 1:
            raise ValueError(f"epsilon, pool_epsilon: need shares in [0, 1) with a sum < 1, got "
                             f"{epsilon!r}, {pool_epsilon!r}")
        self.base, self.pool = base, tuple(pool)
        self.epsilon, self.pool_epsilon = float(epsilon), float(pool_epsilon)
        self.name = name or f"{base.name}+explore"
        self.records: list[dict[str, np.ndarray]] = []

    @property
    def version(self) -> str:
        return str(getattr(self.base, "version", "v0"))

    @property
    def shares(self) -> tuple[float, float]:
        """(uniform, pool) shares actually used (no pool: all exploration is uniform)."""
        if self.pool:
            return self.epsilon, self.pool_epsilon
        return self.epsilon + self.pool_epsilon, 0.0

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> AnnotatedPageBatch:
        n, S = len(visits), visits.n_slots
        base = _deterministic_page(self.base, visits, rng)
        eu, ep = self.shares
        K = len(self.pool)
        pages = [p.choose(visits, rng) for p in self.pool]
        pool = np.stack([pg.titles for pg in pages], axis=1) if K \
            else np.zeros((n, 0, S), np.int64)
        # a pool page is deterministic for a visit when all its shown slots have propensity 1
        det = np.stack([np.where(pg.titles >= 0, np.isclose(pg.propensity, 1.0), True).all(
            axis=1) for pg in pages], axis=1) if K else np.zeros((n, 0), bool)
        u = rng.random(n)
        explore = u < eu
        from_pool = ~explore & (u < eu + ep)
        pick = np.where(from_pool, rng.integers(0, max(K, 1), n), -1)
        titles = base.titles.copy()
        if explore.any():
            idx = np.flatnonzero(explore)
            titles[idx], _ = sample_uniform_pages(visits.available, visits.country[idx], S, rng)
        if from_pool.any():
            idx = np.flatnonzero(from_pool)
            titles[idx] = pool[idx, pick[idx]]
        A = visits.n_available().astype(float)
        prop = self.slot_propensity(titles, base.titles, pool, A,
                                    self.pool_slot_probability(visits, titles, pool, det))
        names = np.array([f"pool:{p.name}" for p in self.pool] + [""], dtype=object)
        source = np.where(explore, "explore", np.where(from_pool, names[pick],
                                                       str(self.base.name))).astype(object)
        page = _annotated(visits, base, titles, prop, source, rng)
        self.records.append({"member": np.asarray(visits.member).copy(), "base": base.titles,
                             "pool": pool, "pick": pick, "available": A, "deterministic": det})
        return page

    def pool_slot_probability(self, visits: VisitBatch, titles: np.ndarray, pool: np.ndarray,
                              deterministic: np.ndarray) -> np.ndarray:
        """``(n, K, S)``: P(pool policy ``k`` puts ``titles[i, s]`` in slot ``s`` | visit
        ``i``): the indicator ``pool[i, k, s] == titles[i, s]`` where its page ``pool[i, k]``
        was ``deterministic[i, k]``, else its ``marginals(visits).title_slot``. A stochastic
        pool policy without ``marginals`` raises ``ValueError``."""
        out = (pool == titles[:, None, :]).astype(float)
        ok = titles >= 0
        safe = np.where(ok, titles, 0)
        slots = np.arange(titles.shape[1])[None, :]
        for k, pol in enumerate(self.pool):
            if deterministic[:, k].all():
                continue
            marginals = getattr(pol, "marginals", None)
            if marginals is None:
                raise ValueError(f"pool policy {pol.name!r} is stochastic (propensities < 1) "
                                 "and has no marginals(visits): its probability of showing a "
                                 "title it did not draw is unknown, so the logged propensities "
                                 "could not be exact; give it marginals() or make it "
                                 "deterministic")
            need = np.flatnonzero(~deterministic[:, k])
            for lo in range(0, need.size, self._MARGINAL_CHUNK):   # (chunk, T, S) at a time
                idx = need[lo:lo + self._MARGINAL_CHUNK]
                ts = marginals(visits.subset(idx)).title_slot
                r = np.arange(idx.size)[:, None]
                out[idx, k] = np.where(ok[idx], ts[r, safe[idx], slots], 0.0)
        return out

    def slot_propensity(self, titles: np.ndarray, base: np.ndarray, pool: np.ndarray,
                        available: np.ndarray, pool_probability: np.ndarray | None = None
                        ) -> np.ndarray:
        """Exact ``P(titles[i, s] in slot s)`` (class docstring); 1 where ``titles < 0``.

        ``pool_probability (n, K, S)``: each pool policy's probability of ``titles[i, s]`` in
        slot ``s`` (:meth:`pool_slot_probability`); the default, the indicator
        ``pool == titles``, is exact where the pool pages were deterministic (``records``'
        ``deterministic``)."""
        eu, ep = self.shares
        K = pool.shape[1]
        p = eu / np.maximum(available, 1)[:, None] + (1 - eu - ep) * (titles == base)
        if K:
            q = (pool == titles[:, None, :]) if pool_probability is None else pool_probability
            p = p + ep * q.mean(axis=1)
        return np.where(titles >= 0, np.minimum(p, 1.0), 1.0)

    def page_propensity(self, page: np.ndarray, base: np.ndarray, pool: np.ndarray,
                        pool_probability: np.ndarray | None = None) -> np.ndarray:
        """Probability that the whole page ``page (n, S)`` is served (a uniform page is never
        counted: its chance of equalling a given page is below 1e-50). ``pool_probability (n,
        K)``: each pool policy's probability of the whole page (e.g. ``list_propensity`` of a
        stochastic one); the default, the indicator ``pool == page``, is exact for
        deterministic pool pages."""
        eu, ep = self.shares
        K = pool.shape[1]
        p = (1 - eu - ep) * (page == base).all(axis=1)
        if K:
            q = (pool == page[:, None, :]).all(axis=2) if pool_probability is None \
                else pool_probability
            p = p + ep * q.mean(axis=1)
        return p

    def take_records(self) -> dict[str, np.ndarray]:
        """The records of all calls since the last take, concatenated (visits in call order)."""
        recs, self.records = self.records, []
        if not recs:
            raise ValueError("no records: choose() was not called")
        return {k: np.concatenate([r[k] for r in recs]) for k in recs[0]}
