"""The event log: a SQLite file in WAL mode written by one thread with group commit.

Durability contract
-------------------
:meth:`EventStore.submit_page` and :meth:`EventStore.submit_events` return a
:class:`concurrent.futures.Future` that completes only after the transaction holding the job has
committed, with ``PRAGMA synchronous=FULL`` (in WAL mode: the WAL is fsynced at every commit). The
HTTP handlers await that future before answering, so every 2xx means the data is on disk and
survives ``kill -9`` and power loss (with ``synchronous=NORMAL`` it survives ``kill -9`` only).
:meth:`EventStore.submit_pages_async` (and ``submit_page_async``), for callers in an event loop,
return an asyncio future with the same guarantee, which the writer completes, for every job of a
transaction of that loop, with one call into the loop.

Group commit
------------
Handlers put jobs on a queue; a single writer thread takes every job waiting (at most
``max_jobs``, optionally after ``delay_s``), runs them in **one** transaction and fsyncs once, then
completes all their futures. While one commit is flushing, the next batch accumulates, so under
load the number of fsyncs per second stays near ``1 / fsync time`` while throughput grows with
the batch. ``group_commit=False`` commits each job on its own (the baseline of the benchmark).

Tables
------
``pages``: one row per served page (``page_id`` primary key) with its context, policy, model
version and the slot arrays (titles and artworks ``|``-joined, numeric arrays as little-endian
blobs; ``reelpick logs export`` expands them to one row per slot). The decision id of slot ``s``
is ``f"{page_id}-{s}"``. A page row is ~8 kB, so the table is a rowid table (appended in
order) with ``page_id`` in its own index (the service's page ids are time-ordered, so that index
grows at its end too): keyed by the page id itself (``WITHOUT ROWID``, as logs written before
kept it), every insert rewrote a random leaf and its overflow pages, about twice the CPU per
page. Both layouts read the same. ``events``: one row per client
event (``event_id`` primary key, so a retried event is ignored: idempotent).

>>> import tempfile, pathlib
>>> store = EventStore(pathlib.Path(tempfile.mkdtemp()) / "log.sqlite3")
>>> store.start()
>>> store.submit_events([]).result().accepted
0
>>> store.close()
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    page_id TEXT PRIMARY KEY,
    ts INTEGER NOT NULL,
    member_id TEXT NOT NULL,
    device TEXT, country TEXT, hour INTEGER, day_of_week INTEGER,
    policy TEXT NOT NULL,
    model_version TEXT,
    n_slots INTEGER NOT NULL,
    row_labels TEXT NOT NULL,
    titles TEXT NOT NULL,
    artworks TEXT NOT NULL,
    row_index BLOB NOT NULL,
    position BLOB NOT NULL,
    propensity BLOB NOT NULL,
    artwork_propensity BLOB NOT NULL,
    explored BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    decision_id TEXT NOT NULL,
    page_id TEXT NOT NULL,
    slot INTEGER NOT NULL,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    watch_seconds REAL NOT NULL,
    received_ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_page ON events (page_id);
"""

EVENT_KINDS = ("impression", "play", "watch")
_ROW = "(" + ",".join("?" * 18) + ")"


class StoreClosedError(RuntimeError):
    """A job was submitted after :meth:`EventStore.close` (or the writer died)."""


class StoreWriteError(RuntimeError):
    """The transaction holding a job failed; nothing of the batch was committed."""


class UnknownDecisionError(ValueError):
    """An event names a decision id that no logged page has. ``index`` is its batch position."""

    def __init__(self, index: int, decision_id: str) -> None:
        self.index, self.decision_id = index, decision_id
        super().__init__(f"unknown decision_id {decision_id!r}: no served page has this slot")


_LABELS: dict[tuple[str, ...], str] = {}


def _labels_json(labels: tuple[str, ...]) -> str:
    """``json.dumps(list(labels))``, kept for the row labels seen (pages repeat them)."""
    out = _LABELS.get(labels)
    if out is None:
        out = json.dumps(list(labels))
        if len(_LABELS) >= 16_384:
            _LABELS.clear()
        _LABELS[labels] = out
    return out


@dataclass(frozen=True, eq=False)
class PageRecord:
    """One served page: context, policy and the per-slot arrays (all of length ``n_slots``)."""

    page_id: str
    timestamp: int
    member_id: str
    device: str
    country: str
    hour: int
    day_of_week: int
    policy: str
    model_version: str
    row_labels: tuple[str, ...]
    titles: Sequence[str]
    artworks: Sequence[str]
    row_index: np.ndarray
    position: np.ndarray
    propensity: np.ndarray
    artwork_propensity: np.ndarray
    explored: np.ndarray

    def decision_id(self, slot: int) -> str:
        return f"{self.page_id}-{slot}"

    def row(self) -> tuple[Any, ...]:
        return (
            self.page_id, int(self.timestamp), self.member_id, self.device, self.country,
            int(self.hour), int(self.day_of_week), self.policy, self.model_version,
            len(self.titles), _labels_json(tuple(self.row_labels)), "|".join(self.titles),
            "|".join(self.artworks),
            np.asarray(self.row_index, dtype="<i4").tobytes(),
            np.asarray(self.position, dtype="<i4").tobytes(),
            np.asarray(self.propensity, dtype="<f8").tobytes(),
            np.asarray(self.artwork_propensity, dtype="<f8").tobytes(),
            np.asarray(self.explored, dtype="u1").tobytes(),
        )


@dataclass(frozen=True)
class EventRecord:
    """One client event about one decision (slot of a served page)."""

    event_id: str
    decision_id: str
    kind: str
    timestamp: int
    watch_seconds: float = 0.0


@dataclass(frozen=True)
class EventsResult:
    """What a committed batch of events did: ``accepted`` new events, ``duplicates`` ignored."""

    accepted: int
    duplicates: int


class _Job:
    """A page or a batch of events, and who learns of its commit: a concurrent future, or an
    asyncio future and its loop (:meth:`EventStore.submit_page_async`)."""

    __slots__ = ("kind", "payload", "future", "loop", "waiter")

    def __init__(self, kind: str, payload: Any, loop: asyncio.AbstractEventLoop | None = None,
                 waiter: asyncio.Future[Any] | None = None) -> None:
        self.kind, self.payload = kind, payload  # kind: "page" | "pages" | "events"
        self.future: Future[Any] | None = Future() if waiter is None else None
        self.loop, self.waiter = loop, waiter


def _settle(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """In the event loop: complete the asyncio futures of a committed (or failed) batch."""
    for waiter, result, exc in outcomes:
        if not waiter.done():
            if exc is None:
                waiter.set_result(result)
            else:
                waiter.set_exception(exc)


def _complete(jobs: Sequence[_Job], results: Sequence[Any]) -> None:
    """Complete each job's future with its result (an exception instance fails it); the asyncio
    futures of one loop with one call into that loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for job, res in zip(jobs, results):
        exc = res if isinstance(res, BaseException) else None
        if job.future is not None:
            # A caller may have cancelled its future (a client that went away): what was
            # committed stays committed, and the writer thread must not die on it.
            try:
                if exc is None:
                    job.future.set_result(res)
                else:
                    job.future.set_exception(exc)
            except InvalidStateError:
                pass
        elif job.loop is not None:
            by_loop.setdefault(job.loop, []).append((job.waiter, None if exc else res, exc))
    for loop, outcomes in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, outcomes)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass


_STOP = object()


def split_decision_id(decision_id: str) -> tuple[str, int] | None:
    """``"<page_id>-<slot>"`` -> ``(page_id, slot)``; ``None`` when it has not that shape."""
    page, sep, slot = decision_id.rpartition("-")
    if not sep or not page or not slot.isdigit() or len(slot) > 6:
        return None
    return page, int(slot)


class GroupCommitWriter:
    """The writer thread of the event logs (SQLite here, PostgreSQL in
    :mod:`reelpick.serve.pgstore`): handlers put jobs on a queue; one thread takes every job
    waiting (at most ``max_jobs``, optionally after ``delay_s``), hands the batch to
    ``_commit`` (one transaction) and counts the commits. Subclasses give ``_commit``,
    ``_close_connection`` and may filter a taken batch (``_taken``); jobs that raced in after
    the stop fail with :class:`StoreClosedError` (``_fail_late``)."""

    _thread_name = "reelpick-log-writer"

    def _init_writer(self, group_commit: bool, max_jobs: int, delay_s: float,
                     on_commit: Callable[[int, float], None] | None) -> None:
        if max_jobs < 1:
            raise ValueError(f"max_jobs: must be >= 1, got {max_jobs}")
        self.group_commit, self.max_jobs, self.delay_s = group_commit, max_jobs, delay_s
        self.on_commit = on_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()
        #: Counters read by the metrics endpoint and the tests.
        self.transactions = 0
        self.jobs_committed = 0
        self.failed_transactions = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._thread_name,
                                                daemon=True)
                self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Commit every job already submitted, stop the writer and close the log."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
        self._close_connection()

    def _close_connection(self) -> None:
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        return not self._closed and self._thread is not None and self._thread.is_alive()

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def _submit(self, job: Any) -> Any:
        if self._closed or self._thread is None:
            raise StoreClosedError("the event log is closed")
        self._queue.put(job)
        return job.future

    # ------------------------------------------------------------------ writer
    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[Any] = [first]
            if self.group_commit:
                if self.delay_s > 0:
                    time.sleep(self.delay_s)
                while len(batch) < self.max_jobs:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    batch.append(nxt)
            batch = self._taken(batch)
            if batch:
                self._commit(batch)
        # fail whatever raced in after the stop marker
        late: list[Any] = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                late.append(job)
        self._fail_late(late)

    def _taken(self, batch: list[Any]) -> list[Any]:
        """The jobs of a taken batch to commit (all of them here)."""
        return batch

    def _fail_late(self, jobs: list[Any]) -> None:
        _complete(jobs, [StoreClosedError("the event log is closed")] * len(jobs))

    def _commit(self, batch: list[Any]) -> None:
        raise NotImplementedError

    def _committed(self, n_jobs: int, t0: float) -> None:
        """Count a commit of ``n_jobs`` jobs begun at ``t0`` and report it to ``on_commit``."""
        self.transactions += 1
        self.jobs_committed += n_jobs
        seconds = time.perf_counter() - t0
        if self.on_commit is not None:
            try:
                self.on_commit(n_jobs, seconds)
            except Exception:  # noqa: BLE001 - metrics must never fail a commit
                pass


class EventStore(GroupCommitWriter):
    """The SQLite event log with a group-commit writer thread (see the module docstring).

    Parameters
    ----------
    path : the database file (its folder is created).
    group_commit : batch every waiting job into one transaction (``False``: one per job).
    max_jobs : most jobs in one transaction.
    delay_s : wait this long after the first job of a batch for more (0: take what is queued).
    synchronous : ``"FULL"`` (fsync at every commit) or ``"NORMAL"``.
    on_commit : called by the writer with ``(n_jobs, seconds)`` after every commit.
    """

    def __init__(self, path: str | Path, *, group_commit: bool = True, max_jobs: int = 1024,
                 delay_s: float = 0.0, synchronous: str = "FULL",
                 on_commit: Callable[[int, float], None] | None = None) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous: use 'FULL' or 'NORMAL', got {synchronous!r}")
        self._init_writer(group_commit, max_jobs, delay_s, on_commit)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.executescript(SCHEMA)
        self.integrity = str(self._conn.execute("PRAGMA quick_check").fetchone()[0])

    def _close_connection(self) -> None:
        self._conn.close()

    # ------------------------------------------------------------------ submit
    def submit_page(self, page: PageRecord) -> Future[None]:
        """Log a served page; the future completes once it is durable."""
        return self._submit(_Job("page", page))  # type: ignore[return-value]

    def submit_page_async(self, page: PageRecord) -> asyncio.Future[None]:
        """:meth:`submit_page` for a caller in a running event loop: an asyncio future of that
        loop, completed once the page is durable (raises :class:`StoreClosedError` now, or
        fails with :class:`StoreWriteError`, like the other). The writer completes a
        transaction's futures with one call into the loop, instead of one thread-safe future
        and one wake-up per page."""
        return self.submit_pages_async([page])

    def submit_pages_async(self, pages: Sequence[PageRecord]) -> asyncio.Future[None]:
        """:meth:`submit_page_async` for several pages: one job, committed in one transaction,
        one future for them all."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._submit(_Job("pages", list(pages), loop, waiter))
        return waiter

    def submit_events(self, events: Sequence[EventRecord]) -> Future[EventsResult]:
        """Log client events (all or none); the future completes once they are durable, or
        fails with :class:`UnknownDecisionError` (nothing of this batch written)."""
        return self._submit(_Job("events", list(events)))  # type: ignore[return-value]

    def _commit(self, batch: list[_Job]) -> None:
        t0 = time.perf_counter()
        results: list[Any] = []
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            pages: list[PageRecord] = []
            for job in batch:
                if job.kind == "page":
                    pages.append(job.payload)
                    results.append(None)
                elif job.kind == "pages":
                    pages += job.payload
                    results.append(None)
                else:
                    if pages:  # in order: an event may name a page of this batch
                        self._insert_pages(conn, pages)
                        pages = []
                    results.append(self._insert_events(conn, job.payload))
            if pages:
                self._insert_pages(conn, pages)
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - every job of the batch must learn of it
            self.failed_transactions += 1
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            err = StoreWriteError(f"event log write failed: {exc}")
            _complete(batch, [err] * len(batch))
            return
        self._committed(len(batch), t0)
        _complete(batch, results)

    @staticmethod
    def _insert_pages(conn: sqlite3.Connection, pages: list[PageRecord]) -> None:
        # one statement for up to 512 pages (18 values each, under SQLite's 32,766): the
        # writer releases and retakes the GIL once, not once a row as ``executemany`` does
        for at in range(0, len(pages), 512):
            chunk = pages[at:at + 512]
            conn.execute("INSERT INTO pages VALUES " + ",".join([_ROW] * len(chunk)),
                         [v for p in chunk for v in p.row()])

    @staticmethod
    def _insert_events(conn: sqlite3.Connection, events: list[EventRecord]
                       ) -> EventsResult | UnknownDecisionError:
        if not events:
            return EventsResult(0, 0)
        parsed = [split_decision_id(e.decision_id) for e in events]
        for i, p in enumerate(parsed):
            if p is None:
                return UnknownDecisionError(i, events[i].decision_id)
        pages = sorted({p[0] for p in parsed if p is not None})
        slots: dict[str, int] = {}
        for k in range(0, len(pages), 500):
            chunk = pages[k:k + 500]
            marks = ",".join("?" * len(chunk))
            q = f"SELECT page_id, n_slots FROM pages WHERE page_id IN ({marks})"
            slots.update(conn.execute(q, chunk).fetchall())
        for i, p in enumerate(parsed):
            assert p is not None
            if p[1] >= slots.get(p[0], 0):
                return UnknownDecisionError(i, events[i].decision_id)
        now = time.time()
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?)",
            [(e.event_id, e.decision_id, p[0], p[1], e.kind, int(e.timestamp),
              float(e.watch_seconds), now) for e, p in zip(events, parsed) if p is not None])
        accepted = conn.total_changes - before
        return EventsResult(accepted, len(events) - accepted)


def integrity_check(path: str | Path) -> str:
    """``PRAGMA integrity_check`` of a log file (``"ok"`` when sound), opened read-only."""
    conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()
