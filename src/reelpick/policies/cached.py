"""A deterministic page policy made fast by remembering its pages (the same policy, not a copy).

:class:`CachedPagePolicy` wraps a deterministic page policy (e.g.
:class:`reelpick.ranking.RankerPagePolicy`) whose page is a pure function of the visit's
member, device, country, local hour, weekday, layout and time. It defines the policy at the
time floored to ``bucket_seconds`` (an hour by default: the base policy is always evaluated at
the start of the visit's bucket, cached or not), so a page computed once serves every visit
with the same key until the bucket ends, and the pages, their propensities and any offline
evaluation of them are identical whether the cache hit or missed. Titles' availability must
be a function of (country, bucket), as it is for releases by day or hour. Entries are
evicted oldest first beyond ``max_entries``.

Example
-------
>>> import numpy as np
>>> from reelpick.policies import GreedyPolicy
>>> from reelpick.world import World, WorldConfig
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> vb = world.make_visits(np.arange(20), world.config.start + 3600)
>>> cached = CachedPagePolicy(GreedyPolicy())
>>> a = cached.choose(vb, np.random.default_rng(0))
>>> b = cached.choose(vb, np.random.default_rng(1))      # every page from the cache
>>> bool((a.titles == b.titles).all()), cached.hits, cached.misses
(True, 20, 20)
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import cast

import numpy as np

from reelpick.decision import Policy, VisitBatch
from reelpick.policies.base import AnnotatedPageBatch, grid_page

__all__ = ["CachedPagePolicy"]

#: a remembered page: its titles, and its slot labels and scores when the base policy gives them
_Entry = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]


class CachedPagePolicy:
    """``base``'s pages, remembered per visit key (module docstring)."""

    def __init__(self, base: Policy, *, bucket_seconds: int = 3600,
                 max_entries: int = 50_000) -> None:
        if bucket_seconds < 1 or max_entries < 1:
            raise ValueError(f"bucket_seconds and max_entries must be >= 1, got "
                             f"{bucket_seconds!r}, {max_entries!r}")
        self.base, self.bucket, self.max_entries = base, int(bucket_seconds), int(max_entries)
        self.name = str(base.name)
        self._pages: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()
        self.hits = self.misses = 0

    @property
    def version(self) -> str:
        return str(getattr(self.base, "version", "v0"))

    def __len__(self) -> int:
        """Pages remembered."""
        return len(self._pages)

    def clear(self) -> None:
        self._pages.clear()

    def __contains__(self, key: object) -> bool:
        """Whether the page of visit key ``key`` (:meth:`keys`) is remembered."""
        return key in self._pages

    def remember(self, key: tuple[int, ...], entry: _Entry) -> None:
        """Remember ``entry`` (``(titles (S,), slot_label (S,) or None, score (S,) or None)``)
        as the page of visit key ``key``: a page the base policy composed for that key
        elsewhere (e.g. another process, :class:`reelpick.page.store.PageStore`); not counted
        as a hit or a miss."""
        self._pages[key] = entry
        while len(self._pages) > self.max_entries:
            self._pages.popitem(last=False)

    def keys(self, visits: VisitBatch) -> list[tuple[int, ...]]:
        """The visit key of each visit: member, device, country, hour, weekday, bucket
        (``timestamp // bucket_seconds``), rows and positions."""
        return self._keys(visits)

    def _keys(self, visits: VisitBatch) -> list[tuple[int, ...]]:
        cols = np.column_stack([visits.member, visits.device, visits.country, visits.hour,
                                visits.day_of_week, visits.timestamp // self.bucket])
        layout = (int(visits.n_rows), int(visits.n_positions))
        return [(*map(int, row), *layout) for row in cols]

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> AnnotatedPageBatch:
        n, S = len(visits), visits.n_slots
        keys = self._keys(visits)
        found = [self._pages.get(k) for k in keys]
        miss = np.array([i for i, f in enumerate(found) if f is None], dtype=np.int64)
        if miss.size:
            # the base policy at the start of each visit's bucket (the definition above)
            sub = visits.subset(miss)
            sub = dataclasses.replace(sub, timestamp=sub.timestamp // self.bucket * self.bucket)
            page = self.base.choose(sub, rng)
            labels = getattr(page, "slot_label", None)
            score = getattr(page, "score", None)
            for j, i in enumerate(miss):
                entry = (page.titles[j].copy(), None if labels is None else labels[j].copy(),
                         None if score is None else score[j].copy())
                found[i] = entry
                if keys[i] not in self._pages:
                    self._pages[keys[i]] = entry
            while len(self._pages) > self.max_entries:
                self._pages.popitem(last=False)
        self.misses += int(miss.size)
        self.hits += n - int(miss.size)
        pages = cast(list[_Entry], found)  # every visit filled above
        titles = np.stack([f[0] for f in pages]) if n else np.zeros((0, S), np.int64)
        extra = {}
        for k, name in ((1, "slot_label"), (2, "score")):  # annotations every page has
            if n > 0 and all(f[k] is not None for f in pages):
                extra[name] = np.stack([f[k] for f in pages])  # type: ignore[misc]
        return grid_page(titles, visits, np.ones(titles.shape), "Row", **extra)
