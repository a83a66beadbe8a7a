"""A contextual bandit whose policy values are known in closed form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reelpick.ope import LoggedFeedback


@dataclass(frozen=True)
class Bandit:
    """Contexts ``x`` uniform on ``0..n_contexts-1``; reward Bernoulli(``mu[x, a]``)."""

    mu: np.ndarray          # (n_contexts, n_actions)
    logging: np.ndarray     # (n_contexts, n_actions)

    @classmethod
    def make(cls, n_contexts: int = 5, n_actions: int = 4, seed: int = 0,
             skew: float = 0.5) -> Bandit:
        """``skew``: standard deviation of the logging policy's logits (0 = uniform)."""
        rng = np.random.default_rng(seed)
        mu = rng.uniform(0.05, 0.6, size=(n_contexts, n_actions))
        logits = rng.normal(0.0, skew, size=(n_contexts, n_actions))
        logging = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return cls(mu, logging)

    @property
    def n_actions(self) -> int:
        return self.mu.shape[1]

    def value(self, target: np.ndarray) -> float:
        """True value of a target ``(n_contexts, n_actions)``."""
        return float(np.mean(np.sum(target * self.mu, axis=1)))

    def log(self, n: int, seed: int) -> tuple[LoggedFeedback, np.ndarray]:
        """``n`` logged rounds and the context index of each."""
        rng = np.random.default_rng(seed)
        x = rng.integers(0, self.mu.shape[0], n)
        cum = np.cumsum(self.logging[x], axis=1)
        a = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), self.n_actions - 1)
        r = (rng.random(n) < self.mu[x, a]).astype(float)
        ctx = np.eye(self.mu.shape[0])[x]
        fb = LoggedFeedback(action=a, reward=r, pscore=self.logging[x, a],
                            n_actions=self.n_actions, context=ctx)
        return fb, x


def target_policy(bandit: Bandit, kind: str) -> np.ndarray:
    """A few targets ``(n_contexts, n_actions)``."""
    c, a = bandit.mu.shape
    if kind == "greedy":
        return np.eye(a)[bandit.mu.argmax(axis=1)] * 0.9 + 0.1 / a
    if kind == "uniform":
        return np.full((c, a), 1.0 / a)
    if kind == "anti":
        return np.eye(a)[bandit.mu.argmin(axis=1)] * 0.8 + 0.2 / a
    raise ValueError(kind)
