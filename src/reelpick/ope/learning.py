"""Learning a policy from logs: counterfactual risk minimisation (POEM) for a linear softmax
policy.

The policy is :math:`\\pi_\\theta(a|x) = \\mathrm{softmax}(W^\\top \\phi(x) + b)_a` over context
features :math:`\\phi(x)` (standardised). With
:math:`u_i(\\theta) = r_i \\min\\{\\pi_\\theta(a_i|x_i) / \\pi_0(a_i|x_i), M\\}`
(weights clipped at ``max_weight`` :math:`M`), training maximises

.. math::

    \\hat R(\\theta) - \\lambda \\sqrt{\\hat{\\mathrm{Var}}(u(\\theta)) / n}
        - \\frac{\\ell_2}{2n} \\|W\\|^2,

with :math:`\\hat R = \\mathbb{E}_n[u_i]` (``objective="ips"``: POEM) or the self-normalised
:math:`\\hat R = \\sum_i u_i / \\sum_i \\min\\{w_i, M\\}` (``objective="snips"``: Norm-POEM, which
avoids propensity overfitting), and for SNIPS the variance of the delta-method terms
:math:`\\min\\{w_i, M\\}(r_i - \\hat R)` scaled by the mean weight. The variance penalty
``variance_penalty`` :math:`\\lambda` prefers policies whose estimate is certain. Gradients come
from torch (double precision), the optimiser is scipy's L-BFGS: deterministic given the seed.

For ranked logs (``position`` present) every impression is a round weighted with its per-slot
propensity (the position-based model); :meth:`LinearSoftmaxPolicy.rank` orders the actions by
learnt score to fill a list.

References: A. Swaminathan, T. Joachims. "Batch learning from logged bandit feedback through
counterfactual risk minimization." JMLR 16, 2015 (POEM); "The self-normalized estimator for
counterfactual learning." NeurIPS 2015 (Norm-POEM).

>>> import numpy as np
>>> from reelpick.ope import LoggedFeedback
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(3000, 1)); a = rng.integers(0, 2, 3000)
>>> r = (a == (x[:, 0] > 0)).astype(float)           # action 1 pays iff x > 0
>>> fb = LoggedFeedback(action=a, reward=r, pscore=np.full(3000, 0.5), n_actions=2, context=x)
>>> pol = LinearSoftmaxPolicy.fit_from_logs(fb, random_state=0)
>>> pi = pol.action_dist(x)
>>> float(np.mean(pi[np.arange(3000), (x[:, 0] > 0).astype(int)])) > 0.9
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import minimize

from reelpick.errors import check_fitted
from reelpick.ope.feedback import LoggedFeedback

__all__ = ["LinearSoftmaxPolicy"]

Objective = Literal["ips", "snips"]


@dataclass
class LinearSoftmaxPolicy:
    """A linear softmax policy over context features, trained by CRM (see the module).

    Hyperparameters: ``objective`` (``"ips"`` or ``"snips"``), ``max_weight`` (clipping
    :math:`M`), ``variance_penalty`` (:math:`\\lambda`), ``l2``, ``temperature`` (divides the
    logits when acting), ``max_iter``, ``random_state`` (initial weights).
    """

    n_actions: int
    objective: Objective = "snips"
    max_weight: float = 100.0
    variance_penalty: float = 0.0
    l2: float = 1.0
    temperature: float = 1.0
    max_iter: int = 200
    random_state: int | None = 0
    coef_: np.ndarray = field(init=False, repr=False)
    intercept_: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.n_actions < 2:
            raise ValueError(f"n_actions must be >= 2, got {self.n_actions}")
        if self.objective not in ("ips", "snips"):
            raise ValueError(f"objective must be 'ips' or 'snips', got {self.objective!r}")
        for name in ("max_weight", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("variance_penalty", "l2"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def fit_from_logs(cls, feedback: LoggedFeedback, **hyper: object) -> LinearSoftmaxPolicy:
        """``cls(feedback.n_actions, **hyper).fit(feedback)``."""
        return cls(feedback.n_actions, **hyper).fit(feedback)  # type: ignore[arg-type]

    def _features(self, context: np.ndarray | None, n: int) -> np.ndarray:
        X = np.zeros((n, 0)) if context is None else np.asarray(context, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        return (X - self.mean_) / self.scale_

    def fit(self, feedback: LoggedFeedback) -> LinearSoftmaxPolicy:
        """Train on logged feedback (needs ``pscore``; ``context`` optional). Returns self."""
        import torch

        pscore = feedback.require_pscore("LinearSoftmaxPolicy.fit")
        X = np.zeros((feedback.n_rounds, 0)) if feedback.context is None else feedback.context
        self.mean_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        Z = torch.from_numpy(self._features(feedback.context, feedback.n_rounds))
        n, d = Z.shape
        A = self.n_actions
        act = torch.from_numpy(feedback.action)
        r = torch.from_numpy(feedback.reward)
        p0 = torch.from_numpy(pscore)
        rng = np.random.default_rng(self.random_state)
        theta0 = np.concatenate([rng.normal(0.0, 0.01, d * A), np.zeros(A)])

        def loss(theta_np: np.ndarray) -> tuple[float, np.ndarray]:
            theta = torch.from_numpy(theta_np).requires_grad_(True)
            W, b = theta[: d * A].reshape(d, A), theta[d * A:]
            logp = torch.log_softmax(Z @ W + b, dim=1)
            w = torch.clamp(torch.exp(logp[torch.arange(n), act]) / p0, max=self.max_weight)
            u = w * r
            if self.objective == "ips":
                value = u.mean()
                terms = u
            else:
                value = u.sum() / w.sum()
                terms = w * (r - value) / w.mean()
            obj = -value + 0.5 * self.l2 * (W * W).sum() / n
            if self.variance_penalty > 0:
                obj = obj + self.variance_penalty * torch.sqrt(terms.var() / n + 1e-18)
            obj.backward()
            assert theta.grad is not None
            return float(obj.detach()), theta.grad.numpy().copy()

        res = minimize(loss, theta0, jac=True, method="L-BFGS-B",
                       options={"maxiter": self.max_iter})
        self.coef_ = res.x[: d * A].reshape(d, A)
        self.intercept_ = res.x[d * A:]
        self.n_iter_ = int(res.nit)
        return self

    def scores(self, context: np.ndarray | None, n_rounds: int | None = None) -> np.ndarray:
        """Logits ``(n_rounds, n_actions)``."""
        check_fitted(self, "coef_")
        n = n_rounds if context is None else len(context)
        if n is None:
            raise ValueError("give context or n_rounds")
        return self._features(context, n) @ self.coef_ + self.intercept_

    def action_dist(self, context: np.ndarray | None, n_rounds: int | None = None,
                    n_positions: int | None = None) -> np.ndarray:
        """``action_dist`` ``(n_rounds, n_actions)`` (or ``(..., n_positions)`` repeated per
        slot, the position-based model) of the softmax policy."""
        s = self.scores(context, n_rounds) / self.temperature
        s = s - s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        if n_positions is None:
            return p
        return np.repeat(p[:, :, None], n_positions, axis=2)

    def rank(self, context: np.ndarray | None, k: int, n_rounds: int | None = None
             ) -> np.ndarray:
        """The ``k`` best-scored actions per round ``(n_rounds, k)``, best first."""
        s = self.scores(context, n_rounds)
        return np.argsort(-s, axis=1, kind="stable")[:, :k]
