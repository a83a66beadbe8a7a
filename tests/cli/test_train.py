"""``reelpick train`` and ``reelpick logs export`` through typer's CliRunner."""

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


def test_train_publishes_a_model_dir(sim_dir, tmp_path) -> None:
    out = tmp_path / "model"
    res = runner.invoke(app, ["train", "--policy", "als", "--logs", str(sim_dir), "--out",
                              str(out), "--factors", "8", "--iterations", "2"])
    assert res.exit_code == 0, res.output
    assert "published model" in res.output
    manifest = json.loads((out / "manifest.json").read_text())
    version_dir = out / manifest["path"]
    assert {p.name for p in version_dir.iterdir()} == {"als.npz", "context.npz", "catalog.json"}
    assert manifest["n_titles"] == 150 and manifest["train"]["factors"] == 8
    # a second run publishes a new version; the manifest points at it, both are kept
    res = runner.invoke(app, ["train", "--policy", "als", "--logs", str(sim_dir), "--out",
                              str(out), "--factors", "8", "--iterations", "2", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert len(list((out / "versions").iterdir())) == 2


def test_train_fails_clearly_without_logs(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["train", "--logs", str(tmp_path / "empty"), "--out",
                              str(tmp_path / "m")])
    assert res.exit_code == 2 and "interactions.parquet" in res.output


def test_logs_export_writes_valid_parquet(sim_dir, tmp_path) -> None:
    model = tmp_path / "model"
    assert runner.invoke(app, ["train", "--policy", "als", "--logs", str(sim_dir), "--out",
                               str(model), "--factors", "8", "--iterations", "2"]).exit_code == 0
    settings = Settings(model_dir=model, data_dir=tmp_path / "data", api_key="k", n_rows=3,
                        n_positions=5)
    with TestClient(create_app(settings)) as c:
        page = c.get("/v1/homepage", params={"member": "m1"}).json()
        d = page["rows"][0]["items"][0]["decision_id"]
        r = c.post("/v1/events", headers={"X-API-Key": "k"}, json={"events": [
            {"event_id": "a", "decision_id": d, "kind": "play"}]})
        assert r.status_code == 200
    out = tmp_path / "export"
    res = runner.invoke(app, ["logs", "export", "--db", str(settings.db_path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "15 impressions" in res.output and "1 outcomes" in res.output
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
    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["train", "--logs", str(data), "--out", str(out),
                                      "--factors", "4", "--iterations", "2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_titles"] == 5 and manifest["n_members"] == 8
