"""Propensities for logs that lack them: a multinomial logistic model of the logging policy.

.. warning::

   Estimated propensities make IPS/DR unbiased only if the logging policy's choice depended on
   nothing but the features given here (no *unobserved confounding*). If the logger also used
   signals missing from ``context`` (a member's recent searches, an editor's judgement, time of
   day when it is not a feature) and those signals also drive the reward, no propensity model
   fitted on ``context`` can recover :math:`\\pi_0(a|x)`, and the off-policy estimates are biased
   in a direction the data cannot reveal. Log the exact propensity at serving time whenever you
   can (:mod:`reelpick.policies` do); treat estimated ones as a sensitivity analysis.

The model is :math:`\\hat\\pi_0(a|x) = \\mathrm{softmax}(W^\\top \\phi(x) + b)_a` with
:math:`\\phi(x)` = standardised context (plus a one-hot of the position for ranked logs), fitted by
L2-penalised maximum likelihood with L-BFGS (numpy/scipy; no scikit-learn).
``estimate_pscore`` cross-fits it (K folds) so that no round's propensity is predicted by a
model that saw that round.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(2000, 2))
>>> p1 = 1 / (1 + np.exp(-2 * x[:, 0]))                # logger: action 1 w.p. sigmoid(2 x0)
>>> a = (rng.random(2000) < p1).astype(int)
>>> from reelpick.ope import LoggedFeedback
>>> fb = LoggedFeedback(action=a, reward=np.zeros(2000), pscore=None, n_actions=2, context=x)
>>> ps = estimate_pscore(fb, random_state=0)
>>> float(np.mean(np.abs(ps - np.where(a == 1, p1, 1 - p1)))) < 0.05
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from reelpick.errors import check_fitted
from reelpick.ope.feedback import LoggedFeedback

__all__ = ["MultinomialLogit", "estimate_pscore", "kfold_indices"]


def kfold_indices(n: int, n_folds: int, random_state: int | None) -> np.ndarray:
    """A fold label ``(n,)`` in ``0..n_folds-1`` for each row, shuffled with the seed."""
    if not 2 <= n_folds <= n:
        raise ValueError(f"n_folds must lie in [2, n_rounds={n}], got {n_folds}")
    rng = np.random.default_rng(random_state)
    return rng.permutation(np.arange(n) % n_folds)


def _features(feedback: LoggedFeedback, use_position: bool) -> np.ndarray:
    parts = []
    if feedback.context is not None:
        parts.append(feedback.context)
    if use_position and (feedback.n_positions or 1) > 1:
        parts.append(np.eye(int(feedback.n_positions or 1))[feedback.position_or_zero()][:, 1:])
    if not parts:
        return np.zeros((feedback.n_rounds, 0))
    return np.hstack(parts)


@dataclass
class MultinomialLogit:
    """Multinomial logistic regression with an L2 penalty ``l2`` on the weights (not the bias).

    ``fit(X, y)`` returns ``self``; ``predict_proba(X)`` gives ``(n, n_classes)``. Features are
    standardised with the training mean and standard deviation.
    """

    n_classes: int
    l2: float = 1.0
    max_iter: int = 500
    coef_: np.ndarray = field(init=False, repr=False)
    intercept_: np.ndarray = field(init=False, repr=False)
    mean_: np.ndarray = field(init=False, repr=False)
    scale_: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {self.n_classes}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
            ) -> MultinomialLogit:
        X = np.asarray(X, dtype=np.float64)
        n, d = X.shape
        self.mean_ = X.mean(axis=0) if n else np.zeros(d)
        sd = X.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        Z = (X - self.mean_) / self.scale_
        C = self.n_classes
        Y = np.zeros((n, C))
        Y[np.arange(n), y] = 1.0
        sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
        total = sw.sum()
        # start the intercepts at the log class frequencies
        freq = (Y * sw[:, None]).sum(axis=0) + 1e-3
        b0 = np.log(freq / freq.sum())

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W = theta[: d * C].reshape(d, C)
            b = theta[d * C:]
            logp = log_softmax(Z @ W + b, axis=1)
            nll = -float(np.sum(sw * np.sum(Y * logp, axis=1))) / total
            R = (np.exp(logp) - Y) * sw[:, None] / total
            gW = Z.T @ R + self.l2 * W / total
            return nll + 0.5 * self.l2 * float(np.sum(W * W)) / total, np.concatenate(
                [gW.ravel(), R.sum(axis=0)])

        theta0 = np.concatenate([np.zeros(d * C), b0])
        res = minimize(loss, theta0, jac=True, method="L-BFGS-B",
                       options={"maxiter": self.max_iter})
        self.coef_ = res.x[: d * C].reshape(d, C)
        self.intercept_ = res.x[d * C:]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_fitted(self, "coef_")
        Z = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        return np.exp(log_softmax(Z @ self.coef_ + self.intercept_, axis=1))


def estimate_pscore(feedback: LoggedFeedback, *, n_folds: int = 5, l2: float = 1.0,
                    use_position: bool = True, random_state: int | None = 0,
                    min_pscore: float = 1e-6) -> np.ndarray:
    """Cross-fitted estimate of the logged propensity :math:`\\hat\\pi_0(a_i|x_i[,k_i])`.

    Parameters
    ----------
    feedback : the log; ``context`` (and ``position``) are the features. Without either, the
        estimate is the (out-of-fold) action frequency.
    n_folds : K of the cross-fitting.
    l2 : L2 penalty of :class:`MultinomialLogit`.
    use_position : add a one-hot of ``position`` to the features (ranked logs).
    min_pscore : floor of the estimate, so weights stay finite.

    Returns
    -------
    ``pscore`` ``(n_rounds,)`` in ``[min_pscore, 1]``; build a new feedback with
    ``dataclasses.replace(feedback, pscore=...)``. Read the module's warning on unobserved
    confounding before trusting estimates that use it.
    """
    X = _features(feedback, use_position)
    folds = kfold_indices(feedback.n_rounds, n_folds, random_state)
    out = np.empty(feedback.n_rounds)
    for f in range(n_folds):
        test = folds == f
        model = MultinomialLogit(feedback.n_actions, l2=l2).fit(X[~test], feedback.action[~test])
        proba = model.predict_proba(X[test])
        out[test] = proba[np.arange(int(test.sum())), feedback.action[test]]
    return np.clip(out, min_pscore, 1.0)
