"""Splits tested by invariants: rows conserved, time respected, ties broken by row order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelpick.data import leave_last_out, rolling_cutoffs, time_cutoff


@pytest.fixture
def events(rng) -> pd.DataFrame:
    n = 500
    return pd.DataFrame({
        "member_id": rng.integers(0, 40, n).astype(str),
        "title_id": rng.integers(0, 80, n).astype(str),
        "timestamp": rng.integers(0, 50, n),  # coarse: many ties
    })


def test_leave_last_out_invariants(events):
    s = leave_last_out(events)
    assert len(s.train) + len(s.test) == len(events)
    assert not set(s.train.index) & set(s.test.index)
    assert s.test["member_id"].is_unique
    for m, row in s.test.set_index("member_id").iterrows():
        mine = events[events["member_id"] == m]
        latest = mine["timestamp"].max()
        assert row["timestamp"] == latest
        # ties: the last row in file order among the latest timestamp
        assert mine[mine["timestamp"] == latest].index[-1] == s.test.index[
            s.test["member_id"] == m][0]


def test_leave_last_out_tie_rule_is_file_order():
    df = pd.DataFrame({"member_id": ["a"] * 3, "title_id": ["x", "y", "z"],
                       "timestamp": [5, 5, 5]})
    assert leave_last_out(df).test["title_id"].tolist() == ["z"]
    rev = df.iloc[::-1].reset_index(drop=True)
    assert leave_last_out(rev).test["title_id"].tolist() == ["x"]


def test_leave_last_out_nested_gives_validation_and_min_train():
    df = pd.DataFrame({"member_id": ["a"] * 4 + ["b"], "title_id": list("wxyzw"),
                       "timestamp": [1, 2, 3, 4, 1]})
    outer = leave_last_out(df)
    inner = leave_last_out(outer.train)
    assert outer.test["title_id"].tolist() == ["z"]
    assert inner.test["title_id"].tolist() == ["y"]
    assert "b" not in set(outer.test["member_id"])  # one interaction: stays in train
    with pytest.raises(ValueError):
        leave_last_out(df, n=0)


def test_time_cutoff_invariants(events):
    s = time_cutoff(events, quantile=0.7)
    assert (s.train["timestamp"] < s.cutoff).all()
    assert (s.test["timestamp"] >= s.cutoff).all()
    assert set(s.test["member_id"]) <= set(s.train["member_id"])
    everyone = time_cutoff(events, quantile=0.7, test_members="all")
    assert len(everyone.train) + len(everyone.test) == len(events)
    assert time_cutoff(events, 25).cutoff == 25


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one"),
    ({"cutoff": 3, "quantile": 0.5}, "exactly one"),
    ({"quantile": 1.0}, r"quantile must be in \(0, 1\)"),
    ({"quantile": 0.5, "test_members": "some"}, "test_members"),
])
def test_time_cutoff_bad_arguments(events, kwargs, message):
    with pytest.raises(ValueError, match=message):
        time_cutoff(events, **kwargs)


def test_rolling_cutoffs_move_forward_and_respect_horizon(events):
    splits = list(rolling_cutoffs(events, (0.8, 0.5, 0.6), horizon=0.1))
    cutoffs = [s.cutoff for s in splits]
    assert cutoffs == sorted(cutoffs) and len(set(cutoffs)) == 3
    for s in splits:
        assert (s.train["timestamp"] < s.cutoff).all()
        assert (s.test["timestamp"] >= s.cutoff).all()
    t_end = int(np.quantile(events["timestamp"], 0.6, method="higher"))
    assert (splits[0].test["timestamp"] < t_end).all()
