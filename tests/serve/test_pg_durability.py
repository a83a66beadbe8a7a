"""kill -9 with the PostgreSQL event log: every event that got a 2xx is in the log.

The service is killed with SIGKILL under load and restarted (2 kills in the default suite, 20 in
``-m slow``); the slow test then also crashes the database server itself under load
(``pg_ctl stop -m immediate``: no checkpoint, WAL recovery at restart) while the service keeps
running and reconnects. Afterwards every acknowledged event is in the log and the log passes
:func:`~reelpick.serve.pgstore.pg_integrity_check` (amcheck on every table and index, events
naming logged slots)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from reelpick.serve import Settings
from reelpick.serve.pgstore import pg_integrity_check
from reelpick.testing.postgres import PostgresServer, unavailable
from tests.serve.conftest import API_KEY, ServerProcess
from tests.serve.test_durability import run_kills

KEY = {"X-API-Key": API_KEY}


def logged_events(url: str) -> set[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {e for (e,) in conn.execute("SELECT event_id FROM events")}


def check_log(url: str, acked: set[str]) -> None:
    assert pg_integrity_check(url) == "ok"
    lost = acked - logged_events(url)
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:3]}"


def test_kill_minus_9_loses_no_acknowledged_event(make_settings: Callable[..., Settings],
                                                  pg_url: str) -> None:
    settings = make_settings(event_log=pg_url)
    acked, sent = run_kills(settings, kills=2)
    assert len(acked) > 50 and sent > 10
    assert not settings.db_path.exists()  # the SQLite log was never opened
    check_log(pg_url, acked)


@pytest.fixture
def own_pg_server() -> Iterator[PostgresServer]:
    """A server of its own: this test crashes it."""
    why = unavailable()
    if why:
        pytest.skip(f"PostgreSQL tests skipped: {why}")
    with PostgresServer() as server:
        yield server


def crash_database_under_load(settings: Settings, server: PostgresServer, crashes: int,
                              seed: int = 2) -> tuple[set[str], int]:
    """Keep one service running; crash its database ``crashes`` times under load."""
    rnd = random.Random(seed)
    svc = ServerProcess(settings)
    acked: set[str] = set()
    failed = 0
    lock = threading.Lock()
    stop = threading.Event()
    svc.start()
    try:
        with httpx.Client(base_url=svc.url, timeout=10) as c:
            page = c.get("/v1/homepage", params={"member": "m1"}).json()
        ds = [it["decision_id"] for row in page["rows"] for it in row["items"]]

        def load(worker: int) -> None:
            nonlocal failed
            i = 0
            with httpx.Client(base_url=svc.url, timeout=30) as c:
                while not stop.is_set():
                    ids = [f"db-w{worker}-{i}-{k}" for k in range(5)]
                    i += 1
                    body = {"events": [{"event_id": e, "decision_id": rnd.choice(ds),
                                        "kind": "play"} for e in ids]}
                    try:
                        r = c.post("/v1/events", json=body, headers=KEY)
                    except httpx.HTTPError:
                        continue
                    with lock:
                        if r.status_code == 200:
                            acked.update(ids)
                        else:
                            failed += 1

        threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        try:
            for _ in range(crashes):
                time.sleep(rnd.uniform(0.3, 0.8))
                server.crash_restart()
            time.sleep(1.0)  # the service is back: requests succeed again
            with lock:
                n_before = len(acked)
            time.sleep(1.0)
            with lock:
                assert len(acked) > n_before, "no event acknowledged after the last restart"
        finally:
            stop.set()
            for t in threads:
                t.join(60)
    finally:
        svc.stop()
    return acked, failed


@pytest.mark.slow
def test_twenty_kills_and_database_crashes(make_settings: Callable[..., Settings],
                                           own_pg_server: PostgresServer) -> None:
    url = own_pg_server.create_database()
    settings = make_settings(event_log=url)
    acked, _ = run_kills(settings, kills=20, seed=1)
    check_log(url, acked)
    acked_db, failed = crash_database_under_load(settings, own_pg_server, crashes=3)
    assert len(acked_db) > 100
    check_log(url, acked | acked_db)
    print(f"20 kills (PostgreSQL): {len(acked)} events acknowledged; 3 database crashes: "
          f"{len(acked_db)} acknowledged, {failed} requests refused (503) while it was down; "
          "0 lost; integrity ok")
