r"""Two-stage least squares (2SLS) with robust and clustered standard errors.

Model and estimator (``n`` rows; ``y (n,)`` outcome; ``endog (n, k_d)`` endogenous regressors;
``controls (n, p)`` exogenous regressors, a constant added by default; ``instruments (n, q)``
excluded instruments, ``q >= k_d``). With :math:`X = [D, W]` and :math:`Z = [\text{instr}, W]`:

.. math::

    y = X\beta + \varepsilon,\quad E[Z'\varepsilon] = 0,\qquad
    \hat X = P_Z X = Z (Z'Z)^{-1} Z'X,\qquad
    \hat\beta = (\hat X' X)^{-1} \hat X' y.

Covariances, with :math:`A = \hat X'\hat X`, residuals :math:`e = y - X\hat\beta` (not
:math:`y - \hat X\hat\beta`) and :math:`k = k_d + p`:

``homoskedastic``  :math:`s^2 A^{-1}`, :math:`s^2 = e'e / (n - k)`
``HC0``            :math:`A^{-1} (\sum_i e_i^2 \hat x_i \hat x_i') A^{-1}` (White 1980)
``HC1``            HC0 times :math:`n / (n - k)`
``CR0``            :math:`A^{-1} (\sum_g \xi_g \xi_g') A^{-1}`, :math:`\xi_g = \sum_{i \in g}
                   e_i \hat x_i` (Liang & Zeger 1986; Arellano 1987)
``CR1``            CR0 times :math:`\frac{G}{G-1}\frac{n-1}{n-k}` (Stata's small-sample factor)

These are exactly ``linearmodels.iv.IV2SLS`` with ``cov_type`` ``"unadjusted"``/``"robust"``/
``"clustered"`` and ``debiased=True``/``False``/``False``/``True``/``True`` respectively
(checked to 1e-8 in ``tests/causal/test_iv_oracle.py``).

First stage, per endogenous regressor :math:`d_j`: OLS of :math:`d_j` on :math:`Z` with the same
covariance type; ``wald`` is the Wald statistic that the ``q`` excluded-instrument coefficients
are zero and ``f_stat = wald / q`` (for ``homoskedastic`` this is the textbook first-stage F;
for the robust and clustered types it is the robust/cluster F reported by, e.g., R's ``ivreg``).
``f_stat_homoskedastic`` is always the textbook F; ``f_stat_effective`` is the Montiel Olea &
Pflueger (2013) effective F under the fit's covariance type (= the textbook F when
homoskedastic, = ``f_stat`` with one instrument). When the smallest ``f_stat`` or
``f_stat_effective`` is below ``weak_threshold`` (10, the Staiger & Stock 1997 rule of thumb) a
:class:`WeakInstrumentWarning` is issued and ``IVResult.weak_instrument`` is true.

Weak-instrument-robust inference: with one endogenous regressor the result also carries the
Anderson-Rubin test (``IVResult.anderson_rubin``, :mod:`reelpick.causal.weakiv`) under the same
covariance type, and ``IVResult.ar_conf_int(level)`` / ``ar_ci`` its exactly inverted
confidence set (an interval, two rays or the real line), valid however weak the instruments.

References: Theil (1953); Wooldridge, *Econometric Analysis of Cross Section and Panel Data*,
2nd ed., ch. 5; Staiger & Stock (1997), *Econometrica* 65(3); Cameron & Miller (2015),
*J. Human Resources* 50(2) (cluster-robust inference).

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> n = 5_000
>>> u = rng.normal(size=n)                      # unobserved confounder
>>> z = rng.normal(size=n)                      # instrument
>>> d = z + u + rng.normal(size=n)              # exposure, confounded
>>> y = 2.0 * d + 3.0 * u + rng.normal(size=n)  # true effect 2
>>> res = TwoStageLeastSquares(cov_type="HC1").fit(y, d, z).result_
>>> round(float(res.params["d0"]), 1), round(float(ols(y, d).params["d0"]), 1)
(2.0, 3.0)
>>> bool(res.first_stage.f_stat.min() > 10), res.weak_instrument
(True, False)
>>> res.ar_ci.kind, res.ar_ci.contains(2.0)
('interval', True)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from reelpick.causal.weakiv import AndersonRubin, ConfidenceSet, effective_f, from_residuals
from reelpick.errors import NotFittedError

CovType = Literal["homoskedastic", "HC0", "HC1", "CR0", "CR1"]
COV_TYPES: tuple[str, ...] = ("homoskedastic", "HC0", "HC1", "CR0", "CR1")


class WeakInstrumentWarning(UserWarning):
    """The first-stage F statistic (or the effective F) of some endogenous regressor is below
    the threshold (10): Wald intervals are unreliable; use the Anderson-Rubin set."""


@dataclass(frozen=True, eq=False)
class FirstStage:
    """First-stage diagnostics, one entry per endogenous regressor (index = its name).

    ``f_stat``: Wald / q under the fit's covariance type; ``wald`` and its chi-square p-value
    ``wald_pvalue``; ``f_stat_homoskedastic`` (textbook F, with ``f_pvalue`` from
    :math:`F_{q, n - p - q}`); ``partial_rsquared``: R² of the endogenous regressor on the
    excluded instruments, both with the controls partialled out; ``n_instruments`` = q;
    ``f_stat_effective``: Montiel Olea-Pflueger effective F under the fit's covariance type
    (:func:`reelpick.causal.weakiv.effective_f`); ``weak_threshold``: where ``weak`` starts.
    """

    f_stat: pd.Series
    wald: pd.Series
    wald_pvalue: pd.Series
    f_stat_homoskedastic: pd.Series
    f_pvalue: pd.Series
    partial_rsquared: pd.Series
    params: pd.DataFrame
    n_instruments: int
    f_stat_effective: pd.Series | None = None
    weak_threshold: float = 10.0

    def below_threshold(self) -> pd.Series:
        """Per endogenous regressor below ``weak_threshold``: the smaller of ``f_stat`` and
        ``f_stat_effective`` (empty when none is weak)."""
        f = self.f_stat if self.f_stat_effective is None else np.minimum(
            self.f_stat, self.f_stat_effective)
        return f[f < self.weak_threshold]

    @property
    def weak(self) -> bool:
        """Some ``f_stat`` or ``f_stat_effective`` is below ``weak_threshold``."""
        return bool(len(self.below_threshold()))

    def warning_message(self) -> str:
        return ("weak instruments: first-stage F = " + ", ".join(
            f"{k}: {v:.2f}" for k, v in self.below_threshold().items())
            + f" < {self.weak_threshold:g} (smaller of the {self.n_instruments}-instrument "
            "F and the effective F)")

    def to_dict(self) -> dict[str, Any]:
        keys = ["f_stat", "wald", "wald_pvalue", "f_stat_homoskedastic", "f_pvalue",
                "partial_rsquared"] + (["f_stat_effective"] if self.f_stat_effective is not None
                                       else [])
        return {"n_instruments": self.n_instruments, "weak": self.weak,
                "weak_threshold": self.weak_threshold,
                **{k: {str(i): float(v) for i, v in getattr(self, k).items()} for k in keys}}


@dataclass(frozen=True, eq=False)
class IVResult:
    """An estimate with its covariance. ``params``, ``std_errors`` are Series indexed by name
    (endogenous regressors first, then controls, ``const`` first among them); ``cov`` a
    DataFrame. ``first_stage`` is ``None`` for OLS. ``anderson_rubin`` is the weak-instrument
    robust test (:class:`~reelpick.causal.weakiv.AndersonRubin`) of the one endogenous
    regressor, ``None`` for OLS or several endogenous regressors."""

    params: pd.Series
    std_errors: pd.Series
    cov: pd.DataFrame
    cov_type: str
    nobs: int
    df_model: int
    n_clusters: int | None
    first_stage: FirstStage | None
    method: str = "2SLS"
    endog_names: tuple[str, ...] = field(default=())
    anderson_rubin: AndersonRubin | None = None

    @property
    def first_stage_f(self) -> pd.Series | None:
        """Effective first-stage F per endogenous regressor (Montiel Olea-Pflueger; the textbook
        F when homoskedastic, ``first_stage.f_stat`` with one instrument); ``None`` for OLS."""
        fs = self.first_stage
        if fs is None:
            return None
        return fs.f_stat_effective if fs.f_stat_effective is not None else fs.f_stat

    @property
    def weak_instrument(self) -> bool:
        """The first stage is weak (see :attr:`FirstStage.weak`); ``False`` for OLS."""
        return self.first_stage is not None and self.first_stage.weak

    def ar_conf_int(self, level: float = 0.95) -> ConfidenceSet:
        """Anderson-Rubin confidence set of the endogenous regressor's effect at ``level``
        (:meth:`~reelpick.causal.weakiv.AndersonRubin.conf_set`)."""
        if self.anderson_rubin is None:
            raise ValueError(f"{self.method}: no Anderson-Rubin test (it needs instruments and "
                             f"exactly one endogenous regressor)")
        return self.anderson_rubin.conf_set(level)

    @property
    def ar_ci(self) -> ConfidenceSet | None:
        """The 95% Anderson-Rubin set, or ``None`` where there is none (see ``ar_conf_int``)."""
        return None if self.anderson_rubin is None else self.anderson_rubin.conf_set(0.95)

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        """Normal (Wald) confidence intervals: ``lower``, ``upper`` per parameter."""
        if not 0 < level < 1:
            raise ValueError(f"level: must be in (0, 1), got {level!r}")
        q = stats.norm.ppf(0.5 + level / 2)
        return pd.DataFrame({"lower": self.params - q * self.std_errors,
                             "upper": self.params + q * self.std_errors})

    @property
    def tstats(self) -> pd.Series:
        return self.params / self.std_errors

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        ci = self.conf_int(level)
        return {
            "method": self.method, "cov_type": self.cov_type, "nobs": self.nobs,
            "n_clusters": self.n_clusters,
            "params": {k: float(v) for k, v in self.params.items()},
            "std_errors": {k: float(v) for k, v in self.std_errors.items()},
            "conf_int": {k: [float(ci.loc[k, "lower"]), float(ci.loc[k, "upper"])]
                         for k in self.params.index},
            "conf_level": level,
            "first_stage": None if self.first_stage is None else self.first_stage.to_dict(),
            "weak_instrument": self.weak_instrument,
            "ar_conf_set": None if self.anderson_rubin is None
            else self.anderson_rubin.conf_set(level).to_dict(),
        }


# ---------------------------------------------------------------------------- input handling
def _as_2d(x: Any, what: str, prefix: str) -> tuple[np.ndarray, list[str]]:
    if isinstance(x, pd.DataFrame):
        names = [str(c) for c in x.columns]
        arr = x.to_numpy(dtype=float)
    elif isinstance(x, pd.Series):
        names = [str(x.name) if x.name is not None else f"{prefix}0"]
        arr = x.to_numpy(dtype=float)[:, None]
    else:
        try:
            arr = np.asarray(x, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"{what}: expected numbers, got {type(x).__name__}") from None
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"{what}: expected a 1-D or 2-D array, got {arr.ndim}-D")
        names = [f"{prefix}{j}" for j in range(arr.shape[1])]
    if arr.ndim != 2:
        raise ValueError(f"{what}: expected a 1-D or 2-D array, got {arr.ndim}-D")
    return arr, names


def _check_rows(arr: np.ndarray, n: int, what: str) -> None:
    if arr.shape[0] != n:
        raise ValueError(f"{what}: expected {n} rows (as y), got {arr.shape[0]}")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ValueError(f"{what}: contains NaN or infinite values ({int(bad.sum())} row(s), "
                         f"first at row {int(np.flatnonzero(bad)[0])})")


def _rank(a: np.ndarray) -> int:
    """Numerical column rank of a tall matrix from its scaled Gram matrix (one BLAS-3 product
    instead of a QR/SVD of the n-row matrix)."""
    if a.shape[1] == 0:
        return 0
    g = a.T @ a
    scale = np.sqrt(np.diag(g))
    if (scale == 0).all():
        return 0
    scale = np.where(scale > 0, scale, 1.0)
    ev = np.linalg.eigvalsh(g / np.outer(scale, scale))
    return int((ev > ev.max() * 1e-12).sum())


def _small_rank(a: np.ndarray) -> int:
    s = np.linalg.svd(a, compute_uv=False)
    return int((s > s[0] * max(a.shape) * np.finfo(float).eps * 1e3).sum()) if s[0] > 0 else 0


@dataclass(frozen=True, eq=False)
class _Design:
    y: np.ndarray
    d: np.ndarray
    z: np.ndarray
    w: np.ndarray
    d_names: list[str]
    z_names: list[str]
    w_names: list[str]
    clusters: np.ndarray | None


def _design(y: Any, endog: Any, instruments: Any, controls: Any, clusters: Any,
            intercept: bool, cov_type: str) -> _Design:
    yv, _ = _as_2d(y, "y", "y")
    if yv.shape[1] != 1:
        raise ValueError(f"y: expected one outcome column, got {yv.shape[1]}")
    n = yv.shape[0]
    _check_rows(yv, n, "y")
    d, d_names = _as_2d(endog, "endog", "d")
    _check_rows(d, n, "endog")
    z, z_names = _as_2d(instruments, "instruments", "z")
    _check_rows(z, n, "instruments")
    w_names: list[str]
    if controls is None:
        w, w_names = np.empty((n, 0)), []
    else:
        w, w_names = _as_2d(controls, "controls", "w")
        _check_rows(w, n, "controls")
    if intercept:
        w, w_names = np.column_stack([np.ones(n), w]), ["const", *w_names]
    names = d_names + w_names
    if len(set(names)) != len(names) or set(z_names) & set(w_names):
        raise ValueError(f"names: regressor and instrument names must be distinct, got "
                         f"endog {d_names}, controls {w_names}, instruments {z_names}")
    if d.shape[1] == 0:
        raise ValueError("endog: need at least one endogenous regressor")
    if z.shape[1] < d.shape[1]:
        raise ValueError(f"under-identified: {z.shape[1]} instrument(s) for {d.shape[1]} "
                         f"endogenous regressor(s); need at least as many instruments as "
                         f"endogenous regressors")
    k = d.shape[1] + w.shape[1]
    if n <= z.shape[1] + w.shape[1] or n <= k:
        raise ValueError(f"y: need more rows than instruments plus controls, got n={n}")
    zz = np.column_stack([z, w])
    r = _rank(zz)
    if r < zz.shape[1]:
        raise ValueError(f"instruments: the matrix [instruments, controls] is rank-deficient "
                         f"(rank {r} < {zz.shape[1]} columns); drop collinear instruments or "
                         f"controls")
    cl = None
    if cov_type in ("CR0", "CR1"):
        if clusters is None:
            raise ValueError(f"clusters: cov_type={cov_type!r} needs a cluster label per row")
        cl = np.asarray(clusters)
        if cl.ndim != 1 or cl.shape[0] != n:
            raise ValueError(f"clusters: expected shape ({n},), got {cl.shape}")
        if pd.isna(cl).any():
            raise ValueError("clusters: contains missing labels")
        cl = pd.factorize(cl)[0]
        if cl.max() < 1:
            raise ValueError("clusters: need at least two clusters")
    elif clusters is not None:
        raise ValueError(f"clusters: only used with cov_type 'CR0' or 'CR1', got "
                         f"cov_type={cov_type!r}")
    return _Design(yv[:, 0], d, z, w, d_names, z_names, w_names, cl)


# ---------------------------------------------------------------------------- core algebra
def _sandwich(xhat: np.ndarray, e: np.ndarray, ainv: np.ndarray, cov_type: str,
              clusters: np.ndarray | None, k: int) -> np.ndarray:
    n = xhat.shape[0]
    if cov_type == "homoskedastic":
        return float(e @ e) / (n - k) * ainv
    score = xhat * e[:, None]
    if cov_type in ("HC0", "HC1"):
        meat = score.T @ score
        scale = n / (n - k) if cov_type == "HC1" else 1.0
    else:
        assert clusters is not None
        g = int(clusters.max()) + 1
        sums = np.zeros((g, score.shape[1]))
        np.add.at(sums, clusters, score)
        meat = sums.T @ sums
        scale = g / (g - 1) * (n - 1) / (n - k) if cov_type == "CR1" else 1.0
    cov = scale * ainv @ meat @ ainv
    return (cov + cov.T) / 2


def _fit(y: np.ndarray, x: np.ndarray, z: np.ndarray, cov_type: str,
         clusters: np.ndarray | None, gzz_inv: np.ndarray | None = None
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """beta, cov, xhat for 2SLS of y on x with instruments z (z = x gives OLS), by normal
    equations; ``gzz_inv`` is ``(z'z)^-1`` when already known."""
    gzx = z.T @ x
    gi = np.linalg.inv(z.T @ z) if gzz_inv is None else gzz_inv
    pi = gi @ gzx                       # first-stage coefficients (m, k)
    xhat = z @ pi
    a = gzx.T @ pi                      # = xhat' xhat = xhat' x
    a = (a + a.T) / 2
    r = _small_rank(a)
    if r < x.shape[1]:
        raise ValueError(f"endog: not identified: the first-stage fitted values have rank "
                         f"{r} < {x.shape[1]} regressors (instruments do not move every "
                         f"endogenous regressor, or regressors are collinear)")
    ainv = np.linalg.inv(a)
    beta = ainv @ (xhat.T @ y)
    e = y - x @ beta
    return beta, _sandwich(xhat, e, ainv, cov_type, clusters, x.shape[1]), xhat


def _partial_out(des: _Design) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y (n,)``, ``d (n, k_d)``, ``z (n, q)`` with the controls partialled out (OLS residuals
    on ``w``)."""
    v = np.column_stack([des.y, des.d, des.z])
    if des.w.shape[1]:
        v = v - des.w @ np.linalg.solve(des.w.T @ des.w, des.w.T @ v)
    kd = des.d.shape[1]
    return v[:, 0], v[:, 1:1 + kd], v[:, 1 + kd:]


def _first_stage(des: _Design, cov_type: str, weak_threshold: float = 10.0) -> FirstStage:
    zz = np.column_stack([des.z, des.w])
    n, m = zz.shape
    qn = des.z.shape[1]
    rows: dict[str, list[float]] = {k: [] for k in ("f", "wald", "wp", "fh", "fp", "pr2",
                                                    "feff")}
    coefs = []
    zinv = np.linalg.inv(zz.T @ zz)
    szz = np.linalg.inv(zinv[:qn, :qn])  # = Z~'Z~, instruments with the controls partialled out
    winv = np.linalg.inv(des.w.T @ des.w) if des.w.shape[1] else None
    for j in range(des.d.shape[1]):
        dj = des.d[:, j]
        beta, cov, _ = _fit(dj, zz, zz, cov_type, des.clusters, zinv)
        b = beta[:qn]
        wald = float(b @ np.linalg.solve(cov[:qn, :qn], b))
        e = dj - zz @ beta
        s2 = float(e @ e) / (n - m)
        cov_h = s2 * zinv
        fh = float(b @ np.linalg.solve(cov_h[:qn, :qn], b)) / qn
        # partial R^2: controls partialled out of d_j and of the instruments
        if winv is not None:
            ed = dj - des.w @ (winv @ (des.w.T @ dj))
        else:
            ed = dj
        ssr_r = float(ed @ ed)
        rows["f"].append(wald / qn)
        rows["wald"].append(wald)
        rows["wp"].append(float(stats.chi2.sf(wald, qn)))
        rows["fh"].append(fh)
        rows["fp"].append(float(stats.f.sf(fh, qn, n - m)))
        rows["pr2"].append(1.0 - float(e @ e) / ssr_r if ssr_r > 0 else 0.0)
        rows["feff"].append(effective_f(b, cov[:qn, :qn], szz))
        coefs.append(beta[:qn])
    idx = pd.Index(des.d_names)
    s = lambda key: pd.Series(rows[key], index=idx, dtype=float)  # noqa: E731
    return FirstStage(f_stat=s("f"), wald=s("wald"), wald_pvalue=s("wp"),
                      f_stat_homoskedastic=s("fh"), f_pvalue=s("fp"),
                      partial_rsquared=s("pr2"),
                      params=pd.DataFrame(np.array(coefs), index=idx, columns=des.z_names),
                      n_instruments=qn, f_stat_effective=s("feff"),
                      weak_threshold=weak_threshold)


def two_stage_least_squares(y: Any, endog: Any, instruments: Any, controls: Any = None, *,
                            clusters: Any = None, cov_type: CovType = "HC1",
                            intercept: bool = True, weak_threshold: float = 10.0) -> IVResult:
    """2SLS of ``y`` on ``endog`` (and ``controls``) with excluded ``instruments``.

    Parameters
    ----------
    y : (n,) outcome.
    endog : (n,) or (n, k_d) endogenous regressors (a DataFrame names them).
    instruments : (n,) or (n, q) excluded instruments, ``q >= k_d``.
    controls : (n, p) exogenous regressors, or ``None``; a constant is added when ``intercept``.
    clusters : (n,) cluster labels, required for ``cov_type`` ``"CR0"``/``"CR1"`` only.
    cov_type : ``"homoskedastic"``, ``"HC0"``, ``"HC1"``, ``"CR0"`` or ``"CR1"``.
    weak_threshold : warn (:class:`WeakInstrumentWarning`) when a first-stage ``f_stat`` is
        below it.

    Raises ``ValueError`` for shape mismatches, NaN/inf, fewer instruments than endogenous
    regressors, rank-deficient instruments, unidentified models and bad cluster labels.
    """
    return TwoStageLeastSquares(cov_type=cov_type, intercept=intercept,
                                weak_threshold=weak_threshold).fit(
        y, endog, instruments, controls, clusters=clusters).result_


def ols(y: Any, x: Any, controls: Any = None, *, clusters: Any = None,
        cov_type: CovType = "HC1", intercept: bool = True) -> IVResult:
    """Ordinary least squares of ``y`` on ``x`` (and ``controls``), same covariance types as
    2SLS: the naive, confounded comparison. ``x`` is named like ``endog`` (``d0``, ...)."""
    _check_cov_type(cov_type)
    des = _design(y, x, x, controls, clusters, intercept, cov_type)
    xx = np.column_stack([des.d, des.w])
    beta, cov, _ = _fit(des.y, xx, xx, cov_type, des.clusters)
    return _result(des, beta, cov, cov_type, None, "OLS")


def _check_cov_type(cov_type: str) -> None:
    if cov_type not in COV_TYPES:
        raise ValueError(f"cov_type: use one of {COV_TYPES}, got {cov_type!r}")


def _result(des: _Design, beta: np.ndarray, cov: np.ndarray, cov_type: str,
            fs: FirstStage | None, method: str, ar: AndersonRubin | None = None) -> IVResult:
    names = des.d_names + des.w_names
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    return IVResult(params=pd.Series(beta, index=names, name="params"),
                    std_errors=pd.Series(se, index=names, name="std_errors"),
                    cov=pd.DataFrame(cov, index=names, columns=names), cov_type=cov_type,
                    nobs=int(des.y.shape[0]), df_model=len(names),
                    n_clusters=None if des.clusters is None else int(des.clusters.max()) + 1,
                    first_stage=fs, method=method, endog_names=tuple(des.d_names),
                    anderson_rubin=ar)


class TwoStageLeastSquares:
    """2SLS estimator (see the module docstring for the formulas and references).

    Hyperparameters (keyword-only, validated here): ``cov_type``, ``intercept``,
    ``weak_threshold``. ``fit(y, endog, instruments, controls=None, clusters=None)`` returns
    ``self``; the estimate is ``result_`` (:class:`IVResult`), shortcuts ``params_``,
    ``std_errors_``, ``first_stage_``. With one endogenous regressor ``result_.ar_ci`` is the
    weak-instrument-robust Anderson-Rubin set beside the Wald ``conf_int()``.
    """

    def __init__(self, *, cov_type: CovType = "HC1", intercept: bool = True,
                 weak_threshold: float = 10.0) -> None:
        _check_cov_type(cov_type)
        if not isinstance(intercept, bool):
            raise TypeError(f"intercept: expected a bool, got {intercept!r}")
        if not np.isfinite(weak_threshold) or weak_threshold < 0:
            raise ValueError(f"weak_threshold: must be a finite number >= 0, got "
                             f"{weak_threshold!r}")
        self.cov_type, self.intercept, self.weak_threshold = cov_type, intercept, weak_threshold

    def fit(self, y: Any, endog: Any, instruments: Any, controls: Any = None, *,
            clusters: Any = None) -> TwoStageLeastSquares:
        des = _design(y, endog, instruments, controls, clusters, self.intercept, self.cov_type)
        x = np.column_stack([des.d, des.w])
        z = np.column_stack([des.z, des.w])
        beta, cov, _ = _fit(des.y, x, z, self.cov_type, des.clusters)
        fs = _first_stage(des, self.cov_type, self.weak_threshold)
        ar = None
        if des.d.shape[1] == 1:
            yt, dt, zt = _partial_out(des)
            ar = from_residuals(yt, dt[:, 0], zt, self.cov_type, des.clusters, des.w.shape[1])
        if fs.weak:
            warnings.warn(f"{fs.warning_message()}; 2SLS is biased toward OLS and its Wald "
                          f"confidence intervals are unreliable"
                          + ("; use the Anderson-Rubin set (result.ar_ci)" if ar else ""),
                          WeakInstrumentWarning, stacklevel=2)
        self.result_ = _result(des, beta, cov, self.cov_type, fs, "2SLS", ar)
        return self

    def _fitted(self) -> IVResult:
        if not hasattr(self, "result_"):
            raise NotFittedError("TwoStageLeastSquares is not fitted: call fit() first")
        return self.result_

    @property
    def params_(self) -> pd.Series:
        return self._fitted().params

    @property
    def std_errors_(self) -> pd.Series:
        return self._fitted().std_errors

    @property
    def first_stage_(self) -> FirstStage:
        fs = self._fitted().first_stage
        assert fs is not None
        return fs

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        return self._fitted().conf_int(level)


def names_of(x: Any, prefix: str) -> Sequence[str]:
    """Column names :func:`two_stage_least_squares` gives to ``x`` (``prefix0``, ... for
    arrays)."""
    return _as_2d(x, "x", prefix)[1]
