"""The Open Bandit Dataset as timestamped interactions (``load_obd_dataset``), on tiny files in
the OBD layout written here, and on the shared sample if present."""

from __future__ import annotations

import pandas as pd
import pytest

from reelpick.data import SchemaError
from reelpick.data.loaders import (
    OBD_USER_FEATURES,
    load_dataset,
    load_obd_dataset,
    read_obd_files,
)
from reelpick.ope import load_obd

HEADER = ",timestamp,item_id,position,click,propensity_score," + ",".join(OBD_USER_FEATURES)
#: (timestamp, item, position, click, pscore, user features a..d)
ROWS = {
    ("random", "all"): [
        ("2019-11-24 00:00:10.500000+00:00", 0, 1, 1, 0.5, "a", "b", "c", "d"),
        ("2019-11-24 00:00:11.000000+00:00", 1, 2, 0, 0.5, "a", "b", "c", "e"),
        ("2019-11-25 00:00:00.000000+00:00", 1, 3, 1, 0.5, "a", "b", "c", "e"),
    ],
    ("bts", "all"): [
        ("2019-11-24 00:00:10.200000+00:00", 1, 1, 1, 0.25, "a", "b", "c", "d"),
        ("2019-11-26 00:00:00.000000+00:00", 0, 2, 0, 0.75, "x", "y", "z", "w"),
    ],
    ("random", "men"): [
        ("2019-11-24 12:00:00.000000+00:00", 2, 1, 1, 1 / 3, "a", "b", "c", "d"),
    ],
}
ITEMS = {"all": 2, "men": 3}


def _write_log(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [HEADER] + [",".join([str(i), *map(str, r)]) for i, r in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")


def _obd(root, rows=ROWS):
    for (policy, campaign), log in rows.items():
        folder = root / policy / campaign
        _write_log(folder / f"{campaign}.csv", log)
        items = [",item_id,item_feature_0,item_feature_1"] + [
            f"{i},{i},{0.1 * i},h{i}" for i in range(ITEMS[campaign])]
        (folder / "item_context.csv").write_text("\n".join(items) + "\n")
    return root


def test_clicks_as_interactions(tmp_path):
    ds = load_obd_dataset(_obd(tmp_path))
    inter = ds.interactions
    # 4 clicks, ordered by the microsecond time across files (bts 10.2 s before random 10.5 s)
    assert inter["title_id"].tolist() == ["all:1", "all:0", "men:2", "all:1"]
    assert inter["policy"].tolist() == ["bts", "random", "random", "random"]
    assert inter["timestamp"].tolist() == [1574553610, 1574553610, 1574596800, 1574640000]
    assert inter["position"].tolist() == [1, 1, 1, 3]
    assert "click" not in inter
    # one member per user-feature combination, the same across policies and campaigns
    m = inter["member_id"].tolist()
    assert m[0] == m[1] == m[2] != m[3]
    assert set(ds.members["member_id"]) == set(m)
    assert ds.members.set_index("member_id").loc[m[3], "user_feature_3"] == "e"
    # every item of every campaign read is in the catalogue, clicked or not
    assert sorted(ds.titles["title_id"]) == ["all:0", "all:1", "men:0", "men:1", "men:2"]
    assert ds.titles.set_index("title_id").loc["men:2", "item_feature_0"] == pytest.approx(0.2)


def test_impressions_and_selection(tmp_path):
    root = _obd(tmp_path)
    ds = load_obd_dataset(root, events="impressions", behavior_policies=["random"],
                          campaigns=["all"])
    assert ds.interactions["click"].tolist() == [1, 0, 1]
    assert len(ds.members) == 2 and set(ds.interactions["campaign"]) == {"all"}
    # a campaign alone reads it under every policy that has it
    assert len(load_obd_dataset(root, campaigns=["all"]).interactions) == 3
    # load_dataset recognises the layout
    assert len(load_dataset(root).interactions) == 4


def _bad(tmp_path, row_index, field, value):
    rows = {k: list(v) for k, v in ROWS.items()}
    cols = ["timestamp", "item_id", "position", "click", "propensity_score"]
    row = list(rows[("random", "all")][row_index])
    row[cols.index(field)] = value
    rows[("random", "all")][row_index] = tuple(row)
    return _obd(tmp_path, rows)


@pytest.mark.parametrize("row_index, field, value, message", [
    (1, "click", 2, r"all\.csv, line 3, column 'click'.*must be <= 1"),
    (0, "timestamp", "yesterday", r"all\.csv, line 2, column 'timestamp'.*bad timestamp"),
    (2, "propensity_score", 0, r"all\.csv, line 4, column 'propensity_score'.*> 0"),
    (1, "item_id", 7, r"all\.csv, line 3, column 'item_id'.*item_id 7 is not in "
                      r"item_context\.csv"),
    (0, "position", "left", r"all\.csv, line 2, column 'position'.*expected a number"),
])
def test_bad_values_name_file_line_field(tmp_path, row_index, field, value, message):
    root = _bad(tmp_path, row_index, field, value)
    with pytest.raises(SchemaError, match=message):
        load_obd_dataset(root)
    with pytest.raises(SchemaError, match=message):  # the OPE loader reads through the same check
        load_obd(root, "random", "all")


def test_bad_layout_and_arguments(tmp_path):
    root = _obd(tmp_path)
    log = root / "random" / "all" / "all.csv"
    log.write_text(log.read_text().replace(",click,", ",clicked,"))
    with pytest.raises(SchemaError, match=r"all\.csv: missing required column\(s\) \['click'\]"):
        load_obd_dataset(root)
    _write_log(log, ROWS[("random", "all")])
    log.write_text(log.read_text().replace("user_feature_3", "age"))
    with pytest.raises(SchemaError, match=r"all\.csv: missing user feature column\(s\) "
                                          r"\['user_feature_3'\]"):
        load_obd_dataset(root)
    with pytest.raises(FileNotFoundError, match=r"bts/men/men\.csv: no such file"):
        load_obd_dataset(root, behavior_policies=["bts"], campaigns=["men"])
    with pytest.raises(ValueError, match=r"campaigns: unknown \['kids'\]"):
        load_obd_dataset(root, campaigns=["kids"])
    with pytest.raises(ValueError, match="non-empty sequence"):
        load_obd_dataset(root, campaigns="all")
    with pytest.raises(ValueError, match="events must be"):
        load_obd_dataset(root, events="views")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="no Open Bandit Dataset files"):
        load_obd_dataset(tmp_path / "random")
    with pytest.raises(ValueError, match="campaign must be"):
        read_obd_files(root, "random", "kids")


@pytest.mark.data
def test_real_obd_sample(obd_dir):
    ds = load_obd_dataset(obd_dir)
    inter = ds.interactions
    # the sample's click counts (its README): random 38/46/46, bts 42/69/46 for all/men/women
    counts = inter.groupby(["policy", "campaign"]).size().to_dict()
    assert counts == {("random", "all"): 38, ("random", "men"): 46, ("random", "women"): 46,
                      ("bts", "all"): 42, ("bts", "men"): 69, ("bts", "women"): 46}
    assert len(ds.titles) == 80 + 34 + 46
    assert inter["timestamp"].is_monotonic_increasing
    span = pd.to_datetime(inter["timestamp"], unit="s", utc=True)
    assert span.min() >= pd.Timestamp("2019-11-24", tz="UTC")
    assert span.max() < pd.Timestamp("2019-12-01", tz="UTC")
    # members are the distinct user-feature combinations among the clicked rows, counted
    # independently from the raw files
    clicked = []
    for policy in ("random", "bts"):
        for campaign in ("all", "men", "women"):
            raw = pd.read_csv(obd_dir / policy / campaign / f"{campaign}.csv", index_col=0)
            clicked.append(raw.loc[raw["click"] == 1, list(OBD_USER_FEATURES)])
    assert ds.n_members == len(pd.concat(clicked).drop_duplicates())
