"""Shared pieces of the score-based policies: the :class:`Scorer` protocol, an annotated page,
page layout helpers and the action distribution used by off-policy evaluation.

Shapes: ``n`` visits, ``T`` titles, ``S = n_rows * n_positions`` slots. A scorer returns
``(n, T)`` scores, higher is better; ``-inf`` or NaN marks a title that is not a candidate.

Example
-------
>>> import numpy as np
>>> from reelpick.world import World, WorldConfig
>>> from reelpick.policies import GreedyPolicy
>>> world = World(WorldConfig.preset("small"), seed=1)
>>> vb = world.make_visits([0, 1], world.config.start + 3600)
>>> action_dist(GreedyPolicy(), vb).shape == (2, world.config.n_titles, world.config.n_slots)
True
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from reelpick.decision import ExactPolicy, PageBatch, VisitBatch


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores every title for every visit: ``score(visits) -> (n, T)``."""

    def score(self, visits: VisitBatch) -> np.ndarray:
        ...


@dataclass(frozen=True)
class PopularityScorer:
    """The catalogue's observable popularity on the visit's day (the same for every visit)."""

    def score(self, visits: VisitBatch) -> np.ndarray:
        return np.broadcast_to(visits.catalog.popularity, (len(visits), visits.catalog.n_titles))


#: A page with per-visit annotations: ``slot_label (n, S)``, the row label of each slot (rows
#: differ per member and context), and ``source (n,)``, who made the page (e.g. the winning
#: model), and ``score (n, S)``, a ranker's score of each slot's title. They are fields of the
#: world's :class:`PageBatch`; the first two reach the logs (``row``, ``page_source``), the
#: score the service's answer. The name is kept for the policies that return annotated pages.
AnnotatedPageBatch = PageBatch


def candidate_scores(scorer: Scorer, visits: VisitBatch) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, candidate)``: scores ``(n, T)`` float64 with ``-inf`` outside the candidates,
    and the candidate mask (finite score and available in the visit's country)."""
    s = np.asarray(scorer.score(visits), dtype=np.float64)
    n, T = len(visits), visits.catalog.n_titles
    if s.shape != (n, T):
        raise ValueError(f"scorer.score: expected shape {(n, T)}, got {s.shape}")
    cand = np.isfinite(s) & visits.available[visits.country]
    return np.where(cand, s, -np.inf), cand


def greedy_pages(scores: np.ndarray, candidate: np.ndarray, visits: VisitBatch) -> np.ndarray:
    """``(n, S)`` titles: the candidates by descending score (ties: lower title index first);
    when a visit has fewer than ``S`` candidates the rest of its page is filled with the other
    available titles by observable popularity, and ``-1`` beyond the available titles."""
    S = visits.n_slots
    n, T = scores.shape
    k = min(S, T)
    key = np.where(candidate, scores, -np.inf)
    top = np.argpartition(-key, k - 1, axis=1)[:, :k] if k < T else np.tile(np.arange(T), (n, 1))
    top_key = np.take_along_axis(key, top, axis=1)
    order = np.lexsort((top, -top_key), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    out = np.full((n, S), -1, dtype=np.int64)
    out[:, :k] = top
    n_cand = candidate.sum(axis=1)
    short = np.flatnonzero(n_cand < S)
    if short.size:
        avail = visits.available[visits.country]
        pop = visits.catalog.popularity
        for i in short:
            c = np.flatnonzero(candidate[i])
            c = c[np.lexsort((c, -scores[i, c]))]
            rest = np.flatnonzero(avail[i] & ~candidate[i])
            rest = rest[np.lexsort((rest, -pop[rest]))]
            row = np.concatenate([c, rest])[:S]
            out[i] = -1
            out[i, : row.size] = row
    return out


def onehot_marginal(titles: np.ndarray, n_titles: int) -> np.ndarray:
    """``(n, T, S)`` with 1 at ``(i, titles[i, s], s)`` for shown slots."""
    n, S = titles.shape
    m = np.zeros((n, n_titles, S))
    i, s = np.nonzero(titles >= 0)
    m[i, titles[i, s], s] = 1.0
    return m


def grid_page(titles: np.ndarray, visits: VisitBatch, propensity: np.ndarray, label: str,
              **extra: np.ndarray | None) -> AnnotatedPageBatch:
    """A grid page (slot ``s`` = row ``s // P``, position ``s % P``), artwork variant 0."""
    base = PageBatch.grid(titles, n_rows=visits.n_rows, n_positions=visits.n_positions,
                          propensity=np.where(titles >= 0, propensity, 1.0),
                          row_labels=tuple(f"{label} {r + 1}" for r in range(visits.n_rows)))
    changes: dict[str, Any] = extra  # annotation arrays, not PageBatch fields
    return replace(base, **changes)


def action_dist(policy: ExactPolicy, visits: VisitBatch) -> np.ndarray:
    """The policy's action distribution for logged contexts, in the vocabulary of
    :mod:`reelpick.ope`: ``action_dist (n_rounds, n_actions, n_positions)`` with
    ``action_dist[i, t, s]`` = P(title ``t`` shown in slot ``s`` | visit ``i``), one round per
    visit, actions = titles, positions = slots. Each slot column sums to 1 over titles when the
    page is full."""
    if not isinstance(policy, ExactPolicy):
        raise TypeError(f"policy: {type(policy).__name__} has no marginals(); its action "
                        "distribution is not known exactly")
    return policy.marginals(visits).title_slot
