"""The event log: durability across close/reopen, idempotency, group commit, all-or-none.

The contract tests run against both backends: the SQLite file (``store.EventStore``) and
PostgreSQL (``pgstore.PostgresEventStore``, on the tests' throwaway server; skipped with the
reason when PostgreSQL is not installed)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reelpick.serve.pgstore import PostgresEventStore, pg_integrity_check
from reelpick.serve.store import (
    EventRecord,
    EventStore,
    PageRecord,
    StoreClosedError,
    UnknownDecisionError,
    integrity_check,
    split_decision_id,
)


def page(pid: str, n: int = 4) -> PageRecord:
    return PageRecord(
        page_id=pid, timestamp=1_700_000_000, member_id="m1", device="tv", country="US",
        hour=20, day_of_week=5, policy="p", model_version="v", row_labels=("a", "b"),
        titles=[f"t{i}" for i in range(n)], artworks=[f"t{i}-a0" for i in range(n)],
        row_index=np.arange(n) // 2, position=np.arange(n) % 2, propensity=np.full(n, 0.5),
        artwork_propensity=np.ones(n), explored=np.zeros(n, bool))


def ev(eid: str, did: str, kind: str = "play", watch: float = 0.0) -> EventRecord:
    return EventRecord(eid, did, kind, 1_700_000_100, watch)


Opener = Callable[..., Any]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens a log of the parametrised backend, at the same place every call (reopen tests)."""
    if request.param == "sqlite":
        path = tmp_path / "log.sqlite3"
        return lambda **kw: EventStore(path, **kw)
    url = request.getfixturevalue("pg_url")
    return lambda **kw: PostgresEventStore(url, **kw)


@pytest.fixture
def store(open_log: Opener):
    s = open_log()
    s.start()
    yield s
    s.close()


def count(log: Any, table: str) -> int:
    """Rows of ``table`` in the log ``log`` (a store of either backend, or a SQLite path)."""
    if isinstance(log, PostgresEventStore):
        import psycopg

        with psycopg.connect(log.url) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    conn = sqlite3.connect(log.path if isinstance(log, EventStore) else log)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def check(log: Any) -> str:
    if isinstance(log, PostgresEventStore):
        return pg_integrity_check(log.url)
    return integrity_check(log.path)


def test_wal_mode_and_integrity(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "log.sqlite3")
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.integrity == "ok"
    store.close()


def test_acknowledged_events_survive_close_and_reopen(open_log: Opener) -> None:
    s = open_log()
    s.start()
    assert s.integrity == "ok"
    s.submit_page(page("p1")).result(10)
    res = s.submit_events([ev(f"e{i}", f"p1-{i % 4}") for i in range(50)]).result(10)
    assert res.accepted == 50
    s.close()
    assert count(s, "events") == 50 and count(s, "pages") == 1
    s2 = open_log()
    s2.start()
    assert s2.submit_events([ev("e0", "p1-0")]).result(10).duplicates == 1
    s2.close()
    assert check(s2) == "ok"


def test_idempotent_on_event_id(store: EventStore) -> None:
    store.submit_page(page("p1")).result(10)
    first = store.submit_events([ev("a", "p1-0"), ev("b", "p1-1")]).result(10)
    again = store.submit_events([ev("a", "p1-0"), ev("b", "p1-1"), ev("c", "p1-2")]).result(10)
    assert (first.accepted, first.duplicates) == (2, 0)
    assert (again.accepted, again.duplicates) == (1, 2)
    assert count(store, "events") == 3


def test_duplicates_within_a_batch_and_across_concurrent_jobs(store: EventStore) -> None:
    """An id twice in one batch is accepted once; an id in two jobs committed together is
    accepted by the first only (the SQLite semantics, which the PostgreSQL log matches)."""
    store.submit_page(page("p1")).result(10)
    res = store.submit_events([ev("d", "p1-0"), ev("d", "p1-1"), ev("e", "p1-2")]).result(10)
    assert (res.accepted, res.duplicates) == (2, 1)
    futs = [store.submit_events([ev("x", "p1-0"), ev(f"y{k}", "p1-1")]) for k in range(20)]
    results = [f.result(10) for f in futs]
    assert sum(r.accepted for r in results) == 1 + 20
    assert results[0].accepted == 2 and all(r.duplicates == 1 for r in results[1:])
    assert count(store, "events") == 2 + 21


@pytest.mark.parametrize("decision", ["nope-0", "p1-4", "p1", "p1-x", "-3", "p1--1"])
def test_unknown_decision_rejects_the_whole_batch(store: EventStore, decision: str) -> None:
    store.submit_page(page("p1", n=4)).result(10)
    with pytest.raises(UnknownDecisionError) as info:
        store.submit_events([ev("ok", "p1-0"), ev("bad", decision)]).result(10)
    assert info.value.index == 1
    assert count(store, "events") == 0


def test_unknown_decision_fails_only_its_own_job(store: EventStore) -> None:
    """Jobs committed in one transaction: the one naming an unknown slot fails alone."""
    store.submit_page(page("p1", n=4)).result(10)
    futs = [store.submit_events([ev(f"g{k}", "p1-1")]) for k in range(5)]
    bad = store.submit_events([ev("b0", "p1-0"), ev("b1", "p1-9")])
    futs += [store.submit_events([ev(f"h{k}", "p1-2")]) for k in range(5)]
    assert all(f.result(10).accepted == 1 for f in futs)
    with pytest.raises(UnknownDecisionError):
        bad.result(10)
    assert count(store, "events") == 10


def test_group_commit_batches_concurrent_jobs(store: EventStore) -> None:
    store.submit_page(page("p1")).result(10)
    base = store.transactions
    n = 400
    futures = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for i in range(n // 8):
            f = store.submit_events([ev(f"w{k}-{i}", "p1-0")])
            with lock:
                futures.append(f)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(f.result(30).accepted for f in futures) == n
    assert store.transactions - base < n
    assert count(store, "events") == n


def test_without_group_commit_one_transaction_per_job(open_log: Opener) -> None:
    s = open_log(group_commit=False)
    s.start()
    s.submit_page(page("p1")).result(10)
    fs = [s.submit_events([ev(f"e{i}", "p1-0")]) for i in range(20)]
    assert all(f.result(10).accepted == 1 for f in fs)
    assert s.transactions == 21
    s.close()


def test_closed_store_refuses(open_log: Opener) -> None:
    s = open_log()
    s.start()
    s.close()
    with pytest.raises(StoreClosedError):
        s.submit_events([])


def test_split_decision_id() -> None:
    assert split_decision_id("abc-12") == ("abc", 12)
    assert split_decision_id("a-b-3") == ("a-b", 3)
    assert split_decision_id("abc") is None
    assert split_decision_id("abc-") is None


def _worker(path: str, name: str, other: str, barrier: object) -> None:
    """One 'uvicorn worker' (or Ray Serve replica): its own store (connection + group-commit
    writer) on a shared SQLite file or PostgreSQL database (``path`` is then its URL)."""
    s = PostgresEventStore(path) if path.startswith("postgresql://") else EventStore(path)
    s.start()
    try:
        futs = [s.submit_page(page(f"{name}{i}")) for i in range(100)]
        for f in futs:
            f.result(timeout=60)
        barrier.wait(60)  # type: ignore[attr-defined]  # the other worker's pages are committed too
        futs = [s.submit_events([ev(f"{name}-e{i}", f"{other}{i}-1"),
                                 ev("shared-id", f"{name}{i}-0")]) for i in range(100)]
        for f in futs:
            f.result(timeout=60)
    finally:
        s.close()


def test_two_processes_share_one_log(tmp_path: Path) -> None:
    """``uvicorn --workers 2``: two writers on one WAL file lose nothing, see each other's
    pages, and keep event ids idempotent across processes."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    path = str(tmp_path / "log.sqlite3")
    EventStore(path).close()  # create the schema once, as the first worker would
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_worker, args=(path, a, b, barrier))
             for a, b in (("A", "B"), ("B", "A"))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert count(Path(path), "pages") == 200
    assert count(Path(path), "events") == 200 + 1  # "shared-id" is stored once
    assert integrity_check(path) == "ok"


def test_two_processes_share_one_postgres_log(pg_url: str) -> None:
    """Two processes (uvicorn workers, Ray Serve replicas) writing one PostgreSQL log: nothing
    lost, each sees the other's pages, event ids idempotent across processes."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no inherited connections or threads
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_worker, args=(pg_url, a, b, barrier))
             for a, b in (("A", "B"), ("B", "A"))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    log = PostgresEventStore(pg_url)
    try:
        assert count(log, "pages") == 200
        assert count(log, "events") == 200 + 1
    finally:
        log.close()
    assert pg_integrity_check(pg_url) == "ok"
