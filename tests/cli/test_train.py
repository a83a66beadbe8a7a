"""``reelpick train`` (page policy candidates) and ``reelpick logs export`` through typer's
CliRunner."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from reelpick.cli import app
from reelpick.data.schema import IMPRESSIONS, OUTCOMES
from reelpick.serve import Settings, create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

runner = CliRunner()


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sim")
    res = runner.invoke(app, ["simulate", "--preset", "small", "--policy", "popular",
                              "--visits", "400", "--seed", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


SMALL = ["--set", "trees=5", "--set", "n_rows=3", "--set", "n_positions=5",
         "--set", "train_rows=5000"]


def test_train_saves_page_policy_candidates(sim_dir, tmp_path) -> None:
    out = tmp_path / "cand"
    res = runner.invoke(app, ["train", "--logs", str(sim_dir), "--out", str(out), *SMALL,
                              "--set", "epsilon=0.1,0.3"])
    assert res.exit_code == 0, res.output
    assert "2 candidate(s)" in res.output
    headers = [json.loads(p.read_text()) for p in sorted(out.glob("*/policy.json"))]
    assert [h["config"]["epsilon"] for h in headers] == [0.1, 0.3]
    assert {h["kind"] for h in headers} == {"reelpick.page-policy"}


def test_train_policy_als_is_a_clear_error(sim_dir, tmp_path) -> None:
    """The ALS model directory was removed: a one-line error naming what to use instead."""
    for policy, says in (("als", "--policy page"), ("popular", "expected page")):
        res = runner.invoke(app, ["train", "--policy", policy, "--logs", str(sim_dir),
                                  "--out", str(tmp_path / "m")])
        assert res.exit_code == 2 and says in res.output, res.output
        assert "Traceback" not in res.output
    assert not (tmp_path / "m").exists()


def test_train_fails_clearly_without_logs(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["train", "--logs", str(tmp_path / "empty"), "--out",
                              str(tmp_path / "m")])
    assert res.exit_code == 2 and "no impressions table" in res.output


def test_logs_export_writes_valid_parquet(sim_dir, tmp_path) -> None:
    cand, model = tmp_path / "cand", tmp_path / "model"
    assert runner.invoke(app, ["train", "--logs", str(sim_dir), "--out", str(cand),
                               *SMALL]).exit_code == 0
    res = runner.invoke(app, ["promote", "--first", "--candidates", str(cand), "--model-dir",
                              str(model)])
    assert res.exit_code == 0, res.output
    settings = Settings(model_dir=model, data_dir=tmp_path / "data", api_key="k")
    with TestClient(create_app(settings)) as c:
        page = c.get("/v1/homepage", params={"member": "m1"}).json()
        n_slots = sum(len(row["items"]) for row in page["rows"])
        d = page["rows"][0]["items"][0]["decision_id"]
        r = c.post("/v1/events", headers={"X-API-Key": "k"}, json={"events": [
            {"event_id": "a", "decision_id": d, "kind": "play"}]})
        assert r.status_code == 200
    out = tmp_path / "export"
    res = runner.invoke(app, ["logs", "export", "--db", str(settings.db_path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert f"{n_slots} impressions" in res.output and "1 outcomes" in res.output
    IMPRESSIONS.validate(pd.read_parquet(out / "impressions.parquet"))
    assert OUTCOMES.validate(pd.read_parquet(out / "outcomes.parquet"))["play"].tolist() == [1]


def test_logs_export_refuses_a_foreign_file(tmp_path) -> None:
    db = tmp_path / "x.sqlite3"
    db.write_bytes(b"")
    res = runner.invoke(app, ["logs", "export", "--db", str(db), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not a reelpick event log" in res.output


def test_train_on_a_movielens_folder(tmp_path):
    """A folder without reelpick logs is read as a dataset (here the RecBole layout)."""
    data = tmp_path / "ml"
    data.mkdir()
    rows = "".join(f"{m}\t{t}\t4\t{100 + m * 10 + t}\n" for m in range(1, 9) for t in range(1, 6)
                   if (m + t) % 3)
    (data / "toy.inter").write_text("user_id:token\titem_id:token\trating:float\t"
                                    "timestamp:float\n" + rows)
    (data / "toy.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\t"
                                   "class:token_seq\n" + "".join(
                                       f"{t}\tFilm {t}\t1995\tDrama\n" for t in range(1, 6)))
    out = tmp_path / "cand"
    result = CliRunner().invoke(app, ["train", "--logs", str(data), "--out", str(out),
                                      "--set", "trees=3", "--set", "n_rows=1",
                                      "--set", "n_positions=3", "--set", "artwork=first"])
    assert result.exit_code == 0, result.output
    header = json.loads(next(out.glob("*/policy.json")).read_text())
    assert header["info"]["trained_on_policies"] == ["implicit-negatives"]
    assert len(header["members"]) == 8 + 1  # and the cold-start slot
    assert len(json.loads(next(out.glob("*/catalog.json")).read_text())["titles"]) == 5
