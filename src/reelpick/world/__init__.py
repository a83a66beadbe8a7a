"""A simulated streaming world with known ground truth (see ``docs/world.md``).

Members with drifting tastes visit in a context; a :class:`~reelpick.world.policy.Policy` shows a
page; plays follow position bias, context, novelty and artwork match; logs come out in reelpick's
schema, and the truth (play and uplift probabilities, policy values) is available exactly.
"""

from reelpick.data.schema import THEMES
from reelpick.world.config import AGE_BANDS, GENRES, PRESETS, WorldConfig
from reelpick.world.dynamics import MemberState
from reelpick.world.log import SimulationLog
from reelpick.world.policy import (
    Catalog,
    ExactPolicy,
    Marginals,
    PageBatch,
    Policy,
    VisitBatch,
    WorldVisits,
)
from reelpick.world.promotion import PromotionPolicy
from reelpick.world.world import PolicyValue, World

__all__ = [
    "AGE_BANDS",
    "Catalog",
    "ExactPolicy",
    "GENRES",
    "Marginals",
    "MemberState",
    "PRESETS",
    "PageBatch",
    "Policy",
    "PolicyValue",
    "PromotionPolicy",
    "SimulationLog",
    "THEMES",
    "VisitBatch",
    "WorldVisits",
    "World",
    "WorldConfig",
]
