"""The one page policy reelpick ships (:mod:`reelpick.page.policy`): trained from logged
tables, saved as a directory, served, simulated, evaluated offline and promoted."""

from reelpick.page.policy import (
    COLD,
    KIND,
    BoundPagePolicy,
    PagePolicy,
    PagePolicyConfig,
    train_page_policies,
    train_page_policy,
)

__all__ = ["BoundPagePolicy", "COLD", "KIND", "PagePolicy", "PagePolicyConfig",
           "train_page_policies", "train_page_policy"]
