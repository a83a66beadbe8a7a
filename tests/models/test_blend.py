"""TrendBlend: a base recommender plus a time-decayed popularity prior. Checked by its limits
(weight 0 is the base, weight 1 the decayed popularity), the prior's closed form, and a prior
refreshed without refitting the base."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelpick.models import TrendBlend, make_model
from reelpick.models.blend import blend_grid, trending_prior
from tests.conftest import make_interactions

DAY = 86400
ALS = {"factors": 8, "iterations": 10, "regularization": 0.1, "random_state": 3}


def _drifting() -> pd.DataFrame:
    """The two-cluster toy log, plus late plays of one new title by a third of the members."""
    df = make_interactions()
    late = pd.DataFrame({"member_id": [f"m{i}" for i in range(0, 60, 3)], "title_id": "t_new",
                         "timestamp": df["timestamp"].max() + 10 * DAY})
    return pd.concat([df, late], ignore_index=True)


def test_weight_zero_ranks_like_the_base_model():
    df = _drifting()
    members = [f"m{i}" for i in range(1, 60, 3)]
    base = make_model("als", **ALS).fit(df).recommend(members, k=5).title_ids
    blend = TrendBlend(base="als", base_params=ALS, weight=0.0).fit(df)
    assert (blend.recommend(members, k=5).title_ids == base).all()


def test_weight_one_ranks_by_decayed_popularity_closed_form():
    df = _drifting()
    blend = TrendBlend(base="itemknn", weight=1.0, prior_half_life_days=2.0).fit(df)
    ts = df["timestamp"].to_numpy(dtype=float)
    w = 2.0 ** (-(ts.max() - ts) / (2.0 * DAY))
    counts = pd.Series(w).groupby(df["title_id"].to_numpy()).sum()
    expected = counts.reindex(blend.title_vocab_.to_list()).to_numpy()
    got = blend.score(["m1"])[0]
    z = np.log1p(expected)
    np.testing.assert_allclose(got, (z - z.mean()) / z.std(), rtol=1e-5, atol=1e-6)
    assert blend.recommend(["m1"], k=1).title_ids[0, 0] == "t_new"


def test_trend_lifts_the_new_title_for_members_who_have_not_played_it():
    df = _drifting()
    members = [f"m{i}" for i in range(1, 60, 3)]
    rank = {}
    for w in (0.0, 0.6):
        m = TrendBlend(base="als", base_params=ALS, weight=w, prior_half_life_days=1.0).fit(df)
        s = m.score(members)
        new = m.title_vocab_.index(["t_new"])[0]
        rank[w] = (s > s[:, [new]]).sum(axis=1).mean()
    assert rank[0.6] < rank[0.0]


def test_trending_prior_ignores_plays_after_now():
    got = trending_prior(np.array([0, 1, 1, 2]), np.array([0, DAY, 2 * DAY, 5 * DAY]), 3,
                         half_life_days=1.0, now=2 * DAY)
    np.testing.assert_allclose(got, [0.25, 1.5, 0.0])
    assert trending_prior(np.array([], dtype=int), np.array([]), 2, half_life_days=1.0
                          ).tolist() == [0.0, 0.0]


def test_from_fitted_equals_fit_and_refresh_keeps_the_base():
    df = _drifting()
    base = make_model("als", **ALS).fit(df)
    a = TrendBlend.from_fitted(base, df, weight=0.5, prior_half_life_days=3.0)
    b = TrendBlend(base="als", base_params=base.get_params(), weight=0.5,
                   prior_half_life_days=3.0).fit(df)
    np.testing.assert_allclose(a.score(["m0", "m5"]), b.score(["m0", "m5"]), rtol=1e-5,
                               atol=1e-5)
    early = df[df["title_id"] != "t_new"]
    c = TrendBlend.from_fitted(base, early, weight=1.0, prior_half_life_days=3.0)
    assert c.score(["m1"])[0][c.title_vocab_.index(["t_new"])[0]] < 0   # no plays yet
    c.refresh_prior(df)
    assert c.recommend(["m1"], k=1).title_ids[0, 0] == "t_new"
    assert c.base_ is base and c.prior_time_ == df["timestamp"].max()
    with pytest.raises(ValueError, match="missing column 'timestamp'"):
        c.refresh_prior(df[["member_id", "title_id"]])


def test_blend_grid_tries_the_base_alone_once():
    grid = blend_grid((0.0, 0.5), (7.0, 30.0))
    assert grid == [{"weight": 0.0, "prior_half_life_days": 7.0},
                    {"weight": 0.5, "prior_half_life_days": 7.0},
                    {"weight": 0.5, "prior_half_life_days": 30.0}]


@pytest.mark.parametrize(("params", "error", "message"), [
    ({"weight": 1.5}, ValueError, "TrendBlendConfig.weight: must be in"),
    ({"prior_half_life_days": 0.0}, ValueError, "prior_half_life_days: must be > 0"),
    ({"base": "blend"}, ValueError, "cannot be 'blend' itself"),
    ({"base": "svd"}, ValueError, "unknown model 'svd'"),
    ({"base_params": {"factor": 3}}, TypeError, "unknown hyperparameter"),
])
def test_invalid_blend_config(params, error, message):
    with pytest.raises(error, match=message):
        make_model("blend", **params)
