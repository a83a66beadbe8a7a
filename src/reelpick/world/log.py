"""A simulation's logs: arrays while simulating, reelpick's schema tables on demand.

``SimulationLog`` keeps everything as arrays (fast) and builds the tables of
:mod:`reelpick.data.schema` on request, as pandas DataFrames (:meth:`SimulationLog.impressions`,
...) or straight to Parquet (:meth:`SimulationLog.write`, chunk by chunk with dictionary-encoded
IDs; the files read back as plain columns). IDs: members ``m{i}``, titles ``t{i}``,
artworks ``t{i}-a{k}``, pages ``p{visit}`` and decisions ``p{visit}-{slot}``.

Extra (optional) columns beyond the schema: impressions ``artwork_propensity`` and
``experiment_cell`` (the instrument); interactions ``decision_id`` (null for organic plays found
without the page) and ``source`` (``page`` or ``organic``).
The hidden binge mood and the true probabilities are only in :meth:`SimulationLog.truth`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reelpick.data.schema import DEVICES
from reelpick.decision.tables import LoggedPages

#: Impressions per chunk (and row group) when writing Parquet: bounds the memory of a write.
WRITE_CHUNK_ROWS = 1 << 20

#: Arrow allocations of the log's tables use the system allocator, which keeps freed memory for
#: the next chunk of a write; Arrow's default (mimalloc) returns it to the OS and faults fresh
#: pages in again, which is slow on some virtual machines.
_POOL = pa.system_memory_pool()

#: Columns whose values are (nearly) all distinct: written plain, not dictionary-encoded.
_PLAIN_COLUMNS = frozenset({"decision_id", "watch_seconds", "p_organic", "p_play", "uplift"})


@dataclass(frozen=True, eq=False)
class VisitLog:
    """Per visit ``(n_visits,)``: member, timestamp, device, country, hour, day_of_week, cell,
    mood (hidden) and the organic title (``-1`` = none)."""

    member: np.ndarray
    timestamp: np.ndarray
    device: np.ndarray
    country: np.ndarray
    hour: np.ndarray
    day_of_week: np.ndarray
    cell: np.ndarray
    mood: np.ndarray
    organic: np.ndarray


@dataclass(frozen=True, eq=False)
class ImpressionLog:
    """Per shown slot ``(n_impressions,)``: ``visit`` (index into the visit log), ``slot``, row,
    position, title, global artwork index, propensities, the sampled ``play`` and
    ``watch_seconds``, and the truth: ``p_organic``, ``p_play`` = P(play | shown here) and
    ``uplift`` = ``p_play - p_organic`` (the causal effect of this impression).

    From the simulator, in time order (visit, then slot) with compact dtypes
    (:data:`IMPRESSION_DTYPES`: int32 visits, titles and artworks, int16 slots, rows and
    positions, int8 plays, float64 propensities and truth)."""

    visit: np.ndarray
    slot: np.ndarray
    row_code: np.ndarray
    row_index: np.ndarray
    position: np.ndarray
    title: np.ndarray
    artwork: np.ndarray
    propensity: np.ndarray
    artwork_propensity: np.ndarray
    play: np.ndarray
    watch_seconds: np.ndarray
    p_organic: np.ndarray
    p_play: np.ndarray
    #: index into ``SimulationLog.sources`` of who made the page, ``-1`` when not recorded
    source_code: np.ndarray | None = None

    @property
    def uplift(self) -> np.ndarray:
        return self.p_play - self.p_organic

    def __len__(self) -> int:
        return len(self.visit)


#: Storage dtype of each impression column while simulating. Integer columns start narrow and
#: are widened by :class:`ImpressionBuffer` when a value does not fit; ``propensity`` and
#: ``artwork_propensity`` (logged) and the truth stay float64.
IMPRESSION_DTYPES: dict[str, np.dtype] = {
    "visit": np.dtype(np.int32), "slot": np.dtype(np.int16), "row_code": np.dtype(np.int16),
    "row_index": np.dtype(np.int16), "source_code": np.dtype(np.int16),
    "position": np.dtype(np.int16), "title": np.dtype(np.int32),
    "artwork": np.dtype(np.int32), "propensity": np.dtype(np.float64),
    "artwork_propensity": np.dtype(np.float64), "play": np.dtype(np.int8),
    "watch_seconds": np.dtype(np.float64), "p_organic": np.dtype(np.float64),
    "p_play": np.dtype(np.float64),
}


class ImpressionBuffer:
    """The columns of an :class:`ImpressionLog`, allocated once and filled page batch by page
    batch (no list of parts and no concatenation: on machines where fresh memory is slow to
    fault in, the copies cost as much as the simulation).

    ``capacity`` is a hint (e.g. visits x slots); the buffer grows by doubling when a batch
    does not fit. Untouched capacity costs address space only. Integer columns use the narrow
    dtypes of :data:`IMPRESSION_DTYPES` and are widened (once) when a value falls outside them.
    ``source_code`` is only stored once some page names its maker; until then it reads as -1.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(int(capacity), 1)
        self.n = 0
        self.arrays: dict[str, np.ndarray] = {
            k: np.empty(self.capacity, dtype=dt) for k, dt in IMPRESSION_DTYPES.items()
            if k != "source_code"}

    def _reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= self.capacity:
            return
        cap = max(need, 2 * self.capacity)
        for k, a in self.arrays.items():
            grown = np.empty(cap, dtype=a.dtype)
            grown[: self.n] = a[: self.n]
            self.arrays[k] = grown
        self.capacity = cap

    def _target(self, name: str, values: np.ndarray) -> np.ndarray:
        """The column ``name``, widened first when ``values`` do not fit its dtype."""
        if name not in self.arrays:  # source_code: created on first use, -1 so far
            self.arrays[name] = np.empty(self.capacity, dtype=IMPRESSION_DTYPES[name])
            self.arrays[name][: self.n] = -1
        arr = self.arrays[name]
        if values.dtype.kind in "iub" and not np.can_cast(values.dtype, arr.dtype) \
                and values.size:
            lo, hi = int(values.min()), int(values.max())
            dt = arr.dtype
            while lo < np.iinfo(dt).min or hi > np.iinfo(dt).max:
                dt = np.dtype(f"int{dt.itemsize * 16}")
            if dt != arr.dtype:
                arr = self.arrays[name] = arr.astype(dt)
        return arr

    def append(self, shown: np.ndarray, columns: dict[str, np.ndarray | None]) -> None:
        """Append the shown slots of one page batch, in row-major order (visit, then slot).

        ``shown (n, S)`` bool; every value in ``columns`` is broadcastable to ``(n, S)`` (one
        value per slot, per visit or per page); only the entries where ``shown`` are kept.
        ``None`` marks a column not recorded for this batch (``source_code``: -1).
        """
        n, s = shown.shape
        full = bool(shown.all())
        k = n * s if full else int(np.count_nonzero(shown))
        self._reserve(k)
        lo = self.n
        for name, values in columns.items():
            if values is None:  # not recorded for this batch (source_code): -1
                if name not in self.arrays:
                    continue
                values = np.asarray(np.int8(-1))
            values = np.asarray(values)
            dst = self._target(name, values)[lo: lo + k]
            if full:  # assign in place through a (n, S) view: no temporary
                dst.reshape(n, s)[...] = values
            else:
                dst[...] = np.broadcast_to(values, (n, s))[shown]
        self.n += k

    def finish(self) -> dict[str, np.ndarray]:
        """The filled part of every column (views), ``source_code`` -1 when never given."""
        out = {k: a[: self.n] for k, a in self.arrays.items()}
        if "source_code" not in out:  # one shared -1, not a column of them
            out["source_code"] = np.broadcast_to(np.int16(-1), (self.n,))
        return out


@dataclass(frozen=True, eq=False)
class SimulationLog:
    """The result of :meth:`reelpick.world.World.simulate`.

    ``visits``, ``shown`` (impressions) and ``organic_plays`` (visit, title, watch_seconds of
    organic plays of titles not on the page) are arrays; the table methods build schema tables.
    """

    policy: str
    model_version: str
    visits: VisitLog
    shown: ImpressionLog
    organic_visit: np.ndarray
    organic_title: np.ndarray
    organic_watch: np.ndarray
    row_labels: tuple[str, ...]
    countries: tuple[str, ...]
    artwork_rank: np.ndarray  # global artwork index -> variant number within its title
    sources: tuple[str, ...] = ()  # page makers, e.g. the winning model's name

    @property
    def n_impressions(self) -> int:
        return len(self.shown)

    @property
    def n_visits(self) -> int:
        return len(self.visits.member)

    # ------------------------------------------------------------------ arrow tables
    # Tables are built from the arrays one range of impressions at a time. IDs and labels are
    # dictionary arrays over small vocabularies built once per log (members, titles, artworks,
    # row labels, devices, ...): :meth:`write` hands them to Parquet as they are (written
    # dictionary-encoded without hashing a string per row, read back as plain strings), the
    # public ``*_arrow`` tables decode them to plain strings.

    @cached_property
    def _vocab(self) -> dict[str, pa.Array]:
        """String vocabularies that the ID and label columns index into."""
        s, v = self.shown, self.visits
        n_titles = 1 + max(int(s.title.max(initial=-1)), int(self.organic_title.max(initial=-1)))
        title_of = np.zeros(len(self.artwork_rank), dtype=np.int64)
        title_of[s.artwork] = s.title  # every shown artwork's title; others are never indexed
        slots = pc.cast(pa.array(np.arange(1 + int(s.slot.max(initial=0)))), pa.string())
        return {
            "member": _id_strings("m", np.arange(1 + int(v.member.max(initial=-1)))),
            "title": _id_strings("t", np.arange(n_titles)),
            "artwork": pc.binary_join_element_wise(  # t{title}-a{variant}
                _id_strings("t", title_of), pc.cast(pa.array(self.artwork_rank), pa.string()),
                "-a"),
            "page": _id_strings("p", np.arange(self.n_visits)),
            "slot": slots,
            "row": pa.array(self.row_labels, pa.string()),
            "source": pa.array(self.sources, pa.string()),
            "country": pa.array(self.countries, pa.string()),
            "device": pa.array(DEVICES, pa.string()),
            "policy": pa.array([self.policy], pa.string()),
            "model_version": pa.array([self.model_version], pa.string()),
            "play_source": pa.array(["page", "organic"], pa.string()),
        }

    @cached_property
    def _has_page_source(self) -> bool:
        code = self.shown.source_code
        return code is not None and bool((code >= 0).any())

    def _coded(self, vocab: str, codes: np.ndarray, mask: np.ndarray | None = None
               ) -> pa.DictionaryArray:
        """``codes`` (-> int32) as a dictionary array over ``self._vocab[vocab]``."""
        return pa.DictionaryArray.from_arrays(
            pa.array(codes.astype(np.int32, copy=False), mask=mask, memory_pool=_POOL),
            self._vocab[vocab])

    def _decisions(self, lo: int, hi: int) -> tuple[pa.Array, pa.Array]:
        """``decision_id`` (``p{visit}-{slot}``) and ``page_id`` of impressions ``lo:hi``; the
        page IDs as a dictionary over the pages of the range."""
        visit = self.shown.visit[lo:hi]
        first = int(visit.min(initial=0))
        pages = self._vocab["page"].slice(first, int(visit.max(initial=0)) - first + 1)
        local = pa.array((visit - first).astype(np.int32, copy=False))
        slots = pa.array(self.shown.slot[lo:hi])
        decision = pc.binary_join_element_wise(
            pc.take(pages, local, memory_pool=_POOL),
            pc.take(self._vocab["slot"], slots, memory_pool=_POOL), "-", memory_pool=_POOL)
        return decision, pa.DictionaryArray.from_arrays(local, pages)

    def _context_columns(self, visit: np.ndarray) -> dict[str, pa.Array]:
        v = self.visits
        return {
            "device": self._coded("device", v.device[visit]),
            "country": self._coded("country", v.country[visit]),
            "hour": pa.array(v.hour[visit].astype(np.int64)),
            "day_of_week": pa.array(v.day_of_week[visit].astype(np.int64)),
        }

    def _impressions_part(self, lo: int, hi: int, ids: tuple[pa.Array, pa.Array]) -> pa.Table:
        s, v = self.shown, self.visits
        visit = s.visit[lo:hi]
        zeros = np.zeros(hi - lo, dtype=np.int32)
        cols = {
            "decision_id": ids[0],
            "timestamp": pa.array(v.timestamp[visit].astype(np.int64, copy=False)),
            "member_id": self._coded("member", v.member[visit]),
            "row": self._coded("row", s.row_code[lo:hi]),
            "row_index": pa.array(s.row_index[lo:hi].astype(np.int64)),
            "position": pa.array(s.position[lo:hi].astype(np.int64)),
            "title_id": self._coded("title", s.title[lo:hi]),
            "policy": self._coded("policy", zeros),
            "propensity": pa.array(s.propensity[lo:hi].astype(np.float64, copy=False)),
            "page_id": ids[1],
            "artwork_id": self._coded("artwork", s.artwork[lo:hi]),
            "model_version": self._coded("model_version", zeros),
            **self._context_columns(visit),
            "artwork_propensity": pa.array(
                s.artwork_propensity[lo:hi].astype(np.float64, copy=False)),
            "experiment_cell": pa.array(v.cell[visit].astype(np.int64)),
        }
        if self._has_page_source:
            code = np.asarray(cast(np.ndarray, s.source_code)[lo:hi])  # set: page source
            cols["page_source"] = self._coded("source", np.maximum(code, 0), mask=code < 0)
        return pa.table(cols)

    def _outcomes_part(self, lo: int, hi: int, ids: tuple[pa.Array, pa.Array]) -> pa.Table:
        s = self.shown
        return pa.table({
            "decision_id": ids[0],
            "play": pa.array(s.play[lo:hi].astype(np.int64)),
            "timestamp": pa.array(self._play_ts(s.visit[lo:hi], s.slot[lo:hi])),
            "watch_seconds": pa.array(s.watch_seconds[lo:hi].astype(np.float64, copy=False)),
        })

    def _truth_part(self, lo: int, hi: int, ids: tuple[pa.Array, pa.Array]) -> pa.Table:
        s = self.shown
        p_organic = s.p_organic[lo:hi].astype(np.float64, copy=False)
        p_play = s.p_play[lo:hi].astype(np.float64, copy=False)
        return pa.table({
            "decision_id": ids[0],
            "mood": pa.array(self.visits.mood[s.visit[lo:hi]].astype(np.int64)),
            "p_organic": pa.array(p_organic),
            "p_play": pa.array(p_play),
            "uplift": pa.array(p_play - p_organic),
        })

    def _per_impression(self, part: Callable[..., pa.Table]) -> pa.Table:
        """One of the per-impression tables, whole, with plain string columns."""
        return _decode(part(0, self.n_impressions, self._decisions(0, self.n_impressions)))

    def impressions_arrow(self) -> pa.Table:
        return self._per_impression(self._impressions_part)

    def outcomes_arrow(self) -> pa.Table:
        return self._per_impression(self._outcomes_part)

    def _play_ts(self, visit: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """Plays from the page start 60 s + 10 s per slot after the visit; organic ones 30 s."""
        return self.visits.timestamp[visit].astype(np.int64) + 60 + 10 * slot.astype(np.int64)

    def _interactions(self) -> pa.Table:
        s, v = self.shown, self.visits
        hit = np.flatnonzero(s.play)
        visit = np.concatenate([s.visit[hit], self.organic_visit])
        title = np.concatenate([s.title[hit], self.organic_title])
        ts = np.concatenate([self._play_ts(s.visit[hit], s.slot[hit]),
                             v.timestamp[self.organic_visit].astype(np.int64) + 30])
        watch = np.concatenate([s.watch_seconds[hit], self.organic_watch])
        order = np.lexsort((title, ts))
        visit, title, ts, watch = visit[order], title[order], ts[order], watch[order]
        from_page = np.concatenate([np.ones(hit.size, bool),
                                    np.zeros(self.organic_visit.size, bool)])[order]
        dec_slot = np.concatenate([s.slot[hit], np.zeros(self.organic_visit.size, np.int64)])[
            order]
        dec = pc.binary_join_element_wise(
            pc.take(self._vocab["page"], pa.array(visit), memory_pool=_POOL),
            pc.take(self._vocab["slot"], pa.array(dec_slot), memory_pool=_POOL), "-",
            memory_pool=_POOL)
        dec = pc.if_else(pa.array(from_page), dec, pa.nulls(len(visit), pa.string()),
                         memory_pool=_POOL)
        return pa.table({
            "member_id": self._coded("member", v.member[visit]),
            "title_id": self._coded("title", title),
            "timestamp": pa.array(ts),
            "watch_seconds": pa.array(watch.astype(np.float64)),
            **self._context_columns(visit),
            "decision_id": dec,
            "source": self._coded("play_source", (~from_page).astype(np.int32)),
        })

    def interactions_arrow(self) -> pa.Table:
        return _decode(self._interactions())

    def truth_arrow(self) -> pa.Table:
        """Hidden truth per impression: mood, P(organic), P(play | shown here), uplift."""
        return self._per_impression(self._truth_part)

    # ------------------------------------------------------------------ the shared contract
    def logged_pages(self, *, n_titles: int | None = None, n_rows: int | None = None,
                     n_positions: int | None = None) -> LoggedPages:
        """The observable part of the log as :class:`~reelpick.decision.tables.LoggedPages`
        (what every reader outside the world learns from), built from the arrays: page ``v``
        is visit ``v`` (``page_id`` ``p{v}``), members ``m{i}``, titles ``t{j}`` (``n_titles``
        of them; default: the largest logged index + 1), ``artwork`` the variant within its
        title. The same arrays :func:`~reelpick.decision.tables.logged_pages` reads from
        :meth:`impressions` and :meth:`outcomes` (visits are in time order); organic plays
        and the truth are not part of it."""
        s, v = self.shown, self.visits
        T = n_titles if n_titles is not None else 1 + max(int(s.title.max(initial=-1)),
                                                          int(self.organic_title.max(initial=-1)))
        P = int(n_positions) if n_positions is not None else int(s.position.max(initial=0)) + 1
        R = int(n_rows) if n_rows is not None else int(s.row_index.max(initial=0)) + 1
        n = self.n_visits
        row_index, position = s.row_index.astype(np.int64), s.position.astype(np.int64)
        return LoggedPages(
            page_id=np.array([f"p{i}" for i in range(n)], dtype=object),
            member_id=np.array([f"m{i}" for i in v.member], dtype=object),
            timestamp=v.timestamp.astype(np.int64), device=v.device.astype(np.int64),
            country=v.country.astype(np.int64), hour=v.hour.astype(np.int64),
            day_of_week=v.day_of_week.astype(np.int64), cell=v.cell.astype(np.int64),
            policy=np.full(n, self.policy, dtype=object),
            model_version=np.full(n, self.model_version, dtype=object),
            visit=s.visit.astype(np.int64), title=s.title.astype(np.int64),
            artwork=self.artwork_rank[s.artwork].astype(np.int64), row_index=row_index,
            position=position, slot=row_index * P + position,
            propensity=s.propensity.astype(float),
            artwork_propensity=s.artwork_propensity.astype(float), play=s.play.astype(np.int8),
            watch_seconds=s.watch_seconds.astype(float),
            row_label=np.asarray(self.row_labels, dtype=object)[s.row_code],
            title_ids=tuple(f"t{j}" for j in range(T)), countries=tuple(self.countries),
            n_rows=R, n_positions=P)

    # ------------------------------------------------------------------ pandas
    def impressions(self) -> pd.DataFrame:
        """Impressions table (schema ``IMPRESSIONS``, plus ``artwork_propensity``,
        ``experiment_cell``)."""
        return self.impressions_arrow().to_pandas()

    def outcomes(self) -> pd.DataFrame:
        """Outcomes table (schema ``OUTCOMES``), one row per impression."""
        return self.outcomes_arrow().to_pandas()

    def interactions(self) -> pd.DataFrame:
        """Every play, from the page or organic (schema ``INTERACTIONS``), time-ordered."""
        return self.interactions_arrow().to_pandas()

    def truth(self) -> pd.DataFrame:
        return self.truth_arrow().to_pandas()

    def write(self, out: str | Path, *, truth: bool = False,
              chunk_rows: int = WRITE_CHUNK_ROWS) -> dict[str, Path]:
        """Write impressions, outcomes and interactions (and ``truth`` if asked) as Parquet.

        The per-impression tables are built and written ``chunk_rows`` impressions at a time
        (one row group each), so memory stays bounded by a chunk, not the log. ID and label
        columns are written dictionary-encoded; every file reads back with plain string
        columns (no Arrow schema is stored), exactly as the ``*_arrow`` tables.
        """
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) \
                or chunk_rows < 1:
            raise ValueError(f"chunk_rows: must be a positive integer, got {chunk_rows!r}")
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        parts = {"impressions": self._impressions_part, "outcomes": self._outcomes_part}
        if truth:
            parts["truth"] = self._truth_part
        paths = {name: out / f"{name}.parquet"
                 for name in ("impressions", "outcomes", "interactions", *parts)}
        n = self.n_impressions
        with contextlib.ExitStack() as stack:
            writers: dict[str, pq.ParquetWriter] = {}
            for lo in range(0, max(n, 1), int(chunk_rows)):
                hi = min(lo + int(chunk_rows), n)
                ids = self._decisions(lo, hi)
                for name, part in parts.items():
                    table = part(lo, hi, ids)
                    if name not in writers:
                        writers[name] = stack.enter_context(pq.ParquetWriter(
                            paths[name], table.schema, **_parquet_options(table.schema)))
                    writers[name].write_table(table, row_group_size=max(hi - lo, 1))
        table = self._interactions()
        pq.write_table(table, paths["interactions"], **_parquet_options(table.schema))
        return paths


def _parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """Writer options: snappy; dictionary encoding except for near-unique columns; statistics
    except for the dictionary-typed ID and label columns (min/max of those costs a third of the
    write); no stored Arrow schema, so that dictionary columns read back as plain strings."""
    return {"compression": "snappy", "store_schema": False, "memory_pool": _POOL,
            "use_dictionary": [f.name for f in schema if f.name not in _PLAIN_COLUMNS],
            "write_statistics": [f.name for f in schema if not pa.types.is_dictionary(f.type)]}


def _id_strings(prefix: str, idx: np.ndarray) -> pa.Array:
    """``prefix`` followed by each index in decimal, e.g. ``m0, m1, ...``."""
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(idx), pa.string()), "")


def _decode(table: pa.Table) -> pa.Table:
    """``table`` with every dictionary column decoded to plain values."""
    cols = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c
            for c in table.columns]
    return pa.table(cols, names=table.column_names)
