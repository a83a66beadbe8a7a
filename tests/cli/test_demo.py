"""``reelpick demo --quick --no-serve`` end to end through the CLI runner (what CI runs)."""

from __future__ import annotations

import json
import warnings

from typer.testing import CliRunner

from reelpick.cli import app
from reelpick.data.loaders import load_table
from reelpick.serve import Settings, create_app
from reelpick.serve.model_dir import POLICY_KIND, read_manifest


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
    # the demo ships a saved page policy directory by the promotion rule, and the service
    # started on it (what `make demo` serves) answers with exactly that version
    manifest = read_manifest(out / "model")
    assert manifest["kind"] == POLICY_KIND and "promotion" in manifest
    cand = json.loads((out / "candidates" / "candidates.json").read_text())
    assert manifest["version"] in {c["version"] for c in cand}
    assert ("promoted" in result.output) or ("bootstrap" in result.output)
    settings = Settings(model_dir=out / "model", data_dir=tmp_path / "data", api_key="k")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    with TestClient(create_app(settings)) as c:
        page = c.get("/v1/homepage", params={"member": "m1"}).json()
    assert page["model_version"] == manifest["version"]
    assert page["rows"] and all(0 < it["propensity"] <= 1 for r in page["rows"]
                                for it in r["items"])


def test_demo_rejects_bad_days(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--quick", "--no-serve", "--days", "99",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "days" in result.output
