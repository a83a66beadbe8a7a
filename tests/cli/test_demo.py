"""``reelpick demo --quick --no-serve`` end to end through the CLI runner (what CI runs)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from reelpick.cli import app
from reelpick.data.loaders import load_table


def test_demo_quick_writes_report_results_and_logs(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--no-serve", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report, results = out / "report.html", out / "results.json"
    assert f"report: {report.resolve()}" in result.output.replace("\n", "")
    res = json.loads(results.read_text())
    assert res["config"]["preset"] == "small" and res["releases"]
    assert "A/B winner" in result.output
    html = report.read_text()
    assert html.count('<img class="plot"') == 3 + len(res["releases"])
    for rel in res["releases"]:
        assert rel["shipped"] == rel["ab"]["winner"]
    imp = load_table(out / "logs" / "impressions.parquet", "impressions")
    assert len(imp) > 0 and imp["propensity"].between(0, 1, inclusive="right").all()
    assert (out / "logs" / "titles.parquet").exists()


def test_demo_rejects_bad_days(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--quick", "--no-serve", "--days", "99",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "days" in result.output
