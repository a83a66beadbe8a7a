r"""Off-policy evaluation of deterministic *pages* under a position-based model: the
title-on-page estimators (IPS, SNIPS, DR) with per-visit (clustered) confidence intervals, and
the examination curve they need, estimated from randomised slots.

Exact ``(title, slot)`` matching wastes a page's logs: a logging policy that explores over a
pool of :math:`P` titles puts a given title in a given slot with probability about :math:`1/P`,
but *somewhere on the page* with probability about :math:`S/P` (:math:`S` slots). Under the
position-based model (PBM) the expected reward of title :math:`t` shown in slot :math:`s` of
visit :math:`v` factorises as

.. math::

    r(v, t, s) = e_s \, \theta(v, t)

(:math:`e_s` the examination probability of the slot, :math:`\theta` the title's attraction),
so a play logged in slot :math:`s'` tells what the same title would have earned in slot
:math:`s` after rescaling by :math:`e_s / e_{s'}`. For a deterministic target page
:math:`\pi(v) = (t_1, \dots, t_S)` and a logging policy whose probability of putting :math:`t`
anywhere on the page, :math:`\mu(t \mid v)`, is known exactly, the title-on-page IPS estimate of
the page's value :math:`V(\pi) = E_v \sum_s r(v, t_s, s)` is

.. math::

    \hat V_{\mathrm{IPS}} = \frac{1}{n} \sum_{i=1}^{n} \sum_{s=1}^{S}
        \frac{[t_{is} \text{ on the logged page}]}{\mu(t_{is} \mid v_i)}\,
        y_{i, s'(t_{is})} \frac{e_s}{e_{s'(t_{is})}},

unbiased when the PBM holds and every target title has :math:`\mu > 0` (Li et al. 2018 call
this the item-position model estimator; the slot a title was logged in may follow any
distribution, only the on-page propensity enters). With a reward model
:math:`\hat q(v, t, s)`, the doubly robust form is

.. math::

    \hat V_{\mathrm{DR}} = \frac{1}{n} \sum_i \sum_s \Big[\hat q(v_i, t_{is}, s)
        + w_{is} \big(y_{i,s'} \tfrac{e_s}{e_{s'}} - \hat q(v_i, t_{is}, s)\big)\Big],

and SNIPS divides the IPS sum by :math:`\frac{1}{L}\sum_{i,s} w_{is}` (whose expectation is
1, :math:`L` the number of target titles). Each visit contributes one statistic (the sum over
its slots), so the normal intervals are clustered by visit (SNIPS by the delta method).

:func:`examination_curve` estimates :math:`e_{r,j}` (row :math:`r`, position :math:`j`) from
impressions whose slot was assigned independently of the title (a uniformly random page, or a
uniformly random arrangement of a pool): there the play rate of a row (position) is
proportional to its examination, so :math:`\hat e_{r,j} \propto \bar y_{r\cdot} \, \bar
y_{\cdot j}` (a separable model, normalised to a maximum of 1).

References: S. Li, Y. Abbasi-Yadkori, B. Kveton, S. Muthukrishnan, V. Vinay, Z. Wen. "Offline
evaluation of ranking policies with click models." KDD 2018. A. Swaminathan et al.
"Off-policy evaluation for slate recommendation." NeurIPS 2017 (the additive-reward
assumption the PBM is a special case of).

Example
-------
>>> import numpy as np
>>> logged = np.array([[0, 1], [2, 3]])
>>> plays = np.array([[1.0, 0.0], [0.0, 1.0]])
>>> target = np.array([[1, 0], [3, 2]])          # same titles, swapped slots
>>> mu = np.ones((2, 2))                         # always on the page
>>> est = title_on_page(logged, plays, target, mu, examination=np.array([1.0, 0.5]))
>>> round(est["ips"].value, 3)                   # 0.5 * 1 / 1 and 1 * 1 / 0.5, over 2 visits
1.25
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from scipy.stats import spearmanr

from reelpick.ope.estimate import FLAG_MIN_ESS, FLAG_UNSUPPORTED_MASS, studentized_interval

__all__ = ["DensePageTerms", "PageEstimate", "PageMarginals", "dense_page_terms",
           "DensePageEstimate", "dense_page_estimate",
           "examination_curve", "examination_from_rates", "examination_net_of_organic",
           "expected_weight", "onpage_match", "organic_terms", "position_based",
           "rank_agreement", "slot_match", "slot_play_rates", "title_on_page", "whole_page"]

Z95 = 1.959963984540054


@dataclass(frozen=True)
class PageEstimate:
    """A page value estimate: ``value`` with a normal 95% interval ``[lo, hi]`` from per-visit
    statistics (``se``), ``n`` visits, ``ess`` the effective number of visits (Kish, over the
    title weights, divided by the mean number of target titles per visit) and ``matched`` the
    mean number of target titles per visit found on the logged page."""

    value: float
    lo: float
    hi: float
    se: float
    n: int
    ess: float
    matched: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "se": self.se, "n": self.n,
                "ess": self.ess, "matched": self.matched}


def examination_curve(row: np.ndarray, position: np.ndarray, play: np.ndarray, n_rows: int,
                      n_positions: int, *, prior: float = 1.0, organic: float = 0.0
                      ) -> np.ndarray:
    """Separable examination estimate ``(n_rows, n_positions)`` (max 1) from impressions whose
    slot was randomised independently of the title (module docstring). ``prior``: pseudo-plays
    at the overall rate added to every row and position (keeps empty slots finite).

    ``organic``: the rate at which a randomly placed title is played whatever its slot (the
    member would have found it anyway, :func:`organic_terms`); it is subtracted from every
    impression's play first, since only the rest, the plays the slot caused, scales with the
    slot's examination (a slot-independent part would flatten the curve towards 1)."""
    row, position = np.asarray(row, np.int64), np.asarray(position, np.int64)
    play = np.asarray(play, float)
    if organic:
        if play.size and not 0 <= organic < play.mean():
            raise ValueError(f"organic: need 0 <= organic < the mean play rate "
                             f"({play.mean():.4g}), got {organic:.4g}")
        play = play - organic
    if not (row.shape == position.shape == play.shape) or row.ndim != 1:
        raise ValueError("row, position, play: need 1-D arrays of one length")
    if row.size == 0 or play.sum() <= 0:
        raise ValueError("play: need randomised impressions with at least one play")
    if row.min() < 0 or row.max() >= n_rows or position.min() < 0 \
            or position.max() >= n_positions:
        raise ValueError("row/position: out of range")
    rate = play.sum() / play.size
    k = prior / max(rate, 1e-12)  # impressions carrying `prior` plays at the overall rate
    n_r = np.bincount(row, minlength=n_rows)
    n_p = np.bincount(position, minlength=n_positions)
    r_r = (np.bincount(row, weights=play, minlength=n_rows) + prior) / (n_r + k)
    r_p = (np.bincount(position, weights=play, minlength=n_positions) + prior) / (n_p + k)
    if organic:  # after the offset a noisy row may fall to or below zero: 1% of the top
        r_r, r_p = np.maximum(r_r, 0.01 * r_r.max()), np.maximum(r_p, 0.01 * r_p.max())
    e = np.outer(r_r, r_p)
    return e / e.max()


def examination_net_of_organic(row: np.ndarray, position: np.ndarray, play: np.ndarray,
                               n_rows: int, n_positions: int, *, organic_count: np.ndarray,
                               off_page: np.ndarray) -> np.ndarray:
    """:func:`examination_curve` of randomised impressions net of organic plays. A uniformly
    random page's title is found on its own at the rate of a random available title: each
    explored visit's organic plays off the page (``organic_count``) over its available titles
    not on the page (``off_page``), averaged over the explored visits (capped at half the
    impressions' play rate, so that noise cannot swallow the slots' own plays)."""
    count, off = np.asarray(organic_count, float), np.asarray(off_page, float)
    rate = float(np.mean(np.where(off > 0, count / np.maximum(off, 1), 0.0))) if count.size \
        else 0.0
    play = np.asarray(play, float)
    cap = 0.5 * float(play.mean()) if play.size else 0.0
    return examination_curve(row, position, play, n_rows, n_positions, organic=min(rate, cap))


def onpage_match(logged: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every target slot ``(n, S_t)``: whether its title is on the logged page ``(n, S)``
    and the logged slot it is in (``-1`` if absent; ``-1`` target titles never match)."""
    logged, target = np.asarray(logged), np.asarray(target)
    eq = (target[:, :, None] == logged[:, None, :]) & (target[:, :, None] >= 0)
    hit = eq.any(axis=2)
    slot = np.where(hit, eq.argmax(axis=2), -1)
    return hit, slot


def title_on_page(logged: np.ndarray, reward: np.ndarray, target: np.ndarray,
                  propensity: np.ndarray, *, examination: np.ndarray,
                  q_target: np.ndarray | None = None) -> dict[str, PageEstimate]:
    """Title-on-page IPS, SNIPS and (with ``q_target``) DR of a deterministic target page.

    Parameters
    ----------
    logged : (n, S) int, the logged pages' titles by slot (``-1`` empty).
    reward : (n, S) float, the logged reward of each slot (e.g. play).
    target : (n, S) int, the target's pages (same slot layout; ``-1`` empty).
    propensity : (n, S) float, the logging policy's exact probability that the target's title
        in that slot appears anywhere on the logged page (ignored where ``target < 0``).
    examination : (S,) float, :math:`e_s` by slot index (e.g. ``examination_curve(...).ravel()``).
    q_target : (n, S) float, optional reward model of each target title in its target slot.

    Returns ``{"ips", "snips"[, "dr", "sndr"]}`` :class:`PageEstimate`, values per visit (page
    sums); ``sndr`` is DR with the correction term self-normalised like SNIPS.
    """
    logged = np.asarray(logged)
    target = np.asarray(target)
    reward = np.asarray(reward, float)
    mu = np.asarray(propensity, float)
    e = np.asarray(examination, float).ravel()
    n, S = target.shape
    if logged.shape != reward.shape or logged.shape[0] != n or mu.shape != target.shape:
        raise ValueError("logged/reward/target/propensity: shapes disagree "
                         f"({logged.shape}, {reward.shape}, {target.shape}, {mu.shape})")
    if e.size < max(S, logged.shape[1]) or (e <= 0).any() or not np.isfinite(e).all():
        raise ValueError("examination: need a positive value for every slot")
    if n < 2:
        raise ValueError("need at least 2 visits")
    valid = target >= 0
    if ((mu <= 0) & valid).any() or not np.isfinite(mu[valid]).all():
        raise ValueError("propensity: every target title needs a positive on-page propensity "
                         "(the logging policy must be able to show it)")
    hit, slot = onpage_match(logged, target)
    ls = np.maximum(slot, 0)
    y_logged = np.take_along_axis(reward, ls, axis=1)
    scale = e[:S][None, :] / e[ls]
    y = np.where(hit, y_logged * scale, 0.0)
    return _estimates(hit, y, valid, mu, q_target)


def slot_match(logged: np.ndarray, reward: np.ndarray, target: np.ndarray,
               propensity: np.ndarray, *, q_target: np.ndarray | None = None
               ) -> dict[str, PageEstimate]:
    r"""Per-slot IPS, SNIPS and (with ``q_target``) DR of a deterministic target page: a slot
    counts when the logged title in it is the target's, weighted by ``1 / propensity`` (the
    logging policy's exact marginal probability of *that title in that slot*). Unbiased when a
    page's reward is the sum of its slots' rewards, each depending on its own title and slot
    (the additive assumption of Swaminathan et al. 2017; no examination model needed).
    Arguments as :func:`title_on_page`; CIs clustered by visit.

    >>> import numpy as np
    >>> est = slot_match(np.array([[0, 1], [2, 3]]), np.array([[1.0, 0.0], [0.0, 1.0]]),
    ...                  np.array([[0, 5], [2, 3]]), np.full((2, 2), 0.5))
    >>> round(est["ips"].value, 3), round(est["snips"].value, 3)   # (2 + 2) / 2; 2 * 4 / 6
    (2.0, 1.333)
    """
    logged = np.asarray(logged)
    target = np.asarray(target)
    reward = np.asarray(reward, float)
    mu = np.asarray(propensity, float)
    if logged.shape != target.shape or reward.shape != target.shape or mu.shape != target.shape:
        raise ValueError("logged/reward/target/propensity: need one (n, S) shape "
                         f"({logged.shape}, {reward.shape}, {target.shape}, {mu.shape})")
    if target.shape[0] < 2:
        raise ValueError("need at least 2 visits")
    valid = target >= 0
    hit = valid & (logged == target)
    if ((mu <= 0) & hit).any() or not np.isfinite(mu[hit]).all():
        raise ValueError("propensity: a logged slot has a non-positive propensity")
    mu = np.where(valid & (mu > 0), mu, 1.0)
    return _estimates(hit, np.where(hit, reward, 0.0), valid, mu, q_target)


def whole_page(reward: np.ndarray, match: np.ndarray, propensity: np.ndarray, *,
               q_target: np.ndarray | None = None) -> dict[str, PageEstimate]:
    r"""IPS, SNIPS and (with ``q_target``, the model's value of the target's page) DR with the
    whole page as the action: ``reward (n,)`` any per-visit outcome (e.g. all plays of the
    visit, organic included), ``match (n,)`` whether the logged page is the target's,
    ``propensity (n,)`` the logging policy's exact probability of the *target's* page for that
    visit (only read where ``match``). No assumption on how slots interact, but only visits
    that showed exactly the target's page count; restricted to a randomised share with its
    conditional propensities, SNIPS is the replay estimator (Li et al. 2011).

    >>> import numpy as np
    >>> est = whole_page(np.array([2.0, 1.0, 3.0, 0.0]), np.array([1, 0, 1, 0], bool),
    ...                  np.array([0.5, 0.5, 0.5, 0.5]))
    >>> round(est["ips"].value, 3), round(est["snips"].value, 3)
    (2.5, 2.5)
    """
    reward = np.asarray(reward, float)
    match = np.asarray(match, bool)
    mu = np.asarray(propensity, float)
    n = reward.size
    if match.shape != (n,) or mu.shape != (n,) or reward.ndim != 1:
        raise ValueError("reward/match/propensity: need 1-D arrays of one length")
    if n < 2:
        raise ValueError("need at least 2 visits")
    if ((mu <= 0) & match).any() or not np.isfinite(mu[match]).all():
        raise ValueError("propensity: a matched page has a non-positive propensity")
    mu = np.where(match, mu, 1.0)
    qt = None if q_target is None else np.asarray(q_target, float).reshape(n, 1)
    return _estimates(match[:, None], np.where(match, reward, 0.0)[:, None],
                      np.ones((n, 1), bool), mu[:, None], qt)


def _estimates(hit: np.ndarray, y: np.ndarray, valid: np.ndarray, mu: np.ndarray,
               q_target: np.ndarray | None) -> dict[str, PageEstimate]:
    n = hit.shape[0]
    w = np.where(hit & valid, 1.0 / np.where(valid, mu, 1.0), 0.0)
    L = valid.sum(axis=1).astype(float)
    a = (w * y).sum(axis=1)
    b = w.sum(axis=1)
    ess = _ess(w, L)
    matched = float(hit.sum(axis=1).mean())
    out = {"ips": _mean(a, ess, matched)}
    bbar, lbar = b.mean(), L.mean()
    if bbar > 0:
        r = a.mean() / bbar
        infl = (a - r * b) / bbar * lbar + r * (L - lbar)
        v = r * lbar
        se = float(infl.std(ddof=1) / np.sqrt(n))
        out["snips"] = PageEstimate(float(v), float(v - Z95 * se), float(v + Z95 * se), se, n,
                                    ess, matched)
    else:
        out["snips"] = PageEstimate(float("nan"), float("nan"), float("nan"), float("nan"), n,
                                    0.0, matched)
    if q_target is not None:
        q = np.asarray(q_target, float)
        if q.shape != hit.shape:
            raise ValueError(f"q_target: expected shape {hit.shape}, got {q.shape}")
        q = np.where(valid, q, 0.0)
        qv = q.sum(axis=1)
        c = (w * (y - q)).sum(axis=1)
        out["dr"] = _mean(qv + c, ess, matched)
        if bbar > 0:  # self-normalised DR: the correction divided by its weights' mean
            rc = c.mean() / bbar * lbar
            v = qv.mean() + rc
            infl = (qv - qv.mean()) + (c - rc / lbar * b) / bbar * lbar + rc / lbar * (L - lbar)
            se = float(infl.std(ddof=1) / np.sqrt(n))
            out["sndr"] = PageEstimate(float(v), float(v - Z95 * se), float(v + Z95 * se), se,
                                       n, ess, matched)
    return out


def _mean(x: np.ndarray, ess: float, matched: float) -> PageEstimate:
    m = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(x.size))
    return PageEstimate(m, m - Z95 * se, m + Z95 * se, se, int(x.size), ess, matched)


def _kish(w: np.ndarray) -> float:
    """Kish's effective number of visits of per-visit weight sums ``w`` (0 without weight)."""
    s2 = float((w ** 2).sum())
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0


def _ess(w: np.ndarray, L: np.ndarray) -> float:
    s2 = float((w ** 2).sum())
    if s2 <= 0:
        return 0.0
    return float(w.sum() ** 2 / s2 / max(L.mean(), 1.0))


# ---------------------------------------------------------------------- exploring policies
@dataclass(frozen=True, eq=False)
class PageMarginals:
    r"""The exact marginal probabilities :math:`\pi(t \text{ at } s \mid v)` of a policy that
    serves one of ``K`` deterministic pages or a uniformly random page: ``pages`` ``(n, K, S)``
    (``-1`` empty) with shares ``share`` ``(K,)``, and a share ``uniform`` of uniformly random
    pages of the visit's ``available`` ``(n,)`` titles (``sum(share) + uniform == 1``):

    .. math::

        \pi(t \text{ at } s \mid v) = \frac{u}{A_v} + \sum_k \sigma_k [t = c_{k,s}(v)].

    An :class:`~reelpick.policies.ExploringPolicy` is :meth:`exploring`; the loop's
    :class:`~reelpick.policies.PoolExploringPolicy` is ``[base, pool...]`` with shares
    ``[1 - eu - ep, ep / K, ...]`` and ``uniform = eu``; the exploration bucket alone is
    :meth:`uniform_page`.

    >>> import numpy as np
    >>> m = PageMarginals.exploring(np.array([[3, 4]]), 0.2, np.array([10]))
    >>> m.at(np.array([[3, 4, 5]]), np.array([[0, 0, 1]])).round(2).tolist()
    [[0.82, 0.02, 0.02]]
    """

    pages: np.ndarray
    share: np.ndarray
    uniform: float
    available: np.ndarray

    def __post_init__(self) -> None:
        pages = np.asarray(self.pages, np.int64)
        share = np.asarray(self.share, float).ravel()
        avail = np.asarray(self.available, float).ravel()
        if pages.ndim != 3 or pages.shape[1] != share.size or avail.size != pages.shape[0]:
            raise ValueError(f"pages/share/available: need (n, K, S), (K,), (n,); got "
                             f"{pages.shape}, {share.shape}, {avail.shape}")
        if (share < 0).any() or not 0 <= self.uniform <= 1 \
                or abs(share.sum() + self.uniform - 1) > 1e-9:
            raise ValueError(f"share/uniform: need non-negative shares summing to 1, got "
                             f"{share.tolist()} + {self.uniform}")
        if self.uniform > 0 and (avail < 1).any():
            raise ValueError("available: a uniform share needs >= 1 available title per visit")
        object.__setattr__(self, "pages", pages)
        object.__setattr__(self, "share", share)
        object.__setattr__(self, "available", np.maximum(avail, 1.0))

    @classmethod
    def exploring(cls, page: np.ndarray, epsilon: float, available: np.ndarray
                  ) -> PageMarginals:
        """``page`` ``(n, S)`` with probability ``1 - epsilon``, a uniform page otherwise."""
        page = np.asarray(page, np.int64)
        return cls(page[:, None, :], np.array([1.0 - epsilon]), float(epsilon), available)

    @classmethod
    def pool_exploring(cls, base: np.ndarray, pool: np.ndarray, epsilon: float,
                       pool_epsilon: float, available: np.ndarray) -> PageMarginals:
        """:class:`~reelpick.policies.PoolExploringPolicy`'s marginals: ``base`` ``(n, S)``
        with probability ``1 - epsilon - pool_epsilon``, a uniform page with ``epsilon`` and
        each of the ``K`` pool pages ``pool`` ``(n, K, S)`` with ``pool_epsilon / K`` (an
        empty pool serves its share uniformly, as the policy does)."""
        base, pool = np.asarray(base, np.int64), np.asarray(pool, np.int64)
        K = pool.shape[1]
        eu, ep = (epsilon, pool_epsilon) if K else (epsilon + pool_epsilon, 0.0)
        pages = np.concatenate([base[:, None, :], pool], axis=1)
        share = np.concatenate([[1.0 - eu - ep], np.full(K, ep / max(K, 1))])
        return cls(pages, share, float(eu), available)

    @classmethod
    def uniform_page(cls, available: np.ndarray, n_slots: int) -> PageMarginals:
        """A uniformly random page of ``n_slots`` of the ``available`` ``(n,)`` titles."""
        available = np.asarray(available)
        return cls(np.zeros((available.size, 0, n_slots), np.int64), np.zeros(0), 1.0,
                   available)

    @property
    def n_slots(self) -> int:
        return int(self.pages.shape[2])

    def take(self, rows: np.ndarray) -> PageMarginals:
        """The marginals of the visits ``rows`` (a mask or indices)."""
        return PageMarginals(self.pages[rows], self.share, self.uniform, self.available[rows])

    def at(self, titles: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """``(n, m)`` probability of each ``titles[i, j]`` in slot ``slots[i, j]`` (0 where
        ``titles < 0``)."""
        titles, slots = np.asarray(titles, np.int64), np.asarray(slots, np.int64)
        p = np.broadcast_to(self.uniform / self.available[:, None], titles.shape).copy()
        for k in range(self.share.size):
            p += self.share[k] * (np.take_along_axis(self.pages[:, k], slots, axis=1) == titles)
        return np.where(titles >= 0, p, 0.0)

    def examined(self, titles: np.ndarray, examination: np.ndarray) -> np.ndarray:
        r"""``(n, m)`` examination-weighted probability of each title being on the page,
        :math:`\sum_s \pi(t \text{ at } s \mid v)\, e_s` (0 where ``titles < 0``)."""
        titles = np.asarray(titles, np.int64)
        e = np.asarray(examination, float).ravel()[: self.n_slots]
        p = np.broadcast_to(self.uniform * e.sum() / self.available[:, None],
                            titles.shape).copy()
        for k in range(self.share.size):
            eq = (titles[:, :, None] == self.pages[:, k][:, None, :]) & (titles[:, :, None] >= 0)
            p += self.share[k] * (eq * e[None, None, :]).sum(axis=2)
        return np.where(titles >= 0, p, 0.0)

    def model_value(self, theta_pages: np.ndarray, theta_mean: np.ndarray,
                    examination: np.ndarray) -> np.ndarray:
        r"""``(n,)`` value of the policy under a position-based reward model
        :math:`\hat q(v, t, s) = e_s \hat\theta(v, t)`: ``theta_pages`` ``(n, K, S)`` the
        attraction of each deterministic page's title, ``theta_mean`` ``(n,)`` the mean
        attraction of the visit's available titles (what a uniform page draws)."""
        e = np.asarray(examination, float).ravel()[: self.n_slots]
        th = np.where(self.pages >= 0, np.asarray(theta_pages, float), 0.0)
        det = (th * e[None, None, :]).sum(axis=2) @ self.share
        return det + self.uniform * e.sum() * np.asarray(theta_mean, float)


def _off_page_weights(on: np.ndarray, ee: np.ndarray, e0: np.ndarray, valid: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """For organic plays off the page: ``1 / (1 - P_0(t on the page))`` and
    ``c = E_e(t) P_0(t on the page) / E_0(t)`` (0 where ``valid`` is False), from the on-page
    probability ``on`` and the examined marginals ``ee``/``e0`` of target and logger."""
    if ((on >= 1 - 1e-12) & valid).any():
        raise ValueError("organic plays: a title played off the page is always on the page "
                         "under the logger's marginals (they are not the logging policy's)")
    inv = np.where(valid, 1.0 / np.where(valid, 1.0 - on, 1.0), 0.0)
    c = np.where(valid & (e0 > 0), ee * on / np.where(e0 > 0, e0, 1.0), 0.0)
    return inv, c


def organic_terms(visit: np.ndarray, title: np.ndarray, target: PageMarginals,
                  logger: PageMarginals, examination: np.ndarray) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    r"""Per visit ``(n,)`` the two sums over the **organic plays logged off the page** (plays
    of titles the member found without the page, ``visit``/``title`` one entry per play) that
    turn :func:`position_based` into an estimate of the plays the page *causes*.

    When a member plays title :math:`t` on their own with probability :math:`p_0(v, t)`
    whatever the page shows (and the page adds plays in proportion to the slot's
    examination), a shown title earns :math:`E[y \mid t \text{ in } s] = p_0 + e_s g(v, t)`,
    and the position-based sum :math:`\sum_{s'} w\, y` estimates
    :math:`U(\pi) + B(\pi)`: the caused plays :math:`U = E \sum_t \sum_s \pi(t, s) e_s g`
    exactly, plus :math:`B = E\sum_t p_0 \, c_v(t)` with
    :math:`c_v(t) = E_e(t)\, P_0(t \text{ on the page}) / E_0(t)` (the examination-weighted
    marginals of :meth:`PageMarginals.examined`). An organic play of :math:`t` is logged off
    the page with probability :math:`p_0 (1 - P_0(t \text{ on the page}))`, so

    .. math::

        \text{shared}_v = \sum_{t \text{ played off the page}}
            \frac{c_v(t)}{1 - P_0(t \text{ on the page} \mid v)}, \qquad
        \text{base}_v = \sum_{t \text{ played off the page}}
            \frac{1}{1 - P_0(t \text{ on the page} \mid v)}

    are unbiased for :math:`B` and for the visit's organic plays
    :math:`\sum_t p_0(v, t)` (on the page or not). Returns ``(base, shared)``.

    >>> import numpy as np
    >>> m = PageMarginals.uniform_page(np.array([4, 4]), 2)  # on the page w.p. 1/2
    >>> base, shared = organic_terms(np.array([1]), np.array([3]), m, m, np.ones(2))
    >>> base.tolist(), shared.tolist()     # on-policy c = P(on page): shared = 0.5 / 0.5
    ([0.0, 2.0], [0.0, 1.0])
    """
    visit, title = np.asarray(visit, np.int64).ravel(), np.asarray(title, np.int64).ravel()
    n = logger.pages.shape[0]
    if visit.shape != title.shape or (visit.size and (visit.min() < 0 or visit.max() >= n)) \
            or (title < 0).any():
        raise ValueError(f"visit/title: need equal 1-D arrays, visits in [0, {n}) and titles "
                         ">= 0")
    e = np.asarray(examination, float).ravel()[: logger.n_slots]
    if not visit.size:
        return np.zeros(n), np.zeros(n)
    order = np.argsort(visit, kind="stable")
    visit, title = visit[order], title[order]
    # one row per visit with organic plays: its titles, padded with -1
    uniq, start, count = np.unique(visit, return_index=True, return_counts=True)
    grid = np.full((uniq.size, int(count.max())), -1, np.int64)
    grid[np.repeat(np.arange(uniq.size), count), np.arange(visit.size) - np.repeat(start, count)
         ] = title
    lg, tg = logger.take(uniq), target.take(uniq)
    inv, c = _off_page_weights(lg.examined(grid, np.ones(e.size)), tg.examined(grid, e),
                               lg.examined(grid, e), grid >= 0)
    base, shared = np.zeros(n), np.zeros(n)
    base[uniq], shared[uniq] = inv.sum(axis=1), (c * inv).sum(axis=1)
    return base, shared


def position_based(logged: np.ndarray, reward: np.ndarray, target: PageMarginals,
                   logger: PageMarginals, *, examination: np.ndarray,
                   rows: np.ndarray | None = None, q_logged: np.ndarray | None = None,
                   dm: np.ndarray | None = None,
                   organic: tuple[np.ndarray, np.ndarray] | None = None
                   ) -> dict[str, PageEstimate]:
    r"""Position-based (PBM) IPS and DR of a *stochastic* target page policy from its exact
    marginals (Li et al. 2018's PBM estimator, examination-weighted):

    .. math::

        w_{v,t} = \frac{\sum_s \pi_e(t \text{ at } s \mid v)\, e_s}
                       {\sum_s \pi_0(t \text{ at } s \mid v)\, e_s}, \qquad
        \hat V_{\mathrm{IPS}} = \frac{1}{n_b} \sum_{v \in b} \sum_{s'} w_{v, t_{v s'}}\,
            y_{v s'},

    unbiased when :math:`E[y \mid t \text{ in } s', v] = e_{s'} \theta(v, t)` and the target
    has support only where the logger has (every title the target may show has a positive
    :math:`\pi_0`). A title counts wherever it was shown, so a target explored like the logger
    has support on every logged slot. With a reward model :math:`\hat q = e_s \hat\theta`
    (``q_logged`` at the logged slots, ``dm`` the model's value of the target per visit,
    :meth:`PageMarginals.model_value`) DR is
    :math:`\frac1n\sum_v \widehat{dm}_v + \frac{1}{n_b}\sum_{v\in b}\sum_{s'} w (y - \hat q)`,
    exact when the model is right whatever the weights.

    ``rows`` ``(n,)`` bool: the visits logged by ``logger`` (default all; e.g. the
    exploration bucket, drawn independently of the visit, with
    :meth:`PageMarginals.uniform_page`): the correction averages over them and the model term
    over all visits. ``snips``/``sndr`` divide the weighted sums by the weights' mean over
    their exact expectation per visit (:func:`expected_weight`).

    ``organic`` ``(visit, title)``: the organic plays logged off the page on these visits
    (:func:`organic_terms`). With them the result also holds ``inc_ips`` (and ``inc_dr``): the
    plays the target's pages *cause*, and ``plays_ips`` (``plays_dr``): all plays per visit,
    organic ones included, which is what an A/B test of the target measures. Page plays
    (``ips``, ``dr``) count the titles members would have played anyway when they are on the
    page, so they rank a page of titles its members were about to find highest; the caused
    plays need the examination of the slots *net* of organic plays
    (``examination_curve(..., organic=)``).

    Returns ``{"ips", "snips"[, "dr", "sndr"]}`` :class:`PageEstimate`, per-visit values,
    intervals from per-visit influence terms; ``ess`` is Kish's effective number of visits
    over the per-visit weight sums of ``rows`` (equal to the visits of ``rows`` on-policy),
    ``matched`` the mean number of logged titles per
    visit of ``rows`` on one of the target's deterministic pages.

    >>> import numpy as np
    >>> logged, plays = np.array([[0, 1], [2, 3]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> avail = np.array([4, 4])
    >>> est = position_based(logged, plays, PageMarginals.uniform_page(avail, 2),
    ...                      PageMarginals.uniform_page(avail, 2), examination=np.ones(2))
    >>> est["ips"].value, est["snips"].value    # on-policy: the mean page plays
    (1.0, 1.0)
    """
    logged = np.asarray(logged, np.int64)
    reward = np.asarray(reward, float)
    e = np.asarray(examination, float).ravel()
    n, S = logged.shape
    if reward.shape != logged.shape or target.pages.shape[0] != n \
            or logger.pages.shape[0] != n:
        raise ValueError("logged/reward/target/logger: need (n, S) pages for the same visits "
                         f"({logged.shape}, {reward.shape}, {target.pages.shape[0]}, "
                         f"{logger.pages.shape[0]})")
    if e.size < S or (e <= 0).any() or not np.isfinite(e).all():
        raise ValueError("examination: need a positive value for every slot")
    b = np.ones(n, bool) if rows is None else np.asarray(rows, bool)
    if b.shape != (n,) or b.sum() < 2:
        raise ValueError("rows: need a (n,) mask with at least 2 logged visits")
    shown = (logged >= 0) & b[:, None]
    den = logger.examined(logged, e)
    if ((den <= 0) & shown).any():
        raise ValueError("logger: a logged title has zero probability under the logger's "
                         "marginals (they are not the logging policy's)")
    _check_support(target, logger, e, b)
    w = np.where(shown, target.examined(logged, e) / np.where(shown, den, 1.0), 0.0)
    ew = expected_weight(target, logger, e)
    y = np.where(shown, reward, 0.0)
    p = b.mean()
    W = w.sum(axis=1)[b]  # visit-level Kish ESS: each visit contributes one statistic
    ess = _kish(W)
    hit = np.zeros(logged.shape, bool)
    for k in range(target.share.size):
        hit |= (logged[:, :, None] == target.pages[:, k][:, None, :]).any(axis=2)
    matched = float((hit & shown).sum(axis=1)[b].mean())

    def combined(base: np.ndarray, corr: np.ndarray) -> PageEstimate:
        psi = base + b * corr / p
        return _mean(psi, ess, matched)

    def self_normalised(base: np.ndarray, corr: np.ndarray) -> PageEstimate:
        # corr / (mean weight / its mean expectation) on the rows, delta method; base over all
        wb, cb, lb = w[b].sum(axis=1), corr[b], ew[b]
        rw = wb.mean() / lb.mean()
        if rw <= 0:
            return PageEstimate(*(float("nan"),) * 4, n, 0.0, matched)
        c = cb.mean() / rw
        infl = np.zeros(n)
        infl[b] = (cb - c * (wb / lb.mean() - rw * (lb - lb.mean()) / lb.mean())) / rw / p
        psi = base - base.mean() + infl
        v = float(base.mean() + c)
        se = float(psi.std(ddof=1) / np.sqrt(n))
        return PageEstimate(v, v - Z95 * se, v + Z95 * se, se, n, ess, matched)

    zero = np.zeros(n)
    a = (w * y).sum(axis=1)
    out = {"ips": combined(zero, a), "snips": self_normalised(zero, a)}
    if q_logged is not None or dm is not None:
        if q_logged is None or dm is None:
            raise ValueError("q_logged, dm: DR needs both the model at the logged slots and "
                             "its value of the target")
        q = np.asarray(q_logged, float)
        d = np.asarray(dm, float).ravel()
        if q.shape != logged.shape or d.shape != (n,):
            raise ValueError(f"q_logged/dm: expected shapes {logged.shape} and ({n},), got "
                             f"{q.shape} and {d.shape}")
        c = (w * (y - np.where(shown, q, 0.0))).sum(axis=1)
        out["dr"] = combined(d, c)
        out["sndr"] = self_normalised(d, c)
    if organic is not None:
        ov, ot = (np.asarray(x, np.int64).ravel() for x in organic)
        if ov.shape != ot.shape or (ov.size and (ov.min() < 0 or ov.max() >= n)):
            raise ValueError(f"organic: need (visit, title) of one length, visits in [0, {n})")
        keep = b[ov]                  # the organic plays of the visits the estimate averages
        base_o, shared = organic_terms(ov[keep], ot[keep], target, logger, e)
        out["inc_ips"] = combined(zero, a - shared)
        out["plays_ips"] = combined(zero, a - shared + base_o)
        if "dr" in out:
            out["inc_dr"] = combined(d, c - shared)
            out["plays_dr"] = combined(d, c - shared + base_o)
    return out


def _check_support(target: PageMarginals, logger: PageMarginals, e: np.ndarray,
                   rows: np.ndarray) -> None:
    if target.uniform > 0 and logger.uniform <= 0:
        raise ValueError("logger: the target explores uniformly but the logger never shows a "
                         "uniform page: no support for the target's exploration")
    if logger.uniform > 0:
        return
    tp = target.pages[rows].reshape(int(rows.sum()), -1)
    if ((logger.examined(tp, e) <= 0) & (tp >= 0)).any():
        raise ValueError("logger: a title the target may show has zero probability under the "
                         "logger (no support)")


def expected_weight(target: PageMarginals, logger: PageMarginals, examination: np.ndarray
                    ) -> np.ndarray:
    r"""``(n,)`` the exact expectation under the logger of a visit's weight sum
    :math:`\sum_{s'} w_{v, t_{v s'}}` in :func:`position_based`:
    :math:`\sum_t P_0(t \text{ on the page} \mid v)\, E_e(t) / E_0(t)` (:math:`E` the
    examination-weighted marginals), summed exactly over the titles of either policy's
    deterministic pages and in closed form over the rest (each contributes
    :math:`S u_e / A_v`). It is the number of slots when the logger is a uniform page."""
    e = np.asarray(examination, float).ravel()
    n, S = logger.pages.shape[0], logger.n_slots
    special = np.concatenate([logger.pages.reshape(n, -1), target.pages.reshape(n, -1)], axis=1)
    srt = np.sort(special, axis=1)
    first = np.ones(srt.shape, bool)
    first[:, 1:] = srt[:, 1:] != srt[:, :-1]
    valid = first & (srt >= 0)
    p_on = np.broadcast_to(logger.uniform * S / logger.available[:, None], srt.shape).copy()
    for k in range(logger.share.size):
        p_on += logger.share[k] * (srt[:, :, None] == logger.pages[:, k][:, None, :]).any(axis=2)
    e_t, e_0 = target.examined(srt, e), logger.examined(srt, e)
    contrib = np.where(valid & (e_0 > 0), p_on * e_t / np.where(e_0 > 0, e_0, 1.0), 0.0)
    rest = np.maximum(logger.available - valid.sum(axis=1), 0) * S * target.uniform \
        / logger.available
    return contrib.sum(axis=1) + (rest if logger.uniform > 0 else 0.0)


def rank_agreement(estimates: Sequence[dict[str, Any]], truth: Sequence[float]
                   ) -> dict[str, Any]:
    """How well offline ``estimates`` (``value``, ``lo``, ``hi`` per candidate) rank the
    candidates' ``truth`` (their true or A/B values): ``spearman`` over all candidates,
    ``coverage`` (share of intervals holding the truth), ``bias`` (mean estimate - truth),
    and which pairs can be told apart: a pair is **apart** when its true gap exceeds the mean
    width of its two intervals; ``apart_concordant`` is the share of those pairs the
    estimates order rightly, ``spearman_apart`` the rank correlation over the candidates in
    at least one such pair (``None`` when fewer than 3), and ``verdict`` one sentence.

    >>> r = rank_agreement([{"value": 1.0, "lo": 0.9, "hi": 1.1},
    ...                     {"value": 2.0, "lo": 1.9, "hi": 2.1},
    ...                     {"value": 3.1, "lo": 3.0, "hi": 3.2}], [1.05, 2.0, 2.95])
    >>> r["spearman"], r["coverage"], r["apart_pairs"], r["apart_concordant"]
    (1.0, 0.6666666666666666, 3, 1.0)
    """
    v = np.array([float(e["value"]) for e in estimates])
    lo = np.array([float(e["lo"]) for e in estimates])
    hi = np.array([float(e["hi"]) for e in estimates])
    t = np.asarray(truth, float)
    if t.shape != v.shape:
        raise ValueError(f"truth: need one value per estimate ({v.size}), got {t.size}")
    ok = np.isfinite(v) & np.isfinite(t)
    width = hi - lo

    def rho(idx: np.ndarray) -> float | None:
        if idx.size < 3 or np.ptp(v[idx]) == 0 or np.ptp(t[idx]) == 0:
            return None
        return float(spearmanr(v[idx], t[idx]).statistic)

    pairs = [(i, j) for i in range(v.size) for j in range(i + 1, v.size)
             if ok[i] and ok[j] and abs(t[i] - t[j]) > (width[i] + width[j]) / 2]
    conc = [np.sign(v[i] - v[j]) == np.sign(t[i] - t[j]) for i, j in pairs]
    members = np.unique(np.array(pairs, np.int64).ravel()) if pairs else np.zeros(0, np.int64)
    idx = np.flatnonzero(ok)
    if not pairs:
        verdict = ("cannot be told apart: no two candidates' true values differ by more than "
                   "their intervals' width")
    else:
        verdict = (f"{sum(conc)} of {len(pairs)} pairs whose true gap exceeds their interval "
                   f"width are ordered rightly")
    return {"n": int(idx.size), "spearman": rho(idx),
            "coverage": float(((lo <= t) & (t <= hi))[ok].mean()) if ok.any() else None,
            "bias": float((v - t)[ok].mean()) if ok.any() else None,
            "mean_width": float(width[ok].mean()) if ok.any() else None,
            "apart_pairs": len(pairs),
            "apart_concordant": float(np.mean(conc)) if conc else None,
            "spearman_apart": rho(members), "verdict": verdict}


# ------------------------------------------------------------- dense (title x slot) marginals
class DensePageTerms(NamedTuple):
    """What :func:`dense_page_terms` returns for a batch of logged visits."""

    weight: np.ndarray           # (n, S) title weights of the logged slots
    correction: np.ndarray       # (n,) organic correction to page plays
    unsupported: np.ndarray      # (n,) target examination mass the logger never shows
    expected_weight: np.ndarray  # (n,) exact expectation of each visit's weight sum


def dense_page_terms(target: np.ndarray, logger: np.ndarray, examination: np.ndarray,
                     logged: np.ndarray, *, organic: tuple[np.ndarray, np.ndarray] | None = None
                     ) -> DensePageTerms:
    r"""The position-based estimate of a target's **page plays** from any two policies'
    dense marginals :math:`\pi(t \text{ at } s \mid v)` ``(n, T, S)`` (target and logger,
    e.g. :attr:`reelpick.decision.Marginals.title_slot`), for one batch of logged visits.

    Returns :class:`DensePageTerms` ``(weight, correction, unsupported, expected_weight)``:
    the title weights of the logged slots ``w (n, S)``
    (:math:`E_e(t) / E_0(t)`, 0 on empty slots), so that :math:`\sum_s w_{vs} y_{vs}` estimates
    the caused plays plus :math:`B` (:func:`organic_terms`); ``corr (n,)`` the organic
    correction that turns it into page plays, the organic plays logged off the page weighted
    :math:`(c_v(t) - \pi_e(t \text{ on the page}))/(1 - P_0(t \text{ on the page}))`
    (0 without ``organic``: then the estimate assumes every play scales with the slot's
    examination); ``unsupported (n,)`` the share of each visit's target examination mass on
    titles the logger never shows; ``expected_weight (n,)`` the exact expectation under the
    logger of a visit's weight sum, :math:`\sum_t P_0(t \text{ on the page})\, E_e(t) /
    E_0(t)` (dividing the weighted plays by the weights' mean over it, self-normalisation,
    tames the skew when a few large weights carry the sum). A visit's page plays are
    :math:`\sum_s w_{vs} y_{vs} - \text{corr}_v`: unbiased when plays are
    :math:`p_0(v, t) + e_s g(v, t)` and the organic plays are logged (for the caused part
    alone, drop the :math:`\pi_e` term; on-policy it returns the logged page plays exactly).

    ``organic`` ``(visit, title)``: organic plays logged off the page (visit indices in the
    batch).

    >>> import numpy as np
    >>> m = np.full((1, 4, 2), 0.25)                     # uniform over 4 titles, 2 slots
    >>> terms = dense_page_terms(m, m, np.ones(2), np.array([[0, 1]]))
    >>> terms.weight.tolist(), terms.correction.tolist()  # on-policy: weights 1
    ([[1.0, 1.0]], [0.0])
    >>> terms.expected_weight.tolist()                   # ... and their sum: the slots
    [2.0]
    """
    pe, p0 = np.asarray(target, float), np.asarray(logger, float)
    e = np.asarray(examination, float).ravel()
    logged = np.asarray(logged, np.int64)
    n, T, S = p0.shape
    if pe.shape != p0.shape or logged.shape != (n, S) or e.size < S:
        raise ValueError(f"target/logger/logged/examination: need (n, T, S) twice, (n, S) and "
                         f"S values; got {pe.shape}, {p0.shape}, {logged.shape}, {e.size}")
    ee, e0 = pe @ e[:S], p0 @ e[:S]                       # (n, T) examined marginals
    ratio = np.where(e0 > 0, ee / np.where(e0 > 0, e0, 1.0), 0.0)
    on0_all = p0.sum(axis=2)                              # (n, T) P_0(t on the page)
    rows = np.arange(n)[:, None]
    w = np.where(logged >= 0, ratio[rows, np.maximum(logged, 0)], 0.0)
    tot = ee.sum(axis=1)
    unsupported = np.where(tot > 0, (ee * (e0 <= 0)).sum(axis=1) / np.where(tot > 0, tot, 1),
                           0.0)
    corr = np.zeros(n)
    if organic is not None:
        ov, ot = (np.asarray(x, np.int64).ravel() for x in organic)
        if ov.shape != ot.shape or (ov.size and (ov.min() < 0 or ov.max() >= n
                                                 or ot.min() < 0 or ot.max() >= T)):
            raise ValueError("organic: need (visit, title) arrays of one length in the batch")
        inv, c = _off_page_weights(on0_all[ov, ot], ee[ov, ot], e0[ov, ot],
                                   np.ones(ov.size, bool))
        corr = np.bincount(ov, weights=(c - pe.sum(axis=2)[ov, ot]) * inv,
                           minlength=n).astype(float)
    return DensePageTerms(w, corr, unsupported, (on0_all * ratio).sum(axis=1))


@dataclass(frozen=True)
class DensePageEstimate:
    """:func:`dense_page_estimate`'s result: ``value`` with a 95% interval ``[lo, hi]``,
    ``se``, ``n`` visits, ``ess`` (Kish, over the visits' weight sums), ``ci`` (the interval's
    method) and ``flags`` (``no_support``, ``low_ess``: the estimate cannot be trusted; empty
    when it can)."""

    value: float
    lo: float
    hi: float
    se: float
    n: int
    ess: float
    ci: str
    flags: tuple[str, ...]

    @property
    def reliable(self) -> bool:
        return not self.flags

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "se": self.se, "n": self.n,
                "ess": self.ess, "ci": self.ci, "flags": list(self.flags)}


def dense_page_estimate(terms: DensePageTerms | Sequence[DensePageTerms],
                        plays: np.ndarray | Sequence[np.ndarray], *,
                        ci: Literal["studentized", "normal"] = "studentized",
                        per_slot: bool = True, seed: int = 0) -> DensePageEstimate:
    r"""A target's page plays from :func:`dense_page_terms` (one batch, or a list of batches
    with their ``plays``): the mean over visits of :math:`\sum_s w_{vs} y_{vs} -
    \text{corr}_v` (divided by the slots when ``per_slot``: plays per impression).

    ``ci="studentized"`` (default): the bootstrap-t interval of the per-visit terms
    (:func:`reelpick.ope.estimate.studentized_interval`), which keeps its coverage when a few
    large weights carry the estimate (the normal interval then misses *below* the truth: a log
    short of the rare large terms has a low mean and a low SE together); ``"normal"``:
    :math:`\bar x \pm 1.96\,\mathrm{se}`. Over the random worlds of
    ``benchmarks/bench_ope_random.py`` (3 logs each) the studentized interval covers 93.4% of
    the unflagged intervals at 20,000 visits and 94.2% at 2,000; the normal one 93.4% and
    92.9%.

    ``flags``: ``no_support`` when more than
    :data:`~reelpick.ope.estimate.FLAG_UNSUPPORTED_MASS` of the target's examined mass (mean
    over visits) is on titles the logger never shows; ``low_ess`` when the Kish ESS of the
    visits' weight sums is under :data:`~reelpick.ope.estimate.FLAG_MIN_ESS`.

    >>> import numpy as np
    >>> m = np.full((3, 4, 2), 0.25)                     # uniform over 4 titles, 2 slots
    >>> logged, plays = np.array([[0, 1], [2, 3], [1, 0]]), np.array([[1, 0], [0, 0], [1, 1.]])
    >>> est = dense_page_estimate(dense_page_terms(m, m, np.ones(2), logged), plays,
    ...                           ci="normal")
    >>> round(est.value, 4), est.flags                   # on-policy: the logged play rate
    (0.5, ('low_ess',))
    """
    batches = [terms] if isinstance(terms, DensePageTerms) else list(terms)
    ys = [plays] if isinstance(terms, DensePageTerms) else list(plays)
    if not batches or len(ys) != len(batches):
        raise ValueError(f"terms/plays: need one plays array per batch of terms, got "
                         f"{len(batches)} and {len(ys)}")
    psi, wsum, uns = [], [], []
    for t, y in zip(batches, ys):
        y = np.asarray(y, float)
        if y.shape != t.weight.shape:
            raise ValueError(f"plays: expected shape {t.weight.shape} (the batch's logged "
                             f"slots), got {y.shape}")
        S = t.weight.shape[1] if per_slot else 1
        psi.append(((t.weight * y).sum(axis=1) - t.correction) / S)
        wsum.append(t.weight.sum(axis=1))
        uns.append(t.unsupported)
    x, w, u = np.concatenate(psi), np.concatenate(wsum), np.concatenate(uns)
    if x.size < 2:
        raise ValueError(f"terms: need at least 2 visits, got {x.size}")
    if ci not in ("studentized", "normal"):
        raise ValueError(f"ci: 'studentized' or 'normal', got {ci!r}")
    m = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(x.size))
    lo, hi = (studentized_interval(x, seed=seed) if ci == "studentized"
              else (m - Z95 * se, m + Z95 * se))
    ess = _kish(w)
    flags = tuple(f for f, bad in (("no_support", float(u.mean()) > FLAG_UNSUPPORTED_MASS),
                                   ("low_ess", ess < FLAG_MIN_ESS)) if bad)
    return DensePageEstimate(m, float(lo), float(hi), se, int(x.size), ess, ci, flags)


def slot_play_rates(logger: np.ndarray, logged: np.ndarray, reward: np.ndarray, *,
                    organic: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> tuple[np.ndarray, float]:
    r"""For one batch of visits logged under ``logger`` ``(n, T, S)``: the sums behind an
    examination estimate from **any** logger with support on every available title (not only
    uniformly random pages): per slot, the importance-weighted plays a *uniformly random
    page* would have earned there, :math:`\sum_v \frac{1/A_v}{\pi_0(t_{vs}, s)} y_{vs}`
    ``(S,)`` (``A_v`` the titles the logger can show in the visit), and the organic rate of a
    random title, :math:`\sum_{\text{organic plays off the page}} \frac{1/A_v}{1 - P_0(t
    \text{ on the page})}`. Divided by the number of visits, the first is
    :math:`\bar p_0 + e_s \bar g` and the second :math:`\bar p_0`; their difference is
    proportional to the examination :math:`e_s` (:func:`examination_from_rates`).

    >>> import numpy as np
    >>> m = np.full((2, 4, 2), 0.25)
    >>> s, o = slot_play_rates(m, np.array([[0, 1], [2, 3]]), np.array([[1.0, 0.0], [1.0, 1.0]]))
    >>> s.tolist(), o                                    # a uniform logger: the raw plays
    ([2.0, 1.0], 0.0)
    """
    p0 = np.asarray(logger, float)
    logged, reward = np.asarray(logged, np.int64), np.asarray(reward, float)
    n, T, S = p0.shape
    if logged.shape != (n, S) or reward.shape != (n, S):
        raise ValueError(f"logged/reward: need ({n}, {S}), got {logged.shape}, "
                         f"{reward.shape}")
    avail = (p0.sum(axis=2) > 0).sum(axis=1).astype(float)          # (n,)
    rows = np.arange(n)[:, None]
    pl = p0[rows, np.maximum(logged, 0), np.arange(S)[None, :]]
    ok = (logged >= 0) & (pl > 0)
    w = np.where(ok, 1.0 / (np.maximum(avail, 1)[:, None] * np.where(ok, pl, 1.0)), 0.0)
    slots = (w * reward).sum(axis=0)
    rate = 0.0
    if organic is not None:
        ov, ot = (np.asarray(x, np.int64).ravel() for x in organic)
        on0 = p0.sum(axis=2)[ov, ot]
        rate = float((1.0 / np.maximum(avail[ov], 1) / np.maximum(1.0 - on0, 1e-12)).sum())
    return slots, rate


def examination_from_rates(slot_sums: np.ndarray, organic_sum: float, n_visits: int
                           ) -> np.ndarray:
    """The examination ``(S,)`` (max 1) from :func:`slot_play_rates` summed over batches: each
    slot's uniform-page play rate net of the organic rate, floored at 1% of the largest."""
    r = np.asarray(slot_sums, float) / max(n_visits, 1) - organic_sum / max(n_visits, 1)
    if not (r > 0).any():
        raise ValueError("examination: no slot earns more plays than the organic rate")
    r = np.maximum(r, 0.01 * r.max())
    return r / r.max()

