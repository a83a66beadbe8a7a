"""Most-popular: the same ranking for everyone, optionally over a recent window only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reelpick.models.base import ModelConfig, Recommender


@dataclass(frozen=True)
class PopularConfig(ModelConfig):
    """``window_days``: count only interactions in the last ``window_days`` before the newest
    training interaction (``None`` counts all); the simplest time-aware recommender."""

    window_days: float | None = None

    def __post_init__(self) -> None:
        self.check(self.window_days is None or self.window_days > 0, "window_days",
                   "must be positive or None")


class MostPopular(Recommender):
    """Ranks titles by the number of members who played them (in the window).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"member_id": ["a", "b", "b"], "title_id": ["x", "x", "y"],
    ...                    "timestamp": [1, 2, 3]})
    >>> MostPopular().fit(df).recommend(["a"], k=1).title_ids.tolist()
    [['y']]
    """

    name = "popular"
    Config = PopularConfig
    config: PopularConfig

    def _fit(self, user_items: sp.csr_matrix, interactions: pd.DataFrame) -> None:
        ui = user_items
        if self.config.window_days is not None:
            ts = interactions["timestamp"].to_numpy()
            recent = ts >= ts.max() - self.config.window_days * 86400.0
            rows = self.member_vocab_.index(interactions["member_id"][recent])
            cols = self.title_vocab_.index(interactions["title_id"][recent])
            ui = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                               shape=user_items.shape)
            ui.sum_duplicates()
            ui.data[:] = 1.0
        counts = np.asarray(ui.sum(axis=0), dtype=np.float64).ravel()
        # ties broken by overall popularity, then by catalogue order
        overall = np.asarray(user_items.sum(axis=0), dtype=np.float64).ravel()
        self.popularity_ = (counts + overall / (overall.max() + 1.0) * 0.5).astype(np.float32)

    def _score(self, member_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(member_idx), len(self.popularity_))).copy()

    def _state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.popularity_ = arrays["popularity"]
