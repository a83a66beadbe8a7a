"""Tuning on several validation folds (``reelpick.evaluation``): the folds respect time and the
trial score is the mean over folds; the paired bootstrap against its closed forms; the
publishing-delay split and the blend's tuning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelpick.data.splits import leave_last_out, publishing_delay, resolve_cutoff, time_cutoff
from reelpick.evaluation import (
    evaluate_backtest,
    paired_bootstrap,
    run_model,
    score_model,
    tune,
    tune_blend,
    validation_splits,
)
from reelpick.models import TrendBlend, make_model
from tests.conftest import make_interactions


def test_leave_last_out_folds_hold_out_earlier_positions_and_never_train_on_the_future():
    df = make_interactions(n_members=20, per_member=10)
    outer = leave_last_out(df)
    folds = validation_splits("leave-last-out", outer.train, folds=3)
    assert len(folds) == 3
    ordered = df.sort_values(["member_id", "timestamp"], kind="stable")
    for j, fold in enumerate(folds):
        # fold j's validation item is each member's (j + 2)-th last interaction overall
        expected = ordered.groupby("member_id").nth(-(j + 2))
        got = fold.test.set_index("member_id")["title_id"].sort_index()
        assert got.to_dict() == expected.set_index("member_id")["title_id"].sort_index().to_dict()
        # training rows are strictly before the member's validation row
        last_train = fold.train.groupby("member_id")["timestamp"].max()
        val_time = fold.test.set_index("member_id")["timestamp"]
        assert (last_train.reindex(val_time.index) < val_time).all()
    # folds hold out distinct rows
    keys = [set(map(tuple, f.test[["member_id", "title_id"]].to_numpy())) for f in folds]
    assert not (keys[0] & keys[1]) and not (keys[1] & keys[2])


def test_time_cutoff_folds_are_centred_on_0_8():
    df = make_interactions(n_members=30, per_member=12)
    folds = validation_splits("time-cutoff", df, folds=3)
    ts = np.sort(df["timestamp"].to_numpy())
    expected = [int(np.quantile(ts, q, method="higher")) for q in (0.7, 0.8, 0.9)]
    assert [f.cutoff for f in folds] == expected
    for f in folds:
        assert (f.train["timestamp"] < f.cutoff).all() and (f.test["timestamp"] >= f.cutoff).all()


def test_tune_scores_each_trial_by_the_mean_over_folds():
    df = make_interactions(n_members=40, per_member=12)
    outer = leave_last_out(df)
    folds = validation_splits("leave-last-out", outer.train, folds=2)
    catalogue = sorted(df["title_id"].unique())
    best, trials = tune("popular", folds, catalogue=catalogue, metric="HR@5")
    assert len(trials) == 3 and all(len(t["folds"]) == 2 for t in trials)
    for t in trials:
        per_fold = [run_model("popular", t["params"], f, catalogue=catalogue, ks=(5,))[0]["HR@5"]
                    for f in folds]
        assert t["folds"] == pytest.approx(per_fold)
        assert t["HR@5"] == pytest.approx(np.mean(per_fold))
    assert best == max(trials, key=lambda t: t["HR@5"])["params"]


@pytest.mark.parametrize(("call", "message"), [
    (lambda df: validation_splits("leave-last-out", df, folds=0), "folds must be >= 1"),
    (lambda df: validation_splits("random", df), "protocol must be"),
    (lambda df: validation_splits("time-cutoff", df, folds=5), "do not fit"),
    (lambda df: tune("popular", leave_last_out(df), catalogue=["t1"], metric="Novelty@10"),
     "tuning metric must be one of"),
    (lambda df: tune("popular", leave_last_out(df), catalogue=["t1"], metric="NDCG"),
     "tuning metric must be one of"),
    (lambda df: tune("popular", [], catalogue=["t1"]), "at least one validation split"),
])
def test_bad_tuning_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(make_interactions(n_members=10, per_member=5))


def test_too_little_data_to_validate_is_an_error():
    df = make_interactions(n_members=5, per_member=1)
    with pytest.raises(ValueError, match="no validation fold has test rows"):
        validation_splits("leave-last-out", df)


# ---------------------------------------------------------------- paired bootstrap, time splits


def test_paired_bootstrap_of_a_constant_difference_is_that_constant():
    ci = paired_bootstrap(np.full(30, 0.25), n_boot=200)
    assert ci.mean == ci.low == ci.high == pytest.approx(0.25) and ci.se == pytest.approx(0)
    assert ci.excludes_zero and ci.n == 30 and ci.n_clusters == 0


def test_member_bootstrap_matches_the_closed_form_standard_error(rng):
    d = rng.normal(0.02, 0.3, size=80)
    ci = paired_bootstrap(d, n_boot=20000, random_state=1)
    se = np.sqrt(d.var() / len(d))            # the bootstrap variance of a mean: var_pop / n
    assert ci.se == pytest.approx(se, rel=0.03)
    lo, hi = ci.mean - 1.96 * se, ci.mean + 1.96 * se
    assert ci.low == pytest.approx(lo, abs=0.15 * se) and ci.high == pytest.approx(hi,
                                                                                   abs=0.15 * se)


def test_two_stage_cluster_bootstrap_matches_the_closed_form(rng):
    """C clusters of m rows: Var* = (Var_c(mu_c) + mean_c(sigma_c^2) / m) / C."""
    C, m = 5, 40
    shifts = np.array([-0.1, 0.0, 0.05, 0.1, 0.3])
    d = np.concatenate([rng.normal(s, 0.2, m) for s in shifts])
    labels = np.repeat(np.arange(C), m)
    groups = d.reshape(C, m)
    expected = np.sqrt((groups.mean(axis=1).var() + groups.var(axis=1).mean() / m) / C)
    ci = paired_bootstrap(d, clusters=labels, n_boot=8000, random_state=2)
    assert ci.n_clusters == C and ci.mean == pytest.approx(d.mean())
    assert ci.se == pytest.approx(expected, rel=0.05)
    # resampling cut-offs widens the interval over the members-only one when they disagree
    assert ci.se > paired_bootstrap(d, n_boot=2000).se * 1.5


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"diff": []}, "non-empty 1-D"),
    ({"diff": [0.1, np.nan]}, "NaN or infinite"),
    ({"diff": [0.1, 0.2], "n_boot": 0}, "n_boot must be >= 1"),
    ({"diff": [0.1, 0.2], "alpha": 1.0}, "alpha must be in"),
    ({"diff": [0.1, 0.2], "clusters": [1]}, "one label per diff row"),
])
def test_paired_bootstrap_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(**kwargs)


def _drift_log(n_members: int = 40, days: int = 60, seed: int = 0) -> pd.DataFrame:
    """Each day a new title is released and most plays that day go to the newest titles."""
    r = np.random.default_rng(seed)
    rows = []
    for day in range(days):
        for m in r.choice(n_members, size=n_members // 2, replace=False):
            newest = max(day - int(r.integers(0, 3)), 0)
            title = newest if r.random() < 0.8 else int(r.integers(0, day + 1))
            rows.append((f"m{m}", f"t{title}", 1_600_000_000 + day * 86400 + int(m)))
    return pd.DataFrame(rows, columns=["member_id", "title_id", "timestamp"]).drop_duplicates(
        ["member_id", "title_id"])


def test_publishing_delay_skips_the_gap_and_keeps_the_window():
    df = _drift_log()
    t = 1_600_000_000 + 30 * 86400
    s = publishing_delay(df, t, delay_days=5, window_days=10)
    assert (s.train["timestamp"] < t).all() and s.cutoff == t
    ts = s.test["timestamp"]
    assert (ts >= t + 5 * 86400).all() and (ts < t + 15 * 86400).all()
    assert s.test["member_id"].isin(s.train["member_id"]).all()
    n_window = ((df["timestamp"] >= t + 5 * 86400) & (df["timestamp"] < t + 15 * 86400)
                & df["member_id"].isin(s.train["member_id"])).sum()
    assert len(s.test) == n_window
    with pytest.raises(ValueError, match="delay_days must be >= 0"):
        publishing_delay(df, t, delay_days=-1)


def test_score_model_pairs_members_and_means_match_the_summary():
    df = _drift_log()
    split = time_cutoff(df, quantile=0.8)
    catalogue = sorted(df["title_id"].unique())
    model = make_model("popular", window_days=7).fit(split.train, titles=catalogue)
    res = score_model(model, split, ks=(5,))
    assert set(res.per_member.index) == set(split.test["member_id"])
    assert res.per_member["NDCG@5"].mean() == pytest.approx(res.summary["NDCG@5"])
    # without the catalogue, members whose test titles are all new to the model drop out
    bare = score_model(make_model("popular").fit(split.train), split, ks=(5,))
    known = split.test[split.test["title_id"].isin(split.train["title_id"])]
    assert set(bare.per_member.index) == set(known["member_id"])


def test_tune_blend_scores_trials_by_fold_means_and_finds_the_trend():
    df = _drift_log()
    folds = validation_splits("time-cutoff", time_cutoff(df, quantile=0.8).train, folds=2)
    catalogue = sorted(df["title_id"].unique())
    grid = [{"weight": 0.0, "prior_half_life_days": 2.0},
            {"weight": 0.8, "prior_half_life_days": 2.0}]
    base_grid = [{"neighbors": 10}]
    best, trials = tune_blend(folds, catalogue=catalogue, base="itemknn", base_grid=base_grid,
                              grid=grid, metrics=("NDCG@5", "Recall@5"))
    assert len(trials) == 2 and all(len(t["folds"]) == 2 for t in trials)
    t = trials[1]
    per_fold = []
    for f in folds:
        m = TrendBlend(base="itemknn", base_params={"neighbors": 10}, weight=0.8,
                       prior_half_life_days=2.0).fit(f.train, titles=catalogue)
        summary = score_model(m, f, ks=(5,)).summary
        per_fold.append((summary["NDCG@5"] + summary["Recall@5"]) / 2)
    assert t["folds"] == pytest.approx(per_fold) and t["score"] == pytest.approx(
        np.mean(per_fold))
    assert best["weight"] == 0.8   # new releases dominate: the trend wins on validation


def test_backtest_with_a_publishing_delay_serves_later_and_excludes_the_gap():
    df = _drift_log()
    catalogue = sorted(df["title_id"].unique())
    recs0, _ = evaluate_backtest(df, ["popular"], quantiles=(0.5, 0.7), horizon=0.2,
                                 catalogue=catalogue, progress=False)
    recs7, _ = evaluate_backtest(df, ["popular"], quantiles=(0.5, 0.7), horizon=0.2,
                                 delay_days=7, catalogue=catalogue, progress=False)
    for r0, r7 in zip(recs0, recs7):
        t = r0.split["cutoff"]
        assert r7.split["cutoff"] == t and r7.split["delay_days"] == 7
        q = r0.split["quantile"]
        width = (resolve_cutoff(df, quantile=q + 0.2) - t) / 86400
        split = publishing_delay(df, t, delay_days=7, window_days=width)
        # the window keeps its width and starts a week later
        assert r7.split["n_test"] == len(split.test) < r0.split["n_test"]
        assert r7.split["n_test_members"] == split.test["member_id"].nunique()
    with pytest.raises(ValueError, match="delay_days must be >= 0"):
        evaluate_backtest(df, ["popular"], delay_days=-1, progress=False)
