"""``reelpick promote`` / ``reelpick ope --candidates`` on page-level estimates: the refusal
paths (exit 3, nothing published, the reason printed) and a permissive rule that ships."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from reelpick.cli import app
from reelpick.page import PagePolicyConfig, train_page_policy
from reelpick.policies import PopularPolicy
from reelpick.serve.model_dir import read_manifest
from reelpick.world import World, WorldConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def served_logs(tmp_path_factory):
    """A page policy (saved as the only candidate) and logs it served, with and without the
    column that marks its exploration bucket."""
    root = tmp_path_factory.mktemp("promote")
    world = World(WorldConfig.preset("small", recent_weight=0.0, seen_penalty=0.0), seed=5)
    train = world.simulate(PopularPolicy(epsilon=0.5, artwork="random"), 1_500, seed=1)
    cfg = PagePolicyConfig(n_rows=world.config.page_rows,
                           n_positions=world.config.page_positions, epsilon=0.3, trees=10,
                           train_rows=20_000, artwork="first")
    policy = train_page_policy(train.impressions(), train.outcomes(), world.titles(),
                               artworks=world.artworks(), interactions=train.interactions(),
                               config=cfg, name="p")
    cand = root / "cand"
    policy.save(cand / "00-p")
    log = world.simulate(policy.for_members(world.members()["member_id"],
                                            world.config.countries), 1_500, seed=2)
    imp = log.impressions()
    assert "page_source" in imp.columns
    marked, bare, plays = root / "marked", root / "bare", root / "plays"
    for folder, table in ((marked, imp), (bare, imp.drop(columns=["page_source"])),
                          (plays, imp)):
        folder.mkdir()
        table.to_parquet(folder / "impressions.parquet", index=False)
        log.outcomes().to_parquet(folder / "outcomes.parquet", index=False)
        world.titles().to_parquet(folder / "titles.parquet", index=False)
    # every play, the members' own (organic) ones too: all plays per visit can be estimated
    log.interactions().to_parquet(plays / "interactions.parquet", index=False)
    return root, cand, marked, bare


def test_promote_refuses_without_an_exploration_bucket(served_logs) -> None:
    root, cand, _, bare = served_logs
    model_dir = root / "model-bare"
    r = runner.invoke(app, ["promote", "--logs", str(bare), "--candidates", str(cand),
                            "--model-dir", str(model_dir), "--min-ess", "1",
                            "--min-matched", "0", "--margin", "-10"])
    assert r.exit_code == 3, r.output
    out = " ".join(r.output.split())
    assert "refused" in out and "unreliable" in out and "exploration bucket" in out
    assert not (model_dir / "manifest.json").exists()


def test_promote_ships_on_a_permissive_rule_with_the_served_marginals(served_logs) -> None:
    root, cand, marked, _ = served_logs
    model_dir = root / "model"
    r = runner.invoke(app, ["promote", "--logs", str(marked), "--candidates", str(cand),
                            "--model-dir", str(model_dir), "--served", str(cand / "00-p"),
                            "--min-ess", "1", "--min-matched", "0", "--margin", "-10",
                            "--json", str(root / "promote.json")])
    assert r.exit_code == 0, r.output
    report = json.loads((root / "promote.json").read_text())
    est = report["candidates"][0]["pbm_dr"]
    # the served policy reproduces the logged propensities: every visit is used
    assert est["reliable"] and est["logger"] == "served policy" and est["n"] == 1_500
    promo = read_manifest(model_dir)["promotion"]
    assert promo["estimator"] == "pbm_dr" and promo["winner"] == "p"


def test_promote_rejects_an_unknown_estimator(served_logs) -> None:
    root, cand, marked, _ = served_logs
    r = runner.invoke(app, ["promote", "--logs", str(marked), "--candidates", str(cand),
                            "--model-dir", str(root / "m"), "--estimator", "magic"])
    assert r.exit_code == 2 and "--estimator" in r.output


def test_ope_candidates_reports_page_level_estimates(served_logs) -> None:
    root, cand, marked, _ = served_logs
    r = runner.invoke(app, ["ope", "--logs", str(marked), "--candidates", str(cand),
                            "--json", str(root / "ope.json")])
    assert r.exit_code == 0, r.output
    rec = json.loads((root / "ope.json").read_text())["candidates"][0]
    for k in ("pbm_ips", "pbm_snips", "pbm_dr", "pbm_sndr"):
        assert rec[k]["reliable"] and rec[k]["logger"] == "exploration bucket"
        assert rec[k]["lo"] <= rec[k]["value"] <= rec[k]["hi"]


def test_all_plays_estimate_needs_the_interactions_and_then_ships(served_logs) -> None:
    """Without an interactions table ``--estimator pbm_plays`` is a clear error; with it the
    report carries all plays per visit (organic plays off the page added: above page plays)
    and the rule ships against the served all-plays baseline."""
    root, cand, marked, _ = served_logs
    r = runner.invoke(app, ["promote", "--logs", str(marked), "--candidates", str(cand),
                            "--model-dir", str(root / "m-plays"), "--estimator", "pbm_plays"])
    assert r.exit_code != 0 and "interactions" in " ".join(r.output.split())
    plays = root / "plays"
    r = runner.invoke(app, ["ope", "--logs", str(plays), "--candidates", str(cand),
                            "--json", str(root / "ope-plays.json")])
    assert r.exit_code == 0, r.output
    assert "all plays DR" in r.output
    rep = json.loads((root / "ope-plays.json").read_text())
    assert rep["organic_plays"] > 0
    assert rep["baseline_plays"]["value"] > rep["baseline"]["value"]
    rec = rep["candidates"][0]
    assert rec["pbm_plays"]["reliable"], rec["pbm_plays"]
    assert rec["pbm_plays"]["value"] > rec["pbm_dr"]["value"]
    # the candidate is the served policy: its all-plays estimate covers the logs' own value
    assert rec["pbm_plays"]["lo"] <= rep["baseline_plays"]["value"] <= rec["pbm_plays"]["hi"]
    model_dir = root / "model-plays"
    r = runner.invoke(app, ["promote", "--logs", str(plays), "--candidates", str(cand),
                            "--model-dir", str(model_dir), "--estimator", "pbm_plays",
                            "--min-ess", "1", "--min-matched", "0", "--margin", "-10"])
    assert r.exit_code == 0, r.output
    promo = read_manifest(model_dir)["promotion"]
    assert promo["estimator"] == "pbm_plays"
    assert promo["baseline"]["value"] == pytest.approx(rep["baseline_plays"]["value"])
