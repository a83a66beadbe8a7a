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

from dataclasses import dataclass

import numpy as np

__all__ = ["PageEstimate", "examination_curve", "onpage_match", "slot_match", "title_on_page",
           "whole_page"]

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
                      n_positions: int, *, prior: float = 1.0) -> np.ndarray:
    """Separable examination estimate ``(n_rows, n_positions)`` (max 1) from impressions whose
    slot was randomised independently of the title (module docstring). ``prior``: pseudo-plays
    at the overall rate added to every row and position (keeps empty slots finite)."""
    row, position = np.asarray(row, np.int64), np.asarray(position, np.int64)
    play = np.asarray(play, float)
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
    e = np.outer(r_r, r_p)
    return e / e.max()


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


def _ess(w: np.ndarray, L: np.ndarray) -> float:
    s2 = float((w ** 2).sum())
    if s2 <= 0:
        return 0.0
    return float(w.sum() ** 2 / s2 / max(L.mean(), 1.0))
