"""``reelpick causal iv|uplift|sgd-iv`` through typer's CliRunner: output, --json, clear errors."""

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


def test_iv_table_shows_the_ar_set_and_the_first_stage(promo, tmp_path) -> None:
    """The human-readable table carries what --json does: the Anderson-Rubin set beside the
    Wald interval, and the first-stage F with a verdict (strong here: F in the hundreds)."""
    js = tmp_path / "iv.json"
    res = runner.invoke(app, ["causal", "iv", "--logs", str(promo), "--json", str(js)])
    assert res.exit_code == 0, res.output
    text = _text(res.output)
    out = json.loads(js.read_text())["iv"]
    lo, hi = out["ar_conf_set"]["intervals"][0]
    assert out["ar_conf_set"]["kind"] == "interval"
    assert "95% AR set" in text and f"[{lo:.6g}, {hi:.6g}]" in text
    f = out["first_stage"]
    assert "effective F" in text and f"{f['f_stat_effective']['exposure']:.1f}" in text
    assert f"{f['f_stat_homoskedastic']['exposure']:.1f}" in text
    assert not out["weak_instrument"] and "strong" in text and "weak:" not in text


def test_iv_table_warns_of_a_weak_first_stage(tmp_path) -> None:
    """A promotion cell that barely moves exposure: the table says the first stage is weak,
    points to the AR set (here unbounded), and the warning is printed."""
    from reelpick.world import PromotionPolicy, World, WorldConfig

    world = World(WorldConfig.preset("small"), seed=5)
    world.simulate(PromotionPolicy(cell_effect=0.01), 3000, seed=6).write(tmp_path)
    world.titles().to_parquet(tmp_path / "titles.parquet", index=False)
    js = tmp_path / "iv.json"
    res = runner.invoke(app, ["causal", "iv", "--logs", str(tmp_path), "--json", str(js)])
    assert res.exit_code == 0, res.output
    text = _text(res.output)
    out = json.loads(js.read_text())["iv"]
    assert out["weak_instrument"]
    assert "weak: trust the AR set, not the Wald CI" in text
    assert "warning: weak instruments: first-stage F" in text
    kind = out["ar_conf_set"]["kind"]
    assert kind == "interval" or f"({kind})" in text


def test_sgd_iv_table_shows_ar_first_stage_and_convergence(promo, tmp_path) -> None:
    design = tmp_path / "design.parquet"
    res = runner.invoke(app, ["causal", "design", "--logs", str(promo), "--out", str(design)])
    assert res.exit_code == 0, res.output
    js = tmp_path / "sgd.json"
    res = runner.invoke(app, ["causal", "sgd-iv", "--data", str(design), "--batch-size", "256",
                              "--json", str(js)])
    assert res.exit_code == 0, res.output
    text = _text(res.output)
    out = json.loads(js.read_text())
    assert out["converged"] is True and out["epochs"] >= 2 and not out["convergence_warnings"]
    assert f"{out['epochs']} epochs, converged" in text
    lo, hi = out["sgdiv"]["ar_conf_set"]["intervals"][0]
    assert "95% AR set" in text and f"[{lo:.6g}, {hi:.6g}]" in text
    eff = out["sgdiv"]["first_stage"]["f_stat_effective"]["exposure"]
    assert "effective F" in text and f"{eff:.1f}" in text and "strong" in text
    short = runner.invoke(app, ["causal", "sgd-iv", "--data", str(design), "--batch-size",
                                "256", "--epochs", "1"])
    assert short.exit_code == 0, short.output
    assert "NOT converged" in _text(short.output)
    assert "warning: SGD-IV: the nuisance regressions did not converge" in _text(short.output)


def test_sgd_iv_on_ray_needs_an_epoch_count(tmp_path) -> None:
    res = runner.invoke(app, ["causal", "sgd-iv", "--data", str(tmp_path), "--backend", "ray"])
    assert res.exit_code == 2
    assert "--backend ray: pass --epochs N" in _text(res.output)


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
