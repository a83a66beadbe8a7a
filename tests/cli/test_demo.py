"""``reelpick demo`` end to end on a small world (what ``make demo`` runs, scaled down)."""

from __future__ import annotations

from typer.testing import CliRunner

from reelpick.cli import app
from reelpick.data.loaders import load_table


def test_demo_on_small_world(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--preset", "small", "--visits", "800",
                                      "--out", str(out), "--data", str(tmp_path / "none")])
    # --data pointing nowhere: the world part runs, then a clear error and exit code 2
    assert result.exit_code == 2, result.output
    assert "True value per visit" in result.output and "popular" in result.output
    assert "no data at" in result.output
    imp = load_table(out / "impressions.parquet", "impressions")
    assert len(imp) > 0 and imp["propensity"].between(0, 1, inclusive="right").all()


def test_demo_rejects_unknown_preset(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--preset", "huge", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "huge" in result.output
