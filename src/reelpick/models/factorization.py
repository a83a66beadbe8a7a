r"""Matrix factorisation over members x titles, via the ``implicit`` library.

**ALS** (Hu, Koren, Volinsky, ICDM 2008): minimise
:math:`\sum_{u,i} c_{ui}(p_{ui} - x_u^\top y_i)^2 + \lambda(\sum_u \|x_u\|^2 + \sum_i \|y_i\|^2)`
with :math:`p_{ui} = 1` for observed pairs and confidence :math:`c_{ui} = 1 + \alpha r_{ui}`.

**BPR** (Rendle et al., UAI 2009): maximise
:math:`\sum_{(u,i,j)} \ln \sigma(x_u^\top y_i - x_u^\top y_j) - \lambda \|\Theta\|^2` over
sampled (member, played, not played) triples by SGD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.nearest_neighbours import bm25_weight
from threadpoolctl import threadpool_limits

from reelpick.models.base import ModelConfig, Recommender


@dataclass(frozen=True)
class _FactorConfig(ModelConfig):
    """Fields every factorisation model shares, checked once."""

    def check_common(self) -> None:
        for name in ("factors", "iterations", "num_threads"):
            self.check(getattr(self, name) >= 1, name, "must be >= 1")
        self.check(getattr(self, "regularization") >= 0, "regularization", "must be >= 0")


@dataclass(frozen=True)
class ALSConfig(_FactorConfig):
    factors: int = 128
    regularization: float = 5.0
    alpha: float = 4.0
    iterations: int = 20
    recency_half_life_days: float | None = None
    weighting: str = "none"
    bm25_k1: float = 100.0
    bm25_b: float = 0.8
    random_state: int = 0
    num_threads: int = 1

    def __post_init__(self) -> None:
        self.check_common()
        self.check(self.alpha > 0, "alpha", "must be > 0")
        self.check(self.recency_half_life_days is None or self.recency_half_life_days > 0,
                   "recency_half_life_days", "must be positive or None")
        self.check(self.weighting in ("none", "bm25"), "weighting", "must be 'none' or 'bm25'")
        self.check(self.bm25_k1 > 0, "bm25_k1", "must be > 0")
        self.check(0 <= self.bm25_b <= 1, "bm25_b", "must be in [0, 1]")


@dataclass(frozen=True)
class BPRConfig(_FactorConfig):
    factors: int = 64
    learning_rate: float = 0.01
    regularization: float = 0.01
    iterations: int = 100
    random_state: int = 0
    num_threads: int = 1

    def __post_init__(self) -> None:
        self.check_common()
        self.check(self.learning_rate > 0, "learning_rate", "must be > 0")


class _Factorization(Recommender):
    def _score(self, member_idx: np.ndarray) -> np.ndarray:
        return self.member_factors_[member_idx] @ self.title_factors_.T

    def _state(self) -> dict[str, np.ndarray]:
        return {"member_factors": self.member_factors_, "title_factors": self.title_factors_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.member_factors_ = arrays["member_factors"]
        self.title_factors_ = arrays["title_factors"]

    def _keep_factors(self, model: AlternatingLeastSquares | BayesianPersonalizedRanking
                      ) -> None:
        self.member_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.title_factors_ = np.asarray(model.item_factors, dtype=np.float32)


class ALS(_Factorization):
    """Implicit-feedback ALS.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"member_id": list("aabb"), "title_id": list("xyxz"),
    ...                    "timestamp": [1, 2, 3, 4]})
    >>> ALS(factors=2, iterations=3).fit(df).recommend(["a"], k=1).title_ids.shape
    (1, 1)
    """

    name = "als"
    Config = ALSConfig
    config: ALSConfig

    def _fit(self, user_items: sp.csr_matrix, interactions: pd.DataFrame) -> None:
        c = self.config
        # implicit parallelises over members itself; a BLAS thread pool inside would fight it
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=c.factors, regularization=c.regularization, alpha=c.alpha,
                iterations=c.iterations, random_state=c.random_state,
                num_threads=c.num_threads, calculate_training_loss=False)
            model.fit(self._confidence(user_items, interactions), show_progress=False)
        self._keep_factors(model)

    def _confidence(self, user_items: sp.csr_matrix, interactions: pd.DataFrame
                    ) -> sp.csr_matrix:
        """Binary plays; with ``recency_half_life_days`` each play weighted by
        :math:`2^{-(t_{max} - t)/h}`, so that confidence decays with age (model drift); with
        ``weighting="bm25"`` then BM25-weighted (Robertson & Zaragoza 2009; implicit's
        ``bm25_weight``), which damps very active members and very popular titles."""
        c = self.config
        m = user_items
        if c.recency_half_life_days is not None:
            ts = interactions["timestamp"].to_numpy(dtype=np.float64)
            w = np.exp2(-(ts.max() - ts) / (c.recency_half_life_days * 86400.0))
            rows = self.member_vocab_.index(interactions["member_id"])
            cols = self.title_vocab_.index(interactions["title_id"])
            m = sp.coo_matrix((w.astype(np.float32), (rows, cols)), shape=m.shape).tocsr()
            m.sum_duplicates()
        if c.weighting == "bm25":
            m = sp.csr_matrix(bm25_weight(m, K1=c.bm25_k1, B=c.bm25_b), dtype=np.float32)
        return m


class BPR(_Factorization):
    """Bayesian personalised ranking (the factors include a title bias column).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"member_id": list("aabb"), "title_id": list("xyxz"),
    ...                    "timestamp": [1, 2, 3, 4]})
    >>> BPR(factors=2, iterations=3).fit(df).recommend(["a"], k=1).title_ids.shape
    (1, 1)
    """

    name = "bpr"
    Config = BPRConfig
    config: BPRConfig

    def _fit(self, user_items: sp.csr_matrix, interactions: pd.DataFrame) -> None:
        c = self.config
        model = BayesianPersonalizedRanking(
            factors=c.factors, learning_rate=c.learning_rate, regularization=c.regularization,
            iterations=c.iterations, random_state=c.random_state, num_threads=c.num_threads)
        model.fit(user_items, show_progress=False)
        self._keep_factors(model)
