"""Training the candidate policies of a release from the logs so far (time-respecting).

Names (:data:`reelpick.loop.config.CANDIDATES`):

* ``popular`` — greedy by the catalogue's observable popularity (no learning);
* ``by-play`` / ``uplift`` — :class:`reelpick.causal.UpliftPolicy` on a
  :class:`~reelpick.causal.SegmentUpliftModel` fitted on the uniform-exploration share, ranking
  by p(play | shown) (correlational) or by uplift (causal);
* ``ranker`` / ``ranker-no-context`` / ``ranker+seq`` — :class:`reelpick.ranking.RankerPagePolicy`:
  candidate sources and a LightGBM ranker, with context features, without them (and with
  country-level trending), or with the sequence model as an extra source.

Rankers follow the benchmark's protocol: sources and features come from a history snapshot at
``c1``, the ranker trains on impressions in ``[c1, c2)``, and serving uses sources refitted on
the snapshot at ``c2`` (the end of the training data).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reelpick.causal import SegmentUpliftModel, UpliftPolicy
from reelpick.causal.instruments import Logs
from reelpick.data.schema import join_outcomes
from reelpick.decision import Policy
from reelpick.models import available_models
from reelpick.policies import GreedyPolicy, PopularityScorer
from reelpick.ranking import (
    DAILY_SEQ_PARAMS,
    BecauseYouWatchedSource,
    Catalogue,
    ContinueWatchingSource,
    FeatureBuilder,
    History,
    ModelSource,
    PageComposer,
    PageConfig,
    Ranker,
    RankerPagePolicy,
    TrendingSource,
    training_set,
)
from reelpick.world import SimulationLog, World

DAY = 86_400


@dataclass
class Candidate:
    """A trained candidate: its ``policy`` (deterministic pages), training seconds, and for
    rankers the composer (``None`` otherwise)."""

    name: str
    policy: Policy
    seconds: float
    composer: PageComposer | None = None
    info: dict = field(default_factory=dict)


def explore_logs(log: SimulationLog, explored: np.ndarray, titles: pd.DataFrame) -> Logs:
    """The uniform-exploration share of ``log`` as :class:`reelpick.causal.Logs` (impressions of
    explored visits; all interactions)."""
    imp = join_outcomes(log.impressions(), log.outcomes())
    pages = {f"p{v}" for v in np.flatnonzero(explored)}
    imp = imp[imp["page_id"].isin(pages)].reset_index(drop=True)
    return Logs(imp, log.interactions(), titles)


def seq_available() -> bool:
    return "seq" in available_models()


class RankerFactory:
    """Fits shared sources once per snapshot and builds the ranker candidates."""

    def __init__(self, world: World, log: SimulationLog, *, c1: int, c2: int, trees: int,
                 train_rows: int, seed: int, use_seq: bool) -> None:
        self.world, self.log, self.c1, self.c2 = world, log, c1, c2
        self.trees, self.train_rows, self.seed = trees, train_rows, seed
        self.use_seq = use_seq and seq_available()
        cfg = world.config
        titles = world.titles()
        self.catalogue = Catalogue.from_frame(titles, countries=cfg.countries)
        self.members = world.members()["member_id"].tolist()
        self.names = titles["name"].tolist()
        self.inter = log.interactions()
        self._snap: dict[int, dict[str, Any]] = {}

    def _sources(self, as_of: int) -> dict[str, Any]:
        if as_of not in self._snap:
            h = History.build(self.inter, self.catalogue, members=self.members, as_of=as_of)
            srcs: dict[str, Any] = {"history": h}
            makers: list[Callable[[], Any]] = [
                lambda: ModelSource("als", factors=32, iterations=10, num_threads=1),
                lambda: ModelSource("itemknn", neighbors=100), TrendingSource,
                lambda: TrendingSource(by_context=False), ContinueWatchingSource,
                BecauseYouWatchedSource]
            if self.use_seq:
                makers.append(lambda: ModelSource("seq", **DAILY_SEQ_PARAMS, max_epochs=2))
            for make in makers:
                s = make()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        srcs[s.name] = s.fit(h)
                    except (ValueError, RuntimeError):
                        continue  # e.g. an empty history: the source has no opinion yet
            self._snap[as_of] = srcs
        return self._snap[as_of]

    def _variant(self, snap: dict[str, Any], context: bool, seq: bool) -> list:
        names = ["als", "itemknn", "trending" if context else "trending-country", "continue",
                 "because"] + (["seq"] if seq else [])
        out = []
        for n in names:
            s = snap.get(n)
            if s is None or not hasattr(s, "history_"):
                continue
            out.append(s)
        return out

    def build(self, name: str) -> Candidate:
        t0 = time.perf_counter()
        context = name != "ranker-no-context"
        seq = name == "ranker+seq"
        s1, s2 = self._sources(self.c1), self._sources(self.c2)
        src1 = self._variant(s1, context, seq)
        names = [("trending" if s.name == "trending-country" else s.name) for s in src1]
        fb1 = FeatureBuilder(s1["history"], source_names=names, use_context=context)
        renamed = _Renamed(src1)
        rng = np.random.default_rng([self.seed, 7])
        X, y, _ = training_set(self.log, fb1, renamed, start=self.c1, end=self.c2,
                               max_rows=self.train_rows, rng=rng)
        if y.size == 0 or y.min() == y.max():
            raise ValueError(f"{name}: no plays to train on between the snapshots")
        rk = Ranker(n_estimators=self.trees, learning_rate=0.1, num_leaves=31,
                    min_child_samples=100, random_state=self.seed).fit(
            X, y, feature_names=fb1.names, categorical=fb1.categorical)
        src2 = _Renamed(self._variant(s2, context, seq))
        fb2 = FeatureBuilder(s2["history"], source_names=names, use_context=context)
        cfg = self.world.config
        comp = PageComposer(s2["history"], src2, fb2, rk,
                            PageConfig(n_rows=cfg.page_rows, n_positions=cfg.page_positions),
                            title_names=self.names)
        imp = rk.feature_importance().head(10)
        return Candidate(name, RankerPagePolicy(comp, name=name), time.perf_counter() - t0,
                         comp, {"train_rows": int(y.size), "train_plays": int(y.sum()),
                                "importance": {k: float(v) for k, v in imp.items()}})


class _Renamed(list):
    """Sources whose country-level trending answers to the name ``trending`` (so one feature
    name serves both variants), as in ``benchmarks/bench_ranker.py``."""

    def __init__(self, sources: list) -> None:
        super().__init__(_Alias(s) if s.name == "trending-country" else s for s in sources)


class _Alias:
    def __init__(self, source: object) -> None:
        self._s, self.name = source, "trending"
        self.history_ = source.history_  # type: ignore[attr-defined]

    def fit(self, history: History) -> _Alias:
        self._s.fit(history)  # type: ignore[attr-defined]
        return self

    def score(self, requests: object) -> np.ndarray:
        return self._s.score(requests)  # type: ignore[attr-defined]


def train_candidates(world: World, log: SimulationLog, explored: np.ndarray, names: list[str], *,
                     c1: int, c2: int, trees: int, train_rows: int, seed: int,
                     on_done=None) -> list[Candidate]:
    """Train every candidate in ``names`` on ``log`` (all before ``c2``); ``explored (n_visits,)``
    marks the uniform-exploration visits. ``on_done(name)`` after each."""
    out: list[Candidate] = []
    titles = world.titles()
    factory = RankerFactory(world, log, c1=c1, c2=c2, trees=trees, train_rows=train_rows,
                            seed=seed, use_seq="ranker+seq" in names)
    uplift_model: SegmentUpliftModel | None = None
    for name in names:
        t0 = time.perf_counter()
        if name == "popular":
            out.append(Candidate(name, GreedyPolicy(PopularityScorer(), name="popular"), 0.0))
        elif name in ("by-play", "uplift"):
            if uplift_model is None:
                uplift_model = SegmentUpliftModel(by_device=True).fit(
                    explore_logs(log, explored, titles))
            pol = UpliftPolicy.for_world(uplift_model, world,
                                         score="play" if name == "by-play" else "uplift",
                                         name=name)
            out.append(Candidate(name, pol, time.perf_counter() - t0))
        elif name == "ranker+seq" and not seq_available():
            pass
        else:
            out.append(factory.build(name))
        if on_done is not None:
            on_done(name)
    return out
