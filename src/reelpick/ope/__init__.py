"""Off-policy evaluation and learning from logs (see ``docs/ope.md``).

Estimators take a :class:`LoggedFeedback` (what the logging policy did, with its propensities)
and the target policy's ``action_dist`` ``(n_rounds, n_actions[, n_positions])`` and return an
:class:`Estimate` with a confidence interval, effective sample size and diagnostics.

>>> import numpy as np
>>> from reelpick.ope import IPS, SNIPS, LoggedFeedback, evaluate_policy
>>> fb = LoggedFeedback(action=[0, 1, 0, 1], reward=[1.0, 0.0, 0.0, 1.0], pscore=[0.5] * 4,
...                     n_actions=2)
>>> res = evaluate_policy(fb, np.tile([0.5, 0.5], (4, 1)), [IPS(), SNIPS()])
>>> round(res["ips"].value, 2), round(res["snips"].value, 2)
(0.5, 0.5)
"""

from reelpick.ope.base import Estimator, OffPolicyEvaluation, RoundInputs, evaluate_policy
from reelpick.ope.estimate import (
    Diagnostics,
    Estimate,
    ExtremeWeightWarning,
    OPEWarning,
    SupportWarning,
    UnreliableEstimateWarning,
    studentized_interval,
)
from reelpick.ope.estimators import DM, DR, IPS, SNDR, SNIPS, ClippedIPS, Replay, SwitchDR
from reelpick.ope.feedback import LoggedFeedback
from reelpick.ope.learning import LinearSoftmaxPolicy
from reelpick.ope.obd import OBDLog, bts_action_dist, load_obd, obd_bts_action_dist
from reelpick.ope.propensity import MultinomialLogit, estimate_pscore
from reelpick.ope.reward_model import LinearRewardModel, cross_fit_reward_model
from reelpick.ope.slate import PositionBasedIPS, PseudoInverse
from reelpick.ope.streaming import (
    ArrayTarget,
    ConstantTarget,
    FeedbackColumns,
    NpyTarget,
    estimate_parquet,
    write_feedback_parquet,
)

#: Estimators by name (the CLI's ``--estimators``), default hyperparameters.
ESTIMATORS: dict[str, type[Estimator]] = {
    e.name: e for e in (Replay, IPS, ClippedIPS, SNIPS, DM, DR, SNDR, SwitchDR, PositionBasedIPS,
                        PseudoInverse)
}

__all__ = [
    "ESTIMATORS",
    "ArrayTarget",
    "ConstantTarget",
    "FeedbackColumns",
    "LinearRewardModel",
    "LinearSoftmaxPolicy",
    "MultinomialLogit",
    "NpyTarget",
    "OBDLog",
    "bts_action_dist",
    "cross_fit_reward_model",
    "estimate_parquet",
    "estimate_pscore",
    "load_obd",
    "obd_bts_action_dist",
    "studentized_interval",
    "write_feedback_parquet",
    "DM",
    "DR",
    "IPS",
    "SNDR",
    "SNIPS",
    "ClippedIPS",
    "Diagnostics",
    "Estimate",
    "Estimator",
    "ExtremeWeightWarning",
    "LoggedFeedback",
    "OPEWarning",
    "UnreliableEstimateWarning",
    "OffPolicyEvaluation",
    "PositionBasedIPS",
    "PseudoInverse",
    "Replay",
    "RoundInputs",
    "SupportWarning",
    "SwitchDR",
    "evaluate_policy",
]
