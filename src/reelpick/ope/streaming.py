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

import copy
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reelpick.ope.base import (
    ClusterBy,
    Estimator,
    OffPolicyEvaluation,
    _block_rows,
    _n_positions,
)
from reelpick.ope.estimate import CIMethod, Estimate, StatAccumulator
from reelpick.ope.feedback import LoggedFeedback

__all__ = [
    "ArrayTarget",
    "ConstantTarget",
    "FeedbackColumns",
    "FeedbackLayout",
    "NpyTarget",
    "OPEStatistics",
    "estimate_parquet",
    "feed",
    "first_block_rows",
    "iter_feedback_batches",
    "start_evaluation",
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


@dataclass(frozen=True)
class FeedbackLayout:
    """What the rows of a feedback log hold and how they become :class:`LoggedFeedback`
    batches: the one reader of feedback Parquet, shared by :func:`iter_feedback_batches`,
    :func:`estimate_parquet` and the Ray backend (:mod:`reelpick.distributed.ope`).

    ``n_positions``: ``1 +`` the largest logged position (``None``: no position column);
    ``has_slates``: the ``slate_id`` column is read (the intervals are clustered by slate).
    """

    columns: FeedbackColumns
    n_actions: int
    n_positions: int | None
    has_pscore: bool
    has_slates: bool

    @classmethod
    def of(cls, files: Sequence[str | os.PathLike[str]],
           columns: FeedbackColumns = FeedbackColumns(), *, n_actions: int | None = None,
           n_positions: int | None = None, slates: bool = True) -> FeedbackLayout:
        """The layout of a log made of ``files`` (in order, one log): the optional columns that
        every file has; ``n_actions`` (``n_positions``) from the row-group statistics -- the
        largest over the files -- unless given; ``slates=False``: ``slate_id`` is not read."""
        metas = []
        names: set[str] | None = None
        for f in files:
            path = Path(f)
            if not path.exists():
                raise FileNotFoundError(f"{path}: no such file")
            pf = pq.ParquetFile(path)
            have = set(pf.schema_arrow.names)
            missing = [c for c in [columns.action, columns.reward, *columns.context]
                       if c not in have]
            if missing:
                raise ValueError(f"{path}: missing column(s) {missing}; found {sorted(have)}")
            names = have if names is None else names & have
            metas.append(pf)
        if names is None:
            raise ValueError("give at least one feedback Parquet file")
        has_pos = columns.position is not None and columns.position in names
        if n_actions is None:
            n_actions = max(_n_actions_from(pf, columns.action) for pf in metas)
        if has_pos and n_positions is None:
            n_positions = max(_n_actions_from(pf, columns.position)  # type: ignore[arg-type]
                              for pf in metas)
        return cls(columns, int(n_actions), int(n_positions) if has_pos else None,  # type: ignore[arg-type]
                   columns.pscore is not None and columns.pscore in names,
                   slates and columns.slate_id is not None and columns.slate_id in names)

    @property
    def read_columns(self) -> list[str]:
        """The columns to read, in order."""
        c = self.columns
        want = [c.action, c.reward]
        for flag, name in ((self.has_pscore, c.pscore), (self.n_positions is not None,
                                                          c.position),
                           (self.has_slates, c.slate_id)):
            if flag:
                want.append(name)  # type: ignore[arg-type]
        return want + list(c.context)

    def batches(self, data: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch],
                batch_size: int | None = None) -> Iterator[LoggedFeedback]:
        """``data`` (record batches with :attr:`read_columns`) as :class:`LoggedFeedback`
        batches, a table cut into batches of at most ``batch_size`` rows."""
        if isinstance(data, pa.Table):
            data = data.to_batches(max_chunksize=batch_size)
        elif isinstance(data, pa.RecordBatch):
            data = [data]
        c = self.columns
        for rb in data:
            col = {name: rb.column(name).to_numpy(zero_copy_only=False)
                   for name in self.read_columns}
            yield LoggedFeedback(
                action=col[c.action], reward=col[c.reward],
                pscore=col[c.pscore] if self.has_pscore else None,  # type: ignore[index]
                n_actions=self.n_actions,
                position=(col[c.position]  # type: ignore[index]
                          if self.n_positions is not None else None),
                n_positions=self.n_positions,
                context=np.column_stack([col[k] for k in c.context]) if c.context else None,
                slate_id=col[c.slate_id] if self.has_slates else None)  # type: ignore[index]

    def read(self, path: str | os.PathLike[str], batch_size: int, *,
             row_groups: Sequence[int] | None = None) -> Iterator[LoggedFeedback]:
        """The rounds of one file (or of its ``row_groups``), ``batch_size`` at a time."""
        yield from self.batches(pq.ParquetFile(path).iter_batches(
            batch_size=batch_size, row_groups=None if row_groups is None else list(row_groups),
            columns=self.read_columns))


def iter_feedback_batches(path: str | os.PathLike[str], *, n_actions: int | None = None,
                          n_positions: int | None = None, batch_size: int = 1_000_000,
                          columns: FeedbackColumns = FeedbackColumns()
                          ) -> Iterator[LoggedFeedback]:
    """Yield the file's rounds as :class:`LoggedFeedback` batches of at most ``batch_size``."""
    layout = FeedbackLayout.of([path], columns, n_actions=n_actions, n_positions=n_positions)
    yield from layout.read(path, batch_size)


def feed(run: OffPolicyEvaluation, batches: Iterable[LoggedFeedback], target: BatchFn,
         reward_model: BatchFn | None = None, offset: int = 0) -> int:
    """Add ``batches`` (rounds ``offset ..`` of the log, in order) to ``run``, asking the
    target and the reward model for each batch; returns the offset after them."""
    for batch in batches:
        dist = target(batch, offset)
        q = None if reward_model is None else reward_model(batch, offset)
        run.update(batch, dist, q)
        offset += batch.n_rounds
    return offset


# the accumulators' fields OPEStatistics reads and writes; a change in reelpick.ope.estimate
# must show up here as a loud error, never as a silently wrong merge
_STAT_FIELDS = frozenset({"m", "ci", "B", "seed", "n", "shift", "total", "s1", "s2", "w1", "w2",
                          "has_weights", "boot_n", "boot_s"})
_DIAG_FIELDS = frozenset({"n", "p_min", "p_max", "w1", "w2", "w_max", "has_w", "count", "mass",
                          "all_seen", "unsupported_known", "known", "nonzero"})


def _fields(obj: Any, expected: frozenset[str], what: str) -> dict[str, Any]:
    have = vars(obj)
    if set(have) - {"boot_n", "boot_s"} != expected - {"boot_n", "boot_s"}:
        raise RuntimeError(f"reelpick.ope.{what} changed (fields {sorted(have)}); "
                           f"reelpick.ope.streaming.OPEStatistics must be updated to merge it")
    return have


def first_block_rows(action_dist: Any) -> int:
    """Rounds of the first block :meth:`OffPolicyEvaluation.update` takes for a target of this
    shape (``(rounds, actions[, positions])``; one row is enough): the mean of those rounds'
    statistics is each accumulator's shift, which every part of a log reduced apart must share
    (:func:`start_evaluation`)."""
    return _block_rows(np.asarray(action_dist))


def start_evaluation(run: OffPolicyEvaluation, shifts: dict[str, np.ndarray],
                     offset: int) -> OffPolicyEvaluation:
    """Prepare a fresh ``run`` to take rounds ``offset ..`` of a log whose statistics are
    shifted by ``shifts`` (per estimator): the bootstrap weights of round ``i`` are drawn for
    the global index ``i``. Its :meth:`OPEStatistics.of` then merges with the other parts'."""
    for name, acc in run.accs.items():
        acc.shift = np.array(shifts[name], dtype=np.float64)
        acc.n = offset
    return run


@dataclass
class OPEStatistics:
    """The sufficient statistics of an :class:`~reelpick.ope.OffPolicyEvaluation` over a
    contiguous run of rounds: what a block of a log reduces to, on any machine.

    ``stats``: per estimator, the :class:`~reelpick.ope.estimate.StatAccumulator` sums (a
    dict), or, when the intervals are clustered by slate, the
    :class:`~reelpick.ope.estimate.ClusterStatAccumulator` itself (its ``merge`` joins a slate
    cut between two blocks); ``diag``: the
    :class:`~reelpick.ope.estimate.DiagnosticsAccumulator` facts, with the
    ``(n_actions, n_positions)`` tables kept sparse: the flat indices of the (action, position)
    pairs this run never showed (``unseen``) and the target mass on them (``unseen_mass``) --
    the only cells the final diagnostics read. With 50k titles x 50 slots the dense tables are
    40 MB; once a block has shown most pairs its statistics are a few KB. ``merge`` is
    associative; call it in log order (the sums are then added in the local run's order).

    Every part must use the same shifts (:func:`start_evaluation`); :meth:`into` loads the
    merged statistics into a fresh run, whose ``results()`` finalises.
    """

    stats: dict[str, Any]
    diag: dict[str, Any]

    @classmethod
    def of(cls, run: OffPolicyEvaluation, offset: int = 0) -> OPEStatistics:
        """The statistics of ``run``, which took rounds ``offset ..`` (see
        :func:`start_evaluation`)."""
        stats: dict[str, Any] = {}
        for name, acc in run.accs.items():
            if type(acc) is not StatAccumulator:   # clustered: the accumulator merges itself
                if not hasattr(acc, "merge"):
                    raise RuntimeError(f"reelpick.ope.{type(acc).__name__} has no merge(); "
                                       f"OPEStatistics cannot combine it")
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

    def merge(self, later: OPEStatistics) -> OPEStatistics:
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
            "known": a["known"] or b["known"], "nonzero": a["nonzero"] + b["nonzero"],
        }
        return OPEStatistics(stats, diag)

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
    layout = FeedbackLayout.of([path], columns, n_actions=n_actions, slates=cluster == "slate")
    batches = layout.read(path, batch_size)
    first = next(batches, None)
    if first is None:
        raise ValueError(f"{path}: the file has no rows")
    dist = target(first, 0)
    run = OffPolicyEvaluation(estimators, n_actions=first.n_actions,
                              n_positions=_n_positions(first, dist), ci=ci, alpha=alpha,
                              n_bootstrap=n_bootstrap, random_state=random_state, cluster=cluster)
    run.update(first, dist, None if reward_model is None else reward_model(first, 0))
    feed(run, batches, target, reward_model, first.n_rounds)
    return run.results(stacklevel=2)
