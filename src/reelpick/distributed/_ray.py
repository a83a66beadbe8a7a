"""Ray plumbing shared by the distributed jobs: lazy import, sessions, ordered Parquet blocks.

Ray is imported inside the functions, never at module import, so ``import reelpick`` (and
``import reelpick.distributed``) works without it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

__all__ = [
    "BACKENDS",
    "ParquetPlan",
    "Shard",
    "check_backend",
    "iter_ordered_blocks",
    "plan_parquet",
    "plan_shards",
    "ray_session",
    "read_shard",
    "require_ray",
]

#: Values of every ``backend=`` argument and ``--backend`` option.
BACKENDS = ("local", "ray")


def check_backend(backend: str) -> str:
    """``backend`` if it is ``"local"`` or ``"ray"``, else a ``ValueError`` naming both."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
    return backend


def require_ray() -> Any:
    """The ``ray`` module, or an ``ImportError`` that says how to install it."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is installed in CI
        raise ImportError("the Ray backend needs Ray: pip install 'reelpick[ray]' "
                          "(ray[data,train,serve])") from exc
    return ray


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None,
                temp_dir: str | os.PathLike[str] | None = None,
                log_to_driver: bool = False) -> Iterator[Any]:
    """Yield the ``ray`` module with a connected Ray; shut down only what this call started.

    * Ray already initialised in this process (``ray.init`` called by the caller): it is used
      as is, and left running.
    * ``address`` given (``"auto"``, ``"ray://head:10001"``, ``"10.0.0.5:6379"``) or the
      ``RAY_ADDRESS`` environment variable set: connects to that cluster.
    * Otherwise a local Ray is started with ``num_cpus`` CPUs (default: all), without the
      dashboard, and shut down on exit; ``temp_dir`` (default: a fresh directory under the
      system temp dir, removed afterwards) holds its session files.

    Workers' stdout/stderr reach this process only with ``log_to_driver=True`` (their errors
    always come back as exceptions).

    >>> with ray_session(num_cpus=2) as ray:  # doctest: +SKIP
    ...     ray.cluster_resources()["CPU"]
    2.0
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    owned_tmp = None
    kwargs: dict[str, Any] = dict(logging_level=logging.WARNING, log_to_driver=log_to_driver)
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kwargs.update(num_cpus=num_cpus, include_dashboard=False)
        if temp_dir is None:
            # short path: Ray's unix sockets live under it (107-byte limit)
            owned_tmp = tempfile.mkdtemp(prefix="rp-ray-")
            temp_dir = owned_tmp
        kwargs["_temp_dir"] = str(Path(temp_dir).resolve())
    ray.init(address=address, **kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()
        if owned_tmp is not None:
            shutil.rmtree(owned_tmp, ignore_errors=True)


@contextmanager
def ordered_data_context() -> Iterator[Any]:
    """The current Ray Data context, set (for the duration) to keep the order of blocks and to
    print no progress bars; the previous settings are restored afterwards.

    Order matters: every block's first row must have a known index in the log (the bootstrap
    weights, per-round targets and the SGD minibatches depend on it).
    """
    import ray.data

    ctx = ray.data.DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars,
             getattr(ctx, "print_on_execution_start", None))
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    data_log.setLevel(max(level, logging.WARNING))
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    if saved[2] is not None:
        ctx.print_on_execution_start = False
    try:
        with warnings.catch_warnings():
            # one read task per file: a log of fewer files than workers is not an error
            warnings.filterwarnings("ignore", message="The maximum number of concurrent tasks")
            yield ctx
    finally:
        data_log.setLevel(level)
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved[:2]
        if saved[2] is not None:
            ctx.print_on_execution_start = saved[2]


@dataclass(frozen=True)
class ParquetPlan:
    """The Parquet files of a log, in order, with their row counts (from the footers only)."""

    files: tuple[str, ...]
    rows: tuple[int, ...]
    columns: frozenset[str]

    @property
    def n_rows(self) -> int:
        return sum(self.rows)


def plan_parquet(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                 required: Sequence[str] = ()) -> ParquetPlan:
    """Resolve ``paths`` (a ``.parquet`` file, a folder of them -- searched recursively, in
    sorted order -- or a list of files) into a :class:`ParquetPlan`; every file must hold the
    ``required`` columns.

    >>> import tempfile, pathlib, pyarrow as pa
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for i in (1, 0):
    ...     pq.write_table(pa.table({"action": [i, i]}), d / f"part-{i}.parquet")
    >>> plan = plan_parquet(d, required=["action"])
    >>> [pathlib.Path(f).name for f in plan.files], plan.n_rows
    (['part-0.parquet', 'part-1.parquet'], 4)
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise ValueError("paths: give at least one Parquet file or folder")
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.parquet") if f.is_file())
            if not found:
                raise FileNotFoundError(f"{p}: no .parquet files in this folder")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    rows, names = [], None
    for f in files:
        meta = pq.ParquetFile(f)
        have = frozenset(meta.schema_arrow.names)
        missing = [c for c in required if c not in have]
        if missing:
            raise ValueError(f"{f}: missing column(s) {missing}; found {sorted(have)}")
        names = have if names is None else names & have
        rows.append(meta.metadata.num_rows)
    return ParquetPlan(tuple(str(f.resolve()) for f in files), tuple(rows),
                       names or frozenset())


def _num_rows_remote(ray: Any) -> Any:
    @ray.remote(num_cpus=0)
    def count(block: Any) -> int:
        return int(block.num_rows)

    return count


def iter_ordered_blocks(plan: ParquetPlan, columns: Sequence[str], *,
                        concurrency: int | None = None) -> Iterator[tuple[Any, int, int]]:
    """``(block_ref, offset, n_rows)`` of the Ray Data blocks of ``ray.data.read_parquet`` over
    the plan's files, in log order (``offset`` = index of the block's first row in the log).

    The driver only sees object references and row counts: the rows stay in the object store
    where the read tasks put them, and the caller ships each reference to a task that reduces
    it. The total is checked against the footers.
    """
    ray = require_ray()
    import ray.data as ray_data

    counter = None
    offset = 0
    with ordered_data_context():
        ds = ray_data.read_parquet(list(plan.files), concurrency=concurrency
                                   ).select_columns(list(columns))
        for bundle in ds.iter_internal_ref_bundles():
            slices = getattr(bundle, "slices", None) or [None] * len(bundle.blocks)
            for entry, sl in zip(bundle.blocks, slices):
                ref, meta = (entry.ref, entry.metadata) if hasattr(entry, "ref") else entry
                if sl is not None:
                    raise RuntimeError("Ray Data returned a sliced block; reelpick.distributed "
                                       "expects whole blocks from read_parquet")
                n = getattr(meta, "num_rows", None)
                if n is None:
                    counter = counter or _num_rows_remote(ray)
                    n = ray.get(counter.remote(ref))
                if n:
                    yield ref, offset, int(n)
                offset += int(n)
    if offset != plan.n_rows:
        raise RuntimeError(f"Ray Data read {offset} rows, the Parquet footers say "
                           f"{plan.n_rows}")


@dataclass(frozen=True)
class Shard:
    """Consecutive row groups ``row_groups`` of one file: rows ``offset .. offset + n_rows - 1``
    of the log."""

    path: str
    row_groups: tuple[int, ...]
    offset: int
    n_rows: int


def plan_shards(plan: ParquetPlan, *, min_rows: int = 131_072) -> list[Shard]:
    """Cut the log into shards of whole row groups (consecutive ones joined until a shard
    holds ``min_rows`` rows), from the footers alone: each shard's global offset is exact.

    >>> import tempfile, pathlib, pyarrow as pa
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> pq.write_table(pa.table({"a": list(range(10))}), d / "x.parquet", row_group_size=3)
    >>> [(s.row_groups, s.offset, s.n_rows) for s in plan_shards(plan_parquet(d), min_rows=5)]
    [((0, 1), 0, 6), ((2, 3), 6, 4)]
    """
    shards: list[Shard] = []
    offset = 0
    for path in plan.files:
        meta = pq.ParquetFile(path).metadata
        groups: list[int] = []
        rows = 0
        for g in range(meta.num_row_groups):
            groups.append(g)
            rows += meta.row_group(g).num_rows
            if rows >= min_rows:
                shards.append(Shard(path, tuple(groups), offset, rows))
                offset += rows
                groups, rows = [], 0
        if rows:
            shards.append(Shard(path, tuple(groups), offset, rows))
            offset += rows
    return shards


def read_shard(shard: Shard, columns: Sequence[str]) -> Any:
    """The shard's rows (a ``pyarrow.Table``), read by whoever runs this: a Ray task reads its
    shard where it runs, so rows never travel through the object store."""
    return pq.ParquetFile(shard.path).read_row_groups(list(shard.row_groups),
                                                      columns=list(columns))
