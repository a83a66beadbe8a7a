r"""Weak-instrument-robust inference: Anderson-Rubin confidence sets and the effective F.

Model: one endogenous regressor :math:`d`, excluded instruments :math:`Z` (``q`` columns),
exogenous controls :math:`W` (a constant among them), :math:`y = d\beta + W\delta + \varepsilon`.
Write :math:`\tilde v` for :math:`v` with :math:`W` partialled out, :math:`S = \tilde Z'\tilde Z`.

**Anderson-Rubin test** (Anderson & Rubin 1949) of :math:`H_0: \beta = b`: regress
:math:`u(b) = y - b d` on :math:`[Z, W]` and test that the ``q`` instrument coefficients are
zero. Under :math:`H_0` they are, whatever the strength of the instruments, so the test has the
right size even when :math:`Z` barely moves :math:`d`. With :math:`h(b) = \tilde Z' \tilde u(b)`
and :math:`K(b)` the "meat" of the coefficients' covariance :math:`S^{-1} K(b) S^{-1}`, the
Wald statistic is

.. math::

    \mathrm{AR}(b) = h(b)' K(b)^{-1} h(b), \qquad h(b) = h_0 + b h_1, \qquad
    K(b) = K_0 + b K_1 + b^2 K_2,

with :math:`h_0 = \tilde Z'\tilde y`, :math:`h_1 = -\tilde Z'\tilde d` and, for residuals
:math:`e(b) = e_y - b e_d` of the regression of :math:`u(b)` on :math:`[Z, W]`,

``homoskedastic``  :math:`K(b) = \frac{e(b)'e(b)}{n - q - p} S`; ``AR / q`` is exactly
                   :math:`F_{q, n-q-p}` under :math:`H_0` with normal errors.
``HC0``/``HC1``    :math:`K(b) = c \sum_i e_i(b)^2 \tilde z_i \tilde z_i'`
``CR0``/``CR1``    :math:`K(b) = c \sum_g \xi_g(b) \xi_g(b)'`,
                   :math:`\xi_g(b) = \sum_{i \in g} e_i(b) \tilde z_i`

(``p`` = columns of :math:`W`; :math:`c` = 1, :math:`n/(n-q-p)` for HC1,
:math:`\frac{G}{G-1}\frac{n-1}{n-q-p}` for CR1: the same small-sample factors as
:mod:`reelpick.causal.iv`, for the ``q + p`` regressors of the AR regression). The critical
value is :math:`q F_{q, n-q-p}(\text{level})` for ``homoskedastic`` and
:math:`\chi^2_q(\text{level})` otherwise.

**Inversion.** The confidence set :math:`\{b : \mathrm{AR}(b) \le c\}` is where
:math:`M(b) = c K(b) - h(b) h(b)'` is positive semi-definite (Schur complement;
:math:`\det M(b) = \det(cK(b))(1 - \mathrm{AR}(b)/c)`). With one instrument, or homoskedastic
errors, this is one quadratic inequality :math:`m_2 b^2 + m_1 b + m_0 \ge 0`, solved in closed
form; otherwise :math:`\det M(b)` is a polynomial of degree ``2q`` whose real roots are the
eigenvalues of the companion pencil of the quadratic matrix polynomial :math:`M`. Between the
sorted roots, membership is constant and is read off one point per piece. The set is honestly
one of: a bounded interval, the union of two rays (when :math:`m_2 > 0`, i.e. the first stage
does not reject "no effect of Z on d" at the same level), the whole line (the data say nothing),
an empty set (over-identified models whose instruments disagree), or, for robust covariances
with several instruments, a union of several intervals. :class:`ConfidenceSet` holds it as a
tuple of closed intervals with infinite ends where unbounded.

**Effective F** (Montiel Olea & Pflueger 2013): with first-stage coefficients :math:`\hat\pi` and
their covariance :math:`\hat V` (the fit's covariance type),
:math:`F_{\text{eff}} = \hat\pi' S \hat\pi / \operatorname{tr}(\hat V S)`. It equals the
textbook F with homoskedastic errors and the robust F with one instrument.

References: Anderson & Rubin (1949), *Ann. Math. Statist.* 20(1); Staiger & Stock (1997),
*Econometrica* 65(3); Dufour (1997), *Econometrica* 65(6) (unbounded sets are necessary);
Montiel Olea & Pflueger (2013), *JBES* 31(3); Andrews, Stock & Sun (2019), *Annu. Rev. Econ.*
11 (practical recommendations).

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> n = 2_000
>>> u = rng.normal(size=n); z = rng.normal(size=n)
>>> d = 0.5 * z + u + rng.normal(size=n)
>>> y = 2.0 * d + 2.0 * u + rng.normal(size=n)
>>> ar = anderson_rubin(y, d, z, cov_type="HC1")
>>> cs = ar.conf_set(0.95)
>>> cs.kind, cs.contains(2.0), round(cs.lower, 2) < 2.0 < round(cs.upper, 2)
('interval', True, True)
>>> weak = anderson_rubin(y, d, 0.01 * d + rng.normal(size=n))   # an irrelevant instrument
>>> weak.conf_set(0.95).bounded
False
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
from scipy import stats

__all__ = ["AndersonRubin", "ConfidenceSet", "anderson_rubin", "effective_f"]


@dataclass(frozen=True)
class ConfidenceSet:
    """A confidence set for one coefficient: disjoint, sorted closed ``intervals`` (ends may be
    ``-inf`` / ``inf``), at ``level``, from ``method``.

    ``kind`` is ``"interval"`` (bounded), ``"two rays"`` (:math:`(-\\infty, a] \\cup [b,
    \\infty)`), ``"ray"``, ``"real line"``, ``"empty"`` or ``"union"`` (several pieces).

    >>> cs = ConfidenceSet(((-math.inf, -1.0), (2.0, math.inf)), 0.95)
    >>> cs.kind, cs.bounded, cs.contains(0.0), cs.contains(5.0), str(cs)
    ('two rays', False, False, True, '(-inf, -1] ∪ [2, inf)')
    """

    intervals: tuple[tuple[float, float], ...]
    level: float
    method: str = "Anderson-Rubin"

    def __post_init__(self) -> None:
        prev = -math.inf
        for i, (lo, hi) in enumerate(self.intervals):
            if math.isnan(lo) or math.isnan(hi) or lo > hi or (i and lo <= prev):
                raise ValueError(f"intervals: need sorted, disjoint (lo <= hi) pairs, got "
                                 f"{self.intervals!r}")
            prev = hi

    @property
    def empty(self) -> bool:
        return not self.intervals

    @property
    def bounded(self) -> bool:
        """Non-empty and contained in a bounded interval."""
        return bool(self.intervals) and math.isfinite(self.intervals[0][0]) \
            and math.isfinite(self.intervals[-1][1])

    @property
    def unbounded(self) -> bool:
        return bool(self.intervals) and not self.bounded

    @property
    def lower(self) -> float:
        """Smallest element (``-inf`` if unbounded below; ``nan`` if empty)."""
        return self.intervals[0][0] if self.intervals else math.nan

    @property
    def upper(self) -> float:
        """Largest element (``inf`` if unbounded above; ``nan`` if empty)."""
        return self.intervals[-1][1] if self.intervals else math.nan

    @property
    def length(self) -> float:
        """Total length (``inf`` if unbounded, 0 if empty)."""
        return float(sum(hi - lo for lo, hi in self.intervals))

    @property
    def kind(self) -> str:
        iv = self.intervals
        if not iv:
            return "empty"
        if len(iv) == 1:
            lo, hi = iv[0]
            if math.isinf(lo) and math.isinf(hi):
                return "real line"
            return "ray" if math.isinf(lo) or math.isinf(hi) else "interval"
        if len(iv) == 2 and math.isinf(iv[0][0]) and math.isinf(iv[1][1]):
            return "two rays"
        return "union"

    def contains(self, value: float) -> bool:
        return any(lo <= value <= hi for lo, hi in self.intervals)

    def __str__(self) -> str:
        if not self.intervals:
            return "∅"
        return " ∪ ".join(f"{'(' if math.isinf(lo) else '['}{lo:.6g}, "
                          f"{hi:.6g}{')' if math.isinf(hi) else ']'}"
                          for lo, hi in self.intervals)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: infinite ends as ``None``."""
        f = lambda v: None if math.isinf(v) else float(v)  # noqa: E731
        return {"method": self.method, "level": self.level, "kind": self.kind,
                "bounded": self.bounded, "intervals": [[f(lo), f(hi)] for lo, hi in
                                                       self.intervals]}


@dataclass(frozen=True, eq=False)
class AndersonRubin:
    """The Anderson-Rubin test of :math:`\\beta = b` for one endogenous regressor, from the
    small moments of the module docstring (``h0, h1 (q,)``; ``k0, k1, k2 (q, q)`` with the
    small-sample factor folded in; ``s (q, q)`` = :math:`\\tilde Z'\\tilde Z`), ``df`` = residual
    degrees of freedom ``n - q - p`` of the AR regression.

    Built by :func:`anderson_rubin` (from data), by 2SLS (``IVResult.anderson_rubin``) and by
    SGD-IV (from its streamed residual moments).
    """

    h0: np.ndarray
    h1: np.ndarray
    k0: np.ndarray
    k1: np.ndarray
    k2: np.ndarray
    s: np.ndarray
    cov_type: str
    df: int
    nobs: int

    @property
    def n_instruments(self) -> int:
        return int(self.h0.shape[0])

    def critical_value(self, level: float = 0.95) -> float:
        """Critical value of :meth:`statistic` (the Wald form, :math:`\\chi^2`-scale)."""
        if not 0 < level < 1:
            raise ValueError(f"level: must be in (0, 1), got {level!r}")
        q = self.n_instruments
        if self.cov_type == "homoskedastic":
            return float(q * stats.f.ppf(level, q, self.df))
        return float(stats.chi2.ppf(level, q))

    def statistic(self, b: Any) -> np.ndarray:
        """``AR(b)``, the Wald statistic :math:`h(b)'K(b)^{-1}h(b)` (``q`` times the F form), for
        each value of ``b`` (scalar or array; returns an array of ``b``'s shape)."""
        bb = np.asarray(b, dtype=float)
        flat = bb.ravel()
        h = self.h0[None, :] + flat[:, None] * self.h1[None, :]
        k = self.k0[None] + flat[:, None, None] * self.k1[None] \
            + (flat ** 2)[:, None, None] * self.k2[None]
        out = np.einsum("ij,ij->i", h, np.linalg.solve(k, h[..., None])[..., 0])
        return out.reshape(bb.shape)

    def pvalue(self, b: Any) -> np.ndarray:
        """p-value of ``H0: beta = b`` (F for ``homoskedastic``, chi-square otherwise)."""
        w = self.statistic(b)
        q = self.n_instruments
        if self.cov_type == "homoskedastic":
            return stats.f.sf(w / q, q, self.df)
        return stats.chi2.sf(w, q)

    def _roots(self, c: float) -> np.ndarray:
        """Real roots of :math:`\\det(cK(b) - h(b)h(b)')` (the boundary candidates)."""
        h0, h1 = self.h0, self.h1
        a0 = c * self.k0 - np.outer(h0, h0)
        a1 = c * self.k1 - np.outer(h0, h1) - np.outer(h1, h0)
        a2 = c * self.k2 - np.outer(h1, h1)
        q = self.n_instruments
        if q == 1 or self.cov_type == "homoskedastic":
            if q == 1:
                m0, m1, m2 = float(a0[0, 0]), float(a1[0, 0]), float(a2[0, 0])
            else:  # K(b) = sigma(b) S: c sigma(b) - h(b)' S^-1 h(b) >= 0
                si = np.linalg.inv(self.s)
                sig = [float(np.trace(k @ si)) / q for k in (self.k0, self.k1, self.k2)]
                m0 = c * sig[0] - float(h0 @ si @ h0)
                m1 = c * sig[1] - 2.0 * float(h0 @ si @ h1)
                m2 = c * sig[2] - float(h1 @ si @ h1)
            return _quadratic_roots(m2, m1, m0)
        # companion linearisation of the quadratic eigenvalue problem (a0 + b a1 + b^2 a2) x = 0
        eye, zero = np.eye(q), np.zeros((q, q))
        lhs = np.block([[zero, eye], [-a0, -a1]])
        rhs = np.block([[eye, zero], [zero, a2]])
        ev = scipy.linalg.eigvals(lhs, rhs)
        ev = ev[np.isfinite(ev)]
        real = ev[np.abs(ev.imag) <= 1e-7 * (1.0 + np.abs(ev.real))].real
        return np.sort(real)

    def conf_set(self, level: float = 0.95) -> ConfidenceSet:
        """:math:`\\{b : \\mathrm{AR}(b) \\le c\\}` at ``level``, inverted exactly (module
        docstring): an interval, two rays, the real line, empty, or a union."""
        c = self.critical_value(level)
        roots = np.unique(self._roots(c))
        edges = [-math.inf, *[float(r) for r in roots], math.inf]
        pieces: list[list[float]] = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            if math.isinf(lo) and math.isinf(hi):
                t = 0.0
            elif math.isinf(lo):
                t = hi - max(1.0, abs(hi))
            elif math.isinf(hi):
                t = lo + max(1.0, abs(lo))
            else:
                t = 0.5 * (lo + hi)
            if float(self.statistic(t)) <= c:
                if pieces and pieces[-1][1] == lo:
                    pieces[-1][1] = hi          # a spurious or tangent root: merge
                else:
                    pieces.append([lo, hi])
        return ConfidenceSet(tuple((lo, hi) for lo, hi in pieces), level)

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        return {"cov_type": self.cov_type, "n_instruments": self.n_instruments,
                "conf_set": self.conf_set(level).to_dict()}


def _quadratic_roots(a: float, b: float, c: float) -> np.ndarray:
    """Real roots of :math:`a x^2 + b x + c` (stable formula; linear when ``a == 0``)."""
    if a == 0.0:
        return np.array([-c / b]) if b != 0.0 else np.empty(0)
    disc = b * b - 4.0 * a * c
    if disc < 0:
        return np.empty(0)
    t = -0.5 * (b + math.copysign(math.sqrt(disc), b))
    if t == 0.0:
        return np.array([0.0])
    return np.sort(np.array([t / a, c / t]))


def effective_f(pi: np.ndarray, cov: np.ndarray, s: np.ndarray) -> float:
    """Montiel Olea-Pflueger effective F, :math:`\\hat\\pi'S\\hat\\pi / \\mathrm{tr}(\\hat V S)`,
    of first-stage coefficients ``pi (q,)`` with covariance ``cov (q, q)`` and
    ``s`` = :math:`\\tilde Z'\\tilde Z` ``(q, q)``.

    >>> s = np.diag([100.0, 400.0]); pi = np.array([0.5, 0.1])
    >>> round(effective_f(pi, 2.0 * np.linalg.inv(s), s), 6)   # homoskedastic: pi'S pi/(q s2)
    7.25
    """
    return float(pi @ s @ pi) / float(np.trace(cov @ s))


def _small_sample_factor(cov_type: str, n: int, k: int, n_clusters: int | None) -> float:
    if cov_type == "HC1":
        return n / (n - k)
    if cov_type == "CR1":
        assert n_clusters is not None
        return n_clusters / (n_clusters - 1) * (n - 1) / (n - k)
    return 1.0


def from_residuals(yt: np.ndarray, dt: np.ndarray, zt: np.ndarray, cov_type: str,
                   clusters: np.ndarray | None, n_controls: int) -> AndersonRubin:
    """The AR moments from ``y``, ``d`` ``(n,)`` and ``Z`` ``(n, q)`` with the ``n_controls``
    controls already partialled out; ``clusters`` dense int labels (CR types)."""
    n, q = zt.shape
    s = zt.T @ zt
    hy, hd = zt.T @ yt, zt.T @ dt
    sinv = np.linalg.inv(s)
    ey, ed = yt - zt @ (sinv @ hy), dt - zt @ (sinv @ hd)
    e = (ey, -ed)                       # e(b) = e[0] + b e[1]
    k = q + n_controls
    df = n - k
    if cov_type == "homoskedastic":
        kk = [float(e[0] @ e[0]), 2.0 * float(e[0] @ e[1]), float(e[1] @ e[1])]
        ks = [v / df * s for v in kk]
        n_cl = None
    elif cov_type in ("HC0", "HC1"):
        ks = [(zt * (a * b)[:, None]).T @ zt for a, b in ((e[0], e[0]), (e[0], e[1]),
                                                           (e[1], e[1]))]
        ks[1] = 2.0 * ks[1]
        n_cl = None
    else:
        assert clusters is not None
        n_cl = int(clusters.max()) + 1
        xi = []
        for a in e:
            g = np.zeros((n_cl, q))
            np.add.at(g, clusters, zt * a[:, None])
            xi.append(g)
        cross = xi[0].T @ xi[1]
        ks = [xi[0].T @ xi[0], cross + cross.T, xi[1].T @ xi[1]]
    f = _small_sample_factor(cov_type, n, k, n_cl)
    ks = [f * (m + m.T) / 2 for m in ks]
    return AndersonRubin(h0=hy, h1=-hd, k0=ks[0], k1=ks[1], k2=ks[2], s=s, cov_type=cov_type,
                         df=df, nobs=n)


def from_moments(srr: np.ndarray, m4: np.ndarray, cl: np.ndarray | None, n: int, j: int,
                 q: int, n_controls: int, cov_type: str) -> AndersonRubin:
    """The AR moments from SGD-IV's streamed residual sums over ``[y, d_1..d_kd, z_1..z_q]``
    (``srr (m, m)``, ``m4 (m, m, q, q)``, per-cluster ``cl (G, m, q)`` or ``None``), for
    endogenous regressor ``j`` (0-based), ``n_controls`` counted in the small-sample factor
    (robust and clustered types only, as SGD-IV)."""
    m = srr.shape[0]
    iz = slice(m - q, m)
    s = srr[iz, iz]
    sinv = np.linalg.inv(s)
    gy, gd = sinv @ srr[iz, 0], sinv @ srr[iz, 1 + j]
    c0, c1 = np.zeros(m), np.zeros(m)   # residual e(b) = (c0 + b c1)' r
    c0[0], c0[iz] = 1.0, -gy
    c1[1 + j], c1[iz] = -1.0, gd
    k = q + n_controls
    df = n - k
    n_cl = None
    if cov_type not in ("HC0", "HC1", "CR0", "CR1"):
        raise ValueError(f"cov_type: SGD-IV moments support HC0, HC1, CR0, CR1, got "
                         f"{cov_type!r}")
    if cl is None:
        ks = [np.einsum("a,b,abjk->jk", a, b, m4) for a, b in ((c0, c0), (c0, c1), (c1, c1))]
        ks[1] = 2.0 * ks[1]
    else:
        n_cl = int((np.abs(cl).sum(axis=(1, 2)) > 0).sum())
        x0, x1 = np.einsum("a,gaj->gj", c0, cl), np.einsum("a,gaj->gj", c1, cl)
        cross = x0.T @ x1
        ks = [x0.T @ x0, cross + cross.T, x1.T @ x1]
    f = _small_sample_factor(cov_type, n, k, n_cl)
    ks = [f * (a + a.T) / 2 for a in ks]
    return AndersonRubin(h0=srr[iz, 0].copy(), h1=-srr[iz, 1 + j].copy(), k0=ks[0], k1=ks[1],
                         k2=ks[2], s=s, cov_type=cov_type, df=df, nobs=n)


def anderson_rubin(y: Any, endog: Any, instruments: Any, controls: Any = None, *,
                   clusters: Any = None, cov_type: str = "HC1",
                   intercept: bool = True) -> AndersonRubin:
    """The Anderson-Rubin test for one endogenous regressor (inputs and ``cov_type`` as
    :func:`reelpick.causal.iv.two_stage_least_squares`); ``.conf_set(level)`` inverts it.

    >>> rng = np.random.default_rng(1)
    >>> z = rng.normal(size=500); d = z + rng.normal(size=500); y = 1.0 * d + rng.normal(size=500)
    >>> ar = anderson_rubin(y, d, z, cov_type="homoskedastic")
    >>> bool(ar.pvalue(1.0) > 0.05), bool(ar.pvalue(0.0) < 1e-6)
    (True, True)
    """
    from reelpick.causal.iv import _check_cov_type, _design, _partial_out

    _check_cov_type(cov_type)
    des = _design(y, endog, instruments, controls, clusters, intercept, cov_type)
    if des.d.shape[1] != 1:
        raise ValueError(f"endog: the Anderson-Rubin set is for one endogenous regressor, got "
                         f"{des.d.shape[1]}")
    yt, dt, zt = _partial_out(des)
    return from_residuals(yt, dt[:, 0], zt, cov_type, des.clusters, des.w.shape[1])
