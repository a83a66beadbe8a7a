"""The contract between the service and whatever composes a home page.

A :class:`HomepageProvider` turns ``(member_id, context, rng)`` into a :class:`Page`: rows of
titles, each slot with its artwork and the **exact** probability that the provider shows this
title in this slot given the member and context (``propensity``, in (0, 1]) and the probability
of the artwork given the title (``artwork_propensity``). The service logs every slot with these
numbers, the provider's ``name`` (the ``policy`` column) and ``version`` (``model_version``), so
the logs support off-policy evaluation. All randomness must come from ``rng``.

The provider is stateless per request and must be safe to call from several threads at once; the
service swaps the whole provider (with its catalogue) on ``POST /v1/admin/reload``.

Slot arrays (``S`` shown slots, in row-major order): ``title_ids (S,)``, ``artwork_ids (S,)``,
``row_index (S,)`` into ``row_labels``, ``position (S,)`` within the row, ``propensity (S,)``,
``artwork_propensity (S,)``, ``score (S,)`` (the ranking score, for the explain view) and
``explored (S,)`` (``True`` where the slot was filled by exploration rather than the ranking).
Optionally ``title_index (S,)`` and ``artwork_index (S,)``: the same titles and artworks as
positions in the bundle catalogue's ``title_ids`` / ``artwork_ids`` (a provider that has them
passes them on; the service then serialises the page by index instead of looking ids up).

Example
-------
>>> import numpy as np
>>> page = Page.single_row(["t1", "t2"], ["t1-a0", "t2-a0"], label="Popular")
>>> page.n_slots, page.row_labels
(2, ('Popular',))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class PageContext:
    """Where and when the page is shown: device, country, local hour (0..23), day of week
    (0 = Monday) and the Unix time of the request."""

    device: str
    country: str
    hour: int
    day_of_week: int
    timestamp: int


@dataclass(frozen=True, eq=False)
class Page:
    """A composed page (see the module docstring for the slot arrays)."""

    title_ids: Sequence[str] | np.ndarray
    artwork_ids: Sequence[str] | np.ndarray
    row_index: np.ndarray
    position: np.ndarray
    propensity: np.ndarray
    artwork_propensity: np.ndarray
    score: np.ndarray
    explored: np.ndarray
    row_labels: tuple[str, ...]
    row_reasons: tuple[str, ...]
    cold_start: bool = False
    title_index: np.ndarray | None = None
    artwork_index: np.ndarray | None = None

    @property
    def n_slots(self) -> int:
        return len(self.title_ids)

    def check(self) -> None:
        """Raise ``ValueError`` when arrays disagree in length, a title repeats, a propensity
        is outside (0, 1] or a row index is outside ``row_labels``."""
        n = self.n_slots
        for name in ("artwork_ids", "row_index", "position", "propensity", "artwork_propensity",
                     "score", "explored", "title_index", "artwork_index"):
            if getattr(self, name) is not None and len(getattr(self, name)) != n:
                raise ValueError(f"Page.{name}: length {len(getattr(self, name))} != {n}")
        if len(set(self.title_ids)) != n:
            raise ValueError("Page.title_ids: a title appears twice on one page")
        for name in ("propensity", "artwork_propensity"):
            p = np.asarray(getattr(self, name))
            if not ((p > 0) & (p <= 1 + 1e-12)).all():
                raise ValueError(f"Page.{name}: propensities must lie in (0, 1]")
        if len(self.row_reasons) != len(self.row_labels):
            raise ValueError("Page.row_reasons: one reason per row label")
        ri = np.asarray(self.row_index)
        if n and (ri.min() < 0 or ri.max() >= len(self.row_labels)):
            raise ValueError("Page.row_index: outside row_labels")

    @classmethod
    def single_row(cls, title_ids: Sequence[str], artwork_ids: Sequence[str], *,
                   label: str = "row", reason: str = "") -> Page:
        """A deterministic one-row page (propensities 1); handy in tests."""
        n = len(title_ids)
        return cls(title_ids=list(title_ids), artwork_ids=list(artwork_ids),
                   row_index=np.zeros(n, np.int32), position=np.arange(n, dtype=np.int32),
                   propensity=np.ones(n), artwork_propensity=np.ones(n), score=np.zeros(n),
                   explored=np.zeros(n, bool), row_labels=(label,), row_reasons=(reason,))


@runtime_checkable
class HomepageProvider(Protocol):
    """Composes home pages with exact propensities (see the module docstring)."""

    #: Logged as ``policy`` with every impression.
    name: str
    #: Logged as ``model_version`` with every impression.
    version: str

    def compose(self, member_id: str, context: PageContext, rng: np.random.Generator) -> Page:
        """The page for ``member_id`` (possibly unknown: then a cold-start page) in ``context``."""
        ...
