"""The decision contract shared by every layer (see :mod:`reelpick.decision.contract`).

Visits (observable context only), pages with exact title-in-slot and artwork propensities,
exact marginals, the policy protocols, and the converters between the logged tables
(impressions, outcomes, titles) and page batches (:mod:`reelpick.decision.tables`).
"""

from reelpick.decision.contract import (
    Catalog,
    ExactPolicy,
    Marginals,
    PageBatch,
    Policy,
    VisitBatch,
)

__all__ = ["Catalog", "ExactPolicy", "Marginals", "PageBatch", "Policy", "VisitBatch"]
