"""The SQLite log's asyncio hand-off (``submit_page_async``), multi-row inserts, and logs
written before the pages table became a rowid table."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reelpick.serve.export import export_logs
from reelpick.serve.store import (
    SCHEMA,
    EventRecord,
    EventStore,
    StoreClosedError,
)
from tests.serve.test_store import page


def count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM pages").fetchone()[0])
    finally:
        conn.close()


def test_async_submission_completes_once_committed(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "log.sqlite3", delay_s=0.02)
    store.start()

    async def main() -> None:
        waiters = [store.submit_page_async(page(f"p{i}")) for i in range(700)]
        assert not any(w.done() for w in waiters)
        await asyncio.gather(*waiters)
        assert count(store.path) == 700  # durable before any is answered

    try:
        asyncio.run(main())
        # more than one multi-row statement's worth of pages in one transaction
        assert store.transactions < 700 and store.jobs_committed == 700
    finally:
        store.close()

    async def late() -> None:
        with pytest.raises(StoreClosedError):
            store.submit_page_async(page("late"))

    asyncio.run(late())


def test_async_and_threaded_submissions_mix(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "log.sqlite3")
    store.start()

    async def main() -> None:
        w = store.submit_page_async(page("a"))
        f = store.submit_events([EventRecord("e1", "a-1", "play", 1, 0.0)])
        await w
        assert (await asyncio.wrap_future(f)).accepted == 1

    try:
        asyncio.run(main())
    finally:
        store.close()


def test_a_log_written_with_the_old_pages_table_still_works(tmp_path: Path) -> None:
    """Logs from before the pages table was a rowid table (``WITHOUT ROWID``, keyed by the page
    id) keep that layout; the service writes to them and the export reads them."""
    path = tmp_path / "old.sqlite3"
    old = SCHEMA.replace("    explored BLOB NOT NULL\n);",
                         "    explored BLOB NOT NULL\n) WITHOUT ROWID;")
    assert old != SCHEMA
    conn = sqlite3.connect(path)
    conn.executescript(old)
    conn.close()
    store = EventStore(path)
    store.start()
    try:
        for i in range(3):
            store.submit_page(page(f"p{i}")).result()
    finally:
        store.close()
    conn = sqlite3.connect(path)
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'pages'").fetchone()[0]
    conn.close()
    assert "WITHOUT ROWID" in sql
    res = export_logs(path, tmp_path / "out")
    assert res.pages == 3 and res.impressions == 12


def test_pages_submitted_together_share_one_job(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "log.sqlite3")
    store.start()

    async def main() -> None:
        jobs = store.jobs_committed
        await store.submit_pages_async([page(f"q{i}") for i in range(30)])
        assert count(store.path) == 30 and store.jobs_committed == jobs + 1

    try:
        asyncio.run(main())
    finally:
        store.close()


def test_a_cancelled_request_does_not_cancel_its_batch(make_settings) -> None:
    """Pages of one batch share the log's future: each request awaits its own view of it."""
    from reelpick.serve import create_app
    from reelpick.serve.routers.homepage import start_pages
    from tests.serve.conftest import TestClient

    with TestClient(create_app(make_settings())) as c:
        state = c.app.state.service

        async def main() -> list[Any]:
            started = start_pages(state, state.bundle,
                                  [(f"m{i}", "tv", None, 20, 1) for i in range(3)])
            views = [s.logged for s in started]  # type: ignore[union-attr]
            views[0].cancel()
            return await asyncio.gather(*views[1:])

        assert c.portal.call(main) == [None, None]  # type: ignore[union-attr]
