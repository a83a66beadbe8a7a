"""The event log in PostgreSQL: the same interface and guarantee as the SQLite log, shared by
every process and machine that serves (several uvicorn workers, Ray Serve replicas).

Chosen by ``REELPICK_EVENT_LOG=postgresql://user@host:port/db`` (``Settings.event_log``); the
default stays the SQLite file of :mod:`reelpick.serve.store`. Needs ``psycopg`` (the ``ray``
extra installs it); it is imported only when this log is opened.

Durability contract
-------------------
Exactly as :class:`~reelpick.serve.store.EventStore`: :meth:`PostgresEventStore.submit_page` and
:meth:`~PostgresEventStore.submit_events` return a future that completes only after the
transaction holding the job has **committed** with ``synchronous_commit = on`` (set on the
session, whatever the server's default), i.e. after the server flushed the commit record of its
WAL to disk. The handlers await it, so a 2xx means the data survives ``kill -9`` of the service
and a crash of the database server (and, when the server runs with ``fsync = on``, power loss).
With a synchronous standby configured on the server, it is on the standby too.

Group commit
------------
One writer thread per process with one connection: it takes every waiting job (at most
``max_jobs``, optionally after ``delay_s``) and runs them in one transaction, so one WAL flush
covers them all; the database server also batches flushes across connections (its own group
commit), so N replicas with N writers do not cost N fsyncs per request. A job whose events name
an unknown decision fails alone (nothing of it is written); any other failure fails the whole
batch (503) and nothing of it is acknowledged. Deadlocks, serialisation failures and lost
connections are retried (``retries`` times, reconnecting; the transaction was rolled back or
its outcome is re-decided by the unique keys, so a retry never acknowledges anything that is
not committed).

Tables
------
The same columns as the SQLite log: ``pages`` (``page_id`` primary key; titles and artworks
``|``-joined, numeric slot arrays as little-endian ``bytea``) and ``events`` (``event_id``
primary key: ``INSERT .. ON CONFLICT (event_id) DO NOTHING`` makes a retried event a duplicate,
across processes too). Events are inserted in ``event_id`` order, so concurrent writers take
their index locks in one order. The schema is created at start-up under an advisory lock (several
replicas may start at once).

Export: :func:`export_pg_logs` (``reelpick logs export --event-log URL``) reads one snapshot
(``REPEATABLE READ``) and writes the same Parquet files as
:func:`reelpick.serve.export.export_logs`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from reelpick.serve.store import (
    EventRecord,
    EventsResult,
    GroupCommitWriter,
    PageRecord,
    StoreWriteError,
    UnknownDecisionError,
    _complete,
    _Job,
    split_decision_id,
)

if TYPE_CHECKING:
    import psycopg

    from reelpick.serve.export import ExportResult

log = logging.getLogger(__name__)

URL_SCHEMES = ("postgresql://", "postgres://")

PAGE_COLUMNS = ("page_id", "ts", "member_id", "device", "country", "hour", "day_of_week",
                "policy", "model_version", "n_slots", "row_labels", "titles", "artworks",
                "row_index", "position", "propensity", "artwork_propensity", "explored")

SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    page_id text PRIMARY KEY,
    ts bigint NOT NULL,
    member_id text NOT NULL,
    device text, country text, hour integer, day_of_week integer,
    policy text NOT NULL,
    model_version text,
    n_slots integer NOT NULL,
    row_labels text NOT NULL,
    titles text NOT NULL,
    artworks text NOT NULL,
    row_index bytea NOT NULL,
    position bytea NOT NULL,
    propensity bytea NOT NULL,
    artwork_propensity bytea NOT NULL,
    explored bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    event_id text PRIMARY KEY,
    decision_id text NOT NULL,
    page_id text NOT NULL,
    slot integer NOT NULL,
    kind text NOT NULL,
    ts bigint NOT NULL,
    watch_seconds double precision NOT NULL,
    received_ts double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS events_page ON events (page_id);
"""
#: Any constant: serialises schema creation between processes starting together.
_SCHEMA_LOCK = 0x7265656C  # "reel"

_INSERT_PAGE = (f"INSERT INTO pages ({', '.join(PAGE_COLUMNS)}) VALUES "
                f"({', '.join(['%s'] * len(PAGE_COLUMNS))})")
_INSERT_EVENTS = (
    "INSERT INTO events (event_id, decision_id, page_id, slot, kind, ts, watch_seconds, "
    "received_ts) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int4[], "
    "%s::text[], %s::int8[], %s::float8[], %s::float8[]) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id")


def is_postgres_url(value: str | None) -> bool:
    return bool(value) and str(value).startswith(URL_SCHEMES)


def redact(url: str) -> str:
    """``url`` without its password (for messages and logs).

    >>> redact("postgresql://u:secret@db:5432/log")
    'postgresql://u:***@db:5432/log'
    """
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


def _connect(url: str, timeout: float) -> psycopg.Connection[Any]:
    import psycopg

    conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout)),
                           application_name="reelpick-log-writer")
    # a 2xx means committed and flushed: never inherit a server default of `off`/`local`
    conn.execute("SET synchronous_commit TO on")
    return conn


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the tables when missing (idempotent, safe when several processes start at once)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute(SCHEMA)


class PostgresEventStore(GroupCommitWriter):
    """The PostgreSQL event log with a group-commit writer thread (see the module docstring).

    Parameters
    ----------
    url : ``postgresql://user[:password]@host[:port]/dbname[?param=value]`` (libpq URL).
    group_commit : batch every waiting job into one transaction (``False``: one per job).
    max_jobs : most jobs in one transaction.
    delay_s : wait this long after the first job of a batch for more (0: take what is queued).
    on_commit : called by the writer with ``(n_jobs, seconds)`` after every commit.
    retries : attempts after a deadlock, serialisation failure or lost connection.
    connect_timeout : seconds for each (re)connection.
    """

    backend = "postgresql"
    _thread_name = "reelpick-pg-log-writer"

    def __init__(self, url: str, *, group_commit: bool = True, max_jobs: int = 1024,
                 delay_s: float = 0.0, on_commit: Callable[[int, float], None] | None = None,
                 retries: int = 2, connect_timeout: float = 5.0) -> None:
        if not is_postgres_url(url):
            raise ValueError(f"event log URL must start with postgresql://, got {redact(url)!r}")
        self.url = url
        self._init_writer(group_commit, max_jobs, delay_s, on_commit)
        self.retries, self.connect_timeout = retries, connect_timeout
        self._conn: psycopg.Connection[Any] | None = _connect(url, connect_timeout)
        ensure_schema(self._conn)
        #: ``"ok"`` when the schema is in place and commits are synchronous (checked at start).
        self.integrity = self._startup_check(self._conn)
        #: The server's ``fsync`` setting: with ``off`` a commit survives ``kill -9`` of the
        #: service and of the server, but not power loss.
        self.server_fsync = str(self._conn.execute("SHOW fsync").fetchone()[0])  # type: ignore[index]
        if self.server_fsync != "on":
            log.warning("PostgreSQL at %s runs with fsync=%s: commits do not survive power loss",
                        redact(url), self.server_fsync)
        self.retried_transactions = 0

    def __repr__(self) -> str:
        return f"PostgresEventStore({redact(self.url)!r})"

    @staticmethod
    def _startup_check(conn: psycopg.Connection[Any]) -> str:
        sync = str(conn.execute("SHOW synchronous_commit").fetchone()[0])  # type: ignore[index]
        if sync != "on":
            return f"synchronous_commit is {sync!r}, not 'on'"
        found = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name IN ('pages', 'events')")}
        return "ok" if found == {"pages", "events"} else f"missing tables: {found}"

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ submit
    def submit_page(self, page: PageRecord) -> Future[None]:
        """Log a served page; the future completes once it is committed."""
        return self._submit(_Job("page", page))

    def submit_events(self, events: Sequence[EventRecord]) -> Future[EventsResult]:
        """Log client events (all or none); the future completes once they are committed, or
        fails with :class:`UnknownDecisionError` (nothing of this batch written)."""
        return self._submit(_Job("events", list(events)))

    # ------------------------------------------------------------------ writer
    def _taken(self, batch: list[_Job]) -> list[_Job]:
        # A request cancelled before its job is taken (client gone; Ray Serve cancels on
        # disconnect) is skipped: nothing was answered. A taken job's future is RUNNING and
        # can no longer be cancelled, so completing it in _commit cannot fail.
        # (every job here carries a concurrent future: this store takes no asyncio waiters)
        return [j for j in batch if cast(Future[Any], j.future).set_running_or_notify_cancel()]

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._conn = _connect(self.url, self.connect_timeout)
        return self._conn

    def _commit(self, batch: list[_Job]) -> None:
        import psycopg
        from psycopg import errors

        t0 = time.perf_counter()
        results: list[Any] = []
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                conn = self._connection()
                with conn.transaction():
                    results = self._write(conn, batch)
                error = None
                break
            except (errors.DeadlockDetected, errors.SerializationFailure,
                    psycopg.OperationalError) as exc:
                # rolled back (or never reached the server): safe to run the batch again
                error = exc
                if attempt < self.retries:
                    self.retried_transactions += 1
                    time.sleep(0.05 * (attempt + 1))
            except Exception as exc:  # noqa: BLE001 - every job of the batch must learn of it
                error = exc
                break
        if error is not None:
            self.failed_transactions += 1
            err = StoreWriteError(f"event log write failed: {type(error).__name__}: {error}")
            _complete(batch, [err] * len(batch))
            return
        self._committed(len(batch), t0)
        _complete(batch, results)

    @staticmethod
    def _write(conn: psycopg.Connection[Any], batch: list[_Job]) -> list[Any]:
        """Every job of ``batch`` inside the caller's transaction; one result per job (``None``,
        an :class:`EventsResult` or the :class:`UnknownDecisionError` that rejects the job)."""
        results: list[Any] = [None] * len(batch)
        pages = [j.payload.row() for j in batch if j.kind == "page"]
        with conn.cursor() as cur:
            if pages:
                cur.executemany(_INSERT_PAGE, pages)
            ev_jobs = [(i, j.payload) for i, j in enumerate(batch) if j.kind == "events"]
            if not ev_jobs:
                return results
            parsed_jobs: list[tuple[int, list[EventRecord], list[tuple[str, int]]]] = []
            wanted: set[str] = set()
            for i, events in ev_jobs:
                parsed = [split_decision_id(e.decision_id) for e in events]
                bad = next((k for k, p in enumerate(parsed) if p is None), None)
                if bad is not None:
                    results[i] = UnknownDecisionError(bad, events[bad].decision_id)
                    continue
                parsed_jobs.append((i, events, parsed))  # type: ignore[arg-type]
                wanted.update(p[0] for p in parsed)  # type: ignore[index]
            slots: dict[str, int] = {}
            if wanted:
                cur.execute("SELECT page_id, n_slots FROM pages WHERE page_id = ANY(%s)",
                            (sorted(wanted),))
                slots = dict(cur.fetchall())
            owner: dict[str, int] = {}  # event id -> first job of the batch that carries it
            rows: list[tuple[Any, ...]] = []
            now = time.time()
            valid = []
            for i, events, pairs in parsed_jobs:
                bad = next((k for k, p in enumerate(pairs) if p[1] >= slots.get(p[0], 0)), None)
                if bad is not None:
                    results[i] = UnknownDecisionError(bad, events[bad].decision_id)
                    continue
                valid.append((i, events))
                for e, p in zip(events, pairs):
                    if e.event_id not in owner:
                        owner[e.event_id] = i
                        rows.append((e.event_id, e.decision_id, p[0], p[1], e.kind,
                                     int(e.timestamp), float(e.watch_seconds), now))
            inserted: set[str] = set()
            if rows:
                rows.sort(key=lambda r: r[0])  # one lock order for every writer
                cur.execute(_INSERT_EVENTS, [list(col) for col in zip(*rows)])
                inserted = {r[0] for r in cur.fetchall()}
            for i, events in valid:
                mine = {e.event_id for e in events if owner[e.event_id] == i}
                accepted = len(mine & inserted)
                results[i] = EventsResult(accepted, len(events) - accepted)
        return results


# ---------------------------------------------------------------------- checks and export
def pg_integrity_check(url: str) -> str:
    """``"ok"`` when the log is sound, else what is wrong: every ``pages``/``events`` index and
    heap verified with the ``amcheck`` extension when it can be used (it needs the rights to
    create it), every event naming a logged page's slot, and every page's arrays as long as its
    ``n_slots``."""
    import psycopg

    problems: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            have_amcheck = True
        except psycopg.Error:
            have_amcheck = False
        if have_amcheck:
            for table in ("pages", "events"):
                bad = conn.execute("SELECT count(*) FROM verify_heapam(%s::regclass)",
                                   (table,)).fetchone()
                if bad and bad[0]:
                    problems.append(f"{table}: {bad[0]} heap problems (verify_heapam)")
                for (index,) in conn.execute(
                        "SELECT indexrelid::regclass::text FROM pg_index "
                        "WHERE indrelid = %s::regclass", (table,)).fetchall():
                    try:
                        conn.execute("SELECT bt_index_check(%s::regclass, true)", (index,))
                    except psycopg.Error as exc:
                        problems.append(f"index {index}: {exc}")
        orphans = conn.execute(
            "SELECT count(*) FROM events e LEFT JOIN pages p USING (page_id) "
            "WHERE p.page_id IS NULL OR e.slot >= p.n_slots OR e.slot < 0").fetchone()
        if orphans and orphans[0]:
            problems.append(f"{orphans[0]} events name no logged slot")
        short = conn.execute(
            "SELECT count(*) FROM pages WHERE length(row_index) <> 4 * n_slots "
            "OR length(position) <> 4 * n_slots OR length(propensity) <> 8 * n_slots "
            "OR length(artwork_propensity) <> 8 * n_slots OR length(explored) <> n_slots"
        ).fetchone()
        if short and short[0]:
            problems.append(f"{short[0]} pages with arrays of the wrong length")
    return "ok" if not problems else "; ".join(problems)


def export_pg_logs(url: str, out: str | Path, *, chunk_pages: int = 5_000) -> ExportResult:
    """Write ``impressions.parquet`` and ``outcomes.parquet`` into ``out`` from a PostgreSQL
    log: the same files, columns and validation as
    :func:`reelpick.serve.export.export_logs`, read from one snapshot (``REPEATABLE READ``), so
    it may run while the service writes."""
    import psycopg

    from reelpick.serve.export import (
        OUTCOMES_SQL,
        ExportResult,
        write_impressions,
        write_outcomes,
    )

    out = Path(out)
    where = redact(url)
    try:
        conn = psycopg.connect(url)
    except psycopg.Error as exc:
        raise ValueError(f"{where}: cannot connect: {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    imp_path, out_path = out / "impressions.parquet", out / "outcomes.parquet"
    try:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        found = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name IN ('pages', 'events')")}
        if found != {"pages", "events"}:
            raise ValueError(f"{where}: not a reelpick event log (tables {sorted(found)})")
        side = conn.cursor()

        def chunks() -> Iterator[tuple[list[tuple[Any, ...]], set[str]]]:
            with conn.cursor(name="reelpick_export_pages") as cur:  # server-side: streamed
                cur.itersize = chunk_pages
                cur.execute(f"SELECT {', '.join(PAGE_COLUMNS)} FROM pages ORDER BY ts, page_id")
                while True:
                    rows = cur.fetchmany(chunk_pages)
                    if not rows:
                        return
                    side.execute("SELECT decision_id FROM events WHERE kind = 'impression' "
                                 "AND page_id = ANY(%s)", ([r[0] for r in rows],))
                    yield rows, {v for (v,) in side.fetchall()}

        n_pages, n_imp = write_impressions(imp_path, chunks(), where)
        side.execute(OUTCOMES_SQL)
        outcome_rows = side.fetchall()
        conn.commit()
    finally:
        conn.close()
    n_out = write_outcomes(out_path, outcome_rows, f"{where} (events)")
    return ExportResult(n_pages, n_imp, n_out, imp_path, out_path)
