r"""A personalised model blended with a trending prior: what wins when the catalogue drifts.

Under a time cut-off many titles played after it are recent releases that a model of the past
ranks low, and recency-weighted popularity beats every personalised model on ml-100k. The blend
keeps the personalised ranking and adds a *trending prior* inside the model:

.. math::

    s_{ui} = (1 - w)\,z_u(f_{ui}) + w\,z(\log(1 + n_i(t))), \qquad
    n_i(t) = \sum_{(v, i, \tau) : \tau \le t} 2^{-(t - \tau)/h}

where :math:`f_{ui}` is the base model's score (ALS, itemKNN, ...), :math:`z_u` standardises a
member's scores over the catalogue (mean 0, sd 1), :math:`z` standardises the prior over titles,
:math:`h` is the prior's half-life and :math:`t` the request time (by default the newest training
interaction). :math:`w = 0` is the base model; :math:`w = 1` is time-decayed popularity. The
weight and half-life are hyperparameters, tuned on a validation cut-off before the test cut-off
(:func:`reelpick.evaluation.tune_blend`).

The prior is cheap to recompute, so a service can refresh it from the newest plays without
refitting the base model (:meth:`TrendBlend.refresh_prior`): the base is published with a delay,
the trend is read at request time.

References: Ji et al., "A re-visit of the popularity baseline in recommender systems", SIGIR 2020
(recency-aware popularity); Koren, "Collaborative filtering with temporal dynamics", KDD 2009.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reelpick.models.base import ModelConfig, Recommender, make_model

_DAY = 86400.0


@dataclass(frozen=True)
class TrendBlendConfig(ModelConfig):
    """``base`` / ``base_params``: the personalised model (any registered name but ``blend``) and
    its hyperparameters; ``weight`` :math:`w \\in [0, 1]` of the trending prior;
    ``prior_half_life_days``: half-life :math:`h` of the prior's time decay."""

    base: str = "als"
    base_params: dict[str, Any] = field(default_factory=dict)
    weight: float = 0.8
    prior_half_life_days: float = 7.0

    def __post_init__(self) -> None:
        self.check(self.base != "blend", "base", "cannot be 'blend' itself")
        self.check(isinstance(self.base_params, dict), "base_params", "must be a dict")
        self.check(0.0 <= self.weight <= 1.0, "weight", "must be in [0, 1]")
        self.check(self.prior_half_life_days > 0, "prior_half_life_days", "must be > 0")
        make_model(self.base, **self.base_params)  # unknown names / bad params fail here


def _standardise(scores: np.ndarray, axis: int) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    s = s - s.mean(axis=axis, keepdims=True)
    sd = s.std(axis=axis, keepdims=True)
    return s / np.where(sd > 0, sd, 1.0)


def trending_prior(titles: np.ndarray, timestamps: np.ndarray, n_titles: int, *,
                   half_life_days: float, now: float | None = None) -> np.ndarray:
    """Time-decayed play counts :math:`n_i(t)` (plays after ``now`` are ignored).

    ``titles``: ``(n_plays,)`` title indices; ``timestamps``: ``(n_plays,)`` seconds;
    ``now`` defaults to the newest timestamp.

    >>> trending_prior(np.array([0, 0, 1]), np.array([0, 86400, 86400]), 3,
    ...                half_life_days=1.0).tolist()
    [1.5, 1.0, 0.0]
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    if len(ts) == 0:
        return np.zeros(n_titles)
    now = float(ts.max()) if now is None else float(now)
    keep = ts <= now
    w = np.exp2(-(now - ts[keep]) / (half_life_days * _DAY))
    return np.bincount(np.asarray(titles)[keep], weights=w, minlength=n_titles)


class TrendBlend(Recommender):
    """A base recommender blended with a time-decayed popularity prior.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"member_id": list("aabbc"), "title_id": list("xyxzz"),
    ...                    "timestamp": [1, 2, 3, 4, 5]})
    >>> m = TrendBlend(base="itemknn", weight=1.0).fit(df)
    >>> m.recommend(["a"], k=1).title_ids.tolist()   # w = 1: the trending title
    [['z']]
    """

    name = "blend"
    Config = TrendBlendConfig
    config: TrendBlendConfig

    def _fit(self, user_items: sp.csr_matrix, interactions: pd.DataFrame) -> None:
        base = make_model(self.config.base, **self.config.base_params)
        base.fit(interactions, titles=self.title_vocab_.to_list())
        self._attach(base, interactions)

    @classmethod
    def from_fitted(cls, base: Recommender, interactions: pd.DataFrame, *,
                    weight: float = 0.8, prior_half_life_days: float = 7.0) -> TrendBlend:
        """Blend an already fitted ``base`` (trained on ``interactions``) without refitting it:
        tuning sweeps ``weight`` and ``prior_half_life_days`` over one base fit."""
        base._check_fitted()
        model = cls(base=base.name, base_params=base.get_params(), weight=weight,
                    prior_half_life_days=prior_half_life_days)
        model.member_vocab_ = base.member_vocab_
        model.title_vocab_ = base.title_vocab_
        model.user_items_ = base.user_items_
        model._attach(base, interactions)
        return model

    def _attach(self, base: Recommender, interactions: pd.DataFrame) -> None:
        if base.title_vocab_.to_list() != self.title_vocab_.to_list():
            raise ValueError("base model's title vocabulary differs from the blend's")
        self.base_ = base
        self.refresh_prior(interactions)

    def refresh_prior(self, interactions: pd.DataFrame, *, now: float | None = None
                      ) -> TrendBlend:
        """Recompute the trending prior from ``interactions`` (plays up to ``now``, default their
        newest timestamp) without refitting the base model; titles outside the vocabulary are
        ignored. Returns ``self``."""
        self._check_fitted()
        for col in ("title_id", "timestamp"):
            if col not in interactions.columns:
                raise ValueError(f"refresh_prior(interactions): missing column {col!r}")
        idx = self.title_vocab_.index(interactions["title_id"], missing="negative")
        ok = idx >= 0
        ts = interactions["timestamp"].to_numpy(dtype=np.float64)[ok]
        counts = trending_prior(idx[ok], ts, len(self.title_vocab_),
                                half_life_days=self.config.prior_half_life_days, now=now)
        self.prior_ = _standardise(np.log1p(counts), axis=0).astype(np.float32)
        self.prior_time_ = float(now) if now is not None else float(ts.max() if len(ts) else 0.0)
        return self

    def _score(self, member_idx: np.ndarray) -> np.ndarray:
        w = self.config.weight
        if w == 1.0:
            base = np.zeros((len(member_idx), len(self.prior_)))
        else:
            base = _standardise(self.base_._score(member_idx), axis=1)
        return (1.0 - w) * base + w * self.prior_[None, :]

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        return {"prior": self.prior_, "prior_time": np.array(self.prior_time_),
                **{f"base_{k}": v for k, v in self.base_._state().items()}}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.prior_ = arrays["prior"]
        self.prior_time_ = float(arrays["prior_time"])
        base = make_model(self.config.base, **self.config.base_params)
        base.member_vocab_ = self.member_vocab_
        base.title_vocab_ = self.title_vocab_
        base.user_items_ = self.user_items_
        base._set_state({k[5:]: v for k, v in arrays.items() if k.startswith("base_")})
        self.base_ = base

    def __repr__(self) -> str:
        params = json.dumps(self.config.base_params, sort_keys=True)
        return (f"TrendBlend(base={self.config.base!r}, base_params={params}, "
                f"weight={self.config.weight}, "
                f"prior_half_life_days={self.config.prior_half_life_days})")


def blend_grid(weights: Sequence[float] = (0.0, 0.5, 0.7, 0.8, 0.9, 1.0),
               half_lives: Sequence[float] = (7.0, 15.0, 30.0)) -> list[dict[str, float]]:
    """The (weight, half-life) pairs :func:`reelpick.evaluation.tune_blend` sweeps; ``weight=0``
    (the base alone) is tried once."""
    grid = [{"weight": 0.0, "prior_half_life_days": float(half_lives[0])}] if 0.0 in weights \
        else []
    grid += [{"weight": float(w), "prior_half_life_days": float(h)}
             for w in weights if w != 0.0 for h in half_lives]
    return grid
