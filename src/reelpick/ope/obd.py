"""The Open Bandit Dataset (OBD; Saito et al. 2021) as :class:`LoggedFeedback`, and the exact
action distribution of its Bernoulli Thompson Sampling (BTS) policy.

:func:`load_obd` reads ``{random,bts}/{campaign}/{campaign}.csv`` as obp's
``OpenBanditDataset`` does (rows sorted by timestamp, positions 0..2, the one-hot user features
with the first level dropped as ``context``), so estimates on identical inputs match obp's.

:func:`bts_action_dist` gives the probability that BTS shows each item at each position: item
:math:`a` is at position :math:`k` (0-based) when exactly :math:`k` other items draw a larger
sample from their Beta posteriors,

.. math::

    P(a \\text{ at } k) = \\int_0^1 f_a(x)\\; [z^k] \\prod_{b \\ne a}
        \\big(F_b(x) + (1 - F_b(x))\\, z\\big)\\, dx,

with :math:`f_a`/:math:`F_b` the Beta pdf/cdf and :math:`[z^k]` the coefficient of :math:`z^k`
(a Poisson-binomial probability, computed by prefix/suffix products truncated at degree
``len_list - 1``). The integral uses composite Gauss-Legendre quadrature on panels cut at every
item's Beta quantiles, so it is exact to ~1e-10 where obp's Monte Carlo (``n_sim`` draws) has an
error of :math:`\\sqrt{p(1-p)/n_{sim}}`.

Reference: Y. Saito, S. Aihara, M. Matsutani, Y. Narita. "Open Bandit Dataset and Pipeline:
Towards Realistic and Reproducible Off-Policy Evaluation." NeurIPS 2021 Datasets and Benchmarks.

>>> p = bts_action_dist([2.0, 1.0], [1.0, 2.0], len_list=1)   # Beta(2,1) vs Beta(1,2)
>>> p.round(4).tolist()
[[0.8333], [0.1667]]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import betainc, betaincinv, betaln

from reelpick.data.loaders import read_obd_files
from reelpick.ope._obd_prior import BTS_PRIOR
from reelpick.ope.feedback import LoggedFeedback

__all__ = ["OBDLog", "bts_action_dist", "bts_action_dist_mc", "load_obd", "obd_bts_action_dist"]

BehaviorPolicy = Literal["random", "bts"]
Campaign = Literal["all", "men", "women"]
_QUANTILES = np.array([
    1e-13, 1e-9, 1e-6, 1e-4, 1e-3, 0.01, 0.05, 0.15, 0.3, 0.5, 0.7, 0.85, 0.95, 0.99, 0.999,
    1 - 1e-4, 1 - 1e-6, 1 - 1e-9, 1 - 1e-13,
])


@dataclass(frozen=True, eq=False)
class OBDLog:
    """One OBD file: the logged feedback (with ``position`` and ``context``), the item features
    ``(n_actions, 4)`` (three label-encoded categorical features and ``item_feature_0``, as
    obp orders them) and the raw timestamps."""

    feedback: LoggedFeedback
    behavior_policy: str
    campaign: str
    action_context: np.ndarray
    timestamp: np.ndarray

    @property
    def n_actions(self) -> int:
        return self.feedback.n_actions

    @property
    def len_list(self) -> int:
        return int(self.feedback.n_positions or 1)


def load_obd(path: str | os.PathLike[str], behavior_policy: BehaviorPolicy = "random",
             campaign: Campaign = "all") -> OBDLog:
    """Load ``path/{behavior_policy}/{campaign}/{campaign}.csv`` (the OBD layout).

    Rows are sorted by timestamp as obp does; ``position`` is 0-based; ``reward`` is the click;
    ``pscore`` the logged ``propensity_score``; ``context`` the user features one-hot encoded
    with the first level dropped (obp's ``pre_process``).

    >>> import pytest; _ = pytest.importorskip  # doctest: +SKIP
    >>> log = load_obd("../shared/data/obd", "random", "all")  # doctest: +SKIP
    >>> log.feedback.n_rounds, log.n_actions, log.len_list  # doctest: +SKIP
    (10000, 80, 3)
    """
    data, items = read_obd_files(path, behavior_policy, campaign)  # checked; errors name line
    data = data.sort_values("timestamp")  # obp's order (pandas' default sort)
    n_actions = len(items)
    position = np.unique(data["position"].to_numpy(), return_inverse=True)[1]
    user = data.loc[:, data.columns.str.contains("user_feature")]
    context = pd.get_dummies(user, drop_first=True).to_numpy(dtype=np.float64)
    feedback = LoggedFeedback(
        action=data["item_id"].to_numpy(), reward=data["click"].to_numpy(dtype=np.float64),
        pscore=data["propensity_score"].to_numpy(dtype=np.float64), n_actions=n_actions,
        position=position, context=context)
    cat = items.drop(columns=["item_id", "item_feature_0"]).apply(
        lambda s: np.unique(s.to_numpy(), return_inverse=True)[1])
    action_context = np.column_stack([cat.to_numpy(), items["item_feature_0"].to_numpy()])
    ts = pd.to_datetime(data["timestamp"]).to_numpy()
    return OBDLog(feedback, behavior_policy, campaign, action_context.astype(np.float64), ts)


def _check_beta(alpha: np.ndarray, beta: np.ndarray, len_list: int) -> None:
    if alpha.ndim != 1 or alpha.shape != beta.shape or alpha.size == 0:
        raise ValueError(f"alpha and beta must be 1-D of one length (n_actions,), got shapes "
                         f"{alpha.shape} and {beta.shape}")
    if not (np.all(alpha > 0) and np.all(beta > 0)):
        raise ValueError("alpha and beta must be > 0")
    if not 1 <= len_list <= alpha.size:
        raise ValueError(f"len_list must lie in [1, n_actions={alpha.size}], got {len_list}")


def bts_action_dist(alpha: np.ndarray | list[float], beta: np.ndarray | list[float],
                    len_list: int = 3, *, n_nodes: int = 6) -> np.ndarray:
    """Exact probability that Bernoulli TS shows item ``a`` at position ``k``.

    Parameters
    ----------
    alpha, beta : ``(n_actions,)`` Beta posterior parameters (prior + successes / failures).
    len_list : number of positions (the top ``len_list`` samples are shown, best first).
    n_nodes : Gauss-Legendre nodes per panel.

    Returns
    -------
    ``(n_actions, len_list)``: each column sums to one. Use
    ``np.broadcast_to(p, (n_rounds, *p.shape))`` as a context-free ``action_dist``.
    """
    a = np.asarray(alpha, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    _check_beta(a, b, len_list)
    n, K = a.size, len_list
    q = betaincinv(a[:, None], b[:, None], _QUANTILES[None, :])   # (n_actions, n_quantiles)
    # below t0 at least K items exceed x almost surely (1 - 1e-13 each), so no item can be in
    # the top K there; items whose top quantile is below t0 are never shown.
    t0 = np.sort(q[:, 0])[-(K + 1)] if n > K else 0.0
    active = q[:, -1] > t0
    cuts = np.unique(np.concatenate([[t0, 1.0], q[active].ravel()]))
    cuts = cuts[(cuts >= t0) & (cuts <= 1.0)]
    gl_x, gl_w = np.polynomial.legendre.leggauss(n_nodes)
    lo, hi = cuts[:-1], cuts[1:]
    half = (hi - lo) / 2.0
    x = (((lo + hi) / 2.0)[:, None] + half[:, None] * gl_x[None, :]).ravel()
    wts = (half[:, None] * gl_w[None, :]).ravel()
    cdf = betainc(a[None, :], b[None, :], x[:, None])        # (n_nodes, n_actions)
    sf = 1.0 - cdf
    log_pdf = ((a - 1.0)[None, :] * np.log(x[:, None]) + (b - 1.0)[None, :] * np.log1p(-x[:, None])
               - betaln(a, b)[None, :])
    weight = np.exp(log_pdf) * wts[:, None]                   # f_a(x) dx, (n_nodes, n_actions)
    weight[:, ~active] = 0.0
    # prefix[j]: truncated polynomial of items < j; suffix[j]: of items >= j
    prefix = np.zeros((n + 1, x.size, K))
    prefix[0, :, 0] = 1.0
    for j in range(n):
        prefix[j + 1] = prefix[j] * cdf[:, j, None]
        prefix[j + 1, :, 1:] += prefix[j, :, :-1] * sf[:, j, None]
    suffix = np.zeros((n + 1, x.size, K))
    suffix[n, :, 0] = 1.0
    for j in range(n - 1, -1, -1):
        suffix[j] = suffix[j + 1] * cdf[:, j, None]
        suffix[j, :, 1:] += suffix[j + 1, :, :-1] * sf[:, j, None]
    out = np.zeros((n, K))
    for k in range(K):
        # [z^k] of prefix[a] * suffix[a+1]
        loo = np.zeros((n, x.size))
        for i in range(k + 1):
            loo += prefix[:n, :, i] * suffix[1:, :, k - i]
        out[:, k] = np.einsum("an,na->a", loo, weight)
    return out


def bts_action_dist_mc(alpha: np.ndarray | list[float], beta: np.ndarray | list[float],
                       len_list: int = 3, *, n_sim: int = 100_000,
                       random_state: int | None = 0, chunk: int = 50_000) -> np.ndarray:
    """Vectorised Monte Carlo of :func:`bts_action_dist` (``n_sim`` draws): for tests.

    >>> p = bts_action_dist_mc([2.0, 1.0], [1.0, 2.0], len_list=1, n_sim=20_000)
    >>> bool(abs(p[0, 0] - 5 / 6) < 0.02)
    True
    """
    a = np.asarray(alpha, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    _check_beta(a, b, len_list)
    rng = np.random.default_rng(random_state)
    counts = np.zeros((a.size, len_list))
    done = 0
    while done < n_sim:
        m = min(chunk, n_sim - done)
        draws = rng.beta(a, b, size=(m, a.size))
        top = np.argpartition(-draws, len_list - 1, axis=1)[:, :len_list] if len_list < a.size \
            else np.tile(np.arange(a.size), (m, 1))
        order = np.argsort(-np.take_along_axis(draws, top, axis=1), axis=1)
        ranked = np.take_along_axis(top, order, axis=1)
        for k in range(len_list):
            counts[:, k] += np.bincount(ranked[:, k], minlength=a.size)
        done += m
    return counts / n_sim


def obd_bts_action_dist(campaign: Campaign = "all", len_list: int = 3) -> np.ndarray:
    """The ZOZOTOWN production BTS policy's ``(n_actions, len_list)`` action distribution for a
    campaign (its Beta priors as shipped with obp), computed exactly.

    >>> p = obd_bts_action_dist("men")
    >>> p.shape, bool(np.allclose(p.sum(axis=0), 1.0))
    ((34, 3), True)
    """
    if campaign not in BTS_PRIOR:
        raise ValueError(f"campaign must be one of {sorted(BTS_PRIOR)}, got {campaign!r}")
    prior = BTS_PRIOR[campaign]
    return bts_action_dist(np.array(prior["alpha"], float), np.array(prior["beta"], float),
                           len_list)
