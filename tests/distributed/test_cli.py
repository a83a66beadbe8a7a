"""``--backend ray`` on the command line: the same output as ``--backend local``; clear errors;
``import reelpick`` does not import Ray."""

from __future__ import annotations

import json
import subprocess
import sys
import traceback

import numpy as np
import pytest
from typer.testing import CliRunner

from reelpick.cli import app
from reelpick.ope import LoggedFeedback, write_feedback_parquet

runner = CliRunner()


def _ok(result):
    assert result.exit_code == 0, result.output + (
        "".join(traceback.format_exception(result.exc_info[1])) if result.exc_info else "")


@pytest.fixture(scope="module")
def feedback_folder(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 6_000
    a = rng.integers(0, 5, n)
    fb = LoggedFeedback(action=a, reward=(rng.random(n) < 0.1 + 0.05 * a).astype(float),
                        pscore=np.full(n, 0.2), n_actions=5)
    folder = tmp_path_factory.mktemp("fb") / "logs"
    for i in range(3):
        write_feedback_parquet(fb.take(slice(i * 2_000, (i + 1) * 2_000)),
                               folder / f"hour={i:02d}" / "part-0.parquet")
    return folder


def test_import_reelpick_does_not_import_ray():
    code = ("import sys, reelpick, reelpick.distributed, reelpick.distributed.ope, "
            "reelpick.distributed.iv, reelpick.distributed.simulate, reelpick.cli; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_ope_folder_local_and_ray_agree(feedback_folder, tmp_path, ray_cluster):
    res = {}
    for backend in ("local", "ray"):
        out = tmp_path / f"{backend}.json"
        r = runner.invoke(app, ["ope", "--logs", str(feedback_folder), "--target", "uniform",
                                "--estimators", "ips,snips", "--ci", "bootstrap",
                                "--n-bootstrap", "30", "--batch-size", "1500",
                                "--backend", backend, "--json", str(out)])
        _ok(r)
        res[backend] = json.loads(out.read_text())
    assert res["ray"]["files"] == 3 and res["ray"]["backend"] == "ray"
    for a, b in zip(res["local"]["estimates"], res["ray"]["estimates"]):
        for k in ("value", "ci_low", "ci_high", "se", "ess"):
            assert abs(a[k] - b[k]) <= 1e-12, (a["estimator"], k)


def test_sgd_iv_from_simulated_logs(tmp_path, ray_cluster):
    sim = tmp_path / "sim"
    _ok(runner.invoke(app, ["simulate", "--preset", "small", "--policy", "promotion",
                            "--visits", "1500", "--seed", "3", "--out", str(sim)]))
    design = tmp_path / "design"
    r = runner.invoke(app, ["causal", "design", "--logs", str(sim), "--out", str(design),
                            "--files", "3"])
    _ok(r)
    assert len(list(design.glob("*.parquet"))) == 3
    res = {}
    for backend in ("local", "ray"):
        out = tmp_path / f"iv-{backend}.json"
        _ok(runner.invoke(app, ["causal", "sgd-iv", "--data", str(design), "--batch-size",
                                "256", "--epochs", "2", "--hash-buckets", "4096",
                                "--backend", backend, "--num-workers", "2",
                                "--json", str(out)]))
        res[backend] = json.loads(out.read_text())
    a, b = res["local"]["sgdiv"], res["ray"]["sgdiv"]
    assert a["nobs"] == 1500 and res["local"]["columns"]["endog"] == ["exposure"]
    for k in a["params"]:
        assert abs(a["params"][k] - b["params"][k]) < 1e-9
        assert abs(a["std_errors"][k] - b["std_errors"][k]) < 1e-9


def test_simulate_many_local_and_ray_agree(tmp_path, ray_cluster):
    res = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        _ok(runner.invoke(app, ["simulate-many", "--preset", "small", "--policies",
                                "uniform,popular", "--value-visits", "100", "--seed", "1",
                                "--backend", backend, "--out", str(out)]))
        res[backend] = json.loads((out / "summary.json").read_text())
    assert res["local"]["policies"] == res["ray"]["policies"]


def test_train_seq_local(tmp_path):
    sim = tmp_path / "sim"
    _ok(runner.invoke(app, ["simulate", "--preset", "small", "--visits", "300", "--out",
                            str(sim)]))
    out = tmp_path / "seq.npz"
    r = runner.invoke(app, ["train-seq", "--logs", str(sim), "--out", str(out), "--hidden",
                            "8", "--blocks", "1", "--max-len", "8", "--epochs", "1"])
    _ok(r)
    from reelpick.models import load_model

    model = load_model(out)
    assert model.name == "seq" and model.config.encoder == "gru"
    bad = runner.invoke(app, ["train-seq", "--logs", str(sim), "--out", str(tmp_path / "x.npz"),
                              "--encoder", "lstm", "--epochs", "1"])
    assert bad.exit_code != 0 and "encoder" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "x.npz").exists()


def test_train_seq_defaults_are_the_model_defaults():
    import inspect

    from reelpick.cli.train import train_seq
    from reelpick.models.sequence import SequenceConfig

    defaults = {k: p.default for k, p in inspect.signature(train_seq).parameters.items()}
    names = {"encoder": "encoder", "hidden": "hidden", "blocks": "n_blocks",
             "max_len": "max_len", "epochs": "max_epochs", "batch_size": "batch_size"}
    assert {k: defaults[k] for k in names} == {k: getattr(SequenceConfig(), v)
                                               for k, v in names.items()}


@pytest.mark.parametrize(("args", "message"), [
    (["ope", "--logs", "LOGS", "--target", "uniform", "--backend", "spark"], "--backend"),
    (["simulate-many", "--policies", "uniform,nope"], "--policies"),
    (["simulate-many", "--policies", "uniform", "--visits", "10"], "--out"),
    (["causal", "sgd-iv", "--data", "LOGS"], "--endog"),
])
def test_cli_errors(args, message, feedback_folder):
    r = runner.invoke(app, [str(feedback_folder) if a == "LOGS" else a for a in args])
    assert r.exit_code != 0
    assert message in r.output


def test_ray_backend_refuses_in_memory_logs(tmp_path):
    folder = tmp_path / "sim"
    folder.mkdir()
    (folder / "impressions.csv").write_text("x\n")
    (folder / "outcomes.csv").write_text("x\n")
    r = runner.invoke(app, ["ope", "--logs", str(folder), "--target", "uniform",
                            "--backend", "ray"])
    assert r.exit_code == 2 and "feedback Parquet" in r.output
