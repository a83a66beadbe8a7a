"""Page policies. Each follows :class:`reelpick.world.policy.Policy` and logs exact propensities."""

from reelpick.policies.basic import (
    PopularPolicy,
    PromotionPolicy,
    UniformPolicy,
    sample_uniform_pages,
)

__all__ = ["PopularPolicy", "PromotionPolicy", "UniformPolicy", "sample_uniform_pages"]
