"""The page-policy contract suite (:func:`check_policy`)."""

from __future__ import annotations

import numpy as np

from reelpick.decision import ExactPolicy, PageBatch, Policy, VisitBatch


def _fail(who: str, message: str) -> AssertionError:
    return AssertionError(f"{who}: {message}")


def check_policy(policy: Policy, visits: VisitBatch, *, seed: int = 0,
                 n_draws: int = 400) -> None:
    """Run the :class:`~reelpick.decision.Policy` contract on ``visits`` (a few dozen are
    enough). Failures raise :class:`AssertionError` naming the policy and the rule.

    * ``choose(visits, rng)`` returns a :class:`~reelpick.decision.PageBatch` of
      ``(len(visits), visits.n_slots)`` that passes :meth:`PageBatch.check` (available titles,
      no title twice, variants in range, propensities of shown slots in (0, 1]), and the same
      seed gives the same pages;
    * an :class:`~reelpick.decision.ExactPolicy`'s ``marginals(visits)`` are probabilities
      (each slot shows at most one title, each title fills at most one slot, nothing
      unavailable) and the logged ``propensity`` of every shown slot equals its marginal;
    * the propensities are exact: over ``n_draws`` pages for copies of the first visit, each
      (title, slot) is logged with one propensity and shown with that frequency (exact
      binomial test per pair, family-wise level 1e-4 over the pairs shown, frequent and rare
      pairs each a family). ``n_draws=0`` skips this.

    Any :class:`VisitBatch` will do: the simulator's (``World.make_visits``) or
    :func:`~reelpick.testing.toy_visits`.

    >>> from reelpick.policies import UniformPolicy
    >>> from reelpick.testing import toy_visits
    >>> check_policy(UniformPolicy(), toy_visits())
    """
    who = str(getattr(policy, "name", type(policy).__name__))
    if not isinstance(policy, Policy):
        raise _fail(who, "not a reelpick.decision.Policy (needs name and choose(visits, rng))")
    page = policy.choose(visits, np.random.default_rng(seed))
    _check_page(who, page, visits)
    again = policy.choose(visits, np.random.default_rng(seed))
    if not (np.array_equal(again.titles, page.titles)
            and np.allclose(again.propensity, page.propensity)):
        raise _fail(who, "choose() with the same seed gave different pages")

    if isinstance(policy, ExactPolicy):
        _check_marginals(who, policy, visits, page)
    if n_draws:
        _check_frequencies(who, policy, visits, seed, n_draws)


def _check_page(who: str, page: object, visits: VisitBatch) -> None:
    if not isinstance(page, PageBatch):
        raise _fail(who, f"choose() returned {type(page).__name__}, not a PageBatch")
    expected = (len(visits), visits.n_slots)
    if page.titles.shape != expected:
        raise _fail(who, f"choose(): titles {page.titles.shape}, expected {expected}")
    try:
        page.check(visits)
    except ValueError as exc:
        raise _fail(who, f"choose() gave an invalid page: {exc}") from exc
    shown = page.titles >= 0
    if not shown.any():
        raise _fail(who, "choose() left every slot empty")
    for name in ("propensity", "artwork_propensity"):
        p = getattr(page, name)[shown]
        if not (np.isfinite(p).all() and (p > 0).all() and (p <= 1 + 1e-12).all()):
            raise _fail(who, f"choose(): {name} of shown slots outside (0, 1]")


def _check_marginals(who: str, policy: ExactPolicy, visits: VisitBatch,
                     page: PageBatch) -> None:
    m = policy.marginals(visits)
    n, T, S = len(visits), visits.catalog.n_titles, visits.n_slots
    ts = np.asarray(m.title_slot)
    if ts.shape != (n, T, S):
        raise _fail(who, f"marginals(): title_slot {ts.shape}, expected {(n, T, S)}")
    tol = 1e-6
    if not (np.isfinite(ts).all() and (ts >= -tol).all() and (ts <= 1 + tol).all()):
        raise _fail(who, "marginals(): title_slot outside [0, 1]")
    if (ts.sum(axis=1) > 1 + tol).any():
        raise _fail(who, "marginals(): a slot shows more than one title in expectation")
    if (ts.sum(axis=2) > 1 + tol).any():
        raise _fail(who, "marginals(): a title fills more than one slot in expectation")
    unavailable = ~visits.available[visits.country]                     # (n, T)
    if (ts[unavailable] > tol).any():
        raise _fail(who, "marginals(): an unavailable title has a chance of being shown")
    i, s = np.nonzero(page.titles >= 0)
    logged = page.propensity[i, s]
    exact = ts[i, page.titles[i, s], s]
    if not np.allclose(logged, exact, rtol=1e-6, atol=1e-9):
        worst = int(np.argmax(np.abs(logged - exact)))
        raise _fail(who, f"choose(): logged propensity {logged[worst]:.6g} differs from "
                         f"marginals() {exact[worst]:.6g} (visit {i[worst]}, slot {s[worst]})")


def _check_frequencies(who: str, policy: Policy, visits: VisitBatch, seed: int,
                       n_draws: int) -> None:
    copies = visits.subset(np.zeros(n_draws, dtype=np.int64))
    page = policy.choose(copies, np.random.default_rng([seed, 1]))
    _check_page(who, page, copies)
    S = visits.n_slots
    shown = page.titles >= 0
    slot = np.broadcast_to(np.arange(S), page.titles.shape)[shown]
    key = page.titles[shown] * S + slot                                  # (title, slot) pairs
    prop = page.propensity[shown]
    pairs, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    lo = np.full(pairs.size, np.inf)
    hi = np.full(pairs.size, -np.inf)
    np.minimum.at(lo, inverse, prop)
    np.maximum.at(hi, inverse, prop)
    if (hi - lo > 1e-9 * np.maximum(hi, 1e-12)).any():
        j = int(np.argmax(hi - lo))
        raise _fail(who, f"title {pairs[j] // S} in slot {pairs[j] % S} of one visit was "
                         f"logged with propensities {lo[j]:.6g}..{hi[j]:.6g}: P(title in slot "
                         "| visit) is one number")
    freq = counts / n_draws
    # exact binomial tails (rare pairs are far from normal), Bonferroni within two families
    # split by the logged propensity (not by the counts): pairs expected at least 5 times and
    # the rarer ones, each at level 5e-5, so an exact policy fails with probability below 1e-4
    # and the few frequent pairs are not drowned by the many rare ones
    from scipy.stats import binom

    p_value = np.minimum(1.0, 2 * np.minimum(binom.cdf(counts, n_draws, hi),
                                             binom.sf(counts - 1, n_draws, hi)))
    frequent = n_draws * hi >= 5
    m = np.where(frequent, max(int(frequent.sum()), 1), max(int((~frequent).sum()), 1))
    bad = p_value < 5e-5 / m
    if bad.any():
        j = int(np.argmin(p_value))
        raise _fail(who, f"title {pairs[j] // S} in slot {pairs[j] % S} was shown on "
                         f"{freq[j]:.3f} of {n_draws} pages for one visit, logged propensity "
                         f"{hi[j]:.3f}: propensities are not exact")
