"""Page policies. Each follows :class:`reelpick.decision.Policy` and logs exact propensities.

Reference pages (:mod:`~reelpick.policies.basic`), score-based pages (greedy, epsilon-greedy,
softmax / Plackett-Luce in :mod:`~reelpick.policies.scored`), contextual bandits (LinUCB,
Thompson sampling in :mod:`~reelpick.policies.bandits`) and the greedy winner among competing
models (:mod:`~reelpick.policies.competing`). Every one of them also states its whole exposure
distribution (``marginals``), hence :func:`action_dist` for off-policy evaluation. See
``docs/policies.md``.
"""

from reelpick.policies.bandits import (
    CONTEXT_FEATURES,
    LinUCBPolicy,
    ThompsonSamplingPolicy,
    visit_context,
)
from reelpick.policies.base import (
    AnnotatedPageBatch,
    PopularityScorer,
    Scorer,
    action_dist,
)
from reelpick.policies.basic import (
    PopularPolicy,
    UniformPolicy,
    sample_uniform_pages,
)
from reelpick.policies.cached import CachedPagePolicy
from reelpick.policies.competing import GreedyWinnerPolicy
from reelpick.policies.exploring import ExploringPolicy, PoolExploringPolicy
from reelpick.policies.order_stats import gumbel_rank_marginals, normal_rank_marginals
from reelpick.policies.scored import (
    EpsilonGreedyPolicy,
    GreedyPolicy,
    SoftmaxPolicy,
    plackett_luce_list_probability,
)

__all__ = [
    "AnnotatedPageBatch",
    "CONTEXT_FEATURES",
    "CachedPagePolicy",
    "EpsilonGreedyPolicy",
    "ExploringPolicy",
    "GreedyPolicy",
    "GreedyWinnerPolicy",
    "LinUCBPolicy",
    "PopularPolicy",
    "PopularityScorer",
    "PoolExploringPolicy",
    "Scorer",
    "SoftmaxPolicy",
    "ThompsonSamplingPolicy",
    "UniformPolicy",
    "action_dist",
    "gumbel_rank_marginals",
    "normal_rank_marginals",
    "plackett_luce_list_probability",
    "sample_uniform_pages",
    "visit_context",
]
