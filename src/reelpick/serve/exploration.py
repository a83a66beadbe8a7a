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

The pool need not be materialised: :func:`explore` takes its size and a function drawing ``k``
distinct members of it uniformly (in random order); :func:`distinct` and
:func:`distinct_outside` are such draws by rejection, exact and without touching the whole
pool when it is large (``rng.choice(n, k, replace=False)`` permutes ``n`` numbers).

>>> import numpy as np
>>> t, p, x = epsilon_greedy(np.array([0, 1]), np.arange(2, 12), 0.5, np.random.default_rng(0))
>>> bool(np.isin(p, [0.5, 0.05]).all()), len(set(t.tolist())) == 2
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable

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
    return explore(greedy, len(pool), epsilon, rng,
                   lambda k: pool[distinct(rng, len(pool), k)])


def explore(greedy: np.ndarray, n_pool: int, epsilon: float, rng: np.random.Generator,
            draw: Callable[[int], np.ndarray], coins: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`epsilon_greedy` with the pool given by its size ``n_pool`` and ``draw(k)``, which
    returns ``k`` distinct pool titles drawn uniformly without replacement (any order that is
    itself uniform, e.g. draw order). ``coins``: ``S`` uniform numbers already drawn from
    ``rng`` (slot ``s`` explores when ``coins[s] < epsilon``; default: drawn here)."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon: must be in [0, 1], got {epsilon!r}")
    S = len(greedy)
    if epsilon == 0.0 or n_pool < S or S == 0:
        return greedy.copy(), np.ones(S), np.zeros(S, dtype=bool)
    explored = (rng.random(S) if coins is None else coins) < epsilon
    titles = greedy.copy()
    k = int(np.count_nonzero(explored))
    if k:
        titles[explored] = draw(k)
    propensity = np.where(explored, epsilon / n_pool, 1.0 - epsilon)
    return titles, propensity, explored


def _first_unique(x: np.ndarray) -> list[int]:
    """The distinct values of ``x`` in order of first occurrence."""
    return list(dict.fromkeys(x.tolist()))


def distinct(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``k`` distinct integers drawn uniformly from ``range(n)`` without replacement, in draw
    order (exact). For ``k`` small against ``n``: i.i.d. draws, repeats dropped; else
    ``rng.choice``."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k > n:
        raise ValueError(f"cannot draw {k} distinct values from {n}")
    if 8 * k > n:
        return rng.choice(n, size=k, replace=False)
    out: list[int] = []
    while len(out) < k:  # each pass keeps what is new, in draw order
        seen = set(out)
        for v in _first_unique(rng.integers(0, n, size=2 * (k - len(out)) + 2)):
            if v not in seen:
                out.append(v)
                if len(out) == k:
                    break
    return np.asarray(out, dtype=np.int64)


def distinct_outside(rng: np.random.Generator, candidates: np.ndarray, excluded: bytes,
                     k: int) -> np.ndarray | None:
    """``k`` distinct elements of ``candidates`` that are not in the bit set ``excluded``
    (bit ``v & 7`` of byte ``v >> 3`` set: ``v`` is out, as ``np.packbits(mask,
    bitorder="little")`` writes it), drawn uniformly without replacement, in draw order:
    candidates are drawn i.i.d. and a draw is kept when neither excluded nor kept before
    (exact).

    Meant for pools that are most of ``candidates`` (the caller checks); ``None`` when ``k``
    were not found within a bounded number of draws: the caller then draws from the explicit
    pool (still exact: that draw does not depend on this one).
    """
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    n = len(candidates)
    for _ in range(64):
        kept = keep_outside(candidates[rng.integers(0, n, size=2 * k + 4)].tolist(), excluded, k)
        if kept is not None:
            return np.asarray(kept, dtype=np.int64)
    return None


def keep_outside(draws: list[int], excluded: bytes, k: int) -> list[int] | None:
    """The first ``k`` distinct ``draws`` not in the bit set ``excluded`` (see
    :func:`distinct_outside`), or ``None`` when there are fewer."""
    kept: dict[int, None] = {}  # insertion-ordered
    for v in draws:
        if not (excluded[v >> 3] >> (v & 7)) & 1 and v not in kept:
            kept[v] = None
            if len(kept) == k:
                return list(kept)
    return None
