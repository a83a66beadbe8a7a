"""A caller that cancels its future (a client gone away) must not stop the log's writer."""

from __future__ import annotations

import sqlite3
import threading

from reelpick.serve.store import EventStore
from tests.serve.test_store import page


def test_cancelled_futures_do_not_kill_the_writer(tmp_path):
    release, first_commit = threading.Event(), threading.Event()

    def hold(_jobs: int, _seconds: float) -> None:
        if not first_commit.is_set():
            first_commit.set()
            release.wait(10)

    store = EventStore(tmp_path / "log.db", on_commit=hold)
    store.start()
    try:
        store.submit_page(page("p0"))
        assert first_commit.wait(10)  # the writer is now held inside its first commit
        waiting = [store.submit_page(page(f"p{i}")) for i in (1, 2, 3)]
        assert all(f.cancel() for f in waiting)  # clients went away while queued
        release.set()
        store.submit_page(page("p4")).result(timeout=10)
        assert store.alive
    finally:
        store.close()
    conn = sqlite3.connect(tmp_path / "log.db")
    ids = {r[0] for r in conn.execute("SELECT page_id FROM pages")}
    conn.close()
    assert {"p0", "p4"} <= ids  # acknowledged pages are durable
