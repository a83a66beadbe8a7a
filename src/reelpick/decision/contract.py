"""The decision contract every layer shares: visits in, pages with exact propensities out.

The simulator (:mod:`reelpick.world`), the service (:mod:`reelpick.serve`), the policies, the
ranker, the artwork selectors and the off-policy estimators all speak these types; a visit holds
only what a production system observes (no hidden simulator state).

Array names and shapes (``n`` visits, ``T`` titles, ``S`` slots per page):

``VisitBatch``
    ``member (n,)``, ``timestamp (n,)`` Unix seconds, context ``device (n,)`` (index into
    :data:`reelpick.data.schema.DEVICES`), ``country (n,)`` (index into ``countries``),
    ``hour (n,)`` local 0..23, ``day_of_week (n,)`` 0 = Monday, ``cell (n,)`` the randomised
    promotion cell (observable, logged), ``available (n_countries, T)`` the titles released and
    licensed in each country on the batch's ``day``, and ``catalog`` (what policies may know about
    titles). Every visit of one batch lies on the same day.
``PageBatch``
    ``titles (n, S)`` title indices (``-1`` = empty slot), ``artworks (n, S)`` variant index
    ``0..n_variants-1`` within the title, ``row_index (n, S)``, ``position (n, S)``,
    ``propensity (n, S)`` = P(this title is shown in this slot | visit), ``artwork_propensity
    (n, S)`` = P(this variant | title shown), ``row_labels`` indexed by ``row_index``;
    optionally ``score (n, S)``, the ranking score of each slot's title (NaN where none), for
    explanations only (never a propensity).
``Marginals`` (optional, for exact policy values)
    ``title_slot (n, T, S)`` = P(title t in slot s | visit), ``slot_row (S,)``,
    ``slot_position (S,)``, ``artwork (n, n_artworks)`` = P(variant | title shown) over the flat
    artwork array (variants of one title sum to 1).

Example
-------
>>> import numpy as np
>>> page = PageBatch.grid(np.array([[3, 1]]), n_rows=1, n_positions=2,
...                       propensity=np.ones((1, 2)))
>>> page.row_index.tolist(), page.position.tolist()
([[0, 0]], [[0, 1]])
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, eq=False)
class Catalog:
    """What a policy may observe about titles: ``n_variants (T,)``, ``is_series (T,)``,
    ``duration (T,)`` seconds, ``genre_onehot (T, G)``, ``art_offset (T + 1,)`` and
    ``popularity (T,)``, the observable popularity on the batch's day (noisy quality plus a
    new-release boost that decays with age)."""

    n_variants: np.ndarray
    is_series: np.ndarray
    duration: np.ndarray
    genre_onehot: np.ndarray
    art_offset: np.ndarray
    popularity: np.ndarray

    @property
    def n_titles(self) -> int:
        return len(self.n_variants)


@dataclass(frozen=True, eq=False)
class VisitBatch:
    """A batch of visits on one day (see the module docstring for the arrays).

    Only observable context: a simulator that keeps hidden per-visit state subclasses it and
    lists the extra arrays in ``PER_VISIT``, so :meth:`subset` keeps them."""

    #: the per-visit arrays, indexed together by :meth:`subset`
    PER_VISIT: ClassVar[tuple[str, ...]] = (
        "member", "timestamp", "device", "country", "hour", "day_of_week", "cell")

    member: np.ndarray
    timestamp: np.ndarray
    device: np.ndarray
    country: np.ndarray
    hour: np.ndarray
    day_of_week: np.ndarray
    cell: np.ndarray
    day: int
    available: np.ndarray
    catalog: Catalog
    n_rows: int
    n_positions: int

    def __len__(self) -> int:
        return len(self.member)

    @property
    def n_slots(self) -> int:
        return self.n_rows * self.n_positions

    def available_titles(self, country: int) -> np.ndarray:
        """Indices of the titles a visit from ``country`` may be shown, ascending."""
        return np.flatnonzero(self.available[country])

    def n_available(self) -> np.ndarray:
        """``(n,)`` number of titles available to each visit."""
        return self.available.sum(axis=1)[self.country]

    def subset(self, index: np.ndarray) -> VisitBatch:
        """The visits at ``index`` (same day, availability and catalog; same class)."""
        return replace(self, **{k: getattr(self, k)[index] for k in self.PER_VISIT})

    def with_layout(self, n_rows: int, n_positions: int) -> VisitBatch:
        """The same visits asking for pages of ``n_rows`` x ``n_positions`` slots."""
        return replace(self, n_rows=n_rows, n_positions=n_positions)


@dataclass(frozen=True, eq=False)
class PageBatch:
    """The pages a policy shows for a :class:`VisitBatch` (see the module docstring)."""

    titles: np.ndarray
    artworks: np.ndarray
    row_index: np.ndarray
    position: np.ndarray
    propensity: np.ndarray
    artwork_propensity: np.ndarray
    row_labels: tuple[str, ...]
    #: optional ``(n, S)`` row label of each slot, when rows differ per visit (overrides
    #: ``row_labels[row_index]`` in the log), and ``(n,)`` who made each page (e.g. the winning
    #: model of a greedy-winner policy), logged as ``page_source``.
    slot_label: np.ndarray | None = None
    source: np.ndarray | None = None
    #: optional ``(n, S)`` ranking score of each slot's title (e.g. a ranker's predicted
    #: p(play)), NaN where the policy has none: what the service's explain view shows
    score: np.ndarray | None = None

    @classmethod
    def grid(cls, titles: np.ndarray, *, n_rows: int, n_positions: int, propensity: np.ndarray,
             artworks: np.ndarray | None = None, artwork_propensity: np.ndarray | None = None,
             row_labels: tuple[str, ...] | None = None) -> PageBatch:
        """A page whose slot ``s`` is row ``s // n_positions``, position ``s % n_positions``.
        Missing ``artworks`` mean variant 0 with artwork propensity 1."""
        n, s = titles.shape
        if s != n_rows * n_positions:
            raise ValueError(f"titles: expected {n_rows * n_positions} slots, got {s}")
        slots = np.arange(s)
        return cls(
            titles=titles,
            artworks=np.zeros_like(titles) if artworks is None else artworks,
            row_index=np.broadcast_to(slots // n_positions, (n, s)),
            position=np.broadcast_to(slots % n_positions, (n, s)),
            propensity=propensity,
            artwork_propensity=(np.ones(titles.shape) if artwork_propensity is None
                                else artwork_propensity),
            row_labels=row_labels or tuple(f"row {r}" for r in range(n_rows)),
        )

    def check(self, visits: VisitBatch) -> None:
        """Raise ``ValueError`` when the page does not fit the visits (shapes, ranges, duplicates,
        unavailable titles, propensities outside (0, 1])."""
        n = len(visits)
        for name in ("titles", "artworks", "row_index", "position", "propensity",
                     "artwork_propensity"):
            arr = getattr(self, name)
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(f"PageBatch.{name}: expected shape ({n}, n_slots), got "
                                 f"{arr.shape}")
            if arr.shape != self.titles.shape:
                raise ValueError(f"PageBatch.{name}: shape {arr.shape} differs from titles "
                                 f"{self.titles.shape}")
        shown = self.titles >= 0
        if (self.titles >= visits.catalog.n_titles).any():
            raise ValueError("PageBatch.titles: title index out of range")
        t = np.where(shown, self.titles, 0)
        if not visits.available[visits.country[:, None], t][shown].all():
            raise ValueError("PageBatch.titles: a title not available in the visit's country "
                             "on this day was shown")
        srt = np.sort(np.where(shown, self.titles, -1 - np.arange(self.titles.shape[1])), axis=1)
        if (srt[:, 1:] == srt[:, :-1]).any():
            raise ValueError("PageBatch.titles: a title appears twice on one page")
        nv = visits.catalog.n_variants[t]
        if ((self.artworks < 0) | (self.artworks >= nv))[shown].any():
            raise ValueError("PageBatch.artworks: variant index out of range for its title")
        for name in ("propensity", "artwork_propensity"):
            p = getattr(self, name)[shown]
            if not ((p > 0) & (p <= 1 + 1e-12)).all():
                raise ValueError(f"PageBatch.{name}: propensities must lie in (0, 1]")
        if (self.row_index[shown] >= len(self.row_labels)).any() or (self.row_index < 0).any():
            raise ValueError("PageBatch.row_index: outside row_labels")
        if (self.position < 0).any():
            raise ValueError("PageBatch.position: must be >= 0")


@dataclass(frozen=True, eq=False)
class Marginals:
    """A policy's exact exposure distribution for a batch (see the module docstring)."""

    title_slot: np.ndarray
    slot_row: np.ndarray
    slot_position: np.ndarray
    artwork: np.ndarray


@runtime_checkable
class Policy(Protocol):
    """A page policy. ``choose`` must be vectorised over visits and must report, for every slot,
    the exact probability that it shows this title there (``propensity``).

    ``name`` is written to the ``policy`` column of the impressions log (read-only here, so a
    frozen dataclass is a policy too).
    """

    @property
    def name(self) -> str:
        ...

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        """Pages for ``visits``, drawing any randomness from ``rng``."""
        ...


@runtime_checkable
class ExactPolicy(Policy, Protocol):
    """A policy that can also state its full exposure distribution (enables exact values)."""

    def marginals(self, visits: VisitBatch) -> Marginals:
        """``Marginals`` for ``visits``; consistent with the distribution of :meth:`choose`."""
        ...
