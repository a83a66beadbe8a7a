"""``reelpick causal iv|uplift`` through typer's CliRunner: output, --json, clear errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reelpick.cli import app

runner = CliRunner()


def _text(output: str) -> str:
    return " ".join(output.replace("│", " ").split())


@pytest.fixture(scope="module")
def promo(tmp_path_factory):
    out = tmp_path_factory.mktemp("promo")
    res = runner.invoke(app, ["simulate", "--policy", "promotion", "--visits", "3000",
                              "--seed", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_iv_table_and_json(promo, tmp_path) -> None:
    js = tmp_path / "iv.json"
    res = runner.invoke(app, ["causal", "iv", "--logs", str(promo), "--json", str(js)])
    assert res.exit_code == 0, res.output
    text = _text(res.output)
    assert "OLS (naive)" in text and "2SLS" in text and "first-stage F" in text
    out = json.loads(js.read_text())
    assert out["iv"]["method"] == "2SLS" and out["iv"]["cov_type"] == "CR1"
    assert out["iv"]["nobs"] == 3000 and "exposure" in out["iv"]["params"]
    assert out["ols"]["params"]["exposure"] > 0


def test_uplift_table_and_json(promo, tmp_path) -> None:
    js = tmp_path / "up.json"
    res = runner.invoke(app, ["causal", "uplift", "--logs", str(promo), "--top", "5",
                              "--json", str(js)])
    assert res.exit_code == 0, res.output
    assert "top 5 titles by uplift" in _text(res.output)
    out = json.loads(js.read_text())
    assert len(out["top"]) == 5 and set(out["offline_hit_rate"]) == {"uplift", "play"}


@pytest.mark.parametrize("args, match", [
    (["iv", "--logs", "nowhere"], "not a directory of reelpick logs"),
    (["iv", "--treat", "series"], "expected 'kind:<kind>'"),
    (["iv", "--cov-type", "HC3"], "--cov-type: use one of"),
    (["iv", "--instrument", "policy"], "must vary"),
])
def test_bad_input_exits_2(promo, args, match) -> None:
    if "--logs" not in args:
        args = [*args[:1], "--logs", str(promo), *args[1:]]
    res = runner.invoke(app, ["causal", *args])
    assert res.exit_code == 2, res.output
    assert match in _text(res.output)


def test_missing_files_exit_2(tmp_path) -> None:
    res = runner.invoke(app, ["causal", "uplift", "--logs", str(tmp_path)])
    assert res.exit_code == 2
    assert "missing impressions.parquet" in _text(res.output)
