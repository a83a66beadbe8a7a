"""The recommender interface every scorer of p(play | history) implements.

The contract (scikit-learn style): ``__init__`` takes keyword-only hyperparameters and stores them
in a frozen, validated config (``model.config``); :meth:`Recommender.fit` takes an interactions
DataFrame and returns ``self``; learned state ends in ``_``; :meth:`Recommender.score` and
:meth:`Recommender.recommend` raise :class:`NotFittedError` before ``fit``. Members and titles
are external string IDs at this edge and dense indices inside (:class:`Vocabulary`).

Models save to a single ``.npz`` file (arrays plus a JSON header) and load with
:func:`load_model`; nothing is pickled.
"""

from __future__ import annotations

import importlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from reelpick.data.schema import INTERACTIONS
from reelpick.data.vocab import Vocabulary
from reelpick.errors import NotFittedError

FORMAT_VERSION = 1


class UnknownMemberError(KeyError):
    """Recommendations were asked for members the model never saw in training."""


@dataclass(frozen=True)
class Recommendations:
    """Top-k titles per member. One immutable type whatever the input.

    Attributes
    ----------
    member_ids : (n_members,) object array of member IDs, in request order.
    title_ids : (n_members, k) object array of title IDs, best first (``None`` past the end of a
        catalogue shorter than ``k``).
    title_idx : (n_members, k) int64 title indices in the model's title vocabulary (``-1`` empty).
    scores : (n_members, k) float32 scores (``-inf`` for empty slots).
    """

    member_ids: np.ndarray
    title_ids: np.ndarray
    title_idx: np.ndarray
    scores: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """Long format: ``member_id``, ``rank`` (1-based), ``title_id``, ``score``."""
        n, k = self.title_idx.shape
        valid = self.title_idx.ravel() >= 0
        return pd.DataFrame({
            "member_id": np.repeat(self.member_ids, k)[valid],
            "rank": np.tile(np.arange(1, k + 1), n)[valid],
            "title_id": self.title_ids.ravel()[valid],
            "score": self.scores.ravel()[valid],
        })


@dataclass(frozen=True)
class ModelConfig:
    """Base of every model's hyperparameters; subclasses add fields and validate them."""

    def check(self, condition: bool, field_name: str, message: str) -> None:
        if not condition:
            raise ValueError(f"{type(self).__name__}.{field_name}: {message} "
                             f"(got {getattr(self, field_name)!r})")


_REGISTRY: dict[str, type[Recommender]] = {}
#: Models whose module is imported on first use (the sequence model pulls in torch).
_LAZY_MODULES: dict[str, str] = {"seq": "reelpick.models.sequence",
                                  "stack": "reelpick.models.stack"}


class Recommender(ABC):
    """Base class: ID handling, seen-item exclusion, top-k, persistence.

    Subclasses set ``name`` and ``Config``, and implement ``_fit(user_items, interactions)`` and
    ``_score(member_idx)`` (dense ``(len(member_idx), n_titles)`` scores), plus ``_state`` /
    ``_set_state`` for persistence.
    """

    name: ClassVar[str]
    Config: ClassVar[type[ModelConfig]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _REGISTRY[cls.name] = cls

    def __init__(self, config: ModelConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise TypeError("give either a config or keyword hyperparameters, not both")
        if config is None:
            names = {f.name for f in fields(self.Config)}
            unknown = sorted(set(params) - names)
            if unknown:
                raise TypeError(f"{type(self).__name__}: unknown hyperparameter(s) {unknown}; "
                                f"known: {sorted(names)}")
            config = self.Config(**params)
        elif not isinstance(config, self.Config):
            raise TypeError(f"expected {self.Config.__name__}, got {type(config).__name__}")
        self.config = config

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in asdict(self.config).items())
        return f"{type(self).__name__}({args})"

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as a plain dict."""
        return asdict(self.config)

    # ------------------------------------------------------------------ fit
    def fit(self, interactions: pd.DataFrame, *, titles: Sequence[str] | None = None
            ) -> Recommender:
        """Learn from interactions (schema ``INTERACTIONS``; validated here).

        ``titles`` optionally names the whole catalogue, so titles without interactions are part
        of the ranking too. Returns ``self``.
        """
        inter = INTERACTIONS.validate(interactions, source="fit(interactions)")
        if len(inter) == 0:
            raise ValueError("fit(interactions): no rows")
        self.member_vocab_ = Vocabulary(inter["member_id"])
        catalogue = list(titles) if titles is not None else []
        self.title_vocab_ = Vocabulary([*catalogue, *inter["title_id"]])
        rows = self.member_vocab_.index(inter["member_id"])
        cols = self.title_vocab_.index(inter["title_id"])
        ui = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                           shape=(len(self.member_vocab_), len(self.title_vocab_)))
        ui.sum_duplicates()
        ui.data[:] = 1.0
        self.user_items_ = ui
        self._fit(ui, inter)
        return self

    @abstractmethod
    def _fit(self, user_items: sp.csr_matrix, interactions: pd.DataFrame) -> None: ...

    @abstractmethod
    def _score(self, member_idx: np.ndarray) -> np.ndarray: ...

    # ------------------------------------------------------------------ predict
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "user_items_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(interactions) "
                                 "first or load a saved model with load_model(path)")

    def member_index(self, member_ids: Sequence[object] | np.ndarray) -> np.ndarray:
        """Internal indices of ``member_ids``; :class:`UnknownMemberError` for unseen members."""
        self._check_fitted()
        idx = self.member_vocab_.index(np.asarray(member_ids, dtype=object), missing="negative")
        if (idx < 0).any():
            bad = np.asarray(member_ids, dtype=object)[idx < 0]
            raise UnknownMemberError(
                f"{len(bad)} member(s) not seen in training, e.g. {bad[0]!r}; "
                "a history-based model cannot rank for them")
        return idx

    def score(self, member_ids: Sequence[object] | np.ndarray, *,
              context: pd.DataFrame | None = None) -> np.ndarray:
        """Scores ``(len(member_ids), n_titles)`` (float32) in ``title_vocab_`` order; higher is
        better. ``context`` (one row per member) is accepted by every model and ignored by those
        that do not use context."""
        idx = self.member_index(member_ids)
        return np.asarray(self._score(idx), dtype=np.float32)

    def recommend(
        self,
        member_ids: Sequence[object] | np.ndarray,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        exclude: pd.DataFrame | None = None,
        context: pd.DataFrame | None = None,
        batch_size: int = 2048,
    ) -> Recommendations:
        """Top-``k`` titles per member over the full catalogue.

        ``exclude_seen`` removes each member's training titles; ``exclude`` (``member_id``,
        ``title_id``) removes more (e.g. validation titles at test time).
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        members = np.asarray(member_ids, dtype=object)
        idx = self.member_index(members)
        n_titles = len(self.title_vocab_)
        extra = None
        if exclude is not None and len(exclude):
            er = self.member_vocab_.index(exclude["member_id"], missing="negative")
            ec = self.title_vocab_.index(exclude["title_id"], missing="negative")
            ok = (er >= 0) & (ec >= 0)
            extra = sp.csr_matrix((np.ones(ok.sum(), dtype=np.float32), (er[ok], ec[ok])),
                                  shape=self.user_items_.shape)
        kk = min(k, n_titles)
        out_idx = np.full((len(members), k), -1, dtype=np.int64)
        out_scores = np.full((len(members), k), -np.inf, dtype=np.float32)
        for start in range(0, len(members), batch_size):
            b = idx[start:start + batch_size]
            scores = self.score(members[start:start + batch_size], context=None
                                if context is None else context.iloc[start:start + batch_size])
            if exclude_seen:
                _mask(scores, self.user_items_[b])
            if extra is not None:
                _mask(scores, extra[b])
            top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            top_scores = np.take_along_axis(scores, top, axis=1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
            top_scores = np.take_along_axis(top_scores, order, axis=1)
            top[~np.isfinite(top_scores)] = -1
            out_idx[start:start + len(b), :kk] = top
            out_scores[start:start + len(b), :kk] = top_scores
        ids = np.full(out_idx.shape, None, dtype=object)
        ids[out_idx >= 0] = self.title_vocab_.ids(out_idx[out_idx >= 0])
        return Recommendations(members, ids, out_idx, out_scores)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        del arrays

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted model to ``path`` (``.npz``; no pickle). Returns the path."""
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {"model": self.name, "format": FORMAT_VERSION, "config": self.get_params()}
        ui = self.user_items_
        arrays = {
            "__header__": np.array(json.dumps(header)),
            "__members__": np.array(self.member_vocab_.to_list(), dtype=str),
            "__titles__": np.array(self.title_vocab_.to_list(), dtype=str),
            "__ui_indptr__": ui.indptr, "__ui_indices__": ui.indices,
            **{f"state_{k}": v for k, v in self._state().items()},
        }
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path


def _mask(scores: np.ndarray, rows: sp.csr_matrix) -> None:
    r, c = rows.nonzero()
    scores[r, c] = -np.inf


def available_models() -> list[str]:
    """Names accepted by :func:`make_model` and the CLI's ``--models``."""
    return sorted(set(_REGISTRY) | set(_LAZY_MODULES))


def make_model(name: str, **params: Any) -> Recommender:
    """Build a model by its registered name, e.g. ``make_model("als", factors=64)``."""
    if name not in _REGISTRY and name in _LAZY_MODULES:
        importlib.import_module(_LAZY_MODULES[name])
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {available_models()}") from None
    return cls(**params)


def load_model(path: str | os.PathLike[str]) -> Recommender:
    """Load a model written by :meth:`Recommender.save` (``allow_pickle=False``)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a reelpick model file ({exc})") from None
    if "__header__" not in arrays:
        raise ValueError(f"{path}: not a reelpick model file (no header)")
    header = json.loads(str(arrays["__header__"]))
    if header.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: model format {header.get('format')} is not supported "
                         f"(this reelpick reads format {FORMAT_VERSION})")
    model = make_model(header["model"], **header["config"])
    model.member_vocab_ = Vocabulary.from_list(arrays["__members__"].tolist())
    model.title_vocab_ = Vocabulary.from_list(arrays["__titles__"].tolist())
    indices = arrays["__ui_indices__"]
    model.user_items_ = sp.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), indices, arrays["__ui_indptr__"]),
        shape=(len(model.member_vocab_), len(model.title_vocab_)))
    model._set_state({k[6:]: v for k, v in arrays.items() if k.startswith("state_")})
    return model
