"""Contract suites for reelpick's interfaces, to run on every implementation (yours too).

Each ``check_*`` function exercises one interface on tiny data whose right answer is known and
raises :class:`AssertionError` with a message naming the implementation and the rule it broke
(scikit-learn's ``check_estimator``, LensKit's ``lenskit.testing``):

* :func:`check_recommender` (``model_factory, interactions``): a
  :class:`~reelpick.models.Recommender`: not-fitted errors, fit/score/recommend shapes, top-k
  over unseen titles, exclusions, save/load round trip.
* :func:`check_policy` (``policy, visits``): a :class:`~reelpick.decision.Policy`: valid
  pages (:meth:`~reelpick.decision.PageBatch.check`), propensities in (0, 1] that agree with
  the exact marginals and with the frequencies of repeated draws. :func:`toy_visits` makes
  visits without a simulator.
* :func:`check_estimator` (``estimator``): an off-policy :class:`~reelpick.ope.Estimator`:
  ordered, nested intervals that cover the known value of a uniform log
  (:func:`uniform_slate_log`), order invariance, refusals of missing inputs.

Nothing here imports the simulator (:mod:`reelpick.world`) or torch. Test infrastructure
with heavier needs lives in submodules imported on their own:

* :mod:`reelpick.testing.postgres`: a throwaway PostgreSQL server for tests of the PostgreSQL
  event log.
* :mod:`reelpick.testing.fuzz`: a schemathesis fuzzer for the service (needs the ``dev`` extra).
"""

from reelpick.testing._estimator import UniformSlateLog, check_estimator, uniform_slate_log
from reelpick.testing._policy import check_policy
from reelpick.testing._recommender import check_recommender
from reelpick.testing._visits import toy_visits

__all__ = [
    "UniformSlateLog",
    "check_estimator",
    "check_policy",
    "check_recommender",
    "toy_visits",
    "uniform_slate_log",
]
