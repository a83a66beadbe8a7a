r"""Reference page policies with exact propensities: uniform and popular.

Both follow :class:`reelpick.decision.ExactPolicy`: ``choose(visits, rng)`` returns a
:class:`~reelpick.decision.PageBatch` whose ``propensity[i, s]`` is the exact probability that
the title shown in slot ``s`` of visit ``i`` is shown there, and ``marginals(visits)`` gives the
whole exposure distribution (for exact policy values).

Uniform page
    ``S`` distinct titles drawn uniformly without replacement from the ``A`` titles available to
    the visit and laid out in draw order. By symmetry every title is equally likely in every slot:

    .. math:: P(\text{title } t \text{ in slot } s) = 1 / A \quad (s < \min(S, A)),

    and slots ``s >= A`` stay empty when the catalogue is smaller than the page.
Artwork
    ``artwork="random"`` picks a variant uniformly, ``P(variant | title) = 1 / n_variants``;
    ``"first"`` always shows variant 0 (propensity 1).

Example
-------
>>> from reelpick.world import World, WorldConfig
>>> world = World(WorldConfig.preset("small"), seed=1)
>>> log = world.simulate(UniformPolicy(), n_visits=50)
>>> imp = log.impressions()
>>> bool(((imp["propensity"] > 0) & (imp["propensity"] < 1)).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelpick.decision import Marginals, PageBatch, VisitBatch

_ARTWORK = ("random", "first")


def _check_artwork(artwork: str) -> None:
    if artwork not in _ARTWORK:
        raise ValueError(f"artwork: use one of {_ARTWORK}, got {artwork!r}")


def sample_uniform_pages(pool: np.ndarray, group: np.ndarray, n_slots: int,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Distinct titles drawn uniformly without replacement from ``pool[group[i]]``.

    Parameters
    ----------
    pool : (n_groups, T) bool, the titles each group may draw from.
    group : (n,) int, each visit's group.
    n_slots : S.

    Returns
    -------
    titles : (n, S) int, ``-1`` in slots beyond the pool size.
    size : (n,) int, the pool size ``A`` of each visit (propensity is ``1 / A``).

    Draws ``S + 16`` indices with replacement and keeps first occurrences (exactly sequential
    sampling without replacement); rows with too few distinct draws use random sort keys.
    """
    n = group.size
    sizes = pool.sum(axis=1)
    lists = np.zeros((pool.shape[0], max(int(sizes.max(initial=0)), 1)), dtype=np.int64)
    for g in range(pool.shape[0]):
        idx = np.flatnonzero(pool[g])
        lists[g, : idx.size] = idx
    a = sizes[group]
    out = np.full((n, n_slots), -1, dtype=np.int64)
    local = np.full((n, n_slots), -1, dtype=np.int64)
    fast = a >= 4 * n_slots
    rows = np.flatnonzero(fast)
    if rows.size:
        m = n_slots + 16
        draws = (rng.random((rows.size, m)) * a[rows, None]).astype(np.int64)
        order = np.argsort(draws, axis=1, kind="stable")
        srt = np.take_along_axis(draws, order, axis=1)
        dup = np.zeros_like(draws, dtype=bool)
        np.put_along_axis(dup, order[:, 1:], srt[:, 1:] == srt[:, :-1], axis=1)
        keep = ~dup
        ok = keep.sum(axis=1) >= n_slots
        first = np.argsort(~keep, axis=1, kind="stable")[:, :n_slots]
        local[rows[ok]] = np.take_along_axis(draws, first, axis=1)[ok]
        fast[rows[~ok]] = False
    rows = np.flatnonzero(~fast & (a > 0))
    if rows.size:
        keys = rng.random((rows.size, lists.shape[1]))
        keys[np.arange(lists.shape[1])[None, :] >= a[rows, None]] = np.inf
        k = min(n_slots, lists.shape[1])
        pick = np.argsort(keys, axis=1)[:, :k]
        pick[np.arange(k)[None, :] >= a[rows, None]] = -1
        local[rows, :k] = pick
    has = local >= 0
    out[has] = lists[np.broadcast_to(group[:, None], local.shape)[has], local[has]]
    return out, a


def _artworks(titles: np.ndarray, visits: VisitBatch, mode: str, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    nv = visits.catalog.n_variants[np.where(titles >= 0, titles, 0)]
    if mode == "first":
        return np.zeros_like(titles), np.ones(titles.shape)
    return (rng.random(titles.shape) * nv).astype(np.int64), 1.0 / nv


def _artwork_marginals(visits: VisitBatch, mode: str) -> np.ndarray:
    cat = visits.catalog
    n_art = int(cat.art_offset[-1])
    if mode == "random":
        row = 1.0 / np.repeat(cat.n_variants, cat.n_variants)
    else:
        row = np.zeros(n_art)
        row[cat.art_offset[:-1]] = 1.0
    return np.broadcast_to(row, (len(visits), n_art))


def _uniform_marginal(pool: np.ndarray, size: np.ndarray, n_slots: int) -> np.ndarray:
    """(n, T, S): ``pool / size`` in slots ``s < min(S, size)``."""
    filled = np.arange(n_slots)[None, :] < size[:, None]
    p = pool / np.maximum(size, 1)[:, None]
    return p[:, :, None] * filled[:, None, :]


@dataclass(frozen=True)
class UniformPolicy:
    """A uniformly random page from the titles available in the visit's country and day.

    ``P(title t in slot s) = 1 / A`` (``A`` available titles), see the module docstring.
    """

    artwork: str = "random"
    name: str = "uniform"
    version: str = "v1"

    def __post_init__(self) -> None:
        _check_artwork(self.artwork)

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        titles, a = sample_uniform_pages(visits.available, visits.country, visits.n_slots, rng)
        art, art_p = _artworks(titles, visits, self.artwork, rng)
        prop = np.broadcast_to(1.0 / np.maximum(a, 1)[:, None], titles.shape)
        return PageBatch.grid(titles, n_rows=visits.n_rows, n_positions=visits.n_positions,
                              propensity=np.where(titles >= 0, prop, 1.0), artworks=art,
                              artwork_propensity=art_p,
                              row_labels=tuple(f"Explore {r + 1}" for r in range(visits.n_rows)))

    def marginals(self, visits: VisitBatch) -> Marginals:
        pool = visits.available[visits.country]
        ts = _uniform_marginal(pool, pool.sum(axis=1), visits.n_slots)
        s = np.arange(visits.n_slots)
        return Marginals(ts, s // visits.n_positions, s % visits.n_positions,
                         _artwork_marginals(visits, self.artwork))


@dataclass(frozen=True)
class PopularPolicy:
    r"""The most popular available titles (by the catalogue's observable popularity on the
    visit's day), best first, row by row; with probability ``epsilon`` a uniform page instead.

    .. math:: P(t \text{ in slot } s) = (1 - \epsilon)\,[t = \mathrm{top}_s] + \epsilon / A

    With ``epsilon = 0`` every propensity is 1.
    """

    epsilon: float = 0.0
    artwork: str = "first"
    name: str = "popular"
    version: str = "v1"

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon: must be in [0, 1], got {self.epsilon!r}")
        _check_artwork(self.artwork)

    def _top(self, visits: VisitBatch) -> np.ndarray:
        """(n_countries, S) top titles per country (-1 when fewer available)."""
        S = visits.n_slots
        score = np.where(visits.available, visits.catalog.popularity[None, :], -np.inf)
        order = np.argsort(-score, axis=1, kind="stable")[:, :S]
        top = np.full((visits.available.shape[0], S), -1, dtype=np.int64)
        top[:, : order.shape[1]] = order
        n_av = visits.available.sum(axis=1)
        top[np.arange(S)[None, :] >= n_av[:, None]] = -1
        return top

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        titles = self._top(visits)[visits.country]
        a = visits.n_available()
        if self.epsilon > 0:
            explore = rng.random(len(visits)) < self.epsilon
            uni, _ = sample_uniform_pages(visits.available, visits.country, visits.n_slots, rng)
            titles = np.where(explore[:, None], uni, titles)
            top = self._top(visits)[visits.country]
            prop = (1 - self.epsilon) * (titles == top) + self.epsilon / np.maximum(a, 1)[:, None]
        else:
            prop = np.ones(titles.shape)
        art, art_p = _artworks(titles, visits, self.artwork, rng)
        return PageBatch.grid(titles, n_rows=visits.n_rows, n_positions=visits.n_positions,
                              propensity=np.where(titles >= 0, prop, 1.0), artworks=art,
                              artwork_propensity=art_p,
                              row_labels=tuple(f"Popular {r + 1}" for r in range(visits.n_rows)))

    def marginals(self, visits: VisitBatch) -> Marginals:
        n, T, S = len(visits), visits.catalog.n_titles, visits.n_slots
        pool = visits.available[visits.country]
        ts = self.epsilon * _uniform_marginal(pool, pool.sum(axis=1), S)
        top = self._top(visits)[visits.country]
        i, s = np.nonzero(top >= 0)
        ts[i, top[i, s], s] += 1 - self.epsilon
        assert ts.shape == (n, T, S)
        slots = np.arange(S)
        return Marginals(ts, slots // visits.n_positions, slots % visits.n_positions,
                         _artwork_marginals(visits, self.artwork))
