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
    base, n_base = p._eligible(k, 10**6, CTX.timestamp)
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
