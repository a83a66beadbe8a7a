r"""Item-based nearest neighbours (Sarwar et al., WWW 2001), via the ``implicit`` library.

Similarity between titles :math:`i, j` over the binary member x title matrix :math:`R`, keeping
each title's ``neighbors`` most similar titles; a member's score for title :math:`j` is
:math:`\sum_{i \in H_u} s_{ij}` over their history :math:`H_u`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender, TFIDFRecommender

from reelpick.models.base import ModelConfig, Recommender

_SIMILARITIES = {"cosine": CosineRecommender, "tfidf": TFIDFRecommender, "bm25": BM25Recommender}


@dataclass(frozen=True)
class ItemKNNConfig(ModelConfig):
    """``neighbors``: similar titles kept per title; ``similarity``: cosine, tfidf or bm25;
    ``num_threads``: threads for the similarity computation (explicit, default 1)."""

    neighbors: int = 100
    similarity: str = "cosine"
    num_threads: int = 1

    def __post_init__(self) -> None:
        self.check(self.neighbors >= 1, "neighbors", "must be >= 1")
        self.check(self.similarity in _SIMILARITIES, "similarity",
                   f"must be one of {sorted(_SIMILARITIES)}")
        self.check(self.num_threads >= 1, "num_threads", "must be >= 1")


class ItemKNN(Recommender):
    """Item-item kNN recommender.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"member_id": ["a", "a", "b"], "title_id": ["x", "y", "x"],
    ...                    "timestamp": [1, 2, 3]})
    >>> ItemKNN().fit(df).recommend(["b"], k=1).title_ids.tolist()
    [['y']]
    """

    name = "itemknn"
    Config = ItemKNNConfig
    config: ItemKNNConfig

    def _fit(self, user_items: sp.csr_matrix, interactions: pd.DataFrame) -> None:
        cls = _SIMILARITIES[self.config.similarity]
        model = cls(K=self.config.neighbors, num_threads=self.config.num_threads)
        with warnings.catch_warnings():
            # implicit converts an intermediate COO matrix internally and warns about it
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            model.fit(user_items, show_progress=False)
        self.similarity_ = sp.csr_matrix(model.similarity, dtype=np.float32)

    def _score(self, member_idx: np.ndarray) -> np.ndarray:
        return (self.user_items_[member_idx] @ self.similarity_).toarray()

    def _state(self) -> dict[str, np.ndarray]:
        s = self.similarity_
        return {"data": s.data, "indices": s.indices, "indptr": s.indptr}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(self.title_vocab_)
        self.similarity_ = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                                         shape=(n, n))
