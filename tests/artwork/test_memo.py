"""The Thompson bandit's memo serves the same distribution and the same draws, and forgets on
every update."""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.artwork import ThompsonArtwork


def test_memo_gives_identical_choices_and_clears_on_update(world, catalog, explore_rows) -> None:
    half = len(explore_rows) // 2
    idx = np.arange(half)
    rows = explore_rows.subset(idx) if hasattr(explore_rows, "subset") else explore_rows
    plain = ThompsonArtwork(catalog, world.config.n_members, noise=0.25).fit(rows)
    memo = ThompsonArtwork(catalog, world.config.n_members, noise=0.25).fit(rows)
    memo.memoize()
    rng = np.random.default_rng(0)
    n = 40
    member = rng.integers(0, world.config.n_members, n)
    device = rng.integers(0, 4, n)
    titles = rng.integers(-1, catalog.n_titles, (n, 7))
    for seed in (1, 2):  # the second call is served from the memo
        a = plain.select_for(member, device, titles, np.random.default_rng(seed))
        b = memo.select_for(member, device, titles, np.random.default_rng(seed))
        np.testing.assert_array_equal(a.artworks, b.artworks)
        np.testing.assert_allclose(a.propensity, b.propensity, rtol=0, atol=0)
    assert len(memo._memo) == len({(m, d, t) for m, d, ts in zip(member, device, titles)
                                   for t in ts if t >= 0})
    np.testing.assert_allclose(plain.probabilities_for(member, device, titles),
                               memo.probabilities_for(member, device, titles))
    # an update forgets: afterwards both agree again on the new posterior
    plain.partial_fit(explore_rows)
    memo.partial_fit(explore_rows)
    assert not memo._memo
    a = plain.select_for(member, device, titles, np.random.default_rng(3))
    b = memo.select_for(member, device, titles, np.random.default_rng(3))
    # to the last bits: the memo computes its misses as another batch than the plain call (the
    # matrix products and the variant columns used depend on the batch), 1 ulp seen here
    np.testing.assert_allclose(a.propensity, b.propensity, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(a.artworks, b.artworks)


def test_page_memo_serves_repeat_pages_exactly_and_forgets(world, catalog, explore_rows) -> None:
    plain = ThompsonArtwork(catalog, world.config.n_members, noise=0.25).fit(explore_rows)
    memo = ThompsonArtwork(catalog, world.config.n_members, noise=0.25).fit(explore_rows)
    memo.memoize(max_pages=8)
    rng = np.random.default_rng(5)
    member = rng.integers(0, world.config.n_members, 6)
    device = rng.integers(0, 4, 6)
    titles = rng.integers(-1, catalog.n_titles, (6, 9))
    memo.probabilities_for(member[:3], device[:3], titles[:3])  # three pages remembered
    assert len(memo._page_memo) == 3
    # a batch mixing repeat pages (0, 2), new pages and a repeat member with other titles
    mix = np.array([0, 3, 2, 4, 5])
    t = titles[mix].copy()
    t[-1] = titles[0]  # member 5 with member 0's titles: another key
    for seed in (1, 2):
        a = plain.select_for(member[mix], device[mix], t, np.random.default_rng(seed))
        b = memo.select_for(member[mix], device[mix], t, np.random.default_rng(seed))
        np.testing.assert_array_equal(a.artworks, b.artworks)
        # pages computed in another batch agree to rounding (the products' blocking differs)
        np.testing.assert_allclose(a.propensity, b.propensity, rtol=0, atol=1e-10)
    assert len(memo._page_memo) == 6
    # bounded: the oldest pages go first
    many = rng.integers(0, catalog.n_titles, (10, 9))
    who = rng.integers(0, world.config.n_members, 10)
    memo.probabilities_for(who, np.zeros(10, int), many)
    assert len(memo._page_memo) == 6  # three quarters of the bound, the newest
    assert (int(who[-1]), 0, many.dtype.str, many[-1].tobytes()) in memo._page_memo
    for _ in range(30):  # many evictions stay bounded (and cheap: one rebuild each)
        memo.probabilities_for(rng.integers(0, world.config.n_members, 3), np.zeros(3, int),
                               rng.integers(0, catalog.n_titles, (3, 9)))
        assert len(memo._page_memo) <= 8 and len(memo._memo) <= memo._memo_max
    memo.partial_fit(explore_rows)
    assert not memo._page_memo
    np.testing.assert_allclose(
        ThompsonArtwork(catalog, world.config.n_members, noise=0.25).fit(explore_rows)
        .partial_fit(explore_rows).probabilities_for(member, device, titles),
        memo.probabilities_for(member, device, titles), rtol=0, atol=1e-10)


def test_pages_shown_once_are_drawn_alike_and_not_remembered(world, catalog,
                                                              explore_rows) -> None:
    """``once=`` (an explored page's random titles): the same distributions and draws as
    without a memo, and nothing of those pages enters either memo, so a stream of explored
    pages never pushes the repeat pages' distributions out."""
    plain = ThompsonArtwork(catalog, world.config.n_members, noise=0.25).fit(explore_rows)
    memo = ThompsonArtwork(catalog, world.config.n_members, noise=0.25).fit(explore_rows)
    assert not memo.remembers_pages
    memo.memoize(max_pages=4)
    assert memo.remembers_pages
    rng = np.random.default_rng(8)
    member = rng.integers(0, world.config.n_members, 3)
    device = rng.integers(0, 4, 3)
    titles = rng.integers(-1, catalog.n_titles, (3, 9))
    memo.probabilities_for(member, device, titles)  # three repeat pages remembered
    keys, triples = set(memo._page_memo), set(memo._memo)
    for seed in range(20):  # 20 batches of 1 repeat page and 5 explored ones
        who = np.concatenate([member[seed % 3:seed % 3 + 1],
                              rng.integers(0, world.config.n_members, 5)])
        dev = np.concatenate([device[seed % 3:seed % 3 + 1], rng.integers(0, 4, 5)])
        t = np.concatenate([titles[seed % 3:seed % 3 + 1],
                            rng.integers(-1, catalog.n_titles, (5, 9))])
        once = np.arange(6) > 0
        a = plain.select_for(who, dev, t, np.random.default_rng(seed))
        b = memo.select_for(who, dev, t, np.random.default_rng(seed), once=once)
        np.testing.assert_array_equal(a.artworks, b.artworks)
        np.testing.assert_allclose(a.propensity, b.propensity, rtol=0, atol=1e-10)
    assert set(memo._page_memo) == keys and set(memo._memo) == triples
    with pytest.raises(ValueError, match="once: expected shape"):
        memo.select_for(member, device, titles, rng, once=np.ones(2, bool))


def test_the_exploring_logger_marks_its_explored_pages_as_shown_once(world, catalog,
                                                                      explore_rows) -> None:
    """ExploringPolicy passes its explored pages as ``once=`` to a remembering bandit: after
    many visits the page memo holds only the base pages."""
    from reelpick.policies import ExploringPolicy, GreedyPolicy

    bandit = ThompsonArtwork(catalog, world.config.n_members, noise=0.25).fit(explore_rows)
    bandit.memoize()
    policy = ExploringPolicy(GreedyPolicy(), epsilon=0.5, artwork=bandit)
    visits = world.make_visits(np.arange(60), world.config.start + 3600)
    page = policy.choose(visits, np.random.default_rng(0))
    explored = page.source == "explore"
    assert 0 < explored.sum() < len(visits)
    assert len(bandit._page_memo) == len({
        (int(m), int(d), page.titles.dtype.str, t.tobytes())
        for m, d, t in zip(visits.member[~explored], visits.device[~explored],
                           page.titles[~explored])})
