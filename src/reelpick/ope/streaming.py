"""Off-policy estimates over Parquet logs larger than memory, batch by batch.

A *feedback Parquet* file has one row per round and the columns ``action`` (int), ``reward``
(float), ``pscore`` (float in (0, 1]) and optionally ``position`` (int) and context columns
(names given by ``context_columns``); other names map through :class:`FeedbackColumns`.
:func:`estimate_parquet` reads it with :meth:`pyarrow.parquet.ParquetFile.iter_batches`, asks
the target (and the reward model) for each batch's ``action_dist`` (``reward_hat``), and feeds
:class:`~reelpick.ope.OffPolicyEvaluation`, whose sufficient statistics make the result equal to
the in-memory one (up to floating-point summation order; bootstrap replicates included). Memory
is bounded by ``batch_size`` x ``n_actions`` x ``n_positions``.

Targets and reward models are callables ``f(batch: LoggedFeedback, offset: int) -> array``
(``offset`` = index of the batch's first round in the file): :class:`ConstantTarget` for a
context-free policy, :class:`NpyTarget` for a precomputed ``.npy`` file read batch by batch
(bounded memory), :class:`ArrayTarget` for an array already in memory.

>>> import tempfile, pathlib, numpy as np
>>> from reelpick.ope import IPS, SNIPS, LoggedFeedback
>>> fb = LoggedFeedback(action=[0, 1, 1, 0], reward=[1.0, 0.0, 1.0, 1.0], pscore=[0.5] * 4,
...                     n_actions=2)
>>> path = write_feedback_parquet(fb, pathlib.Path(tempfile.mkdtemp()) / "log.parquet")
>>> res = estimate_parquet(path, [IPS(), SNIPS()], ConstantTarget([0.5, 0.5]), batch_size=3)
>>> round(res["ips"].value, 3)
0.75
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reelpick.ope.base import ClusterBy, Estimator, OffPolicyEvaluation
from reelpick.ope.estimate import CIMethod, Estimate
from reelpick.ope.feedback import LoggedFeedback

__all__ = [
    "ArrayTarget",
    "ConstantTarget",
    "FeedbackColumns",
    "NpyTarget",
    "estimate_parquet",
    "iter_feedback_batches",
    "write_feedback_parquet",
]

BatchFn = Callable[[LoggedFeedback, int], np.ndarray]


@dataclass(frozen=True)
class FeedbackColumns:
    """Column names of a feedback Parquet file (``position = None``: no positions).

    ``slate_id`` (read when the file has it): rows of one slate, which must be adjacent in the
    file; the intervals are then clustered by slate, as in memory."""

    action: str = "action"
    reward: str = "reward"
    pscore: str | None = "pscore"
    position: str | None = "position"
    context: tuple[str, ...] = ()
    slate_id: str | None = "slate_id"


@dataclass(frozen=True, eq=False)
class ConstantTarget:
    """A context-free target: ``probs`` ``(n_actions,)`` or ``(n_actions, n_positions)``,
    broadcast over the batch without copying."""

    probs: Any

    def __call__(self, batch: LoggedFeedback, offset: int = 0) -> np.ndarray:
        p = np.asarray(self.probs, dtype=np.float64)
        return np.broadcast_to(p, (batch.n_rounds, *p.shape))


@dataclass(frozen=True, eq=False)
class ArrayTarget:
    """Rows ``offset .. offset + len(batch)`` of a ``(n_rounds, n_actions[, n_positions])``
    array. A memory-mapped ``.npy`` works, but every page read stays resident (RSS grows to the
    whole file by the end): use :class:`NpyTarget` to stream a large file."""

    array: Any

    def __call__(self, batch: LoggedFeedback, offset: int = 0) -> np.ndarray:
        out = np.asarray(self.array[offset: offset + batch.n_rounds], dtype=np.float64)
        if out.shape[0] != batch.n_rounds:
            raise ValueError(f"the target array has {len(self.array)} rows, fewer than the log")
        return out


class NpyTarget:
    """Rows ``offset .. offset + len(batch)`` of a ``(n_rounds, n_actions[, n_positions])``
    ``.npy`` file, read batch by batch with plain file reads.

    Unlike a memory map (:class:`ArrayTarget` over ``np.load(..., mmap_mode="r")``), whose pages
    stay resident (and count in the process's RSS) once touched, only the current batch is held
    in memory: streaming stays bounded by ``batch_size`` however large the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read(f)
            self._data_start = f.tell()
        if fortran:
            raise ValueError(f"{self.path}: Fortran-ordered arrays cannot be streamed by rows")
        if len(shape) not in (2, 3):
            raise ValueError(f"{self.path}: expected (n_rounds, n_actions[, n_positions]), "
                             f"got shape {shape}")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self._row = int(np.prod(shape[1:]))

    def __len__(self) -> int:
        return self.shape[0]

    def __call__(self, batch: LoggedFeedback, offset: int = 0) -> np.ndarray:
        k = batch.n_rounds
        if offset + k > self.shape[0]:
            raise ValueError(f"{self.path} has {self.shape[0]} rows, fewer than the log")
        with open(self.path, "rb") as f:
            f.seek(self._data_start + offset * self._row * self.dtype.itemsize)
            out = np.fromfile(f, dtype=self.dtype, count=k * self._row)
        return out.reshape((k, *self.shape[1:])).astype(np.float64, copy=False)


def write_feedback_parquet(feedback: LoggedFeedback, path: str | os.PathLike[str], *,
                           row_group_size: int = 1_000_000) -> Path:
    """Write ``feedback`` as a feedback Parquet file (context as ``context_0..``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols: dict[str, Any] = {"action": feedback.action, "reward": feedback.reward}
    if feedback.pscore is not None:
        cols["pscore"] = feedback.pscore
    if feedback.position is not None:
        cols["position"] = feedback.position
    if feedback.slate_id is not None:
        cols["slate_id"] = feedback.slate_id
    if feedback.context is not None:
        for j in range(feedback.context.shape[1]):
            cols[f"context_{j}"] = feedback.context[:, j]
    pq.write_table(pa.table(cols), path, row_group_size=row_group_size)
    return path


def _n_actions_from(pf: pq.ParquetFile, column: str) -> int:
    """1 + the largest action, from row-group statistics (or one streaming pass)."""
    idx = pf.schema_arrow.get_field_index(column)
    top = -1
    stats_ok = True
    for g in range(pf.metadata.num_row_groups):
        st = pf.metadata.row_group(g).column(idx).statistics
        if st is None or not st.has_min_max:
            stats_ok = False
            break
        top = max(top, int(st.max))
    if not stats_ok:
        top = -1
        for batch in pf.iter_batches(columns=[column]):
            top = max(top, int(pc.max(batch.column(0)).as_py()))
    return top + 1


def iter_feedback_batches(path: str | os.PathLike[str], *, n_actions: int | None = None,
                          n_positions: int | None = None, batch_size: int = 1_000_000,
                          columns: FeedbackColumns = FeedbackColumns()
                          ) -> Iterator[LoggedFeedback]:
    """Yield the file's rounds as :class:`LoggedFeedback` batches of at most ``batch_size``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    want = [columns.action, columns.reward]
    for opt in (columns.pscore, columns.position, columns.slate_id):
        if opt is not None and opt in names:
            want.append(opt)
    want += list(columns.context)
    missing = [c for c in [columns.action, columns.reward, *columns.context] if c not in names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {sorted(names)}")
    if n_actions is None:
        n_actions = _n_actions_from(pf, columns.action)
    has_pos = columns.position is not None and columns.position in names
    if has_pos and n_positions is None:
        n_positions = _n_actions_from(pf, columns.position)  # 1 + max position
    has_pscore = columns.pscore is not None and columns.pscore in names
    has_slate = columns.slate_id is not None and columns.slate_id in names
    for batch in pf.iter_batches(batch_size=batch_size, columns=want):
        col = {name: batch.column(name).to_numpy(zero_copy_only=False) for name in want}
        ctx = (np.column_stack([col[c] for c in columns.context]) if columns.context else None)
        yield LoggedFeedback(
            action=col[columns.action], reward=col[columns.reward],
            pscore=col[columns.pscore] if has_pscore else None,  # type: ignore[index]
            n_actions=n_actions,
            position=col[columns.position] if has_pos else None,  # type: ignore[index]
            n_positions=n_positions if has_pos else None, context=ctx,
            slate_id=col[columns.slate_id] if has_slate else None)  # type: ignore[index]


def estimate_parquet(
    path: str | os.PathLike[str],
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
) -> dict[str, Estimate]:
    """Run ``estimators`` over a feedback Parquet file in batches; returns one
    :class:`~reelpick.ope.Estimate` per estimator name.

    ``target(batch, offset)`` gives the batch's ``action_dist``; ``reward_model(batch, offset)``
    its ``reward_hat`` (needed by DM/DR/SNDR/Switch-DR). Slate estimators (whole slates needed)
    are refused. With a ``slate_id`` column the intervals are clustered by slate
    (``cluster="round"``: not), as :func:`~reelpick.ope.evaluate_policy` does in memory.
    """
    bad = [e.name for e in estimators if not e.streamable]
    if bad:
        raise ValueError(f"estimator(s) {bad} need whole slates in memory; they cannot stream")
    run: OffPolicyEvaluation | None = None
    offset = 0
    for batch in iter_feedback_batches(path, n_actions=n_actions, batch_size=batch_size,
                                       columns=columns):
        dist = target(batch, offset)
        if run is None:
            n_pos = dist.shape[2] if np.ndim(dist) == 3 else int(batch.n_positions or 1)
            run = OffPolicyEvaluation(estimators, n_actions=batch.n_actions,
                                      n_positions=max(n_pos, int(batch.n_positions or 1)),
                                      ci=ci, alpha=alpha, n_bootstrap=n_bootstrap,
                                      random_state=random_state, cluster=cluster)
        q = None if reward_model is None else reward_model(batch, offset)
        run.update(batch, dist, q)
        offset += batch.n_rounds
    if run is None:
        raise ValueError(f"{path}: the file has no rows")
    return run.results(stacklevel=2)
