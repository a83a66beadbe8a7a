r"""Features of a (request, title) pair for the ranker p(play | member, title, context).

Every signal the seed article names, computed from a :class:`~reelpick.ranking.history.History`
snapshot (so training rows never see their own future):

========================  ==================================================================
group                     features
========================  ==================================================================
viewing history           ``log_plays``, ``days_since_play``; watch-weighted genre affinity
                          ``aff_recent`` = :math:`\mathrm{aff}^{\text{decayed}}_m \cdot
                          \bar g_t`, ``aff_all`` (undecayed), ``aff_max`` (best genre of t),
                          ``days_since_genre`` (recency of t's genres); ``days_since_seen``,
                          ``seen_fraction`` (last watch fraction of this title)
title metadata            ``year``, ``age_days``, ``log_duration``, ``is_series``,
                          ``popularity``, ``log_title_plays``, ``log_title_plays_week``,
                          ``genre=<g>`` one-hot
similar members (CF)      ``src=<name>``: the score of every candidate source (ALS, item-kNN,
                          seq, trending, continue watching, because-you-watched)
context                   ``device``, ``country`` (categorical), ``hour``, ``weekend``,
                          ``afternoon``
interactions              ``short_on_mobile`` = :math:`[d \in \{\text{mobile, tablet}\}]
                          \cdot (-\log \mathrm{dur}_t)`, ``family_ctx`` = family title x
                          (afternoon + weekend), ``aff_x_recency`` = ``aff_recent`` x
                          :math:`2^{-\text{days since play} / 7}`
slot (training only)      ``row``, ``position`` (the logged slot; 0 when serving, so
                          predictions are for the top-left slot: position debiasing)
========================  ==================================================================

``use_context=False`` drops the context and interaction-with-context columns (and uses
country-level trending), the context-free ablation of the benchmark.

Example
-------
>>> import pandas as pd
>>> from reelpick.ranking.history import Catalogue, History, Requests
>>> cat = Catalogue.from_frame(pd.DataFrame({"title_id": ["t0", "t1"], "genres": ["a", "b"]}))
>>> h = History.build(pd.DataFrame({"member_id": ["m0"], "title_id": ["t0"],
...                                 "timestamp": [0]}), cat, as_of=10)
>>> fb = FeatureBuilder(h, source_names=())
>>> req = Requests(*(np.zeros(1, int),) * 6)
>>> fb.build(req, np.array([0, 0]), np.array([0, 1]), {}).shape == (2, len(fb.names))
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from reelpick.data.schema import DEVICES
from reelpick.ranking.history import DAY, History, Requests

_MOBILE = np.isin(np.asarray(DEVICES), ["mobile", "tablet"])


class FeatureBuilder:
    """Builds the feature matrix for (request, title) pairs (module docstring).

    ``source_names`` fixes the ``src=<name>`` columns (their scores are passed to
    :meth:`build`); ``use_context`` and ``use_slot`` switch groups off.
    """

    def __init__(self, history: History, *, source_names: Sequence[str],
                 use_context: bool = True, use_slot: bool = True) -> None:
        self.history = history
        self.source_names = tuple(source_names)
        self.use_context, self.use_slot = use_context, use_slot
        cat = history.catalogue
        fam = [i for i, g in enumerate(cat.genres) if g == "family"]
        self._family = (cat.genre_onehot[:, fam[0]] > 0) if fam else np.zeros(cat.n_titles, bool)
        self._log_dur = np.log(np.maximum(cat.duration, 60.0))
        self._aff_recent = history.affinity(decayed=True)
        self._aff_all = history.affinity(decayed=False)
        names = ["log_plays", "days_since_play", "aff_recent", "aff_all", "aff_max",
                 "days_since_genre", "days_since_seen", "seen_fraction", "aff_x_recency",
                 "year", "age_days", "log_duration", "is_series", "popularity",
                 "log_title_plays", "log_title_plays_week",
                 *(f"genre={g}" for g in cat.genres),
                 *(f"src={s}" for s in self.source_names)]
        if use_context:
            names += ["device", "country", "hour", "weekend", "afternoon", "short_on_mobile",
                      "family_ctx"]
        if use_slot:
            names += ["row", "position"]
        self.names: list[str] = names
        self.categorical: list[str] = ["device", "country"] if use_context else []

    def build(self, requests: Requests, pair_request: np.ndarray, pair_title: np.ndarray,
              source_scores: Mapping[str, np.ndarray], *, row: np.ndarray | None = None,
              position: np.ndarray | None = None) -> np.ndarray:
        """``(p, F)`` float32 features for pairs ``(pair_request[k], pair_title[k])``;
        ``source_scores[name]`` is that source's ``(n, T)`` score matrix for ``requests``
        (missing sources give NaN). ``row``/``position`` default to 0 (serving)."""
        h, cat = self.history, self.history.catalogue
        r = np.asarray(pair_request)
        t = np.asarray(pair_title)
        m = requests.member[r]
        now = requests.timestamp[r].astype(np.float64)
        cols: list[np.ndarray] = []
        last = h.last_ts[m]
        dsp = np.where(np.isfinite(last), (now - last) / DAY, np.nan)
        gm = cat.genre_mean[t]
        go = cat.genre_onehot[t] > 0
        aff_r = np.einsum("pg,pg->p", self._aff_recent[m], gm)
        gl = np.where(go, h.genre_last_ts[m], -np.inf).max(axis=1)
        seen_ts, seen_frac = h.last_play(m, t)
        cols += [np.log1p(h.n_plays[m]), dsp, aff_r,
                 np.einsum("pg,pg->p", self._aff_all[m], gm),
                 np.where(go, self._aff_recent[m], 0.0).max(axis=1),
                 np.where(np.isfinite(gl), (now - gl) / DAY, np.nan),
                 np.where(np.isfinite(seen_ts), (now - seen_ts) / DAY, np.nan), seen_frac,
                 # a request before the member's last play grows the term by 2^(days / 7);
                 # capped at 2^60 (a request over a year early: a clock or a backfill off),
                 # past which it would overflow float32 (far outside what the ranker saw)
                 aff_r * np.exp2(np.minimum(-np.nan_to_num(dsp, nan=1e3) / 7.0, 60.0)),
                 cat.year[t], (now - cat.release_ts[t]) / DAY, self._log_dur[t],
                 cat.is_series[t].astype(float), cat.popularity[t],
                 np.log1p(h.title_plays[t]), np.log1p(h.title_plays_week[t])]
        cols += list(cat.genre_onehot[t].T)
        for name in self.source_names:
            s = source_scores.get(name)
            cols.append(np.full(r.size, np.nan) if s is None else s[r, t])
        if self.use_context:
            dev = requests.device[r]
            hour = requests.hour[r]
            wk = (requests.day_of_week[r] >= 5).astype(float)
            aft = ((hour >= 12) & (hour < 18)).astype(float)
            cols += [dev, requests.country[r], hour, wk, aft,
                     _MOBILE[dev] * -self._log_dur[t], self._family[t] * (aft + wk)]
        if self.use_slot:
            z = np.zeros(r.size)
            cols += [z if row is None else row, z if position is None else position]
        return np.column_stack([np.asarray(c, dtype=np.float32) for c in cols])
