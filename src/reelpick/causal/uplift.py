r"""Uplift: the causal effect of showing a title, learned from exploration logs, and a policy
that ranks by it.

For a member segment :math:`s` (the member's most-played genre, optionally crossed with the
device) and a title :math:`t`, a T-learner (Künzel et al. 2019, PNAS 116(10)) estimates

.. math::

    \mu_1(s, t) &= P(\text{play } t \mid s, do(\text{show } t))
        = \text{mean play of randomised impressions of } t \text{ in } s, \\
    \mu_0(s, t) &= P(\text{play } t \mid s, do(\text{not show } t))
        = \frac{\#\text{organic plays of } t \text{ in visits of } s \text{ without } t}
               {\#\text{visits of } s \text{ where } t \text{ was available and not shown}}, \\
    \tau(s, t) &= \mu_1(s, t) - \mu_0(s, t).

Randomised slots (``propensity < 1``, e.g. a uniform exploration policy) make shown and not-shown
titles comparable within a segment. :math:`\mu_1` averages over the slots the logging policy
used. Cells are shrunk toward the title's pooled rate with ``prior_strength`` pseudo-rows
(empirical Bayes). "Available" = shown to some visit of the same country on the same day.

:class:`UpliftPolicy` fills a page with the top titles by :math:`\tau` (``score="uplift"``) or by
:math:`\mu_1` (``score="play"``, the correlational recommender that credits organic plays to the
page), best title in the slot with the highest logged play rate; it is deterministic
(propensity 1) and implements the world's ``ExactPolicy`` protocol.

Example
-------
>>> from reelpick.policies import UniformPolicy
>>> from reelpick.world import World, WorldConfig
>>> world = World(WorldConfig.preset("small"), seed=2)
>>> from reelpick.causal.instruments import Logs
>>> logs = Logs.from_simulation(world.simulate(UniformPolicy(), 3_000), world.titles())
>>> model = SegmentUpliftModel().fit(logs)
>>> policy = UpliftPolicy.for_world(model, world)
>>> v = world.policy_value(policy, n_visits=200)
>>> v.method, v.incremental_plays > 0
('exact', True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

import numpy as np
import pandas as pd

from reelpick.causal.instruments import Logs, exploration_impressions, organic_plays
from reelpick.data.schema import DEVICES
from reelpick.decision import Marginals, PageBatch, VisitBatch
from reelpick.errors import check_fitted

#: World overrides (``WorldConfig.preset("small", **MISMATCH_WORLD)``) under which ranking by
#: uplift wins online while ranking by p(play | shown) wins on naive offline metrics: organic
#: search concentrates on popular titles (``organic_popularity_weight``), the page persuades
#: least for them (``saturation``), members search more (``search_rate``), and member state is
#: stationary (no drift, short-term interest or seen penalty) so that a policy learned from the
#: logs meets the same members online. See ``docs/causal.md``.
MISMATCH_WORLD: dict[str, float] = dict(
    organic_popularity_weight=2.0, saturation=1.0, search_rate=0.5, uplift_bias=-4.0,
    recent_weight=0.0, seen_penalty=0.0, drift=0.0)


@dataclass(frozen=True)
class UpliftConfig:
    """``by_device``: cross segments with the device; ``prior_strength``: pseudo-rows of the
    title's pooled rate added to every cell; ``window``: seconds for attributing organic plays
    to a page."""

    by_device: bool = False
    prior_strength: float = 30.0
    window: int = 3600

    def __post_init__(self) -> None:
        if not np.isfinite(self.prior_strength) or self.prior_strength < 0:
            raise ValueError(f"UpliftConfig.prior_strength: must be >= 0, got "
                             f"{self.prior_strength!r}")
        if self.window <= 0:
            raise ValueError(f"UpliftConfig.window: must be > 0, got {self.window!r}")


def _shrink(num: np.ndarray, den: np.ndarray, k: float) -> np.ndarray:
    pooled = num.sum(axis=0) / np.maximum(den.sum(axis=0), 1)
    return (num + k * pooled[None, :]) / (den + k)


class SegmentUpliftModel:
    """T-learner uplift per (segment, title) from exploration logs (see the module docstring).

    Learned state: ``titles_`` (title ids, columns), ``segments_`` (labels, rows),
    ``member_segment_`` (member id -> segment label), ``treated_``, ``control_``, ``uplift_``
    ``(n_segments, n_titles)``, ``slot_order_`` (``(row_index, position)`` best first).
    """

    def __init__(self, *, by_device: bool = False, prior_strength: float = 30.0,
                 window: int = 3600) -> None:
        self.config = UpliftConfig(by_device=by_device, prior_strength=prior_strength,
                                   window=window)

    def _member_segments(self, logs: Logs) -> pd.Series:
        t = logs.titles
        if t is None or "genres" not in t.columns:
            return pd.Series(dtype=object)
        first_genre = t.set_index("title_id")["genres"].fillna("").str.split("|").str[0]
        g = logs.interactions["title_id"].map(first_genre)
        top = (pd.DataFrame({"m": logs.interactions["member_id"], "g": g}).dropna()
               .groupby(["m", "g"]).size().rename("n").reset_index()
               .sort_values(["m", "n", "g"], ascending=[True, False, True])
               .drop_duplicates("m"))
        return pd.Series(top["g"].to_numpy(), index=top["m"].to_numpy())

    def _segment(self, member_ids: np.ndarray, device: np.ndarray) -> np.ndarray:
        seg = pd.Series(member_ids).map(self.member_segment_).fillna("?").astype(str)
        if self.config.by_device:
            seg = seg + "/" + pd.Series(device).astype(str)
        return seg.to_numpy()

    def fit(self, logs: Logs) -> SegmentUpliftModel:
        cfg = self.config
        exp = exploration_impressions(logs)
        if exp.empty:
            raise ValueError("impressions: no randomised slots (propensity < 1); uplift needs "
                             "exploration logs")
        self.member_segment_ = self._member_segments(logs)
        imp = logs.impressions
        exp_pages = exp["page_id"].unique()
        pages = imp[imp["page_id"].isin(exp_pages)].groupby("page_id").first()
        device = pages["device"].to_numpy() if "device" in pages.columns else np.full(
            len(pages), "?")
        pseg = self._segment(pages["member_id"].to_numpy(), device)
        titles = np.sort(imp["title_id"].unique())
        segs = np.unique(pseg)
        self.titles_, self.segments_ = titles, segs
        tcol = pd.Index(titles)
        srow = pd.Index(segs)
        page_seg = pd.Series(srow.get_indexer(pseg), index=pages.index)
        S, T = len(segs), len(titles)
        # treated arm: randomised impressions
        si = page_seg.reindex(exp["page_id"]).to_numpy()
        ti = tcol.get_indexer(exp["title_id"])
        n1 = np.zeros((S, T))
        y1 = np.zeros((S, T))
        np.add.at(n1, (si, ti), 1.0)
        np.add.at(y1, (si, ti), exp["play"].to_numpy(float))
        # control arm: visits where the title was available (shown in the same country-day)
        # but not shown, and organic plays of it
        ts = pages["timestamp"].to_numpy()
        cd = pd.Series(pages["country"].astype(str).to_numpy() if "country" in pages.columns
                       else np.full(len(pages), "?")) + "@" + pd.Series(ts // 86_400).astype(
            str)
        cd_codes, cd_levels = pd.factorize(cd)
        sub = imp[imp["page_id"].isin(exp_pages)]
        sub_cd = pd.Series(cd_codes, index=pages.index).reindex(sub["page_id"]).to_numpy()
        avail = np.zeros((len(cd_levels), T), dtype=bool)
        avail[sub_cd, tcol.get_indexer(sub["title_id"])] = True
        visits = np.zeros((S, len(cd_levels)))
        np.add.at(visits, (page_seg.to_numpy(), cd_codes), 1.0)
        shown = np.zeros((S, T))
        np.add.at(shown, (page_seg.reindex(sub["page_id"]).to_numpy(),
                          tcol.get_indexer(sub["title_id"])), 1.0)
        n0 = np.maximum(visits @ avail - shown, 0.0)
        org = organic_plays(logs, window=cfg.window)
        org = org[org["page_id"].isin(exp_pages)]
        oi = tcol.get_indexer(org["title_id"])
        ok = oi >= 0
        y0 = np.zeros((S, T))
        np.add.at(y0, (page_seg.reindex(org["page_id"]).to_numpy()[ok], oi[ok]), 1.0)
        k = cfg.prior_strength
        self.treated_ = _shrink(y1, n1, k)
        self.control_ = _shrink(y0, n0, k)
        self.uplift_ = self.treated_ - self.control_
        self.n_treated_, self.n_control_ = n1, n0
        rate = exp.groupby(["row_index", "position"])["play"].mean().sort_values(
            ascending=False, kind="stable")
        self.slot_order_ = cast(list[tuple[int, int]],  # (row_index, position) pairs
                                [tuple(int(v) for v in ix) for ix in rate.index])
        return self

    def _check(self) -> None:
        check_fitted(self, "uplift_")

    def scores(self, member_ids: np.ndarray, device: np.ndarray, *,
               score: str = "uplift") -> np.ndarray:
        """``(n, n_titles)`` scores (columns ``titles_``) for visits of ``member_ids`` on
        ``device`` (names as in the logs): ``"uplift"`` (tau), ``"play"`` (mu_1) or
        ``"organic"`` (mu_0)."""
        self._check()
        table = {"uplift": self.uplift_, "play": self.treated_, "organic": self.control_}
        if score not in table:
            raise ValueError(f"score: use one of {sorted(table)}, got {score!r}")
        rows = pd.Index(self.segments_).get_indexer(self._segment(np.asarray(member_ids),
                                                                  np.asarray(device)))
        pooled = table[score].mean(axis=0)
        out = table[score][np.maximum(rows, 0)]
        out[rows < 0] = pooled
        return out

    def context_scores(self, ctx: pd.DataFrame, *, score: str = "uplift") -> np.ndarray:
        """:meth:`scores` for context rows with ``member_id`` and ``device`` columns (the
        interface :class:`UpliftPolicy` and :func:`offline_hit_rate` use)."""
        return self.scores(ctx["member_id"].to_numpy(), ctx["device"].to_numpy(), score=score)


@runtime_checkable
class UpliftScorer(Protocol):
    """What :class:`UpliftPolicy` needs from a fitted uplift model: score columns ``titles_``,
    ``slot_order_`` (``(row_index, position)`` best first) and
    ``context_scores(ctx, score=...) -> (n, n_titles)`` for context rows with columns
    ``member_id, device, hour, day_of_week, timestamp``. Implemented by
    :class:`SegmentUpliftModel` and :class:`reelpick.causal.learners.TLearnerUplift`."""

    titles_: np.ndarray
    slot_order_: list[tuple[int, int]]

    def context_scores(self, ctx: pd.DataFrame, *, score: str = "uplift") -> np.ndarray:
        ...


@dataclass(frozen=True, eq=False)
class UpliftPolicy:
    """A deterministic page policy ranking titles by an uplift model's score (an
    :class:`UpliftScorer`: :class:`SegmentUpliftModel` or
    :class:`~reelpick.causal.learners.TLearnerUplift`).

    ``member_ids[i]``/``title_ids[j]`` map the world's member/title indices to log ids
    (:meth:`for_world` takes them from the world). Titles unknown to the model rank last.
    """

    model: UpliftScorer
    member_ids: np.ndarray
    title_ids: np.ndarray
    score: str = "uplift"
    name: str = "uplift"
    version: str = "v1"

    @classmethod
    def for_world(cls, model: UpliftScorer, world, *, score: str = "uplift",
                  name: str | None = None) -> UpliftPolicy:
        return cls(model, world.members()["member_id"].to_numpy(),
                   world.titles()["title_id"].to_numpy(), score=score,
                   name=name or ("uplift" if score == "uplift" else f"by-{score}"))

    def _pages(self, visits: VisitBatch) -> np.ndarray:
        m = self.model
        check_fitted(m, "slot_order_")
        col = pd.Index(m.titles_).get_indexer(self.title_ids)
        ctx = pd.DataFrame({"member_id": self.member_ids[visits.member],
                            "device": np.asarray(DEVICES)[visits.device],
                            "hour": visits.hour, "day_of_week": visits.day_of_week,
                            "timestamp": visits.timestamp})
        s = m.context_scores(ctx, score=self.score)
        full = np.full((len(visits), len(self.title_ids)), -1e9)
        known = col >= 0
        full[:, known] = s[:, col[known]]
        full = np.where(visits.available[visits.country], full, -np.inf)
        S = visits.n_slots
        top = np.argsort(-full, axis=1, kind="stable")[:, :S]
        ok = np.isfinite(np.take_along_axis(full, top, axis=1))
        ranked = np.where(ok, top, -1)
        # best title into the slot with the highest logged play rate
        order = [r * visits.n_positions + p for r, p in m.slot_order_
                 if r < visits.n_rows and p < visits.n_positions]
        order += [s for s in range(S) if s not in set(order)]
        titles = np.full((len(visits), S), -1, dtype=np.int64)
        titles[:, np.asarray(order[:S])] = ranked
        return titles

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        titles = self._pages(visits)
        return PageBatch.grid(titles, n_rows=visits.n_rows, n_positions=visits.n_positions,
                              propensity=np.ones(titles.shape))

    def marginals(self, visits: VisitBatch) -> Marginals:
        titles = self._pages(visits)
        n, S = titles.shape
        ts = np.zeros((n, visits.catalog.n_titles, S))
        i, s = np.nonzero(titles >= 0)
        ts[i, titles[i, s], s] = 1.0
        cat = visits.catalog
        art = np.zeros((n, int(cat.art_offset[-1])))
        art[:, cat.art_offset[:-1]] = 1.0
        slots = np.arange(S)
        return Marginals(ts, slots // visits.n_positions, slots % visits.n_positions, art)


@dataclass(frozen=True)
class HitRate:
    """A naive offline hit rate: ``rate`` = hits / ``n`` logged plays, ``se`` its binomial
    standard error (plays treated as independent)."""

    rate: float
    se: float
    n: int

    def ci(self, z: float = 1.96) -> tuple[float, float]:
        return self.rate - z * self.se, self.rate + z * self.se


def offline_hit_rate(model: UpliftScorer, logs: Logs, *, score: str, k: int,
                     window: int = 3600) -> float:
    """Naive offline metric: share of logged plays (page or organic, attributed to a page) whose
    title is in the top ``k`` of ``score`` for that page's member and context, among the titles
    shown in the same country-day (a proxy for availability). See :func:`offline_hit_rates`."""
    return offline_hit_rates(model, logs, scores=(score,), k=k, window=window)[score].rate


def offline_hit_rates(model: UpliftScorer, logs: Logs, *, scores: tuple[str, ...] = (
        "uplift", "play"), k: int, window: int = 3600) -> dict[str, HitRate]:
    """:func:`offline_hit_rate` for several scores at once, with standard errors."""
    imp = logs.impressions
    pages = imp.groupby("page_id").first()
    page_plays = imp[imp["play"].to_numpy() > 0][["page_id", "title_id"]]
    window = getattr(getattr(model, "config", None), "window", window)
    plays = pd.concat([page_plays, organic_plays(logs, window=window)])
    if plays.empty:
        return {s: HitRate(float("nan"), float("nan"), 0) for s in scores}
    tcol = pd.Index(model.titles_)
    cd = (pages["country"].astype(str) + "@" + (pages["timestamp"] // 86_400).astype(str))
    cd_codes, cd_levels = pd.factorize(cd)
    avail = np.zeros((len(cd_levels), len(tcol)), dtype=bool)
    ti = tcol.get_indexer(imp["title_id"])
    pc = pd.Series(cd_codes, index=pages.index).reindex(imp["page_id"]).to_numpy()
    avail[pc[ti >= 0], ti[ti >= 0]] = True
    row = pd.Index(pages.index).get_indexer(plays["page_id"])
    col = tcol.get_indexer(plays["title_id"])
    ok = (row >= 0) & (col >= 0)
    kk = min(k, len(tcol))
    out = {}
    for score in scores:
        s = model.context_scores(pages.reset_index(), score=score)
        s = np.where(avail[cd_codes], s, -np.inf)
        kth = -np.partition(-s, kk - 1, axis=1)[:, kk - 1]
        hit = s[row[ok], col[ok]] >= kth[row[ok]]
        p = float(hit.mean())
        out[score] = HitRate(p, float(np.sqrt(p * (1 - p) / max(hit.size, 1))), int(hit.size))
    return out
