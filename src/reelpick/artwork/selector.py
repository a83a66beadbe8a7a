r"""Choosing images after titles: the selector interface, image-explore, and the page wrapper.

The artwork choice happens *after* the title choice, so it composes with any page policy:

* an :class:`ArtworkSelector` maps ``(visits, page_titles (n, S), rng)`` to an
  :class:`ArtworkChoice` ``(artworks, propensity)``, each ``(n, S)``: the variant shown for each
  slot's title and its exact probability :math:`\mu(a \mid x, t)`; ``probabilities`` gives the
  whole distribution ``(n, S, V)`` (``V`` = most variants of any title, zero-padded);
* :class:`WithArtwork` wraps a title policy (any :class:`reelpick.world.Policy`) and a selector
  into a page policy for the world: same titles and title propensities, new images. Its
  ``marginals`` carry the selector's image distribution, so ``World.policy_value`` is exact;
* :class:`UniformArtwork` is the **image-explore** mode: a uniformly random image per
  (member, title), ``propensity = 1 / n_variants``. With ``sticky=True`` (default) the image is a
  seeded hash of (member, title), so a member keeps seeing the same random image of a title, as
  in Netflix's explore cell; with ``sticky=False`` it is redrawn from ``rng`` every impression.

Example
-------
>>> import numpy as np
>>> from reelpick.world import World, WorldConfig
>>> from reelpick.policies import PopularPolicy
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> explore = image_explore(PopularPolicy(), seed=3)
>>> log = world.simulate(explore, n_visits=50)
>>> imp = log.impressions()
>>> bool(np.allclose(imp["artwork_propensity"], 1 / imp["title_id"].map(
...     world.titles().set_index("title_id")["n_artworks"])))
True
>>> explore.name
'popular+image-explore'
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from reelpick.decision import ExactPolicy, Marginals, PageBatch, Policy, VisitBatch


class ArtworkChoice(NamedTuple):
    """``artworks (n, S)`` variant within each title (0 for empty slots) and ``propensity
    (n, S)`` = P(this variant | visit, title) (1 for empty slots)."""

    artworks: np.ndarray
    propensity: np.ndarray


@runtime_checkable
class ArtworkSelector(Protocol):
    """Chooses an image for each title of a page, with exact probabilities."""

    @property
    def name(self) -> str:
        """Written to the logs (read-only: frozen selectors qualify)."""
        ...

    def select(self, visits: VisitBatch, titles: np.ndarray, rng: np.random.Generator
               ) -> ArtworkChoice:
        """One variant per slot of ``titles (n, S)`` (``-1`` = empty), drawn from ``rng``."""
        ...

    def probabilities(self, visits: VisitBatch, titles: np.ndarray) -> np.ndarray:
        """``(n, S, V)``: P(variant | visit, title); rows of shown titles sum to 1."""
        ...


def _check_titles(visits: VisitBatch, titles: np.ndarray, n_titles: int) -> np.ndarray:
    t = np.asarray(titles)
    if t.ndim != 2 or t.shape[0] != len(visits):
        raise ValueError(f"titles: expected shape ({len(visits)}, n_slots), got {t.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"titles: expected integer title indices, got dtype {t.dtype}")
    if t.size and (t.max() >= n_titles or t.min() < -1):
        raise ValueError(f"titles: indices must lie in -1..{n_titles - 1}")
    return t.astype(np.int64, copy=False)


class ArtworkSelectorBase:
    """Epsilon mixing, sampling and marginals on top of a base distribution ``_base``.

    Subclasses define ``catalog``, ``config.epsilon``, ``n_members`` and ``_base(member, device,
    titles, rng, once) -> (probs (n, S, V), draw (n, S) or None)`` (``None``: the base is
    one-hot; ``once``: ``(n,)`` pages shown once, or ``None``, see :meth:`select_for`)."""

    name = "artwork"
    catalog: object
    config: object
    n_members: int

    def _base(self, member: np.ndarray, device: np.ndarray, titles: np.ndarray,
              rng: np.random.Generator | None, once: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def _mix(self, base: np.ndarray, titles: np.ndarray) -> np.ndarray:
        eps = float(self.config.epsilon)  # type: ignore[attr-defined]
        if eps == 0.0:
            return base
        _, valid = self.catalog.pad(titles)  # type: ignore[attr-defined]
        nv = np.maximum(valid.sum(axis=2, keepdims=True), 1)
        return (1.0 - eps) * base + eps * valid / nv

    def _check_members(self, member: np.ndarray) -> None:
        if member.size and (member.min() < 0 or member.max() >= self.n_members):
            raise ValueError(f"visits.member: indices must lie in 0..{self.n_members - 1}")

    def probabilities_for(self, member: np.ndarray, device: np.ndarray, titles: np.ndarray
                          ) -> np.ndarray:
        """``(n, S, V)`` image distribution for members/devices ``(n,)`` and ``titles (n, S)``."""
        member = np.asarray(member, dtype=np.int64)
        self._check_members(member)
        base, _ = self._base(member, np.asarray(device), np.asarray(titles), None)
        return self._mix(base, np.asarray(titles))

    def probabilities(self, visits: VisitBatch, titles: np.ndarray) -> np.ndarray:
        t = _check_titles(visits, titles, self.catalog.n_titles)  # type: ignore[attr-defined]
        return self.probabilities_for(visits.member, visits.device, t)

    def row_probabilities(self, rows: object) -> np.ndarray:
        """``(m, V)`` image distribution for each logged row's (member, device, title): the
        target ``action_dist`` for off-policy evaluation."""
        r = rows
        return self.probabilities_for(r.member, r.device,  # type: ignore[attr-defined]
                                      r.title[:, None])[:, 0, :]  # type: ignore[attr-defined]

    def select_for(self, member: np.ndarray, device: np.ndarray, titles: np.ndarray,
                   rng: np.random.Generator, *, once: np.ndarray | None = None
                   ) -> ArtworkChoice:
        """:meth:`select` on plain arrays (member and device ``(n,)``, titles ``(n, S)``).
        ``once`` ``(n,)`` marks pages shown once (an explored page's random titles): a
        selector that remembers image distributions for repeat pages computes theirs without
        remembering them (the same distributions; no repeat page's memo is pushed out)."""
        member = np.asarray(member, dtype=np.int64)
        self._check_members(member)
        titles = np.asarray(titles)
        if once is not None:
            once = np.asarray(once, dtype=bool)
            if once.shape != (len(member),):
                raise ValueError(f"once: expected shape ({len(member)},), got {once.shape}")
        base, draw = self._base(member, np.asarray(device), titles, rng, once)
        probs = self._mix(base, titles)
        shown = titles >= 0
        if draw is None:
            draw = np.argmax(base, axis=2)
        eps = float(self.config.epsilon)  # type: ignore[attr-defined]
        if eps > 0.0:
            nv = self.catalog.n_variants[np.where(shown, titles, 0)]  # type: ignore
            explore = rng.random(titles.shape) < eps
            uniform = (rng.random(titles.shape) * nv).astype(np.int64)
            draw = np.where(explore, uniform, draw)
        art = np.where(shown, draw, 0).astype(np.int64)
        prop = np.take_along_axis(probs, art[..., None], axis=2)[..., 0]
        return ArtworkChoice(art, np.where(shown, prop, 1.0))

    def select(self, visits: VisitBatch, titles: np.ndarray, rng: np.random.Generator, *,
               once: np.ndarray | None = None) -> ArtworkChoice:
        t = _check_titles(visits, titles, self.catalog.n_titles)  # type: ignore[attr-defined]
        return self.select_for(visits.member, visits.device, t, rng, once=once)

    def artwork_marginals(self, visits: VisitBatch, chunk_elements: int = 2_000_000
                          ) -> np.ndarray:
        """``(n, n_artworks)``: P(variant | title shown) over the flat artwork array, for
        :class:`reelpick.world.Marginals` (exact policy values)."""
        cat = self.catalog
        T = cat.n_titles  # type: ignore[attr-defined]
        titles = np.arange(T)[None, :]
        _, valid = cat.pad(titles)  # type: ignore[attr-defined]
        keep = valid.reshape(-1)
        n = len(visits)
        out = np.empty((n, cat.n_artworks))  # type: ignore[attr-defined]
        step = max(1, chunk_elements // max(1, keep.size * 8))
        for lo in range(0, n, step):
            idx = np.arange(lo, min(lo + step, n))
            p = self.probabilities_for(visits.member[idx], visits.device[idx],
                                       np.broadcast_to(titles, (idx.size, T)))
            out[idx] = p.reshape(idx.size, -1)[:, keep]
        return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def sticky_uniform(member: np.ndarray, title: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per (member, title), fixed by ``seed`` (SplitMix64 hash)."""
    m = np.asarray(member).astype(np.uint64)
    t = np.asarray(title).astype(np.uint64)
    h = _splitmix(_splitmix(np.full(np.broadcast(m, t).shape, np.uint64(seed)) ^ m) ^ t)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


@dataclasses.dataclass(frozen=True)
class UniformArtwork:
    """Image-explore: a uniformly random variant per (member, title); ``P = 1 / n_variants``.

    ``sticky=True``: the variant is a hash of (member, title, ``seed``), the same at every
    impression (uniform over the assignment); ``sticky=False``: drawn from ``rng`` each time.
    """

    sticky: bool = True
    seed: int = 0
    name: str = "image-explore"

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) \
                or self.seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {self.seed!r}")

    @staticmethod
    def _uniform(titles: np.ndarray, n_variants: np.ndarray) -> np.ndarray:
        shown = titles >= 0
        nv = n_variants[np.where(shown, titles, 0)]
        k = np.arange(int(n_variants.max()))
        return np.where((k < nv[..., None]) & shown[..., None], 1.0 / nv[..., None], 0.0)

    def probabilities(self, visits: VisitBatch, titles: np.ndarray) -> np.ndarray:
        t = _check_titles(visits, titles, visits.catalog.n_titles)
        return self._uniform(t, visits.catalog.n_variants)

    def row_probabilities(self, rows: object) -> np.ndarray:
        nv = rows.n_variants  # type: ignore[attr-defined]
        k = np.arange(int(nv.max()))
        return np.where(k < nv[:, None], 1.0 / nv[:, None], 0.0)

    def select(self, visits: VisitBatch, titles: np.ndarray, rng: np.random.Generator
               ) -> ArtworkChoice:
        t = _check_titles(visits, titles, visits.catalog.n_titles)
        shown = t >= 0
        nv = visits.catalog.n_variants[np.where(shown, t, 0)]
        u = (sticky_uniform(visits.member[:, None], np.where(shown, t, 0), self.seed)
             if self.sticky else rng.random(t.shape))
        art = np.minimum((u * nv).astype(np.int64), nv - 1)
        return ArtworkChoice(np.where(shown, art, 0), np.where(shown, 1.0 / nv, 1.0))

    def artwork_marginals(self, visits: VisitBatch) -> np.ndarray:
        cat = visits.catalog
        row = 1.0 / np.repeat(cat.n_variants, cat.n_variants)
        return np.broadcast_to(row, (len(visits), row.size))


class WithArtwork:
    """A page policy: ``title_policy`` picks the titles, then ``selector`` their images.

    ``choose`` returns the title policy's page (same titles, slots, title propensities, row
    labels and annotations) with ``artworks`` and ``artwork_propensity`` from the selector, which
    draws from the same ``rng`` after the title policy. ``marginals`` = the title policy's,
    with the selector's ``artwork_marginals`` (both must exist for exact values).
    """

    def __init__(self, title_policy: Policy, selector: ArtworkSelector, *,
                 name: str | None = None) -> None:
        if not isinstance(title_policy, Policy):
            raise TypeError(f"title_policy: {type(title_policy).__name__} is not a Policy")
        if not isinstance(selector, ArtworkSelector):
            raise TypeError(f"selector: {type(selector).__name__} lacks select/probabilities")
        self.title_policy, self.selector = title_policy, selector
        self.name = name or f"{title_policy.name}+{selector.name}"
        self.version = str(getattr(title_policy, "version", "v0"))

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        page = self.title_policy.choose(visits, rng)
        choice = self.selector.select(visits, page.titles, rng)
        return dataclasses.replace(page, artworks=choice.artworks,
                                   artwork_propensity=choice.propensity)

    def marginals(self, visits: VisitBatch) -> Marginals:
        if not isinstance(self.title_policy, ExactPolicy):
            raise TypeError(f"{type(self.title_policy).__name__} has no marginals(); use "
                            "method='monte_carlo'")
        if not hasattr(self.selector, "artwork_marginals"):
            raise TypeError(f"{type(self.selector).__name__} has no artwork_marginals()")
        m = self.title_policy.marginals(visits)
        return Marginals(m.title_slot, m.slot_row, m.slot_position,
                         self.selector.artwork_marginals(visits))  # type: ignore[attr-defined]


def image_explore(title_policy: Policy, *, seed: int = 0, sticky: bool = True) -> WithArtwork:
    """``title_policy`` with uniformly random images per (member, title), logged with
    ``artwork_propensity = 1 / n_variants`` (the exploration cell for replay)."""
    return WithArtwork(title_policy, UniformArtwork(sticky=sticky, seed=seed))
