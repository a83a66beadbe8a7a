r"""Candidate sources behind one interface: each scores every title for every request.

``source.fit(history)`` learns from a :class:`~reelpick.ranking.history.History` snapshot and
returns ``self``; ``source.score(requests)`` returns ``(n, T)`` float32 scores in catalogue order,
NaN where the source has no opinion (not a candidate). Sources:

* :class:`ModelSource` — any :class:`~reelpick.models.Recommender` (``als``, ``itemknn``,
  ``seq`` when :func:`reelpick.models.available_models` lists it, ...): its score.
* :class:`TrendingSource` — popular now in the member's country and context:
  :math:`\log(1 + c_{k,d,p,t}) + \tfrac12 \log(1 + c_{k,t})` with decayed play counts
  :math:`c` per country :math:`k`, device :math:`d` and daypart :math:`p`
  (``by_context=False``: country only).
* :class:`ContinueWatchingSource` — titles played in the last ``window_days`` and not finished
  (watch fraction < ``max_fraction``) or series: :math:`2^{-\Delta/7\,\mathrm{days}}`.
* :class:`BecauseYouWatchedSource` — item-kNN neighbours of the member's most recent titles
  (the anchors X of "Because you watched X"): :math:`\max_{a} \mathrm{sim}(a, t)`.

Example
-------
>>> import pandas as pd
>>> from reelpick.ranking.history import Catalogue, History, Requests
>>> cat = Catalogue.from_frame(pd.DataFrame({"title_id": ["t0", "t1", "t2"]}))
>>> inter = pd.DataFrame({"member_id": ["m0", "m0", "m1"], "title_id": ["t0", "t1", "t0"],
...                       "timestamp": [1, 2, 3]})
>>> h = History.build(inter, cat, members=["m0", "m1"])
>>> src = BecauseYouWatchedSource().fit(h)
>>> req = Requests(*(np.array([1]),) * 1, *(np.zeros(1, int),) * 5)
>>> src.anchors(req).tolist(), bool(src.score(req)[0, 1] > 0)
([[0, -1]], True)
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np
import scipy.sparse as sp

from reelpick.errors import NotFittedError
from reelpick.models import ItemKNN, Recommender, available_models, make_model
from reelpick.ranking.history import DAY, History, Requests, daypart


@runtime_checkable
class CandidateSource(Protocol):
    """``name``; ``fit(history) -> self``; ``score(requests) -> (n, T)`` (NaN = none)."""

    name: str

    def fit(self, history: History) -> CandidateSource:
        ...

    def score(self, requests: Requests) -> np.ndarray:
        ...


class _Fitted:
    name = "source"

    def _check(self) -> History:
        if not hasattr(self, "history_"):
            raise NotFittedError(f"{type(self).__name__} ({self.name}) is not fitted: call "
                                 "fit(history) first")
        return self.history_


class ModelSource(_Fitted):
    """A :class:`~reelpick.models.Recommender` as a candidate source (``model`` is a registered
    name with ``params``, or an unfitted model instance)."""

    def __init__(self, model: str | Recommender, *, name: str | None = None,
                 **params: object) -> None:
        self.model = make_model(model, **params) if isinstance(model, str) else model
        self.name = name or self.model.name

    def fit(self, history: History) -> ModelSource:
        self.history_ = history
        cat = history.catalogue
        self.model.fit(history.interactions, titles=cat.titles.to_list())
        self.perm_ = cat.titles.index(self.model.title_vocab_.id_array)
        self.member_map_ = self.model.member_vocab_.index(history.members.id_array,
                                                          missing="negative")
        return self

    @classmethod
    def fitted(cls, model: Recommender, history: History, *, name: str | None = None
               ) -> ModelSource:
        """A source around an already fitted ``model`` (e.g. loaded from disk) on
        ``history``'s catalogue and members, without refitting it."""
        self = cls(model, name=name)
        self.history_ = history
        self.perm_ = history.catalogue.titles.index(model.title_vocab_.id_array)
        self.member_map_ = model.member_vocab_.index(history.members.id_array,
                                                     missing="negative")
        return self

    def score(self, requests: Requests) -> np.ndarray:
        h = self._check()
        out = np.full((len(requests), h.catalogue.n_titles), np.nan, dtype=np.float32)
        mi = self.member_map_[requests.member]
        known = np.flatnonzero(mi >= 0)
        if known.size == 0:
            return out
        if type(self.model).score is Recommender.score:
            # context-free models: the base score() is ID lookup + _score; the lookup is done
            # once at fit (member_map_), so go straight to the dense scores
            s = np.asarray(self.model._score(mi[known]), dtype=np.float32)
        else:
            ids = self.model.member_vocab_.ids(mi[known])
            ctx = requests.subset(known).context_frame(h.catalogue.countries)
            s = self.model.score(ids, context=ctx)
        if known.size == len(requests):
            out[:, self.perm_] = s
        else:
            out[np.ix_(known, self.perm_)] = s
        return out


class TrendingSource(_Fitted):
    """Popular now in the member's country (and device and daypart if ``by_context``)."""

    def __init__(self, *, by_context: bool = True, name: str | None = None) -> None:
        self.by_context = by_context
        self.name = name or ("trending" if by_context else "trending-country")

    def fit(self, history: History) -> TrendingSource:
        self.history_ = history
        return self

    def score(self, requests: Requests) -> np.ndarray:
        h = self._check()
        base = 0.5 * np.log1p(h.trending_country[requests.country])
        if self.by_context:
            base = base + np.log1p(h.trending[requests.country, requests.device,
                                              daypart(requests.hour)])
        return base.astype(np.float32)


class ContinueWatchingSource(_Fitted):
    """Recently started, unfinished titles (and series, which continue by nature)."""

    def __init__(self, *, window_days: float = 21.0, max_fraction: float = 0.9,
                 name: str = "continue") -> None:
        if window_days <= 0 or not 0 < max_fraction <= 1:
            raise ValueError("window_days must be > 0 and max_fraction in (0, 1]")
        self.window_days, self.max_fraction, self.name = window_days, max_fraction, name

    def fit(self, history: History) -> ContinueWatchingSource:
        self.history_ = history
        return self

    def score(self, requests: Requests) -> np.ndarray:
        h = self._check()
        out = np.full((len(requests), h.catalogue.n_titles), np.nan, dtype=np.float32)
        for i, (m, now) in enumerate(zip(requests.member, requests.timestamp)):
            t, ts, frac = h.member_plays(int(m))
            days = (now - ts) / DAY
            ok = (days <= self.window_days) & (days >= 0) & (
                (frac < self.max_fraction) | h.catalogue.is_series[t])
            if ok.any():
                out[i, t[ok]] = np.exp2(-days[ok] / 7.0)
        return out


class BecauseYouWatchedSource(_Fitted):
    """Item-kNN neighbours of the member's ``n_anchors`` most recent distinct titles."""

    def __init__(self, *, neighbors: int = 50, n_anchors: int = 2,
                 name: str = "because") -> None:
        if neighbors < 1 or n_anchors < 1:
            raise ValueError("neighbors and n_anchors must be >= 1")
        self.neighbors, self.n_anchors, self.name = neighbors, n_anchors, name

    def fit(self, history: History) -> BecauseYouWatchedSource:
        self.history_ = history
        T = history.catalogue.n_titles
        knn = cast(ItemKNN, make_model("itemknn", neighbors=self.neighbors))
        if len(history.interactions):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                knn.fit(history.interactions, titles=history.catalogue.titles.to_list())
            perm = history.catalogue.titles.index(knn.title_vocab_.id_array)
            s = knn.similarity_.tocoo()
            sim = sp.csr_matrix((s.data, (perm[s.row], perm[s.col])), shape=(T, T))
        else:
            sim = sp.csr_matrix((T, T), dtype=np.float32)
        sim.setdiag(0)
        sim.eliminate_zeros()
        self.similarity_ = sim.astype(np.float32)
        return self

    def anchors(self, requests: Requests) -> np.ndarray:
        """``(n, n_anchors)`` the titles X (most recent first, -1 = none)."""
        return self._check().recent_titles(requests.member, self.n_anchors)

    def anchor_scores(self, requests: Requests) -> tuple[np.ndarray, np.ndarray]:
        """``(anchors (n, A), scores (n, A, T))``: similarity to each anchor (NaN = none)."""
        a = self.anchors(requests)
        T = self._check().catalogue.n_titles
        out = np.full((*a.shape, T), np.nan, dtype=np.float32)
        i, j = np.nonzero(a >= 0)
        if i.size:
            rows = self.similarity_[a[i, j]].toarray()
            out[i, j] = np.where(rows > 0, rows, np.nan)
        return a, out

    def score(self, requests: Requests) -> np.ndarray:
        _, s = self.anchor_scores(requests)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmax(s, axis=1) if s.shape[1] else s[:, 0]


#: The sequence-model setting of sources refitted every day on a few days of plays (the feedback
#: loop, ``bench_ranker``): a transformer over windows of up to 200 actions in batches of 32,
#: which learns in the 2-3 epochs those callers give it (the model's defaults, a GRU over windows
#: of 50 in batches of 128 with early stopping, need tens of epochs), and every title in the
#: softmax, since members of the simulated world replay titles. Callers add ``max_epochs``.
DAILY_SEQ_PARAMS: dict[str, Any] = {"encoder": "transformer", "n_heads": 1, "max_len": 200,
                                    "dropout": 0.4, "batch_size": 32, "exclude_seen": False}


def default_sources(*, use_seq: bool = True, als_factors: int = 32,
                    als_iterations: int = 10, seq_params: dict | None = None
                    ) -> list[CandidateSource]:
    """ALS, item-kNN, the sequence model (when registered and ``use_seq``), trending in
    context, continue watching and because-you-watched."""
    out: list[CandidateSource] = [
        ModelSource("als", factors=als_factors, iterations=als_iterations),
        ModelSource("itemknn", neighbors=100),
    ]
    if use_seq and "seq" in available_models():
        out.append(ModelSource("seq", **(seq_params or {})))
    out += [TrendingSource(), ContinueWatchingSource(), BecauseYouWatchedSource()]
    return out
