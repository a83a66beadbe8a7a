"""Reward models for DM and DR, cross-fitted so no round is predicted by a model that saw it.

:class:`LinearRewardModel` scores action :math:`a` at position :math:`k` in context :math:`x` as

.. math::

    s(x, a, k) = b + \\beta_a + \\gamma_k + \\theta^\\top \\phi(x) + \\Theta_a^\\top \\phi(x)

(:math:`\\phi` = standardised context; the :math:`\\Theta` interactions are optional) with a
logistic link for 0/1 rewards and the identity otherwise, fitted by L2-penalised likelihood /
least squares with L-BFGS. :func:`cross_fit_reward_model` splits the rounds into K folds and
predicts each fold with the model fitted on the others (Chernozhukov et al. 2018's
cross-fitting), which keeps DR's correction term from being fitted to its own noise.

Reference: V. Chernozhukov et al. "Double/debiased machine learning for treatment and
structural parameters." The Econometrics Journal 21(1), 2018.

>>> import numpy as np
>>> from reelpick.ope import LoggedFeedback
>>> rng = np.random.default_rng(0)
>>> a = rng.integers(0, 3, 3000)
>>> r = (rng.random(3000) < np.array([0.1, 0.3, 0.6])[a]).astype(float)
>>> fb = LoggedFeedback(action=a, reward=r, pscore=np.full(3000, 1 / 3), n_actions=3)
>>> q = cross_fit_reward_model(fb, random_state=0)
>>> q.shape, np.round(q.mean(axis=0), 1).tolist()
((3000, 3), [0.1, 0.3, 0.6])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit

from reelpick.errors import check_fitted
from reelpick.ope.feedback import LoggedFeedback
from reelpick.ope.propensity import kfold_indices

__all__ = ["LinearRewardModel", "cross_fit_reward_model"]

Link = Literal["auto", "logistic", "identity"]


@dataclass
class LinearRewardModel:
    """Action, position and context effects (plus context x action interactions) on the reward.

    ``fit(feedback)`` returns ``self``; ``predict(context, n_rounds)`` gives ``reward_hat``
    ``(n_rounds, n_actions, n_positions)``.
    """

    n_actions: int
    n_positions: int = 1
    l2: float = 1.0
    interactions: bool = True
    link: Link = "auto"
    max_iter: int = 300
    params_: np.ndarray = field(init=False, repr=False)
    link_: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        if self.link not in ("auto", "logistic", "identity"):
            raise ValueError(f"link must be 'auto', 'logistic' or 'identity', got {self.link!r}")

    def _split(self, theta: np.ndarray, d: int) -> tuple[np.ndarray, ...]:
        A, K = self.n_actions, self.n_positions
        i = 0
        b = theta[i]; i += 1  # noqa: E702
        beta = theta[i:i + A]; i += A  # noqa: E702
        gamma = theta[i:i + K]; i += K  # noqa: E702
        th = theta[i:i + d]; i += d  # noqa: E702
        Th = theta[i:i + d * A].reshape(d, A) if self.interactions else np.zeros((d, A))
        return b, beta, gamma, th, Th

    def fit(self, feedback: LoggedFeedback) -> LinearRewardModel:
        r = feedback.reward
        self.link_ = self.link if self.link != "auto" else (
            "logistic" if np.all((r == 0) | (r == 1)) else "identity")
        X = feedback.context if feedback.context is not None else np.zeros((len(r), 0))
        self.mean_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        Z = (X - self.mean_) / self.scale_
        n, d = Z.shape
        A, K = self.n_actions, self.n_positions
        a, k = feedback.action, np.minimum(feedback.position_or_zero(), K - 1)
        S = sp.csr_matrix((np.ones(n), (np.arange(n), a)), shape=(n, A))
        logistic = self.link_ == "logistic"

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            b, beta, gamma, th, Th = self._split(theta, d)
            s = b + beta[a] + gamma[k] + Z @ th
            if self.interactions and d:
                s = s + np.einsum("ij,ij->i", Z, Th[:, a].T)
            if logistic:
                val = float(np.sum(np.logaddexp(0.0, s) - r * s)) / n
                e = (expit(s) - r) / n
            else:
                val = 0.5 * float(np.sum((s - r) ** 2)) / n
                e = (s - r) / n
            pen = theta[1:]
            val += 0.5 * self.l2 * float(pen @ pen) / n
            parts = [np.array([e.sum()]), np.bincount(a, e, minlength=A),
                     np.bincount(k, e, minlength=K), Z.T @ e]
            if self.interactions:
                parts.append((Z.T @ (S.multiply(e[:, None])).tocsc()).ravel() if d else
                             np.zeros(0))
            grad = np.concatenate(parts)
            grad[1:] += self.l2 * pen / n
            return val, grad

        size = 1 + A + K + d + (d * A if self.interactions else 0)
        theta0 = np.zeros(size)
        mean_r = float(np.clip(r.mean(), 1e-6, 1 - 1e-6)) if logistic else float(r.mean())
        theta0[0] = np.log(mean_r / (1 - mean_r)) if logistic else mean_r
        res = minimize(loss, theta0, jac=True, method="L-BFGS-B",
                       options={"maxiter": self.max_iter})
        self.params_ = np.asarray(res.x)
        self.dim_ = d
        return self

    def predict(self, context: np.ndarray | None, n_rounds: int) -> np.ndarray:
        """``reward_hat`` ``(n_rounds, n_actions, n_positions)`` for the given contexts."""
        check_fitted(self, "params_")
        d = self.dim_
        X = np.zeros((n_rounds, 0)) if context is None else np.asarray(context, float)
        Z = (X - self.mean_) / self.scale_
        b, beta, gamma, th, Th = self._split(self.params_, d)
        s = (b + Z @ th)[:, None] + beta[None, :]
        if self.interactions and d:
            s = s + Z @ Th
        s = s[:, :, None] + gamma[None, None, :]
        return expit(s) if self.link_ == "logistic" else s


def cross_fit_reward_model(feedback: LoggedFeedback, *, n_folds: int = 5, l2: float = 1.0,
                           interactions: bool = True, link: Link = "auto",
                           random_state: int | None = 0) -> np.ndarray:
    """Out-of-fold ``reward_hat`` of a :class:`LinearRewardModel` (K-fold cross-fitting).

    Returns ``(n_rounds, n_actions)`` for feedback without positions and
    ``(n_rounds, n_actions, n_positions)`` with them, ready for :class:`~reelpick.ope.DM`,
    :class:`~reelpick.ope.DR` and friends. With ``slate_id`` the folds are drawn per slate
    (rows of a slate share a context: no model predicts a slate it has seen part of).
    """
    K = int(feedback.n_positions or 1)
    folds = None
    if feedback.slate_id is not None:
        _, slate = np.unique(feedback.slate_id, return_inverse=True)
        n_slates = int(slate.max()) + 1
        if n_slates >= n_folds:
            folds = kfold_indices(n_slates, n_folds, random_state)[slate]
    if folds is None:
        folds = kfold_indices(feedback.n_rounds, n_folds, random_state)
    out = np.empty((feedback.n_rounds, feedback.n_actions, K))
    for f in range(n_folds):
        test = folds == f
        model = LinearRewardModel(feedback.n_actions, K, l2=l2, interactions=interactions,
                                  link=link).fit(feedback.take(~test))
        ctx = None if feedback.context is None else feedback.context[test]
        out[test] = model.predict(ctx, int(test.sum()))
    return out[:, :, 0] if feedback.position is None else out
