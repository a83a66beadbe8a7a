"""``reelpick ope`` through typer's runner: output, the --json file, bad inputs."""

from __future__ import annotations

import json
import traceback

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from reelpick.cli import app
from reelpick.ope import LoggedFeedback, write_feedback_parquet

runner = CliRunner()


def _ok(result):
    assert result.exit_code == 0, result.output + (
        "".join(traceback.format_exception(result.exc_info[1])) if result.exc_info else "")


@pytest.fixture
def feedback_file(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    a = rng.integers(0, 4, n)
    fb = LoggedFeedback(action=a, reward=(rng.random(n) < 0.1 + 0.1 * a).astype(float),
                        pscore=np.full(n, 0.25), n_actions=4)
    return write_feedback_parquet(fb, tmp_path / "log.parquet", row_group_size=1000)


@pytest.fixture
def reelpick_logs(tmp_path):
    rng = np.random.default_rng(1)
    rows, outs = [], []
    for page in range(300):
        titles = rng.choice(5, size=2, replace=False)
        for pos, t in enumerate(titles):
            did = f"p{page}-{pos}"
            rows.append(dict(decision_id=did, timestamp=1_700_000_000 + page, member_id="m1",
                             row="top", row_index=0, position=pos, title_id=f"t{t}",
                             policy="uniform", propensity=0.2, page_id=f"p{page}"))
            if rng.random() < 0.2:
                outs.append(dict(decision_id=did, play=1))
    folder = tmp_path / "sim"
    folder.mkdir()
    pd.DataFrame(rows).to_csv(folder / "impressions.csv", index=False)
    pd.DataFrame(outs).to_csv(folder / "outcomes.csv", index=False)
    return folder


def test_ope_streams_feedback_parquet_and_writes_json(feedback_file, tmp_path):
    out = tmp_path / "res.json"
    np.save(tmp_path / "pi.npy", np.array([0.1, 0.2, 0.3, 0.4]))
    result = runner.invoke(app, ["ope", "--logs", str(feedback_file), "--target",
                                 str(tmp_path / "pi.npy"), "--estimators", "ips,snips,replay",
                                 "--batch-size", "700", "--json", str(out)])
    _ok(result)
    assert "snips" in result.output and "95% CI low" in result.output
    payload = json.loads(out.read_text())
    assert payload["format"] == "feedback-parquet"
    assert [e["estimator"] for e in payload["estimates"]] == ["ips", "snips", "replay"]
    ips = payload["estimates"][0]
    assert ips["ci_low"] < ips["value"] < ips["ci_high"] and ips["n_rounds"] == 3000


def test_ope_reelpick_logs_with_dr_and_slates(reelpick_logs, tmp_path):
    out = tmp_path / "res.json"
    result = runner.invoke(app, ["ope", "--logs", str(reelpick_logs), "--target", "uniform",
                                 "--estimators", "ips,dr,pb_ips,pseudo_inverse", "--ci",
                                 "bootstrap", "--n-bootstrap", "200", "--json", str(out)])
    _ok(result)
    est = {e["estimator"]: e for e in json.loads(out.read_text())["estimates"]}
    assert est["ips"]["ci_method"] == "bootstrap"
    assert est["pb_ips"]["n_rounds"] == 300          # per page
    assert est["ips"]["value"] == pytest.approx(est["pb_ips"]["value"] / 2, rel=1e-9)


@pytest.mark.data
def test_ope_obd(obd_dir, tmp_path):
    result = runner.invoke(app, ["ope", "--logs", str(obd_dir / "random" / "men"), "--target",
                                 "obd:bts", "--estimators", "ips,snips,dm"])
    _ok(result)
    assert "obd:bts on men" in result.output and "dm" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--estimators", "ips,magic"], "unknown value(s) ['magic']"),
    (["--target", "obd:ucb"], "expected obd:bts, obd:random"),
    (["--target", "obd:bts"], "campaign must be all, men or women"),
    (["--target", "softmax"], "expected uniform, obd:bts"),
    (["--target", "nowhere.npy"], "nowhere.npy: no such file"),
    (["--estimators", "dr"], "need --reward-hat"),
    (["--ci", "wald"], "--ci"),
])
def test_ope_bad_inputs(feedback_file, args, message):
    base = ["ope", "--logs", str(feedback_file), "--target", "uniform"]
    result = runner.invoke(app, base + args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_ope_bad_logs(tmp_path):
    result = runner.invoke(app, ["ope", "--logs", str(tmp_path / "none"), "--target", "uniform"])
    assert result.exit_code == 2 and "no such file or directory" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["ope", "--logs", str(tmp_path / "empty"), "--target",
                                 "uniform"])
    assert result.exit_code == 2 and "expected impressions and outcomes" in result.output
    np.save(tmp_path / "bad.npy", np.ones((3, 3, 3, 3)))
    fb = LoggedFeedback(action=[0, 1], reward=[0.0, 1.0], pscore=[0.5, 0.5], n_actions=2)
    path = write_feedback_parquet(fb, tmp_path / "l.parquet")
    result = runner.invoke(app, ["ope", "--logs", str(path), "--target",
                                 str(tmp_path / "bad.npy")])
    assert result.exit_code == 2 and "fits neither" in result.output


def test_ope_streams_per_round_npy_target_and_reward_hat(feedback_file, tmp_path):
    """Per-round targets and reward predictions in .npy files are read batch by batch and give
    the same estimates as the constant target they repeat."""
    pi = np.array([0.1, 0.2, 0.3, 0.4])
    np.save(tmp_path / "const.npy", pi)
    np.save(tmp_path / "rows.npy", np.tile(pi, (3000, 1)))
    np.save(tmp_path / "qhat.npy", np.full((3000, 4), 0.15))
    values = {}
    for name in ("const", "rows"):
        out = tmp_path / f"{name}.json"
        result = runner.invoke(app, ["ope", "--logs", str(feedback_file), "--target",
                                     str(tmp_path / f"{name}.npy"), "--estimators", "ips,dr",
                                     "--reward-hat", str(tmp_path / "qhat.npy"),
                                     "--batch-size", "700", "--json", str(out)])
        _ok(result)
        values[name] = [e["value"] for e in json.loads(out.read_text())["estimates"]]
    np.testing.assert_allclose(values["rows"], values["const"], rtol=1e-12)
