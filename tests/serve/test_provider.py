"""The default provider against the HomepageProvider contract, on a small trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reelpick.serve import HomepageProvider, Settings, load_bundle
from reelpick.serve.provider import PageContext

CTX = PageContext(device="tv", country="US", hour=20, day_of_week=5, timestamp=1_800_000_000)


@pytest.fixture(scope="module")
def bundle(model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return load_bundle(Settings(model_dir=model_dir, data_dir=tmp_path_factory.mktemp("d"),
                                n_rows=4, n_positions=6, epsilon=0.3))


def test_contract(bundle) -> None:
    p = bundle.provider
    assert isinstance(p, HomepageProvider)
    page = p.compose("m1", CTX, np.random.default_rng(0))
    page.check()
    assert page.n_slots == 24 and len(page.row_labels) == 4 and not page.cold_start


def test_propensities_are_the_epsilon_greedy_marginals(bundle) -> None:
    page = bundle.provider.compose("m1", CTX, np.random.default_rng(1))
    greedy_p = page.propensity[~page.explored]
    np.testing.assert_allclose(greedy_p, 0.7)
    if page.explored.any():
        e = page.propensity[page.explored]
        assert np.allclose(e, e[0]) and e[0] < 0.3 / 24


def test_unknown_member_gets_a_cold_start_page(bundle) -> None:
    page = bundle.provider.compose("never-seen", CTX, np.random.default_rng(0))
    page.check()
    assert page.cold_start and page.n_slots == 24
    assert page.row_labels[0] == "Popular in US now"


def test_only_licensed_unseen_titles(bundle) -> None:
    cat = bundle.catalog
    p = bundle.provider
    k = cat.countries.index("DE")
    ctx = PageContext("mobile", "DE", 8, 1, 1_800_000_000)
    u = int(np.flatnonzero(p.__dict__["_mf"].any(axis=1))[0])
    member = list(p.__dict__["_members"])[u]
    seen = set(cat.title_ids[p._seen[p._seen_ptr[u]:p._seen_ptr[u + 1]]].tolist())
    for seed in range(5):
        page = p.compose(member, ctx, np.random.default_rng(seed))
        idx = [cat.title_index[t] for t in page.title_ids]
        assert cat.licensed[k, idx].all()
        assert not seen & set(page.title_ids)


def test_same_seed_same_page(bundle) -> None:
    a = bundle.provider.compose("m5", CTX, np.random.default_rng(42))
    b = bundle.provider.compose("m5", CTX, np.random.default_rng(42))
    assert list(a.title_ids) == list(b.title_ids) and list(a.artwork_ids) == list(b.artwork_ids)
    assert np.array_equal(a.propensity, b.propensity)


def test_artwork_propensity_is_one_over_variants(bundle) -> None:
    cat = bundle.catalog
    page = bundle.provider.compose("m2", CTX, np.random.default_rng(3))
    for t, a, q in zip(page.title_ids, page.artwork_ids, page.artwork_propensity):
        i = cat.title_index[t]
        nv = cat.art_offset[i + 1] - cat.art_offset[i]
        assert a in set(cat.artwork_ids[cat.art_offset[i]:cat.art_offset[i + 1]])
        assert q == pytest.approx(1 / nv)


def test_top_is_exact() -> None:
    from reelpick.serve.default_provider import _top

    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 5_000))
        m = int(rng.integers(0, n + 3))
        s = rng.normal(size=n).astype(np.float32)
        if trial % 3 == 0:
            s = np.round(s, 1)  # ties
        el = rng.random(n) < rng.random()
        got = _top(s, el, m)
        masked = np.where(el, s, -np.inf)
        ref = np.argsort(-masked, kind="stable")[:m]
        ref = ref[np.isfinite(masked[ref])]
        assert np.array_equal(masked[got], masked[ref])
        assert len(set(got.tolist())) == len(got) and el[got].all()


def test_standardised_scores_match_the_direct_formula(bundle) -> None:
    p = bundle.provider
    u = 3
    k, d, b = p._countries["US"], p._devices["tv"], 20 * p._buckets // 24
    base, n_base, _ = p._eligible(k, 10**6, CTX.timestamp)
    g = p._greedy(k, d, b, CTX, base, n_base, u)
    raw = (p._tf @ p._mf[u]).astype(np.float64)
    direct = (raw - raw.mean()) / raw.std() + p.context_weight * p._ctx[k, d, b]
    np.testing.assert_allclose(g.blend, direct, rtol=1e-4, atol=1e-4)


def test_cold_pages_are_cached_but_still_explore(bundle) -> None:
    p = bundle.provider
    a = p.compose("new-1", CTX, np.random.default_rng(7))
    b = p.compose("new-2", CTX, np.random.default_rng(7))
    assert list(a.title_ids) == list(b.title_ids)  # same context, same draws
    c = p.compose("new-3", CTX, np.random.default_rng(8))
    greedy_a = [t for t, x in zip(a.title_ids, a.explored) if not x]
    greedy_c = [t for t, x in zip(c.title_ids, c.explored) if not x]
    assert set(greedy_a) & set(greedy_c)
    assert not a.row_index.flags.writeable  # shared between requests: read-only
    c.check()


def test_unreleased_titles_never_shown(bundle) -> None:
    cat = bundle.catalog
    ts = int(np.median(cat.release_ts))
    for t in (ts, ts + 86_400 * 365):
        ctx = PageContext("web", "US", 12, 2, t)
        for member in ("m1", "nobody"):
            page = bundle.provider.compose(member, ctx, np.random.default_rng(0))
            idx = [cat.title_index[x] for x in page.title_ids]
            assert (cat.release_ts[idx] <= t).all()


def test_rendered_json_matches_the_generic_one_and_the_schema(bundle) -> None:
    import json

    from reelpick.serve.schemas import HomepageOut

    r = bundle.renderer
    ctx = {"device": "tv", "country": "US", "hour": 20, "day_of_week": 5, "timestamp": 1}
    for member in ("m1", "nobody"):
        page = bundle.provider.compose(member, CTX, np.random.default_rng(0))
        body = r.render("abc123", member, page, ctx)
        assert json.loads(body) == json.loads(r._generic("abc123", member, page, ctx))
        out = HomepageOut.model_validate_json(body)
        assert sum(len(row.items) for row in out.rows) == page.n_slots
    nan_page = page.__class__(**{**page.__dict__, "score": np.full(page.n_slots, np.nan)})
    assert json.loads(r.render("x", "m", nan_page, ctx))["rows"][0]["items"][0]["score"] is None


def test_batched_pages_equal_single_ones_without_exploration(model_dir: Path,
                                                             tmp_path: Path) -> None:
    b = load_bundle(Settings(model_dir=model_dir, data_dir=tmp_path, n_rows=4, n_positions=6,
                             epsilon=0.0, artwork="first"))
    p = b.provider
    requests = [(m, CTX) for m in ("m1", "m2", "nobody", "m1", "m3")]
    many = p.compose_many(requests, np.random.default_rng(0))
    for (member, ctx), page in zip(requests, many):
        one = p.compose(member, ctx, np.random.default_rng(1))
        page.check()
        assert list(page.title_ids) == list(one.title_ids)
        assert list(page.artwork_ids) == list(one.artwork_ids)
        assert np.array_equal(page.score, one.score) and (page.propensity == 1).all()


@pytest.mark.parametrize("batch", [1, 3])
def test_exploration_follows_the_formula(bundle, batch: int) -> None:
    """Every slot explores with probability epsilon; an explored slot holds a uniform title of
    the pool E (eligible, not played, not on the greedy page) with propensity eps / |E|."""
    p, cat = bundle.provider, bundle.catalog
    rng = np.random.default_rng(5)
    member = "m1"
    u = p._members[member]
    k = cat.countries.index(CTX.country)
    pool = cat.licensed[k] & (cat.release_ts <= CTX.timestamp)
    pool[p._seen[p._seen_ptr[u]:p._seen_ptr[u + 1]]] = False
    greedy = p._entry(member, CTX).titles
    pool[greedy] = False
    n_pool = int(pool.sum())
    assert n_pool == p._entry(member, CTX).n_pool
    n, n_explored, counts = 0, 0, np.zeros(cat.n_titles)
    for _ in range(600 // batch):
        for page in p.compose_many([(member, CTX)] * batch, rng):
            page.check()
            idx = np.asarray([cat.title_index[t] for t in page.title_ids])
            assert np.array_equal(idx, page.title_index)
            x = np.asarray(page.explored)
            assert np.array_equal(idx[~x], greedy[~x])
            n += len(x)
            n_explored += int(x.sum())
            counts[idx[x]] += 1
            prop = np.asarray(page.propensity)
            np.testing.assert_allclose(prop[~x], 1 - p.epsilon)
            np.testing.assert_allclose(prop[x], p.epsilon / n_pool)
    assert abs(n_explored / n - p.epsilon) < 4 * np.sqrt(p.epsilon * (1 - p.epsilon) / n)
    assert counts[~pool].sum() == 0  # only pool titles are drawn
    observed = counts[pool]
    expected = n_explored / n_pool
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    dof = n_pool - 1
    assert chi2 < dof + 6 * np.sqrt(2 * dof), (chi2, dof)


def test_explored_propensity_is_epsilon_over_the_pool(bundle) -> None:
    p, cat = bundle.provider, bundle.catalog
    member = "m2"
    u = p._members[member]
    k = cat.countries.index(CTX.country)
    eligible = cat.licensed[k] & (cat.release_ts <= CTX.timestamp)
    eligible[p._seen[p._seen_ptr[u]:p._seen_ptr[u + 1]]] = False
    rng = np.random.default_rng(9)
    for page in p.compose_many([(member, CTX)] * 50, rng):
        x = np.asarray(page.explored)
        if x.any():
            n_pool = int(eligible.sum()) - page.n_slots
            np.testing.assert_allclose(np.asarray(page.propensity)[x], p.epsilon / n_pool)
            return
    pytest.fail("no slot explored in 50 pages")


def test_explored_slots_show_the_blend_score(bundle) -> None:
    p = bundle.provider
    k, d, b = p._countries["US"], p._devices["tv"], 20 * p._buckets // 24
    base, n_base, _ = p._eligible(k, 10**6, CTX.timestamp)
    u = p._members["m3"]
    blend = p._greedy(k, d, b, CTX, base, n_base, u).blend
    for page in p.compose_many([("m3", CTX)] * 20, np.random.default_rng(2)):
        x = np.asarray(page.explored)
        t = np.asarray(page.title_index)
        np.testing.assert_allclose(page.score[x], blend[t[x]], rtol=1e-5, atol=1e-5)
        top = ~x & (np.asarray(page.row_index) == 0)  # "Top picks": the blend order
        np.testing.assert_array_equal(page.score[top], blend[t[top]])


def test_member_pages_are_cached_least_recently_used_first(model_dir: Path,
                                                          tmp_path: Path) -> None:
    from reelpick.serve.default_provider import EpsilonGreedyProvider
    from reelpick.serve.model_dir import read_manifest

    version = read_manifest(model_dir)
    p = EpsilonGreedyProvider.from_dir(model_dir / version["path"], version="v", n_rows=4,
                                       n_positions=6, page_cache=2)
    rng = np.random.default_rng(0)
    for m in ("m1", "m2", "m1", "m3"):
        p.compose(m, CTX, rng)
    assert [key[0] for key in p._page_cache] == [p._members["m1"], p._members["m3"]]
    other_hour = PageContext("tv", "US", 9, 5, CTX.timestamp)
    p.compose("m1", other_hour, rng)  # another context: another entry
    assert len(p._page_cache) == 2


def test_batched_rendering_equals_single_pages_and_the_generic_json(model_dir: Path,
                                                                    tmp_path: Path,
                                                                    monkeypatch) -> None:
    import json

    from reelpick.serve.provider import Page
    from reelpick.serve.render import PageRenderer

    by_index = []
    page_by_index = PageRenderer._page_by_index

    def spy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        by_index.append(1)
        return page_by_index(self, *args, **kwargs)

    monkeypatch.setattr(PageRenderer, "_page_by_index", spy)
    for artwork, epsilon in (("random", 0.05), ("random", 0.3), ("first", 0.05)):
        b = load_bundle(Settings(model_dir=model_dir, data_dir=tmp_path, n_rows=4,
                                 n_positions=6, epsilon=epsilon, artwork=artwork))
        r = b.renderer
        pages = b.provider.compose_many([(m, CTX) for m in ("m1", "m2", "nobody", "m4")] * 3,
                                        np.random.default_rng(3))
        odd = pages[0]
        pages += [
            Page.single_row(["t0", "t1"], [b.catalog.artwork_ids[0],
                                           b.catalog.artwork_ids[b.catalog.art_offset[1]]]),
            odd.__class__(**{**odd.__dict__, "score": np.full(odd.n_slots, np.nan),
                             "score_text": None}),
            odd.__class__(**{**odd.__dict__, "score": np.full(odd.n_slots, np.inf),
                             "score_text": [b"null"] * odd.n_slots}),
            odd.__class__(**{**odd.__dict__, "score_text": None}),  # formatted here
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
            # a page explored whole (a page-level explorer): one slot kept its greedy title
            odd.__class__(**{**odd.__dict__, "explored": np.ones(odd.n_slots, bool),
                             "propensity": np.r_[0.91, np.full(odd.n_slots - 1, 0.01)]}),
        ]
        ctx = {"device": "tv", "country": "US", "hour": 20, "day_of_week": 5, "timestamp": 1}
        items = [(f"{i:032x}", f"m{i}", page, ctx) for i, page in enumerate(pages)]
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
