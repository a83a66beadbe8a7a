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
