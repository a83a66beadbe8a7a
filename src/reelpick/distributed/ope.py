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
   (``reader="tasks"``) runs of whole Parquet row groups planned from the footers (a run may
   span files; about two per worker), each read by the task that reduces it (rows never
   enter the object store); with
   ``reader="ray-data"``, the blocks of ``ray.data.read_parquet`` kept in log order
   (``preserve_order``), of which the driver sees only object references and row counts;
3. one Ray task per block runs the same :class:`~reelpick.ope.OffPolicyEvaluation` updates as
   the local run on that block (the same reader, :class:`~reelpick.ope.streaming.
   FeedbackLayout`), with the common shift and the block's offset (the Poisson bootstrap
   weights of round :math:`i` depend only on the seed and :math:`i`), and returns its
   :class:`~reelpick.ope.streaming.OPEStatistics` (a few KB, plus the (action, position)
   pairs it never saw);
4. the driver adds them in log order (sums, minima, maxima: associative) into a fresh
   :class:`~reelpick.ope.OffPolicyEvaluation` and calls its ``results()``: the same code that
   finalises the local run.

Intervals are clustered by ``slate_id`` when the log has that column, as in the local run
(``cluster="round"``: rounds independent); a slate cut between two blocks is joined by the
merge (:meth:`~reelpick.ope.estimate.ClusterStatAccumulator.merge`).

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

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa

from reelpick.distributed._ray import (
    ParquetPlan,
    Shard,
    check_backend,
    iter_ordered_blocks,
    plan_parquet,
    plan_shards,
    ray_session,
)
from reelpick.ope.base import ClusterBy, Estimator, OffPolicyEvaluation
from reelpick.ope.estimate import CIMethod, Estimate
from reelpick.ope.streaming import (
    BatchFn,
    FeedbackColumns,
    FeedbackLayout,
    OPEStatistics,
    feed,
    first_block_rows,
    start_evaluation,
)

__all__ = ["OPESpec", "OPEStatistics", "estimate_parquet", "plan_ope",
           "reduce_shards", "reduce_table", "work_units"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, eq=False)
class OPESpec:
    """What every block needs: the estimators, the target and reward model (callables
    ``f(batch, offset)``, shipped to the workers), the log's layout, the interval settings and
    each estimator's shift (the mean of the log's first block, as the local run takes it)."""

    estimators: tuple[Estimator, ...]
    target: BatchFn
    reward_model: BatchFn | None
    layout: FeedbackLayout
    n_positions: int           # of the accumulators (target's positions included)
    batch_size: int
    ci: CIMethod
    alpha: float
    n_bootstrap: int
    random_state: int
    cluster: ClusterBy = "slate"
    shifts: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def read_columns(self) -> list[str]:
        return self.layout.read_columns

    def evaluation(self) -> OffPolicyEvaluation:
        return OffPolicyEvaluation(list(self.estimators), n_actions=self.layout.n_actions,
                                   n_positions=self.n_positions, ci=self.ci, alpha=self.alpha,
                                   n_bootstrap=self.n_bootstrap, random_state=self.random_state,
                                   cluster=self.cluster)

    def start(self, offset: int) -> OffPolicyEvaluation:
        """A run for rounds ``offset ..`` of the log, with the common shifts."""
        return start_evaluation(self.evaluation(), self.shifts, offset)

    def feed(self, run: OffPolicyEvaluation, data: Any, offset: int) -> int:
        return feed(run, self.layout.batches(data, self.batch_size), self.target,
                    self.reward_model, offset)


def reduce_table(table: pa.Table, offset: int, spec: OPESpec) -> OPEStatistics:
    """The sufficient statistics of ``table``, rounds ``offset .. offset + len(table) - 1`` of
    the log (runs on a Ray worker, or in process)."""
    run = spec.start(offset)
    # Ray Data blocks need not start on batch boundaries: cut them into batch-sized chunks so
    # memory stays bounded by batch_size x n_actions x n_positions
    spec.feed(run, table.combine_chunks(), offset)
    return OPEStatistics.of(run, offset)


def reduce_shards(shards: Sequence[Shard], spec: OPESpec) -> OPEStatistics:
    """Read consecutive shards of the log (row groups of one or more files, in log order)
    and reduce them to one set of statistics (runs on a Ray worker): the rows are read where
    the task runs, ``batch_size`` at a time, and only the statistics travel back."""
    offset = shards[0].offset
    run = spec.start(offset)
    at = offset
    for sh in shards:
        if sh.offset != at:
            raise ValueError(f"shards are not consecutive: row {sh.offset}, expected {at}")
        at = feed(run, spec.layout.read(sh.path, spec.batch_size, row_groups=sh.row_groups),
                  spec.target, spec.reward_model, at)
    return OPEStatistics.of(run, offset)


def plan_ope(paths: PathLike | Sequence[PathLike], estimators: Sequence[Estimator],
             target: BatchFn, *, reward_model: BatchFn | None = None,
             n_actions: int | None = None, batch_size: int = 1_000_000,
             columns: FeedbackColumns = FeedbackColumns(), ci: CIMethod = "analytic",
             alpha: float = 0.05, n_bootstrap: int = 1000, random_state: int = 0,
             cluster: ClusterBy = "slate") -> tuple[ParquetPlan, OPESpec]:
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
    if cluster not in ("slate", "round"):
        raise ValueError(f"cluster must be 'slate' or 'round', got {cluster!r}")
    plan = plan_parquet(paths, required=[columns.action, columns.reward, *columns.context])
    if plan.n_rows == 0:
        raise ValueError(f"{plan.files[0]}: the log has no rows")
    # unclustered intervals need no slate ids: they are not read
    layout = FeedbackLayout.of([f for f, r in zip(plan.files, plan.rows) if r], columns,
                               n_actions=n_actions, slates=cluster == "slate")
    spec = OPESpec(ests, target, reward_model, layout, 1, int(batch_size), ci, float(alpha),
                   int(n_bootstrap), int(random_state), cluster)
    # the local run sizes its accumulators from the first batch's action_dist and takes each
    # estimator's shift from the first cache-sized block: do the same on the log's first rows
    first_file = next(f for f, r in zip(plan.files, plan.rows) if r)
    probe = next(layout.read(first_file, 1))
    dist = np.asarray(target(probe, 0))
    log_pos = int(layout.n_positions or 1)
    n_pos = max(dist.shape[2] if dist.ndim == 3 else log_pos, log_pos)
    first = min(first_block_rows(dist), batch_size, next(r for r in plan.rows if r))
    spec = replace(spec, n_positions=n_pos)
    run = spec.evaluation()
    feed(run, [next(layout.read(first_file, first))], target, reward_model)
    shifts = {name: np.array(acc.shift, dtype=np.float64) for name, acc in run.accs.items()}
    return plan, replace(spec, shifts=shifts)


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
    cluster: ClusterBy = "slate",
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
    :class:`~reelpick.ope.NpyTarget`'s, must be readable there). ``cluster``: ``"slate"``
    (default: intervals clustered by ``slate_id`` when the log has it) or ``"round"``, as
    locally. ``num_workers`` bounds the concurrent read and reduce tasks (default: the
    cluster's CPUs); ``address`` is passed to :func:`~reelpick.distributed.ray_session`
    (``None``: the running Ray, ``RAY_ADDRESS``, or a local one). ``reader``: ``"tasks"``
    (row-group shards read by the reducing tasks; the fast path) or ``"ray-data"``
    (``ray.data.read_parquet`` blocks; slower end to end on one machine,
    ``docs/distributed.md``). Results equal the local backend's to about 1e-15 (module
    docstring).
    """
    check_backend(backend)
    if reader not in ("tasks", "ray-data"):
        raise ValueError(f"reader: expected 'tasks' or 'ray-data', got {reader!r}")
    plan, spec = plan_ope(paths, estimators, target, reward_model=reward_model,
                          n_actions=n_actions, batch_size=batch_size, columns=columns, ci=ci,
                          alpha=alpha, n_bootstrap=n_bootstrap, random_state=random_state,
                          cluster=cluster)
    if backend == "local":
        run = spec.evaluation()
        offset = 0
        for f in plan.files:
            offset = feed(run, spec.layout.read(f, spec.batch_size), target, reward_model,
                          offset)
        return run.results(stacklevel=2)
    if num_workers is not None and num_workers < 1:
        raise ValueError(f"num_workers: must be >= 1, got {num_workers}")
    with ray_session(address) as ray:
        total = _reduce_on_ray(ray, plan, spec, num_workers, reader)
    run = spec.evaluation()
    total.into(run, spec.shifts)
    return run.results(stacklevel=2)


_MIN_SHARD_ROWS = 65_536   # a smaller shard costs more in task overhead than it saves
# tasks per worker: a few, to even out uneven workers; few enough that the ~10 ms of each task
# (scheduling, the statistics' trip back) stays small: on 8M rounds of the default world 2 per
# worker beat 4 and 8 with 1 and 2 workers
_TASKS_PER_WORKER = 2


def work_units(plan: ParquetPlan, workers: int) -> list[list[Shard]]:
    """The log cut into about ``_TASKS_PER_WORKER x workers`` (2 x) runs of consecutive row-group
    shards (a run may span files), each of at least ``_MIN_SHARD_ROWS`` rows unless the log is
    smaller."""
    per = max(_MIN_SHARD_ROWS, -(-plan.n_rows // (_TASKS_PER_WORKER * workers)))
    units: list[list[Shard]] = []
    current: list[Shard] = []
    rows = 0
    for sh in plan_shards(plan, min_rows=min(per, 1 << 22)):
        current.append(sh)
        rows += sh.n_rows
        if rows >= per:
            units.append(current)
            current, rows = [], 0
    if current:
        units.append(current)
    return units


def _reduce_on_ray(ray: Any, plan: ParquetPlan, spec: OPESpec, num_workers: int | None,
                   reader: str) -> OPEStatistics:
    workers = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    spec_ref = ray.put(spec)
    if reader == "tasks":
        task = ray.remote(num_cpus=1, max_retries=2)(reduce_shards)
        jobs: Any = ((task, (unit, spec_ref)) for unit in work_units(plan, workers))
    else:
        task = ray.remote(num_cpus=1, max_retries=2)(reduce_table)
        jobs = ((task, (ref, offset, spec_ref)) for ref, offset, _n in iter_ordered_blocks(
            plan, spec.read_columns, concurrency=workers))
    pending: dict[Any, int] = {}
    done: dict[int, OPEStatistics] = {}
    merged: OPEStatistics | None = None
    next_merge = 0

    def collect() -> None:
        nonlocal merged, next_merge
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            done[pending.pop(ref)] = ray.get(ref)
        while next_merge in done:  # fold in log order: memory stays bounded
            part = done.pop(next_merge)
            merged = part if merged is None else merged.merge(part)
            next_merge += 1

    for i, (fn, args) in enumerate(jobs):
        while len(pending) >= workers:   # num_workers tasks at a time, at most
            collect()
        pending[fn.remote(*args)] = i
    while pending:
        collect()
    if merged is None or done:
        raise RuntimeError("Ray returned no statistics for some blocks")
    return merged
