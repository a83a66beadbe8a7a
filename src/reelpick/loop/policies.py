r"""The loop's correlational learner (the exploring loggers live in
:mod:`reelpick.policies.exploring`).

:class:`PlayCountScorer` is the purely correlational learner of the feedback-loop demo: a title's
score for a member is its number of logged plays among members of the same segment (the
member's most-played genre), page and organic plays alike — what a recommender trained on "what
people watched" learns from its own logs.
"""

from __future__ import annotations

import numpy as np

from reelpick.decision import VisitBatch
from reelpick.policies.exploring import ExploringPolicy, PoolExploringPolicy
from reelpick.world import SimulationLog

__all__ = ["ExploringPolicy", "PlayCountScorer", "PoolExploringPolicy"]


class PlayCountScorer:
    """Plays per (segment, title) from the logs so far; segment = member's most-played genre.

    ``fit(log, genre_onehot, n_members)`` starts over; before any fit, scores are the catalogue's
    observable popularity (cold start). A :class:`~reelpick.policies.Scorer`."""

    def __init__(self) -> None:
        self.counts_: np.ndarray | None = None

    def fit(self, log: SimulationLog, genre_onehot: np.ndarray, n_members: int
            ) -> PlayCountScorer:
        s = log.shown
        page = np.flatnonzero(s.play > 0)
        member = np.concatenate([log.visits.member[s.visit[page]],
                                 log.visits.member[log.organic_visit]])
        title = np.concatenate([s.title[page], log.organic_title])
        G = genre_onehot.shape[1]
        by_genre = np.zeros((n_members, G))
        np.add.at(by_genre, member, genre_onehot[title])
        seg = np.where(by_genre.sum(axis=1) > 0, np.argmax(by_genre, axis=1), G)
        counts = np.zeros((G + 1, genre_onehot.shape[0]))
        np.add.at(counts, (seg[member], title), 1.0)
        self.segment_, self.counts_ = seg, counts
        return self

    def score(self, visits: VisitBatch) -> np.ndarray:
        pop = visits.catalog.popularity
        if self.counts_ is None:
            return np.broadcast_to(pop, (len(visits), pop.size))
        # ties (never played) broken by observable popularity, far below one play
        return self.counts_[self.segment_[visits.member]] + 1e-3 * np.tanh(pop)[None, :]
