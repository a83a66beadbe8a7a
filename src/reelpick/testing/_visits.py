"""Small synthetic visits for policy tests that need no simulator (:func:`toy_visits`)."""

from __future__ import annotations

import numpy as np

from reelpick.data.schema import DEVICES
from reelpick.decision import Catalog, VisitBatch


def toy_visits(n_visits: int = 6, n_titles: int = 30, *, n_rows: int = 2, n_positions: int = 3,
               n_countries: int = 2, n_genres: int = 3, seed: int = 0) -> VisitBatch:
    """``n_visits`` visits on one day to a catalogue of ``n_titles`` titles (1-3 artwork
    variants each, about 80% available per country, at least a page's worth), asking for
    pages of ``n_rows`` x ``n_positions`` slots.

    >>> vb = toy_visits(4, 20)
    >>> len(vb), vb.n_slots, vb.catalog.n_titles, bool(vb.n_available().min() >= vb.n_slots)
    (4, 6, 20, True)
    """
    S = n_rows * n_positions
    if n_titles < S:
        raise ValueError(f"n_titles: need at least one page ({S}), got {n_titles}")
    rng = np.random.default_rng(seed)
    n_variants = rng.integers(1, 4, n_titles)
    genre = rng.integers(0, n_genres, n_titles)
    catalog = Catalog(
        n_variants=n_variants,
        is_series=rng.random(n_titles) < 0.3,
        duration=rng.uniform(1200, 9000, n_titles),
        genre_onehot=np.eye(n_genres)[genre],
        art_offset=np.concatenate([[0], np.cumsum(n_variants)]).astype(np.int64),
        popularity=rng.normal(size=n_titles))
    available = rng.random((n_countries, n_titles)) < 0.8
    for c in range(n_countries):  # a full page for everyone
        available[c, rng.choice(n_titles, S, replace=False)] = True
    hour = rng.integers(0, 24, n_visits)
    return VisitBatch(
        member=rng.integers(0, 50, n_visits), timestamp=1_700_006_400 + hour * 3600,
        device=rng.integers(0, len(DEVICES), n_visits),
        country=rng.integers(0, n_countries, n_visits), hour=hour,
        day_of_week=np.full(n_visits, 2), cell=np.zeros(n_visits, dtype=np.int64), day=0,
        available=available, catalog=catalog, n_rows=n_rows, n_positions=n_positions)
