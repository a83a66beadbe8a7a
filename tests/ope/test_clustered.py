"""Cluster-robust intervals: rows of one slate (page, visit) share a context and are not
independent; the analytic variance is computed over slate sums and the bootstrap resamples
slates."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from reelpick.ope import (
    DM,
    DR,
    IPS,
    SNDR,
    SNIPS,
    ArrayTarget,
    ClippedIPS,
    LoggedFeedback,
    OffPolicyEvaluation,
    PositionBasedIPS,
    SwitchDR,
    estimate_parquet,
    evaluate_policy,
    write_feedback_parquet,
)
from reelpick.ope.estimate import (
    ClusterRuns,
    ClusterStatAccumulator,
    StatAccumulator,
    cluster_poisson_weights,
)

Z95 = 1.959963984540054


def test_cluster_se_matches_closed_form_on_a_hand_example():
    """x = w r = r (target = logging); clusters {1, 2}, {3}, {4, 5, 6}: mean 3.5, residual
    cluster sums -4, -0.5, 4.5, so Var = (G / (G - 1)) * 36.5 / n^2 = 1.5 * 36.5 / 36."""
    fb = LoggedFeedback(action=[0, 1, 0, 1, 0, 1], reward=[1.0, 2, 3, 4, 5, 6],
                        pscore=[0.5] * 6, n_actions=2, slate_id=[7, 7, 3, 9, 9, 9])
    pi = np.full((6, 2), 0.5)
    est = IPS().estimate_policy_value(fb, pi)
    assert est.value == pytest.approx(3.5)
    assert est.se == pytest.approx(math.sqrt(1.5 * 36.5 / 36), rel=1e-12)
    assert est.ci_high - est.value == pytest.approx(Z95 * est.se, rel=1e-9)
    # rounds independent: the usual s / sqrt(n)
    iid = IPS().estimate_policy_value(fb, pi, cluster="round")
    assert iid.se == pytest.approx(np.std([1, 2, 3, 4, 5, 6], ddof=1) / math.sqrt(6), rel=1e-12)


def _clustered_log(seed: int, n_slates: int = 300, size: int = 8, icc: float = 2.0):
    """Slates of ``size`` rounds sharing a random effect on the reward (strong dependence),
    logging uniform over 4 actions; reward Bernoulli(sigmoid(u_s + b_a))."""
    rng = np.random.default_rng(seed)
    n = n_slates * size
    slate = np.repeat(np.arange(n_slates), size)
    u = rng.normal(0.0, icc, n_slates)[slate]
    a = rng.integers(0, 4, n)
    b = np.array([-1.5, -0.5, 0.0, 0.5])
    r = (rng.random(n) < 1 / (1 + np.exp(-(u + b[a])))).astype(float)
    fb = LoggedFeedback(action=a, reward=r, pscore=np.full(n, 0.25), n_actions=4,
                        slate_id=slate)
    return fb


def _true_value(target: np.ndarray, icc: float = 2.0) -> float:
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    b = np.array([-1.5, -0.5, 0.0, 0.5])
    p = 1 / (1 + np.exp(-(icc * nodes[:, None] + b[None, :])))
    return float(weights @ (p @ target) / weights.sum())


@pytest.mark.parametrize("name", ["ips", "dr"])
def test_clustered_interval_covers_and_iid_undercovers(name):
    """Over many simulated logs with strongly dependent rows within a slate, the clustered 95%
    interval covers the true value about 95% of the time; the independent-rounds one does not."""
    target = np.array([0.1, 0.2, 0.3, 0.4])
    truth = _true_value(target)
    est = IPS() if name == "ips" else DR()
    cover = {"slate": 0, "round": 0}
    reps = 300
    for seed in range(reps):
        fb = _clustered_log(seed)
        pi = np.broadcast_to(target, (fb.n_rounds, 4))
        q = np.broadcast_to(np.full(4, 0.4), (fb.n_rounds, 4)) if name == "dr" else None
        for how in cover:
            e = est.estimate_policy_value(fb, pi, q, cluster=how)
            cover[how] += e.ci_low <= truth <= e.ci_high
    # binomial sd at 95% over 300 runs: 1.3 points
    assert 0.91 <= cover["slate"] / reps <= 0.99, cover
    assert cover["round"] / reps < 0.85, cover


@pytest.mark.parametrize("ci", ["analytic", "bootstrap"])
def test_clustered_results_do_not_depend_on_blocks_batches_or_row_order(monkeypatch, ci):
    import reelpick.ope.base as base

    fb = _clustered_log(1, n_slates=200, size=7)
    rng = np.random.default_rng(0)
    pi = rng.dirichlet(np.ones(4), size=fb.n_rounds)
    q = rng.random((fb.n_rounds, 4))
    ests = [IPS(), ClippedIPS(max_weight=1.5), SNIPS(), DM(), DR(), SNDR(), SwitchDR(tau=2.0)]
    kw = dict(ci=ci, n_bootstrap=100, random_state=4)
    whole = evaluate_policy(fb, pi, ests, q, **kw)
    fields = ("value", "ci_low", "ci_high", "se", "ess")

    def same(other):
        for name, est in whole.items():
            for f in fields:
                assert getattr(other[name], f) == pytest.approx(getattr(est, f), rel=1e-10,
                                                                abs=1e-13), (name, f)

    # rows shuffled: grouped by slate first, same clusters, same bootstrap weights per slate
    perm = rng.permutation(fb.n_rounds)
    same(evaluate_policy(fb.take(perm), pi[perm], ests, q[perm], **kw))
    # batches that cut slates in two (a slate's rows stay adjacent): joined across batches
    run = OffPolicyEvaluation(ests, n_actions=4, **kw)
    for lo, hi in ((0, 333), (333, 334), (334, 1000), (1000, fb.n_rounds)):
        run.update(fb.take(slice(lo, hi)), pi[lo:hi], q[lo:hi])
    same(run.results())
    # tiny cache blocks
    monkeypatch.setattr(base, "_BLOCK_CELLS", 4 * 97)
    monkeypatch.setattr(base, "_MIN_BLOCK_ROWS", 1)
    same(evaluate_policy(fb, pi, ests, q, **kw))


def test_singleton_slates_equal_independent_rounds():
    fb = _clustered_log(2, n_slates=500, size=3)
    pi = np.random.default_rng(1).dirichlet(np.ones(4), size=fb.n_rounds)
    single = replace(fb, slate_id=np.arange(fb.n_rounds))
    a = evaluate_policy(single, pi, [IPS(), SNIPS()])
    b = evaluate_policy(fb, pi, [IPS(), SNIPS()], cluster="round")
    for k in a:
        assert a[k].se == pytest.approx(b[k].se, rel=1e-10)
    # dependent rows: the clustered se is larger
    c = evaluate_policy(fb, pi, [IPS()])
    assert c["ips"].se > 1.1 * b["ips"].se


def test_cluster_accumulator_merge_equals_one_pass():
    rng = np.random.default_rng(3)
    sid = np.repeat(np.arange(40), rng.integers(1, 6, 40))
    n = sid.size
    x = rng.normal(size=(n, 2)) + sid[:, None] * 0.01
    one = ClusterStatAccumulator(2)
    one.update(x, None, clusters=ClusterRuns.from_ids(sid))
    cut = int(np.flatnonzero(sid == 20)[1])          # inside slate 20
    parts = []
    for sl in (slice(0, cut), slice(cut, n)):
        acc = ClusterStatAccumulator(2)
        acc.shift = one.shift.copy()
        acc.update(x[sl], None, clusters=ClusterRuns.from_ids(sid[sl]))
        parts.append(acc)
    parts[0].merge(parts[1])
    assert parts[0].n_clusters() == one.n_clusters() == 40
    np.testing.assert_allclose(parts[0].cov(), one.cov(), rtol=1e-12)
    np.testing.assert_allclose(parts[0].mean(), one.mean(), rtol=1e-12)
    # closed form: n * Var(mean) over cluster sums of residuals, x G / (G - 1)
    res = x - x.mean(axis=0)
    s = np.stack([np.bincount(sid, weights=res[:, j]) for j in range(2)], axis=1)
    np.testing.assert_allclose(one.cov(), s.T @ s / n * 40 / 39, rtol=1e-10)


def test_plain_accumulator_keeps_its_fields():
    """reelpick.distributed.ope merges StatAccumulator by its fields: the plain (unclustered)
    accumulator must keep exactly these."""
    acc = StatAccumulator(2, ci="bootstrap", n_bootstrap=10)
    assert set(vars(acc)) == {"m", "ci", "B", "seed", "n", "shift", "total", "s1", "s2", "w1",
                              "w2", "has_weights", "boot_n", "boot_s"}


def test_cluster_poisson_weights_depend_on_id_and_seed_only():
    ids = np.array([5, 17, 2 ** 40, 3])
    w = cluster_poisson_weights(7, ids, 4000)
    assert w.shape == (4000, 4)
    np.testing.assert_array_equal(cluster_poisson_weights(7, ids[[2, 0]], 4000), w[:, [2, 0]])
    assert not np.array_equal(cluster_poisson_weights(8, ids, 4000), w)
    # Poisson(1): mean 1, variance 1, P(0) = 1/e
    assert abs(w.mean() - 1) < 0.03 and abs(w.var() - 1) < 0.06
    assert abs((w == 0).mean() - math.exp(-1)) < 0.02


def test_bootstrap_agrees_with_clustered_analytic():
    fb = _clustered_log(5, n_slates=600, size=6)
    pi = np.broadcast_to([0.1, 0.2, 0.3, 0.4], (fb.n_rounds, 4))
    a = IPS().estimate_policy_value(fb, pi)
    b = IPS().estimate_policy_value(fb, pi, ci="bootstrap", n_bootstrap=2000)
    assert (b.ci_high - b.ci_low) == pytest.approx(a.ci_high - a.ci_low, rel=0.1)


def test_slate_estimators_and_mixed_batches():
    fb = _clustered_log(6, n_slates=50, size=4)
    pi = np.broadcast_to([0.25] * 4, (fb.n_rounds, 4))
    res = evaluate_policy(fb, pi, [IPS(), PositionBasedIPS()])
    # PB-IPS already has one statistic per slate: the same interval as clustered IPS
    assert res["pb_ips"].value == pytest.approx(res["ips"].value * 4)
    run = OffPolicyEvaluation([IPS()], n_actions=4)
    run.update(fb.take(slice(0, 100)), pi[:100])
    with pytest.raises(ValueError, match="slate_id must be given in every batch or in none"):
        run.update(replace(fb.take(slice(100, 200)), slate_id=None), pi[100:200])
    with pytest.raises(ValueError, match="cluster must be 'slate' or 'round'"):
        OffPolicyEvaluation([IPS()], n_actions=4, cluster="visit")


def test_stream_with_slate_column_equals_in_memory(tmp_path):
    fb = _clustered_log(7, n_slates=400, size=5)
    pi = np.random.default_rng(2).dirichlet(np.ones(4), size=fb.n_rounds)
    path = write_feedback_parquet(fb, tmp_path / "log.parquet", row_group_size=333)
    ests = [IPS(), SNIPS()]
    memory = evaluate_policy(fb, pi, ests)
    stream = estimate_parquet(path, ests, ArrayTarget(pi), batch_size=777)
    for k, e in memory.items():
        assert stream[k].se == pytest.approx(e.se, rel=1e-10)
        assert stream[k].value == pytest.approx(e.value, rel=1e-12)
    flat = estimate_parquet(path, ests, ArrayTarget(pi), batch_size=777, cluster="round")
    assert flat["ips"].se < memory["ips"].se


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e8])
def test_accumulator_moments_are_exact_for_nearly_constant_columns(offset):
    """Cross-products come from raw moments shared between estimators; a block where a
    near-constant column would cancel digits is recomputed on shifted columns."""
    rng = np.random.default_rng(4)
    x = np.column_stack([offset + 1e-6 * rng.normal(size=5000), rng.normal(size=5000)])
    acc = StatAccumulator(2)
    for lo in range(0, 5000, 1234):
        acc.update(x[lo:lo + 1234], None)
    exact = np.cov((x - x[0]).T)   # x - x[0] is exact: the reference keeps every digit
    np.testing.assert_allclose(acc.cov(), exact, rtol=1e-9)
    np.testing.assert_allclose(acc.mean(), x.mean(axis=0), rtol=1e-14)
    one = StatAccumulator(1)
    for lo in range(0, 5000, 1234):
        one.update(x[lo:lo + 1234, 0], None)
    assert one.cov()[0, 0] == pytest.approx(exact[0, 0], rel=1e-9)
