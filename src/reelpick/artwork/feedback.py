r"""Artwork feedback: one row per impression, with the play credited to the image *given the title*.

Credit assignment
-----------------
A page decision is two nested choices: the title policy puts title :math:`t` in slot :math:`s`
with probability :math:`\pi(t, s \mid x)` (the impression's ``propensity``), *then* the artwork
policy picks variant :math:`a` of :math:`t` with probability :math:`\mu(a \mid x, t)` (the
impression's ``artwork_propensity``). The joint probability is the product, but an artwork policy
never changes which titles are shown, so when it is evaluated or trained the title choice is
common to the logging and the target policy and cancels:

.. math::

    w = \frac{\pi(t,s \mid x)\, \mu_e(a \mid x, t)}{\pi(t,s \mid x)\, \mu_0(a \mid x, t)}
      = \frac{\mu_e(a \mid x, t)}{\mu_0(a \mid x, t)}.

So an :class:`ArtworkRows` row is *(member, context, shown title, image, play)* and its ``pscore``
is the artwork propensity alone; the value it estimates is the **take fraction**, plays per
impression of the titles that were shown. Conversely the title ranker keeps learning from the
title rows (``title``, ``propensity``, ``play``) untouched: the artwork is drawn after and
independently of the title decision, so choosing images adds no term to the title's propensity
(see ``docs/artwork.md`` and ``tests/artwork/test_credit.py``). Organic plays of titles that were
not on the page are no artwork's doing and never appear here.

Example
-------
>>> from reelpick.world import World, WorldConfig
>>> from reelpick.policies import UniformPolicy
>>> world = World(WorldConfig.preset("small"), seed=0)
>>> log = world.simulate(UniformPolicy(artwork="random"), n_visits=100)
>>> rows = ArtworkRows.from_pages(log.logged_pages(), world.entities.art_offset,
...                               world.members()["member_id"])
>>> len(rows) == log.n_impressions, bool((rows.pscore == 1 / rows.n_variants).all())
(True, True)
>>> rows.feedback(max_variants=8).n_actions
8
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reelpick.data.vocab import Vocabulary
from reelpick.decision.tables import LoggedPages
from reelpick.ope.feedback import LoggedFeedback

_FIELDS = ("visit", "member", "device", "hour", "day_of_week", "title", "artwork", "variant",
           "n_variants", "slot", "play", "watch_seconds", "pscore", "title_propensity")


@dataclass(frozen=True, eq=False)
class ArtworkRows:
    """Impressions as artwork decisions, every array ``(m,)``: ``visit``, ``member``,
    ``device``, ``hour``, ``day_of_week``, ``title``, global ``artwork``, ``variant`` (within the
    title), ``n_variants``, ``slot``, ``play`` (0/1), ``watch_seconds``, ``pscore`` (the artwork
    propensity :math:`\\mu_0(a \\mid x, t)`) and ``title_propensity`` (kept for reference only;
    it plays no part in the artwork's credit)."""

    visit: np.ndarray
    member: np.ndarray
    device: np.ndarray
    hour: np.ndarray
    day_of_week: np.ndarray
    title: np.ndarray
    artwork: np.ndarray
    variant: np.ndarray
    n_variants: np.ndarray
    slot: np.ndarray
    play: np.ndarray
    watch_seconds: np.ndarray
    pscore: np.ndarray
    title_propensity: np.ndarray

    def __post_init__(self) -> None:
        m = np.asarray(self.visit).shape
        for name in _FIELDS:
            arr = np.asarray(getattr(self, name))
            if arr.shape != m or arr.ndim != 1:
                raise ValueError(f"{name}: expected shape {m}, got {arr.shape}")
            object.__setattr__(self, name, arr)
        if ((self.variant < 0) | (self.variant >= self.n_variants)).any():
            raise ValueError("variant: must lie in 0..n_variants-1")
        if not ((self.pscore > 0) & (self.pscore <= 1 + 1e-12)).all():
            raise ValueError("pscore: artwork propensities must lie in (0, 1]")
        if not np.isin(self.play, (0, 1)).all():
            raise ValueError("play: must be 0 or 1")

    def __len__(self) -> int:
        return int(self.visit.size)

    @classmethod
    def from_pages(cls, pages: LoggedPages, art_offset: np.ndarray,
                   members: Vocabulary | Sequence[str]) -> ArtworkRows:
        """Every shown slot of ``pages`` whose artwork is known (``artwork >= 0``):
        ``art_offset`` ``(n_titles + 1,)`` the first global artwork index of each title in
        ``pages.title_ids`` order (e.g. ``ArtworkCatalog.art_offset``), ``members`` the member
        order of ``member`` (``-1`` outside it). ``visit`` is the page index."""
        vocab = members if isinstance(members, Vocabulary) else Vocabulary(list(members))
        off = np.asarray(art_offset)
        ok = pages.artwork >= 0
        v, title, variant = pages.visit[ok], pages.title[ok], pages.artwork[ok]
        return cls(visit=v, member=vocab.index(pages.member_id, missing="negative")[v],
                   device=pages.device[v], hour=pages.hour[v],
                   day_of_week=pages.day_of_week[v], title=title,
                   artwork=off[title] + variant, variant=variant,
                   n_variants=np.diff(off)[title], slot=pages.slot[ok],
                   play=pages.play[ok].astype(np.int8), watch_seconds=pages.watch_seconds[ok],
                   pscore=pages.artwork_propensity[ok], title_propensity=pages.propensity[ok])

    def take(self, index: np.ndarray | slice) -> ArtworkRows:
        """The rows at ``index``."""
        return ArtworkRows(**{k: getattr(self, k)[index] for k in _FIELDS})

    @property
    def is_uniform(self) -> bool:
        """Whether every row was logged by a uniformly random image (``pscore = 1 / n_variants``,
        the image-explore mode): what replay needs."""
        return bool(np.allclose(self.pscore * self.n_variants, 1.0, rtol=1e-9, atol=0))

    def clusters(self, by: str = "member_title") -> np.ndarray | None:
        """Cluster ids for cluster-robust intervals: ``"member_title"`` (rows of one member and
        title: image-explore assigns a sticky image per pair, so they share it), ``"member"``,
        ``"visit"``, or ``"row"`` (``None``: every row independent)."""
        if by == "row":
            return None
        if by == "visit":
            return self.visit.astype(np.int64)
        if by == "member":
            return self.member.astype(np.int64)
        if by == "member_title":
            n_titles = int(self.title.max()) + 1 if len(self) else 1
            return self.member.astype(np.int64) * n_titles + self.title
        raise ValueError(f"cluster: use 'member_title', 'member', 'visit' or 'row', got {by!r}")

    def feedback(self, max_variants: int | None = None, *, cluster: str = "row"
                 ) -> LoggedFeedback:
        """The rows in :mod:`reelpick.ope`'s vocabulary: ``action`` = variant within the title,
        ``reward`` = play, ``pscore`` = artwork propensity (no title term, see the module
        docstring), ``n_actions = max_variants`` (default: the largest ``n_variants``);
        ``cluster`` (:meth:`clusters`) becomes ``slate_id``, which makes the intervals of
        :mod:`reelpick.ope` cluster-robust."""
        k = int(self.n_variants.max()) if max_variants is None else int(max_variants)
        return LoggedFeedback(action=self.variant, reward=self.play.astype(float),
                              pscore=self.pscore, n_actions=k, slate_id=self.clusters(cluster))
