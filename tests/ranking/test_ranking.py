"""Candidate sources, features, the LightGBM ranker and page composition on a small simulated
world: contracts, invariants, explanations, persistence and invalid inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelpick.errors import NotFittedError
from reelpick.policies import EpsilonGreedyPolicy, UniformPolicy
from reelpick.ranking import (
    BecauseYouWatchedSource,
    CandidateSource,
    Catalogue,
    ContinueWatchingSource,
    FeatureBuilder,
    History,
    ModelSource,
    PageComposer,
    PageConfig,
    Ranker,
    RankerConfig,
    RankerPagePolicy,
    RankerScorer,
    TrendingSource,
    requests_from_pages,
    training_set,
)
from reelpick.world import World, WorldConfig

DAY = 86_400


def _sources():
    return [ModelSource("als", factors=8, iterations=3), ModelSource("itemknn"),
            TrendingSource(), ContinueWatchingSource(), BecauseYouWatchedSource()]


class Setup:
    def __init__(self) -> None:
        self.world = world = World(WorldConfig.preset("small", n_members=300, days=12), seed=4)
        cfg = world.config
        self.log = log = world.simulate(UniformPolicy(), 3000, seed=4)
        self.inter = log.interactions()
        self.cat = Catalogue.from_frame(world.titles(), countries=cfg.countries)
        self.members = world.members()["member_id"].tolist()
        self.c1, self.c2 = cfg.start + 6 * DAY, cfg.start + 9 * DAY
        self.pages = log.logged_pages(n_titles=cfg.n_titles)
        self.req = requests_from_pages(self.pages, self.members)
        h1, s1, fb1 = self.snapshot(self.c1)
        X, y, _ = training_set(self.pages, self.members, fb1, s1, start=self.c1, end=self.c2)
        self.ranker = Ranker(n_estimators=60, min_child_samples=50).fit(
            X, y, feature_names=fb1.names, categorical=fb1.categorical)
        self.h2, self.s2, self.fb2 = self.snapshot(self.c2)
        self.composer = PageComposer(self.h2, self.s2, self.fb2, self.ranker,
                                     PageConfig(n_rows=cfg.page_rows,
                                                n_positions=cfg.page_positions),
                                     title_names=world.titles()["name"])
        self.test_visits = np.flatnonzero(self.req.timestamp >= self.c2)

    def snapshot(self, as_of: int, use_context: bool = True):
        h = History.build(self.inter, self.cat, members=self.members, as_of=as_of)
        srcs = [s.fit(h) for s in _sources()]
        return h, srcs, FeatureBuilder(h, source_names=[s.name for s in srcs],
                                       use_context=use_context)


@pytest.fixture(scope="module")
def setup() -> Setup:
    return Setup()


# ---------------------------------------------------------------------- history, sources
def test_history_is_a_time_respecting_snapshot(setup) -> None:
    h = setup.h2
    assert (h.ts < setup.c2).all() and h.ts.size == (setup.inter["timestamp"] < setup.c2).sum()
    assert h.n_members == len(setup.members)
    aff = h.affinity()
    assert (aff >= 0).all() and (aff.sum(axis=1) < 1).all()
    some = np.array([3, 0, 3, len(setup.members) - 1])  # rows of requested members only
    for decayed in (True, False):
        np.testing.assert_array_equal(h.affinity(decayed=decayed, members=some),
                                      h.affinity(decayed=decayed)[some])


@pytest.mark.parametrize("i", range(5), ids=["als", "itemknn", "trending", "continue",
                                             "because"])
def test_source_contract(setup, i) -> None:
    src = setup.s2[i]
    assert isinstance(src, CandidateSource)
    req = setup.req.subset(setup.test_visits[:7])
    s = src.score(req)
    assert s.shape == (7, setup.cat.n_titles) and s.dtype == np.float32
    assert not np.isinf(s).any()
    with pytest.raises(NotFittedError, match="not fitted"):
        type(src)().score(req) if i >= 2 else ModelSource("popular").score(req)


def test_continue_watching_only_recent_unfinished_or_series(setup) -> None:
    req = setup.req.subset(setup.test_visits[:30])
    s = setup.s2[3].score(req)
    h = setup.h2
    for i, m in enumerate(req.member):
        t, ts, frac = h.member_plays(int(m))
        allowed = set(t[(req.timestamp[i] - ts <= 21 * DAY)
                        & ((frac < 0.9) | setup.cat.is_series[t])])
        assert set(np.flatnonzero(np.isfinite(s[i]))) == allowed


# ---------------------------------------------------------------------- ranker
def test_ranker_beats_trivial_baselines_on_later_window(setup) -> None:
    """Held-out impressions (after the training window): the ranker's log loss beats a
    constant rate and ranking by observable popularity (AUC)."""
    from scipy.stats import mannwhitneyu

    X, y, _ = training_set(setup.pages, setup.members, setup.fb2, setup.s2, start=setup.c2)
    p = np.clip(setup.ranker.predict(X), 1e-6, 1 - 1e-6)
    base = np.clip(y.mean(), 1e-6, 1 - 1e-6)
    ll = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    ll0 = -np.mean(y * np.log(base) + (1 - y) * np.log(1 - base))
    assert ll < ll0

    def auc(score):
        return mannwhitneyu(score[y == 1], score[y == 0]).statistic / ((y == 1).sum()
                                                                      * (y == 0).sum())
    pop = X[:, setup.fb2.names.index("popularity")]
    assert auc(p) > auc(pop) + 0.02 and auc(p) > 0.65


def test_explanations_add_up_to_the_prediction(setup) -> None:
    X, _, _ = training_set(setup.pages, setup.members, setup.fb2, setup.s2, start=setup.c2,
                           max_rows=50)
    phi = setup.ranker.contributions(X)
    p = setup.ranker.predict(X)
    np.testing.assert_allclose(phi.sum(axis=1), np.log(p / (1 - p)), atol=1e-6)
    why = setup.ranker.why(X[0], top=3)
    assert list(why.columns) == ["feature", "value", "contribution"] and len(why) == 3
    assert why["contribution"].is_monotonic_decreasing
    imp = setup.ranker.feature_importance()
    assert set(imp.index) == set(setup.fb2.names) and imp.iloc[0] > 0


def test_ranker_save_load_round_trip(setup, tmp_path) -> None:
    X, _, _ = training_set(setup.pages, setup.members, setup.fb2, setup.s2, start=setup.c2,
                           max_rows=100)
    setup.ranker.save(tmp_path / "rk")
    assert not list((tmp_path / "rk").glob("*.pkl"))
    r2 = Ranker.load(tmp_path / "rk")
    np.testing.assert_allclose(r2.predict(X), setup.ranker.predict(X))
    assert r2.config == setup.ranker.config


# ---------------------------------------------------------------------- pages
def test_page_composition_invariants(setup) -> None:
    req = setup.req.subset(setup.test_visits[:40])
    pages = setup.composer.compose(req)
    cfg = setup.composer.config
    n, S = pages.titles.shape
    assert S == cfg.n_slots
    avail = setup.composer.default_available(req)
    for i in range(n):
        t = pages.titles[i]
        shown = t[t >= 0]
        assert shown.size == np.unique(shown).size, "a title twice on one page"
        assert avail[i, shown].all()
        for s in np.flatnonzero(t >= 0):
            r = pages.row_index[i, s]
            assert pages.slot_label[i, s] == pages.row_label[i, r] != ""
            assert pages.position[i, s] == s % cfg.n_positions
        filled = [r for r in range(cfg.n_rows) if pages.row_label[i, r]]
        assert filled == list(range(len(filled))), "rows filled in order"
    assert (pages.row_label == "Top picks").any()
    assert np.char.startswith(pages.row_label.astype(str), "Because you watched").any()


def test_pages_for_a_request_years_before_the_history_warn_nothing(setup) -> None:
    """A request timestamped years before the members' plays (a clock or a backfill off;
    every title made available) still gets a full page, with finite features and no numpy
    overflow warning."""
    import dataclasses
    import warnings

    req = setup.req.subset(setup.test_visits[:8])
    early = dataclasses.replace(req, timestamp=req.timestamp - 20 * 365 * DAY)
    avail = np.ones((len(early), setup.cat.n_titles), bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        pages = setup.composer.compose(early, avail)
        r, t = np.nonzero(avail)
        x = setup.fb2.build(early, r, t, setup.composer.source_scores(early))
    assert (pages.titles >= 0).any(axis=1).all()
    assert not np.isinf(x).any()


def test_rows_follow_member_and_context(setup) -> None:
    """Same members, phone at 8am on a weekday vs TV at 9pm on Saturday: different pages."""
    req = setup.req.subset(setup.test_visits[:40])
    a = type(req)(req.member, req.timestamp, np.full(40, 1), req.country, np.full(40, 8),
                  np.zeros(40, int))
    b = type(req)(req.member, req.timestamp, np.zeros(40, int), req.country, np.full(40, 21),
                  np.full(40, 5))
    pa, pb = setup.composer.compose(a), setup.composer.compose(b)
    assert (pa.titles != pb.titles).any(axis=1).mean() > 0.5


def test_ranker_page_policy_runs_in_the_world(setup) -> None:
    world = setup.world
    vb = world.make_visits(np.arange(20), setup.c2 + 3600)
    pol = RankerPagePolicy(setup.composer)
    page = pol.choose(vb, np.random.default_rng(0))
    page.check(vb)
    assert (page.propensity == 1).all() and page.slot_label is not None
    m = pol.marginals(vb).title_slot
    i, s = np.nonzero(page.titles >= 0)
    assert (m[i, page.titles[i, s], s] == 1).all()
    eps = EpsilonGreedyPolicy(RankerScorer(setup.composer), epsilon=0.1)
    eps.choose(vb, np.random.default_rng(0)).check(vb)


# ---------------------------------------------------------------------- invalid inputs
INVALID = [
    (lambda s: RankerConfig(n_estimators=0), ValueError, "n_estimators"),
    (lambda s: RankerConfig(learning_rate=0), ValueError, "learning_rate"),
    (lambda s: RankerConfig(num_threads=0), ValueError, "num_threads"),
    (lambda s: Ranker(RankerConfig(), n_estimators=3), TypeError, "either"),
    (lambda s: Ranker().fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]), feature_names=["a"]),
     ValueError, "X"),
    (lambda s: Ranker().fit(np.zeros((4, 1)), np.zeros(4), feature_names=["a"]), ValueError,
     "both classes"),
    (lambda s: Ranker().fit(np.zeros((4, 1)), np.array([0, 1, 0, 1]), feature_names=["a"],
                            categorical=["b"]), ValueError, "categorical"),
    (lambda s: Ranker().predict(np.zeros((1, 1))), NotFittedError, "not fitted"),
    (lambda s: Ranker.load("/nonexistent/ranker"), ValueError, "not a saved ranker"),
    (lambda s: s.ranker.feature_importance("cover"), ValueError, "kind"),
    (lambda s: PageConfig(n_rows=0), ValueError, "n_rows"),
    (lambda s: PageConfig(rows=("top", "upsell")), ValueError, "rows"),
    (lambda s: PageConfig(order_rows="random"), ValueError, "order_rows"),
    (lambda s: PageConfig(position_decay=0), ValueError, "position_decay"),
    (lambda s: ContinueWatchingSource(window_days=0), ValueError, "window_days"),
    (lambda s: BecauseYouWatchedSource(n_anchors=0), ValueError, "n_anchors"),
    (lambda s: training_set(s.pages, s.members, s.fb2, s.s2, start=s.c1), ValueError, "future"),
    (lambda s: PageComposer(s.h2, s.s2, FeatureBuilder(s.h2, source_names=()), s.ranker),
     ValueError, "other features"),
    (lambda s: History.build(pd.DataFrame({"member_id": ["m0"]}), s.cat), ValueError,
     "title_id"),
]


@pytest.mark.parametrize("make,err,match", INVALID)
def test_invalid_inputs(setup, make, err, match) -> None:
    with pytest.raises(err, match=match):
        make(setup)
