"""The service's adapter to the shipped :class:`~reelpick.page.PagePolicy`.

:class:`PagePolicyProvider` is a :class:`~reelpick.serve.provider.HomepageProvider`: it turns
requests ``(member_id, context)`` into a :class:`~reelpick.decision.VisitBatch` of the policy,
lets the policy choose (sources, ranker, rows, exploration, artwork bandit: the same code the
simulator and the loop run), and hands the pages back with the exact title-in-slot and artwork
propensities the policy reported, which the service logs, and the ranker's predicted p(play)
of each slot it ranked (``score``, NaN on an explored page's drawn titles; what the web page's
Explain shows). Nothing is composed here: a page the service answers is exactly a page of the
policy.

Example
-------
>>> from reelpick.world import World, WorldConfig
>>> from reelpick.policies import PopularPolicy
>>> from reelpick.page import PagePolicyConfig, train_page_policy
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> log = world.simulate(PopularPolicy(epsilon=0.5, artwork="random"), 1500)
>>> policy = train_page_policy(log.impressions(), log.outcomes(), world.titles(),
...     artworks=world.artworks(), interactions=log.interactions(),
...     config=PagePolicyConfig(n_rows=2, n_positions=5, trees=20))
>>> import tempfile, numpy as np
>>> d = policy.save(tempfile.mkdtemp())
>>> provider = PagePolicyProvider.from_dir(d)
>>> ctx = PageContext(device="tv", country="DE", hour=20, day_of_week=4,
...                   timestamp=world.config.start + 10 * 86_400)
>>> page = provider.compose("m1", ctx, np.random.default_rng(0))
>>> page.check(); page.n_slots, page.cold_start
(10, False)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reelpick.data.schema import DEVICES
from reelpick.decision import VisitBatch
from reelpick.page import COLD, PagePolicy
from reelpick.page.store import PageStore
from reelpick.serve.catalog import Catalog
from reelpick.serve.provider import Page, PageContext


class PagePolicyProvider:
    """Serves a :class:`~reelpick.page.PagePolicy` (module docstring). Thread-safe: requests
    are composed under one lock (the policy is numpy and LightGBM on one thread)."""

    def __init__(self, policy: PagePolicy, catalog: Catalog, *, version: str | None = None
                 ) -> None:
        if list(catalog.title_ids) != [str(t) for t in policy.titles["title_id"]]:
            raise ValueError("catalog.json and the policy disagree on the titles")
        extra = sorted(set(catalog.countries) - set(policy.catalogue.countries))
        if extra:  # checked at load (a reload answers 409), not per request (a 500)
            raise ValueError(f"catalog.json names countries the policy does not know: {extra}")
        self.policy, self.catalog = policy, catalog
        self.name = policy.name
        self.version = version or policy.version
        self._country = {c: i for i, c in enumerate(policy.catalogue.countries)}
        self._device = {d: i for i, d in enumerate(DEVICES)}
        self._known = set(policy.members.to_list()) - {COLD}
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, path: str | Path, *, version: str | None = None) -> PagePolicyProvider:
        """Load a policy directory written by :meth:`PagePolicy.save`."""
        path = Path(path)
        return cls(PagePolicy.load(path), Catalog.load(path / "catalog.json"), version=version)

    def compose(self, member_id: str, context: PageContext, rng: np.random.Generator) -> Page:
        return self.compose_many([(member_id, context)], rng)[0]

    def compose_many(self, requests: Sequence[tuple[str, PageContext]],
                     rng: np.random.Generator) -> list[Page]:
        """The pages of several requests in one pass of the policy."""
        visits = self._visits(requests)
        with self._lock:
            pages = self.policy.choose(visits, rng)
        return self._pages(pages, [m for m, _ in requests])

    def precompute(self, requests: Sequence[tuple[str, PageContext]],
                   store: PageStore | None = None) -> int:
        """Compose and remember the pages of ``requests`` before they are asked for
        (:meth:`PagePolicy.precompute <reelpick.page.PagePolicy.precompute>`: the same pages
        and propensities a request then gets, at the cost of drawing its exploration and
        images); returns how many were composed (the rest were remembered already). The
        pages are written to ``store`` too (default: the :meth:`use_store` store)."""
        if not requests:
            return 0
        visits = self._visits(requests)
        with self._lock:
            return self.policy.precompute(visits, store=store)

    def use_store(self, store: PageStore | None) -> None:
        """Share composed pages through ``store`` (:meth:`PagePolicy.use_store
        <reelpick.page.PagePolicy.use_store>`): pages composed ahead elsewhere are served from
        it, and :meth:`precompute` writes to it."""
        with self._lock:
            self.policy.use_store(store)

    def prune_store(self, from_bucket: int) -> int:
        """Delete the pages of hours before ``from_bucket`` (``timestamp // 3600``) from the
        :meth:`use_store` store (pages of every version: another worker may serve another
        one); how many were deleted (0 without a store)."""
        with self._lock:
            store = self.policy.store
        return 0 if store is None else store.prune(from_bucket=int(from_bucket))

    def cache(self, pages: int) -> None:
        """Remember up to ``pages`` composed pages (:meth:`PagePolicy.cache
        <reelpick.page.PagePolicy.cache>`)."""
        with self._lock:
            self.policy.cache(pages)

    def cache_info(self) -> dict[str, int]:
        """``{"pages", "hits", "misses"}`` of the policy's page cache
        (:meth:`PagePolicy.cache_info <reelpick.page.PagePolicy.cache_info>`)."""
        return self.policy.cache_info()

    def _visits(self, requests: Sequence[tuple[str, PageContext]]) -> VisitBatch:
        ids = [m for m, _ in requests]
        ctx = [c for _, c in requests]
        unknown = sorted({c.country for c in ctx} - set(self._country))
        if unknown:
            raise ValueError(f"country {unknown[0]!r}: not in the policy's catalogue")
        return self.policy.visits(
            ids, timestamp=np.array([c.timestamp for c in ctx], np.int64),
            device=np.array([self._device.get(c.device, 0) for c in ctx]),
            country=np.array([self._country[c.country] for c in ctx]),
            hour=np.array([c.hour for c in ctx]),
            day_of_week=np.array([c.day_of_week for c in ctx]))

    def _pages(self, pages: Any, ids: Sequence[str]) -> list[Page]:
        """The service's :class:`Page` of every visit of ``pages`` (the shown slots, rows
        renumbered densely in page order: a row may have been left empty; each row's label is
        that of its first slot), the arrays of all pages gathered in one pass and sliced."""
        titles = pages.titles
        n, S = titles.shape
        shown = titles >= 0
        flat = np.flatnonzero(shown.ravel())               # page by page, slots in order
        bounds = np.searchsorted(flat, np.arange(n + 1) * S).tolist()
        page_of, slot = np.divmod(flat, S)
        t = titles.ravel()[flat]
        rows = pages.row_index.ravel()[flat]
        R = int(rows.max()) + 1 if rows.size else 1
        present = np.zeros((n, R), dtype=bool)
        present[page_of, rows] = True
        dense = (np.cumsum(present, axis=1, dtype=np.int32) - 1)[page_of, rows]
        first = np.full((n, R), S, dtype=np.int64)           # each row's first slot
        np.minimum.at(first, (page_of, rows), slot)
        art = self.catalog.art_offset[t] + pages.artworks.ravel()[flat]
        title_ids = self.catalog.title_ids[t].tolist()
        artwork_ids = self.catalog.artwork_ids[art].tolist()
        position = pages.position.ravel()[flat].astype(np.int32)
        propensity = pages.propensity.ravel()[flat].astype(float)
        art_prop = pages.artwork_propensity.ravel()[flat].astype(float)
        score = (pages.score.ravel()[flat].astype(float) if pages.score is not None
                 else np.full(flat.size, np.nan))
        source = pages.source
        explored = (np.asarray(source == "explore", dtype=bool) if source is not None
                    else np.zeros(n, dtype=bool))
        slot_explored = explored[page_of]
        t, art = t.astype(np.int64), art.astype(np.int64)
        labels = pages.slot_label
        out = []
        for i, member in enumerate(ids):
            lo, hi = bounds[i], bounds[i + 1]
            used = np.flatnonzero(present[i])
            row_labels = tuple(str(x) for x in (
                labels[i, first[i, used]].tolist() if labels is not None
                else [pages.row_labels[r] for r in used.tolist()]))
            reason = "uniform exploration" if explored[i] else "ranked for you"
            out.append(Page(
                title_ids=title_ids[lo:hi], artwork_ids=artwork_ids[lo:hi],
                row_index=dense[lo:hi], position=position[lo:hi],
                propensity=propensity[lo:hi], artwork_propensity=art_prop[lo:hi],
                score=score[lo:hi], explored=slot_explored[lo:hi], row_labels=row_labels,
                row_reasons=(reason,) * len(row_labels), cold_start=member not in self._known,
                title_index=t[lo:hi], artwork_index=art[lo:hi]))
        return out
