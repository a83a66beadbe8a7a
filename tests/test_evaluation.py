"""Tuning on several validation folds (``reelpick.evaluation``): the folds respect time and the
trial score is the mean over folds."""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.data.splits import leave_last_out
from reelpick.evaluation import run_model, tune, validation_splits
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
