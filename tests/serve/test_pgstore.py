"""The PostgreSQL event log beyond the shared contract (``test_store.py``): settings, reconnects,
export identical to SQLite's, and the whole service on PostgreSQL through a real uvicorn."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from reelpick.cli import app as cli
from reelpick.data.schema import IMPRESSIONS, OUTCOMES, join_outcomes
from reelpick.serve import Settings, create_app
from reelpick.serve.app import open_event_log
from reelpick.serve.export import export_logs
from reelpick.serve.pgstore import (
    PostgresEventStore,
    export_pg_logs,
    pg_integrity_check,
    redact,
)
from reelpick.serve.store import EventStore, PageRecord, StoreWriteError
from tests.serve.conftest import API_KEY, LiveServer
from tests.serve.test_store import count, ev, page

KEY = {"X-API-Key": API_KEY}


def test_settings_event_log() -> None:
    assert Settings().log_backend == "sqlite"
    s = Settings(event_log="postgresql://u:pw@db.example:5432/log")
    assert s.log_backend == "postgresql" and "pw" not in repr(s)
    assert Settings(event_log="").event_log is None  # an empty variable means unset
    with pytest.raises(ValidationError, match="event_log"):
        Settings(event_log="mysql://u@h/db")
    assert redact("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_open_event_log_picks_the_backend(tmp_path: Path, pg_url: str) -> None:
    sqlite_log = open_event_log(Settings(data_dir=tmp_path))
    assert isinstance(sqlite_log, EventStore)
    sqlite_log.close()
    pg_log = open_event_log(Settings(data_dir=tmp_path, event_log=pg_url, commit_max_jobs=7))
    assert isinstance(pg_log, PostgresEventStore) and pg_log.max_jobs == 7
    assert pg_log.integrity == "ok" and pg_log.server_fsync == "on"
    pg_log.close()


def test_unreachable_database_fails_at_start() -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError):
        PostgresEventStore("postgresql://nobody@127.0.0.1:9/none", connect_timeout=1)


def test_reconnects_after_the_connection_is_killed(pg_url: str) -> None:
    """The server ends the writer's session (restart, failover, idle kill): the next batch
    reconnects and commits; nothing is acknowledged that is not committed."""
    import psycopg

    s = PostgresEventStore(pg_url)
    s.start()
    try:
        s.submit_page(page("p1")).result(10)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            n = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = "
                "'reelpick-log-writer'").fetchone()[0]
        assert n == 1
        res = s.submit_events([ev("after", "p1-0")]).result(30)
        assert res.accepted == 1 and s.retried_transactions >= 1
        assert count(s, "events") == 1
    finally:
        s.close()


def test_failed_transaction_fails_every_job_of_the_batch(pg_url: str) -> None:
    """A page id logged twice violates the primary key: that batch is rolled back and every
    job in it fails (503), the writer goes on."""
    s = PostgresEventStore(pg_url)
    s.start()
    try:
        s.submit_page(page("p1")).result(10)
        with pytest.raises(StoreWriteError):
            s.submit_page(page("p1")).result(10)
        assert s.failed_transactions == 1
        assert s.submit_events([ev("a", "p1-0")]).result(10).accepted == 1
    finally:
        s.close()


def test_cancelled_requests_do_not_stop_the_writer(pg_url: str) -> None:
    """Ray Serve cancels a request whose client went away, and ``asyncio.wrap_future`` passes
    the cancellation on to the job's future: the writer skips such jobs (nothing was answered)
    and keeps running."""
    import psycopg

    s = PostgresEventStore(pg_url)
    s.start()
    try:
        s.submit_page(page("p0")).result(10)
        with psycopg.connect(pg_url) as blocker:  # hold the writer inside its next commit
            blocker.execute("LOCK TABLE pages IN EXCLUSIVE MODE")
            held = s.submit_page(page("held"))
            time.sleep(0.3)  # the writer took `held` and waits for the lock
            futs = [s.submit_page(page(f"p{i}")) for i in range(1, 50)]
            assert all(f.cancel() for f in futs)  # still queued: cancellable
        assert held.result(10) is None  # lock released: the writer goes on
        assert s.alive
        assert s.submit_events([ev("after", "p0-1")]).result(10).accepted == 1
        assert count(s, "pages") == 2
    finally:
        s.close()


def _varied_page(pid: str, n: int, rng: np.random.Generator) -> PageRecord:
    return PageRecord(
        page_id=pid, timestamp=1_700_000_000 + int(rng.integers(1000)), member_id="m7",
        device="tv", country="US", hour=20, day_of_week=5, policy="p", model_version="v2",
        row_labels=("Top picks", "Drama", "Popular"), titles=[f"t{i}" for i in range(n)],
        artworks=[f"t{i}-a{i % 3}" for i in range(n)], row_index=np.arange(n) % 3,
        position=np.arange(n) // 3, propensity=rng.uniform(0.01, 1.0, n),
        artwork_propensity=np.full(n, 1 / 3), explored=rng.random(n) < 0.3)


def test_export_is_the_same_from_both_backends(tmp_path: Path, pg_url: str) -> None:
    rng = np.random.default_rng(5)
    pages = [_varied_page(f"pg{k}", 9, rng) for k in range(12)]
    events = [ev(f"e{i}", f"pg{i % 12}-{i % 9}", kind=("play", "watch", "impression")[i % 3],
                 watch=30.0 if i % 3 == 1 else 0.0) for i in range(60)]
    outs = []
    for log, name in ((EventStore(tmp_path / "log.sqlite3"), "sqlite"),
                      (PostgresEventStore(pg_url), "pg")):
        log.start()
        for p in pages:
            log.submit_page(p).result(10)
        assert log.submit_events(events).result(10).accepted == 60
        log.close()
        out = tmp_path / name
        res = (export_logs(tmp_path / "log.sqlite3", out, chunk_pages=5) if name == "sqlite"
               else export_pg_logs(pg_url, out, chunk_pages=5))
        assert (res.pages, res.impressions) == (12, 108)
        outs.append((pd.read_parquet(res.impressions_path), pd.read_parquet(res.outcomes_path)))
    (imp_s, out_s), (imp_p, out_p) = outs
    pd.testing.assert_frame_equal(imp_s, imp_p)
    pd.testing.assert_frame_equal(out_s, out_p)
    viewed = {e.decision_id for e in events if e.kind == "impression"}
    assert imp_p["viewed"].sum() == len(viewed) and len(out_p) > 0


def test_export_of_an_empty_or_foreign_database(tmp_path: Path, pg_url: str) -> None:
    with pytest.raises(ValueError, match="not a reelpick event log"):
        export_pg_logs(pg_url, tmp_path / "x")
    PostgresEventStore(pg_url).close()  # creates the tables
    res = export_pg_logs(pg_url, tmp_path / "y")
    assert (res.pages, res.impressions, res.outcomes) == (0, 0, 0)
    IMPRESSIONS.validate(pd.read_parquet(res.impressions_path), source="empty")


def test_cli_export_needs_exactly_one_log(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["logs", "export", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "exactly one of --db" in res.output
    res = runner.invoke(cli, ["logs", "export", "--out", str(tmp_path / "o"),
                              "--event-log", "mysql://x"])
    assert res.exit_code == 2 and "postgresql://" in res.output


def test_service_on_postgres_end_to_end(make_settings: Callable[..., Settings], pg_url: str,
                                        tmp_path: Path) -> None:
    """A real uvicorn with ``event_log`` set: pages and events land in PostgreSQL, concurrent
    posts are group-committed, retries are duplicates, unknown decisions 422, health and
    metrics report the log, and ``reelpick logs export --event-log`` reads it back."""
    settings = make_settings(event_log=pg_url)
    with LiveServer(create_app(settings)) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as c:
        store = srv.state.store
        assert isinstance(store, PostgresEventStore)
        assert not settings.db_path.exists()  # nothing went to SQLite
        health = c.get("/healthz").json()
        assert health["status"] == "ok" and health["log"]["integrity"] == "ok"
        ds: list[str] = []
        for i in range(4):
            pg = c.get("/v1/homepage", params={"member": f"m{i}", "hour": 9}).json()
            ds += [it["decision_id"] for row in pg["rows"] for it in row["items"]]
        before = store.transactions

        def post(i: int) -> int:
            body = {"events": [{"event_id": f"g{i}", "decision_id": ds[i % len(ds)],
                                "kind": "play"}]}
            return httpx.post(srv.url + "/v1/events", json=body, headers=KEY,
                              timeout=30).status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(post, range(120)))
        assert codes == [200] * 120
        assert store.transactions - before < 120
        events = [{"event_id": f"w{i}", "decision_id": d, "kind": "watch",
                   "watch_seconds": 30.0} for i, d in enumerate(ds[:5])]
        events += [{"event_id": f"v{i}", "decision_id": d, "kind": "impression"}
                   for i, d in enumerate(ds[:20])]
        r = c.post("/v1/events", json={"events": events}, headers=KEY)
        assert r.json() == {"received": 25, "accepted": 25, "duplicates": 0}
        r = c.post("/v1/events", json={"events": events[:3]}, headers=KEY)
        assert r.json()["duplicates"] == 3
        bad = {"events": [{"event_id": "z", "decision_id": ds[0], "kind": "play"},
                          {"event_id": "z2", "decision_id": "nope-1", "kind": "play"}]}
        r = c.post("/v1/events", json=bad, headers=KEY)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "events[1].decision_id"
        assert "reelpick_log_transaction_jobs" in c.get("/metrics").text
    assert count(store, "pages") == 4
    assert pg_integrity_check(pg_url) == "ok"
    out = tmp_path / "logged"
    res = CliRunner().invoke(cli, ["logs", "export", "--event-log", pg_url, "--out", str(out)])
    assert res.exit_code == 0, res.output
    imp = pd.read_parquet(out / "impressions.parquet")
    outc = pd.read_parquet(out / "outcomes.parquet")
    IMPRESSIONS.validate(imp, source="impressions")
    OUTCOMES.validate(outc, source="outcomes")
    assert len(imp) == len(ds) and set(imp["decision_id"]) == set(ds)
    assert imp["viewed"].sum() == 20
    joined = join_outcomes(imp, outc)
    assert joined["watch_seconds"].sum() == 150.0
    assert joined["play"].sum() == len({ds[i % len(ds)] for i in range(120)} | set(ds[:5]))
