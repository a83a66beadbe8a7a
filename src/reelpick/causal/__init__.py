"""Causal effects of recommendations: instrumental variables and uplift ranking.

* :mod:`reelpick.causal.iv`: two-stage least squares with robust/clustered errors and
  first-stage diagnostics (:func:`two_stage_least_squares`, :func:`ols`).
* :mod:`reelpick.causal.weakiv`: weak-instrument-robust inference: Anderson-Rubin tests and
  their exactly inverted confidence sets (:func:`anderson_rubin`, :class:`ConfidenceSet`), the
  effective first-stage F.
* :mod:`reelpick.causal.sgd`: streamed stochastic-gradient IV (:class:`SGDIV`) for data too big
  for closed form, with sparse member/title effects.
* :mod:`reelpick.causal.instruments`: IV designs from the logs' experiment cells and
  randomised slots (:class:`Logs`, :func:`visit_design`).
* :mod:`reelpick.causal.uplift`: uplift per segment and title, a policy ranking by uplift,
  naive offline hit rates, and ``MISMATCH_WORLD`` (the offline/online mismatch world).
* :mod:`reelpick.causal.learners`: :class:`TLearnerUplift`, a feature-based T-learner (LightGBM)
  of p(play | do(show)) and p(play | do(not show)).

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
from reelpick.causal.learners import TLearnerConfig, TLearnerUplift
from reelpick.causal.sgd import (
    SGDIV,
    ArrayBatches,
    ConvergenceWarning,
    IVBatch,
    ParquetBatches,
    SGDIVConfig,
)
from reelpick.causal.uplift import (
    MISMATCH_WORLD,
    HitRate,
    SegmentUpliftModel,
    UpliftPolicy,
    UpliftScorer,
    offline_hit_rate,
    offline_hit_rates,
)
from reelpick.causal.weakiv import AndersonRubin, ConfidenceSet, anderson_rubin

__all__ = [
    "COV_TYPES",
    "AndersonRubin",
    "ArrayBatches",
    "ConfidenceSet",
    "ConvergenceWarning",
    "Design",
    "FirstStage",
    "HitRate",
    "IVBatch",
    "IVResult",
    "Logs",
    "MISMATCH_WORLD",
    "NotFittedError",
    "ParquetBatches",
    "SGDIV",
    "SGDIVConfig",
    "SegmentUpliftModel",
    "TLearnerConfig",
    "TLearnerUplift",
    "TwoStageLeastSquares",
    "UpliftPolicy",
    "UpliftScorer",
    "WeakInstrumentWarning",
    "anderson_rubin",
    "offline_hit_rate",
    "offline_hit_rates",
    "ols",
    "two_stage_least_squares",
    "visit_design",
]
