"""PagePolicy: trained from tables, saved and loaded without change, exact propensities, the
world's country order mapped, and the promotion rule."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from reelpick.page import (
    COLD,
    PagePolicy,
    PagePolicyConfig,
    train_page_policies,
    train_page_policy,
)
from reelpick.page.evaluate import (
    evaluate_candidates,
    explored_pages,
    promotion_decision,
    served_value,
)
from reelpick.policies import PopularPolicy
from reelpick.world import World, WorldConfig


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    world = World(WorldConfig.preset("small"), seed=31)
    log = world.simulate(PopularPolicy(epsilon=0.5, artwork="random"), 1_500, seed=2)
    cfg = PagePolicyConfig(n_rows=world.config.page_rows,
                           n_positions=world.config.page_positions, epsilon=0.3, trees=20,
                           train_rows=30_000)
    policy = train_page_policy(log.impressions(), log.outcomes(), world.titles(),
                               artworks=world.artworks(), interactions=log.interactions(),
                               config=cfg, name="p")
    path = policy.save(tmp_path_factory.mktemp("policy") / "p")
    return world, log, policy, path


def same_pages(world, a, b, visits, *, seed: int):
    """Assert that policies ``a`` and ``b`` give ``visits`` the same pages (titles, images,
    propensities) from the same seed; returns both page batches."""
    members, countries = world.members()["member_id"], world.config.countries
    pa = a.for_members(members, countries).choose(visits, np.random.default_rng(seed))
    pb = b.for_members(members, countries).choose(visits, np.random.default_rng(seed))
    np.testing.assert_array_equal(pa.titles, pb.titles)
    np.testing.assert_array_equal(pa.artworks, pb.artworks)
    np.testing.assert_allclose(pa.propensity, pb.propensity)
    return pa, pb


def test_save_load_gives_the_same_pages(trained) -> None:
    world, _, policy, path = trained
    loaded = PagePolicy.load(path)
    assert loaded.version == policy.version and loaded.config == policy.config
    vb = world.make_visits(np.arange(40), world.config.start + 20 * 86_400)
    a, b = same_pages(world, policy, loaded, vb, seed=5)
    np.testing.assert_allclose(a.artwork_propensity, b.artwork_propensity)
    a.check(vb)
    # no pickle anywhere in the directory
    assert not [p for p in path.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]


def test_precomputed_pages_are_the_pages_served_without_it(trained, monkeypatch) -> None:
    """precompute composes the pages and their image distributions ahead; the pages drawn
    afterwards are exactly those a policy that composed them on request draws, and neither
    the page nor its images are computed again."""
    world, _, _, path = trained
    plain, ahead = PagePolicy.load(path), PagePolicy.load(path)
    members, countries = world.members()["member_id"], world.config.countries
    vb = world.make_visits(np.arange(40), world.config.start + 21 * 86_400 + 600)
    mapped = ahead.for_members(members, countries).map_visits(vb)
    assert ahead.precompute(mapped) == 40
    assert ahead.precompute(mapped) == 0           # remembered: nothing composed again
    assert ahead.cache_info() == {"pages": 40, "hits": 40, "misses": 40, "stored": 0}
    greedy = ahead.greedy(mapped, np.random.default_rng(0)).titles
    calls = []
    monkeypatch.setattr(ahead.selector, "_triple_probabilities",
                        lambda *a: calls.append(a) or pytest.fail("images recomputed"))
    ahead.selector.probabilities(mapped, greedy)   # the whole pages' images remembered
    monkeypatch.undo()
    a, b = same_pages(world, plain, ahead, vb, seed=7)
    np.testing.assert_allclose(a.artwork_propensity, b.artwork_propensity)
    assert ahead.cache_info()["misses"] == 40 and not calls
    with pytest.raises(ValueError, match="pages: must be an integer >= 1"):
        ahead.cache(0)
    ahead.cache(5)                                 # a smaller cache keeps at most 5 pages
    ahead.choose(ahead.for_members(members, countries).map_visits(
        world.make_visits(np.arange(40, 50), world.config.start + 21 * 86_400 + 600)),
        np.random.default_rng(1))
    assert ahead.cache_info()["pages"] == 5


def test_title_propensities_follow_the_epsilon_rule(trained) -> None:
    world, _, policy, _ = trained
    bound = policy.for_members(world.members()["member_id"], world.config.countries)
    vb = world.make_visits(np.arange(60), world.config.start + 30 * 86_400)
    page = bound.choose(vb, np.random.default_rng(1))
    greedy = bound.greedy(vb, np.random.default_rng(1)).titles
    n_avail = vb.available[vb.country].sum(1)[:, None]
    expected = 0.3 / n_avail + 0.7 * (page.titles == greedy)
    np.testing.assert_allclose(page.propensity, expected, rtol=1e-12)


def test_country_order_is_mapped_not_assumed(trained) -> None:
    """The same visit, with the world's countries in two orders, gets the same page."""
    world, _, policy, _ = trained
    countries = tuple(world.config.countries)
    members = world.members()["member_id"]
    vb = world.make_visits(np.arange(30), world.config.start + 25 * 86_400)
    a = policy.for_members(members, countries).greedy(vb, np.random.default_rng(0))
    perm = np.arange(len(countries))[::-1]
    inv = np.argsort(perm)
    flipped = dataclasses.replace(vb, country=inv[vb.country], available=vb.available[perm])
    b = policy.for_members(members, tuple(countries[i] for i in perm)).greedy(
        flipped, np.random.default_rng(0))
    np.testing.assert_array_equal(a.titles, b.titles)
    with pytest.raises(ValueError, match="not in the policy's catalogue"):
        policy.for_members(members, ("XX",))


def test_unknown_members_get_the_cold_start_slot(trained) -> None:
    _, _, policy, _ = trained
    idx = policy.member_index(["m1", "nobody"])
    assert policy.members.to_list()[idx[1]] == COLD and idx[0] != idx[1]


def test_config_and_directory_errors_are_clear(tmp_path, trained) -> None:
    with pytest.raises(ValueError, match="PagePolicyConfig.epsilon"):
        PagePolicyConfig(epsilon=1.5)
    with pytest.raises(ValueError, match="unknown field"):
        PagePolicyConfig.from_dict({"epsilonn": 0.1})
    with pytest.raises(ValueError, match="policy.json"):
        PagePolicy.load(tmp_path)
    (tmp_path / "policy.json").write_text(json.dumps({"kind": "other", "format": 1}))
    with pytest.raises(ValueError, match="expected kind"):
        PagePolicy.load(tmp_path)


def test_a_policy_evaluated_on_its_own_logs_matches_its_greedy_slots(trained) -> None:
    """On logs of the policy itself, its greedy page matches every slot of the 1 - epsilon
    exploiting visits, and SNIPS's interval covers the logged value of those slots."""
    world, _, policy, _ = trained
    bound = policy.for_members(world.members()["member_id"], world.config.countries)
    log = world.simulate(bound, 2_000, seed=9)
    pages = policy.logged_pages(log.impressions(), log.outcomes())
    res = evaluate_candidates(pages, [policy])[0]
    n_slots = pages.n_slots
    assert res["snips"]["matched"] == pytest.approx(0.7 * n_slots, rel=0.08)
    # the exploiting visits' own plays per visit (visits where every slot is the greedy one)
    greedy_pages = (pages.slot_matrix("propensity") >= 0.7).all(1)
    per = np.bincount(pages.visit, weights=pages.play, minlength=pages.n_pages)
    s = res["snips"]
    assert s["lo"] - 0.05 <= per[greedy_pages].mean() <= s["hi"] + 0.05
    assert served_value(pages)["n"] == 2_000
    # without the exploration bucket marked, the page-level estimate is flagged unreliable
    assert not res["pbm_dr"]["reliable"] and "exploration bucket" in res["pbm_dr"]["reason"]


def test_page_level_estimate_of_a_policy_on_its_own_logs_is_its_served_value(trained) -> None:
    """The logs mark the policy's uniform pages (``page_source``); the candidate as served
    (its page with its own epsilon) is the logger, so the page-level estimate from the
    exploration bucket alone must agree with the on-policy value of all logged visits."""
    world, _, policy, _ = trained
    bound = policy.for_members(world.members()["member_id"], world.config.countries)
    log = world.simulate(bound, 2_000, seed=11)
    imp = log.impressions()
    pages = policy.logged_pages(imp, log.outcomes())
    explored = explored_pages(imp, pages)
    assert explored is not None and 0.2 < explored.mean() < 0.4  # epsilon = 0.3
    res = evaluate_candidates(pages, [policy], explored=explored)[0]
    base = served_value(pages)
    for k in ("pbm_ips", "pbm_snips", "pbm_dr", "pbm_sndr"):
        e = res[k]
        assert e["reliable"] and e["bucket_visits"] == int(explored.sum())
        # both are estimates of one value: their difference within its combined 95% band
        assert abs(e["value"] - base["value"]) < 1.96 * np.hypot(e["se"], base["se"]), k
    assert res["pbm_dr"]["hi"] - res["pbm_dr"]["lo"] < res["pbm_ips"]["hi"] - res["pbm_ips"]["lo"]


def test_promotion_rule() -> None:
    base = {"value": 1.0, "lo": 0.95, "hi": 1.05}

    def cand(name, v, lo, ess=1_000.0, matched=2.0, reliable=True):
        return {"name": name, "pbm_dr": {"value": v, "lo": lo, "hi": 2 * v - lo, "ess": ess,
                                         "matched": matched, "reliable": reliable,
                                         "reason": "" if reliable else "too few explored"}}

    d = promotion_decision([cand("a", 1.2, 1.1), cand("b", 1.3, 1.15)], base)
    assert d.promote and d.winner == "b" and d.eligible == ("a", "b")
    # the best estimate rests on too little evidence: it is not eligible
    d = promotion_decision([cand("a", 1.2, 1.1), cand("b", 9.0, 8.0, ess=10)], base)
    assert d.promote and d.winner == "a"
    d = promotion_decision([cand("b", 9.0, 8.0, matched=0.1)], base)
    assert not d.promote and "refused" in d.reason and "matched" in d.reason
    # eligible but not surely better than what is served
    d = promotion_decision([cand("a", 1.02, 0.9)], base)
    assert not d.promote and d.winner == "a" and "does not beat" in d.reason
    d = promotion_decision([cand("a", 1.2, 1.1)], base, margin=0.2)
    assert not d.promote
    assert not promotion_decision([], base).promote
    # an unreliable estimate is never chosen, and the refusal says why
    d = promotion_decision([cand("a", 1.2, 1.1), cand("b", 9.0, 8.0, reliable=False)], base)
    assert d.promote and d.winner == "a"
    d = promotion_decision([cand("b", 9.0, 8.0, reliable=False)], base)
    assert not d.promote and "unreliable" in d.reason and "too few explored" in d.reason
    with pytest.raises(ValueError, match="estimator: 'dr'"):
        promotion_decision([cand("a", 1.2, 1.1)], base, estimator="dr")


def test_policies_trained_together_equal_policies_trained_alone(trained) -> None:
    """train_page_policies shares the logs, histories, sources and artwork bandit between
    configs; each policy composes the pages train_page_policy gives it alone."""
    world, log, policy, _ = trained
    other = dataclasses.replace(policy.config, context=False, trees=10)
    tables = (log.impressions(), log.outcomes(), world.titles())
    kw = dict(artworks=world.artworks(), interactions=log.interactions())
    both = train_page_policies(*tables, {"p": policy.config, "q": other}, **kw)
    alone = train_page_policy(*tables, config=other, name="q", **kw)
    assert [p.name for p in both] == ["p", "q"]
    vb = world.make_visits(np.arange(50), world.config.start + 22 * 86_400)
    for a, b in ((both[0], policy), (both[1], alone)):
        same_pages(world, a, b, vb, seed=3)
    # the context-free ranker has no context features, and its trending is by country only
    names = both[1].composer.features.names
    assert "hour" not in names and "hour" in both[0].composer.features.names
    trending = {s.name: s for s in both[1].composer.sources}["trending"]
    assert trending.by_context is False
    with pytest.raises(ValueError, match="configs"):
        train_page_policies(*tables, {}, **kw)


def test_the_sequence_source_saves_without_pickle_and_composes_the_same_pages(
        trained, tmp_path) -> None:
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="PagePolicyConfig.seq_epochs"):
        PagePolicyConfig(sequence=True, seq_epochs=0)
    world, log, policy, _ = trained
    cfg = dataclasses.replace(policy.config, sequence=True, seq_epochs=1)
    seq = train_page_policy(log.impressions(), log.outcomes(), world.titles(),
                            artworks=world.artworks(), interactions=log.interactions(),
                            config=cfg, name="seq")
    assert "seq" in [s.name for s in seq.composer.sources]
    assert "src=seq" in seq.composer.features.names
    path = seq.save(tmp_path / "seq")
    assert (path / "sources" / "seq.npz").exists()
    assert not [p for p in path.rglob("*") if p.suffix in (".pkl", ".pickle", ".pt")]
    with np.load(path / "sources" / "seq.npz", allow_pickle=False) as z:
        assert len(z.files) > 0
    loaded = PagePolicy.load(path)
    assert loaded.config.sequence and "seq" in [s.name for s in loaded.composer.sources]
    vb = world.make_visits(np.arange(40), world.config.start + 21 * 86_400)
    same_pages(world, seq, loaded, vb, seed=8)


def test_pages_composed_in_another_process_are_served_from_the_store(trained, tmp_path,
                                                                     monkeypatch) -> None:
    """A policy that uses a PageStore serves the pages another process of the same version
    precomputed into it: the same titles, images and propensities as composing them, and
    neither the page nor its images computed again; another version finds nothing."""
    from reelpick.page.store import PageStore

    world, _, _, path = trained
    job, served, plain = PagePolicy.load(path), PagePolicy.load(path), PagePolicy.load(path)
    store = PageStore(tmp_path / "pages.sqlite3")
    members, countries = world.members()["member_id"], world.config.countries
    vb = world.make_visits(np.arange(30), world.config.start + 21 * 86_400 + 900)
    mapped = job.for_members(members, countries).map_visits(vb)
    assert job.precompute(mapped, store=store) == 30
    assert store.versions() == {job.version: 30}
    served.use_store(store)
    monkeypatch.setattr(served.composer, "compose",
                        lambda *a: pytest.fail("page composed again"))
    monkeypatch.setattr(served.selector, "_win_probabilities",
                        lambda *a: pytest.fail("images computed again"))
    greedy = served.greedy(mapped, np.random.default_rng(0))       # from the store
    monkeypatch.undo()
    assert served.cache_info() == {"pages": 30, "hits": 30, "misses": 0, "stored": 30}
    np.testing.assert_array_equal(greedy.titles, plain.greedy(mapped, np.random.default_rng(0)
                                                              ).titles)
    np.testing.assert_array_equal(greedy.slot_label, plain.greedy(
        mapped, np.random.default_rng(0)).slot_label)
    images = served.selector.win_probabilities(mapped.member, mapped.device, greedy.titles)
    expected = plain.selector.win_probabilities(mapped.member, mapped.device, greedy.titles)
    np.testing.assert_allclose(images, expected, rtol=0, atol=1e-9)  # quadrature tolerance
    a, b = same_pages(world, plain, served, vb, seed=3)
    np.testing.assert_allclose(a.artwork_propensity, b.artwork_propensity, atol=1e-9)
    # the served process's precompute writes only what the store lacked
    more = job.for_members(members, countries).map_visits(
        world.make_visits(np.arange(25, 35), world.config.start + 21 * 86_400 + 900))
    assert served.precompute(more) == 5 and len(store) == 35
    other = PageStore(tmp_path / "pages.sqlite3")                 # a second connection
    assert len(other.get(job.version, [b"nothing"])) == 0
    assert other.get("another-version", []) == {}
    assert other.prune(keep_version="another-version") == 35 and len(store) == 0


def test_page_store_round_trip_and_errors(tmp_path) -> None:
    from reelpick.page.store import PageStore, StoredPage

    store = PageStore(tmp_path / "sub" / "pages.sqlite3")          # the folder is created
    pages = [StoredPage(key=bytes([i]), bucket=100 + i, titles=np.arange(4) - i,
                        labels=["a", "b", "é", ""], score=np.array([.5, np.nan, 0, 1]),
                        probs=np.linspace(0, 1, 3) * i) for i in range(3)]
    assert store.put("v", pages) == 3
    got = store.get("v", [bytes([2]), bytes([0]), b"\xff"])
    assert sorted(got) == [bytes([0]), bytes([2])]
    np.testing.assert_array_equal(got[bytes([2])].titles, np.arange(4) - 2)
    np.testing.assert_array_equal(got[bytes([2])].score, pages[2].score)
    np.testing.assert_array_equal(got[bytes([2])].probs, pages[2].probs)
    assert got[bytes([0])].labels == ["a", "b", "é", ""] and got[bytes([0])].bucket == 100
    bare = StoredPage(key=bytes([0]), bucket=1, titles=np.array([7]))
    store.put("v", [bare])                                         # replaced, not duplicated
    assert len(store) == 3 and store.get("v", [bytes([0])])[bytes([0])].labels is None
    assert len(store.get("v", [bytes([i % 256]) for i in range(1_200)])) == 3  # > one chunk
    assert store.prune(from_bucket=102) == 2 and store.prune() == 0
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(ValueError, match="dir.sqlite3: cannot open the page store"):
        PageStore(tmp_path / "dir.sqlite3")
