"""The ranked, row-structured page as a world :class:`~reelpick.world.Policy`, and the ranker
as a :class:`~reelpick.policies.Scorer` for the exploration policies.

:class:`RankerPagePolicy` is deterministic: ``P(t in slot s) = [t = page_s]`` (propensity 1);
wrap :class:`RankerScorer` in :class:`~reelpick.policies.EpsilonGreedyPolicy` or
:class:`~reelpick.policies.SoftmaxPolicy` to explore with exact propensities. The history's
member order must be the world's (``m0, m1, ...``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from reelpick.decision import Marginals, VisitBatch
from reelpick.policies.base import AnnotatedPageBatch, grid_page, onehot_marginal
from reelpick.ranking.history import Requests
from reelpick.ranking.page import ComposedPages, PageComposer


def _fit_config(composer: PageComposer, visits: VisitBatch) -> PageComposer:
    cfg = composer.config
    if (cfg.n_rows, cfg.n_positions) == (visits.n_rows, visits.n_positions):
        return composer
    new = object.__new__(PageComposer)
    new.__dict__.update(composer.__dict__)
    new.config = dataclasses.replace(cfg, n_rows=visits.n_rows, n_positions=visits.n_positions)
    return new


class RankerPagePolicy:
    """Composed pages (:class:`~reelpick.ranking.page.PageComposer`) for world visits."""

    def __init__(self, composer: PageComposer, *, name: str = "ranker", chunk: int = 512
                 ) -> None:
        self.composer, self.name, self.version, self.chunk = composer, name, "v1", chunk

    def pages(self, visits: VisitBatch) -> ComposedPages:
        comp = _fit_config(self.composer, visits)
        req = Requests.from_visits(visits)
        avail = visits.available[visits.country]
        parts = [comp.compose(req.subset(np.arange(lo, min(lo + self.chunk, len(visits)))),
                              avail[lo:lo + self.chunk])
                 for lo in range(0, len(visits), self.chunk)]
        cat = {f.name: np.concatenate([np.asarray(getattr(p, f.name)) for p in parts])
               for f in dataclasses.fields(ComposedPages)}
        return ComposedPages(**cat)

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> AnnotatedPageBatch:
        del rng
        pages = self.pages(visits)
        return grid_page(pages.titles, visits, np.ones(pages.titles.shape), "Row",
                         slot_label=pages.slot_label, score=pages.score)

    def marginals(self, visits: VisitBatch) -> Marginals:
        m = onehot_marginal(self.pages(visits).titles, visits.catalog.n_titles)
        s = np.arange(visits.n_slots)
        cat = visits.catalog
        art = np.zeros(int(cat.art_offset[-1]))
        art[cat.art_offset[:-1]] = 1.0
        return Marginals(m, s // visits.n_positions, s % visits.n_positions,
                         np.broadcast_to(art, (len(visits), art.size)))


class RankerScorer:
    """Predicted p(play) for each visit's candidates, ``-inf`` elsewhere (a Scorer)."""

    def __init__(self, composer: PageComposer) -> None:
        self.composer = composer

    def score(self, visits: VisitBatch) -> np.ndarray:
        req = Requests.from_visits(visits)
        avail = visits.available[visits.country]
        c = self.composer
        scores = c.source_scores(req)
        p = c.predict(req, c.candidates(req, avail, scores), scores)
        return np.where(np.isfinite(p), p, -np.inf)
