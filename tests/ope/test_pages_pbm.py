"""Page-level estimators of stochastic (exploring) page policies: ``PageMarginals``,
``position_based`` and ``rank_agreement`` against closed forms and synthetic truth, and the
slate estimators (``reelpick.ope.slate``) they relate to.

The synthetic world draws attractions ``theta (n, T)`` per visit and plays
``Bernoulli(e_s theta(v, t))`` (the position-based model), so the value of any policy given by
its marginals is known exactly: ``sum_s sum_t pi(t at s | v) e_s theta(v, t)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from reelpick.ope import LoggedFeedback
from reelpick.ope.pages import (
    PageMarginals,
    dense_page_estimate,
    dense_page_terms,
    examination_curve,
    examination_from_rates,
    expected_weight,
    organic_terms,
    position_based,
    rank_agreement,
    slot_play_rates,
)
from reelpick.ope.slate import PositionBasedIPS, PseudoInverse

T, S, K = 30, 6, 3
E = 0.85 ** np.arange(S)


def _setup(rng: np.random.Generator, n: int):
    theta = rng.beta(1.0, 3.0, size=(n, T))
    pages = np.stack([np.stack([rng.permutation(T)[:S] for _ in range(n)]) for _ in range(K)],
                     axis=1)  # (n, K, S): base page, two pool pages
    avail = np.full(n, T)
    logger = PageMarginals(pages, np.array([0.5, 0.15, 0.15]), 0.2, avail)
    # the target: its own composed page (best titles first), explored with epsilon 0.1
    best = np.argsort(-theta, axis=1)[:, :S]
    target = PageMarginals.exploring(best, 0.1, avail)
    return theta, logger, target, best


def _serve(rng, m: PageMarginals):
    n = m.pages.shape[0]
    u = rng.random(n)
    cum = np.cumsum(m.share)
    k = np.searchsorted(cum, u, side="right")
    uni = k >= m.share.size
    titles = np.empty((n, m.n_slots), np.int64)
    titles[~uni] = m.pages[np.flatnonzero(~uni), k[~uni]]
    for i in np.flatnonzero(uni):
        titles[i] = rng.permutation(T)[: m.n_slots]
    return titles, uni


def _truth(m: PageMarginals, theta):
    th_pages = np.take_along_axis(theta[:, None, :].repeat(m.share.size, 1),
                                  np.maximum(m.pages, 0), axis=2)
    return float(m.model_value(th_pages, theta.mean(axis=1), E).mean())


def test_marginals_closed_forms() -> None:
    pages = np.array([[[0, 1, 2], [2, 1, 0]]])
    m = PageMarginals(pages, np.array([0.6, 0.3]), 0.1, np.array([5]))
    at = m.at(np.array([[0, 2, 4, -1]]), np.array([[0, 0, 2, 1]]))
    np.testing.assert_allclose(at, [[0.6 + 0.02, 0.3 + 0.02, 0.02, 0.0]])
    e = np.array([1.0, 0.5, 0.25])
    ex = m.examined(np.array([[0, 1, 4]]), e)
    u = 0.1 * e.sum() / 5
    np.testing.assert_allclose(ex, [[u + 0.6 * 1.0 + 0.3 * 0.25, u + 0.9 * 0.5, u]])
    # every slot's marginals sum to one over the available titles
    allt = np.arange(5)[None, :].repeat(3, 0).reshape(1, -1)
    slots = np.repeat(np.arange(3), 5)[None, :]
    np.testing.assert_allclose(m.at(allt, slots).reshape(3, 5).sum(axis=1), 1.0)


@pytest.mark.parametrize("K", [0, 3])
def test_pool_exploring_marginals_are_the_policy_s_propensities(K: int) -> None:
    from reelpick.policies import PoolExploringPolicy, PopularPolicy

    rng = np.random.default_rng(6)
    n = 40
    base = np.stack([rng.permutation(T)[:S] for _ in range(n)])
    pool = np.stack([np.stack([rng.permutation(T)[:S] for _ in range(n)]) for _ in range(K)],
                    axis=1) if K else np.zeros((n, 0, S), np.int64)
    pool[:, :, 0] = base[:, :1] if K else pool[:, :, 0]  # shared titles in slot 0
    avail = rng.integers(S, T, n).astype(float)
    logger = PoolExploringPolicy(PopularPolicy(), 0.1, 0.3, [PopularPolicy()] * K)
    m = PageMarginals.pool_exploring(base, pool, 0.1, 0.3, avail)
    titles = np.where(rng.random((n, S)) < 0.5, base, rng.integers(0, T, (n, S)))
    np.testing.assert_allclose(m.at(titles, np.broadcast_to(np.arange(S), (n, S))),
                               logger.slot_propensity(titles, base, pool, avail))


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(pages=np.zeros((2, 1, 3)), share=np.array([0.5]), uniform=0.2,
          available=np.array([4, 4])), "summing to 1"),
    (dict(pages=np.zeros((2, 3)), share=np.array([1.0]), uniform=0.0,
          available=np.array([4, 4])), r"need \(n, K, S\)"),
    (dict(pages=np.zeros((2, 1, 3)), share=np.array([0.5]), uniform=0.5,
          available=np.array([0, 4])), "available"),
])
def test_marginals_invalid_inputs(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        PageMarginals(**kwargs)


def test_position_based_invalid_inputs() -> None:
    m = PageMarginals.uniform_page(np.array([4, 4]), 2)
    logged, plays = np.array([[0, 1], [2, 3]]), np.zeros((2, 2))
    with pytest.raises(ValueError, match="examination"):
        position_based(logged, plays, m, m, examination=np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="rows"):
        position_based(logged, plays, m, m, examination=np.ones(2), rows=np.array([1, 0], bool))
    with pytest.raises(ValueError, match="DR needs both"):
        position_based(logged, plays, m, m, examination=np.ones(2), dm=np.zeros(2))
    det = PageMarginals(np.array([[[0, 1]], [[2, 3]]]), np.array([1.0]), 0.0, np.array([4, 4]))
    with pytest.raises(ValueError, match="zero probability"):
        position_based(np.array([[0, 1], [1, 2]]), plays, det, det, examination=np.ones(2))
    with pytest.raises(ValueError, match="no support"):  # a uniform target, a fixed logger
        position_based(np.array([[0, 1], [2, 3]]), plays, m, det, examination=np.ones(2))


def test_on_policy_weights_are_one() -> None:
    rng = np.random.default_rng(1)
    theta, logger, _, _ = _setup(rng, 200)
    titles, _ = _serve(rng, logger)
    plays = (rng.random(titles.shape) < np.take_along_axis(theta, titles, 1) * E).astype(float)
    est = position_based(titles, plays, logger, logger, examination=E)
    assert est["ips"].value == pytest.approx(plays.sum(axis=1).mean())
    assert est["ips"].ess == pytest.approx(200)


def test_expected_weight_is_the_mean_weight_sum() -> None:
    """Monte Carlo over the mixed logger: the mean per-visit weight sum is ``expected_weight``
    (S for a uniform logger)."""
    rng = np.random.default_rng(5)
    theta, logger, target, _ = _setup(rng, 50)
    ew = expected_weight(target, logger, E)
    sums = []
    for _ in range(2000):
        titles, _ = _serve(rng, logger)
        w = target.examined(titles, E) / logger.examined(titles, E)
        sums.append(w.sum(axis=1))
    sums = np.array(sums)
    se = sums.std(axis=0) / np.sqrt(len(sums))
    assert (np.abs(sums.mean(axis=0) - ew) < 4.5 * se).all()
    uni = PageMarginals.uniform_page(logger.available, S)
    np.testing.assert_allclose(expected_weight(target, uni, E), S)


def test_pbm_equals_slot_ips_when_every_title_has_a_fixed_slot() -> None:
    """Title ``s * m + k`` can only be shown in slot ``s`` (page ``k`` of ``m``): the
    examination-weighted weight is the per-slot ratio, so the page estimate is
    ``PositionBasedIPS`` on the same impressions (one slate per visit)."""
    rng = np.random.default_rng(2)
    n, m_ = 300, 4
    pages = (np.arange(S)[None, None, :] * m_ + np.arange(m_)[None, :, None]).repeat(n, 0)
    avail = np.full(n, S * m_)
    logger = PageMarginals(pages, np.full(m_, 1 / m_), 0.0, avail)
    target = PageMarginals(pages, np.array([0.7, 0.1, 0.1, 0.1]), 0.0, avail)
    k = rng.integers(0, m_, n)
    titles = pages[np.arange(n), k]
    plays = (rng.random(titles.shape) < 0.3 * E).astype(float)
    est = position_based(titles, plays, target, logger, examination=E)
    fb = LoggedFeedback(action=titles.ravel(), reward=plays.ravel(),
                        pscore=np.full(n * S, 1 / m_), n_actions=S * m_,
                        position=np.tile(np.arange(S), n), slate_id=np.repeat(np.arange(n), S))
    dist = np.zeros((n * S, S * m_, S))
    for s in range(S):
        for j, share in enumerate(target.share):
            dist[:, s * m_ + j, s] = share
    ref = PositionBasedIPS().estimate_policy_value(fb, dist)
    assert est["ips"].value == pytest.approx(ref.value, rel=1e-12)


def test_pseudo_inverse_is_unbiased_when_the_reward_is_additive() -> None:
    """A logger filling each slot independently (uniform with repeats) and a slate reward that
    is the sum of per-slot rewards: PI's mean over many logs is the target's value."""
    rng = np.random.default_rng(3)
    n, A, L = 400, 5, 3
    r_mean = rng.random((A, L)) * 0.5
    target = rng.dirichlet(np.ones(A), size=L).T  # (A, L): per-slot target marginals
    truth = float((target * r_mean).sum())
    vals = []
    for _ in range(200):
        a = rng.integers(0, A, (n, L))
        r = (rng.random((n, L)) < r_mean[a, np.arange(L)]).astype(float)
        fb = LoggedFeedback(action=a.ravel(), reward=r.ravel(), pscore=np.full(n * L, 1 / A),
                            n_actions=A, position=np.tile(np.arange(L), n),
                            slate_id=np.repeat(np.arange(n), L))
        dist = np.broadcast_to(target, (n * L, A, L))
        vals.append(PseudoInverse().estimate_policy_value(fb, dist).value)
    assert abs(np.mean(vals) - truth) < 4 * np.std(vals) / np.sqrt(len(vals))


@pytest.mark.parametrize("bucket", [False, True])
def test_position_based_is_unbiased_and_covers_under_the_pbm(bucket: bool) -> None:
    """The exploring target from the mixed logger (all visits) or from its uniform bucket
    alone (``rows``, logger marginals ``1 / A``): IPS unbiased, DR with a biased model
    unbiased too and tighter, DR's interval covering about 95%."""
    rng = np.random.default_rng(4)
    theta, logger, target, best = _setup(rng, 400)
    truth = _truth(target, theta)
    q_theta = 0.7 * theta  # a biased attraction model
    dm = target.model_value(np.take_along_axis(q_theta, best, 1)[:, None, :],
                            q_theta.mean(axis=1), E)
    ips, dr, sn, cover = [], [], [], 0
    for _ in range(150):
        titles, uni = _serve(rng, logger)
        p = np.take_along_axis(theta, titles, 1) * E
        plays = (rng.random(p.shape) < p).astype(float)
        q = np.take_along_axis(q_theta, titles, 1) * E
        if bucket:
            lg = PageMarginals.uniform_page(logger.available, S)
            est = position_based(titles, plays, target, lg, examination=E, rows=uni,
                                 q_logged=q, dm=dm)
        else:
            est = position_based(titles, plays, target, logger, examination=E, q_logged=q,
                                 dm=dm)
        ips.append(est["ips"].value)
        dr.append(est["dr"].value)
        sn.append(est["snips"].value)
        cover += est["dr"].lo <= truth <= est["dr"].hi
    for vals in (ips, dr, sn):
        assert abs(np.mean(vals) - truth) < 4 * np.std(vals) / np.sqrt(len(vals))
    assert 0.86 <= cover / 150 <= 0.99
    assert np.std(dr) < np.std(ips)


def test_rank_agreement_says_when_candidates_cannot_be_told_apart() -> None:
    est = [{"value": v, "lo": v - 0.5, "hi": v + 0.5} for v in (1.0, 1.1, 0.9)]
    r = rank_agreement(est, [1.0, 1.05, 1.02])
    assert r["apart_pairs"] == 0 and r["apart_concordant"] is None
    assert "cannot be told apart" in r["verdict"] and r["coverage"] == 1.0
    with pytest.raises(ValueError, match="one value per estimate"):
        rank_agreement(est, [1.0])


# ---------------------------------------------------------------- organic plays (caused plays)
def _organic_world(rng: np.random.Generator, n: int):
    """Attractions ``g (n, T)`` and organic probabilities ``p0 = r q_t`` (one organic title per
    visit with probability ``r``, drawn from ``q``): the most found titles are the least
    attractive, so page plays and caused plays rank pages differently."""
    q = np.sort(rng.dirichlet(np.full(T, 0.3)))[::-1]             # title 0 found most often
    g = 0.15 * rng.beta(2.0, 5.0, (n, T)) * np.linspace(0.3, 1.0, T)[None, :]
    return 0.5, q, g


def _serve_organic(rng, m: PageMarginals, r: float, q: np.ndarray, g: np.ndarray):
    titles, _ = _serve(rng, m)
    n = titles.shape[0]
    org = np.where(rng.random(n) < r, rng.choice(T, n, p=q), -1)
    up = (1 - r * q[titles]) * np.take_along_axis(g, titles, 1) * E
    plays = ((titles == org[:, None]) | (rng.random(titles.shape) < up)).astype(float)
    off = (org >= 0) & ~(titles == org[:, None]).any(axis=1)
    return titles, plays, np.flatnonzero(off), org[off]


def test_organic_terms_on_policy_give_the_observed_plays() -> None:
    """Target = logger: every weight is 1 and c = P(on the page), so ``plays_ips`` is exactly
    the mean of the logged page plays plus the organic plays off the page."""
    rng = np.random.default_rng(11)
    r, q, g = _organic_world(rng, 300)
    _, logger, _, _ = _setup(rng, 300)
    titles, plays, ov, ot = _serve_organic(rng, logger, r, q, g)
    est = position_based(titles, plays, logger, logger, examination=E, organic=(ov, ot))
    total = plays.sum(axis=1) + np.bincount(ov, minlength=300)
    assert est["plays_ips"].value == pytest.approx(total.mean(), rel=1e-12)
    assert est["ips"].value == pytest.approx(plays.sum(axis=1).mean(), rel=1e-12)


def test_caused_plays_rank_pages_the_way_an_ab_test_does() -> None:
    """Page ``found`` shows the titles members find on their own, page ``new`` the most
    attractive of the rest. Page plays prefer ``found``; all plays (what an A/B test counts)
    prefer ``new``. ``plays_dr`` estimates all plays without bias (its intervals cover) and
    ranks the two rightly; the page-play estimate alone ranks them wrongly."""
    rng = np.random.default_rng(12)
    n = 3000
    r, q, g = _organic_world(rng, n)
    _, logger, _, _ = _setup(rng, n)
    avail = np.full(n, T)
    found = np.broadcast_to(np.arange(S), (n, S))                   # most found titles
    rest = np.argsort(-(g * (1 - r * q)[None, :])[:, S:], axis=1)[:, :S] + S
    pages = {"found": found, "new": rest}
    truth = {k: r + float(((1 - r * q[p]) * np.take_along_axis(g, p, 1) * E).sum(axis=1).mean())
             for k, p in pages.items()}
    page_truth = {k: float((r * q[p] + (1 - r * q[p]) * np.take_along_axis(g, p, 1) * E)
                           .sum(axis=1).mean()) for k, p in pages.items()}
    assert page_truth["found"] > page_truth["new"] and truth["new"] > truth["found"]
    covered, est_all = 0, {k: [] for k in pages}
    for rep in range(4):
        titles, plays, ov, ot = _serve_organic(rng, logger, r, q, g)
        for k, p in pages.items():
            tm = PageMarginals(p[:, None, :], np.ones(1), 0.0, avail)
            th = np.take_along_axis(g, p, 1)
            est = position_based(titles, plays, tm, logger, examination=E,
                                 q_logged=0.5 * np.take_along_axis(g, titles, 1) * E,
                                 dm=0.5 * (th * E).sum(axis=1), organic=(ov, ot))
            e = est["plays_dr"]
            covered += e.lo <= truth[k] <= e.hi
            est_all[k].append((e.value, est["dr"].value))
    assert covered >= 7                                              # of 8 intervals
    mean = {k: np.mean(v, axis=0) for k, v in est_all.items()}
    assert mean["new"][0] > mean["found"][0]                         # caused: rightly
    assert mean["new"][1] < mean["found"][1]                         # page plays: the other way


def test_examination_net_of_organic_plays() -> None:
    """Uniformly placed titles with plays ``p0 + e_s g``: the raw curve is flattened by the
    organic part; with ``organic=p0`` it recovers ``e``."""
    rng = np.random.default_rng(13)
    R, P, n = 2, 4, 200_000
    e = np.outer(0.7 ** np.arange(R), 0.8 ** np.arange(P))
    row, pos = rng.integers(0, R, n), rng.integers(0, P, n)
    p0, gg = 0.05, 0.2
    play = (rng.random(n) < p0 + e[row, pos] * gg).astype(float)
    raw = examination_curve(row, pos, play, R, P)
    net = examination_curve(row, pos, play, R, P, organic=p0)
    assert np.abs(net - e).max() < 0.05 < np.abs(raw - e).max()
    with pytest.raises(ValueError, match="organic"):
        examination_curve(row, pos, play, R, P, organic=1.0)


def test_organic_terms_invalid_inputs() -> None:
    m = PageMarginals.uniform_page(np.array([4, 4]), 2)
    with pytest.raises(ValueError, match="visit/title"):
        organic_terms(np.array([2]), np.array([0]), m, m, np.ones(2))
    det = PageMarginals(np.array([[[0, 1]], [[2, 3]]]), np.array([1.0]), 0.0, np.array([4, 4]))
    with pytest.raises(ValueError, match="always on the page"):
        organic_terms(np.array([0]), np.array([0]), det, det, np.ones(2))
    with pytest.raises(ValueError, match="organic"):
        position_based(np.array([[0, 1], [2, 3]]), np.zeros((2, 2)), m, m,
                       examination=np.ones(2), organic=(np.array([5]), np.array([0])))


# ------------------------------------------------------------ dense marginals (any policies)
def _dense(m: PageMarginals) -> np.ndarray:
    """``(n, T, S)`` marginals of ``m`` over all ``T`` titles and slots."""
    n = m.pages.shape[0]
    t = np.broadcast_to(np.repeat(np.arange(T), S), (n, T * S))
    s = np.broadcast_to(np.tile(np.arange(S), T), (n, T * S))
    return m.at(t, s).reshape(n, T, S)


def _on_policy_log(seed: int, n: int):
    """A logger's dense marginals ``d`` and one log of it: ``(d, titles, plays, ov, ot)``."""
    rng = np.random.default_rng(seed)
    r, q, g = _organic_world(rng, n)
    _, logger, _, _ = _setup(rng, n)
    titles, plays, ov, ot = _serve_organic(rng, logger, r, q, g)
    return _dense(logger), titles, plays, ov, ot


def test_dense_terms_on_policy_give_the_logged_page_plays() -> None:
    d, titles, plays, ov, ot = _on_policy_log(21, 200)
    w, corr, uns, _ = dense_page_terms(d, d, E, titles, organic=(ov, ot))
    np.testing.assert_allclose(w, 1.0)
    np.testing.assert_allclose(corr, 0.0, atol=1e-12)
    assert (uns == 0).all()


def test_dense_page_plays_unbiased_with_the_estimated_examination() -> None:
    """A deterministic target page from the mixed logger's dense marginals, plays
    ``p0 + (1 - p0) e_s g``: the examination estimated from the logger's own randomness
    (``slot_play_rates``) is close to ``E``, and the page-play estimate (organic plays taken
    out of the shift, put back for the target's titles) is unbiased over repeated logs, where
    the same weights without the organic correction (every play scaled by the examination as
    if the page caused it) are not."""
    rng = np.random.default_rng(22)
    n = 1500
    r, q, g = _organic_world(rng, n)
    _, logger, _, _ = _setup(rng, n)
    best = np.broadcast_to(np.arange(S)[::-1], (n, S))       # the most found titles, reversed
    avail = np.full(n, T)
    target = PageMarginals(best[:, None, :], np.ones(1), 0.0, avail)
    d0, de = _dense(logger), _dense(target)
    p0 = r * q[best]
    truth = float((p0 + (1 - p0) * np.take_along_axis(g, best, 1) * E).sum(axis=1).mean())
    est, naive, sums, org = [], [], np.zeros(S), 0.0
    for _ in range(200):
        titles, plays, ov, ot = _serve_organic(rng, logger, r, q, g)
        a, b = slot_play_rates(d0, titles, plays, organic=(ov, ot))
        sums, org = sums + a, org + b
        e_hat = examination_from_rates(a, b, n)
        w, corr, _, _ = dense_page_terms(de, d0, e_hat, titles, organic=(ov, ot))
        est.append(float(((w * plays).sum(axis=1) - corr).mean()))
        naive.append(float((w * plays).sum(axis=1).mean()))  # organic plays scaled as caused
    assert np.abs(examination_from_rates(sums, org, 200 * n) - E).max() < 0.1
    se = np.std(est, ddof=1) / np.sqrt(len(est))
    assert abs(np.mean(est) - truth) < 4 * se, (np.mean(est), truth, se)
    se_n = np.std(naive, ddof=1) / np.sqrt(len(naive))
    assert abs(np.mean(naive) - truth) > 4 * se_n, (np.mean(naive), truth, se_n)


def test_dense_terms_invalid_inputs() -> None:
    m = np.full((1, 4, 2), 0.25)
    with pytest.raises(ValueError, match="need"):
        dense_page_terms(m, m[:, :3], np.ones(2), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="organic"):
        dense_page_terms(m, m, np.ones(2), np.array([[0, 1]]),
                         organic=(np.array([3]), np.array([0])))
    with pytest.raises(ValueError, match="examination"):
        examination_from_rates(np.zeros(2), 1.0, 10)


def test_dense_expected_weight_is_the_mean_weight_sum() -> None:
    """Monte Carlo over the mixed logger: the mean per-visit weight sum of
    ``dense_page_terms`` is its ``expected_weight``, and it equals ``expected_weight`` of
    the same policies given as ``PageMarginals``."""
    rng = np.random.default_rng(23)
    _, logger, target, _ = _setup(rng, 40)
    d0, de = _dense(logger), _dense(target)
    ew = dense_page_terms(de, d0, E, _serve(rng, logger)[0]).expected_weight
    np.testing.assert_allclose(ew, expected_weight(target, logger, E), rtol=1e-10)
    sums = np.array([dense_page_terms(de, d0, E, _serve(rng, logger)[0])[0].sum(axis=1)
                     for _ in range(1500)])
    se = sums.std(axis=0) / np.sqrt(len(sums))
    assert (np.abs(sums.mean(axis=0) - ew) < 4.5 * se).all()


def test_dense_page_estimate_on_policy_is_the_logged_rate_and_batches_pool() -> None:
    d, titles, plays, ov, ot = _on_policy_log(23, 400)
    terms = dense_page_terms(d, d, E, titles, organic=(ov, ot))
    est = dense_page_estimate(terms, plays, ci="normal")
    per = plays.sum(axis=1) / S                                 # on-policy: the logged rate
    assert est.value == pytest.approx(per.mean())
    se = per.std(ddof=1) / np.sqrt(per.size)
    assert (est.lo, est.hi) == pytest.approx((per.mean() - 1.96 * se, per.mean() + 1.96 * se),
                                             rel=1e-3)
    assert est.flags == () and est.reliable and est.n == 400
    halves = [dense_page_terms(d[sl], d[sl], E, titles[sl]) for sl in (slice(0, 150),
                                                                       slice(150, 400))]
    whole = dense_page_estimate(dense_page_terms(d, d, E, titles), plays, ci="normal")
    pooled = dense_page_estimate(halves, [plays[:150], plays[150:]], ci="normal")
    assert pooled.value == pytest.approx(whole.value) and pooled.se == pytest.approx(whole.se)
    boot = dense_page_estimate(terms, plays)                     # studentized by default
    assert boot.ci == "studentized" and boot.lo < est.value < boot.hi


def test_dense_page_estimate_flags_a_target_the_logger_cannot_support() -> None:
    rng = np.random.default_rng(24)
    n = 300
    logger = np.zeros((n, T, S))
    logger[:, :S, :] = np.eye(S)[None]              # the logger only ever shows titles 0..S-1
    target = np.full((n, T, S), 1.0 / T)            # the target shows every title
    titles = np.broadcast_to(np.arange(S), (n, S))
    plays = (rng.random((n, S)) < 0.2).astype(float)
    est = dense_page_estimate(dense_page_terms(target, logger, E, titles), plays)
    assert "no_support" in est.flags and not est.reliable


def test_dense_page_estimate_invalid_inputs() -> None:
    m = np.full((3, 4, 2), 0.25)
    t = dense_page_terms(m, m, np.ones(2), np.array([[0, 1], [2, 3], [1, 0]]))
    with pytest.raises(ValueError, match="plays: expected shape"):
        dense_page_estimate(t, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="one plays array per batch"):
        dense_page_estimate([t, t], [np.zeros((3, 2))])
    with pytest.raises(ValueError, match="ci"):
        dense_page_estimate(t, np.zeros((3, 2)), ci="wide")  # type: ignore[arg-type]
