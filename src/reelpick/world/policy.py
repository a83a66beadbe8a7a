"""The world's side of the decision contract (:mod:`reelpick.decision`).

The simulator hands policies :class:`WorldVisits`: a :class:`~reelpick.decision.VisitBatch`
that also carries the hidden binge ``mood (n,)`` of each visit. Policies written against the
contract never read it; only the world's own dynamics and its confounded logger
(:class:`reelpick.world.PromotionPolicy`) do, and it is never logged.

Example
-------
>>> import numpy as np
>>> from reelpick.decision import PageBatch
>>> page = PageBatch.grid(np.array([[3, 1]]), n_rows=1, n_positions=2,
...                       propensity=np.ones((1, 2)))
>>> page.row_index.tolist(), page.position.tolist()
([[0, 0]], [[0, 1]])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from reelpick.decision.contract import (
    Catalog,
    ExactPolicy,
    Marginals,
    PageBatch,
    Policy,
    VisitBatch,
)

__all__ = ["Catalog", "ExactPolicy", "Marginals", "PageBatch", "Policy", "VisitBatch",
           "WorldVisits"]


@dataclass(frozen=True, eq=False)
class WorldVisits(VisitBatch):
    """Simulated visits: the observable :class:`VisitBatch` plus the hidden ``mood (n,)``."""

    PER_VISIT: ClassVar[tuple[str, ...]] = VisitBatch.PER_VISIT + ("mood",)

    mood: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.mood is None:
            object.__setattr__(self, "mood", np.zeros(len(self.member), np.int8))


def hidden_mood(visits: VisitBatch) -> np.ndarray:
    """``(n,)`` the hidden mood of simulated visits (zeros for visits of another origin)."""
    mood = getattr(visits, "mood", None)
    return np.zeros(len(visits), np.int8) if mood is None else np.asarray(mood)
