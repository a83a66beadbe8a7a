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

import numpy as np

from reelpick.data.schema import DEVICES
from reelpick.page import COLD, PagePolicy
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
        ids = [m for m, _ in requests]
        ctx = [c for _, c in requests]
        unknown = sorted({c.country for c in ctx} - set(self._country))
        if unknown:
            raise ValueError(f"country {unknown[0]!r}: not in the policy's catalogue")
        visits = self.policy.visits(
            ids, timestamp=np.array([c.timestamp for c in ctx], np.int64),
            device=np.array([self._device.get(c.device, 0) for c in ctx]),
            country=np.array([self._country[c.country] for c in ctx]),
            hour=np.array([c.hour for c in ctx]),
            day_of_week=np.array([c.day_of_week for c in ctx]))
        with self._lock:
            pages = self.policy.choose(visits, rng)
        return [self._page(pages, i, member) for i, member in enumerate(ids)]

    def _page(self, pages: object, i: int, member_id: str) -> Page:
        titles = pages.titles[i]  # type: ignore[attr-defined]
        shown = np.flatnonzero(titles >= 0)
        t = titles[shown]
        labels = pages.slot_label  # type: ignore[attr-defined]
        rows = pages.row_index[i, shown]  # type: ignore[attr-defined]
        # rows renumbered densely in page order (a row may have been left empty); each row's
        # label is that of its first slot
        uniq, first, dense = np.unique(rows, return_index=True, return_inverse=True)
        row_labels = (labels[i, shown[first]].tolist() if labels is not None
                      else [pages.row_labels[r] for r in uniq.tolist()])  # type: ignore
        row_labels = [str(x) for x in row_labels]
        dense = dense.astype(np.int32)
        art = self.catalog.art_offset[t] + pages.artworks[i, shown]  # type: ignore[attr-defined]
        source = pages.source  # type: ignore[attr-defined]
        explored = bool(source is not None and source[i] == "explore")
        return Page(
            title_ids=self.catalog.title_ids[t].tolist(),
            artwork_ids=self.catalog.artwork_ids[art].tolist(),
            row_index=dense, position=pages.position[i, shown].astype(np.int32),  # type: ignore
            propensity=pages.propensity[i, shown].astype(float),  # type: ignore[attr-defined]
            artwork_propensity=pages.artwork_propensity[i, shown].astype(float),  # type: ignore
            score=(pages.score[i, shown].astype(float) if pages.score is not None  # type: ignore
                   else np.full(shown.size, np.nan)),
            explored=np.full(shown.size, explored),
            row_labels=tuple(row_labels),
            row_reasons=tuple("uniform exploration" if explored else "ranked for you"
                              for _ in row_labels),
            cold_start=member_id not in self._known,
            title_index=t.astype(np.int64), artwork_index=art.astype(np.int64))
