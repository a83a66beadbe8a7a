r"""SGD-IV over Parquet logs on Ray: synchronous data-parallel SGD with an exact all-reduce.

:class:`reelpick.causal.SGDIV` makes ``epochs + 2`` passes over a stream of minibatches: pass 0
sums the targets' and features' moments, the SGD epochs fit the nuisance regressions by Adagrad
(one step per minibatch), and the final pass sums the residual moments behind 2SLS and its
covariance. ``fit_sgdiv(..., backend="ray")`` runs the same algorithm on ``W`` Ray actors:

* **data**: the log is cut into shards of whole Parquet row groups (from the footers, so every
  shard's global offset is known); one Ray task per shard reads it, converts it (ids hashed,
  once) and splits it into ``W`` pieces: actor ``w`` gets the rows ``u`` of every minibatch
  ``t`` with ``floor(u W / b_t) = w`` -- its contiguous ``1/W`` share of each minibatch, where
  minibatch ``t`` holds the log's rows ``t B .. (t + 1) B - 1``, exactly the local run's batches;
* **pass 0 and the final pass**: each actor sums its rows; the driver adds the ``W`` partial
  sums (the residual moments, and per-cluster sums keyed by cluster label);
* **each SGD step**: every actor computes the partial gradient sums of its share of the
  minibatch (the residual sums, ``X' r`` and the per-id sums of ``r``); every actor then
  receives all ``W`` partials (Ray object references: no trip through the driver), adds them in
  worker order and takes the same Adagrad step on its replica of the parameters, so the
  replicas stay identical and the iterates are the local run's up to the order of floating-point
  sums. Polyak-Ruppert averaging runs on the replicas as well.

The coefficients, standard errors and first stage equal the local backend's to about 1e-12
(tested to 1e-9). Memory per actor: its ``1/W`` of the rows (``(1 + k_d + q + p + f + 1) x 8``
bytes each) and one replica of the id table (``3 x n_ids x (1 + k_d + q)`` floats).

>>> import tempfile, pathlib, numpy as np, pyarrow as pa, pyarrow.parquet as pq
>>> rng = np.random.default_rng(0)
>>> n = 4000
>>> z = rng.binomial(1, 0.5, n); u = rng.normal(size=n); m = rng.integers(0, 50, n)
>>> d = z + u + rng.normal(size=n); y = 0.5 * d + u + rng.normal(size=n)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "design.parquet"
>>> pq.write_table(pa.table({"y": y, "d": d, "z": z, "member": m}), path)
>>> est = fit_sgdiv(path, y="y", endog=["d"], instruments=["z"], categorical=["member"],
...                 batch_size=256, cov_type="HC0")
>>> abs(float(est.result_.params["d"]) - 0.5) < 0.1
True
>>> same = fit_sgdiv(path, y="y", endog=["d"], instruments=["z"], categorical=["member"],
...                  batch_size=256, cov_type="HC0", backend="ray")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from reelpick.causal.sgd import (
    SGDIV,
    IVBatch,
    ParquetBatches,
    ResidualSums,
    ScaleSums,
    SGDIVConfig,
    check_batch,
    hash_ids,
)
from reelpick.distributed._ray import (
    ParquetPlan,
    Shard,
    check_backend,
    plan_parquet,
    plan_shards,
    ray_session,
    read_shard,
)

__all__ = ["IVColumns", "ParquetLogBatches", "design_roles", "fit_sgdiv", "owner_of_rows",
           "write_design"]

_ROLES_KEY = b"reelpick.iv"

PathLike = str | os.PathLike[str]
_MIN_SHARD_ROWS = 65_536   # rows per read task, at least


@dataclass(frozen=True)
class IVColumns:
    """Which Parquet columns play which role, and how ids are hashed (as
    :class:`reelpick.causal.ParquetBatches`: categorical field ``j`` owns ids
    ``j * hash_buckets .. (j + 1) * hash_buckets - 1``; clusters hashed into
    ``cluster_buckets`` labels)."""

    y: str
    endog: tuple[str, ...]
    instruments: tuple[str, ...]
    dense: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    clusters: str | None = None
    hash_buckets: int = 1 << 18
    cluster_buckets: int = 1 << 20

    def __post_init__(self) -> None:
        if not self.endog or not self.instruments:
            raise ValueError("endog and instruments: name at least one column each")
        if self.hash_buckets < 1 or self.cluster_buckets < 1:
            raise ValueError("hash_buckets and cluster_buckets: must be >= 1")

    @property
    def read(self) -> list[str]:
        cols = [self.y, *self.endog, *self.instruments, *self.dense, *self.categorical,
                *([self.clusters] if self.clusters else [])]
        return list(dict.fromkeys(cols))

    @property
    def n_ids(self) -> int:
        return self.hash_buckets * len(self.categorical)

    def batch(self, table: pa.Table | pa.RecordBatch) -> IVBatch:
        """Rows of ``table`` as an :class:`IVBatch` (the conversion of ``ParquetBatches``)."""
        n = table.num_rows
        get = {name: table.column(name).to_numpy(zero_copy_only=False) for name in self.read}

        def num(names: Sequence[str]) -> np.ndarray:
            if not names:
                return np.empty((n, 0))
            return np.column_stack([get[k].astype(float) for k in names])

        cat = (np.column_stack([hash_ids(get[k], self.hash_buckets, j) + j * self.hash_buckets
                                for j, k in enumerate(self.categorical)])
               if self.categorical else np.empty((n, 0), dtype=np.int64))
        cl = (None if self.clusters is None
              else hash_ids(get[self.clusters], self.cluster_buckets, 99))
        return IVBatch(num([self.y])[:, 0], num(self.endog), num(self.instruments),
                       num(self.dense), cat, cl)


class ParquetLogBatches:
    """A :class:`reelpick.causal.sgd.BatchSource` over one or many Parquet files read as one
    log: minibatch ``t`` holds rows ``t B .. (t + 1) B - 1`` of the files in order (crossing
    file boundaries). On one file it yields exactly ``ParquetBatches``' batches."""

    def __init__(self, plan: ParquetPlan, columns: IVColumns, batch_size: int) -> None:
        self.plan, self.columns, self.batch_size = plan, columns, int(batch_size)
        self.n_ids = columns.n_ids
        self.endog_names, self.instrument_names = columns.endog, columns.instruments

    def __iter__(self) -> Iterator[IVBatch]:
        pending: list[pa.RecordBatch] = []
        have = 0
        for f in self.plan.files:
            for rb in pq.ParquetFile(f).iter_batches(batch_size=self.batch_size,
                                                     columns=self.columns.read):
                pending.append(rb)
                have += rb.num_rows
                while have >= self.batch_size:
                    table = pa.Table.from_batches(pending)
                    yield self.columns.batch(table.slice(0, self.batch_size))
                    rest = table.slice(self.batch_size)
                    pending, have = rest.to_batches(), rest.num_rows
        if have:
            yield self.columns.batch(pa.Table.from_batches(pending))


def owner_of_rows(rows: np.ndarray, n_rows: int, batch_size: int, n_workers: int) -> np.ndarray:
    """The worker that holds each global row: row ``u`` of a minibatch of ``b`` rows goes to
    worker ``floor(u W / b)`` (a contiguous ``1/W`` share of every minibatch).

    >>> owner_of_rows(np.arange(10), 10, 4, 2).tolist()
    [0, 0, 1, 1, 0, 0, 1, 1, 0, 1]
    """
    rows = np.asarray(rows, dtype=np.int64)
    t = rows // batch_size
    b = np.minimum(batch_size, n_rows - t * batch_size)
    return ((rows - t * batch_size) * n_workers) // b


def _share_sizes(n_rows: int, batch_size: int, n_workers: int, worker: int) -> np.ndarray:
    """Rows of each minibatch held by ``worker`` ``(n_batches,)``."""
    n_batches = -(-n_rows // batch_size)
    b = np.minimum(batch_size, n_rows - np.arange(n_batches) * batch_size)
    # rows u with floor(u W / b) == w: u in [ceil(w b / W), ceil((w + 1) b / W))
    lo = -(-(worker * b) // n_workers)
    hi = -(-((worker + 1) * b) // n_workers)
    return hi - lo


def write_design(design: Any, path: PathLike, *, files: int = 1) -> list[Path]:
    """Write an IV design (:func:`reelpick.causal.instruments.visit_design`) as Parquet: one row
    per page (``page_id``, ``member_id``, ``y``, the endogenous, instrument and control
    columns), split into ``files`` part files when ``files > 1`` (``path`` is then a folder).
    The roles of the columns are stored in the files' metadata, so :func:`design_roles` (and
    ``reelpick causal sgd-iv``) find them. Returns the files written.

    >>> import tempfile, pathlib, numpy as np
    >>> from reelpick.causal.instruments import Design
    >>> des = Design(y=np.ones(4), endog=np.ones((4, 1)), instruments=np.eye(4)[:, :1],
    ...              controls=np.zeros((4, 0)), clusters=np.array(list("aabb")),
    ...              endog_names=("exposure",), instrument_names=("cell_1",),
    ...              control_names=(), rows=np.arange(4))
    >>> out = write_design(des, pathlib.Path(tempfile.mkdtemp()) / "design.parquet")
    >>> design_roles(out)["instruments"]
    ['cell_1']
    """
    cols: dict[str, Any] = {"page_id": np.asarray(design.rows).astype(str),
                            "member_id": np.asarray(design.clusters).astype(str),
                            "y": np.asarray(design.y, dtype=float)}
    for names, arr in ((design.endog_names, design.endog),
                       (design.instrument_names, design.instruments),
                       (design.control_names, design.controls)):
        for j, name in enumerate(names):
            if name in cols:
                raise ValueError(f"design: column name {name!r} appears twice")
            cols[name] = np.asarray(arr[:, j], dtype=float)
    roles = {"y": "y", "endog": list(design.endog_names),
             "instruments": list(design.instrument_names),
             "dense": list(design.control_names), "categorical": ["member_id"],
             "clusters": "member_id"}
    table = pa.table(cols).replace_schema_metadata({_ROLES_KEY: json.dumps(roles).encode()})
    out = Path(path)
    if files <= 1:
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    n = table.num_rows
    written = []
    for i in range(files):
        lo, hi = i * n // files, (i + 1) * n // files
        f = out / f"part-{i:05d}.parquet"
        pq.write_table(table.slice(lo, hi - lo), f)
        written.append(f)
    return written


def design_roles(paths: PathLike | Sequence[PathLike]) -> dict[str, Any] | None:
    """The column roles stored by :func:`write_design` in the first file (``None`` if none)."""
    plan = plan_parquet(paths)
    meta = pq.ParquetFile(plan.files[0]).schema_arrow.metadata or {}
    raw = meta.get(_ROLES_KEY)
    return None if raw is None else json.loads(raw)


# --------------------------------------------------------------------------- the replica
class _Replica:
    """One worker: its share of every minibatch, and a replica of the nuisance parameters."""

    def __init__(self, columns: IVColumns, cfg: SGDIVConfig, n_rows: int, batch_size: int,
                 n_workers: int, worker: int) -> None:
        self.columns, self.cfg = columns, cfg
        self.n_rows, self.batch_size = n_rows, batch_size
        self.n_workers, self.worker = n_workers, worker
        self.parts: list[IVBatch] = []
        self.est = SGDIV(**{k: getattr(cfg, k) for k in SGDIVConfig.__dataclass_fields__})

    # ---------------------------------------------------------------- data
    def ingest(self, part: IVBatch | None) -> None:
        """Keep this worker's rows of the next shard (shards arrive in log order)."""
        if part is not None:
            self.parts.append(part)

    def seal(self) -> ScaleSums:
        """Concatenate the kept rows; return pass 0's sums over them."""
        parts = self.parts
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        k = self.columns
        if parts:
            cl = None if k.clusters is None else cat("clusters")
            self.data = IVBatch(cat("y"), cat("endog"), cat("instruments"), cat("dense"),
                                cat("categorical"), cl)
        else:
            kd, q, p = len(k.endog), len(k.instruments), len(k.dense)
            self.data = IVBatch(np.empty(0), np.empty((0, kd)), np.empty((0, q)),
                                np.empty((0, p)), np.empty((0, len(k.categorical)), np.int64),
                                None if k.clusters is None else np.empty(0, np.int64))
        self.parts = []
        sizes = _share_sizes(self.n_rows, self.batch_size, self.n_workers, self.worker)
        if sizes.sum() != len(self.data):
            raise RuntimeError(f"worker {self.worker} holds {len(self.data)} rows, expected "
                               f"{int(sizes.sum())}: the blocks did not arrive in log order")
        self.bounds = np.concatenate([[0], np.cumsum(sizes)])
        out = ScaleSums()   # pass 0, batch by batch as the local run sums it
        for b in self._batches():
            out.add(b)
        return out

    def _batch(self, t: int) -> IVBatch:
        sl = slice(int(self.bounds[t]), int(self.bounds[t + 1]))
        d = self.data
        return IVBatch(d.y[sl], d.endog[sl], d.instruments[sl], d.dense[sl], d.categorical[sl],
                       None if d.clusters is None else d.clusters[sl])

    def _batches(self) -> Iterator[IVBatch]:
        for t in range(len(self.bounds) - 1):
            yield self._batch(t)

    # ---------------------------------------------------------------- SGD
    def setup(self, scales: dict[str, np.ndarray], m: int, p: int) -> None:
        self.est.start(scales, m, p, self.columns.n_ids)
        self.n_batches = len(self.bounds) - 1

    def step(self, k: int, *partials: dict[str, Any]) -> dict[str, Any] | None:
        """Apply step ``k - 1`` (from every worker's partial gradient sums, in worker order),
        then return this worker's partial sums for step ``k`` (``None`` after the last)."""
        e, cfg = self.est, self.cfg
        if partials:
            e.apply_gradient(partials)
        if k == cfg.fixed_epochs() * self.n_batches:
            e.end_sgd()
            return None
        epoch, t = divmod(k, self.n_batches)
        if t == 0:
            e.set_averaging(epoch)
        return e.gradient_sums(self._batch(t))

    # ---------------------------------------------------------------- final pass
    def final(self) -> ResidualSums:
        """The residual moments of this worker's rows (with the averaged parameters)."""
        return self.est.residual_sums(self._batches(), len(self.columns.endog),
                                      len(self.columns.instruments))


def split_shard(shard: Shard, columns: IVColumns, n_rows: int, batch_size: int,
                n_workers: int) -> tuple[IVBatch | None, ...] | IVBatch | None:
    """Read a shard, convert it and cut it into each worker's rows (``None``: none) -- one
    piece per worker, in worker order (a Ray task with ``num_returns=n_workers``; with one
    worker, the piece itself)."""
    table = read_shard(shard, columns.read)
    batch = columns.batch(table)
    check_batch(batch, columns.n_ids)
    owner = owner_of_rows(np.arange(shard.offset, shard.offset + shard.n_rows), n_rows,
                          batch_size, n_workers)
    out: list[IVBatch | None] = []
    for w in range(n_workers):
        idx = np.flatnonzero(owner == w)
        out.append(None if idx.size == 0 else IVBatch(
            batch.y[idx], batch.endog[idx], batch.instruments[idx], batch.dense[idx],
            batch.categorical[idx], None if batch.clusters is None else batch.clusters[idx]))
    return tuple(out) if n_workers > 1 else out[0]


# --------------------------------------------------------------------------- the fit
def _finish(parts: Sequence[ResidualSums], cfg: SGDIVConfig, columns: IVColumns, n: int
            ) -> SGDIV:
    """Merge the final pass's sums (in worker order) and solve, as ``SGDIV.fit`` does."""
    total = parts[0]
    for part in parts[1:]:
        total = total.merge(part)
    est = SGDIV(**{k: getattr(cfg, k) for k in SGDIVConfig.__dataclass_fields__})
    return est.solve(total, n, len(columns.dense), columns.endog, columns.instruments,
                     stacklevel=4)


def fit_sgdiv(
    paths: PathLike | Sequence[PathLike],
    *,
    y: str,
    endog: Sequence[str],
    instruments: Sequence[str],
    dense: Sequence[str] = (),
    categorical: Sequence[str] = (),
    clusters: str | None = None,
    hash_buckets: int = 1 << 18,
    cluster_buckets: int = 1 << 20,
    batch_size: int = 65_536,
    epochs: int | None = 3,
    learning_rate: float = 0.5,
    l2: float = 1e-6,
    cov_type: str = "HC1",
    weak_threshold: float = 10.0,
    average: bool = True,
    backend: str = "local",
    num_workers: int | None = None,
    address: str | None = None,
) -> SGDIV:
    """Fit :class:`reelpick.causal.SGDIV` on Parquet logs (a file, a folder of ``*.parquet``
    or a list: one log, in that order), in process or on Ray; returns the fitted ``SGDIV``
    (``result_``, ``nuisance_r2_``, ``n_passes_``).

    Columns as :class:`reelpick.causal.ParquetBatches` (``categorical`` ids and ``clusters``
    hashed); minibatch ``t`` is rows ``t * batch_size ..`` of the log. ``backend="local"``
    streams the files (bounded memory); ``backend="ray"`` spreads the rows over
    ``num_workers`` actors (default: the cluster's CPUs) as the module docstring describes,
    with the same result. ``epochs=None`` runs epochs until the nuisance regressions converge
    (:class:`~reelpick.causal.sgd.SGDIVConfig`), on the local backend only: the Ray backend
    needs a count. ``address``: see :func:`~reelpick.distributed.ray_session`.
    """
    check_backend(backend)
    cfg = SGDIVConfig(epochs=epochs, learning_rate=learning_rate, l2=l2, cov_type=cov_type,
                      weak_threshold=weak_threshold, average=average)
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    cols = IVColumns(y, tuple(endog), tuple(instruments), tuple(dense), tuple(categorical),
                     clusters, int(hash_buckets), int(cluster_buckets))
    plan = plan_parquet(paths, required=cols.read)
    if backend == "local":
        if len(plan.files) == 1:  # the library's own source, exactly
            source: Any = ParquetBatches(plan.files[0], y=y, endog=endog,
                                         instruments=instruments, dense=dense,
                                         categorical=categorical, clusters=clusters,
                                         hash_buckets=hash_buckets,
                                         cluster_buckets=cluster_buckets, batch_size=batch_size)
        else:
            source = ParquetLogBatches(plan, cols, batch_size)
        est = SGDIV(**{k: getattr(cfg, k) for k in SGDIVConfig.__dataclass_fields__})
        return est.fit(source)
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"num_workers: must be >= 1, got {num_workers}")
    cfg.fixed_epochs()   # fail before starting Ray
    with ray_session(address) as ray:
        return _fit_on_ray(ray, plan, cols, cfg, batch_size, num_workers)


def _fit_on_ray(ray: Any, plan: ParquetPlan, cols: IVColumns, cfg: SGDIVConfig,
                batch_size: int, num_workers: int | None) -> SGDIV:
    if plan.n_rows == 0:
        raise ValueError("source: no rows")
    W = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    # the actors reserve no logical CPU: they idle while the read tasks run, and the read tasks
    # are done when the actors compute; SPREAD puts them on different nodes
    actor_cls = ray.remote(num_cpus=0, scheduling_strategy="SPREAD")(_Replica)
    actors = [actor_cls.remote(cols, cfg, plan.n_rows, batch_size, W, w) for w in range(W)]
    try:
        split = ray.remote(num_cpus=1, max_retries=2)(split_shard)
        per = max(_MIN_SHARD_ROWS, min(1 << 22, plan.n_rows // (4 * W) + 1))
        running: list[Any] = []
        for shard in plan_shards(plan, min_rows=per):
            if len(running) >= W:   # W read tasks at a time, at most
                _, running = ray.wait(running, num_returns=1)
            pieces = split.options(num_returns=W).remote(shard, cols, plan.n_rows, batch_size, W)
            pieces = [pieces] if W == 1 else pieces
            running.append(pieces[0])
            # actor calls from one caller run in submission order: rows arrive in log order
            for a, piece in zip(actors, pieces):
                a.ingest.remote(piece)
        moments = ray.get([a.seal.remote() for a in actors])
        pass0 = moments[0]
        for part in moments[1:]:
            pass0 = pass0.merge(part)
        kd, q, p = len(cols.endog), len(cols.instruments), len(cols.dense)
        scales = pass0.scales(cfg.epochs, stacklevel=3)
        n, n_batches = pass0.n, -(-plan.n_rows // batch_size)
        ray.get([a.setup.remote(scales, 1 + kd + q, p) for a in actors])
        prev: list[Any] = []
        for k in range(cfg.fixed_epochs() * n_batches + 1):
            prev = [a.step.remote(k, *prev) for a in actors]
            if k % 64 == 63:  # keep the queue of submitted steps short
                ray.wait(prev, num_returns=len(prev))
        ray.get(prev)
        finals = ray.get([a.final.remote() for a in actors])
    finally:
        for a in actors:
            ray.kill(a)
    return _finish(finals, cfg, cols, n)
