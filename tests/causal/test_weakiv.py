"""Weak-instrument-robust inference: the Anderson-Rubin test against linearmodels and a
brute-force OLS in the test, its exact inversion against a grid, coverage against the truth
with a very weak instrument (where Wald under-covers), the effective F, the result fields."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reelpick.causal import (
    SGDIV,
    ArrayBatches,
    ConfidenceSet,
    FirstStage,
    WeakInstrumentWarning,
    anderson_rubin,
    ols,
    two_stage_least_squares,
)

COV_TYPES = ("homoskedastic", "HC0", "HC1", "CR0", "CR1")


def _draw(rng: np.random.Generator, n: int, pi: float, rho: float = 0.9, q: int = 1,
          het: float = 0.0, n_controls: int = 0, effect: float = 1.0):
    """Linear-Gaussian IV: errors of d and y correlated ``rho`` (the confounding)."""
    z = rng.normal(size=(n, q))
    w = rng.normal(size=(n, n_controls))
    e = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    d = z @ np.full(q, pi) + w.sum(axis=1) * 0.3 + e[:, 0]
    scale = np.exp(het * z[:, 0]) if het else 1.0
    y = effect * d - 0.5 * w.sum(axis=1) + scale * e[:, 1]
    return y, d, z, (w if n_controls else None), rng.integers(0, 25, n)


def _fit(y, d, z, w, cl, cov_type):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakInstrumentWarning)
        return two_stage_least_squares(y, d, z, w, cov_type=cov_type,
                                       clusters=cl if cov_type.startswith("CR") else None)


def _brute_ar(y, d, z, w, b: float, cov_type: str) -> float:
    """The AR Wald statistic by the definition: OLS of y - b d on [1, w, z] (lstsq), test of
    the z coefficients with the homoskedastic or HC0 covariance."""
    n = len(y)
    x = np.column_stack([np.ones(n), *([] if w is None else [w]), z])
    u = y - b * d
    coef, *_ = np.linalg.lstsq(x, u, rcond=None)
    e = u - x @ coef
    xx_inv = np.linalg.inv(x.T @ x)
    if cov_type == "homoskedastic":
        cov = e @ e / (n - x.shape[1]) * xx_inv
    else:
        cov = xx_inv @ (x.T * e**2) @ x @ xx_inv
    q = z.shape[1]
    g = coef[-q:]
    return float(g @ np.linalg.solve(cov[-q:, -q:], g))


# ---------------------------------------------------------------------------- the statistic
@pytest.mark.parametrize("q", [1, 3])
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_ar_statistic_matches_linearmodels(cov_type: str, q: int) -> None:
    lm = pytest.importorskip("linearmodels.iv")
    y, d, z, w, cl = _draw(np.random.default_rng(41), 300, 0.3, q=q, het=0.5, n_controls=2)
    ar = _fit(y, d, z, w, cl, cov_type).anderson_rubin
    lm_cov, debiased = {"homoskedastic": ("unadjusted", True), "HC0": ("robust", False),
                        "HC1": ("robust", True), "CR0": ("clustered", False),
                        "CR1": ("clustered", True)}[cov_type]
    exog = pd.DataFrame(np.column_stack([np.ones(len(y)), w, z]),
                        columns=["const", "w0", "w1", *[f"z{j}" for j in range(q)]])
    restrict = np.zeros((q, 3 + q))
    restrict[:, 3:] = np.eye(q)
    kw = {"clusters": pd.Series(cl)} if lm_cov == "clustered" else {}
    for b in (-2.0, 0.0, 0.7, 1.0, 3.5):
        ref = lm.IV2SLS(pd.Series(y - b * d), exog, None, None).fit(
            cov_type=lm_cov, debiased=debiased, **kw)
        test = ref.wald_test(restrict, np.zeros(q))
        assert float(ar.statistic(b)) == pytest.approx(test.stat, rel=1e-8)
        # homoskedastic: p-value from F(q, n - q - p); linearmodels' wald_test uses chi2
        if cov_type != "homoskedastic":
            assert float(ar.pvalue(b)) == pytest.approx(test.pval, rel=1e-6, abs=1e-300)


@pytest.mark.parametrize("cov_type", ["homoskedastic", "HC0"])
def test_ar_statistic_matches_a_brute_force_ols(cov_type: str) -> None:
    y, d, z, w, cl = _draw(np.random.default_rng(42), 200, 0.2, q=2, het=0.3, n_controls=1)
    ar = anderson_rubin(y, d, z, w, cov_type=cov_type)
    for b in np.linspace(-3, 4, 15):
        assert float(ar.statistic(b)) == pytest.approx(_brute_ar(y, d, z, w, b, cov_type),
                                                       rel=1e-8)
    # homoskedastic with normal errors: AR/q ~ F(q, n - q - p) exactly; p-value uses it
    if cov_type == "homoskedastic":
        w_ = float(ar.statistic(1.0))
        assert float(ar.pvalue(1.0)) == pytest.approx(stats.f.sf(w_ / 2, 2, 200 - 2 - 2))


def test_just_identified_ar_is_zero_at_the_2sls_estimate(rng) -> None:
    y, d, z, w, cl = _draw(rng, 500, 0.3, n_controls=2)
    for cov in COV_TYPES:
        res = _fit(y, d, z, w, cl, cov)
        assert float(res.anderson_rubin.statistic(res.params["d0"])) == pytest.approx(
            0.0, abs=1e-16)
        assert res.ar_ci.contains(float(res.params["d0"]))


# ---------------------------------------------------------------------------- the inversion
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_conf_set_equals_grid_inversion(cov_type: str) -> None:
    """Closed-form sets equal {b : AR(b) <= c} on a fine grid, ends sit exactly at the
    critical value; over a few draws every honest shape shows up."""
    kinds: set[str] = set()
    grid = np.linspace(-40.0, 40.0, 16_001)
    for seed in range(60):
        rng = np.random.default_rng(4300 + seed)
        q = (1, 3)[seed % 2]
        pi = (0.02, 0.08, 0.15, 0.4)[seed % 4]
        y, d, z, w, cl = _draw(rng, 120, pi, q=q, het=0.4, n_controls=1)
        ar = _fit(y, d, z, w, cl, cov_type).anderson_rubin
        for level in (0.9, 0.95):
            cs = ar.conf_set(level)
            c = ar.critical_value(level)
            kinds.add(cs.kind)
            inside = ar.statistic(grid) <= c
            ours = np.array([cs.contains(float(g)) for g in grid])
            assert (inside == ours).all(), (seed, level, str(cs))
            ends = [e for iv in cs.intervals for e in iv if math.isfinite(e)]
            if ends:
                np.testing.assert_allclose(ar.statistic(np.array(ends)), c, rtol=1e-6)
    assert {"interval", "two rays", "real line"} <= kinds, kinds
    if cov_type == "homoskedastic":
        assert "empty" in kinds  # over-identified instruments that disagree


@pytest.mark.parametrize("cov_type", ["homoskedastic", "HC1", "CR1"])
def test_bounded_iff_first_stage_rejects(cov_type: str) -> None:
    """One instrument: the AR set is bounded exactly when the first-stage test (same
    covariance, same level) rejects pi = 0 (Dufour 1997)."""
    for seed in range(40):
        y, d, z, w, cl = _draw(np.random.default_rng(4400 + seed), 150, 0.12, n_controls=1)
        res = _fit(y, d, z, w, cl, cov_type)
        fs = res.first_stage
        if cov_type == "homoskedastic":
            rejects = fs.f_stat["d0"] > stats.f.ppf(0.95, 1, 150 - 3)
        else:
            rejects = fs.wald["d0"] > stats.chi2.ppf(0.95, 1)
        assert res.ar_ci.bounded == rejects, seed


def test_just_identified_homoskedastic_closed_form() -> None:
    """No controls but the constant, one instrument: AR/1 is the squared t of the slope of
    y - b d on z, so the ends solve t(b)^2 = F_crit (a hand-derived quadratic)."""
    rng = np.random.default_rng(4500)
    n = 80
    y, d, z, _, _ = _draw(rng, n, 0.5)
    z = z[:, 0]
    zc, yc, dc = z - z.mean(), y - y.mean(), d - d.mean()
    szz, szy, szd = zc @ zc, zc @ yc, zc @ dc
    gy, gd = szy / szz, szd / szz
    ey, ed = yc - gy * zc, dc - gd * zc
    c = stats.f.ppf(0.95, 1, n - 2) / (n - 2) / szz
    # (gy - b gd)^2 <= c (ey - b ed)'(ey - b ed)
    a2, a1, a0 = gd**2 - c * ed @ ed, -2 * (gy * gd - c * ey @ ed), gy**2 - c * ey @ ey
    lo, hi = np.sort(np.roots([a2, a1, a0]))
    cs = anderson_rubin(y, d, z, cov_type="homoskedastic").conf_set(0.95)
    assert cs.kind == "interval"
    assert cs.intervals[0] == pytest.approx((lo, hi), rel=1e-10)


# ---------------------------------------------------------------------------- coverage
@pytest.mark.parametrize("q, cov_type, n, het", [(1, "homoskedastic", 50, 0.0),
                                                 (3, "homoskedastic", 50, 0.0),
                                                 (3, "HC1", 300, 0.5)])
def test_ar_covers_with_a_very_weak_instrument_where_wald_does_not(q, cov_type, n, het) -> None:
    """400 draws, concentration n*pi^2 = 1 per instrument (first-stage F about 2), strong
    confounding (rho = 0.9): AR covers the true effect at about 95% (exactly, under
    homoskedastic normal errors), the Wald interval of 2SLS far less often."""
    wald = ar = 0
    draws = 400
    for s in range(draws):
        y, d, z, w, cl = _draw(np.random.default_rng(4600 + s), n, 1 / math.sqrt(n), q=q,
                               het=het)
        res = _fit(y, d, z, w, cl, cov_type)
        ci = res.conf_int().loc["d0"]
        wald += ci["lower"] <= 1.0 <= ci["upper"]
        ar += res.ar_ci.contains(1.0)
    assert 0.92 <= ar / draws <= 0.98, ar / draws
    assert wald / draws <= 0.88, wald / draws
    assert ar - wald >= 0.05 * draws


def test_strong_instrument_ar_close_to_wald(rng) -> None:
    """Strong first stage: AR set and Wald interval nearly coincide (both about b +- 1.96 se)."""
    y, d, z, w, cl = _draw(rng, 20_000, 0.5, n_controls=2)
    res = _fit(y, d, z, w, cl, "HC1")
    ci = res.conf_int().loc["d0"]
    cs = res.ar_ci
    assert cs.kind == "interval" and not res.weak_instrument
    se = res.std_errors["d0"]
    assert abs(cs.lower - ci["lower"]) < 0.05 * se and abs(cs.upper - ci["upper"]) < 0.05 * se


# ---------------------------------------------------------------------------- effective F
def test_effective_f_identities_and_hand_computation(rng) -> None:
    y, d, z, w, cl = _draw(rng, 600, 0.15, q=3, het=0.8, n_controls=2)
    homo = _fit(y, d, z, w, cl, "homoskedastic").first_stage
    assert homo.f_stat_effective["d0"] == pytest.approx(homo.f_stat_homoskedastic["d0"],
                                                        rel=1e-10)
    one = _fit(y, d, z[:, :1], w, cl, "HC1").first_stage
    assert one.f_stat_effective["d0"] == pytest.approx(one.f_stat["d0"], rel=1e-10)
    res = _fit(y, d, z, w, cl, "HC0")
    # by hand: partial out [1, w], first-stage OLS, HC0 covariance, pi'S pi / tr(V S)
    x = np.column_stack([np.ones(600), w])
    mw = lambda v: v - x @ np.linalg.lstsq(x, v, rcond=None)[0]  # noqa: E731
    zt, dt = mw(z), mw(d)
    s = zt.T @ zt
    pi = np.linalg.solve(s, zt.T @ dt)
    e = dt - zt @ pi
    v = np.linalg.inv(s) @ (zt.T * e**2) @ zt @ np.linalg.inv(s)
    assert res.first_stage_f["d0"] == pytest.approx(pi @ s @ pi / np.trace(v @ s), rel=1e-10)
    # invariant to a linear recombination of the instruments
    a = np.array([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0], [3.0, 0.0, 1.0]])
    rot = _fit(y, d, z @ a, w, cl, "HC0")
    assert rot.first_stage_f["d0"] == pytest.approx(res.first_stage_f["d0"], rel=1e-8)
    np.testing.assert_allclose(rot.ar_ci.intervals, res.ar_ci.intervals, rtol=1e-7)


# ---------------------------------------------------------------------------- result API
def test_result_fields_warning_and_json(rng) -> None:
    y, d, z, w, cl = _draw(rng, 300, 0.02, n_controls=1)
    with pytest.warns(WeakInstrumentWarning, match="Anderson-Rubin"):
        res = two_stage_least_squares(y, d, z, w)
    assert res.weak_instrument and res.first_stage.weak
    assert res.first_stage_f["d0"] < 10 and res.ar_ci.unbounded
    out = json.loads(json.dumps(res.to_dict()))
    assert out["weak_instrument"] is True
    assert out["ar_conf_set"]["bounded"] is False and out["ar_conf_set"]["level"] == 0.95
    assert out["first_stage"]["f_stat_effective"]["d0"] == pytest.approx(
        res.first_stage_f["d0"])
    assert res.ar_conf_int(0.5).length <= res.ar_ci.length
    naive = ols(y, d, w)
    assert naive.ar_ci is None and naive.first_stage_f is None and not naive.weak_instrument
    with pytest.raises(ValueError, match="no Anderson-Rubin test"):
        naive.ar_conf_int()
    two = _fit(y, np.column_stack([d, d**2]), np.column_stack([z, z**2]), w, cl, "HC1")
    assert two.anderson_rubin is None and two.ar_ci is None


def test_sgd_iv_anderson_rubin_agrees_with_2sls(rng) -> None:
    """Dense controls only: SGD-IV's streamed AR set equals closed-form 2SLS's to a small
    fraction of a standard error; weak instrument: unbounded and a warning."""
    y, d, z, w, cl = _draw(rng, 20_000, 0.05, n_controls=2)
    ref = _fit(y, d, z, w, cl, "CR1")
    src = ArrayBatches(y, d, z, dense=w, clusters=cl, batch_size=2048)
    res = SGDIV(epochs=4, cov_type="CR1").fit(src).result_
    se = ref.std_errors["d0"]
    assert ref.ar_ci.kind == res.ar_ci.kind == "interval"
    np.testing.assert_allclose(res.ar_ci.intervals[0], ref.ar_ci.intervals[0], atol=0.05 * se)
    assert res.first_stage_f["d0"] == pytest.approx(ref.first_stage_f["d0"], rel=0.02)
    weak_y, weak_d, weak_z, _, _ = _draw(np.random.default_rng(4700), 2000, 0.005)
    with pytest.warns(WeakInstrumentWarning, match="effective F"):
        est = SGDIV(epochs=2).fit(ArrayBatches(weak_y, weak_d, weak_z, batch_size=200))
    assert est.result_.weak_instrument and est.result_.ar_ci.unbounded


@pytest.mark.parametrize("f, f_eff, threshold, weak", [
    (12.0, 8.0, 10.0, True), (8.0, 12.0, 10.0, True), (12.0, 11.0, 10.0, False),
    (12.0, 11.0, 20.0, True), (12.0, None, 10.0, False), (9.0, None, 10.0, True),
])
def test_weak_when_either_f_is_below_the_threshold(f, f_eff, threshold, weak) -> None:
    s = lambda v: pd.Series([v], index=["d0"])  # noqa: E731
    fs = FirstStage(f_stat=s(f), wald=s(f), wald_pvalue=s(0.0), f_stat_homoskedastic=s(f),
                    f_pvalue=s(0.0), partial_rsquared=s(0.1),
                    params=pd.DataFrame({"z0": [1.0]}, index=["d0"]), n_instruments=1,
                    f_stat_effective=None if f_eff is None else s(f_eff),
                    weak_threshold=threshold)
    assert fs.weak == weak
    assert ("d0: " in fs.warning_message()) == weak


# ---------------------------------------------------------------------------- small pieces
@pytest.mark.parametrize("intervals, kind, text", [
    (((0.0, 1.0),), "interval", "[0, 1]"),
    (((-math.inf, -1.0), (2.0, math.inf)), "two rays", "(-inf, -1] ∪ [2, inf)"),
    (((-math.inf, math.inf),), "real line", "(-inf, inf)"),
    (((1.5, math.inf),), "ray", "[1.5, inf)"),
    ((), "empty", "∅"),
    (((0.0, 1.0), (2.0, 3.0)), "union", "[0, 1] ∪ [2, 3]"),
])
def test_confidence_set_kinds(intervals, kind, text) -> None:
    cs = ConfidenceSet(intervals, 0.95)
    assert cs.kind == kind and str(cs) == text
    assert cs.bounded == (kind in ("interval", "union"))
    assert cs.empty == (kind == "empty")
    assert math.isnan(cs.lower) if cs.empty else cs.contains(cs.lower)


@pytest.mark.parametrize("args, error, match", [
    ((((1.0, 0.0),), 0.95), ValueError, "sorted, disjoint"),
    ((((0.0, 2.0), (1.0, 3.0)), 0.95), ValueError, "sorted, disjoint"),
    ((((math.nan, 1.0),), 0.95), ValueError, "sorted, disjoint"),
])
def test_confidence_set_invalid(args, error, match) -> None:
    with pytest.raises(error, match=match):
        ConfidenceSet(*args)


def test_anderson_rubin_invalid_inputs(rng) -> None:
    y, d, z, w, cl = _draw(rng, 100, 0.5)
    with pytest.raises(ValueError, match="one endogenous regressor"):
        anderson_rubin(y, np.column_stack([d, d**2]), np.column_stack([z, z**2]))
    with pytest.raises(ValueError, match="cov_type: use one of"):
        anderson_rubin(y, d, z, cov_type="HC3")
    with pytest.raises(ValueError, match="level: must be in"):
        anderson_rubin(y, d, z).conf_set(1.0)
