r"""A learned ranker over candidates of a personalised model and of trending lists.

:class:`~reelpick.models.blend.TrendBlend` mixes a personalised score with a trending prior
with one weight for everyone. Who should get what differs: a member with a long history is
predicted by their factors, a member with three plays by what is trending this week, and a title
released last week by its momentum more than by its all-time count. The stack learns that
mixture from the training data itself, the way two-stage recommenders do (candidate sources,
then a learning-to-rank model over member, title and time features; Covington et al., RecSys
2016):

1. **Time splits inside the training data.** ``n_windows`` label windows back from the newest
   training row, each ``holdout_fraction`` of the rows wide; for each, the rows before it are
   the history and the new titles members played in it the labels (members with no history are
   left out: :meth:`score` serves members it knows). No row at or after the newest training
   row is used, so under a time cut-off the model never sees the test window.
2. **Candidates** per member: the top ``n_candidates`` unseen titles of ALS (fitted on the
   history), of popularity over the last 7 and 30 days, and of a 7-day half-life trending count.
3. **Features** per (member, title), all as of the end of the history: the ALS score and its
   rank, log counts over 7 / 30 days and all time, the 7-day half-life count, the trend
   (7-day vs 30-day rate), days since the title's first and latest play, and the member's
   number of plays, days since their first and latest play, and the mean log popularity of what
   they played (mainstream or niche).
4. **A LightGBM ranker** on the candidates of members with a label among them, grouped by
   member and window, all windows pooled. The objective (LambdaRank over each member's list, or
   binary: each candidate a yes/no) is chosen by default on the data (``objective="auto"``):
   each is trained on every window but the newest and the one with the higher NDCG@10 on the
   newest wins. LambdaRank won on ml-100k, binary on the simulated worlds, where LambdaRank
   lost to popularity (BENCHMARKS.md, ``time-splits-stack``, ``time-splits-stack-auto`` and
   ``second-dataset``).
5. **Refit** the sources and features on *all* training rows; :meth:`score` ranks the
   candidates as of the newest training row. Titles outside a member's candidates score below
   every candidate (in trending order).

Saved without pickle: the LightGBM model as its text format inside the ``.npz``.

References: Burges, "From RankNet to LambdaRank to LambdaMART", MSR-TR-2010-82; Ji et al.,
"A re-visit of the popularity baseline in recommender systems", SIGIR 2020.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from reelpick.models.base import ModelConfig, Recommender
from reelpick.models.factorization import ALS

_DAY = 86400.0

#: ALS of the stack unless ``als_params`` says otherwise (the ``time-splits`` grid's base).
STACK_ALS = {"factors": 64, "regularization": 5.0, "alpha": 1.0, "iterations": 20,
             "weighting": "bm25", "recency_half_life_days": 60.0, "num_threads": 1}

#: The objectives ``objective="auto"`` chooses between.
OBJECTIVES = ("lambdarank", "binary")

#: Feature names, in column order.
FEATURES = ("als", "als_rank", "pop7", "pop30", "pop_all", "trend_hl7", "trend",
            "title_age_days", "title_idle_days", "member_plays", "member_age_days",
            "member_idle_days", "member_mainstream")


@dataclass(frozen=True)
class StackConfig(ModelConfig):
    """``als_params``: the ALS candidate source and feature (defaults :data:`STACK_ALS`);
    ``holdout_fraction``: share of the training rows in each label window, ``n_windows``
    windows back from the newest row (each with its own history and ALS fit);
    ``n_candidates``: titles per source; ``n_estimators``, ``learning_rate``, ``num_leaves``,
    ``min_child_samples``: LightGBM; ``objective``: ``"lambdarank"`` (per-member lists),
    ``"binary"`` (each candidate a yes/no) or ``"auto"`` (the one that ranks the newest label
    window better when trained on the others; the choice is ``objective_``); ``random_state``,
    ``num_threads``.

    The defaults are small, heavily regularised trees (4 leaves, >= 400 rows a leaf, 60
    rounds): on ml-100k's development cut-offs (``benchmarks/bench_time.py``) a label window
    holds a few dozen members with a history, and larger rankers fitted the windows' noise and
    lost to popularity. Which objective is better depends on the data (LambdaRank on ml-100k,
    ``"binary"`` on the simulated worlds of ``bench_second_dataset.py``), hence ``"auto"``."""

    als_params: dict[str, Any] = field(default_factory=dict)
    holdout_fraction: float = 0.06
    n_windows: int = 8
    n_candidates: int = 100
    n_estimators: int = 60
    learning_rate: float = 0.1
    num_leaves: int = 4
    min_child_samples: int = 400
    objective: str = "auto"
    random_state: int = 0
    num_threads: int = 1

    def __post_init__(self) -> None:
        self.check(isinstance(self.als_params, dict), "als_params", "must be a dict")
        self.check(self.objective in OBJECTIVES + ("auto",), "objective",
                   "must be 'lambdarank', 'binary' or 'auto'")
        self.check(0.0 < self.holdout_fraction < 0.5, "holdout_fraction", "must be in (0, 0.5)")
        self.check(self.n_windows * self.holdout_fraction < 1.0, "n_windows",
                   "n_windows x holdout_fraction must be < 1")
        for name in ("n_windows", "n_candidates", "n_estimators", "num_leaves", "min_child_samples",
                     "num_threads"):
            self.check(getattr(self, name) >= 1, name, "must be >= 1")
        self.check(self.learning_rate > 0, "learning_rate", "must be > 0")
        ALS(**self.als)   # bad ALS parameters fail here

    @property
    def als(self) -> dict[str, Any]:
        return {**STACK_ALS, "random_state": self.random_state, **self.als_params}


@dataclass
class _Tables:
    """Everything the features need, as of ``now``, over the model's title order."""

    now: float
    pop7: np.ndarray
    pop30: np.ndarray
    pop_all: np.ndarray
    hl7: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def build(cls, title: np.ndarray, ts: np.ndarray, n_titles: int) -> _Tables:
        now = float(ts.max())
        age = now - ts

        def count(mask: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
            return np.bincount(title[mask], weights=None if w is None else w[mask],
                               minlength=n_titles).astype(np.float64)

        every = np.ones(ts.size, bool)
        first = np.full(n_titles, np.nan)
        last = np.full(n_titles, np.nan)
        order = np.argsort(ts, kind="stable")
        first[title[order[::-1]]] = ts[order[::-1]]     # the earliest write wins
        last[title[order]] = ts[order]                  # the latest write wins
        return cls(now, count(age <= 7 * _DAY), count(age <= 30 * _DAY), count(every),
                   count(every, np.exp2(-age / (7 * _DAY))), first, last)

    def trending(self) -> np.ndarray:
        return self.hl7 + 1e-6 * self.pop_all

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"now": np.array(self.now), "pop7": self.pop7, "pop30": self.pop30,
                "pop_all": self.pop_all, "hl7": self.hl7, "first": self.first, "last": self.last}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> _Tables:
        return cls(float(a["now"]), a["pop7"], a["pop30"], a["pop_all"], a["hl7"], a["first"],
                   a["last"])


def _members(user_items: sp.csr_matrix, ts_by_member: tuple[np.ndarray, np.ndarray],
             tables: _Tables) -> np.ndarray:
    """Per member ``(plays, first, last, mainstream)`` ``(M, 4)``."""
    first, last = ts_by_member
    n = np.diff(user_items.indptr).astype(np.float64)
    logpop = np.log1p(tables.pop_all)
    main = np.asarray(user_items @ logpop).ravel() / np.maximum(n, 1.0)
    return np.column_stack([n, first, last, np.where(n > 0, main, np.nan)])


def _member_times(member: np.ndarray, ts: np.ndarray, n_members: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    first = np.full(n_members, np.nan)
    last = np.full(n_members, np.nan)
    order = np.argsort(ts, kind="stable")
    first[member[order[::-1]]] = ts[order[::-1]]
    last[member[order]] = ts[order]
    return first, last


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, scores.shape[1])
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def _candidates(seen: sp.csr_matrix, als: np.ndarray, tables: _Tables, k: int
                ) -> list[np.ndarray]:
    """Per member (rows of ``seen`` and of their ALS scores ``als``): the first ``k`` unseen
    titles of each popularity source and of ALS, merged."""
    n, T = seen.shape
    depth = min(T, k + int(np.diff(seen.indptr).max(initial=0)))   # room for the seen titles
    lists = [np.argsort(-src, kind="stable")[:depth]
             for src in (tables.pop7 + 1e-6 * tables.pop_all,
                         tables.pop30 + 1e-6 * tables.pop_all, tables.trending())]
    out = []
    for i in range(n):
        s = seen.indices[seen.indptr[i]:seen.indptr[i + 1]]
        keep = [lst[~np.isin(lst, s)][:k] for lst in lists]
        if T > s.size:
            a = als[i].copy()
            a[s] = -np.inf
            keep.append(_top(a[None, :], min(k, T - s.size))[0])
        out.append(np.unique(np.concatenate(keep)))
    return out


def _features(cands: list[np.ndarray], als: np.ndarray, tables: _Tables,
              members: np.ndarray) -> np.ndarray:
    """``(sum of candidates, len(FEATURES))`` float32 for members ``members`` (rows of the
    member table and of their ALS scores ``als``, one per candidate list)."""
    rows = []
    now = tables.now
    for i, c in enumerate(cands):
        a = als[i]
        sc = a[c]
        rank = (a[None, :] > sc[:, None]).sum(axis=1).astype(np.float64)
        n, first, last, main = members[i]
        p7, p30 = tables.pop7[c], tables.pop30[c]
        rows.append(np.column_stack([
            sc, rank, np.log1p(p7), np.log1p(p30), np.log1p(tables.pop_all[c]),
            np.log1p(tables.hl7[c]), np.log((p7 / 7 + 0.1) / (p30 / 30 + 0.1)),
            (now - tables.first[c]) / _DAY, (now - tables.last[c]) / _DAY,
            np.full(c.size, np.log1p(n)), np.full(c.size, (now - first) / _DAY),
            np.full(c.size, (now - last) / _DAY), np.full(c.size, main)]))
    if not rows:
        return np.zeros((0, len(FEATURES)), np.float32)
    return np.concatenate(rows).astype(np.float32)


def _ndcg10(pred: np.ndarray, y: np.ndarray, group: np.ndarray) -> float:
    """Mean NDCG@10 over the groups (consecutive runs of ``group`` sizes) of binary labels."""
    disc = 1.0 / np.log2(np.arange(2, 12))
    out, start = [], 0
    for g in group.tolist():
        p, lab = pred[start:start + g], y[start:start + g]
        start += g
        top = lab[np.argsort(-p, kind="stable")[:10]]
        ideal = np.sort(lab)[::-1][:10]
        out.append(float(top @ disc[:top.size]) / max(float(ideal @ disc[:ideal.size]), 1e-12))
    return float(np.mean(out)) if out else 0.0


class StackRanker(Recommender):
    """A learned ranker over ALS and trending candidates, trained on label windows inside the
    training data (module docstring).

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"member_id": rng.integers(0, 60, 3000).astype(str),
    ...                    "title_id": rng.zipf(1.5, 3000).clip(1, 80).astype(str),
    ...                    "timestamp": np.sort(rng.integers(0, 90 * 86400, 3000))})
    >>> m = StackRanker(n_estimators=20, als_params={"factors": 8, "iterations": 3}).fit(df)
    >>> m.recommend(["1", "2"], k=3).title_ids.shape
    (2, 3)
    """

    name = "stack"
    Config = StackConfig
    config: StackConfig

    def _fit(self, user_items: sp.csr_matrix, interactions: pd.DataFrame) -> None:
        c = self.config
        ts = interactions["timestamp"].to_numpy(dtype=np.float64)
        member = self.member_vocab_.index(interactions["member_id"])
        title = self.title_vocab_.index(interactions["title_id"])
        M, T = user_items.shape
        catalogue = self.title_vocab_.to_list()
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        edges = np.quantile(ts, 1.0 - c.holdout_fraction * np.arange(c.n_windows + 1))
        for j in range(c.n_windows):        # window j: labels in [edges[j + 1], edges[j])
            hist = ts < edges[j + 1]
            lab = (ts >= edges[j + 1]) & ((ts < edges[j]) if j else np.ones(ts.size, bool))
            if hist.sum() >= 10 and lab.sum() >= 10:
                part = self._window(interactions[hist], member[hist], title[hist], ts[hist],
                                    member[lab], title[lab], M, T, catalogue)
                if part is not None:
                    parts.append(part)
        self.objective_ = self._choose(parts)
        self.booster_ = self._train(parts, self.objective_) if parts else None
        self.als_ = ALS(**c.als).fit(interactions, titles=catalogue)
        self.tables_ = _Tables.build(title, ts, T)
        self.member_table_ = _members(user_items, _member_times(member, ts, M), self.tables_)

    def _window(self, hist: pd.DataFrame, h_member: np.ndarray, h_title: np.ndarray,
                h_ts: np.ndarray, l_member: np.ndarray, l_title: np.ndarray, M: int, T: int,
                catalogue: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(X, y, group sizes)`` of one label window: features as of its start, labels the
        new titles members played in it; ``None`` when no member has a label among their
        candidates."""
        c = self.config
        als = ALS(**c.als).fit(hist, titles=catalogue)
        seen = sp.csr_matrix((np.ones(h_member.size), (h_member, h_title)), shape=(M, T))
        seen.sum_duplicates()
        tables = _Tables.build(h_title, h_ts, T)
        mtab = _members(seen, _member_times(h_member, h_ts, M), tables)
        labels = sp.csr_matrix((np.ones(l_member.size), (l_member, l_title)), shape=(M, T))
        labels.sum_duplicates()
        labels = labels - labels.multiply(seen > 0)          # new titles only
        labels.eliminate_zeros()
        # the members :meth:`score` serves: a label in the window *and* a history before it
        who = np.flatnonzero((np.diff(labels.indptr) > 0) & (np.diff(seen.indptr) > 0))
        known = als.member_vocab_.index(
            np.asarray(self.member_vocab_.to_list(), dtype=object)[who], missing="error")
        scores = als._score(known)
        cands = _candidates(seen[who], scores, tables, c.n_candidates)
        X = _features(cands, scores, tables, mtab[who])
        lab = labels[who]
        y = np.concatenate([np.isin(cc, lab.indices[lab.indptr[i]:lab.indptr[i + 1]])
                            for i, cc in enumerate(cands)]).astype(np.float64)
        sizes = np.array([cc.size for cc in cands])
        pos = np.add.reduceat(y, np.cumsum(sizes) - sizes) if sizes.size else np.zeros(0)
        keep = np.repeat(pos > 0, sizes)
        if not keep.any():
            return None
        return X[keep], y[keep], sizes[pos > 0]

    def _choose(self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> str:
        """The objective: the configured one, or (``"auto"``) the one whose ranker, trained on
        every label window but the newest, has the higher NDCG@10 on the newest (LambdaRank
        without two windows)."""
        if self.config.objective != "auto":
            return self.config.objective
        if len(parts) < 2:
            return OBJECTIVES[0]
        X, y, group = parts[0]                       # window 0: the newest
        scores = [_ndcg10(np.asarray(self._train(parts[1:], obj).predict(
            X, num_threads=self.config.num_threads), dtype=np.float64), y, group)
                  for obj in OBJECTIVES]
        return OBJECTIVES[int(np.argmax(scores))]

    def _train(self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
               objective: str) -> lgb.Booster:
        c = self.config
        X = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
        group = np.concatenate([p[2] for p in parts])
        data = lgb.Dataset(X, y, group=group, feature_name=list(FEATURES), free_raw_data=True)
        params: dict[str, Any] = {
            "objective": objective, "learning_rate": c.learning_rate,
            "num_leaves": c.num_leaves, "min_data_in_leaf": c.min_child_samples,
            "num_threads": c.num_threads, "seed": c.random_state, "deterministic": True,
            "force_row_wise": True, "verbosity": -1}
        if objective == "lambdarank":
            params.update(lambdarank_truncation_level=20, eval_at=[10])
        return lgb.train(params, data, num_boost_round=c.n_estimators)

    def _score(self, member_idx: np.ndarray) -> np.ndarray:
        T = len(self.title_vocab_)
        tables = self.tables_
        trend = tables.trending()
        base = (trend - trend.max() - 1.0) / (trend.max() - trend.min() + 1.0) - 1.0
        out = np.broadcast_to(base, (len(member_idx), T)).astype(np.float64)
        if self.booster_ is None:       # too little data to learn a ranker: trending order
            return out
        als = self.als_._score(member_idx)
        seen = self.user_items_[member_idx]
        cands = _candidates(seen, als, tables, self.config.n_candidates)
        X = _features(cands, als, tables, self.member_table_[member_idx])
        pred = np.asarray(self.booster_.predict(X, num_threads=self.config.num_threads),
                          dtype=np.float64)
        start = 0
        lo = float(base.max())
        for i, cc in enumerate(cands):
            if cc.size == 0:                           # the member has seen every title
                continue
            p = pred[start:start + cc.size]
            start += cc.size
            out[i, cc] = p - p.min() + lo + 1.0        # every candidate above every other title
        return out

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        text = b"" if self.booster_ is None else self.booster_.model_to_string().encode()
        return {"booster": np.frombuffer(text, dtype=np.uint8),
                "objective": np.array(self.objective_),
                "member_table": self.member_table_,
                **{f"tab_{k}": v for k, v in self.tables_.to_arrays().items()},
                **{f"als_{k}": v for k, v in self.als_._state().items()}}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        text = arrays["booster"].tobytes().decode()
        self.booster_ = lgb.Booster(model_str=text) if text else None
        self.objective_ = str(arrays["objective"])
        self.member_table_ = arrays["member_table"]
        self.tables_ = _Tables.from_arrays({k[4:]: v for k, v in arrays.items()
                                            if k.startswith("tab_")})
        als = ALS(**self.config.als)
        als.member_vocab_ = self.member_vocab_
        als.title_vocab_ = self.title_vocab_
        als.user_items_ = self.user_items_
        als._set_state({k[4:]: v for k, v in arrays.items() if k.startswith("als_")})
        self.als_ = als
