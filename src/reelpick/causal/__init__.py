"""Causal effects of recommendations: instrumental variables and uplift ranking.

* :mod:`reelpick.causal.iv`: two-stage least squares with robust/clustered errors and
  first-stage diagnostics (:func:`two_stage_least_squares`, :func:`ols`).
* :mod:`reelpick.causal.sgd`: streamed stochastic-gradient IV (:class:`SGDIV`) for data too big
  for closed form, with sparse member/title effects.
* :mod:`reelpick.causal.instruments`: IV designs from the logs' experiment cells and
  randomised slots (:class:`Logs`, :func:`visit_design`).
* :mod:`reelpick.causal.uplift`: uplift per segment and title, and a policy ranking by it.

See ``docs/causal.md``.
"""

from reelpick.causal.instruments import Design, Logs, visit_design
from reelpick.causal.iv import (
    COV_TYPES,
    FirstStage,
    IVResult,
    NotFittedError,
    TwoStageLeastSquares,
    WeakInstrumentWarning,
    ols,
    two_stage_least_squares,
)
from reelpick.causal.sgd import SGDIV, ArrayBatches, IVBatch, ParquetBatches, SGDIVConfig
from reelpick.causal.uplift import SegmentUpliftModel, UpliftPolicy, offline_hit_rate

__all__ = [
    "COV_TYPES",
    "ArrayBatches",
    "Design",
    "FirstStage",
    "IVBatch",
    "IVResult",
    "Logs",
    "NotFittedError",
    "ParquetBatches",
    "SGDIV",
    "SGDIVConfig",
    "SegmentUpliftModel",
    "TwoStageLeastSquares",
    "UpliftPolicy",
    "WeakInstrumentWarning",
    "offline_hit_rate",
    "ols",
    "two_stage_least_squares",
    "visit_design",
]
