"""``reelpick evaluate`` through typer's runner: the files and output it produces."""

from __future__ import annotations

import json
import traceback

import pytest
from typer.testing import CliRunner

from reelpick.cli import app
from tests.conftest import make_interactions

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path):
    make_interactions().to_csv(tmp_path / "interactions.csv", index=False)
    return tmp_path


@pytest.mark.parametrize("protocol", ["leave-last-out", "time-cutoff"])
def test_evaluate_writes_json_records(data_dir, tmp_path, protocol):
    out = tmp_path / "res.json"
    result = runner.invoke(app, ["evaluate", "--data", str(data_dir), "--protocol", protocol,
                                 "--models", "popular,als", "--k", "5,10", "--json", str(out)])
    assert result.exit_code == 0, "".join(traceback.format_exception(result.exc_info[1]))
    records = json.loads(out.read_text())
    assert [r["model"] for r in records] == ["popular", "als"]
    for r in records:
        assert r["protocol"] == protocol
        assert {"NDCG@10", "HR@5", "Recall@10", "MRR@10", "Coverage@5"} <= set(r["metrics"])
        assert r["fit_seconds"] >= 0 and r["recommend_seconds"] >= 0 and r["peak_rss_mb"] > 0
        assert isinstance(r["params"], dict)
    assert "popular" in result.output


def test_evaluate_tune_records_trials(data_dir, tmp_path):
    out = tmp_path / "res.json"
    result = runner.invoke(app, ["evaluate", "--data", str(data_dir), "--models", "popular",
                                 "--tune", "--json", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(out.read_text())
    assert len(record["tuning"]) == 3
    assert record["params"]["window_days"] in (None, 30.0, 90.0)
    assert all(len(t["folds"]) == 3 for t in record["tuning"])


def test_evaluate_tune_folds_and_metric(data_dir, tmp_path):
    out = tmp_path / "res.json"
    result = runner.invoke(app, ["evaluate", "--data", str(data_dir), "--models", "popular",
                                 "--protocol", "time-cutoff", "--tune", "--tune-folds", "2",
                                 "--tune-metric", "Recall@20", "--json", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(out.read_text())
    assert all(len(t["folds"]) == 2 and "Recall@20" in t for t in record["tuning"])


@pytest.mark.parametrize(("args", "message"), [
    (["--models", "popular,svd"], "unknown value(s) ['svd']"),
    (["--k", "10,x"], "--k"),
    (["--k", "0"], "--k"),
    (["--tune", "--tune-metric", "Coverage@10"], "tuning metric must be one of"),
    (["--tune", "--tune-folds", "0"], "--tune-folds"),
])
def test_evaluate_bad_options(data_dir, args, message):
    result = runner.invoke(app, ["evaluate", "--data", str(data_dir), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_evaluate_bad_data_names_file_line_column(tmp_path):
    (tmp_path / "interactions.csv").write_text("member_id,title_id,timestamp\na,b,1\na,c,later\n")
    result = runner.invoke(app, ["evaluate", "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert "interactions.csv, line 3, column 'timestamp'" in result.output.replace("\n", "")


def test_evaluate_missing_data(tmp_path):
    result = runner.invoke(app, ["evaluate", "--data", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "not a directory" in result.output
