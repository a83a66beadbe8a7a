"""2SLS equals linearmodels' IV2SLS (the oracle) to 1e-8: params, standard errors for every
covariance type, first-stage F statistics; with one or many instruments, one or two endogenous
regressors, with and without controls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reelpick.causal import ols, two_stage_least_squares

linearmodels = pytest.importorskip("linearmodels")
from linearmodels.iv import IV2SLS  # noqa: E402

#: ours -> (linearmodels cov_type, debiased)
COV = {"homoskedastic": ("unadjusted", True), "HC0": ("robust", False),
       "HC1": ("robust", True), "CR0": ("clustered", False), "CR1": ("clustered", True)}
TOL = dict(rtol=1e-8, atol=1e-10)


def _data(seed: int, n: int = 800, n_endog: int = 1, n_instr: int = 2, n_controls: int = 2):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=n)
    z = pd.DataFrame(rng.normal(size=(n, n_instr)), columns=[f"z{j}" for j in range(n_instr)])
    w = pd.DataFrame(rng.normal(size=(n, n_controls)),
                     columns=[f"w{j}" for j in range(n_controls)])
    pi = rng.uniform(0.5, 1.5, size=(n_instr, n_endog))
    d = z.to_numpy() @ pi + u[:, None] + 0.3 * w.to_numpy().sum(axis=1, keepdims=True) \
        + rng.normal(size=(n, n_endog))
    d = pd.DataFrame(d, columns=[f"d{j}" for j in range(n_endog)])
    het = np.exp(0.5 * z.to_numpy()[:, 0])  # heteroskedastic errors
    y = d.to_numpy() @ np.arange(1.0, n_endog + 1) + w.to_numpy() @ np.full(n_controls, 0.5) \
        + 1.0 + 2.0 * u + het * rng.normal(size=n)
    clusters = rng.integers(0, 40, n)
    # cluster-level shock so clustering matters
    y = y + rng.normal(size=40)[clusters]
    return pd.Series(y, name="y"), d, z, w, clusters


CASES = [  # (n_endog, n_instr, n_controls)
    (1, 1, 0), (1, 2, 2), (1, 4, 3), (2, 2, 1), (2, 3, 2),
]


@pytest.mark.parametrize("n_endog, n_instr, n_controls", CASES,
                         ids=[f"endog{a}-instr{b}-ctrl{c}" for a, b, c in CASES])
@pytest.mark.parametrize("cov_type", list(COV))
def test_matches_linearmodels(cov_type: str, n_endog: int, n_instr: int, n_controls: int) -> None:
    y, d, z, w, clusters = _data(7 + n_instr, n_endog=n_endog, n_instr=n_instr,
                                 n_controls=n_controls)
    lm_cov, debiased = COV[cov_type]
    exog = pd.concat([pd.Series(1.0, index=y.index, name="const"), w], axis=1)
    kw = {"clusters": pd.Series(clusters)} if lm_cov == "clustered" else {}
    ref = IV2SLS(y, exog, d, z).fit(cov_type=lm_cov, debiased=debiased, **kw)
    res = two_stage_least_squares(y, d, z, w if n_controls else None, cov_type=cov_type,
                                  clusters=clusters if cov_type.startswith("CR") else None)
    names = list(ref.params.index)
    np.testing.assert_allclose(res.params[names], ref.params, **TOL)
    np.testing.assert_allclose(res.std_errors[names], ref.std_errors, **TOL)
    np.testing.assert_allclose(res.cov.loc[names, names], ref.cov, **TOL)
    diag = ref.first_stage.diagnostics
    fs = res.first_stage
    np.testing.assert_allclose(fs.partial_rsquared[list(diag.index)],
                               diag["partial.rsquared"], **TOL)
    if lm_cov == "unadjusted":  # linearmodels reports Wald / q, an F
        np.testing.assert_allclose(fs.f_stat[list(diag.index)], diag["f.stat"], **TOL)
        np.testing.assert_allclose(fs.f_stat_homoskedastic, fs.f_stat, **TOL)
    else:  # linearmodels reports the Wald statistic (chi2_q); ours f_stat = Wald / q
        np.testing.assert_allclose(fs.wald[list(diag.index)], diag["f.stat"], **TOL)
        np.testing.assert_allclose(fs.f_stat * n_instr, fs.wald, **TOL)
        np.testing.assert_allclose(fs.wald_pvalue[list(diag.index)], diag["f.pval"], rtol=1e-6,
                                   atol=1e-300)


def test_textbook_first_stage_f_matches_the_unadjusted_oracle() -> None:
    y, d, z, w, _ = _data(3)
    exog = pd.concat([pd.Series(1.0, index=y.index, name="const"), w], axis=1)
    ref = IV2SLS(y, exog, d, z).fit(cov_type="unadjusted", debiased=True)
    res = two_stage_least_squares(y, d, z, w, cov_type="HC1")
    np.testing.assert_allclose(res.first_stage.f_stat_homoskedastic["d0"],
                               ref.first_stage.diagnostics.loc["d0", "f.stat"], **TOL)


@pytest.mark.parametrize("cov_type", list(COV))
def test_ols_matches_linearmodels(cov_type: str) -> None:
    y, d, _, w, clusters = _data(5)
    lm_cov, debiased = COV[cov_type]
    exog = pd.concat([pd.Series(1.0, index=y.index, name="const"), d, w], axis=1)
    kw = {"clusters": pd.Series(clusters)} if lm_cov == "clustered" else {}
    ref = IV2SLS(y, exog, None, None).fit(cov_type=lm_cov, debiased=debiased, **kw)
    res = ols(y, d, w, cov_type=cov_type,
              clusters=clusters if cov_type.startswith("CR") else None)
    names = list(ref.params.index)
    np.testing.assert_allclose(res.params[names], ref.params, **TOL)
    np.testing.assert_allclose(res.std_errors[names], ref.std_errors, **TOL)
