"""Effects the config sets must show in the logs, in the configured direction and size.

Every check compares a statistic of the logged plays with the same statistic of the true play
probabilities of the same impressions (``p_play``, known to the world) and with the effect
switched off in the config.
"""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.causal import ols, two_stage_least_squares
from reelpick.policies import UniformPolicy
from reelpick.world import PromotionPolicy, World, WorldConfig

N = 15_000


def _sim(seed: int = 21, **changes):
    world = World(WorldConfig.preset("small", **changes), seed=seed)
    return world, world.simulate(UniformPolicy(), n_visits=N, seed=seed)


def _diff(y: np.ndarray, groups: list[np.ndarray], signs: list[int]) -> tuple[float, float]:
    """sum_k sign_k * mean(y[group_k]) and its standard error (independent groups)."""
    est = sum(s * y[g].mean() for g, s in zip(groups, signs))
    se = np.sqrt(sum(y[g].var() / g.sum() for g in groups))
    return float(est), float(se)


def _check(log, groups, signs, *, expect_positive: bool) -> float:
    s = log.shown
    est, se = _diff(s.play.astype(float), groups, signs)
    truth, _ = _diff(s.p_play, groups, signs)
    assert abs(est - truth) < 4 * se, (est, truth, se)      # logs agree with the truth
    if expect_positive:
        assert truth > 0 and est > 3 * se, (est, truth, se)  # configured direction, visible
    else:
        assert abs(est) < 4 * se and abs(truth) < 2 * se, (est, truth, se)
    return truth


def _device_groups(world, log):
    s, v = log.shown, log.visits
    short = world.entities.shortness[s.title] > 0.5
    long_ = world.entities.shortness[s.title] < -0.5
    mobile, tv = v.device[s.visit] == 1, v.device[s.visit] == 0
    return [mobile & short, mobile & long_, tv & short, tv & long_], [1, -1, -1, 1]


def _family_groups(world, log):
    s, v = log.shown, log.visits
    fam = world.entities.is_family[s.title]
    h = v.hour[s.visit]
    aft = (h >= 12) & (h < 18) & (v.day_of_week[s.visit] < 5)
    night = ((h >= 19) | (h < 6)) & (v.day_of_week[s.visit] < 5)
    return [aft & fam, aft & ~fam, night & fam, night & ~fam], [1, -1, -1, 1]


def _theme_groups(world, log):
    s, v = log.shown, log.visits
    ent = world.entities
    match = ent.theme_taste[v.member[s.visit], ent.art_theme[s.artwork]]
    return [match > 0.5, match < -0.5], [1, -1]


@pytest.mark.parametrize("groups, off", [
    (_device_groups, {"device_short": (0.0, 0.0, 0.0, 0.0)}),
    (_family_groups, {"family_afternoon": 0.0, "family_weekend": 0.0}),
    (_theme_groups, {"theme_weight": 0.0}),
], ids=["short-titles-on-mobile", "family-in-the-afternoon", "artwork-theme-match"])
def test_context_effect(groups, off: dict) -> None:
    world, log = _sim()
    g, s = groups(world, log)
    _check(log, g, s, expect_positive=True)
    world0, log0 = _sim(**off)
    g0, s0 = groups(world0, log0)
    _check(log0, g0, s0, expect_positive=False)


def test_position_bias_ratio() -> None:
    """Under a uniform page, E[play | position j] - E[p0] = position_decay**j * const."""
    world, log = _sim(seed=3)
    s = log.shown
    lam = world.config.position_decay
    p0 = s.p_organic.mean()
    rate = np.array([s.play[s.position == j].mean() for j in range(world.config.page_positions)])
    true = np.array([s.p_play[s.position == j].mean() for j in range(world.config.page_positions)])
    assert (np.diff(true) < 0).all() and rate[0] > rate[-1]
    j = world.config.page_positions - 1
    ratio = (rate[j] - p0) / (rate[0] - p0)
    n0 = (s.position == 0).sum()
    se = np.sqrt(rate[j] / n0 + ratio**2 * rate[0] / n0) / (rate[0] - p0)
    assert abs(ratio - lam**j) < 4 * se, (ratio, lam**j, se)
    rows = np.array([s.p_play[s.row_index == r].mean() for r in range(world.config.page_rows)])
    assert (np.diff(rows) < 0).all()


def _drift_groups(world, log):
    s, v = log.shown, log.visits
    ent = world.entities
    m = v.member[s.visit]
    toward = np.einsum("ng,ng->n", ent.taste_end[m] - ent.taste_start[m],
                       ent.genre_mean[s.title])
    t = log.visits.timestamp[s.visit]
    early, late = t < np.quantile(t, 0.3), t > np.quantile(t, 0.7)
    return [late & (toward > 0.5), late & (toward < -0.5), early & (toward > 0.5),
            early & (toward < -0.5)], [1, -1, -1, 1]


def test_drift_moves_plays_toward_the_end_taste() -> None:
    world, log = _sim(drift=1.0, recent_weight=0.0, seen_penalty=0.0)
    g, s = _drift_groups(world, log)
    _check(log, g, s, expect_positive=True)
    world0, log0 = _sim(drift=0.0, recent_weight=0.0, seen_penalty=0.0)
    g0, s0 = _drift_groups(world0, log0)
    _check(log0, g0, s0, expect_positive=False)


def _repeat_genre_rate(world: World, log) -> tuple[float, float]:
    """Share of consecutive plays (same member, < 2 days apart, different titles) that share a
    genre, and its standard error."""
    inter = log.interactions()
    m = inter["member_id"].str[1:].astype(int).to_numpy()
    t = inter["title_id"].str[1:].astype(int).to_numpy()
    ts = inter["timestamp"].to_numpy()
    o = np.lexsort((ts, m))
    m, t, ts = m[o], t[o], ts[o]
    ok = (m[1:] == m[:-1]) & (ts[1:] - ts[:-1] < 2 * 86_400) & (t[1:] != t[:-1])
    g = world.entities.genre_onehot
    share = ((g[t[1:]] * g[t[:-1]]).sum(axis=1) > 0)[ok]
    return share.mean(), share.std() / np.sqrt(share.size)


def test_recent_plays_shift_short_term_interest() -> None:
    """Sequences carry signal: with short-term interest on, the next play shares a genre with the
    previous one more often than with it off (same world otherwise)."""
    same = dict(seen_penalty=0.0, drift=0.0, batch_size=64)  # state updated every 64 visits
    on = _repeat_genre_rate(*_sim(recent_weight=4.0, **same))
    off = _repeat_genre_rate(*_sim(recent_weight=0.0, **same))
    assert on[0] - off[0] > 4 * np.hypot(on[1], off[1]), (on, off)


def test_seen_titles_lose_uplift() -> None:
    """A title in the member's recent plays loses ``seen_penalty`` of uplift logit, exactly."""
    world = World(WorldConfig.preset("small", seen_penalty=2.0), seed=4)
    vb = world.make_visits([5, 6], world.config.start + 2 * 86_400 + 3600)
    titles = np.flatnonzero(vb.available[vb.country[0]] & vb.available[vb.country[1]])[:3]
    titles = np.tile(titles, (2, 1))
    state = world.initial_state()
    state.seen[5, 0] = titles[0, 1]
    fresh = world.uplift(vb, titles, np.zeros_like(titles))
    after = world.uplift(vb, titles, np.zeros_like(titles), state=state)
    p0 = world.organic_probability(vb, titles)
    logit = lambda u: np.log(u / (1 - p0 - u))  # noqa: E731  (uplift = (1 - p0) sigma(x))
    np.testing.assert_allclose(logit(fresh) - logit(after), [[0, 2.0, 0], [0, 0, 0]], atol=1e-9)


class TestConfoundingAndInstrument:
    """PromotionPolicy shows series more in hidden binge mood (confounder) and in the randomised
    promotion cell (instrument); binge mood also raises organic series plays."""

    @pytest.fixture(scope="class")
    def data(self):
        cfg = WorldConfig.preset("small", uplift_bias=-4.0, recent_weight=0.0, seen_penalty=0.0,
                                 drift=0.0)
        world = World(cfg, seed=5)
        n = 40_000
        log = world.simulate(PromotionPolicy(), n_visits=n, seed=6)
        s, v = log.shown, log.visits
        ser = world.entities.is_series
        D = np.bincount(s.visit, weights=ser[s.title], minlength=n)
        Y = (np.bincount(s.visit, weights=s.play * ser[s.title], minlength=n)
             + np.bincount(log.organic_visit, weights=ser[log.organic_title], minlength=n))
        tau = s.uplift[ser[s.title]].mean()  # true effect of one series impression
        return dict(D=D, Y=Y, Z=v.cell.astype(float), U=v.mood.astype(float), tau=tau, n=n)

    def test_instrument_independent_of_confounder(self, data) -> None:
        Z, U = data["Z"], data["U"]
        est, se = _diff(U, [Z == 1, Z == 0], [1, -1])
        assert abs(est) < 4 * se

    def test_confounder_raises_exposure_and_plays(self, data) -> None:
        D, Y, U = data["D"], data["Y"], data["U"]
        for y in (D, Y):
            est, se = _diff(y, [U == 1, U == 0], [1, -1])
            assert est > 4 * se

    def test_naive_is_biased_and_iv_recovers_the_effect(self, data) -> None:
        D, Y, Z, tau = data["D"], data["Y"], data["Z"], data["tau"]
        naive = ols(Y, D, cov_type="HC1")
        assert naive.params["d0"] - tau > 4 * naive.std_errors["d0"], (naive.params, tau)
        iv = two_stage_least_squares(Y, D, Z, cov_type="HC1")
        est, se = iv.params["d0"], iv.std_errors["d0"]
        assert abs(est - tau) < 4 * se, (est, tau, se)
