"""Schema validation: good tables pass with canonical dtypes, bad ones name file, line, column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelpick.data import (
    IMPRESSIONS,
    INTERACTIONS,
    SchemaError,
    join_outcomes,
    load_table,
    save_table,
)

GOOD_INTER = ("member_id,title_id,timestamp,rating,device,hour\n"
              "m1,t1,100,4,tv,20\nm1,t2,200,,mobile,8\n")
IMP_HEADER = "decision_id,timestamp,member_id,row,row_index,position,title_id,policy,propensity\n"


def test_interactions_roundtrip_csv_and_parquet(tmp_path):
    p = tmp_path / "inter.csv"
    p.write_text(GOOD_INTER)
    df = load_table(p, "interactions")
    assert df["timestamp"].dtype == np.int64
    assert df["hour"].tolist() == [20, 8]
    assert df["rating"].isna().tolist() == [False, True]
    assert df["member_id"].tolist() == ["m1", "m1"]
    q = save_table(df, tmp_path / "inter.parquet")
    back = load_table(q, "interactions")
    pd.testing.assert_frame_equal(back[["member_id", "timestamp"]], df[["member_id", "timestamp"]])


def test_ids_keep_their_text(tmp_path):
    p = tmp_path / "inter.csv"
    p.write_text("member_id,title_id,timestamp\n007,0042,1\n")
    assert load_table(p, "interactions")[["member_id", "title_id"]].values.tolist() == [
        ["007", "0042"]]


def test_iso_timestamps_are_parsed(tmp_path):
    p = tmp_path / "inter.csv"
    p.write_text("member_id,title_id,timestamp\na,b,2024-01-01T00:00:10Z\n")
    assert load_table(p, "interactions")["timestamp"].iloc[0] == 1704067210


# (file text, schema, expected message fragments): each must name the file, line and column
BAD_FILES = [
    ("member_id,timestamp\nm1,5\n", "interactions", ["missing required column", "title_id"]),
    ("member_id,title_id,timestamp\nm1,t1,5\nm2,t2,yesterday\n", "interactions",
     ["line 3", "column 'timestamp'", "bad timestamp"]),
    ("member_id,title_id,timestamp\nm1,t1,5.5\n", "interactions",
     ["line 2", "column 'timestamp'", "whole Unix seconds"]),
    ("member_id,title_id,timestamp,rating\nm1,t1,5,high\n", "interactions",
     ["line 2", "column 'rating'", "expected a number"]),
    ("member_id,title_id,timestamp,hour\nm1,t1,5,24\n", "interactions",
     ["line 2", "column 'hour'", "<= 23"]),
    ("member_id,title_id,timestamp,watch_seconds\nm1,t1,5,-3\n", "interactions",
     ["line 2", "column 'watch_seconds'", ">= 0"]),
    ("member_id,title_id,timestamp\nm1,,5\n", "interactions",
     ["line 2", "column 'title_id'", "missing value"]),
    (IMP_HEADER + "d1,1,m1,top,0,0,t1,greedy,\n", "impressions",
     ["line 2", "column 'propensity'", "missing value"]),
    (IMP_HEADER + "d1,1,m1,top,0,0,t1,greedy,0.5\nd2,1,m1,top,0,1,t2,greedy,-0.1\n",
     "impressions", ["line 3", "column 'propensity'", "> 0.0"]),
    (IMP_HEADER + "d1,1,m1,top,0,0,t1,greedy,1.5\n", "impressions",
     ["line 2", "column 'propensity'", "<= 1.0"]),
    (IMP_HEADER + "d1,1,m1,top,0,0,t1,greedy,0\n", "impressions",
     ["line 2", "column 'propensity'", "> 0.0"]),
    (IMP_HEADER + "d1,1,m1,top,0,0,t1,greedy,0.5\nd1,1,m1,top,0,1,t2,greedy,0.5\n",
     "impressions", ["line 3", "column 'decision_id'", "duplicate"]),
    (IMP_HEADER + "d1,1,m1,top,0,1.5,t1,greedy,0.5\n", "impressions",
     ["line 2", "column 'position'", "integer"]),
    ("decision_id,play\nd1,2\n", "outcomes", ["line 2", "column 'play'", "<= 1"]),
    ("member_id,title_id,timestamp\nm1,t1\n", "interactions", ["missing value"]),
]


@pytest.mark.parametrize(("text", "schema", "fragments"), BAD_FILES)
def test_bad_files_name_file_line_and_column(tmp_path, text, schema, fragments):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(SchemaError) as info:
        load_table(p, schema)
    message = str(info.value)
    assert str(p) in message
    for fragment in fragments:
        assert fragment in message


def test_nan_propensity_in_a_frame_is_rejected():
    df = pd.DataFrame({"decision_id": ["a"], "timestamp": [1], "member_id": ["m"], "row": ["r"],
                       "row_index": [0], "position": [0], "title_id": ["t"], "policy": ["p"],
                       "propensity": [np.nan]})
    with pytest.raises(SchemaError, match=r"<frame>, line 2, column 'propensity': missing"):
        IMPRESSIONS.validate(df)


def test_parquet_wrong_type_names_row(tmp_path):
    df = pd.DataFrame({"member_id": ["a", "b"], "title_id": ["x", "y"],
                       "timestamp": ["5", "soon"]})
    p = tmp_path / "inter.parquet"
    df.to_parquet(p)
    with pytest.raises(SchemaError, match=r"inter.parquet, line 2, column 'timestamp'"):
        load_table(p, INTERACTIONS)


def test_unsupported_extension(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{}")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_table(p, "interactions")


def test_join_outcomes_defaults_and_unknown_ids():
    imp = pd.DataFrame({"decision_id": ["d1", "d2", "d3"]})
    out = pd.DataFrame({"decision_id": ["d3", "d1"], "play": [1, 0],
                        "watch_seconds": [120.0, 0.0]})
    joined = join_outcomes(imp, out)
    assert joined["play"].tolist() == [0, 0, 1]
    assert joined["watch_seconds"].tolist() == [0.0, 0.0, 120.0]
    bad = pd.DataFrame({"decision_id": ["d1", "zz"], "play": [1, 1]})
    with pytest.raises(SchemaError, match=r"outcomes.csv, line 3, column 'decision_id'.*'zz'"):
        join_outcomes(imp, bad, source="outcomes.csv")


def test_artwork_propensity_is_a_declared_column():
    df = pd.DataFrame({"decision_id": ["a", "b"], "timestamp": [1, 1], "member_id": ["m", "m"],
                       "row": ["r", "r"], "row_index": [0, 0], "position": [0, 1],
                       "title_id": ["t", "u"], "policy": ["p", "p"], "propensity": [0.5, 0.5],
                       "artwork_propensity": [0.25, np.nan]})
    out = IMPRESSIONS.validate(df)
    assert out["artwork_propensity"].dtype == np.float64
    with pytest.raises(SchemaError, match=r"line 3, column 'artwork_propensity'"):
        IMPRESSIONS.validate(df.assign(artwork_propensity=[0.25, 1.5]))
    with pytest.raises(SchemaError, match=r"line 2, column 'artwork_propensity'"):
        IMPRESSIONS.validate(df.assign(artwork_propensity=[0.0, 0.5]))
