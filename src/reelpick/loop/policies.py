r"""The loop's serving policy and its correlational learner.

:class:`ExploringPolicy` serves a deterministic page policy and, for a share :math:`\epsilon` of
visits (drawn per visit), a uniformly random page (the exploration bucket). Images are drawn
uniformly per slot (``artwork_propensity = 1 / n_variants``) unless ``artwork`` is given. The
propensity of the title shown in slot :math:`s` is exact:

.. math::

    P(t \text{ in } s \mid v) = \epsilon \cdot \frac{1}{A_v} + (1 - \epsilon)\,[t = b_s(v)]

(:math:`A_v` the titles available to the visit, :math:`b(v)` the base policy's page), and
``source`` marks each visit ``"explore"`` or the base policy's name.

:class:`PlayCountScorer` is the purely correlational learner of the feedback-loop demo: a title's
score for a member is its number of logged plays among members of the same segment (the
member's most-played genre), page and organic plays alike — what a recommender trained on "what
people watched" learns from its own logs.

Example
-------
>>> import numpy as np
>>> from reelpick.policies import GreedyPolicy
>>> from reelpick.world import World, WorldConfig
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> vb = world.make_visits(np.arange(50), world.config.start + 3600)
>>> page = ExploringPolicy(GreedyPolicy(), epsilon=0.5).choose(vb, np.random.default_rng(0))
>>> bool(((page.propensity > 0) & (page.propensity <= 1)).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reelpick.policies import AnnotatedPageBatch, sample_uniform_pages
from reelpick.world import SimulationLog, VisitBatch
from reelpick.world.policy import Policy


@dataclass(frozen=True, eq=False)
class ExploringPolicy:
    """``base`` pages with probability ``1 - epsilon``, uniform pages otherwise (module
    docstring). ``base`` must be deterministic (propensity 1 on its own page); ``artwork`` is an
    optional image selector (``select(visits, titles, rng)``) used instead of uniform images."""

    base: Policy
    epsilon: float
    artwork: object | None = None
    name: str = field(default="")

    def __post_init__(self) -> None:
        if not 0 <= self.epsilon < 1:
            raise ValueError(f"epsilon: must be in [0, 1), got {self.epsilon!r}")
        if not self.name:
            object.__setattr__(self, "name", f"{self.base.name}+explore")

    @property
    def version(self) -> str:
        return str(getattr(self.base, "version", "v0"))

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> AnnotatedPageBatch:
        n, S = len(visits), visits.n_slots
        base = self.base.choose(visits, rng)
        if not np.allclose(base.propensity[base.titles >= 0], 1.0):
            raise ValueError(f"base policy {self.base.name!r} is not deterministic "
                             "(propensities < 1): ExploringPolicy needs a deterministic base")
        explore = rng.random(n) < self.epsilon
        titles = base.titles.copy()
        if explore.any():
            idx = np.flatnonzero(explore)
            uni, _ = sample_uniform_pages(visits.available, visits.country[idx], S, rng)
            titles[idx] = uni
        A = visits.n_available().astype(float)
        match = (titles == base.titles) & (titles >= 0)
        prop = self.epsilon / np.maximum(A, 1)[:, None] + (1 - self.epsilon) * match
        prop = np.where(titles >= 0, np.minimum(prop, 1.0), 1.0)
        if self.artwork is not None:
            choice = self.artwork.select(visits, titles, rng)  # type: ignore[attr-defined]
            arts, aprop = choice.artworks, choice.propensity
        else:
            nv = visits.catalog.n_variants[np.where(titles >= 0, titles, 0)]
            arts = np.where(titles >= 0, (rng.random((n, S)) * nv).astype(np.int64), 0)
            aprop = np.where(titles >= 0, 1.0 / nv, 1.0)
        source = np.where(explore, "explore", str(self.base.name)).astype(object)
        return AnnotatedPageBatch(
            titles=titles, artworks=arts, row_index=base.row_index, position=base.position,
            propensity=prop, artwork_propensity=aprop, row_labels=base.row_labels,
            slot_label=getattr(base, "slot_label", None), source=source)


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
