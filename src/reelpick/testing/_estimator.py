"""The off-policy estimator contract suite (:func:`check_estimator`) and the uniform slate log
it runs on (:func:`uniform_slate_log`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from reelpick.ope.base import Estimator
from reelpick.ope.estimate import Estimate, OPEWarning
from reelpick.ope.feedback import LoggedFeedback


def _fail(who: str, message: str) -> AssertionError:
    return AssertionError(f"{who}: {message}")


@dataclass(frozen=True, eq=False)
class UniformSlateLog:
    """A uniformly random slate log with a known target value.

    ``feedback``: one round per (slate, position), ``n_slates * n_positions`` rounds, slates
    adjacent (``slate_id``), a binary context ``x`` (``feedback.context``, one column); every
    slot holds a uniformly random action (``pscore = 1 / n_actions``, repeats allowed, so the
    logging distribution is a product over slots). The reward of a slot depends on its action,
    its position and ``x`` only (the position-based model), Bernoulli with mean
    ``mu[x, a, k]``. ``action_dist`` ``(n_rounds, n_actions, n_positions)`` is the target's
    per-slot distribution and ``reward_hat`` the true ``mu`` at each round (a perfect reward
    model). ``value_per_round`` = :math:`E_x \\frac1K\\sum_k\\sum_a\\pi(a|x,k)\\mu(x,a,k)`;
    ``value_per_slate`` is ``n_positions`` times it.
    """

    feedback: LoggedFeedback
    action_dist: np.ndarray
    reward_hat: np.ndarray
    value_per_round: float
    value_per_slate: float


def uniform_slate_log(n_slates: int = 2000, n_actions: int = 4, n_positions: int = 3, *,
                      seed: int = 0) -> UniformSlateLog:
    """The log :func:`check_estimator` runs on (see :class:`UniformSlateLog`)."""
    rng = np.random.default_rng(seed)
    A, K = n_actions, n_positions
    mu = rng.uniform(0.05, 0.6, size=(2, A, K))                           # (x, a, k)
    logits = rng.normal(scale=1.5, size=(2, A, K))
    pi = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)      # (x, a, k)
    x_slate = rng.integers(0, 2, n_slates)
    x = np.repeat(x_slate, K)
    position = np.tile(np.arange(K), n_slates)
    action = rng.integers(0, A, n_slates * K)
    reward = (rng.random(action.size) < mu[x, action, position]).astype(float)
    fb = LoggedFeedback(action=action, reward=reward, pscore=np.full(action.size, 1.0 / A),
                        n_actions=A, position=position, n_positions=K,
                        context=x[:, None].astype(float),
                        slate_id=np.repeat(np.arange(n_slates), K))
    per_slot = (pi * mu).sum(axis=1)                                     # (x, k)
    value = float(per_slot.mean())                                       # x ~ Bernoulli(1/2)
    return UniformSlateLog(fb, pi[x], mu[x], value, value * K)


def check_estimator(estimator: Estimator, *, n_slates: int = 2000, seed: int = 0) -> None:
    """Run the off-policy estimator contract on a uniform slate log with a known value
    (:func:`uniform_slate_log`). Failures raise :class:`AssertionError` naming the estimator.

    * the :class:`~reelpick.ope.Estimate` names the estimator, is finite and ordered
      (``ci_low <= value <= ci_high``, ``se >= 0``, ``0 < ess``), records ``alpha``, and its
      intervals are nested (99% contains 80%); the bootstrap interval is ordered too;
    * its 99% interval covers the true value: per round, or per slate for estimators with
      ``per_round = False``;
    * the estimate does not depend on the order of the rows (rows of a slate kept adjacent)
      and is the same when asked twice;
    * an estimator that ``needs_reward_hat`` refuses to run without one and one that
      ``needs_pscore`` refuses logs without propensities (``ValueError``).

    >>> from reelpick.ope import SNIPS
    >>> check_estimator(SNIPS())
    """
    who = f"{type(estimator).__name__} ({estimator.name})"
    log = uniform_slate_log(n_slates, seed=seed)
    fb, pi, q = log.feedback, log.action_dist, log.reward_hat
    truth = log.value_per_round if estimator.per_round else log.value_per_slate

    def run(feedback: LoggedFeedback = fb, dist: np.ndarray = pi,
            reward_hat: np.ndarray | None = q, **kw: Any) -> Estimate:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OPEWarning)
            return estimator.estimate_policy_value(feedback, dist, reward_hat, **kw)

    wide, narrow = run(alpha=0.01), run(alpha=0.2)
    for est in (wide, narrow):
        _check_estimate(who, est, estimator.name)
    if not (wide.ci_low <= narrow.ci_low + 1e-12 and narrow.ci_high <= wide.ci_high + 1e-12):
        raise _fail(who, f"the 99% interval [{wide.ci_low:.4g}, {wide.ci_high:.4g}] does not "
                         f"contain the 80% one [{narrow.ci_low:.4g}, {narrow.ci_high:.4g}]")
    if abs(wide.alpha - 0.01) > 1e-12 or abs(narrow.value - wide.value) > 1e-12:
        raise _fail(who, "alpha changed the value, or the Estimate does not record alpha")
    if not wide.ci_low <= truth <= wide.ci_high:
        raise _fail(who, f"the 99% interval [{wide.ci_low:.4f}, {wide.ci_high:.4f}] misses the "
                         f"true value {truth:.4f} of a uniform log (estimate {wide.value:.4f})")
    boot = run(ci="bootstrap", n_bootstrap=200, alpha=0.05)
    _check_estimate(who, boot, estimator.name)

    if run(alpha=0.01) != wide:
        raise _fail(who, "two runs on the same inputs differ")
    n_k = fb.n_positions or 1
    order = (np.random.default_rng(seed + 1).permutation(fb.n_rounds // n_k)[:, None] * n_k
             + np.arange(n_k)).ravel()
    shuffled = run(fb.take(order), pi[order], q[order], alpha=0.01)
    if not math.isclose(shuffled.value, wide.value, rel_tol=1e-9, abs_tol=1e-12):
        raise _fail(who, f"reordering the rows changed the value: {wide.value!r} -> "
                         f"{shuffled.value!r}")

    if estimator.needs_reward_hat:
        _refuses(who, lambda: run(reward_hat=None), "reward_hat", "without reward_hat")
    if estimator.needs_pscore:
        _refuses(who, lambda: run(replace(fb, pscore=None)), "pscore", "without pscore")


def _check_estimate(who: str, est: object, name: str) -> None:
    if not isinstance(est, Estimate):
        raise _fail(who, f"estimate_policy_value returned {type(est).__name__}, not Estimate")
    if est.estimator != name:
        raise _fail(who, f"Estimate.estimator is {est.estimator!r}, expected {name!r}")
    nums = (est.value, est.ci_low, est.ci_high, est.se, est.ess)
    if not all(math.isfinite(v) for v in nums):
        raise _fail(who, f"non-finite estimate: {est}")
    if not est.ci_low <= est.value <= est.ci_high:
        raise _fail(who, f"value {est.value:.6g} outside its {est.ci_method} interval "
                         f"[{est.ci_low:.6g}, {est.ci_high:.6g}]")
    if est.se < 0 or est.ess <= 0 or est.n_rounds < 1:
        raise _fail(who, f"se {est.se}, ess {est.ess}, n_rounds {est.n_rounds}: need se >= 0, "
                         "ess > 0, n_rounds >= 1")


def _refuses(who: str, call: Callable[[], object], word: str, what: str) -> None:
    try:
        call()
    except ValueError as exc:
        if word not in str(exc):
            raise _fail(who, f"{what}: the error does not name {word!r}: {exc}") from exc
        return
    raise _fail(who, f"ran {what}; it must raise ValueError naming {word!r}")
