r"""The ranker: p(play | member, title, context) by gradient-boosted trees (LightGBM).

A binary classifier with log loss on logged impressions (label: played), features from
:class:`~reelpick.ranking.features.FeatureBuilder` (Ke et al., "LightGBM", NeurIPS 2017).
Explanations are exact TreeSHAP values (Lundberg et al., Nature MI 2020) from LightGBM's
``pred_contrib``: per recommendation, the logit is
:math:`\mathrm{logit}\,\hat p = \phi_0 + \sum_f \phi_f`, and :meth:`Ranker.why` lists the
signals :math:`f` with the largest :math:`\phi_f` (what pushed the title up).

Saved without pickle: LightGBM's text model plus a JSON header (config, feature names).

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(2000, 3)).astype(np.float32)
>>> y = (rng.random(2000) < 1 / (1 + np.exp(-2 * X[:, 0]))).astype(int)
>>> r = Ranker(n_estimators=20).fit(X, y, feature_names=["a", "b", "c"])
>>> r.feature_importance().index[0]
'a'
>>> r.why(X[:1]).columns.tolist()
['feature', 'value', 'contribution']
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from reelpick.errors import NotFittedError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class RankerConfig:
    """LightGBM hyperparameters (validated). ``num_threads`` is explicit (default 1);
    ``early_stopping_rounds`` applies when validation data is given."""

    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 100
    feature_fraction: float = 0.9
    l2: float = 1.0
    early_stopping_rounds: int | None = 20
    num_threads: int = 1
    random_state: int = 0

    def __post_init__(self) -> None:
        checks = [("n_estimators", self.n_estimators >= 1, "must be >= 1"),
                  ("learning_rate", 0 < self.learning_rate <= 1, "must be in (0, 1]"),
                  ("num_leaves", self.num_leaves >= 2, "must be >= 2"),
                  ("min_child_samples", self.min_child_samples >= 1, "must be >= 1"),
                  ("feature_fraction", 0 < self.feature_fraction <= 1, "must be in (0, 1]"),
                  ("l2", self.l2 >= 0, "must be >= 0"),
                  ("early_stopping_rounds", self.early_stopping_rounds is None
                   or self.early_stopping_rounds >= 1, "must be >= 1 or None"),
                  ("num_threads", self.num_threads >= 1, "must be >= 1")]
        for name, ok, msg in checks:
            if not ok:
                raise ValueError(f"RankerConfig.{name}: {msg} (got {getattr(self, name)!r})")

    def params(self) -> dict[str, object]:
        return {"objective": "binary", "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "min_child_samples": self.min_child_samples,
                "feature_fraction": self.feature_fraction, "lambda_l2": self.l2,
                "num_threads": self.num_threads, "seed": self.random_state,
                "deterministic": True, "force_row_wise": True, "verbose": -1}


class Ranker:
    """LightGBM p(play) model with importance and per-recommendation explanations."""

    def __init__(self, config: RankerConfig | None = None, **params: object) -> None:
        if config is not None and params:
            raise TypeError("give either a config or keyword hyperparameters, not both")
        self.config = config or RankerConfig(**params)  # type: ignore[arg-type]

    def fit(self, X: np.ndarray, y: np.ndarray, *, feature_names: Sequence[str],
            categorical: Sequence[str] = (), X_valid: np.ndarray | None = None,
            y_valid: np.ndarray | None = None) -> Ranker:
        """Train on ``X (m, F)`` and 0/1 labels ``y (m,)``; returns ``self``."""
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        if X.ndim != 2 or X.shape[1] != len(feature_names):
            raise ValueError(f"X: expected shape (m, {len(feature_names)}), got {X.shape}")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y: expected shape ({X.shape[0]},), got {y.shape}")
        if not np.isin(y, (0, 1)).all() or y.min(initial=0) == y.max(initial=0):
            raise ValueError("y: labels must be 0/1 with both classes present")
        unknown = sorted(set(categorical) - set(feature_names))
        if unknown:
            raise ValueError(f"categorical: unknown feature(s) {unknown}")
        c = self.config
        names, cats = list(feature_names), list(categorical)
        train = lgb.Dataset(X, y, feature_name=names, categorical_feature=cats or "auto",
                            free_raw_data=True)
        sets: list[lgb.Dataset] = []
        callbacks: list[Callable[..., Any]] = []
        if X_valid is not None and y_valid is not None:
            sets = [lgb.Dataset(np.asarray(X_valid, dtype=np.float32), y_valid, reference=train)]
            if c.early_stopping_rounds:
                callbacks.append(lgb.early_stopping(c.early_stopping_rounds, verbose=False))
        self.booster_ = lgb.train(c.params(), train, num_boost_round=c.n_estimators,
                                  valid_sets=sets, callbacks=callbacks)
        self.feature_names_, self.categorical_ = names, cats
        return self

    def _check(self) -> lgb.Booster:
        if not hasattr(self, "booster_"):
            raise NotFittedError("Ranker is not fitted: call fit(X, y, ...) or Ranker.load")
        return self.booster_

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(play) for each row of ``X``, ``(m,)``."""
        b = self._check()
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names_):
            raise ValueError(f"X: expected shape (m, {len(self.feature_names_)}), got {X.shape}")
        if X.shape[0] == 0:
            return np.zeros(0)
        return np.asarray(b.predict(X, num_iteration=b.best_iteration or None, num_threads=1))

    def feature_importance(self, kind: str = "gain") -> pd.Series:
        """Total ``gain`` (or ``split`` count) per feature, largest first."""
        if kind not in ("gain", "split"):
            raise ValueError(f"kind: use 'gain' or 'split', got {kind!r}")
        b = self._check()
        imp = b.feature_importance(importance_type=kind, iteration=b.best_iteration or None)
        return pd.Series(imp, index=self.feature_names_, name=kind).sort_values(ascending=False)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """TreeSHAP contributions to the logit, ``(m, F + 1)`` (last column: the bias)."""
        b = self._check()
        return np.asarray(b.predict(np.asarray(X, dtype=np.float32), pred_contrib=True,
                                    num_iteration=b.best_iteration or None))

    def why(self, x: np.ndarray, top: int = 5) -> pd.DataFrame:
        """For one recommendation (a feature row), the ``top`` signals that pushed it up most:
        ``feature``, its ``value`` and its ``contribution`` to the logit, largest first."""
        x = np.asarray(x, dtype=np.float32).reshape(1, -1)
        phi = self.contributions(x)[0, :-1]
        order = np.argsort(-phi, kind="stable")[:top]
        return pd.DataFrame({"feature": np.asarray(self.feature_names_)[order],
                             "value": x[0, order].astype(float), "contribution": phi[order]})

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path/ranker.txt`` (LightGBM text model) and ``path/ranker.json``."""
        b = self._check()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        b.save_model(str(path / "ranker.txt"), num_iteration=b.best_iteration or None)
        (path / "ranker.json").write_text(json.dumps({
            "format": FORMAT_VERSION, "config": asdict(self.config),
            "feature_names": self.feature_names_, "categorical": self.categorical_}, indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Ranker:
        path = Path(path)
        try:
            header = json.loads((path / "ranker.json").read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a saved ranker ({exc})") from None
        if header.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: ranker format {header.get('format')} is not supported")
        r = cls(RankerConfig(**header["config"]))
        r.booster_ = lgb.Booster(model_file=str(path / "ranker.txt"))
        r.feature_names_ = list(header["feature_names"])
        r.categorical_ = list(header["categorical"])
        return r
