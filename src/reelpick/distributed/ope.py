r"""Off-policy evaluation over Parquet logs on Ray: blocks reduced to sufficient statistics.

Every estimator of :mod:`reelpick.ope` is a smooth function of the mean of per-round statistics,
so a log is summarised by additive *sufficient statistics* (:class:`~reelpick.ope.estimate.
StatAccumulator`: the row count, the sums :math:`\sum s_i` and the shifted cross-products
:math:`\sum (s_i - c)(s_i - c)^\top`, the weight moments and, for the bootstrap, every replicate's
Poisson-weighted sums; :class:`~reelpick.ope.estimate.DiagnosticsAccumulator`: pscore range,
weight moments, the (action, position) counts and target mass). With ``backend="ray"``:

1. the driver reads the Parquet footers (files, rows, the largest action and position) and the
   log's first rows, which fix the shift :math:`c` of every estimator (the mean of the first
   cache block, as the local run does);
2. the log is cut into blocks whose first row's global index is known: by default
   (``reader="tasks"``) *shards* of whole Parquet row groups planned from the footers, each
   read by the task that reduces it (rows never enter the object store); with
   ``reader="ray-data"``, the blocks of ``ray.data.read_parquet`` kept in log order
   (``preserve_order``), of which the driver sees only object references and row counts;
3. one Ray task per block runs the same :class:`~reelpick.ope.OffPolicyEvaluation` updates as
   the local run on that block, with the common shift and the block's offset (the Poisson
   bootstrap weights of round :math:`i` depend only on the seed and :math:`i`), and returns
   its accumulators' statistics (a few KB, plus the ``n_actions x n_positions`` counts);
4. the driver adds them in log order (sums, minima, maxima: associative) into a fresh
   :class:`~reelpick.ope.OffPolicyEvaluation` and calls its ``results()``: the same code that
   finalises the local run.

The only difference from the local run is where floating-point sums are split, so estimates,
intervals, standard errors and ESS agree to about 1e-15 relative (tested to 1e-12).

Example (local backend; ``backend="ray"`` gives the same numbers):

>>> import tempfile, pathlib, numpy as np
>>> from reelpick.ope import IPS, SNIPS, ConstantTarget, LoggedFeedback, write_feedback_parquet
>>> fb = LoggedFeedback(action=[0, 1, 1, 0], reward=[1.0, 0.0, 1.0, 1.0], pscore=[0.5] * 4,
...                     n_actions=2)
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = write_feedback_parquet(fb.take(slice(0, 2)), d / "part-0.parquet")
>>> _ = write_feedback_parquet(fb.take(slice(2, 4)), d / "part-1.parquet")
>>> res = estimate_parquet(d, [IPS(), SNIPS()], ConstantTarget([0.5, 0.5]))
>>> round(res["ips"].value, 3)
0.75
>>> res = estimate_parquet(d, [IPS()], ConstantTarget([0.5, 0.5]),
...                        backend="ray")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from reelpick.distributed._ray import (
    ParquetPlan,
    Shard,
    check_backend,
    iter_ordered_blocks,
    plan_parquet,
    plan_shards,
    ray_session,
    read_shard,
)
from reelpick.ope.base import Estimator, OffPolicyEvaluation
from reelpick.ope.estimate import CIMethod, Estimate, StatAccumulator
from reelpick.ope.feedback import LoggedFeedback
from reelpick.ope.streaming import BatchFn, FeedbackColumns, _n_actions_from

__all__ = ["OPEPartial", "OPESpec", "estimate_parquet", "plan_ope", "reduce_shard",
           "reduce_table"]

PathLike = str | os.PathLike[str]

# the accumulators' fields this module reads and writes; a change in reelpick.ope must show up
# here as a loud error, never as a silently wrong merge
_STAT_FIELDS = frozenset({"m", "ci", "B", "seed", "n", "shift", "total", "s1", "s2", "w1", "w2",
                          "has_weights", "boot_n", "boot_s"})
_DIAG_FIELDS = frozenset({"n", "p_min", "p_max", "w1", "w2", "w_max", "has_w", "count", "mass",
                          "all_seen", "unsupported_known", "known"})


@dataclass(frozen=True, eq=False)
class OPESpec:
    """What every block needs: the estimators, the target and reward model (callables
    ``f(batch, offset)``, shipped to the workers), the log's shape and the interval settings."""

    estimators: tuple[Estimator, ...]
    target: BatchFn
    reward_model: BatchFn | None
    n_actions: int
    n_positions: int          # of the accumulators (target's positions included)
    log_positions: int | None  # 1 + the largest logged position (None: no position column)
    has_pscore: bool
    has_slates: bool           # the log has the slate column: intervals clustered by slate
    columns: FeedbackColumns
    batch_size: int
    ci: CIMethod
    alpha: float
    n_bootstrap: int
    random_state: int
    shifts: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def read_columns(self) -> list[str]:
        c = self.columns
        want = [c.action, c.reward]
        if self.has_pscore:
            want.append(c.pscore)  # type: ignore[arg-type]
        if self.log_positions is not None:
            want.append(c.position)  # type: ignore[arg-type]
        if self.has_slates:
            want.append(c.slate_id)  # type: ignore[attr-defined]
        return want + list(c.context)

    def evaluation(self) -> OffPolicyEvaluation:
        return OffPolicyEvaluation(list(self.estimators), n_actions=self.n_actions,
                                   n_positions=self.n_positions, ci=self.ci, alpha=self.alpha,
                                   n_bootstrap=self.n_bootstrap, random_state=self.random_state)


def _fields(obj: Any, expected: frozenset[str], what: str) -> dict[str, Any]:
    have = vars(obj)
    if set(have) - {"boot_n", "boot_s"} != expected - {"boot_n", "boot_s"}:
        raise RuntimeError(f"reelpick.ope.{what} changed (fields {sorted(have)}); "
                           f"reelpick.distributed.ope must be updated to merge it")
    return have


@dataclass
class OPEPartial:
    """The sufficient statistics of a contiguous run of rounds (one block, or many merged).

    ``stats``: per estimator, the :class:`~reelpick.ope.estimate.StatAccumulator` sums (a
    dict), or, when the intervals are clustered by slate, the
    :class:`~reelpick.ope.estimate.ClusterStatAccumulator` itself (its ``merge`` joins a slate
    cut between two blocks); ``diag``: the
    :class:`~reelpick.ope.estimate.DiagnosticsAccumulator` facts, with the
    ``(n_actions, n_positions)`` tables kept sparse: the flat indices of the (action, position)
    pairs this run never showed (``unseen``) and the target mass on them (``unseen_mass``) --
    the only cells the final diagnostics read. With 50k titles x 50 slots the dense tables are
    40 MB; once a block has shown most pairs its partial is a few KB. ``merge`` is associative;
    call it in log order (the sums are then added in the local run's order of blocks).
    """

    stats: dict[str, Any]
    diag: dict[str, Any]

    @classmethod
    def from_evaluation(cls, run: OffPolicyEvaluation, offset: int = 0) -> OPEPartial:
        stats: dict[str, Any] = {}
        for name, acc in run.accs.items():
            if type(acc) is not StatAccumulator:   # clustered: the accumulator merges itself
                if not hasattr(acc, "merge"):
                    raise RuntimeError(f"reelpick.ope.{type(acc).__name__} has no merge(); "
                                       f"reelpick.distributed.ope cannot combine it")
                acc.n -= offset
                stats[name] = acc
                continue
            f = _fields(acc, _STAT_FIELDS, "StatAccumulator")
            st = {k: f[k] for k in ("total", "s1", "s2", "w1", "w2", "has_weights")}
            st["n"] = f["n"] - offset
            if acc.ci == "bootstrap":
                st["boot_n"], st["boot_s"] = f["boot_n"], f["boot_s"]
            stats[name] = st
        d = _fields(run.diag, _DIAG_FIELDS, "DiagnosticsAccumulator")
        diag = {k: d[k] for k in _DIAG_FIELDS - {"count", "mass", "all_seen"}}
        # counting stops once every pair is shown: only the zeros of count (and the target
        # mass on them) reach the diagnostics
        unseen = np.flatnonzero(d["count"].ravel() == 0)
        diag.update(shape=d["count"].shape, unseen=unseen,
                    unseen_mass=d["mass"].ravel()[unseen].copy())
        return cls(stats, diag)

    def merge(self, later: OPEPartial) -> OPEPartial:
        """The statistics of this run of rounds followed by ``later``'s."""
        stats: dict[str, Any] = {}
        for name, a in self.stats.items():
            b = later.stats[name]
            if not isinstance(a, dict):
                merged = copy.deepcopy(a)
                merged.merge(b)
                stats[name] = merged
                continue
            st = {k: a[k] + b[k] for k in ("n", "total", "s1", "s2", "w1", "w2")}
            st["has_weights"] = a["has_weights"] or b["has_weights"]
            if "boot_n" in a:
                st["boot_n"], st["boot_s"] = a["boot_n"] + b["boot_n"], a["boot_s"] + b["boot_s"]
            stats[name] = st
        a, b = self.diag, later.diag
        # a pair unseen in the whole log is unseen in every block, and every block added the
        # target mass on it (a block stops adding mass only once it has seen every pair)
        unseen, ia, ib = np.intersect1d(a["unseen"], b["unseen"], assume_unique=True,
                                        return_indices=True)
        diag = {
            "n": a["n"] + b["n"], "p_min": min(a["p_min"], b["p_min"]),
            "p_max": max(a["p_max"], b["p_max"]), "w1": a["w1"] + b["w1"],
            "w2": a["w2"] + b["w2"], "w_max": max(a["w_max"], b["w_max"]),
            "has_w": a["has_w"] or b["has_w"], "shape": a["shape"], "unseen": unseen,
            "unseen_mass": a["unseen_mass"][ia] + b["unseen_mass"][ib],
            "unsupported_known": a["unsupported_known"] + b["unsupported_known"],
            "known": a["known"] or b["known"],
        }
        return OPEPartial(stats, diag)

    def into(self, run: OffPolicyEvaluation, shifts: dict[str, np.ndarray]) -> None:
        """Load the statistics into a fresh ``run`` (whose ``results()`` then finalises)."""
        for name, acc in run.accs.items():
            st = self.stats[name]
            if not isinstance(st, dict):
                run.accs[name] = copy.deepcopy(st)
                run._clustered = True
                continue
            _fields(acc, _STAT_FIELDS, "StatAccumulator")
            acc.shift = shifts[name].copy()
            for k, v in st.items():
                setattr(acc, k, v.copy() if isinstance(v, np.ndarray) else v)
        _fields(run.diag, _DIAG_FIELDS, "DiagnosticsAccumulator")
        d = dict(self.diag)
        shape, unseen, mass = d.pop("shape"), d.pop("unseen"), d.pop("unseen_mass")
        count, full = np.ones(shape), np.zeros(shape)
        count.ravel()[unseen] = 0.0
        full.ravel()[unseen] = mass
        d.update(count=count, mass=full, all_seen=unseen.size == 0)
        for k, v in d.items():
            setattr(run.diag, k, v)


def _batches(table: pa.Table, spec: OPESpec) -> Iterator[LoggedFeedback]:
    """The table's rounds as :class:`LoggedFeedback` of at most ``batch_size`` rows (as
    :func:`reelpick.ope.streaming.iter_feedback_batches` builds them from a file)."""
    c = spec.columns
    for rb in table.to_batches(max_chunksize=spec.batch_size):
        col = {name: rb.column(name).to_numpy(zero_copy_only=False)
               for name in spec.read_columns}
        ctx = np.column_stack([col[k] for k in c.context]) if c.context else None
        has_pos = spec.log_positions is not None
        yield LoggedFeedback(
            action=col[c.action], reward=col[c.reward],
            pscore=col[c.pscore] if spec.has_pscore else None,  # type: ignore[index]
            n_actions=spec.n_actions,
            position=col[c.position] if has_pos else None,  # type: ignore[index]
            n_positions=spec.log_positions, context=ctx,
            slate_id=col[c.slate_id] if spec.has_slates else None)  # type: ignore[attr-defined]


def _run_batches(run: OffPolicyEvaluation, spec: OPESpec, batches: Iterator[LoggedFeedback],
                 offset: int) -> None:
    for batch in batches:
        dist = spec.target(batch, offset)
        q = None if spec.reward_model is None else spec.reward_model(batch, offset)
        run.update(batch, dist, q)
        offset += batch.n_rounds


def reduce_table(table: pa.Table, offset: int, spec: OPESpec) -> OPEPartial:
    """The sufficient statistics of ``table``, rounds ``offset .. offset + len(table) - 1`` of
    the log (runs on a Ray worker, or in process)."""
    run = spec.evaluation()
    for name, acc in run.accs.items():
        acc.shift = spec.shifts[name].copy()
        acc.n = offset  # bootstrap weights of round i are drawn for the global index i
    # Ray Data blocks need not start on batch boundaries: cut them into batch-sized chunks so
    # memory stays bounded by batch_size x n_actions x n_positions
    _run_batches(run, spec, _batches(table.combine_chunks(), spec), offset)
    return OPEPartial.from_evaluation(run, offset)


def _first_rows(plan: ParquetPlan, columns: list[str], n: int) -> pa.Table:
    """The log's first ``n`` rows (``n`` <= the first non-empty file's rows)."""
    pf = pq.ParquetFile(next(f for f, r in zip(plan.files, plan.rows) if r))
    return pa.Table.from_batches([next(pf.iter_batches(batch_size=n, columns=columns))])


def plan_ope(paths: PathLike | Sequence[PathLike], estimators: Sequence[Estimator],
             target: BatchFn, *, reward_model: BatchFn | None = None,
             n_actions: int | None = None, batch_size: int = 1_000_000,
             columns: FeedbackColumns = FeedbackColumns(), ci: CIMethod = "analytic",
             alpha: float = 0.05, n_bootstrap: int = 1000, random_state: int = 0
             ) -> tuple[ParquetPlan, OPESpec]:
    """Check the inputs and read the footers and the first rows: the files to read and the
    :class:`OPESpec` every block is reduced with (shifts included)."""
    ests = tuple(estimators)
    if not ests:
        raise ValueError("give at least one estimator")
    bad = [e.name for e in ests if not e.streamable]
    if bad:
        raise ValueError(f"estimator(s) {bad} need whole slates in memory; they cannot stream")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    plan = plan_parquet(paths, required=[columns.action, columns.reward, *columns.context])
    if plan.n_rows == 0:
        raise ValueError(f"{plan.files[0]}: the log has no rows")
    has_pos = columns.position is not None and columns.position in plan.columns
    has_pscore = columns.pscore is not None and columns.pscore in plan.columns
    slate_col = getattr(columns, "slate_id", None)
    has_slates = slate_col is not None and slate_col in plan.columns
    metas = [pq.ParquetFile(f) for f in plan.files if pq.ParquetFile(f).metadata.num_rows]
    if n_actions is None:
        n_actions = max(_n_actions_from(m, columns.action) for m in metas)
    log_pos = max(_n_actions_from(m, columns.position) for m in metas) if has_pos else None
    spec = OPESpec(ests, target, reward_model, int(n_actions), 1, log_pos, has_pscore,
                   has_slates, columns, int(batch_size), ci, float(alpha), int(n_bootstrap),
                   int(random_state))
    # the local run sizes its accumulators from the first batch's action_dist and takes each
    # estimator's shift from the first cache-sized block: do the same on the log's first rows
    from reelpick.ope.base import _block_rows

    probe = next(_batches(_first_rows(plan, spec.read_columns, 1), spec))
    dist = np.asarray(target(probe, 0))
    n_pos = dist.shape[2] if dist.ndim == 3 else int(log_pos or 1)
    n_pos = max(n_pos, int(log_pos or 1))
    first = min(_block_rows(dist), batch_size, next(r for r in plan.rows if r))
    spec = _replace(spec, n_positions=n_pos)
    run = spec.evaluation()
    _run_batches(run, spec, _batches(_first_rows(plan, spec.read_columns, first), spec), 0)
    shifts = {name: np.array(acc.shift, dtype=np.float64) for name, acc in run.accs.items()}
    return plan, _replace(spec, shifts=shifts)


def _replace(spec: OPESpec, **changes: Any) -> OPESpec:
    from dataclasses import replace

    return replace(spec, **changes)


def estimate_parquet(
    paths: PathLike | Sequence[PathLike],
    estimators: Sequence[Estimator],
    target: BatchFn,
    *,
    reward_model: BatchFn | None = None,
    n_actions: int | None = None,
    batch_size: int = 1_000_000,
    columns: FeedbackColumns = FeedbackColumns(),
    ci: CIMethod = "analytic",
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    random_state: int = 0,
    backend: str = "local",
    num_workers: int | None = None,
    address: str | None = None,
    reader: str = "tasks",
) -> dict[str, Estimate]:
    """:func:`reelpick.ope.estimate_parquet` over one or many feedback Parquet files (a file,
    a folder -- all ``*.parquet`` below it, sorted -- or a list: one log, in that order), in
    this process (``backend="local"``) or on Ray (``backend="ray"``).

    ``target(batch, offset)`` / ``reward_model(batch, offset)`` receive the global offset of the
    batch in the log; on Ray they are pickled to the workers (files they read, e.g.
    :class:`~reelpick.ope.NpyTarget`'s, must be readable there). ``num_workers`` bounds the
    concurrent read and reduce tasks (default: the cluster's CPUs); ``address`` is passed to
    :func:`~reelpick.distributed.ray_session` (``None``: the running Ray, ``RAY_ADDRESS``, or a
    local one). ``reader``: ``"tasks"`` (row-group shards read by the reducing tasks; the fast
    path) or ``"ray-data"`` (``ray.data.read_parquet`` blocks; slower end to end on one
    machine, ``docs/distributed.md``). Results equal the local backend's to about 1e-15
    (module docstring).
    """
    check_backend(backend)
    if reader not in ("tasks", "ray-data"):
        raise ValueError(f"reader: expected 'tasks' or 'ray-data', got {reader!r}")
    plan, spec = plan_ope(paths, estimators, target, reward_model=reward_model,
                          n_actions=n_actions, batch_size=batch_size, columns=columns, ci=ci,
                          alpha=alpha, n_bootstrap=n_bootstrap, random_state=random_state)
    if backend == "local":
        run = spec.evaluation()
        offset = 0
        for f in plan.files:
            pf = pq.ParquetFile(f)
            for rb in pf.iter_batches(batch_size=spec.batch_size, columns=spec.read_columns):
                table = pa.Table.from_batches([rb])
                n = table.num_rows
                _run_batches(run, spec, _batches(table, spec), offset)
                offset += n
        return run.results(stacklevel=2)
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"num_workers: must be >= 1, got {num_workers}")
    with ray_session(address) as ray:
        total = _reduce_on_ray(ray, plan, spec, num_workers, reader)
    run = spec.evaluation()
    total.into(run, spec.shifts)
    return run.results(stacklevel=2)


_MIN_SHARD_ROWS = 65_536   # a smaller shard costs more in task overhead than it saves


def reduce_shard(shard: Shard, spec: OPESpec) -> OPEPartial:
    """Read a shard of the log and reduce it (runs on a Ray worker)."""
    return reduce_table(read_shard(shard, spec.read_columns), shard.offset, spec)


def _reduce_on_ray(ray: Any, plan: ParquetPlan, spec: OPESpec, num_workers: int | None,
                   reader: str) -> OPEPartial:
    workers = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    spec_ref = ray.put(spec)
    if reader == "tasks":
        task = ray.remote(num_cpus=1, max_retries=2)(reduce_shard)
        # shards small enough to give every worker a few, big enough to amortise a task
        per = max(_MIN_SHARD_ROWS, min(1 << 22, plan.n_rows // (4 * workers) + 1))
        jobs: Any = ((task, (sh, spec_ref)) for sh in plan_shards(plan, min_rows=per))
    else:
        task = ray.remote(num_cpus=1, max_retries=2)(reduce_table)
        jobs = ((task, (ref, offset, spec_ref)) for ref, offset, _n in iter_ordered_blocks(
            plan, spec.read_columns, concurrency=workers))
    pending: dict[Any, int] = {}
    done: dict[int, OPEPartial] = {}
    merged: OPEPartial | None = None
    next_merge = 0

    def collect(block: bool) -> None:
        nonlocal merged, next_merge
        ready, _ = ray.wait(list(pending), num_returns=1 if block else len(pending),
                            timeout=None if block else 0)
        for ref in ready:
            done[pending.pop(ref)] = ray.get(ref)
        while next_merge in done:  # fold in log order: memory stays bounded
            part = done.pop(next_merge)
            merged = part if merged is None else merged.merge(part)
            next_merge += 1

    for i, (fn, args) in enumerate(jobs):
        while len(pending) >= workers:   # num_workers tasks at a time, at most
            collect(block=True)
        pending[fn.remote(*args)] = i
    while pending:
        collect(block=True)
    if merged is None or done:
        raise RuntimeError("Ray returned no statistics for some blocks")
    return merged
