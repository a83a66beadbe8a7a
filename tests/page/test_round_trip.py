"""The whole loop through the real service: simulated members ask a real uvicorn server for
pages over HTTP and send their plays; the service's exported log trains the next candidates
(``reelpick train``), they are estimated (``reelpick ope``) and the winner is promoted
(``reelpick promote --reload``); the page served afterwards is the promoted version. The
HTTP loop's plays per visit match the same policy run in process, within noise."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from reelpick.cli import app
from reelpick.data.schema import DEVICES
from reelpick.page import PagePolicy, PagePolicyConfig, train_page_policy
from reelpick.policies import PopularPolicy
from reelpick.serve import Settings, create_app
from reelpick.serve.export import export_logs
from reelpick.serve.model_dir import publish_policy, read_manifest
from reelpick.world import World, WorldConfig
from reelpick.world.service import ServicePolicy
from tests.serve.conftest import API_KEY, LiveServer

runner = CliRunner()
N_VISITS = 3_000


def _world() -> World:
    return World(WorldConfig.preset("small"), seed=41)


def _split(world: World, seed: int) -> tuple[dict, dict]:
    visits = world.draw_visits(N_VISITS, np.random.default_rng([seed, 1]))
    cut = int(np.quantile(visits["timestamp"], 0.5))
    early = visits["timestamp"] < cut
    return ({k: v[early] for k, v in visits.items()}, {k: v[~early] for k, v in visits.items()})


@pytest.fixture(scope="module")
def first_version(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Day 0 .. mid-horizon logged by an exploring popularity policy; v1 trained on it."""
    world = _world()
    early, late = _split(world, 5)
    state = world.initial_state()
    log0 = world.simulate_visits(PopularPolicy(epsilon=0.5, artwork="random"), early, state,
                                 np.random.default_rng(2), np.random.default_rng(3))
    cfg = PagePolicyConfig(n_rows=world.config.page_rows,
                           n_positions=world.config.page_positions, epsilon=0.3, trees=30,
                           train_rows=40_000)
    v1 = train_page_policy(log0.impressions(), log0.outcomes(), world.titles(),
                           artworks=world.artworks(), interactions=log0.interactions(),
                           config=cfg, name="v1")
    root = tmp_path_factory.mktemp("loop")
    v1.save(root / "v1")
    model_dir = root / "model"
    publish_policy(model_dir, root / "v1")
    return {"world": world, "state": state, "late": late, "root": root,
            "model_dir": model_dir, "v1_version": v1.version}


def test_served_loop_trains_promotes_and_serves_the_winner(first_version: dict) -> None:
    fv = first_version
    world, root, model_dir = fv["world"], fv["root"], fv["model_dir"]
    settings = Settings(model_dir=model_dir, data_dir=root / "data", api_key=API_KEY, seed=7)
    state_http = fv["state"].copy()
    with LiveServer(create_app(settings)) as srv:
        policy = ServicePolicy(srv.url, world.titles(), world.artworks(),
                               world.config.countries, api_key=API_KEY)
        log_http = world.simulate_visits(policy, fv["late"], state_http,
                                         np.random.default_rng(4), np.random.default_rng(5))
        assert set(policy.versions) == {fv["v1_version"]}
        accepted = policy.send_plays(log_http)
        assert accepted == int((log_http.shown.play > 0).sum()) > 0

        # the service's own durable log, exported, is what the next version learns from
        exported = root / "served"
        res = export_logs(settings.db_path, exported)
        n_late = len(fv["late"]["member"])
        assert res.pages == n_late and res.outcomes == accepted

        cand = root / "cand"
        r = runner.invoke(app, ["train", "--logs", str(exported), "--catalog", str(model_dir),
                                "--out", str(cand), "--set", "epsilon=0.3",
                                "--set", "trees=20,40", "--set", "train_rows=30000"])
        assert r.exit_code == 0, r.output
        assert len(json.loads((cand / "candidates.json").read_text())) == 2

        r = runner.invoke(app, ["ope", "--logs", str(exported), "--candidates", str(cand),
                                "--json", str(root / "ope.json")])
        assert r.exit_code == 0, r.output
        report = json.loads((root / "ope.json").read_text())
        assert report["n_pages"] == n_late
        for c in report["candidates"]:
            s = c["snips"]
            assert s["lo"] <= s["value"] <= s["hi"] and s["ess"] > 0

        # a rule nobody can meet refuses, exits 3 and changes nothing
        r = runner.invoke(app, ["promote", "--logs", str(exported), "--candidates", str(cand),
                                "--model-dir", str(model_dir), "--min-ess", "1e12"])
        assert r.exit_code == 3, r.output
        assert "refused" in r.output
        assert read_manifest(model_dir)["version"] == fv["v1_version"]

        # a permissive margin ships the best candidate and reloads the running service
        r = runner.invoke(app, ["promote", "--logs", str(exported), "--candidates", str(cand),
                                "--model-dir", str(model_dir), "--min-ess", "1",
                                "--min-matched", "0", "--margin", "-10",
                                "--reload", srv.url, "--api-key", API_KEY,
                                "--json", str(root / "promote.json")])
        assert r.exit_code == 0, r.output
        decision = json.loads((root / "promote.json").read_text())["decision"]
        winner = next(c for c in report["candidates"] if c["name"] == decision["winner"])
        manifest = read_manifest(model_dir)
        assert manifest["version"] == winner["version"] != fv["v1_version"]
        assert manifest["promotion"]["winner"] == winner["name"]
        # the logs mark the service's uniform pages and the model dir's current version (v1)
        # served them: the page-level estimate used its exact marginals on every visit
        est = manifest["promotion"]["estimate"]
        assert est["reliable"] and est["logger"] == "served policy", est["note"]
        page = httpx.get(srv.url + "/v1/homepage", params={"member": "m3"}).json()
        assert page["model_version"] == winner["version"]

    # the same v1 policy in process, on the same visits from the same state: same value
    v1 = PagePolicy.load(root / "v1").for_members(world.members()["member_id"],
                                                world.config.countries)
    log_mem = world.simulate_visits(v1, fv["late"], fv["state"].copy(),
                                    np.random.default_rng(4), np.random.default_rng(5))
    a = np.bincount(log_http.shown.visit, weights=log_http.shown.play, minlength=n_late)
    b = np.bincount(log_mem.shown.visit, weights=log_mem.shown.play, minlength=n_late)
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert abs(a.mean() - b.mean()) < 4 * se, (a.mean(), b.mean(), se)


def test_served_pages_carry_the_policy_s_exact_propensities(first_version: dict) -> None:
    """Every slot the service answers for a v1 page has the propensity of v1's own rule:
    epsilon / A for any title plus 1 - epsilon where v1's greedy page has it."""
    fv = first_version
    if read_manifest(fv["model_dir"])["version"] != fv["v1_version"]:
        publish_policy(fv["model_dir"], fv["root"] / "v1")
    settings = Settings(model_dir=fv["model_dir"], data_dir=fv["root"] / "data2",
                        api_key=API_KEY)
    at = int(fv["late"]["timestamp"][0])
    country = str(fv["world"].config.countries[0])
    with LiveServer(create_app(settings)) as srv:
        page = httpx.get(srv.url + "/v1/homepage", params={
            "member": "m5", "device": "tv", "country": country, "hour": 21,
            "day_of_week": 5, "at": at}).json()
    assert page["model_version"] == fv["v1_version"]
    v1 = PagePolicy.load(fv["root"] / "v1")
    vb = v1.visits(["m5"], timestamp=np.array([at]), device=np.array([DEVICES.index("tv")]),
                   country=np.array([v1.catalogue.countries.index(country)]),
                   hour=np.array([21]), day_of_week=np.array([5]))
    greedy = v1.greedy(vb, np.random.default_rng(0)).titles[0]
    n_avail = int(v1.available(at)[vb.country[0]].sum())
    index = {t: i for i, t in enumerate(v1.titles["title_id"].astype(str))}
    items = [it for row in page["rows"] for it in row["items"]]
    assert len(items) == fv["world"].config.page_rows * fv["world"].config.page_positions
    P = v1.config.n_positions
    served = np.array([[index[it["title_id"]] for it in items]])
    # the image probabilities of the policy's own artwork bandit for these titles
    img = v1.selector.probabilities_for(vb.member, vb.device, served)[0]
    art_ids = v1.artworks["artwork_id"].astype(str).tolist()
    first_art = {t: i for i, t in reversed(list(enumerate(v1.artworks["title_id"].astype(str))))}
    for j, it in enumerate(items):
        t = index[it["title_id"]]
        hit = float(greedy[it["row_index"] * P + it["position"]] == t)
        expected = 0.3 / n_avail + 0.7 * hit
        assert it["propensity"] == pytest.approx(expected, rel=1e-9), it
        variant = art_ids.index(it["artwork_id"]) - first_art[it["title_id"]]
        assert it["artwork_propensity"] == pytest.approx(img[j, variant], rel=1e-9), it


def test_promote_fails_clearly_on_bad_paths(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    r = runner.invoke(app, ["promote", "--logs", str(tmp_path / "logs"), "--candidates",
                            str(tmp_path / "logs"), "--model-dir", str(tmp_path / "m")])
    assert r.exit_code == 2 and "policy.json" in r.output
