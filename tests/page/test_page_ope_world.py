"""Page-level OPE of a page policy candidate against the simulated world's truth.

A stationary small world (member state does not move plays): a served page policy logs
visits with its exploration bucket marked; a *different* candidate (another ranker, more
exploration) is estimated from those logs and compared with its true expected page plays on
the same visits, as served: ``(1 - eps) V(composed page) + eps V(uniform page)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.decision import PageBatch, VisitBatch
from reelpick.loop.simulator import page_truth
from reelpick.page import PagePolicyConfig, train_page_policy
from reelpick.page.evaluate import evaluate_candidates, explored_pages, organic_plays
from reelpick.policies import PopularPolicy, UniformPolicy
from reelpick.world import World, WorldConfig


class _Composed:
    def __init__(self, bound) -> None:
        self.bound, self.name, self.version = bound, "composed", "v"

    def choose(self, visits: VisitBatch, rng: np.random.Generator) -> PageBatch:
        return self.bound.greedy(visits, rng)


@pytest.mark.slow
def test_candidate_estimates_cover_the_world_truth_and_rank_it() -> None:
    world = World(WorldConfig.preset("small", recent_weight=0.0, seen_penalty=0.0), seed=7)
    members, countries = world.members()["member_id"], world.config.countries
    train = world.simulate(PopularPolicy(epsilon=0.5, artwork="first"), 2_500, seed=1)

    def fit(**changes):
        cfg = PagePolicyConfig(n_rows=world.config.page_rows,
                               n_positions=world.config.page_positions, artwork="first",
                               train_rows=30_000, **changes)
        return train_page_policy(train.impressions(), train.outcomes(), world.titles(),
                                 artworks=world.artworks(), interactions=train.interactions(),
                                 config=cfg)

    served = fit(trees=10, epsilon=0.25, seed=3)
    cands = [fit(trees=30, epsilon=0.1), fit(trees=30, epsilon=0.6)]
    log = world.simulate(served.for_members(members, countries), 2_500, seed=4)
    imp = log.impressions()
    pages = served.logged_pages(imp, log.outcomes())
    explored = explored_pages(imp, pages)
    organic = organic_plays(pages, log.interactions())
    assert organic[0].size > 0
    full = evaluate_candidates(pages, cands, explored=explored, served=served, organic=organic)
    bucket = evaluate_candidates(pages, cands, explored=explored, organic=organic)

    v = log.visits
    batches = [vb for _, vb in world.batches({f: getattr(v, f) for f in (
        "member", "timestamp", "device", "country", "hour", "day_of_week", "cell", "mood")})]
    state, rng = world.initial_state(), np.random.default_rng(0)
    uni = page_truth(world, UniformPolicy(artwork="first"), batches, state, rng,
                     artwork="page").page_plays.mean()
    uni_all = page_truth(world, UniformPolicy(artwork="first"), batches, state, rng,
                         artwork="page").plays.mean()
    truth, truth_all = [], []
    for c in cands:
        tr = page_truth(world, _Composed(c.for_members(members, countries)), batches, state,
                        rng, artwork="page")
        eps = c.config.epsilon
        truth.append((1 - eps) * tr.page_plays.mean() + eps * uni)
        truth_all.append((1 - eps) * tr.plays.mean() + eps * uni_all)
    assert truth[0] - truth[1] > 0.2  # the heavy explorer is clearly worse
    for res in (full, bucket):
        for r, t in zip(res, truth, strict=True):
            for k in ("pbm_dr", "pbm_snips"):
                assert r[k]["reliable"]
                assert r[k]["lo"] <= t <= r[k]["hi"], (r[k]["logger"], k, r[k], t)
        assert res[0]["pbm_dr"]["value"] > res[1]["pbm_dr"]["value"]
        # all plays (the A/B measure): organic plays off the page taken out of the page sum
        for r, t in zip(res, truth_all, strict=True):
            assert r["pbm_plays"]["reliable"]
            assert r["pbm_plays"]["lo"] <= t <= r["pbm_plays"]["hi"], (r["pbm_plays"], t)
        assert res[0]["pbm_plays"]["value"] > res[1]["pbm_plays"]["value"]
    assert full[0]["pbm_dr"]["logger"] == "served policy"
    assert bucket[0]["pbm_dr"]["logger"] == "exploration bucket"
    # the served marginals use every visit: a much tighter interval than the bucket's
    for f, b in zip(full, bucket, strict=True):
        assert f["pbm_dr"]["hi"] - f["pbm_dr"]["lo"] < 0.8 * (b["pbm_dr"]["hi"] - b["pbm_dr"]["lo"])


def test_organic_plays_attribute_to_the_latest_page_and_drop_page_titles() -> None:
    """Each play goes to its member's latest page at or before it (within the window); plays
    of a title on that page (the page's own), of unknown titles, of members without pages,
    before a member's first page or after the window are dropped."""
    import pandas as pd

    from reelpick.decision.tables import logged_pages

    imp = pd.DataFrame({
        "decision_id": ["p1-0", "p1-1", "p2-0", "p2-1", "p3-0", "p3-1"],
        "page_id": ["p1", "p1", "p2", "p2", "p3", "p3"],
        "member_id": ["m1", "m1", "m1", "m1", "m2", "m2"],
        "timestamp": [1_000, 1_000, 5_000, 5_000, 2_000, 2_000], "row": "r", "row_index": 0,
        "position": [0, 1] * 3, "title_id": ["a", "b", "c", "d", "a", "c"], "policy": "p",
        "propensity": 0.5, "play": 0})
    pages = logged_pages(imp, title_ids=["a", "b", "c", "d", "e"])
    page_of = {str(p): i for i, p in enumerate(pages.page_id)}
    plays = pd.DataFrame({
        "member_id": ["m1", "m1", "m1", "m1", "m1", "m2", "m3", "m1"],
        "title_id": ["c", "a", "e", "e", "c", "e", "e", "zz"],
        "timestamp": [1_100, 5_100, 5_200, 999, 5_050, 2_000 + 3_600, 1_100, 1_200]})
    page, title = organic_plays(pages, plays)
    got = sorted((str(pages.page_id[p]), pages.title_ids[t]) for p, t in zip(page, title))
    # m1 c@1100 -> p1 (c not on p1); a@5100 -> p2 (a not on p2); e@5200 -> p2; e@999 before
    # any page; c@5050 on p2; m2 e@5600 outside the hour; m3 has no page; zz unknown
    assert got == [("p1", "c"), ("p2", "a"), ("p2", "e")]
    assert set(page.tolist()) <= {page_of["p1"], page_of["p2"]}
    with pytest.raises(ValueError, match="timestamp"):
        organic_plays(pages, plays.drop(columns=["timestamp"]))
