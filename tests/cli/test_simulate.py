"""``reelpick simulate`` through typer's CliRunner: files written, schemas valid, clear errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reelpick.cli import app
from reelpick.data.loaders import load_table

runner = CliRunner()


def _text(output: str) -> str:
    """The output with rich's box drawing and line wrapping removed."""
    return " ".join(output.replace("│", " ").split())


def test_writes_valid_tables(tmp_path) -> None:
    out = tmp_path / "sim"
    res = runner.invoke(app, ["simulate", "--preset", "small", "--policy", "uniform",
                              "--visits", "300", "--seed", "4", "--out", str(out)])
    assert res.exit_code == 0, res.output
    tables = {}
    for name in ("impressions", "outcomes", "interactions", "titles", "members"):
        tables[name] = load_table(out / f"{name}.parquet", name)
    assert len(tables["impressions"]) == 300 * 18 == len(tables["outcomes"])
    assert set(tables["impressions"]["title_id"]) <= set(tables["titles"]["title_id"])
    truth = json.loads((out / "truth.json").read_text())
    assert truth["true_value"]["method"] == "exact" and truth["n_visits"] == 300
    assert truth["true_value"]["plays"] > truth["true_value"]["incremental_plays"] > 0
    assert truth["config"]["name"] == "small"


def test_config_file_and_other_policy(tmp_path) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text('preset = "small"\nn_members = 50\npage_rows = 2\n')
    out = tmp_path / "o"
    res = runner.invoke(app, ["simulate", "--config", str(cfg), "--policy", "popular",
                              "--visits", "40", "--out", str(out)])
    assert res.exit_code == 0, res.output
    imp = load_table(out / "impressions.parquet", "impressions")
    assert len(imp) == 40 * 2 * 6 and (imp["propensity"] == 1).all()
    assert set(imp["policy"]) == {"popular"}


@pytest.mark.parametrize("args, match", [
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--policy", "greedy"], "unknown policy 'greedy'"),
    (["--visits", "0"], "--visits"),
    (["--seed", "-1"], "--seed"),
])
def test_bad_options(tmp_path, args: list[str], match: str) -> None:
    res = runner.invoke(app, ["simulate", *args, "--out", str(tmp_path / "x")])
    assert res.exit_code != 0
    assert match in _text(res.output)


def test_bad_config_file(tmp_path) -> None:
    cfg = tmp_path / "w.json"
    cfg.write_text('{"n_memberz": 5}')
    res = runner.invoke(app, ["simulate", "--config", str(cfg), "--out", str(tmp_path / "x")])
    assert res.exit_code != 0
    assert "unknown config key(s) ['n_memberz']" in _text(res.output)
