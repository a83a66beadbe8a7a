r"""Feature-based uplift: a T-learner of p(play | do(show)) and p(play | do(not show)) per member
features x title, trained on exploration logs.

For a visit :math:`v` (member :math:`m`, context :math:`c`) and a title :math:`t`
(Künzel et al. 2019, PNAS 116(10), "T-learner"):

.. math::

    \mu_1(v, t, s) &= P(\text{play } t \mid v, do(\text{show } t \text{ in slot } s)),
        \quad \text{fit on randomised impressions (propensity} < 1) \\
    \mu_0(v, t) &= P(\text{play } t \mid v, do(\text{not show } t)),
        \quad \text{fit on available, not-shown titles: label = an organic play of } t \\
    \tau(v, t) &= \mu_1(v, t, s^*) - \mu_0(v, t), \quad s^* = \text{the top slot}.

Both arms are gradient-boosted trees (LightGBM, Ke et al. 2017) on the same features:

* member: genre shares of the member's plays in the logs, :math:`\hat s_m = (C_m + a\,\bar s)
  / (N_m + a)` (``prior_plays`` = :math:`a` pseudo-plays of the population mix: shrinkage for
  members with few plays), separately for all plays and organic plays; in training the plays
  of the row's own visit are removed from :math:`C_m` (leave-one-visit-out), so labels do not
  leak into features and training rows look like new visits;
* member x title: :math:`\hat s_m \cdot \bar g_t`, :math:`\sum_\gamma \bar g_{t\gamma}
  \log \hat s_{m\gamma}` and :math:`\max_{\gamma \in t} \hat s_{m\gamma}` for both share vectors
  (:math:`\bar g_t` = the title's genres, normalised);
* title: id (categorical), kind, log duration, popularity (titles table), days since release;
* context: device, local hour, weekday; slot (row, position) for :math:`\mu_1` only.

Randomised slots make the treated arm an unbiased sample of :math:`\mu_1`; the control arm
keeps every organic play of a not-shown title and ``negatives`` sampled not-shown titles per
visit, weighted by (not-shown available titles - plays) / ``negatives`` (importance-weighted
negative sampling), so :math:`\mu_0` is calibrated. "Available" = shown on some page of the same
country and day (the logs carry no catalogue).

Example
-------
>>> from reelpick.policies import UniformPolicy
>>> from reelpick.world import World, WorldConfig
>>> from reelpick.causal.instruments import Logs
>>> world = World(WorldConfig.preset("small"), seed=2)
>>> logs = Logs.from_simulation(world.simulate(UniformPolicy(), 2_000), world.titles())
>>> model = TLearnerUplift(n_estimators=20).fit(logs)
>>> ctx = logs.impressions.groupby("page_id").first().head(3)
>>> model.context_scores(ctx, score="uplift").shape == (3, len(model.titles_))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from reelpick.causal.instruments import Logs, exploration_impressions, organic_plays
from reelpick.data.schema import DEVICES
from reelpick.errors import check_fitted

DAY = 86_400
#: Context columns :meth:`TLearnerUplift.context_scores` needs (impressions have them all).
CONTEXT_COLUMNS: tuple[str, ...] = ("member_id", "device", "hour", "day_of_week", "timestamp")
_SCORES = ("uplift", "play", "organic")


@dataclass(frozen=True)
class TLearnerConfig:
    """Hyperparameters of :class:`TLearnerUplift` (validated once)."""

    n_estimators: int = 150
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 100
    negatives: int = 8
    prior_plays: float = 5.0
    window: int = 3600
    num_threads: int = 1
    random_state: int = 0

    def __post_init__(self) -> None:
        checks = [("n_estimators", self.n_estimators >= 1, "must be >= 1"),
                  ("learning_rate", 0 < self.learning_rate <= 1, "must be in (0, 1]"),
                  ("num_leaves", self.num_leaves >= 2, "must be >= 2"),
                  ("min_child_samples", self.min_child_samples >= 1, "must be >= 1"),
                  ("negatives", self.negatives >= 1, "must be >= 1"),
                  ("prior_plays", np.isfinite(self.prior_plays) and self.prior_plays > 0,
                   "must be > 0"),
                  ("window", self.window > 0, "must be > 0"),
                  ("num_threads", self.num_threads >= 1, "must be >= 1")]
        for name, ok, msg in checks:
            if not ok:
                raise ValueError(f"TLearnerConfig.{name}: {msg}, got {getattr(self, name)!r}")


class TLearnerUplift:
    """T-learner uplift per (visit, title) from exploration logs (see the module docstring).

    Learned state: ``titles_`` (title ids, the score columns), ``genres_``, ``title_genre_``
    ``(T, G)`` normalised genre vectors, ``member_counts_`` (member id -> row of
    ``counts_all_``/``counts_organic_`` ``(M, G)`` and ``n_all_``/``n_organic_`` ``(M,)``),
    ``mu1_``/``mu0_`` (LightGBM boosters), ``slot_order_`` (``(row_index, position)`` best
    first, by logged play rate), ``n_treated_``/``n_control_`` rows.
    """

    def __init__(self, **params: object) -> None:
        self.config = TLearnerConfig(**params)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ features
    def _title_table(self, logs: Logs, titles: np.ndarray) -> None:
        t = logs.titles
        if t is None or "genres" not in t.columns:
            raise ValueError("TLearnerUplift: needs a titles table with a 'genres' column "
                             "(titles.parquet)")
        t = t.set_index("title_id").reindex(titles)
        genres = sorted({g for gs in t["genres"].fillna("") for g in gs.split("|") if g})
        onehot = np.array([[g in set(gs.split("|")) for g in genres]
                           for gs in t["genres"].fillna("")], dtype=float)
        self.genres_ = np.asarray(genres)
        self.title_genre_ = onehot / np.maximum(onehot.sum(axis=1, keepdims=True), 1.0)
        self._title_onehot = onehot > 0
        num = lambda c, d: (pd.to_numeric(t[c], errors="coerce").fillna(d).to_numpy(float)  # noqa: E731
                            if c in t.columns else np.full(len(t), d))
        self._title_static = np.column_stack([
            np.arange(len(titles), dtype=float),
            (t["kind"] == "series").to_numpy(float) if "kind" in t.columns
            else np.zeros(len(t)),
            np.log(np.maximum(num("duration_seconds", 3600.0), 60.0)),
            num("popularity", 0.0),
        ])
        self._release = num("release_ts", 0.0)

    def _member_counts(self, logs: Logs) -> None:
        inter = logs.interactions
        col = pd.Index(self.titles_).get_indexer(inter["title_id"])
        ok = col >= 0
        members, m = np.unique(inter["member_id"].to_numpy()[ok].astype(str),
                               return_inverse=True)
        g = self.title_genre_[col[ok]]
        organic = inter["decision_id"].isna().to_numpy()[ok]
        M, G = len(members), len(self.genres_)
        self.counts_all_ = np.zeros((M, G))
        self.counts_organic_ = np.zeros((M, G))
        np.add.at(self.counts_all_, m, g)
        np.add.at(self.counts_organic_, m[organic], g[organic])
        self.n_all_ = self.counts_all_.sum(axis=1)
        self.n_organic_ = self.counts_organic_.sum(axis=1)
        self.member_index_ = pd.Index(members)
        self.mix_all_ = self.counts_all_.sum(axis=0) / max(self.n_all_.sum(), 1.0)
        self.mix_organic_ = self.counts_organic_.sum(axis=0) / max(self.n_organic_.sum(), 1.0)

    def _shares(self, member_ids: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(C_all, N_all, C_org, N_org)`` per row (zeros for unknown members)."""
        r = self.member_index_.get_indexer(np.asarray(member_ids).astype(str))
        ok = (r >= 0)[:, None]
        rr = np.maximum(r, 0)
        return (np.where(ok, self.counts_all_[rr], 0.0), np.where(ok[:, 0], self.n_all_[rr], 0.0),
                np.where(ok, self.counts_organic_[rr], 0.0),
                np.where(ok[:, 0], self.n_organic_[rr], 0.0))

    def _cross(self, c: np.ndarray, n: np.ndarray, mix: np.ndarray, t: np.ndarray
               ) -> list[np.ndarray]:
        """Member x title features for rows with counts ``c (r, G)``, ``n (r,)``, titles ``t``."""
        a = self.config.prior_plays
        s = (c + a * mix[None, :]) / (n + a)[:, None]
        gbar = self.title_genre_[t]
        logs = np.log(np.maximum(s, 1e-9))
        smax = np.where(self._title_onehot[t], s, 0.0).max(axis=1)
        return [(s * gbar).sum(axis=1), (logs * gbar).sum(axis=1), smax]

    def _features(self, ctx: pd.DataFrame, t: np.ndarray,
                  drop: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
        """Feature rows for context rows ``ctx`` (columns :data:`CONTEXT_COLUMNS`) and title
        indices ``t``; ``drop = (C_all, N_all, C_org, N_org)`` per row are removed from the
        member's counts (the plays of the row's own visit: leave-one-visit-out)."""
        c_all, n_all, c_org, n_org = self._shares(ctx["member_id"].to_numpy())
        if drop is not None:
            c_all, n_all, c_org, n_org = (c_all - drop[0], n_all - drop[1], c_org - drop[2],
                                          n_org - drop[3])
        ts = ctx["timestamp"].to_numpy(float)
        age = np.clip((ts - self._release[t]) / DAY, -1.0, 3650.0)
        dev = pd.Index(DEVICES).get_indexer(ctx["device"].astype(str))
        cols = [*self._title_static[t].T, age, dev.astype(float),
                ctx["hour"].to_numpy(float), ctx["day_of_week"].to_numpy(float),
                *self._cross(np.maximum(c_all, 0), np.maximum(n_all, 0), self.mix_all_, t),
                *self._cross(np.maximum(c_org, 0), np.maximum(n_org, 0), self.mix_organic_, t)]
        return np.column_stack(cols).astype(np.float32)

    _NAMES = ("title", "series", "log_duration", "popularity", "age_days", "device", "hour",
              "day_of_week", "aff_all", "logaff_all", "max_all", "aff_org", "logaff_org",
              "max_org")

    def _booster(self, X: np.ndarray, y: np.ndarray, w: np.ndarray | None, names: list[str]):
        import lightgbm as lgb

        cfg = self.config
        params = {"objective": "binary", "learning_rate": cfg.learning_rate,
                  "num_leaves": cfg.num_leaves, "min_child_samples": cfg.min_child_samples,
                  "num_threads": cfg.num_threads, "seed": cfg.random_state,
                  "deterministic": True, "force_row_wise": True, "verbose": -1,
                  "cat_smooth": 10.0}
        data = lgb.Dataset(X, y, weight=w, feature_name=names,
                           categorical_feature=["title", "device"], free_raw_data=True)
        return lgb.train(params, data, num_boost_round=cfg.n_estimators)

    def _visit_plays(self, imp: pd.DataFrame, org: pd.DataFrame, pidx: pd.Index
                     ) -> tuple[np.ndarray, ...]:
        """Per page of ``pidx``: ``(C_all, N_all, C_org, N_org)`` of the plays in that visit."""
        tcol = pd.Index(self.titles_)
        P, G = len(pidx), len(self.genres_)
        out = [np.zeros((P, G)), np.zeros(P), np.zeros((P, G)), np.zeros(P)]
        pp = imp[imp["play"].to_numpy() > 0]
        for frame, organic in ((pp, False), (org, True)):
            p = pidx.get_indexer(frame["page_id"])
            t = tcol.get_indexer(frame["title_id"].astype(str))
            ok = (p >= 0) & (t >= 0)
            g = self.title_genre_[t[ok]]
            np.add.at(out[0], p[ok], g)
            np.add.at(out[1], p[ok], g.sum(axis=1))
            if organic:
                np.add.at(out[2], p[ok], g)
                np.add.at(out[3], p[ok], g.sum(axis=1))
        return tuple(out)

    # ------------------------------------------------------------------ fit
    def fit(self, logs: Logs) -> TLearnerUplift:
        """Fit both arms on the randomised pages of ``logs`` (returns ``self``)."""
        cfg = self.config
        exp = exploration_impressions(logs)
        if exp.empty:
            raise ValueError("impressions: no randomised slots (propensity < 1); uplift needs "
                             "exploration logs")
        missing = [c for c in CONTEXT_COLUMNS if c not in exp.columns]
        if missing:
            raise ValueError(f"impressions: missing context column(s) {missing}")
        imp = logs.impressions
        self.titles_ = np.sort(imp["title_id"].unique().astype(str))
        tcol = pd.Index(self.titles_)
        self._title_table(logs, self.titles_)
        self._member_counts(logs)
        rng = np.random.default_rng(cfg.random_state)
        pages = exp.groupby("page_id", sort=True).first()
        pidx = pd.Index(pages.index)
        org = organic_plays(logs, window=cfg.window)
        visit_plays = self._visit_plays(imp, org, pidx)
        # treated arm: randomised impressions, member features without the visit's own plays
        t1 = tcol.get_indexer(exp["title_id"].astype(str))
        y1 = (exp["play"].to_numpy() > 0).astype(float)
        e_p = pidx.get_indexer(exp["page_id"])
        X1 = np.column_stack([self._features(exp, t1, tuple(v[e_p] for v in visit_plays)),
                              exp["row_index"].to_numpy(float),
                              exp["position"].to_numpy(float)])
        self.mu1_ = self._booster(X1, y1, None, [*self._NAMES, "row", "position"])
        self.n_treated_ = len(y1)
        # control arm: organic plays of available, not-shown titles + sampled negatives
        cd_codes, _ = pd.factorize(pages["country"].astype(str) + "@"
                                   + (pages["timestamp"] // DAY).astype(str))
        sub = imp[imp["page_id"].isin(pidx)]
        sp, st = pidx.get_indexer(sub["page_id"]), tcol.get_indexer(sub["title_id"].astype(str))
        avail = np.zeros((cd_codes.max() + 1, len(tcol)), dtype=bool)
        avail[cd_codes[sp], st] = True
        shown = np.zeros((len(pidx), len(tcol)), dtype=bool)
        shown[sp, st] = True
        cand = avail[cd_codes] & ~shown
        op, ot = pidx.get_indexer(org["page_id"]), tcol.get_indexer(org["title_id"].astype(str))
        keep = (op >= 0) & (ot >= 0)
        op, ot = op[keep], ot[keep]
        pos = np.zeros_like(cand)
        pos[op, ot] = cand[op, ot]
        op, ot = np.nonzero(pos)
        neg = cand & ~pos
        n_neg = neg.sum(axis=1)
        # K negatives per page, uniformly without replacement (random keys, top K)
        K = cfg.negatives
        key = np.where(neg, rng.random(neg.shape), -1.0)
        kk = min(K, neg.shape[1])
        pick = np.argpartition(-key, kk - 1, axis=1)[:, :kk]
        ok = np.take_along_axis(key, pick, axis=1) >= 0
        npg = np.repeat(np.arange(len(pidx)), kk).reshape(-1, kk)[ok]
        nt = pick[ok]
        k_used = ok.sum(axis=1)
        w_neg = (n_neg / np.maximum(k_used, 1))[npg]
        rows_p = np.concatenate([op, npg])
        rows_t = np.concatenate([ot, nt])
        y0 = np.concatenate([np.ones(op.size), np.zeros(npg.size)])
        w0 = np.concatenate([np.ones(op.size), w_neg])
        ctx0 = pages.iloc[rows_p]
        X0 = self._features(ctx0, rows_t, tuple(v[rows_p] for v in visit_plays))
        self.mu0_ = self._booster(X0, y0, w0, list(self._NAMES))
        self.n_control_ = int(cand.sum())
        rate = exp.groupby(["row_index", "position"])["play"].mean().sort_values(
            ascending=False, kind="stable")
        self.slot_order_ = [tuple(int(v) for v in ix) for ix in rate.index]
        return self

    # ------------------------------------------------------------------ predict
    def _check(self) -> None:
        check_fitted(self, "mu0_")

    def context_scores(self, ctx: pd.DataFrame, *, score: str = "uplift") -> np.ndarray:
        """``(n, n_titles)`` scores (columns ``titles_``) for context rows ``ctx`` (columns
        :data:`CONTEXT_COLUMNS`): ``"uplift"`` (tau), ``"play"`` (mu_1 in the top slot) or
        ``"organic"`` (mu_0)."""
        self._check()
        if score not in _SCORES:
            raise ValueError(f"score: use one of {sorted(_SCORES)}, got {score!r}")
        missing = [c for c in CONTEXT_COLUMNS if c not in ctx.columns]
        if missing:
            raise ValueError(f"ctx: missing context column(s) {missing}")
        n, T = len(ctx), len(self.titles_)
        if n == 0:
            return np.zeros((0, T))
        rep = ctx.iloc[np.repeat(np.arange(n), T)]
        t = np.tile(np.arange(T), n)
        X = self._features(rep, t)
        out = np.zeros(n * T)
        if score in ("play", "uplift"):
            top = self.slot_order_[0] if self.slot_order_ else (0, 0)
            slot = np.tile(np.asarray(top, dtype=np.float32), (n * T, 1))
            out += self.mu1_.predict(np.column_stack([X, slot]))
        if score in ("organic", "uplift"):
            p0 = self.mu0_.predict(X)
            out = out - p0 if score == "uplift" else p0
        return out.reshape(n, T)
