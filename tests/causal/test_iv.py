"""2SLS by ground truth and identities; weak-instrument warning; invalid inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from reelpick.causal import (
    NotFittedError,
    TwoStageLeastSquares,
    WeakInstrumentWarning,
    ols,
    two_stage_least_squares,
)


def _confounded(rng: np.random.Generator, n: int = 20_000, strength: float = 1.0,
                effect: float = 0.5):
    u = rng.normal(size=n)                       # hidden confounder
    z = rng.binomial(1, 0.5, n).astype(float)    # randomised cell
    w = rng.normal(size=n)                       # observed control
    d = strength * z + u + 0.5 * w + rng.normal(size=n)
    y = effect * d + 2.0 * u - 0.3 * w + rng.normal(size=n)
    return y, d, z, w


def test_recovers_known_coefficient_where_ols_does_not(rng) -> None:
    y, d, z, w = _confounded(rng)
    iv = two_stage_least_squares(y, d, z, w)
    naive = ols(y, d, w)
    ci = iv.conf_int().loc["d0"]
    assert ci["lower"] < 0.5 < ci["upper"]
    assert abs(iv.params["d0"] - 0.5) < 0.05
    assert naive.params["d0"] - 0.5 > 20 * naive.std_errors["d0"]  # OLS badly biased
    assert iv.params["w0"] == pytest.approx(-0.3, abs=0.05)


def test_just_identified_equals_wald_ratio(rng) -> None:
    """One binary instrument, no controls: 2SLS = (E[y|z=1]-E[y|z=0]) / (E[d|z=1]-E[d|z=0])."""
    y, d, z, _ = _confounded(rng, n=3000)
    wald = (y[z == 1].mean() - y[z == 0].mean()) / (d[z == 1].mean() - d[z == 0].mean())
    assert two_stage_least_squares(y, d, z).params["d0"] == pytest.approx(wald, rel=1e-10)


def test_instruments_equal_regressors_gives_ols(rng) -> None:
    y, d, _, w = _confounded(rng, n=2000)
    for cov in ("homoskedastic", "HC0", "HC1"):
        a = two_stage_least_squares(y, d, d, w, cov_type=cov)
        b = ols(y, d, w, cov_type=cov)
        np.testing.assert_allclose(a.params, b.params, rtol=1e-10)
        np.testing.assert_allclose(a.std_errors, b.std_errors, rtol=1e-10)


def test_one_row_per_cluster_cr0_equals_hc0(rng) -> None:
    y, d, z, w = _confounded(rng, n=1500)
    a = two_stage_least_squares(y, d, z, w, cov_type="CR0", clusters=np.arange(1500))
    b = two_stage_least_squares(y, d, z, w, cov_type="HC0")
    np.testing.assert_allclose(a.std_errors, b.std_errors, rtol=1e-10)


def test_coverage_of_confidence_intervals() -> None:
    """95% CIs cover the true effect in about 95% of 200 replications."""
    hits = 0
    for s in range(200):
        y, d, z, w = _confounded(np.random.default_rng(s), n=800)
        ci = two_stage_least_squares(y, d, z, w).conf_int().loc["d0"]
        hits += ci["lower"] < 0.5 < ci["upper"]
    assert 0.90 <= hits / 200 <= 0.99


def test_pandas_names_and_result_dict(rng) -> None:
    y, d, z, w = _confounded(rng, n=500)
    res = two_stage_least_squares(pd.Series(y, name="plays"), pd.Series(d, name="shown"),
                                  pd.DataFrame({"cell": z}), pd.DataFrame({"tv": w}))
    assert list(res.params.index) == ["shown", "const", "tv"]
    out = res.to_dict()
    assert set(out["conf_int"]) == {"shown", "const", "tv"}
    assert out["first_stage"]["f_stat"]["shown"] > 10


def test_weak_instrument_warning(rng) -> None:
    y, d, z, w = _confounded(rng, n=400, strength=0.05)
    with pytest.warns(WeakInstrumentWarning, match="weak instruments: first-stage F"):
        res = two_stage_least_squares(y, d, z, w)
    assert res.first_stage.weak
    y, d, z, w = _confounded(rng, n=4000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", WeakInstrumentWarning)
        two_stage_least_squares(y, d, z, w)
    with pytest.warns(WeakInstrumentWarning):  # threshold is a hyperparameter
        two_stage_least_squares(y, d, z, w, weak_threshold=1e9)


def test_not_fitted() -> None:
    with pytest.raises(NotFittedError, match="call fit"):
        _ = TwoStageLeastSquares().params_


_R = np.random.default_rng(0)
_Y, _D, _Z, _W = _confounded(_R, n=200)
_NAN = _D.copy()
_NAN[7] = np.nan
_Z2 = np.column_stack([_Z, 2 * _Z])
_ZC = np.ones(200)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((_Y, _D[:-1], _Z), {}, ValueError, r"endog: expected 200 rows \(as y\), got 199"),
    ((_Y, _D, _Z[:10]), {}, ValueError, "instruments: expected 200 rows"),
    ((_Y, _D, _Z, _W[:5]), {}, ValueError, "controls: expected 200 rows"),
    ((_Y, _NAN, _Z), {}, ValueError, r"endog: contains NaN or infinite values \(1 row"),
    ((np.full(200, np.inf), _D, _Z), {}, ValueError, "y: contains NaN or infinite"),
    ((_Y, _D, _Z2), {}, ValueError, "instruments: .* rank-deficient"),
    ((_Y, _D, _ZC), {}, ValueError, "rank-deficient"),  # collinear with the constant
    ((_Y, np.column_stack([_D, _W]), _Z), {}, ValueError,
     "under-identified: 1 instrument.* for 2 endogenous"),
    ((np.column_stack([_Y, _Y]), _D, _Z), {}, ValueError, "y: expected one outcome column"),
    ((_Y, _D, _Z), {"cov_type": "HC3"}, ValueError, "cov_type: use one of"),
    ((_Y, _D, _Z), {"cov_type": "CR1"}, ValueError, "clusters: cov_type='CR1' needs"),
    ((_Y, _D, _Z), {"cov_type": "CR1", "clusters": np.zeros(200)}, ValueError,
     "at least two clusters"),
    ((_Y, _D, _Z), {"cov_type": "CR1", "clusters": np.zeros(10)}, ValueError,
     r"clusters: expected shape \(200,\)"),
    ((_Y, _D, _Z), {"clusters": np.arange(200)}, ValueError, "clusters: only used with"),
    ((_Y[:2], _D[:2], _Z[:2]), {}, ValueError, "need more rows"),
    ((_Y, np.zeros((200, 0)), _Z), {}, ValueError, "at least one endogenous"),
    ((_Y, _D, _Z), {"weak_threshold": -1.0}, ValueError, "weak_threshold"),
    ((_Y, ["a"] * 200, _Z), {}, TypeError, "endog: expected numbers"),
])
def test_invalid_inputs(args, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        two_stage_least_squares(*args, **kwargs)


def test_not_identified_when_instrument_is_a_control(rng) -> None:
    """Instrument moves nothing once a control equal to the endogenous regressor's driver is
    in: the fitted values are collinear with the controls."""
    y, d, z, w = _confounded(rng, n=300)
    d2 = np.column_stack([d, d + 1e-20])
    with pytest.raises(ValueError, match="not identified"):
        two_stage_least_squares(y, d2, np.column_stack([z, w]))
