"""The served provider (``PagePolicyProvider`` over the published test policy) against the
HomepageProvider contract: exact propensities, availability, artwork, scores, batching, and the
rendered answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reelpick.data.schema import DEVICES
from reelpick.serve import HomepageProvider, Settings, load_bundle
from reelpick.serve.provider import Page, PageContext
from reelpick.serve.render import PageRenderer
from reelpick.serve.schemas import HomepageOut
from tests.serve.conftest import EPSILON, N_POSITIONS, N_ROWS

CTX = PageContext(device="tv", country="US", hour=20, day_of_week=5, timestamp=1_800_000_000)
RENDER_CTX = {"device": "tv", "country": "US", "hour": 20, "day_of_week": 5, "timestamp": 1}


@pytest.fixture(scope="module")
def bundle(model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return load_bundle(Settings(model_dir=model_dir, data_dir=tmp_path_factory.mktemp("d")))


@pytest.fixture(scope="module")
def greedy_bundle(greedy_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return load_bundle(Settings(model_dir=greedy_model_dir,
                                data_dir=tmp_path_factory.mktemp("d")))


@pytest.fixture(scope="module")
def member(bundle) -> str:
    return bundle.catalog.sample_members(1)[0]


def greedy_titles(provider, member: str, ctx: PageContext) -> np.ndarray:
    """``(S,)`` the policy's deterministic page for the request (-1 = empty slot)."""
    policy = provider.policy
    visits = policy.visits(
        [member], timestamp=np.array([ctx.timestamp]), device=np.array([DEVICES.index(ctx.device)]),
        country=np.array([policy.catalogue.countries.index(ctx.country)]),
        hour=np.array([ctx.hour]), day_of_week=np.array([ctx.day_of_week]))
    return policy.greedy(visits, np.random.default_rng(0)).titles[0]


def test_contract(bundle, member: str) -> None:
    p = bundle.provider
    assert isinstance(p, HomepageProvider)
    assert p.name == "test-policy" and p.version == bundle.manifest["version"]
    page = p.compose(member, CTX, np.random.default_rng(0))
    page.check()
    assert 0 < page.n_slots <= N_ROWS * N_POSITIONS and len(page.row_labels) <= N_ROWS
    assert not page.cold_start


def test_propensities_are_the_policys_exact_marginals(bundle, member: str) -> None:
    """Each served slot's propensity is the page policy's
    ``epsilon / A + (1 - epsilon) [t = greedy_s]``; a share epsilon of pages explores."""
    p, cat = bundle.provider, bundle.catalog
    k = cat.countries.index(CTX.country)
    A = int((cat.licensed[k] & (cat.release_ts <= CTX.timestamp)).sum())
    greedy = greedy_titles(p, member, CTX)
    n = 300
    pages = p.compose_many([(member, CTX)] * n, np.random.default_rng(5))
    n_explored = 0
    for page in pages:
        page.check()
        t = np.asarray(page.title_index)
        slot = np.asarray(page.row_index) * N_POSITIONS + np.asarray(page.position)
        explored = bool(np.asarray(page.explored).all())
        assert np.asarray(page.explored).all() == np.asarray(page.explored).any()  # per page
        n_explored += explored
        if not explored:
            np.testing.assert_array_equal(t, greedy[greedy >= 0])
        match = t == greedy[slot] if explored else np.ones(t.size, bool)
        np.testing.assert_allclose(page.propensity, EPSILON / A + (1 - EPSILON) * match,
                                   rtol=1e-12)
    assert abs(n_explored / n - EPSILON) < 4 * np.sqrt(EPSILON * (1 - EPSILON) / n)


def test_unknown_member_gets_a_cold_start_page(bundle) -> None:
    page = bundle.provider.compose("never-seen", CTX, np.random.default_rng(0))
    page.check()
    assert page.cold_start and page.n_slots > 0


def test_only_available_titles(bundle, member: str) -> None:
    """Licensed in the request's country and released by its time, explored pages too."""
    cat = bundle.catalog
    ts = int(np.sort(cat.release_ts)[-8]) - 1  # in the logged period, 8 titles not out yet
    assert (cat.release_ts > ts).sum() >= 8
    for country in cat.countries:
        k = cat.countries.index(country)
        ctx = PageContext("mobile", country, 8, 1, ts)
        for who in (member, "nobody"):
            for page in bundle.provider.compose_many([(who, ctx)] * 10,
                                                     np.random.default_rng(k)):
                idx = np.asarray(page.title_index)
                assert cat.licensed[k, idx].all() and (cat.release_ts[idx] <= ts).all()


def test_same_seed_same_page(bundle) -> None:
    a = bundle.provider.compose("m5", CTX, np.random.default_rng(42))
    b = bundle.provider.compose("m5", CTX, np.random.default_rng(42))
    assert list(a.title_ids) == list(b.title_ids) and list(a.artwork_ids) == list(b.artwork_ids)
    assert np.array_equal(a.propensity, b.propensity)


def test_artwork_is_one_of_the_titles_with_its_probability(bundle, member: str) -> None:
    cat = bundle.catalog
    for page in bundle.provider.compose_many([(member, CTX)] * 5, np.random.default_rng(3)):
        for t, a, q in zip(page.title_ids, page.artwork_ids, page.artwork_propensity):
            lo, hi = cat.art_offset[cat.title_index[t]], cat.art_offset[cat.title_index[t] + 1]
            assert a in set(cat.artwork_ids[lo:hi])
            assert 0 < q <= 1 and (hi - lo > 1 or q == 1)


def test_scores_are_the_rankers_where_it_ranked(bundle, member: str) -> None:
    """A page's ``score`` is the ranker's predicted p(play) of each ranked title (what the web
    page explains); titles an explored page drew instead are NaN (null in the answer)."""
    p = bundle.provider
    greedy = greedy_titles(p, member, CTX)
    seen = {False: 0, True: 0}
    for page in p.compose_many([(member, CTX)] * 40, np.random.default_rng(8)):
        explored = bool(np.asarray(page.explored).all())
        seen[explored] += 1
        t = np.asarray(page.title_index)
        slot = np.asarray(page.row_index) * N_POSITIONS + np.asarray(page.position)
        ranked = t == greedy[slot]
        s = np.asarray(page.score)
        assert np.isnan(s[~ranked]).all()
        assert not explored or ranked.mean() < 0.5
        top = ranked & (np.asarray(page.row_index) == 0)
        assert np.isfinite(s[top]).all() and ((s[top] > 0) & (s[top] < 1)).all()
    assert seen[False] and seen[True]


def test_rendered_json_matches_the_generic_one_and_the_schema(bundle, member: str) -> None:
    r = bundle.renderer
    for who in (member, "nobody"):
        for page in bundle.provider.compose_many([(who, CTX)] * 8, np.random.default_rng(0)):
            body = r.render("abc123", who, page, RENDER_CTX)
            assert json.loads(body) == json.loads(r._generic("abc123", who, page, RENDER_CTX))
            out = HomepageOut.model_validate_json(body)
            assert sum(len(row.items) for row in out.rows) == page.n_slots
            assert out.policy == "test-policy"
    nan_page = page.__class__(**{**page.__dict__, "score": np.full(page.n_slots, np.nan)})
    assert json.loads(r.render("x", "m", nan_page, RENDER_CTX))["rows"][0]["items"][0][
        "score"] is None


def test_batched_pages_equal_single_ones_without_exploration(greedy_bundle) -> None:
    """A policy without exploration and with first images: the pages of one batch equal the
    pages composed one at a time (whatever the generator)."""
    p = greedy_bundle.provider
    assert p.policy.config.epsilon == 0.0
    members = greedy_bundle.catalog.sample_members(3)
    requests = [(m, CTX) for m in (*members, "nobody", members[0])]
    many = p.compose_many(requests, np.random.default_rng(0))
    for (who, ctx), page in zip(requests, many):
        one = p.compose(who, ctx, np.random.default_rng(1))
        page.check()
        assert list(page.title_ids) == list(one.title_ids)
        assert list(page.artwork_ids) == list(one.artwork_ids)
        np.testing.assert_array_equal(page.score, one.score)
        assert (page.propensity == 1).all() and (page.artwork_propensity == 1).all()


def test_batched_rendering_equals_single_pages_and_the_generic_json(bundle, greedy_bundle,
                                                                    monkeypatch) -> None:
    by_index = []
    page_by_index = PageRenderer._page_by_index

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        by_index.append(1)
        return page_by_index(self, *args, **kwargs)

    monkeypatch.setattr(PageRenderer, "_page_by_index", spy)
    for b in (bundle, greedy_bundle):
        r = b.renderer
        members = b.catalog.sample_members(3)
        pages = b.provider.compose_many([(m, CTX) for m in (*members, "nobody")] * 3,
                                        np.random.default_rng(3))
        odd = next(pg for pg in pages if not np.asarray(pg.explored).any())
        pages += [
            Page.single_row([b.catalog.title_ids[0], b.catalog.title_ids[1]],
                            [b.catalog.artwork_ids[0],
                             b.catalog.artwork_ids[b.catalog.art_offset[1]]]),
            odd.__class__(**{**odd.__dict__, "score": np.full(odd.n_slots, np.nan)}),
            odd.__class__(**{**odd.__dict__, "score": np.full(odd.n_slots, np.inf)}),
            odd.__class__(**{**odd.__dict__,  # rows out of order: the per-slot path
                             "row_index": odd.row_index[::-1].copy(),
                             "position": odd.position[::-1].copy()}),
            odd.__class__(**{**odd.__dict__, "artwork_index": None}),
            odd.__class__(**{**odd.__dict__,
                             "propensity": np.linspace(0.1, 1.0, odd.n_slots)}),
            # images drawn by a bandit: their own propensities, still by index
            odd.__class__(**{**odd.__dict__, "artwork_propensity": np.linspace(
                0.2, 0.9, odd.n_slots), "explored": np.zeros(odd.n_slots, bool)}),
            odd.__class__(**{**odd.__dict__, "artwork_propensity": np.full(
                odd.n_slots, 1 / 3), "explored": np.zeros(odd.n_slots, bool)}),
            # a page explored whole: one slot kept its greedy title
            odd.__class__(**{**odd.__dict__, "explored": np.ones(odd.n_slots, bool),
                             "propensity": np.r_[0.91, np.full(odd.n_slots - 1, 0.01)]}),
        ]
        items = [(f"{i:032x}", f"m{i}", page, RENDER_CTX) for i, page in enumerate(pages)]
        batch = r.render_many(items)
        for item, body in zip(items, batch):
            assert body == r.render(*item)
            assert json.loads(body) == json.loads(r._generic(*item))
    assert len(by_index) > 20  # the path by index ran, not only the fallbacks
    before = len(by_index)
    r.render(*items[-3])
    assert len(by_index) == before + 1  # bandit propensities did not fall back by id
    r.render(*items[-1])
    assert len(by_index) == before + 2  # nor did a page explored whole
