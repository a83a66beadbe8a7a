r"""Stochastic-gradient IV for data too big for closed form: streamed, bounded memory.

The model is the partially linear IV model with high-dimensional controls :math:`W`
(dense features plus sparse member/title effects, hashed or indexed):

.. math::

    y = D'\beta + g(W) + \varepsilon, \qquad E[\varepsilon \mid Z, W] = 0,

with endogenous :math:`D` (``k_d`` columns) and excluded instruments :math:`Z` (``q >= k_d``).
By Frisch-Waugh-Lovell, 2SLS with linear controls equals 2SLS on residuals
:math:`\tilde v = v - \hat E[v \mid W]` for :math:`v \in \{y, D, Z\}`:

.. math::

    \hat\Pi = (\tilde Z'\tilde Z)^{-1}\tilde Z'\tilde D, \qquad
    \hat\beta = (\hat\Pi'\tilde Z'\tilde D)^{-1}\hat\Pi'\tilde Z'\tilde y .

``SGDIV`` learns the ``1 + k_d + q`` linear nuisance regressions
:math:`\hat E[v \mid W] = c + W_{dense} B + \sum_f E_f[\text{id}_f]` jointly by minibatch
stochastic gradient descent (Adagrad, Duchi, Hazan & Singer 2011, whose per-coordinate steps
suit sparse one-hot effects; small ridge penalty) over ``epochs`` passes of a re-iterable batch
source, then makes one more pass accumulating the small moment matrices
:math:`\sum r r'` and :math:`\sum (r r') \otimes (\tilde z \tilde z')` (``r`` = all residuals)
and per-cluster sums :math:`\sum_{i \in g} r_i \tilde z_i'`, from which :math:`\hat\beta`, its
HC0/HC1/CR0/CR1 sandwich covariance and the first-stage F follow in closed form. Memory is
``O(batch + n_ids * (1 + k_d + q) + n_clusters * (1 + k_d + q) * q)``, whatever the row count.

The final step is the GMM/2SLS estimator on residualised data, whose moment
:math:`E[(\tilde y - \tilde D'\beta)\tilde Z] = 0` is Neyman-orthogonal to the nuisance
regressions (Chernozhukov et al. 2018, "Double/debiased machine learning", partially linear IV
model): errors of the SGD nuisance fits move :math:`\hat\beta` only at second order, which is why
it agrees with closed-form 2SLS although SGD is stopped after a few epochs. With exact OLS
nuisance fits it *is* 2SLS (FWL). Related published work on stochastic-gradient IV:
Hartford et al. (2017) "Deep IV" (ICML; two-stage, SGD-trained), Bennett, Kallus & Schnabel
(2019) "Deep Generalized Method of Moments" (NeurIPS; SGD on a GMM game), Venkatraman et al.
(2016) "Online instrumental variable regression with applications to online linear system
identification" (AAAI) and Della Vecchia et al. (2025) on stochastic optimisation for IV
regression. This implementation is the DML-style partialling-out estimator above; it is not
Netflix's unpublished "SGDIV".

Fixed effects are not counted in the small-sample factor ``n / (n - k)`` of HC1/CR1
(``k = k_d`` + dense controls + 1), as in most absorbing-regression software without nesting
corrections.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> n, members = 20_000, 200
>>> m = rng.integers(0, members, n); fe = rng.normal(size=members)[m]
>>> u = rng.normal(size=n); z = rng.binomial(1, 0.5, n)
>>> d = z + u + fe + rng.normal(size=n)
>>> y = 0.5 * d + u + 2 * fe + rng.normal(size=n)
>>> src = ArrayBatches(y, d, z, categorical=m, batch_size=4096)
>>> est = SGDIV(epochs=3, cov_type="HC0").fit(src)
>>> abs(float(est.result_.params["d0"]) - 0.5) < 0.05
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import stats

from reelpick.causal.iv import FirstStage, IVResult, NotFittedError


@dataclass(frozen=True, eq=False)
class IVBatch:
    """One minibatch (``b`` rows): ``y (b,)``, ``endog (b, k_d)``, ``instruments (b, q)``,
    ``dense (b, p)`` controls, ``categorical (b, f)`` int64 ids into one shared table of
    ``n_ids`` rows (``-1`` = missing), ``clusters (b,)`` non-negative int labels or ``None``."""

    y: np.ndarray
    endog: np.ndarray
    instruments: np.ndarray
    dense: np.ndarray
    categorical: np.ndarray
    clusters: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)


@runtime_checkable
class BatchSource(Protocol):
    """A re-iterable stream of :class:`IVBatch` (each ``iter()`` replays the same rows).

    ``n_ids``: size of the id table that ``categorical`` indexes; ``endog_names``,
    ``instrument_names``: labels for the result."""

    n_ids: int
    endog_names: tuple[str, ...]
    instrument_names: tuple[str, ...]

    def __iter__(self) -> Iterator[IVBatch]: ...


def _cols(x: Any, n: int, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    a = a[:, None] if a.ndim == 1 else a
    if a.ndim != 2 or a.shape[0] != n:
        raise ValueError(f"{what}: expected {n} rows (as y), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    return a


class ArrayBatches:
    """In-memory arrays as a :class:`BatchSource` (tests, moderate data).

    ``categorical`` is ``(n,)`` or ``(n, f)`` non-negative ints; each field gets its own block of
    the id table (field ``j`` offset by the sizes of the fields before it).
    """

    def __init__(self, y: Any, endog: Any, instruments: Any, *, dense: Any = None,
                 categorical: Any = None, clusters: Any = None, batch_size: int = 65_536,
                 endog_names: Sequence[str] | None = None,
                 instrument_names: Sequence[str] | None = None) -> None:
        y = np.asarray(y, dtype=float).ravel()
        n = y.size
        if not np.isfinite(y).all():
            raise ValueError("y: contains NaN or infinite values")
        self.y = y
        self.endog = _cols(endog, n, "endog")
        self.instruments = _cols(instruments, n, "instruments")
        self.dense = np.empty((n, 0)) if dense is None else _cols(dense, n, "dense")
        if categorical is None:
            self.categorical = np.empty((n, 0), dtype=np.int64)
            self.n_ids = 0
        else:
            c = np.asarray(categorical)
            c = c[:, None] if c.ndim == 1 else c
            if c.shape[0] != n or c.dtype.kind not in "iu" or (c < 0).any():
                raise ValueError("categorical: expected (n,) or (n, f) non-negative ints")
            sizes = c.max(axis=0) + 1
            offs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            self.categorical = (c + offs).astype(np.int64)
            self.n_ids = int(sizes.sum())
        self.clusters = None if clusters is None else pd.factorize(np.asarray(clusters))[0]
        if self.clusters is not None and self.clusters.shape != (n,):
            raise ValueError(f"clusters: expected shape ({n},)")
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.endog_names = tuple(endog_names or [f"d{j}" for j in range(self.endog.shape[1])])
        self.instrument_names = tuple(instrument_names or
                                      [f"z{j}" for j in range(self.instruments.shape[1])])

    def __iter__(self) -> Iterator[IVBatch]:
        for lo in range(0, self.y.size, self.batch_size):
            sl = slice(lo, lo + self.batch_size)
            yield IVBatch(self.y[sl], self.endog[sl], self.instruments[sl], self.dense[sl],
                          self.categorical[sl],
                          None if self.clusters is None else self.clusters[sl])


def hash_ids(values: Any, buckets: int, salt: int = 0) -> np.ndarray:
    """Stable hash of ids (strings or ints) into ``0..buckets-1`` (``pandas.util.hash_array``,
    SipHash with a fixed key; the same id always lands in the same bucket)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        h = (arr.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + np.uint64(salt)) >> np.uint64(17)
    else:
        h = pd.util.hash_array(arr.astype(object), hash_key=f"reelpick{salt:08d}")
    return (h % np.uint64(buckets)).astype(np.int64)


class ParquetBatches:
    """Columns of a Parquet file streamed with ``pyarrow.parquet.ParquetFile.iter_batches``.

    ``categorical`` columns (ids, strings or ints) are hashed into ``hash_buckets`` buckets
    each (field ``j`` owns ids ``j*hash_buckets .. (j+1)*hash_buckets-1``); ``clusters`` is a
    column hashed into ``cluster_buckets`` labels. Only one batch is in memory at a time.
    """

    def __init__(self, path: str | Path, *, y: str, endog: Sequence[str],
                 instruments: Sequence[str], dense: Sequence[str] = (),
                 categorical: Sequence[str] = (), clusters: str | None = None,
                 hash_buckets: int = 1 << 18, cluster_buckets: int = 1 << 20,
                 batch_size: int = 65_536) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such Parquet file")
        names = set(pq.ParquetFile(self.path).schema_arrow.names)
        cols = [y, *endog, *instruments, *dense, *categorical, *([clusters] if clusters else [])]
        missing = [c for c in cols if c not in names]
        if missing:
            raise ValueError(f"{self.path}: missing column(s) {missing}; found {sorted(names)}")
        if not endog or not instruments:
            raise ValueError("endog and instruments: name at least one column each")
        self.columns = dict(y=y, endog=list(endog), instruments=list(instruments),
                            dense=list(dense), categorical=list(categorical), clusters=clusters)
        self.hash_buckets, self.cluster_buckets = int(hash_buckets), int(cluster_buckets)
        self.batch_size = int(batch_size)
        self.n_ids = self.hash_buckets * len(categorical)
        self.endog_names, self.instrument_names = tuple(endog), tuple(instruments)
        self._read = list(dict.fromkeys(cols))

    def __iter__(self) -> Iterator[IVBatch]:
        c = self.columns
        for rb in pq.ParquetFile(self.path).iter_batches(batch_size=self.batch_size,
                                                         columns=self._read):
            get = {name: rb.column(name) for name in self._read}
            num = lambda names: np.column_stack(  # noqa: E731
                [get[k].to_numpy(zero_copy_only=False).astype(float) for k in names]) \
                if names else np.empty((rb.num_rows, 0))
            cat = np.column_stack([hash_ids(get[k].to_numpy(zero_copy_only=False),
                                            self.hash_buckets, j) + j * self.hash_buckets
                                   for j, k in enumerate(c["categorical"])]) \
                if c["categorical"] else np.empty((rb.num_rows, 0), dtype=np.int64)
            cl = None if c["clusters"] is None else hash_ids(
                get[c["clusters"]].to_numpy(zero_copy_only=False), self.cluster_buckets, 99)
            yield IVBatch(num([c["y"]])[:, 0], num(c["endog"]), num(c["instruments"]),
                          num(c["dense"]), cat, cl)


_SGD_COV = ("HC0", "HC1", "CR0", "CR1")


@dataclass(frozen=True)
class SGDIVConfig:
    """Hyperparameters of :class:`SGDIV` (validated here).

    ``epochs`` SGD passes for the nuisance regressions; ``learning_rate`` Adagrad step;
    ``l2`` ridge penalty on the id effects; ``cov_type`` one of HC0, HC1, CR0, CR1 (CR needs
    cluster labels in the batches); ``average``: Polyak-Ruppert averaging of the iterates over
    the last epoch (Polyak & Juditsky 1992; Bach & Moulines 2013). Deterministic: no
    randomness beyond the order of the source's batches."""

    epochs: int = 3
    learning_rate: float = 0.5
    l2: float = 1e-6
    cov_type: str = "HC1"
    weak_threshold: float = 10.0
    average: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"SGDIVConfig.epochs: must be an integer >= 0, got {self.epochs!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"SGDIVConfig.learning_rate: must be > 0, got "
                             f"{self.learning_rate!r}")
        if not (math.isfinite(self.l2) and self.l2 >= 0):
            raise ValueError(f"SGDIVConfig.l2: must be >= 0, got {self.l2!r}")
        if self.cov_type not in _SGD_COV:
            raise ValueError(f"SGDIVConfig.cov_type: use one of {_SGD_COV}, got "
                             f"{self.cov_type!r}")


class _Adagrad:
    """Adagrad with optional Polyak-Ruppert averaging of the iterates (``avg``, lazily for
    sparse rows: each row's average is over the steps in which it was updated)."""

    def __init__(self, shape: tuple[int, ...], lr: float) -> None:
        self.w = np.zeros(shape)
        self.g2 = np.full(shape, 1e-8)
        self.lr = lr
        self.avg: np.ndarray | None = None
        self.cnt: np.ndarray | None = None

    def start_averaging(self) -> None:
        self.avg = self.w.copy()
        self.cnt = np.ones(self.w.shape[:1])

    def step(self, grad: np.ndarray, rows: np.ndarray | None = None) -> None:
        if rows is None:
            self.g2 += grad * grad
            self.w -= self.lr * grad / np.sqrt(self.g2)
            if self.avg is not None:
                assert self.cnt is not None
                self.cnt += 1
                self.avg += (self.w - self.avg) / self.cnt.reshape((-1,) + (1,) * (
                    self.w.ndim - 1))
        else:
            self.g2[rows] += grad * grad
            self.w[rows] -= self.lr * grad / np.sqrt(self.g2[rows])
            if self.avg is not None:
                assert self.cnt is not None
                self.cnt[rows] += 1
                self.avg[rows] += (self.w[rows] - self.avg[rows]) / self.cnt[rows][:, None]

    def finish(self) -> None:
        if self.avg is not None:
            self.w, self.avg, self.cnt = self.avg, None, None


class SGDIV:
    """Streamed IV with SGD-fitted high-dimensional controls (module docstring has the method).

    ``fit(source)`` takes a re-iterable :class:`BatchSource` and returns ``self``; the estimate
    is ``result_`` (:class:`~reelpick.causal.iv.IVResult`, params of the endogenous regressors
    only), plus ``n_passes_`` and ``nuisance_r2_`` (in-sample R² of each nuisance fit).
    """

    def __init__(self, *, epochs: int = 3, learning_rate: float = 0.5, l2: float = 1e-6,
                 cov_type: str = "HC1", weak_threshold: float = 10.0,
                 average: bool = True) -> None:
        self.config = SGDIVConfig(epochs=epochs, learning_rate=learning_rate, l2=l2,
                                  cov_type=cov_type, weak_threshold=weak_threshold,
                                  average=average)

    # -------------------------------------------------------------- nuisance model
    def _predict(self, b: IVBatch) -> np.ndarray:
        p = self._c.w + (b.dense - self._dmean) / self._dstd @ self._B.w
        if b.categorical.shape[1]:
            ids = b.categorical
            ok = ids >= 0
            p = p + (self._E.w[np.where(ok, ids, 0)] * ok[..., None]).sum(axis=1)
        return p

    def _targets(self, b: IVBatch) -> np.ndarray:
        t = np.column_stack([b.y, b.endog, b.instruments])
        return (t - self._tmean) / self._tstd

    def _sgd_step(self, b: IVBatch) -> None:
        n = len(b)
        r = self._predict(b) - self._targets(b)  # (n, m) gradient of 0.5 * r^2
        x = (b.dense - self._dmean) / self._dstd
        self._c.step(r.mean(axis=0))
        if x.shape[1]:
            self._B.step(x.T @ r / n)
        if b.categorical.shape[1]:
            ids = b.categorical.ravel()
            ok = ids >= 0
            f = b.categorical.shape[1]
            uniq, inv = np.unique(ids[ok], return_inverse=True)
            rr = np.repeat(r, f, axis=0)[ok]
            g = np.column_stack([np.bincount(inv, weights=rr[:, j], minlength=uniq.size)
                                 for j in range(r.shape[1])]) / n
            g += self.config.l2 * self._E.w[uniq]
            self._E.step(g, uniq)

    # -------------------------------------------------------------- fit
    def fit(self, source: BatchSource) -> SGDIV:
        if not isinstance(source, BatchSource):
            raise TypeError(f"source: expected a BatchSource (n_ids, endog_names, "
                            f"instrument_names, __iter__), got {type(source).__name__}")
        cfg = self.config
        # pass 0: means and scales of targets and dense features
        cnt, nb, s1t, s2t, s1d, s2d = 0, 0, 0.0, 0.0, 0.0, 0.0
        kd = q = p = None
        for b in source:
            _check_batch(b, source.n_ids)
            if kd is None:
                kd, q, p = b.endog.shape[1], b.instruments.shape[1], b.dense.shape[1]
            elif (b.endog.shape[1], b.instruments.shape[1], b.dense.shape[1]) != (kd, q, p):
                raise ValueError("batches: column counts differ between batches")
            t = np.column_stack([b.y, b.endog, b.instruments])
            cnt += len(b)
            nb += 1
            s1t, s2t = s1t + t.sum(axis=0), s2t + (t * t).sum(axis=0)
            s1d, s2d = s1d + b.dense.sum(axis=0), s2d + (b.dense**2).sum(axis=0)
        if kd is None or cnt == 0:
            raise ValueError("source: no rows")
        assert q is not None and p is not None
        if q < kd:
            raise ValueError(f"under-identified: {q} instrument(s) for {kd} endogenous "
                             f"regressor(s)")
        if cfg.epochs and nb * cfg.epochs < 10:
            import warnings

            warnings.warn(f"only {nb * cfg.epochs} SGD steps ({nb} batch(es) x {cfg.epochs} "
                          f"epoch(s)): the id effects will be poorly fitted; use smaller "
                          f"batches or more epochs", RuntimeWarning, stacklevel=2)
        m = 1 + kd + q
        self._tmean = s1t / cnt
        self._tstd = np.sqrt(np.maximum(s2t / cnt - self._tmean**2, 0.0))
        if (self._tstd[1:] == 0).any():
            raise ValueError("endog/instruments: a column is constant")
        self._tstd = np.where(self._tstd > 0, self._tstd, 1.0)
        self._dmean = s1d / cnt if p else np.zeros(0)
        dstd = np.sqrt(np.maximum(s2d / cnt - self._dmean**2, 0.0)) if p else np.zeros(0)
        self._dstd = np.where(dstd > 0, dstd, 1.0)
        self._c = _Adagrad((m,), cfg.learning_rate)
        self._B = _Adagrad((p, m), cfg.learning_rate)
        self._E = _Adagrad((source.n_ids, m), cfg.learning_rate)
        for epoch in range(cfg.epochs):
            if cfg.average and epoch == cfg.epochs - 1 and epoch > 0:
                for opt in (self._c, self._B, self._E):
                    opt.start_averaging()
            for b in source:
                self._sgd_step(b)
        for opt in (self._c, self._B, self._E):
            opt.finish()
        self._final_pass(source, cnt, kd, q, p)
        self.n_passes_ = cfg.epochs + 2
        return self

    def _final_pass(self, source: BatchSource, n: int, kd: int, q: int, p: int) -> None:
        cfg = self.config
        m = 1 + kd + q
        srr = np.zeros((m, m))
        m4 = np.zeros((m, m, q, q))
        sst = np.zeros(m)  # total sums of squares of the raw targets, for R^2
        cl_sums = np.zeros((0, m, q))
        clustered = cfg.cov_type in ("CR0", "CR1")
        for b in source:
            t = np.column_stack([b.y, b.endog, b.instruments])
            r = (self._targets(b) - self._predict(b)) * self._tstd
            zt = r[:, 1 + kd:]
            srr += r.T @ r
            m4 += np.einsum("ia,ib,ij,ik->abjk", r, r, zt, zt, optimize=True)
            sst += ((t - self._tmean) ** 2).sum(axis=0)
            if clustered:
                if b.clusters is None:
                    raise ValueError(f"clusters: cov_type={cfg.cov_type!r} needs cluster "
                                     f"labels in every batch")
                g = np.asarray(b.clusters, dtype=np.int64)
                if (g < 0).any():
                    raise ValueError("clusters: labels must be non-negative ints")
                top = int(g.max()) + 1
                if top > cl_sums.shape[0]:
                    cl_sums = np.concatenate([cl_sums, np.zeros((top - cl_sums.shape[0], m, q))])
                contrib = np.einsum("ia,ij->iaj", r, zt)
                np.add.at(cl_sums, g, contrib)
        self.nuisance_r2_ = pd.Series(1 - np.diag(srr) / np.maximum(sst, 1e-300),
                                      index=["y", *source.endog_names,
                                             *source.instrument_names])
        self.result_ = _solve(srr, m4, cl_sums if clustered else None, n, kd, q, p,
                              cfg.cov_type, list(source.endog_names),
                              list(source.instrument_names))
        fs = self.result_.first_stage
        assert fs is not None
        low = fs.f_stat[fs.f_stat < cfg.weak_threshold]
        if len(low):
            import warnings

            from reelpick.causal.iv import WeakInstrumentWarning
            warnings.warn(f"weak instruments: first-stage F = "
                          f"{', '.join(f'{k}: {v:.2f}' for k, v in low.items())} < "
                          f"{cfg.weak_threshold:g}", WeakInstrumentWarning, stacklevel=3)

    def conf_int(self, level: float = 0.95) -> pd.DataFrame:
        if not hasattr(self, "result_"):
            raise NotFittedError("SGDIV: call fit() first")
        return self.result_.conf_int(level)


def _check_batch(b: IVBatch, n_ids: int) -> None:
    n = len(b)
    for name in ("endog", "instruments", "dense", "categorical"):
        a = getattr(b, name)
        if a.ndim != 2 or a.shape[0] != n:
            raise ValueError(f"batch.{name}: expected ({n}, k), got {a.shape}")
    for name in ("y", "endog", "instruments", "dense"):
        if not np.isfinite(getattr(b, name)).all():
            raise ValueError(f"batch.{name}: contains NaN or infinite values")
    if b.categorical.size and b.categorical.max() >= n_ids:
        raise ValueError(f"batch.categorical: id {int(b.categorical.max())} >= n_ids {n_ids}")


def _solve(srr: np.ndarray, m4: np.ndarray, cl: np.ndarray | None, n: int, kd: int, q: int,
           p: int, cov_type: str, d_names: list[str], z_names: list[str]) -> IVResult:
    """2SLS, sandwich covariance and first stage from the streamed residual moments."""
    iy, idd, iz = 0, slice(1, 1 + kd), slice(1 + kd, 1 + kd + q)
    szz, szd, szy = srr[iz, iz], srr[iz, idd], srr[iz, iy]
    szz_inv = np.linalg.inv(szz)
    pi = szz_inv @ szd                     # (q, kd) first stage
    a = pi.T @ szd                         # Xhat'X = Pi' Z'D
    if np.linalg.matrix_rank(a) < kd:
        raise ValueError("endog: not identified from the residualised instruments")
    ainv = np.linalg.inv(a)
    beta = ainv @ (pi.T @ szy)
    k = kd + p + 1
    m = srr.shape[0]

    def meat(c: np.ndarray) -> np.ndarray:
        """sum_i (c'r_i)^2 z_i z_i' (HC) or sum_g (sum_i c'r_i z_i)(...)' (cluster), (q, q)."""
        if cl is None:
            return np.einsum("a,b,abjk->jk", c, c, m4)
        xi = np.einsum("a,gaj->gj", c, cl)
        return xi.T @ xi

    def scale() -> float:
        if cov_type == "HC1":
            return n / (n - k)
        if cov_type == "CR1":
            assert cl is not None
            g = int((np.abs(cl).sum(axis=(1, 2)) > 0).sum())
            return g / (g - 1) * (n - 1) / (n - k)
        return 1.0

    c = np.zeros(m)
    c[iy] = 1.0
    c[idd] = -beta
    cov = scale() * ainv @ pi.T @ meat(c) @ pi @ ainv
    cov = (cov + cov.T) / 2
    # first stage per endogenous regressor: d_j ~ z (residualised), same covariance type
    f, wald, wp, fh, fp, pr2 = ([] for _ in range(6))
    for j in range(kd):
        cj = np.zeros(m)
        cj[1 + j] = 1.0
        cj[iz] = -pi[:, j]
        v = scale() * szz_inv @ meat(cj) @ szz_inv
        w = float(pi[:, j] @ np.linalg.solve(v, pi[:, j]))
        ssr = float(cj @ srr @ cj)
        s2 = ssr / (n - q - p - 1)
        h = float(pi[:, j] @ szz @ pi[:, j]) / s2 / q
        f.append(w / q)
        wald.append(w)
        wp.append(float(stats.chi2.sf(w, q)))
        fh.append(h)
        fp.append(float(stats.f.sf(h, q, n - q - p - 1)))
        pr2.append(1 - ssr / float(srr[1 + j, 1 + j]))
    idx = pd.Index(d_names)
    ser = lambda v: pd.Series(v, index=idx, dtype=float)  # noqa: E731
    fs = FirstStage(f_stat=ser(f), wald=ser(wald), wald_pvalue=ser(wp),
                    f_stat_homoskedastic=ser(fh), f_pvalue=ser(fp), partial_rsquared=ser(pr2),
                    params=pd.DataFrame(pi.T, index=idx, columns=z_names), n_instruments=q)
    se = np.sqrt(np.maximum(np.diag(cov), 0))
    n_cl = None if cl is None else int((np.abs(cl).sum(axis=(1, 2)) > 0).sum())
    return IVResult(params=pd.Series(beta, index=d_names, name="params"),
                    std_errors=pd.Series(se, index=d_names, name="std_errors"),
                    cov=pd.DataFrame(cov, index=d_names, columns=d_names), cov_type=cov_type,
                    nobs=n, df_model=k, n_clusters=n_cl, first_stage=fs, method="SGD-IV",
                    endog_names=tuple(d_names))
