r"""Per-slot epsilon-greedy exploration with exact marginal propensities.

Given a greedy page :math:`G_1, \dots, G_S` (distinct titles) and an exploration pool :math:`E`
of :math:`|E| \ge S` titles disjoint from the greedy page, every slot independently explores with
probability :math:`\epsilon`; the ``k`` exploring slots get ``k`` distinct titles drawn uniformly
without replacement from :math:`E`. By symmetry each exploring slot holds a uniform element of
:math:`E`, so the probability that title :math:`t` is shown in slot :math:`s` is exactly

.. math:: \pi(t, s) = (1 - \epsilon)\,[t = G_s] + \epsilon\,[t \in E] / |E|.

When :math:`|E| < S` the draw could run out of titles, so the page is greedy (propensity 1).
This is the slot-level analogue of :class:`reelpick.policies.PopularPolicy`'s page-level
``(1 - eps)[top] + eps / A``.

>>> import numpy as np
>>> t, p, x = epsilon_greedy(np.array([0, 1]), np.arange(2, 12), 0.5, np.random.default_rng(0))
>>> bool(np.isin(p, [0.5, 0.05]).all()), len(set(t.tolist())) == 2
(True, True)
"""

from __future__ import annotations

import numpy as np


def epsilon_greedy(greedy: np.ndarray, pool: np.ndarray, epsilon: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Explore the greedy page slot by slot.

    Parameters
    ----------
    greedy : (S,) int, distinct title indices in slot order.
    pool : (E,) int, distinct titles not in ``greedy`` (the exploration pool).
    epsilon : probability that a slot explores, in [0, 1].
    rng : the source of all randomness.

    Returns
    -------
    titles : (S,) int, the titles shown.
    propensity : (S,) float, :math:`\\pi(\\text{shown title}, s)` (see the module docstring).
    explored : (S,) bool, slots filled from the pool.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon: must be in [0, 1], got {epsilon!r}")
    S, E = len(greedy), len(pool)
    if epsilon == 0.0 or E < S or S == 0:
        return greedy.copy(), np.ones(S), np.zeros(S, dtype=bool)
    explored = rng.random(S) < epsilon
    titles = greedy.copy()
    k = int(explored.sum())
    if k:
        titles[explored] = pool[rng.choice(E, size=k, replace=False)]
    propensity = np.where(explored, epsilon / E, 1.0 - epsilon)
    return titles, propensity, explored
